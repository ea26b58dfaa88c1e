//! Identity domain logic and SQL (server only).

use super::SignedInUser;
use crate::access::{ssr::SYSTEM_ORG_ID, Role};
use crate::error::AppError;
use crate::ssr::config::Config;
use crate::ssr::db::{lock_user, new_id, now_ms, Db};
use crate::ssr::events::{self, Event};
use crate::ssr::{keys, password};
use sqlx::Row;

const HOUR_MS: i64 = 3_600_000;

/// Trims and lower-cases an email: the key of case-insensitive uniqueness.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// A plausible address: one `@`, something on each side, a dot in the domain, no spaces.
pub fn validate_email(email: &str) -> Result<(), AppError> {
    let email = email.trim();
    let ok = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.contains('@') && domain.contains('.')
               && !domain.starts_with('.') && !domain.ends_with('.')
               // `.invalid` (RFC 2606) never receives mail; deleted accounts' placeholders use it.
               && !domain.to_lowercase().ends_with(".invalid"));
    if ok {
        Ok(())
    } else {
        Err(AppError::invalid("email", "enter a valid email address"))
    }
}

pub(crate) fn validate_display_name(name: &str) -> Result<String, AppError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AppError::invalid("display_name", "enter a display name"));
    }
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "display_name",
            "display name must be at most 100 printable characters",
        ));
    }
    Ok(name.to_string())
}

/// A new account's checked display name and password hash: the checks and the slow hash,
/// done before any transaction opens. The address is checked again by `insert_user`.
pub(crate) async fn prepare_account(
    db: &Db,
    email: &str,
    display_name: &str,
    plain_password: &str,
) -> Result<(String, String), AppError> {
    validate_email(email)?;
    let display_name = validate_display_name(display_name)?;
    password::validate(plain_password)?;
    // An unconfirmed sign-up does not hold the address (see `insert_user`).
    let taken: Option<String> = sqlx::query_scalar(
        "select user_id from app_user where email_normalized = $1 and email_verified_at is not null",
    )
    .bind(normalize_email(email))
    .fetch_optional(&db.reader)
    .await?;
    if taken.is_some() {
        return Err(AppError::conflict(
            "email",
            "an account with this email already exists",
        ));
    }
    Ok((
        display_name,
        password::hash(plain_password.to_string()).await?,
    ))
}

/// Creates a user with a personal organization (they own it) and, optionally, a role in the
/// system organization. Validates everything before writing anything.
pub async fn create_user(
    db: &Db,
    email: &str,
    display_name: &str,
    plain_password: &str,
    system_role: Option<Role>,
    source_ip: Option<&str>,
) -> Result<String, AppError> {
    let (display_name, hash) = prepare_account(db, email, display_name, plain_password).await?;
    let mut tx = db.writer.begin().await?;
    let user_id = insert_user(
        &mut tx,
        email,
        &display_name,
        &hash,
        system_role,
        None,
        source_ip,
    )
    .await?;
    tx.commit().await?;
    Ok(user_id)
}

