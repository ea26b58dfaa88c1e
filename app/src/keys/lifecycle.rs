//! A key's lifecycle (server only): status transitions, roll with grace, bulk actions and
//! edits, each bounded by the caller's ceiling and written as a conditional statement so that
//! racing requests, on one instance or several, cannot both apply.

use super::format::{self, Environment};
use super::ssr::{
    get, insert_key, record_event, rfc3339, row_fresh, validate_settings, Acting, KeyCache,
    KeyEventKind, Material, Settings, StoredStatus,
};
use super::{ApiKey, BulkOutcome, Category, CreatedKey, KeyStatus};
use crate::error::AppError;
use crate::ssr::db::{now_ms, Db};
use crate::ssr::AppState;

/// SQL: the key `$k` (a table alias) works as `$now` sees it: active, approved, unexpired (or
/// past its expiry where `$past_expiry_ok`, an SQL condition, holds), and not held by a
/// disabled or deleted account. A literal, for `concat!`.
macro_rules! key_stands {
    ($k:literal, $now:literal) => {
        key_stands!($k, $now, "false")
    };
    ($k:literal, $now:literal, $past_expiry_ok:literal) => {
        concat!(
            "(",
            $k,
            ".status = 'active' and ",
            $k,
            ".approval = 'approved' and (",
            $k,
            ".expires_at is null or ",
            $k,
            ".expires_at > ",
            $now,
            " or ",
            $past_expiry_ok,
            ") and not ",
            crate::keys::verify::account_behind_key_is_off!($k),
            ")"
        )
    };
}

/// SQL: the acting key whose id is the parameter `$id` (`''`: a person acts) still works, in
/// the statement itself: a key disabled after its request's checks does not land the change.
macro_rules! acting_key_stands {
    ($id:literal, $now:literal) => {
        concat!(
            "(",
            $id,
            " = '' or exists (select 1 from api_key actor where actor.api_key_id = ",
            $id,
            " and ",
            key_stands!("actor", $now),
            "))"
        )
    };
}

/// SQL: the key being written (`api_key`) was made by someone who still stands behind it, as
/// `$now` sees it: a person still an active member of its organization, or a key that still
/// works ([`key_stands`]), past its expiry too when the key is the successor it rolled
/// itself into (its grace ending is the roll, not a withdrawal). (No maker
/// recorded, as on rows from before makers were: nothing to ask.) A literal, for `concat!`.
macro_rules! maker_stands {
    ($now:literal) => {
        concat!(
            "(api_key.created_by is null
              or exists (select 1 from membership m join app_user u on u.user_id = m.user_id
                         where m.organization_id = api_key.organization_id and m.user_id = api_key.created_by
                           and u.status = 'active' and u.deleted_at is null)
              or exists (select 1 from api_key maker where maker.api_key_id = api_key.created_by and ",
            key_stands!(
                "maker",
                $now,
                "maker.rolled_to_key_id = api_key.api_key_id"
            ),
            "))"
        )
    };
}

/// A status transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Enable,
    Disable,
    Revoke,
}

