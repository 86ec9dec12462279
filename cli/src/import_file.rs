//! Reading an import file as it is sent: JSON lines (one object per line), or Microsoft
//! Graph's own response bodies — a page (`{"value": [...], "@odata.nextLink": ...}`),
//! several pages one after another (read page by page), or a JSON array of objects.
//!
//! Every object gets its kind — its `@kind`, else the `--kind` given for the file, else the
//! kind of its Graph `@odata.type` — and, when it has no id, one derived from its content.

use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;
use backtrack_domain::graph::KIND_KEY;
use backtrack_domain::ObjectKind;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The objects of an import file, each with its number.
pub struct ImportFile {
    pub objects: Box<dyn Iterator<Item = anyhow::Result<(u64, Value)>> + Send>,
    /// What numbers the objects: `line` (JSON lines) or `object` (Graph bodies).
    pub unit: &'static str,
    pub total: Option<u64>,
}

/// Opens `path` for an import into `tenant`; `kind` is the kind of objects without `@kind`.
pub fn open(path: &Path, tenant: &str, kind: Option<ObjectKind>) -> anyhow::Result<ImportFile> {
    let open =
        || std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()));
    let mut first = String::new();
    let mut lines = BufReader::new(open()?);
    while first.trim().is_empty() {
        first.clear();
        if lines.read_line(&mut first)? == 0 {
            break;
        }
    }
    let one_object_a_line = matches!(
        serde_json::from_str::<Value>(&first),
        Ok(Value::Object(map)) if !is_page(&map)
    );
    let mut objects = Objects {
        tenant: tenant.to_string(),
        kind,
        ids: ImportIds::default(),
    };
    if one_object_a_line || first.trim().is_empty() {
        let total = BufReader::new(open()?).lines().count() as u64;
        let lines = BufReader::new(open()?).lines().enumerate();
        let objects = lines.filter_map(move |(n, line)| {
            let number = n as u64 + 1;
            let line = match line {
                Ok(l) => l,
                Err(e) => return Some(Err(anyhow::anyhow!("line {number}: {e}"))),
            };
            if line.trim().is_empty() {
                return None;
            }
            let value = serde_json::from_str(&line).with_context(|| {
                format!("line {number} is not valid JSON (objects of earlier lines may already be imported: fix the line and run the import again; objects already there are recognised, not created twice)")
            });
            Some(value.and_then(|v| objects.prepare(v, "line", number).map(|v| (number, v))))
        });
        return Ok(ImportFile {
            objects: Box::new(objects),
            unit: "line",
            total: Some(total),
        });
    }
    // Graph bodies page by page: a page's objects are sent while the next page is read.
    let shown = path.display().to_string();
    let documents = serde_json::Deserializer::from_reader(BufReader::new(open()?)).into_iter();
    let mut number = 0u64;
    let objects = documents.flat_map(move |document: Result<Value, _>| {
        let values = match document {
            Ok(Value::Array(values)) => values,
            Ok(Value::Object(mut page)) if is_page(&page) => match page.remove("value") {
                Some(Value::Array(values)) => values,
                _ => Vec::new(),
            },
            Ok(object) => vec![object],
            Err(e) => {
                let what = if number == 0 {
                    format!("{shown} is neither JSON lines nor Graph JSON (a page {{\"value\": [...]}}, pages one after another, or an array of objects)")
                } else {
                    format!("{shown} is not valid JSON after object {number} (the objects before it may already be imported: fix the file and run the import again; objects already there are recognised, not created twice)")
                };
                return vec![Err(anyhow::Error::new(e).context(what))];
            }
        };
        values
            .into_iter()
            .map(|value| {
                number += 1;
                objects
                    .prepare(value, "object", number)
                    .map(|value| (number, value))
            })
            .collect()
    });
    Ok(ImportFile {
        objects: Box::new(objects),
        unit: "object",
        total: None,
    })
}

/// A Graph response page: its objects are in `value`.
fn is_page(map: &Map<String, Value>) -> bool {
    map.get("value").is_some_and(Value::is_array)
}

/// Gives each object its kind and, when it has none, its id.
struct Objects {
    tenant: String,
    kind: Option<ObjectKind>,
    ids: ImportIds,
}

impl Objects {
    fn prepare(&mut self, mut value: Value, unit: &str, number: u64) -> anyhow::Result<Value> {
        let map = value
            .as_object_mut()
            .with_context(|| format!("{unit} {number} is not a JSON object"))?;
        if map.contains_key("@removed") {
            anyhow::bail!("{unit} {number} is a removal from a delta page (\"@removed\"): an import takes objects, not changes");
        }
        let kind = match map.get(KIND_KEY) {
            Some(given) => given.as_str().and_then(|k| k.parse::<ObjectKind>().ok()),
            None => {
                let graph_type = map.get("@odata.type").and_then(Value::as_str);
                // Given for the file, the kind is checked against the object's own
                // `@odata.type` by the directory.
                let kind = self
                    .kind
                    .or_else(|| graph_type.and_then(ObjectKind::from_graph_type))
                    .with_context(|| no_kind(unit, number, graph_type))?;
                map.insert(KIND_KEY.into(), Value::String(kind.as_str().into()));
                Some(kind)
            }
        };
        if !map.contains_key("id") {
            let id = match kind.and_then(ObjectKind::singleton_id) {
                Some(fixed) => fixed.to_string(),
                None => self.ids.derive(&self.tenant, map),
            };
            map.insert("id".into(), Value::String(id));
        }
        Ok(value)
    }
}

fn no_kind(unit: &str, number: u64, graph_type: Option<&str>) -> String {
    let named = match graph_type {
        Some(t) => format!(" (its \"@odata.type\" '{t}' is no kind Backtrack keeps)"),
        None => String::new(),
    };
    format!("{unit} {number} names no kind{named}: add \"{KIND_KEY}\": \"user\" (or another kind) to it, or give --kind for the objects without one")
}

/// Ids for import objects that carry none, derived from the tenant and the object's
/// content (canonical JSON: key order and spacing do not matter), and for the n-th object
/// with the same content from n as well. Running an import again — after a crash, or after
/// fixing, adding or reordering lines — finds the objects it created before instead of
/// creating them twice; identical objects in one file stay distinct.
#[derive(Default)]
struct ImportIds {
    /// Occurrences so far, by the first half of the content's digest (a million lines
    /// take about 40 MB).
    seen: std::collections::HashMap<[u8; 16], u32>,
}

impl ImportIds {
    fn derive(&mut self, tenant: &str, object: &Map<String, Value>) -> String {
        let content = backtrack_domain::canonical::map_to_canonical_string(object);
        let digest: [u8; 32] = Sha256::digest(content.as_bytes()).into();
        let mut half = [0u8; 16];
        half.copy_from_slice(&digest[..16]);
        let occurrence = self.seen.entry(half).or_insert(0);
        *occurrence += 1;
        uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_URL,
            format!("{tenant}/{}/{occurrence}", hex::encode(digest)).as_bytes(),
        )
        .to_string()
    }
}
