//! `kairos-bench handoff`: how long writes stop when the leader goes away — stopped
//! gracefully (SIGTERM: it hands leadership over first) or killed (SIGKILL: the
//! others wait out an election timeout).
//!
//! Setup: 3 `kairos scheduler` processes on loopback addresses, default election
//! settings. A writer keeps one `PutJob` in flight at all times (each a new job, so
//! each is a raft write) through `kairos-client`, as any Rust client would: it sends
//! to the node it last reached, follows `Unavailable` + `kairos-leader` to the
//! leader, and on any other failure tries the next node. It records the moment of
//! every acknowledgement.
//!
//! Rounds alternate SIGTERM and SIGKILL (A/B/A/B…), so both modes see the same
//! machine conditions. Each round: wait until writes are steady; stop the leader the
//! round's way; wait until a new leader leads and writes flow again; start the
//! stopped node again on its data directory and wait until it is ready. A round's
//! figure is its **write gap**: the longest time between two consecutive
//! acknowledgements from one second before the stop to five seconds after it — how
//! long a client's writes were unavailable. The ratio of the medians (SIGTERM over
//! SIGKILL) is printed at the end.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use kairos_client::{Client, ClientConfig, RetryPolicy};
use kairos_integration_tests::{Cluster, ClusterOptions, wait_until};
use kairos_proto::v1 as pb;

use crate::stats;

/// How long one write may take before the writer gives up on that node.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting to a node may take before the writer tries the next.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// The pause before a write goes to the next node: short against an election
/// (about a second), so it hardly adds to the gap measured.
const RETRY_PAUSE: Duration = Duration::from_millis(5);
/// Writes that must be acknowledged after a round's restart before the next stop.
const STEADY_WRITES: usize = 50;
/// How long the bench waits for steady writes.
const STEADY_DEADLINE: Duration = Duration::from_secs(60);
/// The part of the timeline a round's gap is looked for in.
const BEFORE: Duration = Duration::from_secs(1);
const AFTER: Duration = Duration::from_secs(5);

/// What to run.
#[derive(Debug)]
pub struct Options {
    pub kairos: PathBuf,
    /// Rounds of each kind.
    pub rounds: u32,
    pub keep: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Term,
    Kill,
}

impl Stop {
    fn name(self) -> &'static str {
        match self {
            Stop::Term => "SIGTERM",
            Stop::Kill => "SIGKILL",
        }
    }
}

/// The writer's record: the moment of every acknowledged write.
#[derive(Debug, Default)]
struct Acks {
    at: Vec<Instant>,
    errors: u64,
}

