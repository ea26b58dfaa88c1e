//! Membership of an organization (server only): create an organization; invite by email
//! (a signed, expiring, single-use link sent through the outbox); accept; remove a member;
//! leave; change a member's base role; transfer ownership.
//!
//! Every change runs in one writer transaction that takes the organization's lock and re-reads
//! the caller's ceiling inside it ([`crate::access::roles::begin`]), so that two admins acting
//! at once, on one instance or two, are decided one after the other. The rules, all there:
//! - **power**: a caller invites with, gives, or takes away only a role within their own
//!   ceiling, and cannot remove or re-role a member who holds more than they do;
//! - **an organization never loses its last owner**: removing, demoting or leaving as the last
//!   owner is refused; ownership moves by transfer;
//! - a **personal** organization has exactly one member, and the system organization's members
//!   are the instance's administrators (made from the CLI or the users console, not invited).

use super::{Invitation, InvitationPreview, Member};
use crate::access::roles::{begin, record, within_ceiling, within_reach, Change};
use crate::access::ssr::Grant;
use crate::access::{Permission, Role};
use crate::error::{AppError, ErrorCode};
use crate::identity::ssr::{normalize_email, validate_email};
use crate::ssr::db::{lock_user, new_id, now_ms, rfc3339, Db};
use crate::ssr::events::{self, Event};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::{Any, Row, Transaction};

/// How long an invitation link stays valid.
pub const INVITATION_DAYS: i64 = 7;
/// Pending invitations an organization may hold at once (a bound on outgoing mail).
const PENDING_MAX: i64 = 100;
/// Invitations an organization may send in an hour, replaced and revoked ones included.
const PER_HOUR_MAX: i64 = 50;
/// Invitations one person may send in an hour, over every organization and every key that
/// acts for them ([`crate::access::roles::accountable`]): owning many organizations, or making
/// a key in each, does not multiply what one account can mail.
const SENDER_PER_HOUR_MAX: i64 = 50;

/// The PostgreSQL advisory lock that serializes sending invitations across organizations
/// ("keyward" + 2; the audit chain's is + 1).
const INVITATION_LOCK: i64 = 0x6b65_7977_6172_6402;
/// Organizations one user may own (a bound on what one account can create).
const OWNED_MAX: i64 = 100;
/// Longest organization name.
const NAME_MAX: usize = 100;

