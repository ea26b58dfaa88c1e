//! `GET /healthz`: 200 when the database answers, 503 otherwise (readiness, for load
//! balancers). `GET /livez`: 200 while the process serves HTTP (liveness; no database).

use app::error::{AppError, ErrorCode};
use app::ssr::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

pub async fn healthz(State(state): State<AppState>) -> Response {
    match state.db.ping().await {
        Ok(()) => Json(serde_json::json!({ "status": "ok", "database": format!("{:?}", state.db.backend).to_lowercase() })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: database unreachable");
            AppError::new(ErrorCode::Unavailable, "database unavailable").into_response()
        }
    }
}

pub async fn livez() -> &'static str {
    "ok"
}
