//! The request log's middleware: wraps every `/api/v1` route, so that every request (refused
//! ones included) becomes one log entry and one observation in `/metrics`.

use super::auth::{client_ip, KeyLogged};
use crate::metrics::Metrics;
use app::error::{ErrorCode, LoggedMessage};
use app::ssr::{request_id, AppState};
use app::usage::log::{LogEntry, RequestLog};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;

/// Longest user agent kept.
const USER_AGENT_MAX: usize = 256;

pub async fn middleware(
    State((state, route)): State<(AppState, &'static str)>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let occurred_at = app::ssr::db::now_ms();
    let method = method_name(request.method());
    let ip = client_ip(&request, &state.config.trusted_proxies).map(|ip| ip.to_string());
    let user_agent = request
        .headers()
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(USER_AGENT_MAX).collect::<String>());
    let response = next.run(request).await;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    let key = response.extensions().get::<KeyLogged>();
    let entry = LogEntry {
        request_id: request_id::current(),
        occurred_at,
        organization_id: key.map(|KeyLogged(k)| k.organization_id.clone()),
        api_key_id: key.map(|KeyLogged(k)| k.id.clone()),
        method: method.clone(),
        route: std::borrow::Cow::Borrowed(route),
        status,
        error_code: response.extensions().get::<ErrorCode>().map(|c| c.as_str()),
        error_message: response
            .extensions()
            .get::<LoggedMessage>()
            .map(|m| m.0.clone()),
        latency_us: latency.as_micros() as i64,
        client_ip: ip,
        user_agent,
    };
    if let Ok(metrics) = state.domains.get::<Metrics>() {
        metrics.observe(route, method, status, latency);
    }
    if let Ok(log) = RequestLog::of(&state) {
        log.record(entry).await;
    }
    response
}

/// The method's name; every non-standard one is `OTHER`. A client chooses the method, of any
/// length: kept as sent, each new one would be a new metrics series held for the process's
/// life, and a long one a large log row.
fn method_name(method: &http::Method) -> std::borrow::Cow<'static, str> {
    use http::Method;
    let name = match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "OTHER",
    };
    std::borrow::Cow::Borrowed(name)
}
