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
    /// Deletions by one actor that make a mass-deletion alert.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub mass_deletions: usize,
    /// Links removed by one actor (memberships, owners, managers) that make an alert.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub mass_link_removals: usize,
}