/// Applies a transition; refuses what makes no sense (enabling a revoked key…), and an enable
/// of a key holding more than the caller (or of someone else's personal token).
///
/// The write is conditional on the status that was read (`… where status = <read>`): of two
/// racing transitions, on one instance or several, only one applies to a given state, and the
/// other re-reads and decides again. `revoked` is final: nothing moves a key out of it.
pub async fn transition(
    state: &AppState,
    acting: Acting<'_>,
    key_id: &str,
    t: Transition,
    reason: Option<&str>,
) -> Result<ApiKey, AppError> {
    let (db, org_id) = (&state.db, acting.org());
    let reason = clean_reason(reason)?;
    // A lost race means the state moved under us: decide again from the new state. Each
    // retry follows a real change, so a few are plenty.
    for _ in 0..5 {
        let current = row_fresh(db, org_id, key_id).await?;
        acting.grant.require_environment(current.is_test())?;
        use StoredStatus::{Active, Disabled, Revoked};
        let (to, kind) = match (t, current.status) {
            (_, Revoked) => {
                return Err(AppError::conflict(
                    "status",
                    "the key is revoked; revocation is final",
                ))
            }
            (Transition::Enable, Active) => {
                return Err(AppError::conflict("status", "the key is already active"))
            }
            (Transition::Disable, Disabled) => {
                return Err(AppError::conflict("status", "the key is already disabled"))
            }
            (Transition::Enable, _) => (Active, KeyEventKind::Enabled),
            (Transition::Disable, _) => (Disabled, KeyEventKind::Disabled),
            (Transition::Revoke, _) => (Revoked, KeyEventKind::Revoked),
        };
        if t == Transition::Enable {
            acting.may_take_over(db, &current).await?;
        }
        // A key disabled while this request was in flight does not go on to enable itself (or
        // another key) again; an enabling statement below checks it once more.
        let mut tx = acting.begin(db).await?;
        // Conditional on the status as read; enabling also on `updated_at` (an edit that
        // widened the key meanwhile sends us back to check the caller against it again).
        // Disabling and revoking only take power away: nothing an attacker's stream of edits
        // to a stolen key could use to keep its defenders from stopping it.
        let enabling = t == Transition::Enable;
        let applied = sqlx::query(
            // `updated_at` only moves forward, whatever this instance's clock says: a disable
            // that read the row long ago must not write back a version an enabler checked.
            concat!(
                "update api_key set status = $1, updated_at = case when $2 > updated_at then $2 else updated_at + 1 end
             where api_key_id = $3 and organization_id = $4 and status = $5
               and ($7 = 0 or (updated_at = $6 and ",
                acting_key_stands!("$8", "$2"),
                "))"
            ),
        )
        .bind(to.as_str())
        .bind(now_ms().max(current.updated_at + 1))
        .bind(key_id)
        .bind(org_id)
        .bind(current.status.as_str())
        .bind(current.updated_at)
        .bind(enabling as i64)
        .bind(acting.grant.acting_key().unwrap_or(""))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if applied == 0 {
            continue;
        }
        record_event(
            &mut tx,
            key_id,
            org_id,
            kind,
            reason,
            acting.actor(),
            serde_json::json!({ "from": current.status.as_str() }),
        )
        .await?;
        tx.commit().await?;
        KeyCache::of(state)?.clear();
        return get(db, org_id, key_id).await;
    }
    Err(AppError::conflict(
        "status",
        "the key is changing under concurrent requests; try again",
    ))
}

/// The reason recorded on a timeline entry: trimmed, empty means none, at most 500
/// characters.
pub fn clean_reason(reason: Option<&str>) -> Result<Option<&str>, AppError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.contains('\0')) {
        return Err(crate::ssr::nul::refused());
    }
    if reason.is_some_and(|r| r.chars().count() > 500) {
        return Err(AppError::invalid(
            "reason",
            "reason must be at most 500 characters",
        ));
    }
    Ok(reason)
}

/// The successor's expiry: `None` keeps the old key's; `Some(None)` gives none;
/// `Some(Some(at))` (RFC 3339, in the future) sets one. Held to the organization's policy and,
/// for a key acting, to its own expiry, as on creation.
pub type RolledExpiry<'a> = Option<Option<&'a str>>;

