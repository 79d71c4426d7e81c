//! Security end to end, with real processes and real TLS: every group here is made
//! with `kairos certs init` and runs without `--insecure`, as in production.
//!
//! What an operator checks before exposing Kairos, and what these tests assert:
//! - who may do what: a caller without credentials gets nothing but the health
//!   checks; a viewer reads and cannot write; an operator writes jobs and cannot
//!   change membership or tokens; an executor token cannot read jobs; the same rules
//!   over gRPC (the CLI, grpcurl, Python grpcio) and HTTP (the `/v1` API, bearer
//!   header), through the leader and through followers;
//! - a revoked token is refused by every node within a second of the revocation;
//! - a plain-text client cannot talk to a TLS scheduler; a certificate from another
//!   CA fails the handshake, so it can neither join nor send raft messages; a
//!   certificate of the right CA but the wrong role cannot use the peers' service;
//! - an executor without a valid certificate or token cannot register and receives
//!   no assignment; with an executor token it can, and with a pool certificate
//!   (`PREFIX*`) only under a name in its pool;
//! - membership changes work with TLS: a node started with `--join` is admitted and
//!   catches up, a leader removes itself (the next leader acts on the caller's
//!   behalf), leadership moves to the new node, and every node reaches every other
//!   for `cluster status`;
//! - certificates rotated on disk (to a new CA) are taken without a restart while a
//!   job keeps firing;
//! - write rate limits answer `resource_exhausted` / 429 with a retry hint; requests
//!   are capped in size per service (1 MiB for job writes, 64 KiB for the rest of the
//!   public API, over gRPC and HTTP) and a connection to 128 concurrent streams;
//! - a secret environment value (given, or read from a file on the executor) reaches
//!   the job and appears in no API answer (gRPC, `/v1`, the status page, metrics),
//!   no log line (at debug level) and no webhook body.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use kairos_integration_tests::deploy::{run, tool, tools_dir};
use kairos_integration_tests::server::TestServer;
use kairos_integration_tests::web::Request;
use kairos_integration_tests::{
    CliOutput, Cluster, ClusterOptions, Process, cli_within, field, hosts_of, read_lines,
    ticker_job, wait_until, write_file,
};
use kairos_tls::TlsFiles;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kairos");

/// How long a single CLI call may take.
const CALL: Duration = Duration::from_secs(30);
/// How long the group may take to notice something (an executor registering, a job
/// firing a few times).
const SETTLE: Duration = Duration::from_secs(30);

fn start(options: ClusterOptions) -> Result<(tempfile::TempDir, Cluster)> {
    let dir = tempfile::tempdir()?;
    let cluster = Cluster::start(BIN.as_ref(), dir.path(), options)?;
    Ok((dir, cluster))
}

fn pki(cluster: &Cluster) -> Result<&Path> {
    cluster
        .pki()
        .ok_or_else(|| anyhow!("the group runs without TLS"))
}

/// The CLI against scheduler `id` over TLS, trusting the group's CA, as whoever
/// `auth` names (`--token T`, other `--tls-*` flags, or nothing).
fn cli_as(cluster: &Cluster, id: u64, auth: &[&str], args: &[&str]) -> Result<CliOutput> {
    let ca = pki(cluster)?.join("ca.crt");
    let ca = ca.to_string_lossy();
    let mut all = vec!["--tls-ca", &ca];
    all.extend_from_slice(auth);
    all.extend_from_slice(args);
    cli_within(
        cluster.bin(),
        &format!("https://{}", cluster.addr(id)),
        &all,
        CALL,
    )
}

/// A new token of `role` named `name`, made by the admin: its secret.
fn create_token(cluster: &Cluster, name: &str, role: &str) -> Result<(String, String)> {
    let leader = cluster.wait_for_leader()?;
    let out = cluster
        .cli(
            leader,
            &["-o", "json", "token", "create", name, "--role", role],
        )?
        .ok()?
        .json()?;
    let secret = field(&out, "token").to_string();
    let id = out["info"]["id"]
        .as_str()
        .ok_or_else(|| anyhow!("no token id in {out}"))?
        .to_string();
    ensure!(secret.len() > 40, "a short token secret: {out}");
    Ok((id, secret))
}

/// Fails unless `out` is a refusal with gRPC code `code` whose message names `what`.
fn refused(out: &CliOutput, code: &str, what: &str) -> Result<()> {
    ensure!(
        !out.success(),
        "expected a refusal [{code}], got success: {}",
        out.stdout
    );
    ensure!(
        out.stderr.contains(&format!("[{code}]")) && out.stderr.contains(what),
        "expected [{code}] naming {what:?}, got: {}",
        out.stderr
    );
    Ok(())
}

/// Standard base64 with padding (grpcurl's JSON form of `bytes`).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn ca_only(cluster: &Cluster) -> Result<TlsFiles> {
    Ok(TlsFiles {
        ca: pki(cluster)?.join("ca.crt"),
        cert: None,
        key: None,
    })
}

/// `localhost:PORT` of scheduler `id`'s HTTP listener (its certificate names
/// localhost; the listener is on 127.0.0.1).
fn http_host(cluster: &Cluster, id: u64) -> Result<String> {
    let addr = cluster.http_addr(id);
    let port = addr
        .rsplit_once(':')
        .map(|(_, p)| p)
        .ok_or_else(|| anyhow!("no port in {addr}"))?;
    Ok(format!("localhost:{port}"))
}

const MANUAL_JOB: &str = "name: secured\nschedule: \"@manual\"\nshell:\n  command: \"true\"\n";

