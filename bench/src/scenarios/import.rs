//! The directory's real write path: the demo tenant imported over gRPC with the CLI's own
//! bulk importer (`backtrack_cli::import::run`), which is what `backtrack demo seed` does.

use std::time::Duration;

use anyhow::bail;
use backtrack_cli::client::Client;
use backtrack_cli::demo::demo_objects;
use backtrack_cli::up::demo_options;
use backtrack_proto::v1;

/// The tenant every scenario works in.
pub const TENANT: &str = "bench";
/// Items per `ImportObjects` call.
pub const BATCH: usize = 2000;
/// The demo generator's seed and domain.
const SEED: u64 = 42;
const DOMAIN: &str = "bench.example";

/// What the import did and how long it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImportRun {
    pub objects: u64,
    pub events: u64,
    pub elapsed: Duration,
}

impl ImportRun {
    pub fn objects_per_second(&self) -> f64 {
        self.objects as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Creates [`TENANT`] and imports the demo tenant of `users` users into it in batches of
/// [`BATCH`]. Fails if any object is rejected or already there: the figures would lie.
pub async fn bulk_import(client: &mut Client, users: usize) -> anyhow::Result<ImportRun> {
    client
        .create_tenant(v1::CreateTenantRequest {
            id: TENANT.to_string(),
            display_name: "Benchmark".to_string(),
        })
        .await?;
    let options = demo_options(users, SEED, DOMAIN);
    let total = options.total_objects() as u64;
    let objects = demo_objects(&options).map(Ok);
    let summary =
        backtrack_cli::import::run(client, TENANT, objects, Some(total), BATCH, false).await?;
    if summary.rejected > 0 || summary.already_existed > 0 || summary.created != total {
        bail!(
            "the import created {} of {total} objects ({} rejected, {} already existed); first problems: {:?}",
            summary.created,
            summary.rejected,
            summary.already_existed,
            summary.problems
        );
    }
    Ok(ImportRun {
        objects: summary.created,
        events: summary.events,
        elapsed: summary.elapsed,
    })
}
