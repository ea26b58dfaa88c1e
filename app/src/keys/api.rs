//! Key server functions for the console. Each: guard, check the organization, validate, call
//! `keys::ssr`.
// Server functions mirror their HTML forms, one argument per field; the macro-generated client
// functions cannot carry a per-item allow.
#![allow(clippy::too_many_arguments)]

use super::{ApiKey, CreatedKey, ImportOutcome, KeyEvent, KeyList, KeyQuery};
use crate::error::AppError;
use leptos::prelude::*;

/// The key operations' view of a console call: the caller's grant and address.
#[cfg(feature = "ssr")]
macro_rules! acting {
    ($caller:ident, $grant:ident) => {
        super::ssr::Acting::new(&$grant, $caller.source_ip_text().as_deref())
    };
}

/// A page of the organization's keys: search, filters, sort.
#[server(prefix = "/rpc", endpoint = "list_keys")]
pub async fn list_keys(
    organization_id: String,
    #[server(default)] query: KeyQuery,
) -> Result<KeyList, AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("list_keys", &organization_id).await?;
    ssr::respond(super::ssr::search(
        &caller.state.db,
        &grant.organization_id,
        &query,
    ))
    .await
}

/// One key of the organization.
#[server(prefix = "/rpc", endpoint = "get_key")]
pub async fn get_key(organization_id: String, key_id: String) -> Result<ApiKey, AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("get_key", &organization_id).await?;
    ssr::respond(super::ssr::get(
        &caller.state.db,
        &grant.organization_id,
        &key_id,
    ))
    .await
}

/// Edits a key's settings from the key page. Text fields as the form sends them: the IP
/// allow-list one entry per line or comma, the expiry as a date (`YYYY-MM-DD`, end of that
/// day UTC) or empty for never.
#[server(prefix = "/rpc", endpoint = "update_key")]
pub async fn update_key(
    organization_id: String,
    key_id: String,
    name: String,
    description: String,
    category: String,
    ip_allowlist: String,
    expires_on: String,
    #[server(default)] require_signature: Option<String>,
    reason: String,
    #[server(default)] version: Option<String>,
) -> Result<ApiKey, AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("update_key", &organization_id).await?;
    ssr::respond(async move {
        // `version`: the key's `updated_at` when the page loaded it (the page always sends
        // it). The form is compared with the key as it is now, and saved only if that is still
        // the version loaded (409 otherwise): a stale form never undoes someone else's change.
        let version = super::ssr::parse_version(version.as_deref())?;
        let current = super::ssr::row_fresh(&caller.state.db, &organization_id, &key_id)
            .await?
            .to_wire(crate::ssr::db::now_ms());
        // The form shows the expiry's day: the same day sent back is no change (the key keeps
        // its exact time; a rename must not move it, nor count as an access change).
        let day = expires_on.trim();
        let current_day = current
            .expires_at
            .as_deref()
            .map(|at| at.get(..10).unwrap_or(at));
        let wanted_day = Some(day).filter(|d| !d.is_empty());
        let expires_at =
            (wanted_day != current_day).then(|| wanted_day.map(|d| format!("{d}T23:59:59Z")));
        let ip_allowlist = split_list(&ip_allowlist);
        let require_signature = require_signature.is_some_and(|v| !v.is_empty());
        let patch = super::KeyPatch {
            name: Some(name),
            description: Some(description),
            // An unchanged category keeps the key's scopes as they are (a preset is not
            // re-derived: the catalog may have grown since).
            category: (category != current.category.as_str()).then_some(category),
            // Only what changed is sent: an unchanged field is not an access change.
            ip_allowlist: (ip_allowlist != current.ip_allowlist).then_some(ip_allowlist),
            expires_at,
            require_signature: (require_signature != current.require_signature)
                .then_some(require_signature),
            reason: Some(reason),
            ..Default::default()
        };
        super::ssr::update(
            &caller.state,
            acting!(caller, grant),
            &key_id,
            &patch,
            version,
        )
        .await
    })
    .await
}

