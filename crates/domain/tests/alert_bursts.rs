//! The mass rules over a followed log: sliding windows per actor, one alert per run, and
//! a state that can be stored and resumed without changing what is raised.
#![allow(clippy::unwrap_used)]

use backtrack_domain::alerts::{Alert, AlertObject, BurstLimits, Bursts, Severity, Thresholds};
use backtrack_domain::{Change, Event, EventMeta, Link};
use proptest::prelude::*;

const MINUTE: i64 = 60_000;
const T0: i64 = 1_795_315_500_000;

fn limits() -> BurstLimits {
    BurstLimits {
        thresholds: Thresholds {
            deletions: 3,
            link_removals: 4,
        },
        window_ms: MINUTE,
    }
}

/// An event of `actor` at `time_ms`: a soft delete (`links == 0`) or `links` members removed.
fn event(n: u64, actor: &str, time_ms: i64, links: usize) -> Event {
    let change = if links == 0 {
        Change::SoftDeleted {
            purge_after_ms: time_ms,
        }
    } else {
        Change::LinksRemoved(
            (0..links)
                .map(|i| Link::new("members", format!("user-{i}")))
                .collect(),
        )
    };
    Event {
        meta: EventMeta {
            event_id: format!("event-{n}"),
            tenant: "contoso".into(),
            kind: if links == 0 { "user" } else { "group" }.into(),
            object_id: format!("object-{n}"),
            actor: actor.into(),
            time_ms,
            source: "tests".into(),
            correlation_id: None,
            mutation_id: format!("mutation-{n}"),
        },
        change,
    }
}

fn run(bursts: &mut Bursts, events: &[(u64, Event)]) -> Vec<Alert> {
    events
        .iter()
        .filter_map(|(s, e)| bursts.push(*s, e, &limits()))
        .collect()
}

#[test]
fn a_run_within_the_window_alerts_once_and_again_only_after_a_quiet_window() {
    let mallory = |n: u64, at: i64| (n, event(n, "mallory", T0 + at, 0));
    let events = vec![
        mallory(1, 0),
        mallory(2, 1_000),
        // Two minutes later: the first two are out of the window.
        mallory(3, 2 * MINUTE),
        (4, event(4, "alice", 2 * MINUTE + 500, 0)),
        mallory(5, 2 * MINUTE + 1_000),
        mallory(6, 2 * MINUTE + 2_000),
        // The same run goes on: no second alert.
        mallory(7, 2 * MINUTE + 50_000),
        mallory(8, 3 * MINUTE + 40_000),
        // A whole window without deletions ends the run; the next one alerts again.
        mallory(9, 5 * MINUTE),
        mallory(10, 5 * MINUTE + 1_000),
        mallory(11, 5 * MINUTE + 2_000),
    ];
    let mut bursts = Bursts::default();
    let alerts = run(&mut bursts, &events);
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let first = &alerts[0];
    assert_eq!(first.rule, "massDeletion");
    assert_eq!(first.severity, Severity::High);
    assert_eq!(first.actor, "mallory");
    // The run starts at its first deletion in the window, and is raised by the third.
    assert_eq!((first.sequence, first.event_id.as_str()), (3, "event-6"));
    assert_eq!(first.time_ms, T0 + 2 * MINUTE);
    assert_eq!(first.what, "3 objects deleted by one actor within 1 min");
    assert_eq!(first.id(0), "alert:event-6:massDeletion");
    assert_eq!(
        (alerts[1].sequence, alerts[1].event_id.as_str()),
        (9, "event-11")
    );
    // Alice's one deletion is hers alone.
    assert!(alerts.iter().all(|a| a.actor == "mallory"));
}

#[test]
fn removed_links_count_one_by_one_and_pruning_forgets_quiet_actors() {
    let mut bursts = Bursts::default();
    let events = vec![
        (1, event(1, "mallory", T0, 2)),
        (2, event(2, "mallory", T0 + 1_000, 1)),
        (3, event(3, "mallory", T0 + 2_000, 1)),
    ];
    let alerts = run(&mut bursts, &events);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rule, "massLinkRemoval");
    assert_eq!(alerts[0].what, "4 links removed by one actor within 1 min");
    assert!(!bursts.is_empty());
    bursts.prune(T0 + 2_000 + MINUTE, &limits());
    assert!(
        !bursts.is_empty(),
        "the run's last change is still in the window"
    );
    bursts.prune(T0 + 2_001 + MINUTE, &limits());
    assert!(bursts.is_empty());
}

#[test]
fn each_alert_names_the_dry_run_that_undoes_it() {
    let mut alert = Alert {
        severity: Severity::Critical,
        rule: "caPolicyDeleted",
        actor: "mallory@contoso.com".into(),
        sequence: 612,
        time_ms: 0,
        event_id: "e1".into(),
        object: Some(AlertObject {
            kind: "conditionalAccessPolicy".into(),
            id: "p1".into(),
        }),
        what: String::new(),
        undone: None,
    };
    assert_eq!(
        alert.undo_command("contoso"),
        "backtrack recover --tenant contoso --from seq:611 --changed-by mallory@contoso.com --id p1 --dry-run"
    );
    assert_eq!(alert.id(1), "alert:e1:1");
    alert.object = None;
    alert.actor = "svc account's".into();
    assert_eq!(
        alert.undo_command("contoso"),
        r"backtrack recover --tenant contoso --from seq:611 --changed-by 'svc account'\''s' --dry-run"
    );
    assert_eq!(backtrack_domain::alerts::shell_word(""), "''");
}

proptest! {
    /// Stopping anywhere, storing the state as JSON and resuming from it raises exactly the
    /// alerts of one uninterrupted pass.
    #[test]
    fn a_stored_and_resumed_state_raises_the_same_alerts(
        steps in prop::collection::vec((0usize..3, 0i64..40_000, 0usize..3), 1..80),
        cut in 0usize..80,
    ) {
        let actors = ["mallory", "alice", "bob"];
        let mut time = T0;
        let events: Vec<(u64, Event)> = steps
            .iter()
            .enumerate()
            .map(|(i, (who, gap, links))| {
                time += gap;
                let n = i as u64 + 1;
                (n, event(n, actors[*who], time, *links))
            })
            .collect();
        let whole = run(&mut Bursts::default(), &events);
        let cut = cut.min(events.len());
        let mut first = Bursts::default();
        let mut resumed = run(&mut first, &events[..cut]);
        if let Some((_, last)) = events[..cut].last() {
            first.prune(last.meta.time_ms, &limits());
        }
        let stored = serde_json::to_string(&first).unwrap();
        let mut second: Bursts = serde_json::from_str(&stored).unwrap();
        resumed.extend(run(&mut second, &events[cut..]));
        prop_assert_eq!(whole, resumed);
    }
}
