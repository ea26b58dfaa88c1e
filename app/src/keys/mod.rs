//! API keys: the wire types shared by the console, the REST API and the domain.
//!
//! A key belongs to an organization (org key) or to a user within one (personal access token).
//! Its secret is shown once ([`CreatedKey`]); no other type here carries it.

pub mod api;
#[cfg(feature = "ssr")]
pub mod export;
#[cfg(feature = "ssr")]
pub mod format;
#[cfg(feature = "ssr")]
pub mod import;
#[cfg(feature = "ssr")]
pub mod lifecycle;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod rules;
#[cfg(feature = "ssr")]
pub mod search;
#[cfg(feature = "ssr")]
pub mod signature;
#[cfg(feature = "ssr")]
pub mod ssr;
#[cfg(feature = "ssr")]
pub mod verify;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Stripe-style access to one resource; `write` implies `read`.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    None,
    Read,
    Write,
}

/// Resource → access, e.g. `{"keys": "write", "org": "read"}`. Resources come from the
/// permission catalog (`org`, `members`, `keys`, `audit`, `users`).
pub type Scopes = BTreeMap<String, Access>;

/// The lifecycle state of a key as callers see it (`expired` is derived from the date).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Disabled,
    Revoked,
    Expired,
    /// Waits for an approver (the organization requires approval of new keys); does not
    /// verify.
    Pending,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Disabled => "disabled",
            KeyStatus::Revoked => "revoked",
            KeyStatus::Expired => "expired",
            KeyStatus::Pending => "pending",
        }
    }
}

/// Named presets for the scopes.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Read and write keys; read the organization.
    Basic,
    /// Read everything the catalog has, write nothing.
    ReadOnly,
    /// Write everything the catalog has.
    Admin,
    /// Scopes chosen one by one.
    Custom,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Basic => "basic",
            Category::ReadOnly => "read_only",
            Category::Admin => "admin",
            Category::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        [
            Category::Basic,
            Category::ReadOnly,
            Category::Admin,
            Category::Custom,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// The scopes of a preset for a key of an organization (`Custom` has none of its own).
    /// "Everything" means every resource that organization can hold: the instance resources
    /// (`users`) only in the system organization.
    pub fn preset(self, system_org: bool) -> Option<Scopes> {
        let all = || crate::access::resources_in(system_org).into_iter();
        match self {
            Category::Basic => Some(Scopes::from([
                ("keys".to_string(), Access::Write),
                ("org".to_string(), Access::Read),
            ])),
            Category::ReadOnly => Some(all().map(|r| (r.to_string(), Access::Read)).collect()),
            Category::Admin => Some(all().map(|r| (r.to_string(), Access::Write)).collect()),
            Category::Custom => None,
        }
    }
}

/// A method + path pattern a key may call. `*` in the path matches one segment, a trailing
/// `/**` any rest; method `*` matches any method.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRule {
    /// `*`, `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    #[cfg_attr(feature = "ssr", schema(pattern = r"^(\*|GET|POST|PUT|PATCH|DELETE)$"))]
    pub method: String,
    /// Starts with `/`; `*` is a whole segment, `**` only the last one; no spaces or query.
    #[cfg_attr(
        feature = "ssr",
        schema(min_length = 1, max_length = 200, pattern = r"^/[^\s?]*$")
    )]
    pub path: String,
}

/// An API key as shown after creation: no secret, ever.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub organization_id: String,
    /// Set for a personal access token.
    pub owner_user_id: Option<String>,
    pub name: String,
    pub description: String,
    pub environment: String,
    /// Non-secret start of the key, e.g. `kw_live_4eC3`.
    pub display_prefix: String,
    pub status: KeyStatus,
    pub category: Category,
    pub scopes: Scopes,
    /// Dynamic permissions of the organization the key carries (`invoices:read`), for other
    /// services to check through `POST /api/v1/keys/verify`.
    pub permissions: Vec<String>,
    pub endpoints: Vec<EndpointRule>,
    pub ip_allowlist: Vec<String>,
    pub require_signature: bool,
    pub metadata: serde_json::Value,
    /// RFC 3339.
    pub expires_at: Option<String>,
    /// The key that replaced this one in a roll.
    pub rolled_to_key_id: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_used_at: Option<String>,
    /// The key's plan (`null`: the default plan, `plan_free`).
    pub plan_id: Option<String>,
    /// The key's own limit, overriding its plan's (with `rate_window_seconds`).
    pub rate_limit: Option<i64>,
    pub rate_window_seconds: Option<i64>,
}

