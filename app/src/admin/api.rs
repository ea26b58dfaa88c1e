//! Admin server functions: the instance's users.

use super::{UserPage, UserSummary};
use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// One page of the instance's users, searched and filtered. Requires `users:read` in the
/// system organization.
#[server(prefix = "/rpc", endpoint = "list_users")]
pub async fn list_users(
    q: Option<String>,
    status: Option<String>,
    role: Option<String>,
    page: Option<u32>,
) -> Result<UserPage, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("list_users").await?;
    ssr::respond(async move {
        let query = super::UserQuery {
            q: q.unwrap_or_default(),
            status: status.unwrap_or_default(),
            role: role.unwrap_or_default(),
            page,
        };
        super::ssr::list(&caller.state.db, &query).await
    })
    .await
}

/// Creates an account; the person gets an emailed link to choose a password.
#[server(prefix = "/rpc", endpoint = "create_user")]
pub async fn create_user(
    email: String,
    display_name: String,
    system_role: Option<String>,
) -> Result<UserSummary, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("create_user").await?;
    ssr::respond(async move {
        let grant = caller
            .instance_grant(crate::access::Permission::UsersWrite)
            .await?;
        let input = super::NewUser {
            email,
            display_name,
            system_role,
        };
        super::ssr::create(
            &caller.state.db,
            &caller.state.config,
            &grant,
            &input,
            caller.source_ip_text().as_deref(),
        )
        .await
    })
    .await
}

/// Signs a user out of every console session; answers how many ended.
#[server(prefix = "/rpc", endpoint = "end_user_sessions")]
pub async fn end_user_sessions(user_id: String) -> Result<u64, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("end_user_sessions").await?;
    ssr::respond(async move {
        let grant = caller
            .instance_grant(crate::access::Permission::UsersWrite)
            .await?;
        super::ssr::end_sessions(
            &caller.state.db,
            &grant,
            &user_id,
            caller.source_ip_text().as_deref(),
        )
        .await
    })
    .await
}

/// A user's live console sessions (instance administrators with `users:read`).
#[server(prefix = "/rpc", endpoint = "user_sessions")]
pub async fn user_sessions(user_id: String) -> Result<Vec<crate::identity::SessionView>, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("user_sessions").await?;
    ssr::respond(async move {
        caller
            .instance_grant(crate::access::Permission::UsersRead)
            .await?;
        super::ssr::sessions_of(&caller.state.db, &user_id).await
    })
    .await
}

/// Ends one of a user's console sessions by its handle.
#[server(prefix = "/rpc", endpoint = "end_user_session")]
pub async fn end_user_session(user_id: String, handle: String) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("end_user_session").await?;
    ssr::respond(async move {
        let grant = caller
            .instance_grant(crate::access::Permission::UsersWrite)
            .await?;
        super::ssr::end_session(
            &caller.state.db,
            &grant,
            &user_id,
            &handle,
            caller.source_ip_text().as_deref(),
        )
        .await
    })
    .await
}

/// Disables (`active=false`) or re-enables an account.
#[server(prefix = "/rpc", endpoint = "set_user_status")]
pub async fn set_user_status(user_id: String, active: bool) -> Result<UserSummary, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("set_user_status").await?;
    ssr::respond(async move {
        let grant = caller
            .instance_grant(crate::access::Permission::UsersWrite)
            .await?;
        let user = super::ssr::set_status(
            &caller.state,
            &grant,
            &user_id,
            active,
            caller.source_ip_text().as_deref(),
        )
        .await?;
        Ok(user)
    })
    .await
}

/// Emails the user a link to choose a new password.
#[server(prefix = "/rpc", endpoint = "send_password_reset")]
pub async fn send_password_reset(user_id: String) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("send_password_reset").await?;
    ssr::respond(async move {
        let grant = caller
            .instance_grant(crate::access::Permission::UsersWrite)
            .await?;
        super::ssr::send_password_reset(
            &caller.state.db,
            &caller.state.config,
            &grant,
            &user_id,
            caller.source_ip_text().as_deref(),
        )
        .await
    })
    .await
}

