//! Teams server functions: list (`members:read`), create, delete and membership
//! (`members:write`), roles (`roles:write`). Every change is also bounded by the caller's
//! ceiling: nobody hands out, through a team, a role holding more than they hold.

use super::Team;
use crate::error::AppError;
use leptos::prelude::*;

/// The organization's teams, by name.
#[server(prefix = "/rpc", endpoint = "list_teams")]
pub async fn list_teams(organization_id: String) -> Result<Vec<Team>, AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("list_teams", &organization_id).await?;
    ssr::respond(super::ssr::list(&caller.state.db, &grant.organization_id)).await
}

/// Creates a team (empty, holding no role).
#[server(prefix = "/rpc", endpoint = "create_team")]
pub async fn create_team(
    organization_id: String,
    name: String,
    #[server(default)] description: String,
) -> Result<Team, AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("create_team", &organization_id).await?;
    ssr::respond(super::ssr::create(
        &caller.state.db,
        &grant,
        &name,
        &description,
    ))
    .await
}

/// Deletes a team: its members lose the roles they held through it.
#[server(prefix = "/rpc", endpoint = "delete_team")]
pub async fn delete_team(organization_id: String, team_id: String) -> Result<(), AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("delete_team", &organization_id).await?;
    ssr::respond(super::ssr::delete(&caller.state.db, &grant, &team_id)).await
}

/// Adds a member of the organization to a team (`add`), or takes them out. Answers whether
/// anything changed.
#[server(prefix = "/rpc", endpoint = "set_team_member")]
pub async fn set_team_member(
    organization_id: String,
    team_id: String,
    user_id: String,
    add: bool,
) -> Result<bool, AppError> {
    use crate::ssr;
    let (caller, grant) =
        crate::access::guard::guard_in("set_team_member", &organization_id).await?;
    ssr::respond(super::ssr::set_member(
        &caller.state.db,
        &grant,
        &team_id,
        &user_id,
        add,
    ))
    .await
}

/// Gives a team a custom role of the organization (`add`), or takes it away. Answers whether
/// anything changed.
#[server(prefix = "/rpc", endpoint = "set_team_role")]
pub async fn set_team_role(
    organization_id: String,
    team_id: String,
    role_id: String,
    add: bool,
) -> Result<bool, AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("set_team_role", &organization_id).await?;
    ssr::respond(super::ssr::set_role(
        &caller.state.db,
        &grant,
        &team_id,
        &role_id,
        add,
    ))
    .await
}
