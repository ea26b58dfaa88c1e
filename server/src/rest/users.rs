//! `/api/v1/users`: the instance's users, for keys of the system organization holding
//! `users:read` / `users:write` (the same functions as the console's Users page).

use super::auth::ClientIp;
use super::json::{ApiJson, ApiQuery};
use app::access::ssr::Grant;
use app::admin::{ssr as users, NewUser, UserPage, UserQuery, UserStatusChange, UserSummary};
use app::error::AppError;
use app::ssr::AppState;
use axum::extract::{Path, State};
use axum::{Extension, Json};

pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<UserQuery>,
) -> Result<Json<UserPage>, AppError> {
    Ok(Json(users::list(&state.db, &query).await?))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<UserSummary>, AppError> {
    Ok(Json(users::get(&state.db, &id).await?))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    ApiJson(input): ApiJson<NewUser>,
) -> Result<(http::StatusCode, Json<UserSummary>), AppError> {
    let user = users::create(&state.db, &state.config, &grant, &input, ip.as_deref()).await?;
    Ok((http::StatusCode::CREATED, Json(user)))
}

pub async fn set_status(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(change): ApiJson<UserStatusChange>,
) -> Result<Json<UserSummary>, AppError> {
    let active = match change.status.as_str() {
        "active" => true,
        "disabled" => false,
        _ => return Err(AppError::invalid("status", "status is active or disabled")),
    };
    Ok(Json(
        users::set_status(&state, &grant, &id, active, ip.as_deref()).await?,
    ))
}

pub async fn password_reset(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> Result<http::StatusCode, AppError> {
    users::send_password_reset(&state.db, &state.config, &grant, &id, ip.as_deref()).await?;
    Ok(http::StatusCode::NO_CONTENT)
}

/// What ending a user's sessions did.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SessionsEnded {
    pub sessions_ended: u64,
}

pub async fn end_sessions(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> Result<Json<SessionsEnded>, AppError> {
    let sessions_ended = users::end_sessions(&state.db, &grant, &id, ip.as_deref()).await?;
    Ok(Json(SessionsEnded { sessions_ended }))
}

pub async fn sessions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<app::identity::SessionView>>, AppError> {
    Ok(Json(users::sessions_of(&state.db, &id).await?))
}

pub async fn end_session(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    Path((id, handle)): Path<(String, String)>,
) -> Result<http::StatusCode, AppError> {
    users::end_session(&state.db, &grant, &id, &handle, ip.as_deref()).await?;
    Ok(http::StatusCode::NO_CONTENT)
}

pub async fn reset_two_factor(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> Result<http::StatusCode, AppError> {
    users::reset_two_factor(&state.db, &state.config, &grant, &id, ip.as_deref()).await?;
    Ok(http::StatusCode::NO_CONTENT)
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
) -> Result<http::StatusCode, AppError> {
    users::delete(&state, &grant, &id, ip.as_deref()).await?;
    Ok(http::StatusCode::NO_CONTENT)
}
