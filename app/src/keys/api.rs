//! Key server functions for the console. Each: guard, check the organization, validate, call
//! `keys::ssr`.

use super::{ApiKey, CreatedKey, KeyEvent};
use crate::error::AppError;
use leptos::prelude::*;

/// The organization's keys.
#[server(prefix = "/rpc", endpoint = "list_keys")]
pub async fn list_keys(organization_id: String) -> Result<Vec<ApiKey>, AppError> {
    use crate::ssr;
    let caller = ssr::guard("list_keys").await?;
    ssr::require_org(&caller, "list_keys", &organization_id).await?;
    ssr::respond(super::ssr::list(&caller.state.db, &organization_id)).await
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
) -> Result<CreatedKey, AppError> {
    use crate::ssr;
    let caller = ssr::guard("create_key").await?;
    let role = ssr::require_org(&caller, "create_key", &organization_id).await?;
    ssr::respond(async move {
        let now = ssr::db::now_ms();
        let expires_at = match expires_in_days.trim() {
            "" => None,
            days => {
                let days: i64 = days
                    .parse()
                    .ok()
                    .filter(|d| (1..=3660).contains(d))
                    .ok_or_else(|| {
                        AppError::invalid(
                            "expires_in_days",
                            "expiry must be a whole number of days between 1 and 3660",
                        )
                    })?;
                Some(super::ssr::rfc3339(now + days * 86_400_000))
            }
        };
        let new = super::NewKey {
            name,
            environment: Some(environment),
            category: Some(category),
            ip_allowlist: Some(
                ip_allowlist
                    .split([',', '\n'])
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            expires_at,
            ..Default::default()
        };
        let settings = super::ssr::validate_new(&new, now, &|p| role.allows(p))?;
        let actor = super::ssr::Actor::from(&caller);
        super::ssr::create(
            &caller.state.db,
            &caller.state.config.secret,
            &organization_id,
            None,
            &settings,
            actor,
        )
        .await
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
    use super::ssr::Transition;
    use crate::ssr;
    let caller = ssr::guard("set_key_status").await?;
    ssr::require_org(&caller, "set_key_status", &organization_id).await?;
    ssr::respond(async move {
        let t = match action.as_str() {
            "enable" => Transition::Enable,
            "disable" => Transition::Disable,
            "revoke" => Transition::Revoke,
            _ => {
                return Err(AppError::invalid(
                    "action",
                    "action must be enable, disable or revoke",
                ))
            }
        };
        let actor = super::ssr::Actor::from(&caller);
        super::ssr::transition(
            &caller.state,
            &organization_id,
            &key_id,
            t,
            Some(&reason),
            actor,
        )
        .await
    })
    .await
}

/// Rolls a key; the old one works for `grace_seconds` more. Answers with the new secret.
#[server(prefix = "/rpc", endpoint = "roll_key")]
pub async fn roll_key(
    organization_id: String,
    key_id: String,
    grace_seconds: i64,
) -> Result<CreatedKey, AppError> {
    use crate::ssr;
    let caller = ssr::guard("roll_key").await?;
    ssr::require_org(&caller, "roll_key", &organization_id).await?;
    ssr::respond(async move {
        let actor = super::ssr::Actor::from(&caller);
        super::ssr::roll(
            &caller.state,
            &organization_id,
            &key_id,
            grace_seconds,
            None,
            actor,
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
    let caller = ssr::guard("key_history").await?;
    ssr::require_org(&caller, "key_history", &organization_id).await?;
    ssr::respond(super::ssr::history(
        &caller.state.db,
        &organization_id,
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
    let caller = ssr::guard("bulk_keys").await?;
    ssr::require_org(&caller, "bulk_keys", &organization_id).await?;
    ssr::respond(async move {
        let t = super::ssr::parse_transition(&action)?;
        let actor = super::ssr::Actor::from(&caller);
        super::ssr::bulk(&caller.state, &organization_id, &key_ids, t, None, actor).await
    })
    .await
}
