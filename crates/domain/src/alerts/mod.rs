//! Alerts: the changes in a run of events an identity administrator must look at first —
//! the ones that lock people out or let attackers in. Each alert names the change, who
//! made it and when, and the recovery that would undo it.
//!
//! Rules (the `rule` names are stable, for scripts):
//!
//! | rule | severity | what |
//! |---|---|---|
//! | `caPolicyDeleted` | critical | a conditional access policy soft- or hard-deleted |
//! | `caPolicyDisabled` | high | a policy's `state` moved from `enabled` to anything else |
//! | `caPolicyExclusionAdded` | high | users, groups, roles, applications, locations or platforms added to a policy's exclusions |
//! | `caPolicyScopeNarrowed` | high | users, groups, roles or applications taken out of what a policy includes (e.g. `All`) |
//! | `caPolicyControlRemoved` | high | a built-in grant control (e.g. `mfa`) taken out |
//! | `namedLocationDeleted` | high | a named location soft- or hard-deleted |
//! | `massDeletion` | high | one actor deleted at least [`Thresholds::deletions`] objects |
//! | `massLinkRemoval` | high | one actor removed at least [`Thresholds::link_removals`] links |
//! | `authPolicyChanged` | medium | the authentication methods or authorization policy changed |
//! | `appCredentialsChanged` | medium | an application's or service principal's credentials, redirect URIs, identifier URIs or API permissions changed |
//! | `privilegedRoleAssigned` | high | an assignment of a privileged built-in role created (Global Administrator, Privileged Role Administrator, …: [`crate::roles`]) |
//! | `roleAssigned` | medium | an assignment of any other role created |
//!
//! Two readers run them: [`Watch`] over a window of events read once (the `overview`
//! command: the mass rules count the whole window), and [`event_alerts`] with
//! [`Bursts`] over a log followed for ever (the snapshotter's alerter: the mass rules
//! count a sliding window, and their state can be stored and resumed).

mod bursts;
mod undone;

pub use bursts::{minutes, BurstLimits, Bursts, Reached, Runs};
pub use undone::{Standing, Undone};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{AttributeChange, Change, Event};
use crate::kind::ObjectKind;

/// Every rule's name, as alerts carry it (`rule`), in the order of the table above.
pub const RULES: &[&str] = &[
    "caPolicyDeleted",
    "caPolicyDisabled",
    "caPolicyExclusionAdded",
    "caPolicyScopeNarrowed",
    "caPolicyControlRemoved",
    "namedLocationDeleted",
    "massDeletion",
    "massLinkRemoval",
    "authPolicyChanged",
    "appCredentialsChanged",
    "privilegedRoleAssigned",
    "roleAssigned",
];

/// How bad an alert is; alerts sort by it, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    Critical,
    High,
    Medium,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub severity: Severity,
    pub rule: &'static str,
    /// Who made the change(s).
    pub actor: String,
    /// The (first) event's sequence and time.
    pub sequence: u64,
    pub time_ms: i64,
    /// The id of the event that raised it: the one changed, or the one that took a run of
    /// changes over its threshold. With the alert's position among that event's alerts it
    /// makes the alert's stable id ([`Alert::id`]).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub event_id: String,
    /// The object, for alerts about one object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<AlertObject>,
    /// What happened, in words.
    pub what: String,
    /// The later change that set this one back (a [`Watch`] over a window to the log's
    /// end judges it); `None`: it still stands, or nobody followed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undone: Option<Undone>,
}

/// The object an alert is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertObject {
    pub kind: String,
    pub id: String,
}

impl Alert {
    /// A stable id: the same alert from the same event is the same id however often the
    /// log is read. `n` is the alert's position among the alerts its event raised by
    /// itself ([`event_alerts`]); mass alerts are named by their rule instead.
    pub fn id(&self, n: usize) -> String {
        if self.object.is_some() {
            format!("alert:{}:{n}", self.event_id)
        } else {
            format!("alert:{}:{}", self.event_id, self.rule)
        }
    }

    /// The dry run that would set back what the alert is about: the actor's changes from
    /// just before it, to that object when it names one.
    pub fn undo_command(&self, tenant: &str) -> String {
        let from = self.sequence.saturating_sub(1);
        let mut command = format!(
            "backtrack recover --tenant {tenant} --from seq:{from} --changed-by {}",
            shell_word(&self.actor)
        );
        if let Some(o) = &self.object {
            command.push_str(&format!(" --id {}", o.id));
        }
        command.push_str(" --dry-run");
        command
    }
}

/// `word`, quoted for a POSIX shell when it holds anything but plain characters.
pub fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@._-:/+=".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// When a run of changes by one actor is an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Soft or hard deletions by one actor.
    pub deletions: usize,
    /// Links removed by one actor (memberships, owners, managers).
    pub link_removals: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            deletions: 20,
            link_removals: 100,
        }
    }
}

/// Application and service principal attributes that decide who can sign in as the app,
/// where tokens go, and what it may call.
const APP_SENSITIVE: &[&str] = &[
    "passwordCredentials",
    "keyCredentials",
    "web",
    "spa",
    "publicClient",
    "identifierUris",
    "replyUrls",
    "requiredResourceAccess",
];

