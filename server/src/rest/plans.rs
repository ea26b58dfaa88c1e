//! `/api/v1/plans` and a key's limit (`PUT /api/v1/keys/{id}/limit`).

use super::auth::ClientIp;
use super::json::ApiJson;
use app::access::ssr::Grant;
use app::error::AppError;
use app::keys::ssr::{self as keys, Acting};
use app::keys::{ApiKey, KeyLimit};
use app::ssr::AppState;
use app::usage::{ssr as plans, Plan, PlanInput};
use axum::extract::{Path, State};
use axum::{Extension, Json};

pub async fn list(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
) -> Result<Json<Vec<Plan>>, AppError> {
    Ok(Json(plans::list_for(&state.db, &grant.principal).await?))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiJson(input): ApiJson<PlanInput>,
) -> Result<(http::StatusCode, Json<Plan>), AppError> {
    Ok((
        http::StatusCode::CREATED,
        Json(plans::create(&state.db, &grant, &input).await?),
    ))
}

pub async fn update(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<PlanInput>,
) -> Result<Json<Plan>, AppError> {
    Ok(Json(
        plans::update_applied(&state, &grant, &id, &input).await?,
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
) -> Result<http::StatusCode, AppError> {
    plans::delete(&state.db, &grant, &id).await?;
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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    #[serde(default)]
    range: Option<String>,
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    route: Option<String>,
    #[serde(default)]
    tz_offset_minutes: Option<i32>,
}

/// `GET /api/v1/usage`: the calling key's organization only.
pub async fn usage(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    super::json::ApiQuery(q): super::json::ApiQuery<UsageQuery>,
) -> Result<Json<app::usage::UsageReport>, AppError> {
    use app::usage::stats;
    let (range, filter) = stats::parse_view(
        q.range.as_deref().unwrap_or("24h"),
        q.key_id.as_deref().unwrap_or(""),
        q.route.as_deref().unwrap_or(""),
    )?;
    let now = app::ssr::db::now_ms();
    let reader = stats::Reader::of(&state.db, &grant).await?;
    Ok(Json(app::usage::UsageReport {
        series: stats::series(
            &state.db,
            &reader,
            range,
            &filter,
            now,
            q.tz_offset_minutes.unwrap_or(0),
        )
        .await?,
        summary: stats::summary(&state.db, &reader, range, &filter, now).await?,
    }))
}

/// `GET /api/v1/usage/errors`: the calling key's organization only.
pub async fn errors(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    super::json::ApiQuery(q): super::json::ApiQuery<UsageQuery>,
) -> Result<Json<app::usage::ErrorReport>, AppError> {
    use app::usage::stats;
    let (range, filter) = stats::parse_view(
        q.range.as_deref().unwrap_or("24h"),
        q.key_id.as_deref().unwrap_or(""),
        q.route.as_deref().unwrap_or(""),
    )?;
    let reader = stats::Reader::of(&state.db, &grant).await?;
    Ok(Json(
        stats::errors(
            &state.db,
            &reader,
            range,
            &filter,
            app::ssr::db::now_ms(),
            q.tz_offset_minutes.unwrap_or(0),
        )
        .await?,
    ))
}

/// `GET /api/v1/usage/export`: the calling key's organization only.
pub async fn export(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    super::json::ApiQuery(q): super::json::ApiQuery<crate::export::ExportQuery>,
) -> Result<axum::response::Response, AppError> {
    if q.organization_id.is_some() {
        return Err(AppError::invalid(
            "organization_id",
            "a key exports its own organization's usage; leave organization_id out",
        ));
    }
    crate::export::stream(&state, &grant, &q).await
}

/// `GET /api/v1/keys/{id}/usage`: a key of the calling key's organization.
pub async fn key_usage(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
) -> Result<Json<app::usage::KeyLimitUsage>, AppError> {
    let reader = app::usage::stats::Reader::of(&state.db, &grant).await?;
    Ok(Json(plans::key_usage(&state, &reader, &id).await?))
}