/// Open sign-up. Answers the same whether or not the address has an account (nothing tells
/// an outsider which addresses are registered), and creates nothing usable by itself:
///
/// - a new address gets an unconfirmed account and an emailed confirmation link;
/// - an address whose account is still unconfirmed gets the new password and name (the last
///   sign-up wins, and every link sent before is void) and a new link (at most one per ten
///   minutes: an address cannot be flooded);
/// - an address with a confirmed (or disabled) account gets an email saying so, at most one
///   an hour, and nothing changes.
pub async fn sign_up(
    db: &Db,
    config: &Config,
    email: &str,
    display_name: &str,
    plain_password: &str,
    source_ip: Option<&str>,
) -> Result<(), AppError> {
    validate_email(email)?;
    let display_name = validate_display_name(display_name)?;
    password::validate(plain_password)?;
    let normalized = normalize_email(email);
    // Hashed on every path: the answer takes as long whether or not the address is taken.
    let hash = password::hash(plain_password.to_string()).await?;
    let now = now_ms();
    let mut tx = db.writer.begin().await?;
    let existing: Option<(String, Option<i64>, String)> = sqlx::query_as(
        "select user_id, email_verified_at, email from app_user where email_normalized = $1",
    )
    .bind(&normalized)
    .fetch_optional(&mut *tx)
    .await?;
    // An unconfirmed account the sweep deleted a moment ago is a new address again.
    let existing = match existing {
        Some((user_id, None, email)) => {
            let renewed = sqlx::query(&format!(
                "update app_user set password_hash = $2, display_name = $3, updated_at = $4
                 where user_id = $1 and {UNCONFIRMED}"
            ))
            .bind(&user_id)
            .bind(&hash)
            .bind(&display_name)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if renewed > 0 {
                // The personal organization was named after the first sign-up's name: the
                // latest sign-up (who will hold the account) names it, not a squatter's text.
                sqlx::query(
                    "update organization set name = $2 where kind = 'personal' and organization_id =
                       (select personal_organization_id from app_user where user_id = $1)",
                )
                .bind(&user_id)
                .bind(format!("{display_name} (personal)"))
                .execute(&mut *tx)
                .await?;
            }
            (renewed > 0).then_some((user_id, None, email))
        }
        other => other,
    };
    // Who gets a confirmation link: a new account, or the renewed unconfirmed one.
    let unconfirmed = match existing {
        None => {
            let user_id = match insert_user(
                &mut tx,
                email,
                &display_name,
                &hash,
                None,
                None,
                source_ip,
            )
            .await
            {
                Ok(id) => id,
                // Registered by a racing sign-up a moment ago: the same answer as ever.
                Err(e) if e.code == crate::error::ErrorCode::Conflict => return Ok(()),
                Err(e) => return Err(e),
            };
            sqlx::query("update app_user set email_verified_at = null where user_id = $1")
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
            Some(user_id)
        }
        Some((user_id, None, _)) => Some(user_id),
        Some((user_id, Some(_), stored)) => {
            let origin = config.link_base();
            crate::notify::ssr::enqueue_email(
                &mut tx,
                &stored,
                "You already have a Keyward account",
                &format!("Someone, hopefully you, tried to create a Keyward account for this address, which already has one. Sign in at {origin}/sign-in; if you forgot your password, ask an administrator for a reset link.\n\nIf it was not you, you can ignore this email.\n"),
                &format!("signup-exists:{user_id}:{}", now / 3_600_000),
                now,
            )
            .await?;
            None
        }
    };
    if let Some(user_id) = unconfirmed {
        super::password_link::send(
            &mut tx,
            config,
            &user_id,
            super::password_link::Purpose::Verify,
            now,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// How long an unconfirmed sign-up is kept after its last link was sent (the link's life).
pub const UNCONFIRMED_KEPT_MS: i64 = 24 * 3_600_000;

/// The condition that makes an account an unconfirmed sign-up (never a disabled or deleted
/// account, whatever its `email_verified_at`).
const UNCONFIRMED: &str = "email_verified_at is null and status = 'active' and deleted_at is null";

/// Deletes the unconfirmed sign-up holding `normalized`, if any, with its personal
/// organization: an address nobody confirmed belongs to nobody, so an administrator's account,
/// an accepted invitation or a confirmed email change takes it (and a squatter who signed up
/// with someone else's address cannot block them). One conditional statement: a confirmation
/// racing it wins or loses whole.
pub(crate) async fn release_unconfirmed(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    normalized: &str,
) -> Result<(), AppError> {
    let held: Option<(String, String)> = sqlx::query_as(&format!(
        "select user_id, personal_organization_id from app_user where email_normalized = $1 and {UNCONFIRMED}"
    ))
    .bind(normalized)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some((user_id, org_id)) = held {
        delete_unconfirmed(tx, &user_id, &org_id, None, "user.unconfirmed_released").await?;
    }
    Ok(())
}

/// Deletes an unconfirmed account (sent its last link before `sent_before`, when given) and
/// its personal organization; everything else it could hold cascades. Nothing when it was
/// confirmed or renewed meanwhile. Returns whether it was deleted.
async fn delete_unconfirmed(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    org_id: &str,
    sent_before: Option<i64>,
    kind: &'static str,
) -> Result<bool, AppError> {
    let gone = sqlx::query(&format!(
        "delete from app_user where user_id = $1 and {UNCONFIRMED}
           and ($2 = 0 or coalesce(verify_sent_at, updated_at) < $2)"
    ))
    .bind(user_id)
    .bind(sent_before.unwrap_or(0))
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if gone == 0 {
        return Ok(false);
    }
    sqlx::query("delete from organization where organization_id = $1 and kind = 'personal'")
        .bind(org_id)
        .execute(&mut **tx)
        .await?;
    events::record(
        tx,
        Event {
            kind,
            organization_id: None,
            actor_user_id: None,
            subject_id: Some(user_id),
            source_ip: None,
            data: serde_json::json!({}),
        },
    )
    .await?;
    Ok(true)
}

/// Deletes the sign-ups nobody confirmed within [`UNCONFIRMED_KEPT_MS`] of their last link
/// (a worker runs it hourly), 500 at a time. Returns how many went.
pub async fn purge_unconfirmed(db: &Db, now: i64) -> Result<u64, AppError> {
    let before = now - UNCONFIRMED_KEPT_MS;
    let stale: Vec<(String, String)> = sqlx::query_as(&format!(
        "select user_id, personal_organization_id from app_user
         where {UNCONFIRMED} and coalesce(verify_sent_at, updated_at) < $1 limit 500"
    ))
    .bind(before)
    .fetch_all(&db.reader)
    .await?;
    let mut purged = 0;
    for (user_id, org_id) in stale {
        let mut tx = db.writer.begin().await?;
        // The delete re-checks everything: a sign-up a moment ago renewed it.
        if delete_unconfirmed(
            &mut tx,
            &user_id,
            &org_id,
            Some(before),
            "user.unconfirmed_purged",
        )
        .await?
        {
            purged += 1;
        }
        tx.commit().await?;
    }
    Ok(purged)
}

/// Inserts a user (validated by the caller) with their personal organization and, optionally,
/// a role in the system organization, in the caller's transaction. A taken address is a 409;
/// one held only by an unconfirmed sign-up is released first.
pub(crate) async fn insert_user(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    email: &str,
    display_name: &str,
    hash: &str,
    system_role: Option<Role>,
    actor_user_id: Option<&str>,
    source_ip: Option<&str>,
) -> Result<String, AppError> {
    let normalized = normalize_email(email);
    release_unconfirmed(tx, &normalized).await?;
    let now = now_ms();
    let user_id = new_id("usr");
    let org_id = new_id("org");
    sqlx::query("insert into organization (organization_id, name, slug, kind, created_at) values ($1, $2, $3, 'personal', $4)")
        .bind(&org_id)
        .bind(format!("{display_name} (personal)"))
        .bind(org_id.to_lowercase().replace('_', "-"))
        .bind(now)
        .execute(&mut **tx)
        .await?;
    let inserted = sqlx::query(
        "insert into app_user (user_id, email, email_normalized, display_name, password_hash, status, personal_organization_id, created_at, updated_at, email_verified_at)
         values ($1, $2, $3, $4, $5, 'active', $6, $7, $7, $7)",
    )
    .bind(&user_id)
    .bind(email.trim())
    .bind(&normalized)
    .bind(display_name)
    .bind(hash)
    .bind(&org_id)
    .bind(now)
    .execute(&mut **tx)
    .await;
    if let Err(sqlx::Error::Database(e)) = &inserted {
        if e.is_unique_violation() {
            return Err(AppError::conflict(
                "email",
                "an account with this email already exists",
            ));
        }
    }
    inserted?;
    grant(tx, &org_id, &user_id, Role::Owner, now).await?;
    if let Some(role) = system_role {
        grant(tx, SYSTEM_ORG_ID, &user_id, role, now).await?;
    }
    events::record(
        tx,
        Event {
            kind: "user.created",
            organization_id: Some(&org_id),
            actor_user_id,
            subject_id: Some(&user_id),
            source_ip,
            data: serde_json::json!({ "system_role": system_role.map(Role::as_str) }),
        },
    )
    .await?;
    Ok(user_id)
}

async fn grant(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    org_id: &str,
    user_id: &str,
    role: Role,
    now: i64,
) -> Result<(), AppError> {
    sqlx::query("insert into membership (organization_id, user_id, role, created_at) values ($1, $2, $3, $4)")
        .bind(org_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    events::record(
        tx,
        Event {
            kind: "membership.granted",
            organization_id: Some(org_id),
            actor_user_id: None,
            subject_id: Some(user_id),
            source_ip: None,
            data: serde_json::json!({ "role": role.as_str() }),
        },
    )
    .await?;
    Ok(())
}

/// Whether any user exists (the run command bootstraps an admin when none does).
pub async fn any_user(db: &Db) -> Result<bool, AppError> {
    let n: i64 = sqlx::query_scalar("select count(*) from app_user")
        .fetch_one(&db.reader)
        .await?;
    Ok(n > 0)
}

/// Reserves one of the hour's `limit` failed attempts for `user_id` on the counter of
/// `device_id` (`None`: untrusted browsers), atomically: the count and the reservation (a
/// failure row) happen in one transaction no other attempt on the account can interleave
/// with (SQLite has one writer connection; PostgreSQL locks the user's row), so of N parallel
/// attempts exactly the allowance get through. Returns the reservation's id (delete it when
/// the attempt succeeds), or `None` when the allowance is spent.
pub(crate) async fn reserve_attempt(
    db: &Db,
    user_id: &str,
    device_id: Option<&str>,
    limit: i64,
) -> Result<Option<String>, AppError> {
    let now = now_ms();
    let since = now - HOUR_MS;
    let mut tx = db.writer.begin().await?;
    lock_user(&mut tx, user_id).await?;
    let attempts: i64 = sqlx::query_scalar(
        "select count(*) from sign_in_failure
         where user_id = $1 and coalesce(device_id, '') = coalesce($2, '') and failed_at > $3",
    )
    .bind(user_id)
    .bind(device_id)
    .bind(since)
    .fetch_one(&mut *tx)
    .await?;
    if attempts >= limit {
        tx.commit().await?;
        return Ok(None);
    }
    let attempt_id = new_id("att");
    sqlx::query(
        "insert into sign_in_failure (user_id, device_id, failed_at, attempt_id) values ($1, $2, $3, $4)",
    )
    .bind(user_id)
    .bind(device_id)
    .bind(now)
    .bind(&attempt_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(attempt_id))
}

/// Deletes sign-in failures older than the hour the allowance counts, with an hour's margin
/// (the `session-sweep` worker, every ten minutes). Not on the sign-in path: there every failure
/// scanned the whole table and took other accounts' rows, so concurrent failures waited on each
/// other. The margin: the sweep runs on whichever instance's clock, and a clock running ahead
/// (up to an hour) must not delete failures that another instance still counts.
pub async fn prune_sign_in_failures(db: &Db, now: i64) -> Result<u64, AppError> {
    Ok(
        sqlx::query("delete from sign_in_failure where failed_at <= $1")
            .bind(now - 2 * HOUR_MS)
            .execute(&db.writer)
            .await?
            .rows_affected(),
    )
}

/// Which allowance a password attempt spends ([`reserve_attempt`]).
#[derive(Clone, Copy, Debug)]
pub enum Counter<'a> {
    /// A sign-in: the browser's device cookie, if it has one that counts
    /// ([`device_cookie`]); otherwise the untrusted browsers' shared counter.
    Browser(Option<&'a device_cookie::Device>),
    /// A signed-in session re-entering its password (changing it, a factor, the address):
    /// counted on the session's own counter, so that guesses from outside, which spend the
    /// untrusted counter, cannot keep the owner from securing the account.
    Session(&'a str),
}

/// Who a right password belongs to, and the credential stamp of the password it matched.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub user_id: String,
    pub stamp: String,
}

/// Checks an email and password. Unknown email, wrong password, disabled account and throttled
/// account all cost one argon2 verification, take the database's writer twice (the attempt
/// counted, the failure recorded: an unknown address and a throttled account count and record
/// nothing, but wait their turns all the same) and give the same error.
///
/// Throttling: at most `sign_in_failures_per_hour` failures per account in a sliding hour,
/// counted separately for each trusted device (a browser holding a valid device cookie for the
/// account from an earlier sign-in). An attacker who burns the account's allowance from
/// elsewhere therefore never locks out the owner's own browsers, and the allowance refills as
/// the hour slides: nobody is locked out for good.
///
/// The allowance is enforced atomically: before any password is hashed, an attempt counts the
/// hour's failures and *reserves* one (a failure row) in a single transaction that no other
/// attempt on the account can interleave with, so of N parallel guesses exactly the allowance
/// go on to check the password, on one instance or several. An attempt that succeeds takes its
/// reservation back; a failed one leaves it as the failure it is.
pub async fn authenticate(
    db: &Db,
    config: &Config,
    email: &str,
    plain_password: &str,
    counter: Counter<'_>,
    source_ip: Option<&str>,
) -> Result<Authenticated, AppError> {
    let row = sqlx::query(
        "select user_id, password_hash, session_epoch, status, email_verified_at from app_user where email_normalized = $1",
    )
    .bind(normalize_email(email))
    .fetch_optional(&db.reader)
    .await?;
    let Some(row) = row else {
        // The steps a wrong password for a known address takes, with nothing written: an
        // attempt counted in a writing transaction, one argon2 verification, a second writing
        // transaction. On SQLite the writer is one connection, and a known address's sign-in
        // waits its turn there twice: skipping those waits would tell the time apart.
        writer_turn(db).await?;
        password::verify(plain_password.to_string(), None).await?;
        writer_turn(db).await?;
        return Err(AppError::invalid_credentials());
    };
    let user_id: String = row.try_get("user_id")?;
    let hash: String = row.try_get("password_hash")?;
    // Read before the password is checked: whatever ends the user's sessions while it is
    // being checked moves the epoch on, and the session this sign-in starts is over at once.
    let epoch: i64 = row.try_get("session_epoch")?;
    let status: String = row.try_get("status")?;
    let verified = row
        .try_get::<Option<i64>, _>("email_verified_at")?
        .is_some();
    let stamp = credential_stamp(&hash, epoch);
    let device_id = match counter {
        // A cookie counts only under the credentials it was issued with (see
        // [`device_cookie`]).
        Counter::Browser(device) => device
            .filter(|d| d.trusted_for(&config.secret, &user_id, &stamp))
            .map(|d| d.device_id.clone()),
        Counter::Session(hash) => Some(format!("reauth:{hash}")),
    };
    let reauthenticating = matches!(counter, Counter::Session(_));

    let Some(attempt_id) = reserve_attempt(
        db,
        &user_id,
        device_id.as_deref(),
        config.sign_in_failures_per_hour,
    )
    .await?
    else {
        password::verify(plain_password.to_string(), None).await?;
        // Where a wrong password records its failure.
        writer_turn(db).await?;
        tracing::warn!(user_id, "sign-in throttled");
        if reauthenticating {
            // A signed-in caller learns nothing from the difference, and must not be told
            // that their right password is wrong.
            return Err(AppError::new(
                crate::error::ErrorCode::RateLimited,
                "too many wrong passwords from this session; try again within the hour",
            ));
        }
        return Err(AppError::invalid_credentials());
    };
    let now = now_ms();

    let valid = password::verify(plain_password.to_string(), Some(hash)).await?;
    let mut tx = db.writer.begin().await?;
    if valid && status == "active" && !verified {
        // The right password for an address nobody confirmed yet: not a guess, so not
        // counted. The answer is the usual one (a distinct one would tell whoever just signed
        // up with someone else's address that it had no account); the address's owner gets
        // the confirmation link again, at most one per ten minutes.
        sqlx::query("delete from sign_in_failure where attempt_id = $1")
            .bind(&attempt_id)
            .execute(&mut *tx)
            .await?;
        super::password_link::send(
            &mut tx,
            config,
            &user_id,
            super::password_link::Purpose::Verify,
            now,
        )
        .await?;
        tx.commit().await?;
        return Err(AppError::invalid_credentials());
    }
    if valid && status == "active" {
        let signed_in = async {
            sqlx::query("delete from sign_in_failure where attempt_id = $1")
                .bind(&attempt_id)
                .execute(&mut *tx)
                .await?;
            // With a second factor, the password alone signs nobody in: its step says so.
            let factors: i64 = sqlx::query_scalar(super::two_factor::FACTOR_COUNT)
                .bind(&user_id)
                .fetch_one(&mut *tx)
                .await?;
            events::record(
                &mut tx,
                Event {
                    kind: if reauthenticating {
                        "user.reauthenticated"
                    } else if factors > 0 {
                        "user.password_verified"
                    } else {
                        "user.signed_in"
                    },
                    organization_id: None,
                    actor_user_id: Some(&user_id),
                    subject_id: Some(&user_id),
                    source_ip,
                    data: serde_json::json!({ "trusted_device": device_id.is_some() }),
                },
            )
            .await?;
            tx.commit().await?;
            Ok::<(), AppError>(())
        }
        .await;
        if let Err(e) = signed_in {
            // The right password: a transaction that could not finish (a collision told to
            // retry) gives its attempt back. A wrong one's stays counted, whatever happens.
            if e.is_server_fault() {
                give_back_attempt(db, &attempt_id).await;
            }
            return Err(e);
        }
        return Ok(Authenticated { user_id, stamp });
    }
    events::record(
        &mut tx,
        Event {
            kind: "user.sign_in_failed",
            organization_id: None,
            actor_user_id: None,
            subject_id: Some(&user_id),
            source_ip,
            data: serde_json::json!({ "reason": if valid { "disabled" } else { "password" } }),
        },
    )
    .await?;
    tx.commit().await?;
    Err(AppError::invalid_credentials())
}

/// A writing transaction that writes nothing: where an unknown address's or a throttled
/// account's sign-in takes the writer as a wrong password's does to count its attempt or
/// record its failure ([`authenticate`]).
async fn writer_turn(db: &Db) -> Result<(), AppError> {
    let mut tx = db.writer.begin().await?;
    sqlx::query_scalar::<_, i64>("select count(*) from sign_in_failure where user_id = ''")
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Gives a reserved attempt back ([`reserve_attempt`]) after the right proof's transaction
/// failed on the server's side; best effort (logged).
pub(crate) async fn give_back_attempt(db: &Db, attempt_id: &str) {
    if let Err(e) = sqlx::query("delete from sign_in_failure where attempt_id = $1")
        .bind(attempt_id)
        .execute(&db.writer)
        .await
    {
        tracing::warn!(error = %e, "giving back a sign-in attempt");
    }
}

/// What a session remembers of the password it was signed in with, and of the user's session
/// epoch then (see [`crate::identity::sessions::end_all`]): a digest (never the hash itself),
/// compared on every request with the stored password's and epoch's.
pub fn credential_stamp(password_hash: &str, epoch: i64) -> String {
    use sha2::{Digest, Sha256};
    // Epoch 0 (no session ever ended since the epoch came in) keeps the earlier digest, so
    // that the upgrade signs nobody out.
    let digest = match epoch {
        0 => Sha256::digest(format!("keyward-session-credential-v1\0{password_hash}")),
        _ => Sha256::digest(format!(
            "keyward-session-credential-v2\0{password_hash}\0{epoch}"
        )),
    };
    hex::encode(&digest[..16])
}

/// The stamp of the user's stored password and session epoch now (`None`: no such user).
pub async fn current_stamp(db: &Db, user_id: &str) -> Result<Option<String>, AppError> {
    let row: Option<(String, i64)> =
        sqlx::query_as("select password_hash, session_epoch from app_user where user_id = $1")
            .bind(user_id)
            .fetch_optional(&db.reader)
            .await?;
    Ok(row.map(|(hash, epoch)| credential_stamp(&hash, epoch)))
}

/// Gives the caller's own session the stamp that an action ending the user's other sessions
/// (or changing the password) handed back, so that this session alone carries on. A session
/// impersonating the user holds its administrator's stamp, which such an action leaves as it
/// is. No stamp (the user is gone): nothing carries on.
///
/// The browser's device cookie, if it had one that counted, is issued anew under the new stamp
/// too: the change voided every earlier one ([`device_cookie`]), and this browser is the one
/// that made it. A browser without one gets none here: a session alone (a stolen cookie, say)
/// proves no password, and a device cookie is an allowance of password guesses.
pub async fn restamp(
    config: &Config,
    session: &tower_sessions::Session,
    stamp: Option<&str>,
) -> Result<(), AppError> {
    let Some(stamp) = stamp else { return Ok(()) };
    let impersonating = session
        .get::<String>(keys::IMPERSONATOR)
        .await
        .map_err(AppError::internal)?
        .is_some();
    if impersonating {
        return Ok(());
    }
    let before = session
        .get::<String>(keys::CREDENTIAL)
        .await
        .map_err(AppError::internal)?;
    session
        .insert(keys::CREDENTIAL, stamp)
        .await
        .map_err(AppError::internal)?;
    let user_id = session
        .get::<String>(keys::USER_ID)
        .await
        .map_err(AppError::internal)?;
    if let (Some(user_id), Some(before)) = (user_id, before) {
        let current = device_cookie::read(config)
            .await
            .filter(|d| d.trusted_for(&config.secret, &user_id, &before));
        if let Some(device) = current {
            device_cookie::renew(config, &device, stamp)?;
        }
    }
    Ok(())
}

/// Binds the session to the user under a fresh session id (no fixation). `stamp` is the
/// credential stamp of the password the sign-in was checked against.
pub async fn start_session(config: &Config, user_id: &str, stamp: &str) -> Result<(), AppError> {
    let session = crate::ssr::session().await?;
    session.cycle_id().await.map_err(AppError::internal)?;
    // The console's idle timeout (a passwordless start shortened it).
    session.set_expiry(Some(tower_sessions::Expiry::OnInactivity(
        time::Duration::seconds(config.session_idle.as_secs() as i64),
    )));
    // Nothing of an earlier state of this browser's session carries over.
    for key in [
        keys::PENDING_USER_ID,
        keys::PENDING_AT,
        keys::PENDING_CREDENTIAL,
        keys::TOTP_ENROLMENT,
        keys::TOTP_ENROLMENT_AT,
        keys::MUST_ENROL,
        keys::IMPERSONATOR,
        keys::IMPERSONATION_UNTIL,
        keys::ACTIVE_ORG,
        keys::WEBAUTHN_CEREMONY,
    ] {
        session
            .remove_value(key)
            .await
            .map_err(AppError::internal)?;
    }
    session
        .insert(keys::USER_ID, user_id)
        .await
        .map_err(AppError::internal)?;
    session
        .insert(keys::CREDENTIAL, stamp)
        .await
        .map_err(AppError::internal)?;
    session
        .insert(keys::SIGNED_IN_AT, now_ms())
        .await
        .map_err(AppError::internal)?;
    session
        .insert(keys::SIGN_IN_ID, new_id("sgn"))
        .await
        .map_err(AppError::internal)?;
    // Where and with what: for "My sessions".
    if let Some(ip) = crate::access::guard::source_ip(&config.trusted_proxies).await {
        session
            .insert(keys::IP, ip.to_string())
            .await
            .map_err(AppError::internal)?;
    }
    let agent: String = leptos::prelude::use_context::<http::request::Parts>()
        .and_then(|p| {
            p.headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok().map(str::to_owned))
        })
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(super::sessions::USER_AGENT_MAX)
        .collect();
    session
        .insert(keys::USER_AGENT, agent)
        .await
        .map_err(AppError::internal)?;
    Ok(())
}

/// Gives a signed-in session a new id, keeping what it holds (tower-sessions' `cycle_id`),
/// unless its stored row was deleted while this request ran. Ending a session by its handle
/// (its owner's "sign out" of it, an administrator's) deletes the row, and `cycle_id`, whose own
/// delete finds nothing then, would carry the data over into a new row and so revive the ended
/// session under a new id. Here the row is taken in one conditional statement first: gone
/// means ended, and the session is cleared and the caller told to sign in again. (An end by
/// handle that comes after this statement finds no row under the old id: the renewal came
/// first.)
pub async fn renew_signed_in_id(
    db: &Db,
    session: &tower_sessions::Session,
) -> Result<(), AppError> {
    if let Some(hash) = session_hash_of(session) {
        let taken = sqlx::query("delete from session where session_hash = $1")
            .bind(hash)
            .execute(&db.writer)
            .await?
            .rows_affected();
        if taken == 0 {
            session.flush().await.map_err(AppError::internal)?;
            return Err(AppError::unauthenticated());
        }
    }
    session.cycle_id().await.map_err(AppError::internal)
}

/// The stored hash of a console session, if it has an id yet.
pub fn session_hash_of(session: &tower_sessions::Session) -> Option<String> {
    session
        .id()
        .map(|id| crate::ssr::session_store::session_hash(&id))
}

/// The console's view of a user, `None` when the user is gone or disabled.
/// The signed-in user as the console sees them, with `active` (the session's choice, when
/// still a membership; else the first) as the active organization.
pub async fn current_user(
    db: &Db,
    user_id: &str,
    active: Option<&str>,
) -> Result<Option<SignedInUser>, AppError> {
    let row = sqlx::query("select user_id, email, display_name, time_zone, theme from app_user where user_id = $1 and status = 'active'")
        .bind(user_id)
        .fetch_optional(&db.reader)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let instance_permissions = crate::access::ssr::instance_permissions(db, user_id)
        .await?
        .into_iter()
        .map(|p| p.as_str().to_string())
        .collect();
    let organizations: Vec<super::OrgChoice> =
        crate::orgs::ssr::organizations_of(db, user_id, active)
            .await?
            .into_iter()
            .map(|o| super::OrgChoice {
                organization_id: o.organization_id,
                name: o.name,
            })
            .collect();
    let active_permissions = match organizations.first() {
        Some(o) => crate::access::ssr::effective_names(db, user_id, &o.organization_id)
            .await?
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Some(SignedInUser {
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        display_name: row.try_get("display_name")?,
        instance_permissions,
        organizations,
        active_permissions,
        time_zone: row.try_get("time_zone")?,
        theme: super::Theme::parse(&row.try_get::<String, _>("theme")?).unwrap_or_default(),
        must_enrol_two_factor: false,
        impersonation: None,
    }))
}

/// Device cookies (OWASP "device cookies" against lock-out): after a successful sign-in the
/// browser gets `<user_id>.<device_id>.<hmac>`; a later attempt carrying a valid one for the
/// same account is throttled on its own counter.
///
/// The MAC covers the account's credential stamp ([`super::credential_stamp`]: password and
/// session epoch) as of the sign-in: a password change, a reset, "sign out everywhere", adding
/// or removing a factor void every cookie issued before, so cookies collected while someone
/// else had the password (before the owner enrolled a factor, say) stop giving counters of
/// their own. The browser that made the change gets its cookie anew ([`super::restamp`]).
pub mod device_cookie {
    use crate::error::AppError;
    use crate::ssr::config::Config;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    /// A device cookie as presented: what it claims, to be checked against the account's
    /// credential stamp ([`Device::trusted_for`]) before it counts.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Device {
        pub user_id: String,
        pub device_id: String,
        tag: Vec<u8>,
    }

    impl Device {
        /// Whether it is a cookie issued to `user_id` under the credential stamp `stamp`
        /// (constant-time).
        pub fn trusted_for(&self, secret: &[u8; 32], user_id: &str, stamp: &str) -> bool {
            self.user_id == user_id
                && mac(secret, user_id, &self.device_id, stamp)
                    .verify_slice(&self.tag)
                    .is_ok()
        }
    }

    const MAX_AGE_SECONDS: i64 = 180 * 24 * 3600;

    fn mac(secret: &[u8; 32], user_id: &str, device_id: &str, stamp: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
        mac.update(b"keyward-device-v2\0");
        mac.update(user_id.as_bytes());
        mac.update(b"\0");
        mac.update(device_id.as_bytes());
        mac.update(b"\0");
        mac.update(stamp.as_bytes());
        mac
    }

    pub fn encode(secret: &[u8; 32], user_id: &str, device_id: &str, stamp: &str) -> String {
        let tag = hex::encode(
            mac(secret, user_id, device_id, stamp)
                .finalize()
                .into_bytes(),
        );
        format!("{user_id}.{device_id}.{tag}")
    }

    /// Parses a cookie value (checked later, against the account: [`Device::trusted_for`]).
    pub fn decode(value: &str) -> Option<Device> {
        let mut parts = value.split('.');
        let (user_id, device_id, tag) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || user_id.is_empty() || device_id.is_empty() {
            return None;
        }
        Some(Device {
            user_id: user_id.into(),
            device_id: device_id.into(),
            tag: hex::decode(tag).ok()?,
        })
    }

    /// The request's device cookie, if present and well-formed (not yet checked).
    pub async fn read(config: &Config) -> Option<Device> {
        let headers = leptos_axum::extract::<http::HeaderMap>().await.ok()?;
        let name = config.device_cookie_name();
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| decode(v))
    }

    /// Sets the device cookie for `user_id` under the credential stamp the browser just proved
    /// (`stamp`), keeping the current device id when it has a cookie that counts under it.
    pub fn issue(
        config: &Config,
        user_id: &str,
        stamp: &str,
        current: Option<&Device>,
    ) -> Result<(), AppError> {
        let device_id = match current {
            Some(d) if d.trusted_for(&config.secret, user_id, stamp) => d.device_id.clone(),
            _ => crate::ssr::db::new_id("dev"),
        };
        set(config, user_id, &device_id, stamp)
    }

    /// Re-issues a cookie that counted (checked by the caller) under the account's new
    /// credential stamp, same device.
    pub fn renew(config: &Config, device: &Device, stamp: &str) -> Result<(), AppError> {
        set(config, &device.user_id, &device.device_id, stamp)
    }

    fn set(config: &Config, user_id: &str, device_id: &str, stamp: &str) -> Result<(), AppError> {
        let secure = if config.secure_cookies() {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{}={}; Path=/; Max-Age={MAX_AGE_SECONDS}; HttpOnly; SameSite=Strict{secure}",
            config.device_cookie_name(),
            encode(&config.secret, user_id, device_id, stamp)
        );
        if let Some(options) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            let value = http::HeaderValue::from_str(&cookie).map_err(AppError::internal)?;
            options.append_header(http::header::SET_COOKIE, value);
        }
        Ok(())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trip_and_tamper() {
            let secret = [7u8; 32];
            let v = encode(&secret, "usr_a", "dev_b", "stamp1");
            let d = decode(&v).unwrap();
            assert_eq!(
                (d.user_id.as_str(), d.device_id.as_str()),
                ("usr_a", "dev_b")
            );
            assert!(d.trusted_for(&secret, "usr_a", "stamp1"));
            // Another secret, account or credential stamp (a password change, sessions
            // ended): not trusted.
            assert!(!d.trusted_for(&[8u8; 32], "usr_a", "stamp1"));
            assert!(!d.trusted_for(&secret, "usr_c", "stamp1"));
            assert!(!d.trusted_for(&secret, "usr_a", "stamp2"));
            let forged = decode(&v.replace("usr_a", "usr_c")).unwrap();
            assert!(!forged.trusted_for(&secret, "usr_c", "stamp1"));
            assert_eq!(decode("garbage"), None);
            assert_eq!(decode("a.b.nothex"), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(validate_email("a@b.co").is_ok());
        assert!(validate_email(" Ann@Example.org ").is_ok());
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@.co",
            "a b@c.co",
            "a@b@c.co",
            "a@b.co.",
            "x@deleted.invalid",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
        assert_eq!(normalize_email(" Ann@Example.ORG "), "ann@example.org");
    }

    #[test]
    fn display_names() {
        assert_eq!(validate_display_name("  Ann ").unwrap(), "Ann");
        assert!(validate_display_name("   ").is_err());
        assert!(validate_display_name(&"x".repeat(101)).is_err());
    }
}
