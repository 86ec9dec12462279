//! Microsoft Entra's built-in directory roles, by template id: a role assignment names its
//! role by id (`roleDefinitionId`), and a built-in role is no object of the tenant, so its
//! name comes from here. The ids are the same in every tenant (Microsoft's "Microsoft
//! Entra built-in roles" reference); roles that reference marks privileged — they can
//! change who has access to what, or read what attackers look for — are marked so here,
//! and assigning one is a `privilegedRoleAssigned` alert rather than a `roleAssigned`.

/// A built-in role: its template id, its name, and whether it is privileged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltInRole {
    pub id: &'static str,
    pub name: &'static str,
    pub privileged: bool,
}

const fn role(id: &'static str, name: &'static str, privileged: bool) -> BuiltInRole {
    BuiltInRole {
        id,
        name,
        privileged,
    }
}

/// The built-in roles, by name.
pub const BUILT_IN_ROLES: &[BuiltInRole] = &[
    role(
        "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
        "Application Administrator",
        true,
    ),
    role(
        "cf1c38e5-3621-4004-a7cb-879624dced7c",
        "Application Developer",
        true,
    ),
    role(
        "9c6df0f2-1e7c-4dc3-b195-66dfbd24aa8f",
        "Attack Payload Author",
        false,
    ),
    role(
        "c430b396-e693-46cc-96f3-db01bf8bb62a",
        "Attack Simulation Administrator",
        false,
    ),
    role(
        "58a13ea3-c632-46ae-9ee0-9c0d43cd7f3d",
        "Attribute Assignment Administrator",
        false,
    ),
    role(
        "ffd52fa5-98dc-465c-991d-fc073eb59f8f",
        "Attribute Assignment Reader",
        false,
    ),
    role(
        "8424c6f0-a189-499e-bbd0-26c1753c96d4",
        "Attribute Definition Administrator",
        false,
    ),
    role(
        "1d336d2c-4ae8-42ef-9711-b3604ce3fc2c",
        "Attribute Definition Reader",
        false,
    ),
    role(
        "c4e39bd9-1100-46d3-8c65-fb160da0071f",
        "Authentication Administrator",
        true,
    ),
    role(
        "0526716b-113d-4c15-b2c8-68e3c22b9f80",
        "Authentication Policy Administrator",
        false,
    ),
    role(
        "9f06204d-73c1-4d4c-880a-6edb90606fd8",
        "Azure AD Joined Device Local Administrator",
        false,
    ),
    role(
        "e3973bdf-4987-49ae-837a-ba8e231c7286",
        "Azure DevOps Administrator",
        false,
    ),
    role(
        "7495fdc4-34c4-4d15-a289-98788ce399fd",
        "Azure Information Protection Administrator",
        false,
    ),
    role(
        "aaf43236-0c0d-4d5f-883a-6955382ac081",
        "B2C IEF Keyset Administrator",
        true,
    ),
    role(
        "3edaf663-341e-4475-9f94-5c398ef6c070",
        "B2C IEF Policy Administrator",
        false,
    ),
    role(
        "b0f54661-2d74-4c50-afa3-1ec803f12efe",
        "Billing Administrator",
        false,
    ),
    role(
        "892c5842-a9a6-463a-8041-72aa08ca3cf6",
        "Cloud App Security Administrator",
        false,
    ),
    role(
        "158c047a-c907-4556-b7ef-446551a6b5f7",
        "Cloud Application Administrator",
        true,
    ),
    role(
        "7698a772-787b-4ac8-901f-60d6b08affd2",
        "Cloud Device Administrator",
        true,
    ),
    role(
        "17315797-102d-40b4-93e0-432062caca18",
        "Compliance Administrator",
        false,
    ),
    role(
        "e6d1a23a-da11-4be4-9570-befc86d067a7",
        "Compliance Data Administrator",
        false,
    ),
    role(
        "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9",
        "Conditional Access Administrator",
        true,
    ),
    role(
        "5c4f9dcd-47dc-4cf7-8c9a-9e4207cbfc91",
        "Customer LockBox Access Approver",
        false,
    ),
    role(
        "38a96431-2bdf-4b4c-8b6e-5d3d8abac1a4",
        "Desktop Analytics Administrator",
        false,
    ),
    role(
        "88d8e3e3-8f55-4a1e-953a-9b9898b8876b",
        "Directory Readers",
        false,
    ),
    role(
        "d29b2b05-8046-44ba-8758-1e26182fcf32",
        "Directory Synchronization Accounts",
        true,
    ),
    role(
        "9360feb5-f418-4baa-8175-e2a00bac4301",
        "Directory Writers",
        true,
    ),
    role(
        "8329153b-31d0-4727-b945-745eb3bc5f31",
        "Domain Name Administrator",
        false,
    ),
    role(
        "44367163-eba1-44c3-98af-f5787879f96a",
        "Dynamics 365 Administrator",
        false,
    ),
    role(
        "3f1acade-1e04-4fbc-9b69-f0302cd84aef",
        "Edge Administrator",
        false,
    ),
    role(
        "29232cdf-9323-42fd-ade2-1d097af3e4de",
        "Exchange Administrator",
        false,
    ),
    role(
        "31392ffb-586c-42d1-9346-e59415a2cc4e",
        "Exchange Recipient Administrator",
        false,
    ),
    role(
        "6e591065-9bad-43ed-90f3-e9424366d2f0",
        "External ID User Flow Administrator",
        false,
    ),
    role(
        "0f971eea-41eb-4569-a71e-57bb8a3eff1e",
        "External ID User Flow Attribute Administrator",
        false,
    ),
    role(
        "be2f45a1-457d-42af-a067-6ec1fa63bc45",
        "External Identity Provider Administrator",
        false,
    ),
    role(
        "a9ea8996-122f-4c74-9520-8edcd192826c",
        "Fabric Administrator",
        false,
    ),
    role(
        "62e90394-69f5-4237-9190-012177145e10",
        "Global Administrator",
        true,
    ),
    role(
        "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
        "Global Reader",
        true,
    ),
    role(
        "ac434307-12b9-4fa1-a708-88bf58caabc1",
        "Global Secure Access Administrator",
        false,
    ),
    role(
        "fdd7a751-b60b-444a-984c-02652fe8fa1c",
        "Groups Administrator",
        false,
    ),
    role(
        "95e79109-95c0-4d8e-aee3-d01accf2d47b",
        "Guest Inviter",
        false,
    ),
    role(
        "729827e3-9c14-49f7-bb1b-9608f156bbb8",
        "Helpdesk Administrator",
        true,
    ),
    role(
        "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2",
        "Hybrid Identity Administrator",
        true,
    ),
    role(
        "45d8d3c5-c802-45c6-b32a-1d70b5e1e86e",
        "Identity Governance Administrator",
        false,
    ),
    role(
        "eb1f4a8d-243a-41f0-9fbd-c7cdf6c5ef7c",
        "Insights Administrator",
        false,
    ),
    role(
        "25df335f-86eb-4119-b717-0ff02de207e9",
        "Insights Analyst",
        false,
    ),
    role(
        "31e939ad-9672-4796-9c2e-873181342d2d",
        "Insights Business Leader",
        false,
    ),
    role(
        "3a2c62db-5318-420d-8d74-23affee5d9d5",
        "Intune Administrator",
        true,
    ),
    role(
        "74ef975b-6605-40af-a5d2-b9539d836353",
        "Kaizala Administrator",
        false,
    ),
    role(
        "b5a8dcf3-09d5-43a9-a639-8e29ef291470",
        "Knowledge Administrator",
        false,
    ),
    role(
        "744ec460-397e-42ad-a462-8b3f9747a02c",
        "Knowledge Manager",
        false,
    ),
    role(
        "4d6ac14f-3453-41d0-bef9-a3e0c569773a",
        "License Administrator",
        false,
    ),
    role(
        "59d46f88-662b-457b-bceb-5c3809e5908f",
        "Lifecycle Workflows Administrator",
        false,
    ),
    role(
        "ac16e43d-7b2d-40e0-ac05-243ff356ab5b",
        "Message Center Privacy Reader",
        false,
    ),
    role(
        "790c1fb9-7f7d-4f88-86a1-ef1f95c05c1b",
        "Message Center Reader",
        false,
    ),
    role(
        "1501b917-7653-4ff9-a4b5-203eaf33784f",
        "Microsoft Hardware Warranty Administrator",
        false,
    ),
    role(
        "281fe777-fb20-4fbb-b7a3-ccebce5b0d96",
        "Microsoft Hardware Warranty Specialist",
        false,
    ),
    role(
        "d24aef57-1500-4070-84db-2666f29cf966",
        "Modern Commerce User",
        false,
    ),
    role(
        "d37c8bed-0711-4417-ba38-b4abe66ce4c2",
        "Network Administrator",
        false,
    ),
    role(
        "2b745bdf-0803-4d80-aa65-822c4493daac",
        "Office Apps Administrator",
        false,
    ),
    role(
        "507f53e4-4e52-4077-abd3-d2e1558b6ea2",
        "Organizational Messages Writer",
        false,
    ),
    role(
        "4ba39ca4-527c-499a-b93d-d9b492c50246",
        "Partner Tier1 Support",
        true,
    ),
    role(
        "e00e864a-17c5-4a4b-9c06-f5b95a8d5bd8",
        "Partner Tier2 Support",
        true,
    ),
    role(
        "966707d0-3269-4727-9be2-8c3a10f19b9d",
        "Password Administrator",
        true,
    ),
    role(
        "af78dc32-cf4d-46f9-ba4e-4428526346b5",
        "Permissions Management Administrator",
        false,
    ),
    role(
        "11648597-926c-4cf3-9c36-bcebb0ba8dcc",
        "Power Platform Administrator",
        false,
    ),
    role(
        "644ef478-e28f-4e28-b9dc-3fdde9aa0b1f",
        "Printer Administrator",
        false,
    ),
    role(
        "e8cef6f1-e4bd-4ea8-bc07-4b8d950f4477",
        "Printer Technician",
        false,
    ),
    role(
        "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
        "Privileged Authentication Administrator",
        true,
    ),
    role(
        "e8611ab8-c189-46e8-94e1-60213ab1f814",
        "Privileged Role Administrator",
        true,
    ),
    role(
        "4a5d8f65-41da-4de4-8968-e035b65339cf",
        "Reports Reader",
        false,
    ),
    role(
        "0964bb5e-9bdb-4d7b-ac29-58e794862a40",
        "Search Administrator",
        false,
    ),
    role(
        "8835291a-918c-4fd7-a9ce-faa49f0cf7d9",
        "Search Editor",
        false,
    ),
    role(
        "194ae4cb-b126-40b2-bd5b-6091b380977d",
        "Security Administrator",
        true,
    ),
    role(
        "5f2222b1-57c3-48ba-8ad5-d4759f1fde6f",
        "Security Operator",
        true,
    ),
    role(
        "5d6b6bb7-de71-4623-b4af-96380a352509",
        "Security Reader",
        true,
    ),
    role(
        "f023fd81-a637-4b56-95fd-791ac0226033",
        "Service Support Administrator",
        false,
    ),
    role(
        "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
        "SharePoint Administrator",
        false,
    ),
    role(
        "75941009-915a-4869-abe7-691bff18279e",
        "Skype for Business Administrator",
        false,
    ),
    role(
        "69091246-20e8-4a56-aa4d-066075b2a7a8",
        "Teams Administrator",
        false,
    ),
    role(
        "baf37b3a-610e-45da-9e62-d9d1e5e8914b",
        "Teams Communications Administrator",
        false,
    ),
    role(
        "f70938a0-fc10-4177-9e90-2178f8765737",
        "Teams Communications Support Engineer",
        false,
    ),
    role(
        "fcf91098-03e3-41a9-b5ba-6f0ec8188a12",
        "Teams Communications Support Specialist",
        false,
    ),
    role(
        "3d762c5a-1b6c-493f-843e-55a3b42923d4",
        "Teams Devices Administrator",
        false,
    ),
    role(
        "112ca1a2-15ad-4102-995e-45b0bc479a6a",
        "Tenant Creator",
        false,
    ),
    role(
        "75934031-6c7e-415a-99d7-48dbd49e875e",
        "Usage Summary Reports Reader",
        false,
    ),
    role(
        "fe930be7-5e62-47db-91af-98c3a49a38b1",
        "User Administrator",
        true,
    ),
    role(
        "e300d9e7-4a2b-4295-9eff-f1c78b36cc98",
        "Virtual Visits Administrator",
        false,
    ),
    role(
        "92b086b3-e367-4ef2-b869-1de128fb986e",
        "Viva Goals Administrator",
        false,
    ),
    role(
        "87761b17-1ed2-4af3-9acd-92a150038160",
        "Viva Pulse Administrator",
        false,
    ),
    role(
        "11451d60-acb2-45eb-a7d6-43d0f0125c13",
        "Windows 365 Administrator",
        false,
    ),
    role(
        "32696413-001a-46ae-978c-ce0f6b3620d2",
        "Windows Update Deployment Administrator",
        false,
    ),
    role(
        "810a2642-a034-447f-a5e8-41beaa378541",
        "Yammer Administrator",
        false,
    ),
];

