//! Resolving a request: the point a job recovers to, its scope and conflict base, and
//! whose changes it sets back; a point before the tenant existed is refused.

use backtrack_differ::Scope;
use backtrack_domain::authorship::Authors;
use backtrack_domain::{validate, ObjectKind};
use backtrack_proto::v1;
use backtrack_store::TenantRecord;

use crate::{runner, state_name, Recovery, RecoveryError, RecoveryRequest, Source};

/// Where the job starts from, resolved.
pub(crate) struct Resolved {
    pub(crate) point: v1::ResolvedPoint,
    pub(crate) scope: Scope,
    pub(crate) report_id: String,
    /// The report's target sequence, if the job starts from a report.
    pub(crate) conflict_base: Option<u64>,
    /// Whose changes to set back (empty: all).
    pub(crate) authors: Authors,
}

impl Recovery {
    pub(crate) async fn resolve(
        &self,
        request: &RecoveryRequest,
    ) -> Result<Resolved, RecoveryError> {
        let tenant = &request.tenant;
        validate::tenant_id(tenant).map_err(|e| RecoveryError::Invalid(e.to_string()))?;
        let created = self.snapshotter().tenant_record(tenant)?;
        let mut authors = Authors::actors(request.changed_by.iter().cloned());
        if !authors.is_empty() && !matches!(request.source, Source::Point(_)) {
            return Err(RecoveryError::Invalid(
                "--changed-by goes with a point (--from); a report made with --changed-by carries its actors, and a recovery from it sets back only their changes".into(),
            ));
        }
        let (point, mut scope, report_id, conflict_base) = match &request.source {
            Source::Report(id) => {
                let report = self.inner.differ.report(tenant, id).await?;
                if report.state != v1::JobState::Successful as i32 {
                    return Err(RecoveryError::Precondition(format!(
                        "report {id} is {}; recover from a successful report",
                        backtrack_differ::state_name(report.state)
                    )));
                }
                let scope = report.scope.clone().unwrap_or_default();
                let kinds = scope
                    .kinds
                    .iter()
                    .filter_map(|k| k.parse::<ObjectKind>().ok())
                    .collect();
                // A report of some actors' changes: set back what they changed since its
                // base; a later change by someone else is a conflict of that thing alone.
                let authored = !scope.changed_by.is_empty();
                if authored {
                    authors = Authors::actors(scope.changed_by);
                }
                (
                    report.base.clone().unwrap_or_default(),
                    Scope {
                        kinds,
                        ids: scope.ids,
                        ..Scope::default()
                    },
                    report.id.clone(),
                    report
                        .target
                        .as_ref()
                        .map(|t| t.sequence)
                        .filter(|_| !authored),
                )
            }
            Source::Undo(id) => {
                let job = self.job(tenant, id).await?;
                if !runner::is_finished(job.state) {
                    return Err(RecoveryError::Precondition(format!(
                        "recovery {id} is still {}; undo it once it has finished (or cancel it first)",
                        state_name(job.state)
                    )));
                }
                if job.pre_recovery_backup_id.is_empty() {
                    return Err(RecoveryError::Precondition(format!(
                        "recovery {id} stopped before it took its pre-recovery backup, so it changed nothing to undo"
                    )));
                }
                let backup = v1::Point {
                    point: Some(v1::point::Point::BackupId(job.pre_recovery_backup_id)),
                };
                let resolved = self.snapshotter().resolve(tenant, Some(&backup)).await?;
                let scope = job.scope.unwrap_or_default();
                // Only what the job changed goes back, each thing to what the job found (its
                // events carry its id): a later change by someone else to something else
                // stays, and one to the same thing is a conflict of that thing alone.
                authors = Authors::job(id.clone());
                let scope = Scope {
                    kinds: scope.kinds.iter().filter_map(|k| k.parse().ok()).collect(),
                    ids: scope.ids,
                    ..Scope::default()
                };
                (resolved, scope, String::new(), None)
            }
            Source::Point(point) => {
                if point.point.is_none() {
                    return Err(RecoveryError::Invalid(
                        "name what to recover to: a report (--report) or a backup id, instant or sequence (--from)".into(),
                    ));
                }
                let resolved = self.snapshotter().resolve(tenant, Some(point)).await?;
                (resolved, Scope::default(), String::new(), None)
            }
        };
        before_creation(&created, &point)?;
        narrow(&mut scope.kinds, &request.kinds);
        narrow(&mut scope.ids, &request.ids);
        if (!request.kinds.is_empty() && scope.kinds.is_empty())
            || (!request.ids.is_empty() && scope.ids.is_empty())
        {
            return Err(RecoveryError::Invalid(
                "the kinds or ids asked for lie outside the report's scope; nothing would be recovered".into(),
            ));
        }
        Ok(Resolved {
            point,
            scope,
            report_id,
            conflict_base,
            authors,
        })
    }
}

