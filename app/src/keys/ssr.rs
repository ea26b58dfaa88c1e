//! API key storage (server only): the row, who acts (`Acting`), create, get, list and
//! history. Around it: `keys::lifecycle` (status transitions, roll, bulk, edit), `keys::search`
//! (the list's filters), `keys::export` (CSV), `keys::rules` (pure validation) and
//! `keys::verify` (the hot path); all are re-exported here so callers have one path.

use super::format;
use super::signature::SigningSecret;
use super::{ApiKey, Category, CreatedKey, KeyEvent, KeyStatus};
use crate::access::ssr::Grant;
use crate::access::Permissions;
use crate::error::AppError;
use crate::ssr::db::{new_id, now_ms, Db};
use sqlx::{Any, Row, Transaction};

pub(crate) const COLUMNS: &str = "api_key_id, organization_id, owner_user_id, name, description, environment, display_prefix, status, category, scopes, endpoints, ip_allowlist, require_signature, metadata, expires_at, rolled_to_key_id, created_by, created_at, updated_at, last_used_at, plan_id, rate_limit, rate_window_seconds, permissions, approval";

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

/// Where a key stands with its organization's approval policy (`api_key.approval`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Approval {
    /// Waits for an approver; refused by verification whatever its status.
    Pending,
    /// Approved, or never needed approval.
    Approved,
    /// Rejected (and revoked in the same statement).
    Rejected,
}

impl Approval {
    pub fn as_str(self) -> &'static str {
        match self {
            Approval::Pending => "pending",
            Approval::Approved => "approved",
            Approval::Rejected => "rejected",
        }
    }

    /// Reads the column; anything unknown is treated as pending (fail closed).
    pub fn parse(s: &str) -> Approval {
        match s {
            "approved" => Approval::Approved,
            "rejected" => Approval::Rejected,
            _ => Approval::Pending,
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
    Approved,
    Rejected,
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
            KeyEventKind::Approved => "approved",
            KeyEventKind::Rejected => "rejected",
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
            KeyEventKind::Approved => "key.approved",
            KeyEventKind::Rejected => "key.rejected",
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

    /// Opens a transaction that writes keys for this caller, and checks in it, again, that an
    /// acting key is still usable: a request verified a moment before its key was disabled
    /// does not go on to create, roll, edit or enable keys (a new secret would undo the
    /// disable). Every key-writing path opens its transaction here.
    pub(crate) async fn begin(&self, db: &Db) -> Result<Transaction<'static, Any>, AppError> {
        let mut tx = db.writer.begin().await?;
        self.grant.require_acting_key_usable(&mut tx).await?;
        Ok(tx)
    }

    /// Refuses unless the caller could hold everything `key` holds (a key acting: and `key` is
    /// as restricted as it, see [`crate::access::ssr::KeyBounds`]); and a personal token can
    /// only be taken over (rolled, re-enabled: either way its holder ends up with a working
    /// secret) by its owner. Nothing is written on a refusal.
    pub(crate) async fn may_take_over(&self, db: &Db, key: &KeyRow) -> Result<(), AppError> {
        self.grant.require_environment(key.is_test())?;
        self.grant.require_all(key.permissions())?;
        crate::access::ssr::require_dynamic(db, self.grant, &key.dynamic_permissions()).await?;
        if let Some(own) = self.grant.key_bounds() {
            // An unrestricted key bounds nothing, so it need not read the key's restrictions
            // (and may set anew ones that cannot be read).
            if *own != crate::access::ssr::KeyBounds::default() {
                self.grant.require_within(&key.bounds()?)?;
            }
            // Nor one that may go faster than the acting key (its secret would).
            let (limit, window) =
                crate::usage::ssr::effective_limit(&db.writer, &key.organization_id, &key.id)
                    .await?
                    .ok_or_else(|| AppError::not_found("key"))?;
            self.grant
                .require_rate_within(limit.max(0) as u64, window)?;
        }
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

pub use super::export::*;
pub use super::lifecycle::*;
pub use super::rules::*;
pub use super::search::*;
pub use super::verify::*;

// ---------------------------------------------------------------------------------------------
// Rows.

pub(crate) struct KeyRow {
    pub(crate) id: String,
    pub(crate) organization_id: String,
    pub(crate) owner_user_id: Option<String>,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) environment: String,
    pub(crate) display_prefix: String,
    pub(crate) status: StoredStatus,
    pub(crate) category: String,
    pub(crate) scopes: String,
    /// JSON array of dynamic permission names.
    pub(crate) dynamic: String,
    pub(crate) endpoints: String,
    pub(crate) ip_allowlist: String,
    pub(crate) require_signature: i64,
    pub(crate) metadata: String,
    pub(crate) expires_at: Option<i64>,
    pub(crate) rolled_to_key_id: Option<String>,
    pub(crate) created_by: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) last_used_at: Option<i64>,
    pub(crate) plan_id: Option<String>,
    pub(crate) rate_limit: Option<i64>,
    pub(crate) rate_window_seconds: Option<i64>,
    pub(crate) approval: Approval,
}