/// The built-in role with this template id (any letter case).
pub fn built_in(id: &str) -> Option<&'static BuiltInRole> {
    BUILT_IN_ROLES
        .iter()
        .find(|r| r.id.eq_ignore_ascii_case(id.trim()))
}

/// A role assignment as people read it: its role and its principal, each by name when
/// one is known (a built-in role by its own), else by id.
#[derive(Debug, Clone, Copy)]
pub struct Assignment<'a> {
    pub role_id: &'a str,
    pub role_name: Option<&'a str>,
    pub principal_id: &'a str,
    pub principal_name: Option<&'a str>,
}

impl Assignment<'_> {
    fn role(&self) -> &str {
        self.role_name
            .or_else(|| built_in(self.role_id).map(|r| r.name))
            .unwrap_or(self.role_id)
    }

    fn principal(&self) -> &str {
        self.principal_name.unwrap_or(self.principal_id)
    }

    /// `<role> → <principal>`.
    pub fn label(&self) -> String {
        format!("{} → {}", self.role(), self.principal())
    }

    /// What its creation did, as an alert says it: `privileged role <role> assigned to
    /// <principal>` for a privileged built-in role, else `role <role> assigned to …`.
    pub fn assigned(&self) -> String {
        let privileged = built_in(self.role_id).is_some_and(|r| r.privileged);
        let prefix = if privileged {
            "privileged role"
        } else {
            "role"
        };
        format!("{prefix} {} assigned to {}", self.role(), self.principal())
    }
}

