//! Access control: the permission catalog, the built-in roles, and the declared guard of every
//! server function. Deny by default: a permission is granted only by a role that lists it, and
//! an endpoint with no declared guard is refused.

pub mod api;
#[cfg(feature = "ssr")]
pub mod groups;
#[cfg(feature = "ssr")]
pub mod guard;
pub mod model;
pub mod pages;
pub mod policy;
#[cfg(feature = "ssr")]
pub mod roles;
#[cfg(feature = "ssr")]
pub mod ssr;

use serde::{Deserialize, Serialize};

/// A `resource:action` permission. The catalog is this enum: adding a permission is adding a
/// variant (run-time permissions arrive with the Access domain; the check stays the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    OrgRead,
    OrgWrite,
    MembersRead,
    MembersWrite,
    KeysRead,
    KeysWrite,
    /// Approve or reject keys awaiting approval (the organization's "approve new keys" policy).
    ApprovalsWrite,
    AuditRead,
    /// The organization's request log, usage and analytics.
    UsageRead,
    /// Instance-wide user administration; meaningful only in the system organization.
    UsersRead,
    UsersWrite,
    /// Act as another user for a while, with a reason, audited (system organization only;
    /// only owners hold it by default).
    ImpersonationWrite,
    /// The instance's rate-limit plans (create, edit, delete); system organization only.
    PlansWrite,
    /// The organization's roles, permission groups, dynamic permissions and dependencies.
    RolesRead,
    /// Create, edit and delete custom roles, groups and permissions; assign roles.
    RolesWrite,
}

impl Permission {
    /// Every permission, in catalog order.
    pub const ALL: &'static [Permission] = &[
        Permission::OrgRead,
        Permission::OrgWrite,
        Permission::MembersRead,
        Permission::MembersWrite,
        Permission::KeysRead,
        Permission::KeysWrite,
        Permission::ApprovalsWrite,
        Permission::AuditRead,
        Permission::UsageRead,
        Permission::UsersRead,
        Permission::UsersWrite,
        Permission::ImpersonationWrite,
        Permission::PlansWrite,
        Permission::RolesRead,
        Permission::RolesWrite,
    ];

    /// The stable `resource:action` name shown to users and in 403 messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::OrgRead => "org:read",
            Permission::OrgWrite => "org:write",
            Permission::MembersRead => "members:read",
            Permission::MembersWrite => "members:write",
            Permission::KeysRead => "keys:read",
            Permission::KeysWrite => "keys:write",
            Permission::ApprovalsWrite => "approvals:write",
            Permission::AuditRead => "audit:read",
            Permission::UsageRead => "usage:read",
            Permission::PlansWrite => "plans:write",
            Permission::UsersRead => "users:read",
            Permission::UsersWrite => "users:write",
            Permission::ImpersonationWrite => "impersonation:write",
            Permission::RolesRead => "roles:read",
            Permission::RolesWrite => "roles:write",
        }
    }

    /// What the permission allows, in a few words (the generated reference in
    /// `docs/permissions.md`).
    pub fn description(self) -> &'static str {
        match self {
            Permission::OrgRead => "see the organization",
            Permission::OrgWrite => "change the organization, transfer its ownership",
            Permission::MembersRead => "list members",
            Permission::MembersWrite => {
                "invite, remove and re-role members; see pending invitations"
            }
            Permission::KeysRead => "list API keys, verify keys for other services",
            Permission::KeysWrite => {
                "create, edit, roll, enable, disable, revoke and import API keys"
            }
            Permission::ApprovalsWrite => {
                "approve or reject new keys awaiting approval (never beyond what one holds)"
            }
            Permission::AuditRead => "read the audit log",
            Permission::UsageRead => "the organization's usage, errors, analytics and exports",
            Permission::UsersRead => "list the instance's users and the email outbox",
            Permission::UsersWrite => "administer the instance's users",
            Permission::ImpersonationWrite => {
                "act as a user no stronger than oneself, for a stated reason and a limited time (audited; the user is told)"
            }
            Permission::PlansWrite => "create, edit and delete the instance's rate-limit plans",
            Permission::RolesRead => "see custom roles, groups and dynamic permissions",
            Permission::RolesWrite => {
                "manage custom roles, groups, dynamic permissions and role assignments"
            }
        }
    }

    pub fn parse(name: &str) -> Option<Permission> {
        Permission::ALL.iter().copied().find(|p| p.as_str() == name)
    }

    /// Instance-wide permissions (`users:*`, `plans:write`): meaningful only in the system
    /// organization. No role of another organization grants them and no key outside it can
    /// carry them.
    pub fn is_instance(self) -> bool {
        matches!(
            self,
            Permission::UsersRead
                | Permission::UsersWrite
                | Permission::ImpersonationWrite
                | Permission::PlansWrite
        )
    }

    /// Whether the permission changes things (`…:write`), rather than reading them.
    pub fn is_write(self) -> bool {
        self.as_str().ends_with(":write")
    }

    /// The resource part of the name (`keys` for `keys:write`).
    pub fn resource(self) -> &'static str {
        self.as_str().split(':').next().unwrap_or_default()
    }

    /// What a permission brings along: write implies read on the same resource.
    pub fn implied(self) -> &'static [Permission] {
        match self {
            Permission::OrgWrite => &[Permission::OrgRead],
            Permission::MembersWrite => &[Permission::MembersRead],
            Permission::KeysWrite => &[Permission::KeysRead],
            Permission::ApprovalsWrite => &[Permission::KeysRead],
            Permission::UsersWrite => &[Permission::UsersRead],
            Permission::ImpersonationWrite => &[Permission::UsersRead],
            Permission::RolesWrite => &[Permission::RolesRead],
            _ => &[],
        }
    }
}

