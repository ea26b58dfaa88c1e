//! Managing an organization's roles, dynamic permissions and assignments (server only).
//!
//! Every change runs in one writer transaction that first takes the organization's role lock
//! (PostgreSQL: `select … for no key update` on the organization row; SQLite has one writer), reads
//! the role graph **inside** that transaction, checks, then writes: two admins re-parenting at
//! once on two instances cannot build a cycle between them. The change clears this instance's
//! cached graph at once; other instances reload within [`super::ssr::MODEL_TTL`].
//!
//! **Ceiling.** A caller can never make a role grant, nor assign a role that grants, a
//! built-in permission they do not hold in the organization themselves (a 403 naming it):
//! `roles:write` alone cannot be turned into `org:write`. Dynamic permissions carry no power
//! inside Keyward and `roles:write` holders administer them (they may grant any of them to a
//! role); putting one on a key still needs the caller to hold it (`access::ssr::require_dynamic`).

use super::model::{valid_permission_name, AccessModel};
use super::ssr::{
    ceiling_of, holdable_in, load_model_in, roles_in_conn, Grant, Principal, SYSTEM_ORG_ID,
};
use super::{
    AssignResult, EffectivePermission, GroupView, Permission, PermissionView, Permissions,
    RoleCatalog, RoleView,
};
use crate::error::AppError;
use crate::ssr::db::{lock_row, new_id, now_ms, LockedRow, RowLock};
use crate::ssr::events::{self, Event};
use crate::ssr::Db;
use sqlx::{Any, Transaction};
use std::collections::BTreeSet;

/// Longest role name.
const NAME_MAX: usize = 64;
/// Longest description of a role or permission.
const DESCRIPTION_MAX: usize = 200;
/// Custom roles one organization may define. Each change re-reads and checks the whole role
/// graph under the organization's lock (the only writer on SQLite): an unbounded graph would
/// let one tenant hold up every other tenant's writes.
pub const ROLES_MAX: usize = 200;
/// Parents one custom role may inherit from.
pub const PARENTS_MAX: usize = 16;
/// Dynamic permissions one organization may define.
pub const PERMISSIONS_MAX: i64 = 200;
/// Permissions one dynamic permission may require.
pub const REQUIRES_MAX: usize = 16;

/// The organization's roles (built-in ones first), groups and permissions, each role with its
/// effective permissions and their sources.
pub async fn catalog(db: &Db, organization_id: &str) -> Result<RoleCatalog, AppError> {
    let model = super::ssr::model(db, organization_id).await?;
    let descriptions: std::collections::HashMap<String, String> = sqlx::query_as::<_, (String, String)>(
        "select role_id, description from role where organization_id = $1 or organization_id is null",
    )
    .bind(organization_id)
    .fetch_all(&db.reader)
    .await?
        .into_iter()
        .collect();
    let custom: Vec<(String, String)> = sqlx::query_as(
        "select name, description from custom_permission where organization_id = $1 order by name",
    )
    .bind(organization_id)
    .fetch_all(&db.reader)
    .await?;
    let here = |n: &String| holdable_in(n, organization_id);
    let mut roles: Vec<RoleView> = model
        .roles
        .values()
        .map(|r| RoleView {
            id: r.id.clone(),
            name: r.name.clone(),
            description: descriptions.get(&r.id).cloned().unwrap_or_default(),
            builtin: r.builtin,
            parents: r.parents.clone(),
            permissions: r.permissions.iter().filter(|n| here(n)).cloned().collect(),
            groups: r.groups.clone(),
            effective: model
                .effective(&[r.id.as_str()])
                .into_iter()
                .filter(|(n, _)| here(n))
                .map(|(name, sources)| EffectivePermission {
                    name,
                    sources: sources.into_iter().collect(),
                })
                .collect(),
        })
        .collect();
    roles.sort_by(|a, b| b.builtin.cmp(&a.builtin).then(a.name.cmp(&b.name)));
    let mut permissions: Vec<PermissionView> = Permission::ALL
        .iter()
        .filter(|p| holdable_in(p.as_str(), organization_id))
        .map(|p| PermissionView {
            name: p.as_str().into(),
            description: String::new(),
            builtin: true,
            requires: model.requires.get(p.as_str()).cloned().unwrap_or_default(),
        })
        .collect();
    permissions.extend(
        custom
            .into_iter()
            .map(|(name, description)| PermissionView {
                requires: model.requires.get(&name).cloned().unwrap_or_default(),
                name,
                description,
                builtin: false,
            }),
    );
    Ok(RoleCatalog {
        roles,
        groups: model
            .groups
            .values()
            .map(|g| GroupView {
                id: g.id.clone(),
                name: g.name.clone(),
                permissions: g.permissions.clone(),
            })
            .collect(),
        permissions,
    })
}

