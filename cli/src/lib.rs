//! The `backtrack` command line: admin commands over gRPC and `backtrack up`, which runs
//! every service in one process.
//!
//! Modules: [`args`] (the clap definitions — `--help` is the reference), [`client`]
//! (server address and token discovery), [`output`] (tables for people, JSON for
//! scripts), [`up`] (the all-in-one server) and [`serve`] (one service per process), with
//! [`up_metrics`] (`/metrics`) and [`readiness`] (`/readyz`, gRPC health), [`commands`] (one module per command group),
//! [`demo`] (the deterministic demo tenant), [`import`] (bulk import shared by
//! `dir import` and `demo seed`), [`point`] (parsing `--at POINT` for backups and time
//! travel).

pub mod args;
pub mod client;
pub mod commands;
pub mod demo;
pub mod import;
pub mod import_file;
pub mod listing;
pub mod output;
pub mod point;
pub mod readiness;
pub mod serve;
pub mod up;
pub mod up_metrics;

use args::{Cli, Command};

/// Runs a parsed command line and returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Up(ref a) => {
            let mut a = a.clone();
            a.data_dir = cli.global.data_dir.clone();
            a.otlp_endpoint = cli.global.otlp_endpoint.clone();
            up::run(a).await
        }
        Command::Serve(ref a) => {
            let mut a = a.clone();
            a.up.data_dir = cli.global.data_dir.clone();
            a.up.otlp_endpoint = cli.global.otlp_endpoint.clone();
            a.up.directory_server = cli.global.directory_server.clone();
            serve::run(a).await
        }
        _ => match cli.global.otlp_endpoint.clone() {
            // Traced: the command is the root span, and its calls carry its context.
            Some(endpoint) => {
                let _tracing = backtrack_platform::telemetry::init_tracing(
                    backtrack_platform::telemetry::LogFormat::Text,
                    Some(&endpoint),
                    "backtrack-cli",
                );
                let span = tracing::info_span!("cli", otel.name = %format!("backtrack {}", cli.command.name()));
                tracing::Instrument::instrument(commands::dispatch(cli), span).await
            }
            None => commands::dispatch(cli).await,
        },
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            let code = output::exit_code(&e);
            eprintln!("backtrack: {}", output::describe_error(&e));
            code
        }
    }
}
