//! The time-travel side of `backtrack dir`: `get --at`, `list --at`, `history` and
//! `members`, over the time-travel service.
//!
//! In table mode the point the server resolved goes to stderr, so stdout has the same
//! shape as the present-tense commands; in JSON mode objects render exactly as `dir get`
//! and `dir list` render them, so scripts read the same fields either way.

use std::collections::HashMap;

use anyhow::Context;
use backtrack_domain::alerts::{Alert, Thresholds, Watch};
use backtrack_domain::event::{Change, Event};
use backtrack_domain::object::Link;
use backtrack_domain::time::rfc3339_ms;
use backtrack_proto::convert::event_from_proto;
use backtrack_proto::v1;
use serde_json::{json, Value};

use super::dir::print_object;
use crate::args::{DirCommand, GlobalArgs, OutputFormat};
use crate::client::TimeTravelClient;
use crate::listing::ObjectListing;
use crate::output::outln;
use crate::output::{change_lines, print_json, table};
use crate::point;

/// What `dir list --at` asks for, besides the point.
pub struct ListAt {
    pub tenant: String,
    /// Empty: every kind.
    pub kind: String,
    pub include_deleted: bool,
    /// Stop after this many objects (0 = all).
    pub limit: usize,
}

/// The point a `dir` command's `--at` names; without `--at`, the empty point (now).
pub fn point_of(command: &DirCommand) -> anyhow::Result<v1::Point> {
    match command {
        DirCommand::Get { at: Some(at), .. }
        | DirCommand::List { at: Some(at), .. }
        | DirCommand::Members { at: Some(at), .. } => {
            point::parse(at, chrono::Utc::now().timestamp_millis())
        }
        _ => Ok(v1::Point::default()),
    }
}

/// `dir get --at`: one object as it was at the point.
pub async fn get(
    g: &GlobalArgs,
    client: &mut TimeTravelClient,
    tenant: String,
    id: String,
    at: v1::Point,
) -> anyhow::Result<()> {
    let request = v1::GetObjectAtRequest {
        tenant,
        id: id.clone(),
        at: Some(at),
    };
    let found = client.get_object_at(request).await?.into_inner();
    announce(g, found.point.as_ref());
    let Some(object) = found.object else {
        let when = found
            .point
            .as_ref()
            .map(point::describe)
            .unwrap_or_else(|| "at that point".into());
        return Err(tonic::Status::not_found(format!("object {id} did not exist {when}")).into());
    };
    print_object(g, &object, "");
    Ok(())
}