/// A change's transaction, holding the organization's role lock: the graph and the caller's
/// ceiling as that transaction sees them.
pub(crate) struct Change {
    pub(crate) tx: Transaction<'static, Any>,
    pub(crate) model: AccessModel,
    /// What the caller holds now (not what the guard saw a moment ago, nor a cached graph).
    pub(crate) ceiling: Permissions,
}

/// Takes the organization's role lock in `tx`: on PostgreSQL the organization's row, `for no
/// key update` (SQLite has one writer). Role and membership changes take it first, so they run
/// one at a time per organization. `no key update` rather than `update`: inserts that only
/// reference the organization (a key's event, a membership's foreign key check) take a key
/// share lock, which this one leaves free; with `for update` such an insert in a transaction
/// already holding another row this change wants would deadlock with it.
pub async fn lock(
    tx: &mut Transaction<'static, Any>,
    organization_id: &str,
) -> Result<(), AppError> {
    lock_row(
        tx,
        LockedRow::Organization(organization_id),
        RowLock::NoKeyUpdate,
    )
    .await?;
    Ok(())
}

/// Opens the change's transaction, takes the organization's role lock, reads the graph and
/// the caller's current ceiling, and refuses unless the caller still holds `needed`. Membership
/// changes (`crate::orgs::members`) run under the same lock.
pub(crate) async fn begin(db: &Db, grant: &Grant, needed: Permission) -> Result<Change, AppError> {
    let organization_id = grant.organization_id.as_str();
    // A test key's reach is test keys: members, invitations, roles, teams, groups, the
    // organization's policy and the instance's users are all live (one such change could
    // invite someone who then makes live keys).
    grant.require_live_change(
        "a test key changes test keys only: not members, invitations, roles, teams or settings",
    )?;
    let mut tx = db.writer.begin().await?;
    lock(&mut tx, organization_id).await?;
    grant.require_acting_key_usable(&mut tx).await?;
    let model = load_model_in(&mut tx, organization_id).await?;
    let ceiling = match &grant.principal {
        _ if grant.principal.is_operator() => grant.ceiling,
        Principal::User { user_id } => roles_in_conn(&mut tx, user_id, organization_id)
            .await?
            .map_or(Permissions::NONE, |r| {
                ceiling_of(&model, &r, organization_id)
            }),
        Principal::Key { key_id, scopes, .. } => {
            key_reach(&mut tx, &model, organization_id, key_id, *scopes).await?
        }
    };
    if !ceiling.contains(needed) {
        return Err(AppError::forbidden(needed.as_str()));
    }
    Ok(Change { tx, model, ceiling })
}

/// What a key can hand out in the organization now. A key administers roles and members only
/// within what the people behind it (its owner, its maker, the makers of the key that made it)
/// hold now: demoting its maker demotes what the key can hand out, so it cannot give them
/// their power back. A key the CLI made stands for no one and keeps its scopes.
async fn key_reach(
    tx: &mut Transaction<'static, Any>,
    model: &AccessModel,
    organization_id: &str,
    key_id: &str,
    scopes: Permissions,
) -> Result<Permissions, AppError> {
    let mut ceiling = scopes.intersect(Permissions::all_in(organization_id == SYSTEM_ORG_ID));
    let people = makers(tx, vec![key_id.to_string()]).await?;
    for person in people.iter().filter(|id| id.starts_with("usr_")) {
        let held = roles_in_conn(tx, person, organization_id).await?;
        ceiling = ceiling.intersect(held.map_or(Permissions::NONE, |r| {
            ceiling_of(model, &r, organization_id)
        }));
    }
    Ok(ceiling)
}

/// Refuses unless `sender` (the user or key that sent an invitation; the CLI) could still
/// invite (`members:write`) and give `roles` in the organization now: what they held when they sent it, they may have lost
/// since (demoted, a custom role or team taken away, the key revoked or its maker demoted).
pub(crate) async fn sender_still_reaches(
    tx: &mut Transaction<'static, Any>,
    organization_id: &str,
    sender: Option<&str>,
    roles: &[&str],
) -> Result<(), AppError> {
    if sender == Some(super::ssr::OPERATOR_ID) {
        return Ok(());
    }
    let model = load_model_in(tx, organization_id).await?;
    let ceiling = sender_ceiling(tx, &model, organization_id, sender).await?;
    // Still allowed to invite at all, and to give these roles.
    if !ceiling.contains(Permission::MembersWrite) {
        return Err(AppError::forbidden(Permission::MembersWrite.as_str()));
    }
    within_ceiling(ceiling, &model, organization_id, roles)
}

/// Whether `sender` (as in [`sender_still_reaches`]) creates accounts now: the operator, or a
/// user or key holding `users:write` in the system organization (an instance administrator).
pub(crate) async fn sender_creates_accounts(
    tx: &mut Transaction<'static, Any>,
    sender: Option<&str>,
) -> Result<bool, AppError> {
    if sender == Some(super::ssr::OPERATOR_ID) {
        return Ok(true);
    }
    let system = super::ssr::SYSTEM_ORG_ID;
    let model = load_model_in(tx, system).await?;
    Ok(sender_ceiling(tx, &model, system, sender)
        .await?
        .contains(Permission::UsersWrite))
}

