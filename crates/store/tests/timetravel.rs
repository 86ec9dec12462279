//! The time-travel store against the domain's reference fold, on a real RocksDB: the
//! state at every sequence, the summary digest, listings, history and the change index.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use backtrack_domain::command::decide;
use backtrack_domain::diff::diff_objects;
use backtrack_domain::digest::{tenant_digest, StateDigest};
use backtrack_domain::event::{Change, Event};
use backtrack_domain::TenantState;
use backtrack_store::timetravel::query::{HistoryEntry, ListAt};
use backtrack_store::{Prepared, SequencedEvent, StoreError, TimeTravelStore};
use proptest::prelude::*;

mod common;

use common::{command_strategy, stamp, tenant_event, CTX};

/// A random history: the events (with sequences) and the reference state after each.
fn history(commands: Vec<backtrack_domain::Command>) -> (Vec<SequencedEvent>, Vec<TenantState>) {
    let mut state = TenantState::default();
    let first = tenant_event();
    state.apply(&first, 1);
    let mut events = vec![sequenced(1, first)];
    let mut states = vec![TenantState::default(), state.clone()];
    for command in commands {
        for pending in decide(&state, &CTX, command).unwrap_or_default() {
            let seq = events.len() as u64 + 1;
            let event = stamp(seq, pending.kind, pending.object_id, pending.change);
            state.apply(&event, seq);
            events.push(sequenced(seq, event));
            states.push(state.clone());
        }
    }
    (events, states)
}