/// `dir list --at`: every page of the objects as they were at the point.
pub async fn list(
    g: &GlobalArgs,
    client: &mut TimeTravelClient,
    query: ListAt,
    mut at: v1::Point,
) -> anyhow::Result<()> {
    let mut resolved = false;
    let mut listing = ObjectListing::new(g, query.limit);
    let mut token = String::new();
    loop {
        let request = v1::ListObjectsAtRequest {
            tenant: query.tenant.clone(),
            at: Some(at.clone()),
            kind: query.kind.clone(),
            include_deleted: query.include_deleted,
            page_size: 1000,
            page_token: token,
        };
        let page = client.list_objects_at(request).await?.into_inner();
        if !resolved {
            // Later pages ask for the sequence the first page resolved to, so that a
            // relative point or `now` cannot drift while we page.
            if let Some(p) = &page.point {
                at = v1::Point {
                    point: Some(v1::point::Point::Sequence(p.sequence)),
                };
            }
            announce(g, page.point.as_ref());
            resolved = true;
        }
        if !listing.page(&page.objects) || page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    listing.finish();
    Ok(())
}

/// `dir members`: the targets of one relation at the point.
pub async fn members(
    g: &GlobalArgs,
    client: &mut TimeTravelClient,
    tenant: String,
    id: String,
    relation: String,
    at: v1::Point,
) -> anyhow::Result<()> {
    let request = v1::ListLinksAtRequest {
        tenant: tenant.clone(),
        id: id.clone(),
        relation: relation.clone(),
        at: Some(at),
        describe_targets: true,
    };
    let links = client.list_links_at(request).await?.into_inner();
    match g.output {
        OutputFormat::Json => print_json(&json!({
            "tenant": tenant,
            "id": id,
            "relation": relation,
            "point": links.point.as_ref().map_or(Value::Null, point_json),
            "targetIds": links.target_ids,
            "targets": links.targets.iter().map(|t| json!({
                "id": t.id,
                "kind": (!t.kind.is_empty()).then_some(&t.kind),
                "displayName": (!t.display_name.is_empty()).then_some(&t.display_name),
                "deleted": t.deleted,
            })).collect::<Vec<_>>(),
        })),
        OutputFormat::Table => {
            announce(g, links.point.as_ref());
            let rows: Vec<Vec<String>> = links.targets.iter().map(target_row).collect();
            table(&["TARGET ID", "KIND", "DISPLAY NAME"], &rows);
            outln!("{} {relation}", rows.len());
        }
    }
    Ok(())
}

/// A link target's row: id, kind and display name, saying when it was in the recycle bin
/// or not there at all.
fn target_row(t: &v1::LinkTarget) -> Vec<String> {
    let name = if t.deleted {
        format!("{} (in the recycle bin)", t.display_name)
    } else {
        t.display_name.clone()
    };
    let kind = if t.kind.is_empty() {
        "-".to_string()
    } else {
        t.kind.clone()
    };
    vec![t.id.clone(), kind, name.trim().to_string()]
}

/// `dir history`: every change of one object, oldest first.
pub async fn history(
    g: &GlobalArgs,
    client: &mut TimeTravelClient,
    tenant: String,
    id: String,
    include_incoming: bool,
) -> anyhow::Result<()> {
    let request = v1::GetObjectHistoryRequest {
        tenant,
        id,
        include_incoming,
    };
    let h = client.get_object_history(request).await?.into_inner();
    let mut entries = Vec::with_capacity(h.entries.len());
    for entry in h.entries {
        let event = entry.event.with_context(|| {
            format!("history entry at sequence {} has no event", entry.sequence)
        })?;
        let event = event_from_proto(event)
            .with_context(|| format!("history entry at sequence {}", entry.sequence))?;
        // The stream timestamp is when the log holds the change; the event's own time
        // stands in for servers that leave it out.
        let time_ms = if entry.time_ms != 0 {
            entry.time_ms
        } else {
            event.meta.time_ms
        };
        entries.push((entry.sequence, time_ms, event));
    }
    let alerts = alerts_by_sequence(&entries);
    match g.output {
        OutputFormat::Json => {
            let mut out = json!({
                "tenant": h.tenant,
                "id": h.id,
                "kind": h.kind,
                "entries": entries.iter().map(|(s, t, e)| {
                    let mut entry = entry_json(*s, *t, e);
                    if let Some(found) = alerts.get(s) {
                        entry["alerts"] = found.iter().map(alert_json).collect();
                    }
                    entry
                }).collect::<Vec<_>>(),
            });
            if include_incoming {
                out["incoming"] = h.incoming.iter().map(incoming_json).collect();
            }
            print_json(&out);
        }
        OutputFormat::Table => {
            outln!(
                "{} {}: {} changes",
                h.kind,
                h.id,
                entries.len() + h.incoming.len()
            );
            // Its own changes and those of links pointing at it, in log order.
            let mut rows: Vec<(u64, Vec<Vec<String>>)> = Vec::new();
            for (sequence, time_ms, event) in &entries {
                let found = alerts.get(sequence).map_or(&[][..], Vec::as_slice);
                let mut details = entry_details(event)
                    .into_iter()
                    .chain(found.iter().map(alert_line));
                let mut lines = vec![vec![
                    sequence.to_string(),
                    rfc3339_ms(*time_ms),
                    event.change.name().to_string(),
                    event.meta.actor.clone(),
                    source_text(&event.meta.source, event.meta.correlation_id.as_deref()),
                    details.next().unwrap_or_default(),
                ]];
                for more in details {
                    lines.push(vec![String::new(); 5].into_iter().chain([more]).collect());
                }
                rows.push((*sequence, lines));
            }
            for c in &h.incoming {
                rows.push((c.sequence, vec![incoming_row(c)]));
            }
            rows.sort_by_key(|(sequence, _)| *sequence);
            let rows: Vec<Vec<String>> = rows.into_iter().flat_map(|(_, lines)| lines).collect();
            table(
                &["SEQUENCE", "TIME", "CHANGE", "ACTOR", "SOURCE", "DETAIL"],
                &rows,
            );
            if !include_incoming {
                eprintln!("(links pointing at it, such as group memberships: add --incoming)");
            }
        }
    }
    Ok(())
}

/// The alerts the object's own changes raised, by the sequence of the change, each judged
/// against the later changes of the history (set back since, or not), as `overview`
/// judges them; the rules' view, whatever the tenant's alert policy turns off.
fn alerts_by_sequence(entries: &[(u64, i64, Event)]) -> HashMap<u64, Vec<Alert>> {
    let mut watch = Watch::new(Thresholds::default());
    for (sequence, _, event) in entries {
        watch.push(*sequence, event);
    }
    let mut out: HashMap<u64, Vec<Alert>> = HashMap::new();
    for alert in watch.finish().into_iter().filter(|a| a.object.is_some()) {
        out.entry(alert.sequence).or_default().push(alert);
    }
    out
}

/// An alert under its change: `⚠ high caPolicyDisabled: state enabled → disabled; set
/// back at seq:633 by admin (job …)`, or `…; stands`.
fn alert_line(a: &Alert) -> String {
    let now = match &a.undone {
        Some(u) if u.job.is_empty() => format!("set back at seq:{} by {}", u.sequence, u.actor),
        Some(u) => format!(
            "set back at seq:{} by {} (job {})",
            u.sequence, u.actor, u.job
        ),
        None => "stands".to_string(),
    };
    format!("⚠ {} {}: {}; {now}", a.severity.as_str(), a.rule, a.what)
}

fn alert_json(a: &Alert) -> Value {
    json!({
        "rule": a.rule,
        "severity": a.severity.as_str(),
        "what": a.what,
        "state": if a.undone.is_some() { "undone" } else { "open" },
        "undone": a.undone,
    })
}

/// A change of a link pointing at the object, as a history row: `addedTo` / `removedFrom`
/// and which relation of which object.
fn incoming_row(c: &v1::IncomingLinkChange) -> Vec<String> {
    let change = if c.added { "addedTo" } else { "removedFrom" };
    let name = if c.holder_display_name.is_empty() {
        String::new()
    } else {
        format!(" ({})", c.holder_display_name)
    };
    vec![
        c.sequence.to_string(),
        rfc3339_ms(c.time_ms),
        change.to_string(),
        c.actor.clone(),
        source_text(&c.source, Some(&c.correlation_id)),
        format!("{} of {} {}{name}", c.relation, c.holder_kind, c.holder_id),
    ]
}

/// The SOURCE column: the source, and the job that made the change (`recovery <job id>`).
fn source_text(source: &str, correlation: Option<&str>) -> String {
    match correlation.filter(|c| !c.is_empty()) {
        Some(job) => format!("{source} {job}"),
        None => source.to_string(),
    }
}

fn incoming_json(c: &v1::IncomingLinkChange) -> Value {
    json!({
        "sequence": c.sequence,
        "time": rfc3339_ms(c.time_ms),
        "change": if c.added { "added" } else { "removed" },
        "relation": c.relation,
        "holder": {
            "id": c.holder_id,
            "kind": c.holder_kind,
            "displayName": (!c.holder_display_name.is_empty()).then_some(&c.holder_display_name),
        },
        "actor": c.actor,
        "source": c.source,
        "correlationId": (!c.correlation_id.is_empty()).then_some(&c.correlation_id),
    })
}

/// Says on stderr which point the server resolved (table mode only: JSON stays clean).
fn announce(g: &GlobalArgs, resolved: Option<&v1::ResolvedPoint>) {
    if let (OutputFormat::Table, Some(p)) = (g.output, resolved) {
        eprintln!("{}", point::describe(p));
    }
}

fn point_json(p: &v1::ResolvedPoint) -> Value {
    json!({
        "sequence": p.sequence,
        "time": (p.time_ms != 0).then(|| rfc3339_ms(p.time_ms)),
        "backupId": (!p.backup_id.is_empty()).then_some(&p.backup_id),
    })
}

/// Attribute changes of an event as (name, old, new); a creation sets every attribute and
/// a hard delete removes every one.
fn attribute_changes(change: &Change) -> Vec<(&str, Option<&Value>, Option<&Value>)> {
    match change {
        Change::Created { attributes, .. } => attributes
            .iter()
            .map(|(k, v)| (k.as_str(), None, Some(v)))
            .collect(),
        Change::AttributesChanged(changes) => changes
            .iter()
            .map(|c| (c.name.as_str(), c.old.as_ref(), c.new.as_ref()))
            .collect(),
        Change::HardDeleted { attributes, .. } => attributes
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v), None))
            .collect(),
        _ => Vec::new(),
    }
}