#[test]
fn roles_decide_what_each_caller_may_do_over_grpc_and_http() -> Result<()> {
    let (dir, cluster) = start(ClusterOptions::new(3, 1).secure())?;
    let leader = cluster.wait_for_leader()?;
    let (_, viewer) = create_token(&cluster, "ci-viewer", "viewer")?;
    let (_, operator) = create_token(&cluster, "ci-operator", "operator")?;
    let (_, executor) = create_token(&cluster, "worker-token", "executor")?;
    let job = write_file(dir.path(), "secured.yaml", MANUAL_JOB)?;

    // The same answers through the leader and through every follower (which
    // forwards writes in the caller's name).
    for id in cluster.scheduler_ids() {
        let which = if id == leader { "leader" } else { "follower" };
        let v = ["--token", viewer.as_str()];
        let o = ["--token", operator.as_str()];
        let e = ["--token", executor.as_str()];

        refused(
            &cli_as(&cluster, id, &[], &["job", "list"])?,
            "unauthenticated",
            "no credentials",
        )
        .with_context(|| format!("no credentials, {which} {id}"))?;
        refused(
            &cli_as(
                &cluster,
                id,
                &["--token", "kairos_nosuch_token"],
                &["job", "list"],
            )?,
            "unauthenticated",
            "not valid",
        )
        .with_context(|| format!("an unknown token, {which} {id}"))?;

        cli_as(&cluster, id, &v, &["job", "list"])?
            .ok()
            .with_context(|| format!("a viewer lists jobs, {which} {id}"))?;
        refused(
            &cli_as(&cluster, id, &v, &["job", "apply", "-f", &job])?,
            "permission_denied",
            "write",
        )
        .with_context(|| format!("a viewer cannot write, {which} {id}"))?;

        cli_as(&cluster, id, &o, &["job", "apply", "-f", &job])?
            .ok()
            .with_context(|| format!("an operator applies a job, {which} {id}"))?;
        cli_as(&cluster, id, &o, &["job", "run", "secured"])?
            .ok()
            .with_context(|| format!("an operator runs a job, {which} {id}"))?;
        refused(
            &cli_as(&cluster, id, &o, &["cluster", "remove-scheduler", "3"])?,
            "permission_denied",
            "admin",
        )
        .with_context(|| format!("an operator cannot change membership, {which} {id}"))?;
        refused(
            &cli_as(&cluster, id, &o, &["token", "list"])?,
            "permission_denied",
            "admin",
        )
        .with_context(|| format!("an operator cannot see tokens, {which} {id}"))?;

        refused(
            &cli_as(&cluster, id, &e, &["job", "list"])?,
            "permission_denied",
            "read",
        )
        .with_context(|| format!("an executor token cannot read jobs, {which} {id}"))?;
    }
    // The admin (by certificate) sees the tokens, never their secrets.
    let tokens = cluster.cli(leader, &["token", "list"])?.ok()?.stdout;
    for name in ["ci-viewer", "ci-operator", "worker-token"] {
        ensure!(
            tokens.contains(name),
            "{name} not in the token list:\n{tokens}"
        );
    }
    for secret in [&viewer, &operator, &executor] {
        ensure!(
            !tokens.contains(secret.as_str()),
            "token list shows a secret"
        );
    }

    // HTTP: the /v1 API and the status page take the token as a bearer header or a
    // client certificate; the health checks are open.
    let ca = ca_only(&cluster)?;
    let admin_cert = TlsFiles::in_dir(pki(&cluster)?, "admin-admin");
    let body = r#"{"name":"from-http","schedule":"@manual","executor":"shell","executor_config":{"command":"true"}}"#;
    for id in cluster.scheduler_ids() {
        let addr = http_host(&cluster, id)?;
        let code = |r: Request| r.send(&addr);
        let (c, _) = code(Request::get("/healthz").tls(&ca))?;
        ensure!(c == 200, "/healthz without credentials: {c}");
        let (c, b) = code(Request::get("/v1/jobs").tls(&ca))?;
        ensure!(c == 401, "/v1/jobs without credentials: {c} {b}");
        let (c, b) = code(Request::get("/").tls(&ca))?;
        ensure!(c == 401, "the status page without credentials: {c} {b}");
        let (c, b) = code(Request::get("/v1/jobs").tls(&ca).bearer(&viewer))?;
        ensure!(
            c == 200 && b.contains("secured"),
            "/v1/jobs as viewer: {c} {b}"
        );
        let (c, b) = code(Request::post("/v1/jobs", body).tls(&ca).bearer(&viewer))?;
        ensure!(
            c == 403 && b.contains("write"),
            "POST /v1/jobs as viewer: {c} {b}"
        );
        let (c, b) = code(Request::get("/v1/jobs").tls(&ca).bearer(&executor))?;
        ensure!(c == 403, "/v1/jobs as executor: {c} {b}");
        let (c, b) = code(Request::post("/v1/jobs", body).tls(&ca).bearer(&operator))?;
        ensure!(
            (200..300).contains(&c),
            "POST /v1/jobs as operator: {c} {b}"
        );
        let (c, b) = code(Request::get("/v1/jobs").tls(&admin_cert))?;
        ensure!(c == 200, "/v1/jobs with the admin certificate: {c} {b}");
    }
    // Every write left an audit line naming its caller.
    let logs: String = cluster
        .scheduler_ids()
        .iter()
        .map(|id| {
            std::fs::read_to_string(dir.path().join(format!("logs/scheduler-{id}.log")))
                .unwrap_or_default()
        })
        .collect();
    ensure!(
        logs.lines()
            .any(|l| l.contains("audit") && l.contains("operator:ci-operator")),
        "no audit line names operator:ci-operator"
    );
    // No log line carries a token's secret.
    for secret in [&viewer, &operator, &executor] {
        let tail = &secret[secret.len() - 20..];
        ensure!(!logs.contains(tail), "a token secret is in a log");
    }
    Ok(())
}

#[test]
fn a_revoked_token_is_refused_by_every_node_within_a_second() -> Result<()> {
    let (_dir, cluster) = start(ClusterOptions::new(3, 0).secure())?;
    let leader = cluster.wait_for_leader()?;
    let (id, token) = create_token(&cluster, "soon-gone", "viewer")?;
    let t = ["--token", token.as_str()];
    for node in cluster.scheduler_ids() {
        // A follower learns of the token when it applies it; wait for that.
        wait_until(SETTLE, &format!("node {node} to know the token"), || {
            cli_as(&cluster, node, &t, &["job", "list"])
                .ok()
                .filter(CliOutput::success)
        })?;
    }
    cluster
        .cli(leader, &["token", "revoke", &id])?
        .ok()
        .context("revoking")?;
    let revoked = Instant::now();
    let mut worst = Duration::ZERO;
    for node in cluster.scheduler_ids() {
        let out = wait_until(
            Duration::from_secs(1).saturating_sub(revoked.elapsed()),
            &format!("node {node} to refuse the revoked token"),
            || {
                cli_as(&cluster, node, &t, &["job", "list"])
                    .ok()
                    .filter(|o| !o.success())
            },
        )?;
        refused(&out, "unauthenticated", "not valid")?;
        worst = worst.max(revoked.elapsed());
    }
    eprintln!("revoked token refused by every node {worst:?} after the revocation");
    Ok(())
}

