//! `/api/v1/plans` and a key's limit (`PUT /api/v1/keys/{id}/limit`).

use super::auth::ClientIp;
use super::json::ApiJson;
use app::access::ssr::Grant;
use app::error::AppError;
use app::keys::ssr::{self as keys, Acting, KeyCache};
use app::keys::{ApiKey, KeyLimit};
use app::ssr::AppState;
use app::usage::{ssr as plans, Plan, PlanInput};
use axum::extract::{Path, State};
use axum::{Extension, Json};

pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Plan>>, AppError> {
    Ok(Json(plans::list(&state.db).await?))
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<PlanInput>,
) -> Result<(http::StatusCode, Json<Plan>), AppError> {
    Ok((
        http::StatusCode::CREATED,
        Json(plans::create(&state.db, &input).await?),
    ))
}

pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<PlanInput>,
) -> Result<Json<Plan>, AppError> {
    let plan = plans::update(&state.db, &id, &input).await?;
    // The plan's keys follow at once here, within the cache's bound elsewhere.
    KeyCache::of(&state)?.clear();
    Ok(Json(plan))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<http::StatusCode, AppError> {
    plans::delete(&state.db, &id).await?;
    Ok(http::StatusCode::NO_CONTENT)
}

pub async fn set_key_limit(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(limit): ApiJson<KeyLimit>,
) -> Result<Json<ApiKey>, AppError> {
    let key = keys::set_limit(&state, Acting::new(&grant, ip.as_deref()), &id, &limit).await?;
    Ok(Json(key))
}
