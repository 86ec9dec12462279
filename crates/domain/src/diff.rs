//! Differences between two states of one object, in the terms administrators use: what
//! kind of change it was, what would undo it, and every attribute (by path, into nested
//! documents) and link that differs.
//!
//! Equivalent values are not changes: null, missing and empty lists are the same, key
//! order does not matter and GUIDs compare without case ([`crate::canonical::equivalent`]).
//! Lists are compared as whole values: their order is meaningful.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::canonical::equivalent;
use crate::object::{DirectoryObject, Link};
use crate::schema::SYNCED_FLAG;
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
    let change_type = change_type(
        base.map(DirectoryObject::is_deleted),
        target.map(DirectoryObject::is_deleted),
    )?;
    let empty = Map::new();
    let mut attributes = Vec::new();
    diff_maps(
        "",
        base.map_or(&empty, |o| &o.attributes),
        target.map_or(&empty, |o| &o.attributes),
        &mut attributes,
    );
    let list = |o: Option<&DirectoryObject>| o.map(DirectoryObject::link_list).unwrap_or_default();
    let links = diff_links(&list(base), &list(target));
    let object = target.or(base)?;
    finish(
        Found {
            change_type,
            id: &object.id,
            kind: object.kind,
            display_name: target
                .and_then(DirectoryObject::display_name)
                .or_else(|| base.and_then(DirectoryObject::display_name))
                .map(str::to_string),
            synced: base.is_some_and(DirectoryObject::is_synced)
                || target.is_some_and(DirectoryObject::is_synced),
        },
        attributes,
        links,
    )
}

/// An object as its stored JSON holds it: each top-level attribute stays JSON text, so
/// comparing two versions decodes only the attributes whose text differs. Comparing two
/// of these ([`diff_texts`]) gives what [`diff_objects`] gives for the decoded objects.
#[derive(Debug, Clone)]
pub struct ObjectText<'a> {
    pub id: Cow<'a, str>,
    pub kind: ObjectKind,
    pub deleted: bool,
    attributes: BTreeMap<Name<'a>, &'a RawValue>,
    /// Sorted, as [`DirectoryObject::link_list`] gives them.
    pub links: Vec<Link>,
}

/// An attribute name, borrowed from the JSON unless it holds escapes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Name<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Name<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Name<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an attribute name")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(Visit(std::marker::PhantomData))
    }
}

/// The parts of a [`DirectoryObject`]'s JSON a comparison needs; the rest is skipped.
#[derive(Deserialize)]
struct StoredParts<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    kind: ObjectKind,
    #[serde(borrow)]
    attributes: BTreeMap<Name<'a>, &'a RawValue>,
    #[serde(default)]
    deleted_at_ms: Option<i64>,
}

impl<'a> ObjectText<'a> {
    /// An object from the JSON of a [`DirectoryObject`], without links.
    pub fn from_json(json: &'a [u8]) -> Result<Self, serde_json::Error> {
        let parts: StoredParts<'a> = serde_json::from_slice(json)?;
        Ok(Self {
            id: parts.id,
            kind: parts.kind,
            deleted: parts.deleted_at_ms.is_some(),
            attributes: parts.attributes,
            links: Vec::new(),
        })
    }

    /// The object a creation makes: its attributes as the creation's JSON object text
    /// (empty text = no attributes), without links.
    pub fn created(
        kind: ObjectKind,
        id: &'a str,
        attributes_json: &'a str,
    ) -> Result<Self, serde_json::Error> {
        let attributes = if attributes_json.is_empty() {
            BTreeMap::new()
        } else {
            serde_json::from_str(attributes_json)?
        };
        Ok(Self {
            id: Cow::Borrowed(id),
            kind,
            deleted: false,
            attributes,
            links: Vec::new(),
        })
    }

    /// An attribute's value, decoded.
    fn attribute(&self, name: &str) -> Result<Option<Value>, serde_json::Error> {
        self.attributes
            .get(&Name(Cow::Borrowed(name)))
            .map(|raw| serde_json::from_str(raw.get()))
            .transpose()
    }

    fn display_name(&self) -> Result<Option<String>, serde_json::Error> {
        Ok(match self.attribute("displayName")? {
            Some(Value::String(name)) => Some(name),
            _ => None,
        })
    }

    fn is_synced(&self) -> Result<bool, serde_json::Error> {
        Ok(self.attribute(SYNCED_FLAG)? == Some(Value::Bool(true)))
    }
}