#[test]
fn plain_text_and_foreign_certificates_get_nothing() -> Result<()> {
    let (dir, cluster) = start(ClusterOptions::new(3, 0).secure())?;
    let leader = cluster.wait_for_leader()?;

    // A plain-text client: no answer from a TLS port, over gRPC or HTTP.
    let out = cli_within(
        cluster.bin(),
        &format!("http://{}", cluster.addr(leader)),
        &["job", "list"],
        CALL,
    )?;
    ensure!(
        !out.success(),
        "a plain-text client listed jobs: {}",
        out.stdout
    );
    let plain = Request::get("/healthz").send(&http_host(&cluster, leader)?);
    ensure!(
        !matches!(plain, Ok((200, _))),
        "plain HTTP answered on the TLS port: {plain:?}"
    );

    // Another CA: a scheduler certificate it signed for node 4 and an admin one.
    let other = dir.path().join("other-pki");
    cluster
        .cli(
            leader,
            &[
                "certs",
                "init",
                &other.to_string_lossy(),
                "--scheduler",
                "4",
                "--host",
                "localhost,127.0.0.1",
                "--client",
                "admin=mallory",
            ],
        )?
        .ok()?;
    let group_ca = pki(&cluster)?.join("ca.crt");
    let group_ca = group_ca.to_string_lossy().into_owned();
    let foreign = |name: &str| -> Vec<String> {
        vec![
            "--tls-ca".into(),
            group_ca.clone(),
            "--tls-cert".into(),
            other
                .join(format!("{name}.crt"))
                .to_string_lossy()
                .into_owned(),
            "--tls-key".into(),
            other
                .join(format!("{name}.key"))
                .to_string_lossy()
                .into_owned(),
        ]
    };
    // Its admin certificate does not pass the handshake.
    let flags = foreign("admin-mallory");
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["cluster", "status"]);
    let out = cli_within(
        cluster.bin(),
        &format!("https://{}", cluster.addr(leader)),
        &args,
        CALL,
    )?;
    ensure!(
        !out.success(),
        "a foreign admin certificate was accepted: {}",
        out.stdout
    );

    // Nor do the peers' calls with its scheduler certificate (grpcurl, the proto
    // files: reflection is not open to them).
    let grpcurl = tool("grpcurl")?;
    let protos = kairos_integration_tests::deploy::repo_root().join("proto/proto");
    let peer_call = |cert: &Path, key: &Path, method: &str, body: &str| {
        run(
            std::process::Command::new(&grpcurl)
                .arg("-cacert")
                .arg(&group_ca)
                .arg("-cert")
                .arg(cert)
                .arg("-key")
                .arg(key)
                .arg("-import-path")
                .arg(&protos)
                .args(["-proto", "kairos/v1/raft_transport.proto", "-d", body])
                .arg(cluster.addr(leader))
                .arg(method),
            CALL,
        )
    };
    let out = peer_call(
        &other.join("scheduler-4.crt"),
        &other.join("scheduler-4.key"),
        "kairos.v1.RaftTransport/Join",
        r#"{"id": 4, "addr": "127.0.0.1:1", "empty": true}"#,
    )?;
    ensure!(
        !out.success(),
        "a foreign scheduler certificate joined: {}",
        out.stdout
    );
    // A certificate of the group's CA for a client is refused the peers' service.
    let own = pki(&cluster)?;
    let out = peer_call(
        &own.join("admin-admin.crt"),
        &own.join("admin-admin.key"),
        "kairos.v1.RaftTransport/Join",
        r#"{"id": 4, "addr": "127.0.0.1:1", "empty": true}"#,
    )?;
    ensure!(
        !out.success() && out.stderr.contains("PermissionDenied"),
        "an admin certificate used the peers' Join: {} {}",
        out.stdout,
        out.stderr
    );

    let out = peer_call(
        &other.join("scheduler-4.crt"),
        &other.join("scheduler-4.key"),
        "kairos.v1.RaftTransport/Send",
        r#"{"from": 4, "fromAddr": "127.0.0.1:1"}"#,
    )?;
    ensure!(
        !out.success(),
        "a foreign scheduler certificate sent raft messages: {}",
        out.stdout
    );

    // The group's CA, a scheduler certificate, but no member's: it may not speak
    // for itself, nor for a member.
    cluster
        .cli(
            leader,
            &[
                "certs",
                "issue",
                &own.to_string_lossy(),
                "--role",
                "scheduler",
                "--name",
                "9",
                "--host",
                "localhost",
            ],
        )?
        .ok()?;
    let (cert9, key9) = (own.join("scheduler-9.crt"), own.join("scheduler-9.key"));
    let out = peer_call(
        &cert9,
        &key9,
        "kairos.v1.RaftTransport/Send",
        r#"{"from": 9, "fromAddr": "127.0.0.1:1"}"#,
    )?;
    ensure!(
        !out.success() && out.stderr.contains("not a member"),
        "a non-member sent raft messages: {} {}",
        out.stdout,
        out.stderr
    );
    let member = cluster.scheduler_ids()[0];
    let out = peer_call(
        &cert9,
        &key9,
        "kairos.v1.RaftTransport/Send",
        &format!(r#"{{"from": {member}, "fromAddr": "127.0.0.1:1"}}"#),
    )?;
    ensure!(
        !out.success()
            && out
                .stderr
                .contains(&format!("cannot send for scheduler {member}")),
        "scheduler 9's certificate sent for scheduler {member}: {} {}",
        out.stdout,
        out.stderr
    );
    // A member's own certificate speaks for that member only, message by message:
    // a batch from it holding a raft message that claims another sender is refused.
    let ids = cluster.scheduler_ids();
    let (speaker, claimed) = match ids
        .iter()
        .copied()
        .filter(|&id| id != leader)
        .collect::<Vec<_>>()[..]
    {
        [a, b, ..] => (a, b),
        _ => return Err(anyhow!("fewer than two followers in {ids:?}")),
    };
    // eraftpb.Message: msg_type = MsgHeartbeatResponse (9), to, from, term = 1 (stale:
    // harmless even if it were stepped).
    let forged = base64(&[0x08, 9, 0x10, leader as u8, 0x18, claimed as u8, 0x20, 1]);
    let out = peer_call(
        &own.join(format!("scheduler-{speaker}.crt")),
        &own.join(format!("scheduler-{speaker}.key")),
        "kairos.v1.RaftTransport/Send",
        &format!(
            r#"{{"from": {speaker}, "fromAddr": "{}", "messages": ["{forged}"]}}"#,
            cluster.addr(speaker)
        ),
    )?;
    ensure!(
        !out.success()
            && out.stderr.contains("PermissionDenied")
            && out.stderr.contains(&format!(
                "from scheduler {claimed} on the stream of scheduler {speaker}"
            )),
        "scheduler {speaker}'s certificate carried a message from {claimed}: {} {}",
        out.stdout,
        out.stderr
    );
    // Through all of it the group kept its three members.
    let status = cluster.status(leader)?;
    ensure!(
        status["schedulers"].as_array().map(Vec::len) == Some(3),
        "the group's members changed: {status}"
    );
    Ok(())
}

