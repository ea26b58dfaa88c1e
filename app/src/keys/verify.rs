//! Verifying a presented key (server only): format and checksum, one indexed lookup by
//! keyed hash behind a short-lived memory cache, then status, expiry, IP allow-list and
//! endpoint rules; and recording its use off the request path.

/// SQL: the account behind key `$k` (a table alias) is off (disabled or deleted). The account
/// behind a key is the user whose personal organization holds it, or a personal token's
/// owner. A literal, for `concat!` into a statement.
macro_rules! account_behind_key_is_off {
    ($k:literal) => {
        concat!(
            "exists (select 1 from app_user u where (u.personal_organization_id = ",
            $k,
            ".organization_id or u.user_id = ",
            $k,
            ".owner_user_id) and (u.status <> 'active' or u.deleted_at is not null))"
        )
    };
}
pub(crate) use account_behind_key_is_off;

use super::format::{self, FormatError};
use super::rules::{endpoint_matches, ip_allowed, scope_permissions};
use super::signature::{self, SigningSecret};
use super::ssr::{effective_status, StoredStatus};
use super::{EndpointRule, KeyStatus, Scopes};
use crate::access::ssr::{KeyBounds, Principal};
use crate::access::Permissions;
use crate::error::{AppError, ErrorCode};
use crate::ssr::db::{now_ms, Db};
use crate::usage::window::Limit;
use ipnet::IpNet;
use sqlx::Row;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What verification knows about a key: enough to authorize a request, no secret.
#[derive(Clone, Debug)]
pub struct VerifiedKey {
    pub id: String,
    pub organization_id: String,
    pub owner_user_id: Option<String>,
    pub environment: String,
    pub status: StoredStatus,
    /// Waits for an approver: refused whatever its status.
    pub pending_approval: bool,
    pub scopes: Scopes,
    /// Its dynamic permissions, as stored (their requirements are added by the authorization
    /// core).
    pub dynamic: Vec<String>,
    /// What the scopes amount to, computed once per cache fill.
    pub permissions: Permissions,
    /// `false` when a stored restriction (IP allow-list, endpoint rules, scopes) cannot be
    /// read: the key is then refused, never treated as unrestricted.
    pub restrictions_readable: bool,
    /// Derived from the pepper and the key's salt, to check `Signature` headers.
    pub signing_secret: SigningSecret,
    /// The key's rate limit: its own override, else its plan's (the default plan without one).
    pub rate: Limit,
    /// Its expiry, IP allow-list, endpoint rules and signature requirement: what verification
    /// checks, and what the authorization core holds what it makes or changes inside (built
    /// once per cache fill).
    pub bounds: Arc<KeyBounds>,
}

impl VerifiedKey {
    /// The key as a principal of the authorization core.
    pub fn principal(&self) -> Principal {
        Principal::Key {
            key_id: self.id.clone(),
            organization_id: self.organization_id.clone(),
            owner_user_id: self.owner_user_id.clone(),
            scopes: self.permissions,
            dynamic: self.dynamic.clone(),
            bounds: self.bounds.clone(),
            rate: self.rate,
        }
    }
}

/// How to look a key up.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lookup<'a> {
    /// Read the database, not the cache: for calls that change keys or hand out secrets, so
    /// a key disabled a moment ago on another instance cannot act.
    pub fresh: bool,
    /// Only keys of this organization exist: any other answers exactly like an unknown key,
    /// whatever its status or restrictions (no probing of foreign keys).
    pub organization_id: Option<&'a str>,
}

/// Recently looked-up keys by hash (and misses), each kept for at most [`CACHE_TTL`]: a hot
/// key costs no database round trip, and a change made on another instance is seen within
/// that time. Changes made here clear the cache at once.
#[derive(Clone, Debug, Default)]
pub struct KeyCache {
    entries: Arc<Mutex<HashMap<Digest, CacheEntry>>>,
    /// When this instance last noted a use of each key.
    touched: Arc<Mutex<HashMap<String, Instant>>>,
    /// Uses noted since the key-use worker's last round: key id → when (ms).
    pending_use: Arc<Mutex<HashMap<String, i64>>>,
    /// Moves at every [`KeyCache::clear`]: a lookup that read the database before a clear
    /// does not put its (possibly older) answer back after it.
    generation: Arc<std::sync::atomic::AtomicU64>,
}

/// When an entry was fetched, and the key (`None`: no such key).
type CacheEntry = (Instant, Option<Arc<VerifiedKey>>);

