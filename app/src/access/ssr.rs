//! The one authorization core: (principal, organization, permission) → a [`Grant`] carrying
//! the principal's ceiling, or a 403 naming the permission. Every server function and REST
//! route goes through [`authorize`]; every operation that hands out or brings back power
//! checks the grant's ceiling ([`Grant::require_all`]).
//!
//! The ceiling of a principal in an organization:
//! - a signed-in user: what their role there grants (instance permissions only in the system
//!   organization); nothing when they are disabled or not a member;
//! - an organization key: its scopes (instance scopes only in the system organization);
//! - a personal access token: its scopes **intersected with its owner's current ceiling**, so
//!   a demoted owner's tokens shrink with them, and a disabled or removed owner's tokens stop.
//!
//! A key acting is also bounded by its restrictions ([`KeyBounds`]: expiry, IP allow-list,
//! endpoint rules, signatures, environment, rate): a key it makes, edits or takes over stays inside them
//! ([`Grant::require_within`]), so a restricted key cannot mint or roll its way out of them.

use super::model::{AccessModel, GroupDef, RoleDef};
use super::{Permission, Permissions};
use crate::error::{AppError, ErrorCode};
use crate::ssr::Db;
use sqlx::Row;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The actor id of the operator at the machine's console (never a user id: those are
/// `usr_…`).
pub const OPERATOR_ID: &str = "cli";

/// The instance organization: roles held here make instance administrators.
pub const SYSTEM_ORG_ID: &str = "org_system";

/// Whoever acts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A signed-in console user.
    User { user_id: String },
    /// An API key: an organization key, or a personal access token of `owner_user_id`.
    Key {
        key_id: String,
        organization_id: String,
        owner_user_id: Option<String>,
        /// What its scopes amount to.
        scopes: Permissions,
        /// Its dynamic permissions (`invoices:read`), as stored on the key.
        dynamic: Vec<String>,
        /// Its restrictions: what it makes, edits or takes over stays inside them.
        bounds: Arc<KeyBounds>,
        /// Its rate limit now: no key it makes or changes may go faster.
        rate: crate::usage::window::Limit,
    },
}

/// A key's restrictions besides its permissions. An empty allow-list or rule list, no expiry
/// and no signature mean unrestricted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyBounds {
    pub expires_at: Option<i64>,
    pub ip_allowlist: Vec<ipnet::IpNet>,
    pub endpoints: Vec<crate::keys::EndpointRule>,
    pub require_signature: bool,
    /// A test key (`kw_test_`): whatever it makes, edits or takes over is a test key too, so
    /// a key handed to a test system cannot mint or roll its way to a live secret.
    pub test_only: bool,
}

impl KeyBounds {
    /// Why a key restricted like `inner` would escape `self` (the first way found), or `None`
    /// when it stays inside: it expires no later, is allowed from no more addresses and on no
    /// more endpoints, is signed if `self` is, and is a test key if `self` is. Rates are compared by
    /// [`Grant::require_rate_within`].
    pub fn escape(&self, inner: &KeyBounds) -> Option<&'static str> {
        if let Some(end) = self.expires_at {
            if inner.expires_at.is_none_or(|at| at > end) {
                return Some("a key that expires cannot make or change a key that outlives it");
            }
        }
        if !self.ip_allowlist.is_empty()
            && (inner.ip_allowlist.is_empty()
                || !inner
                    .ip_allowlist
                    .iter()
                    .all(|net| self.ip_allowlist.iter().any(|own| own.contains(net))))
        {
            return Some(
                "a key with an IP allow-list cannot make or change a key allowed from addresses outside it",
            );
        }
        if !self.endpoints.is_empty()
            && (inner.endpoints.is_empty()
                || !inner.endpoints.iter().all(|rule| {
                    self.endpoints
                        .iter()
                        .any(|own| crate::keys::ssr::endpoint_covers(own, rule))
                }))
        {
            return Some(
                "a key limited to some endpoints cannot make or change a key allowed on others",
            );
        }
        if self.require_signature && !inner.require_signature {
            return Some(
                "a key that must sign its requests cannot make or change one that need not",
            );
        }
        self.environment_escape(inner.test_only)
    }

    /// Why a key bounded by `self` may not act on a key of that environment: a test key
    /// reaches test keys only.
    fn environment_escape(&self, inner_is_test: bool) -> Option<&'static str> {
        (self.test_only && !inner_is_test).then_some("a test key cannot make or change a live key")
    }
}

