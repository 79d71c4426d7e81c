//! `kairos-bench ui`: how long the web UI's jobs list takes to answer with few jobs
//! and with many, side by side in one run.
//!
//! Setup: one `kairos scheduler` and one executor on 127.0.0.1 (`--insecure`). First
//! 10 jobs are created and the pages below are timed; then jobs up to `--jobs`
//! (default 100 000, each hourly, as in `scale`) and the same pages are timed again.
//! Each page is fetched `--requests` times, one after the other, over a fresh
//! HTTP/1.1 connection each (the time includes connecting; loopback), and every
//! answer is checked to hold at most one page (50) of jobs:
//! - the first page of the list (name order);
//! - the 500th page (`after=` the last name of page 499) — with 10 jobs, the last
//!   page;
//! - a search by name that matches 100 jobs (it scans every name: the worst case of
//!   a filter);
//! - a metadata filter that matches none (every job looked at);
//! - the dashboard (it counts every job's last outcome).
//!
//! Printed: p50 and max per page and size, and the ratio of the p50s. Every wait is
//! bounded.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use kairos_integration_tests::web::Request;
use kairos_integration_tests::{Cluster, ClusterOptions};

use crate::stats;

/// What to run.
#[derive(Debug)]
pub struct Options {
    pub kairos: PathBuf,
    pub jobs: u32,
    pub requests: u32,
    pub keep: bool,
}

/// Jobs in the small group the large one is compared with.
const FEW: u32 = 10;
/// Jobs per page of the list.
const PAGE: u32 = 50;

pub fn run(options: &Options) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("kairos-bench-ui-")
        .tempdir()?;
    println!(
        "kairos-bench ui: 1 scheduler, 1 executor; the jobs list with {FEW} jobs, then with {} jobs; {} requests per page",
        options.jobs, options.requests
    );
    println!(
        "binary: {} ({} build)",
        options.kairos.display(),
        crate::build_kind(&options.kairos)
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let cluster = Cluster::start(
        &options.kairos,
        dir.path(),
        // A benchmark writes as fast as it can: no per-caller write limit.
        ClusterOptions::new(1, 1).scheduler_flag("--write-rate", "0"),
    )?;
    let leader = cluster.wait_for_leader()?;
    let http = cluster.http_addr(leader).to_string();
    let file = dir.path().join("ran");

    runtime.block_on(crate::scale::create(cluster.addr(leader), 0..FEW, 8, &file))?;
    let few = measure(&http, FEW, options.requests)?;
    let started = Instant::now();
    runtime.block_on(crate::scale::create(
        cluster.addr(leader),
        FEW..options.jobs.max(FEW),
        64,
        &file,
    ))?;
    println!(
        "created {} more jobs in {}",
        options.jobs.saturating_sub(FEW),
        stats::secs(started.elapsed())
    );
    let many = measure(&http, options.jobs, options.requests)?;

    println!();
    println!(
        "{:<34} {:>12} {:>12} {:>14} {:>14} {:>8}",
        "page",
        format!("p50 ({FEW})"),
        format!("max ({FEW})"),
        format!("p50 ({})", options.jobs),
        format!("max ({})", options.jobs),
        "ratio"
    );
    for ((name, a), (_, b)) in few.iter().zip(&many) {
        println!(
            "{name:<34} {:>9.1} ms {:>9.1} ms {:>11.1} ms {:>11.1} ms {:>7.2}×",
            a.p50,
            a.max,
            b.p50,
            b.max,
            b.p50 / a.p50.max(0.001)
        );
    }
    if options.keep {
        let kept = dir.keep();
        println!("kept {}", kept.display());
    }
    Ok(())
}

/// The pages timed with `jobs` jobs stored.
/// The pages timed with `jobs` jobs stored, and how many jobs each must list
/// (`None`: not a list).
fn pages(jobs: u32) -> Vec<(&'static str, String, Option<usize>)> {
    let page = |n: u32| Some(n.min(PAGE) as usize);
    // Page 500 starts after job 499 × 50 − 1 (names are in index order); with fewer
    // jobs, the last page.
    let before_500 = (499 * PAGE).min(jobs.saturating_sub(1)).saturating_sub(1);
    vec![
        ("jobs, first page", "/jobs".to_string(), page(jobs)),
        (
            "jobs, page 500",
            format!("/jobs?after=scale-{before_500:06}"),
            page(jobs - before_500 - 1),
        ),
        (
            "jobs, name search (scans all)",
            "/jobs?q=scale-0999".to_string(),
            // scale-099900 … scale-099999.
            page(jobs.saturating_sub(99_900).min(100)),
        ),
        (
            "jobs, metadata filter (none match)",
            "/jobs?filter=team%3Dnobody".to_string(),
            Some(0),
        ),
        ("dashboard", "/".to_string(), None),
    ]
}

fn measure(http: &str, jobs: u32, requests: u32) -> Result<Vec<(&'static str, stats::Summary)>> {
    let mut out = Vec::new();
    for (name, path, listed) in pages(jobs) {
        let mut times = Vec::with_capacity(requests as usize);
        for _ in 0..requests {
            let started = Instant::now();
            let (code, body) = Request::get(&path).send(http)?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            ensure!(code == 200, "{path}: {code} {body}");
            // Each listed job has a selection box (the caller is an admin).
            let rows = body.matches("name=\"job\" value=").count();
            ensure!(
                rows <= PAGE as usize && listed.is_none_or(|n| rows == n),
                "{path} carried {rows} jobs, not {listed:?}"
            );
        }
        let s = stats::Summary::of(&times);
        println!(
            "{jobs:>7} jobs  {name:<34} p50 {:>7.1} ms  max {:>7.1} ms",
            s.p50, s.max
        );
        out.push((name, s));
    }
    // A bound on the whole: the server is not allowed to stall a page.
    ensure!(
        out.iter()
            .all(|(_, s)| s.max < Duration::from_secs(30).as_secs_f64() * 1000.0),
        "a page took longer than 30 s"
    );
    Ok(out)
}
