//! `backtrack events tail`: the change feed, one line per event.

use backtrack_proto::convert::event_from_proto;
use backtrack_proto::v1;
use serde_json::{json, Value};

use backtrack_domain::event::Change;

use crate::args::{EventsCommand, GlobalArgs, OutputFormat};
use crate::client::connect;
use crate::output::outln;

pub async fn run(g: &GlobalArgs, command: EventsCommand) -> anyhow::Result<()> {
    let EventsCommand::Tail {
        tenant,
        from_start,
        limit,
        no_follow,
    } = command;
    let mut client = connect(g).await?;
    let mut stream = client
        .watch_events(v1::WatchEventsRequest {
            tenant,
            from_sequence: 0,
            from_start,
            until_now: no_follow,
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

fn short(v: &Option<Value>) -> String {
    match v {
        None => "∅".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => {
            let t = other.to_string();
            if t.len() > 60 {
                format!("{}…", &t[..60])
            } else {
                t
            }
        }
    }
}

fn event_text(sequence: u64, e: &backtrack_domain::Event) -> String {
    let m = &e.meta;
    let head = format!(
        "#{sequence} {} {} {}/{} {}",
        backtrack_domain::time::rfc3339_ms(m.time_ms),
        m.actor,
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
            .map(|c| format!("{}: {} → {}", c.name, short(&c.old), short(&c.new)))
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