/// Creates a team organization owned by `user_id`; returns its id.
pub async fn create_organization(
    db: &Db,
    user_id: &str,
    name: &str,
    source_ip: Option<&str>,
) -> Result<String, AppError> {
    let name = name.trim();
    if !crate::ssr::fits_name(name, NAME_MAX) {
        return Err(AppError::invalid(
            "name",
            "name the organization in 1 to 100 characters",
        ));
    }
    let now = now_ms();
    let org_id = new_id("org");
    let mut tx = db.writer.begin().await?;
    // The bound is decided in the statement that writes, under the account's row lock: on
    // PostgreSQL (read committed) two creations at once would otherwise both count the
    // owned organizations before either wrote one.
    lock_user(&mut tx, user_id).await?;
    let inserted = sqlx::query(
        "insert into organization (organization_id, name, slug, kind, created_at)
         select $1, $2, $3, 'team', $4
         where (select count(*) from membership m join organization o on o.organization_id = m.organization_id
                where m.user_id = $5 and m.role = 'owner' and o.kind = 'team') < $6
           and exists (select 1 from app_user where user_id = $5 and status = 'active' and deleted_at is null)",
    )
    .bind(&org_id)
    .bind(name)
    .bind(org_id.to_lowercase().replace('_', "-"))
    .bind(now)
    .bind(user_id)
    .bind(OWNED_MAX)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        // The account was disabled or deleted a moment ago (the guard saw it active)...
        let active: Option<i64> = sqlx::query_scalar(
            "select 1 from app_user where user_id = $1 and status = 'active' and deleted_at is null",
        )
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if active.is_none() {
            return Err(AppError::unauthenticated());
        }
        // ...or owns the most organizations it may.
        return Err(AppError::new(
            ErrorCode::Conflict,
            "you own the most organizations one account may own (100)",
        ));
    }
    sqlx::query(
        "insert into membership (organization_id, user_id, role, created_at) values ($1, $2, 'owner', $3)",
    )
    .bind(&org_id)
    .bind(user_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    events::record(
        &mut tx,
        Event {
            kind: "organization.created",
            organization_id: Some(&org_id),
            actor_user_id: Some(user_id),
            subject_id: Some(&org_id),
            source_ip,
            data: serde_json::json!({ "name": name }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(org_id)
}

/// The members of an organization, each with their base role and custom roles.
pub async fn members(db: &Db, organization_id: &str) -> Result<Vec<Member>, AppError> {
    let rows = sqlx::query(
        "select u.user_id, u.email, u.display_name, m.role
         from membership m join app_user u on u.user_id = m.user_id
         where m.organization_id = $1 order by u.email",
    )
    .bind(organization_id)
    .fetch_all(&db.reader)
    .await?;
    let assigned: Vec<(String, String)> = sqlx::query_as(
        "select a.user_id, r.name from role_assignment a join role r on r.role_id = a.role_id
         where a.organization_id = $1 order by r.name",
    )
    .bind(organization_id)
    .fetch_all(&db.reader)
    .await?;
    let through_teams: Vec<(String, String, String)> = sqlx::query_as(
        "select tm.user_id, r.name, t.name from team_member tm
         join team t on t.team_id = tm.team_id
         join team_role tr on tr.team_id = tm.team_id
         join role r on r.role_id = tr.role_id
         where tm.organization_id = $1 order by r.name, t.name",
    )
    .bind(organization_id)
    .fetch_all(&db.reader)
    .await?;
    rows.iter()
        .map(|r| {
            let user_id: String = r.try_get("user_id")?;
            Ok(Member {
                roles: assigned
                    .iter()
                    .filter(|(u, _)| *u == user_id)
                    .map(|(_, name)| name.clone())
                    .collect(),
                team_roles: through_teams
                    .iter()
                    .filter(|(u, _, _)| *u == user_id)
                    .map(|(_, role, team)| format!("{role} ({team})"))
                    .collect(),
                user_id,
                email: r.try_get("email")?,
                display_name: r.try_get("display_name")?,
                role: r.try_get("role")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(AppError::from)
}

/// The organization's kind (`system`, `personal`, `team`), inside the change.
async fn kind(
    tx: &mut Transaction<'static, Any>,
    organization_id: &str,
) -> Result<String, AppError> {
    sqlx::query_scalar("select kind from organization where organization_id = $1")
        .bind(organization_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| AppError::not_found("organization"))
}

/// Refuses changes to the membership of personal and system organizations.
async fn team_only(
    tx: &mut Transaction<'static, Any>,
    organization_id: &str,
) -> Result<(), AppError> {
    match kind(tx, organization_id).await?.as_str() {
        "team" => Ok(()),
        "personal" => Err(AppError::invalid(
            "organization_id",
            "a personal organization has no other members; create an organization to work with others",
        )),
        _ => Err(AppError::invalid(
            "organization_id",
            "the system organization's members are the instance's administrators: manage them on the users page",
        )),
    }
}

/// A base role that may be given by invitation or role change: never owner (ownership is
/// transferred).
fn base_role(role: &str) -> Result<Role, AppError> {
    Role::parse(role)
        .filter(|r| *r != Role::Owner)
        .ok_or_else(|| {
            AppError::invalid(
                "role",
                "choose admin, member or viewer; ownership is transferred, not given",
            )
        })
}

/// A member's base role and custom roles, inside the change; not found when not a member.
async fn member_roles(
    tx: &mut Transaction<'static, Any>,
    organization_id: &str,
    user_id: &str,
) -> Result<(String, Vec<String>), AppError> {
    crate::access::roles::held_roles(tx, organization_id, user_id)
        .await?
        .ok_or_else(|| AppError::not_found("member"))
}

/// Active owners of the organization, inside the change (a disabled owner cannot act).
async fn owners(
    tx: &mut Transaction<'static, Any>,
    organization_id: &str,
) -> Result<i64, AppError> {
    Ok(sqlx::query_scalar(
        "select count(*) from membership m join app_user u on u.user_id = m.user_id
         where m.organization_id = $1 and m.role = 'owner' and u.status = 'active'",
    )
    .bind(organization_id)
    .fetch_one(&mut **tx)
    .await?)
}

/// Whether the user's account is active (not disabled, not deleted).
async fn active(tx: &mut Transaction<'static, Any>, user_id: &str) -> Result<bool, AppError> {
    let status: Option<String> =
        sqlx::query_scalar("select status from app_user where user_id = $1")
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(status.as_deref() == Some("active"))
}

/// Revokes the pending invitations `user_id` sent in the organization: what they could hand
/// out when they sent them, they may no longer hold (removed, left, re-roled). In id order,
/// as [`revoke_all_sent_by`]: two of them at once take the rows in the same order.
async fn revoke_sent_by(
    tx: &mut Transaction<'static, Any>,
    organization_id: &str,
    user_id: &str,
) -> Result<(), AppError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "select invitation_id from invitation
         where organization_id = $1 and invited_by = $2 and accepted_at is null and revoked_at is null
         order by invitation_id",
    )
    .bind(organization_id)
    .bind(user_id)
    .fetch_all(&mut **tx)
    .await?;
    for id in ids {
        withdraw(tx, &id).await?;
    }
    Ok(())
}

/// Withdraws every pending invitation `user_id` sent, in any organization (their account is
/// disabled or deleted: what they handed out goes with them).
pub(crate) async fn revoke_all_sent_by(
    tx: &mut Transaction<'static, Any>,
    user_id: &str,
) -> Result<(), AppError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "select invitation_id from invitation
         where invited_by = $1 and accepted_at is null and revoked_at is null
         order by invitation_id",
    )
    .bind(user_id)
    .fetch_all(&mut **tx)
    .await?;
    for id in ids {
        withdraw(tx, &id).await?;
    }
    Ok(())
}

/// Marks an invitation revoked (if still pending) and takes its link out of the outbox.
/// Returns whether it was pending.
async fn withdraw(
    tx: &mut Transaction<'static, Any>,
    invitation_id: &str,
) -> Result<bool, AppError> {
    let n = sqlx::query(
        "update invitation set revoked_at = $2
         where invitation_id = $1 and accepted_at is null and revoked_at is null",
    )
    .bind(invitation_id)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    forget_link(tx, invitation_id).await?;
    Ok(n == 1)
}

/// The outbox keeps no working link of an invitation that is no longer pending.
async fn forget_link(
    tx: &mut Transaction<'static, Any>,
    invitation_id: &str,
) -> Result<(), AppError> {
    sqlx::query("update outbox_email set body_text = $2 where dedupe_key = $1")
        .bind(format!("invitation:{invitation_id}"))
        .bind(LINK_GONE)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What an invitation email says once its link is used, revoked or replaced.
const LINK_GONE: &str = "This invitation is no longer valid. Ask for a new one.\n";

fn last_owner() -> AppError {
    AppError::conflict(
        "user_id",
        "an organization needs an owner: transfer ownership to another member first",
    )
}

/// The signed part of an invitation link.
fn invitation_mac(secret: &[u8; 32], invitation_id: &str, email: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    mac.update(b"keyward-invitation-v1\0");
    mac.update(invitation_id.as_bytes());
    mac.update(b"\0");
    mac.update(email.as_bytes());
    mac
}

/// The token of an invitation's link: `<invitation id>.<HMAC of id and address>`. Nothing in
/// the database can be turned into one without the instance secret.
pub fn invitation_token(secret: &[u8; 32], invitation_id: &str, email: &str) -> String {
    let tag = hex::encode(
        invitation_mac(secret, invitation_id, email)
            .finalize()
            .into_bytes(),
    );
    format!("{invitation_id}.{tag}")
}

/// The invitation a token names, when its signature holds (constant-time); `None` for any
/// malformed, forged or unknown token.
async fn verified(
    conn: &mut sqlx::AnyConnection,
    secret: &[u8; 32],
    token: &str,
) -> Result<Option<sqlx::any::AnyRow>, AppError> {
    let Some((id, tag)) = token.trim().split_once('.') else {
        return Ok(None);
    };
    let Ok(tag) = hex::decode(tag) else {
        return Ok(None);
    };
    if id.len() > 64 {
        return Ok(None);
    }
    let row = sqlx::query(
        "select i.invitation_id, i.organization_id, i.email, i.role, i.expires_at, i.accepted_at, i.revoked_at, i.sent_by,
                o.name as organization_name, u.display_name as inviter
         from invitation i join organization o on o.organization_id = i.organization_id
         left join app_user u on u.user_id = i.invited_by
         where i.invitation_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let email: String = row.try_get("email")?;
    if invitation_mac(secret, id, &email)
        .verify_slice(&tag)
        .is_err()
    {
        return Ok(None);
    }
    Ok(Some(row))
}

/// Why an invitation cannot be accepted, if it cannot.
fn unusable(row: &sqlx::any::AnyRow, now: i64) -> Result<Option<&'static str>, AppError> {
    let accepted: Option<i64> = row.try_get("accepted_at")?;
    let revoked: Option<i64> = row.try_get("revoked_at")?;
    let expires: i64 = row.try_get("expires_at")?;
    Ok(if accepted.is_some() {
        Some("used")
    } else if revoked.is_some() {
        Some("revoked")
    } else if expires <= now {
        Some("expired")
    } else {
        None
    })
}

fn not_valid() -> AppError {
    AppError::not_found("invitation")
}

/// Invites `email` into the organization with a base role; the link goes out through the
/// outbox. Inviting an address again revokes its pending invitation and sends a new link.
pub async fn invite(
    db: &Db,
    grant: &Grant,
    config: &crate::ssr::config::Config,
    email: &str,
    role: &str,
) -> Result<Invitation, AppError> {
    let (secret, origin) = (&config.secret, config.link_base());
    validate_email(email)?;
    let email = normalize_email(email);
    let role = base_role(role)?;
    let org = grant.organization_id.as_str();
    let Change {
        mut tx,
        model,
        ceiling,
    } = begin(db, grant, Permission::MembersWrite).await?;
    team_only(&mut tx, org).await?;
    within_ceiling(ceiling, &model, org, &[role.as_str()])?;
    let member: Option<String> = sqlx::query_scalar(
        "select m.user_id from membership m join app_user u on u.user_id = m.user_id
         where m.organization_id = $1 and u.email_normalized = $2",
    )
    .bind(org)
    .bind(&email)
    .fetch_optional(&mut *tx)
    .await?;
    if member.is_some() {
        return Err(AppError::conflict(
            "email",
            "this person is already a member",
        ));
    }
    let now = now_ms();
    // Inviting again replaces the pending invitation: only one the caller could have sent.
    let pending: Option<(String, String)> = sqlx::query_as(
        "select invitation_id, role from invitation
         where organization_id = $1 and email = $2 and accepted_at is null and revoked_at is null",
    )
    .bind(org)
    .bind(&email)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((old, old_role)) = pending {
        within_ceiling(ceiling, &model, org, &[old_role.as_str()])?;
        withdraw(&mut tx, &old).await?;
    }
    let id = new_id("inv");
    let expires_at = now + INVITATION_DAYS * 24 * 3600 * 1000;
    let answers = match grant.principal.acting_user() {
        Some(person) => person.to_string(),
        None => match crate::access::roles::accountable(&mut tx, grant.principal.actor_id()).await?
        {
            crate::access::roles::Accountable::Person(person) => person,
            crate::access::roles::Accountable::Key(key) => key,
        },
    };
    // The sender's and the instance's hourly bounds span organizations, whose role locks do
    // not exclude each other: on PostgreSQL, invitations take one more lock (last, so no
    // cycle), and the count below sees every earlier one committed. SQLite has one writer.
    if db.backend == crate::ssr::db::Backend::Postgres {
        sqlx::query("select pg_advisory_xact_lock($1)")
            .bind(INVITATION_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    // The bounds in the statement that writes: pending invitations, and invitations sent in
    // the last hour by the organization, by the sender and by the whole instance (revoked and
    // replaced ones included, so that re-inviting cannot turn the instance into a mail relay).
    let inserted = sqlx::query(
        "insert into invitation (invitation_id, organization_id, email, role, invited_by, created_at, expires_at, sent_by, accountable_id)
         select $1, $2, $3, $4, $5, $6, $7, $10, $13
         where (select count(*) from invitation where organization_id = $2
                and accepted_at is null and revoked_at is null and expires_at > $6) < $8
           and (select count(*) from invitation where organization_id = $2 and created_at > $6 - 3600000) < $9
           and (select count(*) from invitation where accountable_id = $13 and created_at > $6 - 3600000) < $11
           and (select count(*) from invitation where created_at > $6 - 3600000) < $12",
    )
    .bind(&id)
    .bind(org)
    .bind(&email)
    .bind(role.as_str())
    .bind(grant.principal.acting_user())
    .bind(now)
    .bind(expires_at)
    .bind(PENDING_MAX)
    .bind(PER_HOUR_MAX)
    .bind(grant.principal.actor_id())
    .bind(SENDER_PER_HOUR_MAX)
    .bind(config.invitations_per_hour)
    .bind(&answers)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!(
                "as many invitations were sent as may be for now (an organization: {PENDING_MAX} pending, {PER_HOUR_MAX} an hour; a person: {SENDER_PER_HOUR_MAX} an hour over all organizations and the keys they made; this instance: {} an hour); try again later",
                config.invitations_per_hour
            ),
        ));
    }
    let (org_name, inviter): (String, Option<String>) = sqlx::query_as(
        "select o.name, (select display_name from app_user where user_id = $2)
         from organization o where o.organization_id = $1",
    )
    .bind(org)
    .bind(grant.principal.acting_user())
    .fetch_one(&mut *tx)
    .await?;
    let link = format!(
        "{origin}/invite?token={}",
        invitation_token(secret, &id, &email)
    );
    let who = inviter.clone().unwrap_or_else(|| "An administrator".into());
    crate::notify::ssr::enqueue_email(
        &mut tx,
        &email,
        &format!("You are invited to join {org_name} on Keyward"),
        &format!(
            "{who} invited you to join {org_name} on Keyward as {role}.\n\n\
             Accept the invitation (the link works once, for {INVITATION_DAYS} days):\n{link}\n\n\
             If you did not expect this, ignore this email.\n",
            role = role.as_str()
        ),
        &format!("invitation:{id}"),
        now,
    )
    .await?;
    record(
        &mut tx,
        grant,
        "invitation.created",
        &id,
        serde_json::json!({ "email": email, "role": role.as_str() }),
    )
    .await?;
    tx.commit().await?;
    Ok(Invitation {
        id,
        email,
        role: role.as_str().into(),
        invited_by: inviter,
        created_at: rfc3339(now),
        expires_at: rfc3339(expires_at),
    })
}

/// The organization's pending (not accepted, not revoked, not expired) invitations.
pub async fn invitations(db: &Db, organization_id: &str) -> Result<Vec<Invitation>, AppError> {
    let rows = sqlx::query(
        "select i.invitation_id, i.email, i.role, u.display_name, i.created_at, i.expires_at
         from invitation i left join app_user u on u.user_id = i.invited_by
         where i.organization_id = $1 and i.accepted_at is null and i.revoked_at is null and i.expires_at > $2
         order by i.created_at desc",
    )
    .bind(organization_id)
    .bind(now_ms())
    .fetch_all(&db.reader)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Invitation {
                id: r.try_get("invitation_id")?,
                email: r.try_get("email")?,
                role: r.try_get("role")?,
                invited_by: r.try_get("display_name")?,
                created_at: rfc3339(r.try_get("created_at")?),
                expires_at: rfc3339(r.try_get("expires_at")?),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(AppError::from)
}

/// Revokes a pending invitation of the organization (its link stops working).
pub async fn revoke_invitation(
    db: &Db,
    grant: &Grant,
    invitation_id: &str,
) -> Result<(), AppError> {
    let org = grant.organization_id.as_str();
    let Change {
        mut tx,
        model,
        ceiling,
    } = begin(db, grant, Permission::MembersWrite).await?;
    let role: Option<String> = sqlx::query_scalar(
        "select role from invitation where invitation_id = $1 and organization_id = $2
         and accepted_at is null and revoked_at is null",
    )
    .bind(invitation_id)
    .bind(org)
    .fetch_optional(&mut *tx)
    .await?;
    let role = role.ok_or_else(|| AppError::not_found("invitation"))?;
    // An admin cannot revoke what only an owner could have sent.
    within_ceiling(ceiling, &model, org, &[role.as_str()])?;
    // Conditional: an acceptance that commits first wins, and the revocation says so.
    if !withdraw(&mut tx, invitation_id).await? {
        return Err(AppError::conflict(
            "invitation_id",
            "this invitation was just accepted or revoked",
        ));
    }
    record(
        &mut tx,
        grant,
        "invitation.revoked",
        invitation_id,
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What an invitation link offers, for the page that accepts it. A malformed, forged or
/// unknown token is "not found", with no detail.
pub async fn preview(
    db: &Db,
    secret: &[u8; 32],
    token: &str,
    signed_in: Option<&str>,
) -> Result<InvitationPreview, AppError> {
    let mut conn = db.reader.acquire().await?;
    let row = verified(&mut conn, secret, token)
        .await?
        .ok_or_else(not_valid)?;
    let email: String = row.try_get("email")?;
    let account_exists: bool =
        // An unconfirmed sign-up does not own the address: accepting creates the account
        // (and releases the unconfirmed one, `identity::ssr::insert_user`).
        sqlx::query_scalar::<_, String>(
            "select user_id from app_user where email_normalized = $1 and email_verified_at is not null",
        )
            .bind(&email)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
    let signed_in_as: Option<String> = match signed_in {
        None => None,
        Some(user_id) => {
            sqlx::query_scalar("select email_normalized from app_user where user_id = $1")
                .bind(user_id)
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    Ok(InvitationPreview {
        organization_name: row.try_get("organization_name")?,
        role: row.try_get("role")?,
        invited_by: row.try_get("inviter")?,
        status: unusable(&row, now_ms())?.unwrap_or("pending").into(),
        account_exists,
        signed_in_as,
        email,
    })
}

/// Accepts an invitation as `user_id`, whose address must be the invited one: one conditional
/// update marks it used (a second acceptance, or a revoked or expired link, changes nothing),
/// and the membership is created in the same transaction. Returns the organization's id.
pub async fn accept(
    db: &Db,
    secret: &[u8; 32],
    token: &str,
    user_id: &str,
) -> Result<String, AppError> {
    let mut tx = db.writer.begin().await?;
    let org = accept_in(&mut tx, secret, token, user_id, false).await?;
    tx.commit().await?;
    Ok(org)
}

/// `accept` inside the caller's transaction: an account created to accept is created with
/// it, so a link revoked meanwhile leaves no account behind. `closed_signup_account`: the
/// account was created for it while sign-up is closed, which only an invitation sent by an
/// instance administrator (`users:write` in the system organization) or the operator may do:
/// otherwise any member able to invite, in an organization of their own, would open sign-up.
pub async fn accept_in(
    tx: &mut Transaction<'static, Any>,
    secret: &[u8; 32],
    token: &str,
    user_id: &str,
    closed_signup_account: bool,
) -> Result<String, AppError> {
    let row = verified(tx, secret, token).await?.ok_or_else(not_valid)?;
    if let Some(why) = unusable(&row, now_ms())? {
        return Err(AppError::new(
            ErrorCode::Conflict,
            format!("this invitation was {why}; ask for a new one"),
        ));
    }
    let id: String = row.try_get("invitation_id")?;
    let org: String = row.try_get("organization_id")?;
    let email: String = row.try_get("email")?;
    let role: String = row.try_get("role")?;
    // The organization's role lock first, as every membership change takes it: the sender's
    // power is checked against roles no one is changing, and this never holds the invitation
    // while a change holding the organization waits for it.
    crate::access::roles::lock(tx, &org).await?;
    // Then the account, read for its address and status after anyone changing it is done (an
    // administrator deleting it at this moment waits, or is waited for: never a member of
    // nothing, never a deleted member).
    lock_user(tx, user_id).await?;
    let mine: Option<String> = sqlx::query_scalar(
        "select email_normalized from app_user where user_id = $1 and status = 'active'",
    )
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?;
    if mine.as_deref() != Some(email.as_str()) {
        return Err(AppError::new(
            ErrorCode::Forbidden,
            format!("this invitation is for {email}: sign in with that address to accept it"),
        ));
    }
    // An invitation does not outlive its sender's power: whoever sent it (a member, a key)
    // must still be able to give the role now.
    let sent_by: Option<String> = row.try_get("sent_by")?;
    match crate::access::roles::sender_still_reaches(tx, &org, sent_by.as_deref(), &[&role]).await {
        Err(e) if e.is_server_fault() => return Err(e),
        Err(_) => {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "whoever sent this invitation can no longer give this role; ask for a new one",
            ))
        }
        Ok(()) => {}
    }
    if closed_signup_account
        && !crate::access::roles::sender_creates_accounts(tx, sent_by.as_deref()).await?
    {
        return Err(AppError::new(
            ErrorCode::Forbidden,
            "sign-up is closed on this instance: this invitation cannot create an account; ask an administrator to create yours, then open the link again",
        ));
    }
    let now = now_ms();
    let used = sqlx::query(
        "update invitation set accepted_at = $2, accepted_by = $3
         where invitation_id = $1 and accepted_at is null and revoked_at is null and expires_at > $2",
    )
    .bind(&id)
    .bind(now)
    .bind(user_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if used == 0 {
        return Err(AppError::new(
            ErrorCode::Conflict,
            "this invitation was just used or revoked; ask for a new one",
        ));
    }
    let joined = sqlx::query(
        "insert into membership (organization_id, user_id, role, created_at) values ($1, $2, $3, $4)
         on conflict (organization_id, user_id) do nothing",
    )
    .bind(&org)
    .bind(user_id)
    .bind(&role)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if joined == 0 {
        return Err(AppError::conflict(
            "token",
            "you are already a member of this organization",
        ));
    }
    forget_link(tx, &id).await?;
    events::record(
        tx,
        Event {
            kind: "invitation.accepted",
            organization_id: Some(&org),
            actor_user_id: Some(user_id),
            subject_id: Some(&id),
            source_ip: None,
            data: serde_json::json!({ "role": role }),
        },
    )
    .await?;
    Ok(org)
}

/// Removes a member. Refused for a member who holds more than the caller, and for the last
/// owner. The member's custom roles go with the membership, and their personal tokens for the
/// organization stop at once (the authorization core finds no membership).
pub async fn remove_member(db: &Db, grant: &Grant, user_id: &str) -> Result<(), AppError> {
    let org = grant.organization_id.as_str();
    let Change {
        mut tx,
        model,
        ceiling,
    } = begin(db, grant, Permission::MembersWrite).await?;
    team_only(&mut tx, org).await?;
    let (base, roles) = member_roles(&mut tx, org, user_id).await?;
    let held: Vec<&str> = roles.iter().map(String::as_str).collect();
    // Their roles (assigned, and their teams', which go with the membership) grant nothing
    // the caller lacks, the organization's own permissions included.
    within_reach(&mut tx, (ceiling, &model), grant, &held).await?;
    // The organization keeps an active owner besides the one removed (a disabled owner does
    // not count among the owners: an active one may remove them, nobody the only owner).
    if base == "owner" {
        let besides = owners(&mut tx, org).await? - i64::from(active(&mut tx, user_id).await?);
        if besides < 1 {
            return Err(last_owner());
        }
    }
    sqlx::query("delete from membership where organization_id = $1 and user_id = $2")
        .bind(org)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    revoke_sent_by(&mut tx, org, user_id).await?;
    record(
        &mut tx,
        grant,
        "membership.removed",
        user_id,
        serde_json::json!({ "role": base }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Leaves a team organization. The last owner cannot leave (transfer first); nobody leaves
/// their personal organization, and the system organization's members are managed on the
/// users page.
pub async fn leave(db: &Db, grant: &Grant) -> Result<(), AppError> {
    let org = grant.organization_id.as_str();
    let Some(user_id) = grant.principal.acting_user().map(str::to_string) else {
        return Err(AppError::unauthenticated());
    };
    let Change { mut tx, .. } = begin(db, grant, Permission::OrgRead).await?;
    team_only(&mut tx, org).await?;
    let (base, _) = member_roles(&mut tx, org, &user_id).await?;
    if base == "owner" && owners(&mut tx, org).await? <= 1 {
        return Err(last_owner());
    }
    sqlx::query("delete from membership where organization_id = $1 and user_id = $2")
        .bind(org)
        .bind(&user_id)
        .execute(&mut *tx)
        .await?;
    revoke_sent_by(&mut tx, org, &user_id).await?;
    record(
        &mut tx,
        grant,
        "membership.left",
        &user_id,
        serde_json::json!({ "role": base }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Changes a member's base role (never to or from owner: ownership is transferred). Both the
/// member's current roles and the new one must be within the caller's ceiling.
pub async fn set_member_role(
    db: &Db,
    grant: &Grant,
    user_id: &str,
    role: &str,
) -> Result<(), AppError> {
    let role = base_role(role)?;
    let org = grant.organization_id.as_str();
    let Change {
        mut tx,
        model,
        ceiling,
    } = begin(db, grant, Permission::MembersWrite).await?;
    team_only(&mut tx, org).await?;
    let (base, roles) = member_roles(&mut tx, org, user_id).await?;
    if base == "owner" {
        return Err(AppError::invalid(
            "user_id",
            "an owner's role changes by transferring ownership",
        ));
    }
    let held: Vec<&str> = roles.iter().map(String::as_str).collect();
    within_reach(&mut tx, (ceiling, &model), grant, &held).await?;
    within_ceiling(ceiling, &model, org, &[role.as_str()])?;
    sqlx::query("update membership set role = $3 where organization_id = $1 and user_id = $2")
        .bind(org)
        .bind(user_id)
        .bind(role.as_str())
        .execute(&mut *tx)
        .await?;
    revoke_sent_by(&mut tx, org, user_id).await?;
    record(
        &mut tx,
        grant,
        "membership.role_changed",
        user_id,
        serde_json::json!({ "before": base, "after": role.as_str() }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Makes another member the owner; the caller (an owner) becomes an admin, in one
/// transaction: the organization has an owner at every moment.
pub async fn transfer_ownership(db: &Db, grant: &Grant, to_user_id: &str) -> Result<(), AppError> {
    let org = grant.organization_id.as_str();
    let Some(from) = grant.principal.acting_user().map(str::to_string) else {
        return Err(AppError::unauthenticated());
    };
    let Change { mut tx, .. } = begin(db, grant, Permission::OrgWrite).await?;
    team_only(&mut tx, org).await?;
    if from == to_user_id {
        return Err(AppError::invalid("user_id", "choose another member"));
    }
    let (mine, _) = member_roles(&mut tx, org, &from).await?;
    if mine != "owner" {
        return Err(AppError::new(
            ErrorCode::Forbidden,
            "only an owner can transfer ownership",
        ));
    }
    let (theirs, _) = member_roles(&mut tx, org, to_user_id).await?;
    let active: Option<String> =
        sqlx::query_scalar("select user_id from app_user where user_id = $1 and status = 'active'")
            .bind(to_user_id)
            .fetch_optional(&mut *tx)
            .await?;
    if active.is_none() {
        return Err(AppError::invalid(
            "user_id",
            "that member's account is disabled: choose an active member",
        ));
    }
    sqlx::query("update membership set role = 'owner' where organization_id = $1 and user_id = $2")
        .bind(org)
        .bind(to_user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("update membership set role = 'admin' where organization_id = $1 and user_id = $2 and role = 'owner'")
        .bind(org)
        .bind(&from)
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        grant,
        "organization.ownership_transferred",
        to_user_id,
        serde_json::json!({ "from": from, "before": theirs }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Whether the user is a member of the organization (for the active-organization switch).
pub async fn is_member(db: &Db, user_id: &str, organization_id: &str) -> Result<bool, AppError> {
    Ok(sqlx::query_scalar::<_, String>(
        "select user_id from membership where organization_id = $1 and user_id = $2",
    )
    .bind(organization_id)
    .bind(user_id)
    .fetch_optional(&db.reader)
    .await?
    .is_some())
}
