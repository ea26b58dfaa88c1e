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
    let reader = app::usage::stats::Reader::of(&state.db, &grant).await?;
    Ok(Json(audit::list(&state.db, &reader, &query).await?))
}

/// `GET /api/v1/audit/export`: the same entries, every page, streamed as CSV or JSON.
pub async fn export(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiQuery(q): ApiQuery<crate::export::AuditExportQuery>,
) -> Result<axum::response::Response, AppError> {
    if q.organization_id.is_some() {
        return Err(AppError::invalid(
            "organization_id",
            "a key exports its own organization's audit log; leave organization_id out",
        ));
    }
    crate::export::audit_stream(&state, &grant, &q).await
}
