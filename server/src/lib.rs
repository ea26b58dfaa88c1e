//! The axum host: builds the application state and the router. `main.rs` is a thin CLI over
//! this library, and the HTTP tests drive [`router`] directly with `tower::ServiceExt::oneshot`.

pub mod boot;
pub mod cli;
pub mod export;
pub mod live;
pub mod metrics;
pub mod rest;
pub mod workers;

use app::ssr::{csrf, request_id, session_store::DbSessionStore, AppState};
use app::{shell, App};
use axum::{middleware, Router};
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::limit::RequestBodyLimitLayer;
use tower_sessions::{cookie::SameSite, Expiry, SessionManagerLayer};

/// Largest request body accepted by default: the console sends small forms, the REST API small
/// JSON documents.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest body of a key import (1000 rows fit comfortably), over REST or from the console.
pub const IMPORT_MAX_BYTES: usize = 1024 * 1024;

/// The whole application: REST routes, server functions, server-rendered pages and static
/// files, behind request ids, body limits, sessions and the CSRF check.
pub fn router(state: AppState) -> Router {
    request_id::init_executor();
    let config = state.config.clone();
    app::ssr::init_api_document(|| rest::openapi::document(config.link_base()).to_string());
    let sessions = SessionManagerLayer::new(DbSessionStore::new(
        state.db.clone(),
        config.session_absolute,
    ))
    .with_name(config.session_cookie_name())
    .with_secure(config.secure_cookies())
    .with_http_only(true)
    .with_same_site(SameSite::Strict)
    .with_path("/")
    .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
        config.session_idle.as_secs() as i64,
    )));

    // Once per process: route-list generation sets a process-wide "suppress resource loads"
    // flag, and a page rendering on another thread meanwhile (a second app in the same
    // process, as the tests build) would wait forever on a resource first polled under it
    // (leptos-rs/leptos#4773). Every later app reuses the list.
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> =
        std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| generate_route_list(App)).clone();
    // Pages and server functions take small bodies, except the console's key import.
    let site = Router::new()
        // The renderer's tasks do not inherit the request's task-local: the request id, user
        // agent and impersonator reach the server functions a page runs through its context.
        .leptos_routes_with_context(&state, routes, request_id::provide, {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(request_id::provide, shell))
        .layer(middleware::from_fn(site_body_limit))
        .layer(middleware::from_fn(pages_not_stored));
    // The console (pages, server functions, its event stream and export) is what sessions
    // serve; the key-authenticated REST API and the bundle never read a cookie, so their hot
    // path skips the session layer and the server-function guard.
    let console = Router::new()
        .route("/events/usage", axum::routing::get(live::usage_events))
        .route("/usage/export", axum::routing::get(export::console))
        .route("/audit/export", axum::routing::get(export::audit_console))
        .merge(site)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            app::access::guard::rpc_middleware,
        ))
        .layer(sessions);
    Router::new()
        .merge(rest::router(&state))
        .nest_service(
            &format!("/{}", state.leptos_options.site_pkg_dir),
            assets(&state),
        )
        .merge(console)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            csrf::middleware,
        ))
        .layer(RequestBodyLimitLayer::new(IMPORT_MAX_BYTES))
        .layer(middleware::from_fn(request_id::middleware))
        .layer(middleware::from_fn_with_state(
            config.secure_cookies(),
            security_headers,
        ))
        .with_state(state)
}

/// The policy of everything else (JSON, the bundle, event streams): nothing runs from it.
pub const OTHER_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Headers on every response: a Content-Security-Policy (a page rendered by the app carries
/// its own with the response's script nonce, `app::ssr::page_policy`; any other HTML gets that
/// policy without a nonce, and the rest [`OTHER_POLICY`]), `nosniff`, the referrer only to
/// ourselves (links carry tokens; the no-script form fallback needs it), no framing for older
/// browsers, and HSTS when the public origin is HTTPS.
async fn security_headers(
    axum::extract::State(https): axum::extract::State<bool>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    use http::{header, HeaderValue};
    let mut response = next.run(request).await;
    let html = is_html(&response);
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let policy = if html {
            HeaderValue::from_str(&app::ssr::page_policy(None))
                .unwrap_or(HeaderValue::from_static(OTHER_POLICY))
        } else {
            HeaderValue::from_static(OTHER_POLICY)
        };
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

/// The built bundle (`/pkg/…`): a precompressed brotli or gzip file when the browser accepts
/// it and the build made one (`cargo leptos build --release --precompress`); a year of
/// immutable caching for names that carry a content hash, revalidation for the rest.
fn assets(state: &AppState) -> Router {
    let options = &state.leptos_options;
    let dir = std::path::Path::new(&*options.site_root).join(&*options.site_pkg_dir);
    let files = tower_http::services::ServeDir::new(dir)
        .precompressed_br()
        .precompressed_gzip();
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn(asset_cache_control))
}

async fn asset_cache_control(
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let hashed = has_content_hash(request.uri().path());
    let mut response = next.run(request).await;
    let cache = if hashed && response.status().is_success() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static(cache),
    );
    response
}

/// `keyward.<22 base64url characters>.wasm`: cargo-leptos' content-hashed names.
pub fn has_content_hash(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() >= 3
        && parts[1..parts.len() - 1].iter().any(|p| {
            p.len() == 22
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Whether the response is a page.
fn is_html(response: &axum::response::Response) -> bool {
    response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

/// Pages carry signed-in data: never stored by a browser or proxy cache.
async fn pages_not_stored(
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    let html = is_html(&response);
    if html && !response.headers().contains_key(http::header::CACHE_CONTROL) {
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
    }
    response
}

/// The body limit of pages and server functions: [`MAX_BODY_BYTES`], or
/// [`IMPORT_MAX_BYTES`] for the console's key import; and no NUL in a server function's body
/// ([`nul`]).
/// Why a request body could not be read: over the limit (413), or cut off or malformed on
/// the way (400).
fn body_refusal(e: &axum::Error) -> app::error::AppError {
    use app::error::{AppError, ErrorCode};
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return AppError::new(ErrorCode::PayloadTooLarge, "the request body is too large");
        }
        cause = c.source();
    }
    AppError::new(
        ErrorCode::InvalidInput,
        "the request body could not be read",
    )
}

async fn site_body_limit(
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    let limit = if request.uri().path() == "/rpc/import_keys" {
        IMPORT_MAX_BYTES
    } else {
        MAX_BODY_BYTES
    };
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        use axum::response::IntoResponse;
        return app::error::AppError::new(
            app::error::ErrorCode::PayloadTooLarge,
            "the request body is too large",
        )
        .into_response();
    }
    // A body without a length (chunked) is cut off at the limit while it is read.
    let (parts, body) = request.into_parts();
    let body = axum::body::Body::new(http_body_util::Limited::new(body, limit));
    // A server function's body (a form, or JSON) is read here to refuse a NUL in it.
    let body = if parts.method == http::Method::POST
        && parts
            .uri
            .path()
            .starts_with(app::access::policy::RPC_PREFIX)
    {
        use axum::response::IntoResponse;
        let bytes = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => bytes,
            Err(e) => return body_refusal(&e).into_response(),
        };
        // Whatever the Content-Type says: the functions decode their bodies as forms (a form
        // body cannot hold a JSON escape's backslash unencoded, so both checks are safe).
        if app::ssr::nul::in_url(&bytes) || app::ssr::nul::in_json(&bytes) {
            return app::ssr::nul::refused().into_response();
        }
        axum::body::Body::from(bytes)
    } else {
        body
    };
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}