/// Turns a user's two-factor authentication off (a lost phone and lost recovery codes); their
/// sessions end and they are told.
#[server(prefix = "/rpc", endpoint = "reset_user_two_factor")]
pub async fn reset_user_two_factor(user_id: String) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("reset_user_two_factor").await?;
    ssr::respond(async move {
        let grant = caller
            .instance_grant(crate::access::Permission::UsersWrite)
            .await?;
        super::ssr::reset_two_factor(
            &caller.state.db,
            &caller.state.config,
            &grant,
            &user_id,
            caller.source_ip_text().as_deref(),
        )
        .await
    })
    .await
}

/// Deletes an account (anonymized; refused while the user is an organization's only owner).
#[server(prefix = "/rpc", endpoint = "delete_user")]
pub async fn delete_user(user_id: String) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("delete_user").await?;
    ssr::respond(async move {
        let grant = caller
            .instance_grant(crate::access::Permission::UsersWrite)
            .await?;
        super::ssr::delete(
            &caller.state,
            &grant,
            &user_id,
            caller.source_ip_text().as_deref(),
        )
        .await
    })
    .await
}

/// Starts acting as the active user with address `email`, for `reason`, for `minutes` (30 by
/// default, at most 120). Never on oneself nor on someone stronger; audited; the user is told.
#[server(prefix = "/rpc", endpoint = "impersonate_user")]
pub async fn impersonate_user(
    email: String,
    reason: String,
    #[server(default)] minutes: Option<i64>,
) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("impersonate_user").await?;
    ssr::respond(async move {
        let grant = caller
            .instance_grant(crate::access::Permission::ImpersonationWrite)
            .await?;
        super::impersonation::start(
            &caller.state,
            &caller.session,
            &grant,
            &email,
            &reason,
            minutes,
            caller.source_ip_text().as_deref(),
        )
        .await?;
        leptos_axum::redirect("/");
        Ok(())
    })
    .await
}

/// Stops acting as another user: the session is the administrator's again.
#[server(prefix = "/rpc", endpoint = "stop_impersonation")]
pub async fn stop_impersonation() -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("stop_impersonation").await?;
    ssr::respond(async move {
        match super::impersonation::end(&caller.state.db, &caller.session, "stopped")
            .await?
            .admin()
        {
            Some(_) => {
                leptos_axum::redirect("/admin/users");
                Ok(())
            }
            None => Err(AppError::conflict(
                "session",
                "this session is not impersonating anyone",
            )),
        }
    })
    .await
}

/// What a password link is for, shown before the person chooses a password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordLinkView {
    pub email: String,
    /// `setup` (a new account) or `reset`.
    pub purpose: String,
}

/// Checks an emailed password link (public: the person is not signed in).
#[server(prefix = "/rpc", endpoint = "open_password_link")]
pub async fn open_password_link(token: String) -> Result<PasswordLinkView, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("open_password_link").await?;
    ssr::respond(async move {
        caller.state.check_auth_attempt(caller.source_ip)?;
        let link = crate::identity::password_link::verify_for_password(
            &caller.state.db,
            &caller.state.config.secret,
            &token,
        )
        .await?;
        Ok(PasswordLinkView {
            email: link.email,
            purpose: link.purpose.as_str().to_string(),
        })
    })
    .await
}

/// Chooses a password through an emailed link; returns the address to sign in with. Every
/// session of the account ends.
#[server(prefix = "/rpc", endpoint = "set_password_from_link")]
pub async fn set_password_from_link(
    token: String,
    new_password: String,
) -> Result<String, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("set_password_from_link").await?;
    ssr::respond(async move {
        caller.state.check_auth_attempt(caller.source_ip)?;
        crate::identity::password_link::set_password(
            &caller.state.db,
            &caller.state.config.secret,
            &token,
            &new_password,
            caller.source_ip_text().as_deref(),
        )
        .await
    })
    .await
}
