//! The stores' background work yields the CPU: compactions run at the lowest priority.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use backtrack_domain::event::Change;
use backtrack_domain::ObjectKind;
use backtrack_store::{SequencedEvent, TimeTravelStore};
use serde_json::{json, Map};

mod common;

use common::{stamp, tenant_event};

/// The nice values of this process's RocksDB compaction threads (`rocksdb:low`).
fn compaction_thread_nice_values() -> Vec<i64> {
    let mut values = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != "rocksdb:low" {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command's closing parenthesis start at field 3 (state); the
        // nice value is field 19.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        if let Some(nice) = after
            .split_whitespace()
            .nth(16)
            .and_then(|v| v.parse().ok())
        {
            values.push(nice);
        }
    }
    values
}

#[test]
fn compactions_run_at_the_lowest_cpu_priority() {
    let dir = tempfile::tempdir().unwrap();
    let store = TimeTravelStore::open(dir.path()).unwrap();
    let mut sequence = 1;
    let event = |sequence: u64, event| SequencedEvent {
        sequence,
        published_ms: 1_000 + sequence as i64,
        event,
        payload: None,
    };
    store.apply(&[event(sequence, tenant_event())]).unwrap();
    // Enough flushed files in level 0 that RocksDB schedules a compaction.
    for round in 0..6 {
        let events: Vec<SequencedEvent> = (0..200)
            .map(|n| {
                sequence += 1;
                let mut attributes = Map::new();
                attributes.insert("displayName".into(), json!(format!("Group {round}-{n}")));
                let change = Change::Created {
                    attributes,
                    links: Vec::new(),
                };
                let id = format!("00000000-0000-4000-8000-{round:06}{n:06}");
                event(sequence, stamp(sequence, ObjectKind::Group, id, change))
            })
            .collect();
        store.apply(&events).unwrap();
        store.flush().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen: Vec<i64> = Vec::new();
    while Instant::now() < deadline {
        seen = compaction_thread_nice_values();
        if seen.contains(&19) {
            return;
        }
        std::thread::yield_now();
    }
    panic!("no compaction thread ran at nice 19 within 30 s; nice values seen: {seen:?}");
}
