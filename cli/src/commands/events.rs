//! `backtrack events tail`: the change feed, one line per event.

use backtrack_domain::event::Change;
use backtrack_proto::convert::event_from_proto;
use backtrack_proto::v1;
use serde_json::{json, Value};

use crate::args::{EventsCommand, GlobalArgs, OutputFormat};
use crate::client::{connect_channel, Connection};
use crate::output::{change_lines, outln, refuse};
use crate::point;

pub async fn run(g: &GlobalArgs, command: EventsCommand) -> anyhow::Result<()> {
    let EventsCommand::Tail {
        tenant,
        from_start,
        since,
        limit,
        no_follow,
        kinds,
        ids,
        actors,
    } = command;
    if no_follow && !from_start && since.is_none() {
        refuse!(
            "--no-follow without a start shows nothing (the feed starts with new events): add --from-start for the whole history or --since POINT (e.g. --since -2h)"
        );
    }
    let connection = connect_channel(g).await?;
    let start = match &since {
        Some(text) => Start::after(&connection, &tenant, text).await?,
        None => Start {
            from_start,
            ..Start::default()
        },
    };
    let mut stream = connection
        .directory()
        .watch_events(v1::WatchEventsRequest {
            tenant,
            from_sequence: start.from_sequence,
            from_start: start.from_start,
            until_now: no_follow,
            after_time_ms: start.after_time_ms,
            kinds,
            object_ids: ids,
            actors,
        })
        .await?
        .into_inner();
    let mut seen = 0usize;
    if limit == Some(0) {
        return Ok(());
    }
    while let Some(envelope) = stream.message().await? {
        let Some(event) = envelope.event else {
            continue;
        };
        let event = event_from_proto(event)?;
        let line = event_json(envelope.sequence, &event);
        match g.output {
            OutputFormat::Json => outln!("{line}"),
            OutputFormat::Table => outln!("{}", event_text(envelope.sequence, &event)),
        }
        seen += 1;
        if limit.is_some_and(|l| seen >= l) {
            break;
        }
    }
    Ok(())
}

/// Where the feed starts, as `WatchEvents` takes it.
#[derive(Default)]
pub(crate) struct Start {
    pub(crate) from_sequence: u64,
    pub(crate) from_start: bool,
    pub(crate) after_time_ms: i64,
    /// The time of the point (a time, or the stream time of a backup's sequence), when it
    /// was resolved to one; 0 otherwise.
    pub(crate) point_time_ms: i64,
}

impl Start {
    /// The events after `text` (an `--at` style point). A sequence or a time needs only
    /// the directory (`seq:N` is how a consumer resumes); a backup is resolved by the
    /// time-travel service to the sequence it names.
    pub(crate) async fn after(
        connection: &Connection,
        tenant: &str,
        text: &str,
    ) -> anyhow::Result<Start> {
        let at = point::parse_flag("--since", text, chrono::Utc::now().timestamp_millis())?;
        let sequence = match at.point {
            None => return Ok(Start::default()),
            Some(v1::point::Point::Sequence(sequence)) => (sequence, 0),
            Some(v1::point::Point::TimeMs(ms)) => {
                eprintln!(
                    "events stored after {}",
                    backtrack_domain::time::rfc3339_ms(ms)
                );
                return Ok(Start {
                    after_time_ms: ms.max(1),
                    point_time_ms: ms.max(1),
                    ..Start::default()
                });
            }
            Some(_) => {
                let resolved = connection
                    .time_travel()
                    .resolve_point(v1::ResolvePointRequest {
                        tenant: tenant.to_string(),
                        at: Some(at),
                    })
                    .await?
                    .into_inner();
                eprintln!(
                    "events after {}",
                    point::describe(&resolved).trim_start_matches("as of ")
                );
                (resolved.sequence, resolved.time_ms)
            }
        };
        let (sequence, point_time_ms) = sequence;
        // Sequence 0 lies before the first event: everything is after it.
        Ok(Start {
            from_sequence: sequence.saturating_add(1),
            from_start: sequence == 0,
            after_time_ms: 0,
            point_time_ms,
        })
    }
}

fn opt(v: &Option<Value>) -> Value {
    v.clone().unwrap_or(Value::Null)
}

