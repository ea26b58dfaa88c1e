//! Organization server functions.

use super::{Invitation, InvitationPreview, Member, OrgMembership};
use crate::error::AppError;
use leptos::prelude::*;

/// The caller's organizations and their role in each, the active one first.
#[server(prefix = "/rpc", endpoint = "my_organizations")]
pub async fn my_organizations() -> Result<Vec<OrgMembership>, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("my_organizations").await?;
    ssr::respond(async move {
        let active = super::ssr::active(&caller.session).await?;
        super::ssr::memberships(&caller.state.db, caller.user_id()?, active.as_deref()).await
    })
    .await
}

/// The members of an organization the caller may read.
#[server(prefix = "/rpc", endpoint = "organization_members")]
pub async fn organization_members(organization_id: String) -> Result<Vec<Member>, AppError> {
    use crate::ssr;
    let (caller, grant) =
        crate::access::guard::guard_in("organization_members", &organization_id).await?;
    ssr::respond(super::members::members(
        &caller.state.db,
        &grant.organization_id,
    ))
    .await
}

/// Creates a team organization owned by the caller and makes it the active one.
#[server(prefix = "/rpc", endpoint = "create_organization")]
pub async fn create_organization(name: String) -> Result<String, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("create_organization").await?;
    ssr::respond(async move {
        let id = super::members::create_organization(
            &caller.state.db,
            caller.user_id()?,
            &name,
            caller.source_ip_text().as_deref(),
        )
        .await?;
        super::ssr::set_active(&caller.session, &id).await?;
        Ok(id)
    })
    .await
}

/// Makes one of the caller's organizations the active one: the menus follow what the caller
/// may do there, and every list and chart opens on it.
#[server(prefix = "/rpc", endpoint = "switch_organization")]
pub async fn switch_organization(organization_id: String) -> Result<(), AppError> {
    use crate::ssr;
    let (caller, grant) =
        crate::access::guard::guard_in("switch_organization", &organization_id).await?;
    ssr::respond(
        async move { super::ssr::set_active(&caller.session, &grant.organization_id).await },
    )
    .await
}

/// Invites a person by email with a base role; the link goes out through the outbox.
#[server(prefix = "/rpc", endpoint = "invite_member")]
pub async fn invite_member(
    organization_id: String,
    email: String,
    role: String,
) -> Result<Invitation, AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("invite_member", &organization_id).await?;
    ssr::respond(async move {
        let config = &caller.state.config;
        super::members::invite(&caller.state.db, &grant, config, &email, &role).await
    })
    .await
}

/// The organization's pending invitations.
#[server(prefix = "/rpc", endpoint = "list_invitations")]
pub async fn list_invitations(organization_id: String) -> Result<Vec<Invitation>, AppError> {
    use crate::ssr;
    let (caller, grant) =
        crate::access::guard::guard_in("list_invitations", &organization_id).await?;
    ssr::respond(super::members::invitations(
        &caller.state.db,
        &grant.organization_id,
    ))
    .await
}

/// Revokes a pending invitation.
#[server(prefix = "/rpc", endpoint = "revoke_invitation")]
pub async fn revoke_invitation(
    organization_id: String,
    invitation_id: String,
) -> Result<(), AppError> {
    use crate::ssr;
    let (caller, grant) =
        crate::access::guard::guard_in("revoke_invitation", &organization_id).await?;
    ssr::respond(async move {
        super::members::revoke_invitation(&caller.state.db, &grant, &invitation_id).await
    })
    .await
}

/// Removes a member from the organization.
#[server(prefix = "/rpc", endpoint = "remove_member")]
pub async fn remove_member(organization_id: String, user_id: String) -> Result<(), AppError> {
    use crate::ssr;
    let (caller, grant) = crate::access::guard::guard_in("remove_member", &organization_id).await?;
    ssr::respond(
        async move { super::members::remove_member(&caller.state.db, &grant, &user_id).await },
    )
    .await
}

