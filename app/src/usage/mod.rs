//! Usage: rate-limit plans and each key's limit, the request log, and what is drawn from it.
//!
//! The rate limit is exact: no rolling window of a key's limit length ever admits more than
//! the limit, on one instance or several (`window` has the argument, `limiter` the state,
//! `docs/rate-limits.md` the semantics and cost).

pub mod api;
#[cfg(feature = "ssr")]
pub mod limiter;
#[cfg(feature = "ssr")]
pub mod log;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;
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
    /// How many keys are on this plan (keys without a plan count for the default).
    pub keys: i64,
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
