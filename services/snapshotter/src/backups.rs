//! Creating, reading, pinning and verifying backups.

use std::collections::BTreeSet;
use std::time::Instant;

use backtrack_domain::digest::{Expansion, StateDigest};
use backtrack_domain::object::group_links;
use backtrack_domain::TenantState;
use backtrack_proto::v1;
use backtrack_proto::v1::BackupTrigger;
use backtrack_store::TenantRecord;

use crate::error::SnapshotterError;
use crate::retention::{self, Retained};
use crate::Snapshotter;

const DAY_MS: i64 = 86_400_000;
/// Longest backup description.
pub const MAX_DESCRIPTION: usize = 1024;
/// Mismatched objects a verification names at most.
const MAX_MISMATCHES: usize = 20;
/// Namespace of scheduled backups' ids: one id per tenant and fire time, so replicas that
/// fire the same slot publish the same manifest and the stream keeps one.
const SCHEDULED_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f1c_2a4e_0b7d_4c55_9a8e_2d13_57b0_c0de);

/// What to back up, and why.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    pub tenant: String,
    pub description: String,
    pub trigger: BackupTrigger,
    pub requested_by: String,
    /// For scheduled backups: the fire time they stand for.
    pub scheduled_for_ms: Option<i64>,
}

/// The outcome of a verification.
#[derive(Debug, Clone)]
pub struct Verification {
    pub backup: v1::Backup,
    pub ok: bool,
    pub checks: Vec<v1::DigestCheck>,
    pub mismatched_ids: Vec<String>,
    pub message: String,
    pub events_replayed: u64,
    pub elapsed_ms: u64,
}

impl Snapshotter {
    /// Takes a backup: waits until the store has applied the log's current tail, then
    /// publishes a manifest naming the store's position, with the tenant's counts and
    /// digest there. O(1) in the tenant's size.
    pub async fn create_backup(
        &self,
        request: BackupRequest,
    ) -> Result<v1::Backup, SnapshotterError> {
        if request.description.chars().count() > MAX_DESCRIPTION {
            return Err(SnapshotterError::Invalid(format!(
                "the description has {} characters; the limit is {MAX_DESCRIPTION}",
                request.description.chars().count()
            )));
        }
        self.catch_up().await?;
        self.require_tenant(&request.tenant)?;
        let (sequence, _, summary) = self.store().tenant_summary(&request.tenant);
        let policy = self.policies().get(&request.tenant).await?;
        let now = now_ms();
        let created_at_ms = request.scheduled_for_ms.unwrap_or(now);
        let id = match request.scheduled_for_ms {
            Some(at) => uuid::Uuid::new_v5(
                &SCHEDULED_NAMESPACE,
                format!("{}:{at}", request.tenant).as_bytes(),
            ),
            None => uuid::Uuid::now_v7(),
        };
        let manifest = v1::Backup {
            id: id.to_string(),
            tenant: request.tenant.clone(),
            stream: self.log().stream_name().to_string(),
            sequence,
            created_at_ms,
            trigger: request.trigger as i32,
            description: request.description,
            requested_by: request.requested_by,
            counts: summary
                .counts
                .iter()
                .map(|(kind, c)| v1::KindCount {
                    kind: kind.as_str().to_string(),
                    live: c.live,
                    deleted: c.deleted,
                })
                .collect(),
            digest: summary.digest(),
            expires_at_ms: created_at_ms + i64::from(policy.retention_days) * DAY_MS,
            pinned: false,
            expired: false,
            manifest_sequence: 0,
        };
        self.catalog().publish_manifest(manifest).await?;
        self.backup(&request.tenant, &id.to_string()).await
    }

    /// A tenant's backups, oldest first, with `pinned` and `expired` filled in; expired
    /// ones only with `all`.
    pub async fn backups(
        &self,
        tenant: &str,
        all: bool,
    ) -> Result<Vec<v1::Backup>, SnapshotterError> {
        let entries = self.catalog().list(tenant);
        let policy = self.policies().get(tenant).await?;
        let retained: Vec<Retained<'_>> = entries
            .iter()
            .map(|e| Retained {
                id: &e.manifest.id,
                created_at_ms: e.manifest.created_at_ms,
                expires_at_ms: e.manifest.expires_at_ms,
                pinned: e.pinned,
            })
            .collect();
        let expired = retention::expired(&retained, &policy, now_ms());
        Ok(entries
            .iter()
            .map(|e| v1::Backup {
                pinned: e.pinned,
                expired: expired.contains(e.manifest.id.as_str()),
                ..e.manifest.clone()
            })
            .filter(|b| all || !b.expired)
            .collect())
    }

    /// One backup of the tenant (expired or not).
    pub async fn backup(&self, tenant: &str, id: &str) -> Result<v1::Backup, SnapshotterError> {
        self.backups(tenant, true)
            .await?
            .into_iter()
            .find(|b| b.id == id)
            .ok_or_else(|| {
                SnapshotterError::NotFound(format!(
                    "tenant {tenant} has no backup {id}; `backtrack backup list --tenant {tenant} --all` lists them"
                ))
            })
    }