/// Link changes of an event as (link, added).
fn link_changes(change: &Change) -> Vec<(&Link, bool)> {
    match change {
        Change::Created { links, .. } | Change::LinksAdded(links) => {
            links.iter().map(|l| (l, true)).collect()
        }
        Change::LinksRemoved(links) | Change::HardDeleted { links, .. } => {
            links.iter().map(|l| (l, false)).collect()
        }
        _ => Vec::new(),
    }
}

fn entry_json(sequence: u64, time_ms: i64, e: &Event) -> Value {
    let attributes: Vec<Value> = attribute_changes(&e.change)
        .into_iter()
        .map(|(name, old, new)| json!({"name": name, "old": old, "new": new}))
        .collect();
    let links: Vec<Value> = link_changes(&e.change)
        .into_iter()
        .map(|(l, added)| {
            json!({
                "relation": l.relation,
                "targetId": l.target_id,
                "change": if added { "added" } else { "removed" },
            })
        })
        .collect();
    let mut out = json!({
        "sequence": sequence,
        "time": rfc3339_ms(time_ms),
        "change": e.change.name(),
        "actor": e.meta.actor,
        "source": e.meta.source,
        "correlationId": e.meta.correlation_id,
        "attributes": attributes,
        "links": links,
    });
    if let Change::SoftDeleted { purge_after_ms } = e.change {
        out["purgeAfter"] = json!(rfc3339_ms(purge_after_ms));
    }
    out
}

