//! Plain HTTP routes: health, and the `/api/v1` REST API authenticated by API keys.
//!
//! Every route is declared in [`routes`] with its [`Access`]: the router is built from that
//! list, so a route cannot exist without a declaration, and a test walks the same list. A
//! `Key(permission)` route gets the key pipeline ([`auth::require_key`]) with that permission.

pub mod audit;
pub mod auth;
pub mod health;
pub mod json;
pub mod keys;
pub mod members;
pub mod openapi;
pub mod plans;
pub mod roles;
pub mod teams;
pub mod usage_log;
pub mod users;

use app::access::Permission;
use app::error::ErrorCode;
use app::ssr::AppState;
use axum::routing::{delete, get, patch, post, put, MethodRouter};
use axum::Router;
use http::Method;

/// Who may call a REST route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credentials (health checks, the OpenAPI document).
    Public,
    /// An API key holding this permission in its own organization.
    Key(Permission),
    /// The operator: a client in `KEYWARD_METRICS_ALLOW`, or the metrics token (the handler
    /// checks).
    Operator,
}

/// One declared route.
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub handler: MethodRouter<AppState>,
    /// Largest body accepted.
    pub body_limit: usize,
    /// What the OpenAPI document and the API docs pages say about it.
    pub doc: Doc,
}

/// The documentation of a route; the permission, path parameters and the refusals of the key
/// pipeline are added from the route itself.
pub struct Doc {
    pub summary: &'static str,
    pub description: &'static str,
    pub query: &'static [Param],
    pub body: Body,
    /// Success status and body.
    pub ok: (u16, Out),
    /// Refusals of the handler itself (invalid input, not found…).
    pub errors: &'static [ErrorCode],
}

/// A query-string parameter.
#[derive(Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    /// JSON Schema type: `string`, `integer` or `boolean`.
    pub kind: &'static str,
    /// Allowed values, when they are a fixed set.
    pub values: &'static [&'static str],
    pub description: &'static str,
    /// Used in the curl example.
    pub example: Option<&'static str>,
}

/// A request body.
pub enum Body {
    None,
    /// JSON of the named schema, with an example for the curl sample.
    Json(&'static str, &'static str),
    /// A JSON array of `ImportRow` or CSV.
    Import,
}

