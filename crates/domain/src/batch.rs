//! A batch of a recovery job as the directory decides it: which planned operations run,
//! which are left alone, and what each one changes. Pure, so the directory can decide a
//! batch sent to it over the wire exactly as it decides one handed over in process.
//!
//! The recovery service sends [`BatchStep`]s (operation `i` of job `J` under mutation id
//! `J-i`); the directory decides each with [`decide_step`] against the tenant as it is, plus
//! the steps before it in the batch, and answers one [`StepResult`] per step.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::canonical::{map_to_canonical_string, to_canonical_string};
use crate::command::{Command, DirectoryView};
use crate::recovery::{Operation, Step};

/// One planned operation of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchStep {
    /// The mutation id the operation's events carry: the log stores it once.
    pub mutation_id: String,
    pub operation: Operation,
    /// Compare the object's version with the plan's before running (the first operation
    /// on an object, not yet checked by an earlier run of the job).
    pub check_version: bool,
}

/// How a batch treats objects that changed since the recovery's base.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchPolicy {
    /// Leave such objects alone (otherwise they are set back anyway, and reported).
    pub skip_on_conflict: bool,
    /// Objects already left alone by earlier batches: their later operations are skipped.
    pub skipped_ids: HashSet<String>,
}

/// What became of one step in the directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome", content = "detail")]
pub enum PlannedOutcome {
    /// The log already held this mutation id: an earlier attempt stored it.
    AlreadyApplied,
    /// Decided and stored; `events` new events (0: nothing left to change, or every
    /// append was a duplicate of an earlier attempt).
    Applied { events: u64 },
    /// The step named no command (see its [`Met`]).
    Declined,
    /// The command was accepted but changes nothing: the state already is what it asks.
    Unchanged,
    /// The directory refused the command; the message says why.
    Refused(String),
    /// The log did not acknowledge it; retry with the same mutation id.
    NotStored(String),
}

/// What a step met when it was decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "met", content = "reason")]
pub enum Met {
    /// Not decided: the log already held its mutation id.
    #[default]
    NotDecided,
    /// Nothing left to do.
    Satisfied,
    /// It cannot run; the reason says why.
    Failed(String),
    /// Left alone (the object changed since the base and the job skips such objects).
    Skipped(String),
    /// Its command ran.
    Run,
}

/// What deciding a step found, beside its outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub met: Met,
    /// Link targets left out, with reasons.
    pub failed_links: Vec<(String, String)>,
    /// The object had changed since the plan's base (someone else changed it).
    pub conflict: bool,
    /// Canonical JSON of the values before and after (never secrets).
    pub before: String,
    pub after: String,
    /// How many links the command changes.
    pub links: usize,
}

/// One step's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    pub outcome: PlannedOutcome,
    pub decision: Decision,
}

/// Decides `step` against `view`: the command to run, if any, and what it met. An object
/// left alone joins `policy.skipped_ids`, so its later operations are left alone too.
pub fn decide_step(
    step: &BatchStep,
    view: &dyn DirectoryView,
    policy: &mut BatchPolicy,
) -> (Decision, Option<Command>) {
    let op = &step.operation;
    let mut decision = Decision::default();
    if policy.skipped_ids.contains(&op.id) {
        decision.met = Met::Skipped(
            "left alone: the object changed since the recovery's base (--on-conflict skip)".into(),
        );
        return (decision, None);
    }
    if step.check_version {
        let version = view.object(&op.id).map_or(0, |o| o.version);
        if version != op.planned_version {
            decision.conflict = true;
            if policy.skip_on_conflict {
                policy.skipped_ids.insert(op.id.clone());
                decision.met = Met::Skipped(format!(
                    "left alone: the object changed since the recovery's base (version {} then, {version} now; --on-conflict skip)",
                    op.planned_version
                ));
                return (decision, None);
            }
        }
    }
    match op.step(view) {
        Step::Satisfied => {
            decision.met = Met::Satisfied;
            (decision, None)
        }
        Step::Fail(reason) => {
            decision.met = Met::Failed(reason);
            (decision, None)
        }
        Step::FailLinks(failed) => {
            decision.failed_links = failed;
            decision.met = Met::Satisfied;
            (decision, None)
        }
        Step::Run { command, failed } => {
            let (before, after, links) = describe(op, &command, view);
            decision.before = before;
            decision.after = after;
            decision.links = links;
            decision.failed_links = failed;
            decision.met = Met::Run;
            (decision, Some(command))
        }
    }
}

