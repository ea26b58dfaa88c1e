//! `/api/v1/members` and `/api/v1/invitations`: the organization's members and invitations
//! over REST, for keys holding `members:read` / `members:write`. The same functions, lock and
//! ceiling rules as the console's members page (a key can neither make someone an admin nor
//! invite one beyond what it holds; the last owner stays).

use super::json::ApiJson;
use app::access::ssr::Grant;
use app::error::AppError;
use app::orgs::{members, Invitation, Member, MemberRoleChange, NewInvitation};
use app::ssr::AppState;
use axum::extract::{Path, State};
use axum::{Extension, Json};

/// Anyone who is not a member of the key's organization is "not found", before any other
/// rule speaks (no probing of who belongs elsewhere).
async fn member_here(state: &AppState, grant: &Grant, user_id: &str) -> Result<(), AppError> {
    if members::is_member(&state.db, user_id, &grant.organization_id).await? {
        Ok(())
    } else {
        Err(AppError::not_found("member"))
    }
}

pub async fn list(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
) -> Result<Json<Vec<Member>>, AppError> {
    Ok(Json(
        members::members(&state.db, &grant.organization_id).await?,
    ))
}

pub async fn set_role(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<MemberRoleChange>,
) -> Result<Json<Member>, AppError> {
    member_here(&state, &grant, &id).await?;
    members::set_member_role(&state.db, &grant, &id, &change.role).await?;
    members::members(&state.db, &grant.organization_id)
        .await?
        .into_iter()
        .find(|m| m.user_id == id)
        .map(Json)
        .ok_or_else(|| AppError::not_found("member"))
}

pub async fn remove(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
) -> Result<http::StatusCode, AppError> {
    member_here(&state, &grant, &id).await?;
    members::remove_member(&state.db, &grant, &id).await?;
    Ok(http::StatusCode::NO_CONTENT)
}

pub async fn invitations(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
) -> Result<Json<Vec<Invitation>>, AppError> {
    Ok(Json(
        members::invitations(&state.db, &grant.organization_id).await?,
    ))
}

pub async fn invite(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiJson(input): ApiJson<NewInvitation>,
) -> Result<(http::StatusCode, Json<Invitation>), AppError> {
    let config = &state.config;
    let invitation = members::invite(&state.db, &grant, config, &input.email, &input.role).await?;
    Ok((http::StatusCode::CREATED, Json(invitation)))
}

pub async fn revoke_invitation(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
) -> Result<http::StatusCode, AppError> {
    members::revoke_invitation(&state.db, &grant, &id).await?;
    Ok(http::StatusCode::NO_CONTENT)
}
