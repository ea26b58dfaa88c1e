//! Teams in the database (server only). Every change runs under the organization's role lock
//! (`access::roles::begin`, which re-reads the caller's ceiling inside the transaction) and
//! writes with one conditional statement, so two instances cannot race a team into holding
//! more than its editors could give.

use super::{Team, TeamMember, TeamRole, NAME_MAX};
use crate::access::roles::{begin, commit, own_role, record, within_ceiling, within_reach, Change};
use crate::access::ssr::Grant;
use crate::access::Permission;
use crate::error::AppError;
use crate::ssr::db::{new_id, now_ms, Db};
use sqlx::{Any, Transaction};

/// Longest description, in characters.
const DESCRIPTION_MAX: usize = 500;
/// Teams one organization may have.
pub const TEAMS_MAX: i64 = 200;

/// The organization's teams, by name, with members (by email) and roles (by name).
pub async fn list(db: &Db, organization_id: &str) -> Result<Vec<Team>, AppError> {
    let teams: Vec<(String, String, String)> = sqlx::query_as(
        "select team_id, name, description from team where organization_id = $1 order by name",
    )
    .bind(organization_id)
    .fetch_all(&db.reader)
    .await?;
    let members: Vec<(String, String, String, String)> = sqlx::query_as(
        "select tm.team_id, u.user_id, u.email, u.display_name
         from team_member tm join app_user u on u.user_id = tm.user_id
         where tm.organization_id = $1 order by u.email",
    )
    .bind(organization_id)
    .fetch_all(&db.reader)
    .await?;
    let roles: Vec<(String, String, String)> = sqlx::query_as(
        "select tr.team_id, r.role_id, r.name from team_role tr
         join team t on t.team_id = tr.team_id join role r on r.role_id = tr.role_id
         where t.organization_id = $1 order by r.name",
    )
    .bind(organization_id)
    .fetch_all(&db.reader)
    .await?;
    Ok(teams
        .into_iter()
        .map(|(id, name, description)| Team {
            members: members
                .iter()
                .filter(|m| m.0 == id)
                .map(|(_, user_id, email, display_name)| TeamMember {
                    user_id: user_id.clone(),
                    email: email.clone(),
                    display_name: display_name.clone(),
                })
                .collect(),
            roles: roles
                .iter()
                .filter(|r| r.0 == id)
                .map(|(_, id, name)| TeamRole {
                    id: id.clone(),
                    name: name.clone(),
                })
                .collect(),
            id,
            name,
            description,
        })
        .collect())
}

/// One team of the organization (another organization's is "not found").
pub async fn get(db: &Db, organization_id: &str, team_id: &str) -> Result<Team, AppError> {
    list(db, organization_id)
        .await?
        .into_iter()
        .find(|t| t.id == team_id)
        .ok_or_else(|| AppError::not_found("team"))
}

fn clean_name(name: &str) -> Result<&str, AppError> {
    let name = name.trim();
    if !crate::ssr::fits_name(name, NAME_MAX) {
        return Err(AppError::invalid(
            "name",
            format!("a team name is 1 to {NAME_MAX} characters, without control characters"),
        ));
    }
    Ok(name)
}

/// Creates an empty team.
pub async fn create(
    db: &Db,
    grant: &Grant,
    name: &str,
    description: &str,
) -> Result<Team, AppError> {
    let name = clean_name(name)?;
    let description = description.trim();
    if description.chars().count() > DESCRIPTION_MAX
        || description.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(AppError::invalid(
            "description",
            format!(
                "a description is at most {DESCRIPTION_MAX} characters, without control characters"
            ),
        ));
    }
    let org = grant.organization_id.as_str();
    let mut change = begin(db, grant, Permission::MembersWrite).await?;
    if grant.in_system_org() {
        // The system organization's members are the instance's administrators, each chosen
        // on the users page: no group hands out instance power.
        return Err(AppError::invalid(
            "organization_id",
            "the system organization has no teams: manage administrators on the users page",
        ));
    }
    // Counted under the organization's lock, which every team change takes.
    let teams: i64 = sqlx::query_scalar("select count(*) from team where organization_id = $1")
        .bind(org)
        .fetch_one(&mut *change.tx)
        .await?;
    let id = new_id("team");
    let inserted = sqlx::query(
        "insert into team (team_id, organization_id, name, description, created_at)
         values ($1, $2, $3, $4, $5) on conflict (organization_id, name) do nothing",
    )
    .bind(&id)
    .bind(org)
    .bind(name)
    .bind(description)
    .bind(now_ms())
    .execute(&mut *change.tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(AppError::conflict(
            "name",
            format!("this organization already has a team named {name}"),
        ));
    }
    if teams >= TEAMS_MAX {
        return Err(AppError::conflict(
            "name",
            format!("this organization has {TEAMS_MAX} teams, the most it may; delete one first"),
        ));
    }
    record(
        &mut change.tx,
        grant,
        "team.created",
        &id,
        serde_json::json!({ "name": name }),
    )
    .await?;
    commit(db, change.tx, org).await?;
    get(db, org, &id).await
}

/// The roles a team of the organization holds; "not found" for another organization's team.
async fn team_roles(
    tx: &mut Transaction<'static, Any>,
    organization_id: &str,
    team_id: &str,
) -> Result<Vec<String>, AppError> {
    let found: Option<String> =
        sqlx::query_scalar("select team_id from team where team_id = $1 and organization_id = $2")
            .bind(team_id)
            .bind(organization_id)
            .fetch_optional(&mut **tx)
            .await?;
    if found.is_none() {
        return Err(AppError::not_found("team"));
    }
    Ok(
        sqlx::query_scalar("select role_id from team_role where team_id = $1 order by role_id")
            .bind(team_id)
            .fetch_all(&mut **tx)
            .await?,
    )
}

