//! Recovery plans: the ordered operations that bring objects from their current state
//! back to a desired (earlier) state, and how each operation turns into a command once
//! the state it meets is known.
//!
//! Planning compares whole objects, not report items: every top-level attribute and every
//! link that differs is set back. Operations run in phases so that whatever an operation
//! needs already exists: soft deletes of objects added since the recovery point that hold
//! a unique attribute (they may hold names the others need back), restores, re-creations,
//! attribute fixes, link removals, link additions, and last the other soft deletes: of
//! objects added since the point and of objects that were in the recycle bin at it
//! (dependents first, so a policy goes before the location it names). Within a phase, kinds run
//! in dependency order: named locations before the conditional access policies that use
//! them, users and groups before memberships, applications before service principals,
//! service principals before app role assignments and grants.
//!
//! Each operation yields at most one event when applied to the state it was planned
//! against, so "was this operation applied?" has a yes/no answer in the log.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::canonical::equivalent;
use crate::command::{Command, DirectoryView};
use crate::diff::ChangeType;
use crate::kind::ObjectKind;
use crate::object::DirectoryObject;
use crate::schema::READ_ONLY;
use crate::validate::MAX_LINKS_PER_MUTATION;

/// The state a restored or re-created conditional access policy gets with
/// `ca_report_only`: evaluated and logged, never enforced.
pub const CA_REPORT_ONLY: &str = "enabledForReportingButNotEnforced";

/// Most link targets one operation carries.
pub const LINKS_PER_OPERATION: usize = 1_000;

/// Choices that shape a plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// Restored or re-created conditional access policies that were `enabled` come back
    /// report-only.
    pub ca_report_only: bool,
}

/// One object to plan for: its state now and the state to bring it back to (`None` =
/// absent), both with links.
#[derive(Debug, Clone)]
pub struct PlanEntry {
    pub kind: ObjectKind,
    pub id: String,
    pub current: Option<DirectoryObject>,
    pub desired: Option<DirectoryObject>,
    /// The object's version the plan is based on (0: absent). An object whose version
    /// differs when its first operation runs was changed by someone else meanwhile.
    pub planned_version: u64,
}

/// What an operation does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Action {
    /// Take the object out of the recycle bin.
    Restore,
    /// Create the object again with its original id and attributes (links follow in
    /// their own operations).
    Recreate {
        attributes: Map<String, Value>,
    },
    /// Set attributes back (`unset`: remove them).
    SetAttributes {
        set: Map<String, Value>,
        unset: Vec<String>,
    },
    RemoveLinks {
        relation: String,
        targets: Vec<String>,
    },
    AddLinks {
        relation: String,
        targets: Vec<String>,
    },
    SoftDelete,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Restore => "restore",
            Action::Recreate { .. } => "recreate",
            Action::SetAttributes { .. } => "setAttributes",
            Action::RemoveLinks { .. } => "removeLinks",
            Action::AddLinks { .. } => "addLinks",
            Action::SoftDelete => "softDelete",
        }
    }

    /// Phase of the plan the action runs in.
    fn phase(&self) -> u8 {
        match self {
            Action::Restore => 1,
            Action::Recreate { .. } => 2,
            Action::SetAttributes { .. } => 3,
            Action::RemoveLinks { .. } => 4,
            Action::AddLinks { .. } => 5,
            Action::SoftDelete => 6,
        }
    }

    /// Link targets the action touches (0 for object-level actions).
    pub fn link_count(&self) -> usize {
        match self {
            Action::RemoveLinks { targets, .. } | Action::AddLinks { targets, .. } => targets.len(),
            _ => 0,
        }
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub kind: ObjectKind,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// How the object changed since the desired state (the report's change type).
    pub change_type: String,
    pub action: Action,
    pub planned_version: u64,
}

/// An object the plan leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub kind: ObjectKind,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub reason: String,
}

/// The ordered operations and what the plan deliberately leaves out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub operations: Vec<Operation>,
    pub skipped: Vec<Skipped>,
    /// Objects the plan changes but cannot bring back in every detail, and why.
    pub notes: Vec<Skipped>,
    /// Re-created users: secrets are never stored, so their passwords must be reset.
    pub password_resets: Vec<String>,
    /// Conditional access policies brought back report-only that were enabled.
    pub to_enable: Vec<String>,
}

impl Plan {
    /// Operations per action name.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for op in &self.operations {
            *out.entry(op.action.name()).or_default() += 1;
        }
        out
    }

    /// Objects the plan changes.
    pub fn objects(&self) -> usize {
        self.operations
            .iter()
            .map(|o| o.id.as_str())
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Link changes the plan makes.
    pub fn links(&self) -> usize {
        self.operations.iter().map(|o| o.action.link_count()).sum()
    }
}

