//! Points of the log: a stream sequence, an instant, a backup, or "now" — each resolved
//! to the stream sequence the time-travel store is read at.

use backtrack_proto::v1;
use backtrack_proto::v1::point::Point as PointKind;

use crate::error::SnapshotterError;
use crate::Snapshotter;

impl Snapshotter {
    /// Resolves a point for `tenant`, waiting until the store has applied what it names.
    ///
    /// - none: the store's latest position (after catching up with the log);
    /// - a sequence: that sequence (must not lie beyond the log's tail);
    /// - an instant: the last sequence the stream stored at or before it;
    /// - a backup id: the backup's sequence (an expired backup is refused).
    pub async fn resolve(
        &self,
        tenant: &str,
        point: Option<&v1::Point>,
    ) -> Result<v1::ResolvedPoint, SnapshotterError> {
        match point.and_then(|p| p.point.as_ref()) {
            None => {
                self.catch_up().await?;
                let (sequence, time_ms, _) = self.store().tenant_summary(tenant);
                Ok(v1::ResolvedPoint {
                    sequence,
                    time_ms,
                    backup_id: String::new(),
                })
            }
            Some(PointKind::Sequence(sequence)) => {
                // Only a sequence the store has not reached needs the log's tail.
                if *sequence > self.position() {
                    let last = self.log().state().await?.last_sequence;
                    if *sequence > last {
                        return Err(SnapshotterError::Invalid(format!(
                            "sequence {sequence} lies beyond the end of the log ({last})"
                        )));
                    }
                    self.wait_for(*sequence).await?;
                }
                Ok(v1::ResolvedPoint {
                    sequence: *sequence,
                    // Filled in by `ResolvePoint` only: it costs a round trip to the log.
                    time_ms: 0,
                    backup_id: String::new(),
                })
            }
            Some(PointKind::TimeMs(ms)) => {
                let (_, applied_ms, _) = self.store().tenant_summary(tenant);
                if *ms >= applied_ms {
                    // The instant may cover events not applied yet: catch up first.
                    self.catch_up().await?;
                }
                let (time_ms, sequence) = self.store().resolve_time(*ms)?.unwrap_or((0, 0));
                Ok(v1::ResolvedPoint {
                    sequence,
                    time_ms,
                    backup_id: String::new(),
                })
            }
            Some(PointKind::BackupId(id)) => {
                let backup = self.usable_backup(tenant, id).await?;
                self.wait_for(backup.sequence).await?;
                Ok(v1::ResolvedPoint {
                    sequence: backup.sequence,
                    time_ms: backup.created_at_ms,
                    backup_id: backup.id,
                })
            }
        }
    }
}