/// A key just created or rolled, with its secret, shown once.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The full secret key. Only in this response.
    pub key: String,
    /// The key's request-signing secret (`kwsig_…`), for the `Signature` header. Only in
    /// this response; a roll gives the new key a new one.
    pub signing_secret: String,
}

/// What to create. Unset fields take their defaults.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// 1 to 100 printable characters (not only spaces).
    #[cfg_attr(
        feature = "ssr",
        schema(min_length = 1, max_length = 100, pattern = r"\S")
    )]
    pub name: String,
    /// At most 1000 characters.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(max_length = 1000))]
    pub description: Option<String>,
    /// `live` (default) or `test`.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(pattern = "^(live|test)$"))]
    pub environment: Option<String>,
    /// `basic`, `read_only`, `admin` or `custom` (default `custom` when scopes are given,
    /// `basic` otherwise). A preset category takes no `scopes`.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(pattern = "^(basic|read_only|admin|custom)$"))]
    pub category: Option<String>,
    /// Resource → access, for category `custom`. Resources: `org`, `members`, `keys`,
    /// `audit` (and `users` in the system organization only).
    #[serde(default)]
    pub scopes: Option<Scopes>,
    /// Dynamic permissions of the organization (created on the roles page or over REST, such
    /// as `invoices:read`), at most 50. The caller must hold each one; they are checked by other
    /// services through `POST /api/v1/keys/verify`. Built-in permissions go in `scopes`.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(max_items = 50))]
    pub permissions: Option<Vec<String>>,
    /// At most 50 rules.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(max_items = 50))]
    pub endpoints: Option<Vec<EndpointRule>>,
    /// At most 100 IPv4/IPv6 addresses or CIDR blocks.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(max_items = 100))]
    pub ip_allowlist: Option<Vec<String>>,
    /// RFC 3339; must be in the future.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(format = DateTime))]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub require_signature: Option<bool>,
    /// A JSON object of at most 8 KiB.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Value>,
    /// Make it a personal access token of the caller (console only).
    #[serde(default)]
    pub personal: Option<bool>,
}

/// One entry of a key's status timeline.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEvent {
    pub kind: String,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub source_ip: Option<String>,
    pub occurred_at: String,
    /// What the entry records beyond its kind: for `edited`, the fields whose value changed
    /// (`changed`; a limit change also the new `plan_id` or `rate_limit`); for `rolled`, the
    /// successor (`rolled_to`) and when this key stops working (`stops_at`); for a successor's
    /// `created`, `rolled_from`; for `enabled`/`disabled`, the status it came `from`; for
    /// `imported`, the `source` and `row`; for `approved`/`rejected`, the `decision`.
    #[cfg_attr(feature = "ssr", schema(value_type = Object))]
    pub detail: serde_json::Value,
}

impl KeyEvent {
    /// The entry's detail in a line for people ("changed: name, ip_allowlist"), if it has one.
    pub fn summary(&self) -> Option<String> {
        let text = |k: &str| self.detail.get(k).and_then(|v| v.as_str());
        if let Some(changed) = self.detail.get("changed").and_then(|v| v.as_array()) {
            let names: Vec<&str> = changed.iter().filter_map(|v| v.as_str()).collect();
            if !names.is_empty() {
                return Some(format!("changed: {}", names.join(", ")));
            }
        }
        if let Some(to) = text("rolled_to") {
            return Some(match text("stops_at") {
                Some(at) => format!("successor {to}; this key works until {at}"),
                None => format!("successor {to}"),
            });
        }
        text("rolled_from").map(|from| format!("successor of {from}"))
    }
}

/// The outcome of one key in a bulk action.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BulkOutcome {
    pub id: String,
    pub ok: bool,
    /// The key's status after the action, when it succeeded.
    pub status: Option<KeyStatus>,
    /// Why it failed (`not_found`, `conflict`…), when it did.
    pub code: Option<String>,
    pub message: Option<String>,
}