/// The alerts of `events` (sequence, event), in ascending sequence order: worst first,
/// then oldest first.
pub fn alerts<'e>(
    events: impl IntoIterator<Item = (u64, &'e Event)>,
    thresholds: &Thresholds,
) -> Vec<Alert> {
    let mut watch = Watch::new(*thresholds);
    for (sequence, event) in events {
        watch.push(sequence, event);
    }
    watch.finish()
}

/// The alert rules over events pushed one at a time, holding only the alerts so far and
/// a tally per actor (a reader of a long window keeps no events).
#[derive(Debug, Default)]
pub struct Watch {
    thresholds: Thresholds,
    out: Vec<Alert>,
    /// Per actor: deletions and link removals, with the first one's sequence and time.
    deletions: BTreeMap<String, Tally>,
    removals: BTreeMap<String, Tally>,
    /// The later changes of what the alerts are about.
    followers: undone::Followers,
}

impl Watch {
    pub fn new(thresholds: Thresholds) -> Self {
        Self {
            thresholds,
            ..Self::default()
        }
    }

    /// Runs the rules over the next event (at `sequence`, after every one pushed before),
    /// and follows the alerts raised before it.
    pub fn push(&mut self, sequence: u64, event: &Event) {
        self.followers.follow(sequence, event);
        for alert in event_alerts(sequence, event) {
            self.followers.watch(self.out.len(), alert.rule, event);
            self.out.push(alert);
        }
        let m = &event.meta;
        let counted = match &event.change {
            Change::SoftDeleted { .. } | Change::HardDeleted { .. } => {
                Some((&mut self.deletions, 1))
            }
            Change::LinksRemoved(links) => Some((&mut self.removals, links.len())),
            _ => None,
        };
        if let Some((tallies, n)) = counted {
            if m.kind.parse::<ObjectKind>().is_ok() {
                let tally = tallies
                    .entry(m.actor.clone())
                    .or_insert_with(|| Tally::first(sequence, m.time_ms, &m.event_id));
                tally.count += n;
                self.followers.count(event, &mut tally.items);
            }
        }
    }

    /// The alerts of everything pushed: the ones still standing first, then worst first,
    /// then oldest first.
    pub fn finish(self) -> Vec<Alert> {
        let Watch {
            thresholds,
            mut out,
            deletions,
            removals,
            followers,
        } = self;
        for (index, undone) in followers.undone() {
            out[index].undone = Some(undone);
        }
        let mut runs = |tallies: BTreeMap<String, Tally>, least: usize, rule, noun: &str| {
            for (actor, t) in tallies.into_iter().filter(|(_, t)| t.count >= least) {
                let (back, of, undone) = followers.run_back(&t.items);
                let mut what = format!("{} {noun} by one actor", t.count);
                if back > 0 && undone.is_none() {
                    what.push_str(&format!(" ({back} of {of} set back since)"));
                }
                out.push(Alert {
                    severity: Severity::High,
                    rule,
                    actor,
                    sequence: t.sequence,
                    time_ms: t.time_ms,
                    event_id: t.event_id,
                    object: None,
                    what,
                    undone,
                });
            }
        };
        runs(
            deletions,
            thresholds.deletions,
            "massDeletion",
            "objects deleted",
        );
        runs(
            removals,
            thresholds.link_removals,
            "massLinkRemoval",
            "links removed",
        );
        out.sort_by_key(|a| (a.undone.is_some(), a.severity, a.sequence));
        out
    }
}

/// The alerts one event raises by itself (every rule but the mass ones), in a fixed order:
/// an alert's position in this list is part of its id.
pub fn event_alerts(sequence: u64, event: &Event) -> Vec<Alert> {
    let mut out = Vec::new();
    let m = &event.meta;
    let Ok(kind) = m.kind.parse::<ObjectKind>() else {
        return out;
    };
    let alert = |severity, rule, what: String| Alert {
        severity,
        rule,
        actor: m.actor.clone(),
        sequence,
        time_ms: m.time_ms,
        event_id: m.event_id.clone(),
        object: Some(AlertObject {
            kind: m.kind.clone(),
            id: m.object_id.clone(),
        }),
        what,
        undone: None,
    };
    match &event.change {
        Change::SoftDeleted { .. } | Change::HardDeleted { .. } => {
            let how = if matches!(event.change, Change::HardDeleted { .. }) {
                "purged"
            } else {
                "deleted (in the recycle bin)"
            };
            match kind {
                ObjectKind::ConditionalAccessPolicy => out.push(alert(
                    Severity::Critical,
                    "caPolicyDeleted",
                    format!("conditional access policy {how}"),
                )),
                ObjectKind::NamedLocation => out.push(alert(
                    Severity::High,
                    "namedLocationDeleted",
                    format!("named location {how}"),
                )),
                _ => {}
            }
        }
        Change::AttributesChanged(changes) => match kind {
            ObjectKind::ConditionalAccessPolicy => {
                for (severity, rule, what) in policy_alerts(changes) {
                    out.push(alert(severity, rule, what));
                }
            }
            ObjectKind::AuthenticationMethodsPolicy | ObjectKind::AuthorizationPolicy => {
                out.push(alert(
                    Severity::Medium,
                    "authPolicyChanged",
                    format!("{} changed: {}", m.kind, names(changes)),
                ));
            }
            ObjectKind::Application | ObjectKind::ServicePrincipal => {
                let sensitive: Vec<&AttributeChange> = changes
                    .iter()
                    .filter(|c| APP_SENSITIVE.contains(&c.name.as_str()))
                    .collect();
                if !sensitive.is_empty() {
                    let changed: Vec<&str> = sensitive.iter().map(|c| c.name.as_str()).collect();
                    out.push(alert(
                        Severity::Medium,
                        "appCredentialsChanged",
                        format!("{} changed", changed.join(", ")),
                    ));
                }
            }
            _ => {}
        },
        Change::Created { attributes, .. } if kind == ObjectKind::RoleAssignment => {
            let text = |name: &str| {
                attributes
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string()
            };
            let (role_id, principal_id) = (text("roleDefinitionId"), text("principalId"));
            let assignment = crate::roles::Assignment {
                role_id: &role_id,
                role_name: None,
                principal_id: &principal_id,
                principal_name: None,
            };
            let (severity, rule) = match crate::roles::built_in(&role_id) {
                Some(r) if r.privileged => (Severity::High, "privilegedRoleAssigned"),
                _ => (Severity::Medium, "roleAssigned"),
            };
            out.push(alert(severity, rule, assignment.assigned()));
        }
        _ => {}
    }
    out
}

