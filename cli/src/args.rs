//! The command tree, as clap derive structs.
//!
//! ```text
//! kairos [--endpoint URL] [-o table|json|yaml] [--log-format text|json]
//!   dev        one-node scheduler group plus a local executor, in one process
//!   scheduler  one node of a scheduler group
//!   executor   an agent that runs jobs
//!   job        apply | diff | get | list | delete | run | pause | resume | preview | backfill
//!   exec       list | get | logs | cancel
//!   cluster    status | add-scheduler | remove-scheduler | transfer-leader
//!   executors  the connected executors
//! ```
//!
//! Role flags are all `Option` (or an empty `Vec`) and carry no clap default: clap
//! fills them from the command line or from `KAIROS_<FLAG>`, and
//! [`crate::settings`] falls back to the `--config` file and then to the default, so
//! the precedence flag > environment > file > default holds for every flag. The
//! defaults are therefore written in the help text, not in `default_value`.
//!
//! Parsing of individual values (addresses, durations, `KEY=VALUE` pairs) lives in
//! [`crate::settings::values`], so a flag, an environment variable and a config-file
//! entry are held to the same rules. Nothing here talks to the network or reads files.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

use crate::logging::LogFormat;
use crate::output::OutputFormat;
use crate::settings::values;

/// The scheduler a client command talks to when `--endpoint` is not given.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7070";

/// Kairos: a distributed cron service.
#[derive(Debug, Parser)]
#[command(
    name = "kairos",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Scheduler gRPC endpoint for client commands (URL or HOST:PORT).
    #[arg(
        long,
        global = true,
        env = "KAIROS_ENDPOINT",
        default_value = DEFAULT_ENDPOINT,
        value_name = "URL",
        help_heading = GLOBAL_HEADING
    )]
    pub endpoint: String,

    /// Output of client commands: a table for people, or the gRPC response as proto3
    /// JSON (what grpcurl prints) or YAML for scripts.
    #[arg(
        short = 'o',
        long,
        global = true,
        value_enum,
        default_value_t = OutputFormat::Table,
        value_name = "FORMAT",
        help_heading = GLOBAL_HEADING
    )]
    pub output: OutputFormat,

    /// The CA certificate(s) (PEM) that signed the schedulers' certificates: with it,
    /// every connection is TLS. Client commands, executors and schedulers alike.
    #[arg(long, global = true, env = "KAIROS_TLS_CA", value_name = "FILE", help_heading = GLOBAL_HEADING)]
    pub tls_ca: Option<PathBuf>,

    /// This process's own certificate (PEM): a scheduler's, an executor's, or a
    /// person's or tool's client certificate (which then needs no token).
    #[arg(long, global = true, env = "KAIROS_TLS_CERT", value_name = "FILE", help_heading = GLOBAL_HEADING)]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM).
    #[arg(long, global = true, env = "KAIROS_TLS_KEY", value_name = "FILE", help_heading = GLOBAL_HEADING)]
    pub tls_key: Option<PathBuf>,

    /// A bearer token (`kairos token create`) for client commands and executors.
    #[arg(long, global = true, env = "KAIROS_TOKEN", hide_env_values = true, value_name = "TOKEN", value_parser = values::token, help_heading = GLOBAL_HEADING)]
    pub token: Option<String>,

    /// Log lines on stderr as text or JSON [default: text]; RUST_LOG sets the level.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "KAIROS_LOG_FORMAT",
        value_name = "FORMAT",
        help_heading = GLOBAL_HEADING
    )]
    pub log_format: Option<LogFormat>,
}

/// Where the flags every subcommand accepts are listed in `--help`.
const GLOBAL_HEADING: &str = "Global options";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a one-node scheduler group and one local executor in this process.
    Dev(DevArgs),
    /// Run one scheduler node.
    Scheduler(SchedulerArgs),
    /// Run an executor agent that dials the scheduler group and runs jobs.
    Executor(ExecutorArgs),
    /// Create, inspect, run and pause jobs.
    Job {
        #[command(subcommand)]
        command: JobCommand,
    },
    /// Inspect, follow and cancel executions.
    Exec {
        #[command(subcommand)]
        command: ExecCommand,
    },
    /// Inspect and change the scheduler group.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// List the connected executors.
    Executors,
    /// Create, list and revoke bearer tokens (admin).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Copy a Dkron cluster's jobs into Kairos (see docs/dkron.md).
    Import(ImportArgs),
    /// Make a CA and certificates for a test or small group.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

