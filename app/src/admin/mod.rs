//! Instance administration (users across the instance), for holders of `users:*` in the
//! system organization.

pub mod api;
pub mod pages;

use serde::{Deserialize, Serialize};

/// A user as the admin list shows them. No secret is part of this type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    pub status: String,
    pub created_at: i64,
    /// Role in the system organization, for instance administrators.
    pub system_role: Option<String>,
}