/// The resources of the catalog (`org`, `members`, `keys`, …), in catalog order.
pub fn resources() -> Vec<&'static str> {
    resources_where(|_| true)
}

/// The resources an organization's keys and roles can hold: the instance resources (`users`)
/// only in the system organization.
pub fn resources_in(system_org: bool) -> Vec<&'static str> {
    resources_where(|p| system_org || !p.is_instance())
}

fn resources_where(keep: impl Fn(Permission) -> bool) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for p in Permission::ALL.iter().copied().filter(|p| keep(*p)) {
        if !out.contains(&p.resource()) {
            out.push(p.resource());
        }
    }
    out
}

/// An effective permission of a role, with every source it comes from.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectivePermission {
    pub name: String,
    pub sources: Vec<model::Source>,
}

/// A role as the console and the REST API show it.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleView {
    pub id: String,
    pub name: String,
    pub description: String,
    /// Declared in code, the same in every organization, read-only.
    pub builtin: bool,
    /// Role ids it inherits from.
    pub parents: Vec<String>,
    /// Granted directly.
    pub permissions: Vec<String>,
    /// Permission group ids granted as a unit.
    pub groups: Vec<String>,
    pub effective: Vec<EffectivePermission>,
}

/// A permission of the catalog (built-in) or of the organization (dynamic).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionView {
    pub name: String,
    pub description: String,
    pub builtin: bool,
    /// What granting it grants too.
    pub requires: Vec<String>,
}

/// A named set of permissions.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupView {
    pub id: String,
    pub name: String,
    pub permissions: Vec<String>,
}

/// Everything about an organization's roles.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleCatalog {
    pub roles: Vec<RoleView>,
    pub groups: Vec<GroupView>,
    pub permissions: Vec<PermissionView>,
}

/// The outcome of a bulk role assignment for one user.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignResult {
    pub user_id: String,
    pub ok: bool,
    /// Whether anything changed (already assigned, or not assigned, changes nothing).
    pub changed: bool,
    pub error: Option<String>,
}

/// `POST /api/v1/roles`: a custom role inheriting `parents` (role ids, built-in ones
/// included), granting nothing of its own yet.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parents: Vec<String>,
}

/// `PUT /api/v1/roles/{id}/parents`: the role's parents, replacing the current ones.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleParents {
    pub parents: Vec<String>,
}

/// `PUT /api/v1/roles/{id}/permissions`: grant a permission (`granted: true`) or take it away
/// (`cascade: true` takes what the role lists that requires it along).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolePermissionChange {
    pub permission: String,
    pub granted: bool,
    #[serde(default)]
    pub cascade: bool,
}

/// `PUT /api/v1/roles/{id}/groups`: grant a permission group as a unit, or take it away.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleGroupChange {
    pub group_id: String,
    pub granted: bool,
}

/// `PUT /api/v1/roles/{id}/members`: assign the role to members in bulk (`assigned: true`) or
/// take it from them; one result per user.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleAssignment {
    pub user_ids: Vec<String>,
    pub assigned: bool,
}

/// `POST /api/v1/permissions`: a dynamic permission (`invoices:read`) and what it requires.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPermission {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub requires: Vec<String>,
}

/// `POST /api/v1/permission-groups`: a named set of the organization's permissions.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
    #[serde(default)]
    pub permissions: Vec<String>,
}

/// `PUT /api/v1/permission-groups/{id}/permissions`: put a permission in the group
/// (`included: true`) or take it out; every role holding the group follows.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupPermissionChange {
    pub permission: String,
    pub included: bool,
}

/// A set of permissions (a bit per catalog entry): what a principal holds, its ceiling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Permissions(u32);

impl Permissions {
    pub const NONE: Permissions = Permissions(0);

    fn bit(p: Permission) -> u32 {
        let at = Permission::ALL.iter().position(|q| *q == p).unwrap_or(0);
        1 << at
    }

