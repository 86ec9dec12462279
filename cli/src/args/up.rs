//! `backtrack up` and `backtrack serve SERVICE`: the flags of a serving process.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// NATS URL of an existing JetStream server; without it, nats-server is started under the data dir.
    #[arg(long, env = "BACKTRACK_NATS_URL")]
    pub nats: Option<String>,
    /// NATS credentials file.
    #[arg(long, env = "BACKTRACK_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// CA bundle (PEM) NATS's TLS certificate must chain to; requires TLS.
    #[arg(long, env = "BACKTRACK_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// TLS client certificate (PEM) for NATS servers that verify clients (with --nats-tls-key).
    #[arg(long, env = "BACKTRACK_NATS_TLS_CERT")]
    pub nats_tls_cert: Option<PathBuf>,
    /// The TLS client certificate's private key (PEM).
    #[arg(long, env = "BACKTRACK_NATS_TLS_KEY")]
    pub nats_tls_key: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, env = "BACKTRACK_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: SocketAddr,
    /// HTTP listen address (health: /healthz, /readyz).
    #[arg(long, env = "BACKTRACK_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Seed the demo tenant `contoso` on first start.
    #[arg(long, env = "BACKTRACK_DEMO")]
    pub demo: bool,
    /// Users in the demo tenant.
    #[arg(long, env = "BACKTRACK_DEMO_USERS", default_value_t = 500)]
    pub demo_users: usize,
    /// Days soft-deleted objects stay in the recycle bin.
    #[arg(long, env = "BACKTRACK_RECYCLE_BIN_DAYS", default_value_t = 30)]
    pub recycle_bin_days: u64,
    /// Replicas of the event stream when it is created.
    #[arg(long, env = "BACKTRACK_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// Backup schedule of tenants without a policy of their own: cron with seconds, UTC ('' = none).
    #[arg(long, env = "BACKTRACK_BACKUP_SCHEDULE", default_value = "0 0 2 * * *")]
    pub backup_schedule: String,
    /// Days a backup stays usable for tenants without a policy of their own.
    #[arg(long, env = "BACKTRACK_BACKUP_RETENTION_DAYS", default_value_t = 7)]
    pub backup_retention_days: u32,
    /// The shortest interval a backup schedule may have, in seconds (a tenant's policy and
    /// --backup-schedule alike).
    #[arg(
        long,
        env = "BACKTRACK_BACKUP_MIN_INTERVAL_SECS",
        default_value_t = 300
    )]
    pub backup_min_interval_secs: u64,
    /// Days difference reports are kept.
    #[arg(long, env = "BACKTRACK_REPORT_RETENTION_DAYS", default_value_t = 30)]
    pub report_retention_days: u64,
    /// JSON file listing the SIEM sinks audit records are exported to (see docs/audit-export.md).
    #[arg(long, env = "BACKTRACK_AUDIT_SINKS")]
    pub audit_sinks: Option<PathBuf>,
    /// Whole-tenant recoveries wait for a second GlobalAdministrator's `backtrack approve`.
    #[arg(long, env = "BACKTRACK_RECOVERY_APPROVAL")]
    pub recovery_approval: bool,
    /// Recovery operations decided and applied together (one checkpoint per batch).
    #[arg(long, env = "BACKTRACK_RECOVERY_BATCH", default_value_t = 1000)]
    pub recovery_batch: usize,
    /// Seconds after which a recovery job's lease, not refreshed, counts as abandoned and
    /// the job is resumed (its process died).
    #[arg(long, env = "BACKTRACK_RECOVERY_LEASE_STALE_SECS", default_value_t = 5)]
    pub recovery_lease_stale_secs: u64,
    /// Applied events between two checkpoints of the time-travel store (0 = none).
    #[arg(long, env = "BACKTRACK_CHECKPOINT_EVERY", default_value_t = 1_000_000)]
    pub checkpoint_every: u64,
    /// Also accept RS256/ES256 tokens of this OpenID Connect issuer (their `iss`); needs
    /// --jwt-audience and --jwks-file or --jwks-url.
    #[arg(long, env = "BACKTRACK_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The `aud` the identity provider's tokens must carry.
    #[arg(long, env = "BACKTRACK_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// The identity provider's signing keys, a JWKS JSON file (reread every --jwks-refresh-secs).
    #[arg(long, env = "BACKTRACK_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,
    /// The identity provider's JWKS URL (its jwks_uri), fetched at start and every --jwks-refresh-secs.
    #[arg(long, env = "BACKTRACK_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// Seconds between two reloads of the JWKS (at least 10).
    #[arg(long, env = "BACKTRACK_JWKS_REFRESH_SECS", default_value_t = 300)]
    pub jwks_refresh_secs: u64,
    /// Do not raise alerts. By default dangerous changes (deleted or weakened conditional
    /// access policies, mass deletions, new role assignments, …) become `alert.raised`
    /// records on the audit stream, and so reach every SIEM sink.
    #[arg(long, env = "BACKTRACK_NO_ALERTS")]
    pub no_alerts: bool,
    /// Deletions by one actor within --alert-window-mins that raise a massDeletion alert.
    #[arg(long, env = "BACKTRACK_ALERT_MASS_DELETIONS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub alert_mass_deletions: u64,
    /// Links removed by one actor within --alert-window-mins that raise a massLinkRemoval alert.
    #[arg(long, env = "BACKTRACK_ALERT_MASS_LINK_REMOVALS", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub alert_mass_link_removals: u64,
    /// The sliding window, in minutes, the mass-change alerts count in.
    #[arg(long, env = "BACKTRACK_ALERT_WINDOW_MINS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=10_080))]
    pub alert_window_mins: u64,
    /// Refused calls (UNAUTHENTICATED or PERMISSION_DENIED) of one caller — a token's
    /// subject, or an address without a valid token — within --alert-denied-window-mins
    /// that raise an accessDeniedBurst alert (0: never).
    #[arg(long, env = "BACKTRACK_ALERT_DENIED_CALLS", default_value_t = 20)]
    pub alert_denied_calls: usize,
    /// Refused calls in one tenant, by any callers, within --alert-denied-window-mins that
    /// raise an accessDeniedSurge alert (a spray of callers each below
    /// --alert-denied-calls; 0: never).
    #[arg(
        long,
        env = "BACKTRACK_ALERT_DENIED_TENANT_CALLS",
        default_value_t = 200
    )]
    pub alert_denied_tenant_calls: usize,
    /// The sliding window, in minutes, refused calls are counted in.
    #[arg(long, env = "BACKTRACK_ALERT_DENIED_WINDOW_MINS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1_440))]
    pub alert_denied_window_mins: u64,
    /// Log format.
    #[arg(long, env = "BACKTRACK_LOG_FORMAT", value_enum, default_value_t = backtrack_platform::telemetry::LogFormat::Text)]
    pub log_format: backtrack_platform::telemetry::LogFormat,
    /// The token signing key (64 hex digits); default `<data dir>/signing.key`, which `up`
    /// creates. Every process of one deployment needs the same key.
    #[arg(long, env = "BACKTRACK_SIGNING_KEY")]
    pub signing_key: Option<PathBuf>,
    /// Seconds calls in flight get to finish after SIGTERM.
    #[arg(long, env = "BACKTRACK_DRAIN_SECS", default_value_t = 20)]
    pub drain_secs: u64,
    /// Data directory (same as the global flag; repeated here so `up --data-dir` reads naturally).
    #[arg(skip)]
    pub data_dir: PathBuf,
    /// The global `--otlp-endpoint`.
    #[arg(skip)]
    pub otlp_endpoint: Option<String>,
    /// The global `--directory-server`: where `serve recovery` applies its batches.
    #[arg(skip)]
    pub directory_server: Option<String>,
}

/// `backtrack serve SERVICE`: the flags of `up` (without a nats-server of its own: --nats
/// is required), for one service.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The service this process runs.
    #[arg(value_enum)]
    pub service: ServiceName,
    #[command(flatten)]
    pub up: UpArgs,
}

/// The services `backtrack serve` runs, one per process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceName {
    /// The directory API (system of record) and the token API.
    Directory,
    /// Backups, backup policies and time travel; takes the scheduled backups.
    Snapshotter,
    /// Difference reports (keeps its own time-travel store).
    Differ,
    /// Recovery jobs (keeps its own directory view and time-travel store).
    Recovery,
    /// The audit trail: index, query, verify, SIEM export.
    Audit,
}
