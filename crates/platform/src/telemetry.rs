//! Logging: `tracing` events to stderr, filtered by `BACKTRACK_LOG`.

use tracing_subscriber::EnvFilter;

/// The environment variable holding the log filter (`EnvFilter` syntax, e.g.
/// `info,backtrack_directory=debug`).
pub const LOG_ENV: &str = "BACKTRACK_LOG";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the global subscriber with the filter from `BACKTRACK_LOG` (default `info`).
/// Later calls (e.g. from several tests) leave the first subscriber in place.
pub fn init(format: LogFormat) {
    init_with_filter(format, std::env::var(LOG_ENV).ok().as_deref());
}

/// Like [`init`], with the filter given directly (e.g. from a `--log` flag) instead of read
/// from the environment. `None` means `info`.
///
/// An unparsable filter falls back to `info` with a warning rather than failing start-up.
pub fn init_with_filter(format: LogFormat, filter: Option<&str>) {
    let (filter, bad_filter) = match filter.map(EnvFilter::try_new) {
        None => (EnvFilter::new("info"), None),
        Some(Ok(filter)) => (filter, None),
        Some(Err(err)) => (EnvFilter::new("info"), Some(err)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init().is_ok(),
        LogFormat::Json => builder.json().try_init().is_ok(),
    };
    if let (true, Some(err)) = (installed, bad_filter) {
        tracing::warn!("ignoring the log filter ({err}); logging at info");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_twice_is_harmless() {
        init_with_filter(LogFormat::Json, Some("not a [valid filter"));
        init_with_filter(LogFormat::Text, Some("debug"));
        tracing::info!("still logging");
    }
}
