//! `GET /metrics`: Prometheus text format (version 0.0.4).
//!
//! - `keyward_http_requests_total{route,method,status}`: `/api/v1` requests;
//! - `keyward_http_request_duration_seconds{route}`: their latency, as a histogram;
//! - `keyward_rate_limit_decisions_total{decision}`: `admitted` / `refused`;
//! - `keyward_rate_limit_leases_total`: leases taken from the shared count;
//! - `keyward_request_log_buffer_depth`, `keyward_request_log_written_total`,
//!   `keyward_request_log_lost_total`, `keyward_request_log_failed_batches_total`.
//!
//! Readable from the networks in `KEYWARD_METRICS_ALLOW` (loopback by default) or with
//! `Authorization: Bearer $KEYWARD_METRICS_TOKEN`; anything else gets 403.

use app::error::{AppError, ErrorCode};
use app::ssr::AppState;
use app::usage::log::RequestLog;
use app::usage::ssr::RateLimiter;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bounds, seconds.
const BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default, Debug)]
struct Histogram {
    buckets: [u64; BOUNDS.len()],
    count: u64,
    sum: f64,
}

/// A method's name, borrowed for the standard ones.
pub type MethodName = std::borrow::Cow<'static, str>;

/// Route template, method, status.
type RequestKey = (&'static str, MethodName, u16);

/// Request counters and latency histograms; a domain state plugged in at boot.
#[derive(Default, Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
}

impl Metrics {
    pub fn observe(&self, route: &'static str, method: MethodName, status: u16, latency: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route, method, status)).or_default() += 1;
        }
        if let Ok(mut l) = self.latency.lock() {
            let h = l.entry(route).or_default();
            let secs = latency.as_secs_f64();
            for (i, bound) in BOUNDS.iter().enumerate() {
                if secs <= *bound {
                    h.buckets[i] += 1;
                }
            }
            h.count += 1;
            h.sum += secs;
        }
    }

    /// The text exposition.
    pub fn render(&self, state: &AppState) -> String {
        let mut out = String::new();
        out.push_str("# HELP keyward_http_requests_total /api/v1 requests by route template, method and status.\n# TYPE keyward_http_requests_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((route, method, status), n) in r.iter() {
                let _ = writeln!(
                    out,
                    "keyward_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP keyward_http_request_duration_seconds /api/v1 latency by route template.\n# TYPE keyward_http_request_duration_seconds histogram\n");
        if let Ok(l) = self.latency.lock() {
            for (route, h) in l.iter() {
                for (i, bound) in BOUNDS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "keyward_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                        h.buckets[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "keyward_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\nkeyward_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\nkeyward_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                    h.count, h.sum, h.count
                );
            }
        }
        if let Ok(limiter) = RateLimiter::of(state) {
            let _ = write!(
                out,
                "# HELP keyward_rate_limit_decisions_total Rate-limit decisions on this instance.\n# TYPE keyward_rate_limit_decisions_total counter\nkeyward_rate_limit_decisions_total{{decision=\"admitted\"}} {}\nkeyward_rate_limit_decisions_total{{decision=\"refused\"}} {}\n# HELP keyward_rate_limit_leases_total Leases taken from the shared count.\n# TYPE keyward_rate_limit_leases_total counter\nkeyward_rate_limit_leases_total {}\n",
                limiter.admitted.load(Ordering::Relaxed),
                limiter.refused.load(Ordering::Relaxed),
                limiter.leases.load(Ordering::Relaxed),
            );
        }
        if let Ok(log) = RequestLog::of(state) {
            let _ = write!(
                out,
                "# HELP keyward_request_log_buffer_depth Log entries waiting to be written.\n# TYPE keyward_request_log_buffer_depth gauge\nkeyward_request_log_buffer_depth {}\n# HELP keyward_request_log_written_total Log rows written.\n# TYPE keyward_request_log_written_total counter\nkeyward_request_log_written_total {}\n# HELP keyward_request_log_lost_total Log entries dropped (buffer full past the wait, or a failed batch).\n# TYPE keyward_request_log_lost_total counter\nkeyward_request_log_lost_total {}\n# HELP keyward_request_log_failed_batches_total Log batches that failed to write.\n# TYPE keyward_request_log_failed_batches_total counter\nkeyward_request_log_failed_batches_total {}\n",
                log.depth(),
                log.written.load(Ordering::Relaxed),
                log.lost.load(Ordering::Relaxed),
                log.failed_batches.load(Ordering::Relaxed),
            );
        }
        out
    }
}

/// Whether a `Host` is an IP address (with or without a port; IPv6 in brackets).
fn ip_literal(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.parse::<std::net::IpAddr>().is_ok()
}

/// A trusted proxy network that overlaps the metrics networks while no token is set: every
/// request from the proxy's addresses counts as forwarded and needs the token, so a scraper
/// there is refused (the server warns of it at start).
pub fn proxy_in_allowed_networks(config: &app::ssr::config::Config) -> Option<ipnet::IpNet> {
    if config.metrics_token.is_some() {
        return None;
    }
    config.trusted_proxies.iter().copied().find(|proxy| {
        config
            .metrics_allow
            .iter()
            .any(|net| net.contains(&proxy.network()) || proxy.contains(&net.network()))
    })
}

/// `GET /metrics`.
pub async fn handler(State(state): State<AppState>, request: Request) -> Response {
    // A request a proxy forwarded comes from the proxy's address, whoever sent it: behind a
    // reverse proxy on the same host every client would look like loopback. The networks
    // open the metrics to direct connections only; through a proxy, the token does. A
    // request is forwarded when it says so, and whenever its peer is a proxy the operator
    // declared (`KEYWARD_TRUSTED_PROXIES`), with or without the headers.
    // The socket peer, an IPv4-mapped address read as the IPv4 one (a dual-stack listener).
    let peer = crate::rest::auth::client_ip(&request, &[]).map(|ip| ip.to_canonical());
    let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|h| request.headers().contains_key(*h))
        || peer.is_some_and(|ip| {
            state
                .config
                .trusted_proxies
                .iter()
                .any(|net| net.contains(&ip))
        });
    // Addressed by one of our names or by an IP literal (how scrapers address an instance): a
    // page on another name resolving to this host (DNS rebinding) carries that name, and a
    // browser on the host would otherwise read the metrics for it.
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    let addressed = app::ssr::csrf::host_allowed(host, &state.config.allowed_hosts)
        || host.is_some_and(ip_literal);
    let from_allowed = !forwarded
        && addressed
        // The socket peer itself: a forwarded request needs the token (above).
        && peer.is_some_and(|ip| {
            state
                .config
                .metrics_allow
                .iter()
                .any(|net| net.contains(&ip))
        });
    let token_ok = state.config.metrics_token.as_deref().is_some_and(|token| {
        request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|sent| constant_time_eq(sent.trim().as_bytes(), token.as_bytes()))
    });
    if !from_allowed && !token_ok {
        return AppError::new(
            ErrorCode::Forbidden,
            "metrics are readable from the configured networks (KEYWARD_METRICS_ALLOW) or with the metrics token",
        )
        .into_response();
    }
    let body = match state.domains.get::<Metrics>() {
        Ok(m) => m.render(&state),
        Err(e) => return e.into_response(),
    };
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use hmac::Mac;
    // Compare MACs of both under a fixed key: equal-length, constant-time comparison.
    let mac = |x: &[u8]| {
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"keyward-metrics-token")
            .expect("any key length");
        m.update(x);
        m
    };
    mac(a).verify_slice(&mac(b).finalize().into_bytes()).is_ok()
}