impl Principal {
    /// The operator at the machine's console ([`Grant::operator`]): not a member of anything,
    /// bounded by the organization itself.
    pub fn is_operator(&self) -> bool {
        matches!(self, Principal::User { user_id } if user_id == OPERATOR_ID)
    }

    /// The id recorded as the actor of a change: a user id or a key id.
    pub fn actor_id(&self) -> &str {
        match self {
            Principal::User { user_id } => user_id,
            Principal::Key { key_id, .. } => key_id,
        }
    }

    /// The person on whose behalf it acts: the user, or a personal token's owner.
    pub fn acting_user(&self) -> Option<&str> {
        match self {
            Principal::User { user_id } => Some(user_id),
            Principal::Key { owner_user_id, .. } => owner_user_id.as_deref(),
        }
    }
}

/// Permission to act in one organization, with everything the principal holds there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub principal: Principal,
    pub organization_id: String,
    /// Everything the principal holds in the organization: nothing it does may hand out,
    /// or bring back, more than this.
    pub ceiling: Permissions,
}

impl Grant {
    pub fn allows(&self, permission: Permission) -> bool {
        self.ceiling.contains(permission)
    }

    /// Whether the organization is the instance (system) organization.
    pub fn in_system_org(&self) -> bool {
        self.organization_id == SYSTEM_ORG_ID
    }

    /// The acting key's restrictions; `None` for a user.
    pub fn key_bounds(&self) -> Option<&KeyBounds> {
        match &self.principal {
            Principal::Key { bounds, .. } => Some(bounds),
            Principal::User { .. } => None,
        }
    }

    /// Refuses (403) a key restricted like `inner` that the acting key's restrictions would
    /// not hold ([`KeyBounds::escape`]); a user is not bounded so.
    pub fn require_within(&self, inner: &KeyBounds) -> Result<(), AppError> {
        match self.key_bounds().and_then(|own| own.escape(inner)) {
            None => Ok(()),
            Some(why) => Err(AppError::new(ErrorCode::Forbidden, why)),
        }
    }

    /// The acting key's id; `None` for a user.
    pub fn acting_key(&self) -> Option<&str> {
        match &self.principal {
            Principal::Key { key_id, .. } => Some(key_id),
            Principal::User { .. } => None,
        }
    }

    /// Refuses, with the code verification gives (`key_disabled`, `key_revoked`…), when the
    /// acting key stopped being usable after its request was verified: a request in flight
    /// while an administrator disables the key must not go on to act as it. A user passes.
    /// Read in the caller's connection (inside its transaction, with the change's locks).
    pub async fn require_acting_key_usable(
        &self,
        conn: &mut sqlx::AnyConnection,
    ) -> Result<(), AppError> {
        let Some(key_id) = self.acting_key() else {
            return Ok(());
        };
        // A personal organization's keys (as verification reads them) and a personal token
        // (whose owner's roles count only while the account is active) stop while the account
        // behind them is disabled or deleted.
        let row: Option<(String, String, Option<i64>)> = sqlx::query_as(concat!(
            "select case when ",
            crate::keys::verify::account_behind_key_is_off!("k"),
            " and k.status = 'active' then 'disabled' else k.status end,
                    k.approval, k.expires_at
             from api_key k where k.api_key_id = $1",
        ))
        .bind(key_id)
        .fetch_optional(conn)
        .await?;
        use crate::keys::ssr::{effective_status, Approval, StoredStatus};
        use crate::keys::verify::{refusal, require_usable};
        let Some((status, approval, expires_at)) = row else {
            return Err(refusal(ErrorCode::KeyUnknown));
        };
        let pending = Approval::parse(&approval) == Approval::Pending;
        require_usable(effective_status(
            StoredStatus::parse(&status),
            pending,
            expires_at,
            crate::ssr::db::now_ms(),
        ))
    }

    /// Refuses (403) a test key acting on a live key, whatever the change (a rename, a
    /// disable, a review): a test key's reach is test keys, as in Stripe's test mode.
    pub fn require_environment(&self, target_is_test: bool) -> Result<(), AppError> {
        match self
            .key_bounds()
            .and_then(|own| own.environment_escape(target_is_test))
        {
            None => Ok(()),
            Some(why) => Err(AppError::new(ErrorCode::Forbidden, why)),
        }
    }

