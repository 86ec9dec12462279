//! Bulk import over gRPC: Graph-style objects in batches, with a progress bar and a
//! summary. Every item carries a deterministic mutation id derived from its object id,
//! so running the same import again (say after a crash) creates nothing twice.

use std::time::{Duration, Instant};

use anyhow::Context;
use backtrack_domain::graph::{KIND_KEY, LINKS_KEY};
use backtrack_proto::v1;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::client::Client;

/// Largest request body the importer builds (the server accepts 64 MiB).
const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;

/// What an import did.
#[derive(Debug, Default, Clone)]
pub struct ImportSummary {
    pub created: u64,
    pub already_existed: u64,
    pub rejected: u64,
    pub events: u64,
    pub elapsed: Duration,
    /// What numbers the objects: `line` (of an import file) or `object` (in order).
    pub unit: &'static str,
    /// (number, message) of the first rejections.
    pub problems: Vec<(u64, String)>,
    /// Objects created without the secrets they carried.
    pub secrets_dropped: u64,
    /// (number, object id, where the secrets were) of the first of them.
    pub secret_notes: Vec<(u64, String, Vec<String>)>,
}

impl ImportSummary {
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "created": self.created,
            "alreadyExisted": self.already_existed,
            "rejected": self.rejected,
            "events": self.events,
            "seconds": self.elapsed.as_secs_f64(),
            "problems": self.problems.iter().map(|(n, m)| serde_json::json!({self.unit: n, "message": m})).collect::<Vec<_>>(),
            "objectsWithSecretsNotStored": self.secrets_dropped,
            "secretsNotStored": self.secret_notes.iter().map(|(n, id, places)| serde_json::json!({self.unit: n, "id": id, "places": places})).collect::<Vec<_>>(),
        })
    }
}

/// Removes the `@links` annotation (`{"<relation>": ["<target id>", ...]}`) from a
/// Graph-style object and returns its links.
pub fn take_links(map: &mut serde_json::Map<String, Value>) -> anyhow::Result<Vec<v1::Link>> {
    let shape = || {
        crate::output::refused(format!(
            "\"{LINKS_KEY}\" must look like {{\"members\": [\"<id>\", ...]}}"
        ))
    };
    let rels = match map.remove(LINKS_KEY) {
        None => return Ok(Vec::new()),
        Some(Value::Object(rels)) => rels,
        Some(_) => return Err(shape()),
    };
    let mut links = Vec::new();
    for (relation, targets) in rels {
        let targets = targets.as_array().ok_or_else(shape)?;
        for target in targets {
            links.push(v1::Link {
                relation: relation.clone(),
                target_id: target.as_str().ok_or_else(shape)?.to_string(),
            });
        }
    }
    Ok(links)
}

/// Converts one Graph-style object into an import item.
pub fn item(mut object: Value) -> anyhow::Result<v1::ImportItem> {
    let map = object
        .as_object_mut()
        .context("each object must be a JSON object")?;
    let kind = match map.remove(KIND_KEY) {
        Some(Value::String(k)) => k,
        _ => anyhow::bail!("\"{KIND_KEY}\" must be a kind name such as \"user\""),
    };
    let links = take_links(map)?;
    let mutation_id = match map.get("id") {
        Some(Value::String(id)) => format!("import-{kind}-{id}"),
        _ => String::new(),
    };
    Ok(v1::ImportItem {
        attributes_json: serde_json::to_string(&object)?,
        kind,
        links,
        mutation_id,
    })
}

/// Sends `objects` (each with its number: its line, or its place in order, as `unit`
/// says) in batches of `batch` items (and at most 8 MiB). One call is in flight at a time,
/// so a batch is decided only after the batches before it (its objects may link to
/// theirs); the next batch is built while the call runs.
pub async fn run(
    client: &mut Client,
    tenant: &str,
    objects: impl Iterator<Item = anyhow::Result<(u64, Value)>>,
    unit: &'static str,
    total: Option<u64>,
    batch: usize,
    show_progress: bool,
) -> anyhow::Result<ImportSummary> {
    let started = Instant::now();
    let bar = match (show_progress, total) {
        (true, Some(n)) => ProgressBar::new(n),
        (true, None) => ProgressBar::new_spinner(),
        (false, _) => ProgressBar::hidden(),
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} objects  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut summary = ImportSummary {
        unit,
        ..ImportSummary::default()
    };
    let mut in_flight: Option<InFlight> = None;
    let mut pending = Vec::with_capacity(batch);
    let mut numbers = Vec::with_capacity(batch);
    let mut bytes = 0;
    for object in objects {
        let (number, object) = object?;
        let item = item(object).with_context(|| format!("{unit} {number}"))?;
        bytes += item.attributes_json.len() + item.links.len() * 48;
        pending.push(item);
        numbers.push(number);
        if pending.len() >= batch.max(1) || bytes >= MAX_BATCH_BYTES {
            if let Some(previous) = in_flight.take() {
                previous.finish(&mut summary, &bar).await?;
            }
            in_flight = Some(InFlight::send(
                client,
                tenant,
                std::mem::take(&mut pending),
                std::mem::take(&mut numbers),
            ));
            bytes = 0;
        }
    }
    if let Some(previous) = in_flight.take() {
        previous.finish(&mut summary, &bar).await?;
    }
    if !pending.is_empty() {
        InFlight::send(client, tenant, pending, numbers)
            .finish(&mut summary, &bar)
            .await?;
    }
    bar.finish_and_clear();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// One `ImportObjects` call running on its own task.
struct InFlight {
    call: tokio::task::JoinHandle<Result<v1::ImportObjectsResponse, tonic::Status>>,
    /// The number of each of the batch's objects.
    numbers: Vec<u64>,
}

impl InFlight {
    fn send(client: &Client, tenant: &str, items: Vec<v1::ImportItem>, numbers: Vec<u64>) -> Self {
        let mut client = client.clone();
        let request = v1::ImportObjectsRequest {
            tenant: tenant.to_string(),
            items,
            correlation_id: String::new(),
        };
        let call = tokio::spawn(async move {
            client
                .import_objects(request)
                .await
                .map(tonic::Response::into_inner)
        });
        Self { call, numbers }
    }

    /// Waits for the call and adds its outcome to `summary`.
    async fn finish(self, summary: &mut ImportSummary, bar: &ProgressBar) -> anyhow::Result<()> {
        let response = self.call.await.context("the import call's task failed")??;
        summary.created += response.created;
        summary.already_existed += response.already_existed;
        summary.rejected += response.rejected;
        summary.events += response.events;
        for p in response.problems {
            if p.outcome == v1::import_item_result::Outcome::Rejected as i32
                && summary.problems.len() < 20
            {
                let number = self.numbers.get(p.index as usize).copied().unwrap_or(0);
                summary.problems.push((number, p.message));
            }
        }
        summary.secrets_dropped += response.secrets_dropped.len() as u64;
        for d in response.secrets_dropped {
            if summary.secret_notes.len() < 20 {
                let number = self.numbers.get(d.index as usize).copied().unwrap_or(0);
                summary.secret_notes.push((number, d.id, d.places));
            }
        }
        bar.set_position(self.numbers.last().copied().unwrap_or(0));
        Ok(())
    }
}