#[test]
fn an_executor_needs_a_certificate_or_an_executor_token() -> Result<()> {
    let (dir, cluster) = start(ClusterOptions::new(1, 0).secure())?;
    let leader = cluster.wait_for_leader()?;
    let pki = pki(&cluster)?.to_path_buf();
    let (_, viewer) = create_token(&cluster, "not-an-executor", "viewer")?;
    let (_, executor) = create_token(&cluster, "intruder-box", "executor")?;
    let ran = dir.path().join("ran.txt");
    let job = format!(
        "name: guarded\nschedule: \"@manual\"\ntarget:\n  selector: who=intruder\nshell:\n  command: echo ran >> {}\n",
        ran.display()
    );
    cluster.apply(leader, "guarded", &job)?;

    let spawn = |name: &str, auth: &[String]| -> Result<(Process, PathBuf)> {
        let log = dir.path().join(format!("logs/{name}.log"));
        let mut args = vec![
            "--tls-ca".to_string(),
            pki.join("ca.crt").to_string_lossy().into_owned(),
        ];
        args.extend(auth.iter().cloned());
        args.extend([
            "executor".into(),
            "--schedulers".into(),
            cluster.addr(leader).to_string(),
            "--id".into(),
            name.into(),
            "--tag".into(),
            "who=intruder".into(),
        ]);
        Ok((Process::spawn(cluster.bin(), &args, &log)?, log))
    };
    let executors = || -> Result<String> { Ok(cluster.cli(leader, &["executors"])?.ok()?.stdout) };

    // Nothing but the CA: the executor does not even start, and says what it needs.
    let (bare, log) = spawn("bare", &[])?;
    wait_until(SETTLE, "the bare executor to exit", || {
        (!bare.alive()).then_some(())
    })?;
    let said = std::fs::read_to_string(&log)?;
    ensure!(
        said.contains("--tls-cert") && said.contains("--token"),
        "the bare executor's message: {said}"
    );
    drop(bare);

    // A token the group does not know, a viewer's token, a certificate of another
    // CA: each is refused at the door, keeps retrying, and is never listed.
    let other = dir.path().join("other-pki");
    cluster
        .cli(
            leader,
            &[
                "certs",
                "init",
                &other.to_string_lossy(),
                "--executor",
                "intruder",
            ],
        )?
        .ok()?;
    let foreign = vec![
        "--tls-cert".to_string(),
        other
            .join("executor-intruder.crt")
            .to_string_lossy()
            .into_owned(),
        "--tls-key".to_string(),
        other
            .join("executor-intruder.key")
            .to_string_lossy()
            .into_owned(),
    ];
    for (name, auth, why) in [
        (
            "unknown",
            vec!["--token".to_string(), "kairos_0000_1111".to_string()],
            "not valid",
        ),
        (
            "viewer",
            vec!["--token".to_string(), viewer.clone()],
            "permission",
        ),
        ("foreign", foreign, "fatal alert: unknownca"),
    ] {
        let (process, log) = spawn(name, &auth)?;
        wait_until(SETTLE, &format!("executor {name} to be refused"), || {
            let text = std::fs::read_to_string(&log).ok()?;
            text.to_lowercase().contains(why).then_some(())
        })
        .with_context(|| std::fs::read_to_string(&log).unwrap_or_default())?;
        ensure!(
            process.alive(),
            "executor {name} gave up instead of retrying"
        );
        ensure!(
            !executors()?.contains(name),
            "executor {name} is registered"
        );
        // A run now finds nobody to take it.
        let out = cluster.cli(leader, &["-o", "json", "job", "run", "guarded", "--wait"])?;
        ensure!(
            out.stdout.contains("no_target") || out.stderr.contains("no_target"),
            "a run with only executor {name} around: {} {}",
            out.stdout,
            out.stderr
        );
        drop(process);
    }
    ensure!(
        !ran.exists(),
        "the job ran without a registered executor: {:?}",
        read_lines(&ran)
    );

    // An executor token: registered, and the run reaches it.
    let (_process, _log) = spawn("intruder-box", &["--token".to_string(), executor])?;
    wait_until(SETTLE, "the executor with a token to register", || {
        executors().ok().filter(|e| e.contains("intruder-box"))
    })?;
    cluster
        .cli(leader, &["job", "run", "guarded", "--wait"])?
        .ok()
        .context("running with a registered executor")?;
    ensure!(read_lines(&ran) == ["ran"], "ran: {:?}", read_lines(&ran));

    // A pool certificate (`pool-*`, for a Deployment's pods) registers executors
    // named pool-…, and no other name.
    cluster
        .cli(
            leader,
            &[
                "certs",
                "issue",
                &pki.to_string_lossy(),
                "--role",
                "executor",
                "--name",
                "pool-*",
            ],
        )?
        .ok()?;
    let pool_cert = vec![
        "--tls-cert".to_string(),
        pki.join("executor-pool-pool-.crt")
            .to_string_lossy()
            .into_owned(),
        "--tls-key".to_string(),
        pki.join("executor-pool-pool-.key")
            .to_string_lossy()
            .into_owned(),
    ];
    let (outsider, log) = spawn("outsider-1", &pool_cert)?;
    wait_until(
        SETTLE,
        "the pool certificate to be refused for outsider-1",
        || {
            let text = std::fs::read_to_string(&log).ok()?;
            text.contains("cannot register").then_some(())
        },
    )
    .with_context(|| std::fs::read_to_string(&log).unwrap_or_default())?;
    ensure!(
        !executors()?.contains("outsider-1"),
        "a pool certificate registered an executor outside its pool"
    );
    drop(outsider);
    let (_member, _log) = spawn("pool-7f3a", &pool_cert)?;
    wait_until(SETTLE, "the pool member to register", || {
        executors().ok().filter(|e| e.contains("pool-7f3a"))
    })?;
    Ok(())
}

