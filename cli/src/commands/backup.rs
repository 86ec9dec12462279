//! `backtrack backup ...`: take, list, show, verify, pin and unpin backups, and read or
//! change the tenant's backup policy. Rendering lives in [`super::backup_view`].

use anyhow::bail;
use backtrack_proto::v1;

use super::backup_view::{print_backup, print_backups, print_policy, print_verification};
use crate::args::{BackupCommand, BackupRefArgs, GlobalArgs, PolicyCommand, PolicySetArgs};
use crate::client::backup_client;
use crate::output::refuse;

/// Runs one `backtrack backup` command.
pub async fn run(g: &GlobalArgs, command: BackupCommand) -> anyhow::Result<()> {
    if let BackupCommand::Policy(PolicyCommand::Set(changes)) = &command {
        if !changes_anything(changes) {
            refuse!(
                "nothing to change: give --schedule, --retention-days, --keep-daily, \
                 --keep-weekly or --keep-monthly"
            );
        }
    }
    let mut client = backup_client(g).await?;
    match command {
        BackupCommand::Create {
            tenant,
            description,
        } => {
            let request = v1::CreateBackupRequest {
                tenant,
                description,
                trigger: v1::BackupTrigger::OnDemand.into(),
            };
            let backup = client.create_backup(request).await?.into_inner();
            print_backup(g, &backup, "created");
        }
        BackupCommand::List { tenant, all } => {
            let request = v1::ListBackupsRequest { tenant, all };
            let list = client.list_backups(request).await?.into_inner();
            print_backups(g, &list.backups);
        }
        BackupCommand::Show(r) => {
            let backup = client.get_backup(reference(r)).await?.into_inner();
            print_backup(g, &backup, "");
        }
        BackupCommand::Verify(r) => {
            let id = r.id.clone();
            let report = client.verify_backup(reference(r)).await?.into_inner();
            print_verification(g, &report);
            if !report.ok {
                let why = if report.message.is_empty() {
                    "the digests differ".to_string()
                } else {
                    report.message
                };
                bail!("backup {id} failed verification: {why}");
            }
        }
        BackupCommand::Pin(r) => {
            let backup = client.pin_backup(reference(r)).await?.into_inner();
            print_backup(g, &backup, "pinned");
        }
        BackupCommand::Unpin(r) => {
            let backup = client.unpin_backup(reference(r)).await?.into_inner();
            print_backup(g, &backup, "unpinned");
        }
        BackupCommand::Policy(PolicyCommand::Get { tenant }) => {
            let request = v1::BackupPolicyRequest { tenant };
            let policy = client.get_backup_policy(request).await?.into_inner();
            print_policy(g, &policy, "");
        }
        BackupCommand::Policy(PolicyCommand::Set(changes)) => {
            let request = v1::BackupPolicyRequest {
                tenant: changes.tenant.clone(),
            };
            let current = client.get_backup_policy(request).await?.into_inner();
            let wanted = changed_policy(current, &changes);
            let policy = client.set_backup_policy(wanted).await?.into_inner();
            print_policy(g, &policy, "updated");
        }
    }
    Ok(())
}

fn reference(r: BackupRefArgs) -> v1::BackupRef {
    v1::BackupRef {
        tenant: r.tenant,
        id: r.id,
    }
}

fn changes_anything(a: &PolicySetArgs) -> bool {
    a.schedule.is_some()
        || a.retention_days.is_some()
        || a.keep_daily.is_some()
        || a.keep_weekly.is_some()
        || a.keep_monthly.is_some()
}

/// The current policy with only the given fields replaced.
fn changed_policy(mut policy: v1::BackupPolicy, a: &PolicySetArgs) -> v1::BackupPolicy {
    policy.tenant = a.tenant.clone();
    if let Some(schedule) = &a.schedule {
        policy.schedule = schedule.trim().to_string();
    }
    if let Some(n) = a.retention_days {
        policy.retention_days = n;
    }
    if let Some(n) = a.keep_daily {
        policy.keep_daily = n;
    }
    if let Some(n) = a.keep_weekly {
        policy.keep_weekly = n;
    }
    if let Some(n) = a.keep_monthly {
        policy.keep_monthly = n;
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> PolicySetArgs {
        PolicySetArgs {
            tenant: "contoso".into(),
            schedule: None,
            retention_days: None,
            keep_daily: None,
            keep_weekly: None,
            keep_monthly: None,
        }
    }

    fn current() -> v1::BackupPolicy {
        v1::BackupPolicy {
            tenant: "contoso".into(),
            schedule: "0 0 * * * *".into(),
            retention_days: 30,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 12,
            updated_at_ms: 0,
            default_since_ms: 0,
        }
    }

    #[test]
    fn set_changes_only_the_given_fields() {
        let mut a = args();
        assert!(!changes_anything(&a));
        a.keep_weekly = Some(8);
        assert!(changes_anything(&a));
        let p = changed_policy(current(), &a);
        assert_eq!(
            p,
            v1::BackupPolicy {
                keep_weekly: 8,
                ..current()
            }
        );
    }

    #[test]
    fn an_empty_schedule_turns_scheduling_off() {
        let mut a = args();
        a.schedule = Some(" ".into());
        a.retention_days = Some(90);
        let p = changed_policy(current(), &a);
        assert_eq!(p.schedule, "");
        assert_eq!(p.retention_days, 90);
        assert_eq!(p.keep_daily, 7);
    }
}