/// [`diff_objects`] for objects as JSON text: attributes whose text is the same on both
/// sides are equal and are not decoded. Fails only on text that is not JSON.
pub fn diff_texts(
    base: Option<&ObjectText<'_>>,
    target: Option<&ObjectText<'_>>,
) -> Result<Option<ObjectDiff>, serde_json::Error> {
    let Some(change_type) = change_type(base.map(|o| o.deleted), target.map(|o| o.deleted)) else {
        return Ok(None);
    };
    let empty = BTreeMap::new();
    let base_attributes = base.map_or(&empty, |o| &o.attributes);
    let target_attributes = target.map_or(&empty, |o| &o.attributes);
    let mut names: Vec<&Name<'_>> = base_attributes
        .keys()
        .chain(target_attributes.keys())
        .collect();
    names.sort();
    names.dedup();
    let decode = |raw: Option<&&RawValue>| {
        raw.map(|raw| serde_json::from_str::<Value>(raw.get()))
            .transpose()
    };
    let mut attributes = Vec::new();
    for name in names {
        let (b, t) = (base_attributes.get(name), target_attributes.get(name));
        if let (Some(b), Some(t)) = (b, t) {
            if b.get() == t.get() {
                continue;
            }
        }
        diff_entry(
            "",
            &name.0,
            decode(b)?.as_ref(),
            decode(t)?.as_ref(),
            &mut attributes,
        );
    }
    let no_links = Vec::new();
    let links = diff_links(
        base.map_or(&no_links, |o| &o.links),
        target.map_or(&no_links, |o| &o.links),
    );
    let Some(object) = target.or(base) else {
        return Ok(None);
    };
    let display_name = match target.map(ObjectText::display_name).transpose()?.flatten() {
        Some(name) => Some(name),
        None => base.map(ObjectText::display_name).transpose()?.flatten(),
    };
    let synced = base.map(ObjectText::is_synced).transpose()? == Some(true)
        || target.map(ObjectText::is_synced).transpose()? == Some(true);
    Ok(finish(
        Found {
            change_type,
            id: &object.id,
            kind: object.kind,
            display_name,
            synced,
        },
        attributes,
        links,
    ))
}

/// What happened to an object, from whether it is in the recycle bin at base and at
/// target (`None` = absent there); `None` when nothing users could see happened.
fn change_type(base: Option<bool>, target: Option<bool>) -> Option<ChangeType> {
    Some(match (base, target) {
        (None, None) | (None, Some(true)) => return None,
        (None, Some(false)) => ChangeType::Added,
        (Some(_), None) => ChangeType::HardDeleted,
        (Some(false), Some(true)) => ChangeType::SoftDeleted,
        (Some(true), Some(false)) => ChangeType::Restored,
        (Some(_), Some(_)) => ChangeType::Modified,
    })
}

/// The facts about the object an [`ObjectDiff`] carries besides its differences.
struct Found<'o> {
    change_type: ChangeType,
    id: &'o str,
    kind: ObjectKind,
    display_name: Option<String>,
    synced: bool,
}

