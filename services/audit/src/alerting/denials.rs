//! Refused calls in bursts: one caller whose calls are refused again and again within a
//! few minutes is probing (a stolen token tried against other tenants, a guessed token,
//! a reader trying to write), not mistyping. Each `security.accessDenied` record counts
//! towards its caller's run (the token's subject, or the address when the call had no
//! valid token, whose claimed subject is not trusted) in its tenant; a run that reaches
//! [`DenialLimits::calls`] within [`DenialLimits::window_ms`] raises one
//! `accessDeniedBurst` alert, and the caller's next one needs a whole quiet window.
//!
//! The runs are stored with the last sequence they include (key `audit.denials` in
//! `bt-alerts`) after the alerts they raised are published and before the follower's
//! position, so a restart counts nothing twice and loses nothing: records up to that
//! sequence are skipped when read again.

use backtrack_domain::alerts::{minutes, Runs};
use backtrack_proto::v1::AuditRecord;
use serde::{Deserialize, Serialize};

use super::{alert_record, token_of};

/// The state's key in the alerts bucket.
pub(super) const STATE_KEY: &str = "audit.denials";
/// Callers (and tenants) whose runs are kept at most (those refused most recently), so the
/// state stays well within a KV value. A spray from more callers than this, each below
/// the threshold, raises no burst: the tenant's surge counts it.
const MAX_CALLERS: usize = 500;

/// When refused calls are a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenialLimits {
    /// Refused calls of one caller that raise `accessDeniedBurst` (0: never).
    pub calls: usize,
    /// Refused calls in one tenant, whoever made them, that raise `accessDeniedSurge`
    /// (0: never): a spray from many callers, each below `calls`.
    pub tenant_calls: usize,
    /// How long a run may take.
    pub window_ms: i64,
}

impl Default for DenialLimits {
    fn default() -> Self {
        Self {
            calls: 20,
            tenant_calls: 200,
            window_ms: 10 * 60_000,
        }
    }
}

/// The runs of refused calls, with the last sequence they include.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Denials {
    #[serde(default)]
    pub through: u64,
    #[serde(default)]
    pub runs: Runs,
    /// The runs of every refusal of a tenant, by tenant.
    #[serde(default, skip_serializing_if = "Runs::is_empty")]
    pub tenants: Runs,
}

impl Denials {
    /// Counts the refusal recorded at `sequence` (any other record, or one this state
    /// already includes, counts nothing); the alerts it raises: its caller's burst, then
    /// its tenant's surge.
    pub fn push(
        &mut self,
        sequence: u64,
        record: &AuditRecord,
        limits: &DenialLimits,
    ) -> Vec<AuditRecord> {
        if sequence <= self.through
            || record.action != backtrack_platform::audit::action::ACCESS_DENIED
        {
            return Vec::new();
        }
        self.through = sequence;
        let mut out = Vec::new();
        out.extend(self.burst(sequence, record, limits));
        if limits.tenant_calls > 0 {
            if let Some(reached) = self.tenants.push(
                &record.tenant,
                (sequence, record.time_ms),
                1,
                limits.tenant_calls,
                limits.window_ms,
            ) {
                let what = format!(
                    "{} calls refused in this tenant within {}, by any caller; the last {}",
                    reached.total,
                    minutes(limits.window_ms),
                    caller(record)
                );
                out.push(alert_record(record, "high", "accessDeniedSurge", &what));
            }
        }
        out
    }

    /// The burst this refusal completes, if any.
    fn burst(
        &mut self,
        sequence: u64,
        record: &AuditRecord,
        limits: &DenialLimits,
    ) -> Option<AuditRecord> {
        if limits.calls == 0 {
            return None;
        }
        let who = caller(record);
        let key = format!("{}\n{who}", record.tenant);
        let reached = self.runs.push(
            &key,
            (sequence, record.time_ms),
            1,
            limits.calls,
            limits.window_ms,
        )?;
        let last = record.target.as_ref().map_or("", |t| t.id.as_str());
        let reason = record.result.as_ref().map_or("", |r| r.reason.as_str());
        let with = token_of(record)
            .map(|t| format!(" with token {t}"))
            .unwrap_or_default();
        let what = format!(
            "{} calls refused within {} {who}{with}; the last: {last}: {reason}",
            reached.total,
            minutes(limits.window_ms)
        );
        Some(alert_record(record, "high", "accessDeniedBurst", &what))
    }

