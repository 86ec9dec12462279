//! The rules of the directory: `decide(view, context, command) -> events`.
//!
//! `decide` reads the current state through [`DirectoryView`] and either refuses the
//! command with a [`DomainError`] or returns the events that carry it out. It never
//! changes state; [`crate::state`] folds the events once the log has acknowledged them.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::canonical::{canonicalize, equivalent};
use crate::event::{AttributeChange, Change};
use crate::kind::ObjectKind;
use crate::locations;
use crate::object::{DirectoryObject, Link};
use crate::schema::{schema, KindSchema, READ_ONLY};
use crate::validate::{self, printable};
use crate::DomainError;

/// A mutation a caller asks for. Ids are already normalised by the caller's edge.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Create {
        kind: ObjectKind,
        id: String,
        attributes: Map<String, Value>,
        links: Vec<Link>,
    },
    Update {
        id: String,
        set: Map<String, Value>,
        unset: Vec<String>,
    },
    AddLinks {
        id: String,
        relation: String,
        targets: Vec<String>,
    },
    RemoveLinks {
        id: String,
        relation: String,
        targets: Vec<String>,
    },
    SoftDelete {
        id: String,
    },
    Restore {
        id: String,
    },
    HardDelete {
        id: String,
    },
}

/// Inputs from outside the model: the time and the configured recycle-bin retention.
#[derive(Debug, Clone, Copy)]
pub struct DecideContext {
    pub now_ms: i64,
    pub recycle_bin_retention_ms: i64,
}

/// An event before the log has given it metadata: which object, and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEvent {
    pub kind: ObjectKind,
    pub object_id: String,
    pub change: Change,
}

/// Read access to the current state of one tenant, as `decide` needs it.
pub trait DirectoryView {
    /// The object with this id, live or in the recycle bin. `links` may be left empty.
    fn object(&self, id: &str) -> Option<DirectoryObject>;
    /// Kind of the object and whether it is in the recycle bin, without reading its
    /// attributes or links (link targets are checked with this, often thousands at a time).
    fn head(&self, id: &str) -> Option<(ObjectKind, bool)> {
        self.object(id).map(|o| (o.kind, o.is_deleted()))
    }
    /// A hint that [`DirectoryView::head`] is about to be asked for each of `ids` (a
    /// mutation's link targets), so a view over storage can read them in one batch.
    fn prefetch_heads(&self, _ids: &[&str]) {}
    /// Whether `id` links to `target` through `relation`.
    fn has_link(&self, id: &str, relation: &str, target: &str) -> bool;
    /// Every link the object holds.
    fn links_of(&self, id: &str) -> Vec<Link>;
    /// Objects that link to `target`: (source id, source kind, relation).
    fn referrers(&self, target: &str) -> Vec<(String, ObjectKind, String)>;
    /// The live object of `kind` whose unique attribute has this value (case-insensitive).
    fn find_unique(&self, kind: ObjectKind, attribute: &str, value: &str) -> Option<String>;
    /// Every live object of `kind`, without links. Asked only for kinds a tenant holds few
    /// of (conditional access policies: at most a few hundred).
    fn live_of_kind(&self, kind: ObjectKind) -> Vec<DirectoryObject>;
}

/// Decides the events that carry out `command`, or refuses it.
pub fn decide(
    view: &dyn DirectoryView,
    ctx: &DecideContext,
    command: Command,
) -> Result<Vec<PendingEvent>, DomainError> {
    match command {
        Command::Create {
            kind,
            id,
            attributes,
            links,
        } => create(view, ctx, kind, id, attributes, links),
        Command::Update { id, set, unset } => update(view, id, set, unset),
        Command::AddLinks {
            id,
            relation,
            targets,
        } => add_links(view, id, relation, targets),
        Command::RemoveLinks {
            id,
            relation,
            targets,
        } => remove_links(view, id, relation, targets),
        Command::SoftDelete { id } => soft_delete(view, ctx, id),
        Command::Restore { id } => restore(view, id),
        Command::HardDelete { id } => hard_delete(view, id),
    }
}

