//! Access control: the permission catalog, the built-in roles, and the declared guard of every
//! server function. Deny by default: a permission is granted only by a role that lists it, and
//! an endpoint with no declared guard is refused.

pub mod policy;
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
    AuditRead,
    /// Instance-wide user administration; meaningful only in the system organization.
    UsersRead,
    UsersWrite,
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
        Permission::AuditRead,
        Permission::UsersRead,
        Permission::UsersWrite,
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
            Permission::AuditRead => "audit:read",
            Permission::UsersRead => "users:read",
            Permission::UsersWrite => "users:write",
        }
    }

    pub fn parse(name: &str) -> Option<Permission> {
        Permission::ALL.iter().copied().find(|p| p.as_str() == name)
    }

    /// What a permission brings along: write implies read on the same resource.
    pub fn implied(self) -> &'static [Permission] {
        match self {
            Permission::OrgWrite => &[Permission::OrgRead],
            Permission::MembersWrite => &[Permission::MembersRead],
            Permission::KeysWrite => &[Permission::KeysRead],
            Permission::UsersWrite => &[Permission::UsersRead],
            _ => &[],
        }
    }
}

/// The resources of the catalog (`org`, `members`, `keys`, …), in catalog order.
pub fn resources() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for p in Permission::ALL {
        let resource = p.as_str().split(':').next().unwrap_or_default();
        if !out.contains(&resource) {
            out.push(resource);
        }
    }
    out
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
    fn grants(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Owner => Permission::ALL,
            Role::Admin => &[OrgRead, MembersWrite, KeysWrite, AuditRead, UsersWrite],
            Role::Member => &[OrgRead, MembersRead, KeysWrite],
            Role::Viewer => &[OrgRead, MembersRead, KeysRead],
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
