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

use super::{Permission, Permissions, Role};
use crate::error::{AppError, ErrorCode};
use crate::ssr::Db;

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
    },
}

impl Principal {
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
                user_id: "cli".into(),
            },
            organization_id: organization_id.into(),
            ceiling: Permissions::all_in(organization_id == SYSTEM_ORG_ID),
        }
    }
}

/// The user's role in the organization, if they are an active member.
pub async fn role_in(
    db: &Db,
    user_id: &str,
    organization_id: &str,
) -> Result<Option<Role>, AppError> {
    let role: Option<String> = sqlx::query_scalar(
        "select m.role from membership m join app_user u on u.user_id = m.user_id
         where m.user_id = $1 and m.organization_id = $2 and u.status = 'active'",
    )
    .bind(user_id)
    .bind(organization_id)
    .fetch_optional(&db.reader)
    .await?;
    Ok(role.as_deref().and_then(Role::parse))
}

/// What a user holds in an organization (nothing when disabled or not a member).
pub async fn user_ceiling(
    db: &Db,
    user_id: &str,
    organization_id: &str,
) -> Result<Permissions, AppError> {
    let system = organization_id == SYSTEM_ORG_ID;
    Ok(role_in(db, user_id, organization_id)
        .await?
        .map_or(Permissions::NONE, |r| r.permissions_in(system)))
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
                Some(owner) => match role_in(db, owner, key_org).await? {
                    Some(role) => {
                        Ok(in_org.intersect(role.permissions_in(key_org == SYSTEM_ORG_ID)))
                    }
                    None => Err(AppError::new(
                        ErrorCode::KeyDisabled,
                        "the token's owner is no longer an active member of its organization",
                    )),
                },
            }
        }
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
