//! API key storage (server only): create, list, get, status transitions, roll with grace and
//! history. The pure rules live in `keys::rules`, verification in `keys::verify`; both are
//! re-exported here so callers have one path.

use super::format::{self, Environment};
use super::signature::SigningSecret;
use super::{ApiKey, BulkOutcome, Category, CreatedKey, KeyEvent, KeyStatus};
use crate::access::ssr::Grant;
use crate::access::Permissions;
use crate::error::AppError;
use crate::ssr::db::{new_id, now_ms, Db};
use crate::ssr::AppState;
use sqlx::{Any, Row, Transaction};

const COLUMNS: &str = "api_key_id, organization_id, owner_user_id, name, description, environment, display_prefix, status, category, scopes, endpoints, ip_allowlist, require_signature, metadata, expires_at, rolled_to_key_id, created_by, created_at, updated_at, last_used_at";

/// The status column of a key (`expired` is not stored: it follows from the date).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredStatus {
    Active,
    Disabled,
    Revoked,
}

impl StoredStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StoredStatus::Active => "active",
            StoredStatus::Disabled => "disabled",
            StoredStatus::Revoked => "revoked",
        }
    }

    /// Reads the column; anything unknown is treated as revoked (fail closed).
    pub fn parse(s: &str) -> StoredStatus {
        match s {
            "active" => StoredStatus::Active,
            "disabled" => StoredStatus::Disabled,
            _ => StoredStatus::Revoked,
        }
    }
}

/// What happened to a key, as its timeline (`api_key_event.kind`) and the domain events
/// (`key.created`…) name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyEventKind {
    Created,
    Imported,
    Edited,
    Disabled,
    Enabled,
    Rolled,
    Revoked,
}

impl KeyEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyEventKind::Created => "created",
            KeyEventKind::Imported => "imported",
            KeyEventKind::Edited => "edited",
            KeyEventKind::Disabled => "disabled",
            KeyEventKind::Enabled => "enabled",
            KeyEventKind::Rolled => "rolled",
            KeyEventKind::Revoked => "revoked",
        }
    }

    /// The domain event the change is recorded as.
    pub fn event(self) -> &'static str {
        match self {
            KeyEventKind::Created => "key.created",
            KeyEventKind::Imported => "key.imported",
            KeyEventKind::Edited => "key.edited",
            KeyEventKind::Disabled => "key.disabled",
            KeyEventKind::Enabled => "key.enabled",
            KeyEventKind::Rolled => "key.rolled",
            KeyEventKind::Revoked => "key.revoked",
        }
    }
}

/// Who did something to a key (a user id or a key id) and from where, as the timeline
/// records it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Actor<'a> {
    pub id: Option<&'a str>,
    pub source_ip: Option<&'a str>,
}

/// Who acts on keys: their grant in the organization (whose ceiling bounds what they may
/// hand out or bring back) and where from. Every key operation takes one, and works in the
/// grant's organization only.
#[derive(Clone, Copy, Debug)]
pub struct Acting<'a> {
    pub grant: &'a Grant,
    pub source_ip: Option<&'a str>,
}