/// Refuses a point before the tenant's creation. The tenant did not exist there, and a
/// recovery sets objects back; it cannot take a tenant back to not existing. Its plan
/// would soft-delete every object, which is what a mistyped date (a year off) asks for.
/// Records kept before the creation's sequence was (0) are judged by their time.
fn before_creation(created: &TenantRecord, point: &v1::ResolvedPoint) -> Result<(), RecoveryError> {
    let before = if created.created_sequence > 0 {
        point.sequence < created.created_sequence
    } else {
        point.sequence == 0 || (point.time_ms > 0 && point.time_ms < created.created_at_ms)
    };
    if !before {
        return Ok(());
    }
    let mut at = format!("sequence {}", point.sequence);
    if point.time_ms > 0 {
        at = format!(
            "{at}, {}",
            backtrack_domain::time::rfc3339_ms(point.time_ms)
        );
    }
    let (mut created_at, mut empty) = (
        backtrack_domain::time::rfc3339_ms(created.created_at_ms),
        String::new(),
    );
    if created.created_sequence > 0 {
        let sequence = created.created_sequence;
        created_at = format!("{created_at} (sequence {sequence})");
        empty = format!("; to empty the tenant, recover to its creation (--from {sequence})");
    }
    Err(RecoveryError::Precondition(format!(
        "tenant {} was created at {created_at}; the point ({at}) lies before that, when it did not exist. A recovery sets objects back as they were and cannot take a tenant back to not existing: choose a point after its creation{empty}",
        created.id,
    )))
}

/// Keeps in `have` only what `want` names too (an empty `want` keeps everything; an empty
/// `have` becomes `want`).
fn narrow<T: Ord + Clone>(have: &mut Vec<T>, want: &[T]) {
    if want.is_empty() {
        return;
    }
    let mut want = want.to_vec();
    want.sort();
    want.dedup();
    if have.is_empty() {
        *have = want;
    } else {
        have.retain(|x| want.binary_search(x).is_ok());
    }
    have.sort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(sequence: u64, time_ms: i64) -> v1::ResolvedPoint {
        v1::ResolvedPoint {
            sequence,
            time_ms,
            backup_id: String::new(),
        }
    }

    #[test]
    fn a_tenant_record_kept_without_its_sequence_is_judged_by_its_time() {
        let old = TenantRecord {
            id: "t".into(),
            display_name: "T".into(),
            created_at_ms: 5_000,
            created_sequence: 0,
        };
        // Before any event, or stored before the creation's time.
        assert!(before_creation(&old, &point(0, 0)).is_err());
        assert!(before_creation(&old, &point(7, 4_999)).is_err());
        // At or after it, or a sequence whose time the point does not carry.
        assert!(before_creation(&old, &point(8, 5_000)).is_ok());
        assert!(before_creation(&old, &point(8, 0)).is_ok());
        let err = before_creation(&old, &point(7, 4_999))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sequence 7, ") && !err.contains("--from"),
            "{err}"
        );

        let new = TenantRecord {
            created_sequence: 8,
            ..old
        };
        assert!(before_creation(&new, &point(7, 6_000)).is_err());
        assert!(before_creation(&new, &point(8, 0)).is_ok());
    }
}