/// Rolls a key: a new key with the same settings; the old one keeps working for
/// `grace_seconds` (0 = stops now), then expires. Both timelines record it.
///
/// The new secret carries the old key's scopes, so the caller must hold all of them (and a
/// personal token can only be rolled by its owner). The old key is marked rolled by a write
/// conditional on it still being active and not yet rolled, so two racing rolls cannot both
/// hand out a successor.
pub async fn roll(
    state: &AppState,
    acting: Acting<'_>,
    key_id: &str,
    grace_seconds: i64,
    expires_at: RolledExpiry<'_>,
    reason: Option<&str>,
) -> Result<CreatedKey, AppError> {
    let (db, cache, pepper) = (&state.db, KeyCache::of(state)?, &state.config.secret);
    let (org_id, actor) = (acting.org(), acting.actor());
    let reason = clean_reason(reason)?;
    if !(0..=90 * 24 * 3600).contains(&grace_seconds) {
        return Err(AppError::invalid(
            "grace_seconds",
            "grace_seconds must be between 0 and 7776000 (90 days)",
        ));
    }
    let now = now_ms();
    let new_expiry = match expires_at {
        None => None,
        Some(None) => Some(None),
        Some(Some(at)) => {
            let at = super::rules::parse_rfc3339("expires_at", at)?;
            if at <= now {
                return Err(AppError::invalid(
                    "expires_at",
                    "expires_at must be in the future",
                ));
            }
            Some(Some(at))
        }
    };
    let old = row_fresh(db, org_id, key_id).await?;
    if old.status(now) != KeyStatus::Active {
        return Err(AppError::conflict(
            "status",
            format!(
                "only an active key can be rolled; this one is {}",
                old.status(now).as_str()
            ),
        ));
    }
    if old.rolled_to_key_id.is_some() {
        return Err(AppError::conflict(
            "status",
            "this key was already rolled; roll its successor",
        ));
    }
    acting.may_take_over(db, &old).await?;
    // The successor's restrictions as the key has them: unreadable ones are refused (409), not
    // copied as none (that is, unrestricted).
    let bounds = old.bounds()?;
    let wire = old.to_wire(now);
    let settings = Settings {
        name: old.name.clone(),
        description: old.description.clone(),
        environment: Environment::parse(&old.environment).unwrap_or(Environment::Live),
        category: wire.category,
        scopes: wire.scopes.clone(),
        permissions: wire.permissions.clone(),
        endpoints: bounds.endpoints,
        ip_allowlist: bounds.ip_allowlist,
        expires_at: new_expiry.unwrap_or(old.expires_at),
        require_signature: wire.require_signature,
        metadata: wire.metadata.clone(),
    };
    if new_expiry.is_some() {
        // A key acting cannot give the successor more time than it has itself.
        acting.grant.require_within(&settings.bounds())?;
    }
    let secret = format::generate(settings.environment);
    let grace_ends = now + grace_seconds * 1000;
    let mut tx = acting.begin(db).await?;
    let approval = crate::orgs::policy::new_key_approval(&mut tx, acting.grant).await?;
    let (new_id, signing) = insert_key(
        &mut tx,
        org_id,
        old.owner_user_id.as_deref(),
        &settings,
        &Material::from_secret(pepper, &secret),
        // A successor is a new working secret: where new keys need approval, it waits for one
        // unless the roller may approve (the old key works through its grace meanwhile).
        (StoredStatus::Active, approval),
        pepper,
        actor,
    )
    .await?;
    let old_expiry = old.expires_at.map_or(grace_ends, |e| e.min(grace_ends));
    let marked = sqlx::query(
        "update api_key set expires_at = $1, rolled_to_key_id = $2,
            updated_at = case when $3 > updated_at then $3 else updated_at + 1 end
         where api_key_id = $4 and organization_id = $5 and status = 'active' and rolled_to_key_id is null
           and (expires_at is null or expires_at > $3) and updated_at = $6 and approval = $7",
    )
    .bind(old_expiry)
    .bind(&new_id)
    .bind(now)
    .bind(key_id)
    .bind(org_id)
    // As read: the successor copies the settings read above, so an edit made meanwhile (an
    // allow-list added during an incident, say) must not be lost on the working secret.
    .bind(old.updated_at)
    .bind(old.approval.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if marked == 0 {
        // Dropping the transaction rolls the new key back.
        return Err(AppError::conflict(
            "status",
            "the key changed while it was being rolled (edited, revoked, disabled or rolled meanwhile); read it again and retry",
        ));
    }
    // The successor keeps the old key's limit.
    sqlx::query(
        "update api_key set plan_id = $1, rate_limit = $2, rate_window_seconds = $3 where api_key_id = $4",
    )
    .bind(&old.plan_id)
    .bind(old.rate_limit)
    .bind(old.rate_window_seconds)
    .bind(&new_id)
    .execute(&mut *tx)
    .await?;
    let detail = serde_json::json!({ "rolled_to": new_id, "grace_seconds": grace_seconds, "stops_at": rfc3339(old_expiry) });
    record_event(
        &mut tx,
        key_id,
        org_id,
        KeyEventKind::Rolled,
        reason,
        actor,
        detail,
    )
    .await?;
    record_event(
        &mut tx,
        &new_id,
        org_id,
        KeyEventKind::Created,
        reason,
        actor,
        serde_json::json!({ "rolled_from": key_id }),
    )
    .await?;
    tx.commit().await?;
    cache.clear();
    Ok(CreatedKey {
        api_key: get(db, org_id, &new_id).await?,
        key: secret,
        signing_secret: signing.expose().to_string(),
    })
}

/// Tells the organization's approvers about a key that awaits approval (nothing for any other
/// key). Best effort, after the key's commit: the key exists either way.
pub async fn announce_pending(state: &AppState, key: &ApiKey) {
    if key.status != KeyStatus::Pending {
        return;
    }
    let origin = state.config.link_base();
    if let Err(e) = crate::notify::ssr::key_awaits_approval(
        &state.db,
        origin,
        &key.organization_id,
        &key.id,
        &key.name,
        key.created_by.as_deref(),
    )
    .await
    {
        tracing::error!(error = %e, key_id = %key.id, "could not tell the approvers about a pending key");
    }
}

/// A reviewer's decision on a key awaiting approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn parse(s: &str) -> Result<Decision, AppError> {
        match s {
            "approve" => Ok(Decision::Approve),
            "reject" => Ok(Decision::Reject),
            _ => Err(AppError::invalid(
                "decision",
                "decision must be approve or reject",
            )),
        }
    }
}

