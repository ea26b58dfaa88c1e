//! Identity: users, sign-up, sign-in, sign-out, and who the current user is.

pub mod api;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;

use serde::{Deserialize, Serialize};

/// The signed-in user, as the console sees them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedInUser {
    pub user_id: String,
    pub email: String,
    pub display_name: String,
    /// Permissions held in the system organization (`users:read`…): decides the admin menus.
    pub instance_permissions: Vec<String>,
}

impl SignedInUser {
    pub fn can(&self, permission: crate::access::Permission) -> bool {
        self.instance_permissions
            .iter()
            .any(|p| p == permission.as_str())
    }
}
