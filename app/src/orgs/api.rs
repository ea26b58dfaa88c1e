//! Organization server functions.

use super::{Member, OrgMembership};
use crate::error::AppError;
use leptos::prelude::*;

/// The caller's organizations and their role in each.
#[server(prefix = "/rpc", endpoint = "my_organizations")]
pub async fn my_organizations() -> Result<Vec<OrgMembership>, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("my_organizations").await?;
    ssr::respond(async move { super::ssr::memberships(&caller.state.db, caller.user_id()?).await })
        .await
}

/// The members of an organization the caller may read.
#[server(prefix = "/rpc", endpoint = "organization_members")]
pub async fn organization_members(organization_id: String) -> Result<Vec<Member>, AppError> {
    use crate::ssr;
    let (caller, grant) =
        crate::access::guard::guard_in("organization_members", &organization_id).await?;
    ssr::respond(super::ssr::members(
        &caller.state.db,
        &grant.organization_id,
    ))
    .await
}
