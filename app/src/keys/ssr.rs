//! API key domain logic and SQL (server only): validation, create, list, get, edit, status
//! transitions, roll with grace, history, and verification with a short-lived memory cache.

use super::format::{self, Environment, FormatError};
use super::{
    Access, ApiKey, Category, CreatedKey, EndpointRule, KeyEvent, KeyStatus, NewKey, Scopes,
};
use crate::access::Permission;
use crate::error::{AppError, ErrorCode};
use crate::ssr::db::{new_id, now_ms, Db};
use crate::ssr::AppState;
use ipnet::IpNet;
use sqlx::{Any, Row, Transaction};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const COLUMNS: &str = "api_key_id, organization_id, owner_user_id, name, description, environment, display_prefix, status, category, scopes, endpoints, ip_allowlist, require_signature, metadata, expires_at, rolled_to_key_id, created_by, created_at, updated_at, last_used_at";

/// Who did something to a key (a user id or a key id) and from where.
#[derive(Clone, Copy, Debug, Default)]
pub struct Actor<'a> {
    pub id: Option<&'a str>,
    pub source_ip: Option<&'a str>,
}

// ---------------------------------------------------------------------------------------------
// Time on the wire.

pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub fn parse_rfc3339(field: &str, s: &str) -> Result<i64, AppError> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| {
            AppError::invalid(
                field,
                format!("{field} must be an RFC 3339 timestamp, e.g. 2027-01-31T12:00:00Z"),
            )
        })
}

// ---------------------------------------------------------------------------------------------
// Validation (pure).

/// The permissions a set of scopes amounts to.
pub fn scope_permissions(scopes: &Scopes) -> Vec<Permission> {
    Permission::ALL
        .iter()
        .copied()
        .filter(|p| scopes_allow(scopes, *p))
        .collect()
}

/// Whether the scopes grant `permission` (write implies read).
pub fn scopes_allow(scopes: &Scopes, permission: Permission) -> bool {
    let (resource, action) = permission.as_str().split_once(':').unwrap_or_default();
    match scopes.get(resource) {
        Some(Access::Write) => true,
        Some(Access::Read) => action == "read",
        _ => false,
    }
}

/// The checked settings of a key.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub name: String,
    pub description: String,
    pub environment: Environment,
    pub category: Category,
    pub scopes: Scopes,
    pub endpoints: Vec<EndpointRule>,
    pub ip_allowlist: Vec<IpNet>,
    pub expires_at: Option<i64>,
    pub require_signature: bool,
    pub metadata: serde_json::Value,
}

/// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a /32 or /128).
pub fn parse_cidr(s: &str) -> Result<IpNet, AppError> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            AppError::invalid(
                "ip_allowlist",
                format!("not an IP address or CIDR block: {s:?}"),
            )
        })
}

/// Whether `ip` is allowed by the list (empty = any address).
pub fn ip_allowed(list: &[IpNet], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    list.is_empty() || list.iter().any(|net| net.contains(&ip))
}

const METHODS: &[&str] = &["*", "GET", "POST", "PUT", "PATCH", "DELETE"];

fn validate_endpoint(rule: &EndpointRule) -> Result<EndpointRule, AppError> {
    let method = rule.method.trim().to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err(AppError::invalid(
            "endpoints",
            format!(
                "unknown method {:?}; use one of {}",
                rule.method,
                METHODS.join(", ")
            ),
        ));
    }
    let path = rule.path.trim();
    if !path.starts_with('/')
        || path.len() > 200
        || path.chars().any(|c| c.is_whitespace() || c == '?')
    {
        return Err(AppError::invalid(
            "endpoints",
            format!(
                "path pattern must start with / and hold no spaces or query: {:?}",
                rule.path
            ),
        ));
    }
    Ok(EndpointRule {
        method,
        path: path.to_string(),
    })
}

