//! Cross-site request forgery defence for the cookie-authenticated console.
//!
//! Leptos server functions have no built-in CSRF protection, so every state-changing request
//! (any method but GET, HEAD, OPTIONS) to the console is checked here: a `Sec-Fetch-Site` other
//! than `same-origin` / `none`, or an `Origin` that is neither the public origin nor the
//! request's own host, is refused with 403 `csrf_rejected`. Every browser sends at least one
//! of the two on such requests; a client that sends neither (curl, a test) carries no ambient
//! browser credentials to abuse. Session cookies are also `SameSite=Strict`, and server
//! functions are only served on POST, so no mutation has a GET encoding.
//!
//! The key-authenticated REST API (`/api/v1`) takes no cookies and is not checked here.

use super::AppState;
use crate::error::AppError;
use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http::{header, HeaderMap, Method};

/// Paths any `Host` may reach: probes of load balancers and orchestrators, which address an
/// instance by its own IP.
const ANY_HOST: &[&str] = &["/livez", "/healthz", "/metrics"];

/// The host a request is addressed to: `Host`, or the URI's authority (HTTP/2).
fn request_host<'a>(headers: &'a HeaderMap, uri: &'a http::Uri) -> Option<&'a str> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
}

/// Whether a request is addressed to one of our hosts. A page on another name that resolves
/// to this instance (DNS rebinding) carries that name in `Host`, and is refused.
pub fn host_allowed(host: Option<&str>, allowed_hosts: &[String]) -> bool {
    host.is_some_and(|h| allowed_hosts.iter().any(|a| a.eq_ignore_ascii_case(h)))
}

/// Whether a state-changing request may proceed: `Sec-Fetch-Site` when present must be
/// `same-origin` or `none`, and `Origin` when present must be the public origin or the listen
/// address (`http://<allowed host>`).
pub fn allowed(
    method: &Method,
    headers: &HeaderMap,
    public_origin: &str,
    allowed_hosts: &[String],
) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        match site.to_str() {
            Ok("same-origin") | Ok("none") => {}
            _ => return false,
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        return origin == public_origin
            || origin
                .strip_prefix("http://")
                .is_some_and(|authority| host_allowed(Some(authority), allowed_hosts));
    }
    true
}

/// Middleware for every route: the `Host` check, then, for the console (pages and `/rpc`),
/// the cross-site check. The key-authenticated REST API (`/api/v1`) takes no cookies and is
/// not checked for cross-site requests.
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let config = &state.config;
    if !ANY_HOST.contains(&path)
        && !host_allowed(
            request_host(request.headers(), request.uri()),
            &config.allowed_hosts,
        )
    {
        tracing::warn!(path, "request for a foreign host refused");
        return AppError::new(
            crate::error::ErrorCode::CsrfRejected,
            "this instance does not serve that host name",
        )
        .into_response();
    }
    if path.starts_with("/api/v1")
        || allowed(
            request.method(),
            request.headers(),
            &config.origin_string(),
            &config.allowed_hosts,
        )
    {
        next.run(request).await
    } else {
        tracing::warn!(path = %request.uri().path(), "cross-site request refused");
        AppError::csrf().into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const ORIGIN: &str = "http://127.0.0.1:3000";

    fn hosts() -> Vec<String> {
        vec!["127.0.0.1:3000".into(), "localhost:3000".into()]
    }

    fn allowed(method: &Method, headers: &HeaderMap, origin: &str) -> bool {
        super::allowed(method, headers, origin, &hosts())
    }

    #[test]
    fn only_our_hosts() {
        assert!(host_allowed(Some("127.0.0.1:3000"), &hosts()));
        assert!(host_allowed(Some("LOCALHOST:3000"), &hosts()));
        assert!(!host_allowed(Some("evil.test:3000"), &hosts()));
        assert!(!host_allowed(Some("127.0.0.1:3001"), &hosts()));
        assert!(!host_allowed(None, &hosts()));
    }

    #[test]
    fn foreign_host_with_matching_origin_is_refused() {
        // A rebinding page at evil.test sends Host and Origin of its own name: the origin
        // matches the host, but neither is ours.
        let h = headers(&[
            ("origin", "http://evil.test:3000"),
            ("host", "evil.test:3000"),
        ]);
        assert!(!allowed(&Method::POST, &h, ORIGIN));
    }

    #[test]
    fn reads_are_never_checked() {
        assert!(allowed(
            &Method::GET,
            &headers(&[("origin", "https://evil.test")]),
            ORIGIN
        ));
    }

    #[test]
    fn foreign_origin_is_refused() {
        let h = headers(&[("origin", "https://evil.test"), ("host", "127.0.0.1:3000")]);
        assert!(!allowed(&Method::POST, &h, ORIGIN));
    }

    #[test]
    fn cross_site_fetch_metadata_is_refused() {
        assert!(!allowed(
            &Method::POST,
            &headers(&[("sec-fetch-site", "cross-site")]),
            ORIGIN
        ));
        assert!(!allowed(
            &Method::POST,
            &headers(&[("sec-fetch-site", "same-site")]),
            ORIGIN
        ));
    }

    #[test]
    fn same_origin_passes() {
        assert!(allowed(
            &Method::POST,
            &headers(&[("origin", ORIGIN), ("sec-fetch-site", "same-origin")]),
            ORIGIN
        ));
        let h = headers(&[
            ("origin", "http://localhost:3000"),
            ("host", "localhost:3000"),
        ]);
        assert!(allowed(&Method::POST, &h, ORIGIN));
    }

    #[test]
    fn origin_null_is_refused() {
        assert!(!allowed(
            &Method::POST,
            &headers(&[("origin", "null"), ("host", "x")]),
            ORIGIN
        ));
    }
}
