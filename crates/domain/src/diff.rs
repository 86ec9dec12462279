//! Differences between two states of one object, in the terms administrators use: what
//! kind of change it was, what would undo it, and every attribute (by path, into nested
//! documents) and link that differs.
//!
//! Equivalent values are not changes: null, missing and empty lists are the same, key
//! order does not matter and GUIDs compare without case ([`crate::canonical::equivalent`]).
//! Lists are compared as whole values: their order is meaningful.

use serde_json::{Map, Value};

use crate::canonical::equivalent;
use crate::object::DirectoryObject;
use crate::ObjectKind;

/// What happened to an object between base and target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeType {
    Added,
    Modified,
    SoftDeleted,
    Restored,
    HardDeleted,
}

impl ChangeType {
    pub const ALL: [ChangeType; 5] = [
        ChangeType::Added,
        ChangeType::Modified,
        ChangeType::SoftDeleted,
        ChangeType::Restored,
        ChangeType::HardDeleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "added",
            ChangeType::Modified => "modified",
            ChangeType::SoftDeleted => "softDeleted",
            ChangeType::Restored => "restored",
            ChangeType::HardDeleted => "hardDeleted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// The recovery action that brings the target back to the base.
    pub fn recovery_action(self) -> RecoveryAction {
        match self {
            ChangeType::Added => RecoveryAction::SoftDelete,
            ChangeType::Modified => RecoveryAction::Update,
            ChangeType::SoftDeleted => RecoveryAction::Restore,
            ChangeType::Restored => RecoveryAction::SoftDelete,
            ChangeType::HardDeleted => RecoveryAction::Recreate,
        }
    }
}

/// What a recovery does to undo a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecoveryAction {
    SoftDelete,
    Update,
    Restore,
    Recreate,
}

impl RecoveryAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryAction::SoftDelete => "softDelete",
            RecoveryAction::Update => "update",
            RecoveryAction::Restore => "restore",
            RecoveryAction::Recreate => "recreate",
        }
    }
}

/// One attribute (or nested path) that differs; `None` = absent.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeDiff {
    /// Dotted path, e.g. `displayName` or `conditions.users.excludeGroups`.
    pub path: String,
    pub base: Option<Value>,
    pub target: Option<Value>,
}

/// Whether a link exists in the target but not the base, or the other way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LinkChange {
    Added,
    Removed,
}

impl LinkChange {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkChange::Added => "added",
            LinkChange::Removed => "removed",
        }
    }
}

/// One link that differs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkDiff {
    pub relation: String,
    pub target_id: String,
    pub change: LinkChange,
}

/// Everything that differs about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectDiff {
    pub id: String,
    pub kind: ObjectKind,
    pub display_name: Option<String>,
    pub change_type: ChangeType,
    pub recovery_action: RecoveryAction,
    pub synced: bool,
    pub attributes: Vec<AttributeDiff>,
    pub links: Vec<LinkDiff>,
}

/// The difference between an object at base and at target (`None` = absent there);
/// `None` when there is none. An object absent at base and in the recycle bin at target
/// never existed as far as the directory's users could see, and is not reported.
pub fn diff_objects(
    base: Option<&DirectoryObject>,
    target: Option<&DirectoryObject>,
) -> Option<ObjectDiff> {
    let change_type = match (base, target) {
        (None, None) => return None,
        (None, Some(t)) if t.is_deleted() => return None,
        (None, Some(_)) => ChangeType::Added,
        (Some(_), None) => ChangeType::HardDeleted,
        (Some(b), Some(t)) => match (b.is_deleted(), t.is_deleted()) {
            (false, true) => ChangeType::SoftDeleted,
            (true, false) => ChangeType::Restored,
            _ => ChangeType::Modified,
        },
    };
    let empty = Map::new();
    let mut attributes = Vec::new();
    diff_maps(
        "",
        base.map_or(&empty, |o| &o.attributes),
        target.map_or(&empty, |o| &o.attributes),
        &mut attributes,
    );
    let links = diff_links(base, target);
    if change_type == ChangeType::Modified && attributes.is_empty() && links.is_empty() {
        return None;
    }
    let object = target.or(base)?;
    Some(ObjectDiff {
        id: object.id.clone(),
        kind: object.kind,
        display_name: target
            .and_then(DirectoryObject::display_name)
            .or_else(|| base.and_then(DirectoryObject::display_name))
            .map(str::to_string),
        change_type,
        recovery_action: change_type.recovery_action(),
        synced: base.is_some_and(DirectoryObject::is_synced)
            || target.is_some_and(DirectoryObject::is_synced),
        attributes,
        links,
    })
}

fn diff_maps(
    prefix: &str,
    base: &Map<String, Value>,
    target: &Map<String, Value>,
    out: &mut Vec<AttributeDiff>,
) {
    let mut keys: Vec<&String> = base.keys().chain(target.keys()).collect();
    keys.sort();
    keys.dedup();
    let path = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    for key in keys {
        match (base.get(key), target.get(key)) {
            (Some(Value::Object(b)), Some(Value::Object(t))) => diff_maps(&path(key), b, t, out),
            (b, t) if !equivalent(b, t) => out.push(AttributeDiff {
                path: path(key),
                base: b.cloned().and_then(crate::canonical::canonicalize),
                target: t.cloned().and_then(crate::canonical::canonicalize),
            }),
            _ => {}
        }
    }
}