    /// Refuses (403, saying `why`) a test key making a change that is live whatever it names
    /// (plans, members, roles, teams, settings): a test key's reach is test keys.
    pub fn require_live_change(&self, why: &'static str) -> Result<(), AppError> {
        match self.key_bounds() {
            Some(own) if own.test_only => Err(AppError::new(ErrorCode::Forbidden, why)),
            _ => Ok(()),
        }
    }

    /// Refuses (403) a rate limit faster than the acting key's own; a user is not bounded so,
    /// nor a key that may change the plans themselves (`plans:write` in the system
    /// organization).
    pub fn require_rate_within(&self, limit: u64, window_seconds: i64) -> Result<(), AppError> {
        let plans = self.in_system_org() && self.allows(Permission::PlansWrite);
        match &self.principal {
            Principal::Key { rate, .. }
                if !plans && !rate.allows_no_faster(limit, window_seconds) =>
            {
                Err(AppError::new(
                    ErrorCode::Forbidden,
                    "a key cannot give a key a faster rate limit than its own",
                ))
            }
            _ => Ok(()),
        }
    }

    /// Refuses, naming the first missing permission, unless the ceiling holds all of `wanted`.
    pub fn require_all(&self, wanted: Permissions) -> Result<(), AppError> {
        match self.ceiling.first_missing(wanted) {
            None => Ok(()),
            Some(p) => Err(AppError::forbidden(p.as_str())),
        }
    }

    /// A grant for the operator at the machine's console (`keyward create-key`): everything
    /// the organization can hold.
    pub fn operator(organization_id: &str) -> Grant {
        Grant {
            principal: Principal::User {
                user_id: OPERATOR_ID.into(),
            },
            organization_id: organization_id.into(),
            ceiling: Permissions::all_in(organization_id == SYSTEM_ORG_ID),
        }
    }
}

/// How long an instance serves an organization's role graph from memory. A change made on
/// this instance clears its copy at once; other instances see it within this bound.
pub const MODEL_TTL: Duration = Duration::from_secs(2);

/// Each organization's [`AccessModel`], as last loaded (one per database handle).
#[derive(Default)]
pub struct AccessCache {
    entries: Mutex<HashMap<String, (Instant, Arc<AccessModel>)>>,
    /// Bumped by every invalidation: a load that began before a change is not kept after it.
    generations: Mutex<HashMap<String, u64>>,
}

impl AccessCache {
    /// Forgets the organization's model: the next check loads it again, and a load already
    /// under way is not kept.
    pub fn invalidate(&self, organization_id: &str) {
        if let Ok(mut generations) = self.generations.lock() {
            *generations.entry(organization_id.to_string()).or_default() += 1;
        }
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(organization_id);
        }
    }

    fn generation(&self, organization_id: &str) -> u64 {
        self.generations
            .lock()
            .map(|g| g.get(organization_id).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn get(&self, organization_id: &str) -> Option<Arc<AccessModel>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(organization_id)
            .filter(|(at, _)| at.elapsed() < MODEL_TTL)
            .map(|(_, m)| m.clone())
    }

    /// Keeps `model` unless the organization changed since its load began (`generation`).
    fn put(&self, organization_id: &str, model: Arc<AccessModel>, generation: u64) {
        if let Ok(mut entries) = self.entries.lock() {
            if self.generation(organization_id) != generation {
                return;
            }
            if entries.len() > 10_000 {
                entries.retain(|_, (at, _)| at.elapsed() < MODEL_TTL);
            }
            entries.insert(organization_id.to_string(), (Instant::now(), model));
        }
    }
}

/// The organization's role graph: the built-in roles and dependencies (code) and its own
/// roles, groups and dependencies (rows), from memory within [`MODEL_TTL`].
pub async fn model(db: &Db, organization_id: &str) -> Result<Arc<AccessModel>, AppError> {
    let cache = db.caches.get::<AccessCache>();
    if let Some(m) = cache.get(organization_id) {
        return Ok(m);
    }
    let generation = cache.generation(organization_id);
    let m = Arc::new(load_model(db, organization_id).await?);
    cache.put(organization_id, m.clone(), generation);
    Ok(m)
}

/// Reads the organization's role graph (no cache), in one read transaction: one committed
/// state, never half of a change (PostgreSQL: repeatable read; SQLite: one snapshot).
pub async fn load_model(db: &Db, organization_id: &str) -> Result<AccessModel, AppError> {
    let mut tx = db.reader.begin().await?;
    if db.backend == crate::ssr::db::Backend::Postgres {
        sqlx::query("set transaction isolation level repeatable read")
            .execute(&mut *tx)
            .await?;
    }
    let m = load_model_in(&mut tx, organization_id).await?;
    tx.commit().await?;
    Ok(m)
}

