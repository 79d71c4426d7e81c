//! The Rust client (`kairos-client`) against a real three-scheduler group, as a
//! service embedding it would use it: one `Client` over every scheduler's address,
//! with its default retry policy, riding through the leader's SIGKILL.
//!
//! After the kill the client writes through to the new leader by itself; the run
//! waits until the executor has re-dialled the new leader. The runs are checked by
//! their recorded outcome and output, and each `run_job` call makes exactly one run
//! (the client never resends one that may have reached a leader).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use kairos_client::{Client, ClientConfig};
use kairos_integration_tests::{Cluster, ClusterOptions};
use kairos_proto::v1 as pb;

const BIN: &str = env!("CARGO_BIN_EXE_kairos");

/// How long a run may take to end, failover included.
const RUN_DEADLINE: Duration = Duration::from_secs(60);

const JOB: &str = r#"
name: rust-client
schedule: "@manual"
shell: { command: "echo from-rust-client-$KAIROS_ATTEMPT" }
"#;

/// Puts the job, runs it once and waits for the run's end; answers the run.
async fn put_run_and_wait(client: &Client, job: &pb::Job) -> Result<pb::Execution> {
    client.put_job(job.clone()).await.context("put_job")?;
    let run = client
        .run_job(&job.name)
        .await
        .context("run_job")?
        .execution
        .context("run_job answered no execution")?;
    let done = client
        .wait(run, RUN_DEADLINE, |_| {})
        .await
        .context("wait")?;
    Ok(done)
}

#[test]
fn the_rust_client_rides_through_a_leader_kill() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster::start(BIN.as_ref(), dir.path(), ClusterOptions::new(3, 1))?;
    let leader = cluster.wait_for_leader()?;
    // The leader first, so the kill takes away the node the client talks to.
    let mut endpoints = vec![cluster.addr(leader).to_string()];
    for id in cluster.scheduler_ids() {
        if id != leader {
            endpoints.push(cluster.addr(id).to_string());
        }
    }
    let client = Client::new(ClientConfig::new(endpoints))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let docs = kairos_client::documents::parse("job.yaml", JOB)?;
    let job = docs.into_iter().next().context("the job document")?.job;

    let before = runtime.block_on(put_run_and_wait(&client, &job))?;
    ensure!(
        before.status == "succeeded" && before.output.contains("from-rust-client-1"),
        "the first run: {before:?}"
    );

    cluster.kill_scheduler(leader)?;

    // The same client, the same calls: it finds the new leader by itself. A write
    // first; the run once the executor has re-dialled the new leader (a manual
    // run does not wait for an executor as a scheduled fire does).
    let mut changed = job.clone();
    changed.description = "written after the leader's kill".into();
    runtime
        .block_on(client.put_job(changed))
        .with_context(|| format!("put_job after killing scheduler {leader}"))?;
    cluster.wait_for_executors(1)?;
    let after = runtime
        .block_on(put_run_and_wait(&client, &job))
        .with_context(|| format!("after killing scheduler {leader}"))?;
    ensure!(
        after.status == "succeeded" && after.id != before.id,
        "the run after the kill: {after:?}"
    );
    let new_leader = cluster.wait_for_leader()?;
    ensure!(new_leader != leader, "no new leader");
    let runs = runtime
        .block_on(client.list_executions("rust-client", 100))?
        .executions;
    let manual = runs.iter().filter(|e| e.trigger == "manual").count();
    ensure!(
        manual == 2,
        "two run_job calls, two manual runs (never one twice): {runs:?}"
    );
    Ok(())
}
