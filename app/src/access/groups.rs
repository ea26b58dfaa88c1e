//! Permission groups (server only): named sets of permissions granted to roles as a unit.
//!
//! The same rules as for roles ([`super::roles`]): every change runs under the organization's
//! role lock with the caller's ceiling read inside the transaction, and no change may leave a
//! role granting a built-in permission the caller does not hold, nor touch a role that already
//! grants more than they hold. A group by itself grants nothing: creating one is free; putting
//! it on a role, or changing a group that roles hold, is checked against every such role.

use super::model::AccessModel;
use super::roles::{
    add_to_role, begin, changeable, changes_within, commit, permission_exists, record, Change,
    RoleList,
};
use super::ssr::Grant;
use super::{GroupView, Permission, Permissions, RoleView};
use crate::error::AppError;
use crate::ssr::db::{new_id, now_ms};
use crate::ssr::Db;

/// Longest group name.
const NAME_MAX: usize = 64;
/// Most permissions in one group.
const ITEMS_MAX: usize = 100;
/// Permission groups one organization may define (each change checks them all, under the
/// organization's lock).
pub const GROUPS_MAX: usize = 100;

fn view(model: &AccessModel, group_id: &str) -> Result<GroupView, AppError> {
    let g = model
        .groups
        .get(group_id)
        .ok_or_else(|| AppError::not_found("group"))?;
    Ok(GroupView {
        id: g.id.clone(),
        name: g.name.clone(),
        permissions: g.permissions.clone(),
    })
}

/// The organization's roles that hold the group.
fn holders(model: &AccessModel, group_id: &str) -> Vec<String> {
    model
        .roles
        .values()
        .filter(|r| r.groups.iter().any(|g| g == group_id))
        .map(|r| r.id.clone())
        .collect()
}

/// Refuses unless every role holding the group, and every role inheriting from one of them,
/// is within the caller's ceiling in `model` (a change to the group changes them all).
fn holders_within(
    ceiling: Permissions,
    model: &AccessModel,
    organization_id: &str,
    group_id: &str,
) -> Result<(), AppError> {
    let roles = holders(model, group_id);
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    changes_within(ceiling, model, organization_id, &roles)
}