/// Whether a request matches one rule: `*` is one segment, a trailing `/**` any rest.
pub fn endpoint_matches(rule: &EndpointRule, method: &str, path: &str) -> bool {
    if rule.method != "*" && !rule.method.eq_ignore_ascii_case(method) {
        return false;
    }
    let mut pattern = rule.path.trim_end_matches('/').split('/');
    let mut actual = path.trim_end_matches('/').split('/');
    loop {
        match (pattern.next(), actual.next()) {
            (Some("**"), _) => return true,
            (Some(p), Some(a)) if p == "*" || p == a => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Checks a creation request; `may_grant` says which permissions the creator can hand out
/// (a key never gets more than its creator has).
pub fn validate_new(
    new: &NewKey,
    now: i64,
    may_grant: &dyn Fn(Permission) -> bool,
) -> Result<Settings, AppError> {
    let name = new.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "name",
            "name must be 1 to 100 printable characters",
        ));
    }
    let description = new
        .description
        .clone()
        .unwrap_or_default()
        .trim()
        .to_string();
    if description.chars().count() > 1000 {
        return Err(AppError::invalid(
            "description",
            "description must be at most 1000 characters",
        ));
    }
    let environment = match new.environment.as_deref() {
        None => Environment::Live,
        Some(e) => Environment::parse(e)
            .ok_or_else(|| AppError::invalid("environment", "environment must be live or test"))?,
    };
    let category = match new.category.as_deref() {
        None if new.scopes.is_some() => Category::Custom,
        None => Category::Basic,
        Some(c) => Category::parse(c).ok_or_else(|| {
            AppError::invalid(
                "category",
                "category must be basic, read_only, admin or custom",
            )
        })?,
    };
    let scopes = match (category.preset(), &new.scopes) {
        (Some(_), Some(_)) => {
            return Err(AppError::invalid(
                "scopes",
                "scopes come from the category; use category custom to set them",
            ))
        }
        (Some(preset), None) => preset,
        (None, Some(scopes)) => scopes.clone(),
        (None, None) => return Err(AppError::invalid("scopes", "a custom key needs scopes")),
    };
    let resources = crate::access::resources();
    for resource in scopes.keys() {
        if !resources.contains(&resource.as_str()) {
            return Err(AppError::invalid(
                "scopes",
                format!(
                    "unknown resource {resource:?}; known: {}",
                    resources.join(", ")
                ),
            ));
        }
    }
    let scopes: Scopes = scopes
        .into_iter()
        .filter(|(_, a)| *a != Access::None)
        .collect();
    for p in scope_permissions(&scopes) {
        if !may_grant(p) {
            return Err(AppError::new(
                ErrorCode::Forbidden,
                format!("cannot grant {}: you do not hold it", p.as_str()),
            ));
        }
    }
    let endpoints = new.endpoints.clone().unwrap_or_default();
    if endpoints.len() > 50 {
        return Err(AppError::invalid("endpoints", "at most 50 endpoint rules"));
    }
    let endpoints = endpoints
        .iter()
        .map(validate_endpoint)
        .collect::<Result<Vec<_>, _>>()?;
    let ip_list = new.ip_allowlist.clone().unwrap_or_default();
    if ip_list.len() > 100 {
        return Err(AppError::invalid("ip_allowlist", "at most 100 entries"));
    }
    let ip_allowlist = ip_list
        .iter()
        .map(|s| parse_cidr(s))
        .collect::<Result<Vec<_>, _>>()?;
    let expires_at = match &new.expires_at {
        None => None,
        Some(s) => {
            let at = parse_rfc3339("expires_at", s)?;
            if at <= now {
                return Err(AppError::invalid(
                    "expires_at",
                    "expires_at must be in the future",
                ));
            }
            Some(at)
        }
    };
    let metadata = new
        .metadata
        .clone()
        .unwrap_or_else(|| serde_json::json!({}));
    if !metadata.is_object() || metadata.to_string().len() > 8192 {
        return Err(AppError::invalid(
            "metadata",
            "metadata must be a JSON object of at most 8 KiB",
        ));
    }
    Ok(Settings {
        name,
        description,
        environment,
        category,
        scopes,
        endpoints,
        ip_allowlist,
        expires_at,
        require_signature: new.require_signature.unwrap_or(false),
        metadata,
    })
}

// ---------------------------------------------------------------------------------------------
// Rows.

