//! From flags, environment and config file to the libraries' validated configs.
//!
//! Precedence, for every role flag: command line, then `KAIROS_<FLAG>`, then the
//! `--config` file, then the built-in default. clap resolves the first two (a flag declared with `env`), and
//! this module applies the last two. A list-valued flag (`--tag`, `--peers`,
//! `--schedulers`, `--notify`) is taken whole from the first source that has it: a
//! `--tag` on the command line replaces the file's tags rather than adding to them.
//!
//! The whole config file is checked even where a flag overrides an entry, so a bad
//! file fails on the first start rather than on the first start without that flag.
//! The file's accepted keys are the role's own long flags (derived from the clap
//! definitions, so they cannot drift) plus `log-format`.
//!
//! Rules enforced here, before anything starts: a scheduler needs `--node-id` (or
//! `--pod-name`) and `--data-dir`; tags and peers are not given twice, nor are
//! `--notify` URLs; an executor needs `--schedulers` and `--id`; capacity is at
//! least 1. The scheduler's cross-field rules (the peers include this node, ticks,
//! intervals, `--join`) are the library's own [`kairos_scheduler::Config::validate`],
//! called here so they fail before anything starts and are written once. Everything
//! else (ports in use, an unreadable data dir) is the libraries' to report when they
//! start.

pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail};

use crate::args::{DevArgs, ExecutorArgs, GlobalArgs, SchedulerArgs};
use crate::config_file::ConfigFile;
use crate::logging::LogFormat;

/// `kairos dev` keeps its data here unless told otherwise.
pub const DEV_DATA_DIR: &str = "./kairos-data";

/// `kairos dev`'s local executor is called this unless told otherwise.
pub const DEV_EXECUTOR_ID: &str = "local";

/// The tag `kairos dev`'s executor carries unless told otherwise: Dkron's servers
/// carry it, and Dkron's getting-started job targets it.
pub const DEV_SERVER_TAG: (&str, &str) = ("server", "true");

/// The node id `kairos dev` runs its one scheduler as.
pub const DEV_NODE_ID: u64 = 1;

/// What `kairos dev` runs.
#[derive(Debug)]
pub struct DevSettings {
    pub scheduler: kairos_scheduler::Config,
    /// The local executor; `schedulers` is filled in once the scheduler has bound its
    /// gRPC port.
    pub executor: kairos_executor::Config,
    pub log_format: LogFormat,
}

/// What `kairos scheduler` runs.
#[derive(Debug)]
pub struct SchedulerSettings {
    pub config: kairos_scheduler::Config,
    pub log_format: LogFormat,
}

/// What `kairos executor` runs.
#[derive(Debug)]
pub struct ExecutorSettings {
    pub config: kairos_executor::Config,
    pub log_format: LogFormat,
}

/// Resolves `kairos dev`.
pub fn dev(args: &DevArgs, global: &GlobalArgs) -> anyhow::Result<DevSettings> {
    let file = Layer::load::<DevArgs>(args.config.as_deref())?;
    if tls_files(global, &file)?.is_some() {
        bail!(
            "--tls-ca: `kairos dev` runs in the clear on loopback only; TLS is for `kairos scheduler` and `kairos executor` (unset KAIROS_TLS_CA/KAIROS_TLS_CERT/KAIROS_TLS_KEY for dev)"
        );
    }

    let data_dir = pick(args.data_dir.clone(), file.value("data-dir", values::path)?)
        .unwrap_or_else(|| PathBuf::from(DEV_DATA_DIR));
    let mut scheduler = kairos_scheduler::Config::new(DEV_NODE_ID, data_dir);
    // The embedded default is open, so it may listen on loopback only.
    scheduler.insecure = true;
    scheduler.loopback_only = true;
    listen(
        &mut scheduler,
        args.grpc_addr,
        args.http_addr,
        args.http_base_path.clone(),
        args.addr_file.clone(),
        &file,
    )?;

    let id = pick(
        args.executor_id.clone(),
        file.value("executor-id", values::name)?,
    )
    .unwrap_or_else(|| DEV_EXECUTOR_ID.to_string());
    let mut executor = kairos_executor::Config::new(Vec::new(), id);
    executor.insecure = true;
    runs(
        &mut executor,
        &args.tags,
        args.capacity,
        (args.kill_grace, args.shutdown_grace),
        &file,
    )?;
    // The embedded executor runs inside the scheduler, as Dkron's server agents do:
    // Dkron's documented jobs target `"server": "true"`, so it carries that tag
    // unless `--tag server=...` says otherwise.
    executor
        .tags
        .entry(DEV_SERVER_TAG.0.to_string())
        .or_insert_with(|| DEV_SERVER_TAG.1.to_string());
    history_and_webhooks(&mut scheduler, args.max_executions, &args.notify, &file)?;

    validated(&scheduler)?;

    Ok(DevSettings {
        scheduler,
        executor,
        log_format: resolve_log_format(global.log_format, &file)?,
    })
}

