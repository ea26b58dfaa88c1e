//! Two-factor authentication (server only): TOTP (RFC 6238) and recovery codes, the second
//! sign-in step, and the organization policy "require 2FA".
//!
//! - **Seeds are never stored.** A factor stores a random salt; its seed is
//!   `HMAC-SHA-256(server secret, "keyward-totp-v1" ‖ user ‖ salt)` cut to 160 bits, so a copy
//!   of the database alone cannot produce codes (rotating the server secret voids every
//!   factor: users sign in with a recovery code and enrol again).
//! - **Each code once.** A code is accepted for the step before, the current one or the one
//!   after (±30 s of clock drift), and only for a step later than the last accepted one: one
//!   conditional update decides, so two parallel sign-ins with the same code cannot both pass.
//! - **Recovery codes** (ten, single use) are stored as `HMAC(server secret, user ‖ code)`; a
//!   use is one conditional delete.
//! - **Enrolment** starts with the password (re-authentication) and keeps the new salt in the
//!   session until a code from the app confirms it: nothing is written before, and another
//!   session cannot confirm it. Adding or removing a factor ends the user's other sessions.
//! - **Sign-in**: after the password, a user with a factor holds only a *pending* session (no
//!   user id: every guarded call refuses it) for five minutes, until a code or a recovery code
//!   completes it. At most [`WRONG_CODES_PER_HOUR`] wrong codes per account in a sliding hour
//!   (a trusted browser has a counter of its own, so someone who has the password cannot lock
//!   the owner out), and the owner is emailed (once an hour) that their password was right
//!   but the code was not.
//! - **Required by an organization**: a member without a factor is signed in, but the session
//!   can only enrol (and sign out) until it has one.

use super::sessions::Why;
use crate::error::{AppError, ErrorCode};
use crate::ssr::config::Config;
use crate::ssr::db::{now_ms, Db};
use crate::ssr::events::{self, Event};
use crate::ssr::keys;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tower_sessions::Session;

/// A TOTP step, in seconds.
pub const STEP_SECONDS: i64 = 30;
/// How long the second sign-in step waits for its code.
pub const PENDING_MS: i64 = 5 * 60_000;
/// How long an enrolment waits for its confirming code.
pub const ENROLMENT_MS: i64 = 10 * 60_000;
/// Recovery codes issued at a time.
pub const RECOVERY_CODES: usize = 10;
/// Wrong codes allowed per account in a sliding hour (each guess has three chances in a
/// million: ±1 step), counted per trusted browser like passwords.
pub const WRONG_CODES_PER_HOUR: i64 = 10;
/// The `device_id` under which wrong second-factor codes are counted in `sign_in_failure` (a
/// device cookie's ids start with `dev_`, so it cannot collide).
const SECOND_FACTOR_COUNTER: &str = "second-factor";
const ISSUER: &str = "Keyward";

/// The seed of a factor: never stored, derived from the server secret.
pub fn seed(secret: &[u8; 32], user_id: &str, salt: &str) -> [u8; 20] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    mac.update(b"keyward-totp-v1\0");
    mac.update(user_id.as_bytes());
    mac.update(b"\0");
    mac.update(salt.as_bytes());
    let full = mac.finalize().into_bytes();
    let mut seed = [0u8; 20];
    seed.copy_from_slice(&full[..20]);
    seed
}