fn sequenced(sequence: u64, event: Event) -> SequencedEvent {
    // Every other event comes with the bytes the log stored (as the builder hands them
    // over), the rest without (the history encodes those itself).
    let payload = sequence.is_multiple_of(2).then(|| {
        use prost::Message as _;
        backtrack_proto::convert::event_to_proto(&event)
            .encode_to_vec()
            .into()
    });
    SequencedEvent {
        sequence,
        // Two events per millisecond, so instants resolve to the later of a pair.
        published_ms: 1_000 + (sequence as i64) / 2,
        event,
        payload,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// For every sequence n: object_at(n) and list_at(n) equal replay(log[0..n]); the
    /// running summary's digest equals the reference digest; chunking does not matter.
    #[test]
    fn every_sequence_reads_like_the_reference_fold(commands in proptest::collection::vec(command_strategy(), 1..50), chunk in 1usize..6) {
        let (events, states) = history(commands);
        let dir = tempfile::tempdir().unwrap();
        let store = TimeTravelStore::open(dir.path()).unwrap();
        for part in events.chunks(chunk) {
            store.apply(part).unwrap();
            let position = part.last().unwrap().sequence;
            let (at, _, summary) = store.tenant_summary("t1");
            prop_assert_eq!(at, position);
            prop_assert_eq!(summary.digest(), tenant_digest(&states[position as usize]));
            prop_assert_eq!(summary.objects(), states[position as usize].objects.len() as u64);
        }
        let ids: BTreeSet<String> = states.iter().flat_map(|s| s.objects.keys().cloned()).collect();
        for (n, state) in states.iter().enumerate() {
            let n = n as u64;
            for id in &ids {
                let mut got = store.object_at("t1", id, n).unwrap();
                let mut want = state.objects.get(id).cloned();
                // Link-only events change `version` in both; compare whole objects.
                if let (Some(g), Some(w)) = (&mut got, &mut want) {
                    prop_assert_eq!(g.version, w.version);
                }
                prop_assert_eq!(got, want, "object {} at {}", id, n);
            }
            let page = store.list_at("t1", &ListAt { sequence: n, include_deleted: true, limit: 1000, with_links: true, ..ListAt::default() }).unwrap();
            let listed: Vec<_> = page.objects.iter().map(|o| o.id.clone()).collect();
            let want: Vec<_> = state.objects.keys().cloned().collect();
            prop_assert_eq!(listed, want);
            let mut digest = StateDigest::default();
            for object in &page.objects {
                digest.add(object);
            }
            prop_assert_eq!(digest.finish(), tenant_digest(state));
        }
        // Reopening keeps the position and the summaries.
        drop(store);
        let store = TimeTravelStore::open(dir.path()).unwrap();
        let last = events.last().unwrap().sequence;
        let (at, _, summary) = store.tenant_summary("t1");
        prop_assert_eq!(at, last);
        prop_assert_eq!(summary.digest(), tenant_digest(&states[last as usize]));
    }

    /// The two-point reader a difference report uses reads every object at both sequences
    /// exactly as the reference fold has it there, whichever order the sequences come in,
    /// one reader reused across objects (as a report's worker reuses it): in ascending id
    /// order (stepping from object to object), in a shuffled order (seeking back and
    /// forth), with an object read twice in a row, and with the same history stored for a
    /// tenant on either side of the one read. Comparing an object's two versions as text
    /// gives what comparing the decoded objects does.
    #[test]
    fn the_two_point_reader_reads_like_the_reference_fold(commands in proptest::collection::vec(command_strategy(), 1..50), a in 0u64..10_000, b in 0u64..10_000, shuffle in any::<u64>()) {
        let (events, states) = history(commands);
        let dir = tempfile::tempdir().unwrap();
        let store = TimeTravelStore::open(dir.path()).unwrap();
        store.apply(&events).unwrap();
        let last = events.last().unwrap().sequence;
        let neighbours: Vec<SequencedEvent> = ["t0", "t2"]
            .iter()
            .enumerate()
            .flat_map(|(n, tenant)| {
                events.iter().map(move |e| {
                    let mut e = e.clone();
                    e.sequence += last * (n as u64 + 1);
                    e.event.meta.tenant = tenant.to_string();
                    e.payload = None;
                    e
                })
            })
            .collect();
        store.apply(&neighbours).unwrap();
        let (a, b) = (a % (last + 1), b % (last + 1));
        let ids: Vec<String> = states.iter().flat_map(|s| s.objects.keys().cloned()).collect::<BTreeSet<_>>().into_iter().collect();
        let mut shuffled = ids.clone();
        shuffled.sort_by_key(|id| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (id, shuffle).hash(&mut h);
            h.finish()
        });
        let twice: Vec<String> = ids.iter().flat_map(|id| [id.clone(), id.clone()]).collect();
        for order in [&ids, &shuffled, &twice] {
            let mut reader = store.two_point_reader("t1");
            for id in order {
                let (low, high) = reader.object_at_both(id, a, b).unwrap();
                let want = |n: u64| states[n as usize].objects.get(id).cloned();
                prop_assert_eq!(low, want(a.min(b)), "object {} at {}", id, a.min(b));
                prop_assert_eq!(high, want(a.max(b)), "object {} at {}", id, a.max(b));
                // The report's comparison reads the same versions as text.
                let diff = reader.diff(id, a, b).unwrap();
                prop_assert_eq!(diff, diff_objects(want(a).as_ref(), want(b).as_ref()), "object {} from {} to {}", id, a, b);
            }
            // An id the store never saw, before and after every other.
            prop_assert_eq!(reader.object_at_both("00-no-such-object", a, b).unwrap(), (None, None));
            prop_assert_eq!(reader.object_at_both("ff-no-such-object", a, b).unwrap(), (None, None));
            prop_assert_eq!(reader.diff("ff-no-such-object", b, a).unwrap(), None);
        }
    }

    /// Applying a run again over its own writes, from the position before it (as after a
    /// crash that kept some of the run's keys but not the position and summary written
    /// with them), gives the state and digest the reference fold has: apply reads objects
    /// as of the position, and every key it writes carries its sequence.
    #[test]
    fn a_run_applied_again_over_its_own_writes_reads_like_the_reference_fold(commands in proptest::collection::vec(command_strategy(), 2..40), cut in 1usize..40) {
        let (events, states) = history(commands);
        // The first run holds the tenant and at least one object event (so a summary).
        prop_assume!(events.len() >= 3);
        let cut = cut.clamp(2, events.len() - 1);
        let dir = tempfile::tempdir().unwrap();
        let store = TimeTravelStore::open(dir.path()).unwrap();
        store.apply(&events[..cut]).unwrap();
        let before: Vec<_> = [&b"P"[..], b"A/t1"]
            .iter()
            .map(|key| store.scan_raw(key).unwrap().into_iter().find(|(k, _)| k == key).unwrap())
            .collect();
        store.apply(&events[cut..]).unwrap();
        // The second batch of the run is lost: position and summary as before it.
        for (key, value) in &before {
            store.put_raw(key, value).unwrap();
        }
        drop(store);
        let store = TimeTravelStore::open(dir.path()).unwrap();
        prop_assert_eq!(store.position(), events[cut - 1].sequence);
        store.apply(&events[cut..]).unwrap();
        let last = events.last().unwrap().sequence;
        let (at, _, summary) = store.tenant_summary("t1");
        prop_assert_eq!(at, last);
        prop_assert_eq!(summary.digest(), tenant_digest(&states[last as usize]));
        let ids: BTreeSet<String> = states.iter().flat_map(|s| s.objects.keys().cloned()).collect();
        for n in [events[cut - 1].sequence, last] {
            for id in &ids {
                prop_assert_eq!(store.object_at("t1", id, n).unwrap(), states[n as usize].objects.get(id).cloned(), "object {} at {}", id, n);
            }
        }
    }

    /// Runs prepared one ahead of their writes (as the builder does: a run is folded
    /// while the one before it is still being written, starting from that run's carry)
    /// read like the reference fold at every sequence, with the digest and history of
    /// one `apply`.
    #[test]
    fn runs_prepared_while_the_run_before_is_written_read_like_the_reference_fold(commands in proptest::collection::vec(command_strategy(), 1..50), chunk in 1usize..6) {
        let (events, states) = history(commands);
        let dir = tempfile::tempdir().unwrap();
        let store = TimeTravelStore::open(dir.path()).unwrap();
        let mut writing: Option<Prepared> = None;
        for part in events.chunks(chunk) {
            let carry = writing.as_ref().map(Prepared::carry);
            let prepared = store.prepare(part.to_vec(), carry.as_deref()).unwrap();
            // The run before is written only now, after this one was prepared.
            if let Some(before) = writing.take() {
                let position = before.position();
                store.commit(before).unwrap();
                prop_assert_eq!(store.position(), position);
            }
            writing = prepared;
        }
        store.commit(writing.take().unwrap()).unwrap();
        let last = events.last().unwrap().sequence;
        let (at, _, summary) = store.tenant_summary("t1");
        prop_assert_eq!(at, last);
        prop_assert_eq!(summary.digest(), tenant_digest(&states[last as usize]));
        let ids: BTreeSet<String> = states.iter().flat_map(|s| s.objects.keys().cloned()).collect();
        for (n, state) in states.iter().enumerate() {
            for id in &ids {
                prop_assert_eq!(store.object_at("t1", id, n as u64).unwrap(), state.objects.get(id).cloned(), "object {} at {}", id, n);
            }
        }
        for id in &ids {
            let history: Vec<u64> = store.history("t1", id).unwrap().iter().map(|h| h.sequence).collect();
            let want: Vec<u64> = events.iter().filter(|e| &e.event.meta.object_id == id && e.event.meta.kind != "tenant").map(|e| e.sequence).collect();
            prop_assert_eq!(history, want);
        }
    }

    /// History lists each object's events in order; the change index between two
    /// sequences names exactly the objects whose events lie in that range.
    #[test]
    fn history_and_change_index_match_the_log(commands in proptest::collection::vec(command_strategy(), 1..40), a in 0u64..80, b in 0u64..80) {
        let (events, _) = history(commands);
        let dir = tempfile::tempdir().unwrap();
        let store = TimeTravelStore::open(dir.path()).unwrap();
        store.apply(&events).unwrap();
        let (from, to) = (a.min(b), a.max(b));
        let changed: Vec<(u64, String)> = store.changed_between("t1", from, to).unwrap().into_iter().map(|c| (c.sequence, c.id)).collect();
        let want: Vec<(u64, String)> = events.iter().filter(|e| e.sequence > from && e.sequence <= to && e.event.meta.kind != "tenant").map(|e| (e.sequence, e.event.meta.object_id.clone())).collect();
        prop_assert_eq!(changed, want);
        for e in events.iter().filter(|e| e.event.meta.kind != "tenant") {
            let history = store.history("t1", &e.event.meta.object_id).unwrap();
            let entry = history.iter().find(|h| h.sequence == e.sequence).unwrap();
            prop_assert_eq!(&entry.event, &e.event);
            prop_assert_eq!(entry.published_ms, e.published_ms);
            prop_assert!(history.windows(2).all(|w| w[0].sequence < w[1].sequence));
            // A window of it reads the same events.
            let window = store.history_between("t1", &e.event.meta.object_id, from, to).unwrap();
            let want: Vec<&HistoryEntry> = history.iter().filter(|h| h.sequence > from && h.sequence <= to).collect();
            prop_assert_eq!(window.iter().collect::<Vec<_>>(), want);
        }
    }

    /// The link changes pointing at an object are exactly the log's link changes with it
    /// as target, in order, each with the event that made it and its holder as it was then.
    #[test]
    fn incoming_link_history_matches_the_log(commands in proptest::collection::vec(command_strategy(), 1..40)) {
        let (events, states) = history(commands);
        let dir = tempfile::tempdir().unwrap();
        let store = TimeTravelStore::open(dir.path()).unwrap();
        store.apply(&events).unwrap();
        let targets: BTreeSet<String> = states.iter().flat_map(|s| s.objects.keys().cloned()).collect();
        for target in &targets {
            let got: Vec<_> = store.incoming_link_history("t1", target).unwrap();
            let mut want = Vec::new();
            for e in &events {
                let (links, added) = match &e.event.change {
                    Change::Created { links, .. } | Change::LinksAdded(links) => (links, true),
                    Change::LinksRemoved(links) | Change::HardDeleted { links, .. } => (links, false),
                    _ => continue,
                };
                for l in links.iter().filter(|l| &l.target_id == target) {
                    want.push((e.sequence, e.event.meta.object_id.clone(), l.relation.clone(), added));
                }
            }
            let seen: Vec<_> = got.iter().map(|c| (c.sequence, c.holder.id.clone(), c.relation.clone(), c.added)).collect();
            prop_assert_eq!(seen, want);
            for change in &got {
                let e = events.iter().find(|e| e.sequence == change.sequence).unwrap();
                prop_assert_eq!(&change.event, &e.event);
                prop_assert_eq!(change.published_ms, e.published_ms);
                // A hard delete leaves no object behind: the holder is the one it deleted.
                let at = change.sequence as usize;
                let holder = states[at]
                    .objects
                    .get(&change.holder.id)
                    .or_else(|| states[at - 1].objects.get(&change.holder.id))
                    .unwrap();
                prop_assert_eq!(&change.holder.attributes, &holder.attributes);
            }
        }
    }
}

