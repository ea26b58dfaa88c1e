//! Plain HTTP routes (health today; the `/api/v1` resources arrive with the API keys domain).
//!
//! Every route is declared in [`routes`] with its [`Access`]: the router is built from that
//! list, so a route cannot exist without a declaration, and a test walks the same list.

pub mod health;

use app::access::Permission;
use app::ssr::AppState;
use axum::routing::MethodRouter;
use axum::Router;

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
    pub method: http::Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: MethodRouter<AppState>,
}

/// Every REST route.
pub fn routes() -> Vec<RouteSpec> {
    vec![RouteSpec {
        method: http::Method::GET,
        path: "/healthz",
        access: Access::Public,
        handler: axum::routing::get(health::healthz),
    }]
}

pub fn router() -> Router<AppState> {
    routes()
        .into_iter()
        .fold(Router::new(), |r, spec| r.route(spec.path, spec.handler))
}
