//! Edge checks: tenant ids, object ids, attribute names, sizes and nesting depth.
//!
//! Tenant ids and object ids become NATS subject tokens, so anything that could act as a
//! wildcard or separator (`*`, `>`, `.`, whitespace) is refused here, at the edge.

use serde_json::Value;

use crate::kind::ObjectKind;
use crate::DomainError;

/// Largest canonical size of one object's attributes.
pub const MAX_OBJECT_BYTES: usize = 256 * 1024;
/// Largest canonical size of one attribute value.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Deepest nesting of lists and documents inside an attribute value.
pub const MAX_DEPTH: usize = 16;
/// Most link targets in one request or one created object.
pub const MAX_LINKS_PER_MUTATION: usize = 10_000;

/// A tenant id: `[a-z0-9][a-z0-9-]{0,62}`.
pub fn tenant_id(id: &str) -> Result<(), DomainError> {
    let bytes = id.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "invalid tenant id '{}': use 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit",
            printable(id)
        )))
    }
}

/// The normalised id of an object of `kind`: a lower-case UUID for most kinds, the kind
/// name for singletons, an opaque `[A-Za-z0-9_-]{1,128}` token for assignments and grants.
pub fn object_id(kind: ObjectKind, id: &str) -> Result<String, DomainError> {
    if let Some(fixed) = kind.singleton_id() {
        return if id == fixed {
            Ok(id.to_string())
        } else {
            Err(DomainError::invalid(format!(
                "{kind} is a singleton: its id is '{fixed}', not '{}'",
                printable(id)
            )))
        };
    }
    if kind.has_guid_ids() {
        if crate::canonical::looks_like_guid(id) {
            Ok(id.to_ascii_lowercase())
        } else {
            Err(DomainError::invalid(format!(
                "invalid {kind} id '{}': expected a UUID such as 87d349ed-44d7-43e1-9a83-5f2406dee5bd",
                printable(id)
            )))
        }
    } else {
        opaque_id(id)
    }
}

/// An id given without its kind (a link target, a lookup): UUIDs are lower-cased, other
/// ids must be subject-safe tokens.
pub fn any_object_id(id: &str) -> Result<String, DomainError> {
    if crate::canonical::looks_like_guid(id) {
        Ok(id.to_ascii_lowercase())
    } else {
        opaque_id(id)
    }
}

fn opaque_id(id: &str) -> Result<String, DomainError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(id.to_string())
    } else {
        Err(DomainError::invalid(format!(
            "invalid object id '{}': use a UUID or up to 128 characters of A-Z, a-z, 0-9, '-' and '_'",
            printable(id)
        )))
    }
}

/// An attribute name: Graph camelCase, or an `@odata.` annotation.
pub fn attribute_name(name: &str) -> Result<(), DomainError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphabetic() || bytes[0] == b'@')
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'.' | b'_' | b'-'));
    if !ok {
        return Err(DomainError::invalid(format!(
            "invalid attribute name '{}': use Graph camelCase names such as displayName",
            printable(name)
        )));
    }
    // A create takes Graph's link bindings as links; anywhere else one would be stored
    // as an attribute that links nothing.
    if let Some(relation) = name.strip_suffix(crate::graph::BIND_SUFFIX) {
        return Err(DomainError::invalid(format!(
            "'{name}' binds links, which only a create takes: change the links of an existing object with the link operations (`backtrack dir link add|remove --relation {relation}`)"
        )));
    }
    // `@kind` and `@links` are our annotations of rendered objects; stored as attributes
    // they would pass for a kind or for links that the directory does not know of.
    if name.starts_with('@') && !name.starts_with("@odata.") {
        return Err(DomainError::invalid(format!(
            "'{name}' is an annotation, not an attribute (of those only @odata.* ones are kept): give links in the request's links (Graph JSON read by the CLI: \"@links\": {{\"members\": [\"<id>\"]}}) and the kind as its kind"
        )));
    }
    Ok(())
}

/// Checks one attribute value's nesting depth and size.
pub fn attribute_value(name: &str, value: &Value) -> Result<(), DomainError> {
    if depth(value) > MAX_DEPTH {
        return Err(DomainError::invalid(format!(
            "attribute '{name}' is nested deeper than {MAX_DEPTH} levels; flatten it"
        )));
    }
    let size = crate::canonical::to_canonical_string(value).len();
    if size > MAX_VALUE_BYTES {
        return Err(DomainError::invalid(format!(
            "attribute '{name}' is {size} bytes; the limit is {MAX_VALUE_BYTES} bytes per value"
        )));
    }
    Ok(())
}

fn depth(value: &Value) -> usize {
    // Iterative, so hostile nesting cannot exhaust the stack.
    let mut max = 0;
    let mut stack = vec![(value, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        if d > MAX_DEPTH {
            return d;
        }
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    max
}

/// A short, escaped rendering of untrusted text for error messages.
pub fn printable(text: &str) -> String {
    let mut out: String = text.chars().take(64).flat_map(char::escape_debug).collect();
    if text.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tenant_ids_are_subject_safe() {
        assert!(tenant_id("contoso").is_ok());
        assert!(tenant_id("a-1").is_ok());
        for bad in [
            "",
            "-a",
            "Contoso",
            "a.b",
            "a*",
            "a>",
            "a b",
            &"x".repeat(64),
        ] {
            assert!(tenant_id(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn object_ids_follow_the_kind() {
        let upper = "87D349ED-44D7-43E1-9A83-5F2406DEE5BD";
        assert_eq!(
            object_id(ObjectKind::User, upper).unwrap(),
            upper.to_ascii_lowercase()
        );
        assert!(object_id(ObjectKind::User, "not-a-guid").is_err());
        assert!(object_id(ObjectKind::AuthorizationPolicy, "authorizationPolicy").is_ok());
        assert!(object_id(ObjectKind::AuthorizationPolicy, "other").is_err());
        assert!(object_id(
            ObjectKind::AppRoleAssignment,
            "UxOIjjUXr0WvIe4TRFgqTY4z9Wu5KxpBtlEpoTGjw-A"
        )
        .is_ok());
        assert!(object_id(ObjectKind::AppRoleAssignment, "a.b").is_err());
        assert!(any_object_id("*").is_err());
    }

    #[test]
    fn deep_nesting_and_huge_values_are_refused() {
        let mut deep = json!(1);
        for _ in 0..100 {
            deep = json!([deep]);
        }
        assert!(attribute_value("x", &deep)
            .unwrap_err()
            .to_string()
            .contains("nested deeper"));
        let huge = json!("x".repeat(MAX_VALUE_BYTES + 1));
        assert!(attribute_value("x", &huge)
            .unwrap_err()
            .to_string()
            .contains("limit"));
    }

    #[test]
    fn printable_escapes_and_truncates() {
        assert_eq!(printable("a\nb"), "a\\nb");
        assert!(printable(&"y".repeat(100)).ends_with('…'));
    }
}