/// Reads the organization's role graph on this connection (inside a transaction: what the
/// transaction sees).
pub async fn load_model_in(
    conn: &mut sqlx::AnyConnection,
    organization_id: &str,
) -> Result<AccessModel, AppError> {
    let mut m = AccessModel::builtin();
    let roles =
        sqlx::query("select role_id, name from role where organization_id = $1 order by name")
            .bind(organization_id)
            .fetch_all(&mut *conn)
            .await?;
    for r in roles {
        let id: String = r.try_get("role_id")?;
        m.roles.insert(
            id.clone(),
            RoleDef {
                id,
                name: r.try_get("name")?,
                ..Default::default()
            },
        );
    }
    let custom = |table: &str, column: &str| {
        format!(
            "select t.role_id, t.{column} as item from {table} t join role r on r.role_id = t.role_id
             where r.organization_id = $1 order by t.{column}"
        )
    };
    for (table, column) in [
        ("role_parent", "parent_id"),
        ("role_permission", "permission"),
        ("role_group", "group_id"),
    ] {
        let rows = sqlx::query(&custom(table, column))
            .bind(organization_id)
            .fetch_all(&mut *conn)
            .await?;
        for r in rows {
            let role: String = r.try_get("role_id")?;
            let item: String = r.try_get("item")?;
            if let Some(def) = m.roles.get_mut(&role) {
                match column {
                    "parent_id" => def.parents.push(item),
                    "permission" => def.permissions.push(item),
                    _ => def.groups.push(item),
                }
            }
        }
    }
    let groups = sqlx::query(
        "select g.group_id, g.name, i.permission from permission_group g
         left join permission_group_item i on i.group_id = g.group_id
         where g.organization_id = $1 order by g.name, i.permission",
    )
    .bind(organization_id)
    .fetch_all(&mut *conn)
    .await?;
    for r in groups {
        let id: String = r.try_get("group_id")?;
        let group = m.groups.entry(id.clone()).or_insert_with(|| GroupDef {
            id,
            name: String::new(),
            permissions: Vec::new(),
        });
        group.name = r.try_get("name")?;
        if let Some(p) = r.try_get::<Option<String>, _>("permission")? {
            group.permissions.push(p);
        }
    }
    let deps = sqlx::query(
        "select permission, requires from permission_dependency where organization_id = $1
         order by permission, requires",
    )
    .bind(organization_id)
    .fetch_all(&mut *conn)
    .await?;
    for r in deps {
        let p: String = r.try_get("permission")?;
        let q: String = r.try_get("requires")?;
        let list = m.requires.entry(p).or_default();
        if !list.contains(&q) {
            list.push(q);
        }
    }
    Ok(m)
}

/// The roles an active member holds in the organization: their membership's base role first,
/// then the roles assigned to them. `None` when they are disabled or not a member.
pub async fn roles_in(
    db: &Db,
    user_id: &str,
    organization_id: &str,
) -> Result<Option<Vec<String>>, AppError> {
    let mut conn = db.reader.acquire().await?;
    roles_in_conn(&mut conn, user_id, organization_id).await
}

/// [`roles_in`] on this connection (inside a transaction: what it sees).
pub async fn roles_in_conn(
    conn: &mut sqlx::AnyConnection,
    user_id: &str,
    organization_id: &str,
) -> Result<Option<Vec<String>>, AppError> {
    // Assigned roles, and the roles of every team the member is in.
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "select m.role, a.role_id from membership m
         join app_user u on u.user_id = m.user_id
         left join role_assignment a on a.organization_id = m.organization_id and a.user_id = m.user_id
         where m.user_id = $1 and m.organization_id = $2 and u.status = 'active'
         union all
         select m.role, tr.role_id from membership m
         join app_user u on u.user_id = m.user_id
         join team_member tm on tm.organization_id = m.organization_id and tm.user_id = m.user_id
         join team_role tr on tr.team_id = tm.team_id
         where m.user_id = $1 and m.organization_id = $2 and u.status = 'active'",
    )
    .bind(user_id)
    .bind(organization_id)
    .fetch_all(&mut *conn)
    .await?;
    let Some((base, _)) = rows.first() else {
        return Ok(None);
    };
    let mut held: Vec<String> = rows.iter().filter_map(|(_, a)| a.clone()).collect();
    held.sort();
    held.dedup();
    let mut roles = vec![base.clone()];
    roles.extend(held);
    Ok(Some(roles))
}