/// HOTP (RFC 4226): six digits for `counter`.
pub fn hotp(seed: &[u8], counter: u64) -> u32 {
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(seed).expect("any key length");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = (h[19] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    binary % 1_000_000
}

/// The code an authenticator app shows for `step`.
pub fn code_at(seed: &[u8], step: i64) -> String {
    format!("{:06}", hotp(seed, step as u64))
}

/// The step a code matches: one of `now_step - 1 ..= now_step + 1` later than `last_step`,
/// compared in constant time; `None` when the code is malformed, wrong or already used.
pub fn matching_step(seed: &[u8], code: &str, now_step: i64, last_step: i64) -> Option<i64> {
    use subtle::ConstantTimeEq;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Every candidate is computed, so the time does not tell which one matched.
    let mut found = None;
    for step in [now_step - 1, now_step, now_step + 1] {
        let equal: bool = code_at(seed, step).as_bytes().ct_eq(code.as_bytes()).into();
        if equal && step > last_step && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The current step.
pub fn step_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(1000 * STEP_SECONDS)
}

/// The secret as authenticator apps take it (base32, no padding).
pub fn secret_text(seed: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(seed)
}

/// The `otpauth://` URI a QR code carries.
pub fn otpauth_uri(seed: &[u8], account: &str) -> String {
    let label: String =
        url::form_urlencoded::byte_serialize(format!("{ISSUER}:{account}").as_bytes()).collect();
    format!(
        "otpauth://totp/{label}?secret={}&issuer={ISSUER}&algorithm=SHA1&digits=6&period={STEP_SECONDS}",
        secret_text(seed)
    )
}

/// The QR code of `uri` as an SVG document (drawn here: no network, no image library).
pub fn qr_svg(uri: &str) -> Result<String, AppError> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(AppError::internal)?;
    Ok(code
        .render::<svg::Color>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

/// A recovery code as stored.
fn recovery_hash(secret: &[u8; 32], user_id: &str, code: &str) -> String {
    let normalized: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    mac.update(b"keyward-recovery-v1\0");
    mac.update(user_id.as_bytes());
    mac.update(b"\0");
    mac.update(normalized.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Ten new recovery codes (`xxxxx-xxxxx`, 50 random bits each, no look-alike characters).
fn new_recovery_codes() -> Vec<String> {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut code: String = (0..10)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
                .collect();
            code.insert(5, '-');
            code
        })
        .collect()
}

/// Replaces the user's recovery codes with new ones, in the caller's transaction, which holds
/// the account's row lock ([`crate::ssr::db::lock_user`], taken first): two regenerations at
/// once on PostgreSQL would otherwise each delete what they saw and insert their own set (20
/// valid codes). Returns them (shown once).
async fn issue_recovery_codes(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    secret: &[u8; 32],
    user_id: &str,
    now: i64,
) -> Result<Vec<String>, AppError> {
    sqlx::query("delete from recovery_code where user_id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    let codes = new_recovery_codes();
    for code in &codes {
        sqlx::query(
            "insert into recovery_code (user_id, code_hash, created_at) values ($1, $2, $3)",
        )
        .bind(user_id)
        .bind(recovery_hash(secret, user_id, code))
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(codes)
}

/// How many second factors user `$1` has: an authenticator app and passkeys.
pub const FACTOR_COUNT: &str = "select (select count(*) from totp_factor t where t.user_id = $1)
     + (select count(*) from passkey p where p.user_id = $1)";

/// Whether the user has a second factor (an authenticator app or a passkey).
pub async fn has_factor(db: &Db, user_id: &str) -> Result<bool, AppError> {
    let n: i64 = sqlx::query_scalar(FACTOR_COUNT)
        .bind(user_id)
        .fetch_one(&db.writer)
        .await?;
    Ok(n > 0)
}

/// Whether the user has an authenticator app set up.
async fn has_totp(db: &Db, user_id: &str) -> Result<bool, AppError> {
    let n: i64 = sqlx::query_scalar("select count(*) from totp_factor where user_id = $1")
        .bind(user_id)
        .fetch_one(&db.writer)
        .await?;
    Ok(n > 0)
}

/// The organizations (names) whose policy requires the user to have a second factor.
pub async fn required_by(db: &Db, user_id: &str) -> Result<Vec<String>, AppError> {
    Ok(sqlx::query_scalar(
        "select o.name from membership m
         join organization o on o.organization_id = m.organization_id
         join organization_policy p on p.organization_id = m.organization_id
         where m.user_id = $1 and p.require_two_factor <> 0 order by o.name",
    )
    .bind(user_id)
    .fetch_all(&db.reader)
    .await?)
}

/// The user's two-factor state, for the profile and the enrolment page.
pub async fn status(
    db: &Db,
    session: &Session,
    user_id: &str,
) -> Result<super::TwoFactorStatus, AppError> {
    let row: Option<(i64,)> =
        sqlx::query_as("select confirmed_at from totp_factor where user_id = $1")
            .bind(user_id)
            .fetch_optional(&db.reader)
            .await?;
    let left: i64 = sqlx::query_scalar("select count(*) from recovery_code where user_id = $1")
        .bind(user_id)
        .fetch_one(&db.reader)
        .await?;
    Ok(super::TwoFactorStatus {
        totp_enabled_at: row.map(|(at,)| crate::ssr::db::rfc3339(at)),
        recovery_codes_left: left,
        required_by: required_by(db, user_id).await?,
        must_enrol: must_enrol(session).await?,
    })
}

/// Whether this session may only enrol a second factor (an organization requires one).
pub async fn must_enrol(session: &Session) -> Result<bool, AppError> {
    Ok(session
        .get::<bool>(keys::MUST_ENROL)
        .await
        .map_err(AppError::internal)?
        .unwrap_or(false))
}

/// Whether an organization of the user's requires a second factor they do not have (one
/// query); the session's flag ([`must_enrol`]) is set or cleared to match.
pub async fn hold_to_enrolment(
    db: &Db,
    session: &Session,
    user_id: &str,
) -> Result<bool, AppError> {
    let required: i64 = sqlx::query_scalar(&format!(
        "select count(*) from membership m
         join organization_policy p on p.organization_id = m.organization_id
         where m.user_id = $1 and p.require_two_factor <> 0 and ({FACTOR_COUNT}) = 0"
    ))
    .bind(user_id)
    .fetch_one(&db.reader)
    .await?;
    let required = required > 0;
    if required != must_enrol(session).await? {
        if required {
            session.insert(keys::MUST_ENROL, true).await
        } else {
            session.remove_value(keys::MUST_ENROL).await.map(|_| ())
        }
        .map_err(AppError::internal)?;
    }
    Ok(required)
}

/// After a factor was removed: when an organization of the user's requires one and none is
/// left, holds this session to enrolling a new one.
pub async fn hold_to_enrolment_if_required(
    db: &Db,
    session: &Session,
    user_id: &str,
) -> Result<(), AppError> {
    if has_factor(db, user_id).await? || required_by(db, user_id).await?.is_empty() {
        return Ok(());
    }
    session
        .insert(keys::MUST_ENROL, true)
        .await
        .map_err(AppError::internal)
}

/// What the second step can take for the sign-in waiting in this session.
pub async fn second_factor_options(
    db: &Db,
    session: &Session,
) -> Result<super::SecondFactorChoices, AppError> {
    let Some(user_id) = pending_user(session).await? else {
        return Ok(super::SecondFactorChoices::default());
    };
    Ok(super::SecondFactorChoices {
        code: has_totp(db, &user_id).await?,
        passkey: super::passkeys::count(db, &user_id).await? > 0,
    })
}

/// Where a correct password leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterPassword {
    /// Signed in.
    SignedIn,
    /// The second step waits for a code (`/sign-in/verify`).
    SecondFactor,
    /// Signed in, but only to enrol a factor an organization requires (`/two-factor`).
    MustEnrol,
}

impl AfterPassword {
    /// The page the browser goes to next.
    pub fn next_page(self) -> &'static str {
        match self {
            AfterPassword::SignedIn => "/",
            AfterPassword::SecondFactor => "/sign-in/verify",
            AfterPassword::MustEnrol => "/two-factor",
        }
    }
}

/// Decides what a correct password for `user_id` leads to, and sets the session up for it: a
/// pending session (new id, no user) for a user with a factor; else a signed-in session,
/// restricted to enrolment when an organization requires a factor.
pub async fn after_password(
    db: &Db,
    config: &Config,
    session: &Session,
    who: &super::ssr::Authenticated,
) -> Result<AfterPassword, AppError> {
    let user_id = who.user_id.as_str();
    if has_factor(db, user_id).await? {
        session.cycle_id().await.map_err(AppError::internal)?;
        forget(
            session,
            &[
                keys::USER_ID,
                keys::MUST_ENROL,
                keys::IMPERSONATOR,
                keys::IMPERSONATION_UNTIL,
            ],
        )
        .await?;
        session
            .insert(keys::PENDING_USER_ID, user_id)
            .await
            .map_err(AppError::internal)?;
        session
            .insert(keys::PENDING_AT, now_ms())
            .await
            .map_err(AppError::internal)?;
        session
            .insert(keys::PENDING_CREDENTIAL, &who.stamp)
            .await
            .map_err(AppError::internal)?;
        return Ok(AfterPassword::SecondFactor);
    }
    super::ssr::start_session(config, user_id, &who.stamp).await?;
    if required_by(db, user_id).await?.is_empty() {
        session
            .remove_value(keys::MUST_ENROL)
            .await
            .map_err(AppError::internal)?;
        return Ok(AfterPassword::SignedIn);
    }
    session
        .insert(keys::MUST_ENROL, true)
        .await
        .map_err(AppError::internal)?;
    Ok(AfterPassword::MustEnrol)
}

/// The session's value under `key` if it was stored (with its time under `at_key`) less than
/// `max_ms` ago; `None` when absent or older.
async fn fresh_value(
    session: &Session,
    key: &str,
    at_key: &str,
    max_ms: i64,
) -> Result<Option<String>, AppError> {
    let value: Option<String> = session.get(key).await.map_err(AppError::internal)?;
    let at: i64 = session
        .get(at_key)
        .await
        .map_err(AppError::internal)?
        .unwrap_or_default();
    Ok(value.filter(|_| now_ms() - at < max_ms))
}

/// Removes `names` from the session.
pub(crate) async fn forget(session: &Session, names: &[&str]) -> Result<(), AppError> {
    for name in names {
        session
            .remove_value(name)
            .await
            .map_err(AppError::internal)?;
    }
    Ok(())
}

/// The user a pending sign-in waits for, if it has not expired (an expired one is cleared).
pub async fn pending_user(session: &Session) -> Result<Option<String>, AppError> {
    let user = fresh_value(session, keys::PENDING_USER_ID, keys::PENDING_AT, PENDING_MS).await?;
    let stale = user.is_none()
        && session
            .get::<String>(keys::PENDING_USER_ID)
            .await
            .map_err(AppError::internal)?
            .is_some();
    if stale {
        clear_pending(session).await?;
    }
    Ok(user)
}

async fn clear_pending(session: &Session) -> Result<(), AppError> {
    forget(
        session,
        &[
            keys::PENDING_USER_ID,
            keys::PENDING_AT,
            keys::PENDING_CREDENTIAL,
        ],
    )
    .await
}

/// Which factor completed a sign-in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Used {
    Totp,
    RecoveryCode,
    Passkey,
}

/// What the second step offers as proof.
#[derive(Clone, Copy, Debug)]
pub enum Proof<'a> {
    /// A code from the app, or a recovery code.
    Code(&'a str),
    /// A passkey's answer (`PublicKeyCredential` as JSON) to this session's challenge.
    Passkey(&'a str),
}

/// Accepts a TOTP code (six digits) or else a recovery code for `user_id`, each at most once,
/// in `tx`: the code is spent only if the transaction commits. `None` when neither matches.
pub async fn check_code(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    secret: &[u8; 32],
    user_id: &str,
    code: &str,
    now: i64,
) -> Result<Option<Used>, AppError> {
    let factor: Option<(String, i64)> =
        sqlx::query_as("select salt, last_step from totp_factor where user_id = $1")
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((salt, last_step)) = factor else {
        return Ok(None);
    };
    if let Some(step) = matching_step(&seed(secret, user_id, &salt), code, step_of(now), last_step)
    {
        // Conditional: of two requests with the same code, one moves the step and passes.
        let moved = sqlx::query(
            "update totp_factor set last_step = $2 where user_id = $1 and salt = $3 and last_step < $2",
        )
        .bind(user_id)
        .bind(step)
        .bind(&salt)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        return Ok((moved == 1).then_some(Used::Totp));
    }
    let used = sqlx::query("delete from recovery_code where user_id = $1 and code_hash = $2")
        .bind(user_id)
        .bind(recovery_hash(secret, user_id, code))
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok((used == 1).then_some(Used::RecoveryCode))
}

/// The second sign-in step: checks the proof for the pending user (through the sign-in
/// allowance), and on success signs the session in. Returns the user and the page to go to.
pub async fn complete_sign_in(
    db: &Db,
    config: &Config,
    session: &Session,
    proof: Proof<'_>,
    device: Option<&super::ssr::device_cookie::Device>,
    source_ip: Option<&str>,
) -> Result<(String, String, &'static str), AppError> {
    let expired = || {
        AppError::new(
            ErrorCode::Unauthenticated,
            "your sign-in expired; enter your email and password again",
        )
    };
    let Some(user_id) = pending_user(session).await? else {
        return Err(expired());
    };
    // The stamp of the password the first step checked (a sign-in begun before sessions
    // carried one has none: it starts again rather than spend a code on a dead session).
    let Some(stamp) = session
        .get::<String>(keys::PENDING_CREDENTIAL)
        .await
        .map_err(AppError::internal)?
    else {
        return Err(expired());
    };
    // Still stored (not ended meanwhile by a password change or "sign out everywhere"):
    // checked before a code is spent; the success transaction checks it again.
    let hash = crate::identity::ssr::session_hash_of(session).unwrap_or_default();
    let stored: Option<i64> =
        sqlx::query_scalar("select 1 as one from session where session_hash = $1 and pending = 1")
            .bind(&hash)
            .fetch_optional(&db.writer)
            .await?;
    if stored.is_none() {
        return Err(expired());
    }
    let counter = match device.filter(|d| d.trusted_for(&config.secret, &user_id, &stamp)) {
        Some(d) => format!("{SECOND_FACTOR_COUNTER}:{}", d.device_id),
        None => SECOND_FACTOR_COUNTER.to_string(),
    };
    let Some(attempt) = super::ssr::reserve_attempt(
        db,
        &user_id,
        Some(&counter),
        WRONG_CODES_PER_HOUR.min(config.sign_in_failures_per_hour),
    )
    .await?
    else {
        tracing::warn!(user_id, "second factor throttled");
        return Err(AppError::new(
            ErrorCode::RateLimited,
            "too many wrong codes; try again later, or ask an administrator",
        ));
    };
    let now = now_ms();
    // A disabled account signs in with nothing.
    let active: Option<String> = sqlx::query_scalar(
        "select user_id from app_user where user_id = $1 and status = 'active' and deleted_at is null",
    )
    .bind(&user_id)
    .fetch_optional(&db.writer)
    .await?;
    // A code is spent in the transaction that signs in: if that fails (the waiting sign-in
    // ended meanwhile, a collision), the code stays unspent. (A passkey's check writes through
    // the pool, so it runs before the transaction: SQLite has one writer connection.)
    let mut tx;
    let used = match (active, proof) {
        (None, _) => {
            tx = db.writer.begin().await?;
            None
        }
        (Some(_), Proof::Code(code)) => {
            tx = db.writer.begin().await?;
            check_code(&mut tx, &config.secret, &user_id, code, now).await?
        }
        (Some(_), Proof::Passkey(credential)) => {
            let passed =
                super::passkeys::check_second_factor(db, config, session, &user_id, credential)
                    .await?;
            tx = db.writer.begin().await?;
            passed.then_some(Used::Passkey)
        }
    };
    let Some(used) = used else {
        warn_of_wrong_code(&mut tx, config, &user_id, now).await?;
        events::record(
            &mut tx,
            Event {
                kind: "user.second_factor_failed",
                organization_id: None,
                actor_user_id: None,
                subject_id: Some(&user_id),
                source_ip,
                data: serde_json::json!({}),
            },
        )
        .await?;
        tx.commit().await?;
        return Err(match proof {
            Proof::Code(_) => AppError::invalid(
                "code",
                "that code is not right (or was already used); try the next one",
            ),
            Proof::Passkey(_) => AppError::invalid(
                "credential",
                "that passkey was not accepted for this account; try again or enter a code",
            ),
        });
    };
    match sign_in_with(tx, config, &user_id, &hash, &attempt, used, source_ip, now).await {
        // The proof was right: a transaction that could not finish (a collision told to
        // retry) gives the attempt back, so the retry does not cost one of the hour's few.
        // (A wrong proof's attempt stays counted, whatever happens after.)
        Err(e) if e.is_server_fault() => {
            super::ssr::give_back_attempt(db, &attempt).await;
            return Err(e);
        }
        Err(e) => return Err(e),
        Ok(true) => {}
        Ok(false) => return Err(expired()),
    }
    clear_pending(session).await?;
    super::ssr::start_session(config, &user_id, &stamp).await?;
    session
        .remove_value(keys::MUST_ENROL)
        .await
        .map_err(AppError::internal)?;
    Ok((user_id, stamp, AfterPassword::SignedIn.next_page()))
}

/// The second step's success transaction: ends the waiting sign-in (conditionally), spends
/// the attempt's reservation, records the sign-in. `Ok(false)` when the waiting sign-in was
/// ended meanwhile.
#[allow(clippy::too_many_arguments)]
async fn sign_in_with(
    mut tx: sqlx::Transaction<'static, sqlx::Any>,
    config: &Config,
    user_id: &str,
    hash: &str,
    attempt: &str,
    used: Used,
    source_ip: Option<&str>,
    now: i64,
) -> Result<bool, AppError> {
    // Conditional on the waiting sign-in still being stored: a password change (or anything
    // else ending the user's sessions) that deleted it while this request was checking the
    // code wins, and the sign-in begun with the old password does not finish.
    let waiting = sqlx::query("delete from session where session_hash = $1 and pending = 1")
        .bind(hash)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if waiting != 1 {
        return Ok(false);
    }
    sqlx::query("delete from sign_in_failure where attempt_id = $1")
        .bind(attempt)
        .execute(&mut *tx)
        .await?;
    let factor = match used {
        Used::Totp => "totp",
        Used::RecoveryCode => "recovery_code",
        Used::Passkey => "passkey",
    };
    events::record(
        &mut tx,
        Event {
            kind: "user.signed_in",
            organization_id: None,
            actor_user_id: Some(user_id),
            subject_id: Some(user_id),
            source_ip,
            data: serde_json::json!({ "second_factor": factor }),
        },
    )
    .await?;
    if used == Used::RecoveryCode {
        notify_recovery_code_used(&mut tx, config, user_id, now).await?;
    }
    tx.commit().await?;
    Ok(true)
}

/// The second step as a server function takes it: the per-address allowance, the proof,
/// then the device cookie and the way on.
pub async fn second_step(
    caller: &crate::access::guard::Caller,
    proof: Proof<'_>,
) -> Result<(), AppError> {
    let state = &caller.state;
    state.check_auth_attempt(caller.source_ip)?;
    let device = super::ssr::device_cookie::read(&state.config).await;
    let (user_id, stamp, next) = complete_sign_in(
        &state.db,
        &state.config,
        &caller.session,
        proof,
        device.as_ref(),
        caller.source_ip_text().as_deref(),
    )
    .await?;
    super::ssr::device_cookie::issue(&state.config, &user_id, &stamp, device.as_ref())?;
    leptos_axum::redirect(next);
    Ok(())
}

/// Tells the user by email (at most once an hour) that someone had their password but not the
/// code.
async fn warn_of_wrong_code(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    config: &Config,
    user_id: &str,
    now: i64,
) -> Result<(), AppError> {
    let email: Option<String> =
        sqlx::query_scalar("select email from app_user where user_id = $1 and status = 'active'")
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some(email) = email else { return Ok(()) };
    let origin = config.link_base();
    crate::notify::ssr::enqueue_email(
        tx,
        &email,
        "A sign-in with your password failed at the second step",
        &format!("Someone entered your Keyward password correctly, then a wrong two-factor code. If it was not you, your password is known to someone else: change it at once at {origin}/profile.\n"),
        &format!("2fa-wrong:{user_id}:{}", now / 3_600_000),
        now,
    )
    .await
}

/// Tells the user by email that a recovery code signed them in, and how many are left.
async fn notify_recovery_code_used(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    config: &Config,
    user_id: &str,
    now: i64,
) -> Result<(), AppError> {
    let (email, left): (String, i64) = sqlx::query_as(
        "select email, (select count(*) from recovery_code r where r.user_id = u.user_id)
         from app_user u where user_id = $1",
    )
    .bind(user_id)
    .fetch_one(&mut **tx)
    .await?;
    let origin = config.link_base();
    crate::notify::ssr::enqueue_email(
        tx,
        &email,
        "A recovery code was used to sign in",
        &format!("A recovery code was just used to sign in to your Keyward account. {left} recovery code(s) are left; make new ones at {origin}/profile.\n\nIf it was not you, change your password at once and tell an administrator.\n"),
        &format!("recovery-used:{user_id}:{now}"),
        now,
    )
    .await
}

/// A new factor's details, shown once: scanned or typed into the app, then confirmed.
pub async fn start_enrolment(
    db: &Db,
    config: &Config,
    session: &Session,
    user_id: &str,
) -> Result<super::TotpEnrolment, AppError> {
    if has_totp(db, user_id).await? {
        return Err(AppError::conflict(
            "code",
            "an authenticator app is already set up; turn it off first to use another app",
        ));
    }
    let salt = crate::ssr::db::new_id("tfs");
    let email: String = sqlx::query_scalar("select email from app_user where user_id = $1")
        .bind(user_id)
        .fetch_one(&db.reader)
        .await?;
    session
        .insert(keys::TOTP_ENROLMENT, &salt)
        .await
        .map_err(AppError::internal)?;
    session
        .insert(keys::TOTP_ENROLMENT_AT, now_ms())
        .await
        .map_err(AppError::internal)?;
    let seed = seed(&config.secret, user_id, &salt);
    let uri = otpauth_uri(&seed, &email);
    use base64::Engine;
    let qr_image = format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(qr_svg(&uri)?)
    );
    Ok(super::TotpEnrolment {
        secret: secret_text(&seed),
        qr_image,
        uri,
    })
}

/// Confirms this session's enrolment with a code from the app: stores the factor, issues
/// recovery codes (returned, shown once), ends the user's other sessions and lifts the
/// enrolment restriction. The caller gives the session a new id.
pub async fn confirm_enrolment(
    db: &Db,
    config: &Config,
    session: &Session,
    user_id: &str,
    code: &str,
    source_ip: Option<&str>,
) -> Result<Vec<String>, AppError> {
    let now = now_ms();
    let salt = fresh_value(
        session,
        keys::TOTP_ENROLMENT,
        keys::TOTP_ENROLMENT_AT,
        ENROLMENT_MS,
    )
    .await?;
    let Some(salt) = salt else {
        return Err(AppError::invalid(
            "code",
            "start again: the set-up expired or was not started in this session",
        ));
    };
    let Some(step) = matching_step(&seed(&config.secret, user_id, &salt), code, step_of(now), 0)
    else {
        return Err(AppError::invalid(
            "code",
            "that code is not right; check the app's clock and enter the current code",
        ));
    };
    let mut tx = db.writer.begin().await?;
    // The account first, as every change of its factors takes it (see `issue_recovery_codes`).
    crate::ssr::db::lock_user(&mut tx, user_id).await?;
    let inserted = sqlx::query(
        "insert into totp_factor (user_id, salt, last_step, confirmed_at) values ($1, $2, $3, $4)",
    )
    .bind(user_id)
    .bind(&salt)
    .bind(step)
    .bind(now)
    .execute(&mut *tx)
    .await;
    if let Err(sqlx::Error::Database(e)) = &inserted {
        if e.is_unique_violation() {
            return Err(AppError::conflict(
                "code",
                "two-factor authentication is already on",
            ));
        }
    }
    inserted?;
    let codes = issue_recovery_codes(&mut tx, &config.secret, user_id, now).await?;
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
            kind: "user.two_factor_enabled",
            organization_id: None,
            actor_user_id: Some(user_id),
            subject_id: Some(user_id),
            source_ip,
            data: serde_json::json!({ "factor": "totp", "sessions_ended": ended.count }),
        },
    )
    .await?;
    tx.commit().await?;
    super::ssr::restamp(config, session, ended.stamp.as_deref()).await?;
    forget(
        session,
        &[
            keys::TOTP_ENROLMENT,
            keys::TOTP_ENROLMENT_AT,
            keys::MUST_ENROL,
        ],
    )
    .await?;
    Ok(codes)
}

