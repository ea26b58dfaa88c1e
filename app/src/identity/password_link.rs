//! Emailed links (server only) that set a password (the first password of an account an
//! administrator created, a password reset an administrator sent) or confirm the address of
//! an account made by open sign-up.
//!
//! The token is `<user id>.<purpose>.<expiry ms>.<HMAC>`, the HMAC (SHA-256 under the instance
//! secret) covering the user, the purpose, the expiry **and the account's current password
//! hash**. Nothing is stored: setting a password changes the hash, so the link works once, and
//! a link sent before a later password change no longer works either. A link is refused for a
//! disabled or deleted account.

use super::sessions::Why;
use crate::error::AppError;
use crate::ssr::config::Config;
use crate::ssr::db::{new_id, now_ms, Db};
use crate::ssr::events::{self, Event};
use crate::ssr::password;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::Row;

/// Why the link was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The first password of an account an administrator created.
    Setup,
    /// A reset an administrator sent.
    Reset,
    /// The address of an account made by sign-up (confirmed with the account's password).
    Verify,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Setup => "setup",
            Purpose::Reset => "reset",
            Purpose::Verify => "verify",
        }
    }

    fn parse(s: &str) -> Option<Purpose> {
        match s {
            "setup" => Some(Purpose::Setup),
            "reset" => Some(Purpose::Reset),
            "verify" => Some(Purpose::Verify),
            _ => None,
        }
    }

    /// How long the link works.
    pub fn hours(self) -> i64 {
        match self {
            Purpose::Setup => 72,
            Purpose::Reset | Purpose::Verify => 24,
        }
    }
}

/// Most confirmation links one account is sent in ten minutes.
pub const VERIFY_LINKS_PER_10_MIN: i64 = 3;

/// Set-up and reset links sent to one account per hour, at most.
pub const PASSWORD_LINKS_PER_HOUR: i64 = 5;

/// The outbox key prefix of these emails: the mail worker does not keep their body once sent.
pub const DEDUPE_PREFIX: &str = "password-link:";

/// What a link is bound to besides its purpose and expiry: the account as it is now. A change
/// of the password, the address or the status (disable, enable: each also moves `updated_at`)
/// voids every link sent before it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountState {
    pub password_hash: String,
    pub email_normalized: String,
    pub updated_at: i64,
}

impl AccountState {
    /// The account's state as `conn` sees it; `None` unless it is active and not deleted.
    pub async fn read(
        conn: &mut sqlx::AnyConnection,
        user_id: &str,
    ) -> Result<Option<AccountState>, AppError> {
        let row = sqlx::query(
            "select password_hash, email_normalized, updated_at from app_user
             where user_id = $1 and status = 'active' and deleted_at is null",
        )
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(AccountState {
            password_hash: r.try_get("password_hash")?,
            email_normalized: r.try_get("email_normalized")?,
            updated_at: r.try_get("updated_at")?,
        }))
    }
}

fn mac(
    secret: &[u8; 32],
    user_id: &str,
    purpose: Purpose,
    expires: i64,
    state: &AccountState,
) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    mac.update(b"keyward-password-link-v2\0");
    for part in [
        user_id,
        purpose.as_str(),
        &expires.to_string(),
        &state.password_hash,
        &state.email_normalized,
        &state.updated_at.to_string(),
    ] {
        mac.update(part.as_bytes());
        mac.update(b"\0");
    }
    mac
}

/// The link's token for the account in `state`.
pub fn token(
    secret: &[u8; 32],
    user_id: &str,
    purpose: Purpose,
    expires: i64,
    state: &AccountState,
) -> String {
    let tag = hex::encode(
        mac(secret, user_id, purpose, expires, state)
            .finalize()
            .into_bytes(),
    );
    format!("{user_id}.{}.{expires}.{tag}", purpose.as_str())
}

