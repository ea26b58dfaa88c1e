//! Instance user administration (server only): list, create, disable and enable, send a
//! password reset, delete. The console's Users page and `/api/v1/users` call the same
//! functions.
//!
//! Every change runs under the system organization's role lock (`access::roles::begin`, which
//! re-reads the caller's ceiling inside the transaction) and goes through the authorization
//! core's rule for acting on another account ([`may_administer_user`]): never one's own, never
//! someone holding an instance permission the caller lacks. Status changes are one conditional
//! statement each, so two administrators (or two instances) racing cannot both act.
//!
//! **Deleting** keeps the row, anonymized: the address becomes a placeholder (so it is free to
//! be used again), the name "Deleted user", the password an unknown random one, the status
//! `disabled` with `deleted_at` set; memberships, role assignments, sessions, notifications
//! and every outbox email to the address go, and the keys of the personal organization and every
//! personal access token are revoked. Audit entries keep pointing at the same id. Refused while
//! the user is the only active owner of an organization other than their personal one.

use super::{NewUser, UserPage, UserQuery, UserSummary, USERS_PER_PAGE};
use crate::access::roles::{begin, commit, may_administer_user, within_ceiling};
use crate::access::ssr::{Grant, SYSTEM_ORG_ID};
use crate::access::{Permission, Role};
use crate::error::AppError;
use crate::identity::password_link::{self, Purpose};
use crate::identity::sessions::{end_all, end_named, Why};
use crate::identity::ssr::{insert_user, validate_display_name, validate_email};
use crate::ssr::config::Config;
use crate::ssr::db::{lock_row, now_ms, Backend, Db, LockedRow, RowLock};
use crate::ssr::events::{self, Event};
use crate::ssr::password;
use sqlx::{Any, Row, Transaction};

/// The users' summary rows (the system organization is `$1`), with what their live sessions
/// are counted by ([`summaries`]).
const SUMMARY_SQL: &str = "select u.user_id, u.email, u.display_name,
        case when u.deleted_at is not null then 'deleted' else u.status end as status,
        u.created_at, m.role as system_role, u.password_hash, u.session_epoch,
        (select count(*) from totp_factor f where f.user_id = u.user_id)
          + (select count(*) from passkey p where p.user_id = u.user_id) as two_factor
     from app_user u left join membership m on m.user_id = u.user_id and m.organization_id = $1";

/// The summaries of `rows` ([`SUMMARY_SQL`]), each with its live console sessions counted as
/// the user's session list shows them (`identity::sessions::live_counts`: a session a race
/// left holding an old credential stamp is not one).
async fn summaries(db: &Db, rows: &[sqlx::any::AnyRow]) -> Result<Vec<UserSummary>, AppError> {
    let mut users = Vec::with_capacity(rows.len());
    let mut stamps = Vec::with_capacity(rows.len());
    for r in rows {
        let user_id: String = r.try_get("user_id")?;
        let hash: String = r.try_get("password_hash")?;
        stamps.push((
            user_id.clone(),
            crate::identity::ssr::credential_stamp(&hash, r.try_get("session_epoch")?),
        ));
        users.push(UserSummary {
            user_id,
            email: r.try_get("email")?,
            display_name: r.try_get("display_name")?,
            status: r.try_get("status")?,
            created_at: r.try_get("created_at")?,
            system_role: r.try_get("system_role")?,
            sessions: 0,
            two_factor: r.try_get::<i64, _>("two_factor")? > 0,
        });
    }
    let counts = crate::identity::sessions::live_counts(db, &stamps).await?;
    for user in &mut users {
        user.sessions = counts.get(&user.user_id).copied().unwrap_or(0);
    }
    Ok(users)
}