/// Resolves `kairos scheduler`.
pub fn scheduler(args: &SchedulerArgs, global: &GlobalArgs) -> anyhow::Result<SchedulerSettings> {
    let file = Layer::load::<SchedulerArgs>(args.config.as_deref())?;

    let from_pod = pick(args.pod_name.clone(), file.value("pod-name", values::name)?)
        .map(|name| node_id_of_pod(&name))
        .transpose()?;
    let node_id = match (
        pick(args.node_id, file.value("node-id", values::number)?),
        from_pod,
    ) {
        (Some(id), Some(pod)) if id != pod => bail!(
            "--node-id {id} and --pod-name (which makes node {pod}) disagree; give one of them"
        ),
        (Some(id), _) => id,
        (None, Some(pod)) => pod,
        (None, None) => return Err(missing("node-id")),
    };
    let data_dir = pick(args.data_dir.clone(), file.value("data-dir", values::path)?)
        .ok_or_else(|| missing("data-dir"))?;
    let mut config = kairos_scheduler::Config::new(node_id, data_dir);
    listen(
        &mut config,
        args.grpc_addr,
        args.http_addr,
        args.http_base_path.clone(),
        args.addr_file.clone(),
        &file,
    )?;
    config.peers = peer_map(pick_list(
        args.peers.clone(),
        file.list("peers", values::peer)?,
    ))?;
    if let Some(tick) = pick(
        args.tick_interval,
        file.value("tick-interval", values::duration)?,
    ) {
        config.tick_interval = tick;
    }
    if let Some(n) = pick(
        args.election_ticks,
        file.value("election-ticks", values::number)?,
    ) {
        config.election_ticks = n;
    }
    if let Some(n) = pick(
        args.heartbeat_ticks,
        file.value("heartbeat-ticks", values::number)?,
    ) {
        config.heartbeat_ticks = n;
    }
    config.join = args.join || file.value("join", values::boolean)?.unwrap_or(false);
    config.advertise_addr = pick(
        args.advertise_addr.clone(),
        file.value("advertise-addr", values::name)?,
    );
    if let Some(n) = pick(
        args.snapshot_interval,
        file.value("snapshot-interval", values::number)?,
    ) {
        config.snapshot_interval = n;
    }
    history_and_webhooks(&mut config, args.max_executions, &args.notify, &file)?;
    config.tls = tls_files(global, &file)?;
    config.insecure = args.insecure || file.value("insecure", values::boolean)?.unwrap_or(false);
    config.metrics_open = args.metrics_open
        || file
            .value("metrics-open", values::boolean)?
            .unwrap_or(false);
    if let Some(rate) = pick(args.write_rate, file.value("write-rate", values::limit)?) {
        config.write_rate = rate;
    }
    if let Some(burst) = pick(args.write_burst, file.value("write-burst", values::limit)?) {
        config.write_burst = burst;
    }
    if global.token.is_some() {
        bail!(
            "--token is for client commands and executors; a scheduler proves itself with --tls-cert"
        );
    }
    validated(&config)?;

    Ok(SchedulerSettings {
        config,
        log_format: resolve_log_format(global.log_format, &file)?,
    })
}

/// Resolves `kairos executor`.
pub fn executor(args: &ExecutorArgs, global: &GlobalArgs) -> anyhow::Result<ExecutorSettings> {
    let file = Layer::load::<ExecutorArgs>(args.config.as_deref())?;

    let schedulers = pick_list(
        args.schedulers.clone(),
        file.list("schedulers", |s| Ok(s.to_string()))?,
    );
    let schedulers: Vec<String> = schedulers
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if schedulers.is_empty() {
        return Err(missing("schedulers"));
    }
    let id = pick(args.id.clone(), file.value("id", values::name)?).ok_or_else(|| missing("id"))?;
    let id = values::name(&id).map_err(|e| anyhow!("--id: {e}"))?;

    let mut config = kairos_executor::Config::new(schedulers, id);
    runs(
        &mut config,
        &args.tags,
        args.capacity,
        (args.kill_grace, args.shutdown_grace),
        &file,
    )?;
    config.tls = tls_files(global, &file)?;
    config.token = pick(global.token.clone(), file.value("token", values::token)?);
    config.insecure = args.insecure || file.value("insecure", values::boolean)?.unwrap_or(false);
    config.validate().map_err(|e| anyhow!("{e}"))?;

    Ok(ExecutorSettings {
        config,
        log_format: resolve_log_format(global.log_format, &file)?,
    })
}

