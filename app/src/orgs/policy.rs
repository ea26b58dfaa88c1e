//! Organization policies (server only): the longest lifetime of a new key, whether new keys
//! wait for an approver, and whether members must use two-factor authentication (enforced at
//! sign-in by `identity::two_factor`, and on sessions already open by the guard). Key creation, import, roll and
//! edits of an expiry all go through [`check_key_expiry`] inside their transaction; creation
//! and import ask [`new_key_approval`] whether the key starts pending.

use super::OrgPolicy;
use crate::access::ssr::Grant;
use crate::error::AppError;
use crate::ssr::db::now_ms;
use crate::ssr::events::{self, Event};
use crate::ssr::Db;
use sqlx::{Any, Transaction};

/// The longest lifetime a policy may set (10 years), and the shortest (1 day).
pub const MAX_DAYS: i64 = 3660;

/// The organization's policy (defaults when it set none).
pub async fn get(db: &Db, organization_id: &str) -> Result<OrgPolicy, AppError> {
    let row: Option<(Option<i64>, i64, i64)> = sqlx::query_as(
        "select max_key_lifetime_days, require_two_factor, require_key_approval from organization_policy where organization_id = $1",
    )
    .bind(organization_id)
    .fetch_optional(&db.reader)
    .await?;
    Ok(
        row.map_or(OrgPolicy::default(), |(days, two, approval)| OrgPolicy {
            max_key_lifetime_days: days,
            require_two_factor: two != 0,
            require_key_approval: approval != 0,
        }),
    )
}

/// Sets the organization's policy. `loaded`: the policy as the caller saw it when it chose
/// this one (the console's form); refused (409) when it changed since, so that a stale form
/// cannot switch off a requirement someone else turned on meanwhile.
pub async fn set(
    db: &Db,
    grant: &Grant,
    policy: &OrgPolicy,
    loaded: Option<&OrgPolicy>,
) -> Result<(), AppError> {
    if let Some(days) = policy.max_key_lifetime_days {
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(AppError::invalid(
                "max_key_lifetime_days",
                format!("a key lifetime limit is 1 to {MAX_DAYS} days (empty: none)"),
            ));
        }
    }
    let now = now_ms();
    // Under the organization's lock, with the caller's permission read again inside it: a
    // caller demoted a moment ago (or on another instance) cannot act on the guard's answer.
    let crate::access::roles::Change { mut tx, .. } =
        crate::access::roles::begin(db, grant, crate::access::Permission::OrgWrite).await?;
    let before: Option<(Option<i64>, i64, i64)> = sqlx::query_as(
        "select max_key_lifetime_days, require_two_factor, require_key_approval from organization_policy where organization_id = $1",
    )
    .bind(&grant.organization_id)
    .fetch_optional(&mut *tx)
    .await?;
    let before = before.map_or(OrgPolicy::default(), |(days, two, approval)| OrgPolicy {
        max_key_lifetime_days: days,
        require_two_factor: two != 0,
        require_key_approval: approval != 0,
    });
    if loaded.is_some_and(|l| *l != before) {
        return Err(AppError::conflict(
            "loaded",
            "the policies changed since this page was loaded; reload it and try again",
        ));
    }
    sqlx::query(
        "insert into organization_policy (organization_id, max_key_lifetime_days, require_two_factor, require_key_approval, updated_at)
         values ($1, $2, $3, $4, $5)
         on conflict (organization_id) do update set max_key_lifetime_days = excluded.max_key_lifetime_days,
             require_two_factor = excluded.require_two_factor, require_key_approval = excluded.require_key_approval,
             updated_at = excluded.updated_at",
    )
    .bind(&grant.organization_id)
    .bind(policy.max_key_lifetime_days)
    .bind(policy.require_two_factor as i64)
    .bind(policy.require_key_approval as i64)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    events::record(
        &mut tx,
        Event {
            kind: "organization.policy_changed",
            organization_id: Some(&grant.organization_id),
            actor_user_id: grant.principal.acting_user(),
            subject_id: Some(&grant.organization_id),
            source_ip: None,
            data: serde_json::json!({
                "max_key_lifetime_days": policy.max_key_lifetime_days,
                "require_two_factor": policy.require_two_factor,
                "require_key_approval": policy.require_key_approval,
                "before": before,
                "after": policy,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Refuses a key expiry the organization's policy does not allow: none at all, or later than
/// its longest lifetime from now.
pub async fn check_key_expiry(
    tx: &mut Transaction<'_, Any>,
    organization_id: &str,
    expires_at: Option<i64>,
) -> Result<(), AppError> {
    let days: Option<Option<i64>> = sqlx::query_scalar(
        "select max_key_lifetime_days from organization_policy where organization_id = $1",
    )
    .bind(organization_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(days) = days.flatten() else {
        return Ok(());
    };
    let latest = now_ms() + days * 86_400_000;
    match expires_at {
        Some(at) if at <= latest => Ok(()),
        _ => Err(AppError::invalid(
            "expires_at",
            format!("this organization's keys must expire within {days} days"),
        )),
    }
}

/// Whether a key `grant` creates (or imports) now in its organization starts pending: when the
/// organization requires approval and the grant cannot approve keys itself. Read inside the
/// key's transaction, so a policy switched on a moment ago applies.
pub async fn new_key_approval(
    tx: &mut Transaction<'_, Any>,
    grant: &Grant,
) -> Result<crate::keys::ssr::Approval, AppError> {
    use crate::keys::ssr::Approval;
    if grant.allows(crate::access::Permission::ApprovalsWrite) {
        return Ok(Approval::Approved);
    }
    Ok(
        if requires_key_approval(tx, &grant.organization_id).await? {
            Approval::Pending
        } else {
            Approval::Approved
        },
    )
}

/// Whether the organization requires approval of new keys (read inside a transaction).
pub async fn requires_key_approval(
    tx: &mut Transaction<'_, Any>,
    organization_id: &str,
) -> Result<bool, AppError> {
    let required: Option<i64> = sqlx::query_scalar(
        "select require_key_approval from organization_policy where organization_id = $1",
    )
    .bind(organization_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(required.unwrap_or(0) != 0)
}