/// A presented key's digest under one of the ways keys are stored: the cache's key, so that a
/// hit allocates nothing and hex-encodes nothing (the database stores the hex form).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Digest {
    algorithm: Algorithm,
    bytes: [u8; 32],
}

/// How a key's hash is stored (`api_key.hash_algorithm`): the one place its names are spelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Algorithm {
    /// Keys we issued or imported in plaintext: HMAC-SHA256 under the pepper.
    HmacSha256,
    /// Keys imported as a bare SHA-256 from another system.
    Sha256,
}

impl Algorithm {
    /// As stored in `api_key.hash_algorithm`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::Sha256 => "sha256",
        }
    }
}

pub const CACHE_TTL: Duration = Duration::from_secs(1);

impl KeyCache {
    /// The keys domain's cache, as boot plugged it into the state.
    pub fn of(state: &crate::ssr::AppState) -> Result<&KeyCache, AppError> {
        state.domains.get::<KeyCache>()
    }

    fn get(&self, digest: &Digest) -> Option<Option<Arc<VerifiedKey>>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(digest)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, k)| k.clone())
    }

    /// The generation to hand to [`KeyCache::put`]: read before the database is.
    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Keeps `key` unless the cache was cleared since `generation` was read (the answer may
    /// predate the change that cleared it).
    fn put(&self, generation: u64, digest: Digest, key: Option<Arc<VerifiedKey>>) {
        if let Ok(mut entries) = self.entries.lock() {
            if self.generation() != generation {
                return;
            }
            if entries.len() > 100_000 {
                entries.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
            }
            entries.insert(digest, (Instant::now(), key));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            // Under the lock: a `put` either lands before (and is cleared) or sees the move.
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            entries.clear();
        }
    }
}

/// Refuses a key that is not active, with the code that says why (`key_disabled`…).
pub fn require_usable(status: KeyStatus) -> Result<(), AppError> {
    match status {
        KeyStatus::Active => Ok(()),
        KeyStatus::Pending => Err(refusal(ErrorCode::KeyPendingApproval)),
        KeyStatus::Disabled => Err(refusal(ErrorCode::KeyDisabled)),
        KeyStatus::Revoked => Err(refusal(ErrorCode::KeyRevoked)),
        KeyStatus::Expired => Err(refusal(ErrorCode::KeyExpired)),
    }
}

/// Why a key was refused, as an error with a stable code.
pub fn refusal(code: ErrorCode) -> AppError {
    let message = match code {
        ErrorCode::KeyMissing => "send the key as Authorization: Bearer <key>",
        ErrorCode::KeyMalformed => "the key is malformed",
        ErrorCode::KeyBadChecksum => "the key's checksum does not match; check for a typo",
        ErrorCode::KeyUnknown => "unknown key",
        ErrorCode::KeyDisabled => "the key is disabled",
        ErrorCode::KeyRevoked => "the key is revoked",
        ErrorCode::KeyExpired => "the key has expired",
        ErrorCode::KeyPendingApproval => {
            "the key awaits approval by an administrator of its organization"
        }
        ErrorCode::IpNotAllowed => "this address is not in the key's IP allow-list",
        ErrorCode::EndpointNotAllowed => "the key may not call this endpoint",
        ErrorCode::SignatureMissing => {
            "this key requires a Signature header: t=<unix seconds>,v1=<hex HMAC-SHA256>"
        }
        ErrorCode::SignatureInvalid => {
            "the Signature header is malformed or does not match the request"
        }
        ErrorCode::SignatureStale => {
            "the signature's timestamp is more than 300 s from the server clock"
        }
        ErrorCode::SignatureReplayed => "this signature was already used; sign each request anew",
        ErrorCode::KeyRestrictionsInvalid => {
            "the key's stored restrictions cannot be read; an administrator must fix the key"
        }
        _ => "refused",
    };
    AppError::new(code, message)
}