/// Whether a permission can be held in the organization: every dynamic one, and the built-in
/// ones except instance permissions outside the system organization.
pub fn holdable_in(name: &str, organization_id: &str) -> bool {
    organization_id == SYSTEM_ORG_ID
        || !Permission::parse(name).is_some_and(Permission::is_instance)
}

/// What the roles grant in an organization, as a ceiling: the built-in catalog's permissions
/// among their effective ones that can be held there.
pub fn ceiling_of<S: AsRef<str>>(
    model: &AccessModel,
    roles: &[S],
    organization_id: &str,
) -> Permissions {
    let roles: Vec<&str> = roles.iter().map(AsRef::as_ref).collect();
    model
        .names(&roles)
        .iter()
        .filter(|n| holdable_in(n, organization_id))
        .filter_map(|n| Permission::parse(n))
        .collect()
}

/// Every permission name a member holds in an organization through all their roles, dynamic
/// ones included, in name order (instance permissions only in the system organization).
/// `None`: not an active member.
pub async fn effective_names(
    db: &Db,
    user_id: &str,
    organization_id: &str,
) -> Result<Option<Vec<String>>, AppError> {
    let Some(roles) = roles_in(db, user_id, organization_id).await? else {
        return Ok(None);
    };
    let model = model(db, organization_id).await?;
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    Ok(Some(
        model
            .names(&roles)
            .into_iter()
            .filter(|n| holdable_in(n, organization_id))
            .collect(),
    ))
}

/// What a member holds in an organization through all their roles (`None`: not an active
/// member).
async fn member_ceiling(
    db: &Db,
    user_id: &str,
    organization_id: &str,
) -> Result<Option<Permissions>, AppError> {
    let Some(roles) = roles_in(db, user_id, organization_id).await? else {
        return Ok(None);
    };
    let model = model(db, organization_id).await?;
    Ok(Some(ceiling_of(&model, &roles, organization_id)))
}

/// What a user holds in an organization (nothing when disabled or not a member).
pub async fn user_ceiling(
    db: &Db,
    user_id: &str,
    organization_id: &str,
) -> Result<Permissions, AppError> {
    Ok(member_ceiling(db, user_id, organization_id)
        .await?
        .unwrap_or(Permissions::NONE))
}

/// The principal's ceiling in `organization_id`. A personal token whose owner is no longer an
/// active member of its organization is refused outright (`key_disabled`): the owner's tokens
/// go down with them.
pub async fn ceiling(
    db: &Db,
    principal: &Principal,
    organization_id: &str,
) -> Result<Permissions, AppError> {
    match principal {
        Principal::User { user_id } => user_ceiling(db, user_id, organization_id).await,
        Principal::Key {
            organization_id: key_org,
            owner_user_id,
            scopes,
            ..
        } => {
            if key_org != organization_id {
                return Ok(Permissions::NONE);
            }
            let in_org = scopes.intersect(Permissions::all_in(key_org == SYSTEM_ORG_ID));
            match owner_user_id {
                None => Ok(in_org),
                Some(owner) => match member_ceiling(db, owner, key_org).await? {
                    Some(owner_ceiling) => Ok(in_org.intersect(owner_ceiling)),
                    None => Err(AppError::new(
                        ErrorCode::KeyDisabled,
                        "the token's owner is no longer an active member of its organization",
                    )),
                },
            }
        }
    }
}

/// The dynamic permissions (the organization's own, such as `invoices:read`) a principal
/// holds in `organization_id`; `None` for the operator, who is bounded by nothing but the
/// catalog. A user holds those their roles grant (an owner: all of them); a key those stored on
/// it, with everything they require; a personal token no more than its owner holds now.
pub async fn dynamic_held(
    db: &Db,
    principal: &Principal,
    organization_id: &str,
) -> Result<Option<BTreeSet<String>>, AppError> {
    if principal.is_operator() {
        return Ok(None);
    }
    if let Principal::Key {
        organization_id: key_org,
        dynamic: stored,
        ..
    } = principal
    {
        if key_org != organization_id || stored.is_empty() {
            return Ok(Some(BTreeSet::new()));
        }
    }
    let model = model(db, organization_id).await?;
    let mut conn = db.reader.acquire().await?;
    dynamic_held_in(&mut conn, &model, principal, organization_id).await
}

