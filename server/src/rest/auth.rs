//! The `/api/v1` request pipeline, as layers so that later stages (rate limit, usage log)
//! slot in without touching handlers:
//!
//! ```text
//! Authorization: Bearer <key> → format/checksum → lookup (memory ≤1 s; the database for
//!   routes that change things) → status/expiry → IP allow-list → endpoint restrictions
//!   → rate limit (the key's plan or override; every answer from here on carries the
//!   `RateLimit-*` headers) → authorization core (scopes; a PAT also bounded by its owner)
//!   → request signature (when required or sent; buffers the body) → handler, with the key
//!   and its grant
//! ```
//!
//! The request log (`rest::usage_log`) wraps all of it and reads which key and organization
//! answered from the response ([`KeyLogged`]).

use app::access::ssr::{authorize, Grant};
use app::access::Permission;
use app::error::{AppError, ErrorCode};
use app::keys::ssr::{self as keys, KeyCache, VerifiedKey};
use app::ssr::AppState;
use app::usage::ssr::{Decision, RateLimiter};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// On a response: the key the request was made with, for the request log (shared, not
/// copied: the hot path allocates as little as it can).
#[derive(Clone, Debug)]
pub struct KeyLogged(pub Arc<VerifiedKey>);

/// The key that authenticated the request, for handlers (`Extension<Caller>`).
#[derive(Clone, Debug)]
pub struct KeyCaller(pub Arc<VerifiedKey>);

/// The client address: the socket peer, or behind a trusted proxy the address it forwarded
/// for ([`app::ssr::client`]).
pub fn client_ip(request: &Request, trusted_proxies: &[ipnet::IpNet]) -> Option<IpAddr> {
    app::ssr::client::client_addr(
        peer(request.extensions()),
        request.headers(),
        trusted_proxies,
    )
}

/// The connection's peer address, if the server recorded one.
fn peer(extensions: &http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| a.ip())
}

/// Extracts the bearer token, if the header is present and well-formed.
fn bearer(headers: &http::HeaderMap) -> Result<&str, AppError> {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| keys::refusal(ErrorCode::KeyMissing))?;
    let value = header
        .to_str()
        .map_err(|_| keys::refusal(ErrorCode::KeyMalformed))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(keys::refusal(ErrorCode::KeyMissing)),
    }
}

/// Authenticates the key and checks that it holds `permission` in its organization.
pub async fn require_key(
    State((state, permission)): State<(AppState, Permission)>,
    request: Request,
    next: Next,
) -> Response {
    // The request's head is borrowed across awaits, never the request itself (its body is
    // not Sync); nothing of it is copied.
    let ip = client_ip(&request, &state.config.trusted_proxies);
    let (mut parts, body) = request.into_parts();
    let mut logged: Option<KeyLogged> = None;
    let mut rate: Option<Decision> = None;
    let outcome: Result<_, AppError> = async {
        let presented = bearer(&parts.headers)?;
        let (method, path) = (parts.method.as_str(), parts.uri.path());
        // A call that changes things checks the calling key against the database, not the
        // cache: a key disabled a moment ago on another instance cannot act (nor re-enable
        // itself). Reads accept the cache's bound (1 s).
        let how = keys::Lookup {
            fresh: permission.is_write(),
            organization_id: None,
        };
        let key = keys::verify(
            &state.db,
            KeyCache::of(&state)?,
            &state.config.secret,
            presented,
            ip,
            method,
            path,
            how,
        )
        .await?;
        logged = Some(KeyLogged(key.clone()));
        // Every request a valid key makes counts against its limit, whatever comes of it.
        let decision = RateLimiter::of(&state)?.check(&key.id, key.rate).await?;
        rate = Some(decision);
        if !decision.admitted {
            return Err(over_limit(&decision, key.rate.window_secs()));
        }
        tell_usage_thresholds(&state, &key, &decision);
        // The one authorization core: the key's scopes, and for a personal access token its
        // owner's current permissions too.
        let grant = authorize(
            &state.db,
            &key.principal(),
            &key.organization_id,
            permission,
        )
        .await?;
        if app::ssr::nul::in_uri(&parts.uri) {
            return Err(app::ssr::nul::refused());
        }
        let header = match parts.headers.get("signature") {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| keys::refusal(ErrorCode::SignatureInvalid))?,
            ),
        };
        if header.is_none() && !key.bounds.require_signature {
            return Ok((key, grant, body));
        }
        // The body is part of what is signed: read it (the global body limit applies), check,
        // and hand the same bytes on to the handler.
        let bytes = axum::body::to_bytes(body, crate::IMPORT_MAX_BYTES)
            .await
            .map_err(|_| {
                AppError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
            })?;
        let target = parts.uri.path_and_query().map_or(path, |pq| pq.as_str());
        keys::check_signature(
            &state.db,
            &key,
            header,
            method,
            target,
            &app::keys::signature::body_digest(&bytes),
        )
        .await?;
        Ok((key, grant, Body::from(bytes)))
    }
    .await;
    let mut response = match outcome {
        Ok((key, grant, body)) => {
            if let Ok(cache) = KeyCache::of(&state) {
                keys::touch(cache, &key.id);
            }
            parts.extensions.insert(KeyCaller(key));
            parts.extensions.insert::<Grant>(grant);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(e) => e.into_response(),
    };
    if let Some(decision) = rate {
        rate_limit_headers(response.headers_mut(), &decision);
    }
    if let Some(logged) = logged {
        response.extensions_mut().insert(logged);
    }
    response
}

/// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the count
/// next goes down).
pub fn rate_limit_headers(headers: &mut http::HeaderMap, d: &Decision) {
    use http::HeaderValue;
    headers.insert("ratelimit-limit", HeaderValue::from(d.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(d.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(d.reset_secs()));
}

/// Tells the key's owners, off the request path, when this request took it to 80, 90 or
/// 100 % of its limit (once per threshold and window, at most once an hour).
pub(crate) fn tell_usage_thresholds(state: &AppState, key: &VerifiedKey, d: &Decision) {
    let Ok(alerts) = app::notify::ssr::UsageAlerts::of(state) else {
        return;
    };
    let used = d.limit - d.remaining;
    let window =
        app::notify::ssr::usage_alert_period(app::ssr::db::now_ms(), key.rate.window_secs());
    let Some(threshold) = alerts.crossed(&key.id, window, used, d.limit) else {
        return;
    };
    let (db, origin) = (state.db.clone(), state.config.origin_string());
    let (key_id, org) = (key.id.clone(), key.organization_id.clone());
    let limit_text = app::usage::describe(d.limit as i64, key.rate.window_secs());
    tokio::spawn(async move {
        if let Err(e) = app::notify::ssr::usage_threshold(
            &db,
            &origin,
            &key_id,
            &org,
            threshold,
            &limit_text,
            window,
        )
        .await
        {
            tracing::warn!(error = %e.message, key_id, "usage notification not recorded");
        }
    });
}

/// The refusal of a request over the key's limit: 429 `rate_limited` with `Retry-After`.
fn over_limit(d: &Decision, window_seconds: i64) -> AppError {
    let secs = d.reset_secs().max(1);
    AppError {
        retry_after: Some(secs),
        ..AppError::new(
            ErrorCode::RateLimited,
            format!(
                "this key's rate limit ({}) is used up; try again in {secs} s",
                app::usage::describe(d.limit as i64, window_seconds)
            ),
        )
    }
}

/// The client address as text (for timelines), `None` when unknown.
pub struct ClientIp(pub Option<String>);

impl axum::extract::FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let PeerIp(ip) = PeerIp::from_request_parts(parts, state).await?;
        Ok(ClientIp(ip.map(|ip| ip.to_string())))
    }
}

/// The client address (never a refusal; behind a trusted proxy the forwarded client, see
/// [`app::ssr::client`]): what the console's plain routes record as an impersonated call's
/// source.
pub struct PeerIp(pub Option<IpAddr>);

impl axum::extract::FromRequestParts<AppState> for PeerIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(PeerIp(app::ssr::client::client_addr(
            peer(&parts.extensions),
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}
