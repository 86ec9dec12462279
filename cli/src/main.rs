//! `backtrack`: the administrator's CLI and the all-in-one server (`backtrack up`).

use clap::Parser;

/// Decoding events and folding JSON attributes allocate many small values; mimalloc
/// serves them faster than the system allocator (see README, Benchmarks).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = backtrack_cli::args::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("backtrack: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(backtrack_cli::run(cli));
    // Stop every task first so RocksDB is closed before the process exits: exiting with
    // a database still open can abort in its static destructors.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    std::process::exit(code);
}
