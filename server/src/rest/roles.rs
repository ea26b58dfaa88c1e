//! `/api/v1/roles`, `/api/v1/permissions` and `/api/v1/permission-groups`: the organization's
//! roles, dynamic permissions and permission groups over REST, for keys holding `roles:read` /
//! `roles:write`. The same functions as the console's Roles page, so the same lock, ceiling,
//! cycle and dependency rules (a key can never build a role granting more than it holds).

use super::json::ApiJson;
use app::access::ssr::Grant;
use app::access::{
    groups, roles, AssignResult, GroupPermissionChange, GroupView, NewGroup, NewPermission,
    NewRole, PermissionView, RoleAssignment, RoleGroupChange, RoleParents, RolePermissionChange,
    RoleView,
};
use app::error::AppError;
use app::ssr::AppState;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use http::StatusCode;

type Org = Extension<Grant>;

pub async fn list(
    State(state): State<AppState>,
    Extension(grant): Org,
) -> Result<Json<Vec<RoleView>>, AppError> {
    let catalog = roles::catalog(&state.db, &grant.organization_id).await?;
    Ok(Json(catalog.roles))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(grant): Org,
    Path(id): Path<String>,
) -> Result<Json<RoleView>, AppError> {
    Ok(Json(
        roles::role_view(&state.db, &grant.organization_id, &id).await?,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(grant): Org,
    ApiJson(input): ApiJson<NewRole>,
) -> Result<(StatusCode, Json<RoleView>), AppError> {
    let role = roles::create_role(
        &state.db,
        &grant,
        &input.name,
        &input.description,
        &input.parents,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(role)))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(grant): Org,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    roles::delete_role(&state.db, &grant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn set_parents(
    State(state): State<AppState>,
    Extension(grant): Org,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<RoleParents>,
) -> Result<Json<RoleView>, AppError> {
    Ok(Json(
        roles::set_parents(&state.db, &grant, &id, &input.parents, None).await?,
    ))
}

pub async fn set_permission(
    State(state): State<AppState>,
    Extension(grant): Org,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<RolePermissionChange>,
) -> Result<Json<RoleView>, AppError> {
    Ok(Json(
        roles::set_permission(
            &state.db,
            &grant,
            &id,
            &change.permission,
            change.granted,
            change.cascade,
        )
        .await?,
    ))
}

pub async fn set_group(
    State(state): State<AppState>,
    Extension(grant): Org,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<RoleGroupChange>,
) -> Result<Json<RoleView>, AppError> {
    Ok(Json(
        groups::set_role_group(&state.db, &grant, &id, &change.group_id, change.granted).await?,
    ))
}

pub async fn assign(
    State(state): State<AppState>,
    Extension(grant): Org,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<RoleAssignment>,
) -> Result<Json<Vec<AssignResult>>, AppError> {
    Ok(Json(
        roles::assign(&state.db, &grant, &id, &input.user_ids, input.assigned).await?,
    ))
}

pub async fn permissions(
    State(state): State<AppState>,
    Extension(grant): Org,
) -> Result<Json<Vec<PermissionView>>, AppError> {
    let catalog = roles::catalog(&state.db, &grant.organization_id).await?;
    Ok(Json(catalog.permissions))
}

pub async fn create_permission(
    State(state): State<AppState>,
    Extension(grant): Org,
    ApiJson(input): ApiJson<NewPermission>,
) -> Result<(StatusCode, Json<PermissionView>), AppError> {
    let permission = roles::create_permission(
        &state.db,
        &grant,
        &input.name,
        &input.description,
        &input.requires,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(permission)))
}

pub async fn list_groups(
    State(state): State<AppState>,
    Extension(grant): Org,
) -> Result<Json<Vec<GroupView>>, AppError> {
    let catalog = roles::catalog(&state.db, &grant.organization_id).await?;
    Ok(Json(catalog.groups))
}

pub async fn create_group(
    State(state): State<AppState>,
    Extension(grant): Org,
    ApiJson(input): ApiJson<NewGroup>,
) -> Result<(StatusCode, Json<GroupView>), AppError> {
    let group = groups::create_group(&state.db, &grant, &input.name, &input.permissions).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

pub async fn set_group_permission(
    State(state): State<AppState>,
    Extension(grant): Org,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<GroupPermissionChange>,
) -> Result<Json<GroupView>, AppError> {
    Ok(Json(
        groups::set_group_permission(&state.db, &grant, &id, &change.permission, change.included)
            .await?,
    ))
}

pub async fn delete_group(
    State(state): State<AppState>,
    Extension(grant): Org,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    groups::delete_group(&state.db, &grant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