fn create(
    view: &dyn DirectoryView,
    ctx: &DecideContext,
    kind: ObjectKind,
    id: String,
    attributes: Map<String, Value>,
    links: Vec<Link>,
) -> Result<Vec<PendingEvent>, DomainError> {
    let id = validate::object_id(kind, &id)?;
    if let Some(existing) = view.object(&id) {
        return Err(DomainError::AlreadyExists(if existing.is_deleted() {
            format!(
                "{} {id} already exists in the recycle bin: restore it instead of creating it",
                existing.kind
            )
        } else {
            format!("{} {id} already exists: update it instead", existing.kind)
        }));
    }
    let schema = schema(kind);
    let mut attributes = attributes;
    let mut links = links;
    links.extend(crate::graph::take_graph_links(&schema, &mut attributes)?);
    let mut clean = Map::new();
    for (name, value) in attributes {
        if name == "id" || name == "deletedDateTime" || name == "@odata.context" {
            continue;
        }
        if let Some(value) = checked_value(&schema, &name, value)? {
            clean.insert(name, value);
        }
    }
    if !clean.contains_key("createdDateTime") && kind != ObjectKind::AuthorizationPolicy {
        clean.insert(
            "createdDateTime".into(),
            Value::String(crate::time::rfc3339_ms(ctx.now_ms)),
        );
    }
    for required in schema.required {
        if !clean.contains_key(*required) {
            return Err(DomainError::invalid(format!(
                "a {kind} needs the attribute '{required}'"
            )));
        }
    }
    check_object_size(&clean)?;
    check_unique(view, &schema, &id, &clean)?;
    if kind == ObjectKind::ConditionalAccessPolicy {
        locations::check_policy_locations(view, None, &clean)?;
    }
    if links.len() > validate::MAX_LINKS_PER_MUTATION {
        return Err(too_many_links(links.len()));
    }
    prefetch_targets(view, links.iter().map(|l| l.target_id.as_str()));
    let mut seen = BTreeSet::new();
    let mut checked = Vec::with_capacity(links.len());
    for link in links {
        let relation = relation(&schema, &link.relation)?;
        let target = validate::any_object_id(&link.target_id)?;
        check_target(view, &id, relation.name, relation.targets, &target)?;
        if seen.insert((link.relation.clone(), target.clone())) {
            checked.push(Link::new(link.relation, target));
        }
    }
    for relation in schema.links.iter().filter(|r| r.single) {
        let count = checked
            .iter()
            .filter(|l| l.relation == relation.name)
            .count();
        if count > 1 {
            return Err(DomainError::invalid(format!(
                "a {kind} has at most one '{}'",
                relation.name
            )));
        }
    }
    checked.sort();
    Ok(vec![PendingEvent {
        kind,
        object_id: id,
        change: Change::Created {
            attributes: clean,
            links: checked,
        },
    }])
}

fn update(
    view: &dyn DirectoryView,
    id: String,
    set: Map<String, Value>,
    unset: Vec<String>,
) -> Result<Vec<PendingEvent>, DomainError> {
    let object = live_object(view, &id)?;
    let schema = schema(object.kind);
    let mut next = object.attributes.clone();
    for (name, value) in set {
        refuse_read_only(&schema, &name)?;
        match checked_value(&schema, &name, value)? {
            Some(value) => {
                next.insert(name, value);
            }
            None if is_secret(&schema, &name) => {}
            None => {
                next.remove(&name);
            }
        }
    }
    for name in unset {
        refuse_read_only(&schema, &name)?;
        validate::attribute_name(&name)?;
        next.remove(&name);
    }
    for required in schema.required {
        if !next.contains_key(*required) {
            return Err(DomainError::invalid(format!(
                "'{required}' cannot be removed from a {}",
                object.kind
            )));
        }
    }
    check_object_size(&next)?;
    check_unique(view, &schema, &object.id, &next)?;
    if object.kind == ObjectKind::ConditionalAccessPolicy {
        locations::check_policy_locations(view, Some(&object.attributes), &next)?;
    }
    let names: BTreeSet<&String> = object.attributes.keys().chain(next.keys()).collect();
    let changes: Vec<AttributeChange> = names
        .into_iter()
        .filter(|n| !equivalent(object.attributes.get(*n), next.get(*n)))
        .map(|n| AttributeChange {
            name: n.clone(),
            old: object.attributes.get(n).cloned(),
            new: next.get(n).cloned(),
        })
        .collect();
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![PendingEvent {
        kind: object.kind,
        object_id: object.id,
        change: Change::AttributesChanged(changes),
    }])
}

