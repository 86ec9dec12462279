//! The `alerts` command group's definitions.

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// A tenant's alert policy: the alerter's thresholds, disabled rules and quiet actors.
    #[command(subcommand)]
    Policy(AlertPolicyCommand),
}

#[derive(Debug, Subcommand)]
pub enum AlertPolicyCommand {
    /// Show the tenant's alert policy (and the deployment's settings it leaves in place).
    Get {
        /// The tenant's id (e.g. contoso).
        #[arg(long)]
        tenant: String,
    },
    /// Change the alert policy (GlobalAdministrator); flags not given keep their value.
    Set(AlertPolicySetArgs),
}

#[derive(Debug, Args)]
pub struct AlertPolicySetArgs {
    /// The tenant's id (e.g. contoso).
    #[arg(long)]
    pub tenant: String,
    /// Deletions by one actor within the window that raise massDeletion (0: the deployment's).
    #[arg(long)]
    pub mass_deletions: Option<u32>,
    /// Links removed by one actor within the window that raise massLinkRemoval (0: the deployment's).
    #[arg(long)]
    pub mass_link_removals: Option<u32>,
    /// The mass rules' window in minutes, at most 10080 (0: the deployment's).
    #[arg(long)]
    pub window_mins: Option<u32>,
    /// Turn a rule off in this tenant (repeatable), e.g. roleAssigned.
    #[arg(long, value_name = "RULE")]
    pub disable: Vec<String>,
    /// Turn a disabled rule back on (repeatable).
    #[arg(long, value_name = "RULE")]
    pub enable: Vec<String>,
    /// An actor (token subject) whose changes count towards no mass rule, e.g. a sync
    /// service account that deletes in bulk by design (repeatable). Its other alerts stand.
    #[arg(long, value_name = "ACTOR")]
    pub quiet_actor: Vec<String>,
    /// Count an actor's changes again (repeatable).
    #[arg(long, value_name = "ACTOR")]
    pub unquiet_actor: Vec<String>,
}