#[test]
fn grpcurl_and_python_reach_the_api_with_tls_and_a_token() -> Result<()> {
    let (_dir, cluster) = start(ClusterOptions::new(1, 0).secure())?;
    let leader = cluster.wait_for_leader()?;
    let (_, viewer) = create_token(&cluster, "scripts", "viewer")?;
    let ca = pki(&cluster)?.join("ca.crt");
    let addr = cluster.addr(leader).to_string();
    let auth = format!("authorization: Bearer {viewer}");

    let grpcurl = tool("grpcurl")?;
    let grpcurl_call = |token: Option<&str>, what: &[&str]| {
        let mut cmd = std::process::Command::new(&grpcurl);
        cmd.arg("-cacert").arg(&ca);
        if let Some(header) = token {
            cmd.args(["-H", header]);
        }
        run(cmd.arg(&addr).args(what), CALL)
    };
    // Reflection for a viewer: the public services, listed.
    let list = grpcurl_call(Some(&auth), &["list"])?.ok()?;
    ensure!(
        list.stdout.contains("kairos.v1.JobService"),
        "grpcurl list: {}",
        list.stdout
    );
    let status = grpcurl_call(Some(&auth), &["kairos.v1.ClusterService/GetStatus"])?.ok()?;
    ensure!(
        status.stdout.contains("leaderId"),
        "GetStatus: {}",
        status.stdout
    );
    // Without the token: refused.
    let bare = grpcurl_call(None, &["list"])?;
    ensure!(
        !bare.success(),
        "grpcurl without a token listed: {}",
        bare.stdout
    );

    // Python grpcio with the same token.
    let python = tools_dir().join("venv/bin/python");
    ensure!(
        python.exists(),
        "no {}: run scripts/setup-test-deps",
        python.display()
    );
    let script =
        kairos_integration_tests::deploy::repo_root().join("integration-tests/python/call.py");
    let py = |token: &str, method: &str| {
        run(
            std::process::Command::new(&python)
                .arg(&script)
                .args(["--addr", &addr, "--ca"])
                .arg(&ca)
                .args(["--token", token, method]),
            CALL,
        )
    };
    let out = py(&viewer, "kairos.v1.ClusterService/GetStatus")?.ok()?;
    let answer: Value = serde_json::from_str(&out.stdout).context("python's answer")?;
    ensure!(
        answer["leaderId"].as_str() == Some(&leader.to_string()) || answer["leaderId"] == leader,
        "python GetStatus: {answer}"
    );
    let out = py(&viewer, "kairos.v1.TokenService/ListTokens")?;
    ensure!(
        !out.success() && out.stderr.contains("PERMISSION_DENIED"),
        "python ListTokens as viewer: {} {}",
        out.stdout,
        out.stderr
    );
    Ok(())
}

#[test]
fn certificates_rotated_on_disk_are_taken_while_a_job_fires() -> Result<()> {
    let (dir, cluster) = start(ClusterOptions::new(3, 1).secure())?;
    let leader = cluster.wait_for_leader()?;
    let pids: Vec<Option<u32>> = cluster
        .scheduler_ids()
        .iter()
        .map(|&id| cluster.scheduler_pid(id))
        .collect();
    let ticks = dir.path().join("ticks.txt");
    cluster.apply(leader, "ticker", &ticker_job("ticker", &ticks))?;
    let fired = |n: usize| {
        let at = read_lines(&ticks).len();
        wait_until(SETTLE, &format!("{n} more fires"), || {
            (read_lines(&ticks).len() >= at + n).then_some(())
        })
    };
    fired(2)?;

    // A new CA; for a while every node trusts both, then only the new one.
    let pki = pki(&cluster)?.to_path_buf();
    let next = dir.path().join("next-pki");
    let ids: Vec<String> = cluster.scheduler_ids().iter().map(u64::to_string).collect();
    let member_addrs: Vec<String> = cluster
        .scheduler_ids()
        .iter()
        .map(|&id| cluster.addr(id).to_string())
        .collect();
    cluster
        .cli(
            leader,
            &[
                "certs",
                "init",
                &next.to_string_lossy(),
                "--scheduler",
                &ids.join(","),
                "--host",
                &format!("localhost,{}", hosts_of(&member_addrs)),
                "--executor",
                "exec-1",
                "--client",
                "admin=admin",
            ],
        )?
        .ok()?;
    let old_ca = std::fs::read_to_string(pki.join("ca.crt"))?;
    let new_ca = std::fs::read_to_string(next.join("ca.crt"))?;
    let keep_old = dir.path().join("old-ca.crt");
    std::fs::write(&keep_old, &old_ca)?;
    replace(&pki.join("ca.crt"), &format!("{old_ca}{new_ca}"))?;
    fired(2)?;
    // New certificates for every process, then trust in the new CA alone.
    let mut names: Vec<String> = ids.iter().map(|id| format!("scheduler-{id}")).collect();
    names.extend(["executor-exec-1".into(), "admin-admin".into()]);
    for name in &names {
        replace(
            &pki.join(format!("{name}.key")),
            &std::fs::read_to_string(next.join(format!("{name}.key")))?,
        )?;
        replace(
            &pki.join(format!("{name}.crt")),
            &std::fs::read_to_string(next.join(format!("{name}.crt")))?,
        )?;
    }
    replace(&pki.join("ca.crt"), &new_ca)?;

    // Every node now presents the new certificate: a client that trusts only the
    // old CA is refused, one that trusts the new CA is served (with the new admin
    // certificate the harness uses).
    for id in cluster.scheduler_ids() {
        wait_until(
            SETTLE,
            &format!("scheduler {id} to present the new certificate"),
            || {
                let old = cli_within(
                    cluster.bin(),
                    &format!("https://{}", cluster.addr(id)),
                    &["--tls-ca", &keep_old.to_string_lossy(), "cluster", "status"],
                    CALL,
                )
                .ok()?;
                (!old.success() && old.stderr.to_lowercase().contains("certificate")).then_some(())
            },
        )?;
        wait_until(
            SETTLE,
            &format!("scheduler {id} to serve the new admin"),
            || {
                cluster
                    .cli(id, &["cluster", "status"])
                    .ok()
                    .filter(CliOutput::success)
            },
        )?;
    }
    fired(3).context("the job after the rotation")?;
    // Writes still go through the followers to the leader (peer TLS).
    for id in cluster.scheduler_ids() {
        cluster
            .cli(
                id,
                &[
                    "job",
                    "pause",
                    "ticker",
                    "--reason",
                    &format!("rotated via {id}"),
                ],
            )?
            .ok()?;
        cluster.cli(id, &["job", "resume", "ticker"])?.ok()?;
    }
    fired(2).context("the job after pauses through every node")?;
    let now: Vec<Option<u32>> = cluster
        .scheduler_ids()
        .iter()
        .map(|&id| cluster.scheduler_pid(id))
        .collect();
    ensure!(pids == now, "a scheduler restarted: {pids:?} -> {now:?}");
    Ok(())
}