/// What `sender` (a user or key id) holds in `organization_id` now.
async fn sender_ceiling(
    tx: &mut Transaction<'static, Any>,
    model: &AccessModel,
    organization_id: &str,
    sender: Option<&str>,
) -> Result<Permissions, AppError> {
    Ok(match sender {
        Some(user) if user.starts_with("usr_") => roles_in_conn(tx, user, organization_id)
            .await?
            .map_or(Permissions::NONE, |r| {
                ceiling_of(model, &r, organization_id)
            }),
        Some(key) if key.starts_with("key_") => {
            let scopes: Option<String> = sqlx::query_scalar(
                "select scopes from api_key where api_key_id = $1 and organization_id = $2
                 and status = 'active' and approval = 'approved' and (expires_at is null or expires_at > $3)",
            )
            .bind(key)
            .bind(organization_id)
            .bind(now_ms())
            .fetch_optional(&mut **tx)
            .await?;
            match scopes {
                Some(text) => {
                    let scopes: crate::keys::Scopes =
                        serde_json::from_str(&text).unwrap_or_default();
                    let scopes = crate::keys::ssr::scope_permissions(&scopes);
                    key_reach(tx, model, organization_id, key, scopes).await?
                }
                None => Permissions::NONE,
            }
        }
        _ => Permissions::NONE,
    })
}

/// Commits, then clears this instance's cached graph of the organization.
pub(crate) async fn commit(
    db: &Db,
    tx: Transaction<'static, Any>,
    organization_id: &str,
) -> Result<(), AppError> {
    tx.commit().await?;
    db.caches
        .get::<super::ssr::AccessCache>()
        .invalidate(organization_id);
    Ok(())
}

/// What a role lists: its own permissions, or the groups it holds.
#[derive(Clone, Copy)]
pub(crate) enum RoleList {
    Permissions,
    Groups,
}

/// Adds `item` to a role's list: first in `model` (as the change will leave it), refused unless
/// the role then stays within the caller's ceiling, then in the database. Answers whether the
/// role did not hold it already (a change to record).
pub(crate) async fn add_to_role(
    tx: &mut Transaction<'static, Any>,
    model: &mut AccessModel,
    ceiling: Permissions,
    organization_id: &str,
    role_id: &str,
    list: RoleList,
    item: &str,
) -> Result<bool, AppError> {
    if let Some(r) = model.roles.get_mut(role_id) {
        let items = match list {
            RoleList::Permissions => &mut r.permissions,
            RoleList::Groups => &mut r.groups,
        };
        if !items.iter().any(|i| i == item) {
            items.push(item.to_string());
        }
    }
    within_ceiling(ceiling, model, organization_id, &[role_id])?;
    let sql = match list {
        RoleList::Permissions => {
            "insert into role_permission (role_id, permission) values ($1, $2)
             on conflict (role_id, permission) do nothing"
        }
        RoleList::Groups => {
            "insert into role_group (role_id, group_id) values ($1, $2)
             on conflict (role_id, group_id) do nothing"
        }
    };
    let added = sqlx::query(sql)
        .bind(role_id)
        .bind(item)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(added > 0)
}

/// Refuses unless the caller holds everything `roles` grant: the built-in permissions (the
/// ceiling, as the change re-read it) and the organization's own ones (`refunds:issue`…),
/// which a ceiling does not count. What `members:write` changes to who holds roles (a
/// member's removal or base role, a team's members, deleting a team) are held to: unlike
/// `roles:write`, which administers the organization's own permissions (it grants them to
/// roles and gives those roles: [`assign`], a team's roles, held to [`within_ceiling`] only),
/// `members:write` must not spread them.
pub(crate) async fn within_reach(
    tx: &mut sqlx::AnyConnection,
    (ceiling, model): (Permissions, &AccessModel),
    grant: &Grant,
    roles: &[&str],
) -> Result<(), AppError> {
    within_ceiling(ceiling, model, &grant.organization_id, roles)?;
    let dynamic: Vec<String> = model
        .names(roles)
        .into_iter()
        .filter(|n| Permission::parse(n).is_none())
        .collect();
    crate::access::ssr::require_dynamic_in(tx, model, grant, &dynamic).await
}

/// Refuses unless every built-in permission the roles grant (in `change.model`) is in the
/// caller's current ceiling.
pub(crate) fn within_ceiling(
    ceiling: Permissions,
    model: &AccessModel,
    organization_id: &str,
    roles: &[&str],
) -> Result<(), AppError> {
    match ceiling.first_missing(ceiling_of(model, roles, organization_id)) {
        None => Ok(()),
        Some(p) => Err(AppError::forbidden(p.as_str())),
    }
}

