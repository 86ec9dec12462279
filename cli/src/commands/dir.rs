//! `backtrack dir ...` and `backtrack demo seed`. The time-travel forms (`--at`, `history`,
//! `members`) live in [`super::time_travel`].

use anyhow::Context;
use backtrack_directory::api;
use backtrack_domain::graph::{KIND_KEY, LINKS_KEY};
use backtrack_domain::ObjectKind;
use backtrack_proto::v1;
use serde_json::{json, Map, Value};

use super::{attribute_names, time_travel};
use crate::args::{DirCommand, GlobalArgs, LinkCommand, OutputFormat};
use crate::client::{connect, connect_channel, Client};
use crate::import::{self, ImportSummary};
use crate::import_file;
use crate::listing::ObjectListing;
use crate::output::{cell, object_json, print_json, table};
use crate::output::{outln, refuse, refused};

pub async fn run(g: &GlobalArgs, command: DirCommand) -> anyhow::Result<()> {
    // Read --at before connecting, so that a mistyped point fails fast.
    let point = time_travel::point_of(&command)?;
    let connection = connect_channel(g).await?;
    let mut client = connection.directory();
    match command {
        DirCommand::Create {
            tenant,
            kind,
            set,
            json,
            force,
        } => {
            let mut attrs = match json {
                Some(doc) => {
                    let doc = json_document(&doc)?;
                    match serde_json::from_str::<Value>(&doc)
                        .map_err(|e| refused(format!("--json is not valid JSON: {e}")))?
                    {
                        Value::Object(m) => m,
                        _ => refuse!("--json must be a JSON object"),
                    }
                }
                None => Map::new(),
            };
            let links = import::take_links(&mut attrs)?;
            let kind = match (kind, attrs.remove(KIND_KEY)) {
                (Some(kind), Some(Value::String(k))) if k == kind => kind,
                (Some(kind), None) => kind,
                (None, Some(Value::String(k))) => k,
                (Some(kind), Some(other)) => {
                    refuse!("--json says \"{KIND_KEY}\": {other}, but --kind is {kind}")
                }
                (None, Some(other)) => refuse!("\"{KIND_KEY}\" must be a kind name such as \"user\", not {other}"),
                (None, None) => attrs
                    .get("@odata.type")
                    .and_then(Value::as_str)
                    .and_then(ObjectKind::from_graph_type)
                    .map(|k| k.as_str().to_string())
                    .context("give the kind: --kind user (or \"@kind\", or Graph's \"@odata.type\", in --json)")?,
            };
            let assigned = parse_assignments(&set)?;
            if !force {
                let names: Vec<&str> = assigned.keys().map(String::as_str).collect();
                let what = format!("a new {kind}");
                attribute_names::check(&what, kind.parse().ok(), &[], &names, &[])?;
            }
            attrs.extend(assigned);
            let o = client
                .create_object(v1::CreateObjectRequest {
                    tenant,
                    kind,
                    attributes_json: Value::Object(attrs).to_string(),
                    links,
                    mutation_id: String::new(),
                })
                .await?;
            let (o, verb) = answered(o, "created", "");
            print_object(g, &o, verb);
        }
        DirCommand::Get {
            tenant,
            id,
            at: Some(_),
        } => time_travel::get(g, &mut connection.time_travel(), tenant, id, point).await?,
        DirCommand::Get {
            tenant,
            id,
            at: None,
        } => {
            let o = client
                .get_object(v1::ObjectRef { tenant, id })
                .await?
                .into_inner();
            print_object(g, &o, "");
        }
        DirCommand::List {
            tenant,
            kind,
            limit,
            at: Some(_),
            include_deleted,
        } => {
            let mut travel = connection.time_travel();
            let query = time_travel::ListAt {
                tenant,
                kind: kind.unwrap_or_default(),
                include_deleted,
                limit,
            };
            time_travel::list(g, &mut travel, query, point).await?
        }
        DirCommand::List {
            tenant,
            kind,
            limit,
            at: None,
            ..
        } => {
            let mut listing = ObjectListing::new(g, limit);
            let kind = kind.unwrap_or_default();
            list_pages(&mut client, &tenant, kind, false, &mut listing).await?;
            listing.finish();
        }
        DirCommand::History {
            tenant,
            id,
            incoming,
        } => time_travel::history(g, &mut connection.time_travel(), tenant, id, incoming).await?,
        DirCommand::Members {
            tenant,
            id,
            relation,
            ..
        } => {
            let mut travel = connection.time_travel();
            time_travel::members(g, &mut travel, tenant, id, relation, point).await?
        }
        DirCommand::Deleted { tenant, kind } => {
            let mut listing = ObjectListing::new(g, 0);
            let kind = kind.unwrap_or_default();
            list_pages(&mut client, &tenant, kind, true, &mut listing).await?;
            listing.finish();
        }
        DirCommand::Update {
            tenant,
            id,
            set,
            unset,
            json,
            force,
        } => {
            // A Graph PATCH body: the attributes to change, null removing one.
            let mut changes = match json {
                Some(doc) => match serde_json::from_str::<Value>(&json_document(&doc)?)
                    .map_err(|e| refused(format!("--json is not valid JSON: {e}")))?
                {
                    Value::Object(m) => m,
                    _ => refuse!("--json must be a JSON object of the attributes to change"),
                },
                None => Map::new(),
            };
            if let Some(given) = changes.remove("id") {
                if given.as_str() != Some(id.as_str()) {
                    refuse!("--json names id {given}, but the object to update is {id}");
                }
            }
            if changes.contains_key(KIND_KEY) || changes.contains_key(LINKS_KEY) {
                refuse!("--json holds the attributes to change, not \"{KIND_KEY}\" or \"{}\": links change with `backtrack dir link add|remove`", LINKS_KEY);
            }
            let assigned = parse_assignments(&set)?;
            let unsure = assigned
                .keys()
                .chain(&unset)
                .any(|name| !attribute_names::known_to_a_schema(name));
            if !force && unsure {
                // Names no schema knows are checked against what the object has (one
                // read first).
                let current = client
                    .get_object(v1::ObjectRef {
                        tenant: tenant.clone(),
                        id: id.clone(),
                    })
                    .await?
                    .into_inner();
                let present: Vec<String> =
                    serde_json::from_str::<Map<String, Value>>(&current.attributes_json)
                        .map(|m| m.into_iter().map(|(k, _)| k).collect())
                        .unwrap_or_default();
                let names: Vec<&str> = assigned.keys().map(String::as_str).collect();
                let removing: Vec<&str> = unset.iter().map(String::as_str).collect();
                let what = format!("{} {id}", current.kind);
                attribute_names::check(
                    &what,
                    current.kind.parse().ok(),
                    &present,
                    &names,
                    &removing,
                )?;
            }
            changes.extend(assigned);
            if changes.is_empty() && unset.is_empty() {
                refuse!("nothing to change: give --set attr=value, --unset attr or --json DOC");
            }
            let o = client
                .update_object(v1::UpdateObjectRequest {
                    tenant,
                    id,
                    set_json: Value::Object(changes).to_string(),
                    unset,
                    mutation_id: String::new(),
                })
                .await?;
            let (o, verb) = answered(o, "updated", "it already has these values");
            print_object(g, &o, verb);
        }
        DirCommand::Link(LinkCommand::Add(a)) => {
            let request = v1::ChangeLinksRequest {
                tenant: a.tenant,
                id: a.id,
                relation: a.relation,
                target_ids: a.targets,
                mutation_id: String::new(),
            };
            let answer = client.add_links(request).await?;
            let (o, verb) = answered(answer, "linked", "it already links to every target given");
            print_object(g, &o, verb);
        }
        DirCommand::Link(LinkCommand::Remove(a)) => {
            let request = v1::ChangeLinksRequest {
                tenant: a.tenant,
                id: a.id,
                relation: a.relation,
                target_ids: a.targets,
                mutation_id: String::new(),
            };
            let answer = client.remove_links(request).await?;
            let (o, verb) = answered(answer, "unlinked", "it links to none of the targets given");
            print_object(g, &o, verb);
        }
        DirCommand::Delete { tenant, id } => {
            let o = client
                .delete_object(v1::MutateObjectRequest {
                    tenant,
                    id,
                    mutation_id: String::new(),
                })
                .await?;
            let (o, verb) = answered(o, "moved to the recycle bin", "");
            print_object(g, &o, verb);
        }
        DirCommand::Restore { tenant, id } => {
            let o = client
                .restore_object(v1::MutateObjectRequest {
                    tenant,
                    id,
                    mutation_id: String::new(),
                })
                .await?;
            let (o, verb) = answered(o, "restored", "");
            print_object(g, &o, verb);
        }
        DirCommand::Purge { tenant, id, yes } => {
            if !yes {
                refuse!("purging is permanent: add --yes to hard delete {id}");
            }
            let r = client
                .purge_object(v1::MutateObjectRequest {
                    tenant,
                    id,
                    mutation_id: String::new(),
                })
                .await?
                .into_inner();
            match g.output {
                OutputFormat::Json => print_json(&json!({"id": r.id, "events": r.events})),
                OutputFormat::Table => outln!("purged {} ({} events)", r.id, r.events),
            }
        }
        DirCommand::Import {
            tenant,
            file,
            batch,
            kind,
        } => {
            let kind = kind.map(|k| k.parse::<ObjectKind>()).transpose()?;
            let source = import_file::open(&file, &tenant, kind)?;
            let summary = import::run(
                &mut client,
                &tenant,
                source.objects,
                source.unit,
                source.total,
                batch,
                g.output == OutputFormat::Table,
            )
            .await?;
            print_summary(g, &summary);
            refuse_if_rejected(&summary)?;
        }
    }
    Ok(())
}