async fn lookup(
    db: &Db,
    cache: &KeyCache,
    pepper: &[u8; 32],
    digest: Digest,
    fresh: bool,
) -> Result<Option<Arc<VerifiedKey>>, AppError> {
    if !fresh {
        if let Some(hit) = cache.get(&digest) {
            return Ok(hit);
        }
    }
    let generation = cache.generation();
    // A fresh read goes to the writer: on SQLite it sees every commit at once.
    let pool = if fresh { &db.writer } else { &db.reader };
    let r = sqlx::query(
        // A personal organization's keys stop while its user is disabled or deleted.
        "select k.api_key_id, k.organization_id, k.owner_user_id, k.environment,
                case when k.status = 'active' and exists (select 1 from app_user u where u.personal_organization_id = k.organization_id
                     and (u.status <> 'active' or u.deleted_at is not null)) then 'disabled' else k.status end as status,
                k.approval, k.expires_at, k.scopes, k.endpoints,
                k.ip_allowlist, k.permissions, k.require_signature, k.signing_salt,
                coalesce(k.rate_limit, p.request_limit, 100) as effective_limit,
                coalesce(k.rate_window_seconds, p.window_seconds, 3600) as effective_window
         from api_key k left join plan p on p.plan_id = coalesce(k.plan_id, 'plan_free')
         where k.key_hash = $1 and k.hash_algorithm = $2",
    )
    .bind(hex::encode(digest.bytes))
    .bind(digest.algorithm.name())
    .fetch_optional(pool)
    .await?;
    let found = match r {
        None => None,
        Some(r) => {
            let id: String = r.try_get("api_key_id")?;
            let salt: String = r.try_get("signing_salt")?;
            let (scopes, endpoints, ip_allowlist, readable) = match restrictions(
                &r.try_get::<String, _>("scopes")?,
                &r.try_get::<String, _>("endpoints")?,
                &r.try_get::<String, _>("ip_allowlist")?,
            ) {
                Some((s, e, i)) => (s, e, i, true),
                None => {
                    tracing::error!(key_id = %id, "stored key restrictions cannot be read; the key is refused");
                    Default::default()
                }
            };
            let expires_at: Option<i64> = r.try_get("expires_at")?;
            let require_signature = r.try_get::<i64, _>("require_signature")? != 0;
            let environment: String = r.try_get("environment")?;
            let rate = Limit::new(
                r.try_get::<i64, _>("effective_limit")?.max(1) as u64,
                r.try_get::<i64, _>("effective_window")?.max(1),
            );
            Some(Arc::new(VerifiedKey {
                bounds: Arc::new(KeyBounds {
                    expires_at,
                    ip_allowlist,
                    endpoints,
                    require_signature,
                    test_only: format::Environment::is_test_name(&environment),
                }),
                rate,
                signing_secret: signature::signing_secret(pepper, &id, &salt),
                id,
                organization_id: r.try_get("organization_id")?,
                owner_user_id: r.try_get("owner_user_id")?,
                environment,
                status: StoredStatus::parse(&r.try_get::<String, _>("status")?),
                pending_approval: super::ssr::Approval::parse(&r.try_get::<String, _>("approval")?)
                    == super::ssr::Approval::Pending,
                permissions: scope_permissions(&scopes),
                // Unreadable dynamic permissions amount to none: they only ever add.
                dynamic: serde_json::from_str(&r.try_get::<String, _>("permissions")?)
                    .unwrap_or_default(),
                scopes,
                restrictions_readable: readable,
            }))
        }
    };
    cache.put(generation, digest, found.clone());
    Ok(found)
}

/// Parses a key's stored restrictions, all or nothing: `None` when any part cannot be read
/// (one bad IP entry must not shrink the list, and an unreadable list must not become
/// "any address").
pub fn restrictions(
    scopes: &str,
    endpoints: &str,
    ip_allowlist: &str,
) -> Option<(Scopes, Vec<EndpointRule>, Vec<IpNet>)> {
    let scopes: Scopes = serde_json::from_str(scopes).ok()?;
    let endpoints: Vec<EndpointRule> = serde_json::from_str(endpoints).ok()?;
    let ips: Vec<String> = serde_json::from_str(ip_allowlist).ok()?;
    // Read as entered ones are (an IPv4-mapped entry stored before it was canonicalised
    // means its IPv4 block).
    let ips = ips
        .iter()
        .map(|s| super::rules::parse_cidr(s).ok())
        .collect::<Option<Vec<_>>>()?;
    Some((scopes, endpoints, ips))
}