/// A success body.
pub enum Out {
    Json(&'static str),
    JsonArray(&'static str),
    Text,
    /// No body (204).
    Empty,
    /// A JSON array of this schema, or CSV, by `format`.
    Export(&'static str),
}

fn spec(
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
    doc: Doc,
) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        handler,
        body_limit: crate::MAX_BODY_BYTES,
        doc,
    }
}

const INVALID: ErrorCode = ErrorCode::InvalidInput;
const NOT_FOUND: ErrorCode = ErrorCode::NotFound;
const CONFLICT: ErrorCode = ErrorCode::Conflict;

const USERS_QUERY: &[Param] = &[
    Param {
        name: "q",
        kind: "string",
        values: &[],
        description: "Matches the email or display name (case-insensitive).",
        example: Some("ann"),
    },
    Param {
        name: "status",
        kind: "string",
        values: &["active", "disabled", "deleted"],
        description: "Leave out for every account not deleted.",
        example: None,
    },
    Param {
        name: "role",
        kind: "string",
        values: &["owner", "admin", "member", "viewer", "none"],
        description: "Role in the system organization (`none`: not an instance administrator).",
        example: None,
    },
    Param {
        name: "page",
        kind: "integer",
        values: &[],
        description: "Page number, from 1 (25 users per page).",
        example: None,
    },
];

const AUDIT_QUERY: &[Param] = &[
    Param {
        name: "actor",
        kind: "string",
        values: &[],
        description: "An actor id (user or key), or part of the actor's email address.",
        example: Some("ann@example.org"),
    },
    Param {
        name: "action",
        kind: "string",
        values: &[],
        description: "An action or its start: `key.` for every key action, `role.assigned`.",
        example: Some("key."),
    },
    Param {
        name: "target",
        kind: "string",
        values: &[],
        description: "A target id (key, user, role, team, invitation…).",
        example: None,
    },
    Param {
        name: "from",
        kind: "string",
        values: &[],
        description: "From this day (`YYYY-MM-DD`, UTC) or RFC 3339 instant, inclusive.",
        example: None,
    },
    Param {
        name: "to",
        kind: "string",
        values: &[],
        description: "Until this day (inclusive) or RFC 3339 instant (exclusive).",
        example: None,
    },
    Param {
        name: "page",
        kind: "integer",
        values: &[],
        description: "Page number, from 1 (50 entries per page).",
        example: None,
    },
];

const LIST_QUERY: &[Param] = &[
    Param {
        name: "q",
        kind: "string",
        values: &[],
        description: "Matches name, description or display prefix (case-insensitive).",
        example: Some("deploy"),
    },
    Param {
        name: "status",
        kind: "string",
        values: &["active", "disabled", "revoked", "expired"],
        description: "Effective status (expired: active but past its date).",
        example: None,
    },
    Param {
        name: "category",
        kind: "string",
        values: &["basic", "read_only", "admin", "custom"],
        description: "Access preset.",
        example: None,
    },
    Param {
        name: "owner",
        kind: "string",
        values: &["org", "personal"],
        description: "Organization keys or personal access tokens.",
        example: None,
    },
    Param {
        name: "expiring_within_days",
        kind: "integer",
        values: &[],
        description: "Only active keys expiring within this many days (1-3660).",
        example: None,
    },
    Param {
        name: "sort",
        kind: "string",
        values: &[
            "created_desc",
            "created_asc",
            "name",
            "expires_at",
            "last_used_desc",
        ],
        description: "Order; default created_desc.",
        example: None,
    },
    Param {
        name: "page",
        kind: "integer",
        values: &[],
        description: "1-based page; default 1.",
        example: None,
    },
    Param {
        name: "per_page",
        kind: "integer",
        values: &[],
        description: "1-100; default 25.",
        example: None,
    },
];

const USAGE_QUERY: &[Param] = &[
    Param {
        name: "range",
        kind: "string",
        values: &["1h", "24h", "7d", "30d"],
        description: "Default 24h: 1-minute, 15-minute, 1-hour or 6-hour buckets.",
        example: Some("24h"),
    },
    Param {
        name: "key_id",
        kind: "string",
        values: &[],
        description: "Only this key's requests (at most 200 bytes).",
        example: None,
    },
    Param {
        name: "route",
        kind: "string",
        values: &[],
        description: "Only this route template, e.g. `/api/v1/keys/{id}` (at most 200 bytes).",
        example: None,
    },
    Param {
        name: "tz_offset_minutes",
        kind: "integer",
        values: &[],
        description:
            "Align buckets to this time zone (minutes east of UTC, -840 to 840); default 0.",
        example: None,
    },
];

const AUDIT_EXPORT_QUERY: &[Param] = &[
    AUDIT_QUERY[0],
    AUDIT_QUERY[1],
    AUDIT_QUERY[2],
    AUDIT_QUERY[3],
    AUDIT_QUERY[4],
    Param {
        name: "format",
        kind: "string",
        values: &["csv", "json"],
        description: "Default csv.",
        example: Some("csv"),
    },
];

const USAGE_EXPORT_QUERY: &[Param] = &[
    USAGE_QUERY[0],
    USAGE_QUERY[1],
    USAGE_QUERY[2],
    USAGE_QUERY[3],
    Param {
        name: "format",
        kind: "string",
        values: &["csv", "json"],
        description: "Default csv.",
        example: Some("csv"),
    },
];

const REASON: Body = Body::Json("ReasonBody", r#"{"reason":"rotating after an incident"}"#);

fn transition_doc(summary: &'static str, description: &'static str) -> Doc {
    Doc {
        summary,
        description,
        query: &[],
        body: REASON,
        ok: (200, Out::Json("ApiKey")),
        errors: &[INVALID, NOT_FOUND, CONFLICT],
    }
}

fn review_doc(summary: &'static str, description: &'static str) -> Doc {
    Doc {
        body: Body::Json(
            "ReviewBody",
            r#"{"version":"2026-11-29T08:00:00.123Z","reason":"scopes checked against the ticket"}"#,
        ),
        ..transition_doc(summary, description)
    }
}

/// Every REST route.
pub fn routes() -> Vec<RouteSpec> {
    use Access::{Key, Operator, Public};
    use Permission::{
        ApprovalsWrite, AuditRead, KeysRead, KeysWrite, MembersRead, MembersWrite, PlansWrite,
        RolesRead, RolesWrite, UsageRead, UsersRead, UsersWrite,
    };
    vec![
        spec(Method::GET, "/healthz", Public, get(health::healthz), Doc {
            summary: "Readiness",
            description: "200 when the database answers, 503 (`unavailable`) otherwise. For load balancers.",
            query: &[], body: Body::None, ok: (200, Out::Json("Health")), errors: &[ErrorCode::Unavailable],
        }),
        spec(Method::GET, "/livez", Public, get(health::livez), Doc {
            summary: "Liveness",
            description: "200 `ok` while the process serves HTTP; touches no database.",
            query: &[], body: Body::None, ok: (200, Out::Text), errors: &[],
        }),
        spec(Method::GET, "/api/v1/openapi.json", Public, get(openapi_json), Doc {
            summary: "This OpenAPI document",
            description: "The OpenAPI 3.1 description of every route, generated from the code.",
            query: &[], body: Body::None, ok: (200, Out::Text), errors: &[],
        }),
        spec(Method::GET, "/api/v1/me", Key(KeysRead), get(keys::me), Doc {
            summary: "The calling key",
            description: "The key's id, organization, environment, scopes and the permissions they amount to.",
            query: &[], body: Body::None, ok: (200, Out::Json("Me")), errors: &[],
        }),
        spec(Method::GET, "/api/v1/keys", Key(KeysRead), get(keys::list), Doc {
            summary: "List keys",
            description: "The organization's keys, one page at a time, with search, filters and sort. Never a secret.",
            query: LIST_QUERY, body: Body::None, ok: (200, Out::Json("KeyList")), errors: &[INVALID],
        }),
        spec(Method::POST, "/api/v1/keys", Key(KeysWrite), post(keys::create), Doc {
            summary: "Create a key",
            description: "Creates a key in the caller's organization. The answer holds the secret (`key`) and the signing secret, **once**. A key can never be given a permission the calling key lacks, nor escape its restrictions: what the request leaves out (expiry, IP allow-list, endpoint rules, signatures, environment) is inherited from the calling key, and a test key makes test keys only (403 otherwise).",
            query: &[],
            body: Body::Json("NewKey", r#"{"name":"billing worker","category":"basic","ip_allowlist":["10.0.0.0/8"],"expires_at":"2027-12-31T00:00:00Z"}"#),
            ok: (201, Out::Json("CreatedKey")), errors: &[INVALID],
        }),
        spec(Method::POST, "/api/v1/keys/verify", Key(KeysRead), post(keys::verify), Doc {
            summary: "Verify a key",
            description: "Lets another service check a key Keyward issued: validity, refusal code, scopes. Only keys of the caller's organization can be valid; any other is `key_unknown`. Pass `ip`, `method` and `path` to check allow-lists and endpoint rules too. Each check of a working key spends one of that key's requests, as its own requests do (one limiter): `ratelimit` tells where it stands, and past its limit the answer is `valid: false`, code `rate_limited`.",
            query: &[],
            body: Body::Json("VerifyBody", r#"{"key":"kw_live_…","ip":"203.0.113.7","method":"GET","path":"/api/v1/keys"}"#),
            ok: (200, Out::Json("Verification")), errors: &[INVALID],
        }),
        spec(Method::POST, "/api/v1/keys/bulk", Key(KeysWrite), post(keys::bulk), Doc {
            summary: "Bulk enable, disable or revoke",
            description: "One action on 1 to 100 keys; each key gets its own outcome, one refusal does not stop the others. A server error on one key stops the action there: the keys before it keep their outcomes, the rest are answered `unavailable` (not attempted); on the first key, the answer is a 500 and nothing changed.",
            query: &[],
            body: Body::Json("BulkBody", r#"{"action":"disable","ids":["key_…","key_…"],"reason":"suspected leak"}"#),
            ok: (200, Out::JsonArray("BulkOutcome")), errors: &[INVALID],
        }),
        spec(Method::GET, "/api/v1/keys/export", Key(KeysRead), get(keys::export), Doc {
            summary: "Export keys",
            description: "Every key's settings and state as JSON or CSV. Never a secret or a hash.",
            query: &[Param { name: "format", kind: "string", values: &["json", "csv"], description: "Default json.", example: Some("csv") }],
            body: Body::None, ok: (200, Out::Export("ApiKey")), errors: &[INVALID],
        }),
        RouteSpec {
            body_limit: crate::IMPORT_MAX_BYTES,
            ..spec(Method::POST, "/api/v1/keys/import", Key(KeysWrite), post(keys::import), Doc {
                summary: "Import keys",
                description: "Up to 1000 keys from JSON (an array of rows) or CSV (a header row). A row may bring another system's plaintext `key` or its hex SHA-256 `key_hash`; a Keyward `key` (or `display_prefix`) gives the row's environment (`kw_test_…` is a test key; a row naming the other environment is refused); a row without either (e.g. from our export) gets a new key, returned in its outcome once. Each row is checked and imported on its own; a server error on a row stops the import there (the rows after it: `unavailable`, not attempted). `dry_run=true` previews and writes nothing. Body up to 1 MiB.",
                query: &[Param { name: "dry_run", kind: "boolean", values: &[], description: "Check and report every row, write nothing.", example: Some("true") }],
                body: Body::Import, ok: (200, Out::Json("ImportReport")), errors: &[INVALID],
            })
        },
        spec(Method::PATCH, "/api/v1/keys/{id}", Key(KeysWrite), patch(keys::update), Doc {
            summary: "Edit a key",
            description: "Changes settings (not the secret, environment or status); absent fields stay, `expires_at: null` removes the expiry. Validated like a new key; recorded in the timeline as `edited`, naming the fields whose value changed (a field sent as it already is is no change; a request changing nothing writes and records nothing).",
            query: &[],
            body: Body::Json("KeyPatch", r#"{"ip_allowlist":["192.0.2.0/24"],"reason":"office only"}"#),
            ok: (200, Out::Json("ApiKey")), errors: &[INVALID, NOT_FOUND, CONFLICT],
        }),
        spec(Method::GET, "/api/v1/keys/{id}", Key(KeysRead), get(keys::get), Doc {
            summary: "Get a key",
            description: "One key of the caller's organization (another organization's key is not found). Never the secret.",
            query: &[], body: Body::None, ok: (200, Out::Json("ApiKey")), errors: &[NOT_FOUND],
        }),
        spec(Method::DELETE, "/api/v1/keys/{id}", Key(KeysWrite), delete(keys::revoke), transition_doc(
            "Revoke a key",
            "Stops the key for good (revocation is final), within a second on every instance. Optional body: a reason for the timeline.",
        )),
        spec(Method::POST, "/api/v1/keys/{id}/enable", Key(KeysWrite), post(keys::enable), transition_doc(
            "Enable a key",
            "Lets a disabled key work again. Optional body: a reason for the timeline.",
        )),
        spec(Method::POST, "/api/v1/keys/{id}/disable", Key(KeysWrite), post(keys::disable), transition_doc(
            "Disable a key",
            "Stops the key until it is enabled again, within a second on every instance. Optional body: a reason.",
        )),
        spec(Method::POST, "/api/v1/keys/{id}/approve", Key(ApprovalsWrite), post(keys::approve), review_doc(
            "Approve a key",
            "A key awaiting approval (status `pending`, where the organization requires approval of new keys) starts working. Body: `version`, the key's `updated_at` as you reviewed it (required: you approve what you looked at), and an optional reason. Needs `approvals:write` and every permission the key holds; nobody approves a key they created. `409` once the key was reviewed, revoked or edited since that version, or when whoever made it no longer stands behind it (removed from the organization, or a key revoked or disabled since).",
        )),
        spec(Method::POST, "/api/v1/keys/{id}/reject", Key(ApprovalsWrite), post(keys::reject), review_doc(
            "Reject a key",
            "A key awaiting approval is rejected and revoked for good. Needs `approvals:write`; nobody rejects a key they created. Optional body: a reason, and the `version` you reviewed (`409` when the key changed since).",
        )),
        spec(Method::POST, "/api/v1/keys/{id}/roll", Key(KeysWrite), post(keys::roll), Doc {
            summary: "Roll a key",
            description: "Issues a new key with the same settings; the old one keeps working for `grace_seconds` (0 to 7776000), then stops. The new key keeps the old one's expiry unless `expires_at` sets another (`null`: none), within the organization's lifetime policy. Answers with the new secret, once.",
            query: &[],
            body: Body::Json("RollBody", r#"{"grace_seconds":86400,"reason":"scheduled rotation"}"#),
            ok: (201, Out::Json("CreatedKey")), errors: &[INVALID, NOT_FOUND, CONFLICT],
        }),
        spec(Method::PUT, "/api/v1/keys/{id}/limit", Key(KeysWrite), put(plans::set_key_limit), Doc {
            summary: "Set a key's limit",
            description: "Puts the key on a plan (`plan_id`; null or absent: the default plan) and sets its own limit (`rate_limit` requests per `rate_window_seconds`, both or neither: neither follows the plan). Applies at once. Recorded in the timeline as `edited`.",
            query: &[],
            body: Body::Json("KeyLimit", r#"{"plan_id":"plan_pro","reason":"customer upgraded"}"#),
            ok: (200, Out::Json("ApiKey")), errors: &[INVALID, NOT_FOUND, CONFLICT],
        }),
        spec(Method::GET, "/api/v1/plans", Key(KeysRead), get(plans::list), Doc {
            summary: "List plans",
            description: "Every rate-limit plan of the instance, with how many keys follow each. Keys without a plan follow the default plan (`plan_free`, 100 requests per hour unless edited).",
            query: &[], body: Body::None, ok: (200, Out::JsonArray("Plan")), errors: &[],
        }),
        spec(Method::POST, "/api/v1/plans", Key(PlansWrite), post(plans::create), Doc {
            summary: "Create a plan",
            description: "A named limit: at most `limit` requests in any rolling window of `window_seconds` (1 to 86400). Needs `plans:write`, which only keys of the system organization can hold; a test key (`kw_test_`) is refused (403): plans set live keys' limits. Recorded on the audit log (`plan.created`).",
            query: &[],
            body: Body::Json("PlanInput", r#"{"name":"team","limit":1000,"window_seconds":3600}"#),
            ok: (201, Out::Json("Plan")), errors: &[INVALID, CONFLICT],
        }),
        spec(Method::PATCH, "/api/v1/plans/{id}", Key(PlansWrite), patch(plans::update), Doc {
            summary: "Edit a plan",
            description: "Changes a plan's name, description, limit or window; every key on it follows at once (other instances within a second). Test keys are refused (403). Recorded on the audit log (`plan.updated`, with the settings before and after).",
            query: &[],
            body: Body::Json("PlanInput", r#"{"limit":2000}"#),
            ok: (200, Out::Json("Plan")), errors: &[INVALID, NOT_FOUND, CONFLICT],
        }),
        spec(Method::DELETE, "/api/v1/plans/{id}", Key(PlansWrite), delete(plans::delete), Doc {
            summary: "Delete a plan",
            description: "Deletes a plan no key is on (409 `conflict` names how many are); the default plan cannot be deleted. Test keys are refused (403). Recorded on the audit log (`plan.deleted`).",
            query: &[], body: Body::None, ok: (204, Out::Empty), errors: &[NOT_FOUND, CONFLICT],
        }),
        spec(Method::GET, "/api/v1/audit", Key(AuditRead), get(audit::list), Doc {
            summary: "Read the audit log",
            description: "Every security and administration action of the key's organization (of the whole instance for a key of the system organization), newest first, 50 per page, with `total` over every page. Each entry carries its place in the tamper-evident hash chain (`seq`, none for about a second until chained; `keyward audit verify` checks the chain).",
            query: AUDIT_QUERY, body: Body::None, ok: (200, Out::Json("AuditPage")), errors: &[INVALID],
        }),
        spec(Method::GET, "/api/v1/audit/export", Key(AuditRead), get(audit::export), Doc {
            summary: "Export the audit log",
            description: "Every entry matching the filters (not one page), newest first, streamed as CSV or JSON (one entry per line), with who acted, who impersonated them, the target, before and after values, address, user agent and the entry's place in the hash chain. `X-Keyward-Rows` gives the number of entries before the body starts.",
            query: AUDIT_EXPORT_QUERY, body: Body::None, ok: (200, Out::Export("AuditEntry")), errors: &[INVALID],
        }),
        spec(Method::GET, "/api/v1/users", Key(UsersRead), get(users::list), Doc {
            summary: "List users",
            description: "The instance's users, newest first, 25 per page, with `total` over every page. Needs `users:read`, which only keys of the system organization can hold.",
            query: USERS_QUERY, body: Body::None, ok: (200, Out::Json("UserPage")), errors: &[INVALID],
        }),
        spec(Method::POST, "/api/v1/users", Key(UsersWrite), post(users::create), Doc {
            summary: "Create a user",
            description: "Creates an account and emails the person a single-use link (72 hours) to choose their password. `system_role` (owner, admin, member or viewer) makes them an instance administrator; the key cannot give a role that grants more than it holds. A taken address is 409 `conflict`.",
            query: &[],
            body: Body::Json("NewUser", r#"{"email":"ann@example.org","display_name":"Ann"}"#),
            ok: (201, Out::Json("UserSummary")), errors: &[INVALID, CONFLICT],
        }),
        spec(Method::GET, "/api/v1/users/{id}", Key(UsersRead), get(users::get), Doc {
            summary: "Get a user",
            description: "One user, deleted ones included (status `deleted`).",
            query: &[], body: Body::None, ok: (200, Out::Json("UserSummary")), errors: &[NOT_FOUND],
        }),
        spec(Method::PATCH, "/api/v1/users/{id}", Key(UsersWrite), patch(users::set_status), Doc {
            summary: "Disable or enable a user",
            description: "`disabled` ends the user's sessions and stops their personal access tokens at once; `active` lets them sign in again. Refused with 403 on a user holding an instance permission the key lacks, with 400 on the account of the key's owner or maker, and with 409 when the account already has that status or is the only owner of an organization.",
            query: &[],
            body: Body::Json("UserStatusChange", r#"{"status":"disabled"}"#),
            ok: (200, Out::Json("UserSummary")), errors: &[INVALID, NOT_FOUND, CONFLICT],
        }),
        spec(Method::POST, "/api/v1/users/{id}/password-reset", Key(UsersWrite), post(users::password_reset), Doc {
            summary: "Send a password reset",
            description: "Emails the user a single-use link (24 hours) to choose a new password; the current one keeps working until the link is used. 409 for a disabled account.",
            query: &[], body: Body::None, ok: (204, Out::Empty), errors: &[NOT_FOUND, CONFLICT],
        }),
        spec(Method::GET, "/api/v1/users/{id}/sessions", Key(UsersRead), get(users::sessions), Doc {
            summary: "List a user's sessions",
            description: "The user's live console sessions, the most recently seen first: an opaque `handle` (never the session id), the device as its user agent names it, the address it signed in from, when it signed in and was last seen. A sign-in still waiting for its second step is not listed. `current` is always false here: a key has no session.",
            query: &[], body: Body::None, ok: (200, Out::JsonArray("SessionView")), errors: &[NOT_FOUND],
        }),
        spec(Method::DELETE, "/api/v1/users/{id}/sessions/{handle}", Key(UsersWrite), delete(users::end_session), Doc {
            summary: "End one of a user's sessions",
            description: "Signs one console session out, named by the `handle` the list gives. A handle of another user's session, or of an ended one, is 404. Refused with 403 on a user holding an instance permission the key lacks, and with 400 on the account of the key's owner or maker. Recorded as `user.session_ended`.",
            query: &[], body: Body::None, ok: (204, Out::Empty), errors: &[INVALID, NOT_FOUND],
        }),
        spec(Method::DELETE, "/api/v1/users/{id}/sessions", Key(UsersWrite), delete(users::end_sessions), Doc {
            summary: "Sign a user out everywhere",
            description: "Ends every console session of the user at once (their personal access tokens keep working: disable the account to stop those). Refused with 403 on a user holding an instance permission the key lacks, and with 400 on the account of the key's owner or maker.",
            query: &[], body: Body::None, ok: (200, Out::Json("SessionsEnded")), errors: &[INVALID, NOT_FOUND],
        }),
        spec(Method::DELETE, "/api/v1/users/{id}/two-factor", Key(UsersWrite), delete(users::reset_two_factor), Doc {
            summary: "Turn a user's two-factor authentication off",
            description: "For a user who lost their authenticator app and their recovery codes: the factor and the codes are deleted, every console session of the user ends, and the user is told in the app and by email. 409 `conflict` when the user has none. Refused with 403 on a user holding an instance permission the key lacks, and with 400 on the account of the key's owner or maker.",
            query: &[], body: Body::None, ok: (204, Out::Empty), errors: &[INVALID, NOT_FOUND, CONFLICT],
        }),
        spec(Method::DELETE, "/api/v1/users/{id}", Key(UsersWrite), delete(users::delete), Doc {
            summary: "Delete a user",
            description: "Anonymizes and disables the account (audit entries keep its id), ends its sessions, removes its memberships and revokes its personal organization's keys and its personal access tokens. 409 `conflict` while the user is the only owner of an organization, naming it.",
            query: &[], body: Body::None, ok: (204, Out::Empty), errors: &[NOT_FOUND, CONFLICT],
        }),
        spec(Method::GET, "/api/v1/members", Key(MembersRead), get(members::list), Doc {
            summary: "List members",
            description: "The organization's members by email, each with their base role and the custom roles assigned to them.",
            query: &[], body: Body::None, ok: (200, Out::JsonArray("Member")), errors: &[],
        }),
        spec(Method::PATCH, "/api/v1/members/{id}", Key(MembersWrite), patch(members::set_role), Doc {
            summary: "Change a member's base role",
            description: "`admin`, `member` or `viewer` (ownership moves only by transfer, in the console). Refused (403) when the member or the new role holds more than the key.",
            query: &[],
            body: Body::Json("MemberRoleChange", r#"{"role":"viewer"}"#),
            ok: (200, Out::Json("Member")), errors: &[INVALID, NOT_FOUND, CONFLICT],
        }),
        spec(Method::DELETE, "/api/v1/members/{id}", Key(MembersWrite), delete(members::remove), Doc {
            summary: "Remove a member",
            description: "They lose every role in the organization, their teams included, and their personal tokens there stop. The last owner cannot be removed; nor can anyone holding more than the key.",
            query: &[], body: Body::None, ok: (204, Out::Empty), errors: &[NOT_FOUND, CONFLICT],
        }),
        spec(Method::GET, "/api/v1/invitations", Key(MembersWrite), get(members::invitations), Doc {
            summary: "List pending invitations",
            description: "Who was invited, with which role, by whom, until when. Never the link. Needs `members:write`, like inviting.",
            query: &[], body: Body::None, ok: (200, Out::JsonArray("Invitation")), errors: &[],
        }),
        spec(Method::POST, "/api/v1/invitations", Key(MembersWrite), post(members::invite), Doc {
            summary: "Invite a member",
            description: "Emails a signed, single-use link (7 days) to join with the role (`admin`, `member` or `viewer`; not above the key). Accepting creates the account when needed, even with sign-up closed.",
            query: &[],
            body: Body::Json("NewInvitation", r#"{"email":"ann@example.org","role":"member"}"#),
            ok: (201, Out::Json("Invitation")), errors: &[INVALID, CONFLICT],
        }),
        spec(Method::DELETE, "/api/v1/invitations/{id}", Key(MembersWrite), delete(members::revoke_invitation), Doc {
            summary: "Revoke an invitation",
            description: "Its link stops working at once.",
            query: &[], body: Body::None, ok: (204, Out::Empty), errors: &[NOT_FOUND],
        }),
        spec(Method::GET, "/api/v1/teams", Key(MembersRead), get(teams::list), Doc {
            summary: "List teams",
            description: "The organization's teams, by name, each with its members and the custom roles it holds. A team's members hold its roles beside their own.",
            query: &[], body: Body::None, ok: (200, Out::JsonArray("Team")), errors: &[],
        }),
        spec(Method::POST, "/api/v1/teams", Key(MembersWrite), post(teams::create), Doc {
            summary: "Create a team",
            description: "An empty team holding no role. Names are unique in the organization (409 `conflict`), 1 to 100 characters.",
            query: &[],
            body: Body::Json("NewTeam", r#"{"name":"support","description":"first-line support"}"#),
            ok: (201, Out::Json("Team")), errors: &[INVALID, CONFLICT],
        }),
        spec(Method::GET, "/api/v1/teams/{id}", Key(MembersRead), get(teams::get), Doc {
            summary: "Get a team",
            description: "One team of the organization (another organization's is not found).",
            query: &[], body: Body::None, ok: (200, Out::Json("Team")), errors: &[NOT_FOUND],
        }),
        spec(Method::DELETE, "/api/v1/teams/{id}", Key(MembersWrite), delete(teams::delete), Doc {
            summary: "Delete a team",
            description: "Its members lose the roles they held through it. Refused (403) when a role the team holds grants more than the key holds.",
            query: &[], body: Body::None, ok: (204, Out::Empty), errors: &[NOT_FOUND],
        }),
        spec(Method::PUT, "/api/v1/teams/{id}/members", Key(MembersWrite), put(teams::set_member), Doc {
            summary: "Put a member in a team, or take them out",
            description: "`member: true` adds a member of the organization (400 for anyone else), `false` takes them out; either applies at once. Refused (403) when a role the team holds grants more than the key holds.",
            query: &[],
            body: Body::Json("TeamMembership", r#"{"user_id":"usr_…","member":true}"#),
            ok: (200, Out::Json("Team")), errors: &[INVALID, NOT_FOUND],
        }),
        spec(Method::PUT, "/api/v1/teams/{id}/roles", Key(RolesWrite), put(teams::set_role), Doc {
            summary: "Give a team a role, or take it",
            description: "`held: true` gives the team one of the organization's custom roles (built-in roles are a member's base role: 400), `false` takes it; every member holds it, or not, at once. Refused (403) for a role granting more than the key holds.",
            query: &[],
            body: Body::Json("TeamRoleChange", r#"{"role_id":"role_…","held":true}"#),
            ok: (200, Out::Json("Team")), errors: &[INVALID, NOT_FOUND],
        }),
        spec(Method::GET, "/api/v1/roles", Key(RolesRead), get(roles::list), Doc {
            summary: "List roles",
            description: "The organization's roles: the built-in ones (owner, admin, member, viewer; read-only, the same everywhere) then its own, each set by name, each with its parents, what it grants directly, its permission groups, and its **effective** permissions with every source (`direct`, `group`, `inherited` from which role, `dependency` of which permission).",
            query: &[], body: Body::None, ok: (200, Out::JsonArray("RoleView")), errors: &[],
        }),
        spec(Method::POST, "/api/v1/roles", Key(RolesWrite), post(roles::create), Doc {
            summary: "Create a role",
            description: "A custom role of the organization inheriting every permission of `parents` (built-in or custom role ids), granting nothing of its own yet. Names are unique in the organization (409 `conflict`). Refused (403) when the role would grant a built-in permission the key does not hold.",
            query: &[],
            body: Body::Json("NewRole", r#"{"name":"support","description":"first-line support","parents":["viewer"]}"#),
            ok: (201, Out::Json("RoleView")), errors: &[INVALID, CONFLICT],
        }),
        spec(Method::GET, "/api/v1/roles/{id}", Key(RolesRead), get(roles::get), Doc {
            summary: "Get a role",
            description: "One role with its effective permissions and where each comes from. Another organization's role is not found.",
            query: &[], body: Body::None, ok: (200, Out::Json("RoleView")), errors: &[NOT_FOUND],
        }),
        spec(Method::DELETE, "/api/v1/roles/{id}", Key(RolesWrite), delete(roles::delete), Doc {
            summary: "Delete a role",
            description: "Deletes a custom role: its members and teams lose it, and roles inheriting it stop inheriting it, at once. Built-in roles cannot be deleted (400); nor can a role granting more than the key holds (403).",
            query: &[], body: Body::None, ok: (204, Out::Empty), errors: &[INVALID, NOT_FOUND],
        }),
        spec(Method::PUT, "/api/v1/roles/{id}/parents", Key(RolesWrite), put(roles::set_parents), Doc {
            summary: "Re-parent a role",
            description: "Replaces a custom role's parents. A cycle is refused (400) with a message naming it (`a → b → a`); so is a parent set that would make the role grant more than the key holds (403).",
            query: &[],
            body: Body::Json("RoleParents", r#"{"parents":["member"]}"#),
            ok: (200, Out::Json("RoleView")), errors: &[INVALID, NOT_FOUND],
        }),
        spec(Method::PUT, "/api/v1/roles/{id}/permissions", Key(RolesWrite), put(roles::set_permission), Doc {
            summary: "Grant or take a permission",
            description: "`granted: true` grants a permission (built-in or dynamic) to a custom role, with what it requires; `false` takes it away. Taking away a permission that another one the role lists requires is refused (409) naming those, unless `cascade: true` takes them too. Refused (403) for a built-in permission the key does not hold; the organization's dynamic permissions are administered by every `roles:write` holder (see the permissions guide).",
            query: &[],
            body: Body::Json("RolePermissionChange", r#"{"permission":"keys:write","granted":true}"#),
            ok: (200, Out::Json("RoleView")), errors: &[INVALID, NOT_FOUND, CONFLICT],
        }),
        spec(Method::PUT, "/api/v1/roles/{id}/groups", Key(RolesWrite), put(roles::set_group), Doc {
            summary: "Grant or take a permission group",
            description: "`granted: true` grants every permission of the group to the role as a unit (and whatever the group later gains); `false` takes the group away. Refused (403) when the group holds more than the key.",
            query: &[],
            body: Body::Json("RoleGroupChange", r#"{"group_id":"grp_…","granted":true}"#),
            ok: (200, Out::Json("RoleView")), errors: &[INVALID, NOT_FOUND],
        }),
        spec(Method::PUT, "/api/v1/roles/{id}/members", Key(RolesWrite), put(roles::assign), Doc {
            summary: "Assign a role in bulk",
            description: "`assigned: true` gives the custom role to each member in `user_ids` (1 to 500), `false` takes it from them, with one result per user (`ok`, `changed`, and the reason when not ok, e.g. not a member). The whole call is refused (403) when the role grants more than the key holds.",
            query: &[],
            body: Body::Json("RoleAssignment", r#"{"user_ids":["usr_…"],"assigned":true}"#),
            ok: (200, Out::JsonArray("AssignResult")), errors: &[INVALID, NOT_FOUND],
        }),
        spec(Method::GET, "/api/v1/permissions", Key(RolesRead), get(roles::permissions), Doc {
            summary: "List permissions",
            description: "The permission catalog: the built-in permissions (read-only; instance permissions only in the system organization) and the organization's dynamic ones, each with what granting it grants too.",
            query: &[], body: Body::None, ok: (200, Out::JsonArray("PermissionView")), errors: &[],
        }),
        spec(Method::POST, "/api/v1/permissions", Key(RolesWrite), post(roles::create_permission), Doc {
            summary: "Define a dynamic permission",
            description: "A permission for the organization's own services, named `resource:action` (e.g. `invoices:read`), requiring others of the organization. Grantable to roles and key scopes; other services check it with `POST /api/v1/keys/verify` and `permissions`. A built-in or taken name is 409 `conflict`.",
            query: &[],
            body: Body::Json("NewPermission", r#"{"name":"invoices:write","description":"issue invoices","requires":["invoices:read"]}"#),
            ok: (201, Out::Json("PermissionView")), errors: &[INVALID, CONFLICT],
        }),
        spec(Method::GET, "/api/v1/permission-groups", Key(RolesRead), get(roles::list_groups), Doc {
            summary: "List permission groups",
            description: "The organization's permission groups: named sets of permissions granted to roles as a unit.",
            query: &[], body: Body::None, ok: (200, Out::JsonArray("GroupView")), errors: &[],
        }),
        spec(Method::POST, "/api/v1/permission-groups", Key(RolesWrite), post(roles::create_group), Doc {
            summary: "Create a permission group",
            description: "A named set (at most 100) of the organization's permissions. A group grants nothing until a role holds it. Names are unique in the organization (409 `conflict`).",
            query: &[],
            body: Body::Json("NewGroup", r#"{"name":"billing","permissions":["usage:read"]}"#),
            ok: (201, Out::Json("GroupView")), errors: &[INVALID, CONFLICT],
        }),
        spec(Method::PUT, "/api/v1/permission-groups/{id}/permissions", Key(RolesWrite), put(roles::set_group_permission), Doc {
            summary: "Put a permission in a group, or take it out",
            description: "`included: true` adds a permission to the group, `false` takes it out; every role holding the group follows at once. Refused (403) when a role holding the group grants more than the key, or would after the change.",
            query: &[],
            body: Body::Json("GroupPermissionChange", r#"{"permission":"keys:read","included":true}"#),
            ok: (200, Out::Json("GroupView")), errors: &[INVALID, NOT_FOUND],
        }),
        spec(Method::DELETE, "/api/v1/permission-groups/{id}", Key(RolesWrite), delete(roles::delete_group), Doc {
            summary: "Delete a permission group",
            description: "Every role holding it loses what it granted through it, at once. Refused (403) when a role holding it grants more than the key.",
            query: &[], body: Body::None, ok: (204, Out::Empty), errors: &[NOT_FOUND],
        }),
        spec(Method::GET, "/api/v1/usage", Key(UsageRead), get(plans::usage), Doc {
            summary: "Usage of the organization",
            description: "Requests over time for a range (every bucket present, split 2xx/4xx/429/5xx) and its summary: totals, error rate, latency p50/p95/p99, top keys, routes and error codes, the 20 latest errors. Filter by key and route. Read from the request log (kept `KEYWARD_LOG_RETENTION_DAYS`).",
            query: USAGE_QUERY, body: Body::None, ok: (200, Out::Json("UsageReport")), errors: &[INVALID],
        }),
        spec(Method::GET, "/api/v1/usage/errors", Key(UsageRead), get(plans::errors), Doc {
            summary: "Errors of the organization",
            description: "Failed requests over time (every bucket present, with each bucket's error rate in percent), the top error codes, the keys and routes with the most failed requests, and the 50 latest errors with request id, code and message. Same range and filters as `GET /api/v1/usage`.",
            query: USAGE_QUERY, body: Body::None, ok: (200, Out::Json("ErrorReport")), errors: &[INVALID],
        }),
        spec(Method::GET, "/api/v1/usage/export", Key(UsageRead), get(plans::export), Doc {
            summary: "Export usage statistics",
            description: "The per-minute statistics of a range and filters (requests and mean latency per minute, key, route and status class), streamed as CSV or JSON (one row per line). `X-Keyward-Rows` gives the number of rows before the body starts, for a progress bar.",
            query: USAGE_EXPORT_QUERY, body: Body::None, ok: (200, Out::Export("ExportRow")), errors: &[INVALID],
        }),
        spec(Method::GET, "/api/v1/keys/{id}/usage", Key(UsageRead), get(plans::key_usage), Doc {
            summary: "A key's usage",
            description: "The key's limit in force (its own, else its plan's), what it used of it in the window ending now, what remains and when the count goes down (what the `RateLimit-*` headers say), and its requests and failed requests in the last 24 hours.",
            query: &[], body: Body::None, ok: (200, Out::Json("KeyLimitUsage")), errors: &[NOT_FOUND],
        }),
        spec(Method::GET, "/metrics", Operator, get(crate::metrics::handler), Doc {
            summary: "Prometheus metrics",
            description: "Requests by route and status, latency histograms, rate-limit decisions, request-log buffer depth and losses, in the Prometheus text format. From the networks in `KEYWARD_METRICS_ALLOW` (loopback by default) or with `Authorization: Bearer $KEYWARD_METRICS_TOKEN`.",
            query: &[], body: Body::None, ok: (200, Out::Text), errors: &[],
        }),
        spec(Method::GET, "/api/v1/keys/{id}/history", Key(KeysRead), get(keys::history), Doc {
            summary: "Key timeline",
            description: "Every transition of the key (created, imported, edited, disabled, enabled, rolled, revoked, expired) with actor, time, reason, source IP and `detail` (an edit's `changed` fields, a roll's successor), oldest first.",
            query: &[], body: Body::None, ok: (200, Out::JsonArray("KeyEvent")), errors: &[NOT_FOUND],
        }),
    ]
}

/// `GET /api/v1/openapi.json`.
async fn openapi_json() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        app::ssr::api_document().to_string(),
    )
        .into_response()
}

pub fn router(state: &AppState) -> Router<AppState> {
    routes().into_iter().fold(Router::new(), |router, spec| {
        let handler = match spec.access {
            Access::Public | Access::Operator => spec.handler,
            Access::Key(permission) => {
                spec.handler
                    .route_layer(axum::middleware::from_fn_with_state(
                        (state.clone(), permission),
                        auth::require_key,
                    ))
            }
        };
        let handler = handler.layer(tower_http::limit::RequestBodyLimitLayer::new(
            spec.body_limit,
        ));
        // Every /api/v1 request is logged, refusals included; the log is the outermost layer
        // so that it sees the final status and latency.
        let handler = if spec.path.starts_with("/api/v1/") {
            handler.layer(axum::middleware::from_fn_with_state(
                (state.clone(), spec.path),
                usage_log::middleware,
            ))
        } else {
            handler
        };
        router.route(spec.path, handler)
    })
}
