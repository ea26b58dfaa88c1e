//! Verifying a presented key (server only): format and checksum, one indexed lookup by
//! keyed hash behind a short-lived memory cache, then status, expiry, IP allow-list and
//! endpoint rules; and recording its use off the request path.

use super::format::{self, FormatError};
use super::rules::{endpoint_matches, ip_allowed, scopes_allow};
use super::signature::{self, SigningSecret};
use super::ssr::effective_status;
use super::{EndpointRule, KeyStatus, Scopes};
use crate::access::Permission;
use crate::error::{AppError, ErrorCode};
use crate::ssr::db::{now_ms, Db};
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
    pub status: String,
    pub expires_at: Option<i64>,
    pub scopes: Scopes,
    pub endpoints: Vec<EndpointRule>,
    pub ip_allowlist: Vec<IpNet>,
    pub require_signature: bool,
    /// Derived from the pepper and the key's salt, to check `Signature` headers.
    pub signing_secret: SigningSecret,
}

impl VerifiedKey {
    pub fn allows(&self, permission: Permission) -> bool {
        scopes_allow(&self.scopes, permission)
    }
}

/// Recently looked-up keys by hash (and misses), each kept for at most [`CACHE_TTL`]: a hot
/// key costs no database round trip, and a change made on another instance is seen within
/// that time. Changes made here clear the cache at once.
#[derive(Clone, Debug, Default)]
pub struct KeyCache {
    entries: Arc<Mutex<HashMap<String, CacheEntry>>>,
    /// When this instance last wrote `last_used_at` for a key.
    touched: Arc<Mutex<HashMap<String, Instant>>>,
    /// When this instance last pruned the seen-signature table.
    pruned: Arc<Mutex<Option<Instant>>>,
}

/// When an entry was fetched, and the key (`None`: no such key).
type CacheEntry = (Instant, Option<Arc<VerifiedKey>>);

pub const CACHE_TTL: Duration = Duration::from_secs(1);

impl KeyCache {
    fn get(&self, hash: &str) -> Option<Option<Arc<VerifiedKey>>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(hash)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, k)| k.clone())
    }

    fn put(&self, hash: String, key: Option<Arc<VerifiedKey>>) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() > 100_000 {
                entries.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
            }
            entries.insert(hash, (Instant::now(), key));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
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
        _ => "refused",
    };
    AppError::new(code, message)
}

async fn lookup(
    db: &Db,
    cache: &KeyCache,
    pepper: &[u8; 32],
    hash: &str,
    algorithm: &str,
) -> Result<Option<Arc<VerifiedKey>>, AppError> {
    let cache_key = format!("{algorithm}:{hash}");
    if let Some(hit) = cache.get(&cache_key) {
        return Ok(hit);
    }
    let r = sqlx::query(
        "select api_key_id, organization_id, owner_user_id, environment, status, expires_at, scopes, endpoints, ip_allowlist, require_signature, signing_salt
         from api_key where key_hash = $1 and hash_algorithm = $2",
    )
    .bind(hash)
    .bind(algorithm)
    .fetch_optional(&db.reader)
    .await?;
    let found = match r {
        None => None,
        Some(r) => {
            let ips: Vec<String> =
                serde_json::from_str(&r.try_get::<String, _>("ip_allowlist")?).unwrap_or_default();
            let id: String = r.try_get("api_key_id")?;
            let salt: String = r.try_get("signing_salt")?;
            Some(Arc::new(VerifiedKey {
                signing_secret: signature::signing_secret(pepper, &id, &salt),
                id,
                organization_id: r.try_get("organization_id")?,
                owner_user_id: r.try_get("owner_user_id")?,
                environment: r.try_get("environment")?,
                status: r.try_get("status")?,
                expires_at: r.try_get("expires_at")?,
                scopes: serde_json::from_str(&r.try_get::<String, _>("scopes")?)
                    .unwrap_or_default(),
                endpoints: serde_json::from_str(&r.try_get::<String, _>("endpoints")?)
                    .unwrap_or_default(),
                ip_allowlist: ips.iter().filter_map(|s| s.parse().ok()).collect(),
                require_signature: r.try_get::<i64, _>("require_signature")? != 0,
            }))
        }
    };
    cache.put(cache_key, found.clone());
    Ok(found)
}

/// Verifies a presented key: format and checksum first (no lookup for a typo), then one
/// indexed lookup by keyed hash (from memory when hot; no password hash, ever), then status,
/// expiry, IP allow-list and endpoint restrictions.
pub async fn verify(
    db: &Db,
    cache: &KeyCache,
    pepper: &[u8; 32],
    presented: &str,
    ip: Option<IpAddr>,
    method: &str,
    path: &str,
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
    let key = match lookup(
        db,
        cache,
        pepper,
        &format::hash(pepper, presented),
        "hmac-sha256",
    )
    .await?
    {
        Some(k) => k,
        None => lookup(db, cache, pepper, &format::sha256_hex(presented), "sha256")
            .await?
            .ok_or_else(|| refusal(ErrorCode::KeyUnknown))?,
    };
    match effective_status(&key.status, key.expires_at, now_ms()) {
        KeyStatus::Active => {}
        KeyStatus::Disabled => return Err(refusal(ErrorCode::KeyDisabled)),
        KeyStatus::Revoked => return Err(refusal(ErrorCode::KeyRevoked)),
        KeyStatus::Expired => return Err(refusal(ErrorCode::KeyExpired)),
    }
    if !key.ip_allowlist.is_empty() && !ip.is_some_and(|ip| ip_allowed(&key.ip_allowlist, ip)) {
        return Err(refusal(ErrorCode::IpNotAllowed));
    }
    if !key.endpoints.is_empty()
        && !key
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
    cache: &KeyCache,
    key: &VerifiedKey,
    header: Option<&str>,
    method: &str,
    path_and_query: &str,
    body_sha256: &str,
) -> Result<(), AppError> {
    let Some(header) = header else {
        return match key.require_signature {
            true => Err(refusal(ErrorCode::SignatureMissing)),
            false => Ok(()),
        };
    };
    let now = now_ms();
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
    prune_signatures(db, cache);
    if !first_use {
        return Err(refusal(ErrorCode::SignatureReplayed));
    }
    Ok(())
}

/// Forgets accepted signatures older than twice the tolerance (by then their timestamps are
/// stale anyway): at most once a minute per instance, off the request path.
fn prune_signatures(db: &Db, cache: &KeyCache) {
    if let Ok(mut last) = cache.pruned.lock() {
        if last.is_some_and(|at| at.elapsed() < TOUCH_EVERY) {
            return;
        }
        *last = Some(Instant::now());
    }
    let db = db.clone();
    tokio::spawn(async move {
        let before = now_ms() - 2 * signature::TOLERANCE_SECS * 1000;
        let result = sqlx::query("delete from api_key_signature where seen_at < $1")
            .bind(before)
            .execute(&db.writer)
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not prune seen signatures");
        }
    });
}

/// How often `last_used_at` is written per key and instance.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Notes the use of a key: at most once a minute per key, off the request path, so the hot
/// path does no database write.
pub fn touch(db: &Db, cache: &KeyCache, key_id: &str) {
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
    let db = db.clone();
    let key_id = key_id.to_string();
    tokio::spawn(async move {
        let now = now_ms();
        let result = sqlx::query("update api_key set last_used_at = $1 where api_key_id = $2 and (last_used_at is null or last_used_at < $3)")
            .bind(now)
            .bind(&key_id)
            .bind(now - 60_000)
            .execute(&db.writer)
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not record key use");
        }
    });
}