/// Verifies a presented key: format and checksum first (no lookup for a typo), then one
/// indexed lookup by keyed hash (from memory when hot, unless `how.fresh`; no password hash,
/// ever), then organization, status, expiry, IP allow-list and endpoint restrictions.
#[allow(clippy::too_many_arguments)]
pub async fn verify(
    db: &Db,
    cache: &KeyCache,
    pepper: &[u8; 32],
    presented: &str,
    ip: Option<IpAddr>,
    method: &str,
    path: &str,
    how: Lookup<'_>,
) -> Result<Arc<VerifiedKey>, AppError> {
    if presented.starts_with("kw_") {
        match format::parse(presented) {
            Ok(_) => {}
            Err(FormatError::Malformed) => return Err(refusal(ErrorCode::KeyMalformed)),
            Err(FormatError::BadChecksum) => return Err(refusal(ErrorCode::KeyBadChecksum)),
        }
    } else if !format::foreign_ok(presented) {
        // Not ours and not plausibly an imported key of another system.
        return Err(refusal(ErrorCode::KeyMalformed));
    }
    let hmac = Digest {
        algorithm: Algorithm::HmacSha256,
        bytes: format::hash_bytes(pepper, presented),
    };
    let key = match lookup(db, cache, pepper, hmac, how.fresh).await? {
        Some(k) => k,
        None => {
            let sha = Digest {
                algorithm: Algorithm::Sha256,
                bytes: format::sha256_bytes(presented),
            };
            lookup(db, cache, pepper, sha, how.fresh)
                .await?
                .ok_or_else(|| refusal(ErrorCode::KeyUnknown))?
        }
    };
    if how
        .organization_id
        .is_some_and(|org| org != key.organization_id)
    {
        return Err(refusal(ErrorCode::KeyUnknown));
    }
    let bounds = &key.bounds;
    require_usable(effective_status(
        key.status,
        key.pending_approval,
        bounds.expires_at,
        now_ms(),
    ))?;
    if !key.restrictions_readable {
        return Err(refusal(ErrorCode::KeyRestrictionsInvalid));
    }
    if !bounds.ip_allowlist.is_empty() && !ip.is_some_and(|ip| ip_allowed(&bounds.ip_allowlist, ip))
    {
        return Err(refusal(ErrorCode::IpNotAllowed));
    }
    if !bounds.endpoints.is_empty()
        && !bounds
            .endpoints
            .iter()
            .any(|r| endpoint_matches(r, method, path))
    {
        return Err(refusal(ErrorCode::EndpointNotAllowed));
    }
    Ok(key)
}

/// Checks a request's `Signature` header when the key requires one (or one is sent: a
/// signature a client bothered to send is never ignored), then remembers it so that the same
/// request cannot be replayed within the tolerance window, on any instance.
pub async fn check_signature(
    db: &Db,
    key: &VerifiedKey,
    header: Option<&str>,
    method: &str,
    path_and_query: &str,
    body_sha256: &str,
) -> Result<(), AppError> {
    check_signature_at(
        db,
        key,
        header,
        method,
        path_and_query,
        body_sha256,
        now_ms(),
    )
    .await
}

/// [`check_signature`] at a given time (ms): what tests drive.
pub async fn check_signature_at(
    db: &Db,
    key: &VerifiedKey,
    header: Option<&str>,
    method: &str,
    path_and_query: &str,
    body_sha256: &str,
    now: i64,
) -> Result<(), AppError> {
    let Some(header) = header else {
        return match key.bounds.require_signature {
            true => Err(refusal(ErrorCode::SignatureMissing)),
            false => Ok(()),
        };
    };
    let v1 = signature::check(
        &key.signing_secret,
        header,
        method,
        path_and_query,
        body_sha256,
        now / 1000,
    )
    .map_err(|r| match r {
        signature::Refusal::Invalid => refusal(ErrorCode::SignatureInvalid),
        signature::Refusal::Stale => refusal(ErrorCode::SignatureStale),
    })?;
    let first_use = sqlx::query(
        "insert into api_key_signature (api_key_id, signature, seen_at) values ($1, $2, $3) on conflict do nothing",
    )
    .bind(&key.id)
    .bind(&v1)
    .bind(now)
    .execute(&db.writer)
    .await?
    .rows_affected()
        == 1;
    if !first_use {
        return Err(refusal(ErrorCode::SignatureReplayed));
    }
    Ok(())
}

/// How long an accepted signature is remembered: a signature with a timestamp up to the
/// tolerance in the future is accepted up to twice the tolerance after it was first seen, and
/// instances' clocks may differ a little. Remembering it longer than that leaves no gap in
/// which a replay could be accepted.
pub const REMEMBER_SIGNATURE_MS: i64 = (2 * signature::TOLERANCE_SECS + 60) * 1000;

/// Forgets the signatures first seen more than [`REMEMBER_SIGNATURE_MS`] before `now`.
pub async fn prune_signatures_at(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("delete from api_key_signature where seen_at < $1")
            .bind(now - REMEMBER_SIGNATURE_MS)
            .execute(&db.writer)
            .await?
            .rows_affected(),
    )
}

