//! Organizations: the tenants that own every resource. A user sees the organizations they
//! belong to and their role in each.

pub mod api;
pub mod pages;
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    pub role: String,
}
