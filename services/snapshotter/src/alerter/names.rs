//! Alerted objects named for people, from the time-travel store: an object by its display
//! name at a point of the log, a role assignment as `<role> → <principal>` with what its
//! creation did in words (the rules see only ids).

use backtrack_domain::alerts::Alert;
use backtrack_domain::roles::Assignment;
use backtrack_domain::ObjectKind;
use backtrack_store::TimeTravelStore;

/// How an object reads to people at a point: its name (empty when unknown) and, for a
/// role assignment, what its creation did (`privileged role … assigned to …`).
struct Named {
    name: String,
    assigned: Option<String>,
}

/// `kind` `id` of `tenant` as it was at `sequence`.
fn named(store: &TimeTravelStore, tenant: &str, kind: &str, id: &str, sequence: u64) -> Named {
    let name_at = |id: &str| -> Option<String> {
        let object = store
            .object_at_without_links(tenant, id, sequence)
            .ok()
            .flatten()?;
        object.display_name().map(str::to_string)
    };
    if kind != ObjectKind::RoleAssignment.as_str() {
        return Named {
            name: name_at(id).unwrap_or_default(),
            assigned: None,
        };
    }
    let assignment = store
        .object_at_without_links(tenant, id, sequence)
        .ok()
        .flatten();
    let Some(assignment) = assignment else {
        return Named {
            name: String::new(),
            assigned: None,
        };
    };
    let id_of = |name: &str| -> &str {
        assignment
            .attributes
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    };
    let (role_id, principal_id) = (id_of("roleDefinitionId"), id_of("principalId"));
    let (role_name, principal_name) = (name_at(role_id), name_at(principal_id));
    let assignment = Assignment {
        role_id,
        role_name: role_name.as_deref(),
        principal_id,
        principal_name: principal_name.as_deref(),
    };
    Named {
        name: assignment.label(),
        assigned: Some(assignment.assigned()),
    }
}

/// `named` at the first of `points` where the object has a name.
fn first_named(
    store: &TimeTravelStore,
    tenant: &str,
    kind: &str,
    id: &str,
    points: [u64; 2],
) -> Named {
    let first = named(store, tenant, kind, id, points[0]);
    if first.name.is_empty() {
        named(store, tenant, kind, id, points[1])
    } else {
        first
    }
}

/// The name of each alert's object as it was just before the change (at the change, for
/// one it created), empty when unknown; and its `what`. A role assignment is named by its
/// role and principal, as it was made, and its `what` names them too.
pub(super) fn of_raised(
    store: &TimeTravelStore,
    alerts: &[(String, Alert)],
) -> Vec<(String, String)> {
    alerts
        .iter()
        .map(|(tenant, alert)| {
            let Some(object) = &alert.object else {
                return (String::new(), alert.what.clone());
            };
            let s = alert.sequence;
            let points = if object.kind == ObjectKind::RoleAssignment.as_str() {
                [s, s]
            } else {
                [s.saturating_sub(1), s]
            };
            let n = first_named(store, tenant, &object.kind, &object.id, points);
            let what = n.assigned.unwrap_or_else(|| alert.what.clone());
            (n.name, what)
        })
        .collect()
}

/// The name of each object (tenant, kind, id) whose alert a change at the sequence set
/// back: as it is after that change (a restored policy), else just before it (a deleted
/// role assignment, named by role and principal).
pub(super) fn of_set_back(
    store: &TimeTravelStore,
    objects: &[(String, String, String, u64)],
) -> Vec<String> {
    objects
        .iter()
        .map(|(tenant, kind, id, s)| {
            let points = if kind == ObjectKind::RoleAssignment.as_str() {
                [s.saturating_sub(1), *s]
            } else {
                [*s, s.saturating_sub(1)]
            };
            first_named(store, tenant, kind, id, points).name
        })
        .collect()
}
