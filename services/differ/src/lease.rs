//! How a job hands over the tenant's lease in `bt-leases` when it ends, for report and
//! recovery jobs alike.
//!
//! A job's final record and the release of its lease are two writes. Released first, a
//! reader on another replica could see the record unfinished with no lease (and take the
//! job for dead); stored first, whoever saw the job finished could not start the next
//! one until the release. So a finishing job first marks its lease ([`mark_finishing`]),
//! then stores its final record, then deletes the lease if it is still the marked one
//! ([`release_at`]). A new job takes over a marked lease at once
//! ([`take_over_marked`]); the job itself and its readers still count it as held.

use std::time::Duration;

use async_nats::jetstream::kv;

/// What a finishing job appends to its lease value.
pub const FINISHING: &str = " (finishing)";

/// Whether a lease value is marked by a job that has done its work.
pub fn is_marked(value: &str) -> bool {
    value.ends_with(FINISHING)
}

/// Whether the lease value `current` belongs to the job whose lease value is `value`,
/// marked or not.
pub fn held_by(current: &str, value: &str) -> bool {
    current.strip_suffix(FINISHING).unwrap_or(current) == value
}

/// Marks the lease finishing if `value` still holds it; returns the marked lease's
/// revision, or `None` when the job no longer holds it or the bucket cannot be reached
/// ([`release_at`] with `None` then deletes it if it still names the job; failing that,
/// it expires by itself).
pub async fn mark_finishing(leases: &kv::Store, tenant: &str, value: &str) -> Option<u64> {
    let marked = format!("{value}{FINISHING}");
    // A refresh still in flight can move the revision under us once; try again then.
    for _ in 0..5 {
        let entry = match leases.entry(tenant).await {
            Ok(Some(entry)) if entry.operation == kv::Operation::Put => entry,
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(tenant, error = %e, "could not read the job lease to mark it finishing");
                return None;
            }
        };
        if entry.value.as_ref() != value.as_bytes() {
            return None;
        }
        match leases
            .update(tenant, marked.clone().into_bytes().into(), entry.revision)
            .await
        {
            Ok(revision) => return Some(revision),
            Err(e) => {
                tracing::debug!(tenant, error = %e, "the job lease moved while marking it; reading it again")
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Deletes the lease `value` holds: the one at `revision` (a marked lease: unless the next
/// job has taken it over since), or, when marking it failed (`None`), whichever revision
/// still names `value`. A lease that cannot be deleted expires by itself.
pub async fn release_at(leases: &kv::Store, tenant: &str, revision: Option<u64>, value: &str) {
    let revision = match revision {
        Some(revision) => revision,
        None => match leases.entry(tenant).await {
            Ok(Some(entry))
                if entry.operation == kv::Operation::Put
                    && held_by(&String::from_utf8_lossy(&entry.value), value) =>
            {
                entry.revision
            }
            _ => return,
        },
    };
    if let Err(e) = leases.purge_expect_revision(tenant, Some(revision)).await {
        // Taken over by the next job, or unreachable (then it expires by itself).
        tracing::debug!(tenant, error = %e, "the finished job's lease was not deleted");
    }
}

/// Takes over `current`, the tenant's lease as just read, if its job has marked it
/// finishing: the lease becomes `value`. Returns the new revision, or `None` if it is not
/// marked (or someone else was faster).
pub async fn take_over_marked(
    leases: &kv::Store,
    tenant: &str,
    current: &kv::Entry,
    value: &str,
) -> Option<u64> {
    if current.operation != kv::Operation::Put
        || !is_marked(&String::from_utf8_lossy(&current.value))
    {
        return None;
    }
    leases
        .update(
            tenant,
            value.to_string().into_bytes().into(),
            current.revision,
        )
        .await
        .ok()
}
