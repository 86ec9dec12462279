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

use std::collections::BTreeSet;
use std::sync::Arc;

use backtrack_domain::time::rfc3339_ms;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use uuid::{Builder, Uuid};

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

const SINGLETONS: usize = 2;
const NAMED_LOCATIONS: usize = 4;
const CA_POLICIES: usize = 9;
/// Users scanned at most when a group or unit collects members by attribute.
const SCAN_LIMIT: usize = 100_000;
/// Tenants this large get two emergency-access ("break glass") accounts at the end.
const EMERGENCY_MIN_USERS: usize = 100;
/// 2026-01-01T00:00:00Z: the demo's "now"; dates lie before it.
const NOW_MS: i64 = 1_767_225_600_000;
const DAY_MS: i64 = 86_400_000;

const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
const MICROSOFT_TENANT_ID: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";
const SCOPE_USER_READ: &str = "e1fe6dd8-ba31-4d61-89e7-88639da4683d";
const SCOPE_MAIL_READ: &str = "570282fd-fa5b-430d-a7fd-fc8dc98a9dca";
const ROLE_USER_READ_ALL: &str = "df021288-bdef-4463-88db-98f22de89214";
const ROLE_GROUP_READ_ALL: &str = "5b567255-7703-4780-807c-7be8301ae99b";
const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";
const USER_ADMINISTRATOR: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";
const CONDITIONAL_ACCESS_ADMINISTRATOR: &str = "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9";
const SECURITY_READER: &str = "5d6b6bb7-de71-4623-b4af-96380a352509";
/// Built-in roles that CA001 protects with MFA.
#[rustfmt::skip]
const ADMIN_ROLES: [&str; 8] = [
    GLOBAL_ADMINISTRATOR,
    USER_ADMINISTRATOR,
    CONDITIONAL_ACCESS_ADMINISTRATOR,
    "194ae4cb-b126-40b2-bd5b-6091b380977d", // Security Administrator
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", // Application Administrator
    "158c047a-c907-4556-b7ef-446551a6b5f7", // Cloud Application Administrator
    "729827e3-9c14-49f7-bb1b-9608f156bbb8", // Helpdesk Administrator
    "e8611ab8-c189-46e8-94e1-60213ab1f814", // Privileged Role Administrator
];

// Independent ChaCha streams, one per use, so adding a draw in one never shifts another.
const S_USER_ID: u64 = 1;
const S_PERSON: u64 = 2;
const S_GROUP_ID: u64 = 3;
const S_GROUP: u64 = 4;
const S_APP_ID: u64 = 5;
const S_APP: u64 = 6;
const S_SP_ID: u64 = 7;
const S_ASSIGNMENT: u64 = 8;
const S_MISC_ID: u64 = 9;
// Ids from S_MISC_ID, by index.
const MISC_TENANT: usize = 0;
const MISC_LOCATION: usize = 10;
const MISC_UNIT: usize = 20;
const MISC_ROLE: usize = 30;
const MISC_POLICY: usize = 40;

#[rustfmt::skip]
const GIVEN_NAMES: [&str; 60] = [
    "Adele", "Alex", "Allan", "Ben", "Cameron", "Christie", "Debra", "Delia", "Diego", "Emily",
    "Enrico", "Gerhart", "Grady", "Henrietta", "Irvin", "Isaiah", "Johanna", "Joni", "Lee",
    "Lidia", "Lynne", "Megan", "Miriam", "Nestor", "Patti", "Pradeep", "Raul", "Sofia", "Tomas",
    "Yuki", "Amara", "Chen", "Fatima", "Hiroshi", "Ingrid", "Jamal", "Kofi", "Lucia", "Mateo",
    "Nadia", "Olga", "Priya", "Quentin", "Rosa", "Samir", "Tanvi", "Ugo", "Vera", "Wei",
    "Ximena", "Yusuf", "Zara", "Aiko", "Bjorn", "Carmen", "Dmitri", "Elif", "Farah", "Gustavo",
    "Hana",
];
#[rustfmt::skip]
const SURNAMES: [&str; 60] = [
    "Vance", "Wilber", "Deyoung", "Walker", "White", "Cline", "Berry", "Dennis", "Soto", "Braun",
    "Gray", "Mueller", "Archie", "Cerrato", "Bell", "Hernandez", "Lauer", "Sherman", "Gu", "Holt",
    "Robbins", "Bowen", "Graham", "Wilke", "Fernandez", "Gupta", "Gonzalez", "Martinez", "Novak",
    "Tanaka", "Okafor", "Li", "Rahman", "Sato", "Larsen", "Jackson", "Mensah", "Rossi", "Silva",
    "Petrova", "Ivanova", "Sharma", "Dubois", "Castillo", "Haddad", "Patel", "Romano",
    "Kowalski", "Zhang", "Torres", "Demir", "Khan", "Nakamura", "Lindqvist", "Alvarez", "Volkov",
    "Yilmaz", "Aziz", "Pereira", "Kim",
];
/// Departments and the job titles of their staff.
#[rustfmt::skip]
const DEPARTMENTS: [(&str, [&str; 4]); 12] = [
    ("Sales", ["Account Executive", "Sales Development Representative", "Sales Operations Analyst", "Solutions Consultant"]),
    ("Marketing", ["Marketing Specialist", "Content Strategist", "Product Marketing Manager", "Campaign Analyst"]),
    ("Engineering", ["Software Engineer", "Senior Software Engineer", "Site Reliability Engineer", "QA Engineer"]),
    ("IT", ["Systems Administrator", "Identity Engineer", "Service Desk Analyst", "Network Engineer"]),
    ("Finance", ["Financial Analyst", "Accountant", "Payroll Specialist", "Controller"]),
    ("Human Resources", ["HR Business Partner", "Recruiter", "Benefits Specialist", "People Operations Coordinator"]),
    ("Legal", ["Corporate Counsel", "Paralegal", "Compliance Analyst", "Contracts Manager"]),
    ("Operations", ["Operations Analyst", "Logistics Coordinator", "Supply Chain Planner", "Facilities Coordinator"]),
    ("Customer Support", ["Support Engineer", "Customer Success Manager", "Support Specialist", "Escalation Engineer"]),
    ("Product", ["Product Manager", "UX Designer", "UX Researcher", "Technical Program Manager"]),
    ("Research", ["Research Scientist", "Data Scientist", "Research Engineer", "Lab Technician"]),
    ("Retail", ["Retail Associate", "Store Manager", "Merchandiser", "Inventory Specialist"]),
];
const SALES: usize = 0;
const ENGINEERING: usize = 2;
const IT: usize = 3;
const HUMAN_RESOURCES: usize = 5;
const LEGAL: usize = 6;

