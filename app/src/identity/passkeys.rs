//! Passkeys and security keys (WebAuthn, with webauthn-rs): registering one (named, after
//! re-authentication), using one as the second factor after the password, and signing in with
//! a discoverable passkey alone.
//!
//! Each ceremony's state (the challenge and what it allows) is a row of `webauthn_ceremony`,
//! whose id only the console session that started it holds (in its server-side data). Finishing
//! deletes the row in one statement and checks its purpose, user and expiry: a ceremony is used
//! at most once, by the session that started it, within [`CEREMONY_MS`], on any instance. The
//! client's response is checked against it; nothing of the state comes from the client.

use super::sessions::Why;
use super::two_factor::forget;
use crate::error::{AppError, ErrorCode};
use crate::ssr::config::Config;
use crate::ssr::db::{new_id, now_ms, rfc3339, Db};
use crate::ssr::events::{self, Event};
use crate::ssr::keys;
use serde::{de::DeserializeOwned, Serialize};
use tower_sessions::Session;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Uuid,
};
use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

/// How long a started ceremony may be finished (the browser's own prompt times out sooner).
pub const CEREMONY_MS: i64 = 5 * 60_000;
/// The longest passkey name.
pub const NAME_MAX: usize = 64;
/// Passkeys one account may hold. Every registration and second step loads them all (and the
/// browser is handed their ids): a bound keeps both small. Twenty covers a person's devices
/// and security keys with room to spare.
pub const PASSKEYS_MAX: usize = 20;

/// What a ceremony is for: a finish for one purpose never consumes another's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Register,
    SecondFactor,
    SignIn,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::SecondFactor => "second_factor",
            Purpose::SignIn => "sign_in",
        }
    }
}

fn expired() -> AppError {
    AppError::invalid(
        "credential",
        "the passkey request expired or was already used; start again",
    )
}

fn webauthn_refused(e: impl std::fmt::Display) -> AppError {
    tracing::info!(error = %e, "WebAuthn response refused");
    AppError::invalid(
        "credential",
        "the passkey's answer was not accepted; try again",
    )
}

/// Parses a credential the browser sent (JSON text); a clear error when it is not one.
pub fn parse_credential<T: DeserializeOwned>(json: &str) -> Result<T, AppError> {
    serde_json::from_str(json)
        .map_err(|_| AppError::invalid("credential", "that is not a WebAuthn credential"))
}

/// Deletes the ceremonies that expired unfinished (the session sweep calls it).
pub async fn delete_expired(db: &Db) -> Result<u64, AppError> {
    Ok(
        sqlx::query("delete from webauthn_ceremony where expires_at < $1")
            .bind(now_ms())
            .execute(&db.writer)
            .await?
            .rows_affected(),
    )
}