/// Rank of a kind in creation order: what others depend on comes first.
pub fn creation_rank(kind: ObjectKind) -> u8 {
    match kind {
        ObjectKind::NamedLocation => 0,
        ObjectKind::User => 1,
        ObjectKind::Group => 2,
        ObjectKind::AdministrativeUnit => 3,
        ObjectKind::Application => 4,
        ObjectKind::ServicePrincipal => 5,
        ObjectKind::RoleDefinition => 6,
        ObjectKind::RoleAssignment => 7,
        ObjectKind::AppRoleAssignment => 8,
        ObjectKind::OAuth2PermissionGrant => 9,
        ObjectKind::ConditionalAccessPolicy => 10,
        ObjectKind::AuthenticationMethodsPolicy => 11,
        ObjectKind::AuthorizationPolicy => 12,
    }
}

/// Orders and plans the entries. Objects synced from an on-premises directory are
/// skipped (the sync would undo the change): their source of truth is elsewhere. Links
/// to a skipped object that is absent or in the recycle bin cannot be added back, so
/// the plan leaves them out and notes each on the object that held them.
pub fn plan(entries: Vec<PlanEntry>, options: &PlanOptions) -> Plan {
    let mut out = Plan::default();
    let mut unlinkable = BTreeMap::new();
    for entry in entries {
        plan_object(entry, options, &mut out, &mut unlinkable);
    }
    if !unlinkable.is_empty() {
        leave_out_links(&unlinkable, &mut out);
    }
    out.operations.sort_by(|a, b| {
        let rank = |o: &Operation| {
            let kind = creation_rank(o.kind);
            if o.action != Action::SoftDelete {
                return (o.action.phase(), kind);
            }
            // Soft deletes remove dependents before what they depend on. Objects added
            // since the recovery point that hold a unique attribute go first: restored
            // objects may need the name back. The others go last, after the attribute
            // fixes: a policy set back may be what still names an added location.
            let phase = if o.change_type == ChangeType::Added.as_str()
                && crate::schema::schema(o.kind).unique.is_some()
            {
                0
            } else {
                o.action.phase()
            };
            (phase, u8::MAX - kind)
        };
        rank(a).cmp(&rank(b)).then_with(|| a.id.cmp(&b.id))
    });
    out.password_resets.sort();
    out.to_enable.sort();
    out
}

