//! The JetStream buckets the services keep their jobs, leases, reports, plans and
//! checkpoints in: opened when they exist, created with file storage the first time.

use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream::StorageType};

use crate::error::EventLogError;

/// Opens a KV bucket, creating it (history 1, entries kept for `max_age`, zero = forever)
/// the first time.
pub async fn kv_bucket(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, EventLogError> {
    if let Ok(bucket) = js.get_key_value(name).await {
        return Ok(bucket);
    }
    js.create_key_value(kv::Config {
        bucket: name.into(),
        description: description.into(),
        history: 1,
        max_age,
        num_replicas: replicas,
        storage: StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| EventLogError::Unavailable(creation_failed("KV bucket", name, &e)))
}

/// The KV bucket of the alerters (the snapshotter's over the event log, the audit
/// service's over the audit trail): their positions and mass-rule windows.
pub const ALERTS_BUCKET: &str = "bt-alerts";

/// Opens [`ALERTS_BUCKET`], creating it the first time.
pub async fn alerts_bucket(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<kv::Store, EventLogError> {
    kv_bucket(
        js,
        ALERTS_BUCKET,
        "Backtrack alerters: positions and mass-rule windows",
        Duration::ZERO,
        replicas,
    )
    .await
}

/// The JSON value under `key`, `None` when there is none.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    bucket: &kv::Store,
    key: &str,
) -> Result<Option<T>, EventLogError> {
    let value = bucket
        .get(key)
        .await
        .map_err(|e| EventLogError::Unavailable(format!("read {key}: {e}")))?;
    value
        .map(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|e| EventLogError::Internal(format!("{key} is unreadable: {e}")))
        })
        .transpose()
}

/// Stores `value` as JSON under `key`.
pub async fn put_json<T: serde::Serialize>(
    bucket: &kv::Store,
    key: &str,
    value: &T,
) -> Result<(), EventLogError> {
    let bytes = serde_json::to_vec(value).map_err(|e| EventLogError::Internal(e.to_string()))?;
    bucket
        .put(key, bytes.into())
        .await
        .map(|_| ())
        .map_err(|e| EventLogError::Unavailable(format!("write {key}: {e}")))
}

/// Opens an object store bucket, creating it the first time.
pub async fn object_bucket(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    replicas: usize,
) -> Result<object_store::ObjectStore, EventLogError> {
    if let Ok(bucket) = js.get_object_store(name).await {
        return Ok(bucket);
    }
    js.create_object_store(object_store::Config {
        bucket: name.into(),
        description: Some(description.into()),
        storage: StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| EventLogError::Unavailable(creation_failed("object store bucket", name, &e)))
}

/// What a failed bucket creation tells the operator: which bucket, why, and what the
/// server needs.
pub fn creation_failed(what: &str, name: &str, error: &dyn std::fmt::Display) -> String {
    format!(
        "cannot create the {what} {name}: {error}; the NATS server needs JetStream enabled \
         (`nats-server -js`) with room in its store, and this account must be allowed to \
         create streams"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_creation_names_the_bucket_the_cause_and_the_fix() {
        let message = creation_failed("KV bucket", "bt-jobs", &"insufficient resources");
        assert!(message.starts_with("cannot create the KV bucket bt-jobs: insufficient resources;"));
        assert!(message.contains("nats-server -js"), "{message}");
    }
}