/// Writes `text` to `path` through a temporary file and a rename, as a careful
/// operator (or cert-manager) does.
fn replace(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[test]
fn write_rate_limits_answer_with_a_retry_hint() -> Result<()> {
    // One write, then nothing for ten minutes.
    let options = ClusterOptions::new(1, 0)
        .secure()
        .scheduler_flag("--write-rate", "0.0017")
        .scheduler_flag("--write-burst", "1");
    let (dir, cluster) = start(options)?;
    let leader = cluster.wait_for_leader()?;
    let (_, operator) = create_token(&cluster, "busy-bot", "operator")?;
    let job = write_file(dir.path(), "secured.yaml", MANUAL_JOB)?;
    let o = ["--token", operator.as_str()];
    cli_as(&cluster, leader, &o, &["job", "apply", "-f", &job])?.ok()?;
    let out = cli_as(&cluster, leader, &o, &["job", "run", "secured"])?;
    refused(&out, "resource_exhausted", "retry in")?;
    // HTTP: 429 with Retry-After; the limit is per caller, the admin still writes.
    let ca = ca_only(&cluster)?;
    let (c, b) = Request::post(
        "/v1/jobs",
        r#"{"name":"x","schedule":"@manual","executor":"shell","executor_config":{"command":"true"}}"#,
    )
    .tls(&ca)
    .bearer(&operator)
    .send(&http_host(&cluster, leader)?)?;
    ensure!(
        c == 429 && b.contains("retry in"),
        "over the limit on /v1: {c} {b}"
    );
    // Reads are not limited.
    cli_as(&cluster, leader, &o, &["job", "list"])?.ok()?;
    Ok(())
}

// ---- secrets ----

/// Every text a user or an operator can see about a job: the answers of the CLI
/// (gRPC) and of the HTTP API on every node, as the admin.
fn visible_texts(cluster: &Cluster, job: &str) -> Result<Vec<(String, String)>> {
    let mut texts = Vec::new();
    let admin_cert = TlsFiles::in_dir(pki(cluster)?, "admin-admin");
    for id in cluster.scheduler_ids() {
        for args in [
            vec!["-o", "json", "job", "get", job],
            vec!["-o", "yaml", "job", "get", job],
            vec!["-o", "json", "job", "list"],
            vec!["job", "list"],
            vec!["-o", "json", "exec", "list", "--job", job],
        ] {
            let out = cluster.cli(id, &args)?.ok()?;
            texts.push((format!("node {id}: kairos {}", args.join(" ")), out.stdout));
        }
        let addr = http_host(cluster, id)?;
        for path in [
            "/v1/jobs".to_string(),
            format!("/v1/jobs/{job}"),
            format!("/v1/jobs/{job}/executions"),
            "/v1/busy".to_string(),
            "/".to_string(),
            "/metrics".to_string(),
        ] {
            let (code, body) = Request::get(&path).tls(&admin_cert).send(&addr)?;
            ensure!(code == 200, "node {id}: GET {path}: {code} {body}");
            texts.push((format!("node {id}: GET {path}"), body));
        }
    }
    Ok(texts)
}

#[test]
fn secret_env_values_run_in_the_job_but_appear_in_no_answer_log_or_webhook() -> Result<()> {
    let (dir, cluster) = start(
        ClusterOptions::new(3, 1)
            .secure()
            // Debug lines of every Kairos crate are searched too.
            .log_filter("info,kairos=debug,kairos_scheduler=debug,kairos_executor=debug"),
    )?;
    let leader = cluster.wait_for_leader()?;
    let hooks = TestServer::start()?;
    let value = format!("value-secret-{}-9f2c", std::process::id());
    let from_file = format!("file-secret-{}-41d7", std::process::id());
    let secret_file = write_file(dir.path(), "db-password", &format!("{from_file}\n"))?;
    let seen = dir.path().join("seen.txt");
    let job = |description: &str| {
        format!(
            "name: with-secrets\nschedule: \"@manual\"\ndescription: {description}\n\
             shell:\n  command: \"printf '%s|%s|%s' \\\"$API_TOKEN\\\" \\\"$DB_PASSWORD\\\" \\\"$MODE\\\" > {seen}\"\n  \
             env: {{MODE: plain}}\n  secret_env:\n    API_TOKEN: {{value: \"{value}\"}}\n    \
             DB_PASSWORD: {{file: \"{secret_file}\"}}\n\
             notify:\n  - url: {hook}\n    events: [start, success]\n",
            seen = seen.display(),
            hook = hooks.url("/hook"),
        )
    };
    let applied = cluster.apply(leader, "with-secrets", &job("first"))?;
    let mut texts = vec![("the apply answer".to_string(), applied.stdout)];

    // The job runs with both secrets in its environment.
    let run_and_read = || -> Result<String> {
        let _ = std::fs::remove_file(&seen);
        cluster.cli(leader, &["job", "run", "with-secrets"])?.ok()?;
        wait_until(SETTLE, "the job's run to write what it saw", || {
            std::fs::read_to_string(&seen)
                .ok()
                .filter(|s| !s.is_empty())
        })
        .map_err(|e| cluster.with_logs(e))
    };
    let saw = run_and_read()?;
    ensure!(
        saw == format!("{value}|{from_file}|plain"),
        "the run saw {saw:?}"
    );
    wait_until(SETTLE, "the success webhook", || {
        (hooks.hits("/hook").len() >= 2).then_some(())
    })?;
    wait_until(SETTLE, "the execution to be recorded succeeded", || {
        cluster
            .records(leader, "with-secrets")
            .ok()?
            .iter()
            .any(|e| e.status == "succeeded")
            .then_some(())
    })?;

    // Reads show where a secret comes from, never its value: `stored: true` in
    // place of a value, the path of a file.
    let got = cluster
        .cli(leader, &["-o", "json", "job", "get", "with-secrets"])?
        .ok()?
        .json()?;
    let secrets = &got["shell"]["secretEnv"];
    ensure!(
        secrets["API_TOKEN"]["stored"] == Value::Bool(true)
            && secrets["DB_PASSWORD"]["file"] == Value::String(secret_file.clone()),
        "job get shows the secrets as {secrets}"
    );

    // A document read back and applied again keeps the stored value.
    let yaml = cluster
        .cli(leader, &["-o", "yaml", "job", "get", "with-secrets"])?
        .ok()?
        .stdout;
    let edited = yaml.replace("description: first", "description: second");
    ensure!(edited != yaml, "no description in {yaml}");
    let reapplied = cluster.apply(leader, "with-secrets", &edited)?;
    texts.push(("the second apply answer".to_string(), reapplied.stdout));
    let saw = run_and_read()?;
    ensure!(
        saw == format!("{value}|{from_file}|plain"),
        "after a read-edit-apply the run saw {saw:?}"
    );

    // `stored: true` with nothing stored is refused, naming the field.
    let refused = cluster.apply(
        leader,
        "no-stored",
        "name: no-stored\nschedule: \"@manual\"\nshell:\n  command: \"true\"\n  secret_env:\n    API_TOKEN: {stored: true}\n",
    );
    let err = format!(
        "{:#}",
        refused
            .err()
            .ok_or_else(|| anyhow!("stored: true with nothing stored was accepted"))?
    );
    ensure!(
        err.contains("shell.secret_env.API_TOKEN.stored"),
        "the refusal does not name the field: {err}"
    );

    // Pause and resume answer with the job too.
    for verb in ["pause", "resume"] {
        let out = cluster
            .cli(leader, &["-o", "json", "job", verb, "with-secrets"])?
            .ok()?;
        texts.push((format!("job {verb}"), out.stdout));
    }
    texts.extend(visible_texts(&cluster, "with-secrets")?);
    for hit in hooks.hits("/hook") {
        texts.push(("a webhook body".to_string(), hit.body));
    }
    for entry in std::fs::read_dir(dir.path().join("logs"))? {
        let path = entry?.path();
        texts.push((
            format!("log {}", path.display()),
            std::fs::read_to_string(&path)?,
        ));
    }
    ensure!(texts.len() > 40, "only {} texts were searched", texts.len());
    for (what, text) in &texts {
        ensure!(
            !text.contains(&value) && !text.contains(&from_file),
            "{what} shows a secret value:\n{text}"
        );
    }
    Ok(())
}

// ---- limits against abuse ----

#[test]
fn requests_are_capped_in_size_per_service_and_streams_per_connection() -> Result<()> {
    use kairos_proto::v1 as pb;
    let (_dir, cluster) = start(ClusterOptions::new(1, 0).secure())?;
    let leader = cluster.wait_for_leader()?;
    let admin = TlsFiles::in_dir(pki(&cluster)?, "admin-admin");
    let addr = cluster.addr(leader).to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let tls = kairos_tls::ClientTls::new(admin.clone())?;
        let channel = tls.connect(&addr, |e| e.timeout(CALL)).await?;
        let put = |description: String| pb::PutJobRequest {
            job: Some(pb::Job {
                name: "sized".into(),
                schedule: "@manual".into(),
                description,
                action: Some(pb::job::Action::Shell(pb::ShellAction {
                    command: "true".into(),
                    ..Default::default()
                })),
                ..Default::default()
            }),
            expected_version: None,
        };
        let mut jobs = pb::job_service_client::JobServiceClient::new(channel.clone());
        // Under the job service's 1 MiB cap the request is read, and its field judged.
        let err = jobs
            .put_job(put("d".repeat(900 << 10)))
            .await
            .expect_err("a 900 KiB description is not a valid job");
        ensure!(
            err.code() == tonic::Code::InvalidArgument && err.message().contains("description"),
            "a 900 KiB job: {err:?}"
        );
        // Over it, refused before it is decoded, saying the limit.
        let err = jobs
            .put_job(put("d".repeat(2 << 20)))
            .await
            .expect_err("a 2 MiB job write is refused");
        ensure!(
            err.code() == tonic::Code::OutOfRange && err.message().contains("1048576"),
            "a 2 MiB job: {err:?}"
        );
        // Services that take names and ids cap requests at 64 KiB.
        let mut cluster_api =
            pb::cluster_service_client::ClusterServiceClient::new(channel.clone());
        let err = cluster_api
            .add_scheduler(pb::AddSchedulerRequest {
                id: 9,
                addr: "a".repeat(100 << 10),
            })
            .await
            .expect_err("a 100 KiB AddScheduler is refused");
        ensure!(
            err.code() == tonic::Code::OutOfRange && err.message().contains("65536"),
            "a 100 KiB AddScheduler: {err:?}"
        );
        let mut tokens = pb::token_service_client::TokenServiceClient::new(channel);
        let err = tokens
            .create_token(pb::CreateTokenRequest {
                name: "n".repeat(100 << 10),
                role: "viewer".into(),
            })
            .await
            .expect_err("a 100 KiB CreateToken is refused");
        ensure!(
            err.code() == tonic::Code::OutOfRange && err.message().contains("65536"),
            "a 100 KiB CreateToken: {err:?}"
        );

        // One connection may hold at most 128 streams at once (watchers, tails): the
        // server says so in its HTTP/2 settings, and h2 enforces it on both sides.
        let tcp = tokio::net::TcpStream::connect(&addr).await?;
        let config = kairos_tls::client_config(&admin, &[b"h2"])?;
        let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
        let name = rustls_pki_types::ServerName::try_from(host.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await?;
        let (_send, mut conn) = h2::client::handshake(stream).await?;
        let mut ping = conn
            .ping_pong()
            .ok_or_else(|| anyhow!("no ping handle on a new connection"))?;
        // The server's settings come before its answer to a ping.
        tokio::select! {
            ended = &mut conn => return Err(anyhow!("the connection ended: {ended:?}")),
            pong = ping.ping(h2::Ping::opaque()) => {
                pong?;
            }
        }
        let max = conn.max_concurrent_send_streams();
        ensure!(max == 128, "the server allows {max} streams per connection");
        Ok::<(), anyhow::Error>(())
    })?;

    // HTTP bodies over 1 MiB are refused with 413 before the API reads them.
    let big = format!(
        r#"{{"name":"sized","schedule":"@manual","executor":"shell","executor_config":{{"command":"true"}},"displayname":"{}"}}"#,
        // 1.5 MiB: above the 1 MiB cap, below axum's own default of 2 MB.
        "d".repeat(3 << 19)
    );
    let (code, body) = Request::post("/v1/jobs", &big)
        .tls(&admin)
        .send(&http_host(&cluster, leader)?)?;
    ensure!(code == 413, "a 1.5 MiB POST /v1/jobs: {code} {body}");
    Ok(())
}

