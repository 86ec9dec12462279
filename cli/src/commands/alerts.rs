//! `backtrack alerts policy get|set`: a tenant's alert policy, kept by the snapshotter
//! (the alerts themselves are audit records: `audit query --action alert.raised`).

use backtrack_domain::time::rfc3339_ms;
use backtrack_proto::v1;
use serde_json::{json, Value};

use crate::args::{
    AlertPolicyCommand, AlertPolicySetArgs, AlertsCommand, GlobalArgs, OutputFormat,
};
use crate::client::backup_client;
use crate::output::{outln, print_json, refuse, table};

/// Runs one `backtrack alerts` command.
pub async fn run(g: &GlobalArgs, command: AlertsCommand) -> anyhow::Result<()> {
    let AlertsCommand::Policy(command) = command;
    if let AlertPolicyCommand::Set(changes) = &command {
        if !changes_anything(changes) {
            refuse!(
                "nothing to change: give --mass-deletions, --mass-link-removals, \
                 --window-mins, --disable, --enable, --quiet-actor or --unquiet-actor"
            );
        }
    }
    let mut client = backup_client(g).await?;
    match command {
        AlertPolicyCommand::Get { tenant } => {
            let request = v1::AlertPolicyRequest { tenant };
            let policy = client.get_alert_policy(request).await?.into_inner();
            print_policy(g, &policy, "");
        }
        AlertPolicyCommand::Set(changes) => {
            let request = v1::AlertPolicyRequest {
                tenant: changes.tenant.clone(),
            };
            let current = client.get_alert_policy(request).await?.into_inner();
            let wanted = changed_policy(current, &changes);
            let policy = client.set_alert_policy(wanted).await?.into_inner();
            print_policy(g, &policy, "Changed");
        }
    }
    Ok(())
}

fn changes_anything(a: &AlertPolicySetArgs) -> bool {
    a.mass_deletions.is_some()
        || a.mass_link_removals.is_some()
        || a.window_mins.is_some()
        || !a.disable.is_empty()
        || !a.enable.is_empty()
        || !a.quiet_actor.is_empty()
        || !a.unquiet_actor.is_empty()
}

/// `policy` with the given flags applied; the server checks the result.
fn changed_policy(mut policy: v1::AlertPolicy, a: &AlertPolicySetArgs) -> v1::AlertPolicy {
    if let Some(n) = a.mass_deletions {
        policy.mass_deletions = n;
    }
    if let Some(n) = a.mass_link_removals {
        policy.mass_link_removals = n;
    }
    if let Some(n) = a.window_mins {
        policy.window_minutes = n;
    }
    edit(&mut policy.disabled_rules, &a.disable, &a.enable);
    edit(&mut policy.quiet_actors, &a.quiet_actor, &a.unquiet_actor);
    policy
}

/// Adds `add` to `list` and takes `remove` out of it.
fn edit(list: &mut Vec<String>, add: &[String], remove: &[String]) {
    list.extend(add.iter().cloned());
    list.retain(|item| !remove.contains(item));
}

/// A policy for scripts; zero thresholds mean the deployment's.
fn policy_json(p: &v1::AlertPolicy) -> Value {
    json!({
        "tenant": p.tenant,
        "massDeletions": p.mass_deletions,
        "massLinkRemovals": p.mass_link_removals,
        "windowMinutes": p.window_minutes,
        "disabledRules": p.disabled_rules,
        "quietActors": p.quiet_actors,
        "setAt": (p.updated_at_ms > 0).then(|| rfc3339_ms(p.updated_at_ms)),
    })
}

fn print_policy(g: &GlobalArgs, p: &v1::AlertPolicy, verb: &str) {
    if g.output == OutputFormat::Json {
        print_json(&policy_json(p));
        return;
    }
    if !verb.is_empty() {
        outln!("{verb} the alert policy of {}", p.tenant);
    }
    let own = |n: u32, flag: &str| {
        if n == 0 {
            format!("the deployment's (backtrack up {flag})")
        } else {
            n.to_string()
        }
    };
    let list = |items: &[String]| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items.join(", ")
        }
    };
    let rows = vec![
        vec![
            "mass deletions".into(),
            own(p.mass_deletions, "--alert-mass-deletions"),
        ],
        vec![
            "mass link removals".into(),
            own(p.mass_link_removals, "--alert-mass-link-removals"),
        ],
        vec![
            "window minutes".into(),
            own(p.window_minutes, "--alert-window-mins"),
        ],
        vec!["disabled rules".into(), list(&p.disabled_rules)],
        vec!["quiet actors".into(), list(&p.quiet_actors)],
        vec![
            "set".into(),
            if p.updated_at_ms > 0 {
                rfc3339_ms(p.updated_at_ms)
            } else {
                "never".into()
            },
        ],
    ];
    table(&["SETTING", "VALUE"], &rows);
}

#[cfg(test)]
mod tests {
    use backtrack_proto::v1;

    use super::{changed_policy, changes_anything};
    use crate::args::AlertPolicySetArgs;

    #[test]
    fn set_changes_only_the_given_settings_and_edits_the_lists() {
        let mut a = AlertPolicySetArgs {
            tenant: "contoso".into(),
            mass_deletions: None,
            mass_link_removals: None,
            window_mins: None,
            disable: vec![],
            enable: vec![],
            quiet_actor: vec![],
            unquiet_actor: vec![],
        };
        assert!(!changes_anything(&a));
        a.mass_deletions = Some(200);
        a.disable = vec!["roleAssigned".into()];
        a.enable = vec!["authPolicyChanged".into()];
        a.unquiet_actor = vec!["old-sync".into()];
        let current = v1::AlertPolicy {
            tenant: "contoso".into(),
            window_minutes: 30,
            disabled_rules: vec!["authPolicyChanged".into()],
            quiet_actors: vec!["old-sync".into(), "svc-hr".into()],
            ..Default::default()
        };
        let p = changed_policy(current, &a);
        assert_eq!(
            (p.mass_deletions, p.mass_link_removals, p.window_minutes),
            (200, 0, 30)
        );
        assert_eq!(p.disabled_rules, ["roleAssigned"]);
        assert_eq!(p.quiet_actors, ["svc-hr"]);
    }
}
