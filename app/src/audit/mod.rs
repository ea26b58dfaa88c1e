//! The audit log: every domain event of an organization (the system organization's holders
//! of `audit:read` see the whole instance), newest first, with filters; each entry's place
//! in the tamper-evident chain (`ssr::audit`).

pub mod api;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;

use serde::{Deserialize, Serialize};

/// Entries per page.
pub const AUDIT_PER_PAGE: u32 = 50;

/// One audit entry. Event data never holds a secret.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Its place in the hash chain (none for a second or so, until chained).
    pub seq: Option<i64>,
    pub event_id: String,
    /// UTC, RFC 3339.
    pub at: String,
    /// What happened: `key.created`, `role.assigned`, `user.signed_in`…
    pub action: String,
    /// Who: a user id or a key id (`cli` for the command line).
    pub actor: Option<String>,
    /// The actor's address, when the actor is a user.
    pub actor_email: Option<String>,
    /// The administrator acting as the actor (impersonation), and their address.
    #[serde(default)]
    pub impersonator: Option<String>,
    #[serde(default)]
    pub impersonator_email: Option<String>,
    /// On what: a key, user, role, team, invitation… id.
    pub target: Option<String>,
    /// The target's address, when the target is a user.
    #[serde(default)]
    pub target_email: Option<String>,
    pub organization_id: Option<String>,
    pub ip: Option<String>,
    /// The client's user agent (cut to 256 characters).
    #[serde(default)]
    pub user_agent: Option<String>,
    /// The request that made the change (`x-request-id`, in the server's log too).
    #[serde(default)]
    pub request_id: Option<String>,
    /// The value before and after a change (roles, permissions, policies, members' roles).
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(value_type = Option<Object>))]
    pub before: Option<serde_json::Value>,
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(value_type = Option<Object>))]
    pub after: Option<serde_json::Value>,
    /// Everything the event recorded (the fields above included).
    #[cfg_attr(feature = "ssr", schema(value_type = Object))]
    pub data: serde_json::Value,
}

/// The audit log's filters and page (all optional; `page` counts from 1).
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// An actor id, or part of the actor's email address.
    pub actor: Option<String>,
    /// An action or its start (`key.` for every key action).
    pub action: Option<String>,
    /// A target id.
    pub target: Option<String>,
    /// From this day (`YYYY-MM-DD`, UTC) or instant (RFC 3339), inclusive.
    pub from: Option<String>,
    /// Until this day (inclusive) or instant (exclusive).
    pub to: Option<String>,
    pub page: Option<u32>,
}

/// One page of the audit log.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    pub total: i64,
    pub page: u32,
}
