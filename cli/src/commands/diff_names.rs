//! Names for the link targets of a page of report items, so `diff show` prints
//! `-members <id> (Ada Lovelace)` rather than ids alone. A removed link's target is looked
//! up as it was at the report's base, an added one's at its target, through the
//! time-travel service, a bounded number at a time. Names are a help for people: a target
//! that cannot be looked up (absent at that point, of a kind outside the token, the
//! service unreachable) is shown by its id alone, as before.

use std::collections::{BTreeMap, HashMap};

use backtrack_domain::object::DirectoryObject;
use backtrack_proto::convert::object_from_proto;
use backtrack_proto::v1;
use futures::StreamExt;
use serde_json::Value;

use crate::args::GlobalArgs;
use crate::client::time_travel_client;

/// Display names by target id.
pub type Names = HashMap<String, String>;

/// At most this many targets are looked up for one page.
const MOST_NAMED: usize = 200;
/// Lookups in flight at once.
const IN_FLIGHT: usize = 16;

/// The names of the link targets of `items`, a page of `report`.
pub async fn link_target_names(g: &GlobalArgs, report: &v1::Report, items: &[Value]) -> Names {
    names_at(g, &report.tenant, wanted(report, items)).await
}

/// The display names of objects of `tenant`, each as it was at its sequence in `wanted`;
/// an object that cannot be looked up is left out.
pub async fn names_at(g: &GlobalArgs, tenant: &str, wanted: BTreeMap<String, u64>) -> Names {
    objects_at(g, tenant, wanted)
        .await
        .into_iter()
        .filter_map(|(id, o)| Some((id, o.display_name()?.to_string())))
        .collect()
}

/// Role assignments of `tenant` (each at its sequence in `wanted`) as people read them,
/// each part by its name at that point (a built-in role by its own): by id, the label
/// `<role> → <principal>` and what its creation did (`privileged role … assigned to …`).
pub async fn assignment_names(
    g: &GlobalArgs,
    tenant: &str,
    wanted: BTreeMap<String, u64>,
) -> HashMap<String, (String, String)> {
    let assignments = objects_at(g, tenant, wanted.clone()).await;
    let text = |o: &DirectoryObject, name: &str| {
        o.attributes
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut parts = BTreeMap::new();
    for (id, o) in &assignments {
        for name in ["roleDefinitionId", "principalId"] {
            parts.insert(text(o, name), wanted[id]);
        }
    }
    parts.remove("");
    let names = names_at(g, tenant, parts).await;
    assignments
        .iter()
        .map(|(id, o)| {
            let (role, principal) = (text(o, "roleDefinitionId"), text(o, "principalId"));
            let named = backtrack_domain::roles::Assignment {
                role_id: &role,
                role_name: names.get(&role).map(String::as_str),
                principal_id: &principal,
                principal_name: names.get(&principal).map(String::as_str),
            };
            (id.clone(), (named.label(), named.assigned()))
        })
        .collect()
}

/// The objects of `tenant`, each as it was at its sequence in `wanted`; one that cannot
/// be looked up is left out.
async fn objects_at(
    g: &GlobalArgs,
    tenant: &str,
    wanted: BTreeMap<String, u64>,
) -> HashMap<String, DirectoryObject> {
    if wanted.is_empty() {
        return HashMap::new();
    }
    let Ok(client) = time_travel_client(g).await else {
        return HashMap::new();
    };
    futures::stream::iter(wanted)
        .map(|(id, sequence)| {
            let mut client = client.clone();
            let tenant = tenant.to_string();
            async move {
                let request = v1::GetObjectAtRequest {
                    tenant,
                    id: id.clone(),
                    at: Some(v1::Point {
                        point: Some(v1::point::Point::Sequence(sequence)),
                    }),
                };
                let object = client
                    .get_object_at(request)
                    .await
                    .ok()?
                    .into_inner()
                    .object?;
                Some((id, object_from_proto(&object).ok()?))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .filter_map(std::future::ready)
        .collect()
        .await
}

/// Each link target of `items` with the sequence to look it up at: the base for a removed
/// link, the target for any other; the first [`MOST_NAMED`] in page order.
fn wanted(report: &v1::Report, items: &[Value]) -> BTreeMap<String, u64> {
    let (Some(base), Some(target)) = (&report.base, &report.target) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    let links = items
        .iter()
        .filter_map(|item| item.get("links").and_then(Value::as_array))
        .flatten();
    for link in links {
        let Some(id) = link.get("targetId").and_then(Value::as_str) else {
            continue;
        };
        if out.len() >= MOST_NAMED && !out.contains_key(id) {
            break;
        }
        let removed = link.get("change").and_then(Value::as_str) == Some("removed");
        let at = if removed {
            base.sequence
        } else {
            target.sequence
        };
        out.entry(id.to_string()).or_insert(at);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(sequence: u64) -> Option<v1::ResolvedPoint> {
        Some(v1::ResolvedPoint {
            sequence,
            ..Default::default()
        })
    }

    #[test]
    fn removed_targets_are_looked_up_at_the_base_added_ones_at_the_target() {
        let report = v1::Report {
            base: at(10),
            target: at(20),
            ..Default::default()
        };
        let items = [
            json!({"links": [
                {"relation": "members", "targetId": "u1", "change": "removed"},
                {"relation": "members", "targetId": "u2", "change": "added"},
            ]}),
            json!({"attributes": []}),
            json!({"links": [{"relation": "owners", "targetId": "u1", "change": "added"}]}),
        ];
        let wanted = wanted(&report, &items);
        assert_eq!(
            wanted.into_iter().collect::<Vec<_>>(),
            vec![("u1".to_string(), 10), ("u2".to_string(), 20)]
        );
    }

    #[test]
    fn a_page_names_a_bounded_number_of_targets() {
        let report = v1::Report {
            base: at(1),
            target: at(2),
            ..Default::default()
        };
        let links: Vec<Value> = (0..MOST_NAMED + 50)
            .map(|i| json!({"relation": "members", "targetId": format!("u{i:04}"), "change": "added"}))
            .collect();
        assert_eq!(
            wanted(&report, &[json!({ "links": links })]).len(),
            MOST_NAMED
        );
        assert!(wanted(&v1::Report::default(), &[json!({ "links": links })]).is_empty());
    }
}
