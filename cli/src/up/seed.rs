//! The demo tenant `backtrack up --demo` seeds on first start.

use backtrack_directory::writer::{ImportItem, Origin};
use backtrack_directory::Directory;

use super::DEMO_TENANT;
use crate::output::announceln;

pub(super) async fn seed_demo(directory: &Directory, users: usize) -> anyhow::Result<()> {
    let origin = Origin {
        actor: "demo".into(),
        source: "demo".into(),
        correlation_id: None,
    };
    if directory.projection().tenant(DEMO_TENANT)?.is_some() {
        return Ok(());
    }
    directory
        .create_tenant(DEMO_TENANT, "Contoso (demo)", &origin)
        .await?;
    let opts = demo_options(users, 42, "contoso.com");
    let mut batch = Vec::new();
    let mut created = 0usize;
    for object in crate::demo::demo_objects(&opts) {
        batch.push(import_item(object)?);
        if batch.len() == 2000 {
            created += count_created(
                directory
                    .import(DEMO_TENANT, std::mem::take(&mut batch), &origin)
                    .await?
                    .0,
            );
        }
    }
    created += count_created(directory.import(DEMO_TENANT, batch, &origin).await?.0);
    announceln!("Seeded demo tenant '{DEMO_TENANT}' with {created} objects.");
    Ok(())
}

fn count_created(outcomes: Vec<backtrack_directory::writer::ImportOutcome>) -> usize {
    outcomes
        .iter()
        .filter(|o| matches!(o, backtrack_directory::writer::ImportOutcome::Created(_)))
        .count()
}

fn import_item(object: serde_json::Value) -> anyhow::Result<ImportItem> {
    let parsed = backtrack_domain::graph::parse(None, object)?;
    Ok(ImportItem {
        kind: parsed.kind,
        mutation_id: parsed
            .id
            .as_ref()
            .map(|id| format!("import-{}-{id}", parsed.kind)),
        id: parsed.id,
        attributes: parsed.attributes,
        links: parsed.links,
    })
}

/// The demo tenant for `users` users (groups and applications scale with it).
pub fn demo_options(users: usize, seed: u64, domain: &str) -> crate::demo::DemoOptions {
    crate::demo::DemoOptions::for_users(users, seed, domain)
}
