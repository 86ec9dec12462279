//! `backtrack-bench`: see the library's documentation for what it measures.

use std::process::ExitCode;

use backtrack_bench::args::BenchArgs;
use backtrack_bench::suite::{self, Sizes};
use clap::Parser;

/// Exit code for bad flags (EX_USAGE), as every Backtrack binary uses.
const EXIT_USAGE: u8 = 64;

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
    let outcome = match suite::run(Sizes::from(&args)).await {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("backtrack-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("\n{}", outcome.report.table());
    let path = args.output_path();
    if let Err(e) = outcome.report.write(&path) {
        eprintln!("backtrack-bench: {e:#}");
        return ExitCode::FAILURE;
    }
    println!("results written to {}", path.display());
    let missed = outcome.report.missed();
    if !missed.is_empty() {
        let names: Vec<&str> = missed.iter().map(|m| m.name.as_str()).collect();
        println!("targets missed: {}", names.join(", "));
    }
    for failure in &outcome.failures {
        eprintln!("backtrack-bench: FAILED: {failure}");
    }
    if outcome.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
