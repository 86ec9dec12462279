//! One module per command group; each talks to the server over gRPC.

mod alerts;
mod attribute_names;
mod audit;
mod backup;
mod backup_view;
mod diff;
mod diff_names;
mod diff_view;
mod dir;
mod events;
mod missed_backups;
pub mod overview;
mod overview_trail;
mod overview_view;
mod recovery;
mod recovery_alerts;
mod recovery_view;
mod status;
mod tenant;
mod time_travel;
mod token;

use crate::args::{Cli, Command, DemoCommand};

/// Runs every command except `up` and `serve`.
pub async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let g = cli.global;
    match cli.command {
        Command::Up(_) | Command::Serve(_) => unreachable_up(),
        Command::Tenant(c) => tenant::run(&g, c).await,
        Command::Dir(c) => dir::run(&g, c).await,
        Command::Demo(DemoCommand::Seed {
            tenant,
            users,
            groups,
            apps,
            seed,
            batch,
        }) => dir::seed(&g, &tenant, users, groups, apps, seed, batch).await,
        Command::Events(c) => events::run(&g, c).await,
        Command::Backup(c) => backup::run(&g, c).await,
        Command::Diff(c) => diff::run(&g, c).await,
        Command::Audit(c) => audit::run(&g, c).await,
        Command::Recover(a) => recovery::recover(&g, a).await,
        Command::Recovery(c) => recovery::run(&g, c).await,
        Command::Approve { job, wait } => recovery::approve(&g, job, wait).await,
        Command::Overview(a) => overview::run(&g, a).await,
        Command::Alerts(c) => alerts::run(&g, c).await,
        Command::Status { tenant } => status::run(&g, tenant).await,
        Command::Token(c) => token::run(&g, c).await,
    }
}

fn unreachable_up() -> anyhow::Result<()> {
    anyhow::bail!("`up` is handled before dispatch")
}
