//! Microsoft Graph JSON: objects in and out, and delta pages.
//!
//! An object renders as Graph does (`{"id": ..., attributes...}`) plus two annotations of
//! ours: `@kind` (the object kind) and, where it has links, `@links` (targets by relation).
//! Parsing accepts exactly what Graph returns; `@odata.*` annotations are kept as
//! attributes except the response-level `@odata.context`.

use serde_json::{Map, Value};

use crate::kind::ObjectKind;
use crate::object::{DirectoryObject, Link};
use crate::DomainError;

/// Key of the kind annotation in rendered objects and import lines.
pub const KIND_KEY: &str = "@kind";
/// Key of the links annotation in rendered objects and import lines.
pub const LINKS_KEY: &str = "@links";

/// Graph-style JSON of an object.
pub fn render(object: &DirectoryObject) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::String(object.id.clone()));
    out.insert(KIND_KEY.into(), Value::String(object.kind.as_str().into()));
    for (k, v) in &object.attributes {
        out.insert(k.clone(), v.clone());
    }
    if let Some(ms) = object.deleted_at_ms {
        out.insert(
            "deletedDateTime".into(),
            Value::String(crate::time::rfc3339_ms(ms)),
        );
    }
    if !object.links.is_empty() {
        let links: Map<String, Value> = object
            .links
            .iter()
            .map(|(rel, targets)| {
                (
                    rel.clone(),
                    Value::from(targets.iter().cloned().collect::<Vec<_>>()),
                )
            })
            .collect();
        out.insert(LINKS_KEY.into(), Value::Object(links));
    }
    Value::Object(out)
}

/// An object as given in Graph JSON, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedObject {
    pub kind: ObjectKind,
    pub id: Option<String>,
    pub attributes: Map<String, Value>,
    pub links: Vec<Link>,
}

/// Reads one Graph-style object. The kind comes from `@kind` or from `kind_hint`.
pub fn parse(kind_hint: Option<ObjectKind>, value: Value) -> Result<ParsedObject, DomainError> {
    let Value::Object(mut map) = value else {
        return Err(DomainError::Invalid(
            "expected a JSON object such as {\"displayName\": \"Sales\"}".into(),
        ));
    };
    let kind = match map.remove(KIND_KEY) {
        Some(Value::String(name)) => name.parse()?,
        Some(_) => {
            return Err(DomainError::Invalid(format!(
                "'{KIND_KEY}' must be a kind name"
            )))
        }
        None => kind_hint.ok_or_else(|| {
            DomainError::Invalid(format!(
                "no kind given: add \"{KIND_KEY}\": \"user\" (or another kind)"
            ))
        })?,
    };
    let id = match map.remove("id") {
        Some(Value::String(id)) => Some(id),
        Some(Value::Null) | None => None,
        Some(_) => return Err(DomainError::Invalid("'id' must be a string".into())),
    };
    let links = match map.remove(LINKS_KEY) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(rels)) => {
            let mut links = Vec::new();
            for (rel, targets) in rels {
                let Value::Array(targets) = targets else {
                    return Err(DomainError::Invalid(format!(
                        "'{LINKS_KEY}.{rel}' must be a list of ids"
                    )));
                };
                for t in targets {
                    let Value::String(t) = t else {
                        return Err(DomainError::Invalid(format!(
                            "'{LINKS_KEY}.{rel}' must be a list of ids"
                        )));
                    };
                    links.push(Link::new(rel.clone(), t));
                }
            }
            links
        }
        Some(_) => {
            return Err(DomainError::Invalid(format!(
                "'{LINKS_KEY}' must map relations to id lists, e.g. {{\"members\": [\"<id>\"]}}"
            )))
        }
    };
    map.remove("@odata.context");
    Ok(ParsedObject {
        kind,
        id,
        attributes: map,
        links,
    })
}

/// Suffix of Graph's way of giving links in a create request:
/// `"members@odata.bind": ["https://graph.microsoft.com/v1.0/directoryObjects/<id>"]`.
pub const BIND_SUFFIX: &str = "@odata.bind";