/// Every role `user_id` holds in the organization (the membership's built-in role, the
/// assigned ones and those of their teams), **whatever their account's status**: a disabled
/// member is not a weaker one (the authorization core's own [`roles_in_conn`] skips disabled
/// accounts). `None` when they are not a member.
pub(crate) async fn held_roles(
    tx: &mut Transaction<'static, Any>,
    organization_id: &str,
    user_id: &str,
) -> Result<Option<(String, Vec<String>)>, AppError> {
    let Some(base): Option<String> = sqlx::query_scalar(
        "select role from membership where organization_id = $1 and user_id = $2",
    )
    .bind(organization_id)
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let mut roles: Vec<String> = sqlx::query_scalar(
        "select role_id from role_assignment where organization_id = $1 and user_id = $2
         union
         select tr.role_id from team_member tm join team_role tr on tr.team_id = tm.team_id
         where tm.organization_id = $1 and tm.user_id = $2",
    )
    .bind(organization_id)
    .bind(user_id)
    .fetch_all(&mut **tx)
    .await?;
    roles.push(base.clone());
    roles.sort();
    roles.dedup();
    Ok(Some((base, roles)))
}

/// Everyone `caller` acts for: itself, the user behind a personal token, and whoever made the
/// key it is (a key is its maker's hand), followed through keys that made keys. Rules that
/// forbid acting on oneself (administering one's own account, reviewing one's own key)
/// compare against all of them.
pub async fn acts_for(
    conn: &mut sqlx::AnyConnection,
    caller: &Principal,
) -> Result<BTreeSet<String>, AppError> {
    let mut start = vec![caller.actor_id().to_string()];
    start.extend(caller.acting_user().map(str::to_string));
    makers(conn, start).await
}

/// Key `key_id`'s owner (a personal token's) and maker (a user or a key id), if the key exists:
/// one step up the chain that [`makers`] follows.
pub(crate) async fn key_parents(
    conn: &mut sqlx::AnyConnection,
    key_id: &str,
) -> Result<Option<(Option<String>, Option<String>)>, sqlx::Error> {
    sqlx::query_as("select owner_user_id, created_by from api_key where api_key_id = $1")
        .bind(key_id)
        .fetch_optional(conn)
        .await
}

/// Who answers for an organization key: the nearest person up its chain of makers, or, when
/// no person stands behind it, the chain's last key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accountable {
    Person(String),
    Key(String),
}

/// Who answers for key `key_id`: its owner (a personal token's), else its maker, followed
/// through keys that made keys to the nearest person; else the last key of the chain (one the
/// command line made, or more than [`MAKER_CHAIN_MAX`] keys deep: the key at that depth
/// answers for itself rather than being refused).
pub(crate) async fn accountable(
    conn: &mut sqlx::AnyConnection,
    key_id: &str,
) -> Result<Accountable, sqlx::Error> {
    let mut key = key_id.to_string();
    for _ in 0..=MAKER_CHAIN_MAX {
        let Some((owner, maker)) = key_parents(conn, &key).await? else {
            break;
        };
        if let Some(person) = owner.or_else(|| maker.clone().filter(|m| m.starts_with("usr_"))) {
            return Ok(Accountable::Person(person));
        }
        match maker {
            Some(maker) if maker.starts_with("key_") => key = maker,
            _ => break,
        }
    }
    Ok(Accountable::Key(key))
}

/// How many keys-that-made-keys [`makers`] follows before it refuses to decide.
pub const MAKER_CHAIN_MAX: usize = 32;

/// The users and keys behind `ids`: each id itself and, for a key, its owner and its maker,
/// followed through keys that made keys to the end of the chain. Pseudo-actors such as `cli`
/// are left out: they stand for no one in particular. A chain longer than
/// [`MAKER_CHAIN_MAX`] is refused rather than cut: whoever stands at its end must not slip
/// out of the rules that follow makers (a ceiling cut down to their power, four eyes).
pub async fn makers(
    conn: &mut sqlx::AnyConnection,
    ids: Vec<String>,
) -> Result<BTreeSet<String>, AppError> {
    let mut seen = BTreeSet::new();
    let mut frontier = ids;
    for _ in 0..=MAKER_CHAIN_MAX {
        let mut next = Vec::new();
        for id in frontier.drain(..) {
            let is_key = id.starts_with("key_");
            if !(is_key || id.starts_with("usr_")) || !seen.insert(id.clone()) {
                continue;
            }
            if is_key {
                if let Some((owner, maker)) = key_parents(conn, &id).await? {
                    next.extend(owner);
                    next.extend(maker);
                }
            }
        }
        if next.is_empty() {
            return Ok(seen);
        }
        frontier = next;
    }
    Err(AppError::new(
        crate::error::ErrorCode::Forbidden,
        format!("this key descends from more than {MAKER_CHAIN_MAX} keys made by keys; use a key made by a person"),
    ))
}