// ---- membership with TLS ----

#[test]
fn membership_changes_work_with_tls_and_status_reaches_every_node() -> Result<()> {
    let (dir, mut cluster) = start(ClusterOptions::new(3, 1).secure())?;
    let leader = cluster.wait_for_leader()?;
    let ticks = dir.path().join("ticks.txt");
    cluster.apply(leader, "ticker", &ticker_job("ticker", &ticks))?;
    // Every node's row is answered by that node, through any node.
    let all_reachable = |cluster: &Cluster, via: u64, ids: &[u64]| -> Result<()> {
        let status = cluster.status(via)?;
        for &id in ids {
            let row = kairos_integration_tests::scheduler_row(&status, id)
                .ok_or_else(|| anyhow!("no row for {id} in {status}"))?;
            ensure!(
                row["reachable"] == Value::Bool(true) && field(row, "role") != "unknown",
                "node {via} cannot reach {id}: {status}"
            );
        }
        Ok(())
    };
    for via in cluster.scheduler_ids() {
        all_reachable(&cluster, via, &[1, 2, 3])?;
    }

    // A node started with --join (no group yet) is admitted and catches up.
    let addr = cluster.start_joining_scheduler(4)?;
    cluster
        .cli(leader, &["cluster", "add-scheduler", "4", &addr])?
        .ok()
        .map_err(|e| cluster.with_logs(e))?;
    cluster.wait_caught_up(4)?;
    // The leader removes itself: it hands leadership over, and the new leader does
    // the removal on the caller's behalf.
    let leader = cluster.wait_for_leader()?;
    cluster
        .cli(
            leader,
            &["cluster", "remove-scheduler", &leader.to_string()],
        )?
        .ok()
        .map_err(|e| cluster.with_logs(e))?;
    let rest: Vec<u64> = [1, 2, 3, 4]
        .into_iter()
        .filter(|&id| id != leader)
        .collect();
    let next =
        cluster.wait_for_leader_where("a leader other than the removed one", |id| id != leader)?;
    // Leadership moves to the node that joined.
    cluster
        .cli(next, &["cluster", "transfer-leader", "4"])?
        .ok()
        .map_err(|e| cluster.with_logs(e))?;
    cluster.wait_for_leader_where("scheduler 4 to lead", |id| id == 4)?;
    all_reachable(&cluster, 4, &rest)?;
    cluster.kill_scheduler(leader)?;
    // And the job goes on firing under the new leader.
    let at = read_lines(&ticks).len();
    wait_until(SETTLE, "two more fires under leader 4", || {
        (read_lines(&ticks).len() >= at + 2).then_some(())
    })
    .map_err(|e| cluster.with_logs(e))?;
    Ok(())
}

