//! `backtrack-bench`: in one run, on one real `nats-server` it starts itself, measures the
//! directory's, the snapshotter's and the differ's hot paths next to plain-JetStream and
//! plain-RocksDB baselines (and `git diff`) of the same shape, and reports each figure
//! against its target.
//!
//! A tour of the modules:
//! - [`args`]: the flags (`--users`, `--raw-messages`, `--latency-samples`,
//!   `--timetravel-objects`, `--recovery-changes`, `--recovery-only`, `--output`).
//! - [`testbed`]: nats-server + the directory in-process + its gRPC API behind the auth
//!   interceptor + an authenticated client, assembled as `backtrack up` assembles them.
//! - [`scenarios`]: one module per measurement (baselines, bulk import, replay, change-feed
//!   latency, peak memory, a large tenant written straight to the log, the time-travel
//!   build, backups, lookups, listings and verification, difference reports against
//!   `git diff`, recovery jobs); each returns plain numbers.
//! - [`suite`]: runs the scenarios in order on one testbed and turns them into rows.
//! - [`report`]: rows, targets, the printed table and `results.json`.

pub mod args;
pub mod report;
pub mod scenarios;
pub mod suite;
pub mod testbed;
