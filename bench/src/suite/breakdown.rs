//! The import breakdown: where the bulk import's time went, per kind of object, printed and
//! as JSON.

use super::progress;
use crate::scenarios::import;

/// Prints where the import's time went and returns the same as JSON.
pub(super) fn import_breakdown(imported: &import::ImportRun) -> serde_json::Value {
    progress(&format!(
        "  {:<28} {:>7} {:>5} {:>8} {:>8} {:>8} {:>8}",
        "kind", "objects", "calls", "decide", "append", "project", "respond"
    ));
    let mut out = serde_json::Map::new();
    let mut total = import::Phases::default();
    for k in imported.by_kind.iter().filter(|k| k.calls > 0) {
        let p = &k.phases;
        progress(&format!(
            "  {:<28} {:>7} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            k.kind, k.objects, k.calls, p.decide, p.append, p.project, p.respond
        ));
        total.add(*p);
        out.insert(k.kind.clone(), phases_json(k.objects, k.calls, p));
    }
    let objects = imported.by_kind.iter().map(|k| k.objects).sum();
    let calls = imported.by_kind.iter().map(|k| k.calls).sum();
    progress(&format!(
        "  {:<28} {:>7} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        "all", objects, calls, total.decide, total.append, total.project, total.respond
    ));
    out.insert("all".into(), phases_json(objects, calls, &total));
    serde_json::Value::Object(out)
}

fn phases_json(objects: u64, calls: u64, p: &import::Phases) -> serde_json::Value {
    serde_json::json!({
        "objects": objects,
        "calls": calls,
        "decide_seconds": p.decide,
        "append_seconds": p.append,
        "project_seconds": p.project,
        "respond_seconds": p.respond,
        "total_seconds": p.total(),
    })
}
