//! Users: names, departments, offices and titles drawn from each user's own stream, and the
//! management tree (a chief executive, department heads, and managers with six reports
//! each); guests, disabled and directory-synced users in believable proportions.

use std::collections::BTreeSet;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::ids::{sample, S_PERSON};
use super::{merge, Tenant};

/// Users scanned at most when a group or unit collects members by attribute.
const SCAN_LIMIT: usize = 100_000;
/// Tenants this large get two emergency-access ("break glass") accounts at the end.
const EMERGENCY_MIN_USERS: usize = 100;

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
pub(super) const DEPARTMENTS: [(&str, [&str; 4]); 12] = [
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
pub(super) const SALES: usize = 0;
pub(super) const ENGINEERING: usize = 2;
pub(super) const IT: usize = 3;
pub(super) const HUMAN_RESOURCES: usize = 5;
pub(super) const LEGAL: usize = 6;

/// An office: city, country code, country, phone prefix, language, region index.
pub(super) struct Office(
    pub(super) &'static str,
    pub(super) &'static str,
    pub(super) &'static str,
    pub(super) &'static str,
    pub(super) &'static str,
    pub(super) usize,
);
#[rustfmt::skip]
pub(super) const OFFICES: [Office; 12] = [
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
pub(super) const REGIONS: [(&str, &str); 3] = [
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Chief,
    DepartmentHead,
    Manager,
    Staff,
    Guest,
    EmergencyAccess,
}

/// Everything about user `index`, derived from the index alone.
pub(super) struct Person {
    pub(super) index: usize,
    pub(super) role: Role,
    pub(super) given: &'static str,
    pub(super) surname: &'static str,
    pub(super) department: Option<usize>,
    pub(super) manager: Option<usize>,
    pub(super) office: &'static Office,
    pub(super) enabled: bool,
    pub(super) synced: bool,
    pub(super) title: usize,
    pub(super) partner: usize,
    pub(super) tenure_days: i64,
    pub(super) extension: u32,
}

impl Person {
    fn nickname(&self) -> String {
        format!("{}.{}{}", self.given, self.surname, self.index).to_ascii_lowercase()
    }

    pub(super) fn display_name(&self) -> String {
        match self.role {
            Role::EmergencyAccess => format!("Emergency Access {:02}", self.emergency_number()),
            _ => format!("{} {}", self.given, self.surname),
        }
    }

    fn emergency_number(&self) -> usize {
        self.index % 2 + 1
    }
}

impl Tenant {
    pub(super) fn user_if(&self, i: usize) -> Option<usize> {
        (i < self.users).then_some(i)
    }
    pub(super) fn department_head(&self, d: usize) -> Option<usize> {
        (d + 1 < self.managers).then_some(d + 1)
    }
    pub(super) fn emergency_users(&self) -> Vec<usize> {
        if self.users >= EMERGENCY_MIN_USERS {
            vec![self.users - 2, self.users - 1]
        } else {
            Vec::new()
        }
    }

    pub(super) fn person(&self, i: usize) -> Person {
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
    pub(super) fn scan_users(&self, cap: usize, keep: impl Fn(&Person) -> bool) -> Vec<usize> {
        (0..self.users.min(SCAN_LIMIT))
            .map(|i| self.person(i))
            .filter(|p| keep(p))
            .map(|p| p.index)
            .take(cap)
            .collect()
    }

    /// `count` distinct users at random.
    pub(super) fn sample_users(&self, r: &mut ChaCha8Rng, count: usize) -> BTreeSet<usize> {
        sample(r, self.users, count)
    }

    pub(super) fn user(&self, i: usize) -> Value {
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
}