impl KeyRow {
    pub(crate) fn from_row(r: &sqlx::any::AnyRow) -> Result<KeyRow, sqlx::Error> {
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
            dynamic: r.try_get("permissions")?,
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
            plan_id: r.try_get("plan_id")?,
            rate_limit: r.try_get("rate_limit")?,
            rate_window_seconds: r.try_get("rate_window_seconds")?,
            approval: Approval::parse(&r.try_get::<String, _>("approval")?),
        })
    }

    pub(crate) fn status(&self, now: i64) -> KeyStatus {
        effective_status(
            self.status,
            self.approval == Approval::Pending,
            self.expires_at,
            now,
        )
    }

    /// What the key's scopes amount to (unreadable scopes amount to nothing).
    pub(crate) fn permissions(&self) -> Permissions {
        let scopes: super::Scopes = serde_json::from_str(&self.scopes).unwrap_or_default();
        scope_permissions(&scopes)
    }

    /// Whether it is a test key.
    pub(crate) fn is_test(&self) -> bool {
        format::Environment::is_test_name(&self.environment)
    }

    /// The key's restrictions (the authorization core's view).
    /// Unreadable ones are refused (409, logged): a key whose restrictions cannot be read is
    /// taken over by no one who is bounded (a user can still revoke it or set them anew).
    pub(crate) fn bounds(&self) -> Result<crate::access::ssr::KeyBounds, AppError> {
        let (_, endpoints, ip_allowlist) =
            super::verify::restrictions(&self.scopes, &self.endpoints, &self.ip_allowlist)
                .ok_or_else(|| {
                    tracing::error!(key_id = %self.id, "stored key restrictions cannot be read");
                    AppError::new(
                        crate::error::ErrorCode::Conflict,
                        format!(
                            "the stored restrictions of key {} cannot be read; a user must set them anew or revoke the key",
                            self.id
                        ),
                    )
                })?;
        Ok(crate::access::ssr::KeyBounds {
            expires_at: self.expires_at,
            ip_allowlist,
            endpoints,
            require_signature: self.require_signature != 0,
            test_only: self.is_test(),
        })
    }

    /// The key's dynamic permissions (unreadable ones amount to none: they only add).
    pub(crate) fn dynamic_permissions(&self) -> Vec<String> {
        serde_json::from_str(&self.dynamic).unwrap_or_default()
    }

    pub(crate) fn to_wire(&self, now: i64) -> ApiKey {
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
            permissions: self.dynamic_permissions(),
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
            plan_id: self.plan_id.clone(),
            rate_limit: self.rate_limit,
            rate_window_seconds: self.rate_window_seconds,
        }
    }
}