/// The review's refusal when the key is no longer the one the reviewer looked at.
fn changed_under_review() -> AppError {
    AppError::conflict(
        "approval",
        "the key changed while you reviewed it (edited, revoked or reviewed by someone else); look again",
    )
}

/// Whether key `key_id`'s maker still stands behind it ([`maker_stands`]).
async fn maker_still_stands(db: &Db, key_id: &str, now: i64) -> Result<bool, AppError> {
    let n: i64 = sqlx::query_scalar(concat!(
        "select count(*) from api_key where api_key_id = $1 and ",
        maker_stands!("$2")
    ))
    .bind(key_id)
    .bind(now)
    .fetch_one(&db.writer)
    .await?;
    Ok(n == 1)
}

/// Approves or rejects a key awaiting approval (the guard checked `approvals:write`).
///
/// Approving hands the key's power out, so the reviewer must hold everything the key holds,
/// its own permissions included; nobody reviews a key they created (four eyes), whether
/// they act as themselves, through a token, or through a key they made; and the key's maker
/// must still stand behind it (a member still, or a key still working: a pending key made by a
/// leaked key that was revoked since, or by someone removed since, is not handed out).
/// Rejecting revokes the key in the same statement.
///
/// `version` is the key's `updated_at` as the reviewer saw it, required to approve: the
/// reviewer approves what they looked at, not what its creator may have made of it since. The
/// write is conditional on the key still pending, not revoked, at that version, and (to
/// approve) on its maker standing: of two racing reviews (on any instances) one applies, and
/// an edit made while the reviewer looked sends them back to look again.
pub async fn review(
    state: &AppState,
    acting: Acting<'_>,
    key_id: &str,
    decision: Decision,
    version: Option<i64>,
    reason: Option<&str>,
) -> Result<ApiKey, AppError> {
    use super::ssr::Approval;
    let (db, org_id) = (&state.db, acting.org());
    let reason = clean_reason(reason)?;
    if decision == Decision::Approve && version.is_none() {
        return Err(AppError::invalid(
            "version",
            "approving needs the key's version (its updated_at) as you reviewed it",
        ));
    }
    let current = row_fresh(db, org_id, key_id).await?;
    acting.grant.require_environment(current.is_test())?;
    if current.approval != Approval::Pending || current.status == StoredStatus::Revoked {
        return Err(AppError::conflict(
            "approval",
            "the key is not awaiting approval",
        ));
    }
    if version.is_some_and(|v| v != current.updated_at) {
        return Err(changed_under_review());
    }
    let principal = &acting.grant.principal;
    let mut conn = db.writer.acquire().await?;
    let reviewer = crate::access::roles::acts_for(&mut conn, principal).await?;
    let makers =
        crate::access::roles::makers(&mut conn, current.created_by.iter().cloned().collect())
            .await?;
    drop(conn);
    if !reviewer.is_disjoint(&makers) {
        return Err(AppError::new(
            crate::error::ErrorCode::Forbidden,
            "someone else must review a key you created",
        ));
    }
    if decision == Decision::Approve {
        acting.grant.require_all(current.permissions())?;
        crate::access::ssr::require_dynamic(db, acting.grant, &current.dynamic_permissions())
            .await?;
    }
    let (approval, kind) = match decision {
        Decision::Approve => (Approval::Approved, KeyEventKind::Approved),
        Decision::Reject => (Approval::Rejected, KeyEventKind::Rejected),
    };
    let now = now_ms();
    let mut tx = acting.begin(db).await?;
    let applied = sqlx::query(concat!(
        "update api_key set approval = $1, status = case when $1 = 'rejected' then 'revoked' else status end,
            reviewed_by = $2, reviewed_at = $3, updated_at = $7
         where api_key_id = $4 and organization_id = $5 and approval = 'pending' and status <> 'revoked' and updated_at = $6
           and ",
        acting_key_stands!("$8", "$3"),
        " and ($1 <> 'approved' or ",
        maker_stands!("$3"),
        ")"
    ))
    .bind(approval.as_str())
    .bind(principal.actor_id())
    .bind(now)
    .bind(key_id)
    .bind(org_id)
    .bind(current.updated_at)
    .bind(now.max(current.updated_at + 1))
    .bind(acting.grant.acting_key().unwrap_or(""))
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if applied == 0 {
        drop(tx);
        // Why: the acting key stopped meanwhile (its own refusal), the maker no longer
        // stands, or the key changed.
        drop(acting.begin(db).await?);
        if decision == Decision::Approve && !maker_still_stands(db, key_id, now).await? {
            return Err(AppError::conflict(
                "approval",
                "whoever made this key no longer stands behind it (removed from the organization, disabled, or a key that was revoked or disabled since); reject it",
            ));
        }
        return Err(changed_under_review());
    }
    record_event(
        &mut tx,
        key_id,
        org_id,
        kind,
        reason,
        acting.actor(),
        serde_json::json!({ "decision": approval.as_str() }),
    )
    .await?;
    tx.commit().await?;
    KeyCache::of(state)?.clear();
    if let Some(creator) = current.created_by.as_deref() {
        // Telling the creator is best effort: the decision stands either way.
        if let Err(e) = crate::notify::ssr::key_reviewed(
            db,
            state.config.link_base(),
            org_id,
            key_id,
            &current.name,
            creator,
            decision == Decision::Approve,
        )
        .await
        {
            tracing::error!(error = %e, key_id, "could not tell the key's creator about the review");
        }
    }
    get(db, org_id, key_id).await
}