/// The feed's JSON line for one event.
pub fn event_json(sequence: u64, e: &backtrack_domain::Event) -> Value {
    let m = &e.meta;
    let mut out = json!({
        "sequence": sequence,
        "eventId": m.event_id,
        "time": backtrack_domain::time::rfc3339_ms(m.time_ms),
        "tenant": m.tenant,
        "kind": m.kind,
        "objectId": m.object_id,
        "change": e.change.name(),
        "actor": m.actor,
        "source": m.source,
        "mutationId": m.mutation_id,
    });
    if let Some(c) = &m.correlation_id {
        out["correlationId"] = json!(c);
    }
    match &e.change {
        Change::Created { attributes, links } | Change::HardDeleted { attributes, links } => {
            out["attributes"] = Value::Object(attributes.clone());
            out["links"] = json!(links
                .iter()
                .map(|l| json!({"relation": l.relation, "targetId": l.target_id}))
                .collect::<Vec<_>>());
        }
        Change::AttributesChanged(changes) => {
            out["changes"] = json!(changes
                .iter()
                .map(|c| json!({"name": c.name, "old": opt(&c.old), "new": opt(&c.new)}))
                .collect::<Vec<_>>());
        }
        Change::LinksAdded(links) | Change::LinksRemoved(links) => {
            out["links"] = json!(links
                .iter()
                .map(|l| json!({"relation": l.relation, "targetId": l.target_id}))
                .collect::<Vec<_>>());
        }
        Change::SoftDeleted { purge_after_ms } => {
            out["purgeAfter"] = json!(backtrack_domain::time::rfc3339_ms(*purge_after_ms))
        }
        Change::TenantCreated { display_name } => out["displayName"] = json!(display_name),
        Change::Restored => {}
    }
    out
}

/// What made a change other than a caller of the directory, and which job: ` [recovery
/// <job id>]` (the job `recovery show` explains), ` [demo]`; nothing for the directory's
/// own callers.
fn via(source: &str, correlation: Option<&str>) -> String {
    match (source, correlation.filter(|c| !c.is_empty())) {
        ("directory" | "", None) => String::new(),
        (source, None) => format!(" [{source}]"),
        (source, Some(job)) => format!(" [{source} {job}]"),
    }
}

fn event_text(sequence: u64, e: &backtrack_domain::Event) -> String {
    let m = &e.meta;
    let head = format!(
        "#{sequence} {} {}{} {}/{} {}",
        backtrack_domain::time::rfc3339_ms(m.time_ms),
        m.actor,
        via(&m.source, m.correlation_id.as_deref()),
        m.kind,
        m.object_id,
        e.change.name()
    );
    let detail = match &e.change {
        Change::Created { attributes, links } => format!(
            "{} attributes, {} links{}",
            attributes.len(),
            links.len(),
            attributes
                .get("displayName")
                .map(|n| format!(" ({})", n))
                .unwrap_or_default()
        ),
        Change::AttributesChanged(changes) => changes
            .iter()
            .flat_map(|c| change_lines(&c.name, c.old.as_ref(), c.new.as_ref()))
            .collect::<Vec<_>>()
            .join("; "),
        Change::LinksAdded(links) => format!(
            "+{}",
            links
                .iter()
                .map(|l| format!("{}:{}", l.relation, l.target_id))
                .collect::<Vec<_>>()
                .join(" +")
        ),
        Change::LinksRemoved(links) => format!(
            "-{}",
            links
                .iter()
                .map(|l| format!("{}:{}", l.relation, l.target_id))
                .collect::<Vec<_>>()
                .join(" -")
        ),
        Change::SoftDeleted { purge_after_ms } => format!(
            "in recycle bin until {}",
            backtrack_domain::time::rfc3339_ms(*purge_after_ms)
        ),
        Change::Restored => String::new(),
        Change::HardDeleted { .. } => "purged".into(),
        Change::TenantCreated { display_name } => display_name.clone(),
    };
    format!("{head} {detail}").trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use backtrack_domain::event::AttributeChange;
    use backtrack_domain::{Event, EventMeta};

    use super::*;

    #[test]
    fn a_feed_line_names_the_paths_that_changed_inside_a_document() {
        let conditions = |exclude: Value| json!({"users": {"excludeGroups": exclude}});
        let e = Event {
            meta: EventMeta {
                event_id: "e1".into(),
                tenant: "t".into(),
                kind: "conditionalAccessPolicy".into(),
                object_id: "p1".into(),
                actor: "mallory".into(),
                time_ms: 0,
                source: "directory".into(),
                correlation_id: None,
                mutation_id: "m1".into(),
            },
            change: Change::AttributesChanged(vec![
                AttributeChange {
                    name: "conditions".into(),
                    old: Some(conditions(json!(["g1"]))),
                    new: Some(conditions(json!([]))),
                },
                AttributeChange {
                    name: "state".into(),
                    old: Some(json!("enabled")),
                    new: Some(json!("disabled")),
                },
            ]),
        };
        let line = event_text(7, &e);
        assert!(
            line.ends_with(
                r#"attributesChanged conditions.users.excludeGroups: ["g1"] → ∅; state: "enabled" → "disabled""#
            ),
            "{line}"
        );
        assert!(line.starts_with("#7 1970-01-01T00:00:00.000Z mallory conditionalAccessPolicy/p1 "));

        // A change a recovery job made names the job.
        let mut by_job = e.clone();
        by_job.meta.source = "recovery".into();
        by_job.meta.correlation_id = Some("j1".into());
        let line = event_text(8, &by_job);
        assert!(
            line.starts_with(
                "#8 1970-01-01T00:00:00.000Z mallory [recovery j1] conditionalAccessPolicy/p1 "
            ),
            "{line}"
        );
        assert_eq!(via("demo", None), " [demo]");
        assert_eq!(via("directory", Some("")), "");
    }
}
