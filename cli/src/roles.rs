//! The long-running roles: `kairos dev`, `kairos scheduler`, `kairos executor`.
//!
//! Each role owns one [`CancellationToken`]. The first SIGINT (Ctrl-C) or SIGTERM
//! cancels it and the libraries drain and stop; the process exits 0 once they have
//! returned. A second signal while draining exits at once with status 130, for the
//! operator who does not want to wait.
//!
//! `kairos dev` starts a one-node scheduler group (node id 1) and, once the scheduler
//! listens, one executor in the same process dialling the bound gRPC address (a
//! wildcard bind address is dialled on loopback). A signal drains the executor first
//! (its runs may finish within `--shutdown-grace`, their reports reach the
//! scheduler), then stops the scheduler. If either stops on its own — a fatal
//! scheduler error, an executor config it refuses — the other is stopped too and the
//! first error is reported, so `dev` never lingers half-alive.
//!
//! Deliberately not here: any scheduling or running logic (the libraries own it),
//! and daemonising or PID files (leave that to systemd or the container runtime).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::anyhow;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::settings::DevSettings;

/// Exit status when a second signal cuts the drain short (128 + SIGINT).
const FORCED_EXIT_CODE: i32 = 130;

/// Runs `kairos dev` until a signal or a fatal error.
pub async fn run_dev(settings: DevSettings) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    // The scheduler outlives the executor's drain, so the last reports land.
    let scheduler_stop = CancellationToken::new();

    let data_dir = settings.scheduler.data_dir.clone();
    let node_id = settings.scheduler.node_id;
    let handle = kairos_scheduler::start(settings.scheduler, scheduler_stop.clone())
        .await
        .map_err(|e| anyhow!("starting the scheduler: {e}"))?;
    let grpc_addr = handle.grpc_addr();
    let http_addr = handle.http_addr();

    let mut executor = settings.executor;
    executor.schedulers = vec![dial_addr(grpc_addr).to_string()];
    eprintln!(
        "kairos dev: scheduler node {node_id} (data in {data})\n  \
         gRPC  {grpc_addr}  (kairos --endpoint http://{dial} ...)\n  \
         HTTP  http://{http}/  (web UI, /metrics)\n  \
         executor {id:?} (capacity {capacity}) dialling {dial}\n\
         Press Ctrl-C to stop.",
        data = data_dir.display(),
        dial = dial_addr(grpc_addr),
        http = dial_addr(http_addr),
        id = executor.id,
        capacity = executor.capacity,
    );

    let scheduler = handle.wait();
    let executor = kairos_executor::run(executor, shutdown.clone());
    tokio::pin!(scheduler, executor);
    let (scheduler_result, executor_result) = tokio::select! {
        result = &mut scheduler => {
            if !shutdown.is_cancelled() {
                warn!("scheduler stopped on its own; stopping the executor");
            }
            shutdown.cancel();
            (result, executor.await)
        }
        result = &mut executor => {
            if !shutdown.is_cancelled() {
                warn!("executor stopped on its own; stopping the scheduler");
            }
            shutdown.cancel();
            scheduler_stop.cancel();
            (scheduler.await, result)
        }
    };
    scheduler_result.map_err(|e| anyhow!("scheduler: {e}"))?;
    executor_result.map_err(|e| anyhow!("executor: {e}"))?;
    info!("stopped");
    Ok(())
}

/// Runs `kairos scheduler` until a signal or a fatal error.
pub async fn run_scheduler(config: kairos_scheduler::Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    info!(
        node_id = config.node_id,
        data_dir = %config.data_dir.display(),
        grpc_addr = %config.grpc_addr,
        http_addr = %config.http_addr,
        peers = config.peers.len(),
        "starting scheduler"
    );
    kairos_scheduler::run(config, shutdown)
        .await
        .map_err(|e| anyhow!("scheduler: {e}"))?;
    info!("stopped");
    Ok(())
}

/// Runs `kairos executor` until a signal or a fatal error.
pub async fn run_executor(config: kairos_executor::Config) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone())?;
    info!(
        id = %config.id,
        schedulers = %config.schedulers.join(","),
        capacity = config.capacity,
        "starting executor"
    );
    kairos_executor::run(config, shutdown)
        .await
        .map_err(|e| anyhow!("executor: {e}"))?;
    info!("stopped");
    Ok(())
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM; exits on the second.
fn spawn_signal_handler(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};

    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| anyhow!("installing the SIGINT handler: {e}"))?;
    let mut terminate = signal(SignalKind::terminate())
        .map_err(|e| anyhow!("installing the SIGTERM handler: {e}"))?;
    tokio::spawn(async move {
        let mut seen = 0;
        loop {
            let name = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            seen += 1;
            if seen == 1 {
                info!(
                    signal = name,
                    "shutting down; send it again to exit at once"
                );
                shutdown.cancel();
            } else {
                warn!(
                    signal = name,
                    "exiting without waiting for shutdown to finish"
                );
                std::process::exit(FORCED_EXIT_CODE);
            }
        }
    });
    Ok(())
}

/// The address to dial for a bound address: a wildcard bind is reached on loopback.
fn dial_addr(bound: SocketAddr) -> SocketAddr {
    match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bound.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), bound.port())
        }
        _ => bound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_are_dialled_on_loopback() -> anyhow::Result<()> {
        assert_eq!(
            dial_addr("0.0.0.0:7070".parse()?),
            "127.0.0.1:7070".parse()?
        );
        assert_eq!(dial_addr("[::]:7070".parse()?), "[::1]:7070".parse()?);
        assert_eq!(
            dial_addr("10.1.2.3:7070".parse()?),
            "10.1.2.3:7070".parse()?
        );
        Ok(())
    }
}
