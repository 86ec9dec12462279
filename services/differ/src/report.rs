//! Report items as administrators and scripts read them, the summary, and filters.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use backtrack_domain::diff::{ChangeType, ObjectDiff};
use backtrack_domain::ObjectKind;
use backtrack_store::{StoreError, TimeTravelStore};
use serde::Serialize;
use serde_json::Value;

/// One changed object of a report, written in the report's JSON shape once, where it is
/// computed: the stored report is these texts in a JSON array.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub object_id: String,
    pub kind: ObjectKind,
    pub change_type: ChangeType,
    /// `{objectId, kind, displayName, changeType, recoveryAction, synced,
    ///   attributes: [{path, base, target}], links: [{relation, targetId, change}]}`.
    pub json: Vec<u8>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ItemShape<'a> {
    object_id: &'a str,
    kind: &'static str,
    display_name: Option<&'a str>,
    change_type: &'static str,
    recovery_action: &'static str,
    synced: bool,
    attributes: Vec<AttributeShape<'a>>,
    links: Vec<LinkShape<'a>>,
}

#[derive(Serialize)]
struct AttributeShape<'a> {
    path: &'a str,
    base: &'a Option<Value>,
    target: &'a Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LinkShape<'a> {
    relation: &'a str,
    target_id: &'a str,
    change: &'static str,
}

impl Item {
    pub fn new(diff: &ObjectDiff) -> Self {
        let shape = ItemShape {
            object_id: &diff.id,
            kind: diff.kind.as_str(),
            display_name: diff.display_name.as_deref(),
            change_type: diff.change_type.as_str(),
            recovery_action: diff.recovery_action.as_str(),
            synced: diff.synced,
            attributes: diff
                .attributes
                .iter()
                .map(|a| AttributeShape {
                    path: &a.path,
                    base: &a.base,
                    target: &a.target,
                })
                .collect(),
            links: diff
                .links
                .iter()
                .map(|l| LinkShape {
                    relation: &l.relation,
                    target_id: &l.target_id,
                    change: l.change.as_str(),
                })
                .collect(),
        };
        // Most items are a few hundred bytes: one allocation instead of a growing buffer.
        let mut json = Vec::with_capacity(384);
        // Strings, booleans and JSON values into memory: serializing cannot fail.
        let _ = serde_json::to_writer(&mut json, &shape);
        Self {
            object_id: diff.id.clone(),
            kind: diff.kind,
            change_type: diff.change_type,
            json,
        }
    }
}

/// How many items there are of each (kind, change type): a report's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(BTreeMap<(ObjectKind, ChangeType), u64>);

impl Counts {
    pub fn add(&mut self, item: &Item) {
        *self.0.entry((item.kind, item.change_type)).or_insert(0) += 1;
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// The counts by kind and change type names, in that order.
    pub fn by_name(&self) -> BTreeMap<(String, String), u64> {
        self.0
            .iter()
            .map(|((kind, change), n)| ((kind.as_str().into(), change.as_str().into()), *n))
            .collect()
    }
}

/// What a reviewer narrows a report to. Empty lists and texts match everything.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    pub kinds: Vec<String>,
    pub change_types: Vec<String>,
    pub attribute: String,
    pub search: String,
    pub ids: Vec<String>,
}

impl ItemFilter {
    /// Checks the change types; the error names the allowed ones.
    pub fn validate(&self) -> Result<(), String> {
        for c in &self.change_types {
            if ChangeType::parse(c).is_none() {
                return Err(format!(
                    "unknown change type '{c}': use added, modified, softDeleted, restored or hardDeleted"
                ));
            }
        }
        if self.search.len() > 256 || self.attribute.len() > 256 {
            return Err("search text and attribute name are limited to 256 bytes".into());
        }
        Ok(())
    }

    pub fn matches(&self, item: &Value) -> bool {
        let text = |key: &str| item[key].as_str().unwrap_or_default();
        (self.kinds.is_empty() || self.kinds.iter().any(|k| k == text("kind")))
            && (self.change_types.is_empty()
                || self.change_types.iter().any(|c| c == text("changeType")))
            && (self.ids.is_empty()
                || self
                    .ids
                    .iter()
                    .any(|id| id.eq_ignore_ascii_case(text("objectId"))))
            && (self.attribute.is_empty() || self.has_attribute(item))
            && (self.search.is_empty() || self.mentions(item))
    }

