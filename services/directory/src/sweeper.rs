//! Purges objects whose recycle-bin retention has run out, as ordinary hard deletes
//! (so the log records them like any other change), each with a `directory.hardDeleted`
//! audit record by `system:recycle-bin`.

use backtrack_domain::command::Command;
use backtrack_platform::audit::AuditEntry;
use backtrack_platform::shutdown::Shutdown;
use backtrack_store::ListQuery;

use crate::writer::{Directory, Origin};

/// Runs one sweep every `sweep_interval` until `shutdown`.
pub async fn run(directory: Directory, shutdown: Shutdown) {
    let interval = directory_interval(&directory);
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {},
            () = shutdown.wait() => return,
        }
        if let Err(e) = sweep(&directory).await {
            tracing::warn!(error = %e, "recycle-bin sweep failed; will retry");
        }
    }
}

fn directory_interval(directory: &Directory) -> std::time::Duration {
    directory.sweep_interval()
}

/// Hard-deletes every recycle-bin object whose `purge_after` has passed. Returns how
/// many objects were purged.
pub async fn sweep(directory: &Directory) -> Result<u64, crate::DirectoryError> {
    let now = backtrack_platform::clock::now_ms();
    let origin = Origin {
        actor: "system:recycle-bin".into(),
        source: "directory".into(),
        correlation_id: None,
    };
    let mut purged = 0;
    for tenant in directory.projection().tenants()? {
        let mut after = None;
        loop {
            let page = directory.projection().list(
                &tenant.id,
                &ListQuery {
                    deleted: true,
                    after: after.clone(),
                    limit: 500,
                    ..Default::default()
                },
            )?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for object in page
                .iter()
                .filter(|o| o.purge_after_ms.is_some_and(|p| p <= now))
            {
                // Deterministic id: two sweepers racing purge the object once.
                let mutation = format!("purge-{}-{}", object.id, object.version);
                // The record goes first, under an id derived from the purge: a sweep that
                // fails after it retries the same purge and the stream keeps one record.
                let record = AuditEntry::system(
                    &origin.actor,
                    &tenant.id,
                    "directory",
                    "directory.hardDeleted",
                )
                .natural_id(&mutation)
                .target(
                    object.kind.as_str(),
                    &object.id,
                    object.display_name().unwrap_or_default(),
                )
                .before(&serde_json::Value::Object(object.attributes.clone()))
                .details(&serde_json::json!({
                    "reason": "its recycle-bin retention ran out",
                    "purgeAfter": object.purge_after_ms.map(backtrack_domain::time::rfc3339_ms),
                }))
                .into_record();
                directory
                    .audit_log()
                    .publish(&[record])
                    .await
                    .map_err(crate::DirectoryError::from)?;
                directory
                    .execute(
                        &tenant.id,
                        Command::HardDelete {
                            id: object.id.clone(),
                        },
                        Some(mutation),
                        &origin,
                    )
                    .await?;
                purged += 1;
            }
        }
    }
    Ok(purged)
}
