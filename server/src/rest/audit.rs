//! `GET /api/v1/audit`: the audit log of the key's organization (the whole instance's for a
//! key of the system organization), with the console's filters.

use super::json::ApiQuery;
use app::access::ssr::Grant;
use app::audit::{ssr as audit, AuditPage, AuditQuery};
use app::error::AppError;
use app::ssr::AppState;
use axum::extract::State;
use axum::{Extension, Json};

pub async fn list(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, AppError> {
    Ok(Json(
        audit::list(&state.db, &grant.organization_id, &query).await?,
    ))
}
