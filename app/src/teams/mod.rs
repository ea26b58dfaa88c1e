//! Teams: groups of an organization's members that hold roles together. A member holds their
//! own roles and those of every team they are in; the authorization core resolves both
//! (`access::ssr::roles_in_conn`), so a team's role counts exactly like an assigned one.

pub mod api;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;

use serde::{Deserialize, Serialize};

/// Longest team name, in characters.
pub const NAME_MAX: usize = 100;

/// A team of an organization, with its members and the custom roles it holds.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub description: String,
    pub members: Vec<TeamMember>,
    pub roles: Vec<TeamRole>,
}

/// A member of a team.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMember {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
}

/// A role a team holds.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamRole {
    pub id: String,
    pub name: String,
}

/// `POST /api/v1/teams`: a new team.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTeam {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// `PUT /api/v1/teams/{id}/members`: put a member of the organization in the team
/// (`member: true`) or take them out.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamMembership {
    pub user_id: String,
    pub member: bool,
}

/// `PUT /api/v1/teams/{id}/roles`: give the team a custom role (`held: true`) or take it.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamRoleChange {
    pub role_id: String,
    pub held: bool,
}
