//! Server functions of the roles and permissions console. Each one names its endpoint, which
//! `access::policy::SERVER_FNS` guards; the rules (ceiling, cycles, dependencies, locking)
//! are in `access::roles`.

use super::{AssignResult, GroupView, PermissionView, RoleCatalog, RoleView};
use crate::error::AppError;
use leptos::prelude::*;

/// The organization's roles with their effective permissions and sources, its groups and its
/// permissions.
#[server(prefix = "/rpc", endpoint = "list_roles")]
pub async fn list_roles(organization_id: String) -> Result<RoleCatalog, AppError> {
    let (caller, grant) = super::guard::guard_in("list_roles", &organization_id).await?;
    crate::ssr::respond(super::roles::catalog(
        &caller.state.db,
        &grant.organization_id,
    ))
    .await
}

/// Creates a custom role inheriting `parents`.
#[server(prefix = "/rpc", endpoint = "create_role")]
pub async fn create_role(
    organization_id: String,
    name: String,
    #[server(default)] description: String,
    #[server(default)] parents: Vec<String>,
) -> Result<RoleView, AppError> {
    let (caller, grant) = super::guard::guard_in("create_role", &organization_id).await?;
    crate::ssr::respond(async move {
        super::roles::create_role(&caller.state.db, &grant, &name, &description, &parents).await
    })
    .await
}

/// Re-parents a custom role (a cycle is refused, naming it).
#[server(prefix = "/rpc", endpoint = "set_role_parents")]
pub async fn set_role_parents(
    organization_id: String,
    role_id: String,
    #[server(default)] parents: Vec<String>,
    #[server(default)] loaded: Option<String>,
) -> Result<RoleView, AppError> {
    let (caller, grant) = super::guard::guard_in("set_role_parents", &organization_id).await?;
    crate::ssr::respond(async move {
        // The parents the page was loaded with, as a JSON list (the page always sends it).
        let loaded: Option<Vec<String>> =
            crate::ssr::parse_loaded(loaded, "a JSON list of role ids")?;
        super::roles::set_parents(
            &caller.state.db,
            &grant,
            &role_id,
            &parents,
            loaded.as_deref(),
        )
        .await
    })
    .await
}

/// Grants a permission to a custom role (`granted = true`) or takes it away (`cascade`: with
/// what the role lists that requires it).
#[server(prefix = "/rpc", endpoint = "set_role_permission")]
pub async fn set_role_permission(
    organization_id: String,
    role_id: String,
    permission: String,
    granted: bool,
    #[server(default)] cascade: bool,
) -> Result<RoleView, AppError> {
    let (caller, grant) = super::guard::guard_in("set_role_permission", &organization_id).await?;
    crate::ssr::respond(async move {
        super::roles::set_permission(
            &caller.state.db,
            &grant,
            &role_id,
            &permission,
            granted,
            cascade,
        )
        .await
    })
    .await
}

/// Deletes a custom role.
#[server(prefix = "/rpc", endpoint = "delete_role")]
pub async fn delete_role(organization_id: String, role_id: String) -> Result<(), AppError> {
    let (caller, grant) = super::guard::guard_in("delete_role", &organization_id).await?;
    crate::ssr::respond(async move {
        super::roles::delete_role(&caller.state.db, &grant, &role_id).await
    })
    .await
}

/// Defines a dynamic permission (`invoices:read`) and what it requires.
#[server(prefix = "/rpc", endpoint = "create_permission")]
pub async fn create_permission(
    organization_id: String,
    name: String,
    #[server(default)] description: String,
    #[server(default)] requires: Vec<String>,
) -> Result<PermissionView, AppError> {
    let (caller, grant) = super::guard::guard_in("create_permission", &organization_id).await?;
    crate::ssr::respond(async move {
        super::roles::create_permission(&caller.state.db, &grant, &name, &description, &requires)
            .await
    })
    .await
}

/// Assigns a custom role to members in bulk (`assign = false`: takes it away), with a result
/// per user.
#[server(prefix = "/rpc", endpoint = "assign_role")]
pub async fn assign_role(
    organization_id: String,
    role_id: String,
    user_ids: Vec<String>,
    assign: bool,
) -> Result<Vec<AssignResult>, AppError> {
    let (caller, grant) = super::guard::guard_in("assign_role", &organization_id).await?;
    crate::ssr::respond(async move {
        super::roles::assign(&caller.state.db, &grant, &role_id, &user_ids, assign).await
    })
    .await
}

/// Creates a permission group (granting nothing until a role holds it).
#[server(prefix = "/rpc", endpoint = "create_group")]
pub async fn create_group(
    organization_id: String,
    name: String,
    #[server(default)] permissions: String,
) -> Result<GroupView, AppError> {
    let (caller, grant) = super::guard::guard_in("create_group", &organization_id).await?;
    crate::ssr::respond(async move {
        // A form's comma- or line-separated list.
        let permissions: Vec<String> = permissions
            .split([',', '\n'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect();
        super::groups::create_group(&caller.state.db, &grant, &name, &permissions).await
    })
    .await
}

/// Adds a permission to a group (`included = true`) or takes it out.
#[server(prefix = "/rpc", endpoint = "set_group_permission")]
pub async fn set_group_permission(
    organization_id: String,
    group_id: String,
    permission: String,
    included: bool,
) -> Result<GroupView, AppError> {
    let (caller, grant) = super::guard::guard_in("set_group_permission", &organization_id).await?;
    crate::ssr::respond(async move {
        super::groups::set_group_permission(
            &caller.state.db,
            &grant,
            &group_id,
            &permission,
            included,
        )
        .await
    })
    .await
}

/// Grants a group to a custom role (`granted = true`) or takes it away.
#[server(prefix = "/rpc", endpoint = "set_role_group")]
pub async fn set_role_group(
    organization_id: String,
    role_id: String,
    group_id: String,
    granted: bool,
) -> Result<RoleView, AppError> {
    let (caller, grant) = super::guard::guard_in("set_role_group", &organization_id).await?;
    crate::ssr::respond(async move {
        super::groups::set_role_group(&caller.state.db, &grant, &role_id, &group_id, granted).await
    })
    .await
}

/// Deletes a group.
#[server(prefix = "/rpc", endpoint = "delete_group")]
pub async fn delete_group(organization_id: String, group_id: String) -> Result<(), AppError> {
    let (caller, grant) = super::guard::guard_in("delete_group", &organization_id).await?;
    crate::ssr::respond(async move {
        super::groups::delete_group(&caller.state.db, &grant, &group_id).await
    })
    .await
}