/// Whether the change's caller may act on another user's account as an instance administrator
/// (disable, enable, reset the password, delete): never on their own account (that is the
/// profile's business), and never on someone holding, in the system organization, a built-in
/// permission the caller lacks there — an admin cannot lock the owner out.
pub(crate) async fn may_administer_user(
    change: &mut Change,
    caller: &Principal,
    target_user_id: &str,
) -> Result<(), AppError> {
    // A key acts for the person who made it: a key an admin made cannot re-enable them.
    if acts_for(&mut change.tx, caller)
        .await?
        .contains(target_user_id)
    {
        return Err(AppError::invalid(
            "user_id",
            "you cannot do this to your own account; use your profile instead",
        ));
    }
    if let Some((_, roles)) = held_roles(&mut change.tx, SYSTEM_ORG_ID, target_user_id).await? {
        let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
        within_ceiling(change.ceiling, &change.model, SYSTEM_ORG_ID, &roles)?;
    }
    Ok(())
}

/// The organization's own role, which the caller may change: a custom role that grants
/// nothing beyond the caller's ceiling, and none of whose inheritors does (an admin cannot
/// strip or delete a role the owner made with more than an admin holds, nor a role such a
/// role inherits from: that would change it too).
pub(crate) fn changeable<'a>(
    ceiling: Permissions,
    model: &'a AccessModel,
    organization_id: &str,
    role_id: &str,
) -> Result<&'a super::model::RoleDef, AppError> {
    let role = own_role(model, role_id)?;
    changes_within(ceiling, model, organization_id, &[role_id])?;
    Ok(role)
}

/// Refuses unless `roles`, and every role inheriting from one of them, are within the
/// caller's ceiling: a change to them changes all of those.
pub(crate) fn changes_within(
    ceiling: Permissions,
    model: &AccessModel,
    organization_id: &str,
    roles: &[&str],
) -> Result<(), AppError> {
    let changed = model.inheritors(roles);
    let changed: Vec<&str> = changed.iter().map(String::as_str).collect();
    within_ceiling(ceiling, model, organization_id, &changed)
}

/// The organization's own (custom) role, or not found: built-in roles are read-only and
/// another organization's roles do not exist here.
pub(crate) fn own_role<'a>(
    model: &'a AccessModel,
    role_id: &str,
) -> Result<&'a super::model::RoleDef, AppError> {
    match model.roles.get(role_id) {
        Some(r) if !r.builtin => Ok(r),
        Some(_) => Err(AppError::invalid(
            "role_id",
            "built-in roles are read-only; create a role that inherits it instead",
        )),
        None => Err(AppError::not_found("role")),
    }
}

/// Whether `name` is a permission of the organization: the built-in catalog (instance
/// permissions only in the system organization) or one of its dynamic permissions.
pub(crate) async fn permission_exists(
    tx: &mut Transaction<'static, Any>,
    organization_id: &str,
    name: &str,
) -> Result<bool, AppError> {
    if Permission::parse(name).is_some() {
        return Ok(holdable_in(name, organization_id));
    }
    let n: i64 = sqlx::query_scalar(
        "select count(*) from custom_permission where organization_id = $1 and name = $2",
    )
    .bind(organization_id)
    .bind(name)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n > 0)
}

/// `list` trimmed, without blanks and repeats; refused (400 on `field`) past `max` entries,
/// counted before cleaning so that no request makes the cleaning itself slow.
fn bounded(field: &str, list: &[String], max: usize) -> Result<Vec<String>, AppError> {
    if list.len() > max {
        return Err(AppError::invalid(
            field,
            format!("at most {max} entries in {field}"),
        ));
    }
    Ok(clean(list))
}

/// The named parents without blanks and repeats (a form's empty "no parent" choice).
fn clean(parents: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in parents.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        if !out.iter().any(|q| q == p) {
            out.push(p.to_string());
        }
    }
    out
}

fn check_parents(model: &AccessModel, parents: &[String]) -> Result<(), AppError> {
    for p in parents {
        if !model.roles.contains_key(p) {
            return Err(AppError::invalid(
                "parents",
                format!("no role {p:?} in this organization"),
            ));
        }
    }
    Ok(())
}

fn cycle_message(model: &AccessModel, cycle: &[String]) -> AppError {
    let names: Vec<&str> = cycle.iter().map(|r| model.role_name(r)).collect();
    AppError::invalid(
        "parents",
        format!("that would make a cycle: {}", names.join(" → ")),
    )
}