/// `kairos import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Dkron's job export: its URL (`http://dkron:8080` means its /v1/jobs), a file
    /// holding `GET /v1/jobs`'s answer, or `-` for stdin.
    #[arg(long = "from-dkron", value_name = "URL|FILE")]
    pub from_dkron: String,
    /// Check every job and say what would be created or updated; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token; it is printed once and never again.
    Create {
        /// Who or what holds it (shown in audit lines): `ci-deploy`, `alice`.
        name: String,
        /// admin, operator, viewer or executor.
        #[arg(long)]
        role: String,
    },
    /// List the tokens (ids, names, roles; never secrets).
    List,
    /// Revoke a token: refused everywhere once the revocation commits.
    Revoke {
        /// The token's id (the part after `kairos_`, as `token list` shows).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Make a new CA in DIR and certificates signed by it.
    ///
    /// Writes ca.crt and ca.key (keep the key off the nodes), scheduler-ID.crt/.key
    /// for each --scheduler, executor-NAME.crt/.key for each --executor, and
    /// ROLE-NAME.crt/.key for each --client. Scheduler certificates are valid for
    /// every --host (default: localhost and 127.0.0.1).
    Init {
        /// Where to write the files (refused if it holds a CA already).
        dir: PathBuf,
        /// Scheduler node ids, comma-separated or repeated [default: 1,2,3].
        #[arg(long = "scheduler", value_name = "ID", value_delimiter = ',')]
        schedulers: Vec<u64>,
        /// Host names and addresses the schedulers are reached at; repeat.
        #[arg(long = "host", value_name = "HOST", value_delimiter = ',')]
        hosts: Vec<String>,
        /// Executor names; repeat.
        #[arg(long = "executor", value_name = "NAME", value_delimiter = ',')]
        executors: Vec<String>,
        /// People and tools: ROLE=NAME (admin, operator, viewer); repeat
        /// [default: admin=admin].
        #[arg(long = "client", value_name = "ROLE=NAME", value_delimiter = ',')]
        clients: Vec<String>,
    },
    /// Sign one more certificate with the CA in DIR (or sign a new one for a name
    /// already there: a rotation).
    Issue {
        /// The directory holding ca.crt and ca.key.
        dir: PathBuf,
        /// scheduler, executor, admin, operator or viewer.
        #[arg(long)]
        role: String,
        /// The holder's name: a scheduler's node id, an executor's id, a person.
        /// `PREFIX*` makes an executor pool certificate (written as
        /// executor-pool-PREFIX.crt) that registers any executor named PREFIX….
        #[arg(long)]
        name: String,
        /// Host names and addresses a scheduler certificate is valid for; repeat.
        #[arg(long = "host", value_name = "HOST", value_delimiter = ',')]
        hosts: Vec<String>,
    },
}

