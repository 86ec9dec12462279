//! The `backup` command group's definitions.

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup now: names the log's current sequence; costs the same for any tenant size.
    Create {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
        /// What the backup is for ("before the migration").
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List the tenant's usable backups.
    List {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
        /// Include expired backups.
        #[arg(long)]
        all: bool,
    },
    /// Show one backup.
    Show(BackupRefArgs),
    /// Rebuild the tenant's state at the backup by replaying the log and compare digests; fails when they differ.
    Verify(BackupRefArgs),
    /// Pin a backup (a baseline): it never expires until unpinned.
    Pin(BackupRefArgs),
    /// Unpin a backup: it expires again under the retention policy.
    Unpin(BackupRefArgs),
    /// The tenant's backup schedule and retention.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, Args)]
pub struct BackupRefArgs {
    /// The tenant's id (e.g. contoso).
    #[arg(long)]
    pub tenant: String,
    /// Backup id.
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the backup policy.
    Get {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
    },
    /// Change the backup policy; flags not given keep their current value.
    Set(PolicySetArgs),
}

#[derive(Debug, Args)]
pub struct PolicySetArgs {
    /// The tenant's id (e.g. contoso).
    #[arg(long)]
    pub tenant: String,
    /// Cron expression with seconds, UTC: "sec min hour day-of-month month day-of-week"; '' turns scheduled backups off.
    #[arg(long)]
    pub schedule: Option<String>,
    /// Days a backup stays usable.
    #[arg(long)]
    pub retention_days: Option<u32>,
    /// Beyond the retention, keep the newest backup of each of the last N days.
    #[arg(long)]
    pub keep_daily: Option<u32>,
    /// Beyond the retention, keep the newest backup of each of the last N weeks.
    #[arg(long)]
    pub keep_weekly: Option<u32>,
    /// Beyond the retention, keep the newest backup of each of the last N months.
    #[arg(long)]
    pub keep_monthly: Option<u32>,
}