/// An office: city, country code, country, phone prefix, language, region index.
struct Office(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    usize,
);
#[rustfmt::skip]
const OFFICES: [Office; 12] = [
    Office("Seattle", "US", "United States", "+1 206 555 ", "en-US", 0),
    Office("New York", "US", "United States", "+1 212 555 ", "en-US", 0),
    Office("Toronto", "CA", "Canada", "+1 416 555 ", "en-CA", 0),
    Office("Sao Paulo", "BR", "Brazil", "+55 11 5555 ", "pt-BR", 0),
    Office("London", "GB", "United Kingdom", "+44 20 7946 ", "en-GB", 1),
    Office("Dublin", "IE", "Ireland", "+353 1 555 ", "en-IE", 1),
    Office("Berlin", "DE", "Germany", "+49 30 5555 ", "de-DE", 1),
    Office("Paris", "FR", "France", "+33 1 5555 ", "fr-FR", 1),
    Office("Singapore", "SG", "Singapore", "+65 5555 ", "en-SG", 2),
    Office("Sydney", "AU", "Australia", "+61 2 5555 ", "en-AU", 2),
    Office("Tokyo", "JP", "Japan", "+81 3 5555 ", "ja-JP", 2),
    Office("Bengaluru", "IN", "India", "+91 80 5555 ", "en-IN", 2),
];
#[rustfmt::skip]
const REGIONS: [(&str, &str); 3] = [
    ("Americas", "Users in the Seattle, New York, Toronto and Sao Paulo offices"),
    ("Europe, Middle East and Africa", "Users in the London, Dublin, Berlin and Paris offices"),
    ("Asia Pacific", "Users in the Singapore, Sydney, Tokyo and Bengaluru offices"),
];
#[rustfmt::skip]
const PARTNERS: [(&str, &str); 6] = [
    ("fabrikam.com", "Fabrikam"),
    ("northwindtraders.com", "Northwind Traders"),
    ("adventure-works.com", "Adventure Works"),
    ("tailspintoys.com", "Tailspin Toys"),
    ("wingtiptoys.com", "Wingtip Toys"),
    ("litware.com", "Litware"),
];
#[rustfmt::skip]
const APP_NAMES: [&str; 30] = [
    "Expense Portal", "HR Self Service", "Payroll Connector", "CRM Sync", "Contract Vault",
    "Travel Booking", "Service Desk", "Build Pipeline", "Analytics Dashboard", "Learning Hub",
    "Visitor Check-in", "Inventory Tracker", "Marketing Automation", "Partner Portal",
    "Invoice Approval", "Customer Feedback", "Field Service Mobile", "Security Scanner",
    "Document Signing", "Recruiting Tracker", "Badge Access Sync", "Knowledge Base",
    "Release Notes Bot", "Cost Explorer", "Incident Pager", "Benefits Enrollment",
    "Procurement Hub", "Time Tracking", "Sales Forecast", "Data Lake Ingest",
];
#[rustfmt::skip]
const CODENAMES: [&str; 30] = [
    "Falcon", "Aurora", "Cobalt", "Everest", "Nimbus", "Orion", "Sequoia", "Tundra", "Zephyr",
    "Atlas", "Beacon", "Cascade", "Delta", "Ember", "Fjord", "Granite", "Harbor", "Ion",
    "Juniper", "Kestrel", "Lumen", "Meridian", "Nova", "Onyx", "Polaris", "Quartz", "Redwood",
    "Summit", "Tidal", "Vertex",
];
const GRANT_SCOPES: [&str; 4] = [
    "User.Read Mail.Read",
    "User.Read",
    "openid profile offline_access User.Read",
    "User.Read Calendars.Read",
];
/// Custom directory roles: name, description, allowed resource actions.
const CUSTOM_ROLES: [(&str, &str, &[&str]); 2] = [
    (
        "Helpdesk Password Operator",
        "Resets passwords and revokes sessions of non-admin users.",
        &[
            "microsoft.directory/users/password/update",
            "microsoft.directory/users/invalidateAllRefreshTokens",
            "microsoft.directory/users/basic/update",
        ],
    ),
    (
        "Application Registration Reviewer",
        "Reads app registrations and manages their owners and credentials.",
        &[
            "microsoft.directory/applications/allProperties/read",
            "microsoft.directory/applications/owners/update",
            "microsoft.directory/applications/credentials/update",
        ],
    ),
];

// Fixed group slots, the ones policies refer to first, so that even a tenant with a handful
// of groups has them; department d is group FIRST_DEPARTMENT_GROUP + d. Generic groups
// follow from FIRST_GENERIC_GROUP.
const EMERGENCY_GROUP: usize = 0;
const TENANT_ADMINS: usize = 1;
const ALL_GUESTS: usize = 2;
const FIRST_DEPARTMENT_GROUP: usize = 3;
const ALL_EMPLOYEES: usize = FIRST_DEPARTMENT_GROUP + DEPARTMENTS.len();
const FIRST_GENERIC_GROUP: usize = ALL_EMPLOYEES + 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Chief,
    DepartmentHead,
    Manager,
    Staff,
    Guest,
    EmergencyAccess,
}

/// Everything about user `index`, derived from the index alone.
struct Person {
    index: usize,
    role: Role,
    given: &'static str,
    surname: &'static str,
    department: Option<usize>,
    manager: Option<usize>,
    office: &'static Office,
    enabled: bool,
    synced: bool,
    title: usize,
    partner: usize,
    tenure_days: i64,
    extension: u32,
}

impl Person {
    fn nickname(&self) -> String {
        format!("{}.{}{}", self.given, self.surname, self.index).to_ascii_lowercase()
    }

    fn display_name(&self) -> String {
        match self.role {
            Role::EmergencyAccess => format!("Emergency Access {:02}", self.emergency_number()),
            _ => format!("{} {}", self.given, self.surname),
        }
    }

    fn emergency_number(&self) -> usize {
        self.index % 2 + 1
    }
}