/// `kairos dev`: everything on one machine, for trying Kairos out and for tests.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// TOML file with defaults for these flags (keys are the flag names).
    #[arg(long, env = "KAIROS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Where the scheduler keeps its data [default: ./kairos-data].
    #[arg(long, env = "KAIROS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// gRPC listen address; port 0 picks a free port [default: 127.0.0.1:7070].
    #[arg(long, env = "KAIROS_GRPC_ADDR", value_name = "HOST:PORT", value_parser = values::listen_addr)]
    pub grpc_addr: Option<SocketAddr>,

    /// HTTP listen address (web UI, /metrics) [default: 127.0.0.1:8080].
    #[arg(long, env = "KAIROS_HTTP_ADDR", value_name = "HOST:PORT", value_parser = values::listen_addr)]
    pub http_addr: Option<SocketAddr>,

    /// The path the web UI is served under by a reverse proxy (e.g. /kairos); pages
    /// use relative links and work under any prefix, this scopes the sign-in
    /// cookie [default: /].
    #[arg(long, env = "KAIROS_HTTP_BASE_PATH", value_name = "PATH")]
    pub http_base_path: Option<String>,

    /// Write the bound addresses here once listening (`grpc=...` and `http=...` lines).
    #[arg(long, env = "KAIROS_ADDR_FILE", value_name = "PATH")]
    pub addr_file: Option<PathBuf>,

    /// Name of the local executor [default: local].
    #[arg(long, env = "KAIROS_EXECUTOR_ID", value_name = "NAME")]
    pub executor_id: Option<String>,

    /// Tag of the local executor; repeat for several (KAIROS_TAG: comma-separated).
    #[arg(
        long = "tag",
        env = "KAIROS_TAG",
        value_name = "KEY=VALUE",
        value_delimiter = ',',
        value_parser = values::tag
    )]
    pub tags: Vec<(String, String)>,

    /// Runs the local executor takes at once [default: 16].
    #[arg(long, env = "KAIROS_CAPACITY", value_name = "N")]
    pub capacity: Option<u32>,

    /// Time between SIGTERM and SIGKILL for a timed-out or cancelled run [default: 2s].
    #[arg(long, env = "KAIROS_KILL_GRACE", value_name = "DURATION", value_parser = values::duration)]
    pub kill_grace: Option<Duration>,

    /// On Ctrl-C or SIGTERM, how long running jobs may go on before they are killed
    /// (and recorded failed) [default: 20s].
    #[arg(long, env = "KAIROS_SHUTDOWN_GRACE", value_name = "DURATION", value_parser = values::duration)]
    pub shutdown_grace: Option<Duration>,

    /// Executions kept across all jobs; beyond it the oldest finished ones are
    /// dropped, whatever each job's `history.keep`; 0 = no global cap
    /// [default: 1000000].
    #[arg(long, env = "KAIROS_MAX_EXECUTIONS", value_name = "N")]
    pub max_executions: Option<u64>,

    /// Webhook (http or https URL) told about every job's successes and failures,
    /// besides each job's own `notify`; repeat for several (KAIROS_NOTIFY:
    /// comma-separated).
    #[arg(
        long = "notify",
        env = "KAIROS_NOTIFY",
        value_name = "URL",
        value_delimiter = ',',
        value_parser = values::webhook_url
    )]
    pub notify: Vec<String>,
}