fn diff_links(base: Option<&DirectoryObject>, target: Option<&DirectoryObject>) -> Vec<LinkDiff> {
    let list = |o: Option<&DirectoryObject>| o.map(DirectoryObject::link_list).unwrap_or_default();
    let (base, target) = (list(base), list(target));
    let removed = base
        .iter()
        .filter(|l| target.binary_search(l).is_err())
        .map(|l| LinkDiff {
            relation: l.relation.clone(),
            target_id: l.target_id.clone(),
            change: LinkChange::Removed,
        });
    let added = target
        .iter()
        .filter(|l| base.binary_search(l).is_err())
        .map(|l| LinkDiff {
            relation: l.relation.clone(),
            target_id: l.target_id.clone(),
            change: LinkChange::Added,
        });
    let mut out: Vec<LinkDiff> = removed.chain(added).collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::object::group_links;
    use crate::Link;

    fn object(attributes: Value, links: &[(&str, &str)], deleted: bool) -> DirectoryObject {
        DirectoryObject {
            id: "p1".into(),
            kind: ObjectKind::ConditionalAccessPolicy,
            attributes: attributes.as_object().cloned().unwrap_or_default(),
            links: group_links(
                &links
                    .iter()
                    .map(|(r, t)| Link::new(*r, *t))
                    .collect::<Vec<_>>(),
            ),
            created_at_ms: 1,
            updated_at_ms: 1,
            deleted_at_ms: deleted.then_some(5),
            purge_after_ms: None,
            version: 1,
        }
    }

    #[test]
    fn nested_documents_differ_by_path_and_equivalent_values_are_not_changes() {
        let base = object(
            json!({"displayName": "Block legacy", "conditions": {"users": {"excludeGroups": ["AA000000-0000-4000-8000-000000000001"], "includeUsers": ["All"]}}, "description": null, "tags": []}),
            &[],
            false,
        );
        let same = object(
            json!({"tags": null, "conditions": {"users": {"includeUsers": ["All"], "excludeGroups": ["aa000000-0000-4000-8000-000000000001"]}}, "displayName": "Block legacy"}),
            &[],
            false,
        );
        assert_eq!(diff_objects(Some(&base), Some(&same)), None);
        let changed = object(
            json!({"displayName": "Block legacy", "conditions": {"users": {"excludeGroups": ["bb000000-0000-4000-8000-000000000002"], "includeUsers": ["All"]}}}),
            &[],
            false,
        );
        let diff = diff_objects(Some(&base), Some(&changed)).unwrap();
        assert_eq!(diff.change_type, ChangeType::Modified);
        assert_eq!(diff.recovery_action, RecoveryAction::Update);
        assert_eq!(
            diff.attributes,
            vec![AttributeDiff {
                path: "conditions.users.excludeGroups".into(),
                base: Some(json!(["AA000000-0000-4000-8000-000000000001"])),
                target: Some(json!(["bb000000-0000-4000-8000-000000000002"])),
            }]
        );
    }

    #[test]
    fn lifecycle_changes_map_to_their_recovery_actions() {
        let live = object(json!({"displayName": "X"}), &[("members", "u1")], false);
        let binned = object(json!({"displayName": "X"}), &[("members", "u1")], true);
        let cases = [
            (
                None,
                Some(&live),
                Some((ChangeType::Added, RecoveryAction::SoftDelete)),
            ),
            (
                Some(&live),
                None,
                Some((ChangeType::HardDeleted, RecoveryAction::Recreate)),
            ),
            (
                Some(&live),
                Some(&binned),
                Some((ChangeType::SoftDeleted, RecoveryAction::Restore)),
            ),
            (
                Some(&binned),
                Some(&live),
                Some((ChangeType::Restored, RecoveryAction::SoftDelete)),
            ),
            (None, Some(&binned), None),
            (Some(&live), Some(&live), None),
        ];
        for (base, target, want) in cases {
            let got = diff_objects(base, target).map(|d| (d.change_type, d.recovery_action));
            assert_eq!(got, want);
        }
    }

    #[test]
    fn links_differ_member_by_member() {
        let base = object(
            json!({"displayName": "G"}),
            &[("members", "u1"), ("members", "u2")],
            false,
        );
        let target = object(
            json!({"displayName": "G"}),
            &[("members", "u2"), ("members", "u3"), ("owners", "u9")],
            false,
        );
        let diff = diff_objects(Some(&base), Some(&target)).unwrap();
        let links: Vec<(&str, &str, LinkChange)> = diff
            .links
            .iter()
            .map(|l| (l.relation.as_str(), l.target_id.as_str(), l.change))
            .collect();
        assert_eq!(
            links,
            [
                ("members", "u1", LinkChange::Removed),
                ("members", "u3", LinkChange::Added),
                ("owners", "u9", LinkChange::Added)
            ]
        );
        assert!(diff.attributes.is_empty());
    }
}