    /// A backup that may still be used: not expired.
    pub async fn usable_backup(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<v1::Backup, SnapshotterError> {
        let backup = self.backup(tenant, id).await?;
        if backup.expired {
            return Err(SnapshotterError::Precondition(format!(
                "backup {id} expired at {}; it can no longer be used (pick a newer backup, or \
                 an instant: every instant of the log stays reachable)",
                backtrack_domain::time::rfc3339_ms(backup.expires_at_ms)
            )));
        }
        Ok(backup)
    }

    /// Pins (keeps until unpinned) or unpins a backup. An expired backup cannot be pinned.
    pub async fn set_pinned(
        &self,
        tenant: &str,
        id: &str,
        pinned: bool,
        actor: &str,
    ) -> Result<v1::Backup, SnapshotterError> {
        let backup = if pinned {
            self.usable_backup(tenant, id).await?
        } else {
            self.backup(tenant, id).await?
        };
        if backup.pinned != pinned {
            self.catalog().set_pinned(tenant, id, pinned, actor).await?;
        }
        self.backup(tenant, id).await
    }

    /// Rebuilds the tenant's state at the backup's sequence by replaying the log, and
    /// compares its digest with the manifest's and with the time-travel store's state there.
    /// All three digests use the expansion the manifest's digest names, so a manifest of an
    /// earlier release (`lthash16:`) verifies as it was written.
    pub async fn verify(&self, tenant: &str, id: &str) -> Result<Verification, SnapshotterError> {
        let started = Instant::now();
        let backup = self.usable_backup(tenant, id).await?;
        let filter = format!("bt.ev.{tenant}.>");
        let mut replayed = TenantState::default();
        let events_replayed = self
            .log()
            .fold_range(1, backup.sequence, &filter, |stored| {
                replayed.apply(&stored.event, stored.sequence);
            })
            .await?;
        let known = Expansion::of_digest(&backup.digest);
        let expansion = known.unwrap_or_default();
        let replay_digest = backtrack_domain::digest::tenant_digest_with(&replayed, expansion);
        let replay_objects = replayed.objects.len() as u64;
        let store = self.store().clone();
        let (tenant_owned, sequence) = (tenant.to_string(), backup.sequence);
        let (store_digest, store_objects, mismatched_ids) =
            tokio::task::spawn_blocking(move || {
                compare_store(&store, &tenant_owned, sequence, &replayed, expansion)
            })
            .await
            .map_err(|e| SnapshotterError::Internal(e.to_string()))??;
        let checks = vec![
            check(
                "manifest",
                &backup.digest,
                backup.counts.iter().map(|c| c.live + c.deleted).sum(),
            ),
            check("replay", &replay_digest, replay_objects),
            check("store", &store_digest, store_objects),
        ];
        let ok = backup.digest == replay_digest && replay_digest == store_digest;
        let message = if ok {
            format!("backup {id} verified: the log replayed to sequence {} matches the manifest and the time-travel store", backup.sequence)
        } else if known.is_none() {
            format!(
                "backup {id} FAILED: the manifest's digest {:?} is of no kind this release knows (lthash16-blake3: or lthash16:)",
                backup.digest
            )
        } else if backup.digest != replay_digest {
            format!("backup {id} FAILED: the manifest's digest differs from the log replayed to sequence {}", backup.sequence)
        } else {
            format!(
                "backup {id} FAILED: the time-travel store differs from the log at sequence {} ({} object(s) differ); delete the snapshotter's store folder and restart to rebuild it from the log",
                backup.sequence,
                mismatched_ids.len()
            )
        };
        Ok(Verification {
            backup,
            ok,
            checks,
            mismatched_ids,
            message,
            events_replayed,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Fails with NotFound unless the store knows the tenant.
    pub fn require_tenant(&self, tenant: &str) -> Result<(), SnapshotterError> {
        self.tenant_record(tenant).map(drop)
    }

    /// The tenant as the store knows it (its creation); NotFound when it knows none.
    pub fn tenant_record(&self, tenant: &str) -> Result<TenantRecord, SnapshotterError> {
        backtrack_domain::validate::tenant_id(tenant)
            .map_err(|e| SnapshotterError::Invalid(e.to_string()))?;
        self.store().tenant(tenant)?.ok_or_else(|| {
            SnapshotterError::NotFound(format!(
                "tenant {tenant} does not exist; `backtrack tenant list` shows the tenants"
            ))
        })
    }
}

/// Digest of the store's state at `sequence`, and the ids whose stored state differs from
/// the replayed one.
fn compare_store(
    store: &backtrack_store::TimeTravelStore,
    tenant: &str,
    sequence: u64,
    replayed: &TenantState,
    expansion: Expansion,
) -> Result<(String, u64, Vec<String>), SnapshotterError> {
    let mut digest = StateDigest::new(expansion);
    let mut mismatched = BTreeSet::new();
    let mut seen = BTreeSet::new();
    store.for_each_version_at(tenant, sequence, None, |mut object| {
        object.links = group_links(&store.links_at(tenant, &object.id, None, sequence)?);
        digest.add(&object);
        let same = replayed.objects.get(&object.id).is_some_and(|r| {
            r.kind == object.kind
                && r.attributes == object.attributes
                && r.links == object.links
                && r.deleted_at_ms == object.deleted_at_ms
        });
        if !same {
            mismatched.insert(object.id.clone());
        }
        seen.insert(object.id);
        Ok(true)
    })?;
    mismatched.extend(
        replayed
            .objects
            .keys()
            .filter(|id| !seen.contains(*id))
            .cloned(),
    );
    let objects = digest.objects();
    Ok((
        digest.finish(),
        objects,
        mismatched.into_iter().take(MAX_MISMATCHES).collect(),
    ))
}

fn check(source: &str, digest: &str, objects: u64) -> v1::DigestCheck {
    v1::DigestCheck {
        source: source.into(),
        digest: digest.into(),
        objects,
    }
}

pub(crate) use backtrack_platform::clock::now_ms;