/// An import that rejected objects fails (exit code 2, as any refused request) after its
/// summary, so a script does not go on as if everything were in.
fn refuse_if_rejected(s: &ImportSummary) -> anyhow::Result<()> {
    if s.rejected == 0 {
        return Ok(());
    }
    let total = s.created + s.already_existed + s.rejected;
    Err(tonic::Status::invalid_argument(format!(
        "{} of {total} objects were rejected ({}s listed above); the others are stored. Fix those and run the same import again: what is already stored is recognised, not created twice",
        s.rejected, s.unit
    ))
    .into())
}

/// The text of `--json`: the document itself, `@FILE` for a file's content, or `-` for
/// standard input (a JSON document starts with neither).
fn json_document(given: &str) -> anyhow::Result<String> {
    if given == "-" {
        let mut doc = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut doc)
            .context("cannot read --json from standard input")?;
        return Ok(doc);
    }
    match given.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("--json @{path}: cannot read {path}")),
        None => Ok(given.to_string()),
    }
}

/// `backtrack demo seed`: creates the tenant when missing, then imports the demo objects.
pub async fn seed(
    g: &GlobalArgs,
    tenant: &str,
    users: usize,
    groups: Option<usize>,
    apps: Option<usize>,
    seed: u64,
    batch: usize,
) -> anyhow::Result<()> {
    let mut client = connect(g).await?;
    match client
        .create_tenant(v1::CreateTenantRequest {
            id: tenant.to_string(),
            display_name: String::new(),
        })
        .await
    {
        Ok(_) => {}
        Err(s) if s.code() == tonic::Code::AlreadyExists => {}
        Err(s) => return Err(s.into()),
    }
    let mut opts = crate::up::demo_options(users, seed, &format!("{tenant}.example"));
    if let Some(n) = groups {
        opts.groups = n;
    }
    if let Some(n) = apps {
        opts.apps = n;
    }
    let total = opts.total_objects() as u64;
    let objects = crate::demo::demo_objects(&opts)
        .zip(1u64..)
        .map(|(object, n)| Ok((n, object)));
    let summary = import::run(
        &mut client,
        tenant,
        objects,
        "object",
        Some(total),
        batch,
        g.output == OutputFormat::Table,
    )
    .await?;
    print_summary(g, &summary);
    refuse_if_rejected(&summary)
}