/// `--tls-ca`, `--tls-cert` and `--tls-key` (global flags, or the config file's
/// keys of the same names): nothing when none is given.
fn tls_files(global: &GlobalArgs, file: &Layer) -> anyhow::Result<Option<kairos_tls::TlsFiles>> {
    let ca = pick(global.tls_ca.clone(), file.value("tls-ca", values::path)?);
    let cert = pick(
        global.tls_cert.clone(),
        file.value("tls-cert", values::path)?,
    );
    let key = pick(global.tls_key.clone(), file.value("tls-key", values::path)?);
    match (ca, cert, key) {
        (None, None, None) => Ok(None),
        (Some(ca), cert, key) => {
            if cert.is_some() != key.is_some() {
                bail!("--tls-cert and --tls-key go together: give both or neither");
            }
            Ok(Some(kairos_tls::TlsFiles { ca, cert, key }))
        }
        (None, _, _) => bail!(
            "--tls-ca is missing: --tls-cert and --tls-key need the CA that signed the other side's certificates"
        ),
    }
}

/// `--grpc-addr`, `--http-addr`, `--http-base-path` and `--addr-file`, which
/// `kairos dev` and `kairos scheduler` share.
fn listen(
    config: &mut kairos_scheduler::Config,
    grpc_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    http_base_path: Option<String>,
    addr_file: Option<PathBuf>,
    file: &Layer,
) -> anyhow::Result<()> {
    if let Some(path) = pick(http_base_path, file.value("http-base-path", values::name)?) {
        config.http_base_path = path;
    }
    if let Some(addr) = pick(grpc_addr, file.value("grpc-addr", values::listen_addr)?) {
        config.grpc_addr = addr;
    }
    if let Some(addr) = pick(http_addr, file.value("http-addr", values::listen_addr)?) {
        config.http_addr = addr;
    }
    config.addr_file = pick(addr_file, file.value("addr-file", values::path)?);
    Ok(())
}

/// `--tag`, `--capacity`, `--kill-grace` and `--shutdown-grace`, which `kairos dev`
/// (for its local executor) and `kairos executor` share.
fn runs(
    config: &mut kairos_executor::Config,
    tags: &[(String, String)],
    capacity: Option<u32>,
    (kill_grace, shutdown_grace): (Option<Duration>, Option<Duration>),
    file: &Layer,
) -> anyhow::Result<()> {
    config.tags = tag_map(pick_list(tags.to_vec(), file.list("tag", values::tag)?))?;
    if let Some(capacity) = pick(capacity, file.value("capacity", values::number)?) {
        config.capacity = capacity;
    }
    if let Some(grace) = pick(kill_grace, file.value("kill-grace", values::duration)?) {
        config.kill_grace = grace;
    }
    if let Some(grace) = pick(
        shutdown_grace,
        file.value("shutdown-grace", values::duration)?,
    ) {
        config.shutdown_grace = grace;
    }
    check_capacity(config.capacity)
}

/// `--max-executions` and `--notify`, which `kairos dev` and `kairos scheduler`
/// share.
fn history_and_webhooks(
    config: &mut kairos_scheduler::Config,
    max_executions: Option<u64>,
    notify: &[String],
    file: &Layer,
) -> anyhow::Result<()> {
    if let Some(n) = pick(
        max_executions,
        file.value("max-executions", values::number)?,
    ) {
        config.max_executions = n;
    }
    let urls = pick_list(notify.to_vec(), file.list("notify", values::webhook_url)?);
    let mut seen = BTreeSet::new();
    for url in &urls {
        if !seen.insert(url.as_str()) {
            bail!("--notify lists {url} twice");
        }
    }
    config.notify = urls;
    Ok(())
}

/// The config file of one role, or nothing when `--config` was not given.
struct Layer(Option<ConfigFile>);

impl Layer {
    fn load<A: clap::Args>(path: Option<&Path>) -> anyhow::Result<Layer> {
        match path {
            Some(path) => Ok(Layer(Some(ConfigFile::load(path, &config_keys::<A>())?))),
            None => Ok(Layer(None)),
        }
    }

    fn value<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<Option<T>> {
        match &self.0 {
            Some(file) => file.value(key, parse),
            None => Ok(None),
        }
    }

    fn list<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> anyhow::Result<Vec<T>> {
        match &self.0 {
            Some(file) => file.list(key, parse),
            None => Ok(Vec::new()),
        }
    }
}