fn add_links(
    view: &dyn DirectoryView,
    id: String,
    relation_name: String,
    targets: Vec<String>,
) -> Result<Vec<PendingEvent>, DomainError> {
    let object = live_object(view, &id)?;
    let schema = schema(object.kind);
    let relation = relation(&schema, &relation_name)?;
    if targets.is_empty() {
        return Err(DomainError::invalid("name at least one target id to link"));
    }
    if targets.len() > validate::MAX_LINKS_PER_MUTATION {
        return Err(too_many_links(targets.len()));
    }
    if relation.single && targets.len() > 1 {
        return Err(DomainError::invalid(format!(
            "a {} has at most one '{}'",
            object.kind, relation.name
        )));
    }
    prefetch_targets(view, targets.iter().map(String::as_str));
    let mut added = BTreeSet::new();
    for target in targets {
        let target = validate::any_object_id(&target)?;
        check_target(view, &object.id, relation.name, relation.targets, &target)?;
        if !view.has_link(&object.id, relation.name, &target) {
            added.insert(target);
        }
    }
    let mut events = Vec::new();
    if added.is_empty() {
        return Ok(events);
    }
    if relation.single {
        let replaced: Vec<Link> = view
            .links_of(&object.id)
            .into_iter()
            .filter(|l| l.relation == relation.name)
            .collect();
        if !replaced.is_empty() {
            events.push(PendingEvent {
                kind: object.kind,
                object_id: object.id.clone(),
                change: Change::LinksRemoved(replaced),
            });
        }
    }
    events.push(PendingEvent {
        kind: object.kind,
        object_id: object.id,
        change: Change::LinksAdded(
            added
                .into_iter()
                .map(|t| Link::new(relation.name, t))
                .collect(),
        ),
    });
    Ok(events)
}

fn remove_links(
    view: &dyn DirectoryView,
    id: String,
    relation_name: String,
    targets: Vec<String>,
) -> Result<Vec<PendingEvent>, DomainError> {
    let object = live_object(view, &id)?;
    let schema = schema(object.kind);
    let relation = relation(&schema, &relation_name)?;
    if targets.is_empty() {
        return Err(DomainError::invalid(
            "name at least one target id to unlink",
        ));
    }
    if targets.len() > validate::MAX_LINKS_PER_MUTATION {
        return Err(too_many_links(targets.len()));
    }
    let mut removed = BTreeSet::new();
    for target in targets {
        let target = validate::any_object_id(&target)?;
        if view.has_link(&object.id, relation.name, &target) {
            removed.insert(target);
        }
    }
    if removed.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![PendingEvent {
        kind: object.kind,
        object_id: object.id,
        change: Change::LinksRemoved(
            removed
                .into_iter()
                .map(|t| Link::new(relation.name, t))
                .collect(),
        ),
    }])
}

fn soft_delete(
    view: &dyn DirectoryView,
    ctx: &DecideContext,
    id: String,
) -> Result<Vec<PendingEvent>, DomainError> {
    let object = live_object(view, &id)?;
    if object.kind.singleton_id().is_some() {
        return Err(DomainError::invalid(format!(
            "{} is a tenant-wide singleton and cannot be deleted; update it instead",
            object.kind
        )));
    }
    if object.kind == ObjectKind::NamedLocation {
        locations::check_location_unused(view, &object)?;
    }
    Ok(vec![PendingEvent {
        kind: object.kind,
        object_id: object.id,
        change: Change::SoftDeleted {
            purge_after_ms: ctx.now_ms.saturating_add(ctx.recycle_bin_retention_ms),
        },
    }])
}

fn restore(view: &dyn DirectoryView, id: String) -> Result<Vec<PendingEvent>, DomainError> {
    let object = any_object(view, &id)?;
    if !object.is_deleted() {
        return Err(DomainError::Conflict(format!(
            "{} {} is not in the recycle bin; only deleted objects can be restored",
            object.kind, object.id
        )));
    }
    check_unique(view, &schema(object.kind), &object.id, &object.attributes)?;
    Ok(vec![PendingEvent {
        kind: object.kind,
        object_id: object.id,
        change: Change::Restored,
    }])
}

