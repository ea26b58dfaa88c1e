//! Server-only plumbing shared by every domain: the application state, typed accessors that
//! turn a missing context into a clear error, the session, and the guard each server function
//! starts with.

pub mod config;
pub mod csrf;
pub mod db;
pub mod events;
pub mod password;
pub mod request_id;
pub mod session_store;

use crate::access::policy::{guard_for, Guard};
use crate::access::{Permission, Role};
use crate::error::AppError;
use axum::extract::FromRef;
use leptos::prelude::*;
use std::sync::Arc;
use tower_sessions::Session;

pub use config::Config;
pub use db::Db;

/// Everything a request needs. Built once at boot; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    pub leptos_options: LeptosOptions,
    /// Recently verified API keys (≤ 1 s old).
    pub keys: crate::keys::ssr::KeyCache,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The REST API's OpenAPI document (JSON), built by the host from its route list at start-up,
/// for `/api/v1/openapi.json` and the in-app API docs pages.
static API_DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Builds the OpenAPI document once per process (every router of the process serves the same
/// routes; later calls do no work).
pub fn init_api_document(build: impl FnOnce() -> String) {
    API_DOCUMENT.get_or_init(build);
}

pub fn api_document() -> &'static str {
    API_DOCUMENT.get().map_or("{}", String::as_str)
}

/// The application state, provided to every server function and page render.
pub fn state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| AppError::internal("AppState missing from context"))
}

/// The database.
pub fn db() -> Result<Db, AppError> {
    Ok(state()?.db)
}

/// Session keys.
pub mod keys {
    /// The signed-in user's id.
    pub const USER_ID: &str = "user_id";
    /// When the user signed in (ms): the absolute timeout counts from here.
    pub const SIGNED_IN_AT: &str = "signed_in_at";
}

/// The current console session (tower-sessions puts it in the request extensions).
pub async fn session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>()
        .await
        .map_err(|e| AppError::internal(format!("no session layer: {e}")))
}

/// The signed-in user's id, if any, enforcing the absolute session timeout.
pub async fn session_user_id(
    session: &Session,
    config: &Config,
) -> Result<Option<String>, AppError> {
    let user_id: Option<String> = session
        .get(keys::USER_ID)
        .await
        .map_err(AppError::internal)?;
    let Some(user_id) = user_id else {
        return Ok(None);
    };
    let signed_in_at: i64 = session
        .get(keys::SIGNED_IN_AT)
        .await
        .map_err(AppError::internal)?
        .unwrap_or_default();
    if db::now_ms() - signed_in_at >= config.session_absolute.as_millis() as i64 {
        session.flush().await.map_err(AppError::internal)?;
        return Ok(None);
    }
    Ok(Some(user_id))
}

/// The caller of a guarded endpoint.
#[derive(Clone, Debug)]
pub struct Caller {
    pub state: AppState,
    /// `None` only for [`Guard::Public`] endpoints called without a session.
    pub user_id: Option<String>,
    /// The request's remote address, for events.
    pub source_ip: Option<String>,
}

impl Caller {
    /// The signed-in user's id (guards other than `Public` guarantee one).
    pub fn user_id(&self) -> Result<&str, AppError> {
        self.user_id
            .as_deref()
            .ok_or_else(AppError::unauthenticated)
    }
}

/// Enforces a declared guard for a session: returns the signed-in user's id (if any) when the
/// guard lets the call through. `None` (no declaration) is refused: deny by default. Used both
/// by [`guard`] (inside the function, which also covers calls made during server rendering)
/// and by the `/rpc` middleware (before the function runs).
pub async fn enforce(
    state: &AppState,
    declared: Option<Guard>,
    session: &Session,
) -> Result<Option<String>, AppError> {
    let Some(declared) = declared else {
        return Err(AppError::new(
            crate::error::ErrorCode::Forbidden,
            "endpoint not declared",
        ));
    };
    let user_id = session_user_id(session, &state.config).await?;
    match declared {
        Guard::Public => {}
        Guard::SignedIn | Guard::Org(_) => {
            user_id.as_deref().ok_or_else(AppError::unauthenticated)?;
        }
        Guard::Instance(permission) => {
            let user_id = user_id.as_deref().ok_or_else(AppError::unauthenticated)?;
            crate::access::ssr::require(
                &state.db,
                user_id,
                crate::access::ssr::SYSTEM_ORG_ID,
                permission,
            )
            .await?;
        }
    }
    Ok(user_id)
}

/// Enforces the guard declared for `endpoint` in [`crate::access::policy::SERVER_FNS`]. Every
/// server function starts with this; an endpoint without a declaration is refused.
pub async fn guard(endpoint: &str) -> Result<Caller, AppError> {
    let result = async {
        let state = state()?;
        let session = session().await?;
        let declared = guard_for(endpoint);
        if declared.is_none() {
            tracing::error!(endpoint, "server function without a declared guard refused");
        }
        let user_id = enforce(&state, declared, &session).await?;
        let source_ip = source_ip().await;
        Ok(Caller {
            state,
            user_id,
            source_ip,
        })
    }
    .await;
    result.inspect_err(set_error_status)
}

/// Middleware for `/rpc/*`: enforces the declared guard before the server function runs.
pub async fn rpc_middleware(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = request.uri().path();
    // Server functions are served on POST only; let the router answer 405 to anything else.
    if !path.starts_with(crate::access::policy::RPC_PREFIX)
        || request.method() != http::Method::POST
    {
        return next.run(request).await;
    }
    let declared = crate::access::policy::guard_for_path(path);
    let Some(session) = request.extensions().get::<Session>().cloned() else {
        return AppError::internal("session layer missing").into_response();
    };
    match enforce(&state, declared, &session).await {
        Ok(_) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// For [`Guard::Org`] endpoints: checks that the caller holds the endpoint's declared
/// permission in `organization_id` and returns their role there. The permission comes from
/// the declaration, so the check cannot drift from it.
pub async fn require_org(
    caller: &Caller,
    endpoint: &str,
    organization_id: &str,
) -> Result<Role, AppError> {
    let permission: Permission = match guard_for(endpoint) {
        Some(Guard::Org(p)) => p,
        other => {
            return Err(AppError::internal(format!(
                "require_org on {endpoint} declared as {other:?}"
            )))
            .inspect_err(set_error_status)
        }
    };
    crate::access::ssr::require(
        &caller.state.db,
        caller.user_id()?,
        organization_id,
        permission,
    )
    .await
    .inspect_err(set_error_status)
}

/// Sets the HTTP status of the current server-function response from an error's code.
pub fn set_error_status(err: &AppError) {
    if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(status) = http::StatusCode::from_u16(err.code.status()) {
            options.set_status(status);
        }
    }
}

/// Runs a server function body and gives its error, if any, the matching HTTP status.
pub async fn respond<T>(
    body: impl std::future::Future<Output = Result<T, AppError>>,
) -> Result<T, AppError> {
    body.await.inspect_err(set_error_status)
}

async fn source_ip() -> Option<String> {
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;
    leptos_axum::extract::<ConnectInfo<SocketAddr>>()
        .await
        .ok()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
}