    /// Forgets callers refused nothing in the window before `now_ms`, and bounds how many
    /// are kept.
    pub fn prune(&mut self, now_ms: i64, limits: &DenialLimits) {
        self.runs.prune(now_ms, limits.window_ms);
        self.runs.keep_newest(MAX_CALLERS);
        self.tenants.prune(now_ms, limits.window_ms);
        self.tenants.keep_newest(MAX_CALLERS);
    }
}

/// `by <subject>` for a caller with a valid token, else `from <address>` (the port left
/// out: each connection has its own).
fn caller(record: &AuditRecord) -> String {
    let actor = record.actor.clone().unwrap_or_default();
    if !actor.subject.is_empty() {
        return format!("by {}", actor.subject);
    }
    let address = actor.source_address;
    let host = match address.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip().to_string(),
        Err(_) => address,
    };
    if host.is_empty() {
        "from an unknown address".into()
    } else {
        format!("from {host}")
    }
}

#[cfg(test)]
mod tests {
    use backtrack_platform::audit::denial_record;
    use backtrack_proto::v1::AuditRecord;
    use tonic::Status;

    use super::{DenialLimits, Denials};

    fn refused(address: &str, time_ms: i64) -> AuditRecord {
        let mut r = denial_record(
            None,
            None,
            address.parse().ok(),
            "/backtrack.v1.DirectoryService/ListObjects",
            &Status::unauthenticated("invalid token: bad signature"),
        );
        r.time_ms = time_ms;
        r
    }

    const LIMITS: DenialLimits = DenialLimits {
        calls: 3,
        tenant_calls: 0,
        window_ms: 60_000,
    };

    #[test]
    fn a_burst_from_one_address_is_one_alert_and_scattered_refusals_are_none() {
        let mut d = Denials::default();
        let mut raised = Vec::new();
        let mut seq = 0;
        let mut push = |d: &mut Denials, r: AuditRecord| {
            seq += 1;
            d.push(seq, &r, &LIMITS)
        };
        // Two calls a minute apart, from other ports of the same host: no burst.
        assert!(push(&mut d, refused("10.0.0.7:4000", 0)).is_empty());
        assert!(push(&mut d, refused("10.0.0.7:4001", 61_000)).is_empty());
        // Another host's refusals count for that host alone.
        assert!(push(&mut d, refused("10.0.0.8:4000", 61_500)).is_empty());
        assert!(push(&mut d, refused("10.0.0.7:4002", 62_000)).is_empty());
        raised.extend(push(&mut d, refused("10.0.0.7:4003", 63_000)));
        assert_eq!(raised.len(), 1);
        let details: serde_json::Value = serde_json::from_str(&raised[0].details_json).unwrap();
        assert_eq!(details["rule"], "accessDeniedBurst");
        assert_eq!(
            details["what"],
            "3 calls refused within 1 min from 10.0.0.7; the last: \
             /backtrack.v1.DirectoryService/ListObjects: invalid token: bad signature"
        );
        assert_eq!(raised[0].tenant, "_unauthenticated");
        // The run goes on: no second alert until a whole quiet window has passed.
        for t in [64_000, 90_000, 140_000] {
            assert!(push(&mut d, refused("10.0.0.7:4004", t)).is_empty());
        }
        for t in [300_000, 301_000] {
            assert!(push(&mut d, refused("10.0.0.7:4005", t)).is_empty());
        }
        assert_eq!(push(&mut d, refused("10.0.0.7:4006", 302_000)).len(), 1);
    }

