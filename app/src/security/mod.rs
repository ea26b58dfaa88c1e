//! Security scanning: what a review of the instance would ask, answered from its own state.
//! Every REST route and server function with the permission it requires (flagging those that
//! require none); keys with no expiry, no IP allow-list, unused for 30 days, or scopes wider
//! than what they used in the last 30 days (with a one-click narrowing); administrators
//! without a second factor; configuration risks. The console's Security page
//! (`security_scan`) and `keyward security-scan` show the same report.

pub mod api;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;

use crate::keys::Scopes;
use serde::{Deserialize, Serialize};

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// A REST route or server function and what calling it requires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointCheck {
    /// `rest` or `server_fn`.
    pub kind: String,
    /// `GET /api/v1/keys` or `create_key`.
    pub name: String,
    /// `keys:read`, or what stands in for a permission: `public`, `signed in`, `operator`.
    pub requires: String,
    /// Requires no permission (by design for sign-in, health checks and the caller's own
    /// data; listed so that a reviewer sees every one).
    pub no_permission: bool,
}

/// What is wrong with a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyIssue {
    NoExpiry,
    NoIpAllowlist,
    Unused30Days,
    WiderThanUsed,
}

impl KeyIssue {
    pub fn label(self) -> &'static str {
        match self {
            KeyIssue::NoExpiry => "never expires",
            KeyIssue::NoIpAllowlist => "no IP allow-list",
            KeyIssue::Unused30Days => "unused for 30 days",
            KeyIssue::WiderThanUsed => "scopes wider than what it used in 30 days",
        }
    }
}

/// An active key with at least one issue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyFinding {
    pub key_id: String,
    pub organization_id: String,
    pub name: String,
    pub display_prefix: String,
    pub issues: Vec<KeyIssue>,
    pub scopes: Scopes,
    /// What its successful requests of the last 30 days needed, when it made any.
    pub used: Option<Scopes>,
}

/// A member who can administer an organization (owner or admin) without a second factor: of
/// the scanned organization, or, in the instance's report, of any organization (the system
/// organization and teams; a personal organization only for members other than its user).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminFinding {
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub organization_id: String,
    /// The organization's name.
    pub organization: String,
}

/// A risk in how the instance runs (instance administrators only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigFinding {
    pub code: String,
    pub severity: Severity,
    pub message: String,
}

/// The report of one scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecurityReport {
    pub organization_id: String,
    pub generated_at: String,
    /// The system organization's report: configuration and the endpoints too.
    pub instance: bool,
    pub config: Vec<ConfigFinding>,
    pub admins_without_two_factor: Vec<AdminFinding>,
    pub keys: Vec<KeyFinding>,
    pub endpoints: Vec<EndpointCheck>,
}

impl SecurityReport {
    /// The worst finding's severity (`None`: nothing found).
    pub fn worst(&self) -> Option<Severity> {
        let config = self.config.iter().map(|c| c.severity);
        let admins = (!self.admins_without_two_factor.is_empty()).then_some(Severity::High);
        let keys = self.keys.iter().map(|_| Severity::Medium);
        config.chain(admins).chain(keys).max()
    }
}

/// A REST route as the scan sees it (the server's route table plugs it in at boot).
#[derive(Clone, Debug)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: &'static str,
    /// `None`: public or operator routes (see `requires`).
    pub permission: Option<crate::access::Permission>,
    pub requires: &'static str,
}

/// The REST routes, composed at boot (`keyward_server::boot::domains`).
#[derive(Clone, Debug, Default)]
pub struct RouteCatalog(pub Vec<RouteInfo>);
