//! The user's own profile (server only): display name, password change, email change.
//!
//! - **Password change** re-authenticates with the current password (the sign-in throttle
//!   counts a wrong one), then ends every other session of the user in the same transaction
//!   that stores the new hash; the old address is told.
//! - **Delete account** re-authenticates, is refused while the user is the only owner of an
//!   organization, and otherwise anonymizes the account as an administrator's delete does.
//! - **Email change** re-authenticates, then sends a confirmation link to the new address and
//!   a notice to the old one. The link is signed (HMAC under the instance secret over the user,
//!   the current and the new address, and the expiry), expires after 24 hours, and works once:
//!   after the change the current address differs, so the same link no longer verifies. The new
//!   address is checked for uniqueness when the link is used, so asking reveals nothing.

use super::sessions::Why;
use super::ssr::{authenticate, normalize_email, validate_display_name, validate_email};
use crate::error::{AppError, ErrorCode};
use crate::ssr::config::Config;
use crate::ssr::db::{new_id, now_ms, Db};
use crate::ssr::events::{self, Event};
use crate::ssr::password;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::Row;

/// How long an email-change link works.
pub const EMAIL_LINK_HOURS: i64 = 24;

/// Email-change confirmations an account may send in a sliding hour, and an address may
/// receive (from every account together): whoever signs up, once or many times, cannot use the
/// "confirm your new address" mail to flood someone else's inbox.
pub const EMAIL_CHANGES_PER_HOUR: i64 = 5;

