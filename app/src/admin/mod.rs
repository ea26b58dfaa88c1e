//! Instance administration (users across the instance), for holders of `users:*` in the
//! system organization.

pub mod api;
#[cfg(feature = "ssr")]
pub mod impersonation;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;

use serde::{Deserialize, Serialize};

/// A user as the admin list shows them. No secret is part of this type.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    /// `active`, `disabled` or `deleted`.
    pub status: String,
    pub created_at: i64,
    /// Role in the system organization, for instance administrators.
    pub system_role: Option<String>,
    /// Console sessions signed in now.
    pub sessions: i64,
    /// Two-factor authentication is on.
    #[serde(default)]
    pub two_factor: bool,
}

/// Users rows per page.
pub const USERS_PER_PAGE: u32 = 25;

/// The users list's search, filters and page (every field optional; `page` counts from 1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    /// Matches the email or the display name (case-insensitive).
    #[serde(default)]
    pub q: String,
    /// `active`, `disabled`, `deleted`, or empty for every account not deleted.
    #[serde(default)]
    pub status: String,
    /// A built-in role in the system organization, `none` for users without one, or empty.
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub page: Option<u32>,
}

/// One page of users.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPage {
    pub users: Vec<UserSummary>,
    /// Users matching the search and filters, over every page.
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
}

impl UserPage {
    pub fn pages(&self) -> u32 {
        (self.total as u32).div_ceil(self.per_page).max(1)
    }
}

/// An account an administrator creates: the person gets an emailed link to choose a password.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    pub display_name: String,
    /// A built-in role in the system organization (instance administrators), or none.
    #[serde(default)]
    pub system_role: Option<String>,
}

/// `PATCH /api/v1/users/{id}`: enable or disable the account.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserStatusChange {
    /// `active` or `disabled`.
    pub status: String,
}