/// Most keys one bulk request may name.
pub const BULK_MAX: usize = 100;

/// Applies one transition to many keys, each on its own: one key's refusal does not stop the
/// others, and every key gets its own outcome.
pub async fn bulk(
    state: &AppState,
    acting: Acting<'_>,
    ids: &[String],
    t: Transition,
    reason: Option<&str>,
) -> Result<Vec<BulkOutcome>, AppError> {
    if ids.is_empty() || ids.len() > BULK_MAX {
        return Err(AppError::invalid(
            "ids",
            format!("name between 1 and {BULK_MAX} keys"),
        ));
    }
    let failed = |id: &str, code: crate::error::ErrorCode, message: String| BulkOutcome {
        id: id.to_string(),
        ok: false,
        status: None,
        code: Some(code.as_str()),
        message: Some(message),
    };
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        match transition(state, acting, id, t, reason).await {
            Ok(key) => out.push(BulkOutcome {
                id: id.clone(),
                ok: true,
                status: Some(key.status),
                code: None,
                message: None,
            }),
            // Nothing changed yet: the whole action failed, say so plainly (500).
            Err(e) if e.code == crate::error::ErrorCode::Internal && !out.iter().any(|o| o.ok) => {
                return Err(e)
            }
            // Some keys changed already: they are reported, and the keys after this one are
            // not attempted (the database may be down: no waiting its timeout once per key).
            Err(e) if e.code == crate::error::ErrorCode::Internal => {
                out.push(failed(id, e.code, e.message));
                for rest in &ids[i + 1..] {
                    out.push(failed(
                        rest,
                        crate::error::ErrorCode::Unavailable,
                        format!("not attempted: the change of key {id} failed; try again"),
                    ));
                }
                break;
            }
            Err(e) => out.push(failed(id, e.code, e.message)),
        }
    }
    Ok(out)
}

/// Parses a transition name from the API or a form.
pub fn parse_transition(action: &str) -> Result<Transition, AppError> {
    match action {
        "enable" => Ok(Transition::Enable),
        "disable" => Ok(Transition::Disable),
        "revoke" => Ok(Transition::Revoke),
        _ => Err(AppError::invalid(
            "action",
            "action must be enable, disable or revoke",
        )),
    }
}

