//! Recovering only what some actors changed (`changed_by`): their attribute, link and
//! lifecycle changes go back, everyone else's stay (in the same objects too); a later
//! change by someone else to the same thing is set back with a note, or left with skip;
//! the job is undone by what it changed alone.
#![allow(clippy::unwrap_used)]

mod support;

use backtrack_domain::recovery::Action;
use support::*;

const U3: &str = "00000000-0000-4000-8000-000000000003";
const MALLORY: &str = "mallory@t.test";
const ALICE: &str = "alice@t.test";

fn members(s: &Stack, group: &str) -> Vec<String> {
    let g = s
        .directory
        .projection()
        .object_with_links("t", group)
        .unwrap()
        .unwrap();
    g.links
        .get("members")
        .map(|m| m.iter().cloned().collect())
        .unwrap_or_default()
}

fn deleted(s: &Stack, id: &str) -> Option<bool> {
    s.directory
        .projection()
        .object("t", id)
        .unwrap()
        .map(|o| o.is_deleted())
}

fn update(id: &str, set: Value) -> Command {
    Command::Update {
        id: id.into(),
        set: set.as_object().cloned().unwrap(),
        unset: vec![],
    }
}

fn link(id: &str, add: bool, target: &str) -> Command {
    let (id, relation, targets) = (id.into(), "members".into(), vec![target.into()]);
    if add {
        Command::AddLinks {
            id,
            relation,
            targets,
        }
    } else {
        Command::RemoveLinks {
            id,
            relation,
            targets,
        }
    }
}

/// U1 and U2, G1 holding U1; a backup; then mallory's incident and alice's work around it.
async fn incident(s: &Stack) -> String {
    s.user(
        U1,
        "a@t.test",
        json!({"department": "Sales", "jobTitle": "Rep"}),
    )
    .await;
    s.user(U2, "b@t.test", json!({})).await;
    s.create(
        ObjectKind::Group,
        G1,
        json!({"displayName": "G1"}),
        vec![Link::new("members", U1)],
    )
    .await;
    let backup = s.backup().await;
    s.run_as(ALICE, update(U1, json!({"jobTitle": "Senior Rep"})))
        .await;
    s.run_as(
        MALLORY,
        update(U1, json!({"department": "Hacked", "jobTitle": "CEO"})),
    )
    .await;
    s.run_as(MALLORY, link(G1, true, U2)).await;
    s.run_as(MALLORY, link(G1, false, U1)).await;
    s.run_as(MALLORY, Command::SoftDelete { id: U2.into() })
        .await;
    s.run_as(
        MALLORY,
        Command::Create {
            kind: ObjectKind::User,
            id: U3.into(),
            attributes: json!({"displayName": "backdoor", "userPrincipalName": "x@t.test"})
                .as_object()
                .cloned()
                .unwrap(),
            links: vec![],
        },
    )
    .await;
    s.run_as(
        ALICE,
        update(U1, json!({"displayName": "Adele", "jobTitle": "Lead"})),
    )
    .await;
    s.run_as(ALICE, update(G1, json!({"description": "the sales team"})))
        .await;
    backup
}

