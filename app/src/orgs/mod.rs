//! Organizations: the tenants that own every resource. A user sees the organizations they
//! belong to and their role in each.

pub mod api;
#[cfg(feature = "ssr")]
pub mod members;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod policy;
#[cfg(feature = "ssr")]
pub mod ssr;

use serde::{Deserialize, Serialize};

/// One of the caller's organizations, with their role and what it lets them do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgMembership {
    pub organization_id: String,
    pub name: String,
    pub kind: String,
    pub role: String,
    pub permissions: Vec<String>,
}

/// A member of an organization.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    /// The base (built-in) role.
    pub role: String,
    /// Names of the custom roles assigned in this organization.
    pub roles: Vec<String>,
    /// The custom roles held through teams, as `role (team)`.
    #[serde(default)]
    pub team_roles: Vec<String>,
}

/// A pending invitation, as the organization's admins see it (never its link).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: String,
    pub email: String,
    pub role: String,
    pub invited_by: Option<String>,
    pub created_at: String,
    pub expires_at: String,
}

/// What an invitation link offers, for the page that accepts it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationPreview {
    pub organization_name: String,
    pub email: String,
    pub role: String,
    pub invited_by: Option<String>,
    /// `pending`, `used`, `revoked` or `expired`.
    pub status: String,
    /// Whether the invited address has an account (accepting then asks for its password).
    pub account_exists: bool,
    /// The signed-in user's address, if any.
    pub signed_in_as: Option<String>,
}

/// An organization's policies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgPolicy {
    /// New keys must expire within this many days (`None`: no limit).
    pub max_key_lifetime_days: Option<i64>,
    /// Members must use two-factor authentication: at sign-in, a member without a second
    /// factor may only enrol one (`identity::two_factor`).
    pub require_two_factor: bool,
    /// Keys created (or imported) by someone without `approvals:write` wait for an approver,
    /// and do not verify until approved.
    #[serde(default)]
    pub require_key_approval: bool,
}

/// `PATCH /api/v1/members/{id}`: a member's new base role (`admin`, `member` or `viewer`).
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRoleChange {
    pub role: String,
}

/// `POST /api/v1/invitations`: invite an address with a base role.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    pub email: String,
    pub role: String,
}
