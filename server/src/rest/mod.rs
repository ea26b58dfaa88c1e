//! Plain HTTP routes: health, and the `/api/v1` REST API authenticated by API keys.
//!
//! Every route is declared in [`routes`] with its [`Access`]: the router is built from that
//! list, so a route cannot exist without a declaration, and a test walks the same list. A
//! `Key(permission)` route gets the key pipeline ([`auth::require_key`]) with that permission.

pub mod auth;
pub mod health;
pub mod json;
pub mod keys;

use app::access::Permission;
use app::ssr::AppState;
use axum::routing::{delete, get, patch, post, MethodRouter};
use axum::Router;
use http::Method;

/// Who may call a REST route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credentials (health checks, the OpenAPI document).
    Public,
    /// An API key holding this permission in its own organization.
    Key(Permission),
}

/// One declared route.
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: MethodRouter<AppState>,
    /// Largest body accepted.
    pub body_limit: usize,
}

fn spec(
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        handler,
        body_limit: crate::MAX_BODY_BYTES,
    }
}

/// Every REST route.
pub fn routes() -> Vec<RouteSpec> {
    use Access::{Key, Public};
    use Permission::{KeysRead, KeysWrite};
    vec![
        spec(Method::GET, "/healthz", Public, get(health::healthz)),
        spec(Method::GET, "/livez", Public, get(health::livez)),
        spec(Method::GET, "/api/v1/me", Key(KeysRead), get(keys::me)),
        spec(Method::GET, "/api/v1/keys", Key(KeysRead), get(keys::list)),
        spec(
            Method::POST,
            "/api/v1/keys",
            Key(KeysWrite),
            post(keys::create),
        ),
        spec(
            Method::POST,
            "/api/v1/keys/verify",
            Key(KeysRead),
            post(keys::verify),
        ),
        spec(
            Method::POST,
            "/api/v1/keys/bulk",
            Key(KeysWrite),
            post(keys::bulk),
        ),
        spec(
            Method::GET,
            "/api/v1/keys/export",
            Key(KeysRead),
            get(keys::export),
        ),
        RouteSpec {
            body_limit: crate::IMPORT_MAX_BYTES,
            ..spec(
                Method::POST,
                "/api/v1/keys/import",
                Key(KeysWrite),
                post(keys::import),
            )
        },
        spec(
            Method::PATCH,
            "/api/v1/keys/{id}",
            Key(KeysWrite),
            patch(keys::update),
        ),
        spec(
            Method::GET,
            "/api/v1/keys/{id}",
            Key(KeysRead),
            get(keys::get),
        ),
        spec(
            Method::DELETE,
            "/api/v1/keys/{id}",
            Key(KeysWrite),
            delete(keys::revoke),
        ),
        spec(
            Method::POST,
            "/api/v1/keys/{id}/enable",
            Key(KeysWrite),
            post(keys::enable),
        ),
        spec(
            Method::POST,
            "/api/v1/keys/{id}/disable",
            Key(KeysWrite),
            post(keys::disable),
        ),
        spec(
            Method::POST,
            "/api/v1/keys/{id}/roll",
            Key(KeysWrite),
            post(keys::roll),
        ),
        spec(
            Method::GET,
            "/api/v1/keys/{id}/history",
            Key(KeysRead),
            get(keys::history),
        ),
    ]
}

pub fn router(state: &AppState) -> Router<AppState> {
    routes().into_iter().fold(Router::new(), |router, spec| {
        let handler = match spec.access {
            Access::Public => spec.handler,
            Access::Key(permission) => {
                spec.handler
                    .route_layer(axum::middleware::from_fn_with_state(
                        (state.clone(), permission),
                        auth::require_key,
                    ))
            }
        };
        router.route(
            spec.path,
            handler.layer(tower_http::limit::RequestBodyLimitLayer::new(
                spec.body_limit,
            )),
        )
    })
}