/// Kinds of generic groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Department(usize),
    AllEmployees,
    TenantAdmins,
    Emergency,
    Guests,
    Licensing,
    Program,
    Team,
    AppAccess,
    Distribution,
}

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

    /// A generator positioned at item `index` of `stream`; each item owns 2^24 words.
    fn rng(&self, stream: u64, index: usize) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(stream);
        rng.set_word_pos((index as u128) << 24);
        rng
    }

    /// A random (v4) GUID, lower-case and hyphenated, from item `index` of `stream`.
    fn guid(&self, stream: u64, index: usize) -> String {
        let mut bytes = [0u8; 16];
        self.rng(stream, index).fill_bytes(&mut bytes);
        Builder::from_random_bytes(bytes).into_uuid().to_string()
    }

    fn user_id(&self, i: usize) -> String {
        self.guid(S_USER_ID, i)
    }
    fn group_id(&self, g: usize) -> String {
        self.guid(S_GROUP_ID, g)
    }
    fn app_object_id(&self, a: usize) -> String {
        self.guid(S_APP_ID, 4 * a)
    }
    fn app_client_id(&self, a: usize) -> String {
        self.guid(S_APP_ID, 4 * a + 1)
    }
    fn app_role_id(&self, a: usize, role: usize) -> String {
        self.guid(S_APP_ID, 4 * a + 2 + role)
    }
    /// Service principal 0 is Microsoft Graph; 1 + a belongs to application a.
    fn sp_id(&self, s: usize) -> String {
        self.guid(S_SP_ID, s)
    }
    fn misc_id(&self, n: usize) -> String {
        self.guid(S_MISC_ID, n)
    }

    fn user_if(&self, i: usize) -> Option<usize> {
        (i < self.users).then_some(i)
    }
    fn group_if(&self, g: usize) -> Option<String> {
        (g < self.groups).then(|| self.group_id(g))
    }
    fn department_head(&self, d: usize) -> Option<usize> {
        (d + 1 < self.managers).then_some(d + 1)
    }
    fn emergency_users(&self) -> Vec<usize> {
        if self.users >= EMERGENCY_MIN_USERS {
            vec![self.users - 2, self.users - 1]
        } else {
            Vec::new()
        }
    }

    fn date(&self, days_ago: i64) -> String {
        rfc3339_ms(NOW_MS - days_ago * DAY_MS)
    }

    fn person(&self, i: usize) -> Person {
        let mut r = self.rng(S_PERSON, i);
        let given = GIVEN_NAMES[r.random_range(0..GIVEN_NAMES.len())];
        let surname = SURNAMES[r.random_range(0..SURNAMES.len())];
        let office = &OFFICES[r.random_range(0..OFFICES.len())];
        let roll: f64 = r.random();
        let staff_manager = r.random_range(1..self.managers.max(2));
        let role = if self.users >= EMERGENCY_MIN_USERS && i + 2 >= self.users {
            Role::EmergencyAccess
        } else if i == 0 {
            Role::Chief
        } else if i <= DEPARTMENTS.len() && i < self.managers {
            Role::DepartmentHead
        } else if i < self.managers {
            Role::Manager
        } else if roll < 0.02 {
            Role::Guest
        } else {
            Role::Staff
        };
        let (department, manager) = match role {
            Role::DepartmentHead | Role::Manager => {
                // Managers form a tree inside their department, six reports each.
                let (d, position) = ((i - 1) % DEPARTMENTS.len(), (i - 1) / DEPARTMENTS.len());
                let parent = if position == 0 {
                    0
                } else {
                    (position - 1) / 6 * DEPARTMENTS.len() + d + 1
                };
                (Some(d), Some(parent))
            }
            Role::Staff => (
                Some((staff_manager - 1) % DEPARTMENTS.len()),
                Some(staff_manager),
            ),
            Role::Chief | Role::Guest | Role::EmergencyAccess => (None, None),
        };
        Person {
            index: i,
            role,
            given,
            surname,
            department,
            manager,
            office,
            enabled: role != Role::Staff || r.random_bool(0.985),
            synced: matches!(role, Role::Staff | Role::Manager) && r.random_bool(0.1),
            title: r.random_range(0..4),
            partner: r.random_range(0..PARTNERS.len()),
            tenure_days: r.random_range(30..3_000),
            extension: r.random_range(0..10_000),
        }
    }

    /// Users matching `keep` among the first [`SCAN_LIMIT`], at most `cap` of them.
    fn scan_users(&self, cap: usize, keep: impl Fn(&Person) -> bool) -> Vec<usize> {
        (0..self.users.min(SCAN_LIMIT))
            .map(|i| self.person(i))
            .filter(|p| keep(p))
            .map(|p| p.index)
            .take(cap)
            .collect()
    }

    /// `count` distinct users at random.
    fn sample_users(&self, r: &mut ChaCha8Rng, count: usize) -> BTreeSet<usize> {
        sample(r, self.users, count)
    }

    fn singleton(&self, n: usize) -> Value {
        if n == 0 {
            authorization_policy()
        } else {
            authentication_methods_policy()
        }
    }

    fn named_location(&self, n: usize) -> Value {
        let id = self.misc_id(MISC_LOCATION + n);
        let created = self.date(400 - 30 * n as i64);
        let ip = |name: &str, trusted: bool, ranges: &[&str]| {
            let ranges: Vec<Value> = ranges
                .iter()
                .map(|cidr| {
                    let family = if cidr.contains(':') { "iPv6CidrRange" } else { "iPv4CidrRange" };
                    json!({"@odata.type": format!("#microsoft.graph.{family}"), "cidrAddress": cidr})
                })
                .collect();
            json!({
                "@kind": "namedLocation", "id": id,
                "@odata.type": "#microsoft.graph.ipNamedLocation",
                "displayName": name, "isTrusted": trusted, "ipRanges": ranges,
                "createdDateTime": created, "modifiedDateTime": created,
            })
        };
        match n {
            0 => ip("Headquarters", true, &["203.0.113.0/24", "2001:db8:1::/48"]),
            1 => ip("Branch offices", true, &["198.51.100.0/24", "192.0.2.0/25"]),
            2 => ip("Contractor VPN egress", false, &["192.0.2.128/25"]),
            _ => json!({
                "@kind": "namedLocation", "id": id,
                "@odata.type": "#microsoft.graph.countryNamedLocation",
                "displayName": "Blocked countries",
                "countriesAndRegions": ["CU", "IR", "KP", "SY"],
                "countryLookupMethod": "clientIpAddress",
                "includeUnknownCountriesAndRegions": false,
                "createdDateTime": created, "modifiedDateTime": created,
            }),
        }
    }

    fn user(&self, i: usize) -> Value {
        let p = self.person(i);
        let mut o = json!({
            "@kind": "user", "id": self.user_id(i),
            "displayName": p.display_name(), "accountEnabled": p.enabled,
            "createdDateTime": self.date(p.tenure_days),
        });
        let nick = p.nickname();
        let more = match p.role {
            Role::Guest => {
                let (partner_domain, partner) = PARTNERS[p.partner];
                let local = format!("{nick}_{partner_domain}#EXT#");
                json!({
                    "givenName": p.given, "surname": p.surname,
                    "userPrincipalName": format!("{local}@{}", self.initial_domain),
                    "mail": format!("{nick}@{partner_domain}"), "mailNickname": local,
                    "companyName": partner, "userType": "Guest", "externalUserState": "Accepted",
                })
            }
            Role::EmergencyAccess => {
                let nick = format!("breakglass{:02}", p.emergency_number());
                json!({
                    "userPrincipalName": format!("{nick}@{}", self.initial_domain),
                    "mailNickname": nick, "userType": "Member", "usageLocation": "US",
                })
            }
            Role::Chief | Role::DepartmentHead | Role::Manager | Role::Staff => {
                let Office(city, country_code, country, phone, language, _) = p.office;
                let (department, title) = match (p.role, p.department) {
                    (Role::DepartmentHead, Some(d)) => (
                        DEPARTMENTS[d].0,
                        format!("Vice President, {}", DEPARTMENTS[d].0),
                    ),
                    (Role::Manager, Some(d)) => {
                        (DEPARTMENTS[d].0, format!("{} Manager", DEPARTMENTS[d].0))
                    }
                    (_, Some(d)) => (DEPARTMENTS[d].0, DEPARTMENTS[d].1[p.title].to_string()),
                    (_, None) => ("Executive", "Chief Executive Officer".to_string()),
                };
                let (building, room) = (1 + p.extension % 40, 1000 + p.extension % 997);
                let mut member = json!({
                    "givenName": p.given, "surname": p.surname,
                    "userPrincipalName": format!("{nick}@{}", self.domain),
                    "mail": format!("{nick}@{}", self.domain), "mailNickname": nick,
                    "department": department, "jobTitle": title, "companyName": self.org,
                    "employeeId": format!("E{:07}", i + 1),
                    "officeLocation": format!("{city}/{building}-{room}"),
                    "city": city, "country": country, "usageLocation": country_code,
                    "preferredLanguage": language,
                    "businessPhones": [format!("{phone}{:04}", p.extension)],
                    "userType": "Member",
                });
                if p.synced {
                    let sam = format!("{}{}{i}", &p.given[..1], p.surname).to_ascii_lowercase();
                    merge(
                        &mut member,
                        json!({
                            "onPremisesSyncEnabled": true, "onPremisesSamAccountName": sam,
                            "onPremisesDomainName": format!("corp.{}", self.domain),
                            "onPremisesLastSyncDateTime": self.date(0),
                        }),
                    );
                }
                member
            }
        };
        merge(&mut o, more);
        if let Some(m) = p.manager {
            o["@links"] = json!({"manager": [self.user_id(m)]});
        }
        o
    }

    fn group_flavor(&self, g: usize) -> Flavor {
        match g {
            d if (FIRST_DEPARTMENT_GROUP..ALL_EMPLOYEES).contains(&d) => {
                Flavor::Department(d - FIRST_DEPARTMENT_GROUP)
            }
            ALL_EMPLOYEES => Flavor::AllEmployees,
            TENANT_ADMINS => Flavor::TenantAdmins,
            EMERGENCY_GROUP => Flavor::Emergency,
            ALL_GUESTS => Flavor::Guests,
            _ => {
                let k = g - FIRST_GENERIC_GROUP;
                if k % 25 == 24 {
                    Flavor::Licensing
                } else if k % 10 == 9 {
                    Flavor::Program
                } else {
                    match self.rng(S_GROUP, g).random_range(0..10) {
                        0..=4 => Flavor::Team,
                        5..=7 => Flavor::AppAccess,
                        _ => Flavor::Distribution,
                    }
                }
            }
        }
    }

    /// A group's display name and mail nickname, without building its members.
    fn group_name(&self, g: usize) -> (String, String) {
        let codename = CODENAMES[g % CODENAMES.len()];
        let round = g / CODENAMES.len();
        let numbered = |name: String| {
            if round == 0 {
                name
            } else {
                format!("{name} {}", round + 1)
            }
        };
        let name = match self.group_flavor(g) {
            Flavor::Department(d) => format!("{} Department", DEPARTMENTS[d].0),
            Flavor::AllEmployees => "All Employees".into(),
            Flavor::TenantAdmins => "Tenant Administrators".into(),
            Flavor::Emergency => "Emergency Access Accounts".into(),
            Flavor::Guests => "All Guests".into(),
            Flavor::Licensing => format!(
                "Licensing - Microsoft 365 E5 (batch {})",
                (g - FIRST_GENERIC_GROUP) / 25 + 1
            ),
            Flavor::Program => numbered(format!("Program {codename}")),
            Flavor::Team => numbered(format!("Project {codename}")),
            Flavor::AppAccess => {
                format!("App - {} Users", self.app_name(self.app_of_access_group(g)))
            }
            Flavor::Distribution => format!("DL {} Office", OFFICES[g % OFFICES.len()].0),
        };
        let slug: String = name
            .chars()
            .filter_map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' => Some(c.to_ascii_lowercase()),
                ' ' | '-' => Some('-'),
                _ => None,
            })
            .collect();
        let nickname = format!(
            "{}-{g}",
            slug.split('-')
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join("-")
        );
        (name, nickname)
    }

    /// The application an "App - ... Users" group grants access to.
    fn app_of_access_group(&self, g: usize) -> usize {
        g % self.apps.max(1)
    }

    /// The access group of application `a`, if one exists among the first candidates.
    fn access_group_of_app(&self, a: usize) -> Option<usize> {
        (0..)
            .map(|k| a + k * self.apps.max(1))
            .skip_while(|&g| g < FIRST_GENERIC_GROUP)
            .take_while(|&g| g < self.groups)
            .take(64)
            .find(|&g| self.group_flavor(g) == Flavor::AppAccess)
    }

    /// How many members an ordinary group gets: drawn from `range`, at most a third of all users.
    fn group_size(&self, r: &mut ChaCha8Rng, range: std::ops::RangeInclusive<usize>) -> usize {
        r.random_range(range).min(self.users / 3 + 1)
    }

    fn group(&self, g: usize) -> Value {
        let mut r = self.rng(S_GROUP, g);
        // The first draw chose the flavour (`group_flavor`); sizes come after it.
        let _flavor: u32 = r.random_range(0..10);
        let flavor = self.group_flavor(g);
        let (name, nickname) = self.group_name(g);
        let it_head = self.department_head(IT);
        let mut users: Vec<usize> = Vec::new();
        let mut groups: Vec<usize> = Vec::new();
        let mut owners: Vec<usize> = Vec::new();
        let mut o = Map::new();
        let mut security = true;
        let mut unified = false;
        let description = match flavor {
            Flavor::Department(d) => {
                users = self.scan_users(MAX_LINKS_PER_OBJECT, |p| p.department == Some(d));
                owners.extend(self.department_head(d));
                format!("Everyone in {}. Maintained by HR.", DEPARTMENTS[d].0)
            }
            Flavor::AllEmployees => {
                groups = (FIRST_DEPARTMENT_GROUP..ALL_EMPLOYEES).collect();
                users.extend(self.user_if(0));
                owners.extend(it_head);
                "Every employee: nests the department groups.".into()
            }
            Flavor::TenantAdmins => {
                users = (0..10)
                    .map(|p| p * DEPARTMENTS.len() + IT + 1)
                    .filter(|&m| m < self.managers)
                    .collect();
                owners.extend(it_head);
                o.insert("isAssignableToRole".into(), json!(true));
                "IT administrators who may activate directory roles.".into()
            }
            Flavor::Emergency => {
                users = self.emergency_users();
                owners.extend(it_head);
                o.insert("isAssignableToRole".into(), json!(true));
                "Break-glass accounts. Excluded from every Conditional Access policy; alert on any sign-in.".into()
            }
            Flavor::Guests => {
                users = self.scan_users(MAX_LINKS_PER_OBJECT, |p| p.role == Role::Guest);
                o.insert("groupTypes".into(), json!(["DynamicMembership"]));
                o.insert(
                    "membershipRule".into(),
                    json!("(user.userType -eq \"Guest\")"),
                );
                o.insert("membershipRuleProcessingState".into(), json!("On"));
                "All guest users (dynamic membership).".into()
            }
            Flavor::Licensing => {
                let count = r.random_range(1_000..=MAX_LINKS_PER_OBJECT);
                users = self.sample_users(&mut r, count).into_iter().collect();
                owners.extend(it_head);
                "Group-based licensing: members get a Microsoft 365 E5 licence.".into()
            }
            Flavor::Program => {
                // Programs nest earlier team and project groups, never the fixed ones.
                let earlier = g - FIRST_GENERIC_GROUP;
                let nested = r.random_range(2..=4).min(earlier);
                groups = sample(&mut r, earlier, nested)
                    .into_iter()
                    .map(|k| FIRST_GENERIC_GROUP + k)
                    .collect();
                let count = self.group_size(&mut r, 0..=10);
                users = self.sample_users(&mut r, count).into_iter().collect();
                owners = self.sample_users(&mut r, 1).into_iter().collect();
                "Program group: nests the program's team groups.".into()
            }
            Flavor::Team => {
                unified = true;
                security = false;
                let count = self.group_size(&mut r, 5..=80);
                users = self.sample_users(&mut r, count).into_iter().collect();
                let owner_count = r.random_range(1..=2);
                owners = self.sample_users(&mut r, owner_count).into_iter().collect();
                o.insert(
                    "visibility".into(),
                    json!(if r.random_bool(0.7) {
                        "Private"
                    } else {
                        "Public"
                    }),
                );
                if r.random_bool(0.6) {
                    o.insert("resourceProvisioningOptions".into(), json!(["Team"]));
                }
                format!("Workspace of {name}.")
            }
            Flavor::AppAccess => {
                let count = self.group_size(&mut r, 10..=400);
                users = self.sample_users(&mut r, count).into_iter().collect();
                owners = self.sample_users(&mut r, 1).into_iter().collect();
                if r.random_bool(0.2) {
                    o.insert("onPremisesSyncEnabled".into(), json!(true));
                    o.insert(
                        "onPremisesSamAccountName".into(),
                        json!(format!("SG-{nickname}")),
                    );
                }
                "Members may sign in to the application.".into()
            }
            Flavor::Distribution => {
                security = false;
                let count = self.group_size(&mut r, 20..=500);
                users = self.sample_users(&mut r, count).into_iter().collect();
                owners = self.sample_users(&mut r, 1).into_iter().collect();
                "Announcements for the office.".into()
            }
        };
        let mail_enabled = !security || unified;
        o.insert("@kind".into(), json!("group"));
        o.insert("id".into(), json!(self.group_id(g)));
        o.insert("displayName".into(), json!(name));
        o.insert("description".into(), json!(description));
        o.insert("mailNickname".into(), json!(nickname));
        o.insert("securityEnabled".into(), json!(security));
        o.insert("mailEnabled".into(), json!(mail_enabled));
        if unified {
            o.insert("groupTypes".into(), json!(["Unified"]));
        } else if !o.contains_key("groupTypes") {
            o.insert("groupTypes".into(), json!([]));
        }
        if mail_enabled {
            let mail = format!("{nickname}@{}", self.domain);
            o.insert("proxyAddresses".into(), json!([format!("SMTP:{mail}")]));
            o.insert("mail".into(), json!(mail));
        }
        o.insert(
            "createdDateTime".into(),
            json!(self.date(r.random_range(10..1_500))),
        );
        let mut members: Vec<String> = groups.iter().map(|&m| self.group_id(m)).collect();
        members.extend(users.iter().map(|&u| self.user_id(u)));
        let owners: Vec<String> = owners.iter().map(|&u| self.user_id(u)).collect();
        members.truncate(MAX_LINKS_PER_OBJECT - owners.len());
        o.insert(
            "@links".into(),
            links(&[("members", members), ("owners", owners)]),
        );
        Value::Object(o)
    }

    fn app_name(&self, a: usize) -> String {
        let round = a / APP_NAMES.len();
        let name = APP_NAMES[a % APP_NAMES.len()];
        if round == 0 {
            name.to_string()
        } else {
            format!("{name} {}", round + 1)
        }
    }

    fn app_slug(&self, a: usize) -> String {
        let name = self.app_name(a).to_ascii_lowercase();
        name.split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    }

    fn app_owners(&self, a: usize) -> Vec<String> {
        let mut r = self.rng(S_APP, 3 * a + 1);
        let count = r.random_range(1..=2);
        self.sample_users(&mut r, count)
            .into_iter()
            .map(|u| self.user_id(u))
            .collect()
    }

    fn app_roles(&self, a: usize) -> Value {
        json!([
            {"allowedMemberTypes": ["User"], "description": "Read access to the application.",
             "displayName": "Reader", "id": self.app_role_id(a, 0), "isEnabled": true, "value": "App.Read"},
            {"allowedMemberTypes": ["User"], "description": "Administers the application.",
             "displayName": "Administrator", "id": self.app_role_id(a, 1), "isEnabled": true, "value": "App.Admin"},
        ])
    }

    fn application(&self, a: usize) -> Value {
        let mut r = self.rng(S_APP, 3 * a);
        let (slug, client_id) = (self.app_slug(a), self.app_client_id(a));
        let site = format!("https://{slug}.{}", self.domain);
        let mut access = vec![json!({"id": SCOPE_USER_READ, "type": "Scope"})];
        if r.random_bool(0.4) {
            access.push(json!({"id": SCOPE_MAIL_READ, "type": "Scope"}));
        }
        let app_permission = [ROLE_USER_READ_ALL, ROLE_GROUP_READ_ALL][a % 2];
        access.push(json!({"id": app_permission, "type": "Role"}));
        let mut redirects = vec![format!("{site}/signin-oidc")];
        if r.random_bool(0.3) {
            redirects.push("https://localhost:5001/signin-oidc".into());
        }
        let created = r.random_range(60..1_200);
        let mut o = json!({
            "@kind": "application",
            "id": self.app_object_id(a),
            "appId": client_id,
            "displayName": self.app_name(a),
            "description": format!("{} line-of-business application.", self.org),
            "signInAudience": if r.random_bool(0.85) { "AzureADMyOrg" } else { "AzureADMultipleOrgs" },
            "identifierUris": [if r.random_bool(0.5) { format!("api://{client_id}") } else { site.clone() }],
            "publisherDomain": self.domain,
            "requiredResourceAccess": [{"resourceAppId": GRAPH_APP_ID, "resourceAccess": access}],
            "web": {
                "redirectUris": redirects,
                "homePageUrl": format!("{site}/"),
                "logoutUrl": format!("{site}/signout-oidc"),
                "implicitGrantSettings": {"enableIdTokenIssuance": r.random_bool(0.3), "enableAccessTokenIssuance": false},
            },
            "appRoles": self.app_roles(a),
            "createdDateTime": self.date(created),
            "@links": {"owners": self.app_owners(a)},
        });
        if r.random_bool(0.6) {
            // Credential metadata only: the secret itself never leaves Graph.
            let hint: String = (0..3)
                .map(|_| {
                    char::from(
                        b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
                            [r.random_range(0..57)],
                    )
                })
                .collect();
            o["passwordCredentials"] = json!([{
                "keyId": Builder::from_random_bytes(r.random()).into_uuid().to_string(),
                "displayName": "CI/CD deployment", "hint": hint,
                "startDateTime": self.date(created), "endDateTime": self.date(created - 730),
            }]);
        }
        if r.random_bool(0.3) {
            let thumbprint: String = (0..20)
                .map(|_| format!("{:02X}", r.random::<u8>()))
                .collect();
            o["keyCredentials"] = json!([{
                "keyId": Builder::from_random_bytes(r.random()).into_uuid().to_string(),
                "type": "AsymmetricX509Cert", "usage": "Verify", "displayName": format!("CN={slug}"),
                "customKeyIdentifier": thumbprint,
                "startDateTime": self.date(created), "endDateTime": self.date(created - 365),
            }]);
        }
        o
    }

    fn service_principal(&self, s: usize) -> Value {
        let Some(a) = s.checked_sub(1) else {
            return json!({
                "@kind": "servicePrincipal", "id": self.sp_id(0),
                "appId": GRAPH_APP_ID, "appDisplayName": "Microsoft Graph", "displayName": "Microsoft Graph",
                "servicePrincipalType": "Application", "publisherName": "Microsoft Services",
                "appOwnerOrganizationId": MICROSOFT_TENANT_ID, "accountEnabled": true,
                "servicePrincipalNames": [GRAPH_APP_ID, "https://graph.microsoft.com", "https://graph.microsoft.com/"],
                "appRoles": [
                    {"allowedMemberTypes": ["Application"], "displayName": "Read all users' full profiles", "id": ROLE_USER_READ_ALL, "isEnabled": true, "value": "User.Read.All"},
                    {"allowedMemberTypes": ["Application"], "displayName": "Read all groups", "id": ROLE_GROUP_READ_ALL, "isEnabled": true, "value": "Group.Read.All"},
                ],
                "oauth2PermissionScopes": [
                    {"id": SCOPE_USER_READ, "type": "User", "value": "User.Read", "isEnabled": true, "adminConsentDisplayName": "Sign in and read user profile"},
                    {"id": SCOPE_MAIL_READ, "type": "User", "value": "Mail.Read", "isEnabled": true, "adminConsentDisplayName": "Read user mail"},
                ],
            });
        };
        let app = self.application(a);
        let mut r = self.rng(S_APP, 3 * a + 2);
        let mut o = json!({
            "@kind": "servicePrincipal", "id": self.sp_id(s),
            "appId": app["appId"], "appDisplayName": app["displayName"], "displayName": app["displayName"],
            "servicePrincipalType": "Application", "publisherName": self.org,
            "appOwnerOrganizationId": self.misc_id(MISC_TENANT), "accountEnabled": true,
            "appRoleAssignmentRequired": r.random_bool(0.5),
            "servicePrincipalNames": [app["appId"].clone(), app["identifierUris"][0].clone()],
            "appRoles": app["appRoles"], "replyUrls": app["web"]["redirectUris"],
            "homepage": app["web"]["homePageUrl"], "signInAudience": app["signInAudience"],
            "tags": ["WindowsAzureActiveDirectoryIntegratedApp"],
            "@links": app["@links"],
        });
        if r.random_bool(0.5) {
            o["loginUrl"] = json!(format!(
                "https://{}.{}/login",
                self.app_slug(a),
                self.domain
            ));
        }
        o
    }

    fn assignments_per_app(&self) -> usize {
        1 + usize::from(self.groups > 0) + usize::from(self.users > 0)
    }

    fn app_role_assignment(&self, j: usize) -> Value {
        let (a, which) = (
            j / self.assignments_per_app(),
            j % self.assignments_per_app(),
        );
        let mut r = self.rng(S_ASSIGNMENT, j);
        let (app_sp, app_name) = (self.sp_id(1 + a), self.app_name(a));
        let (principal, principal_type, principal_name, resource, resource_name, role) =
            match (which, self.groups > 0) {
                (0, _) => (
                    app_sp,
                    "ServicePrincipal",
                    app_name,
                    self.sp_id(0),
                    "Microsoft Graph".to_string(),
                    [ROLE_USER_READ_ALL, ROLE_GROUP_READ_ALL][a % 2].to_string(),
                ),
                (1, true) => {
                    let g = self.access_group_of_app(a).unwrap_or(a % self.groups);
                    (
                        self.group_id(g),
                        "Group",
                        self.group_name(g).0,
                        app_sp,
                        app_name,
                        self.app_role_id(a, 0),
                    )
                }
                _ => {
                    let u = r.random_range(0..self.users);
                    (
                        self.user_id(u),
                        "User",
                        self.person(u).display_name(),
                        app_sp,
                        app_name,
                        self.app_role_id(a, 1),
                    )
                }
            };
        // Graph's ids: the principal's GUID bytes, then 16 more bytes, base64url.
        let mut raw = guid_bytes_le(&principal).to_vec();
        raw.extend(r.random::<[u8; 16]>());
        json!({
            "@kind": "appRoleAssignment", "id": base64url(&raw),
            "principalId": principal, "principalType": principal_type, "principalDisplayName": principal_name,
            "resourceId": resource, "resourceDisplayName": resource_name, "appRoleId": role,
            "createdDateTime": self.date(r.random_range(1..365)),
        })
    }

    fn permission_grant(&self, a: usize) -> Value {
        let (client, resource) = (self.sp_id(1 + a), self.sp_id(0));
        let mut raw = guid_bytes_le(&client).to_vec();
        raw.extend(guid_bytes_le(&resource));
        json!({
            "@kind": "oauth2PermissionGrant", "id": base64url(&raw),
            "clientId": client, "resourceId": resource, "consentType": "AllPrincipals",
            "scope": GRANT_SCOPES[a % GRANT_SCOPES.len()],
        })
    }

    fn administrative_unit(&self, u: usize) -> Value {
        let (name, description) = REGIONS[u];
        let mut members: Vec<String> = self
            .scan_users(1_000, |p| p.department.is_some() && p.office.5 == u)
            .into_iter()
            .map(|i| self.user_id(i))
            .collect();
        members.extend(
            (0..5)
                .map(|j| FIRST_GENERIC_GROUP + u + 3 * j)
                .filter_map(|g| self.group_if(g)),
        );
        json!({
            "@kind": "administrativeUnit", "id": self.misc_id(MISC_UNIT + u),
            "displayName": name, "description": description,
            "visibility": if u == 0 { "HiddenMembership" } else { "Public" },
            "@links": links(&[("members", members)]),
        })
    }

    fn role_definition(&self, n: usize) -> Value {
        let (name, description, actions) = CUSTOM_ROLES[n];
        let id = self.misc_id(MISC_ROLE + n);
        json!({
            "@kind": "roleDefinition", "id": id, "templateId": id,
            "displayName": name, "description": description,
            "isBuiltIn": false, "isEnabled": true, "resourceScopes": ["/"], "version": "1",
            "rolePermissions": [{"allowedResourceActions": actions}],
        })
    }

    /// (role definition id, user index) pairs, without duplicates.
    fn role_assignments(&self) -> Vec<(String, usize)> {
        let mut wanted: Vec<(String, Option<usize>)> = Vec::new();
        let emergency = self.emergency_users();
        if emergency.is_empty() {
            wanted.push((GLOBAL_ADMINISTRATOR.into(), self.user_if(0)));
        }
        wanted.extend(
            emergency
                .into_iter()
                .map(|u| (GLOBAL_ADMINISTRATOR.to_string(), Some(u))),
        );
        let it_head = self.department_head(IT);
        wanted.push((USER_ADMINISTRATOR.into(), it_head));
        wanted.push((CONDITIONAL_ACCESS_ADMINISTRATOR.into(), it_head));
        wanted.push((SECURITY_READER.into(), self.department_head(LEGAL)));
        let it_manager = DEPARTMENTS.len() + IT + 1;
        wanted.push((
            self.misc_id(MISC_ROLE),
            (it_manager < self.managers).then_some(it_manager),
        ));
        wanted.push((
            self.misc_id(MISC_ROLE + 1),
            self.department_head(ENGINEERING),
        ));
        let mut seen = BTreeSet::new();
        wanted
            .into_iter()
            .filter_map(|(role, user)| user.map(|u| (role, u)))
            .filter(|pair| seen.insert(pair.clone()))
            .collect()
    }

    fn role_assignment(&self, n: usize) -> Value {
        let (role, user) = self.role_assignments().swap_remove(n);
        let principal = self.user_id(user);
        let mut raw = guid_bytes_le(&role).to_vec();
        raw.extend(guid_bytes_le(&principal));
        json!({
            "@kind": "roleAssignment", "id": format!("{}-1", base64url(&raw)),
            "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
            "principalId": principal, "roleDefinitionId": role, "directoryScopeId": "/",
        })
    }

    fn conditional_access_policy(&self, n: usize) -> Value {
        let emergency: Vec<String> = self.group_if(EMERGENCY_GROUP).into_iter().collect();
        let group_or_none = |g: usize| match self.group_if(g) {
            Some(id) => (json!([]), json!([id])),
            None => (json!(["None"]), json!([])),
        };
        let trusted = [self.misc_id(MISC_LOCATION), self.misc_id(MISC_LOCATION + 1)];
        let all_apps = json!({"includeApplications": ["All"]});
        let (name, state, users, applications, client_apps, locations, grant) = match n {
            0 => (
                "CA001: Require MFA for administrators",
                "enabled",
                json!({"includeUsers": [], "includeRoles": ADMIN_ROLES, "excludeGroups": emergency}),
                all_apps,
                json!(["all"]),
                None,
                json!(["mfa"]),
            ),
            1 => (
                "CA002: Block legacy authentication",
                "enabled",
                json!({"includeUsers": ["All"], "excludeGroups": emergency}),
                all_apps,
                json!(["exchangeActiveSync", "other"]),
                None,
                json!(["block"]),
            ),
            2 => (
                "CA003: Require MFA outside trusted locations",
                "enabledForReportingButNotEnforced",
                json!({"includeUsers": ["All"], "excludeUsers": ["GuestsOrExternalUsers"], "excludeGroups": emergency}),
                all_apps,
                json!(["browser", "mobileAppsAndDesktopClients"]),
                Some(json!({"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]})),
                json!(["mfa"]),
            ),
            3 => {
                let (include_users, include_groups) = group_or_none(FIRST_DEPARTMENT_GROUP + SALES);
                (
                    "CA004: Require compliant device for Sales",
                    "enabled",
                    json!({"includeUsers": include_users, "includeGroups": include_groups, "excludeGroups": emergency}),
                    all_apps,
                    json!(["all"]),
                    None,
                    json!(["compliantDevice", "domainJoinedDevice"]),
                )
            }
            4 => (
                "CA005: Block sign-ins from blocked countries",
                "enabled",
                json!({"includeUsers": ["All"], "excludeGroups": emergency}),
                all_apps,
                json!(["all"]),
                Some(json!({"includeLocations": [self.misc_id(MISC_LOCATION + 3)]})),
                json!(["block"]),
            ),
            5 => (
                "CA006: Require MFA for guests",
                "enabled",
                json!({"includeUsers": ["GuestsOrExternalUsers"]}),
                all_apps,
                json!(["all"]),
                None,
                json!(["mfa"]),
            ),
            6 => (
                "CA007: Require MFA for risky sign-ins",
                "enabled",
                json!({"includeUsers": ["All"], "excludeGroups": emergency}),
                all_apps,
                json!(["all"]),
                None,
                json!(["mfa"]),
            ),
            7 => {
                let (include_users, include_groups) =
                    group_or_none(FIRST_DEPARTMENT_GROUP + HUMAN_RESOURCES);
                let apps: Vec<String> = (0..self.apps.min(3))
                    .map(|a| self.app_client_id(a))
                    .collect();
                let apps = if apps.is_empty() {
                    json!({"includeApplications": ["All"]})
                } else {
                    json!({"includeApplications": apps})
                };
                (
                    "CA008: HR applications only from trusted locations",
                    "disabled",
                    json!({"includeUsers": include_users, "includeGroups": include_groups, "excludeGroups": emergency}),
                    apps,
                    json!(["all"]),
                    Some(json!({"includeLocations": ["All"], "excludeLocations": trusted})),
                    json!(["block"]),
                )
            }
            _ => (
                "CA009: Require password change for high-risk users",
                "enabledForReportingButNotEnforced",
                json!({"includeUsers": ["All"], "excludeGroups": emergency}),
                all_apps,
                json!(["all"]),
                None,
                json!(["mfa", "passwordChange"]),
            ),
        };
        // Graph returns every list of the users and applications conditions, empty or not.
        let (mut users, mut applications) = (users, applications);
        let user_lists = [
            "includeUsers",
            "excludeUsers",
            "includeGroups",
            "excludeGroups",
            "includeRoles",
            "excludeRoles",
        ];
        let app_lists = ["excludeApplications", "includeUserActions"];
        for (condition, keys) in [
            (&mut users, &user_lists[..]),
            (&mut applications, &app_lists[..]),
        ] {
            if let Value::Object(lists) = condition {
                for key in keys {
                    lists.entry(*key).or_insert_with(|| json!([]));
                }
            }
        }
        let mut conditions =
            json!({"users": users, "applications": applications, "clientAppTypes": client_apps});
        if let Some(locations) = locations {
            conditions["locations"] = locations;
        }
        match n {
            6 => conditions["signInRiskLevels"] = json!(["high", "medium"]),
            8 => conditions["userRiskLevels"] = json!(["high"]),
            3 => {
                conditions["platforms"] =
                    json!({"includePlatforms": ["android", "iOS", "windows", "macOS"]})
            }
            _ => {}
        }
        let operator = if n == 8 { "AND" } else { "OR" };
        let mut policy = json!({
            "@kind": "conditionalAccessPolicy", "id": self.misc_id(MISC_POLICY + n),
            "displayName": name, "state": state, "conditions": conditions,
            "grantControls": {"operator": operator, "builtInControls": grant},
            "createdDateTime": self.date(200 - 10 * n as i64),
        });
        if n == 5 {
            policy["sessionControls"] =
                json!({"signInFrequency": {"value": 8, "type": "hours", "isEnabled": true}});
        }
        policy
    }
}

/// The ChaCha key of a tenant: the seed and the domain, so that two demo tenants seeded
/// alike still get their own object ids, as real tenants do (Graph ids are global).
fn tenant_key(seed: u64, domain: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(domain.as_bytes());
    hasher.finalize().into()
}

/// `count` distinct numbers below `population` (all of them if `count` is larger), by
/// Floyd's algorithm: exactly `count` draws, whatever the ratio.
fn sample(r: &mut ChaCha8Rng, population: usize, count: usize) -> BTreeSet<usize> {
    let mut chosen = BTreeSet::new();
    for j in population - count.min(population)..population {
        let t = r.random_range(0..=j);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen
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

/// A GUID's bytes as Windows lays them out (the first three fields little-endian), which is
/// how Graph builds its opaque assignment and grant ids.
fn guid_bytes_le(guid: &str) -> [u8; 16] {
    Uuid::parse_str(guid)
        .map(|u| u.to_bytes_le())
        .unwrap_or_default()
}

/// Unpadded base64url.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * k)) as usize & 63]));
        }
    }
    out
}

fn authorization_policy() -> Value {
    json!({
        "@kind": "authorizationPolicy", "id": "authorizationPolicy",
        "displayName": "Authorization Policy",
        "description": "Used to manage authorization related settings across the company.",
        "allowInvitesFrom": "adminsAndGuestInviters",
        "allowedToSignUpEmailBasedSubscriptions": false,
        "allowedToUseSSPR": true,
        "allowEmailVerifiedUsersToJoinOrganization": false,
        "allowUserConsentForRiskyApps": false,
        "blockMsolPowerShell": true,
        "guestUserRoleId": "10dae51f-b6af-4016-8d66-8c2a99b929b3",
        "defaultUserRolePermissions": {
            "allowedToCreateApps": false,
            "allowedToCreateSecurityGroups": false,
            "allowedToCreateTenants": false,
            "allowedToReadOtherUsers": true,
            "allowedToReadBitlockerKeysForOwnedDevice": true,
            "permissionGrantPoliciesAssigned": ["ManagePermissionGrantsForSelf.microsoft-user-default-low"],
        },
    })
}

fn authentication_methods_policy() -> Value {
    let all_users = |extra: Value| {
        let mut target =
            json!({"targetType": "group", "id": "all_users", "isRegistrationRequired": false});
        merge(&mut target, extra);
        json!([target])
    };
    json!({
        "@kind": "authenticationMethodsPolicy", "id": "authenticationMethodsPolicy",
        "displayName": "Authentication Methods Policy",
        "description": "The tenant-wide policy that controls which authentication methods are allowed in the tenant, authentication method registration requirements, and self-service password reset settings",
        "policyVersion": "1.5",
        "policyMigrationState": "migrationComplete",
        "registrationEnforcement": {"authenticationMethodsRegistrationCampaign": {
            "snoozeDurationInDays": 1, "state": "enabled", "excludeTargets": [],
            "includeTargets": [{"id": "all_users", "targetType": "group", "targetedAuthenticationMethod": "microsoftAuthenticator"}],
        }},
        "authenticationMethodConfigurations": [
            {"@odata.type": "#microsoft.graph.fido2AuthenticationMethodConfiguration", "id": "Fido2", "state": "enabled",
             "isSelfServiceRegistrationAllowed": true, "isAttestationEnforced": true,
             "keyRestrictions": {"isEnforced": false, "enforcementType": "block", "aaGuids": []},
             "includeTargets": all_users(json!({}))},
            {"@odata.type": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethodConfiguration", "id": "MicrosoftAuthenticator", "state": "enabled",
             "includeTargets": all_users(json!({"authenticationMode": "any"})),
             "featureSettings": {"displayAppInformationRequiredState": {"state": "enabled"}, "displayLocationInformationRequiredState": {"state": "enabled"}}},
            {"@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration", "id": "TemporaryAccessPass", "state": "enabled",
             "defaultLifetimeInMinutes": 60, "defaultLength": 8, "minimumLifetimeInMinutes": 60, "maximumLifetimeInMinutes": 480, "isUsableOnce": true,
             "includeTargets": all_users(json!({}))},
            {"@odata.type": "#microsoft.graph.smsAuthenticationMethodConfiguration", "id": "Sms", "state": "disabled",
             "includeTargets": all_users(json!({"isUsableForSignIn": false}))},
            {"@odata.type": "#microsoft.graph.voiceAuthenticationMethodConfiguration", "id": "Voice", "state": "disabled",
             "isOfficePhoneAllowed": false, "includeTargets": []},
            {"@odata.type": "#microsoft.graph.x509CertificateAuthenticationMethodConfiguration", "id": "X509Certificate", "state": "disabled",
             "certificateUserBindings": [{"x509CertificateField": "PrincipalName", "userProperty": "onPremisesUserPrincipalName", "priority": 1}],
             "authenticationModeConfiguration": {"x509CertificateAuthenticationDefaultMode": "x509CertificateSingleFactor", "rules": []},
             "includeTargets": []},
            {"@odata.type": "#microsoft.graph.emailAuthenticationMethodConfiguration", "id": "Email", "state": "enabled",
             "allowExternalIdToUseEmailOtp": "default", "includeTargets": []},
        ],
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::time::Instant;

    use backtrack_domain::{
        decide, graph, validate, Command, DecideContext, Event, EventMeta, ObjectKind, TenantState,
    };

    use super::*;

    fn options(users: usize, groups: usize, apps: usize, seed: u64) -> DemoOptions {
        DemoOptions {
            users,
            groups,
            apps,
            seed,
            domain: "contoso.com".into(),
        }
    }

    fn small() -> DemoOptions {
        options(300, 20, 5, 7)
    }

    /// Large enough for licensing and program groups, guests and synced users.
    fn medium() -> DemoOptions {
        options(6_000, 120, 40, 11)
    }

    fn id(v: &Value) -> String {
        v["id"]
            .as_str()
            .expect("every object has an id")
            .to_string()
    }

    fn link_targets(v: &Value) -> Vec<(String, String)> {
        let Some(links) = v.get("@links").and_then(Value::as_object) else {
            return Vec::new();
        };
        links
            .iter()
            .flat_map(|(rel, ids)| {
                ids.as_array()
                    .expect("links are lists")
                    .iter()
                    .map(move |t| {
                        (
                            rel.clone(),
                            t.as_str().expect("link targets are ids").to_string(),
                        )
                    })
            })
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_tenant() {
        let first: Vec<Value> = demo_objects(&small()).collect();
        let second: Vec<Value> = demo_objects(&small()).collect();
        assert_eq!(first, second);
    }

    #[test]
    fn another_seed_or_domain_gives_other_ids() {
        let ids = |seed| {
            demo_objects(&options(300, 20, 5, seed))
                .map(|v| id(&v))
                .collect::<HashSet<_>>()
        };
        let shared: Vec<String> = ids(7).intersection(&ids(8)).cloned().collect();
        let mut shared: Vec<&str> = shared.iter().map(String::as_str).collect();
        shared.sort_unstable();
        assert_eq!(
            shared,
            ["authenticationMethodsPolicy", "authorizationPolicy"]
        );
        let mut elsewhere = options(300, 20, 5, 7);
        elsewhere.domain = "fabrikam.com".into();
        let elsewhere: HashSet<String> = demo_objects(&elsewhere).map(|v| id(&v)).collect();
        assert_eq!(
            elsewhere.intersection(&ids(7)).count(),
            2,
            "only the singletons"
        );
    }

    #[test]
    fn tenant_size_follows_the_user_count() {
        let small = DemoOptions::for_users(500, 42, "contoso.com");
        assert_eq!((small.groups, small.apps), (41, 10));
        let big = DemoOptions::for_users(1_000_000, 42, "big.example");
        assert_eq!((big.groups, big.apps), (5_000, 500));
        assert_eq!(DemoOptions::default(), small);
    }

    #[test]
    fn total_objects_is_the_exact_count() {
        for opts in [
            small(),
            medium(),
            options(0, 0, 0, 1),
            options(1, 1, 1, 2),
            options(12, 13, 2, 3),
            options(14, 16, 0, 4),
            options(99, 30, 31, 5),
            options(100, 17, 3, 6),
            options(0, 40, 2, 7),
        ] {
            assert_eq!(
                demo_objects(&opts).count(),
                opts.total_objects(),
                "{opts:?}"
            );
        }
    }

    #[test]
    fn every_link_points_to_an_earlier_object_of_an_allowed_kind() {
        for opts in [medium(), options(20, 30, 3, 9), options(0, 30, 3, 9)] {
            let mut seen: HashMap<String, String> = HashMap::new();
            for v in demo_objects(&opts) {
                let kind = v["@kind"]
                    .as_str()
                    .expect("every object has a kind")
                    .to_string();
                for (relation, target) in link_targets(&v) {
                    let target_kind = seen
                        .get(&target)
                        .unwrap_or_else(|| panic!("{kind}.{relation} -> {target} not yet yielded"));
                    let allowed: &[&str] = match (kind.as_str(), relation.as_str()) {
                        ("user", "manager") => &["user"],
                        ("group", "members") => &["user", "group", "servicePrincipal"],
                        ("administrativeUnit", "members") => &["user", "group"],
                        (_, "owners") => &["user", "servicePrincipal"],
                        other => panic!("unexpected relation {other:?}"),
                    };
                    assert!(
                        allowed.contains(&target_kind.as_str()),
                        "{kind}.{relation} -> {target_kind}"
                    );
                }
                assert!(
                    seen.insert(id(&v), kind).is_none(),
                    "duplicate id {}",
                    id(&v)
                );
            }
        }
    }

    #[test]
    fn user_principal_names_are_unique_ignoring_case() {
        let mut upns = HashSet::new();
        let (mut guests, mut synced, mut disabled, mut managed) = (0, 0, 0, 0);
        for v in demo_objects(&medium()).filter(|v| v["@kind"] == "user") {
            let upn = v["userPrincipalName"]
                .as_str()
                .expect("users have a UPN")
                .to_ascii_lowercase();
            assert!(upns.insert(upn.clone()), "duplicate UPN {upn}");
            guests += usize::from(
                v["userType"] == "Guest" && upn.contains("#ext#@contoso.onmicrosoft.com"),
            );
            synced += usize::from(v["onPremisesSyncEnabled"] == true);
            disabled += usize::from(v["accountEnabled"] == false);
            managed += usize::from(v["@links"]["manager"].is_array());
        }
        assert_eq!(upns.len(), 6_000);
        assert!((60..200).contains(&guests), "{guests} guests");
        assert!((300..900).contains(&synced), "{synced} synced users");
        assert!((30..200).contains(&disabled), "{disabled} disabled users");
        assert!(managed > 5_500, "{managed} users with a manager");
    }

    #[test]
    fn no_object_carries_more_links_than_one_message_holds() {
        let opts = options(70_000, 45, 1, 3);
        let most = demo_objects(&opts)
            .map(|v| link_targets(&v).len())
            .max()
            .unwrap_or(0);
        assert_eq!(
            most, MAX_LINKS_PER_OBJECT,
            "department groups fill up to the limit"
        );
    }

    #[test]
    fn every_object_is_accepted_by_the_directory() {
        for opts in [small(), DemoOptions::for_users(500, 3, "big.example")] {
            let state = import_into_the_model(&opts);
            assert_eq!(state.objects.len(), opts.total_objects());
            for kind in ObjectKind::ALL {
                assert!(
                    state.objects.values().any(|o| o.kind == kind),
                    "no {kind} generated"
                );
            }
        }
    }

    /// Feeds every object through the directory's own rules: parse, id check, decide, apply.
    fn import_into_the_model(opts: &DemoOptions) -> TenantState {
        let ctx = DecideContext {
            now_ms: NOW_MS,
            recycle_bin_retention_ms: 30 * DAY_MS,
        };
        let mut state = TenantState::default();
        let mut sequence = 0;
        for v in demo_objects(opts) {
            let shown = format!("{v}");
            let parsed = graph::parse(None, v).unwrap_or_else(|e| panic!("{e}: {shown}"));
            let raw_id = parsed.id.clone().expect("demo objects carry their id");
            let id = validate::object_id(parsed.kind, &raw_id)
                .unwrap_or_else(|e| panic!("{e}: {shown}"));
            assert_eq!(id, raw_id, "ids are already normalised");
            let command = Command::Create {
                kind: parsed.kind,
                id,
                attributes: parsed.attributes,
                links: parsed.links,
            };
            let pending = decide(&state, &ctx, command).unwrap_or_else(|e| panic!("{e}: {shown}"));
            for p in pending {
                sequence += 1;
                let meta = EventMeta {
                    event_id: format!("event-{sequence}"),
                    tenant: "contoso".into(),
                    kind: p.kind.as_str().into(),
                    object_id: p.object_id,
                    actor: "demo".into(),
                    time_ms: ctx.now_ms,
                    source: "test".into(),
                    correlation_id: None,
                    mutation_id: format!("m-{sequence}"),
                };
                let change = p.change;
                state.apply(&Event { meta, change }, sequence);
            }
        }
        state
    }

    #[test]
    fn huge_tenants_stream_lazily() {
        let started = Instant::now();
        let first: Vec<Value> = demo_objects(&options(100_000_000, 1_000_000, 10_000, 1))
            .take(1_000)
            .collect();
        assert_eq!(first.len(), 1_000);
        assert!(
            started.elapsed().as_secs() < 10,
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_large_tenant_is_generated_in_seconds() {
        // About 3 s in a debug build, under 1 s optimised; memory stays flat (nothing is kept).
        let users = 200_000;
        let opts = options(users, 300, 50, 5);
        let started = Instant::now();
        assert_eq!(demo_objects(&opts).count(), opts.total_objects());
        assert!(
            started.elapsed().as_secs() < 30,
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn opaque_ids_are_built_like_graph_builds_them() {
        // Ids from shared/fixtures/graph: a grant's id is base64url(clientId ++ resourceId).
        let mut raw = guid_bytes_le("263a5b01-03e5-408e-8557-bab681df104c").to_vec();
        raw.extend(guid_bytes_le("1804a6f8-e623-4520-8f40-ba1b0c11c42d"));
        assert_eq!(
            base64url(&raw),
            "AVs6JuUDjkCFV7q2gd8QTPimBBgj5iBFj0C6GwwRxC0"
        );
        let principal = base64url(&guid_bytes_le("8e881353-1735-45af-af21-ee1344582a4d"));
        assert!("UxOIjjUXr0WvIe4TRFgqTY4z9Wu5KxpBtlEpoTGjw-A".starts_with(&principal[..21]));
        for v in demo_objects(&small()) {
            if [
                "appRoleAssignment",
                "oauth2PermissionGrant",
                "roleAssignment",
            ]
            .contains(&v["@kind"].as_str().unwrap_or(""))
            {
                let id = id(&v);
                assert!(
                    id.len() >= 43
                        && id
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "{id}"
                );
            }
        }
    }
}
