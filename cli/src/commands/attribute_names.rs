//! A guard against attribute names mistyped in `dir create --set` and `dir update
//! --set/--unset`. The directory takes attributes its schema does not list (Graph has more
//! than any schema can), so `--set departmnt=Sales` would add a new attribute, and the
//! log keeps it for good. A name the object does not have that is one or two keystrokes
//! (or only letter case) away from one it has, or from one its kind's schema knows, is
//! refused with the name it is probably meant to be; `--force` adds it as given.

use backtrack_domain::schema::schema;
use backtrack_domain::ObjectKind;

use crate::output::refused;

/// The name `name` is probably meant to be: a different entry of `known` that is equal
/// ignoring case, or within two edits (one for names of up to five characters). `None`
/// when `name` is in `known` or nothing is that close.
pub fn near_miss<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    if known.contains(&name) {
        return None;
    }
    let lower = name.to_lowercase();
    let limit = if name.chars().count() <= 5 { 1 } else { 2 };
    known
        .iter()
        .map(|k| (edits(&lower, &k.to_lowercase()), *k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// two neighbouring characters.
fn edits(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// The names an object of `kind` is known to take: its schema's typed attributes and
/// relations, and `present` (the attributes the object has).
fn known_names(kind: Option<ObjectKind>, present: &[String]) -> Vec<&str> {
    let mut known: Vec<&str> = present.iter().map(String::as_str).collect();
    if let Some(kind) = kind {
        let s = schema(kind);
        known.extend(s.typed.iter().map(|(name, _)| *name));
        known.extend(s.links.iter().map(|r| r.name));
    }
    known
}

/// Whether some kind's schema knows `name` exactly (a typed attribute or a relation):
/// such a name is meant as written, and needs no look at the object.
pub fn known_to_a_schema(name: &str) -> bool {
    ObjectKind::ALL.iter().any(|kind| {
        let s = schema(*kind);
        s.typed.iter().any(|(n, _)| *n == name) || s.links.iter().any(|r| r.name == name)
    })
}

/// Refuses `--set` names (`setting`) and `--unset` names (`removing`) that look like a
/// mistyped name of the object (`present`: its attributes; none for a new object).
pub fn check(
    what: &str,
    kind: Option<ObjectKind>,
    present: &[String],
    setting: &[&str],
    removing: &[&str],
) -> anyhow::Result<()> {
    let known = known_names(kind, present);
    for (name, verb) in setting
        .iter()
        .map(|n| (n, "set"))
        .chain(removing.iter().map(|n| (n, "unset")))
    {
        if present.iter().any(|p| p == name) {
            continue;
        }
        if let Some(meant) = near_miss(name, &known) {
            let new = if verb == "set" {
                format!("--set {name}=… would add it as a new attribute")
            } else {
                "there is nothing to remove".to_string()
            };
            return Err(refused(format!(
                "{what} has no attribute '{name}' ({new}): did you mean '{meant}'? \
                 Attribute names are case-sensitive; add --force to {verb} '{name}' as given"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_case_and_a_few_keystrokes() {
        let known = ["department", "displayName", "mail", "jobTitle"];
        assert_eq!(near_miss("departmnt", &known), Some("department"));
        assert_eq!(near_miss("deaprtment", &known), Some("department"));
        assert_eq!(near_miss("Department", &known), Some("department"));
        assert_eq!(near_miss("displayname", &known), Some("displayName"));
        assert_eq!(near_miss("mali", &known), Some("mail"));
        // Exact names, and names far from every known one, pass.
        assert_eq!(near_miss("department", &known), None);
        assert_eq!(near_miss("costCenter", &known), None);
        assert_eq!(near_miss("extension_ab12_level", &known), None);
        // Short names get one edit, not two: "city" is not "mail".
        assert_eq!(near_miss("mood", &known), None);
        assert_eq!(edits("abc", "acb"), 1);
        assert!(known_to_a_schema("description") && known_to_a_schema("members"));
        assert!(!known_to_a_schema("departmnt") && !known_to_a_schema("Department"));
        assert_eq!(edits("", "ab"), 2);
    }

    #[test]
    fn an_update_is_checked_against_the_object_and_its_schema() {
        let present = vec!["department".to_string(), "costCentre".to_string()];
        let user = Some(ObjectKind::User);
        let err = check("user u1", user, &present, &["departmnt"], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "user u1 has no attribute 'departmnt' (--set departmnt=… would add it as a new \
             attribute): did you mean 'department'? Attribute names are case-sensitive; add \
             --force to set 'departmnt' as given"
        );
        assert!(err.downcast_ref::<crate::output::Refused>().is_some());
        // Close to an attribute only the object has (not in the schema).
        assert!(check("user u1", user, &present, &["costCenter"], &[]).is_err());
        // Close to a schema name the object lacks.
        assert!(check("user u1", user, &present, &["jobtitle"], &[]).is_err());
        // Removing: the name must be there.
        let err = check("user u1", user, &present, &[], &["Department"]).unwrap_err();
        assert!(
            err.to_string().contains("there is nothing to remove"),
            "{err}"
        );
        // What the object has, and what is far from everything, pass.
        assert!(check(
            "user u1",
            user,
            &present,
            &["department", "employeeType"],
            &["costCentre"]
        )
        .is_ok());
        // A new object: only the schema is known.
        assert!(check("a new user", user, &[], &["userPrincipalname"], &[]).is_err());
        assert!(check("a new user", user, &[], &["city"], &[]).is_ok());
    }
}