    #[test]
    fn a_record_already_counted_counts_nothing_and_other_actions_none() {
        let mut d = Denials::default();
        for s in 1..=2 {
            assert!(d
                .push(s, &refused("10.0.0.7:1", s as i64), &LIMITS)
                .is_empty());
        }
        // Read again after a restart: the stored state includes it.
        assert!(d.push(2, &refused("10.0.0.7:1", 2), &LIMITS).is_empty());
        let mut other = refused("10.0.0.7:1", 3);
        other.action = "backup.created".into();
        assert!(d.push(3, &other, &LIMITS).is_empty());
        assert_eq!(d.push(4, &refused("10.0.0.7:1", 4), &LIMITS).len(), 1);
        let off = DenialLimits { calls: 0, ..LIMITS };
        let mut d = Denials::default();
        assert!((1..=50).all(|s| d.push(s, &refused("10.0.0.7:1", s as i64), &off).is_empty()));
    }

    #[test]
    fn a_burst_names_the_token_its_caller_presented() {
        let caller = backtrack_platform::auth::Caller::new(
            "eve".into(),
            vec!["contoso".into()],
            vec![],
            vec![],
        )
        .with_token_id(Some("t-9".into()));
        let refused = |n: i64| {
            let mut r = denial_record(
                Some("contoso"),
                Some(&caller),
                None,
                "/backtrack.v1.DirectoryService/CreateObject",
                &Status::permission_denied("writing needs DirectoryWriter"),
            );
            r.time_ms = n;
            r
        };
        let mut d = Denials::default();
        let alerts: Vec<AuditRecord> = (1..=3)
            .flat_map(|s| d.push(s, &refused(s as i64), &LIMITS))
            .collect();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].tenant, "contoso");
        let details: serde_json::Value = serde_json::from_str(&alerts[0].details_json).unwrap();
        assert_eq!(details["tokenId"], "t-9");
        assert_eq!(
            details["what"],
            "3 calls refused within 1 min by eve with token t-9; the last: \
             /backtrack.v1.DirectoryService/CreateObject: writing needs DirectoryWriter"
        );
    }

    #[test]
    fn a_spray_of_callers_each_below_the_burst_is_a_surge_of_the_tenant() {
        let limits = DenialLimits {
            calls: 5,
            tenant_calls: 25,
            ..LIMITS
        };
        let mut d = Denials::default();
        let mut raised = Vec::new();
        // Ten addresses, three refusals each: no burst; the 25th refusal is the surge.
        for round in 0..3u64 {
            for host in 0..10u64 {
                let n = round * 10 + host + 1;
                let r = refused(&format!("10.0.1.{host}:1"), n as i64);
                raised.push((n, d.push(n, &r, &limits)));
            }
        }
        let alerts: Vec<(u64, AuditRecord)> = raised
            .into_iter()
            .flat_map(|(n, a)| a.into_iter().map(move |a| (n, a)))
            .collect();
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0].0, 25);
        let details: serde_json::Value = serde_json::from_str(&alerts[0].1.details_json).unwrap();
        assert_eq!(details["rule"], "accessDeniedSurge");
        assert_eq!(
            details["what"],
            "25 calls refused in this tenant within 1 min, by any caller; the last from 10.0.1.4"
        );
    }

    #[test]
    fn prune_forgets_quiet_callers_and_bounds_the_rest() {
        let mut d = Denials::default();
        for i in 0..600u64 {
            let r = refused(&format!("10.0.{}.{}:1", i / 256, i % 256), i as i64);
            d.push(i + 1, &r, &LIMITS);
        }
        d.prune(599, &LIMITS);
        assert_eq!(d.runs.len(), super::MAX_CALLERS);
        d.prune(599 + 61_000, &LIMITS);
        assert!(d.runs.is_empty());
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Denials>(&json).unwrap(), d);
    }
}