/// How often `last_used_at` is written per key and instance.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Notes the use of a key, at most once a minute per key and instance, in memory: the hot
/// path does no database write. The `key-use` worker writes what was noted
/// ([`flush_key_use`]), and flushes it on shutdown.
pub fn touch(cache: &KeyCache, key_id: &str) {
    if let Ok(mut touched) = cache.touched.lock() {
        if touched
            .get(key_id)
            .is_some_and(|at| at.elapsed() < TOUCH_EVERY)
        {
            return;
        }
        if touched.len() > 100_000 {
            touched.retain(|_, at| at.elapsed() < TOUCH_EVERY);
        }
        touched.insert(key_id.to_string(), Instant::now());
    }
    if let Ok(mut pending) = cache.pending_use.lock() {
        pending.insert(key_id.to_string(), now_ms());
    }
}

/// How long a `last_used_at` write waits for a key row another transaction holds before it
/// gives up for this round (PostgreSQL).
const KEY_USE_LOCK_WAIT: &str = "100ms";

/// Writes the uses noted since the last call, in one transaction; returns how many keys.
/// Never moves `last_used_at` backwards (another instance may have written a later use).
///
/// A write-behind hint must never hold up real work. On PostgreSQL a change that locks
/// several keys (an account deletion revoking its keys) and this transaction could each hold
/// a key the other waits for; PostgreSQL would then abort one of them, possibly the change.
/// So this waits at most [`KEY_USE_LOCK_WAIT`] for a row lock, then rolls back and keeps the
/// uses for the next round (as it does after any failure). Keys are written in id order, the
/// same on every instance.
pub async fn flush_key_use(db: &Db, cache: &KeyCache) -> Result<usize, sqlx::Error> {
    let mut noted: Vec<(String, i64)> = match cache.pending_use.lock() {
        Ok(mut pending) => pending.drain().collect(),
        Err(_) => return Ok(0),
    };
    if noted.is_empty() {
        return Ok(0);
    }
    noted.sort_unstable();
    match write_key_use(db, &noted).await {
        Ok(()) => Ok(noted.len()),
        Err(error) => {
            if let Ok(mut pending) = cache.pending_use.lock() {
                for (key_id, at) in noted {
                    let kept = pending.entry(key_id).or_insert(at);
                    *kept = (*kept).max(at);
                }
            }
            use crate::error::{has_sqlstate, LOCK_NOT_AVAILABLE};
            if has_sqlstate(&error, &[LOCK_NOT_AVAILABLE]) {
                tracing::debug!("key uses wait for a locked key: kept for the next round");
                Ok(0)
            } else {
                Err(error)
            }
        }
    }
}

async fn write_key_use(db: &Db, noted: &[(String, i64)]) -> Result<(), sqlx::Error> {
    let mut tx = db.writer.begin().await?;
    if db.backend == crate::ssr::db::Backend::Postgres {
        sqlx::query(&format!("set local lock_timeout = '{KEY_USE_LOCK_WAIT}'"))
            .execute(&mut *tx)
            .await?;
    }
    for (key_id, at) in noted {
        sqlx::query("update api_key set last_used_at = $1 where api_key_id = $2 and (last_used_at is null or last_used_at < $1)")
            .bind(at)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_ipv4_mapped_entry_means_its_ipv4_block() {
        let (_, _, ips) = restrictions("{}", "[]", r#"["::ffff:10.0.0.0/104", "2001:db8::/32"]"#)
            .expect("readable");
        let shown: Vec<String> = ips.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "2001:db8::/32"]);
        assert!(restrictions("{}", "[]", r#"["10.0.0.0/8", "nonsense"]"#).is_none());
    }

    #[test]
    fn a_lookup_older_than_a_clear_is_not_kept() {
        let cache = KeyCache::default();
        let digest = |b| Digest {
            algorithm: Algorithm::HmacSha256,
            bytes: [b; 32],
        };
        // Read the generation, as a lookup does before its database read…
        let before = cache.generation();
        // …a change commits and clears the cache meanwhile…
        cache.clear();
        // …so the lookup's answer (read before the change) is not put back.
        cache.put(before, digest(1), None);
        assert!(cache.get(&digest(1)).is_none());
        // A lookup begun after the clear is kept.
        cache.put(cache.generation(), digest(2), None);
        assert!(matches!(cache.get(&digest(2)), Some(None)));
    }
}