/// Before and after values of what `command` changes (never secrets: the directory never
/// holds any), and how many links it changes.
pub fn describe(
    op: &Operation,
    command: &Command,
    view: &dyn DirectoryView,
) -> (String, String, usize) {
    let object = view.object(&op.id);
    match command {
        Command::Update { set, unset, .. } => {
            let mut before = Map::new();
            let mut after = Map::new();
            for name in set.keys().chain(unset.iter()) {
                before.insert(
                    name.clone(),
                    object
                        .as_ref()
                        .and_then(|o| o.attributes.get(name))
                        .cloned()
                        .unwrap_or(Value::Null),
                );
                after.insert(name.clone(), set.get(name).cloned().unwrap_or(Value::Null));
            }
            (
                to_canonical_string(&Value::Object(before)),
                to_canonical_string(&Value::Object(after)),
                0,
            )
        }
        Command::AddLinks {
            relation, targets, ..
        } => (
            String::new(),
            to_canonical_string(&json!({"relation": relation, "added": targets})),
            targets.len(),
        ),
        Command::RemoveLinks {
            relation, targets, ..
        } => (
            to_canonical_string(&json!({"relation": relation, "removed": targets})),
            String::new(),
            targets.len(),
        ),
        Command::Create { attributes, .. } => {
            (String::new(), map_to_canonical_string(attributes), 0)
        }
        Command::Restore { .. } => (
            to_canonical_string(&json!({"inRecycleBin": true})),
            to_canonical_string(&json!({"inRecycleBin": false})),
            0,
        ),
        Command::SoftDelete { .. } => (
            to_canonical_string(&json!({"inRecycleBin": false})),
            to_canonical_string(&json!({"inRecycleBin": true})),
            0,
        ),
        Command::HardDelete { .. } => (String::new(), String::new(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::ObjectKind;
    use crate::object::DirectoryObject;
    use crate::recovery::Action;
    use crate::state::TenantState;

    fn tenant_with(object: DirectoryObject) -> TenantState {
        let mut tenant = TenantState::default();
        tenant.objects.insert(object.id.clone(), object);
        tenant
    }

    fn user(version: u64, department: &str) -> DirectoryObject {
        let mut attributes = Map::new();
        attributes.insert("department".into(), json!(department));
        DirectoryObject {
            id: "u1".into(),
            kind: ObjectKind::User,
            attributes,
            links: Default::default(),
            created_at_ms: 0,
            updated_at_ms: 0,
            deleted_at_ms: None,
            purge_after_ms: None,
            version,
        }
    }

    fn update_step(planned_version: u64, check_version: bool) -> BatchStep {
        let mut set = Map::new();
        set.insert("department".into(), json!("Sales"));
        BatchStep {
            mutation_id: "job-0".into(),
            operation: Operation {
                kind: ObjectKind::User,
                id: "u1".into(),
                display_name: None,
                change_type: "modified".into(),
                action: Action::SetAttributes {
                    set,
                    unset: Vec::new(),
                },
                planned_version,
            },
            check_version,
        }
    }

    #[test]
    fn a_changed_object_is_left_alone_and_stays_alone_when_the_job_skips_conflicts() {
        let view = tenant_with(user(5, "Finance"));
        let mut policy = BatchPolicy {
            skip_on_conflict: true,
            ..Default::default()
        };
        let (decision, command) = decide_step(&update_step(4, true), &view, &mut policy);
        assert!(command.is_none());
        assert!(decision.conflict);
        assert!(matches!(decision.met, Met::Skipped(ref r) if r.contains("version 4 then, 5 now")));
        // The object's later operations (not checked again) are left alone too.
        let (later, command) = decide_step(&update_step(4, false), &view, &mut policy);
        assert!(command.is_none());
        assert!(matches!(later.met, Met::Skipped(_)));
    }

    #[test]
    fn a_changed_object_is_set_back_and_reported_when_the_job_overwrites() {
        let view = tenant_with(user(5, "Finance"));
        let mut policy = BatchPolicy::default();
        let (decision, command) = decide_step(&update_step(4, true), &view, &mut policy);
        assert!(matches!(command, Some(Command::Update { .. })));
        assert!(decision.conflict);
        assert_eq!(decision.met, Met::Run);
        assert_eq!(decision.before, r#"{"department":"Finance"}"#);
        assert_eq!(decision.after, r#"{"department":"Sales"}"#);
        assert!(policy.skipped_ids.is_empty());
    }

    #[test]
    fn a_step_already_in_place_is_satisfied() {
        let view = tenant_with(user(4, "Sales"));
        let (decision, command) =
            decide_step(&update_step(4, true), &view, &mut BatchPolicy::default());
        assert!(command.is_none());
        assert_eq!(decision.met, Met::Satisfied);
        assert!(!decision.conflict);
    }

    #[test]
    fn steps_and_results_survive_the_wire() {
        let step = update_step(4, true);
        let text = serde_json::to_string(&step).unwrap();
        assert_eq!(serde_json::from_str::<BatchStep>(&text).unwrap(), step);
        let result = StepResult {
            outcome: PlannedOutcome::Refused("no".into()),
            decision: Decision {
                met: Met::Failed("missing".into()),
                failed_links: vec![("g1".into(), "gone".into())],
                ..Default::default()
            },
        };
        let text = serde_json::to_string(&result).unwrap();
        assert_eq!(serde_json::from_str::<StepResult>(&text).unwrap(), result);
    }
}