#[test]
fn instants_resolve_to_the_last_sequence_stored_by_then() {
    let (events, _) = history(Vec::new());
    let dir = tempfile::tempdir().unwrap();
    let store = TimeTravelStore::open(dir.path()).unwrap();
    let mut events = events;
    for seq in 2..=6u64 {
        let mut e = events[0].clone();
        e.sequence = seq;
        e.published_ms = 1_000 + (seq as i64) / 2;
        events.push(e);
    }
    store.apply(&events).unwrap();
    // Times: seq1 → 1000, seq2,3 → 1001, seq4,5 → 1002, seq6 → 1003.
    assert_eq!(store.resolve_time(999).unwrap(), None);
    assert_eq!(store.resolve_time(1_000).unwrap(), Some((1_000, 1)));
    assert_eq!(store.resolve_time(1_001).unwrap(), Some((1_001, 3)));
    assert_eq!(store.resolve_time(1_002).unwrap(), Some((1_002, 5)));
    assert_eq!(store.resolve_time(9_999).unwrap(), Some((1_003, 6)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// A store written with another layout (its format key says 2, as stores kept before
    /// digests expanded with BLAKE3 do) is emptied when opened, and the same log rebuilds
    /// it to the reference digest.
    #[test]
    fn a_store_of_another_layout_is_emptied_on_open_and_rebuilt_from_the_log(
        commands in proptest::collection::vec(command_strategy(), 1..20),
    ) {
        let (events, states) = history(commands);
        let expected = tenant_digest(states.last().unwrap());
        let dir = tempfile::tempdir().unwrap();
        {
            let store = TimeTravelStore::open(dir.path()).unwrap();
            store.apply(&events).unwrap();
            prop_assert_eq!(store.tenant_summary("t1").2.digest(), expected.clone());
            store.put_raw(b"F", b"2").unwrap();
            store.flush().unwrap();
        }
        let reopened = TimeTravelStore::open(dir.path()).unwrap();
        prop_assert_eq!(reopened.position(), 0);
        prop_assert_eq!(reopened.tenant_summary("t1").2.objects(), 0);
        prop_assert!(reopened.scan_raw(b"V/").unwrap().is_empty());
        reopened.apply(&events).unwrap();
        prop_assert_eq!(reopened.position(), events.len() as u64);
        prop_assert_eq!(reopened.tenant_summary("t1").2.digest(), expected);
    }
}

/// A run prepared on a position the store has moved past is refused, and nothing of it
/// is written: runs are written in the order they were prepared, each once.
#[test]
fn a_run_prepared_on_an_old_position_is_not_written() {
    let (events, _) = history(Vec::new());
    let more: Vec<SequencedEvent> = (2..=3)
        .map(|seq| {
            let mut e = events[0].clone();
            e.sequence = seq;
            e.event.meta.tenant = format!("t{seq}");
            e.payload = None;
            e
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = TimeTravelStore::open(dir.path()).unwrap();
    store.apply(&events).unwrap();
    let first = store.prepare(more[..1].to_vec(), None).unwrap().unwrap();
    let stale = store.prepare(more.clone(), None).unwrap().unwrap();
    store.commit(first).unwrap();
    assert_eq!(store.position(), 2);
    let refused = store.commit(stale).unwrap_err();
    assert!(
        matches!(
            refused,
            StoreError::OutOfOrder {
                position: 2,
                prepared_on: 1
            }
        ),
        "{refused}"
    );
    assert_eq!(store.position(), 2);
    assert!(store.tenant("t3").unwrap().is_none());
    // Nothing is left to prepare at or below the position.
    assert!(store.prepare(more[..1].to_vec(), None).unwrap().is_none());
}