/// Changes a member's base role (admin, member, viewer).
#[server(prefix = "/rpc", endpoint = "set_member_role")]
pub async fn set_member_role(
    organization_id: String,
    user_id: String,
    role: String,
) -> Result<(), AppError> {
    use crate::ssr;
    let (caller, grant) =
        crate::access::guard::guard_in("set_member_role", &organization_id).await?;
    ssr::respond(async move {
        super::members::set_member_role(&caller.state.db, &grant, &user_id, &role).await
    })
    .await
}

/// Leaves the organization (never the last owner, never one's personal organization).
#[server(prefix = "/rpc", endpoint = "leave_organization")]
pub async fn leave_organization(organization_id: String) -> Result<(), AppError> {
    use crate::ssr;
    let (caller, grant) =
        crate::access::guard::guard_in("leave_organization", &organization_id).await?;
    ssr::respond(async move {
        super::members::leave(&caller.state.db, &grant).await?;
        super::ssr::clear_active(&caller.session, &grant.organization_id).await
    })
    .await
}

/// Makes another member the owner; the caller becomes an admin.
#[server(prefix = "/rpc", endpoint = "transfer_ownership")]
pub async fn transfer_ownership(organization_id: String, user_id: String) -> Result<(), AppError> {
    use crate::ssr;
    let (caller, grant) =
        crate::access::guard::guard_in("transfer_ownership", &organization_id).await?;
    ssr::respond(async move {
        super::members::transfer_ownership(&caller.state.db, &grant, &user_id).await
    })
    .await
}

/// What an invitation link offers (for the page that accepts it).
#[server(prefix = "/rpc", endpoint = "open_invitation")]
pub async fn open_invitation(token: String) -> Result<InvitationPreview, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("open_invitation").await?;
    ssr::respond(async move {
        super::members::preview(
            &caller.state.db,
            &caller.state.config.secret,
            &token,
            caller.user_id.as_deref(),
        )
        .await
    })
    .await
}

/// Accepts an invitation. Signed in as the invited address: joins. Not signed in: signs in
/// with the account's password, or — when the address has no account — creates one (the link
/// proves the address; while sign-up is closed, only for an invitation an instance
/// administrator sent), then joins. The joined organization becomes the active one.
#[server(prefix = "/rpc", endpoint = "accept_invitation")]
pub async fn accept_invitation(
    token: String,
    display_name: Option<String>,
    password: Option<String>,
) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("accept_invitation").await?;
    ssr::respond(async move {
        let state = &caller.state;
        let secret = &state.config.secret;
        let user_id = match caller.user_id.clone() {
            Some(user_id) => user_id,
            None => {
                let preview = super::members::preview(&state.db, secret, &token, None).await?;
                if preview.status != "pending" {
                    return Err(AppError::new(
                        crate::error::ErrorCode::Conflict,
                        format!("this invitation was {}; ask for a new one", preview.status),
                    ));
                }
                state.check_auth_attempt(caller.source_ip)?;
                let password = password.unwrap_or_default();
                let ip = caller.source_ip_text();
                if preview.account_exists {
                    let who = crate::identity::ssr::authenticate(
                        &state.db,
                        &state.config,
                        &preview.email,
                        &password,
                        crate::identity::ssr::Counter::Browser(None),
                        ip.as_deref(),
                    )
                    .await?;
                    let user_id = who.user_id.clone();
                    if crate::identity::two_factor::has_factor(&state.db, &user_id).await? {
                        return Err(AppError::new(
                            crate::error::ErrorCode::Unauthenticated,
                            "your account uses two-factor authentication: sign in first, then open this link again",
                        ));
                    }
                    let org = super::members::accept(&state.db, secret, &token, &user_id).await?;
                    // Signed in after joining: the organization's own 2FA policy counts.
                    return signed_in_to(state, &caller.session, &who, &org).await;
                }
                // The account and the membership are written together: a link revoked
                // or used meanwhile leaves no account behind.
                let (name, hash) = crate::identity::ssr::prepare_account(
                    &state.db,
                    &preview.email,
                    display_name.as_deref().unwrap_or_default(),
                    &password,
                )
                .await?;
                let mut tx = state.db.writer.begin().await?;
                let user_id = crate::identity::ssr::insert_user(
                    &mut tx,
                    &preview.email,
                    &name,
                    &hash,
                    None,
                    None,
                    ip.as_deref(),
                )
                .await?;
                let org = super::members::accept_in(
                    &mut tx,
                    secret,
                    &token,
                    &user_id,
                    !state.config.signup_open,
                )
                .await?;
                tx.commit().await?;
                let who = crate::identity::ssr::Authenticated {
                    user_id,
                    // A new account: no session of it was ever ended.
                    stamp: crate::identity::ssr::credential_stamp(&hash, 0),
                };
                return signed_in_to(state, &caller.session, &who, &org).await;
            }
        };
        let org = super::members::accept(&state.db, secret, &token, &user_id).await?;
        super::ssr::set_active(&caller.session, &org).await?;
        // Joining an organization that requires a second factor holds a session without one
        // to enrolling it.
        let restricted = !crate::identity::two_factor::has_factor(&state.db, &user_id).await?
            && !crate::identity::two_factor::required_by(&state.db, &user_id)
                .await?
                .is_empty();
        if restricted {
            caller
                .session
                .insert(crate::ssr::keys::MUST_ENROL, true)
                .await
                .map_err(AppError::internal)?;
        }
        leptos_axum::redirect(if restricted { "/two-factor" } else { "/members" });
        Ok(())
    })
    .await
}