fn hard_delete(view: &dyn DirectoryView, id: String) -> Result<Vec<PendingEvent>, DomainError> {
    let object = any_object(view, &id)?;
    if !object.is_deleted() {
        return Err(DomainError::Conflict(format!(
            "{} {} is not in the recycle bin: soft delete it first, then purge it",
            object.kind, object.id
        )));
    }
    let mut events = Vec::new();
    let mut referrers = view.referrers(&object.id);
    referrers.sort();
    let mut by_source: Vec<(String, ObjectKind, Vec<Link>)> = Vec::new();
    for (source, kind, relation) in referrers {
        let link = Link::new(relation, object.id.clone());
        match by_source.last_mut() {
            Some((s, _, links)) if *s == source => links.push(link),
            _ => by_source.push((source, kind, vec![link])),
        }
    }
    for (source, kind, links) in by_source {
        events.push(PendingEvent {
            kind,
            object_id: source,
            change: Change::LinksRemoved(links),
        });
    }
    let links = view.links_of(&object.id);
    events.push(PendingEvent {
        kind: object.kind,
        object_id: object.id,
        change: Change::HardDeleted {
            attributes: object.attributes,
            links,
        },
    });
    Ok(events)
}

fn any_object(view: &dyn DirectoryView, id: &str) -> Result<DirectoryObject, DomainError> {
    let id = validate::any_object_id(id)?;
    view.object(&id)
        .ok_or_else(|| DomainError::NotFound(format!("no object with id {id} in this tenant")))
}

fn live_object(view: &dyn DirectoryView, id: &str) -> Result<DirectoryObject, DomainError> {
    let object = any_object(view, id)?;
    if object.is_deleted() {
        return Err(DomainError::Conflict(format!(
            "{} {} is in the recycle bin: restore it before changing it",
            object.kind, object.id
        )));
    }
    Ok(object)
}

fn relation<'a>(
    schema: &'a KindSchema,
    name: &str,
) -> Result<&'a crate::schema::LinkRelation, DomainError> {
    schema.relation(name).ok_or_else(|| {
        let names: Vec<&str> = schema.links.iter().map(|r| r.name).collect();
        DomainError::invalid(if names.is_empty() {
            format!("a {} has no links", schema.kind)
        } else {
            format!(
                "a {} has no relation '{}': use {}",
                schema.kind,
                printable(name),
                names.join(", ")
            )
        })
    })
}

/// Hands the view the valid ones of `targets` (as `check_target` will ask for them).
fn prefetch_targets<'t>(view: &dyn DirectoryView, targets: impl Iterator<Item = &'t str>) {
    let ids: Vec<String> = targets
        .filter_map(|t| validate::any_object_id(t).ok())
        .collect();
    if ids.len() > 1 {
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        view.prefetch_heads(&ids);
    }
}

fn check_target(
    view: &dyn DirectoryView,
    source: &str,
    relation: &str,
    allowed: &[ObjectKind],
    target: &str,
) -> Result<(), DomainError> {
    if target == source {
        return Err(DomainError::invalid(format!(
            "an object cannot be its own '{relation}'"
        )));
    }
    let (kind, deleted) = view.head(target).ok_or_else(|| {
        DomainError::invalid(format!(
            "link '{relation}' points to {target}, which does not exist in this tenant"
        ))
    })?;
    if deleted {
        return Err(DomainError::Conflict(format!(
            "link '{relation}' points to {target}, which is in the recycle bin; restore it first"
        )));
    }
    if !allowed.contains(&kind) {
        let names: Vec<&str> = allowed.iter().map(|k| k.as_str()).collect();
        return Err(DomainError::invalid(format!(
            "link '{relation}' cannot point to a {} ({target}); it takes {}",
            kind,
            names.join(", ")
        )));
    }
    Ok(())
}

/// The secrets `attributes` carries for an object of `kind` (`passwordProfile`,
/// `passwordCredentials[].secretText`, ...), which [`decide`] drops before anything is
/// stored, so a caller can be told.
pub fn secrets_in(kind: ObjectKind, attributes: &Map<String, Value>) -> Vec<String> {
    let schema = schema(kind);
    let mut found = Vec::new();
    for secret in schema.secrets {
        for (name, value) in attributes
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(secret.attribute))
        {
            match secret.item_field {
                None => found.push(name.clone()),
                Some(field) => {
                    let carried = value.as_array().into_iter().flatten().any(|item| {
                        item.as_object()
                            .is_some_and(|m| m.keys().any(|k| k.eq_ignore_ascii_case(field)))
                    });
                    if carried {
                        found.push(format!("{name}[].{field}"));
                    }
                }
            }
        }
    }
    found
}

fn is_secret(schema: &KindSchema, name: &str) -> bool {
    schema
        .secrets
        .iter()
        .any(|s| s.attribute.eq_ignore_ascii_case(name) && s.item_field.is_none())
}

