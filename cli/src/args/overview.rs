//! `backtrack overview`: one screen of a tenant.

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct OverviewArgs {
    /// The tenant's id (e.g. contoso).
    #[arg(long)]
    pub tenant: String,
    /// Alerts over the changes after this point: a time (-24h, 09:00, RFC 3339), a
    /// backup id or seq:N.
    #[arg(
        long,
        value_name = "POINT",
        default_value = "-24h",
        allow_hyphen_values = true
    )]
    pub since: String,
    /// Deletions by one actor that make a mass-deletion alert (default: the tenant's
    /// alert policy, else 20).
    #[arg(long, value_name = "N")]
    pub mass_deletions: Option<usize>,
    /// Links removed by one actor (memberships, owners, managers) that make an alert
    /// (default: the tenant's alert policy, else 100).
    #[arg(long, value_name = "N")]
    pub mass_link_removals: Option<usize>,
}
