//! `backtrack`: the administrator's CLI and the all-in-one server (`backtrack up`).

use clap::Parser;

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