/// Stores a new ceremony's state and binds it to the session (replacing any earlier one).
pub async fn begin(
    db: &Db,
    session: &Session,
    purpose: Purpose,
    user_id: Option<&str>,
    state: &impl Serialize,
) -> Result<(), AppError> {
    let now = now_ms();
    let id = new_id("wac");
    let mut tx = db.writer.begin().await?;
    // Stale rows go as new ones come: the table holds only live ceremonies.
    sqlx::query("delete from webauthn_ceremony where expires_at < $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    if let Some(earlier) = session
        .get::<String>(keys::WEBAUTHN_CEREMONY)
        .await
        .map_err(AppError::internal)?
    {
        sqlx::query("delete from webauthn_ceremony where ceremony_id = $1")
            .bind(earlier)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "insert into webauthn_ceremony (ceremony_id, purpose, user_id, state, expires_at)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(purpose.as_str())
    .bind(user_id)
    .bind(serde_json::to_string(state).map_err(AppError::internal)?)
    .bind(now + CEREMONY_MS)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    session
        .insert(keys::WEBAUTHN_CEREMONY, id)
        .await
        .map_err(AppError::internal)
}

/// Takes this session's ceremony for `purpose`, once: the row is deleted whatever follows.
/// Answers its user and state; an error when there is none, it is another purpose's, or it
/// expired.
pub async fn take<T: DeserializeOwned>(
    db: &Db,
    session: &Session,
    purpose: Purpose,
) -> Result<(Option<String>, T), AppError> {
    let id: Option<String> = session
        .get(keys::WEBAUTHN_CEREMONY)
        .await
        .map_err(AppError::internal)?;
    let Some(id) = id else {
        return Err(expired());
    };
    forget(session, &[keys::WEBAUTHN_CEREMONY]).await?;
    let row: Option<(String, Option<String>, String, i64)> = sqlx::query_as(
        "delete from webauthn_ceremony where ceremony_id = $1
         returning purpose, user_id, state, expires_at",
    )
    .bind(&id)
    .fetch_optional(&db.writer)
    .await?;
    match row {
        Some((p, user, state, expires_at)) if p == purpose.as_str() && expires_at > now_ms() => {
            Ok((
                user,
                serde_json::from_str(&state).map_err(AppError::internal)?,
            ))
        }
        _ => Err(expired()),
    }
}

/// The user's WebAuthn user handle (random, made on first use).
async fn user_handle(db: &Db, user_id: &str) -> Result<Uuid, AppError> {
    sqlx::query("insert into webauthn_handle (user_id, handle) values ($1, $2) on conflict (user_id) do nothing")
        .bind(user_id)
        .bind(Uuid::new_v4().to_string())
        .execute(&db.writer)
        .await?;
    let handle: String =
        sqlx::query_scalar("select handle from webauthn_handle where user_id = $1")
            .bind(user_id)
            .fetch_one(&db.writer)
            .await?;
    Uuid::parse_str(&handle).map_err(AppError::internal)
}

fn credential_key(id: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// The user's passkeys (their stored credentials), with their row ids.
async fn stored(db: &Db, user_id: &str) -> Result<Vec<(String, Passkey)>, AppError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select passkey_id, credential from passkey where user_id = $1 order by created_at",
    )
    .bind(user_id)
    .fetch_all(&db.writer)
    .await?;
    rows.into_iter()
        .map(|(id, json)| Ok((id, serde_json::from_str(&json).map_err(AppError::internal)?)))
        .collect()
}

/// How many passkeys the user has.
pub async fn count(db: &Db, user_id: &str) -> Result<i64, AppError> {
    Ok(
        sqlx::query_scalar("select count(*) from passkey where user_id = $1")
            .bind(user_id)
            .fetch_one(&db.writer)
            .await?,
    )
}

/// The user's passkeys, oldest first, as the profile lists them.
pub async fn list(db: &Db, user_id: &str) -> Result<Vec<super::PasskeyView>, AppError> {
    let rows: Vec<(String, String, i64, Option<i64>)> = sqlx::query_as(
        "select passkey_id, name, created_at, last_used_at from passkey
         where user_id = $1 order by created_at, passkey_id",
    )
    .bind(user_id)
    .fetch_all(&db.reader)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, created, used)| super::PasskeyView {
            id,
            name,
            created_at: rfc3339(created),
            last_used_at: used.map(rfc3339),
        })
        .collect())
}

/// Starts registering a passkey for the user (who re-authenticated): the options for the
/// browser. The credential is asked to be discoverable, so that it can also sign in alone.
pub async fn start_registration(
    db: &Db,
    config: &Config,
    session: &Session,
    user_id: &str,
) -> Result<CreationChallengeResponse, AppError> {
    let (email, display_name): (String, String) =
        sqlx::query_as("select email, display_name from app_user where user_id = $1")
            .bind(user_id)
            .fetch_one(&db.reader)
            .await?;
    let existing = stored(db, user_id)
        .await?
        .into_iter()
        .map(|(_, p)| p.cred_id().clone())
        .collect::<Vec<_>>();
    if existing.len() >= PASSKEYS_MAX {
        return Err(too_many());
    }
    let shown = if display_name.trim().is_empty() {
        email.clone()
    } else {
        display_name
    };
    let (mut options, state) = config
        .webauthn()?
        .start_passkey_registration(
            user_handle(db, user_id).await?,
            &email,
            &shown,
            Some(existing),
        )
        .map_err(AppError::internal)?;
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.resident_key = Some(webauthn_rs_proto::ResidentKeyRequirement::Required);
        selection.require_resident_key = true;
    }
    begin(db, session, Purpose::Register, Some(user_id), &state).await?;
    Ok(options)
}