/// The keys a role's config file accepts: its long flags except `--config` itself,
/// plus the global flags a server takes from a file (`log-format`, the TLS files and,
/// for an executor, `token`).
pub fn config_keys<A: clap::Args>() -> Vec<String> {
    let command = A::augment_args(clap::Command::new("keys"));
    command
        .get_arguments()
        .filter_map(|arg| arg.get_long())
        .filter(|long| !matches!(*long, "config" | "help"))
        .map(str::to_string)
        .chain(FILE_GLOBALS.iter().map(|k| k.to_string()))
        .collect()
}

/// Global flags a config file may set too.
const FILE_GLOBALS: [&str; 5] = ["log-format", "tls-ca", "tls-cert", "tls-key", "token"];

/// The command line or environment (already merged by clap) before the file.
fn pick<T>(flag_or_env: Option<T>, file: Option<T>) -> Option<T> {
    flag_or_env.or(file)
}

/// Like [`pick`] for repeatable flags: an empty list means "not given".
fn pick_list<T>(flag_or_env: Vec<T>, file: Vec<T>) -> Vec<T> {
    if flag_or_env.is_empty() {
        file
    } else {
        flag_or_env
    }
}

fn resolve_log_format(flag_or_env: Option<LogFormat>, file: &Layer) -> anyhow::Result<LogFormat> {
    Ok(pick(flag_or_env, file.value("log-format", values::log_format)?).unwrap_or_default())
}

fn missing(flag: &str) -> anyhow::Error {
    let env = format!("KAIROS_{}", flag.replace('-', "_").to_uppercase());
    anyhow!("missing --{flag} (or {env}, or `{flag}` in the --config file)")
}

fn check_capacity(capacity: u32) -> anyhow::Result<()> {
    if capacity == 0 {
        bail!("--capacity must be at least 1");
    }
    Ok(())
}

fn tag_map(tags: Vec<(String, String)>) -> anyhow::Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for (key, value) in tags {
        if let Some(first) = map.insert(key.clone(), value.clone()) {
            bail!("tag `{key}` is given twice ({key}={first} and {key}={value})");
        }
    }
    Ok(map)
}

/// The node id of a StatefulSet pod `NAME-ORDINAL`: ORDINAL + 1.
fn node_id_of_pod(name: &str) -> anyhow::Result<u64> {
    let ordinal = name
        .rsplit_once('-')
        .and_then(|(set, ordinal)| (!set.is_empty()).then_some(ordinal))
        .and_then(|ordinal| ordinal.parse::<u64>().ok())
        .ok_or_else(|| {
            anyhow!(
                "--pod-name {name:?} is not a StatefulSet pod name (NAME-ORDINAL, e.g. kairos-0)"
            )
        })?;
    ordinal
        .checked_add(1)
        .ok_or_else(|| anyhow!("--pod-name {name:?}: the ordinal is too large"))
}

fn peer_map(peers: Vec<(u64, String)>) -> anyhow::Result<BTreeMap<u64, String>> {
    let mut map = BTreeMap::new();
    for (id, addr) in peers {
        if let Some(first) = map.insert(id, addr.clone()) {
            bail!("--peers names node {id} twice ({first} and {addr})");
        }
    }
    Ok(map)
}