/// Deletes a team. Like taking its roles from each member, it is refused when a role it holds
/// grants more than the caller holds.
pub async fn delete(db: &Db, grant: &Grant, team_id: &str) -> Result<(), AppError> {
    let org = grant.organization_id.as_str();
    let (mut change, roles) = within_team_reach(db, grant, team_id).await?;
    sqlx::query("delete from team where team_id = $1 and organization_id = $2")
        .bind(team_id)
        .bind(org)
        .execute(&mut *change.tx)
        .await?;
    record(
        &mut change.tx,
        grant,
        "team.deleted",
        team_id,
        serde_json::json!({ "roles": roles }),
    )
    .await?;
    commit(db, change.tx, org).await
}

/// Opens a change of team `team_id` (`members:write`, under the organization's lock) and
/// refuses unless the caller holds everything the team's roles grant, the organization's own
/// permissions included: what deleting it, or moving anyone in or out, is held to. Answers the
/// change and the team's roles.
async fn within_team_reach(
    db: &Db,
    grant: &Grant,
    team_id: &str,
) -> Result<(Change, Vec<String>), AppError> {
    let mut change = begin(db, grant, Permission::MembersWrite).await?;
    let roles = team_roles(&mut change.tx, &grant.organization_id, team_id).await?;
    let held: Vec<&str> = roles.iter().map(String::as_str).collect();
    within_reach(
        &mut change.tx,
        (change.ceiling, &change.model),
        grant,
        &held,
    )
    .await?;
    Ok((change, roles))
}

/// Adds a member to a team, or takes them out: refused when the team holds a role granting
/// more than the caller holds, its own permissions included (either way: adding hands it out,
/// removing takes it away).
pub async fn set_member(
    db: &Db,
    grant: &Grant,
    team_id: &str,
    user_id: &str,
    add: bool,
) -> Result<bool, AppError> {
    let org = grant.organization_id.as_str();
    let (mut change, _) = within_team_reach(db, grant, team_id).await?;
    let changed = if add {
        let n = sqlx::query(
            "insert into team_member (team_id, organization_id, user_id, created_at)
             select $1, organization_id, user_id, $4 from membership
             where organization_id = $2 and user_id = $3
             on conflict (team_id, user_id) do nothing",
        )
        .bind(team_id)
        .bind(org)
        .bind(user_id)
        .bind(now_ms())
        .execute(&mut *change.tx)
        .await?
        .rows_affected();
        if n == 0 {
            let member: Option<String> = sqlx::query_scalar(
                "select user_id from membership where organization_id = $1 and user_id = $2",
            )
            .bind(org)
            .bind(user_id)
            .fetch_optional(&mut *change.tx)
            .await?;
            if member.is_none() {
                return Err(AppError::invalid(
                    "user_id",
                    "not a member of this organization",
                ));
            }
        }
        n > 0
    } else {
        sqlx::query("delete from team_member where team_id = $1 and user_id = $2")
            .bind(team_id)
            .bind(user_id)
            .execute(&mut *change.tx)
            .await?
            .rows_affected()
            > 0
    };
    if changed {
        record(
            &mut change.tx,
            grant,
            if add {
                "team.member_added"
            } else {
                "team.member_removed"
            },
            team_id,
            serde_json::json!({ "user_id": user_id }),
        )
        .await?;
    }
    commit(db, change.tx, org).await?;
    Ok(changed)
}

/// Gives a team one of the organization's custom roles, or takes it away; only a role within
/// the caller's ceiling, like assigning it to members one by one (`roles:write` administers
/// the organization's own permissions: those are not held against it, see
/// `docs/permissions.md`).
pub async fn set_role(
    db: &Db,
    grant: &Grant,
    team_id: &str,
    role_id: &str,
    add: bool,
) -> Result<bool, AppError> {
    let org = grant.organization_id.as_str();
    let mut change = begin(db, grant, Permission::RolesWrite).await?;
    team_roles(&mut change.tx, org, team_id).await?;
    own_role(&change.model, role_id).map_err(|e| match e.code {
        crate::error::ErrorCode::InvalidInput => AppError::invalid(
            "role_id",
            "a built-in role is a member's base role; give teams custom roles",
        ),
        _ => e,
    })?;
    within_ceiling(change.ceiling, &change.model, org, &[role_id])?;
    let changed = if add {
        sqlx::query(
            "insert into team_role (team_id, role_id, created_at) values ($1, $2, $3)
             on conflict (team_id, role_id) do nothing",
        )
        .bind(team_id)
        .bind(role_id)
        .bind(now_ms())
        .execute(&mut *change.tx)
        .await?
        .rows_affected()
    } else {
        sqlx::query("delete from team_role where team_id = $1 and role_id = $2")
            .bind(team_id)
            .bind(role_id)
            .execute(&mut *change.tx)
            .await?
            .rows_affected()
    } > 0;
    if changed {
        record(
            &mut change.tx,
            grant,
            if add {
                "team.role_granted"
            } else {
                "team.role_revoked"
            },
            team_id,
            serde_json::json!({ "role_id": role_id }),
        )
        .await?;
    }
    commit(db, change.tx, org).await?;
    Ok(changed)
}