/// Queues the email with the link in the caller's transaction, for the account as that
/// transaction leaves it; a conflict when the account is not active.
pub async fn send(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    config: &Config,
    user_id: &str,
    purpose: Purpose,
    now: i64,
) -> Result<(), AppError> {
    let state = AccountState::read(tx, user_id)
        .await?
        .ok_or_else(|| AppError::conflict("status", "the account is disabled; enable it first"))?;
    let email = state.email_normalized.as_str();
    let expires = now + purpose.hours() * 3_600_000;
    let origin = config.link_base();
    let page = match purpose {
        Purpose::Verify => "verify-email",
        Purpose::Setup | Purpose::Reset => "set-password",
    };
    let link = format!(
        "{origin}/{page}?token={}",
        token(&config.secret, user_id, purpose, expires, &state)
    );
    let hours = purpose.hours();
    let (subject, text) = match purpose {
        Purpose::Setup => (
            "Your Keyward account is ready",
            format!("An administrator created a Keyward account for {email}. Choose your password (the link works once, for {hours} hours):\n{link}\n"),
        ),
        Purpose::Reset => (
            "Reset your Keyward password",
            format!("An administrator sent you a link to choose a new Keyward password (it works once, for {hours} hours):\n{link}\n\nIf you did not expect this, tell your administrator.\n"),
        ),
        Purpose::Verify => (
            "Confirm your email address for Keyward",
            format!("Someone, hopefully you, created a Keyward account for {email}. Confirm the address with the password you chose (the link works once, for {hours} hours):\n{link}\n\nIf it was not you, ignore this email: the account cannot be used without this link.\n"),
        ),
    };
    // Confirmation links go out at most VERIFY_LINKS_PER_10_MIN times per ten minutes per
    // account (sign-up and sign-in can both ask): nobody floods an address by signing up with
    // it again and again. The account's row is locked first: on PostgreSQL, requests counting
    // at once would each see room under the cap.
    crate::ssr::db::lock_user(tx, user_id).await?;
    let dedupe = match purpose {
        Purpose::Verify => {
            let prefix = format!("{DEDUPE_PREFIX}verify:{user_id}:");
            let recent =
                crate::notify::ssr::recent_emails(tx, &prefix, None, now - 600_000).await?;
            if recent >= VERIFY_LINKS_PER_10_MIN {
                return Ok(());
            }
            // The unconfirmed-account sweep counts a day from the last link.
            sqlx::query("update app_user set verify_sent_at = $2 where user_id = $1")
                .bind(user_id)
                .bind(now)
                .execute(&mut **tx)
                .await?;
            format!("{prefix}{}", new_id("evt"))
        }
        Purpose::Setup | Purpose::Reset => {
            // At most PASSWORD_LINKS_PER_HOUR per account: an administrator's clicks (or a
            // script with users:write) cannot flood someone's inbox.
            let prefix = format!("{DEDUPE_PREFIX}password:{user_id}:");
            let recent =
                crate::notify::ssr::recent_emails(tx, &prefix, None, now - 3_600_000).await?;
            if recent >= PASSWORD_LINKS_PER_HOUR {
                return Err(AppError::new(
                    crate::error::ErrorCode::RateLimited,
                    format!("{PASSWORD_LINKS_PER_HOUR} password links went to this account in the last hour; wait before sending another"),
                ));
            }
            format!("{prefix}{}", new_id("evt"))
        }
    };
    crate::notify::ssr::enqueue_email(tx, email, subject, &text, &dedupe, now).await
}

/// A verified link: whose account, and why it was sent.
pub struct Verified {
    pub user_id: String,
    pub email: String,
    pub purpose: Purpose,
    state: AccountState,
}

