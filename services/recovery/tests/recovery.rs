//! The recovery service in-process with the directory, the snapshotter and the differ,
//! against a real nats-server and real RocksDB: conflicts (overwrite and skip), report-only
//! conditional access, synced objects, links out of scope, one job per tenant, cancel, and
//! the errors bad requests get.
#![allow(clippy::unwrap_used)]

mod support;

use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn objects_changed_since_the_report_are_overwritten_with_a_warning_or_skipped() {
    let s = stack(1000).await;
    s.user(U1, "a@t.test", json!({"department": "Sales"})).await;
    s.user(U2, "b@t.test", json!({"department": "Sales"})).await;
    let backup = s.backup().await;
    s.set(U1, json!({"department": "Legal"})).await;
    s.set(U2, json!({"department": "Legal"})).await;
    let report = s.report(&backup).await;
    // After the report, someone changes U1 again.
    s.set(U1, json!({"jobTitle": "Counsel"})).await;

    // A dry run says which objects changed after the report: what a job would overwrite.
    let dry = s
        .recovery
        .plan(&s.request(Source::Report(report.id.clone())))
        .await
        .unwrap();
    assert_eq!(
        Some(dry.conflict_base),
        report.target.as_ref().map(|t| Some(t.sequence))
    );
    assert_eq!(dry.changed_after_base.into_iter().collect::<Vec<_>>(), [U1]);
    let planned: Vec<&str> = dry.plan.operations.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(planned.len(), 2, "{planned:?}");
    // From a backup there is no report: nothing counts as changed after it.
    let dry = s
        .recovery
        .plan(&s.request(Source::Point(from(&backup))))
        .await
        .unwrap();
    assert!(dry.changed_after_base.is_empty() && dry.conflict_base.is_none());

    let mut request = s.request(Source::Report(report.id.clone()));
    request.on_conflict = v1::OnConflict::Skip;
    let job = s.recovery.start_job(request).await.unwrap();
    let job = s.finished(&job).await;
    assert_eq!(
        job.state,
        v1::RecoveryState::RecoverySuccessfulWithWarnings as i32,
        "{job:?}"
    );
    assert_eq!(job.skipped, 1, "{job:?}");
    assert_eq!(job.residual, 1, "{job:?}");
    assert_eq!(job.residual_ids, [U1], "{job:?}");
    assert_eq!(s.attribute(U1, "department").await, Some(json!("Legal")));
    assert_eq!(s.attribute(U2, "department").await, Some(json!("Sales")));
    let failures = s.recovery.failures("t", &job.id).await.unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(
        (failures[0].id.as_str(), failures[0].outcome.as_str()),
        (U1, "skipped")
    );
    assert!(failures[0].reason.contains("changed since"), "{failures:?}");

    // The default sets it back anyway, and says so.
    let job = s
        .recovery
        .start_job(s.request(Source::Report(report.id.clone())))
        .await
        .unwrap();
    let job = s.finished(&job).await;
    assert_eq!(job.residual, 0, "{job:?}");
    assert_eq!(job.skipped, 0, "{job:?}");
    assert!(
        job.warnings.iter().any(|w| w.contains("set back anyway")),
        "{job:?}"
    );
    assert_eq!(s.attribute(U1, "department").await, Some(json!("Sales")));
    assert_eq!(s.attribute(U1, "jobTitle").await, None);
    let failures = s.recovery.failures("t", &job.id).await.unwrap();
    assert!(failures
        .iter()
        .any(|f| f.id == U1 && f.outcome == "overwritten"));
}