impl<'a> Acting<'a> {
    pub fn new(grant: &'a Grant, source_ip: Option<&'a str>) -> Acting<'a> {
        Acting { grant, source_ip }
    }

    /// The organization the grant is for: the only one the operation touches.
    pub fn org(&self) -> &'a str {
        &self.grant.organization_id
    }

    pub fn actor(&self) -> Actor<'a> {
        Actor {
            id: Some(self.grant.principal.actor_id()),
            source_ip: self.source_ip,
        }
    }

    /// Refuses unless the caller could hold everything `key` holds; and a personal token can
    /// only be taken over (rolled, re-enabled: either way its holder ends up with a working
    /// secret) by its owner. Nothing is written on a refusal.
    fn may_take_over(&self, key: &KeyRow) -> Result<(), AppError> {
        self.grant.require_all(key.permissions())?;
        match &key.owner_user_id {
            Some(owner) if self.grant.principal.acting_user() != Some(owner.as_str()) => {
                Err(AppError::new(
                    crate::error::ErrorCode::Forbidden,
                    "only its owner can roll or re-enable a personal access token",
                ))
            }
            _ => Ok(()),
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
    status: StoredStatus,
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
            status: StoredStatus::parse(&r.try_get::<String, _>("status")?),
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
        effective_status(self.status, self.expires_at, now)
    }

    /// What the key's scopes amount to (unreadable scopes amount to nothing).
    fn permissions(&self) -> Permissions {
        let scopes: super::Scopes = serde_json::from_str(&self.scopes).unwrap_or_default();
        scope_permissions(&scopes).into_iter().collect()
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
pub fn effective_status(stored: StoredStatus, expires_at: Option<i64>, now: i64) -> KeyStatus {
    match stored {
        StoredStatus::Revoked => KeyStatus::Revoked,
        StoredStatus::Disabled => KeyStatus::Disabled,
        _ if expires_at.is_some_and(|at| at <= now) => KeyStatus::Expired,
        StoredStatus::Active => KeyStatus::Active,
    }
}

pub(crate) async fn record_event(
    tx: &mut Transaction<'_, Any>,
    key_id: &str,
    org_id: &str,
    kind: KeyEventKind,
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
    .bind(kind.as_str())
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
            kind: kind.event(),
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
    /// See [`format::fingerprint`]: unique over every stored key.
    pub fingerprint: String,
}

impl Material {
    /// A key we see in full (issued here, or a plaintext import): peppered HMAC.
    pub fn from_secret(pepper: &[u8; 32], secret: &str) -> Material {
        Material {
            hash: format::hash(pepper, secret),
            algorithm: "hmac-sha256",
            display_prefix: format::display_prefix(secret),
            fingerprint: format::fingerprint(pepper, &format::sha256_hex(secret)),
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
    status: StoredStatus,
    pepper: &[u8; 32],
    actor: Actor<'_>,
) -> Result<(String, SigningSecret), AppError> {
    let id = new_id("key");
    let now = now_ms();
    let salt = super::signature::new_salt();
    let ips: Vec<String> = s.ip_allowlist.iter().map(|n| n.to_string()).collect();
    sqlx::query(
        "insert into api_key (api_key_id, organization_id, owner_user_id, name, description, environment, key_hash, hash_algorithm,
            display_prefix, status, category, scopes, endpoints, ip_allowlist, require_signature, metadata, expires_at, created_by, created_at, updated_at, signing_salt,
            key_fingerprint)
         values ($1, $2, $3, $4, $5, $6, $7, $19, $8, $20, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17, $18, $21)",
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
    .bind(status.as_str())
    .bind(&material.fingerprint)
    .execute(&mut **tx)
    .await
    .map_err(|e| match &e {
        // The same key value, however it was stored and by whichever organization: say so
        // without saying where.
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            AppError::conflict("key", "this key is already registered")
        }
        _ => AppError::from(e),
    })?;
    let signing = super::signature::signing_secret(pepper, &id, &salt);
    Ok((id, signing))
}

/// Creates a key in the grant's organization (a personal access token of `owner_user_id` when
/// given). `settings` were validated against the same grant ([`validate_new`]).
pub async fn create(
    db: &Db,
    pepper: &[u8; 32],
    acting: Acting<'_>,
    owner_user_id: Option<&str>,
    settings: &Settings,
) -> Result<CreatedKey, AppError> {
    let (org_id, actor) = (acting.org(), acting.actor());
    let secret = format::generate(settings.environment);
    let mut tx = db.writer.begin().await?;
    let (id, signing) = insert_key(
        &mut tx,
        org_id,
        owner_user_id,
        settings,
        &Material::from_secret(pepper, &secret),
        StoredStatus::Active,
        pepper,
        actor,
    )
    .await?;
    record_event(
        &mut tx,
        &id,
        org_id,
        KeyEventKind::Created,
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
    row_from(&db.reader, org_id, key_id).await
}

/// The row as the writer sees it: on SQLite the reader pool may lag a commit made an instant
/// ago by the single writer connection; decisions that lead to a write read here.
async fn row_fresh(db: &Db, org_id: &str, key_id: &str) -> Result<KeyRow, AppError> {
    row_from(&db.writer, org_id, key_id).await
}

async fn row_from(pool: &sqlx::AnyPool, org_id: &str, key_id: &str) -> Result<KeyRow, AppError> {
    let r = sqlx::query(&format!(
        "select {COLUMNS} from api_key where api_key_id = $1 and organization_id = $2"
    ))
    .bind(key_id)
    .bind(org_id)
    .fetch_optional(pool)
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

/// Applies a transition; refuses what makes no sense (enabling a revoked key…), and an enable
/// of a key holding more than the caller (or of someone else's personal token).
///
/// The write is conditional on the status that was read (`… where status = <read>`): of two
/// racing transitions, on one instance or several, only one applies to a given state, and the
/// other re-reads and decides again. `revoked` is final: nothing moves a key out of it.
pub async fn transition(
    state: &AppState,
    acting: Acting<'_>,
    key_id: &str,
    t: Transition,
    reason: Option<&str>,
) -> Result<ApiKey, AppError> {
    let (db, org_id) = (&state.db, acting.org());
    let reason = clean_reason(reason)?;
    // A lost race means the state moved under us: decide again from the new state. Each
    // retry follows a real change, so a few are plenty.
    for _ in 0..5 {
        let current = row_fresh(db, org_id, key_id).await?;
        use StoredStatus::{Active, Disabled, Revoked};
        let (to, kind) = match (t, current.status) {
            (_, Revoked) => {
                return Err(AppError::conflict(
                    "status",
                    "the key is revoked; revocation is final",
                ))
            }
            (Transition::Enable, Active) => {
                return Err(AppError::conflict("status", "the key is already active"))
            }
            (Transition::Disable, Disabled) => {
                return Err(AppError::conflict("status", "the key is already disabled"))
            }
            (Transition::Enable, _) => (Active, KeyEventKind::Enabled),
            (Transition::Disable, _) => (Disabled, KeyEventKind::Disabled),
            (Transition::Revoke, _) => (Revoked, KeyEventKind::Revoked),
        };
        if t == Transition::Enable {
            acting.may_take_over(&current)?;
        }
        let mut tx = db.writer.begin().await?;
        let applied = sqlx::query(
            "update api_key set status = $1, updated_at = $2
             where api_key_id = $3 and organization_id = $4 and status = $5",
        )
        .bind(to.as_str())
        .bind(now_ms())
        .bind(key_id)
        .bind(org_id)
        .bind(current.status.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if applied == 0 {
            continue;
        }
        record_event(
            &mut tx,
            key_id,
            org_id,
            kind,
            reason,
            acting.actor(),
            serde_json::json!({ "from": current.status.as_str() }),
        )
        .await?;
        tx.commit().await?;
        KeyCache::of(state)?.clear();
        return get(db, org_id, key_id).await;
    }
    Err(AppError::conflict(
        "status",
        "the key is changing under concurrent requests; try again",
    ))
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
///
/// The new secret carries the old key's scopes, so the caller must hold all of them (and a
/// personal token can only be rolled by its owner). The old key is marked rolled by a write
/// conditional on it still being active and not yet rolled, so two racing rolls cannot both
/// hand out a successor.
pub async fn roll(
    state: &AppState,
    acting: Acting<'_>,
    key_id: &str,
    grace_seconds: i64,
    reason: Option<&str>,
) -> Result<CreatedKey, AppError> {
    let (db, cache, pepper) = (&state.db, KeyCache::of(state)?, &state.config.secret);
    let (org_id, actor) = (acting.org(), acting.actor());
    let reason = clean_reason(reason)?;
    if !(0..=90 * 24 * 3600).contains(&grace_seconds) {
        return Err(AppError::invalid(
            "grace_seconds",
            "grace_seconds must be between 0 and 7776000 (90 days)",
        ));
    }
    let old = row_fresh(db, org_id, key_id).await?;
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
    acting.may_take_over(&old)?;
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
        StoredStatus::Active,
        pepper,
        actor,
    )
    .await?;
    let old_expiry = old.expires_at.map_or(grace_ends, |e| e.min(grace_ends));
    let marked = sqlx::query(
        "update api_key set expires_at = $1, rolled_to_key_id = $2, updated_at = $3
         where api_key_id = $4 and organization_id = $5 and status = 'active' and rolled_to_key_id is null
           and (expires_at is null or expires_at > $3)",
    )
    .bind(old_expiry)
    .bind(&new_id)
    .bind(now)
    .bind(key_id)
    .bind(org_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if marked == 0 {
        // Dropping the transaction rolls the new key back.
        return Err(AppError::conflict(
            "status",
            "the key changed while it was being rolled (revoked, disabled or rolled meanwhile)",
        ));
    }
    let detail = serde_json::json!({ "rolled_to": new_id, "grace_seconds": grace_seconds, "stops_at": rfc3339(old_expiry) });
    record_event(
        &mut tx,
        key_id,
        org_id,
        KeyEventKind::Rolled,
        reason,
        actor,
        detail,
    )
    .await?;
    record_event(
        &mut tx,
        &new_id,
        org_id,
        KeyEventKind::Created,
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
        if key.status == StoredStatus::Active {
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
    acting: Acting<'_>,
    ids: &[String],
    t: Transition,
    reason: Option<&str>,
) -> Result<Vec<BulkOutcome>, AppError> {
    if ids.is_empty() || ids.len() > BULK_MAX {
        return Err(AppError::invalid(
            "ids",
            format!("name between 1 and {BULK_MAX} keys"),
        ));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let outcome = match transition(state, acting, id, t, reason).await {
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

/// Cell starts that spreadsheets read as a formula (CSV injection).
pub const FORMULA_STARTS: &[char] = &['=', '+', '-', '@', '\t', '\r'];

/// A cell as written to CSV: one that a spreadsheet would run as a formula gets a leading `'`
/// (OWASP's advice); our import takes it off again.
fn csv_cell(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(FORMULA_STARTS) {
        format!("'{s}").into()
    } else {
        s.into()
    }
}

/// CSV export of keys: settings and state, never a secret or hash. Written with the `csv`
/// crate (quoting) and [`csv_cell`] (formula escaping).
pub fn to_csv(keys: &[ApiKey]) -> Result<String, AppError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "id",
        "name",
        "description",
        "environment",
        "display_prefix",
        "status",
        "category",
        "scopes",
        "ip_allowlist",
        "expires_at",
        "created_at",
        "last_used_at",
    ];
    w.write_record(header).map_err(AppError::internal)?;
    for k in keys {
        let scopes = serde_json::to_string(&k.scopes).unwrap_or_default();
        let ips = k.ip_allowlist.join(" ");
        let row = [
            k.id.as_str(),
            &k.name,
            &k.description,
            &k.environment,
            &k.display_prefix,
            k.status.as_str(),
            k.category.as_str(),
            &scopes,
            &ips,
            k.expires_at.as_deref().unwrap_or(""),
            &k.created_at,
            k.last_used_at.as_deref().unwrap_or(""),
        ];
        w.write_record(row.iter().map(|c| csv_cell(c).into_owned()))
            .map_err(AppError::internal)?;
    }
    let bytes = w.into_inner().map_err(AppError::internal)?;
    String::from_utf8(bytes).map_err(AppError::internal)
}

/// Edits a key's settings (not its secret, environment or status), validated like a new
/// key; records an `edited` event naming the changed fields. Revoked keys are final.
///
/// The key after the edit is validated against the caller's ceiling like a new key, so a
/// caller can neither widen a key past what they hold nor edit one that holds more. The write
/// is conditional on the key not having been revoked meanwhile.
pub async fn update(
    state: &AppState,
    acting: Acting<'_>,
    key_id: &str,
    patch: &super::KeyPatch,
) -> Result<ApiKey, AppError> {
    let org_id = acting.org();
    let reason = clean_reason(patch.reason.as_deref())?;
    let current = row_fresh(&state.db, org_id, key_id).await?;
    if current.status == StoredStatus::Revoked {
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
    let mut settings = validate_new(&new, now, acting.grant)?;
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
    let applied = sqlx::query(
        "update api_key set name = $1, description = $2, category = $3, scopes = $4, endpoints = $5, ip_allowlist = $6,
            expires_at = $7, require_signature = $8, metadata = $9, updated_at = $10
         where api_key_id = $11 and organization_id = $12 and status <> 'revoked'",
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
    .await?
    .rows_affected();
    if applied == 0 {
        return Err(AppError::conflict(
            "status",
            "the key is revoked; revocation is final",
        ));
    }
    record_event(
        &mut tx,
        key_id,
        org_id,
        KeyEventKind::Edited,
        reason,
        acting.actor(),
        serde_json::json!({ "changed": changed }),
    )
    .await?;
    tx.commit().await?;
    KeyCache::of(state)?.clear();
    get(&state.db, org_id, key_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_by_date() {
        assert_eq!(
            effective_status(StoredStatus::Active, Some(10), 11),
            KeyStatus::Expired
        );
        assert_eq!(
            effective_status(StoredStatus::Active, Some(10), 9),
            KeyStatus::Active
        );
        assert_eq!(
            effective_status(StoredStatus::Disabled, Some(10), 11),
            KeyStatus::Disabled
        );
        assert_eq!(
            effective_status(StoredStatus::Revoked, None, 0),
            KeyStatus::Revoked
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("x", "1970-01-01T00:00:01Z").unwrap(), 1000);
    }
}