/// Skipped objects that cannot be linked: their display name (or id) and where they are.
type Unlinkable = BTreeMap<String, (String, &'static str)>;

fn plan_object(
    entry: PlanEntry,
    options: &PlanOptions,
    out: &mut Plan,
    unlinkable: &mut Unlinkable,
) {
    let PlanEntry {
        kind,
        id,
        current,
        desired,
        planned_version,
    } = entry;
    let display_name = desired
        .as_ref()
        .and_then(DirectoryObject::display_name)
        .or_else(|| current.as_ref().and_then(DirectoryObject::display_name))
        .map(str::to_string);
    let Some(change_type) = change_type(current.as_ref(), desired.as_ref()) else {
        return;
    };
    let skip = |out: &mut Plan, reason: String| {
        out.skipped.push(Skipped {
            kind,
            id: id.clone(),
            display_name: display_name.clone(),
            reason,
        });
    };
    if current.as_ref().is_some_and(DirectoryObject::is_synced)
        || desired.as_ref().is_some_and(DirectoryObject::is_synced)
    {
        let whereabouts = match &current {
            None => Some("does not exist"),
            Some(c) if c.is_deleted() => Some("is in the recycle bin"),
            Some(_) => None,
        };
        if let Some(whereabouts) = whereabouts {
            let name = display_name.clone().unwrap_or_else(|| id.clone());
            unlinkable.insert(id.clone(), (name, whereabouts));
        }
        skip(
            out,
            "synced from an on-premises directory: recover it there, the sync would undo a change made here".into(),
        );
        return;
    }
    let mut ops: Vec<Action> = Vec::new();
    match (&current, &desired) {
        (None, None) => return,
        (Some(c), None) => {
            if !c.is_deleted() {
                ops.push(Action::SoftDelete);
            }
        }
        (current, Some(d)) => {
            if d.is_deleted() && current.as_ref().is_some_and(|c| c.is_deleted()) {
                skip(
                    out,
                    "in the recycle bin both now and at the recovery point, with different attributes or links: restore it first if it should change".into(),
                );
                return;
            }
            let mut desired_attributes = d.attributes.clone();
            let brought_back = current.as_ref().is_none_or(|c| c.is_deleted());
            if options.ca_report_only
                && kind == ObjectKind::ConditionalAccessPolicy
                && brought_back
                && desired_attributes.get("state") == Some(&Value::String("enabled".into()))
            {
                desired_attributes.insert("state".into(), Value::String(CA_REPORT_ONLY.into()));
                out.to_enable.push(id.clone());
            }
            let base_attributes = match current {
                None => {
                    if kind == ObjectKind::User {
                        out.password_resets.push(id.clone());
                    }
                    ops.push(Action::Recreate {
                        attributes: desired_attributes.clone(),
                    });
                    &desired_attributes
                }
                Some(c) => {
                    if c.is_deleted() {
                        ops.push(Action::Restore);
                    }
                    let read_only = READ_ONLY
                        .iter()
                        .filter(|n| !equivalent(c.attributes.get(**n), desired_attributes.get(**n)))
                        .copied()
                        .collect::<Vec<_>>();
                    if !read_only.is_empty() {
                        out.notes.push(Skipped {
                            kind,
                            id: id.clone(),
                            display_name: display_name.clone(),
                            reason: format!(
                                "read-only {} cannot be set back (the object was deleted and created again since)",
                                read_only.join(", ")
                            ),
                        });
                    }
                    &c.attributes
                }
            };
            let (set, unset) = attribute_fix(base_attributes, &desired_attributes);
            if !set.is_empty() || !unset.is_empty() {
                ops.push(Action::SetAttributes { set, unset });
            }
            let empty = BTreeMap::new();
            let now = current.as_ref().map_or(&empty, |c| &c.links);
            link_fix(now, &d.links, &mut ops);
            if d.is_deleted() {
                ops.push(Action::SoftDelete);
            }
        }
    }
    for action in ops {
        out.operations.push(Operation {
            kind,
            id: id.clone(),
            display_name: display_name.clone(),
            change_type: change_type.as_str().to_string(),
            action,
            planned_version,
        });
    }
}

/// Takes the targets in `unlinkable` out of every link addition (an addition left with
/// no target goes), with a note on the holder per addition that lost targets.
fn leave_out_links(unlinkable: &Unlinkable, out: &mut Plan) {
    let mut notes = Vec::new();
    out.operations.retain_mut(|op| {
        let Action::AddLinks { relation, targets } = &mut op.action else {
            return true;
        };
        let (left_out, kept): (Vec<String>, Vec<String>) = std::mem::take(targets)
            .into_iter()
            .partition(|t| unlinkable.contains_key(t));
        *targets = kept;
        if let Some(first) = left_out.first() {
            let (name, whereabouts) = &unlinkable[first];
            let reason = match left_out.len() {
                1 => format!(
                    "link '{relation}' to {name} ({first}) left out: it {whereabouts} here and is synced from an on-premises directory, which a recovery leaves alone (recover it there, then link it again)"
                ),
                n => format!(
                    "links '{relation}' to {name} ({first}) and {} more left out: they are absent here (or in the recycle bin) and synced from an on-premises directory, which a recovery leaves alone (recover them there, then link them again)",
                    n - 1
                ),
            };
            notes.push(Skipped {
                kind: op.kind,
                id: op.id.clone(),
                display_name: op.display_name.clone(),
                reason,
            });
        }
        !targets.is_empty()
    });
    out.notes.extend(notes);
}

/// The report's change type for an object going from `desired` (base) to `current`.
fn change_type(
    current: Option<&DirectoryObject>,
    desired: Option<&DirectoryObject>,
) -> Option<ChangeType> {
    crate::diff::diff_objects(desired, current).map(|d| d.change_type)
}

/// Attributes to set and to remove so `from` becomes `to` (read-only ones excluded).
fn attribute_fix(
    from: &Map<String, Value>,
    to: &Map<String, Value>,
) -> (Map<String, Value>, Vec<String>) {
    let mut set = Map::new();
    let mut unset = Vec::new();
    for (name, value) in to {
        if !READ_ONLY.contains(&name.as_str()) && !equivalent(from.get(name), Some(value)) {
            set.insert(name.clone(), value.clone());
        }
    }
    for (name, value) in from {
        if !READ_ONLY.contains(&name.as_str())
            && !to.contains_key(name)
            && !equivalent(Some(value), None)
        {
            unset.push(name.clone());
        }
    }
    (set, unset)
}

fn link_fix(
    now: &BTreeMap<String, BTreeSet<String>>,
    want: &BTreeMap<String, BTreeSet<String>>,
    ops: &mut Vec<Action>,
) {
    let empty = BTreeSet::new();
    let relations: BTreeSet<&String> = now.keys().chain(want.keys()).collect();
    for relation in relations {
        let (have, need) = (
            now.get(relation).unwrap_or(&empty),
            want.get(relation).unwrap_or(&empty),
        );
        let remove: Vec<String> = have.difference(need).cloned().collect();
        let add: Vec<String> = need.difference(have).cloned().collect();
        for chunk in remove.chunks(LINKS_PER_OPERATION) {
            ops.push(Action::RemoveLinks {
                relation: relation.clone(),
                targets: chunk.to_vec(),
            });
        }
        for chunk in add.chunks(LINKS_PER_OPERATION.min(MAX_LINKS_PER_MUTATION)) {
            ops.push(Action::AddLinks {
                relation: relation.clone(),
                targets: chunk.to_vec(),
            });
        }
    }
}

/// What an operation amounts to against the state it meets.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing left to do: the state already is what the operation would make it.
    Satisfied,
    /// Run this command. `failed` names link targets left out because they cannot be
    /// linked (they do not exist, or are in the recycle bin), with the reason.
    Run {
        command: Command,
        failed: Vec<(String, String)>,
    },
    /// The operation cannot run; the reason says why.
    Fail(String),
    /// Every link target of the operation is missing.
    FailLinks(Vec<(String, String)>),
}