/// Stored status plus approval and the date: revoked is final, then a key awaiting approval is
/// pending (whatever else), and an active key past its expiry is expired.
pub fn effective_status(
    stored: StoredStatus,
    pending: bool,
    expires_at: Option<i64>,
    now: i64,
) -> KeyStatus {
    match stored {
        StoredStatus::Revoked => KeyStatus::Revoked,
        _ if pending => KeyStatus::Pending,
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
    pub algorithm: super::verify::Algorithm,
    pub display_prefix: String,
    /// See [`format::fingerprint`]: unique over every stored key.
    pub fingerprint: String,
}

impl Material {
    /// A key we see in full (issued here, or a plaintext import): peppered HMAC.
    pub fn from_secret(pepper: &[u8; 32], secret: &str) -> Material {
        Material {
            hash: format::hash(pepper, secret),
            algorithm: super::verify::Algorithm::HmacSha256,
            display_prefix: format::display_prefix(secret),
            fingerprint: format::fingerprint(pepper, &format::sha256_hex(secret)),
        }
    }
}

/// Refuses (400, naming it) a dynamic permission that is not one of the organization's.
pub(crate) async fn check_known(
    conn: &mut sqlx::AnyConnection,
    org_id: &str,
    names: &[String],
) -> Result<(), AppError> {
    for name in names {
        let known: Option<String> = sqlx::query_scalar(
            "select name from custom_permission where organization_id = $1 and name = $2",
        )
        .bind(org_id)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?;
        if known.is_none() {
            return Err(AppError::invalid(
                "permissions",
                format!("{name} is not a permission of this organization: create it on the roles page first"),
            ));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn insert_key(
    tx: &mut Transaction<'_, Any>,
    org_id: &str,
    owner_user_id: Option<&str>,
    s: &Settings,
    material: &Material,
    (status, approval): (StoredStatus, Approval),
    pepper: &[u8; 32],
    actor: Actor<'_>,
) -> Result<(String, SigningSecret), AppError> {
    // Only the organization's own dynamic permissions, and an expiry its policy allows,
    // whichever path writes the key (create, import, roll).
    check_known(tx, org_id, &s.permissions).await?;
    crate::orgs::policy::check_key_expiry(tx, org_id, s.expires_at).await?;
    let id = new_id("key");
    let now = now_ms();
    let salt = super::signature::new_salt();
    let ips: Vec<String> = s.ip_allowlist.iter().map(|n| n.to_string()).collect();
    sqlx::query(
        "insert into api_key (api_key_id, organization_id, owner_user_id, name, description, environment, key_hash, hash_algorithm,
            display_prefix, status, category, scopes, endpoints, ip_allowlist, require_signature, metadata, expires_at, created_by, created_at, updated_at, signing_salt,
            key_fingerprint, permissions, approval)
         values ($1, $2, $3, $4, $5, $6, $7, $19, $8, $20, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17, $18, $21, $22, $23)",
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
    .bind(material.algorithm.name())
    .bind(status.as_str())
    .bind(&material.fingerprint)
    .bind(serde_json::to_string(&s.permissions).map_err(AppError::internal)?)
    .bind(approval.as_str())
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

/// A key made by a key (created or imported) starts no faster than its maker: when the default
/// plan is faster than the acting key's own limit ([`crate::usage::window::Limit::allows_no_faster`]:
/// on average or in burst), the new key gets the
/// maker's limit as its own override, inside `tx`. Users, and keys that may change the plans
/// themselves, are not bounded so ([`crate::access::ssr::Grant::require_rate_within`]). A key
/// that asks for a plan or limit later goes through the same rule.
pub(crate) async fn inherit_maker_rate(
    tx: &mut Transaction<'_, Any>,
    grant: &crate::access::ssr::Grant,
    key_id: &str,
) -> Result<(), AppError> {
    let crate::access::ssr::Principal::Key { rate, .. } = &grant.principal else {
        return Ok(());
    };
    let (limit, window): (i64, i64) =
        sqlx::query_as("select request_limit, window_seconds from plan where plan_id = $1")
            .bind(crate::usage::DEFAULT_PLAN_ID)
            .fetch_one(&mut **tx)
            .await?;
    if grant
        .require_rate_within(limit.max(0) as u64, window)
        .is_ok()
    {
        return Ok(());
    }
    sqlx::query(
        "update api_key set plan_id = null, rate_limit = $1, rate_window_seconds = $2 where api_key_id = $3",
    )
    .bind(i64::try_from(rate.limit).unwrap_or(i64::MAX))
    .bind(rate.window_secs())
    .bind(key_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
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
    if !settings.permissions.is_empty() {
        // What is asked must exist (a clear 400) before whether the caller holds it (a 403).
        check_known(
            &mut *db.reader.acquire().await?,
            org_id,
            &settings.permissions,
        )
        .await?;
        crate::access::ssr::require_dynamic(db, acting.grant, &settings.permissions).await?;
    }
    let secret = format::generate(settings.environment);
    let mut tx = acting.begin(db).await?;
    let approval = crate::orgs::policy::new_key_approval(&mut tx, acting.grant).await?;
    let (id, signing) = insert_key(
        &mut tx,
        org_id,
        owner_user_id,
        settings,
        &Material::from_secret(pepper, &secret),
        (StoredStatus::Active, approval),
        pepper,
        actor,
    )
    .await?;
    inherit_maker_rate(&mut tx, acting.grant, &id).await?;
    record_event(
        &mut tx,
        &id,
        org_id,
        KeyEventKind::Created,
        None,
        actor,
        serde_json::json!({ "approval": approval.as_str() }),
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

pub(crate) async fn row(db: &Db, org_id: &str, key_id: &str) -> Result<KeyRow, AppError> {
    row_from(&db.reader, org_id, key_id).await
}

/// The row as the writer sees it: on SQLite the reader pool may lag a commit made an instant
/// ago by the single writer connection; decisions that lead to a write read here.
pub(crate) async fn row_fresh(db: &Db, org_id: &str, key_id: &str) -> Result<KeyRow, AppError> {
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

/// The key's status timeline, oldest first.
pub async fn history(db: &Db, org_id: &str, key_id: &str) -> Result<Vec<KeyEvent>, AppError> {
    let key = row(db, org_id, key_id).await?;
    let rows = sqlx::query(
        "select kind, actor, reason, source_ip, detail, occurred_at from api_key_event
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
                detail: serde_json::from_str(&r.try_get::<String, _>("detail")?)
                    .unwrap_or_else(|_| serde_json::json!({})),
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
                detail: serde_json::json!({}),
            });
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_by_date() {
        assert_eq!(
            effective_status(StoredStatus::Active, false, Some(10), 11),
            KeyStatus::Expired
        );
        assert_eq!(
            effective_status(StoredStatus::Active, false, Some(10), 9),
            KeyStatus::Active
        );
        assert_eq!(
            effective_status(StoredStatus::Disabled, false, Some(10), 11),
            KeyStatus::Disabled
        );
        assert_eq!(
            effective_status(StoredStatus::Revoked, false, None, 0),
            KeyStatus::Revoked
        );
        // Awaiting approval outranks disabled and expired; revocation outranks it.
        assert_eq!(
            effective_status(StoredStatus::Disabled, true, Some(10), 11),
            KeyStatus::Pending
        );
        assert_eq!(
            effective_status(StoredStatus::Active, true, None, 0),
            KeyStatus::Pending
        );
        assert_eq!(
            effective_status(StoredStatus::Revoked, true, None, 0),
            KeyStatus::Revoked
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("x", "1970-01-01T00:00:01Z").unwrap(), 1000);
    }
}
