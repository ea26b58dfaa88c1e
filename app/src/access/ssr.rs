//! The one authorization function: (principal, organization, permission) → allow or deny.
//! Every server function and REST route goes through [`require`].

use super::{Permission, Role};
use crate::error::AppError;
use crate::ssr::Db;

/// The instance organization: roles held here make instance administrators.
pub const SYSTEM_ORG_ID: &str = "org_system";

/// The user's role in the organization, if they are a member.
pub async fn role_in(
    db: &Db,
    user_id: &str,
    organization_id: &str,
) -> Result<Option<Role>, AppError> {
    let role: Option<String> = sqlx::query_scalar(
        "select m.role from membership m join app_user u on u.user_id = m.user_id
         where m.user_id = $1 and m.organization_id = $2 and u.status = 'active'",
    )
    .bind(user_id)
    .bind(organization_id)
    .fetch_optional(&db.reader)
    .await?;
    Ok(role.as_deref().and_then(Role::parse))
}

/// Allows the call when the user's role in `organization_id` grants `permission`; otherwise a
/// 403 naming the permission. Not being a member at all is the same 403, so that the answer
/// does not reveal whether an organization exists.
pub async fn require(
    db: &Db,
    user_id: &str,
    organization_id: &str,
    permission: Permission,
) -> Result<Role, AppError> {
    match role_in(db, user_id, organization_id).await? {
        Some(role) if role.allows(permission) => Ok(role),
        _ => Err(AppError::forbidden(permission.as_str())),
    }
}

/// The permissions the user holds in the system organization (empty for non-admins): drives
/// which admin menus the console shows.
pub async fn instance_permissions(db: &Db, user_id: &str) -> Result<Vec<Permission>, AppError> {
    Ok(role_in(db, user_id, SYSTEM_ORG_ID)
        .await?
        .map(Role::permissions)
        .unwrap_or_default())
}
