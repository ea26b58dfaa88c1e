//! The axum host: builds the application state and the router. `main.rs` is a thin CLI over
//! this library, and the HTTP tests drive [`router`] directly with `tower::ServiceExt::oneshot`.

pub mod boot;
pub mod cli;
pub mod rest;

use app::ssr::{csrf, request_id, session_store::DbSessionStore, AppState};
use app::{shell, App};
use axum::{middleware, Router};
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::limit::RequestBodyLimitLayer;
use tower_sessions::{cookie::SameSite, Expiry, SessionManagerLayer};

/// Largest request body accepted anywhere (the console sends small forms; the REST API's
/// imports will get their own, larger limit).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole application: REST routes, server functions, server-rendered pages and static
/// files, behind request ids, body limits, sessions and the CSRF check.
pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.db.clone()))
        .with_name(config.session_cookie_name())
        .with_secure(config.secure_cookies())
        .with_http_only(true)
        .with_same_site(SameSite::Strict)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
            config.session_idle.as_secs() as i64,
        )));

    let routes = generate_route_list(App);
    Router::new()
        .merge(rest::router(&state))
        .leptos_routes(&state, routes, {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            app::ssr::rpc_middleware,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            csrf::middleware,
        ))
        .layer(sessions)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(middleware::from_fn(request_id::middleware))
        .with_state(state)
}
