//! The `audit` command group's definitions.

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Audit records of a tenant, oldest first, filtered and paged.
    Query(AuditQueryArgs),
    /// Follow a tenant's audit records as they are chained.
    Tail {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
        /// Start from the first record instead of only new ones.
        #[arg(long)]
        from_start: bool,
        /// Stop after this many records.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Recompute a tenant's audit hash chain; exits non-zero when it is broken.
    Verify {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResultArg {
    Success,
    Failure,
}

#[derive(Debug, Args)]
pub struct AuditQueryArgs {
    /// The tenant's id (e.g. contoso).
    #[arg(long)]
    pub tenant: String,
    /// Records at or after this time (RFC 3339, local 2026-11-22 06:00, or relative: -2h).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub since: Option<String>,
    /// Records at or before this time.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    pub until: Option<String>,
    /// Only this action, e.g. recovery.operationApplied.
    #[arg(long)]
    pub action: Option<String>,
    /// Only this actor (the token's subject).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only records about this object id (or job, backup id as target).
    #[arg(long)]
    pub target: Option<String>,
    /// Only successes or failures.
    #[arg(long, value_enum)]
    pub result: Option<ResultArg>,
    /// Only records of this job, report or backup.
    #[arg(long, value_name = "ID")]
    pub correlation: Option<String>,
    /// Records per page (at most 1000).
    #[arg(long, default_value_t = 100)]
    pub page_size: u32,
    /// Continue after a previous page (its nextPageToken).
    #[arg(long)]
    pub page_token: Option<String>,
}