/// The dedupe keys of email-change confirmations start with this (then the user id).
const EMAIL_CHANGE_PREFIX: &str = "email-change:";
/// What the PostgreSQL advisory lock on a receiving address hashes, before the address: the
/// bound per address counts rows other accounts write, which their own row locks do not order.
pub const ADDRESS_LOCK_PREFIX: &str = "keyward-email-change-to:";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Changes the user's display name.
pub async fn update_display_name(db: &Db, user_id: &str, name: &str) -> Result<String, AppError> {
    let name = validate_display_name(name)?;
    let mut tx = db.writer.begin().await?;
    sqlx::query("update app_user set display_name = $2, updated_at = $3 where user_id = $1")
        .bind(user_id)
        .bind(&name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        user_id,
        "user.profile_changed",
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(name)
}

/// Longest time-zone name accepted (the IANA database's longest is 32).
const TIME_ZONE_MAX: usize = 64;

/// Stores the user's display preferences: `time_zone` an IANA name such as `Europe/Paris`
/// (empty: the browser's own), `theme` one of system, light, dark. An unknown zone or theme
/// is refused and nothing is written.
pub async fn set_preferences(
    db: &Db,
    user_id: &str,
    time_zone: &str,
    theme: &str,
) -> Result<(), AppError> {
    let time_zone = time_zone.trim();
    let unknown = || {
        AppError::invalid(
            "time_zone",
            "not a known time zone: use a name such as Europe/Paris or America/New_York, or leave it empty for your browser's",
        )
    };
    let time_zone = if time_zone.is_empty() {
        None
    } else if time_zone.len() > TIME_ZONE_MAX {
        return Err(unknown());
    } else {
        // Stored as the database spells it (names match case-insensitively).
        let zone = jiff::tz::TimeZone::get(time_zone).map_err(|_| unknown())?;
        Some(zone.iana_name().unwrap_or(time_zone).to_string())
    };
    let theme = super::Theme::parse(theme)
        .ok_or_else(|| AppError::invalid("theme", "choose system, light or dark"))?;
    let mut tx = db.writer.begin().await?;
    // Not `updated_at`: links in flight are signed over it, and a colour is no reason to void
    // them.
    sqlx::query("update app_user set time_zone = $2, theme = $3 where user_id = $1")
        .bind(user_id)
        .bind(&time_zone)
        .bind(theme.as_str())
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        user_id,
        "user.preferences_changed",
        serde_json::json!({ "time_zone": time_zone, "theme": theme.as_str() }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn record(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    kind: &'static str,
    data: serde_json::Value,
) -> Result<(), AppError> {
    events::record(
        tx,
        Event {
            kind,
            organization_id: None,
            actor_user_id: Some(user_id),
            subject_id: Some(user_id),
            source_ip: None,
            data,
        },
    )
    .await?;
    Ok(())
}

/// The user's current (normalized) address, if the account is active.
async fn current_email(db: &Db, user_id: &str) -> Result<String, AppError> {
    sqlx::query_scalar(
        "select email_normalized from app_user where user_id = $1 and status = 'active'",
    )
    .bind(user_id)
    .fetch_optional(&db.writer)
    .await?
    .ok_or_else(AppError::unauthenticated)
}

/// The session re-authenticating: its stored hash (for the writes conditional on it) and its
/// sign-in's counter of password guesses ([`crate::access::guard::Caller::reauth_counter`]).
pub struct SessionRef<'a> {
    pub hash: &'a str,
    pub counter: &'a str,
}

/// Re-authentication: the current password, through the sign-in throttle on the sign-in's own
/// counter ([`crate::identity::ssr::Counter::Session`]).
pub(crate) async fn reauthenticate(
    db: &Db,
    config: &Config,
    user_id: &str,
    counter: &str,
    password: &str,
    source_ip: Option<&str>,
) -> Result<Reauthenticated, AppError> {
    let email = current_email(db, user_id).await?;
    let counter = crate::identity::ssr::Counter::Session(counter);
    let who = authenticate(db, config, &email, password, counter, source_ip)
        .await
        .map_err(|e| match e.code {
            ErrorCode::InvalidCredentials => {
                AppError::invalid("current_password", "the current password is not right")
            }
            _ => e,
        })?;
    if who.user_id != user_id {
        return Err(AppError::unauthenticated());
    }
    Ok(Reauthenticated {
        email,
        stamp: who.stamp,
    })
}

/// The caller re-entered the right password: their address, and the credential stamp of the
/// password (and session epoch) it was checked against.
pub(crate) struct Reauthenticated {
    pub email: String,
    pub stamp: String,
}

/// Changes the password after re-authentication, and ends every session of the user (the
/// caller then gives its own session a new id and the returned credential stamp, so it alone
/// stays signed in).
pub async fn change_password(
    db: &Db,
    config: &Config,
    user_id: &str,
    session: SessionRef<'_>,
    current: &str,
    new: &str,
    source_ip: Option<&str>,
) -> Result<String, AppError> {
    password::validate(new).map_err(|e| AppError::invalid("new_password", e.message))?;
    if current == new {
        return Err(AppError::invalid(
            "new_password",
            "choose a password different from the current one",
        ));
    }
    let checked = reauthenticate(db, config, user_id, session.counter, current, source_ip).await?;
    let email = checked.email;
    let hash = password::hash(new.to_string()).await?;
    let now = now_ms();
    let mut tx = db.writer.begin().await?;
    // Only over the password just checked, from a session still signed in with it, and only
    // if no session-ending action (another change, a reset, "sign out everywhere") came
    // between: of two changes racing, one wins and the other is told, instead of both
    // "succeeding" and the first one's session dying; and a session ended meanwhile cannot
    // change the password and so carry on.
    let (old_hash, epoch): (String, i64) =
        sqlx::query_as("select password_hash, session_epoch from app_user where user_id = $1")
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
    let before = super::ssr::credential_stamp(&old_hash, epoch);
    // The session must still be there, holding that stamp: a conditional write (not a read,
    // which takes no lock on PostgreSQL), so a sign-out of this session committing meanwhile
    // is seen, and one coming after waits for this change.
    let held = before == checked.stamp
        && crate::ssr::session_store::restamp_stored(
            &mut tx,
            user_id,
            session.hash,
            &before,
            &before,
        )
        .await?;
    let changed = if held {
        sqlx::query(
            "update app_user set password_hash = $2, updated_at = $3
             where user_id = $1 and password_hash = $4 and session_epoch = $5",
        )
        .bind(user_id)
        .bind(&hash)
        .bind(now)
        .bind(&old_hash)
        .bind(epoch)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    } else {
        0
    };
    if changed == 0 {
        return Err(AppError::conflict(
            "current_password",
            "your password or sessions changed meanwhile; sign in again and retry",
        ));
    }
    let ended = super::sessions::end_all(&mut tx, user_id, None, Why::CredentialsChanged).await?;
    crate::notify::ssr::enqueue_email(
        &mut tx,
        &email,
        "Your Keyward password was changed",
        "The password of your Keyward account was just changed, and your other sessions were signed out.\n\nIf this was not you, reset your password and tell your administrator.\n",
        &format!("password-changed:{}", new_id("evt")),
        now,
    )
    .await?;
    record(
        &mut tx,
        user_id,
        "user.password_changed",
        serde_json::json!({ "sessions_ended": ended.count }),
    )
    .await?;
    tx.commit().await?;
    ended.stamp.ok_or_else(|| AppError::not_found("user"))
}

/// The link's MAC: over the account, both addresses, the account's credential stamp (its
/// password and session epoch: a password change or "sign out everywhere" voids the links
/// asked for before) and the expiry.
fn email_mac(
    secret: &[u8; 32],
    user_id: &str,
    old: &str,
    new: &str,
    stamp: &str,
    expires: i64,
) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    mac.update(b"keyward-email-change-v2\0");
    for part in [user_id, old, new, stamp, &expires.to_string()] {
        mac.update(part.as_bytes());
        mac.update(b"\0");
    }
    mac
}

/// The link's token: `<user id>.<expiry ms>.<new address, base64url>.<HMAC>`; `stamp`: the
/// account's credential stamp when it was asked for.
pub fn email_token(
    secret: &[u8; 32],
    user_id: &str,
    old: &str,
    new: &str,
    stamp: &str,
    expires: i64,
) -> String {
    let tag = hex::encode(
        email_mac(secret, user_id, old, new, stamp, expires)
            .finalize()
            .into_bytes(),
    );
    format!("{user_id}.{expires}.{}.{tag}", B64.encode(new))
}

/// Sends a confirmation link to `new_email` and a notice to the current address, after
/// re-authentication. Nothing changes until the link is used.
pub async fn request_email_change(
    db: &Db,
    config: &Config,
    user_id: &str,
    counter: &str,
    new_email: &str,
    current_password: &str,
    source_ip: Option<&str>,
) -> Result<(), AppError> {
    validate_email(new_email).map_err(|e| AppError::invalid("new_email", e.message))?;
    let new = normalize_email(new_email);
    let old = current_email(db, user_id).await?;
    if new == old {
        return Err(AppError::invalid(
            "new_email",
            "that is already your address",
        ));
    }
    let checked = reauthenticate(db, config, user_id, counter, current_password, source_ip).await?;
    let now = now_ms();
    let expires = now + EMAIL_LINK_HOURS * 3_600_000;
    let origin = config.link_base();
    let link = format!(
        "{origin}/confirm-email?token={}",
        email_token(&config.secret, user_id, &old, &new, &checked.stamp, expires)
    );
    let mut tx = db.writer.begin().await?;
    // Counted under the account's row lock and then the receiving address's lock: requests
    // racing on PostgreSQL, from one account or from many to one address, would each see room.
    // (Always in that order, one account and one address each: no cycle. SQLite has one
    // writer.)
    crate::ssr::db::lock_user(&mut tx, user_id).await?;
    if db.backend == crate::ssr::db::Backend::Postgres {
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("{ADDRESS_LOCK_PREFIX}{new}"))
            .execute(&mut *tx)
            .await?;
    }
    let prefix = format!("{EMAIL_CHANGE_PREFIX}{user_id}:");
    let since = now - 3_600_000;
    let by_account = crate::notify::ssr::recent_emails(&mut tx, &prefix, None, since).await?;
    let to_address =
        crate::notify::ssr::recent_emails(&mut tx, EMAIL_CHANGE_PREFIX, Some(&new), since).await?;
    if by_account >= EMAIL_CHANGES_PER_HOUR || to_address >= EMAIL_CHANGES_PER_HOUR {
        return Err(AppError::new(
            ErrorCode::RateLimited,
            "too many address changes were asked for in the last hour (from this account, or to that address); wait before asking again",
        ));
    }
    let request = new_id("evt");
    crate::notify::ssr::enqueue_email(
        &mut tx,
        &new,
        "Confirm your new Keyward email address",
        &format!(
            "Confirm that this is the new address of your Keyward account (the link works once, for {EMAIL_LINK_HOURS} hours):\n{link}\n\nIf you did not ask for this, ignore this email.\n"
        ),
        &format!("{prefix}{request}"),
        now,
    )
    .await?;
    crate::notify::ssr::enqueue_email(
        &mut tx,
        &old,
        "An email change was asked for your Keyward account",
        &format!(
            "Someone signed in to your Keyward account asked to change its address to {new}. Nothing changes until the new address is confirmed.\n\nIf this was not you, change your password now.\n"
        ),
        &format!("email-change-notice:{user_id}:{request}"),
        now,
    )
    .await?;
    record(
        &mut tx,
        user_id,
        "user.email_change_requested",
        serde_json::json!({ "new_email": new }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Applies an email change from its link; returns the new address. A malformed, forged,
/// expired or already used link is refused without detail beyond "expired".
pub async fn confirm_email_change(
    db: &Db,
    secret: &[u8; 32],
    token: &str,
) -> Result<String, AppError> {
    let invalid = || {
        AppError::invalid(
            "token",
            "this link is not valid; ask for a new one from your profile",
        )
    };
    let mut parts = token.trim().splitn(4, '.');
    let (Some(user_id), Some(expires), Some(new), Some(tag)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let expires: i64 = expires.parse().map_err(|_| invalid())?;
    let new = B64
        .decode(new)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(invalid)?;
    let tag = hex::decode(tag).map_err(|_| invalid())?;
    let row = sqlx::query(
        "select email_normalized, password_hash, session_epoch from app_user where user_id = $1 and status = 'active'",
    )
    .bind(user_id)
    .fetch_optional(&db.writer)
    .await?
    .ok_or_else(invalid)?;
    let old: String = row.try_get("email_normalized")?;
    let (hash, epoch): (String, i64) =
        (row.try_get("password_hash")?, row.try_get("session_epoch")?);
    let stamp = super::ssr::credential_stamp(&hash, epoch);
    email_mac(secret, user_id, &old, &new, &stamp, expires)
        .verify_slice(&tag)
        .map_err(|_| invalid())?;
    if expires <= now_ms() {
        return Err(AppError::invalid(
            "token",
            "this link expired; ask for a new one from your profile",
        ));
    }
    let now = now_ms();
    let mut tx = db.writer.begin().await?;
    // The link proves the mailbox: an unconfirmed sign-up of that address gives way.
    super::ssr::release_unconfirmed(&mut tx, &new).await?;
    // Conditional on the address and the credentials the link was made for: a second use, or
    // a password change committed meanwhile, changes nothing.
    let changed = sqlx::query(
        "update app_user set email = $3, email_normalized = $3, updated_at = $4
         where user_id = $1 and email_normalized = $2 and password_hash = $5 and session_epoch = $6",
    )
    .bind(user_id)
    .bind(&old)
    .bind(&new)
    .bind(now)
    .bind(&hash)
    .bind(epoch)
    .execute(&mut *tx)
    .await;
    let changed = match changed {
        Ok(r) => r.rows_affected(),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(AppError::conflict(
                "new_email",
                "another account uses that address now",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    if changed == 0 {
        return Err(invalid());
    }
    crate::notify::ssr::enqueue_email(
        &mut tx,
        &old,
        "Your Keyward email address was changed",
        &format!("The address of your Keyward account is now {new}. This address no longer signs in.\n\nIf this was not you, tell your administrator now.\n"),
        &format!("email-changed:{}", new_id("evt")),
        now,
    )
    .await?;
    record(
        &mut tx,
        user_id,
        "user.email_changed",
        serde_json::json!({ "before": old, "after": new }),
    )
    .await?;
    tx.commit().await?;
    Ok(new)
}

/// Deletes the user's own account after re-authentication: refused while they are the only
/// owner of an organization (naming it); otherwise anonymized exactly as an administrator's
/// delete (`crate::admin::ssr::erase`), every session ends and their keys are revoked.
pub async fn delete_account(
    db: &Db,
    config: &Config,
    user_id: &str,
    counter: &str,
    current: &str,
    source_ip: Option<&str>,
) -> Result<(), AppError> {
    reauthenticate(db, config, user_id, counter, current, source_ip).await?;
    let random = password::hash(hex::encode(rand::random::<[u8; 32]>())).await?;
    let mut tx = db.writer.begin().await?;
    let revoked = crate::admin::ssr::erase(&mut tx, db.backend, user_id, &random).await?;
    record(
        &mut tx,
        user_id,
        "user.deleted",
        serde_json::json!({ "keys_revoked": revoked, "by": "self" }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