/// The scheduler library's own rules ([`kairos_scheduler::Config::validate`]), shown
/// as `--FLAG REASON`.
fn validated(config: &kairos_scheduler::Config) -> anyhow::Result<()> {
    config.validate().map_err(|e| match e {
        kairos_scheduler::Error::InvalidArgument { field, reason } => {
            anyhow!("--{field} {reason}")
        }
        other => anyhow!("{other}"),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::net::SocketAddr;
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Command};

    /// Environment variables a test child process sets, and which [`env_child`] checks.
    const CHILD_MARKER: &str = "KAIROS_CLI_TEST_ENV_CHILD";

    fn config_file(text: &str) -> anyhow::Result<tempfile::NamedTempFile> {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile()?;
        file.write_all(text.as_bytes())?;
        Ok(file)
    }

    fn scheduler_from(argv: &[&str]) -> anyhow::Result<SchedulerSettings> {
        let cli = Cli::try_parse_from(argv)?;
        let Command::Scheduler(args) = cli.command else {
            bail!("not a scheduler command line");
        };
        scheduler(&args, &cli.global)
    }

    fn executor_from(argv: &[&str]) -> anyhow::Result<ExecutorSettings> {
        let cli = Cli::try_parse_from(argv)?;
        let Command::Executor(args) = cli.command else {
            bail!("not an executor command line");
        };
        executor(&args, &cli.global)
    }

    fn dev_from(argv: &[&str]) -> anyhow::Result<DevSettings> {
        let cli = Cli::try_parse_from(argv)?;
        let Command::Dev(args) = cli.command else {
            bail!("not a dev command line");
        };
        dev(&args, &cli.global)
    }

    fn addr(s: &str) -> anyhow::Result<SocketAddr> {
        Ok(s.parse()?)
    }

    const SCHEDULER_TOML: &str = r#"
node-id = 2
data_dir = "/from/file"
grpc-addr = "127.0.0.1:9100"
http-addr = "127.0.0.1:9200"
tick-interval = "20ms"
peers = { 1 = "10.0.0.1:7070", 2 = "10.0.0.2:7070" }
log-format = "json"
"#;

    #[test]
    fn the_file_fills_in_what_flags_leave_out_and_flags_win() -> anyhow::Result<()> {
        let file = config_file(SCHEDULER_TOML)?;
        let path = file.path().to_string_lossy().to_string();
        let settings = scheduler_from(&[
            "kairos",
            "scheduler",
            "--insecure",
            "--config",
            &path,
            "--data-dir",
            "/from/flag",
            "--http-addr",
            "127.0.0.1:9300",
        ])?;
        let config = settings.config;
        assert_eq!(config.node_id, 2, "from the file");
        assert_eq!(
            config.data_dir,
            PathBuf::from("/from/flag"),
            "flag beats file"
        );
        assert_eq!(config.grpc_addr, addr("127.0.0.1:9100")?, "from the file");
        assert_eq!(config.http_addr, addr("127.0.0.1:9300")?, "flag beats file");
        assert_eq!(config.tick_interval, Duration::from_millis(20));
        assert_eq!(
            config.election_ticks,
            kairos_scheduler::Config::new(1, PathBuf::new()).election_ticks,
            "default"
        );
        assert_eq!(config.peers.len(), 2);
        assert_eq!(settings.log_format, LogFormat::Json);
        Ok(())
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() -> anyhow::Result<()> {
        let settings = dev_from(&["kairos", "dev"])?;
        assert_eq!(settings.scheduler.node_id, DEV_NODE_ID);
        assert_eq!(settings.scheduler.data_dir, PathBuf::from(DEV_DATA_DIR));
        assert_eq!(settings.scheduler.grpc_addr, addr("127.0.0.1:7070")?);
        assert_eq!(settings.executor.id, DEV_EXECUTOR_ID);
        assert_eq!(settings.executor.capacity, 16);
        assert_eq!(
            settings.executor.tags,
            BTreeMap::from([("server".to_string(), "true".to_string())]),
            "the embedded executor is a server, as Dkron's documented jobs expect"
        );
        assert_eq!(settings.log_format, LogFormat::Text);
        Ok(())
    }

    #[test]
    fn a_list_flag_replaces_the_files_list() -> anyhow::Result<()> {
        let file = config_file(
            "schedulers = [\"a:1\", \"b:2\"]\nid = \"w1\"\ntag = { role = \"web\", zone = \"a\" }\n",
        )?;
        let path = file.path().to_string_lossy().to_string();
        let from_file = executor_from(&["kairos", "executor", "--insecure", "--config", &path])?;
        assert_eq!(from_file.config.schedulers, ["a:1", "b:2"]);
        assert_eq!(from_file.config.tags.len(), 2);
        let flagged = executor_from(&[
            "kairos",
            "executor",
            "--insecure",
            "--config",
            &path,
            "--tag",
            "role=db",
        ])?;
        assert_eq!(
            flagged.config.tags,
            BTreeMap::from([("role".to_string(), "db".to_string())])
        );
        Ok(())
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() -> anyhow::Result<()> {
        let file = config_file("node-id = 1\ndata-dir = \"d\"\ncapacity = 4\n")?;
        let path = file.path().to_string_lossy().to_string();
        let err = scheduler_from(&["kairos", "scheduler", "--insecure", "--config", &path])
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(err.contains("unknown key `capacity`"), "{err}");
        Ok(())
    }

    #[test]
    fn a_bad_file_value_fails_even_when_a_flag_overrides_it() -> anyhow::Result<()> {
        let file = config_file("node-id = \"x\"\n")?;
        let path = file.path().to_string_lossy().to_string();
        let result = scheduler_from(&[
            "kairos",
            "scheduler",
            "--insecure",
            "--config",
            &path,
            "--node-id",
            "1",
            "--data-dir",
            "d",
        ]);
        assert!(result.is_err());
        Ok(())
    }

    #[test]
    fn cross_field_rules() {
        let err = |argv: &[&str]| {
            scheduler_from(argv)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            err(&["kairos", "scheduler", "--insecure", "--data-dir", "d"])
                .contains("missing --node-id")
        );
        assert!(
            err(&[
                "kairos",
                "scheduler",
                "--insecure",
                "--node-id",
                "3",
                "--data-dir",
                "d",
                "--peers",
                "1=a:1,2=b:2"
            ])
            .contains("must include this node")
        );
        assert!(
            err(&[
                "kairos",
                "scheduler",
                "--insecure",
                "--node-id",
                "1",
                "--data-dir",
                "d",
                "--peers",
                "1=a:1,1=b:2"
            ])
            .contains("twice")
        );
        assert!(
            err(&[
                "kairos",
                "scheduler",
                "--insecure",
                "--node-id",
                "1",
                "--data-dir",
                "d",
                "--election-ticks",
                "2"
            ])
            .contains("--election-ticks")
        );
        let executor_err = executor_from(&["kairos", "executor", "--insecure", "--id", "w"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            executor_err.contains("missing --schedulers"),
            "{executor_err}"
        );
        let dup = executor_from(&[
            "kairos",
            "executor",
            "--insecure",
            "--schedulers",
            "a:1",
            "--id",
            "w",
            "--tag",
            "a=1,a=2",
        ]);
        assert!(dup.is_err());
    }

    #[test]
    fn history_cap_and_webhooks_come_from_flag_file_or_default() -> anyhow::Result<()> {
        let defaults = scheduler_from(&[
            "kairos",
            "scheduler",
            "--insecure",
            "--node-id",
            "1",
            "--data-dir",
            "d",
        ])?;
        assert_eq!(defaults.config.max_executions, 1_000_000);
        assert!(defaults.config.notify.is_empty());

        let file = config_file(
            "node-id = 1\ndata-dir = \"d\"\nmax-executions = 5000\nnotify = [\"https://a.example/hook\", \"http://b.example:8080/x\"]\n",
        )?;
        let path = file.path().to_string_lossy().to_string();
        let from_file = scheduler_from(&["kairos", "scheduler", "--insecure", "--config", &path])?;
        assert_eq!(from_file.config.max_executions, 5000);
        assert_eq!(
            from_file.config.notify,
            ["https://a.example/hook", "http://b.example:8080/x"]
        );

        let flagged = scheduler_from(&[
            "kairos",
            "scheduler",
            "--insecure",
            "--config",
            &path,
            "--max-executions",
            "0",
            "--notify",
            "https://c.example/1,https://c.example/2",
            "--notify",
            "https://c.example/3",
        ])?;
        assert_eq!(
            flagged.config.max_executions, 0,
            "flag beats file; 0 = no cap"
        );
        assert_eq!(
            flagged.config.notify,
            [
                "https://c.example/1",
                "https://c.example/2",
                "https://c.example/3"
            ],
            "the flag's list replaces the file's"
        );

        let dev = dev_from(&[
            "kairos",
            "dev",
            "--max-executions",
            "20",
            "--notify",
            "http://127.0.0.1:9000/hook",
        ])?;
        assert_eq!(dev.scheduler.max_executions, 20);
        assert_eq!(dev.scheduler.notify, ["http://127.0.0.1:9000/hook"]);
        assert_eq!(
            dev_from(&["kairos", "dev"])?.scheduler.max_executions,
            1_000_000
        );
        Ok(())
    }

    #[test]
    fn bad_webhooks_and_history_caps_are_refused_naming_the_flag() -> anyhow::Result<()> {
        let err = |argv: &[&str], dev: bool| {
            let result = if dev {
                dev_from(argv).map(|_| ())
            } else {
                scheduler_from(argv).map(|_| ())
            };
            result.err().map(|e| format!("{e:#}")).unwrap_or_default()
        };
        let base = [
            "kairos",
            "scheduler",
            "--insecure",
            "--node-id",
            "1",
            "--data-dir",
            "d",
        ];
        let with = |extra: &[&'static str]| -> Vec<&'static str> {
            base.iter().chain(extra).copied().collect()
        };
        let message = err(&with(&["--notify", "ftp://a.example/x"]), false);
        assert!(
            message.contains("--notify <URL>") && message.contains("not http or https"),
            "{message}"
        );
        let message = err(&["kairos", "dev", "--notify", "hooks.example.com"], true);
        assert!(message.contains("--notify <URL>"), "{message}");
        let message = err(&with(&["--max-executions", "lots"]), false);
        assert!(message.contains("--max-executions <N>"), "{message}");
        let message = err(
            &with(&["--notify", "https://a.example/x,https://a.example/x"]),
            false,
        );
        assert!(
            message.contains("--notify lists https://a.example/x twice"),
            "{message}"
        );

        let file = config_file("notify = [\"https://ok.example\", \"mailto:ops@example.com\"]\n")?;
        let path = file.path().to_string_lossy().to_string();
        let message = err(
            &[
                "kairos",
                "scheduler",
                "--insecure",
                "--node-id",
                "1",
                "--data-dir",
                "d",
                "--config",
                &path,
            ],
            false,
        );
        assert!(
            message.contains("`notify`"),
            "the file's key is named: {message}"
        );
        let message = err(&["kairos", "dev", "--config", &path], true);
        assert!(message.contains("`notify`"), "{message}");
        Ok(())
    }

    #[test]
    fn a_server_runs_with_tls_or_says_insecure() -> anyhow::Result<()> {
        let err =
            |result: anyhow::Result<()>| result.err().map(|e| format!("{e:#}")).unwrap_or_default();
        let plain =
            err(
                scheduler_from(&["kairos", "scheduler", "--node-id", "1", "--data-dir", "d"])
                    .map(|_| ()),
            );
        assert!(plain.starts_with("--tls-cert is required"), "{plain}");
        assert!(
            plain.contains("--insecure"),
            "the way out is named: {plain}"
        );
        let plain = err(
            executor_from(&["kairos", "executor", "--schedulers", "a:1", "--id", "w"]).map(|_| ()),
        );
        assert!(plain.contains("--tls-ca is required"), "{plain}");

        let tls = scheduler_from(&[
            "kairos",
            "--tls-ca",
            "/pki/ca.crt",
            "--tls-cert",
            "/pki/s1.crt",
            "--tls-key",
            "/pki/s1.key",
            "scheduler",
            "--node-id",
            "1",
            "--data-dir",
            "d",
        ])?;
        let files = tls.config.tls.ok_or_else(|| anyhow!("no TLS files"))?;
        assert_eq!(files.ca, PathBuf::from("/pki/ca.crt"));
        assert_eq!(files.cert, Some(PathBuf::from("/pki/s1.crt")));
        assert!(!tls.config.insecure);

        let both = err(scheduler_from(&[
            "kairos",
            "--tls-ca",
            "c",
            "--tls-cert",
            "s",
            "--tls-key",
            "k",
            "scheduler",
            "--insecure",
            "--node-id",
            "1",
            "--data-dir",
            "d",
        ])
        .map(|_| ()));
        assert!(both.contains("exclude each other"), "{both}");
        let half = err(scheduler_from(&[
            "kairos",
            "--tls-ca",
            "c",
            "--tls-cert",
            "s",
            "scheduler",
            "--node-id",
            "1",
            "--data-dir",
            "d",
        ])
        .map(|_| ()));
        assert!(
            half.contains("--tls-cert and --tls-key go together"),
            "{half}"
        );
        let no_ca = err(executor_from(&[
            "kairos",
            "--tls-cert",
            "e.crt",
            "--tls-key",
            "e.key",
            "executor",
            "--schedulers",
            "a:1",
            "--id",
            "w",
        ])
        .map(|_| ()));
        assert!(no_ca.contains("--tls-ca is missing"), "{no_ca}");
        let token_on_scheduler = err(scheduler_from(&[
            "kairos",
            "--token",
            "kairos_x_y",
            "scheduler",
            "--insecure",
            "--node-id",
            "1",
            "--data-dir",
            "d",
        ])
        .map(|_| ()));
        assert!(
            token_on_scheduler.contains("--token is for client commands"),
            "{token_on_scheduler}"
        );
        Ok(())
    }

    #[test]
    fn an_executor_takes_a_token_or_a_certificate_from_flags_or_the_file() -> anyhow::Result<()> {
        let file = config_file(
            "schedulers = \"a:1\"\nid = \"w1\"\ntls-ca = \"/pki/ca.crt\"\ntoken = \"kairos_0123_abcd\"\n",
        )?;
        let path = file.path().to_string_lossy().to_string();
        let settings = executor_from(&["kairos", "executor", "--config", &path])?;
        assert_eq!(settings.config.token.as_deref(), Some("kairos_0123_abcd"));
        assert_eq!(
            settings.config.tls.map(|t| t.ca),
            Some(PathBuf::from("/pki/ca.crt"))
        );
        let flagged = executor_from(&[
            "kairos",
            "--token",
            "kairos_9_9",
            "executor",
            "--config",
            &path,
        ])?;
        assert_eq!(
            flagged.config.token.as_deref(),
            Some("kairos_9_9"),
            "flag beats file"
        );

        let file = config_file("schedulers = \"a:1\"\nid = \"w1\"\ntls-ca = \"/pki/ca.crt\"\n")?;
        let path = file.path().to_string_lossy().to_string();
        let nothing = executor_from(&["kairos", "executor", "--config", &path])
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(
            nothing.contains("a certificate") && nothing.contains("--token"),
            "{nothing}"
        );
        Ok(())
    }

    #[test]
    fn dev_is_open_on_loopback_only() -> anyhow::Result<()> {
        let settings = dev_from(&["kairos", "dev"])?;
        assert!(settings.scheduler.insecure && settings.scheduler.loopback_only);
        assert!(settings.executor.insecure);
        let wide = dev_from(&["kairos", "dev", "--grpc-addr", "0.0.0.0:7070"])
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(
            wide.contains("--grpc-addr") && wide.contains("loopback"),
            "{wide}"
        );
        let tls = dev_from(&["kairos", "--tls-ca", "ca.crt", "dev"])
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default();
        assert!(tls.contains("runs in the clear on loopback only"), "{tls}");
        Ok(())
    }

    #[test]
    fn config_keys_are_the_flags() {
        let keys = config_keys::<SchedulerArgs>();
        for key in [
            "node-id",
            "data-dir",
            "grpc-addr",
            "http-addr",
            "peers",
            "addr-file",
            "max-executions",
            "notify",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
        assert!(!keys.iter().any(|k| k == "config"));
        let keys = config_keys::<ExecutorArgs>();
        assert!(keys.iter().any(|k| k == "tag"));
        assert!(keys.iter().any(|k| k == "log-format"));
    }

    /// Runs [`env_child`] in a child process with `KAIROS_*` set, since a test must
    /// not change its own process's environment.
    #[test]
    fn environment_sits_between_flags_and_the_file() -> anyhow::Result<()> {
        let file = config_file(
            "node-id = 2\ndata-dir = \"/from/file\"\ngrpc-addr = \"127.0.0.1:9100\"\nhttp-addr = \"127.0.0.1:9200\"\nmax-executions = 10\nnotify = \"https://file.example/hook\"\n",
        )?;
        let output = std::process::Command::new(std::env::current_exe()?)
            .args([
                "settings::tests::env_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_MARKER, file.path())
            .env("KAIROS_NODE_ID", "5")
            .env("KAIROS_GRPC_ADDR", "127.0.0.1:9101")
            .env("KAIROS_HTTP_ADDR", "127.0.0.1:9201")
            .env("KAIROS_PEERS", "5=10.0.0.5:7070,6=10.0.0.6:7070")
            .env("KAIROS_MAX_EXECUTIONS", "30")
            .env(
                "KAIROS_NOTIFY",
                "https://env.example/a,https://env.example/b",
            )
            .env_remove("KAIROS_DATA_DIR")
            .output()?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
        assert!(
            stdout.contains("1 passed"),
            "the child test did not run:\n{stdout}"
        );
        Ok(())
    }

    #[test]
    #[ignore = "run by environment_sits_between_flags_and_the_file, which sets its environment"]
    fn env_child() -> anyhow::Result<()> {
        let path = std::env::var(CHILD_MARKER)?;
        let settings = scheduler_from(&[
            "kairos",
            "scheduler",
            "--insecure",
            "--config",
            &path,
            "--http-addr",
            "127.0.0.1:9302",
        ])?;
        let config = settings.config;
        assert_eq!(config.node_id, 5, "environment beats file");
        assert_eq!(
            config.data_dir,
            PathBuf::from("/from/file"),
            "file beats default"
        );
        assert_eq!(
            config.grpc_addr,
            addr("127.0.0.1:9101")?,
            "environment beats file"
        );
        assert_eq!(
            config.http_addr,
            addr("127.0.0.1:9302")?,
            "flag beats environment"
        );
        assert_eq!(config.peers.keys().copied().collect::<Vec<_>>(), [5, 6]);
        assert_eq!(config.max_executions, 30, "environment beats file");
        assert_eq!(
            config.notify,
            ["https://env.example/a", "https://env.example/b"],
            "environment beats file"
        );
        let flagged = scheduler_from(&[
            "kairos",
            "scheduler",
            "--insecure",
            "--config",
            &path,
            "--max-executions",
            "40",
            "--notify",
            "https://flag.example/hook",
        ])?;
        assert_eq!(flagged.config.max_executions, 40, "flag beats environment");
        assert_eq!(flagged.config.notify, ["https://flag.example/hook"]);
        Ok(())
    }
}