/// [`dynamic_held`] read through `conn` against `model`: inside a change's transaction, with
/// the graph it loaded under the organization's lock, so that what the change checks is what
/// it commits against (not a cached graph, nor roles read apart from the transaction).
pub async fn dynamic_held_in(
    conn: &mut sqlx::AnyConnection,
    model: &AccessModel,
    principal: &Principal,
    organization_id: &str,
) -> Result<Option<BTreeSet<String>>, AppError> {
    if principal.is_operator() {
        return Ok(None);
    }
    let dynamic = |names: Vec<String>| -> BTreeSet<String> {
        names
            .into_iter()
            .filter(|n| Permission::parse(n).is_none())
            .collect()
    };
    match principal {
        Principal::User { user_id } => {
            let Some(roles) = roles_in_conn(conn, user_id, organization_id).await? else {
                return Ok(Some(BTreeSet::new()));
            };
            // The owner holds everything in the organization, its own permissions included.
            if roles.iter().any(|r| r == "owner") {
                let all: Vec<String> = sqlx::query_scalar(
                    "select name from custom_permission where organization_id = $1",
                )
                .bind(organization_id)
                .fetch_all(&mut *conn)
                .await?;
                return Ok(Some(all.into_iter().collect()));
            }
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            Ok(Some(dynamic(model.names(&roles).into_iter().collect())))
        }
        Principal::Key {
            organization_id: key_org,
            owner_user_id,
            dynamic: stored,
            ..
        } => {
            if key_org != organization_id || stored.is_empty() {
                return Ok(Some(BTreeSet::new()));
            }
            let mut held = dynamic(model.with_requirements(stored).into_iter().collect());
            if let Some(owner) = owner_user_id {
                if roles_in_conn(conn, owner, organization_id).await?.is_none() {
                    return Err(AppError::new(
                        ErrorCode::KeyDisabled,
                        "the token's owner is no longer an active member of its organization",
                    ));
                }
                let user = Principal::User {
                    user_id: owner.clone(),
                };
                let owner_holds = Box::pin(dynamic_held_in(conn, model, &user, organization_id))
                    .await?
                    .unwrap_or_default();
                held.retain(|n| owner_holds.contains(n));
            }
            Ok(Some(held))
        }
    }
}

/// Refuses (a 403 naming the first one) unless the grant's principal holds every one of these
/// dynamic permissions: nobody puts on a key a permission they do not hold.
pub async fn require_dynamic(db: &Db, grant: &Grant, names: &[String]) -> Result<(), AppError> {
    if names.is_empty() {
        return Ok(());
    }
    missing_dynamic(
        dynamic_held(db, &grant.principal, &grant.organization_id).await?,
        names,
    )
}

/// [`require_dynamic`] inside a change's transaction ([`dynamic_held_in`]).
pub async fn require_dynamic_in(
    conn: &mut sqlx::AnyConnection,
    model: &AccessModel,
    grant: &Grant,
    names: &[String],
) -> Result<(), AppError> {
    if names.is_empty() {
        return Ok(());
    }
    missing_dynamic(
        dynamic_held_in(conn, model, &grant.principal, &grant.organization_id).await?,
        names,
    )
}

/// A 403 naming the first of `names` not `held` (`None`: the operator, who holds all).
fn missing_dynamic(held: Option<BTreeSet<String>>, names: &[String]) -> Result<(), AppError> {
    let Some(held) = held else {
        return Ok(());
    };
    match names.iter().find(|n| !held.contains(*n)) {
        None => Ok(()),
        Some(missing) => Err(AppError::forbidden(missing)),
    }
}

/// Allows the call when the principal holds `permission` in `organization_id`; otherwise a 403
/// naming the permission. Not being a member at all is the same 403, so the answer does not
/// reveal whether an organization exists.
pub async fn authorize(
    db: &Db,
    principal: &Principal,
    organization_id: &str,
    permission: Permission,
) -> Result<Grant, AppError> {
    let ceiling = ceiling(db, principal, organization_id).await?;
    if !ceiling.contains(permission) {
        return Err(AppError::forbidden(permission.as_str()));
    }
    Ok(Grant {
        principal: principal.clone(),
        organization_id: organization_id.to_string(),
        ceiling,
    })
}

/// The permissions the user holds in the system organization (empty for non-admins): drives
/// which admin menus the console shows.
pub async fn instance_permissions(db: &Db, user_id: &str) -> Result<Vec<Permission>, AppError> {
    Ok(user_ceiling(db, user_id, SYSTEM_ORG_ID)
        .await?
        .iter()
        .collect())
}