fn finish(
    found: Found<'_>,
    attributes: Vec<AttributeDiff>,
    links: Vec<LinkDiff>,
) -> Option<ObjectDiff> {
    if found.change_type == ChangeType::Modified && attributes.is_empty() && links.is_empty() {
        return None;
    }
    Some(ObjectDiff {
        id: found.id.to_string(),
        kind: found.kind,
        display_name: found.display_name,
        change_type: found.change_type,
        recovery_action: found.change_type.recovery_action(),
        synced: found.synced,
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
    for key in keys {
        diff_entry(prefix, key, base.get(key), target.get(key), out);
    }
}

/// How one attribute differs, path by path: a nested document that changed inside gives
/// the paths that changed (`conditions.users.excludeGroups`), anything else itself.
pub fn attribute_paths(
    name: &str,
    base: Option<&Value>,
    target: Option<&Value>,
) -> Vec<AttributeDiff> {
    let mut out = Vec::new();
    diff_entry("", name, base, target, &mut out);
    out
}

/// The differences under one key of a document at `prefix` (empty at the top).
fn diff_entry(
    prefix: &str,
    key: &str,
    base: Option<&Value>,
    target: Option<&Value>,
    out: &mut Vec<AttributeDiff>,
) {
    let path = || {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match (base, target) {
        (Some(Value::Object(b)), Some(Value::Object(t))) => diff_maps(&path(), b, t, out),
        (b, t) if !equivalent(b, t) => out.push(AttributeDiff {
            path: path(),
            base: b.cloned().and_then(crate::canonical::canonicalize),
            target: t.cloned().and_then(crate::canonical::canonicalize),
        }),
        _ => {}
    }
}

/// Links in one sorted list and not the other.
fn diff_links(base: &[Link], target: &[Link]) -> Vec<LinkDiff> {
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
    use proptest::prelude::*;
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

    /// Values where text and meaning part ways: GUIDs in either case, null against
    /// missing and empty lists, nested documents, escapes in names and strings.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..3).prop_map(Value::from),
            Just(json!(1.5)),
            prop_oneof![
                Just("aa000000-0000-4000-8000-000000000001"),
                Just("AA000000-0000-4000-8000-000000000001"),
                Just("x\"y"),
                Just("é"),
                Just(""),
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
                proptest::collection::btree_map("[ab\"]{1,2}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn attributes() -> impl Strategy<Value = Map<String, Value>> {
        proptest::collection::btree_map(
            prop_oneof![
                Just("displayName".to_string()),
                Just(SYNCED_FLAG.to_string()),
                "[a-c\\\"]{1,3}",
            ],
            value(),
            0..5,
        )
        .prop_map(|m| m.into_iter().collect())
    }

    fn links() -> impl Strategy<Value = Vec<Link>> {
        proptest::collection::btree_set(("[mo]", "[u][1-3]"), 0..4)
            .prop_map(|set| set.into_iter().map(|(r, t)| Link::new(r, t)).collect())
    }

    /// An object's attributes, links and whether it is in the recycle bin; `None` = absent.
    type Side = Option<(Map<String, Value>, Vec<Link>, bool)>;

    fn side() -> impl Strategy<Value = Side> {
        proptest::option::of((attributes(), links(), any::<bool>()))
    }

    fn decoded(side: &Side) -> Option<DirectoryObject> {
        side.as_ref()
            .map(|(attributes, links, deleted)| DirectoryObject {
                id: "p1".into(),
                kind: ObjectKind::Group,
                attributes: attributes.clone(),
                links: group_links(links),
                created_at_ms: 1,
                updated_at_ms: 2,
                deleted_at_ms: deleted.then_some(5),
                purge_after_ms: deleted.then_some(9),
                version: 3,
            })
    }

    proptest! {
        /// Comparing the stored texts reports exactly what comparing the decoded objects
        /// does, whether a side was stored as a whole object or as a creation's attributes.
        #[test]
        fn texts_differ_exactly_as_decoded_objects_do(base in side(), target in side(), created in any::<bool>()) {
            let (base_object, target_object) = (decoded(&base), decoded(&target));
            let json = |o: &Option<DirectoryObject>| o.as_ref().map(|o| serde_json::to_vec(o).unwrap());
            let (base_json, target_json) = (json(&base_object), json(&target_object));
            let attributes_json = base.as_ref().map(|(a, _, _)| serde_json::to_string(a).unwrap());
            fn text<'j>(json: &'j Option<Vec<u8>>, side: &Side) -> Option<ObjectText<'j>> {
                json.as_ref().map(|j| {
                    let mut text = ObjectText::from_json(j).unwrap();
                    text.links = side.as_ref().unwrap().1.clone();
                    text
                })
            }
            let mut base_text = text(&base_json, &base);
            // A creation is never in the recycle bin.
            if created && base.as_ref().is_some_and(|(_, _, deleted)| !deleted) {
                let mut text = ObjectText::created(ObjectKind::Group, "p1", attributes_json.as_deref().unwrap()).unwrap();
                text.links = base.as_ref().unwrap().1.clone();
                base_text = Some(text);
            }
            let target_text = text(&target_json, &target);
            prop_assert_eq!(
                diff_texts(base_text.as_ref(), target_text.as_ref()).unwrap(),
                diff_objects(base_object.as_ref(), target_object.as_ref())
            );
        }
    }

    #[test]
    fn a_creation_without_attributes_and_text_that_is_not_json() {
        let empty = ObjectText::created(ObjectKind::User, "u1", "").unwrap();
        let named =
            ObjectText::created(ObjectKind::User, "u1", r#"{"displayName":"Ann"}"#).unwrap();
        let diff = diff_texts(Some(&empty), Some(&named)).unwrap().unwrap();
        assert_eq!(diff.display_name.as_deref(), Some("Ann"));
        assert_eq!(diff.attributes[0].path, "displayName");
        assert!(ObjectText::created(ObjectKind::User, "u1", "[1]").is_err());
        assert!(ObjectText::from_json(br#"{"id":"u1""#).is_err());
    }
}