#[tokio::test(flavor = "multi_thread")]
async fn report_only_policies_synced_objects_and_links_out_of_scope() {
    let s = stack(1000).await;
    s.create(
        ObjectKind::ConditionalAccessPolicy,
        P1,
        json!({"displayName": "MFA", "state": "enabled",
            "conditions": {"users": {"includeUsers": ["All"]}}}),
        vec![],
    )
    .await;
    s.user(
        U1,
        "a@t.test",
        json!({"onPremisesSyncEnabled": true, "department": "Sales"}),
    )
    .await;
    s.user(U2, "b@t.test", json!({})).await;
    s.create(
        ObjectKind::Group,
        G1,
        json!({"displayName": "G"}),
        vec![Link::new("members", U2)],
    )
    .await;
    let backup = s.backup().await;
    s.run(Command::SoftDelete { id: P1.into() }).await;
    s.set(U1, json!({"department": "Legal"})).await;
    s.run(Command::SoftDelete { id: U2.into() }).await;
    s.run(Command::HardDelete { id: U2.into() }).await;

    // Only the group: its member is gone and outside the scope, so that link fails.
    let mut request = s.request(Source::Point(from(&backup)));
    request.ids = vec![G1.into()];
    let job = s
        .finished(&s.recovery.start_job(request).await.unwrap())
        .await;
    assert_eq!(job.failed, 1, "{job:?}");
    assert_eq!(job.residual, 1, "{job:?}");
    let failures = s.recovery.failures("t", &job.id).await.unwrap();
    assert!(
        failures[0].reason.contains("does not exist now")
            && failures[0].reason.ends_with(&format!(
                "a recovery of both brings the link back: --id {G1} --id {U2}"
            )),
        "{failures:?}"
    );

    // The rest: the policy comes back report-only, the synced user is left alone.
    let mut request = s.request(Source::Point(from(&backup)));
    request.ca_report_only = true;
    let job = s
        .finished(&s.recovery.start_job(request).await.unwrap())
        .await;
    assert_eq!(job.to_enable, vec![P1.to_string()], "{job:?}");
    assert_eq!(job.password_resets, vec![U2.to_string()], "{job:?}");
    assert_eq!(
        s.attribute(P1, "state").await,
        Some(json!("enabledForReportingButNotEnforced"))
    );
    assert_eq!(s.attribute(U1, "department").await, Some(json!("Legal")));
    assert_eq!(job.skipped, 1, "{job:?}");
    let failures = s.recovery.failures("t", &job.id).await.unwrap();
    assert!(failures
        .iter()
        .any(|f| f.id == U1 && f.reason.contains("on-premises")));
    // The purged member is back, with the same id, and in its group again.
    let group = s
        .directory
        .projection()
        .object_with_links("t", G1)
        .unwrap()
        .unwrap();
    assert!(group.links["members"].contains(U2));
    // Residual: the synced user and the report-only state, nothing else.
    assert_eq!(job.residual, 2, "{job:?}");
    let mut residual = job.residual_ids.clone();
    residual.sort();
    let mut expected = [U1.to_string(), P1.to_string()];
    expected.sort();
    assert_eq!(residual, expected, "{job:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_job_per_tenant_and_cancel_keeps_what_was_applied() {
    let s = stack(50).await;
    let backup = s.backup().await;
    let items: Vec<ImportItem> = (0..3000)
        .map(|i| ImportItem {
            kind: ObjectKind::User,
            id: None,
            attributes: attrs(json!({"displayName": format!("U{i}"), "userPrincipalName": format!("u{i}@t.test")})),
            links: vec![],
            mutation_id: None,
        })
        .collect();
    s.directory.import("t", items, &origin()).await.unwrap();
    let job = s
        .recovery
        .start_job(s.request(Source::Point(from(&backup))))
        .await
        .unwrap();
    // The tenant is taken: no second job, no report.
    let second = s
        .recovery
        .start_job(s.request(Source::Point(from(&backup))))
        .await;
    assert!(
        matches!(&second, Err(RecoveryError::Precondition(m)) if m.contains(&job.id)),
        "{second:?}"
    );
    let report = s
        .differ
        .create_report(ReportRequest {
            tenant: "t".into(),
            base: from(&backup),
            target: None,
            scope: Scope::default(),
            requested_by: "test".into(),
        })
        .await;
    assert!(
        matches!(&report, Err(DifferError::Precondition(m)) if m.contains(&job.id)),
        "{report:?}"
    );
    eventually(
        "the job to apply something",
        Duration::from_secs(30),
        || async {
            let j = s.recovery.job("t", &job.id).await.unwrap();
            (j.operations_done > 0).then_some(())
        },
    )
    .await
    .unwrap();
    s.recovery.cancel("t", &job.id, "someone").await.unwrap();
    let done = s.finished(&job).await;
    assert_eq!(
        done.state,
        v1::RecoveryState::RecoveryAbandoned as i32,
        "{done:?}"
    );
    assert_eq!(done.cancelled_by, "someone");
    assert!(done.operations_done < done.operations_total, "{done:?}");
    // What was applied stays: exactly the counted soft deletes happened.
    let live = s.directory.projection().counts("t").unwrap();
    let live_users = live.get(&ObjectKind::User).copied().unwrap_or(0);
    assert_eq!(live_users, 3000 - done.objects_changed, "{done:?}");
    // The tenant is free again.
    s.recovery
        .cancel("t", &job.id, "again")
        .await
        .expect_err("a finished job cannot be cancelled");
    let next = s
        .recovery
        .start_job(s.request(Source::Point(from(&backup))))
        .await
        .unwrap();
    let next = s.finished(&next).await;
    assert_eq!(next.residual, 0, "{next:?}");
    assert_eq!(
        next.objects_changed + done.objects_changed,
        3000,
        "{next:?} {done:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finished_job_hands_the_tenant_on_only_after_storing_its_final_record() {
    use async_nats::jetstream::kv;
    use backtrack_differ::lease;
    use backtrack_recovery::store::{JobStore, LEASES_BUCKET};

    let s = stack(50).await;
    let backup = s.backup().await;
    let js = async_nats::jetstream::new(s.nats.client().await.unwrap());
    let reports = backtrack_differ::jobs::JobStore::open(&js, 1)
        .await
        .unwrap();
    let recoveries = JobStore::open(&js, 1).await.unwrap();
    // Whenever the tenant's lease stops naming a job (deleted, or taken by the next one),
    // that job's final record must already be stored: otherwise a recovery resumer on
    // another replica would see it unfinished and unheld and run it again, and a reader of
    // a report would call it interrupted.
    let mut watch = js
        .get_key_value(LEASES_BUCKET)
        .await
        .unwrap()
        .watch("t")
        .await
        .unwrap();
    let (r, j) = (reports.clone(), recoveries.clone());
    let handovers = tokio::spawn(async move {
        let (mut holder, mut checked, mut unfinished) = (None::<String>, 0, Vec::new());
        while let Some(Ok(entry)) = watch.next().await {
            let value = String::from_utf8_lossy(&entry.value).into_owned();
            let now = (entry.operation == kv::Operation::Put).then_some(value);
            if let Some(before) = holder.take() {
                if !now.as_deref().is_some_and(|v| lease::held_by(v, &before)) {
                    let finished = if let Some(id) = before.strip_prefix("report ") {
                        let report = r.report("t", id).await.unwrap().unwrap();
                        report.state != v1::JobState::Initialized as i32
                            && report.state != v1::JobState::Calculating as i32
                    } else {
                        let id = before.split(' ').nth(1).unwrap();
                        let job = j.job("t", id).await.unwrap().unwrap();
                        backtrack_recovery::runner::is_finished(job.state)
                    };
                    checked += 1;
                    if !finished {
                        unfinished.push(before);
                    }
                }
            }
            holder = now.map(|v| v.strip_suffix(lease::FINISHING).unwrap_or(&v).to_string());
            if checked == 6 {
                break;
            }
        }
        (checked, unfinished)
    });
    // Recovery, report, recovery, ...: each started the moment the last is seen finished.
    for (n, id) in [U1, U2, G1].into_iter().enumerate() {
        s.user(id, &format!("u{n}@t.test"), json!({})).await;
        let job = s
            .recovery
            .start_job(s.request(Source::Point(from(&backup))))
            .await
            .unwrap();
        let done = s.finished(&job).await;
        assert_eq!(done.objects_changed, 1, "{done:?}");
        assert_eq!(s.report(&backup).await.changed, 0);
    }
    let (checked, unfinished) = tokio::time::timeout(Duration::from_secs(20), handovers)
        .await
        .expect("every job's lease to go")
        .unwrap();
    assert_eq!(checked, 6);
    assert!(
        unfinished.is_empty(),
        "leases gone before the final record: {unfinished:?}"
    );

    // A job whose runner marked its lease but has not stored its final record yet is not
    // resumed by another replica; another job, though, may have the lease at once.
    let x = "00000000-0000-7000-8000-0000000000e1".to_string();
    let stuck = v1::RecoveryJob {
        id: x.clone(),
        tenant: "t".into(),
        state: v1::RecoveryState::RecoveryInitialized as i32,
        ..Default::default()
    };
    recoveries.put_job(&stuck).await.unwrap();
    let value = format!("recovery {x} (runner a)");
    let stale_after = Duration::from_secs(60);
    recoveries
        .acquire("t", &value, &format!("recovery {x}"), stale_after)
        .await
        .unwrap()
        .unwrap();
    assert!(recoveries.mark_finishing("t", &value).await.is_some());
    assert_eq!(s.recovery.resume_interrupted().await.unwrap(), 0);
    recoveries
        .acquire("t", "recovery y (runner b)", "recovery y", stale_after)
        .await
        .unwrap()
        .expect("a marked lease is free for another job");
    assert_eq!(
        recoveries
            .acquire("t", "recovery z (runner c)", "recovery z", stale_after)
            .await
            .unwrap(),
        Err("recovery y (runner b)".to_string())
    );
    recoveries
        .put_job(&v1::RecoveryJob {
            state: v1::RecoveryState::RecoveryFailed as i32,
            ..stuck
        })
        .await
        .unwrap();
    recoveries.release("t").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_precise_errors() {
    let s = stack(1000).await;
    s.user(U1, "a@t.test", json!({})).await;
    let backup = s.backup().await;
    let missing = "00000000-0000-7000-8000-00000000dead";
    let err = s
        .recovery
        .start_job(s.request(Source::Report(missing.into())))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RecoveryError::Differ(DifferError::NotFound(_))),
        "{err:?}"
    );
    let err = s
        .recovery
        .start_job(s.request(Source::Point(v1::Point { point: None })))
        .await
        .unwrap_err();
    assert!(matches!(err, RecoveryError::Invalid(_)), "{err:?}");
    let mut bad_tenant = s.request(Source::Point(from(&backup)));
    bad_tenant.tenant = "Not A Tenant".into();
    let err = s.recovery.start_job(bad_tenant).await.unwrap_err();
    assert!(matches!(err, RecoveryError::Invalid(_)), "{err:?}");
    let err = s.recovery.job("t", missing).await.unwrap_err();
    assert!(matches!(err, RecoveryError::NotFound(_)), "{err:?}");
    let err = s.recovery.undo("t", missing, "x").await.unwrap_err();
    assert!(matches!(err, RecoveryError::NotFound(_)), "{err:?}");
    // A report over users only cannot recover groups.
    let report = s
        .differ
        .create_report(ReportRequest {
            tenant: "t".into(),
            base: from(&backup),
            target: None,
            scope: Scope {
                kinds: vec![ObjectKind::User],
                ids: vec![],
                ..Scope::default()
            },
            requested_by: "test".into(),
        })
        .await
        .unwrap();
    eventually("the report to finish", Duration::from_secs(20), || async {
        let r = s.differ.report("t", &report.id).await.unwrap();
        (r.state == v1::JobState::Successful as i32).then_some(())
    })
    .await
    .unwrap();
    let mut request = s.request(Source::Report(report.id.clone()));
    request.kinds = vec![ObjectKind::Group];
    let err = s.recovery.start_job(request).await.unwrap_err();
    assert!(
        matches!(err, RecoveryError::Invalid(ref m) if m.contains("outside")),
        "{err:?}"
    );
    let status: tonic::Status = err.into();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread")]
async fn links_to_a_purged_synced_member_are_left_out_with_a_warning_not_failed() {
    let s = stack(1000).await;
    s.user(U1, "a@t.test", json!({"onPremisesSyncEnabled": true}))
        .await;
    s.user(U2, "b@t.test", json!({})).await;
    s.create(
        ObjectKind::Group,
        G1,
        json!({"displayName": "G"}),
        vec![Link::new("members", U1), Link::new("members", U2)],
    )
    .await;
    let backup = s.backup().await;
    for id in [U1, U2] {
        s.run(Command::SoftDelete { id: id.into() }).await;
        s.run(Command::HardDelete { id: id.into() }).await;
    }

    let job = s.recover_whole_tenant_to(&backup).await;
    assert_eq!(job.failed, 0, "{job:?}");
    assert_eq!(job.skipped, 1, "{job:?}");
    assert!(
        job.warnings
            .iter()
            .any(|w| w.contains(G1) && w.contains("link 'members' to a@t.test")),
        "{job:?}"
    );
    let group = s
        .directory
        .projection()
        .object_with_links("t", G1)
        .unwrap()
        .unwrap();
    assert_eq!(
        group.links["members"].iter().collect::<Vec<_>>(),
        vec![U2],
        "the cloud member is back, the synced one is not"
    );
    let mut residual = job.residual_ids.clone();
    residual.sort();
    assert_eq!(residual, vec![U1.to_string(), G1.to_string()], "{job:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_added_location_a_changed_policy_names_is_deleted_after_the_policy_is_set_back() {
    const L1: &str = "00000000-0000-4000-8000-0000000000b1";
    let s = stack(1000).await;
    let conditions = |locations: Value| json!({"conditions": {"users": {"includeUsers": ["All"]}, "locations": locations}});
    let mut policy = attrs(json!({"displayName": "Block outside", "state": "enabled"}));
    policy.extend(attrs(conditions(json!({"includeLocations": ["All"]}))));
    s.create(
        ObjectKind::ConditionalAccessPolicy,
        P1,
        Value::Object(policy),
        vec![],
    )
    .await;
    let backup = s.backup().await;
    // Since the backup: a location added and excluded from the policy.
    s.create(
        ObjectKind::NamedLocation,
        L1,
        json!({"displayName": "Rogue", "@odata.type": "#microsoft.graph.ipNamedLocation"}),
        vec![],
    )
    .await;
    s.set(
        P1,
        conditions(json!({"includeLocations": ["All"], "excludeLocations": [L1]})),
    )
    .await;
    // Deleting the location now is refused: the policy names it.
    let refused = s
        .directory
        .execute("t", Command::SoftDelete { id: L1.into() }, None, &origin())
        .await;
    assert!(refused.is_err_and(|e| e.to_string().contains("is used by conditionalAccessPolicy")),);

    let job = s.recover_whole_tenant_to(&backup).await;
    assert_eq!((job.failed, job.residual), (0, 0), "{job:?}");
    assert_eq!(
        s.attribute(P1, "conditions").await.unwrap()["locations"],
        json!({"includeLocations": ["All"]})
    );
    let location = s.directory.projection().object("t", L1).unwrap().unwrap();
    assert!(
        location.is_deleted(),
        "the added location is in the recycle bin"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_point_before_the_tenant_was_created_is_refused_and_its_creation_empties_it() {
    let s = stack(1000).await;
    s.user(U1, "a@t.test", json!({})).await;
    let before = s.snapshotter.catch_up().await.unwrap();
    s.directory
        .create_tenant("late", "Late", &origin())
        .await
        .unwrap();
    s.directory
        .execute(
            "late",
            Command::Create {
                kind: ObjectKind::User,
                id: U2.into(),
                attributes: attrs(json!({"displayName": "B", "userPrincipalName": "b@late.test"})),
                links: vec![],
            },
            None,
            &origin(),
        )
        .await
        .unwrap();
    let last = s.snapshotter.catch_up().await.unwrap();
    let created = before + 1;
    let at = |point: v1::point::Point| RecoveryRequest {
        tenant: "late".into(),
        ..s.request(Source::Point(v1::Point { point: Some(point) }))
    };

    // The last sequence before the creation, and an instant before the log began.
    for point in [
        v1::point::Point::Sequence(before),
        v1::point::Point::TimeMs(1),
    ] {
        let err = s.recovery.plan(&at(point.clone())).await.unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("(sequence {created})"))
                && message.contains(&format!("--from {created}")),
            "{point:?}: {message}"
        );
        let status: tonic::Status = err.into();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        let err = s.recovery.start_job(at(point)).await.unwrap_err();
        assert!(matches!(err, RecoveryError::Precondition(_)), "{err:?}");
    }
    assert!(s.recovery.jobs("late").await.unwrap().is_empty());
    assert_eq!(
        s.snapshotter.catch_up().await.unwrap(),
        last,
        "nothing appended"
    );

    // At its creation the tenant was there and empty: the plan takes out what came after.
    let plan = s
        .recovery
        .plan(&at(v1::point::Point::Sequence(created)))
        .await
        .unwrap()
        .plan;
    let ids: Vec<&str> = plan.operations.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, [U2]);
    // Another tenant's points are its own: `t` existed at `before`.
    let plan = s
        .recovery
        .plan(&s.request(Source::Point(v1::Point {
            point: Some(v1::point::Point::Sequence(before)),
        })))
        .await
        .unwrap()
        .plan;
    assert!(plan.operations.is_empty(), "{:?}", plan.operations);
}
