//! Admin server functions.

use super::UserSummary;
use crate::error::AppError;
use leptos::prelude::*;

/// Every user of the instance. Requires `users:read` in the system organization.
#[server(prefix = "/rpc", endpoint = "list_users")]
pub async fn list_users() -> Result<Vec<UserSummary>, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("list_users").await?;
    ssr::respond(async move { crate::identity::ssr::list_users(&caller.state.db).await }).await
}