/// Checks a token against the account as it is now. A malformed, forged, used or superseded
/// link, or one for a disabled account, gets one answer; an expired one says so.
pub async fn verify(db: &Db, secret: &[u8; 32], token: &str) -> Result<Verified, AppError> {
    let invalid = || {
        AppError::invalid(
            "token",
            "this link is not valid (it may have been used already); ask your administrator for a new one",
        )
    };
    let mut parts = token.trim().splitn(4, '.');
    let (Some(user_id), Some(purpose), Some(expires), Some(tag)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let purpose = Purpose::parse(purpose).ok_or_else(invalid)?;
    let expires: i64 = expires.parse().map_err(|_| invalid())?;
    let tag = hex::decode(tag).map_err(|_| invalid())?;
    let mut conn = db.writer.acquire().await?;
    let state = AccountState::read(&mut conn, user_id)
        .await?
        .ok_or_else(invalid)?;
    let email: String = sqlx::query_scalar("select email from app_user where user_id = $1")
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
    drop(conn);
    mac(secret, user_id, purpose, expires, &state)
        .verify_slice(&tag)
        .map_err(|_| invalid())?;
    if expires <= now_ms() {
        return Err(AppError::invalid(
            "token",
            "this link expired; ask your administrator for a new one",
        ));
    }
    Ok(Verified {
        user_id: user_id.to_string(),
        email,
        purpose,
        state,
    })
}

/// Sets the password from a link, ends every session of the account, and returns the address
/// to sign in with. Two uses at once: the update is conditional on the hash the link was made
/// for, so only one of them changes anything.
/// A verified link that chooses a password (set-up or reset): a confirmation link confirms,
/// it never sets a password, nor is previewed as if it did.
pub async fn verify_for_password(
    db: &Db,
    secret: &[u8; 32],
    token: &str,
) -> Result<Verified, AppError> {
    let link = verify(db, secret, token).await?;
    if link.purpose == Purpose::Verify {
        return Err(AppError::invalid(
            "token",
            "this link confirms an email address; open it as it was sent",
        ));
    }
    Ok(link)
}

pub async fn set_password(
    db: &Db,
    secret: &[u8; 32],
    token: &str,
    new_password: &str,
    source_ip: Option<&str>,
) -> Result<String, AppError> {
    password::validate(new_password).map_err(|e| AppError::invalid("new_password", e.message))?;
    let link = verify_for_password(db, secret, token).await?;
    let hash = password::hash(new_password.to_string()).await?;
    let now = now_ms();
    let mut tx = db.writer.begin().await?;
    // Conditional on the account as the link was made for it: two uses at once, or a use
    // racing a change of address or status, change it once at most.
    let changed = sqlx::query(
        "update app_user set password_hash = $3, updated_at = $4
         where user_id = $1 and password_hash = $2 and email_normalized = $5 and updated_at = $6
           and status = 'active' and deleted_at is null",
    )
    .bind(&link.user_id)
    .bind(&link.state.password_hash)
    .bind(&hash)
    .bind(now.max(link.state.updated_at + 1))
    .bind(&link.state.email_normalized)
    .bind(link.state.updated_at)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(AppError::invalid(
            "token",
            "this link is not valid (it may have been used already); ask your administrator for a new one",
        ));
    }
    super::sessions::end_all(&mut tx, &link.user_id, None, Why::CredentialsChanged).await?;
    sqlx::query("delete from sign_in_failure where user_id = $1")
        .bind(&link.user_id)
        .execute(&mut *tx)
        .await?;
    events::record(
        &mut tx,
        Event {
            kind: "user.password_set",
            organization_id: None,
            actor_user_id: Some(&link.user_id),
            subject_id: Some(&link.user_id),
            source_ip,
            data: serde_json::json!({ "by_link": link.purpose.as_str() }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(link.email)
}

/// Confirms a sign-up's address through its emailed link, given the account's password (the
/// link alone, which the address's owner holds, is not enough: nor is the password alone,
/// which whoever signed up holds; so nobody can pre-register someone else's address and wait
/// for them to confirm it). Returns the user to sign in. Conditional on the account as the
/// link was made for it: a second use changes nothing.
///
/// Whoever holds the link (the mailbox's owner, who may not be whoever signed up) could guess
/// the password through it: each guess reserves one of the account's `failures_per_hour` on a
/// counter of its own ([`CONFIRM_COUNTER`]), as sign-in does, before the password is hashed;
/// the right password takes its reservation back.
pub async fn confirm_email(
    db: &Db,
    secret: &[u8; 32],
    token: &str,
    plain_password: &str,
    source_ip: Option<&str>,
    failures_per_hour: i64,
) -> Result<super::ssr::Authenticated, AppError> {
    let link = verify(db, secret, token).await?;
    if link.purpose != Purpose::Verify {
        return Err(AppError::invalid(
            "token",
            "this link sets a password; open it as it was sent",
        ));
    }
    let Some(attempt) =
        super::ssr::reserve_attempt(db, &link.user_id, Some(CONFIRM_COUNTER), failures_per_hour)
            .await?
    else {
        tracing::warn!(user_id = link.user_id, "sign-up confirmation throttled");
        return Err(AppError::new(
            crate::error::ErrorCode::RateLimited,
            "too many wrong passwords with this link; try again within the hour",
        ));
    };
    if !password::verify(
        plain_password.to_string(),
        Some(link.state.password_hash.clone()),
    )
    .await?
    {
        // The reservation stays: it is the failure.
        return Err(AppError::invalid_credentials());
    }
    let confirmed = confirm_verified(db, link, &attempt, now_ms(), source_ip).await;
    if confirmed.is_err() {
        // The right password: whatever went wrong, it was no guess.
        super::ssr::give_back_attempt(db, &attempt).await;
    }
    confirmed
}

/// The counter of the sign-in allowance that guesses through a confirmation link spend
/// ([`super::ssr::reserve_attempt`]): apart from sign-in's, which an unconfirmed account's
/// guesses spend without learning anything (sign-in answers alike for its right password).
pub const CONFIRM_COUNTER: &str = "confirm-link";

/// Marks the address confirmed, conditional on the account as the link was made for it.
/// `attempt`: the guess's reservation, taken back in the same transaction.
async fn confirm_verified(
    db: &Db,
    link: Verified,
    attempt: &str,
    now: i64,
    source_ip: Option<&str>,
) -> Result<super::ssr::Authenticated, AppError> {
    let mut tx = db.writer.begin().await?;
    sqlx::query("delete from sign_in_failure where attempt_id = $1")
        .bind(attempt)
        .execute(&mut *tx)
        .await?;
    // The session this confirmation starts holds the stamp of the password just checked,
    // and of the session epoch in the same statement.
    let epoch: Option<i64> = sqlx::query_scalar(
        "update app_user set email_verified_at = $4, updated_at = $5
         where user_id = $1 and password_hash = $2 and updated_at = $3 and email_verified_at is null
           and status = 'active' and deleted_at is null
         returning session_epoch",
    )
    .bind(&link.user_id)
    .bind(&link.state.password_hash)
    .bind(link.state.updated_at)
    .bind(now)
    .bind(now.max(link.state.updated_at + 1))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(epoch) = epoch else {
        return Err(AppError::invalid(
            "token",
            "this link is not valid (it may have been used already); sign in, or sign up again for a new one",
        ));
    };
    events::record(
        &mut tx,
        Event {
            kind: "user.email_verified",
            organization_id: None,
            actor_user_id: Some(&link.user_id),
            subject_id: Some(&link.user_id),
            source_ip,
            data: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(super::ssr::Authenticated {
        stamp: super::ssr::credential_stamp(&link.state.password_hash, epoch),
        user_id: link.user_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_binds_user_purpose_expiry_and_account_state() {
        let secret = [7u8; 32];
        let state = AccountState {
            password_hash: "hash-a".into(),
            email_normalized: "a@example.org".into(),
            updated_at: 5,
        };
        let t = token(&secret, "usr_1", Purpose::Setup, 1000, &state);
        assert!(t.starts_with("usr_1.setup.1000."));
        for changed in [
            AccountState {
                password_hash: "hash-b".into(),
                ..state.clone()
            },
            AccountState {
                email_normalized: "b@example.org".into(),
                ..state.clone()
            },
            AccountState {
                updated_at: 6,
                ..state.clone()
            },
        ] {
            assert_ne!(t, token(&secret, "usr_1", Purpose::Setup, 1000, &changed));
        }
        assert_ne!(t, token(&secret, "usr_1", Purpose::Reset, 1000, &state));
        assert_ne!(t, token(&secret, "usr_1", Purpose::Setup, 1001, &state));
        assert_ne!(t, token(&secret, "usr_2", Purpose::Setup, 1000, &state));
        assert_ne!(t, token(&[8u8; 32], "usr_1", Purpose::Setup, 1000, &state));
    }
}
