//! Log output: `tracing` events to stderr, as text or JSON lines.
//!
//! The level filter comes from `RUST_LOG` (same syntax as `tracing-subscriber`'s
//! `EnvFilter`, e.g. `info,kairos_scheduler::raft=debug`). Without it, the role
//! commands log at `info` (what an operator cares about: leader changes, executors
//! joining, fires) and the client commands at `warn`, so a script reading a client's
//! stdout never sees log noise — logs always go to stderr in any case.
//!
//! Not here: metrics (the scheduler serves `/metrics`) and any log file handling;
//! run the process under systemd, docker or a shell redirect for that.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use clap::ValueEnum;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    // Human-readable lines.
    #[default]
    Text,
    // One JSON object per line, for log collectors.
    Json,
}

/// Level for `dev`, `scheduler` and `executor` when `RUST_LOG` is unset.
pub const ROLE_DEFAULT_LEVEL: LevelFilter = LevelFilter::INFO;

/// Level for client commands when `RUST_LOG` is unset.
pub const CLIENT_DEFAULT_LEVEL: LevelFilter = LevelFilter::WARN;

/// Installs the global subscriber. Fails only if one is installed already.
pub fn init(format: LogFormat, default_level: LevelFilter) -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .with_default_directive(default_level.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("setting up logging: {e}"))
}