impl Operation {
    /// The command that carries out this operation on `view`, refreshed against what is
    /// there now: parts already in place are left out, so running an operation twice
    /// changes nothing the second time.
    pub fn step(&self, view: &dyn DirectoryView) -> Step {
        let object = view.object(&self.id);
        let id = self.id.clone();
        match (&self.action, object) {
            (Action::Recreate { .. }, Some(_)) => Step::Satisfied,
            (Action::Recreate { attributes }, None) => Step::Run {
                command: Command::Create {
                    kind: self.kind,
                    id,
                    attributes: attributes.clone(),
                    links: Vec::new(),
                },
                failed: Vec::new(),
            },
            (Action::SoftDelete, Some(o)) if !o.is_deleted() => Step::Run {
                command: Command::SoftDelete { id },
                failed: Vec::new(),
            },
            (Action::SoftDelete, _) => Step::Satisfied,
            (_, None) => Step::Fail(format!(
                "{} {} no longer exists (it was purged after the plan was made)",
                self.kind, self.id
            )),
            (Action::Restore, Some(o)) => {
                if o.is_deleted() {
                    Step::Run {
                        command: Command::Restore { id },
                        failed: Vec::new(),
                    }
                } else {
                    Step::Satisfied
                }
            }
            (_, Some(o)) if o.is_deleted() => Step::Fail(format!(
                "{} {} is in the recycle bin (deleted after the plan was made); restore it first",
                self.kind, self.id
            )),
            (Action::SetAttributes { set, unset }, Some(o)) => {
                let set: Map<String, Value> = set
                    .iter()
                    .filter(|(name, value)| !equivalent(o.attributes.get(*name), Some(value)))
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect();
                let unset: Vec<String> = unset
                    .iter()
                    .filter(|name| !equivalent(o.attributes.get(*name), None))
                    .cloned()
                    .collect();
                if set.is_empty() && unset.is_empty() {
                    Step::Satisfied
                } else {
                    Step::Run {
                        command: Command::Update { id, set, unset },
                        failed: Vec::new(),
                    }
                }
            }
            (Action::RemoveLinks { relation, targets }, Some(_)) => {
                let targets: Vec<String> = targets
                    .iter()
                    .filter(|t| view.has_link(&self.id, relation, t))
                    .cloned()
                    .collect();
                if targets.is_empty() {
                    Step::Satisfied
                } else {
                    Step::Run {
                        command: Command::RemoveLinks {
                            id,
                            relation: relation.clone(),
                            targets,
                        },
                        failed: Vec::new(),
                    }
                }
            }
            (Action::AddLinks { relation, targets }, Some(_)) => {
                let mut failed = Vec::new();
                let mut add = Vec::new();
                for t in targets {
                    if view.has_link(&self.id, relation, t) {
                        continue;
                    }
                    match view.head(t) {
                        None => failed.push((
                            t.clone(),
                            format!(
                                "link '{relation}' to {t} not restored: {t} does not exist now, and this recovery does not bring it back (it is outside the scope); \
                                 a recovery of both brings the link back: --id {} --id {t}",
                                self.id
                            ),
                        )),
                        Some((_, true)) => failed.push((
                            t.clone(),
                            format!("link '{relation}' to {t} not restored: {t} is in the recycle bin"),
                        )),
                        Some(_) => add.push(t.clone()),
                    }
                }
                if add.is_empty() && failed.is_empty() {
                    Step::Satisfied
                } else if add.is_empty() {
                    Step::FailLinks(failed)
                } else {
                    Step::Run {
                        command: Command::AddLinks {
                            id,
                            relation: relation.clone(),
                            targets: add,
                        },
                        failed,
                    }
                }
            }
        }
    }
}
