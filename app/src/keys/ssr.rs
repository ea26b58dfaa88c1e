//! API key storage (server only): create, list, get, status transitions, roll with grace and
//! history. The pure rules live in `keys::rules`, verification in `keys::verify`; both are
//! re-exported here so callers have one path.

use super::format::{self, Environment};
use super::signature::SigningSecret;
use super::{ApiKey, BulkOutcome, Category, CreatedKey, KeyEvent, KeyStatus};
use crate::error::AppError;
use crate::ssr::db::{new_id, now_ms, Db};
use crate::ssr::AppState;
use sqlx::{Any, Row, Transaction};

const COLUMNS: &str = "api_key_id, organization_id, owner_user_id, name, description, environment, display_prefix, status, category, scopes, endpoints, ip_allowlist, require_signature, metadata, expires_at, rolled_to_key_id, created_by, created_at, updated_at, last_used_at";

/// Who did something to a key (a user id or a key id) and from where.
#[derive(Clone, Copy, Debug, Default)]
pub struct Actor<'a> {
    pub id: Option<&'a str>,
    pub source_ip: Option<&'a str>,
}

impl<'a> From<&'a crate::ssr::Caller> for Actor<'a> {
    /// The signed-in console user behind a server function call.
    fn from(caller: &'a crate::ssr::Caller) -> Self {
        Actor {
            id: caller.user_id.as_deref(),
            source_ip: caller.source_ip.as_deref(),
        }
    }
}

pub use super::rules::*;
pub use super::verify::*;

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