fn too_many() -> AppError {
    AppError::conflict(
        "credential",
        format!("you have {PASSKEYS_MAX} passkeys, the most an account may hold; remove one you no longer use first"),
    )
}

/// The name a passkey is given: trimmed, 1 to [`NAME_MAX`] characters, no control characters.
pub fn valid_name(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "name",
            "give the passkey a name of 1 to 64 characters, such as \"Laptop\"",
        ));
    }
    Ok(name.to_string())
}

/// Finishes this session's registration with the browser's answer: stores the passkey, ends
/// the user's other sessions and lifts the enrolment restriction. The caller gives the session
/// a new id.
pub async fn finish_registration(
    db: &Db,
    config: &Config,
    session: &Session,
    user_id: &str,
    name: &str,
    credential: &str,
    source_ip: Option<&str>,
) -> Result<super::PasskeyView, AppError> {
    let name = valid_name(name)?;
    let credential: RegisterPublicKeyCredential = parse_credential(credential)?;
    let (owner, state): (_, PasskeyRegistration) = take(db, session, Purpose::Register).await?;
    if owner.as_deref() != Some(user_id) {
        return Err(expired());
    }
    let passkey = config
        .webauthn()?
        .finish_passkey_registration(&credential, &state)
        .map_err(webauthn_refused)?;
    let now = now_ms();
    let id = new_id("pky");
    let mut tx = db.writer.begin().await?;
    // Counted under the account's lock: two registrations finishing at once (two tabs, two
    // instances) cannot both take the last place.
    crate::ssr::db::lock_user(&mut tx, user_id).await?;
    let inserted = sqlx::query(
        "insert into passkey (passkey_id, user_id, name, credential_id, credential, created_at, sign_count)
         select $1, $2, $3, $4, $5, $6, 0
         where (select count(*) from passkey where user_id = $2) < $7",
    )
    .bind(&id)
    .bind(user_id)
    .bind(&name)
    .bind(credential_key(passkey.cred_id()))
    .bind(serde_json::to_string(&passkey).map_err(AppError::internal)?)
    .bind(now)
    .bind(PASSKEYS_MAX as i64)
    .execute(&mut *tx)
    .await;
    if let Err(sqlx::Error::Database(e)) = &inserted {
        if e.is_unique_violation() {
            return Err(AppError::conflict(
                "credential",
                "this passkey is already registered",
            ));
        }
    }
    if inserted?.rows_affected() == 0 {
        return Err(too_many());
    }
    let current = super::ssr::session_hash_of(session);
    let ended = super::sessions::end_all(
        &mut tx,
        user_id,
        current.as_deref(),
        Why::CredentialsChanged,
    )
    .await?;
    events::record(
        &mut tx,
        Event {
            kind: "user.passkey_added",
            organization_id: None,
            actor_user_id: Some(user_id),
            subject_id: Some(user_id),
            source_ip,
            data: serde_json::json!({ "name": name, "passkey_id": id, "sessions_ended": ended.count }),
        },
    )
    .await?;
    // A passkey outlives a password change: its owner hears of every new one.
    let email: String = sqlx::query_scalar("select email from app_user where user_id = $1")
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
    let origin = config.link_base();
    crate::notify::ssr::enqueue_email(
        &mut tx,
        &email,
        "A passkey was added to your account",
        &format!("The passkey \"{name}\" was just added to your Keyward account; it can sign you in without your password. If it was not you, remove it at once at {origin}/profile, change your password and tell an administrator.\n"),
        &format!("passkey-added:{id}"),
        now,
    )
    .await?;
    tx.commit().await?;
    super::ssr::restamp(config, session, ended.stamp.as_deref()).await?;
    forget(session, &[keys::MUST_ENROL]).await?;
    Ok(super::PasskeyView {
        id,
        name,
        created_at: rfc3339(now),
        last_used_at: None,
    })
}