/// Splits a list typed one per line or comma-separated.
#[cfg(feature = "ssr")]
fn split_list(s: &str) -> Vec<String> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Exports the organization's keys (`json` or `csv`): settings and state, never a secret.
#[server(prefix = "/rpc", endpoint = "export_keys")]
pub async fn export_keys(organization_id: String, format: String) -> Result<String, AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("export_keys", &organization_id).await?;
    ssr::respond(async move {
        let list = super::ssr::list(&caller.state.db, &grant.organization_id).await?;
        match format.as_str() {
            "json" => serde_json::to_string_pretty(&list).map_err(AppError::internal),
            "csv" => super::ssr::to_csv(&list),
            _ => Err(AppError::invalid("format", "format must be json or csv")),
        }
    })
    .await
}

/// Imports keys from a JSON or CSV file's text; `dry_run` previews without writing.
#[server(prefix = "/rpc", endpoint = "import_keys")]
pub async fn import_keys(
    organization_id: String,
    format: String,
    data: String,
    dry_run: bool,
) -> Result<Vec<ImportOutcome>, AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("import_keys", &organization_id).await?;
    ssr::respond(async move {
        let rows = super::import::parse(&format, &data)?;
        super::import::import(&caller.state, acting!(caller, grant), &rows, dry_run).await
    })
    .await
}

/// The instant (RFC 3339) `days` (a form's `expires_in_days`: 1 to 3660) after `now`;
/// `refusal` is the message for anything else.
#[cfg(feature = "ssr")]
fn days_from_now(days: &str, now: i64, refusal: &str) -> Result<String, AppError> {
    let days: i64 = days
        .parse()
        .ok()
        .filter(|d| (1..=3660).contains(d))
        .ok_or_else(|| AppError::invalid("expires_in_days", refusal))?;
    Ok(crate::ssr::db::rfc3339(now + days * 86_400_000))
}

/// Creates a key; the answer carries the secret, shown once.
#[server(prefix = "/rpc", endpoint = "create_key")]
pub async fn create_key(
    organization_id: String,
    name: String,
    environment: String,
    category: String,
    ip_allowlist: String,
    expires_in_days: String,
    #[server(default)] require_signature: Option<String>,
    #[server(default)] personal: Option<String>,
    #[server(default)] permissions: Option<String>,
) -> Result<CreatedKey, AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("create_key", &organization_id).await?;
    ssr::respond(async move {
        let now = ssr::db::now_ms();
        let expires_at = match expires_in_days.trim() {
            "" => None,
            days => Some(days_from_now(
                days,
                now,
                "expiry must be a whole number of days between 1 and 3660",
            )?),
        };
        let new = super::NewKey {
            name,
            environment: Some(environment),
            category: Some(category),
            ip_allowlist: Some(split_list(&ip_allowlist)),
            expires_at,
            require_signature: Some(require_signature.is_some_and(|v| !v.is_empty())),
            permissions: Some(split_list(&permissions.unwrap_or_default())),
            ..Default::default()
        };
        // A personal access token belongs to its creator and never exceeds what they hold
        // (checked again on every request).
        let owner = personal
            .is_some_and(|v| !v.is_empty())
            .then(|| caller.user_id.clone())
            .flatten();
        let settings = super::ssr::validate_new(&new, now, &grant)?;
        let created = super::ssr::create(
            &caller.state.db,
            &caller.state.config.secret,
            acting!(caller, grant),
            owner.as_deref(),
            &settings,
        )
        .await?;
        super::ssr::announce_pending(&caller.state, &created.api_key).await;
        Ok(created)
    })
    .await
}

/// Enables, disables or revokes a key.
#[server(prefix = "/rpc", endpoint = "set_key_status")]
pub async fn set_key_status(
    organization_id: String,
    key_id: String,
    action: String,
    reason: String,
) -> Result<ApiKey, AppError> {
    use crate::ssr;
    let (caller, grant) =
        crate::access::guard::guard_in("set_key_status", &organization_id).await?;
    ssr::respond(async move {
        let t = super::ssr::parse_transition(&action)?;
        super::ssr::transition(
            &caller.state,
            acting!(caller, grant),
            &key_id,
            t,
            Some(&reason),
        )
        .await
    })
    .await
}

