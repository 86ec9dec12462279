//! What `backtrack up` / `serve` prints once it serves: where it listens, where its data
//! and admin token are, and what to try first.

use std::path::Path;

use super::parts::Parts;
use crate::args::UpArgs;
use crate::output::announceln;

/// Prints the banner of a process that is up.
pub(super) fn announce(parts: Parts, args: &UpArgs, served: &[&str], nats_url: &str, data: &Path) {
    if parts.all_in_one {
        announceln!("Backtrack is up.");
    } else {
        announceln!("{} is up: {}", parts.name, served.join(", "));
    }
    announceln!("  gRPC      http://{}", args.grpc_addr);
    announceln!(
        "  health    http://{}/healthz  http://{}/readyz  metrics http://{}/metrics",
        args.http_addr,
        args.http_addr,
        args.http_addr
    );
    if parts.all_in_one {
        announceln!(
            "  NATS      {nats_url}  (change feed: subjects bt.ev.<tenant>.> on stream BT_EVENTS)"
        );
        announceln!("  data      {}", data.display());
        announceln!(
            "  token     {}  (the CLI reads it from there)",
            data.join("admin.token").display()
        );
        if let Some(exports) = cli_environment(args.grpc_addr, data) {
            announceln!("  CLI       {exports}  (in the CLI's terminal: not the defaults)");
        }
        if args.demo {
            announceln!(
                "Try: backtrack overview --tenant contoso   |   backtrack dir list --tenant contoso --kind group   |   backtrack audit query --tenant contoso --action alert.raised"
            );
        } else {
            announceln!(
                "Try: backtrack tenant list   |   backtrack tenant create fabrikam   (--demo seeds the demo tenant contoso)"
            );
        }
    } else {
        announceln!("  NATS      {nats_url}");
        announceln!("  data      {}", data.display());
    }
}

/// The `export` a CLI in another terminal needs to reach this process and find its admin
/// token, when `up` does not run where the CLI looks by default (`--server`
/// `http://127.0.0.1:50051`, `--data-dir ./backtrack-data`); `None` when it does.
fn cli_environment(grpc: std::net::SocketAddr, data: &Path) -> Option<String> {
    let mut exports = Vec::new();
    if grpc != std::net::SocketAddr::from(([127, 0, 0, 1], 50051)) {
        let mut reach = grpc;
        if grpc.ip().is_unspecified() {
            reach.set_ip(if grpc.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        exports.push(format!("BACKTRACK_SERVER=http://{reach}"));
    }
    if data != Path::new("./backtrack-data") && data != Path::new("backtrack-data") {
        let absolute = std::fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf());
        exports.push(format!("BACKTRACK_DATA_DIR={}", absolute.display()));
    }
    (!exports.is_empty()).then(|| format!("export {}", exports.join(" ")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_is_told_where_up_runs_only_when_it_is_not_the_default() {
        let default = "127.0.0.1:50051".parse().unwrap();
        assert_eq!(
            cli_environment(default, Path::new("./backtrack-data")),
            None
        );
        let any = "0.0.0.0:50071".parse().unwrap();
        assert_eq!(
            cli_environment(any, Path::new("backtrack-data")).as_deref(),
            Some("export BACKTRACK_SERVER=http://127.0.0.1:50071")
        );
        let v6 = "[::]:50051".parse().unwrap();
        let told = cli_environment(v6, &std::env::temp_dir()).unwrap();
        assert!(
            told.starts_with("export BACKTRACK_SERVER=http://[::1]:50051 BACKTRACK_DATA_DIR=/"),
            "{told}"
        );
    }
}