fn print_summary(g: &GlobalArgs, s: &ImportSummary) {
    match g.output {
        OutputFormat::Json => print_json(&s.to_json()),
        OutputFormat::Table => {
            let secs = s.elapsed.as_secs_f64().max(1e-9);
            outln!(
                "imported: {} created, {} already existed, {} rejected; {} events in {:.1}s ({:.0} objects/s)",
                s.created, s.already_existed, s.rejected, s.events, secs, s.created as f64 / secs
            );
            for (n, m) in &s.problems {
                outln!("  {} {n}: {m}", s.unit);
            }
            if s.secrets_dropped > 0 {
                outln!(
                    "note: {} objects were created without the secrets they carried (Backtrack never keeps passwords, client secrets or keys):",
                    s.secrets_dropped
                );
                for (n, id, places) in &s.secret_notes {
                    outln!("  {} {n} ({id}): not stored: {}", s.unit, places.join(", "));
                }
            }
        }
    }
}

/// The object of an answer to a change and the verb that says what happened, after
/// telling the user (on stderr) which secrets the directory dropped from the request and,
/// when nothing was stored, why (`unchanged`: what the object already was).
fn answered(
    answer: tonic::Response<v1::DirectoryObject>,
    verb: &'static str,
    unchanged: &str,
) -> (v1::DirectoryObject, &'static str) {
    let header = |name: &str| {
        answer
            .metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(dropped) = header(api::SECRETS_DROPPED_HEADER) {
        eprintln!(
            "note: not stored: {}. Backtrack never keeps secrets (passwords, client secrets, keys): they never reach the event log.",
            dropped.replace(',', ", ")
        );
    }
    let outcome = header(api::OUTCOME_HEADER);
    let object = answer.into_inner();
    let verb = match outcome.as_deref() {
        Some(api::UNCHANGED) => {
            eprintln!(
                "note: nothing to change: {} {}{}{unchanged}; nothing was stored",
                object.kind,
                object.id,
                if unchanged.is_empty() { "" } else { ": " }
            );
            "unchanged"
        }
        Some(api::ALREADY_APPLIED) => {
            eprintln!("note: this change had been applied before; nothing was stored again");
            "already applied"
        }
        _ => verb,
    };
    (object, verb)
}

/// `--set attr=value`: the value is JSON when it parses as JSON, else a string.
fn parse_assignments(items: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    for item in items {
        let Some((name, value)) = item.split_once('=') else {
            refuse!("--set '{item}' must look like attr=value");
        };
        let value = serde_json::from_str::<Value>(value)
            .unwrap_or_else(|_| Value::String(value.to_string()));
        out.insert(name.trim().to_string(), value);
    }
    Ok(out)
}

/// Lists the tenant's live objects (or its recycle bin) page by page into `listing`, as
/// many as it takes.
async fn list_pages(
    client: &mut Client,
    tenant: &str,
    kind: String,
    deleted: bool,
    listing: &mut ObjectListing,
) -> anyhow::Result<()> {
    let mut token = String::new();
    loop {
        let request = v1::ListObjectsRequest {
            tenant: tenant.to_string(),
            kind: kind.clone(),
            page_size: 1000,
            page_token: token,
        };
        let page = if deleted {
            client.list_deleted_objects(request).await?
        } else {
            client.list_objects(request).await?
        }
        .into_inner();
        if !listing.page(&page.objects) || page.next_page_token.is_empty() {
            return Ok(());
        }
        token = page.next_page_token;
    }
}

pub(super) fn print_object(g: &GlobalArgs, o: &v1::DirectoryObject, verb: &str) {
    let value = object_json(o);
    match g.output {
        OutputFormat::Json => print_json(&value),
        OutputFormat::Table => {
            if !verb.is_empty() {
                outln!("{verb} {} {}", o.kind, o.id);
            }
            if let Value::Object(map) = &value {
                let mut rows: Vec<Vec<String>> = Vec::new();
                for (k, v) in map {
                    match (k.as_str(), v) {
                        (LINKS_KEY, Value::Object(relations)) => rows.extend(
                            relations
                                .iter()
                                .map(|(relation, targets)| link_row(relation, targets)),
                        ),
                        _ => rows.push(vec![k.clone(), cell(Some(v))]),
                    }
                }
                table(&["ATTRIBUTE", "VALUE"], &rows);
            }
        }
    }
}

/// Targets of one relation shown in a table row at most; a group's thousands of members
/// belong to `dir members`.
const LINKS_SHOWN: usize = 3;

/// The table row of one relation: `@links.members` and its targets, the first few when
/// there are many.
fn link_row(relation: &str, targets: &Value) -> Vec<String> {
    let ids: Vec<&str> = targets
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let value = if ids.len() <= LINKS_SHOWN {
        ids.join(", ")
    } else {
        format!(
            "{} targets: {}, … (`backtrack dir members --relation {relation}` lists them all)",
            ids.len(),
            ids[..LINKS_SHOWN].join(", ")
        )
    };
    vec![format!("{LINKS_KEY}.{relation}"), value]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relation_row_shows_a_few_targets_and_where_to_find_the_rest() {
        let few = link_row("owners", &json!(["a", "b"]));
        assert_eq!(few, ["@links.owners", "a, b"]);
        let many = link_row("members", &json!(["a", "b", "c", "d", "e"]));
        assert_eq!(many[0], "@links.members");
        assert!(many[1].starts_with("5 targets: a, b, c, …"), "{}", many[1]);
        assert!(!many[1].contains(", d"), "{}", many[1]);
        assert!(
            many[1].contains("dir members --relation members"),
            "{}",
            many[1]
        );
    }
}