    fn has_attribute(&self, item: &Value) -> bool {
        item["attributes"].as_array().is_some_and(|attributes| {
            attributes.iter().any(|a| {
                let path = a["path"].as_str().unwrap_or_default();
                path == self.attribute
                    || path
                        .strip_prefix(self.attribute.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
        })
    }

    fn mentions(&self, item: &Value) -> bool {
        let needle = self.search.to_lowercase();
        ["displayName", "objectId"].iter().any(|key| {
            item[*key]
                .as_str()
                .is_some_and(|v| v.to_lowercase().contains(&needle))
        })
    }
}

/// Adds `targetDisplayName` to each link change of `items`: the target's name as it was
/// when the link existed (at `base` for a removed link, at `target` for an added one), if
/// it had one and `may_see` allows its kind. Each target is read once per side.
pub fn name_link_targets(
    store: &TimeTravelStore,
    tenant: &str,
    (base, target): (u64, u64),
    items: &mut [Value],
    may_see: &dyn Fn(&str) -> bool,
) -> Result<(), StoreError> {
    let mut names: HashMap<(String, u64), Option<String>> = HashMap::new();
    for item in items.iter_mut() {
        let Some(links) = item.get_mut("links").and_then(Value::as_array_mut) else {
            continue;
        };
        for link in links {
            let Some(id) = link["targetId"].as_str().map(str::to_string) else {
                continue;
            };
            let at = if link["change"] == "removed" {
                base
            } else {
                target
            };
            let name = match names.entry((id, at)) {
                Entry::Occupied(known) => known.get().clone(),
                Entry::Vacant(slot) => {
                    let object = store.object_at_without_links(tenant, &slot.key().0, at)?;
                    let name = object
                        .filter(|o| may_see(o.kind.as_str()))
                        .and_then(|o| o.display_name().map(str::to_string));
                    slot.insert(name).clone()
                }
            };
            if let Some(name) = name {
                link["targetDisplayName"] = Value::String(name);
            }
        }
    }
    Ok(())
}

/// CSV: one row per changed attribute or link (an object without either gets one row).
/// `targetDisplayName` comes last so that the columns before it keep their places.
pub fn to_csv(items: &[Value]) -> String {
    let mut out = String::from(
        "objectId,kind,displayName,changeType,recoveryAction,synced,path,base,target,relation,targetId,linkChange,targetDisplayName\n",
    );
    for item in items {
        let head = [
            cell(&item["objectId"]),
            cell(&item["kind"]),
            cell(&item["displayName"]),
            cell(&item["changeType"]),
            cell(&item["recoveryAction"]),
            cell(&item["synced"]),
        ]
        .join(",");
        let attributes = item["attributes"].as_array().cloned().unwrap_or_default();
        let links = item["links"].as_array().cloned().unwrap_or_default();
        if attributes.is_empty() && links.is_empty() {
            out.push_str(&format!("{head},,,,,,,\n"));
        }
        for a in &attributes {
            out.push_str(&format!(
                "{head},{},{},{},,,,\n",
                cell(&a["path"]),
                cell(&a["base"]),
                cell(&a["target"])
            ));
        }
        for l in &links {
            out.push_str(&format!(
                "{head},,,,{},{},{},{}\n",
                cell(&l["relation"]),
                cell(&l["targetId"]),
                cell(&l["change"]),
                cell(&l["targetDisplayName"])
            ));
        }
    }
    out
}

/// A CSV cell: strings as they are, other values as compact JSON, quoted when needed.
/// Cells starting with a formula character are prefixed with `'` so spreadsheets show
/// them as text.
fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use backtrack_domain::diff::{AttributeDiff, LinkChange, LinkDiff, RecoveryAction};
    use serde_json::json;

    use super::*;

    fn item() -> Value {
        json!({"objectId": "p1", "kind": "conditionalAccessPolicy", "displayName": "Block, legacy",
               "changeType": "modified", "recoveryAction": "update", "synced": false,
               "attributes": [{"path": "conditions.users.excludeGroups", "base": ["a"], "target": ["b"]}],
               "links": [{"relation": "members", "targetId": "u1", "change": "removed"}]})
    }

    #[test]
    fn filters_match_kinds_changes_attribute_paths_and_text() {
        let i = item();
        assert!(ItemFilter::default().matches(&i));
        assert!(ItemFilter {
            attribute: "conditions".into(),
            ..Default::default()
        }
        .matches(&i));
        assert!(ItemFilter {
            attribute: "conditions.users.excludeGroups".into(),
            ..Default::default()
        }
        .matches(&i));
        assert!(!ItemFilter {
            attribute: "cond".into(),
            ..Default::default()
        }
        .matches(&i));
        assert!(ItemFilter {
            search: "LEGACY".into(),
            ..Default::default()
        }
        .matches(&i));
        assert!(!ItemFilter {
            change_types: vec!["added".into()],
            ..Default::default()
        }
        .matches(&i));
        assert!(ItemFilter {
            change_types: vec!["bogus".into()],
            ..Default::default()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn an_item_is_written_once_in_the_documented_shape() {
        let diff = ObjectDiff {
            id: "p1".into(),
            kind: ObjectKind::ConditionalAccessPolicy,
            display_name: Some("Block, legacy".into()),
            change_type: ChangeType::Modified,
            recovery_action: RecoveryAction::Update,
            synced: false,
            attributes: vec![AttributeDiff {
                path: "conditions.users.excludeGroups".into(),
                base: Some(json!(["a"])),
                target: Some(json!(["b"])),
            }],
            links: vec![LinkDiff {
                relation: "members".into(),
                target_id: "u1".into(),
                change: LinkChange::Removed,
            }],
        };
        let written = Item::new(&diff);
        assert_eq!(
            serde_json::from_slice::<Value>(&written.json).unwrap(),
            item()
        );
        assert!(written
            .json
            .starts_with(br#"{"objectId":"p1","kind":"conditionalAccessPolicy""#));
        // Absent values and names are nulls, not missing keys.
        let added = Item::new(&ObjectDiff {
            display_name: None,
            change_type: ChangeType::Added,
            attributes: vec![AttributeDiff {
                path: "description".into(),
                base: None,
                target: Some(json!("x")),
            }],
            links: Vec::new(),
            ..diff
        });
        let value: Value = serde_json::from_slice(&added.json).unwrap();
        assert_eq!(value["displayName"], Value::Null);
        assert_eq!(
            value["attributes"][0],
            json!({"path": "description", "base": null, "target": "x"})
        );
        let written_value: Value = serde_json::from_slice(&written.json).unwrap();
        assert_eq!(written_value, item());
        let mut counts = Counts::default();
        for item in [&written, &added, &written] {
            counts.add(item);
        }
        assert_eq!(counts.total(), 3);
        assert_eq!(
            counts.by_name().into_iter().collect::<Vec<_>>(),
            [
                (
                    ("conditionalAccessPolicy".to_string(), "added".to_string()),
                    1
                ),
                (
                    (
                        "conditionalAccessPolicy".to_string(),
                        "modified".to_string()
                    ),
                    2
                ),
            ]
        );
    }

    #[test]
    fn csv_quotes_and_defuses_cells() {
        let csv = to_csv(&[item()]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].contains("\"Block, legacy\""));
        assert!(lines[1].contains("\"[\"\"a\"\"]\""));
        assert!(lines[2].ends_with("members,u1,removed,"));
        // A named link target fills the last column; every row has every column.
        let mut named = item();
        named["links"][0]["targetDisplayName"] = json!("Ann");
        named["attributes"] = json!([]);
        let csv = to_csv(&[
            named,
            json!({"objectId": "y", "attributes": [], "links": []}),
        ]);
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[1].ends_with("members,u1,removed,Ann"), "{csv}");
        assert_eq!(lines[0].split(',').count(), 13);
        assert_eq!(lines[2], "y,,,,,,,,,,,,");
        let hostile = json!({"objectId": "x", "displayName": "=HYPERLINK(\"evil\")", "attributes": [], "links": []});
        assert!(to_csv(&[hostile]).contains("\"'=HYPERLINK(\"\"evil\"\")\""));
    }
}