struct KeyRow {
    id: String,
    organization_id: String,
    owner_user_id: Option<String>,
    name: String,
    description: String,
    environment: String,
    display_prefix: String,
    status: String,
    category: String,
    scopes: String,
    endpoints: String,
    ip_allowlist: String,
    require_signature: i64,
    metadata: String,
    expires_at: Option<i64>,
    rolled_to_key_id: Option<String>,
    created_by: Option<String>,
    created_at: i64,
    updated_at: i64,
    last_used_at: Option<i64>,
}

impl KeyRow {
    fn from_row(r: &sqlx::any::AnyRow) -> Result<KeyRow, sqlx::Error> {
        Ok(KeyRow {
            id: r.try_get("api_key_id")?,
            organization_id: r.try_get("organization_id")?,
            owner_user_id: r.try_get("owner_user_id")?,
            name: r.try_get("name")?,
            description: r.try_get("description")?,
            environment: r.try_get("environment")?,
            display_prefix: r.try_get("display_prefix")?,
            status: r.try_get("status")?,
            category: r.try_get("category")?,
            scopes: r.try_get("scopes")?,
            endpoints: r.try_get("endpoints")?,
            ip_allowlist: r.try_get("ip_allowlist")?,
            require_signature: r.try_get("require_signature")?,
            metadata: r.try_get("metadata")?,
            expires_at: r.try_get("expires_at")?,
            rolled_to_key_id: r.try_get("rolled_to_key_id")?,
            created_by: r.try_get("created_by")?,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            last_used_at: r.try_get("last_used_at")?,
        })
    }

    fn status(&self, now: i64) -> KeyStatus {
        effective_status(&self.status, self.expires_at, now)
    }

    fn to_wire(&self, now: i64) -> ApiKey {
        ApiKey {
            id: self.id.clone(),
            organization_id: self.organization_id.clone(),
            owner_user_id: self.owner_user_id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            environment: self.environment.clone(),
            display_prefix: self.display_prefix.clone(),
            status: self.status(now),
            category: Category::parse(&self.category).unwrap_or(Category::Custom),
            scopes: serde_json::from_str(&self.scopes).unwrap_or_default(),
            endpoints: serde_json::from_str(&self.endpoints).unwrap_or_default(),
            ip_allowlist: serde_json::from_str(&self.ip_allowlist).unwrap_or_default(),
            require_signature: self.require_signature != 0,
            metadata: serde_json::from_str(&self.metadata)
                .unwrap_or_else(|_| serde_json::json!({})),
            expires_at: self.expires_at.map(rfc3339),
            rolled_to_key_id: self.rolled_to_key_id.clone(),
            created_by: self.created_by.clone(),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
            last_used_at: self.last_used_at.map(rfc3339),
        }
    }
}

/// Stored status plus the date: an active key past its expiry is expired.
pub fn effective_status(stored: &str, expires_at: Option<i64>, now: i64) -> KeyStatus {
    match stored {
        "revoked" => KeyStatus::Revoked,
        "disabled" => KeyStatus::Disabled,
        _ if expires_at.is_some_and(|at| at <= now) => KeyStatus::Expired,
        _ => KeyStatus::Active,
    }
}

