//! Report filters and points from hostile text: parsing and matching never panic, and a
//! filter that validates matches items without blowing up.
#![no_main]

use backtrack_differ::report::ItemFilter;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    kinds: Vec<String>,
    change_types: Vec<String>,
    attribute: String,
    search: String,
    ids: Vec<String>,
    item: String,
    point: String,
    now_ms: i64,
}

fuzz_target!(|input: Input| {
    let filter = ItemFilter {
        kinds: input.kinds,
        change_types: input.change_types,
        attribute: input.attribute,
        search: input.search,
        ids: input.ids,
    };
    if filter.validate().is_ok() {
        if let Ok(item) = serde_json::from_str::<serde_json::Value>(&input.item) {
            let _ = filter.matches(&item);
        }
    }
    let _ = backtrack_cli::point::parse(&input.point, input.now_ms);
});