// ---- the web UI ----

/// The `kairos_token=…` pair a sign-in answer sets, if any.
fn set_cookie(head: &[String]) -> Option<String> {
    head.iter()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().split(';').next().unwrap_or("").to_string())
}

#[test]
fn the_web_ui_signs_in_with_a_token_and_offers_only_what_the_role_may_do() -> Result<()> {
    let (_dir, cluster) = start(ClusterOptions::new(1, 0).secure())?;
    let leader = cluster.wait_for_leader()?;
    cluster.apply(leader, "secured", MANUAL_JOB)?;
    let (_, viewer) = create_token(&cluster, "ui-viewer", "viewer")?;
    let (_, operator) = create_token(&cluster, "ui-operator", "operator")?;
    let (_, executor) = create_token(&cluster, "ui-executor", "executor")?;
    let ca = ca_only(&cluster)?;
    let addr = http_host(&cluster, leader)?;

    // Without credentials: the sign-in page (401), with its assets; no job listed.
    let (code, body) = Request::get("/jobs").tls(&ca).send(&addr)?;
    ensure!(
        code == 401 && body.contains("name=\"token\"") && !body.contains("secured"),
        "/jobs without credentials: {code} {body}"
    );
    let (code, _) = Request::get("/assets/app.css").tls(&ca).send(&addr)?;
    ensure!(code == 200, "the stylesheet without credentials: {code}");
    // A bad token, or a token of a role that is not a person's, is not let in.
    for (token, want) in [("kairos_0000_1111", 401), (executor.as_str(), 403)] {
        let body = format!("token={token}");
        let (code, _, page) = Request::form("/login", &body).tls(&ca).exchange(&addr)?;
        ensure!(code == want, "signing in with {token}: {code} {page}");
    }

    let sign_in = |token: &str| -> Result<String> {
        let body = format!("token={token}");
        let (code, head, page) = Request::form("/login", &body).tls(&ca).exchange(&addr)?;
        ensure!(code == 303, "signing in: {code} {page}");
        let cookie = set_cookie(&head).ok_or_else(|| anyhow!("no cookie in {head:?}"))?;
        let attributes = head
            .iter()
            .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
            .cloned()
            .unwrap_or_default();
        ensure!(
            attributes.contains("HttpOnly")
                && attributes.contains("SameSite=Strict")
                && attributes.contains("Secure"),
            "the cookie's attributes: {attributes}"
        );
        Ok(cookie)
    };

    // A viewer reads, and is offered no action; a write from it is refused.
    let cookie = sign_in(&viewer)?;
    let (code, page) = Request::get("/jobs").tls(&ca).cookie(&cookie).send(&addr)?;
    ensure!(
        code == 200
            && page.contains("secured")
            && !page.contains("Apply to selected")
            && !page.contains("New job"),
        "/jobs as viewer: {code} {page}"
    );
    let (code, page) = Request::get("/jobs/secured")
        .tls(&ca)
        .cookie(&cookie)
        .send(&addr)?;
    ensure!(
        code == 200 && !page.contains("Run now") && !page.contains("Delete"),
        "/jobs/secured as viewer: {code} {page}"
    );
    let (code, page) = Request::form("/jobs/secured/run", "")
        .tls(&ca)
        .cookie(&cookie)
        .send(&addr)?;
    ensure!(code == 403, "run as viewer: {code} {page}");

    // An operator is offered the job actions and may use them, but not membership.
    let cookie = sign_in(&operator)?;
    let (code, page) = Request::get("/jobs/secured")
        .tls(&ca)
        .cookie(&cookie)
        .send(&addr)?;
    ensure!(
        code == 200 && page.contains("Run now") && page.contains("Delete"),
        "/jobs/secured as operator: {code} {page}"
    );
    let (code, head, page) = Request::form("/jobs/secured/run", "")
        .tls(&ca)
        .cookie(&cookie)
        .exchange(&addr)?;
    ensure!(code == 303, "run as operator: {code} {head:?} {page}");
    let (code, page) = Request::get("/cluster")
        .tls(&ca)
        .cookie(&cookie)
        .send(&addr)?;
    ensure!(
        code == 200 && !page.contains("Make leader"),
        "/cluster as operator: {code} {page}"
    );
    let (code, page) = Request::form("/cluster/transfer", "to=1")
        .tls(&ca)
        .cookie(&cookie)
        .send(&addr)?;
    ensure!(
        code == 403 && page.contains("admin"),
        "transfer as operator: {code} {page}"
    );
    // Signing out clears the cookie.
    let (code, head, _) = Request::form("/logout", "")
        .tls(&ca)
        .cookie(&cookie)
        .exchange(&addr)?;
    ensure!(
        code == 303 && set_cookie(&head).as_deref() == Some("kairos_token="),
        "sign out: {code} {head:?}"
    );
    Ok(())
}
