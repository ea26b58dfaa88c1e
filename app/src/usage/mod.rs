//! Usage: rate-limit plans and each key's limit, the request log, and what is drawn from it.
//!
//! The rate limit is exact: no rolling window of a key's limit length ever admits more than
//! the limit, on one instance or several (`window` has the argument, `limiter` the state,
//! `docs/rate-limits.md` the semantics and cost).

pub mod api;
#[cfg(feature = "hydrate")]
pub mod chart;
#[cfg(feature = "ssr")]
pub mod export;
#[cfg(feature = "ssr")]
pub mod limiter;
#[cfg(feature = "ssr")]
pub mod log;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;
#[cfg(feature = "ssr")]
pub mod stats;
#[cfg(feature = "ssr")]
pub mod window;

use serde::{Deserialize, Serialize};

/// The plan every key without one follows; it can be edited, not deleted.
pub const DEFAULT_PLAN_ID: &str = "plan_free";

/// Bounds of a limit.
pub const MAX_LIMIT: i64 = 1_000_000_000;
pub const MAX_WINDOW_SECONDS: i64 = 86_400;

/// A named limit: at most `limit` requests in any rolling window of `window_seconds`.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub id: String,
    pub name: String,
    pub description: String,
    pub limit: i64,
    pub window_seconds: i64,
    /// Whether keys without a plan follow this one.
    pub is_default: bool,
    /// How many keys of the whole instance are on this plan (keys without a plan count for
    /// the default). Only for callers who may change plans (`plans:write` in the system
    /// organization); `null` for anyone else, to whom it would tell of other organizations'
    /// keys.
    pub keys: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

/// A plan to create, or the fields to change (absent: unchanged).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// 1-40 characters: lower-case letters, digits, `-` and `_`; unique.
    #[cfg_attr(
        feature = "ssr",
        schema(min_length = 1, max_length = 40, pattern = r"^[a-z0-9][a-z0-9_-]*$")
    )]
    pub name: Option<String>,
    #[cfg_attr(feature = "ssr", schema(max_length = 200))]
    pub description: Option<String>,
    #[cfg_attr(feature = "ssr", schema(minimum = 1, maximum = 1_000_000_000))]
    pub limit: Option<i64>,
    #[cfg_attr(feature = "ssr", schema(minimum = 1, maximum = 86_400))]
    pub window_seconds: Option<i64>,
}

/// The ranges of the usage charts and the bucket each is drawn with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Range {
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
    #[serde(rename = "30d")]
    Month,
}

impl Range {
    pub const ALL: &'static [Range] = &[Range::Hour, Range::Day, Range::Week, Range::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
        }
    }

    pub fn parse(s: &str) -> Option<Range> {
        Range::ALL.iter().copied().find(|r| r.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            Range::Hour => "Last hour",
            Range::Day => "Last 24 hours",
            Range::Week => "Last 7 days",
            Range::Month => "Last 30 days",
        }
    }

    /// Bucket length: a minute, 15 minutes, an hour, 6 hours.
    pub fn bucket_ms(self) -> i64 {
        match self {
            Range::Hour => 60_000,
            Range::Day => 15 * 60_000,
            Range::Week => 3_600_000,
            Range::Month => 6 * 3_600_000,
        }
    }

    /// Buckets drawn: the range divided by the bucket (60, 96, 168, 120).
    pub fn buckets(self) -> i64 {
        match self {
            Range::Hour => 60,
            Range::Day => 96,
            Range::Week => 168,
            Range::Month => 120,
        }
    }
}

/// Requests over time: one count per bucket and status class, every bucket present.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestSeries {
    pub range: String,
    pub bucket_ms: i64,
    /// Start of each bucket (Unix ms), aligned to the bucket length in the viewer's time zone.
    pub starts: Vec<i64>,
    /// Requests per bucket answered 2xx (and 3xx), 4xx other than 429, 429, and 5xx.
    pub ok: Vec<i64>,
    pub client_errors: Vec<i64>,
    pub rate_limited: Vec<i64>,
    pub server_errors: Vec<i64>,
    /// Sum of every bucket: the requests logged in the range.
    pub total: i64,
    /// The routes seen in the range, for the filter.
    pub routes: Vec<String>,
}

/// A count by name (a key, a route, an error code).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Count {
    pub name: String,
    /// A readable label where the name is an id (a key's name).
    pub label: String,
    pub requests: i64,
}

/// One failed request, for the recent-errors list.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecentError {
    pub request_id: String,
    /// RFC 3339.
    pub at: String,
    pub key_id: Option<String>,
    pub method: String,
    pub route: String,
    pub status: i64,
    pub code: Option<String>,
    /// The message the client was answered with.
    pub message: Option<String>,
}

/// The errors page (and `GET /api/v1/usage/errors`): errors over time and where they come from.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorReport {
    /// The requests of the range, split by status class, every bucket present.
    pub series: RequestSeries,
    /// Per bucket: answers 4xx and 5xx (429 included) as a percentage of its requests (0 when
    /// it had none).
    pub error_rate: Vec<f64>,
    pub requests: i64,
    pub errors: i64,
    pub top_codes: Vec<Count>,
    /// Keys and routes by number of failed requests.
    pub top_keys: Vec<Count>,
    pub top_routes: Vec<Count>,
    /// The latest failed requests (at most 50), newest first.
    pub recent: Vec<RecentError>,
}

/// One organization's requests over a range, for instance admins.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OrgTotal {
    pub organization_id: String,
    pub name: String,
    pub requests: i64,
    pub errors: i64,
    /// Keys that made at least one request in the range.
    pub keys: i64,
}

/// A key's use of its rate limit in the window ending now, and its recent traffic.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyLimitUsage {
    pub key_id: String,
    /// The limit in force (the key's own, else its plan's).
    pub limit: i64,
    pub window_seconds: i64,
    /// Requests counted against the limit in the window ending now. With several instances
    /// this includes tokens another instance has reserved but not spent yet (they are given
    /// back within one bucket, 1/60 of the window).
    pub used: i64,
    pub remaining: i64,
    /// Seconds until the count goes down (0 when nothing is counted).
    pub reset_seconds: i64,
    /// Requests and failed requests logged in the last 24 hours.
    pub requests_24h: i64,
    pub errors_24h: i64,
}

/// What the usage page and `GET /api/v1/usage` summarize for a range and filters.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageSummary {
    pub range: String,
    pub requests: i64,
    /// Answers 4xx and 5xx (429 included).
    pub errors: i64,
    /// errors / requests, 0 when there were none.
    pub error_rate: f64,
    /// Latency percentiles in milliseconds over the range's logged requests.
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub top_keys: Vec<Count>,
    pub top_routes: Vec<Count>,
    pub top_error_codes: Vec<Count>,
    pub recent_errors: Vec<RecentError>,
}

/// `GET /api/v1/usage`: the chart's series and the summary of the same range and filters.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    pub series: RequestSeries,
    pub summary: UsageSummary,
}

/// A limit in words: `100 per hour`, `10 per 30 s`.
pub fn describe(limit: i64, window_seconds: i64) -> String {
    let per = match window_seconds {
        1 => "second".to_string(),
        60 => "minute".to_string(),
        3600 => "hour".to_string(),
        86_400 => "day".to_string(),
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    };
    format!("{limit} per {per}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn limits_read_as_words() {
        assert_eq!(super::describe(100, 3600), "100 per hour");
        assert_eq!(super::describe(5, 7200), "5 per 2 h");
        assert_eq!(super::describe(5, 90), "5 per 90 s");
    }
}