    /// Every permission of the catalog that an organization can hold.
    pub fn all_in(system_org: bool) -> Permissions {
        Permission::ALL
            .iter()
            .copied()
            .filter(|p| system_org || !p.is_instance())
            .collect()
    }

    pub fn contains(self, p: Permission) -> bool {
        self.0 & Self::bit(p) != 0
    }

    pub fn intersect(self, other: Permissions) -> Permissions {
        Permissions(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions, in catalog order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(move |p| self.contains(*p))
    }

    /// The first permission of `wanted` (catalog order) this set lacks.
    pub fn first_missing(self, wanted: Permissions) -> Option<Permission> {
        wanted.iter().find(|p| !self.contains(*p))
    }

    /// The `resource:action` names, in catalog order.
    pub fn names(self) -> Vec<String> {
        self.iter().map(|p| p.as_str().to_string()).collect()
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        Permissions(iter.into_iter().fold(0, |acc, p| acc | Permissions::bit(p)))
    }
}

/// The built-in roles every organization has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
}

impl Role {
    pub const ALL: &'static [Role] = &[Role::Owner, Role::Admin, Role::Member, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.iter().copied().find(|r| r.as_str() == name)
    }

    /// The permissions the role grants directly (before implication).
    pub(crate) fn grants(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Owner => Permission::ALL,
            Role::Admin => &[
                OrgRead,
                MembersWrite,
                KeysWrite,
                ApprovalsWrite,
                AuditRead,
                UsageRead,
                UsersWrite,
                PlansWrite,
                RolesWrite,
            ],
            Role::Member => &[OrgRead, MembersRead, KeysWrite, UsageRead, RolesRead],
            Role::Viewer => &[OrgRead, MembersRead, KeysRead, UsageRead, RolesRead],
        }
    }

    /// Whether the role grants `permission`, directly or by implication.
    pub fn allows(self, permission: Permission) -> bool {
        self.grants()
            .iter()
            .any(|g| *g == permission || g.implied().contains(&permission))
    }

    /// Every permission the role grants, in catalog order.
    pub fn permissions(self) -> Vec<Permission> {
        Permission::ALL
            .iter()
            .copied()
            .filter(|p| self.allows(*p))
            .collect()
    }

    /// What the role grants in an organization: instance permissions only in the system one.
    pub fn permissions_in(self, system_org: bool) -> Permissions {
        self.permissions()
            .into_iter()
            .filter(|p| system_org || !p.is_instance())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(*p));
            let (resource, action) = p.as_str().split_once(':').expect("resource:action");
            assert!(!resource.is_empty() && matches!(action, "read" | "write"));
        }
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(*r));
        }
        assert_eq!(Permission::parse("users:delete"), None);
    }

    #[test]
    fn write_implies_read() {
        assert!(Role::Member.allows(Permission::KeysRead));
        assert!(Role::Admin.allows(Permission::UsersRead));
    }

    #[test]
    fn instance_permissions_only_in_the_system_org() {
        assert!(Role::Owner
            .permissions_in(true)
            .contains(Permission::UsersWrite));
        assert!(!Role::Owner
            .permissions_in(false)
            .contains(Permission::UsersWrite));
        assert!(!Role::Admin
            .permissions_in(false)
            .contains(Permission::UsersRead));
        assert!(Role::Admin
            .permissions_in(false)
            .contains(Permission::KeysWrite));
        assert_eq!(
            resources_in(false),
            vec![
                "org",
                "members",
                "keys",
                "approvals",
                "audit",
                "usage",
                "roles"
            ]
        );
        assert!(resources_in(true).contains(&"users"));
        assert!(resources_in(true).contains(&"plans"));
        assert!(!Role::Owner
            .permissions_in(false)
            .contains(Permission::PlansWrite));
    }

    #[test]
    fn permission_sets() {
        let a: Permissions = [Permission::KeysRead, Permission::KeysWrite]
            .into_iter()
            .collect();
        let b: Permissions = [Permission::KeysRead, Permission::OrgRead]
            .into_iter()
            .collect();
        assert_eq!(a.intersect(b).names(), vec!["keys:read"]);
        assert_eq!(b.first_missing(a), Some(Permission::KeysWrite));
        assert_eq!(a.first_missing(a), None);
        assert!(Permissions::NONE.is_empty());
        assert_eq!(
            Permissions::all_in(true).iter().count(),
            Permission::ALL.len()
        );
    }

    #[test]
    fn roles_are_ordered_by_power() {
        assert_eq!(Role::Owner.permissions(), Permission::ALL.to_vec());
        assert!(!Role::Member.allows(Permission::UsersRead));
        assert!(!Role::Member.allows(Permission::MembersWrite));
        assert!(!Role::Viewer.allows(Permission::KeysWrite));
        for p in Role::Viewer.permissions() {
            assert!(Role::Member.allows(p) || p == Permission::KeysRead);
        }
    }
}