async fn add_parents(
    tx: &mut Transaction<'static, Any>,
    role_id: &str,
    parents: &[String],
) -> Result<(), AppError> {
    for p in parents {
        sqlx::query("insert into role_parent (role_id, parent_id) values ($1, $2)")
            .bind(role_id)
            .bind(p)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(crate) async fn record(
    tx: &mut Transaction<'static, Any>,
    grant: &Grant,
    kind: &'static str,
    subject: &str,
    mut data: serde_json::Value,
) -> Result<(), AppError> {
    // The acting key (or user) by id: a change made over REST names its key.
    if let Some(fields) = data.as_object_mut() {
        fields.insert("actor".into(), grant.principal.actor_id().into());
    }
    events::record(
        tx,
        Event {
            kind,
            organization_id: Some(&grant.organization_id),
            actor_user_id: grant.principal.acting_user(),
            subject_id: Some(subject),
            source_ip: None,
            data,
        },
    )
    .await?;
    Ok(())
}

/// Creates a custom role with these parents (and nothing of its own yet).
pub async fn create_role(
    db: &Db,
    grant: &Grant,
    name: &str,
    description: &str,
    parents: &[String],
) -> Result<RoleView, AppError> {
    let name = name.trim();
    if !crate::ssr::fits_name(name, NAME_MAX) {
        return Err(AppError::invalid(
            "name",
            format!("a role needs a name of 1 to {NAME_MAX} printable characters"),
        ));
    }
    if description.chars().count() > DESCRIPTION_MAX
        || description
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r')
    {
        return Err(AppError::invalid(
            "description",
            format!("at most {DESCRIPTION_MAX} characters, no control characters but line breaks"),
        ));
    }
    // Nor one that reads as a built-in role ("Owner").
    let lower = name.to_lowercase();
    if super::Role::ALL.iter().any(|r| r.as_str() == lower) {
        return Err(AppError::conflict(
            "name",
            format!("{name:?} is a built-in role"),
        ));
    }
    let parents = &bounded("parents", parents, PARENTS_MAX)?;
    let org = grant.organization_id.as_str();
    let Change {
        mut tx,
        mut model,
        ceiling,
    } = begin(db, grant, Permission::RolesWrite).await?;
    if model.roles.values().any(|r| r.name.to_lowercase() == lower) {
        return Err(AppError::conflict(
            "name",
            format!("a role named {name:?} exists"),
        ));
    }
    // The graph was read under the organization's lock: the count cannot move before commit.
    if model.roles.values().filter(|r| !r.builtin).count() >= ROLES_MAX {
        return Err(AppError::conflict(
            "name",
            format!(
                "this organization has {ROLES_MAX} custom roles, the most it may; delete one first"
            ),
        ));
    }
    check_parents(&model, parents)?;
    let id = new_id("rol");
    model.roles.insert(
        id.clone(),
        super::model::RoleDef {
            id: id.clone(),
            name: name.into(),
            parents: parents.to_vec(),
            ..Default::default()
        },
    );
    within_ceiling(ceiling, &model, org, &[id.as_str()])?;
    sqlx::query(
        "insert into role (role_id, organization_id, name, description, builtin, created_at)
         values ($1, $2, $3, $4, 0, $5)",
    )
    .bind(&id)
    .bind(org)
    .bind(name)
    .bind(description.trim())
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    add_parents(&mut tx, &id, parents).await?;
    record(
        &mut tx,
        grant,
        "role.created",
        &id,
        serde_json::json!({ "name": name, "parents": parents }),
    )
    .await?;
    commit(db, tx, org).await?;
    role_view(db, org, &id).await
}

/// Replaces a custom role's parents. Refuses a cycle (naming it) and any parent set that
/// would take the role past the caller's ceiling. `loaded`: the parents as the caller saw
/// them when it chose these (the console's form); refused (409) when they changed since, so a
/// stale form cannot undo someone else's change.
pub async fn set_parents(
    db: &Db,
    grant: &Grant,
    role_id: &str,
    parents: &[String],
    loaded: Option<&[String]>,
) -> Result<RoleView, AppError> {
    let parents = &bounded("parents", parents, PARENTS_MAX)?;
    let org = grant.organization_id.as_str();
    let Change {
        mut tx,
        mut model,
        ceiling,
    } = begin(db, grant, Permission::RolesWrite).await?;
    let before = changeable(ceiling, &model, org, role_id)?.parents.clone();
    // As sets (any length the body holds, compared in n log n: nothing here is bounded yet).
    let set = |list: &[String]| -> BTreeSet<String> {
        list.iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    if loaded.is_some_and(|l| set(l) != set(&before)) {
        return Err(AppError::conflict(
            "loaded",
            "the role's parents changed since this page was loaded; reload it and try again",
        ));
    }
    check_parents(&model, parents)?;
    if let Some(cycle) = model.cycle_with(role_id, parents) {
        return Err(cycle_message(&model, &cycle));
    }
    if let Some(r) = model.roles.get_mut(role_id) {
        r.parents = parents.to_vec();
    }
    within_ceiling(ceiling, &model, org, &[role_id])?;
    sqlx::query("delete from role_parent where role_id = $1")
        .bind(role_id)
        .execute(&mut *tx)
        .await?;
    add_parents(&mut tx, role_id, parents).await?;
    record(
        &mut tx,
        grant,
        "role.parents_changed",
        role_id,
        serde_json::json!({ "before": before, "after": parents }),
    )
    .await?;
    commit(db, tx, org).await?;
    role_view(db, org, role_id).await
}

/// Grants a permission to a custom role, or takes it away. Taking away a permission that
/// another permission the role lists requires is refused, naming those, unless `cascade`
/// (then they go too).
pub async fn set_permission(
    db: &Db,
    grant: &Grant,
    role_id: &str,
    permission: &str,
    granted: bool,
    cascade: bool,
) -> Result<RoleView, AppError> {
    let org = grant.organization_id.as_str();
    let Change {
        mut tx,
        mut model,
        ceiling,
    } = begin(db, grant, Permission::RolesWrite).await?;
    let held = changeable(ceiling, &model, org, role_id)?
        .permissions
        .clone();
    if !permission_exists(&mut tx, org, permission).await? {
        return Err(AppError::invalid(
            "permission",
            format!("no permission {permission:?} in this organization"),
        ));
    }
    let mut removed: Vec<String> = Vec::new();
    let changed = if granted {
        add_to_role(
            &mut tx,
            &mut model,
            ceiling,
            org,
            role_id,
            RoleList::Permissions,
            permission,
        )
        .await?
    } else {
        // What the role lists that needs `permission`, to any depth.
        let mut queue = vec![permission.to_string()];
        while let Some(p) = queue.pop() {
            if removed.contains(&p) {
                continue;
            }
            for d in model.dependents(&p, &held) {
                queue.push(d.to_string());
            }
            removed.push(p);
        }
        let dependents: Vec<&String> = removed.iter().skip(1).collect();
        if !dependents.is_empty() && !cascade {
            let names: Vec<&str> = dependents.iter().map(|s| s.as_str()).collect();
            return Err(AppError::conflict(
                "permission",
                format!(
                    "{} of this role require {permission}; remove them first, or remove them with it",
                    names.join(", ")
                ),
            ));
        }
        let mut deleted = 0;
        for p in &removed {
            deleted +=
                sqlx::query("delete from role_permission where role_id = $1 and permission = $2")
                    .bind(role_id)
                    .bind(p)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
        }
        deleted > 0
    };
    // The role held it already (or did not hold it): nothing changes, nothing is recorded.
    if !changed {
        drop(tx);
        return role_view(db, org, role_id).await;
    }
    record(
        &mut tx,
        grant,
        if granted {
            "role.permission_granted"
        } else {
            "role.permission_revoked"
        },
        role_id,
        serde_json::json!({
            "permission": permission,
            "removed": removed,
            "before": held,
            "after": permissions_after(&held, permission, granted, &removed),
        }),
    )
    .await?;
    commit(db, tx, org).await?;
    role_view(db, org, role_id).await
}

/// A role's own permissions after granting `permission`, or after taking away `removed`.
fn permissions_after(
    held: &[String],
    permission: &str,
    granted: bool,
    removed: &[String],
) -> Vec<String> {
    let mut after: Vec<String> = held
        .iter()
        .filter(|p| granted || !removed.contains(p))
        .cloned()
        .collect();
    if granted && !after.iter().any(|p| p == permission) {
        after.push(permission.to_string());
    }
    after.sort();
    after
}

/// Deletes a custom role (its assignments and its children's inheritance of it go with it).
pub async fn delete_role(db: &Db, grant: &Grant, role_id: &str) -> Result<(), AppError> {
    let org = grant.organization_id.as_str();
    let Change {
        mut tx,
        model,
        ceiling,
    } = begin(db, grant, Permission::RolesWrite).await?;
    let name = changeable(ceiling, &model, org, role_id)?.name.clone();
    sqlx::query("delete from role where role_id = $1 and organization_id = $2")
        .bind(role_id)
        .bind(org)
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        grant,
        "role.deleted",
        role_id,
        serde_json::json!({ "name": name }),
    )
    .await?;
    commit(db, tx, org).await
}

/// Defines a dynamic permission for the organization's own services, with the permissions it
/// requires.
pub async fn create_permission(
    db: &Db,
    grant: &Grant,
    name: &str,
    description: &str,
    requires: &[String],
) -> Result<PermissionView, AppError> {
    let name = name.trim();
    if !valid_permission_name(name) {
        return Err(AppError::invalid(
            "name",
            "a permission is named resource:action (lower-case letters, digits, - and _; at most 64 characters)",
        ));
    }
    if Permission::parse(name).is_some() {
        return Err(AppError::conflict(
            "name",
            format!("{name} is a built-in permission"),
        ));
    }
    if description.chars().count() > DESCRIPTION_MAX
        || description
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\r')
    {
        return Err(AppError::invalid(
            "description",
            format!("at most {DESCRIPTION_MAX} characters, no control characters but line breaks"),
        ));
    }
    let requires = &bounded("requires", requires, REQUIRES_MAX)?;
    let org = grant.organization_id.as_str();
    let Change { mut tx, .. } = begin(db, grant, Permission::RolesWrite).await?;
    for r in requires {
        // A built-in requirement would hand Keyward's own power to whoever is granted this
        // dynamic permission, which `roles:write` alone may grant.
        if Permission::parse(r).is_some() {
            return Err(AppError::invalid(
                "requires",
                format!("a dynamic permission can require only other dynamic permissions, not {r}"),
            ));
        }
        if r == name || !permission_exists(&mut tx, org, r).await? {
            return Err(AppError::invalid(
                "requires",
                format!("no permission {r:?} to require"),
            ));
        }
    }
    // Counted under the organization's lock, which every change of its permissions takes.
    let defined: i64 =
        sqlx::query_scalar("select count(*) from custom_permission where organization_id = $1")
            .bind(org)
            .fetch_one(&mut *tx)
            .await?;
    let inserted = sqlx::query(
        "insert into custom_permission (organization_id, name, description, created_at)
         values ($1, $2, $3, $4) on conflict (organization_id, name) do nothing",
    )
    .bind(org)
    .bind(name)
    .bind(description.trim())
    .bind(now_ms())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(AppError::conflict("name", format!("{name} exists")));
    }
    if defined >= PERMISSIONS_MAX {
        return Err(AppError::conflict(
            "name",
            format!("this organization has {PERMISSIONS_MAX} permissions of its own, the most it may; delete one first"),
        ));
    }
    for r in requires {
        sqlx::query(
            "insert into permission_dependency (organization_id, permission, requires) values ($1, $2, $3)
             on conflict (organization_id, permission, requires) do nothing",
        )
        .bind(org)
        .bind(name)
        .bind(r)
        .execute(&mut *tx)
        .await?;
    }
    record(
        &mut tx,
        grant,
        "permission.created",
        name,
        serde_json::json!({ "requires": requires }),
    )
    .await?;
    commit(db, tx, org).await?;
    Ok(PermissionView {
        name: name.into(),
        description: description.trim().into(),
        builtin: false,
        requires: requires.to_vec(),
    })
}

/// Assigns a custom role to members, or takes it from them, with a result per user. The
/// whole call is refused (403) when the role grants more than the caller holds.
pub async fn assign(
    db: &Db,
    grant: &Grant,
    role_id: &str,
    user_ids: &[String],
    assign: bool,
) -> Result<Vec<AssignResult>, AppError> {
    if user_ids.is_empty() || user_ids.len() > 500 {
        return Err(AppError::invalid("user_ids", "name 1 to 500 users"));
    }
    let org = grant.organization_id.as_str();
    let Change {
        mut tx,
        model,
        ceiling,
    } = begin(db, grant, Permission::RolesWrite).await?;
    own_role(&model, role_id).map_err(|e| match e.code {
        crate::error::ErrorCode::InvalidInput => AppError::invalid(
            "role_id",
            "a built-in role is a member's base role; change it on the members page",
        ),
        _ => e,
    })?;
    // Giving it, or taking it away: only a role within the caller's ceiling.
    within_ceiling(ceiling, &model, org, &[role_id])?;
    let mut out = Vec::with_capacity(user_ids.len());
    for user in user_ids {
        let n = if assign {
            sqlx::query(
                "insert into role_assignment (organization_id, user_id, role_id, created_at)
                 select organization_id, user_id, $3, $4 from membership
                 where organization_id = $1 and user_id = $2
                 on conflict (organization_id, user_id, role_id) do nothing",
            )
            .bind(org)
            .bind(user)
            .bind(role_id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected()
        } else {
            sqlx::query(
                "delete from role_assignment where organization_id = $1 and user_id = $2 and role_id = $3",
            )
            .bind(org)
            .bind(user)
            .bind(role_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
        };
        let member: i64 = sqlx::query_scalar(
            "select count(*) from membership where organization_id = $1 and user_id = $2",
        )
        .bind(org)
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
        out.push(AssignResult {
            user_id: user.clone(),
            ok: member > 0,
            changed: n > 0,
            error: (member == 0).then(|| "not a member of this organization".to_string()),
        });
    }
    let changed: Vec<&str> = out
        .iter()
        .filter(|r| r.changed)
        .map(|r| r.user_id.as_str())
        .collect();
    record(
        &mut tx,
        grant,
        if assign {
            "role.assigned"
        } else {
            "role.unassigned"
        },
        role_id,
        serde_json::json!({ "users": changed }),
    )
    .await?;
    commit(db, tx, org).await?;
    Ok(out)
}

pub async fn role_view(
    db: &Db,
    organization_id: &str,
    role_id: &str,
) -> Result<RoleView, AppError> {
    catalog(db, organization_id)
        .await?
        .roles
        .into_iter()
        .find(|r| r.id == role_id)
        .ok_or_else(|| AppError::not_found("role"))
}
