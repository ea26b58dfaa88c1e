//! `/api/v1/teams`: the organization's teams over REST, for keys holding `members:read` /
//! `members:write` (roles: `roles:write`); the same functions, lock and ceiling rules as the
//! console's Teams section.

use super::json::ApiJson;
use app::access::ssr::Grant;
use app::error::AppError;
use app::ssr::AppState;
use app::teams::{ssr as teams, NewTeam, Team, TeamMembership, TeamRoleChange};
use axum::extract::{Path, State};
use axum::{Extension, Json};

pub async fn list(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
) -> Result<Json<Vec<Team>>, AppError> {
    Ok(Json(teams::list(&state.db, &grant.organization_id).await?))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
) -> Result<Json<Team>, AppError> {
    Ok(Json(
        teams::get(&state.db, &grant.organization_id, &id).await?,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiJson(input): ApiJson<NewTeam>,
) -> Result<(http::StatusCode, Json<Team>), AppError> {
    let team = teams::create(&state.db, &grant, &input.name, &input.description).await?;
    Ok((http::StatusCode::CREATED, Json(team)))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
) -> Result<http::StatusCode, AppError> {
    teams::delete(&state.db, &grant, &id).await?;
    Ok(http::StatusCode::NO_CONTENT)
}

pub async fn set_member(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<TeamMembership>,
) -> Result<Json<Team>, AppError> {
    teams::set_member(&state.db, &grant, &id, &change.user_id, change.member).await?;
    Ok(Json(
        teams::get(&state.db, &grant.organization_id, &id).await?,
    ))
}

pub async fn set_role(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<TeamRoleChange>,
) -> Result<Json<Team>, AppError> {
    teams::set_role(&state.db, &grant, &id, &change.role_id, change.held).await?;
    Ok(Json(
        teams::get(&state.db, &grant.organization_id, &id).await?,
    ))
}
