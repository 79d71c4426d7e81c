//! `kairos-bench`: benchmarks that run a built `kairos` binary as separate processes
//! on 127.0.0.1 and print figures (not pass/fail). BENCHMARKS.md records what they
//! measure and the figures they gave.
//!
//! The bench builds nothing: it runs the binary given with `--kairos`, by default
//! the workspace's release build if there is one, else the debug build.
//!
//! ```text
//! kairos-bench failover [--kairos PATH] [--kills N] [--keep]
//! kairos-bench lateness [--kairos PATH] [--jobs N] [--secs S] [--keep]
//! kairos-bench scale [--kairos PATH] [--jobs N] [--in-flight N] [--secs S] [--keep]
//! kairos-bench handoff [--kairos PATH] [--rounds N] [--keep]
//! kairos-bench ui [--kairos PATH] [--jobs N] [--requests N] [--keep]
//! ```

mod failover;
mod handoff;
mod lateness;
mod lines;
mod scale;
mod stats;
mod ui;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "kairos-bench", about = "Benchmarks for Kairos")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// SIGKILL the leader of a 3-scheduler group again and again while a job fires
    /// every second, and measure how long firing stops.
    Failover {
        /// The `kairos` binary to run [default: the workspace's
        /// target/x86_64-unknown-linux-gnu/release/kairos if it exists, else the
        /// debug one].
        #[arg(long, value_name = "PATH")]
        kairos: Option<PathBuf>,
        /// How many times to kill the leader.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
        kills: u32,
        /// Keep the directory with every node's data and log (its path is printed).
        #[arg(long)]
        keep: bool,
    },
    /// Fire many `@every 1s` jobs on a 3-scheduler group with 2 executors and
    /// measure how late each process starts after its scheduled instant.
    Lateness {
        /// The `kairos` binary to run [default: as for `failover`].
        #[arg(long, value_name = "PATH")]
        kairos: Option<PathBuf>,
        /// How many jobs fire every second.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=5000))]
        jobs: u32,
        /// How many seconds of instants to measure (after a 5 s warm-up).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=3600))]
        secs: u32,
        /// Keep the directory with every node's data and log (its path is printed).
        #[arg(long)]
        keep: bool,
    },
    /// Stop the leader of a 3-scheduler group again and again, alternately with
    /// SIGTERM (it hands leadership over) and SIGKILL, while a client writes without
    /// pause, and measure how long writes stop each time.
    Handoff {
        /// The `kairos` binary to run [default: as for `failover`].
        #[arg(long, value_name = "PATH")]
        kairos: Option<PathBuf>,
        /// Rounds of each kind of stop.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
        rounds: u32,
        /// Keep the directory with every node's data and log (its path is printed).
        #[arg(long)]
        keep: bool,
    },
    /// Create many jobs (each firing hourly, spread over the hour) on a 3-scheduler
    /// group and measure writes, reads, memory, fire lateness and a failover.
    Scale {
        /// The `kairos` binary to run [default: as for `failover`].
        #[arg(long, value_name = "PATH")]
        kairos: Option<PathBuf>,
        /// How many jobs to create.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        jobs: u32,
        /// How many PutJob calls to keep in flight while creating them.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
        in_flight: u32,
        /// How many seconds of firing to measure (the leader is killed half-way).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(4..=3600))]
        secs: u32,
        /// Keep the directory with every node's data and log (its path is printed).
        #[arg(long)]
        keep: bool,
    },
    /// Time the web UI's jobs list and dashboard with 10 jobs and with many, in one
    /// run, and check that no answer carries more than one page of jobs.
    Ui {
        /// The `kairos` binary to run [default: as for `failover`].
        #[arg(long, value_name = "PATH")]
        kairos: Option<PathBuf>,
        /// How many jobs the large group holds.
        #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(10..=1_000_000))]
        jobs: u32,
        /// Requests per page and size.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
        requests: u32,
        /// Keep the directory with the node's data and log (its path is printed).
        #[arg(long)]
        keep: bool,
    },
}

/// "release" or "debug", from the binary's path.
fn build_kind(kairos: &Path) -> &'static str {
    if kairos.components().any(|c| c.as_os_str() == "release") {
        "release"
    } else {
        "debug"
    }
}

/// The workspace's own build of `kairos`: release if present, else debug.
fn default_kairos() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize().unwrap_or(root);
    let target = root.join("target").join("x86_64-unknown-linux-gnu");
    let release = target.join("release").join("kairos");
    if release.is_file() {
        release
    } else {
        target.join("debug").join("kairos")
    }
}

/// The binary to run: `--kairos`, else the workspace's build; it must exist.
fn kairos_binary(kairos: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let kairos = kairos.unwrap_or_else(default_kairos);
    anyhow::ensure!(
        kairos.is_file(),
        "no kairos binary at {} (build it with `cargo build -p kairos`, or pass --kairos)",
        kairos.display()
    );
    Ok(kairos)
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Failover {
            kairos,
            kills,
            keep,
        } => failover::run(&failover::Options {
            kairos: kairos_binary(kairos)?,
            kills,
            keep,
        }),
        Command::Lateness {
            kairos,
            jobs,
            secs,
            keep,
        } => lateness::run(&lateness::Options {
            kairos: kairos_binary(kairos)?,
            jobs,
            secs,
            keep,
        }),
        Command::Handoff {
            kairos,
            rounds,
            keep,
        } => handoff::run(&handoff::Options {
            kairos: kairos_binary(kairos)?,
            rounds,
            keep,
        }),
        Command::Scale {
            kairos,
            jobs,
            in_flight,
            secs,
            keep,
        } => scale::run(&scale::Options {
            kairos: kairos_binary(kairos)?,
            jobs,
            in_flight: in_flight as usize,
            secs,
            keep,
        }),
        Command::Ui {
            kairos,
            jobs,
            requests,
            keep,
        } => ui::run(&ui::Options {
            kairos: kairos_binary(kairos)?,
            jobs,
            requests,
            keep,
        }),
    }
}
