//! Named locations and the conditional access policies that name them (in
//! `conditions.locations.includeLocations` / `excludeLocations`). These references are
//! attribute values, not links, but the directory keeps them whole as Microsoft Entra does:
//! a policy may name only a live named location (besides the keywords `All` and
//! `AllTrusted`), and a named location a live policy names is not deleted.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::command::DirectoryView;
use crate::error::DomainError;
use crate::kind::ObjectKind;
use crate::object::DirectoryObject;

/// The two lists of a policy's `conditions.locations`.
const FIELDS: [&str; 2] = ["includeLocations", "excludeLocations"];

/// The location ids a policy's attributes name, per field; keywords (`All`,
/// `AllTrusted`) and the all-zero id of the legacy MFA trusted IPs are left out.
fn named_ids(attributes: &Map<String, Value>) -> Vec<(&'static str, String)> {
    let locations = attributes
        .get("conditions")
        .and_then(|c| c.get("locations"));
    let mut out = Vec::new();
    for field in FIELDS {
        let ids = locations
            .and_then(|l| l.get(field))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|text| uuid::Uuid::parse_str(text).ok())
            .filter(|id| !id.is_nil());
        out.extend(ids.map(|id| (field, id.to_string())));
    }
    out
}

/// A policy whose attributes become `next` (from `before`: `None` for a new policy) may
/// name only live named locations. Only what `next` names anew is checked, so a change
/// of something else never fails on a location that went away before this rule.
pub fn check_policy_locations(
    view: &dyn DirectoryView,
    before: Option<&Map<String, Value>>,
    next: &Map<String, Value>,
) -> Result<(), DomainError> {
    let known: BTreeSet<String> = before
        .map(|b| named_ids(b).into_iter().map(|(_, id)| id).collect())
        .unwrap_or_default();
    for (field, id) in named_ids(next) {
        if known.contains(&id) {
            continue;
        }
        let problem = match view.head(&id) {
            Some((ObjectKind::NamedLocation, false)) => continue,
            Some((ObjectKind::NamedLocation, true)) => {
                "is in the recycle bin: restore it first".to_string()
            }
            Some((kind, _)) => format!("is a {kind}, not a named location"),
            None => "does not exist in this tenant: create it first".to_string(),
        };
        return Err(DomainError::invalid(format!(
            "conditions.locations.{field} names {id}, which {problem} (or name 'All' or \
             'AllTrusted')"
        )));
    }
    Ok(())
}

/// A named location a live conditional access policy names is not deleted: the policy
/// would name a location that is gone.
pub fn check_location_unused(
    view: &dyn DirectoryView,
    location: &DirectoryObject,
) -> Result<(), DomainError> {
    for policy in view.live_of_kind(ObjectKind::ConditionalAccessPolicy) {
        let field = named_ids(&policy.attributes)
            .into_iter()
            .find(|(_, id)| id.eq_ignore_ascii_case(&location.id))
            .map(|(field, _)| field);
        if let Some(field) = field {
            let named = |o: &DirectoryObject| {
                o.display_name()
                    .map(|n| format!("{} ({n})", o.id))
                    .unwrap_or_else(|| o.id.clone())
            };
            return Err(DomainError::Conflict(format!(
                "namedLocation {} is used by conditionalAccessPolicy {} in \
                 conditions.locations.{field}: take it out of the policy (or delete the \
                 policy) first",
                named(location),
                named(&policy)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keywords_and_the_nil_id_are_not_locations() {
        let attributes = json!({"conditions": {"locations": {
            "includeLocations": ["All", "AllTrusted", "00000000-0000-0000-0000-000000000000",
                "5E0C52A6-2F4B-4F61-9D5E-9A1F1F0D7A10"],
            "excludeLocations": ["6b5e999b-0ba8-4186-a106-e0296c1c4358", 7],
        }}});
        let ids = named_ids(attributes.as_object().unwrap());
        assert_eq!(
            ids,
            vec![
                (
                    "includeLocations",
                    "5e0c52a6-2f4b-4f61-9d5e-9a1f1f0d7a10".to_string()
                ),
                (
                    "excludeLocations",
                    "6b5e999b-0ba8-4186-a106-e0296c1c4358".to_string()
                ),
            ]
        );
        assert!(named_ids(&Map::new()).is_empty());
    }
}
