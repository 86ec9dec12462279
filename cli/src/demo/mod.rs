//! Deterministic demo tenants: a believable Microsoft Graph-shaped directory from a seed.
//!
//! [`demo_objects`] yields Graph-style JSON objects (`@kind`, `id`, attributes, `@links`)
//! in dependency order: singletons, named locations, users, groups, applications,
//! service principals, app role assignments, permission grants, administrative units,
//! role definitions, role assignments and, last, Conditional Access policies, which refer
//! to almost everything else.
//!
//! Nothing is stored per user: every id and every attribute of object `i` comes from a
//! ChaCha8 stream positioned at `i` (ChaCha has random access), so a group can name its
//! members by index and a tenant of a million users costs constant memory. The same seed
//! and domain always give the same tenant; another seed or domain gives other ids.
//!
//! Modules, one per part of the tenant: `people` (users and the management tree),
//! `groups`, `apps` (applications, service principals, app role assignments and permission
//! grants), `roles` (administrative units, directory roles and their assignments) and
//! `policies` (the singletons, named locations and Conditional Access policies); `ids`
//! holds the streams every id and draw comes from.

mod apps;
mod groups;
mod ids;
mod people;
mod policies;
mod roles;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use backtrack_domain::time::rfc3339_ms;
use serde_json::{json, Map, Value};

use groups::FIRST_GENERIC_GROUP;
use ids::tenant_key;
use people::{DEPARTMENTS, REGIONS};
use policies::{CA_POLICIES, NAMED_LOCATIONS, SINGLETONS};
use roles::CUSTOM_ROLES;

/// Most link targets one generated object carries (the size of one log message).
pub const MAX_LINKS_PER_OBJECT: usize = 5_000;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    pub users: usize,
    pub groups: usize,
    pub apps: usize,
    pub seed: u64,
    /// The tenant's verified domain, e.g. `contoso.com`.
    pub domain: String,
}

impl Default for DemoOptions {
    /// The tenant `backtrack up --demo` seeds: 500 users at contoso.com, seed 42.
    fn default() -> Self {
        Self::for_users(500, 42, "contoso.com")
    }
}

impl DemoOptions {
    /// A tenant of `users` users with as many groups and applications as an organisation of
    /// that size tends to have (one group per 12 users, one app per 50, within bounds).
    pub fn for_users(users: usize, seed: u64, domain: &str) -> Self {
        Self {
            users,
            groups: (users / 12).clamp(FIRST_GENERIC_GROUP + 4, 5_000),
            apps: (users / 50).clamp(8, 500),
            seed,
            domain: domain.to_string(),
        }
    }

    /// The exact number of objects [`demo_objects`] yields for these options.
    pub fn total_objects(&self) -> usize {
        Tenant::new(self).phases().iter().map(|(len, _)| len).sum()
    }
}

/// Graph-style JSON objects in dependency order: every link target is yielded before any
/// object that links to it. Lazy: users and groups are built as they are pulled.
pub fn demo_objects(opts: &DemoOptions) -> impl Iterator<Item = Value> + Send + 'static {
    let tenant = Arc::new(Tenant::new(opts));
    tenant.phases().into_iter().flat_map(move |(len, build)| {
        let tenant = Arc::clone(&tenant);
        (0..len).map(move |i| build(&tenant, i))
    })
}

/// Builds object `i` of one phase.
type Build = fn(&Tenant, usize) -> Value;

/// 2026-01-01T00:00:00Z: the demo's "now"; dates lie before it.
const NOW_MS: i64 = 1_767_225_600_000;
const DAY_MS: i64 = 86_400_000;

/// What every builder needs: the stream key and the tenant's sizes and names. Each
/// submodule adds the builders of its part of the tenant in its own `impl Tenant`.
struct Tenant {
    key: [u8; 32],
    users: usize,
    groups: usize,
    apps: usize,
    managers: usize,
    domain: String,
    initial_domain: String,
    org: String,
}

impl Tenant {
    /// The phases of the stream in dependency order: how many objects, and how to build one.
    fn phases(&self) -> [(usize, Build); 12] {
        [
            (SINGLETONS, Tenant::singleton),
            (NAMED_LOCATIONS, Tenant::named_location),
            (self.users, Tenant::user),
            (self.groups, Tenant::group),
            (self.apps, Tenant::application),
            (1 + self.apps, Tenant::service_principal),
            (
                self.apps * self.assignments_per_app(),
                Tenant::app_role_assignment,
            ),
            (self.apps, Tenant::permission_grant),
            (REGIONS.len(), Tenant::administrative_unit),
            (CUSTOM_ROLES.len(), Tenant::role_definition),
            (self.role_assignments().len(), Tenant::role_assignment),
            (CA_POLICIES, Tenant::conditional_access_policy),
        ]
    }

    fn new(opts: &DemoOptions) -> Self {
        let domain = opts.domain.trim().to_ascii_lowercase();
        let label = domain.split('.').next().unwrap_or("contoso").to_string();
        let mut org = label.clone();
        if let Some(first) = org.get_mut(0..1) {
            first.make_ascii_uppercase();
        }
        Self {
            key: tenant_key(opts.seed, &domain),
            users: opts.users,
            groups: opts.groups,
            apps: opts.apps,
            // The first ~1% of users manage the rest (at least a CEO and 12 department heads).
            managers: opts
                .users
                .min((opts.users / 100).max(1 + DEPARTMENTS.len())),
            initial_domain: format!("{label}.onmicrosoft.com"),
            domain,
            org,
        }
    }

    /// The instant `days_ago` days before the demo's "now".
    fn date(&self, days_ago: i64) -> String {
        rfc3339_ms(NOW_MS - days_ago * DAY_MS)
    }
}

/// Adds the fields of the JSON object `extra` to the JSON object `into`.
fn merge(into: &mut Value, extra: Value) {
    if let (Value::Object(into), Value::Object(extra)) = (into, extra) {
        into.extend(extra);
    }
}

/// `@links` with empty relations left out.
fn links(relations: &[(&str, Vec<String>)]) -> Value {
    let map: Map<String, Value> = relations
        .iter()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(rel, ids)| ((*rel).to_string(), json!(ids)))
        .collect();
    Value::Object(map)
}
