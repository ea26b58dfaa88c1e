//! Accountable impersonation (server only): an administrator holding `impersonation:write`
//! acts as another user for a stated reason and a limited time.
//!
//! - **Who, on whom**: the permission in the system organization, re-read inside the
//!   transaction, and the authorization core's rule for acting on another account
//!   ([`may_administer_user`]): never oneself, never someone holding an instance permission
//!   the administrator lacks. The user must be active. No impersonation within one.
//! - **Bounded**: a reason (3 to 500 characters) and a time limit (1 to 120 minutes, 30 by
//!   default). When it runs out, the session is the administrator's again on its next request;
//!   if the administrator's account is disabled meanwhile, the session ends.
//! - **Read-only**: only reading, navigating and disabling/enabling/revoking keys; the user's
//!   password, email, two-factor, sessions and account, and anything that could outlast the
//!   time limit, are refused (`access::policy::allowed_while_impersonating`).
//! - **Audited with both identities**: the start and the end (`user.impersonation_started`,
//!   `user.impersonation_ended`: actor the administrator, subject the user) and every server
//!   function called meanwhile (`impersonation.call`, naming the endpoint). The user is told in
//!   the app and by email.

use crate::access::roles::{begin, commit, may_administer_user};
use crate::access::ssr::{Grant, SYSTEM_ORG_ID};
use crate::access::Permission;
use crate::error::{AppError, ErrorCode};
use crate::ssr::db::{now_ms, rfc3339, Db};
use crate::ssr::events::{self, Event};
use crate::ssr::keys;
use tower_sessions::Session;

pub const DEFAULT_MINUTES: i64 = 30;
pub const MAX_MINUTES: i64 = 120;

/// Checks the reason and the time limit.
pub fn validate(reason: &str, minutes: Option<i64>) -> Result<(String, i64), AppError> {
    let reason = reason.trim();
    if reason.chars().count() < 3
        || reason.chars().count() > 500
        || reason.chars().any(char::is_control)
    {
        return Err(AppError::invalid(
            "reason",
            "say why, in 3 to 500 printable characters (it goes in the audit log and to the user)",
        ));
    }
    let minutes = minutes.unwrap_or(DEFAULT_MINUTES);
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(AppError::invalid(
            "minutes",
            format!("the time limit is 1 to {MAX_MINUTES} minutes"),
        ));
    }
    Ok((reason.to_string(), minutes))
}

/// Starts impersonating the active user with address `email` (checked by the authorization
/// core) and switches the session to them. Returns the user's id.
pub async fn start(
    state: &crate::ssr::AppState,
    session: &Session,
    grant: &Grant,
    email: &str,
    reason: &str,
    minutes: Option<i64>,
    source_ip: Option<&str>,
) -> Result<String, AppError> {
    let (reason, minutes) = validate(reason, minutes)?;
    let db = &state.db;
    let origin = state.config.link_base();
    let Some(admin) = grant.principal.acting_user().map(str::to_string) else {
        return Err(AppError::forbidden(Permission::ImpersonationWrite.as_str()));
    };
    if grant.organization_id != SYSTEM_ORG_ID {
        return Err(AppError::forbidden(Permission::ImpersonationWrite.as_str()));
    }
    let mut change = begin(db, grant, Permission::ImpersonationWrite).await?;
    let target: Option<(String, String)> = sqlx::query_as(
        "select user_id, display_name from app_user
         where email_normalized = $1 and status = 'active' and deleted_at is null",
    )
    .bind(crate::identity::ssr::normalize_email(email))
    .fetch_optional(&mut *change.tx)
    .await?;
    let Some((user_id, name)) = target else {
        return Err(AppError::invalid(
            "email",
            "no active user has this address",
        ));
    };
    may_administer_user(&mut change, &grant.principal, &user_id).await?;
    // The administrator's own session is replaced, and must still be there: one ended while
    // this request ran (signed out by name elsewhere) does not come back as an impersonating
    // session under a new id.
    let current = crate::identity::ssr::session_hash_of(session).unwrap_or_default();
    let replaced =
        sqlx::query("delete from session where session_hash = $1 and user_id = $2 and pending = 0")
            .bind(&current)
            .bind(&admin)
            .execute(&mut *change.tx)
            .await?
            .rows_affected();
    if replaced == 0 {
        return Err(AppError::unauthenticated());
    }
    let now = now_ms();
    let until = now + minutes * 60_000;
    events::record(
        &mut change.tx,
        Event {
            kind: "user.impersonation_started",
            organization_id: Some(SYSTEM_ORG_ID),
            actor_user_id: Some(&admin),
            subject_id: Some(&user_id),
            source_ip,
            data: serde_json::json!({ "reason": reason, "minutes": minutes, "until": rfc3339(until) }),
        },
    )
    .await?;
    let admin_email: String = sqlx::query_scalar("select email from app_user where user_id = $1")
        .bind(&admin)
        .fetch_one(&mut *change.tx)
        .await?;
    // Told in the same transaction: the impersonation never starts untold.
    crate::notify::ssr::notify_in(
        &mut change.tx,
        std::slice::from_ref(&user_id),
        &crate::notify::ssr::Message {
            kind: "impersonation",
            title: format!("{admin_email} is acting as you"),
            body: format!(
                "An administrator, {admin_email}, started acting as you ({name}) for up to {minutes} minutes. The reason they gave: \"{reason}\". Everything they do is recorded in the audit log. If you did not expect this, tell your security team."
            ),
            link: Some("/profile".into()),
            dedupe: format!("impersonation:{admin}:{now}"),
        },
        origin,
    )
    .await?;
    commit(db, change.tx, SYSTEM_ORG_ID).await?;

    session.cycle_id().await.map_err(AppError::internal)?;
    for (key, value) in [
        (keys::IMPERSONATOR, serde_json::json!(admin)),
        (keys::IMPERSONATION_UNTIL, serde_json::json!(until)),
        (keys::USER_ID, serde_json::json!(user_id)),
    ] {
        session
            .insert(key, value)
            .await
            .map_err(AppError::internal)?;
    }
    for key in [keys::ACTIVE_ORG, keys::MUST_ENROL] {
        session
            .remove_value(key)
            .await
            .map_err(AppError::internal)?;
    }
    Ok(user_id)
}

