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
    std::process::exit(code);
}