/// Takes the links that a Graph-style object gives in Graph's own ways out of its
/// attributes: `<relation>@odata.bind` (one URL or id, or a list of them, as in Graph's
/// create requests; an id is a URL's last segment) and a relation expanded as `$expand`
/// returns it (`"members": [{"id": "<id>", ...}]`, `"manager": {"id": "<id>", ...}`).
/// Relations are checked later, like any link; any other value under a relation's name
/// stays, for the caller to refuse.
pub fn take_graph_links(
    schema: &crate::schema::KindSchema,
    attributes: &mut Map<String, Value>,
) -> Result<Vec<Link>, DomainError> {
    let mut links = Vec::new();
    let bound: Vec<String> = attributes
        .keys()
        .filter(|name| name.ends_with(BIND_SUFFIX))
        .cloned()
        .collect();
    for name in bound {
        let relation = &name[..name.len() - BIND_SUFFIX.len()];
        let shape = || {
            DomainError::invalid(format!(
                "'{}' must be a URL or id of the object to link, or a list of them, e.g. [\"https://graph.microsoft.com/v1.0/directoryObjects/<id>\"]",
                crate::validate::printable(&name)
            ))
        };
        let targets = match attributes.remove(&name) {
            Some(Value::String(one)) => vec![one],
            Some(Value::Array(many)) => many
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    _ => Err(shape()),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(shape()),
        };
        for target in targets {
            let id = bound_id(&target).ok_or_else(shape)?;
            links.push(Link::new(relation.to_string(), id.to_string()));
        }
    }
    for relation in schema.links {
        let expanded = match attributes.get(relation.name) {
            Some(Value::Null) => Some(Vec::new()),
            Some(Value::Object(one)) => expanded_id(one).map(|id| vec![id]),
            Some(Value::Array(many)) => many
                .iter()
                .map(|v| v.as_object().and_then(expanded_id))
                .collect(),
            _ => None,
        };
        if let Some(ids) = expanded {
            attributes.remove(relation.name);
            links.extend(ids.into_iter().map(|id| Link::new(relation.name, id)));
        }
    }
    Ok(links)
}

/// The id in a bind: a URL's last path segment (`.../directoryObjects/<id>`, or OData's
/// `.../directoryObjects('<id>')`), or the id itself.
fn bound_id(target: &str) -> Option<&str> {
    let last = target.trim_end_matches('/').rsplit('/').next()?;
    let id = match last.find("('") {
        Some(open) => last[open + 2..].strip_suffix("')")?,
        None => last,
    };
    (!id.is_empty()).then_some(id)
}

/// The id of an expanded object (`{"@odata.type": ..., "id": "<id>", ...}`).
fn expanded_id(object: &Map<String, Value>) -> Option<String> {
    object.get("id").and_then(Value::as_str).map(str::to_string)
}

/// Graph's type annotation, kept as an attribute.
pub const ODATA_TYPE: &str = "@odata.type";

/// An object's `@odata.type` must be a type of its kind: a user that says it is a group
/// would read back as one to every Graph client.
pub fn check_odata_type(kind: ObjectKind, value: &Value) -> Result<(), DomainError> {
    let given = value.as_str();
    if given.and_then(ObjectKind::from_graph_type) == Some(kind) {
        return Ok(());
    }
    let expected: Vec<String> = kind
        .graph_types()
        .iter()
        .map(|t| format!("\"#microsoft.graph.{t}\""))
        .collect();
    Err(DomainError::invalid(format!(
        "'{ODATA_TYPE}' is {} but the object is a {kind}: give {} or leave it out",
        match given {
            Some(t) => format!("'{}'", crate::validate::printable(t)),
            None => "not a string".to_string(),
        },
        expected.join(" or ")
    )))
}

/// One entry of a `members@delta`-style list.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkDelta {
    pub target_id: String,
    /// The entry's other fields (`@odata.type`, ...), kept to render it back.
    pub annotations: Map<String, Value>,
    /// `@removed` content when the link was removed.
    pub removed: Option<Value>,
}