/// Signs a user without a second factor in after they joined `org` through an invitation,
/// and sends the browser on: to the organization's members, or to the enrolment an
/// organization (this one, say) requires first.
#[cfg(feature = "ssr")]
async fn signed_in_to(
    state: &crate::ssr::AppState,
    session: &tower_sessions::Session,
    who: &crate::identity::ssr::Authenticated,
    org: &str,
) -> Result<(), AppError> {
    use crate::identity::two_factor::{after_password, AfterPassword};
    let next = after_password(&state.db, &state.config, session, who).await?;
    super::ssr::set_active(session, org).await?;
    leptos_axum::redirect(match next {
        AfterPassword::MustEnrol => AfterPassword::MustEnrol.next_page(),
        _ => "/members",
    });
    Ok(())
}

/// The organization's policies.
#[server(prefix = "/rpc", endpoint = "get_org_policy")]
pub async fn get_org_policy(organization_id: String) -> Result<super::OrgPolicy, AppError> {
    use crate::ssr;
    let (caller, grant) =
        crate::access::guard::guard_in("get_org_policy", &organization_id).await?;
    ssr::respond(super::policy::get(&caller.state.db, &grant.organization_id)).await
}

/// Sets the organization's policies (`max_key_lifetime_days` empty: no limit).
#[server(prefix = "/rpc", endpoint = "set_org_policy")]
pub async fn set_org_policy(
    organization_id: String,
    max_key_lifetime_days: String,
    #[server(default)] require_two_factor: Option<String>,
    #[server(default)] require_key_approval: Option<String>,
    #[server(default)] loaded: Option<String>,
) -> Result<super::OrgPolicy, AppError> {
    use crate::ssr;
    let (caller, grant) =
        crate::access::guard::guard_in("set_org_policy", &organization_id).await?;
    ssr::respond(async move {
        let days = match max_key_lifetime_days.trim() {
            "" => None,
            d => Some(d.parse::<i64>().map_err(|_| {
                AppError::invalid(
                    "max_key_lifetime_days",
                    "a whole number of days, or empty for no limit",
                )
            })?),
        };
        let policy = super::OrgPolicy {
            max_key_lifetime_days: days,
            require_two_factor: require_two_factor.is_some_and(|v| !v.is_empty()),
            require_key_approval: require_key_approval.is_some_and(|v| !v.is_empty()),
        };
        // The policy the page was loaded with (JSON; the page always sends it).
        let loaded: Option<super::OrgPolicy> =
            ssr::parse_loaded(loaded, "not a policy as the page loads it")?;
        super::policy::set(&caller.state.db, &grant, &policy, loaded.as_ref()).await?;
        Ok(policy)
    })
    .await
}