async fn record_event(
    tx: &mut Transaction<'_, Any>,
    key_id: &str,
    org_id: &str,
    kind: &str,
    reason: Option<&str>,
    actor: Actor<'_>,
    detail: serde_json::Value,
) -> Result<(), AppError> {
    sqlx::query(
        "insert into api_key_event (api_key_event_id, api_key_id, organization_id, kind, actor, reason, source_ip, detail, occurred_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(new_id("kev"))
    .bind(key_id)
    .bind(org_id)
    .bind(kind)
    .bind(actor.id)
    .bind(reason)
    .bind(actor.source_ip)
    .bind(detail.to_string())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    crate::ssr::events::record(
        tx,
        crate::ssr::events::Event {
            kind: match kind {
                "created" => "key.created",
                "imported" => "key.imported",
                "edited" => "key.edited",
                "disabled" => "key.disabled",
                "enabled" => "key.enabled",
                "rolled" => "key.rolled",
                "revoked" => "key.revoked",
                _ => "key.expired",
            },
            organization_id: Some(org_id),
            actor_user_id: actor.id,
            subject_id: Some(key_id),
            source_ip: actor.source_ip,
            data: serde_json::json!({ "reason": reason }),
        },
    )
    .await?;
    Ok(())
}

async fn insert_key(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
    owner_user_id: Option<&str>,
    s: &Settings,
    secret: &str,
    pepper: &[u8; 32],
    actor: Actor<'_>,
) -> Result<String, AppError> {
    let id = new_id("key");
    let now = now_ms();
    let ips: Vec<String> = s.ip_allowlist.iter().map(|n| n.to_string()).collect();
    sqlx::query(
        "insert into api_key (api_key_id, organization_id, owner_user_id, name, description, environment, key_hash, hash_algorithm,
            display_prefix, status, category, scopes, endpoints, ip_allowlist, require_signature, metadata, expires_at, created_by, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, 'hmac-sha256', $8, 'active', $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(owner_user_id)
    .bind(&s.name)
    .bind(&s.description)
    .bind(s.environment.as_str())
    .bind(format::hash(pepper, secret))
    .bind(format::display_prefix(secret))
    .bind(s.category.as_str())
    .bind(serde_json::to_string(&s.scopes).map_err(AppError::internal)?)
    .bind(serde_json::to_string(&s.endpoints).map_err(AppError::internal)?)
    .bind(serde_json::to_string(&ips).map_err(AppError::internal)?)
    .bind(s.require_signature as i64)
    .bind(s.metadata.to_string())
    .bind(s.expires_at)
    .bind(actor.id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// Creates a key in `org_id` (a personal access token of `owner_user_id` when given).
pub async fn create(
    db: &Db,
    pepper: &[u8; 32],
    org_id: &str,
    owner_user_id: Option<&str>,
    settings: &Settings,
    actor: Actor<'_>,
) -> Result<CreatedKey, AppError> {
    let secret = format::generate(settings.environment);
    let mut tx = db.writer.begin().await?;
    let id = insert_key(
        &mut tx,
        org_id,
        owner_user_id,
        settings,
        &secret,
        pepper,
        actor,
    )
    .await?;
    record_event(
        &mut tx,
        &id,
        org_id,
        "created",
        None,
        actor,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    let api_key = get(db, org_id, &id).await?;
    Ok(CreatedKey {
        api_key,
        key: secret,
    })
}

async fn row(db: &Db, org_id: &str, key_id: &str) -> Result<KeyRow, AppError> {
    let r = sqlx::query(&format!(
        "select {COLUMNS} from api_key where api_key_id = $1 and organization_id = $2"
    ))
    .bind(key_id)
    .bind(org_id)
    .fetch_optional(&db.reader)
    .await?;
    match r {
        Some(r) => Ok(KeyRow::from_row(&r)?),
        None => Err(AppError::not_found("key")),
    }
}

/// One key of the organization (another organization's key is "not found").
pub async fn get(db: &Db, org_id: &str, key_id: &str) -> Result<ApiKey, AppError> {
    Ok(row(db, org_id, key_id).await?.to_wire(now_ms()))
}

/// Every key of the organization, newest first.
pub async fn list(db: &Db, org_id: &str) -> Result<Vec<ApiKey>, AppError> {
    let rows = sqlx::query(&format!("select {COLUMNS} from api_key where organization_id = $1 order by created_at desc, api_key_id"))
        .bind(org_id)
        .fetch_all(&db.reader)
        .await?;
    let now = now_ms();
    rows.iter()
        .map(|r| Ok(KeyRow::from_row(r)?.to_wire(now)))
        .collect()
}

/// A status transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Enable,
    Disable,
    Revoke,
}

/// Applies a transition; refuses what makes no sense (enabling a revoked key…).
pub async fn transition(
    state: &AppState,
    org_id: &str,
    key_id: &str,
    t: Transition,
    reason: Option<&str>,
    actor: Actor<'_>,
) -> Result<ApiKey, AppError> {
    let (db, cache) = (&state.db, &state.keys);
    let current = row(db, org_id, key_id).await?;
    let (to, kind) = match (t, current.status.as_str()) {
        (_, "revoked") => {
            return Err(AppError::conflict(
                "status",
                "the key is revoked; revocation is final",
            ))
        }
        (Transition::Enable, "active") => {
            return Err(AppError::conflict("status", "the key is already active"))
        }
        (Transition::Disable, "disabled") => {
            return Err(AppError::conflict("status", "the key is already disabled"))
        }
        (Transition::Enable, _) => ("active", "enabled"),
        (Transition::Disable, _) => ("disabled", "disabled"),
        (Transition::Revoke, _) => ("revoked", "revoked"),
    };
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > 500) {
        return Err(AppError::invalid(
            "reason",
            "reason must be at most 500 characters",
        ));
    }
    let mut tx = db.writer.begin().await?;
    sqlx::query("update api_key set status = $1, updated_at = $2 where api_key_id = $3 and organization_id = $4")
        .bind(to)
        .bind(now_ms())
        .bind(key_id)
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    record_event(
        &mut tx,
        key_id,
        org_id,
        kind,
        reason,
        actor,
        serde_json::json!({ "from": current.status }),
    )
    .await?;
    tx.commit().await?;
    cache.clear();
    get(db, org_id, key_id).await
}

/// Rolls a key: a new key with the same settings; the old one keeps working for
/// `grace_seconds` (0 = stops now), then expires. Both timelines record it.
pub async fn roll(
    state: &AppState,
    org_id: &str,
    key_id: &str,
    grace_seconds: i64,
    reason: Option<&str>,
    actor: Actor<'_>,
) -> Result<CreatedKey, AppError> {
    let (db, cache, pepper) = (&state.db, &state.keys, &state.config.secret);
    if !(0..=90 * 24 * 3600).contains(&grace_seconds) {
        return Err(AppError::invalid(
            "grace_seconds",
            "grace_seconds must be between 0 and 7776000 (90 days)",
        ));
    }
    let old = row(db, org_id, key_id).await?;
    let now = now_ms();
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
    let wire = old.to_wire(now);
    let settings = Settings {
        name: old.name.clone(),
        description: old.description.clone(),
        environment: Environment::parse(&old.environment).unwrap_or(Environment::Live),
        category: wire.category,
        scopes: wire.scopes.clone(),
        endpoints: wire.endpoints.clone(),
        ip_allowlist: wire
            .ip_allowlist
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect(),
        expires_at: old.expires_at,
        require_signature: wire.require_signature,
        metadata: wire.metadata.clone(),
    };
    let secret = format::generate(settings.environment);
    let grace_ends = now + grace_seconds * 1000;
    let mut tx = db.writer.begin().await?;
    let new_id = insert_key(
        &mut tx,
        org_id,
        old.owner_user_id.as_deref(),
        &settings,
        &secret,
        pepper,
        actor,
    )
    .await?;
    let old_expiry = old.expires_at.map_or(grace_ends, |e| e.min(grace_ends));
    sqlx::query("update api_key set expires_at = $1, rolled_to_key_id = $2, updated_at = $3 where api_key_id = $4 and organization_id = $5")
        .bind(old_expiry)
        .bind(&new_id)
        .bind(now)
        .bind(key_id)
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    let detail = serde_json::json!({ "rolled_to": new_id, "grace_seconds": grace_seconds, "stops_at": rfc3339(old_expiry) });
    record_event(&mut tx, key_id, org_id, "rolled", reason, actor, detail).await?;
    record_event(
        &mut tx,
        &new_id,
        org_id,
        "created",
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
    })
}

/// The key's status timeline, oldest first.
pub async fn history(db: &Db, org_id: &str, key_id: &str) -> Result<Vec<KeyEvent>, AppError> {
    row(db, org_id, key_id).await?;
    let rows = sqlx::query(
        "select kind, actor, reason, source_ip, occurred_at from api_key_event
         where api_key_id = $1 and organization_id = $2 order by occurred_at, api_key_event_id",
    )
    .bind(key_id)
    .bind(org_id)
    .fetch_all(&db.reader)
    .await?;
    let mut events = rows
        .iter()
        .map(|r| {
            Ok(KeyEvent {
                kind: r.try_get("kind")?,
                actor: r.try_get("actor")?,
                reason: r.try_get("reason")?,
                source_ip: r.try_get("source_ip")?,
                occurred_at: rfc3339(r.try_get("occurred_at")?),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // Expiry happens by date, without a write: show it where it belongs in the timeline.
    let key = row(db, org_id, key_id).await?;
    if let Some(at) = key.expires_at.filter(|at| *at <= now_ms()) {
        if key.status == "active" {
            events.push(KeyEvent {
                kind: "expired".into(),
                actor: None,
                reason: None,
                source_ip: None,
                occurred_at: rfc3339(at),
            });
        }
    }
    Ok(events)
}

// ---------------------------------------------------------------------------------------------
// Verification.

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
        _ => "refused",
    };
    AppError::new(code, message)
}

async fn lookup(
    db: &Db,
    cache: &KeyCache,
    hash: &str,
    algorithm: &str,
) -> Result<Option<Arc<VerifiedKey>>, AppError> {
    let cache_key = format!("{algorithm}:{hash}");
    if let Some(hit) = cache.get(&cache_key) {
        return Ok(hit);
    }
    let r = sqlx::query(
        "select api_key_id, organization_id, owner_user_id, environment, status, expires_at, scopes, endpoints, ip_allowlist, require_signature
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
            Some(Arc::new(VerifiedKey {
                id: r.try_get("api_key_id")?,
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
    match format::parse(presented) {
        Ok(_) => {}
        Err(FormatError::Malformed) => return Err(refusal(ErrorCode::KeyMalformed)),
        Err(FormatError::BadChecksum) => return Err(refusal(ErrorCode::KeyBadChecksum)),
    }
    let key = match lookup(db, cache, &format::hash(pepper, presented), "hmac-sha256").await? {
        Some(k) => k,
        None => lookup(db, cache, &format::sha256_hex(presented), "sha256")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(pairs: &[(&str, Access)]) -> Scopes {
        pairs.iter().map(|(r, a)| (r.to_string(), *a)).collect()
    }

    #[test]
    fn write_implies_read() {
        let s = scopes(&[
            ("keys", Access::Write),
            ("org", Access::Read),
            ("audit", Access::None),
        ]);
        assert!(scopes_allow(&s, Permission::KeysWrite));
        assert!(scopes_allow(&s, Permission::KeysRead));
        assert!(scopes_allow(&s, Permission::OrgRead));
        assert!(!scopes_allow(&s, Permission::OrgWrite));
        assert!(!scopes_allow(&s, Permission::AuditRead));
        assert_eq!(
            scope_permissions(&s),
            vec![
                Permission::OrgRead,
                Permission::KeysRead,
                Permission::KeysWrite
            ]
        );
    }

    #[test]
    fn cidr_matching() {
        let list = vec![
            parse_cidr("10.0.0.0/8").unwrap(),
            parse_cidr("2001:db8::/32").unwrap(),
            parse_cidr("192.0.2.7").unwrap(),
        ];
        assert!(ip_allowed(&list, "10.1.2.3".parse().unwrap()));
        assert!(!ip_allowed(&list, "11.0.0.1".parse().unwrap()));
        assert!(ip_allowed(&list, "2001:db8::1".parse().unwrap()));
        assert!(!ip_allowed(&list, "2001:db9::1".parse().unwrap()));
        assert!(ip_allowed(&list, "192.0.2.7".parse().unwrap()));
        assert!(!ip_allowed(&list, "192.0.2.8".parse().unwrap()));
        assert!(
            ip_allowed(&list, "::ffff:10.0.0.1".parse().unwrap()),
            "IPv4-mapped IPv6"
        );
        assert!(
            ip_allowed(&[], "203.0.113.1".parse().unwrap()),
            "empty list: any address"
        );
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("not an ip").is_err());
    }

    #[test]
    fn endpoint_patterns() {
        let rule = |m: &str, p: &str| EndpointRule {
            method: m.into(),
            path: p.into(),
        };
        assert!(endpoint_matches(
            &rule("GET", "/api/v1/keys"),
            "GET",
            "/api/v1/keys"
        ));
        assert!(!endpoint_matches(
            &rule("GET", "/api/v1/keys"),
            "POST",
            "/api/v1/keys"
        ));
        assert!(endpoint_matches(
            &rule("*", "/api/v1/keys/*"),
            "DELETE",
            "/api/v1/keys/key_1"
        ));
        assert!(!endpoint_matches(
            &rule("*", "/api/v1/keys/*"),
            "GET",
            "/api/v1/keys/key_1/history"
        ));
        assert!(endpoint_matches(
            &rule("GET", "/api/v1/**"),
            "GET",
            "/api/v1/keys/key_1/history"
        ));
        assert!(!endpoint_matches(
            &rule("GET", "/api/v1/keys"),
            "GET",
            "/api/v1/keysx"
        ));
    }

    #[test]
    fn validation() {
        let all = |_: Permission| true;
        let now = 1_000;
        let ok = validate_new(
            &NewKey {
                name: " ci ".into(),
                ..Default::default()
            },
            now,
            &all,
        )
        .unwrap();
        assert_eq!(ok.name, "ci");
        assert_eq!(ok.category, Category::Basic);
        assert_eq!(
            ok.scopes,
            scopes(&[("keys", Access::Write), ("org", Access::Read)])
        );

        let bad = |new: NewKey, field: &str| {
            let e = validate_new(&new, now, &all).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e:?}");
        };
        bad(
            NewKey {
                name: "".into(),
                ..Default::default()
            },
            "name",
        );
        bad(
            NewKey {
                name: "k".into(),
                environment: Some("prod".into()),
                ..Default::default()
            },
            "environment",
        );
        bad(
            NewKey {
                name: "k".into(),
                category: Some("root".into()),
                ..Default::default()
            },
            "category",
        );
        bad(
            NewKey {
                name: "k".into(),
                category: Some("custom".into()),
                ..Default::default()
            },
            "scopes",
        );
        bad(
            NewKey {
                name: "k".into(),
                scopes: Some(scopes(&[("rockets", Access::Read)])),
                ..Default::default()
            },
            "scopes",
        );
        bad(
            NewKey {
                name: "k".into(),
                ip_allowlist: Some(vec!["10.0.0.0/99".into()]),
                ..Default::default()
            },
            "ip_allowlist",
        );
        bad(
            NewKey {
                name: "k".into(),
                expires_at: Some("tomorrow".into()),
                ..Default::default()
            },
            "expires_at",
        );
        bad(
            NewKey {
                name: "k".into(),
                expires_at: Some("1970-01-01T00:00:00Z".into()),
                ..Default::default()
            },
            "expires_at",
        );
        bad(
            NewKey {
                name: "k".into(),
                metadata: Some(serde_json::json!([1])),
                ..Default::default()
            },
            "metadata",
        );
        bad(
            NewKey {
                name: "k".into(),
                endpoints: Some(vec![EndpointRule {
                    method: "FETCH".into(),
                    path: "/x".into(),
                }]),
                ..Default::default()
            },
            "endpoints",
        );

        // A creator cannot hand out what they do not hold.
        let only_keys = |p: Permission| matches!(p, Permission::KeysRead | Permission::KeysWrite);
        let e = validate_new(
            &NewKey {
                name: "k".into(),
                category: Some("admin".into()),
                ..Default::default()
            },
            now,
            &only_keys,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
    }

    #[test]
    fn status_by_date() {
        assert_eq!(effective_status("active", Some(10), 11), KeyStatus::Expired);
        assert_eq!(effective_status("active", Some(10), 9), KeyStatus::Active);
        assert_eq!(
            effective_status("disabled", Some(10), 11),
            KeyStatus::Disabled
        );
        assert_eq!(effective_status("revoked", None, 0), KeyStatus::Revoked);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("x", "1970-01-01T00:00:01Z").unwrap(), 1000);
    }
}