/// One item of a delta page.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaItem {
    pub id: String,
    pub attributes: Map<String, Value>,
    /// `@removed` content when the object itself was removed (`{"reason": "changed"}`).
    pub removed: Option<Value>,
    /// Link deltas by relation (`members@delta` → `members`).
    pub links: Vec<(String, Vec<LinkDelta>)>,
}

impl DeltaItem {
    /// Links the item adds and removes.
    pub fn link_changes(&self) -> (Vec<Link>, Vec<Link>) {
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for (rel, deltas) in &self.links {
            for d in deltas {
                let link = Link::new(rel.clone(), d.target_id.clone());
                if d.removed.is_some() {
                    removed.push(link);
                } else {
                    added.push(link);
                }
            }
        }
        (added, removed)
    }
}

/// A delta query response page.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaPage {
    /// Page-level annotations (`@odata.context`, `@odata.nextLink`, `@odata.deltaLink`).
    pub annotations: Map<String, Value>,
    pub items: Vec<DeltaItem>,
}

/// Reads a delta page exactly as Graph returns it.
pub fn parse_delta_page(value: Value) -> Result<DeltaPage, DomainError> {
    let Value::Object(mut page) = value else {
        return Err(DomainError::Invalid("a delta page is a JSON object".into()));
    };
    let Some(Value::Array(values)) = page.remove("value") else {
        return Err(DomainError::Invalid(
            "a delta page needs a 'value' list".into(),
        ));
    };
    let mut items = Vec::with_capacity(values.len());
    for v in values {
        let Value::Object(mut map) = v else {
            return Err(DomainError::Invalid(
                "delta items must be JSON objects".into(),
            ));
        };
        let Some(Value::String(id)) = map.remove("id") else {
            return Err(DomainError::Invalid(
                "every delta item needs an 'id'".into(),
            ));
        };
        let removed = map.remove("@removed");
        let delta_keys: Vec<String> = map
            .keys()
            .filter(|k| k.ends_with("@delta"))
            .cloned()
            .collect();
        let mut links = Vec::new();
        for key in delta_keys {
            let relation = key.trim_end_matches("@delta").to_string();
            let Some(Value::Array(entries)) = map.remove(&key) else {
                return Err(DomainError::Invalid(format!("'{key}' must be a list")));
            };
            let mut deltas = Vec::with_capacity(entries.len());
            for e in entries {
                let Value::Object(mut e) = e else {
                    return Err(DomainError::Invalid(format!(
                        "'{key}' entries must be objects"
                    )));
                };
                let Some(Value::String(target_id)) = e.remove("id") else {
                    return Err(DomainError::Invalid(format!(
                        "'{key}' entries need an 'id'"
                    )));
                };
                let removed = e.remove("@removed");
                deltas.push(LinkDelta {
                    target_id,
                    annotations: e,
                    removed,
                });
            }
            links.push((relation, deltas));
        }
        items.push(DeltaItem {
            id,
            attributes: map,
            removed,
            links,
        });
    }
    Ok(DeltaPage {
        annotations: page,
        items,
    })
}

/// Renders a delta page back into Graph's shape.
pub fn render_delta_page(page: &DeltaPage) -> Value {
    let mut out = page.annotations.clone();
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|item| {
            let mut map = item.attributes.clone();
            map.insert("id".into(), Value::String(item.id.clone()));
            if let Some(r) = &item.removed {
                map.insert("@removed".into(), r.clone());
            }
            for (rel, deltas) in &item.links {
                let entries: Vec<Value> = deltas
                    .iter()
                    .map(|d| {
                        let mut e = d.annotations.clone();
                        e.insert("id".into(), Value::String(d.target_id.clone()));
                        if let Some(r) = &d.removed {
                            e.insert("@removed".into(), r.clone());
                        }
                        Value::Object(e)
                    })
                    .collect();
                map.insert(format!("{rel}@delta"), Value::Array(entries));
            }
            Value::Object(map)
        })
        .collect();
    out.insert("value".into(), Value::Array(items));
    Value::Object(out)
}