/// `kairos scheduler`: one node of the raft group.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// TOML file with defaults for these flags (keys are the flag names).
    #[arg(long, env = "KAIROS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// This node's raft id: non-zero and unique in the group (required, unless
    /// --pod-name gives it).
    #[arg(long, env = "KAIROS_NODE_ID", value_name = "N")]
    pub node_id: Option<u64>,

    /// The name of this node's Kubernetes StatefulSet pod, `NAME-ORDINAL`: the node
    /// id is then ORDINAL + 1 (pod `kairos-0` is node 1).
    #[arg(long, env = "KAIROS_POD_NAME", value_name = "NAME")]
    pub pod_name: Option<String>,

    /// Where the raft log and the state machine are kept (required).
    #[arg(long, env = "KAIROS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// gRPC listen address (API, executors, raft); port 0 picks a free port
    /// [default: 127.0.0.1:7070].
    #[arg(long, env = "KAIROS_GRPC_ADDR", value_name = "HOST:PORT", value_parser = values::listen_addr)]
    pub grpc_addr: Option<SocketAddr>,

    /// HTTP listen address (web UI, /metrics, JSON API) [default: 127.0.0.1:8080].
    #[arg(long, env = "KAIROS_HTTP_ADDR", value_name = "HOST:PORT", value_parser = values::listen_addr)]
    pub http_addr: Option<SocketAddr>,

    /// The path the web UI is served under by a reverse proxy (e.g. /kairos); pages
    /// use relative links and work under any prefix, this scopes the sign-in
    /// cookie [default: /].
    #[arg(long, env = "KAIROS_HTTP_BASE_PATH", value_name = "PATH")]
    pub http_base_path: Option<String>,

    /// The group's voters, this node included: ID=HOST:PORT, comma-separated or
    /// repeated. A node with an empty data dir bootstraps a new group with them once
    /// every one of them answers as new too, or, when they already run a group, asks
    /// its leader to admit it. Omitted: a single-node group.
    #[arg(
        long,
        env = "KAIROS_PEERS",
        value_name = "ID=HOST:PORT,...",
        value_delimiter = ',',
        value_parser = values::peer
    )]
    pub peers: Vec<(u64, String)>,

    /// Write the bound addresses here once listening (`grpc=...` and `http=...` lines).
    #[arg(long, env = "KAIROS_ADDR_FILE", value_name = "PATH")]
    pub addr_file: Option<PathBuf>,

    /// Raft's clock period [default: 50ms].
    #[arg(long, env = "KAIROS_TICK_INTERVAL", value_name = "DURATION", value_parser = values::duration)]
    pub tick_interval: Option<Duration>,

    /// Ticks without a leader heartbeat before a follower campaigns; each election
    /// timeout is drawn from [N, 2N) ticks [default: 10].
    #[arg(long, env = "KAIROS_ELECTION_TICKS", value_name = "N")]
    pub election_ticks: Option<usize>,

    /// Ticks between leader heartbeats [default: 2].
    #[arg(long, env = "KAIROS_HEARTBEAT_TICKS", value_name = "N")]
    pub heartbeat_ticks: Option<usize>,

    /// Start with no membership and wait to be admitted with
    /// `kairos cluster add-scheduler ID ADDR` (for growing an existing group).
    #[arg(long, env = "KAIROS_JOIN")]
    pub join: bool,

    /// The gRPC address peers and executors use for this node [default: its entry in
    /// --peers, else the bound --grpc-addr].
    #[arg(long, env = "KAIROS_ADVERTISE_ADDR", value_name = "HOST:PORT")]
    pub advertise_addr: Option<String>,

    /// Run without TLS and without authentication: anyone who reaches the ports may
    /// do anything. Required when --tls-cert is not given.
    #[arg(long, env = "KAIROS_INSECURE")]
    pub insecure: bool,

    /// Writes per second each caller may make, 0 for no limit [default: 200].
    #[arg(long, env = "KAIROS_WRITE_RATE", value_name = "N", value_parser = values::limit)]
    pub write_rate: Option<f64>,

    /// Writes a caller may make at once above --write-rate [default: 400].
    #[arg(long, env = "KAIROS_WRITE_BURST", value_name = "N", value_parser = values::limit)]
    pub write_burst: Option<f64>,

    /// Serve /metrics without credentials (for a scraper without a token).
    #[arg(long, env = "KAIROS_METRICS_OPEN")]
    pub metrics_open: bool,

    /// Compact the raft log every N applied entries; a new or lagging node then
    /// catches up by snapshot [default: 10000].
    #[arg(long, env = "KAIROS_SNAPSHOT_INTERVAL", value_name = "N")]
    pub snapshot_interval: Option<u64>,

    /// Executions kept across all jobs; beyond it the oldest finished ones are
    /// dropped, whatever each job's `history.keep`; 0 = no global cap
    /// [default: 1000000].
    #[arg(long, env = "KAIROS_MAX_EXECUTIONS", value_name = "N")]
    pub max_executions: Option<u64>,

    /// Webhook (http or https URL) told about every job's successes and failures,
    /// besides each job's own `notify`; repeat for several (KAIROS_NOTIFY:
    /// comma-separated).
    #[arg(
        long = "notify",
        env = "KAIROS_NOTIFY",
        value_name = "URL",
        value_delimiter = ',',
        value_parser = values::webhook_url
    )]
    pub notify: Vec<String>,
}