fn refuse_read_only(schema: &KindSchema, name: &str) -> Result<(), DomainError> {
    if READ_ONLY.contains(&name) {
        return Err(DomainError::invalid(format!(
            "attribute '{name}' is read-only; the directory maintains it"
        )));
    }
    if schema.relation(name).is_some() {
        return Err(DomainError::invalid(format!(
            "'{name}' is a link of a {}: change it with the link operations (`backtrack dir link add|remove --relation {name}`), not as an attribute",
            schema.kind
        )));
    }
    Ok(())
}

/// Validates one attribute and returns its canonical value with secrets removed;
/// `None` when the value is absent-equivalent or was a secret in full.
fn checked_value(
    schema: &KindSchema,
    name: &str,
    value: Value,
) -> Result<Option<Value>, DomainError> {
    validate::attribute_name(name)?;
    if schema.relation(name).is_some() {
        return Err(DomainError::invalid(format!(
            "'{name}' is a link of a {}: give it as a link (in Graph JSON: \"@links\": {{\"{name}\": [\"<id>\", ...]}}, or as Graph gives it: \"{name}@odata.bind\": [\"<id or URL>\"], or expanded: \"{name}\": [{{\"id\": \"<id>\"}}]), not as an attribute",
            schema.kind
        )));
    }
    if is_secret(schema, name) {
        return Ok(None);
    }
    if name == crate::graph::ODATA_TYPE {
        crate::graph::check_odata_type(schema.kind, &value)?;
    }
    validate::attribute_value(name, &value)?;
    let Some(mut value) = canonicalize(value) else {
        return Ok(None);
    };
    if let Some(expected) = schema.attribute_type(name) {
        if !expected.accepts(&value) {
            return Err(DomainError::invalid(format!(
                "attribute '{name}' of a {} must be {}",
                schema.kind,
                expected.describe()
            )));
        }
    }
    if name == "state" && !schema.states.is_empty() {
        let ok = value.as_str().is_some_and(|s| schema.states.contains(&s));
        if !ok {
            return Err(DomainError::invalid(format!(
                "'state' of a {} must be one of {}",
                schema.kind,
                schema.states.join(", ")
            )));
        }
    }
    // Secret names match whatever their case, and a credential list must hold objects:
    // anything else could carry a secret past this stripping into the log.
    for secret in schema
        .secrets
        .iter()
        .filter(|s| s.attribute.eq_ignore_ascii_case(name))
    {
        let Some(field) = secret.item_field else {
            continue;
        };
        let credentials_error = || {
            DomainError::invalid(format!(
                "attribute '{name}' of a {} must be a list of credential objects such as {{\"keyId\": \"...\"}}",
                schema.kind
            ))
        };
        let Value::Array(items) = &mut value else {
            return Err(credentials_error());
        };
        for item in items.iter_mut() {
            let Value::Object(map) = item else {
                return Err(credentials_error());
            };
            map.retain(|key, _| !key.eq_ignore_ascii_case(field));
        }
    }
    Ok(canonicalize(value))
}

fn check_object_size(attributes: &Map<String, Value>) -> Result<(), DomainError> {
    let size = crate::canonical::map_to_canonical_string(attributes).len();
    if size > validate::MAX_OBJECT_BYTES {
        return Err(DomainError::invalid(format!(
            "the object's attributes take {size} bytes; the limit is {} bytes",
            validate::MAX_OBJECT_BYTES
        )));
    }
    Ok(())
}

fn check_unique(
    view: &dyn DirectoryView,
    schema: &KindSchema,
    id: &str,
    attributes: &Map<String, Value>,
) -> Result<(), DomainError> {
    let Some(attribute) = schema.unique else {
        return Ok(());
    };
    let Some(value) = attributes.get(attribute).and_then(Value::as_str) else {
        return Ok(());
    };
    match view.find_unique(schema.kind, attribute, value) {
        Some(other) if other != id => Err(DomainError::AlreadyExists(format!(
            "{attribute} '{}' is already used by {} {other} in this tenant",
            printable(value),
            schema.kind
        ))),
        _ => Ok(()),
    }
}

fn too_many_links(count: usize) -> DomainError {
    DomainError::invalid(format!(
        "{count} link targets in one request; the limit is {}: split the request",
        validate::MAX_LINKS_PER_MUTATION
    ))
}
