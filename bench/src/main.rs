//! `backtrack-bench`: see the library's documentation for what it measures.

use std::process::ExitCode;

use backtrack_bench::args::BenchArgs;
use backtrack_bench::suite::{self, Sizes};
use backtrack_platform::shutdown::terminate_signal;
use clap::Parser;

/// The allocator `backtrack` itself runs with, so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for bad flags (EX_USAGE), as every Backtrack binary uses.
const EXIT_USAGE: u8 = 64;
/// Exit code after SIGINT/SIGTERM (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match BenchArgs::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // Warnings of the services under test (a job retrying, a consumer reconnecting) explain
    // a slow figure; `BACKTRACK_LOG` widens or narrows this.
    let filter = std::env::var(backtrack_platform::telemetry::LOG_ENV).ok();
    backtrack_platform::telemetry::init_with_filter(
        backtrack_platform::telemetry::LogFormat::Text,
        Some(filter.as_deref().unwrap_or("warn")),
    );
    // On SIGINT/SIGTERM the run is dropped, which kills its nats-server and removes
    // its temp dirs.
    let outcome = tokio::select! {
        r = suite::run(Sizes::from(&args)) => r,
        _ = terminate_signal() => {
            eprintln!("backtrack-bench: interrupted");
            return ExitCode::from(EXIT_INTERRUPTED);
        }
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("backtrack-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = outcome.publish(&args.output_path()) {
        eprintln!("backtrack-bench: {e:#}");
        return ExitCode::FAILURE;
    }
    if outcome.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