/// Approves or rejects a key awaiting approval (`decision`: `approve` or `reject`).
/// `version`: the key's `updated_at` as the reviewer saw it (required to approve).
#[server(prefix = "/rpc", endpoint = "review_key")]
pub async fn review_key(
    organization_id: String,
    key_id: String,
    decision: String,
    #[server(default)] reason: String,
    #[server(default)] version: Option<String>,
) -> Result<ApiKey, AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("review_key", &organization_id).await?;
    ssr::respond(async move {
        let decision = super::ssr::Decision::parse(&decision)?;
        super::ssr::review(
            &caller.state,
            acting!(caller, grant),
            &key_id,
            decision,
            super::ssr::parse_version(version.as_deref())?,
            Some(&reason),
        )
        .await
    })
    .await
}

/// Rolls a key; the old one works for `grace_seconds` more. The new key expires
/// `expires_in_days` from now (`never`: not at all; empty or absent: when the old one was to).
/// Answers with the new secret.
#[server(prefix = "/rpc", endpoint = "roll_key")]
pub async fn roll_key(
    organization_id: String,
    key_id: String,
    grace_seconds: i64,
    #[server(default)] expires_in_days: Option<String>,
) -> Result<CreatedKey, AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("roll_key", &organization_id).await?;
    ssr::respond(async move {
        let expires_at = match expires_in_days.as_deref().map(str::trim) {
            None | Some("") => None,
            Some("never") => Some(None),
            Some(days) => Some(Some(days_from_now(
                days,
                ssr::db::now_ms(),
                "the new key expires in 1 to 3660 days, or never",
            )?)),
        };
        super::ssr::roll(
            &caller.state,
            acting!(caller, grant),
            &key_id,
            grace_seconds,
            expires_at.as_ref().map(Option::as_deref),
            None,
        )
        .await
    })
    .await
}

/// A key's status timeline.
#[server(prefix = "/rpc", endpoint = "key_history")]
pub async fn key_history(
    organization_id: String,
    key_id: String,
) -> Result<Vec<KeyEvent>, AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("key_history", &organization_id).await?;
    ssr::respond(super::ssr::history(
        &caller.state.db,
        &grant.organization_id,
        &key_id,
    ))
    .await
}

/// Enables, disables or revokes several keys; each gets its own outcome.
#[server(prefix = "/rpc", endpoint = "bulk_keys")]
pub async fn bulk_keys(
    organization_id: String,
    key_ids: Vec<String>,
    action: String,
) -> Result<Vec<super::BulkOutcome>, AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("bulk_keys", &organization_id).await?;
    ssr::respond(async move {
        let t = super::ssr::parse_transition(&action)?;
        super::ssr::bulk(&caller.state, acting!(caller, grant), &key_ids, t, None).await
    })
    .await
}

/// Puts a key on a plan and sets or clears its own limit, from the key page: empty
/// `rate_limit` and `rate_window_seconds` follow the plan; an empty plan is the default one.
#[server(prefix = "/rpc", endpoint = "set_key_limit")]
pub async fn set_key_limit(
    organization_id: String,
    key_id: String,
    #[server(default)] plan_id: String,
    #[server(default)] rate_limit: String,
    #[server(default)] rate_window_seconds: String,
) -> Result<ApiKey, AppError> {
    let (caller, grant) = crate::access::guard::guard_in("set_key_limit", &organization_id).await?;
    crate::ssr::respond(async move {
        let optional = |field: &str, text: &str| match text.trim() {
            "" => Ok(None),
            t => crate::usage::api::number(field, t).map(Some),
        };
        let limit = super::KeyLimit {
            plan_id: Some(plan_id).filter(|p| !p.trim().is_empty()),
            rate_limit: optional("rate_limit", &rate_limit)?,
            // The window goes with an own limit only: an empty limit follows the plan.
            rate_window_seconds: match rate_limit.trim() {
                "" => None,
                _ => optional("rate_window_seconds", &rate_window_seconds)?,
            },
            reason: None,
        };
        super::ssr::set_limit(&caller.state, acting!(caller, grant), &key_id, &limit).await
    })
    .await
}