/// `kairos executor`: a stateless agent.
#[derive(Debug, Args)]
pub struct ExecutorArgs {
    /// TOML file with defaults for these flags (keys are the flag names).
    #[arg(long, env = "KAIROS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Scheduler gRPC addresses, any member of the group (required).
    #[arg(
        long,
        env = "KAIROS_SCHEDULERS",
        value_name = "HOST:PORT,...",
        value_delimiter = ','
    )]
    pub schedulers: Vec<String>,

    /// This executor's name, as job targets and operators see it (required).
    #[arg(long, env = "KAIROS_ID", value_name = "NAME")]
    pub id: Option<String>,

    /// A tag job selectors can match; repeat for several (KAIROS_TAG: comma-separated).
    #[arg(
        long = "tag",
        env = "KAIROS_TAG",
        value_name = "KEY=VALUE",
        value_delimiter = ',',
        value_parser = values::tag
    )]
    pub tags: Vec<(String, String)>,

    /// Runs taken at once [default: 16].
    #[arg(long, env = "KAIROS_CAPACITY", value_name = "N")]
    pub capacity: Option<u32>,

    /// Time between SIGTERM and SIGKILL for a timed-out or cancelled run [default: 2s].
    #[arg(long, env = "KAIROS_KILL_GRACE", value_name = "DURATION", value_parser = values::duration)]
    pub kill_grace: Option<Duration>,

    /// On SIGTERM, how long the runs this executor holds may go on (it takes nothing
    /// new meanwhile) before they are killed and recorded failed [default: 20s].
    #[arg(long, env = "KAIROS_SHUTDOWN_GRACE", value_name = "DURATION", value_parser = values::duration)]
    pub shutdown_grace: Option<Duration>,

    /// Dial the schedulers in the clear, with no credentials (they must run
    /// --insecure too). Required when --tls-ca is not given.
    #[arg(long, env = "KAIROS_INSECURE")]
    pub insecure: bool,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Create or update the jobs in a YAML or JSON file.
    Apply {
        /// File with one job, several YAML documents, or a list; `-` reads stdin.
        #[arg(
            short = 'f',
            long = "file",
            visible_alias = "filename",
            value_name = "FILE"
        )]
        file: String,
    },
    /// Show what `apply -f FILE` would change, without changing anything
    ///
    /// Each job in the file is checked and normalized as the server would (defaults
    /// written out), then compared with the stored job, output-only fields left out.
    /// Per job, one of:
    ///
    ///   job/NAME unchanged
    ///   job/NAME would be created    then the whole document, each line `+ `
    ///   job/NAME                     then the document as a line diff: `- ` stored,
    ///                                `+ ` from the file, two spaces for the same
    ///
    /// The exit code is 0 whether or not anything differs; it is non-zero only for
    /// an error (an unreadable file, a job the server would refuse, no connection).
    #[command(verbatim_doc_comment)]
    Diff {
        /// File with one job, several YAML documents, or a list; `-` reads stdin.
        #[arg(
            short = 'f',
            long = "file",
            visible_alias = "filename",
            value_name = "FILE"
        )]
        file: String,
    },
    /// Show one job.
    Get {
        /// The job's name.
        name: String,
    },
    /// List every job, or those whose metadata matches a selector.
    List {
        /// Only jobs whose metadata matches this selector, e.g.
        /// `team=billing,tier in (1,2)` (the grammar of executor selectors).
        #[arg(long, value_name = "SELECTOR")]
        filter: Option<String>,
    },
    /// Delete a job (its history goes with it).
    Delete {
        /// The job's name.
        name: String,
        /// Also delete the jobs that depend on it (their dependents too); without
        /// it, a job with dependents is not deleted.
        #[arg(long)]
        cascade: bool,
    },
    /// Start a run now, whatever the schedule says.
    Run {
        /// The job's name.
        name: String,
        /// Wait until the run (and its retries) end; exit non-zero unless it succeeded.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after this long (the run goes on).
        #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = values::duration, requires = "wait")]
        timeout: Duration,
    },
    /// Stop firing a job until it is resumed.
    Pause {
        /// The job's name.
        name: String,
        /// Why, shown in `job get`.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Resume a paused job.
    Resume {
        /// The job's name.
        name: String,
    },
    /// Show the instants a stored job, or one in a file, would fire at.
    #[command(group = clap::ArgGroup::new("subject").required(true).args(["name", "file"]))]
    Preview {
        /// A stored job.
        name: Option<String>,
        /// A job document (only schedule and timezone are read); `-` reads stdin.
        #[arg(
            short = 'f',
            long = "file",
            visible_alias = "filename",
            value_name = "FILE"
        )]
        file: Option<String>,
        /// Instants strictly after this time (RFC 3339) [default: now].
        #[arg(long, value_name = "TIME", value_parser = values::rfc3339)]
        from: Option<DateTime<Utc>>,
        /// Instants at or before this time (RFC 3339) [default: unbounded].
        #[arg(long, value_name = "TIME", value_parser = values::rfc3339)]
        to: Option<DateTime<Utc>>,
        /// At most this many instants [default: the server's, 10].
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Run a job for every instant its schedule had in a past range.
    ///
    /// The instants are those strictly after --from and at or before --to; each run
    /// has trigger `backfill`. --to may not be in the future.
    Backfill {
        /// The job's name.
        name: String,
        /// Start of the range, exclusive (RFC 3339).
        #[arg(long, value_name = "TIME", value_parser = values::rfc3339)]
        from: DateTime<Utc>,
        /// End of the range, inclusive (RFC 3339); not in the future.
        #[arg(long, value_name = "TIME", value_parser = values::rfc3339)]
        to: DateTime<Utc>,
        /// Only list the instants; run nothing.
        #[arg(long)]
        dry_run: bool,
        /// Runs at once [default: 1].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        parallel: Option<u32>,
        /// Starts per second at most, e.g. 0.5 or 10 [default: 1].
        #[arg(long, value_name = "PER_SECOND", value_parser = values::rate)]
        rate: Option<f64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExecCommand {
    /// List executions, newest first.
    List {
        /// Only this job's executions.
        #[arg(long, value_name = "NAME")]
        job: Option<String>,
        /// At most this many; 0 lists them all.
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: u32,
    },
    /// Show one execution and its output.
    Get {
        /// The execution's id.
        id: String,
    },
    /// Print an execution's output.
    Logs {
        /// The execution's id.
        id: String,
        /// Keep printing until the execution ends.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Stop a pending or running execution.
    Cancel {
        /// The execution's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Show the schedulers (role, term, commit and applied index) and the executors.
    Status,
    /// Admit a scheduler started with an empty data dir as a voter.
    AddScheduler {
        /// Its raft id.
        id: u64,
        /// Its gRPC address (HOST:PORT).
        addr: String,
    },
    /// Remove a scheduler from the group, or every scheduler above an id.
    ///
    /// A removal is refused while the schedulers left would not hold a live quorum.
    /// With --above N the schedulers whose id is greater than N are removed one at a
    /// time, highest first (what a group shrinking to N members needs); a refused
    /// removal is retried until --timeout.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["id", "above"]))]
    RemoveScheduler {
        /// Its raft id.
        id: Option<u64>,
        /// Remove every scheduler whose id is greater than this.
        #[arg(long, value_name = "N")]
        above: Option<u64>,
        /// With --above: give up after this long.
        #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = values::duration)]
        timeout: Duration,
    },
    /// Hand leadership to another scheduler.
    TransferLeader {
        /// The raft id of the scheduler to lead.
        id: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() -> anyhow::Result<()> {
        let cli =
            Cli::try_parse_from(["kairos", "job", "list", "-o", "json", "--endpoint", "h:1"])?;
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.endpoint, "h:1");
        Ok(())
    }

    #[test]
    fn preview_needs_a_name_or_a_file_but_not_both() {
        assert!(Cli::try_parse_from(["kairos", "job", "preview"]).is_err());
        assert!(Cli::try_parse_from(["kairos", "job", "preview", "a", "-f", "x.yaml"]).is_err());
        assert!(Cli::try_parse_from(["kairos", "job", "preview", "-f", "x.yaml"]).is_ok());
        assert!(Cli::try_parse_from(["kairos", "job", "preview", "a", "--limit", "3"]).is_ok());
    }

    fn job_command(argv: &[&str]) -> anyhow::Result<JobCommand> {
        match Cli::try_parse_from(argv)?.command {
            Command::Job { command } => Ok(command),
            other => anyhow::bail!("parsed as another command: {other:?}"),
        }
    }

    /// clap's message for a refused command line, on one line.
    fn refusal(argv: &[&str]) -> String {
        Cli::try_parse_from(argv)
            .err()
            .map(|e| {
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    }

    #[test]
    fn delete_cascades_only_when_asked() -> anyhow::Result<()> {
        let JobCommand::Delete { name, cascade } = job_command(&["kairos", "job", "delete", "a"])?
        else {
            anyhow::bail!("not a delete");
        };
        assert_eq!((name.as_str(), cascade), ("a", false));
        let command = job_command(&["kairos", "job", "delete", "a", "--cascade"])?;
        assert!(matches!(command, JobCommand::Delete { cascade: true, .. }));
        Ok(())
    }

    #[test]
    fn list_takes_a_filter() -> anyhow::Result<()> {
        let command = job_command(&["kairos", "job", "list"])?;
        assert!(matches!(command, JobCommand::List { filter: None }));
        let JobCommand::List { filter } = job_command(&[
            "kairos",
            "job",
            "list",
            "--filter",
            "team=billing,tier in (1,2)",
        ])?
        else {
            anyhow::bail!("not a list");
        };
        assert_eq!(filter.as_deref(), Some("team=billing,tier in (1,2)"));
        Ok(())
    }

    #[test]
    fn diff_needs_a_file() -> anyhow::Result<()> {
        assert!(refusal(&["kairos", "job", "diff"]).contains("--file <FILE>"));
        let command = job_command(&["kairos", "job", "diff", "-f", "jobs.yaml"])?;
        assert!(matches!(command, JobCommand::Diff { file } if file == "jobs.yaml"));
        Ok(())
    }

    #[test]
    fn backfill_flags() -> anyhow::Result<()> {
        let JobCommand::Backfill {
            name,
            from,
            to,
            dry_run,
            parallel,
            rate,
        } = job_command(&[
            "kairos",
            "job",
            "backfill",
            "nightly",
            "--from",
            "2026-03-01T00:00:00Z",
            "--to",
            "2026-03-08T02:00:00+02:00",
            "--dry-run",
            "--parallel",
            "4",
            "--rate",
            "0.5",
        ])?
        else {
            anyhow::bail!("not a backfill");
        };
        assert_eq!(name, "nightly");
        assert_eq!(
            from,
            values::rfc3339("2026-03-01T00:00:00Z").map_err(anyhow::Error::msg)?
        );
        assert_eq!(
            to,
            values::rfc3339("2026-03-08T00:00:00Z").map_err(anyhow::Error::msg)?,
            "read in UTC"
        );
        assert!(dry_run);
        assert_eq!((parallel, rate), (Some(4), Some(0.5)));

        let base = [
            "kairos",
            "job",
            "backfill",
            "nightly",
            "--from",
            "2026-03-01T00:00:00Z",
        ];
        let with = |extra: &[&'static str]| -> Vec<&'static str> {
            base.iter().chain(extra).copied().collect()
        };
        let command = job_command(&with(&["--to", "2026-03-02T00:00:00Z"]))?;
        assert!(matches!(
            command,
            JobCommand::Backfill {
                dry_run: false,
                parallel: None,
                rate: None,
                ..
            }
        ));
        assert!(refusal(&base).contains("--to <TIME>"), "--to is required");
        let err = refusal(&with(&["--to", "yesterday"]));
        assert!(
            err.contains("--to <TIME>") && err.contains("RFC 3339"),
            "{err}"
        );
        let err = refusal(&with(&["--to", "2026-03-02T00:00:00Z", "--parallel", "0"]));
        assert!(err.contains("--parallel <N>"), "{err}");
        for rate in ["--rate=0", "--rate=-2", "--rate=fast"] {
            let err = refusal(&with(&["--to", "2026-03-02T00:00:00Z", rate]));
            assert!(err.contains("--rate <PER_SECOND>"), "{rate}: {err}");
        }
        Ok(())
    }

    #[test]
    fn repeated_and_comma_separated_tags_both_work() -> anyhow::Result<()> {
        let cli = Cli::try_parse_from([
            "kairos",
            "executor",
            "--tag",
            "role=web,region=eu",
            "--tag",
            "disk=ssd",
        ])?;
        let Command::Executor(args) = cli.command else {
            anyhow::bail!("parsed as another command");
        };
        let keys: Vec<&str> = args.tags.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["role", "region", "disk"]);
        Ok(())
    }
}