#[cfg(test)]
mod tests {
    use super::{built_in, Assignment, BUILT_IN_ROLES};

    #[test]
    fn ids_are_unique_lower_case_uuids_and_names_unique() {
        let mut ids: Vec<&str> = BUILT_IN_ROLES.iter().map(|r| r.id).collect();
        assert!(ids
            .iter()
            .all(|id| uuid::Uuid::parse_str(id).is_ok() && id.to_lowercase() == *id));
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), BUILT_IN_ROLES.len());
        let mut names: Vec<&str> = BUILT_IN_ROLES.iter().map(|r| r.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BUILT_IN_ROLES.len());
    }

    #[test]
    fn built_in_roles_are_found_by_id_and_labelled_by_name() {
        let ga = built_in("62E90394-69F5-4237-9190-012177145E10").unwrap();
        assert_eq!((ga.name, ga.privileged), ("Global Administrator", true));
        assert!(
            !built_in("88d8e3e3-8f55-4a1e-953a-9b9898b8876b")
                .unwrap()
                .privileged
        );
        assert!(built_in("46cafa35-ab85-4eca-a4ce-7a7eaf903b5f").is_none());
        let assignment = |role_id, role_name, principal_name| Assignment {
            role_id,
            role_name,
            principal_id: "u1",
            principal_name,
        };
        let ga_to_adele = assignment(ga.id, None, Some("Adele Vance"));
        assert_eq!(ga_to_adele.label(), "Global Administrator → Adele Vance");
        assert_eq!(
            ga_to_adele.assigned(),
            "privileged role Global Administrator assigned to Adele Vance"
        );
        let custom = assignment("custom-id", Some("Helpdesk Password Operator"), None);
        assert_eq!(custom.label(), "Helpdesk Password Operator → u1");
        assert_eq!(
            custom.assigned(),
            "role Helpdesk Password Operator assigned to u1"
        );
        // A custom role named like a privileged built-in one is not privileged.
        let named_like_ga = assignment("custom-id", Some("Global Administrator"), None);
        assert_eq!(
            named_like_ga.assigned(),
            "role Global Administrator assigned to u1"
        );
        assert_eq!(assignment("r", None, None).label(), "r → u1");
    }
}