/// How many changes one actor made, from which first one.
#[derive(Debug)]
struct Tally {
    count: usize,
    sequence: u64,
    time_ms: i64,
    event_id: String,
    /// What the run deleted and unlinked, to tell whether it was all set back.
    items: undone::RunItems,
}

impl Tally {
    fn first(sequence: u64, time_ms: i64, event_id: &str) -> Self {
        Self {
            count: 0,
            sequence,
            time_ms,
            event_id: event_id.to_string(),
            items: undone::RunItems::default(),
        }
    }
}

fn names(changes: &[AttributeChange]) -> String {
    let names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
    names.join(", ")
}

/// The lists in a policy's `conditions` whose new entries leave someone or something out.
const EXCLUSIONS: &[&str] = &[
    "/users/excludeUsers",
    "/users/excludeGroups",
    "/users/excludeRoles",
    "/applications/excludeApplications",
    "/locations/excludeLocations",
    "/platforms/excludePlatforms",
];

/// The lists in a policy's `conditions` whose lost entries take someone or something out
/// of the policy.
const INCLUSIONS: &[&str] = &[
    "/users/includeUsers",
    "/users/includeGroups",
    "/users/includeRoles",
    "/applications/includeApplications",
];

/// `conditions.users.excludeUsers` for `/users/excludeUsers`.
fn dotted(pointer: &str) -> String {
    format!("conditions{}", pointer.replace('/', "."))
}

/// What a conditional access policy's attribute changes weaken.
fn policy_alerts(changes: &[AttributeChange]) -> Vec<(Severity, &'static str, String)> {
    let mut out = Vec::new();
    for c in changes {
        match c.name.as_str() {
            "state" => {
                let old = c.old.as_ref().and_then(Value::as_str);
                if old == Some("enabled") {
                    let new = c.new.as_ref().and_then(Value::as_str).unwrap_or("removed");
                    out.push((
                        Severity::High,
                        "caPolicyDisabled",
                        format!("state enabled → {new}"),
                    ));
                }
            }
            "conditions" => {
                for pointer in EXCLUSIONS {
                    let added = gained(c.old.as_ref(), c.new.as_ref(), pointer);
                    if !added.is_empty() {
                        out.push((
                            Severity::High,
                            "caPolicyExclusionAdded",
                            format!("{} + {}", dotted(pointer), added.join(", ")),
                        ));
                    }
                }
                for pointer in INCLUSIONS {
                    let lost = gained(c.new.as_ref(), c.old.as_ref(), pointer);
                    if !lost.is_empty() {
                        out.push((
                            Severity::High,
                            "caPolicyScopeNarrowed",
                            format!("{} − {}", dotted(pointer), lost.join(", ")),
                        ));
                    }
                }
            }
            "grantControls" => {
                let lost = gained(c.new.as_ref(), c.old.as_ref(), "/builtInControls");
                if !lost.is_empty() {
                    out.push((
                        Severity::High,
                        "caPolicyControlRemoved",
                        format!("grantControls.builtInControls − {}", lost.join(", ")),
                    ));
                }
            }
            _ => {}
        }
    }
    out
}

/// The strings of the list at `pointer` (a JSON pointer; `""` for the value itself) in
/// `new` that the one in `old` lacks.
pub fn gained(old: Option<&Value>, new: Option<&Value>, pointer: &str) -> Vec<String> {
    let list = |v: Option<&Value>| -> Vec<String> {
        v.and_then(|v| v.pointer(pointer))
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = list(old);
    list(new)
        .into_iter()
        .filter(|item| !before.contains(item))
        .collect()
}
