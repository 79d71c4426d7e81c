//! `kairos`: one binary for every part of Kairos.
//!
//! The role subcommands (`dev`, `scheduler`, `executor`) turn flags, `KAIROS_*`
//! environment variables and an optional TOML file into the libraries' validated
//! configs and run them until SIGINT or SIGTERM; the client subcommands (`job`,
//! `exec`, `cluster`, `executors`) talk gRPC to a scheduler and print what it says,
//! as a table for people or as the proto3 JSON mapping (or YAML) for scripts.
//!
//! This file stays thin: parse the command line, set up logging, hand over to
//! [`roles`] or [`client`], and turn the outcome into an exit code. Every error ends
//! here as one line on stderr, `error: <message>`, and exit code 1 (clap's own usage
//! errors exit with 2). Nothing in the binary decides scheduling: that lives in the
//! scheduler and executor libraries, which tests drive through the same `run`
//! functions used here.

mod args;
mod certs;
mod client;
mod config_file;
mod errors;
mod logging;
mod output;
mod roles;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

/// How long the runtime waits, once a command has returned, for blocking tasks it
/// cannot cancel (a DNS lookup of a peer that vanished can take many seconds). The
/// roles have drained and written everything by then: nothing is lost by leaving.
const RUNTIME_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", errors::render(&err));
            ExitCode::FAILURE
        }
    }
}

/// Dispatches one parsed command line.
async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    match cli.command {
        Command::Dev(args) => {
            let settings = settings::dev(&args, &global)?;
            logging::init(settings.log_format, logging::ROLE_DEFAULT_LEVEL)?;
            roles::run_dev(settings).await
        }
        Command::Scheduler(args) => {
            let settings = settings::scheduler(&args, &global)?;
            logging::init(settings.log_format, logging::ROLE_DEFAULT_LEVEL)?;
            roles::run_scheduler(settings.config).await
        }
        Command::Executor(args) => {
            let settings = settings::executor(&args, &global)?;
            logging::init(settings.log_format, logging::ROLE_DEFAULT_LEVEL)?;
            roles::run_executor(settings.config).await
        }
        Command::Job { command } => {
            init_client_logging(&global)?;
            client::run(&global, client::Request::Job(command)).await
        }
        Command::Exec { command } => {
            init_client_logging(&global)?;
            client::run(&global, client::Request::Exec(command)).await
        }
        Command::Cluster { command } => {
            init_client_logging(&global)?;
            client::run(&global, client::Request::Cluster(command)).await
        }
        Command::Executors => {
            init_client_logging(&global)?;
            client::run(&global, client::Request::Executors).await
        }
        Command::Token { command } => {
            init_client_logging(&global)?;
            client::run(&global, client::Request::Token(command)).await
        }
        Command::Import(args) => {
            init_client_logging(&global)?;
            client::run(&global, client::Request::Import(args)).await
        }
        Command::Certs { command } => {
            init_client_logging(&global)?;
            certs::run(command, global.output)
        }
    }
}

fn init_client_logging(global: &args::GlobalArgs) -> anyhow::Result<()> {
    logging::init(
        global.log_format.unwrap_or_default(),
        logging::CLIENT_DEFAULT_LEVEL,
    )
}