fn by_mallory(s: &Stack, backup: &str) -> RecoveryRequest {
    let mut request = s.request(Source::Point(from(backup)));
    request.changed_by = vec![MALLORY.into()];
    request
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_actors_changes_go_back_and_the_job_is_undone_by_its_own_changes() {
    let s = stack(1000).await;
    let backup = incident(&s).await;

    let dry = s.recovery.plan(&by_mallory(&s, &backup)).await.unwrap();
    assert_eq!(dry.authors.actors.iter().collect::<Vec<_>>(), [MALLORY]);
    let u1: Vec<&Action> = dry
        .plan
        .operations
        .iter()
        .filter(|o| o.id == U1)
        .map(|o| &o.action)
        .collect();
    let Some(Action::SetAttributes { set, unset }) = u1.first() else {
        panic!("{u1:?}");
    };
    // Mallory's department and title go back to what mallory found; alice's display name
    // is not touched.
    assert_eq!(
        Value::Object(set.clone()),
        json!({"department": "Sales", "jobTitle": "Senior Rep"})
    );
    assert!(unset.is_empty() && u1.len() == 1, "{u1:?}");
    let note = dry.plan.notes.iter().find(|n| n.id == U1).unwrap();
    assert!(
        note.reason.contains("jobTitle (by alice@t.test)") && note.reason.contains("set back"),
        "{}",
        note.reason
    );
    assert!(dry.changed_after_base.contains(U1));
    assert!(!dry.changed_after_base.contains(G1));
    // With skip, alice's later title stays and nothing else changes in the plan of U1.
    let mut skip = by_mallory(&s, &backup);
    skip.on_conflict = v1::OnConflict::Skip;
    let dry_skip = s.recovery.plan(&skip).await.unwrap();
    let set_skip = dry_skip
        .plan
        .operations
        .iter()
        .find_map(|o| match &o.action {
            Action::SetAttributes { set, .. } if o.id == U1 => Some(set.clone()),
            _ => None,
        });
    assert_eq!(
        set_skip.map(Value::Object),
        Some(json!({"department": "Sales"}))
    );

    let job = s.recovery.start_job(by_mallory(&s, &backup)).await.unwrap();
    let scope = job.scope.clone().unwrap();
    assert_eq!(scope.changed_by, [MALLORY]);
    assert!(scope.ids.is_empty() && scope.kinds.is_empty());
    let job = s.finished(&job).await;
    assert_eq!(job.failed, 0, "{job:?}");
    assert_eq!(job.residual, 0, "{:?}", job.residual_ids);
    assert!(
        job.warnings.iter().any(|w| w.contains("alice@t.test")),
        "{:?}",
        job.warnings
    );
    // `recovery failed` lists the conflict too.
    let failures = s.recovery.failures("t", &job.id).await.unwrap();
    let conflict: Vec<(&str, &str)> = failures
        .iter()
        .filter(|f| f.outcome == "conflict")
        .map(|f| (f.id.as_str(), f.action.as_str()))
        .collect();
    assert_eq!(conflict, [(U1, "setBack")], "{failures:?}");
    assert_eq!(s.attribute(U1, "department").await, Some(json!("Sales")));
    assert_eq!(s.attribute(U1, "jobTitle").await, Some(json!("Senior Rep")));
    assert_eq!(s.attribute(U1, "displayName").await, Some(json!("Adele")));
    assert_eq!(members(&s, G1), [U1]);
    assert_eq!(
        s.attribute(G1, "description").await,
        Some(json!("the sales team"))
    );
    assert_eq!(deleted(&s, U2), Some(false), "mallory's soft delete undone");
    assert_eq!(deleted(&s, U3), Some(true), "mallory's user removed");

    // Alice renames U1 again; undoing the job sets back only what the job changed.
    s.run_as(ALICE, update(U1, json!({"displayName": "Adele V."})))
        .await;
    let undo_plan = s
        .recovery
        .plan(&Recovery::undo_request("t", &job.id, "test"))
        .await
        .unwrap();
    assert_eq!(undo_plan.authors.job.as_deref(), Some(job.id.as_str()));
    assert!(
        undo_plan.conflict_base.is_none() && undo_plan.changed_after_base.is_empty(),
        "{undo_plan:?}"
    );
    let undo = s.recovery.undo("t", &job.id, "test").await.unwrap();
    assert_eq!(undo.scope.clone().unwrap().changes_of_job, job.id);
    let undo = s.finished(&undo).await;
    assert_eq!((undo.failed, undo.residual), (0, 0), "{undo:?}");
    assert_eq!(s.attribute(U1, "department").await, Some(json!("Hacked")));
    assert_eq!(
        s.attribute(U1, "displayName").await,
        Some(json!("Adele V."))
    );
    assert_eq!(members(&s, G1), [U2]);
    assert_eq!(deleted(&s, U3), Some(false));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_actor_who_changed_nothing_plans_nothing_and_a_report_source_is_refused() {
    let s = stack(1000).await;
    let backup = incident(&s).await;
    let mut request = by_mallory(&s, &backup);
    request.changed_by = vec!["nobody@t.test".into()];
    let dry = s.recovery.plan(&request).await.unwrap();
    assert!(dry.plan.operations.is_empty(), "{:?}", dry.plan.operations);

    let report = s.report(&backup).await;
    let mut request = s.request(Source::Report(report.id));
    request.changed_by = vec![MALLORY.into()];
    match s.recovery.plan(&request).await {
        Err(RecoveryError::Invalid(m)) => assert!(m.contains("--from"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_report_of_one_actors_changes_shows_them_alone_and_a_recovery_from_it_sets_them_back() {
    let s = stack(1000).await;
    let backup = incident(&s).await;
    let scope = Scope {
        changed_by: vec![MALLORY.into()],
        ..Scope::default()
    };
    let report = s.report_over(&backup, scope).await;
    assert_eq!(report.scope.clone().unwrap().changed_by, [MALLORY]);
    let (_, items) = s.differ.items("t", &report.id).await.unwrap();
    let item = |id: &str| items.iter().find(|i| i["objectId"] == id).unwrap();
    let paths = |id: &str| -> Vec<(String, Value, Value)> {
        item(id)["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let path = a["path"].as_str().unwrap().to_string();
                (path, a["base"].clone(), a["target"].clone())
            })
            .collect()
    };
    // Mallory's changes to U1 as they stand now (alice set the title again later); alice's
    // own rename is not there.
    assert_eq!(
        paths(U1),
        [
            ("department".into(), json!("Sales"), json!("Hacked")),
            ("jobTitle".into(), json!("Senior Rep"), json!("Lead")),
        ]
    );
    assert!(paths(G1).is_empty(), "alice's description is not mallory's");
    let links: Vec<(String, String)> = item(G1)["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let target = l["targetId"].as_str().unwrap().to_string();
            (target, l["change"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(
        links,
        [(U1.into(), "removed".into()), (U2.into(), "added".into())]
    );
    assert_eq!(item(U2)["changeType"], "softDeleted");
    assert_eq!(item(U3)["changeType"], "added");
    assert_eq!(report.changed, 4);

    let from_report = s
        .recovery
        .plan(&s.request(Source::Report(report.id.clone())))
        .await
        .unwrap();
    assert_eq!(
        from_report.authors.actors.iter().collect::<Vec<_>>(),
        [MALLORY]
    );
    let job = s
        .recovery
        .start_job(s.request(Source::Report(report.id.clone())))
        .await
        .unwrap();
    assert_eq!(job.scope.clone().unwrap().changed_by, [MALLORY]);
    let job = s.finished(&job).await;
    assert_eq!((job.failed, job.residual), (0, 0), "{job:?}");
    assert_eq!(s.attribute(U1, "department").await, Some(json!("Sales")));
    assert_eq!(s.attribute(U1, "displayName").await, Some(json!("Adele")));
    assert_eq!(members(&s, G1), [U1]);
    assert_eq!(deleted(&s, U3), Some(true));
}