/// One line per attribute (`name: old → new`; a nested document that changed inside, one
/// per path that changed: `conditions.users.excludeGroups: [...] → ∅`) and link
/// (`+relation target`).
fn entry_details(e: &Event) -> Vec<String> {
    let mut out: Vec<String> = attribute_changes(&e.change)
        .into_iter()
        .flat_map(|(name, old, new)| change_lines(name, old, new))
        .collect();
    out.extend(link_changes(&e.change).into_iter().map(|(l, added)| {
        let sign = if added { '+' } else { '-' };
        format!("{sign}{} {}", l.relation, l.target_id)
    }));
    if let Change::SoftDeleted { purge_after_ms } = e.change {
        out.push(format!(
            "in the recycle bin until {}",
            rfc3339_ms(purge_after_ms)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use backtrack_domain::event::{AttributeChange, EventMeta};

    use super::*;

    fn event(change: Change) -> Event {
        Event {
            meta: EventMeta {
                event_id: "e1".into(),
                tenant: "t".into(),
                kind: "group".into(),
                object_id: "g1".into(),
                actor: "admin".into(),
                time_ms: 0,
                source: "directory".into(),
                correlation_id: None,
                mutation_id: "m1".into(),
            },
            change,
        }
    }

    #[test]
    fn the_source_column_names_the_job_behind_a_change() {
        assert_eq!(source_text("recovery", Some("j1")), "recovery j1");
        assert_eq!(source_text("directory", Some("")), "directory");
        assert_eq!(source_text("directory", None), "directory");
    }

    #[test]
    fn attribute_changes_render_old_and_new() {
        let e = event(Change::AttributesChanged(vec![AttributeChange {
            name: "displayName".into(),
            old: Some(json!("Sales")),
            new: None,
        }]));
        assert_eq!(entry_details(&e), vec![r#"displayName: "Sales" → ∅"#]);
        let v = entry_json(9, 1_795_323_600_000, &e);
        assert_eq!(
            v,
            json!({
                "sequence": 9,
                "time": "2026-11-22T05:00:00.000Z",
                "change": "attributesChanged",
                "actor": "admin",
                "source": "directory",
                "correlationId": null,
                "attributes": [{"name": "displayName", "old": "Sales", "new": null}],
                "links": [],
            })
        );
    }

    #[test]
    fn a_nested_document_changed_inside_shows_the_paths_that_changed() {
        let conditions = |exclude: Value| {
            json!({"applications": {"includeApplications": ["All"]},
                   "users": {"includeRoles": ["r1"], "excludeGroups": exclude}})
        };
        let e = event(Change::AttributesChanged(vec![AttributeChange {
            name: "conditions".into(),
            old: Some(conditions(json!(["g1"]))),
            new: Some(conditions(json!(["g2", "g3"]))),
        }]));
        assert_eq!(
            entry_details(&e),
            vec![r#"conditions.users.excludeGroups: ["g1"] → ["g2","g3"]"#]
        );
        // Created, the document shows whole; the JSON keeps whole values either way.
        let created = event(Change::Created {
            attributes: conditions(json!(["g1"]))
                .as_object()
                .cloned()
                .unwrap_or_default(),
            links: vec![],
        });
        assert_eq!(
            entry_details(&created)[0],
            r#"applications: ∅ → {"includeApplications":["All"]}"#
        );
        assert_eq!(
            entry_json(1, 0, &e)["attributes"][0]["new"],
            conditions(json!(["g2", "g3"]))
        );
    }

    #[test]
    fn link_changes_carry_their_direction() {
        let removed = event(Change::LinksRemoved(vec![Link::new("members", "u1")]));
        assert_eq!(entry_details(&removed), vec!["-members u1"]);
        assert_eq!(
            entry_json(1, 0, &removed)["links"],
            json!([{"relation": "members", "targetId": "u1", "change": "removed"}])
        );
        let added = event(Change::LinksAdded(vec![Link::new("members", "u2")]));
        assert_eq!(entry_details(&added), vec!["+members u2"]);
    }
}
