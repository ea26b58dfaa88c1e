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

/// Whether the request may proceed.
pub fn allowed(method: &Method, headers: &HeaderMap, public_origin: &str) -> bool {
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
        if origin == public_origin {
            return true;
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin.split_once("://").map(|(_, rest)| rest);
        return matches!((origin_host, host), (Some(o), Some(h)) if o == h);
    }
    true
}

/// Middleware for the console routes (pages and `/rpc`).
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/api/v1") {
        return next.run(request).await;
    }
    if allowed(
        request.method(),
        request.headers(),
        &state.config.origin_string(),
    ) {
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
