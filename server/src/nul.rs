//! The edge's NUL refusal ([`app::ssr::nul`]): the URI of every request.

use app::ssr::nul::{in_url, refused};
use axum::response::IntoResponse;

/// Refuses a request whose path or query string holds a NUL.
pub async fn middleware(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let uri = request.uri();
    let held = in_url(uri.path().as_bytes()) || uri.query().is_some_and(|q| in_url(q.as_bytes()));
    if held {
        return refused().into_response();
    }
    next.run(request).await
}