/// Who is impersonating in this session, and until when (ms).
pub async fn current(session: &Session) -> Result<Option<(String, i64)>, AppError> {
    let admin: Option<String> = session
        .get(keys::IMPERSONATOR)
        .await
        .map_err(AppError::internal)?;
    let until: i64 = session
        .get(keys::IMPERSONATION_UNTIL)
        .await
        .map_err(AppError::internal)?
        .unwrap_or_default();
    Ok(admin.map(|a| (a, until)))
}

/// What [`end`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The session was not impersonating.
    NotImpersonating,
    /// This request ended it: recorded, and the session is the administrator's again under
    /// a new id.
    Ended { admin: String },
    /// Another request of the same session ended it first (two requests arriving together
    /// at the time limit), or the session was ended meanwhile: nothing recorded twice, and
    /// this request's copy of the session is stale: not to be served nor written back.
    EndedElsewhere { admin: String },
}

impl Ending {
    /// The administrator the session belongs to again, if it was impersonating.
    pub fn admin(self) -> Option<String> {
        match self {
            Ending::NotImpersonating => None,
            Ending::Ended { admin } | Ending::EndedElsewhere { admin } => Some(admin),
        }
    }
}

/// Ends the session's impersonation (`why`: `stopped`, `expired` or `signed_out`): the
/// session is the administrator's again, under a new id.
///
/// One conditional statement decides who ends it: the stored row of this session id is
/// deleted in the transaction that records `user.impersonation_ended`, so of several
/// requests holding the same session (or two instances) one records the end and the others
/// find the row gone.
pub async fn end(db: &Db, session: &Session, why: &str) -> Result<Ending, AppError> {
    let Some((admin, _)) = current(session).await? else {
        return Ok(Ending::NotImpersonating);
    };
    let user: Option<String> = session
        .get(keys::USER_ID)
        .await
        .map_err(AppError::internal)?;
    let mut tx = db.writer.begin().await?;
    let hash = crate::identity::ssr::session_hash_of(session);
    if !record_end(&mut tx, hash.as_deref(), &admin, user.as_deref(), why).await? {
        return Ok(Ending::EndedElsewhere { admin });
    }
    tx.commit().await?;
    session.cycle_id().await.map_err(AppError::internal)?;
    session
        .insert(keys::USER_ID, &admin)
        .await
        .map_err(AppError::internal)?;
    for key in [
        keys::IMPERSONATOR,
        keys::IMPERSONATION_UNTIL,
        keys::ACTIVE_ORG,
    ] {
        session
            .remove_value(key)
            .await
            .map_err(AppError::internal)?;
    }
    Ok(Ending::Ended { admin })
}

/// Ends an impersonating session that lapsed (`why`: `unauthorized`, the administrator no
/// longer may; `inactive`, the session timed out, its credentials changed, or the user was
/// disabled), recording `user.impersonation_ended` with the reason. The session's row is the
/// guard: of concurrent requests of the session, the one that deletes it records. A session
/// whose row is gone already records nothing here: whatever deleted it recorded the end
/// ([`record_ended`]). The caller flushes the session whatever happens here: a
/// failure to record is logged, and does not keep the session alive.
pub async fn lapse(db: &Db, session: &Session, why: &str) {
    if let Err(e) = record_lapse(db, session, why).await {
        tracing::warn!(error = %e, why, "recording an impersonation's end");
    }
}