/// Search, filters, sort and page for a key list. Everything is optional.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyQuery {
    /// Matches name, description or display prefix, case-insensitively.
    #[serde(default)]
    pub q: Option<String>,
    /// `active`, `disabled`, `revoked` or `expired`.
    #[serde(default)]
    pub status: Option<String>,
    /// `basic`, `read_only`, `admin` or `custom`.
    #[serde(default)]
    pub category: Option<String>,
    /// `org` (organization keys) or `personal` (personal access tokens).
    #[serde(default)]
    pub owner: Option<String>,
    /// Only active keys that expire within this many days.
    #[serde(default)]
    pub expiring_within_days: Option<i64>,
    /// `created_desc` (default), `created_asc`, `name`, `expires_at`, `last_used_desc`.
    #[serde(default)]
    pub sort: Option<String>,
    /// 1-based.
    #[serde(default)]
    pub page: Option<i64>,
    /// 1 to 100, default 25.
    #[serde(default)]
    pub per_page: Option<i64>,
}

/// One page of keys.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KeyList {
    pub data: Vec<ApiKey>,
    /// How many keys match, over all pages.
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// The outcome of one row of an import (or of its preview).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportOutcome {
    /// 1-based, in the order of the file.
    pub row: usize,
    pub name: String,
    pub ok: bool,
    /// `imported` / `issued` (a new key was drawn for a row without key material), `skipped`,
    /// `refused`; in a preview `would_import` / `would_issue`.
    pub action: String,
    pub id: Option<String>,
    /// The secret of a newly issued key, shown once.
    pub key: Option<String>,
    pub signing_secret: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// Changes to a key's settings; absent fields stay as they are. `expires_at: null` removes
/// the expiry.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    #[serde(default)]
    #[cfg_attr(
        feature = "ssr",
        schema(min_length = 1, max_length = 100, pattern = r"\S")
    )]
    pub name: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(max_length = 1000))]
    pub description: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(pattern = "^(basic|read_only|admin|custom)$"))]
    pub category: Option<String>,
    #[serde(default)]
    pub scopes: Option<Scopes>,
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(max_items = 50))]
    pub endpoints: Option<Vec<EndpointRule>>,
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(max_items = 100))]
    pub ip_allowlist: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(feature = "ssr", schema(format = DateTime))]
    pub expires_at: Option<Option<String>>,
    #[serde(default)]
    pub require_signature: Option<bool>,
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(value_type = Option<Object>))]
    pub metadata: Option<serde_json::Value>,
    /// Why, for the timeline (at most 500 characters).
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(max_length = 500))]
    pub reason: Option<String>,
}

/// A key's rate limit: a plan, and optionally the key's own limit overriding it (both
/// `rate_limit` and `rate_window_seconds`, or neither).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLimit {
    /// `null` or absent: the default plan.
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(max_length = 40))]
    pub plan_id: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(minimum = 1, maximum = 1_000_000_000))]
    pub rate_limit: Option<i64>,
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(minimum = 1, maximum = 86_400))]
    pub rate_window_seconds: Option<i64>,
    /// Why, for the timeline (at most 500 characters).
    #[serde(default)]
    #[cfg_attr(feature = "ssr", schema(max_length = 500))]
    pub reason: Option<String>,
}

/// Tells a field sent as `null` (`Some(None)`) from a field left out (`None`).
pub fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_timeline_entry_says_what_it_changed() {
        let entry = |kind: &str, detail: serde_json::Value| super::KeyEvent {
            kind: kind.into(),
            actor: None,
            reason: None,
            source_ip: None,
            occurred_at: String::new(),
            detail,
        };
        let edited = entry(
            "edited",
            serde_json::json!({"changed": ["name", "ip_allowlist"]}),
        );
        assert_eq!(
            edited.summary().as_deref(),
            Some("changed: name, ip_allowlist")
        );
        let rolled = entry(
            "rolled",
            serde_json::json!({"rolled_to": "key_b", "stops_at": "2026-12-01T00:00:00Z"}),
        );
        assert_eq!(
            rolled.summary().as_deref(),
            Some("successor key_b; this key works until 2026-12-01T00:00:00Z")
        );
        let successor = entry("created", serde_json::json!({"rolled_from": "key_a"}));
        assert_eq!(successor.summary().as_deref(), Some("successor of key_a"));
        assert_eq!(
            entry("disabled", serde_json::json!({"from": "active"})).summary(),
            None
        );
    }
}
