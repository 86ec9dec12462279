//! Listings printed page by page as the server sends them, so `dir list` of a tenant of a
//! million users starts printing at once and holds one page in memory, not the tenant.
//!
//! JSON is the same text a whole array would print as ([`JsonArray`]); a table takes its
//! column widths from the header and the first page (later, wider cells push their row
//! out rather than hold every row back).

use serde_json::Value;

use crate::args::{GlobalArgs, OutputFormat};
use crate::output::{cell, object_json, outln, table_line, table_widths};
use backtrack_proto::v1;

/// A pretty-printed JSON array written item by item: the text equals
/// `serde_json::to_string_pretty` of the whole array. An item is held back until the next
/// one (or the end) says whether a comma follows it.
#[derive(Debug, Default)]
pub struct JsonArray {
    held: Option<String>,
    started: bool,
}

impl JsonArray {
    /// Takes `item`; returns the text that can be written now.
    pub fn push(&mut self, item: &Value) -> Option<String> {
        let text = indent(&serde_json::to_string_pretty(item).unwrap_or_default());
        let out = self.held.replace(text).map(|before| format!("{before},"));
        if self.started {
            out
        } else {
            self.started = true;
            Some("[".to_string())
        }
    }

    /// The rest of the text: the last item and the closing bracket (`[]` when empty).
    pub fn finish(self) -> String {
        match self.held {
            Some(last) => format!("{last}\n]"),
            None => "[]".to_string(),
        }
    }
}

/// `text` indented by two spaces, as an item of a pretty-printed array.
fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Directory objects printed as they come: JSON, or the `ID KIND DISPLAY NAME DETAIL`
/// table with a count at the end.
pub struct ObjectListing {
    output: OutputFormat,
    json: JsonArray,
    widths: Option<Vec<usize>>,
    count: usize,
    /// Most objects to print; 0: all.
    limit: usize,
}

const HEADER: [&str; 4] = ["ID", "KIND", "DISPLAY NAME", "DETAIL"];

impl ObjectListing {
    /// A listing of at most `limit` objects (0: all).
    pub fn new(g: &GlobalArgs, limit: usize) -> Self {
        Self {
            output: g.output,
            json: JsonArray::default(),
            widths: None,
            count: 0,
            limit,
        }
    }

    /// Prints one page (as much of it as the limit leaves); says whether to ask for more.
    pub fn page(&mut self, objects: &[v1::DirectoryObject]) -> bool {
        let objects = match self.limit {
            0 => objects,
            limit => &objects[..objects.len().min(limit - self.count)],
        };
        self.count += objects.len();
        match self.output {
            OutputFormat::Json => {
                for o in objects {
                    if let Some(text) = self.json.push(&object_json(o)) {
                        outln!("{text}");
                    }
                }
            }
            OutputFormat::Table => {
                let rows: Vec<Vec<String>> = objects.iter().map(row).collect();
                let widths = self.widths.get_or_insert_with(|| {
                    let widths = table_widths(&HEADER, &rows);
                    table_line(&widths, HEADER.iter().map(|h| h.to_string()).collect());
                    widths
                });
                for row in rows {
                    table_line(widths, row);
                }
            }
        }
        self.limit == 0 || self.count < self.limit
    }

    /// Ends the listing: closes the JSON array, or prints the count.
    pub fn finish(mut self) {
        match self.output {
            OutputFormat::Json => outln!("{}", self.json.finish()),
            OutputFormat::Table => {
                if self.widths.is_none() {
                    self.page(&[]);
                }
                outln!("{} objects", self.count)
            }
        }
    }
}

/// An object's table row: id, kind, display name, and its user principal name, state or
/// app id.
fn row(o: &v1::DirectoryObject) -> Vec<String> {
    let v = object_json(o);
    let name = cell(v.get("displayName"));
    let extra = cell(
        v.get("userPrincipalName")
            .or_else(|| v.get("state"))
            .or_else(|| v.get("appId")),
    );
    vec![o.id.clone(), o.kind.clone(), name, extra]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn streamed(items: &[Value]) -> String {
        let mut array = JsonArray::default();
        let mut out: Vec<String> = items.iter().filter_map(|i| array.push(i)).collect();
        out.push(array.finish());
        out.join("\n")
    }

    #[test]
    fn a_streamed_array_is_the_text_of_the_whole_array() {
        let items = [
            json!({"id": "a", "@links": {"members": ["x", "y"]}, "n": 1}),
            json!({"id": "b", "nested": {"deep": [1, {"k": "v"}]}}),
            json!({"id": "c", "text": "two\nlines"}),
        ];
        for n in 0..=items.len() {
            let whole = serde_json::to_string_pretty(&Value::from(items[..n].to_vec())).unwrap();
            assert_eq!(streamed(&items[..n]), whole, "{n} items");
        }
    }
}