async fn record_lapse(db: &Db, session: &Session, why: &str) -> Result<(), AppError> {
    let Some((admin, _)) = current(session).await? else {
        return Ok(());
    };
    let Some(hash) = crate::identity::ssr::session_hash_of(session) else {
        return Ok(());
    };
    let user: Option<String> = session
        .get(keys::USER_ID)
        .await
        .map_err(AppError::internal)?;
    let mut tx = db.writer.begin().await?;
    if record_end(&mut tx, Some(&hash), &admin, user.as_deref(), why).await? {
        tx.commit().await?;
    }
    Ok(())
}

/// Deletes the impersonating session's row (`hash`) and records `user.impersonation_ended`
/// with `why`, in `tx`. False, recording nothing, when the row was gone already: another
/// request of the session ended it (and recorded that), or an action ended the session.
async fn record_end(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    hash: Option<&str>,
    admin: &str,
    user: Option<&str>,
    why: &str,
) -> Result<bool, AppError> {
    if let Some(hash) = hash {
        let ours = sqlx::query("delete from session where session_hash = $1")
            .bind(hash)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        if ours == 0 {
            return Ok(false);
        }
    }
    events::record(tx, end_event(admin, user, why)).await?;
    Ok(true)
}

/// Records `user.impersonation_ended` with `why`, in `tx`, for each impersonating session
/// among `ended`: the rows a statement built by [`crate::ssr::session_store::ending`] deleted.
/// A session that ends with no request to find it (swept once idle; ended with the
/// administrator's other sessions by "sign out everywhere", a password change, a disabled
/// account) leaves an end entry too. The deletion is the guard, as in [`end`]: a row another
/// request or action deleted first is not among `ended`, so no end is recorded twice.
/// Answers how many rows `ended` holds.
pub async fn record_ended(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ended: &[crate::ssr::session_store::EndedRow],
    why: &str,
) -> Result<u64, sqlx::Error> {
    for (admin, user) in ended {
        if let Some(admin) = admin {
            events::record(tx, end_event(admin, user.as_deref(), why)).await?;
        }
    }
    Ok(ended.len() as u64)
}

fn end_event<'a>(admin: &'a str, user: Option<&'a str>, why: &str) -> Event<'a> {
    Event {
        kind: "user.impersonation_ended",
        organization_id: Some(SYSTEM_ORG_ID),
        actor_user_id: Some(admin),
        subject_id: user,
        source_ip: None,
        data: serde_json::json!({ "why": why }),
    }
}

/// Records a server function called while impersonating, with both identities.
pub async fn record_call(
    db: &Db,
    admin: &str,
    user_id: Option<&str>,
    endpoint: &str,
    source_ip: Option<&str>,
) -> Result<(), AppError> {
    let mut tx = db.writer.begin().await?;
    events::record(
        &mut tx,
        Event {
            kind: "impersonation.call",
            organization_id: Some(SYSTEM_ORG_ID),
            actor_user_id: Some(admin),
            subject_id: user_id,
            source_ip,
            data: serde_json::json!({ "endpoint": endpoint, "impersonating": user_id }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The refusal of an action kept from impersonators.
pub fn refused(endpoint: &str) -> AppError {
    AppError::new(
        ErrorCode::Forbidden,
        format!("not while impersonating: impersonation shows what the user sees, and {endpoint} would act in their name; stop impersonating first"),
    )
}

/// The banner's facts for the console: who is impersonating, until when.
pub async fn view(
    db: &Db,
    session: &Session,
) -> Result<Option<crate::identity::Impersonation>, AppError> {
    let Some((admin, until)) = current(session).await? else {
        return Ok(None);
    };
    let by: Option<String> = sqlx::query_scalar("select email from app_user where user_id = $1")
        .bind(&admin)
        .fetch_optional(&db.reader)
        .await?;
    Ok(Some(crate::identity::Impersonation {
        by: by.unwrap_or(admin),
        until: rfc3339(until),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_limits() {
        assert_eq!(
            validate(" ticket 42 ", None).unwrap(),
            ("ticket 42".into(), 30)
        );
        assert_eq!(validate("abc", Some(120)).unwrap().1, 120);
        for (reason, minutes) in [
            ("", None),
            ("ab", None),
            ("ok reason", Some(0)),
            ("ok reason", Some(121)),
        ] {
            assert!(validate(reason, minutes).is_err(), "{reason:?} {minutes:?}");
        }
        assert!(validate(&"x".repeat(501), None).is_err());
        assert!(validate("line\nbreak", None).is_err());
    }
}
