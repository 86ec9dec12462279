//! Groups: fixed slots the policies refer to (emergency access, tenant administrators,
//! guests, one per department, all employees), then generic team, program, licensing,
//! app-access and distribution groups whose members are drawn from the users.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use super::ids::{sample, S_GROUP};
use super::people::{Role, DEPARTMENTS, IT, OFFICES};
use super::{links, Tenant, MAX_LINKS_PER_OBJECT};

#[rustfmt::skip]
const CODENAMES: [&str; 30] = [
    "Falcon", "Aurora", "Cobalt", "Everest", "Nimbus", "Orion", "Sequoia", "Tundra", "Zephyr",
    "Atlas", "Beacon", "Cascade", "Delta", "Ember", "Fjord", "Granite", "Harbor", "Ion",
    "Juniper", "Kestrel", "Lumen", "Meridian", "Nova", "Onyx", "Polaris", "Quartz", "Redwood",
    "Summit", "Tidal", "Vertex",
];

// Fixed group slots, the ones policies refer to first, so that even a tenant with a handful
// of groups has them; department d is group FIRST_DEPARTMENT_GROUP + d. Generic groups
// follow from FIRST_GENERIC_GROUP.
pub(super) const EMERGENCY_GROUP: usize = 0;
const TENANT_ADMINS: usize = 1;
const ALL_GUESTS: usize = 2;
pub(super) const FIRST_DEPARTMENT_GROUP: usize = 3;
const ALL_EMPLOYEES: usize = FIRST_DEPARTMENT_GROUP + DEPARTMENTS.len();
pub(super) const FIRST_GENERIC_GROUP: usize = ALL_EMPLOYEES + 1;

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

impl Tenant {
    pub(super) fn group_if(&self, g: usize) -> Option<String> {
        (g < self.groups).then(|| self.group_id(g))
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
    pub(super) fn group_name(&self, g: usize) -> (String, String) {
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
    pub(super) fn access_group_of_app(&self, a: usize) -> Option<usize> {
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

    pub(super) fn group(&self, g: usize) -> Value {
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
}