pub fn run(options: &Options) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("kairos-bench-handoff-")
        .tempdir()?;
    let build = crate::build_kind(&options.kairos);
    println!(
        "handoff: {} build {}, {} rounds each of SIGTERM and SIGKILL, data in {}",
        build,
        options.kairos.display(),
        options.rounds,
        dir.path().display()
    );
    let mut cluster = Cluster::start(
        &options.kairos,
        dir.path(),
        // A benchmark writes as fast as it can: no per-caller write limit.
        ClusterOptions::new(3, 0).scheduler_flag("--write-rate", "0"),
    )?;
    let endpoints: Vec<String> = cluster
        .scheduler_ids()
        .iter()
        .map(|id| cluster.addr(*id).to_string())
        .collect();

    let acks = Arc::new(Mutex::new(Acks::default()));
    let stop_writer = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let writer = runtime.spawn(write_forever(
        endpoints,
        Arc::clone(&acks),
        Arc::clone(&stop_writer),
    ));

    let mut gaps: Vec<(Stop, Duration)> = Vec::new();
    let result = (|| -> Result<()> {
        for round in 0..options.rounds * 2 {
            let how = if round % 2 == 0 {
                Stop::Term
            } else {
                Stop::Kill
            };
            wait_steady(&acks)?;
            let leader = cluster.wait_for_leader()?;
            let stopped_at = Instant::now();
            match how {
                Stop::Term => cluster.terminate_scheduler(leader)?,
                Stop::Kill => cluster.kill_scheduler(leader)?,
            }
            let next = cluster.wait_for_leader_where("a new leader", |l| l != leader)?;
            wait_until(AFTER * 2, "writes after the stop", || {
                let a = acks.lock().ok()?;
                (a.at.last().is_some_and(|t| *t > stopped_at + AFTER)).then_some(())
            })?;
            let gap = largest_gap(
                &acks.lock().map_err(|_| anyhow!("poisoned"))?.at,
                stopped_at,
            );
            println!(
                "round {:>2}  {:<7}  leader {leader} -> {next}  write gap {:>7.1} ms",
                round + 1,
                how.name(),
                gap.as_secs_f64() * 1000.0
            );
            gaps.push((how, gap));
            cluster.restart_scheduler(leader)?;
            cluster.wait_ready(leader)?;
        }
        Ok(())
    })();
    stop_writer.store(true, std::sync::atomic::Ordering::SeqCst);
    // A writer that failed to start retried nothing.
    let retried = runtime
        .block_on(writer)
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    if let Err(e) = result {
        return Err(cluster.with_logs(e));
    }

    let of = |how: Stop| -> Vec<Duration> {
        gaps.iter()
            .filter(|(h, _)| *h == how)
            .map(|(_, g)| *g)
            .collect()
    };
    let (term, kill) = (of(Stop::Term), of(Stop::Kill));
    let errors = acks.lock().map_err(|_| anyhow!("poisoned"))?.errors + retried;
    println!();
    for (how, list) in [(Stop::Term, &term), (Stop::Kill, &kill)] {
        println!(
            "{:<7} write gap: median {:>7.1} ms, max {:>7.1} ms ({} rounds)",
            how.name(),
            stats::median(list).as_secs_f64() * 1000.0,
            stats::max(list).as_secs_f64() * 1000.0,
            list.len()
        );
    }
    let ratio = stats::median(&term).as_secs_f64() / stats::median(&kill).as_secs_f64().max(1e-9);
    println!("SIGTERM / SIGKILL median write gap: {ratio:.3}");
    println!("failed write attempts (retried): {errors}");
    if options.keep {
        let kept = dir.keep();
        println!("kept {}", kept.display());
    }
    Ok(())
}

/// Waits until [`STEADY_WRITES`] writes were acknowledged since the call.
fn wait_steady(acks: &Mutex<Acks>) -> Result<()> {
    let since = Instant::now();
    wait_until(STEADY_DEADLINE, "steady writes", || {
        let a = acks.lock().ok()?;
        (a.at.iter().rev().take_while(|t| **t > since).count() >= STEADY_WRITES).then_some(())
    })
}

/// The longest time between consecutive acknowledgements in [stop − BEFORE, stop +
/// AFTER], the stop itself counting as a boundary only through the acks around it.
fn largest_gap(at: &[Instant], stop: Instant) -> Duration {
    let from = stop.checked_sub(BEFORE).unwrap_or(stop);
    let to = stop + AFTER;
    at.windows(2)
        .filter(|w| w[1] >= from && w[0] <= to)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default()
}

/// One write in flight at a time, following the leader, until `stop`; the number
/// of attempts the client retried.
async fn write_forever(
    endpoints: Vec<String>,
    acks: Arc<Mutex<Acks>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<u64> {
    let mut config = ClientConfig::new(endpoints);
    config.connect_timeout = CONNECT_TIMEOUT;
    config.request_timeout = WRITE_TIMEOUT;
    // Each write goes on until it lands or the rounds' own deadlines notice.
    config.retry = RetryPolicy {
        max_attempts: 1000,
        total_time: Duration::from_secs(60),
        backoff: RETRY_PAUSE,
    };
    let client = Client::new(config)?;
    // Bounded by the stop flag the bench sets at the end of its (bounded) rounds.
    let mut i: u64 = 0;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        i += 1;
        let job = pb::Job {
            name: format!("handoff-{i}"),
            schedule: "@manual".into(),
            action: Some(pb::job::Action::Shell(pb::ShellAction {
                command: "true".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let acked = client.put_job(job).await.is_ok();
        if let Ok(mut a) = acks.lock() {
            if acked {
                a.at.push(Instant::now());
            } else {
                a.errors += 1;
            }
        }
    }
    Ok(client.retries())
}
