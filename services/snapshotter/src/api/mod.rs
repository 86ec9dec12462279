//! The gRPC face of the snapshotter: [`backup::BackupApi`] and
//! [`timetravel::TimeTravelApi`]. Every call checks the caller's tenant and role first.

pub mod backup;
pub mod timetravel;

use backtrack_platform::auth::{Caller, Role};
use tonic::Status;

use crate::Snapshotter;

/// Roles that may read backups and the directory's past.
pub const READERS: &[Role] = &[
    Role::BackupReader,
    Role::BackupAdministrator,
    Role::GlobalAdministrator,
];
/// Roles that may take, pin, unpin and verify backups and set policies.
pub const ADMINISTRATORS: &[Role] = &[Role::BackupAdministrator, Role::GlobalAdministrator];

/// Checks the tenant id, the caller's access to it and its existence, and one of `roles`.
pub fn authorize(
    snapshotter: &Snapshotter,
    caller: &Caller,
    tenant: &str,
    roles: &[Role],
    action: &str,
) -> Result<(), Status> {
    backtrack_domain::validate::tenant_id(tenant)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    caller.require_tenant(tenant)?;
    caller.require_any_role(roles, action)?;
    snapshotter.require_tenant(tenant).map_err(Status::from)
}