/// Edits a key's settings (not its secret, environment or status), validated like a new
/// key; records an `edited` event naming the changed fields. Revoked keys are final.
///
/// The key after the edit is validated against the caller's ceiling like a new key, so a
/// caller can neither widen a key past what they hold nor edit one that holds more. The write
/// is conditional on the key not having been revoked meanwhile.
///
/// `version`: the `updated_at` (ms) of the key as the caller saw it when it chose the change
/// (a form loaded a while ago, a scan's reading): the change is refused (409) unless the key
/// is still exactly that, so it cannot undo what someone else changed meanwhile. `None` for a
/// change that names only what it sets (REST `PATCH`).
pub async fn update(
    state: &AppState,
    acting: Acting<'_>,
    key_id: &str,
    patch: &super::KeyPatch,
    version: Option<i64>,
) -> Result<ApiKey, AppError> {
    let org_id = acting.org();
    let reason = clean_reason(patch.reason.as_deref())?;
    let current = row_fresh(&state.db, org_id, key_id).await?;
    acting.grant.require_environment(current.is_test())?;
    // Editing a key that holds more than the caller is refused, its own permissions
    // included, even to narrow it; changing its access or expiry (an expiry can bring a
    // stopped secret back) is taking it over, which another user's personal token refuses.
    let access = patch.expires_at.is_some()
        || patch.scopes.is_some()
        || patch.category.is_some()
        || patch.endpoints.is_some()
        || patch.ip_allowlist.is_some()
        || patch.require_signature.is_some();
    if access {
        acting.may_take_over(&state.db, &current).await?;
    } else {
        acting.grant.require_all(current.permissions())?;
        crate::access::ssr::require_dynamic(
            &state.db,
            acting.grant,
            &current.dynamic_permissions(),
        )
        .await?;
    }
    // The write below is conditional on this `updated_at`: the check holds until it.
    if version.is_some_and(|v| v != current.updated_at) {
        return Err(AppError::conflict(
            "version",
            "the key changed since it was loaded (edited, reviewed or its status changed); reload it and try again",
        ));
    }
    if current.status == StoredStatus::Revoked {
        return Err(AppError::conflict(
            "status",
            "the key is revoked; revocation is final",
        ));
    }
    if patch.endpoints.is_none() || patch.ip_allowlist.is_none() {
        // A list the edit keeps is written back as read: an unreadable one would go back
        // empty, that is unrestricted. Refused (409) unless the edit sets both anew.
        current.bounds()?;
    }
    let now = now_ms();
    let wire = current.to_wire(now);
    let (category, scopes) = match (&patch.category, &patch.scopes) {
        (None, None) if wire.category == Category::Custom => {
            (Some("custom".to_string()), Some(wire.scopes.clone()))
        }
        // A preset key keeps the scopes it has: re-deriving them would widen old keys whenever
        // the catalog grows.
        (None, None) => (Some("custom".to_string()), Some(wire.scopes.clone())),
        (None, Some(s)) => (Some("custom".to_string()), Some(s.clone())),
        // Turning a preset into custom keeps the scopes it had.
        (Some(c), None) if c == "custom" => (Some(c.clone()), Some(wire.scopes.clone())),
        (Some(c), s) => (Some(c.clone()), s.clone()),
    };
    let new = super::NewKey {
        name: patch.name.clone().unwrap_or(wire.name.clone()),
        description: Some(
            patch
                .description
                .clone()
                .unwrap_or(wire.description.clone()),
        ),
        environment: Some(wire.environment.clone()),
        category,
        scopes,
        // Set when the key is created; an update keeps them (and does not write them).
        permissions: None,
        endpoints: Some(patch.endpoints.clone().unwrap_or(wire.endpoints.clone())),
        ip_allowlist: Some(
            patch
                .ip_allowlist
                .clone()
                .unwrap_or(wire.ip_allowlist.clone()),
        ),
        expires_at: patch.expires_at.clone().flatten(),
        require_signature: Some(patch.require_signature.unwrap_or(wire.require_signature)),
        metadata: Some(patch.metadata.clone().unwrap_or(wire.metadata.clone())),
        personal: None,
    };
    let mut settings = validate_settings(&new, now, acting.grant)?;
    if patch.category.is_none() && patch.scopes.is_none() {
        settings.category = wire.category;
    }
    if patch.expires_at.is_none() {
        // Left unchanged: keep it as it is, even when already past.
        settings.expires_at = current.expires_at;
    }
    if access {
        // A key acting keeps the key as edited inside its own restrictions (itself included:
        // it cannot lift its own).
        acting.grant.require_within(&settings.bounds())?;
    }
    let sent = [
        patch.name.is_some(),
        patch.description.is_some(),
        patch.category.is_some(),
        patch.scopes.is_some(),
        patch.endpoints.is_some(),
        patch.ip_allowlist.is_some(),
        patch.expires_at.is_some(),
        patch.require_signature.is_some(),
        patch.metadata.is_some(),
    ];
    if !sent.contains(&true) {
        return Err(AppError::invalid(
            "body",
            "send at least one field to change",
        ));
    }
    let ips: Vec<String> = settings
        .ip_allowlist
        .iter()
        .map(|n| n.to_string())
        .collect();
    // What really changes (a field sent as it already is does not): the timeline names these.
    let changed: Vec<&str> = [
        ("name", settings.name != wire.name),
        ("description", settings.description != wire.description),
        ("category", settings.category != wire.category),
        ("scopes", settings.scopes != wire.scopes),
        ("endpoints", settings.endpoints != wire.endpoints),
        ("ip_allowlist", ips != wire.ip_allowlist),
        ("expires_at", settings.expires_at != current.expires_at),
        (
            "require_signature",
            settings.require_signature != wire.require_signature,
        ),
        ("metadata", settings.metadata != wire.metadata),
    ]
    .into_iter()
    .filter_map(|(field, differs)| differs.then_some(field))
    .collect();
    if changed.is_empty() {
        // Nothing to write, nothing to record.
        return Ok(wire);
    }
    let mut tx = acting.begin(&state.db).await?;
    // Where new keys need approval, what an approver approved (access, restrictions, expiry)
    // changes only through an approver; the creator may still shape a key that waits.
    let access_changed = changed.iter().any(|f| {
        matches!(
            *f,
            "scopes" | "endpoints" | "ip_allowlist" | "expires_at" | "require_signature"
        )
    });
    review_allows(&mut tx, &acting, &current, access_changed).await?;
    // A rolled key works only through its grace: a later expiry would keep two working
    // secrets, which is what the roll was to end.
    let outlives_grace = |expires_at: Option<i64>| match (current.expires_at, expires_at) {
        (Some(grace), Some(new)) => new > grace,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if current.rolled_to_key_id.is_some() && outlives_grace(settings.expires_at) {
        return Err(AppError::conflict(
            "expires_at",
            "this key was rolled: its grace can be shortened, not extended; extend its successor",
        ));
    }
    if patch.expires_at.is_some() {
        // A new expiry follows the organization's key lifetime policy.
        crate::orgs::policy::check_key_expiry(&mut tx, org_id, settings.expires_at).await?;
    }
    let applied = sqlx::query(
        "update api_key set name = $1, description = $2, category = $3, scopes = $4, endpoints = $5, ip_allowlist = $6,
            expires_at = $7, require_signature = $8, metadata = $9, updated_at = $10
         where api_key_id = $11 and organization_id = $12 and status <> 'revoked'
           and updated_at = $13 and approval = $14
           and (rolled_to_key_id is null or $7 <= expires_at)",
    )
    .bind(&settings.name)
    .bind(&settings.description)
    .bind(settings.category.as_str())
    .bind(serde_json::to_string(&settings.scopes).map_err(AppError::internal)?)
    .bind(serde_json::to_string(&settings.endpoints).map_err(AppError::internal)?)
    .bind(serde_json::to_string(&ips).map_err(AppError::internal)?)
    .bind(settings.expires_at)
    .bind(settings.require_signature as i64)
    .bind(settings.metadata.to_string())
    .bind(now.max(current.updated_at + 1))
    .bind(key_id)
    .bind(org_id)
    .bind(current.updated_at)
    .bind(current.approval.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if applied == 0 {
        // Revoked, reviewed or edited since it was read: what was checked no longer holds.
        return Err(AppError::conflict(
            "status",
            "the key changed meanwhile (revoked, reviewed or edited); reload it and try again",
        ));
    }
    record_event(
        &mut tx,
        key_id,
        org_id,
        KeyEventKind::Edited,
        reason,
        acting.actor(),
        serde_json::json!({ "changed": changed }),
    )
    .await?;
    tx.commit().await?;
    KeyCache::of(state)?.clear();
    get(&state.db, org_id, key_id).await
}

/// Where new keys need approval, what an approver approved (access, restrictions, expiry,
/// limit) changes only through an approver; the creator may still shape a key that waits.
/// `approved_part` says whether the change touches what was approved.
async fn review_allows(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    acting: &Acting<'_>,
    current: &super::ssr::KeyRow,
    approved_part: bool,
) -> Result<(), AppError> {
    use super::ssr::Approval;
    let approver = acting
        .grant
        .allows(crate::access::Permission::ApprovalsWrite);
    if approver {
        return Ok(());
    }
    if approved_part
        && current.approval == Approval::Approved
        && crate::orgs::policy::requires_key_approval(tx, acting.org()).await?
    {
        return Err(AppError::new(
            crate::error::ErrorCode::Forbidden,
            "this organization requires approval of keys: only someone with approvals:write can change an approved key's access, restrictions, expiry or limit",
        ));
    }
    if current.approval == Approval::Pending {
        let me = crate::access::roles::acts_for(tx, &acting.grant.principal).await?;
        if !current
            .created_by
            .as_ref()
            .is_some_and(|by| me.contains(by))
        {
            return Err(AppError::new(
                crate::error::ErrorCode::Forbidden,
                "only its creator or an approver can change a key awaiting approval",
            ));
        }
    }
    Ok(())
}

/// Puts a key on a plan, and sets or clears its own limit; recorded in the timeline as
/// `edited`. The new limit applies at once on this instance, within the key cache's bound
/// (1 s) on others.
pub async fn set_limit(
    state: &AppState,
    acting: Acting<'_>,
    key_id: &str,
    limit: &super::KeyLimit,
) -> Result<ApiKey, AppError> {
    use crate::usage::{MAX_LIMIT, MAX_WINDOW_SECONDS};
    let org_id = acting.org();
    let reason = clean_reason(limit.reason.as_deref())?;
    let plan_id = limit
        .plan_id
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    if let Some(plan_id) = plan_id {
        crate::usage::ssr::require(&state.db, plan_id).await?;
    }
    match (limit.rate_limit, limit.rate_window_seconds) {
        (None, None) => {}
        (Some(l), Some(w)) => {
            if !(1..=MAX_LIMIT).contains(&l) {
                return Err(AppError::invalid(
                    "rate_limit",
                    format!("the limit is a number of requests from 1 to {MAX_LIMIT}"),
                ));
            }
            if !(1..=MAX_WINDOW_SECONDS).contains(&w) {
                return Err(AppError::invalid(
                    "rate_window_seconds",
                    format!("the window is from 1 to {MAX_WINDOW_SECONDS} seconds (a day)"),
                ));
            }
        }
        _ => {
            return Err(AppError::invalid(
                "rate_limit",
                "an override needs both rate_limit and rate_window_seconds (or neither, to follow the plan)",
            ))
        }
    }
    let current = row_fresh(&state.db, org_id, key_id).await?;
    if current.status == StoredStatus::Revoked {
        return Err(AppError::conflict(
            "status",
            "the key is revoked; revocation is final",
        ));
    }
    // A key's limit is its owner's business: a weaker caller cannot throttle a stronger key,
    // nor anyone another user's personal token.
    acting.may_take_over(&state.db, &current).await?;
    if acting.grant.key_bounds().is_some() {
        // A key acting gives no key (itself included) a faster limit than its own.
        let (l, w) = match (limit.rate_limit, limit.rate_window_seconds) {
            (Some(l), Some(w)) => (l, w),
            _ => {
                let plan = plan_id.unwrap_or(crate::usage::DEFAULT_PLAN_ID);
                let plan = crate::usage::ssr::get(&state.db, plan).await?;
                (plan.limit, plan.window_seconds)
            }
        };
        acting.grant.require_rate_within(l.max(0) as u64, w)?;
    }
    let mut tx = acting.begin(&state.db).await?;
    review_allows(&mut tx, &acting, &current, true).await?;
    let applied = sqlx::query(
        "update api_key set plan_id = $1, rate_limit = $2, rate_window_seconds = $3, updated_at = $4
         where api_key_id = $5 and organization_id = $6 and status <> 'revoked'
           and updated_at = $7 and approval = $8",
    )
    .bind(plan_id)
    .bind(limit.rate_limit)
    .bind(limit.rate_window_seconds)
    .bind(now_ms().max(current.updated_at + 1))
    .bind(key_id)
    .bind(org_id)
    .bind(current.updated_at)
    .bind(current.approval.as_str())
    .execute(&mut *tx)
    .await
    .map_err(|e| {
        // The plan checked above was deleted meanwhile: what `require` says of a missing one.
        if crate::usage::ssr::foreign_key_refused(&e) {
            crate::usage::ssr::no_such_plan()
        } else {
            e.into()
        }
    })?
    .rows_affected();
    if applied == 0 {
        // Revoked, reviewed or edited since it was read: what was checked no longer holds.
        return Err(AppError::conflict(
            "status",
            "the key changed meanwhile (revoked, reviewed or edited); reload it and try again",
        ));
    }
    record_event(
        &mut tx,
        key_id,
        org_id,
        KeyEventKind::Edited,
        reason,
        acting.actor(),
        serde_json::json!({
            "changed": ["limit"],
            "plan_id": plan_id.unwrap_or(crate::usage::DEFAULT_PLAN_ID),
            "rate_limit": limit.rate_limit,
            "rate_window_seconds": limit.rate_window_seconds,
        }),
    )
    .await?;
    tx.commit().await?;
    KeyCache::of(state)?.clear();
    get(&state.db, org_id, key_id).await
}