/// `%`, `_` and `!` taken literally in a `like` pattern (with `escape '!'`, which reads the
/// same on SQLite and on PostgreSQL whatever `standard_conforming_strings` says).
pub(crate) fn like_pattern(text: &str) -> String {
    let mut out = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// One page of users matching the search and filters, newest first.
pub async fn list(db: &Db, query: &UserQuery) -> Result<UserPage, AppError> {
    let q = query.q.trim();
    if q.chars().count() > 100 {
        return Err(AppError::invalid("q", "search at most 100 characters"));
    }
    let status = match query.status.as_str() {
        "" => "u.deleted_at is null",
        "active" => "u.deleted_at is null and u.status = 'active'",
        "disabled" => "u.deleted_at is null and u.status = 'disabled'",
        "deleted" => "u.deleted_at is not null",
        _ => {
            return Err(AppError::invalid(
                "status",
                "status is active, disabled or deleted",
            ))
        }
    };
    match query.role.as_str() {
        "" | "none" => {}
        r if Role::parse(r).is_some() => {}
        _ => {
            return Err(AppError::invalid(
                "role",
                "role is owner, admin, member, viewer or none",
            ))
        }
    }
    let page = query.page.unwrap_or(1);
    if page == 0 || page > 100_000 {
        return Err(AppError::invalid("page", "page counts from 1"));
    }
    let filter = format!(
        " where {status} and ($3 = '' or ($3 = 'none' and m.role is null) or m.role = $3) and (u.email_normalized like $2 escape '!' or lower(u.display_name) like $2 escape '!')"
    );
    let pattern = like_pattern(q);
    let total: i64 = sqlx::query_scalar(&format!(
        "select count(*) from app_user u left join membership m on m.user_id = u.user_id and m.organization_id = $1{filter}"
    ))
    .bind(SYSTEM_ORG_ID)
    .bind(&pattern)
    .bind(&query.role)
    .fetch_one(&db.reader)
    .await?;
    let rows = sqlx::query(&format!(
        "{SUMMARY_SQL}{filter} order by u.created_at desc, u.user_id limit {USERS_PER_PAGE} offset {}",
        (page - 1) * USERS_PER_PAGE
    ))
    .bind(SYSTEM_ORG_ID)
    .bind(&pattern)
    .bind(&query.role)
    .fetch_all(&db.reader)
    .await?;
    Ok(UserPage {
        users: summaries(db, &rows).await?,
        total: total as u64,
        page,
        per_page: USERS_PER_PAGE,
    })
}

/// One user (deleted ones included); not found when there is none.
pub async fn get(db: &Db, user_id: &str) -> Result<UserSummary, AppError> {
    let row = sqlx::query(&format!("{SUMMARY_SQL} where u.user_id = $2"))
        .bind(SYSTEM_ORG_ID)
        .bind(user_id)
        .fetch_optional(&db.writer)
        .await?
        .ok_or_else(|| AppError::not_found("user"))?;
    let mut summary = summaries(db, std::slice::from_ref(&row)).await?;
    Ok(summary.remove(0))
}

async fn record(
    tx: &mut Transaction<'static, Any>,
    grant: &Grant,
    kind: &'static str,
    user_id: &str,
    source_ip: Option<&str>,
    data: serde_json::Value,
) -> Result<(), AppError> {
    events::record(
        tx,
        Event {
            kind,
            organization_id: Some(SYSTEM_ORG_ID),
            actor_user_id: grant.principal.acting_user(),
            subject_id: Some(user_id),
            source_ip,
            data,
        },
    )
    .await?;
    Ok(())
}

/// Opens an administrative change on `user_id`: the caller still holds `users:write`, the
/// account exists and is not deleted, and the caller may act on it.
async fn change_on(
    db: &Db,
    grant: &Grant,
    user_id: &str,
) -> Result<crate::access::roles::Change, AppError> {
    if grant.organization_id != SYSTEM_ORG_ID {
        return Err(AppError::forbidden(Permission::UsersWrite.as_str()));
    }
    let mut change = begin(db, grant, Permission::UsersWrite).await?;
    let found: Option<String> = sqlx::query_scalar(
        "select user_id from app_user where user_id = $1 and deleted_at is null",
    )
    .bind(user_id)
    .fetch_optional(&mut *change.tx)
    .await?;
    found.ok_or_else(|| AppError::not_found("user"))?;
    may_administer_user(&mut change, &grant.principal, user_id).await?;
    Ok(change)
}

/// Creates an account; the person gets an emailed link to choose their password. The caller
/// cannot give a system role that grants more than they hold.
pub async fn create(
    db: &Db,
    config: &Config,
    grant: &Grant,
    input: &NewUser,
    source_ip: Option<&str>,
) -> Result<UserSummary, AppError> {
    validate_email(&input.email)?;
    let display_name = validate_display_name(&input.display_name)?;
    let role = match input.system_role.as_deref().unwrap_or("") {
        "" => None,
        r => Some(Role::parse(r).ok_or_else(|| {
            AppError::invalid(
                "system_role",
                "choose owner, admin, member or viewer, or none",
            )
        })?),
    };
    if grant.organization_id != SYSTEM_ORG_ID {
        return Err(AppError::forbidden(Permission::UsersWrite.as_str()));
    }
    // An unknown random password until the person chooses theirs through the link.
    let hash = password::hash(hex::encode(rand::random::<[u8; 32]>())).await?;
    let mut change = begin(db, grant, Permission::UsersWrite).await?;
    if let Some(role) = role {
        within_ceiling(
            change.ceiling,
            &change.model,
            SYSTEM_ORG_ID,
            &[role.as_str()],
        )?;
    }
    let user_id = insert_user(
        &mut change.tx,
        &input.email,
        &display_name,
        &hash,
        role,
        grant.principal.acting_user(),
        source_ip,
    )
    .await?;
    password_link::send(&mut change.tx, config, &user_id, Purpose::Setup, now_ms()).await?;
    commit(db, change.tx, SYSTEM_ORG_ID).await?;
    get(db, &user_id).await
}

/// Disables (`active: false`) or re-enables an account. Disabling ends the user's sessions in
/// the same transaction; their personal access tokens stop at once (the authorization core
/// refuses a token whose owner is not active).
pub async fn set_status(
    state: &crate::ssr::AppState,
    grant: &Grant,
    user_id: &str,
    active: bool,
    source_ip: Option<&str>,
) -> Result<UserSummary, AppError> {
    let db = &state.db;
    let mut change = change_on(db, grant, user_id).await?;
    if !active {
        refuse_if_sole_owner(&mut change.tx, db.backend, user_id, "disable").await?;
    }
    let (from, to) = if active {
        ("disabled", "active")
    } else {
        ("active", "disabled")
    };
    let changed = sqlx::query(
        // `updated_at` always moves (password links are bound to it, see `password_link`).
        "update app_user set status = $3,
             updated_at = case when $4 > updated_at then $4 else updated_at + 1 end
         where user_id = $1 and status = $2 and deleted_at is null",
    )
    .bind(user_id)
    .bind(from)
    .bind(to)
    .bind(now_ms())
    .execute(&mut *change.tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(AppError::conflict(
            "status",
            format!("the account is not {from}"),
        ));
    }
    let mut ended = 0;
    if !active {
        ended = end_all(&mut change.tx, user_id, None, Why::AccountDisabled)
            .await?
            .count;
        // What they handed out goes with them.
        crate::orgs::members::revoke_all_sent_by(&mut change.tx, user_id).await?;
    }
    let kind = if active {
        "user.enabled"
    } else {
        "user.disabled"
    };
    record(
        &mut change.tx,
        grant,
        kind,
        user_id,
        source_ip,
        serde_json::json!({ "sessions_ended": ended }),
    )
    .await?;
    commit(db, change.tx, SYSTEM_ORG_ID).await?;
    // The keys of their personal organization take the account's status: refused at once
    // here, not when a cached answer ages out.
    crate::keys::ssr::KeyCache::of(state)?.clear();
    get(db, user_id).await
}

/// Signs the user out everywhere: every console session ends at once (their personal access
/// tokens are not sessions and keep working; disable the account to stop those too). Answers
/// how many sessions ended. Like the other actions here, never on one's own account nor on
/// someone stronger.
pub async fn end_sessions(
    db: &Db,
    grant: &Grant,
    user_id: &str,
    source_ip: Option<&str>,
) -> Result<u64, AppError> {
    let mut change = change_on(db, grant, user_id).await?;
    let ended = end_all(&mut change.tx, user_id, None, Why::EndedByAdministrator)
        .await?
        .count;
    record(
        &mut change.tx,
        grant,
        "user.sessions_ended",
        user_id,
        source_ip,
        serde_json::json!({ "sessions_ended": ended }),
    )
    .await?;
    commit(db, change.tx, SYSTEM_ORG_ID).await?;
    Ok(ended)
}

/// A user's live console sessions (device, address, signed in, last seen), the most recently
/// seen first; "not found" for no such user.
pub async fn sessions_of(
    db: &Db,
    user_id: &str,
) -> Result<Vec<crate::identity::SessionView>, AppError> {
    let known: Option<String> =
        sqlx::query_scalar("select user_id from app_user where user_id = $1")
            .bind(user_id)
            .fetch_optional(&db.reader)
            .await?;
    if known.is_none() {
        return Err(AppError::not_found("user"));
    }
    crate::identity::sessions::list(db, user_id, None).await
}

/// Ends one of a user's console sessions, named by its handle (from [`sessions_of`]). Like
/// the other actions here, never on one's own account nor on someone stronger; a handle of
/// another user's session, or of a gone one, is "not found".
pub async fn end_session(
    db: &Db,
    grant: &Grant,
    user_id: &str,
    handle: &str,
    source_ip: Option<&str>,
) -> Result<(), AppError> {
    let mut change = change_on(db, grant, user_id).await?;
    end_named(
        &mut change.tx,
        user_id,
        handle,
        None,
        Why::EndedByAdministrator,
    )
    .await?;
    record(
        &mut change.tx,
        grant,
        "user.session_ended",
        user_id,
        source_ip,
        serde_json::json!({ "handle": handle }),
    )
    .await?;
    commit(db, change.tx, SYSTEM_ORG_ID).await
}

/// Turns a user's two-factor authentication off (they lost their phone and their recovery
/// codes): the factor and the codes go, every session of theirs ends, and they are told in the
/// app and by email. Their next sign-in takes the password alone, unless an organization of
/// theirs requires a factor, which then holds them to enrolling a new one. Like the other
/// actions here, never on one's own account nor on someone stronger; 409 when they have none.
pub async fn reset_two_factor(
    db: &Db,
    config: &Config,
    grant: &Grant,
    user_id: &str,
    source_ip: Option<&str>,
) -> Result<(), AppError> {
    let mut change = change_on(db, grant, user_id).await?;
    // The account first, then its factors: the order the user's own changes take (turning the
    // app off, new recovery codes), so that the two cannot deadlock on PostgreSQL.
    crate::ssr::db::lock_user(&mut change.tx, user_id).await?;
    let mut gone = 0;
    for table in ["totp_factor", "passkey"] {
        gone += sqlx::query(&format!("delete from {table} where user_id = $1"))
            .bind(user_id)
            .execute(&mut *change.tx)
            .await?
            .rows_affected();
    }
    if gone == 0 {
        return Err(AppError::conflict(
            "user_id",
            "this user has no two-factor authentication",
        ));
    }
    sqlx::query("delete from recovery_code where user_id = $1")
        .bind(user_id)
        .execute(&mut *change.tx)
        .await?;
    let ended = end_all(&mut change.tx, user_id, None, Why::EndedByAdministrator)
        .await?
        .count;
    record(
        &mut change.tx,
        grant,
        "user.two_factor_reset",
        user_id,
        source_ip,
        serde_json::json!({ "sessions_ended": ended }),
    )
    .await?;
    // Told in the same transaction: the factors never go untold.
    crate::notify::ssr::notify_in(
        &mut change.tx,
        &[user_id.to_string()],
        &crate::notify::ssr::Message {
            kind: "security",
            title: "An administrator turned off your two-factor authentication".into(),
            body: "Your authenticator app, recovery codes and passkeys no longer work, and you were signed out everywhere. Sign in with your password and set two-factor authentication up again. If you did not ask for this, tell your security team.".into(),
            link: Some("/profile".into()),
            dedupe: format!("2fa-reset:{user_id}:{}", now_ms()),
        },
        config.link_base(),
    )
    .await?;
    commit(db, change.tx, SYSTEM_ORG_ID).await
}

/// Emails the user a link to choose a new password (their current one keeps working until
/// they use it).
pub async fn send_password_reset(
    db: &Db,
    config: &Config,
    grant: &Grant,
    user_id: &str,
    source_ip: Option<&str>,
) -> Result<(), AppError> {
    let mut change = change_on(db, grant, user_id).await?;
    password_link::send(&mut change.tx, config, user_id, Purpose::Reset, now_ms()).await?;
    record(
        &mut change.tx,
        grant,
        "user.password_reset_sent",
        user_id,
        source_ip,
        serde_json::json!({}),
    )
    .await?;
    commit(db, change.tx, SYSTEM_ORG_ID).await
}

/// Deletes an account as an administrator (see the module doc).
pub async fn delete(
    state: &crate::ssr::AppState,
    grant: &Grant,
    user_id: &str,
    source_ip: Option<&str>,
) -> Result<(), AppError> {
    let hash = password::hash(hex::encode(rand::random::<[u8; 32]>())).await?;
    let db = &state.db;
    let mut change = change_on(db, grant, user_id).await?;
    let revoked = erase(&mut change.tx, db.backend, user_id, &hash).await?;
    record(
        &mut change.tx,
        grant,
        "user.deleted",
        user_id,
        source_ip,
        serde_json::json!({ "keys_revoked": revoked }),
    )
    .await?;
    commit(db, change.tx, SYSTEM_ORG_ID).await?;
    // The revoked keys stop on this instance now, on others within the key cache's TTL.
    crate::keys::ssr::KeyCache::of(state)?.clear();
    Ok(())
}

/// The organizations (other than their personal one) whose only active owner is `user_id`.
pub(crate) async fn solely_owned(
    tx: &mut Transaction<'static, Any>,
    user_id: &str,
) -> Result<Vec<String>, AppError> {
    Ok(sqlx::query_scalar(
        "select o.name from organization o
         join membership m on m.organization_id = o.organization_id and m.user_id = $1 and m.role = 'owner'
         where o.kind <> 'personal' and not exists (
             select 1 from membership other join app_user u on u.user_id = other.user_id
             where other.organization_id = o.organization_id and other.role = 'owner'
               and other.user_id <> $1 and u.status = 'active' and u.deleted_at is null)
         order by o.name",
    )
    .bind(user_id)
    .fetch_all(&mut **tx)
    .await?)
}

/// Refuses (409, naming them) while the user is the only active owner of an organization
/// other than their personal one. On PostgreSQL it first takes the role lock of every
/// organization the user belongs to (`system` first, as an administrator's change holds it
/// already, then in id order), the lock membership changes take: a
/// co-owner leaving at the same moment on another instance waits, then sees this user gone,
/// and refuses; and an administrator removing the user from an organization at the same moment
/// waits instead of taking the user's invitations or roles in the other order (a deadlock).
async fn refuse_if_sole_owner(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    user_id: &str,
    what: &str,
) -> Result<(), AppError> {
    if backend == Backend::Postgres {
        sqlx::query(
            "select o.organization_id from organization o
             join membership m on m.organization_id = o.organization_id
             where m.user_id = $1
             order by case when o.organization_id = $2 then 0 else 1 end, o.organization_id
             for no key update of o",
        )
        .bind(user_id)
        .bind(SYSTEM_ORG_ID)
        .fetch_all(&mut **tx)
        .await?;
    }
    // Then the account's row: an organization they are creating meanwhile holds it until it
    // commits, so it is counted below, and none is created after (creating one needs an active
    // account).
    lock_row(tx, LockedRow::User(user_id), RowLock::NoKeyUpdate).await?;
    let sole = solely_owned(tx, user_id).await?;
    if sole.is_empty() {
        return Ok(());
    }
    Err(AppError::conflict(
        "user_id",
        format!(
            "cannot {what}: the user is the only owner of {}; transfer ownership first",
            sole.join(", ")
        ),
    ))
}

/// Anonymizes and disables the account in the caller's transaction (the module doc lists what
/// goes). `random_hash` is a hash of a password nobody knows. Returns how many keys it revoked.
pub(crate) async fn erase(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    user_id: &str,
    random_hash: &str,
) -> Result<u64, AppError> {
    refuse_if_sole_owner(tx, backend, user_id, "delete").await?;
    // The account's row before anything of theirs (their outbox mail, say): an invitation
    // being accepted by them holds a share lock on it (the membership's foreign key) and then
    // updates its outbox row, so taking the outbox row first would deadlock.
    lock_row(tx, LockedRow::User(user_id), RowLock::Update).await?;
    let now = now_ms();
    let placeholder = format!("deleted+{}@deleted.invalid", user_id.to_lowercase());
    // Mail to the address goes too, sent or not: the outbox is no archive of who was here.
    sqlx::query(
        "delete from outbox_email where lower(to_address) =
             (select email_normalized from app_user where user_id = $1 and deleted_at is null)",
    )
    .bind(user_id)
    .execute(&mut **tx)
    .await?;
    let personal: Option<String> = sqlx::query_scalar(
        "update app_user set email = $2, email_normalized = $2, display_name = 'Deleted user',
             password_hash = $3, status = 'disabled', deleted_at = $4, updated_at = $4
         where user_id = $1 and deleted_at is null
         returning personal_organization_id",
    )
    .bind(user_id)
    .bind(&placeholder)
    .bind(random_hash)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(personal) = personal else {
        return Err(AppError::not_found("user"));
    };
    let revoked = sqlx::query(
        "update api_key set status = 'revoked', updated_at = $3
         where (owner_user_id = $1 or organization_id = $2) and status <> 'revoked'",
    )
    .bind(user_id)
    .bind(&personal)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    sqlx::query(
        "update organization set name = 'Deleted user (personal)' where organization_id = $1",
    )
    .bind(&personal)
    .execute(&mut **tx)
    .await?;
    crate::orgs::members::revoke_all_sent_by(tx, user_id).await?;
    for sql in [
        "delete from role_assignment where user_id = $1",
        "delete from membership where user_id = $1",
        "delete from notification where user_id = $1",
        "delete from sign_in_failure where user_id = $1",
        "delete from totp_factor where user_id = $1",
        "delete from recovery_code where user_id = $1",
        "delete from passkey where user_id = $1",
        "delete from webauthn_handle where user_id = $1",
    ] {
        sqlx::query(sql).bind(user_id).execute(&mut **tx).await?;
    }
    end_all(tx, user_id, None, Why::AccountDeleted).await?;
    Ok(revoked)
}
