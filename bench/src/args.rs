//! The benchmark's flags; `backtrack-bench --help` is the reference.

use std::path::PathBuf;

use clap::Parser;

/// Measures the directory's hot paths against plain JetStream on one nats-server it starts
/// itself, prints a table and writes the results as JSON.
#[derive(Debug, Clone, Parser)]
#[command(name = "backtrack-bench", version)]
pub struct BenchArgs {
    /// Users in the imported demo tenant (groups and applications scale with them).
    #[arg(long, env = "BACKTRACK_BENCH_USERS", default_value_t = 100_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub users: u64,
    /// Messages of the JetStream baselines [default: as many as the import appended events,
    /// so both sides move the same count of same-sized messages].
    #[arg(long, env = "BACKTRACK_BENCH_RAW_MESSAGES",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub raw_messages: Option<u64>,
    /// Sequential `UpdateObject` calls timed for the change-feed latency.
    #[arg(long, env = "BACKTRACK_BENCH_LATENCY_SAMPLES", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub latency_samples: u64,
    /// Objects in the large tenant appended straight to the log for the time-travel
    /// scenarios (about one group per thousand, the rest users).
    #[arg(long, env = "BACKTRACK_BENCH_TIMETRAVEL_OBJECTS", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timetravel_objects: u64,
    /// Sizes of the recovery scenario, in changes to undo (comma-separated): one incident
    /// per size on a fresh tenant, each undone by a recovery job.
    #[arg(long, env = "BACKTRACK_BENCH_RECOVERY_CHANGES", value_delimiter = ',',
          default_values_t = [10_000, 100_000],
          value_parser = clap::value_parser!(u64).range(20..))]
    pub recovery_changes: Vec<u64>,
    /// Runs only the recovery scenario (no import, baselines, time travel or difference
    /// reports), for quick runs of it.
    #[arg(long, env = "BACKTRACK_BENCH_RECOVERY_ONLY")]
    pub recovery_only: bool,
    /// Audit records of the audit scenario (published, chained, delivered to a syslog and
    /// an HTTP receiver on localhost); 0 skips it.
    #[arg(long, env = "BACKTRACK_BENCH_AUDIT_RECORDS", default_value_t = 100_000)]
    pub audit_records: u64,
    /// Runs only the audit scenario.
    #[arg(long, env = "BACKTRACK_BENCH_AUDIT_ONLY")]
    pub audit_only: bool,
    /// Objects of the tenant the cluster scenario appends to a three-node NATS cluster with
    /// R3 streams; 0 skips it.
    #[arg(
        long,
        env = "BACKTRACK_BENCH_CLUSTER_OBJECTS",
        default_value_t = 50_000
    )]
    pub cluster_objects: u64,
    /// Runs only the cluster scenario.
    #[arg(long, env = "BACKTRACK_BENCH_CLUSTER_ONLY")]
    pub cluster_only: bool,
    /// Where to write the results [default: bench/results.json in the workspace].
    #[arg(long, env = "BACKTRACK_BENCH_OUTPUT")]
    pub output: Option<PathBuf>,
}

impl BenchArgs {
    /// `--output`, else `results.json` next to this crate's manifest.
    pub fn output_path(&self) -> PathBuf {
        self.output
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results.json"))
    }
}