/// Creates a group of these permissions (each one of the organization's).
pub async fn create_group(
    db: &Db,
    grant: &Grant,
    name: &str,
    permissions: &[String],
) -> Result<GroupView, AppError> {
    let name = name.trim();
    if !crate::ssr::fits_name(name, NAME_MAX) {
        return Err(AppError::invalid(
            "name",
            format!("a group needs a name of 1 to {NAME_MAX} printable characters"),
        ));
    }
    let mut items: Vec<String> = permissions
        .iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    items.sort();
    items.dedup();
    if items.len() > ITEMS_MAX {
        return Err(AppError::invalid(
            "permissions",
            format!("at most {ITEMS_MAX} permissions in a group"),
        ));
    }
    let org = grant.organization_id.as_str();
    let Change { mut tx, model, .. } = begin(db, grant, Permission::RolesWrite).await?;
    if model.groups.values().any(|g| g.name == name) {
        return Err(AppError::conflict(
            "name",
            format!("a group named {name:?} exists"),
        ));
    }
    // The graph was read under the organization's lock: the count cannot move before commit.
    if model.groups.len() >= GROUPS_MAX {
        return Err(AppError::conflict(
            "name",
            format!("this organization has {GROUPS_MAX} permission groups, the most it may; delete one first"),
        ));
    }
    for p in &items {
        if !permission_exists(&mut tx, org, p).await? {
            return Err(AppError::invalid(
                "permissions",
                format!("no permission {p:?} in this organization"),
            ));
        }
    }
    let id = new_id("grp");
    sqlx::query(
        "insert into permission_group (group_id, organization_id, name, created_at) values ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(org)
    .bind(name)
    .bind(now_ms())
    .execute(&mut *tx)
    .await?;
    for p in &items {
        sqlx::query("insert into permission_group_item (group_id, permission) values ($1, $2)")
            .bind(&id)
            .bind(p)
            .execute(&mut *tx)
            .await?;
    }
    record(
        &mut tx,
        grant,
        "group.created",
        &id,
        serde_json::json!({ "name": name, "permissions": items }),
    )
    .await?;
    commit(db, tx, org).await?;
    Ok(GroupView {
        id,
        name: name.to_string(),
        permissions: items,
    })
}

/// Adds a permission to a group, or takes it out; every role holding the group follows.
pub async fn set_group_permission(
    db: &Db,
    grant: &Grant,
    group_id: &str,
    permission: &str,
    included: bool,
) -> Result<GroupView, AppError> {
    let org = grant.organization_id.as_str();
    let Change {
        mut tx,
        mut model,
        ceiling,
    } = begin(db, grant, Permission::RolesWrite).await?;
    view(&model, group_id)?;
    // Not a group that roles stronger than the caller hold.
    holders_within(ceiling, &model, org, group_id)?;
    if included {
        if !permission_exists(&mut tx, org, permission).await? {
            return Err(AppError::invalid(
                "permission",
                format!("no permission {permission:?} in this organization"),
            ));
        }
        if let Some(g) = model.groups.get_mut(group_id) {
            if g.permissions.iter().any(|p| p == permission) {
                return view(&model, group_id);
            }
            if g.permissions.len() >= ITEMS_MAX {
                return Err(AppError::invalid(
                    "permission",
                    format!("at most {ITEMS_MAX} permissions in a group"),
                ));
            }
            g.permissions.push(permission.to_string());
            g.permissions.sort();
        }
        // Every role holding the group would now grant it.
        holders_within(ceiling, &model, org, group_id)?;
        sqlx::query(
            "insert into permission_group_item (group_id, permission) values ($1, $2)
             on conflict (group_id, permission) do nothing",
        )
        .bind(group_id)
        .bind(permission)
        .execute(&mut *tx)
        .await?;
    } else {
        if let Some(g) = model.groups.get_mut(group_id) {
            g.permissions.retain(|p| p != permission);
        }
        let removed = sqlx::query(
            "delete from permission_group_item where group_id = $1 and permission = $2",
        )
        .bind(group_id)
        .bind(permission)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Not in the group: nothing changes, and nothing is recorded (an audit entry would
        // carry whatever text the caller sent).
        if removed == 0 {
            return view(&model, group_id);
        }
    }
    record(
        &mut tx,
        grant,
        if included {
            "group.permission_added"
        } else {
            "group.permission_removed"
        },
        group_id,
        serde_json::json!({ "permission": permission }),
    )
    .await?;
    commit(db, tx, org).await?;
    view(&model, group_id)
}

/// Grants a group to a custom role, or takes it away.
pub async fn set_role_group(
    db: &Db,
    grant: &Grant,
    role_id: &str,
    group_id: &str,
    granted: bool,
) -> Result<RoleView, AppError> {
    let org = grant.organization_id.as_str();
    let Change {
        mut tx,
        mut model,
        ceiling,
    } = begin(db, grant, Permission::RolesWrite).await?;
    changeable(ceiling, &model, org, role_id)?;
    view(&model, group_id)?;
    let changed = if granted {
        add_to_role(
            &mut tx,
            &mut model,
            ceiling,
            org,
            role_id,
            RoleList::Groups,
            group_id,
        )
        .await?
    } else {
        sqlx::query("delete from role_group where role_id = $1 and group_id = $2")
            .bind(role_id)
            .bind(group_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0
    };
    // The role held it already (or did not hold it): nothing changes, nothing is recorded.
    if !changed {
        drop(tx);
        return super::roles::role_view(db, org, role_id).await;
    }
    record(
        &mut tx,
        grant,
        if granted {
            "role.group_granted"
        } else {
            "role.group_removed"
        },
        role_id,
        serde_json::json!({ "group": group_id }),
    )
    .await?;
    commit(db, tx, org).await?;
    super::roles::role_view(db, org, role_id).await
}

/// Deletes a group; the roles that held it stop granting what it held.
pub async fn delete_group(db: &Db, grant: &Grant, group_id: &str) -> Result<(), AppError> {
    let org = grant.organization_id.as_str();
    let Change {
        mut tx,
        model,
        ceiling,
    } = begin(db, grant, Permission::RolesWrite).await?;
    view(&model, group_id)?;
    holders_within(ceiling, &model, org, group_id)?;
    sqlx::query("delete from permission_group where group_id = $1 and organization_id = $2")
        .bind(group_id)
        .bind(org)
        .execute(&mut *tx)
        .await?;
    record(
        &mut tx,
        grant,
        "group.deleted",
        group_id,
        serde_json::json!({}),
    )
    .await?;
    commit(db, tx, org).await?;
    Ok(())
}