pub(crate) async fn record_event(
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

/// What identifies a key in storage: its hash, how it was hashed, and what lists show.
#[derive(Clone, Debug)]
pub(crate) struct Material {
    pub hash: String,
    pub algorithm: &'static str,
    pub display_prefix: String,
}

impl Material {
    /// A key we see in full (issued here, or a plaintext import): peppered HMAC.
    pub fn from_secret(pepper: &[u8; 32], secret: &str) -> Material {
        Material {
            hash: format::hash(pepper, secret),
            algorithm: "hmac-sha256",
            display_prefix: format::display_prefix(secret),
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_key(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
    owner_user_id: Option<&str>,
    s: &Settings,
    material: &Material,
    status: &str,
    pepper: &[u8; 32],
    actor: Actor<'_>,
) -> Result<(String, SigningSecret), AppError> {
    let id = new_id("key");
    let now = now_ms();
    let salt = super::signature::new_salt();
    let ips: Vec<String> = s.ip_allowlist.iter().map(|n| n.to_string()).collect();
    sqlx::query(
        "insert into api_key (api_key_id, organization_id, owner_user_id, name, description, environment, key_hash, hash_algorithm,
            display_prefix, status, category, scopes, endpoints, ip_allowlist, require_signature, metadata, expires_at, created_by, created_at, updated_at, signing_salt)
         values ($1, $2, $3, $4, $5, $6, $7, $19, $8, $20, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17, $18)",
    )
    .bind(&id)
    .bind(org_id)
    .bind(owner_user_id)
    .bind(&s.name)
    .bind(&s.description)
    .bind(s.environment.as_str())
    .bind(&material.hash)
    .bind(&material.display_prefix)
    .bind(s.category.as_str())
    .bind(serde_json::to_string(&s.scopes).map_err(AppError::internal)?)
    .bind(serde_json::to_string(&s.endpoints).map_err(AppError::internal)?)
    .bind(serde_json::to_string(&ips).map_err(AppError::internal)?)
    .bind(s.require_signature as i64)
    .bind(s.metadata.to_string())
    .bind(s.expires_at)
    .bind(actor.id)
    .bind(now)
    .bind(&salt)
    .bind(material.algorithm)
    .bind(status)
    .execute(&mut **tx)
    .await?;
    let signing = super::signature::signing_secret(pepper, &id, &salt);
    Ok((id, signing))
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
    let (id, signing) = insert_key(
        &mut tx,
        org_id,
        owner_user_id,
        settings,
        &Material::from_secret(pepper, &secret),
        "active",
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
        signing_secret: signing.expose().to_string(),
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

/// A page of the organization's keys matching `query`.
pub async fn search(
    db: &Db,
    org_id: &str,
    query: &super::KeyQuery,
) -> Result<super::KeyList, AppError> {
    enum Arg {
        Text(String),
        Int(i64),
    }
    let now = now_ms();
    let mut clauses = vec!["organization_id = $1".to_string()];
    let mut args = vec![Arg::Text(org_id.to_string())];
    fn bind(arg: Arg, args: &mut Vec<Arg>) -> String {
        args.push(arg);
        format!("${}", args.len())
    }
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        if q.chars().count() > 100 {
            return Err(AppError::invalid("q", "search at most 100 characters"));
        }
        let pattern = format!(
            "%{}%",
            q.to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let p = bind(Arg::Text(pattern), &mut args);
        clauses.push(format!(
            "(lower(name) like {p} escape '\\' or lower(description) like {p} escape '\\' or lower(display_prefix) like {p} escape '\\')"
        ));
    }
    if let Some(status) = query.status.as_deref().filter(|s| !s.is_empty()) {
        let n = bind(Arg::Int(now), &mut args);
        clauses.push(match status {
            "active" => format!("(status = 'active' and (expires_at is null or expires_at > {n}))"),
            "expired" => format!("(status = 'active' and expires_at <= {n})"),
            "disabled" => "status = 'disabled'".into(),
            "revoked" => "status = 'revoked'".into(),
            _ => {
                return Err(AppError::invalid(
                    "status",
                    "status must be active, disabled, revoked or expired",
                ))
            }
        });
    }
    if let Some(c) = query.category.as_deref().filter(|s| !s.is_empty()) {
        let c = Category::parse(c).ok_or_else(|| {
            AppError::invalid(
                "category",
                "category must be basic, read_only, admin or custom",
            )
        })?;
        let p = bind(Arg::Text(c.as_str().into()), &mut args);
        clauses.push(format!("category = {p}"));
    }
    match query.owner.as_deref().filter(|s| !s.is_empty()) {
        None => {}
        Some("org") => clauses.push("owner_user_id is null".into()),
        Some("personal") => clauses.push("owner_user_id is not null".into()),
        Some(_) => return Err(AppError::invalid("owner", "owner must be org or personal")),
    }
    if let Some(days) = query.expiring_within_days {
        if !(1..=3660).contains(&days) {
            return Err(AppError::invalid(
                "expiring_within_days",
                "expiring_within_days must be between 1 and 3660",
            ));
        }
        let from = bind(Arg::Int(now), &mut args);
        let to = bind(Arg::Int(now + days * 86_400_000), &mut args);
        clauses.push(format!(
            "(status = 'active' and expires_at > {from} and expires_at <= {to})"
        ));
    }
    let order = match query.sort.as_deref().unwrap_or("created_desc") {
        "" | "created_desc" => "created_at desc, api_key_id",
        "created_asc" => "created_at asc, api_key_id",
        "name" => "lower(name) asc, api_key_id",
        "expires_at" => {
            "case when expires_at is null then 1 else 0 end, expires_at asc, api_key_id"
        }
        "last_used_desc" => {
            "case when last_used_at is null then 1 else 0 end, last_used_at desc, api_key_id"
        }
        _ => {
            return Err(AppError::invalid(
                "sort",
                "sort must be created_desc, created_asc, name, expires_at or last_used_desc",
            ))
        }
    };
    let per_page = query.per_page.unwrap_or(25);
    if !(1..=100).contains(&per_page) {
        return Err(AppError::invalid(
            "per_page",
            "per_page must be between 1 and 100",
        ));
    }
    let page = query.page.unwrap_or(1);
    if !(1..=100_000).contains(&page) {
        return Err(AppError::invalid("page", "page must be 1 or more"));
    }
    let filter = clauses.join(" and ");
    fn bind_all<'q>(
        sql: &'q str,
        args: &'q [Arg],
    ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
        let mut q = sqlx::query(sql);
        for a in args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }
    let count_sql = format!("select count(*) as n from api_key where {filter}");
    let total: i64 = bind_all(&count_sql, &args)
        .fetch_one(&db.reader)
        .await?
        .try_get("n")?;
    // Only whitelisted text and checked integers are formatted into the SQL; values are bound.
    let page_sql = format!(
        "select {COLUMNS} from api_key where {filter} order by {order} limit {per_page} offset {}",
        (page - 1) * per_page
    );
    let rows = bind_all(&page_sql, &args).fetch_all(&db.reader).await?;
    let data = rows
        .iter()
        .map(|r| Ok(KeyRow::from_row(r)?.to_wire(now)))
        .collect::<Result<Vec<_>, AppError>>()?;
    Ok(super::KeyList {
        data,
        total,
        page,
        per_page,
    })
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
    let reason = clean_reason(reason)?;
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

/// The reason recorded on a timeline entry: trimmed, empty means none, at most 500
/// characters.
pub fn clean_reason(reason: Option<&str>) -> Result<Option<&str>, AppError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if reason.is_some_and(|r| r.chars().count() > 500) {
        return Err(AppError::invalid(
            "reason",
            "reason must be at most 500 characters",
        ));
    }
    Ok(reason)
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
    let reason = clean_reason(reason)?;
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
    let (new_id, signing) = insert_key(
        &mut tx,
        org_id,
        old.owner_user_id.as_deref(),
        &settings,
        &Material::from_secret(pepper, &secret),
        "active",
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
        signing_secret: signing.expose().to_string(),
    })
}

/// The key's status timeline, oldest first.
pub async fn history(db: &Db, org_id: &str, key_id: &str) -> Result<Vec<KeyEvent>, AppError> {
    let key = row(db, org_id, key_id).await?;
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

/// Most keys one bulk request may name.
pub const BULK_MAX: usize = 100;

/// Applies one transition to many keys, each on its own: one key's refusal does not stop the
/// others, and every key gets its own outcome.
pub async fn bulk(
    state: &AppState,
    org_id: &str,
    ids: &[String],
    t: Transition,
    reason: Option<&str>,
    actor: Actor<'_>,
) -> Result<Vec<BulkOutcome>, AppError> {
    if ids.is_empty() || ids.len() > BULK_MAX {
        return Err(AppError::invalid(
            "ids",
            format!("name between 1 and {BULK_MAX} keys"),
        ));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let outcome = match transition(state, org_id, id, t, reason, actor).await {
            Ok(key) => BulkOutcome {
                id: id.clone(),
                ok: true,
                status: Some(key.status),
                code: None,
                message: None,
            },
            Err(e) if e.code == crate::error::ErrorCode::Internal => return Err(e),
            Err(e) => BulkOutcome {
                id: id.clone(),
                ok: false,
                status: None,
                code: Some(e.code.as_str()),
                message: Some(e.message),
            },
        };
        out.push(outcome);
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

/// CSV export of keys: settings and state, never a secret or hash.
pub fn to_csv(keys: &[ApiKey]) -> String {
    fn cell(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    let mut out = String::from("id,name,description,environment,display_prefix,status,category,scopes,ip_allowlist,expires_at,created_at,last_used_at\n");
    for k in keys {
        let scopes = serde_json::to_string(&k.scopes).unwrap_or_default();
        let row = [
            k.id.as_str(),
            &k.name,
            &k.description,
            &k.environment,
            &k.display_prefix,
            k.status.as_str(),
            k.category.as_str(),
            &scopes,
            &k.ip_allowlist.join(" "),
            k.expires_at.as_deref().unwrap_or(""),
            &k.created_at,
            k.last_used_at.as_deref().unwrap_or(""),
        ];
        out.push_str(&row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(","));
        out.push('\n');
    }
    out
}

/// Edits a key's settings (not its secret, environment or status), validated like a new
/// key; records an `edited` event naming the changed fields. Revoked keys are final.
pub async fn update(
    state: &AppState,
    org_id: &str,
    key_id: &str,
    patch: &super::KeyPatch,
    may_grant: &(dyn Fn(crate::access::Permission) -> bool + Sync),
    actor: Actor<'_>,
) -> Result<ApiKey, AppError> {
    let reason = clean_reason(patch.reason.as_deref())?;
    let current = row(&state.db, org_id, key_id).await?;
    if current.status == "revoked" {
        return Err(AppError::conflict(
            "status",
            "the key is revoked; revocation is final",
        ));
    }
    let now = now_ms();
    let wire = current.to_wire(now);
    let (category, scopes) = match (&patch.category, &patch.scopes) {
        (None, None) if wire.category == Category::Custom => {
            (Some("custom".to_string()), Some(wire.scopes.clone()))
        }
        (None, None) => (Some(wire.category.as_str().to_string()), None),
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
    let mut settings = validate_new(&new, now, may_grant)?;
    if patch.expires_at.is_none() {
        // Left unchanged: keep it as it is, even when already past.
        settings.expires_at = current.expires_at;
    }
    let mut changed: Vec<&str> = Vec::new();
    for (field, sent) in [
        ("name", patch.name.is_some()),
        ("description", patch.description.is_some()),
        ("category", patch.category.is_some()),
        ("scopes", patch.scopes.is_some()),
        ("endpoints", patch.endpoints.is_some()),
        ("ip_allowlist", patch.ip_allowlist.is_some()),
        ("expires_at", patch.expires_at.is_some()),
        ("require_signature", patch.require_signature.is_some()),
        ("metadata", patch.metadata.is_some()),
    ] {
        if sent {
            changed.push(field);
        }
    }
    if changed.is_empty() {
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
    let mut tx = state.db.writer.begin().await?;
    sqlx::query(
        "update api_key set name = $1, description = $2, category = $3, scopes = $4, endpoints = $5, ip_allowlist = $6,
            expires_at = $7, require_signature = $8, metadata = $9, updated_at = $10
         where api_key_id = $11 and organization_id = $12",
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
    .bind(now)
    .bind(key_id)
    .bind(org_id)
    .execute(&mut *tx)
    .await?;
    record_event(
        &mut tx,
        key_id,
        org_id,
        "edited",
        reason,
        actor,
        serde_json::json!({ "changed": changed }),
    )
    .await?;
    tx.commit().await?;
    state.keys.clear();
    get(&state.db, org_id, key_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

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