/// Turns two-factor authentication off (the caller re-authenticated): the factor and the
/// recovery codes go, and the user's other sessions end. The caller gives the session a new
/// id and the returned credential stamp.
pub async fn disable(
    db: &Db,
    user_id: &str,
    current_session: Option<&str>,
    source_ip: Option<&str>,
) -> Result<Option<String>, AppError> {
    let mut tx = db.writer.begin().await?;
    // The lock recovery-code regeneration takes (see `regenerate_recovery_codes`).
    crate::ssr::db::lock_user(&mut tx, user_id).await?;
    let gone = sqlx::query("delete from totp_factor where user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if gone == 0 {
        return Err(AppError::conflict(
            "current_password",
            "two-factor authentication is not on",
        ));
    }
    sqlx::query("delete from recovery_code where user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    let ended =
        super::sessions::end_all(&mut tx, user_id, current_session, Why::CredentialsChanged)
            .await?;
    events::record(
        &mut tx,
        Event {
            kind: "user.two_factor_disabled",
            organization_id: None,
            actor_user_id: Some(user_id),
            subject_id: Some(user_id),
            source_ip,
            data: serde_json::json!({ "factor": "totp", "sessions_ended": ended.count }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(ended.stamp)
}

/// New recovery codes (the caller re-authenticated); the old ones stop working.
pub async fn regenerate_recovery_codes(
    db: &Db,
    secret: &[u8; 32],
    user_id: &str,
    source_ip: Option<&str>,
) -> Result<Vec<String>, AppError> {
    let now = now_ms();
    let mut tx = db.writer.begin().await?;
    // Under the account's row lock, which turning the app off takes too: codes issued as the
    // app goes would outlive it.
    crate::ssr::db::lock_user(&mut tx, user_id).await?;
    // Recovery codes stand in for the authenticator app (a lost passkey is another passkey's
    // or an administrator's matter).
    let app: Option<String> =
        sqlx::query_scalar("select user_id from totp_factor where user_id = $1")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
    if app.is_none() {
        return Err(AppError::conflict(
            "current_password",
            "set up an authenticator app first",
        ));
    }
    let codes = issue_recovery_codes(&mut tx, secret, user_id, now).await?;
    events::record(
        &mut tx,
        Event {
            kind: "user.recovery_codes_regenerated",
            organization_id: None,
            actor_user_id: Some(user_id),
            subject_id: Some(user_id),
            source_ip,
            data: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1, with the RFC's 20-byte seed (8 digits there; the last six
    /// of each are ours).
    #[test]
    fn rfc_6238_vectors() {
        let seed = b"12345678901234567890";
        for (time, eight) in [
            (59_i64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(seed, time / STEP_SECONDS), eight[2..], "t={time}");
        }
    }

    #[test]
    fn window_and_single_use() {
        let seed = [3u8; 20];
        let now = 1_000_000;
        for delta in [-1, 0, 1] {
            let code = code_at(&seed, now + delta);
            assert_eq!(matching_step(&seed, &code, now, 0), Some(now + delta));
            // Used once: a step at or before the last accepted one is refused.
            assert_eq!(matching_step(&seed, &code, now, now + delta), None);
        }
        for far in [-2, 2, 10] {
            assert_eq!(
                matching_step(&seed, &code_at(&seed, now + far), now, 0),
                None
            );
        }
        let code = code_at(&seed, now);
        assert_eq!(
            matching_step(&seed, &format!("{} {}", &code[..3], &code[3..]), now, 0),
            Some(now)
        );
        for bad in ["", "12345", "1234567", "abcdef", "１２３４５６"] {
            assert_eq!(matching_step(&seed, bad, now, 0), None, "{bad}");
        }
    }

    #[test]
    fn seeds_depend_on_the_secret_user_and_salt() {
        let a = seed(&[1; 32], "usr_a", "s1");
        assert_ne!(a, seed(&[2; 32], "usr_a", "s1"));
        assert_ne!(a, seed(&[1; 32], "usr_b", "s1"));
        assert_ne!(a, seed(&[1; 32], "usr_a", "s2"));
        assert_eq!(a, seed(&[1; 32], "usr_a", "s1"));
        assert_eq!(secret_text(&a).len(), 32);
        let uri = otpauth_uri(&a, "ann@example.org");
        assert!(
            uri.starts_with("otpauth://totp/Keyward%3Aann%40example.org?secret="),
            "{uri}"
        );
        assert!(qr_svg(&uri).unwrap().starts_with("<?xml"));
    }

    #[test]
    fn recovery_codes_are_random_and_hash_loosely() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), RECOVERY_CODES);
        for c in &codes {
            assert_eq!(c.len(), 11);
            assert_eq!(c.as_bytes()[5], b'-');
        }
        let secret = [9u8; 32];
        let h = recovery_hash(&secret, "usr_a", "abcde-fghjk");
        assert_eq!(h, recovery_hash(&secret, "usr_a", " ABCDE FGHJK "));
        assert_ne!(h, recovery_hash(&secret, "usr_b", "abcde-fghjk"));
        assert_ne!(h, recovery_hash(&[8u8; 32], "usr_a", "abcde-fghjk"));
    }
}
