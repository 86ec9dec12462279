//! A tenant's alert policy: the thresholds of its mass rules, the rules it has turned off,
//! and the actors whose bulk work is expected (a nightly leaver sync deletes hundreds of
//! users by design). Stored in the policy bucket (`alerts.<tenant>`), read by the alerter
//! at most [`crate::SnapshotterConfig::policy_refresh`] late.

use backtrack_domain::alerts::{BurstLimits, RULES};
use serde::{Deserialize, Serialize};

use crate::error::SnapshotterError;

/// Quiet actors one tenant may name.
pub const MAX_QUIET_ACTORS: usize = 100;
/// The largest threshold of a mass rule.
pub const MAX_THRESHOLD: u32 = 1_000_000;
/// The longest window of the mass rules: a week.
pub const MAX_WINDOW_MINUTES: u32 = 10_080;

/// A tenant's alert settings; zero and empty values leave the deployment's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AlertPolicy {
    /// Deletions by one actor within the window that raise `massDeletion` (0: the
    /// deployment's `--alert-mass-deletions`).
    pub mass_deletions: u32,
    /// Links removed by one actor within the window that raise `massLinkRemoval`.
    pub mass_link_removals: u32,
    /// The mass rules' window, in minutes.
    pub window_minutes: u32,
    /// Rules that raise no alert in this tenant.
    pub disabled_rules: Vec<String>,
    /// Actors whose changes count towards no mass rule; their other alerts stand (a
    /// conditional access policy deleted by a service account is still an alert).
    pub quiet_actors: Vec<String>,
}

impl AlertPolicy {
    /// The policy with its lists trimmed, sorted and deduplicated, or what is wrong with it
    /// and how to fix it.
    pub fn validated(mut self) -> Result<Self, SnapshotterError> {
        let invalid = |m: String| Err(SnapshotterError::Invalid(m));
        for (name, value) in [
            ("mass deletions", self.mass_deletions),
            ("mass link removals", self.mass_link_removals),
        ] {
            if value > MAX_THRESHOLD {
                return invalid(format!(
                    "{name} threshold {value} is out of range: use 1 to {MAX_THRESHOLD}, or 0 for the deployment's"
                ));
            }
        }
        if self.window_minutes > MAX_WINDOW_MINUTES {
            return invalid(format!(
                "a window of {} minutes is out of range: use 1 to {MAX_WINDOW_MINUTES} (a week), or 0 for the deployment's",
                self.window_minutes
            ));
        }
        tidy(&mut self.disabled_rules);
        if let Some(unknown) = self
            .disabled_rules
            .iter()
            .find(|r| !RULES.contains(&r.as_str()))
        {
            return invalid(format!(
                "there is no alert rule '{}': the rules are {}",
                backtrack_domain::validate::printable(unknown),
                RULES.join(", ")
            ));
        }
        tidy(&mut self.quiet_actors);
        if self.quiet_actors.len() > MAX_QUIET_ACTORS {
            return invalid(format!(
                "{} quiet actors is too many: name at most {MAX_QUIET_ACTORS}",
                self.quiet_actors.len()
            ));
        }
        if let Some(bad) = self
            .quiet_actors
            .iter()
            .find(|a| a.len() > 256 || a.chars().any(char::is_control))
        {
            return invalid(format!(
                "quiet actor '{}' is not a token subject: at most 256 characters, no control characters",
                backtrack_domain::validate::printable(bad)
            ));
        }
        Ok(self)
    }

    /// The mass rules' limits in this tenant: its own where set, else the deployment's.
    pub fn limits(&self, deployment: &BurstLimits) -> BurstLimits {
        let or = |own: u32, default: usize| {
            if own == 0 {
                default
            } else {
                own as usize
            }
        };
        let mut limits = *deployment;
        limits.thresholds.deletions = or(self.mass_deletions, limits.thresholds.deletions);
        limits.thresholds.link_removals =
            or(self.mass_link_removals, limits.thresholds.link_removals);
        if self.window_minutes > 0 {
            limits.window_ms = i64::from(self.window_minutes) * 60_000;
        }
        limits
    }

    /// Whether `rule` raises alerts in this tenant.
    pub fn raises(&self, rule: &str) -> bool {
        !self.disabled_rules.iter().any(|r| r == rule)
    }

    /// Whether `actor`'s changes count towards the mass rules.
    pub fn counts(&self, actor: &str) -> bool {
        !self.quiet_actors.iter().any(|a| a == actor)
    }
}

/// Trims, drops empty entries, sorts and deduplicates.
fn tidy(list: &mut Vec<String>) {
    for item in list.iter_mut() {
        *item = item.trim().to_string();
    }
    list.retain(|i| !i.is_empty());
    list.sort_unstable();
    list.dedup();
}

#[cfg(test)]
mod tests {
    use backtrack_domain::alerts::{BurstLimits, Thresholds};

    use super::AlertPolicy;

    #[test]
    fn own_values_override_the_deployment_and_bad_ones_are_refused_with_the_fix() {
        let deployment = BurstLimits {
            thresholds: Thresholds {
                deletions: 20,
                link_removals: 100,
            },
            window_ms: 3_600_000,
        };
        assert_eq!(AlertPolicy::default().limits(&deployment), deployment);
        let own = AlertPolicy {
            mass_deletions: 500,
            window_minutes: 15,
            disabled_rules: vec![" roleAssigned".into(), "roleAssigned".into(), String::new()],
            quiet_actors: vec!["svc-hr-sync".into()],
            ..AlertPolicy::default()
        }
        .validated()
        .unwrap();
        assert_eq!(own.disabled_rules, ["roleAssigned"]);
        let limits = own.limits(&deployment);
        assert_eq!(
            (
                limits.thresholds.deletions,
                limits.thresholds.link_removals,
                limits.window_ms
            ),
            (500, 100, 900_000)
        );
        assert!(!own.raises("roleAssigned") && own.raises("caPolicyDeleted"));
        assert!(!own.counts("svc-hr-sync") && own.counts("mallory"));

        let unknown = AlertPolicy {
            disabled_rules: vec!["caPolicyDelete".into()],
            ..AlertPolicy::default()
        };
        let e = unknown.validated().unwrap_err().to_string();
        assert!(
            e.contains("no alert rule 'caPolicyDelete'") && e.contains("caPolicyDeleted"),
            "{e}"
        );
        let week = AlertPolicy {
            window_minutes: 10_081,
            ..AlertPolicy::default()
        };
        assert!(week
            .validated()
            .unwrap_err()
            .to_string()
            .contains("1 to 10080"));
        let many = AlertPolicy {
            quiet_actors: (0..101).map(|i| format!("svc-{i}")).collect(),
            ..AlertPolicy::default()
        };
        assert!(many
            .validated()
            .unwrap_err()
            .to_string()
            .contains("at most 100"));
    }
}