/// Removes one of the user's passkeys (the caller re-authenticated); the user's other
/// sessions end; `session`, the caller's, carries on (the caller gives it a new id).
pub async fn remove(
    db: &Db,
    config: &Config,
    session: &Session,
    user_id: &str,
    passkey_id: &str,
    source_ip: Option<&str>,
) -> Result<(), AppError> {
    let current_session = super::ssr::session_hash_of(session);
    let mut tx = db.writer.begin().await?;
    let name: Option<String> = sqlx::query_scalar(
        "delete from passkey where passkey_id = $1 and user_id = $2 returning name",
    )
    .bind(passkey_id)
    .bind(user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(name) = name else {
        return Err(AppError::new(ErrorCode::NotFound, "no such passkey"));
    };
    let ended = super::sessions::end_all(
        &mut tx,
        user_id,
        current_session.as_deref(),
        Why::CredentialsChanged,
    )
    .await?;
    events::record(
        &mut tx,
        Event {
            kind: "user.passkey_removed",
            organization_id: None,
            actor_user_id: Some(user_id),
            subject_id: Some(user_id),
            source_ip,
            data: serde_json::json!({ "name": name, "passkey_id": passkey_id, "sessions_ended": ended.count }),
        },
    )
    .await?;
    tx.commit().await?;
    super::ssr::restamp(config, session, ended.stamp.as_deref()).await?;
    Ok(())
}

/// Starts the second step with a passkey, for the sign-in waiting in this session: options
/// allowing that user's passkeys only.
pub async fn start_second_factor(
    db: &Db,
    config: &Config,
    session: &Session,
) -> Result<RequestChallengeResponse, AppError> {
    let Some(user_id) = super::two_factor::pending_user(session).await? else {
        return Err(AppError::new(
            ErrorCode::Unauthenticated,
            "your sign-in expired; enter your email and password again",
        ));
    };
    let passkeys: Vec<Passkey> = stored(db, &user_id)
        .await?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    if passkeys.is_empty() {
        return Err(AppError::conflict(
            "credential",
            "this account has no passkey; enter a code instead",
        ));
    }
    let (options, state) = config
        .webauthn()?
        .start_passkey_authentication(&passkeys)
        .map_err(AppError::internal)?;
    begin(db, session, Purpose::SecondFactor, Some(&user_id), &state).await?;
    Ok(options)
}

/// Records a use of the passkey: its counter and when. One conditional statement accepts the
/// use only when the signature counter moved forward past the stored one (or both stay at 0,
/// as with authenticators that keep none): a cloned authenticator, an answer to a challenge
/// started before a later use, or two sign-ins racing to write an older value back are
/// refused. Answers whether the use was accepted.
async fn used(
    db: &Db,
    passkey_id: &str,
    mut passkey: Passkey,
    result: &webauthn_rs::prelude::AuthenticationResult,
) -> Result<bool, AppError> {
    passkey.update_credential(result);
    let counter = i64::from(result.counter());
    let moved = sqlx::query(
        "update passkey set credential = $2, sign_count = $3, last_used_at = $4
         where passkey_id = $1 and (sign_count < $3 or (sign_count = 0 and $3 = 0))",
    )
    .bind(passkey_id)
    .bind(serde_json::to_string(&passkey).map_err(AppError::internal)?)
    .bind(counter)
    .bind(now_ms())
    .execute(&db.writer)
    .await?
    .rows_affected();
    if moved == 0 {
        tracing::warn!(
            passkey_id,
            counter,
            "passkey counter did not move forward: possible clone"
        );
    }
    Ok(moved == 1)
}

/// Checks a passkey's answer for `user_id`'s pending sign-in: `Ok(false)` when it does not
/// prove that user (wrong passkey, bad signature, another session's or a used ceremony).
pub async fn check_second_factor(
    db: &Db,
    config: &Config,
    session: &Session,
    user_id: &str,
    credential: &str,
) -> Result<bool, AppError> {
    let credential: PublicKeyCredential = parse_credential(credential)?;
    let Ok((owner, state)) =
        take::<PasskeyAuthentication>(db, session, Purpose::SecondFactor).await
    else {
        return Ok(false);
    };
    if owner.as_deref() != Some(user_id) {
        return Ok(false);
    }
    let Ok(result) = config
        .webauthn()?
        .finish_passkey_authentication(&credential, &state)
    else {
        return Ok(false);
    };
    let key = credential_key(result.cred_id());
    let Some((passkey_id, passkey)) = stored(db, user_id)
        .await?
        .into_iter()
        .find(|(_, p)| credential_key(p.cred_id()) == key)
    else {
        return Ok(false);
    };
    used(db, &passkey_id, passkey, &result).await
}

/// Starts a passwordless sign-in: options naming no user (the authenticator offers its
/// discoverable passkeys for this site).
pub async fn start_sign_in(
    db: &Db,
    config: &Config,
    session: &Session,
) -> Result<RequestChallengeResponse, AppError> {
    let (mut options, state) = config
        .webauthn()?
        .start_discoverable_authentication()
        .map_err(AppError::internal)?;
    // A button asks for the passkey (the modal prompt), not the autofill-only form.
    options.mediation = None;
    begin(db, session, Purpose::SignIn, None, &state).await?;
    // Anyone may start one: a session that holds only a ceremony lives as long as it does,
    // not the console's idle time (signing in gives it that back, `ssr::start_session`).
    session.set_expiry(Some(tower_sessions::Expiry::OnInactivity(
        time::Duration::milliseconds(CEREMONY_MS),
    )));
    Ok(options)
}

/// Finishes a passwordless sign-in: the passkey names its user (by handle and credential id),
/// and its signature must verify against the stored public key. Answers the user, who must be
/// active. A passkey verifies the user (PIN or biometrics), so it is both factors.
pub async fn finish_sign_in(
    db: &Db,
    config: &Config,
    session: &Session,
    credential: &str,
    source_ip: Option<&str>,
) -> Result<super::ssr::Authenticated, AppError> {
    let credential: PublicKeyCredential = parse_credential(credential)?;
    let (_, state): (_, DiscoverableAuthentication) = take(db, session, Purpose::SignIn).await?;
    let webauthn = config.webauthn()?;
    let refused = || {
        AppError::new(
            ErrorCode::InvalidCredentials,
            "that passkey is not registered here, or its account is disabled",
        )
    };
    let Ok((handle, cred_id)) = webauthn.identify_discoverable_authentication(&credential) else {
        return Err(refused());
    };
    // The stamp is read with the passkey, before it is checked: whatever ends the user's
    // sessions meanwhile (this passkey removed, say) ends the session this sign-in starts.
    let row: Option<(String, String, String, String, i64)> = sqlx::query_as(
        "select p.passkey_id, p.user_id, p.credential, u.password_hash, u.session_epoch from passkey p
         join webauthn_handle h on h.user_id = p.user_id
         join app_user u on u.user_id = p.user_id
         where p.credential_id = $1 and h.handle = $2 and u.status = 'active' and u.deleted_at is null",
    )
    .bind(credential_key(cred_id))
    .bind(handle.to_string())
    .fetch_optional(&db.writer)
    .await?;
    let Some((passkey_id, user_id, json, hash, epoch)) = row else {
        return Err(refused());
    };
    let stamp = super::ssr::credential_stamp(&hash, epoch);
    let passkey: Passkey = serde_json::from_str(&json).map_err(AppError::internal)?;
    let result = match webauthn.finish_discoverable_authentication_v2(&credential, state, &passkey)
    {
        Ok(result) => result,
        Err(e) => {
            tracing::info!(error = %e, user_id, "passkey sign-in refused");
            let mut tx = db.writer.begin().await?;
            events::record(
                &mut tx,
                Event {
                    kind: "user.sign_in_failed",
                    organization_id: None,
                    actor_user_id: None,
                    subject_id: Some(&user_id),
                    source_ip,
                    data: serde_json::json!({ "reason": "passkey" }),
                },
            )
            .await?;
            tx.commit().await?;
            return Err(refused());
        }
    };
    if !used(db, &passkey_id, passkey, &result).await? {
        return Err(refused());
    }
    let mut tx = db.writer.begin().await?;
    events::record(
        &mut tx,
        Event {
            kind: "user.signed_in",
            organization_id: None,
            actor_user_id: Some(&user_id),
            subject_id: Some(&user_id),
            source_ip,
            data: serde_json::json!({ "method": "passkey" }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(super::ssr::Authenticated { user_id, stamp })
}
