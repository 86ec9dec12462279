//! Canonical JSON: the one form used for storage, digests and comparisons.
//!
//! Rules: object keys sorted; no insignificant whitespace; numbers as written; `null` is
//! the same as a missing key; an empty list is the same as a missing list. Inside lists,
//! items keep their order and nulls keep their place (positions are meaningful there).

use serde_json::{Map, Value};

/// Canonical form of a value, or `None` when it is equivalent to "absent".
pub fn canonicalize(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => Some(Value::Array(
            items.into_iter().map(canonical_item).collect(),
        )),
        Value::Object(map) => Some(Value::Object(canonical_map(map))),
        Value::Number(n) if is_negative_zero(&n) => Some(Value::from(0)),
        other => Some(other),
    }
}

// Inside a list every item keeps its place, nulls and empty lists included.
fn canonical_item(value: Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(canonical_item).collect()),
        Value::Object(map) => Value::Object(canonical_map(map)),
        Value::Number(n) if is_negative_zero(&n) => Value::from(0),
        other => other,
    }
}

// serde_json reads `-0` as the float -0.0, which it would write back as `-0.0`; it is 0.
fn is_negative_zero(n: &serde_json::Number) -> bool {
    n.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative())
}

/// Canonical form of an attribute map: absent-equivalent entries dropped, values canonical.
pub fn canonical_map(map: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in map {
        if let Some(value) = canonicalize(value) {
            out.insert(key, value);
        }
    }
    out
}

/// Canonical JSON text of a value. Keys are written sorted whatever map order the value has.
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

/// Canonical JSON text of an attribute map: what [`to_canonical_string`] writes for the
/// map as an object, without copying the map into a `Value` first.
pub fn map_to_canonical_string(map: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_map(map, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => write_map(map, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::String(text) => write_string(text, out),
        Value::Number(n) if is_negative_zero(n) => out.push('0'),
        other => out.push_str(&other.to_string()),
    }
}

pub(crate) fn write_map(map: &Map<String, Value>, out: &mut String) {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(key, out);
        out.push(':');
        write_canonical(&map[key], out);
    }
    out.push('}');
}

/// A JSON string literal exactly as serde_json writes it. serde_json escapes only `"`,
/// `\` and control characters, so text without them is written as it is.
pub(crate) fn write_string(text: &str, out: &mut String) {
    if text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&Value::String(text.to_string()).to_string());
    } else {
        out.push('"');
        out.push_str(text);
        out.push('"');
    }
}

/// Whether two attribute values mean the same thing: canonical forms equal, with GUIDs
/// compared without regard to case.
pub fn equivalent(a: Option<&Value>, b: Option<&Value>) -> bool {
    // Equal values have equal canonical forms; most compared values are equal.
    if a == b {
        return true;
    }
    let a = a.cloned().and_then(canonicalize).map(fold_guid_case);
    let b = b.cloned().and_then(canonicalize).map(fold_guid_case);
    a == b
}

fn fold_guid_case(value: Value) -> Value {
    match value {
        Value::String(s) if looks_like_guid(&s) => Value::String(s.to_ascii_lowercase()),
        Value::Array(items) => Value::Array(items.into_iter().map(fold_guid_case).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, fold_guid_case(v)))
                .collect(),
        ),
        other => other,
    }
}

/// A string in the 8-4-4-4-12 hexadecimal GUID layout.
pub fn looks_like_guid(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    proptest::proptest! {
        /// Strings, keys and whole maps are written exactly as serde_json writes them.
        #[test]
        fn strings_and_maps_read_back_as_written(
            entries in proptest::collection::btree_map("\\PC{0,12}|[a-z\"\\\\\u{0}-\u{1f}\u{7f}é]{0,8}", "\\PC{0,12}|[ -~\u{0}-\u{1f}]{0,8}", 0..8)
        ) {
            for (key, value) in &entries {
                let mut out = String::new();
                write_string(key, &mut out);
                proptest::prop_assert_eq!(&out, &serde_json::to_string(key).unwrap());
                out.clear();
                write_string(value, &mut out);
                proptest::prop_assert_eq!(&out, &serde_json::to_string(value).unwrap());
            }
            let map: Map<String, Value> = entries
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let text = map_to_canonical_string(&map);
            proptest::prop_assert_eq!(&text, &to_canonical_string(&Value::Object(map.clone())));
            let parsed: Value = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(parsed, Value::Object(map));
        }
    }

    #[test]
    fn keys_are_sorted_and_whitespace_dropped() {
        let v = json!({"b": 1, "a": {"d": [1, 2], "c": "x"}});
        assert_eq!(
            to_canonical_string(&v),
            r#"{"a":{"c":"x","d":[1,2]},"b":1}"#
        );
    }

    #[test]
    fn null_and_empty_list_mean_absent() {
        let v = canonicalize(json!({"a": null, "b": [], "c": {"d": null}, "e": [null, 1]}));
        assert_eq!(v, Some(json!({"c": {}, "e": [null, 1]})));
        assert_eq!(canonicalize(json!(null)), None);
        assert_eq!(canonicalize(json!([])), None);
    }

    #[test]
    fn numbers_keep_their_written_form() {
        let v: Value = serde_json::from_str(r#"{"x": 1.5, "y": 10, "z": -0}"#).unwrap();
        assert_eq!(to_canonical_string(&v), r#"{"x":1.5,"y":10,"z":0}"#);
    }

    #[test]
    fn equivalence_ignores_guid_case_and_absent_forms() {
        let upper = json!("87D349ED-44D7-43E1-9A83-5F2406DEE5BD");
        let lower = json!("87d349ed-44d7-43e1-9a83-5f2406dee5bd");
        assert!(equivalent(Some(&upper), Some(&lower)));
        assert!(equivalent(None, Some(&json!([]))));
        assert!(equivalent(Some(&json!(null)), None));
        assert!(!equivalent(Some(&json!("a")), Some(&json!("A"))));
        assert!(!equivalent(Some(&json!([1, 2])), Some(&json!([2, 1]))));
    }
}
