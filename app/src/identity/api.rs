//! Identity server functions. Each: guard, validate, call `identity::ssr`, map errors.

use super::SignedInUser;
use crate::error::AppError;
use leptos::prelude::*;

/// Signs in with email and password; rotates the session id. Every failure gives the same
/// `invalid_credentials` answer.
#[server(prefix = "/rpc", endpoint = "sign_in")]
pub async fn sign_in(email: String, password: String) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("sign_in").await?;
    ssr::respond(async move {
        let state = &caller.state;
        state.check_auth_attempt(caller.source_ip)?;
        let device = super::ssr::device_cookie::read(&state.config).await;
        let who = super::ssr::authenticate(
            &state.db,
            &state.config,
            &email,
            &password,
            super::ssr::Counter::Browser(device.as_ref()),
            caller.source_ip_text().as_deref(),
        )
        .await?;
        let user_id = who.user_id.clone();
        let next =
            super::two_factor::after_password(&state.db, &state.config, &caller.session, &who)
                .await?;
        if next != super::two_factor::AfterPassword::SecondFactor {
            super::ssr::device_cookie::issue(&state.config, &user_id, &who.stamp, device.as_ref())?;
        }
        leptos_axum::redirect(next.next_page());
        Ok(())
    })
    .await
}

/// The second sign-in step: a code from the authenticator app, or a recovery code.
#[server(prefix = "/rpc", endpoint = "verify_second_factor")]
pub async fn verify_second_factor(code: String) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("verify_second_factor").await?;
    ssr::respond(async move {
        super::two_factor::second_step(&caller, super::two_factor::Proof::Code(&code)).await
    })
    .await
}

/// The caller's two-factor authentication: on or off, recovery codes left, and which
/// organizations require it.
#[server(prefix = "/rpc", endpoint = "two_factor_status")]
pub async fn two_factor_status() -> Result<super::TwoFactorStatus, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("two_factor_status").await?;
    ssr::respond(async move {
        super::two_factor::status(&caller.state.db, &caller.session, caller.user_id()?).await
    })
    .await
}

/// Starts setting up an authenticator app (re-authenticating with the password): answers the
/// QR code and the secret; nothing is on until `confirm_totp`.
#[server(prefix = "/rpc", endpoint = "start_totp")]
pub async fn start_totp(current_password: String) -> Result<super::TotpEnrolment, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("start_totp").await?;
    ssr::respond(async move {
        let state = &caller.state;
        let (user_id, _) = caller.reauthenticated(&current_password).await?;
        super::two_factor::start_enrolment(&state.db, &state.config, &caller.session, user_id).await
    })
    .await
}

/// Turns the authenticator app on with a code from it; answers the recovery codes (shown
/// once). The user's other sessions end; this one continues under a new id.
#[server(prefix = "/rpc", endpoint = "confirm_totp")]
pub async fn confirm_totp(code: String) -> Result<Vec<String>, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("confirm_totp").await?;
    ssr::respond(async move {
        let state = &caller.state;
        state.check_auth_attempt(caller.source_ip)?;
        let codes = super::two_factor::confirm_enrolment(
            &state.db,
            &state.config,
            &caller.session,
            caller.user_id()?,
            &code,
            caller.source_ip_text().as_deref(),
        )
        .await?;
        super::ssr::renew_signed_in_id(&caller.state.db, &caller.session).await?;
        Ok(codes)
    })
    .await
}

/// Turns two-factor authentication off (re-authenticating with the password); the user's
/// other sessions end.
#[server(prefix = "/rpc", endpoint = "disable_totp")]
pub async fn disable_totp(current_password: String) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("disable_totp").await?;
    ssr::respond(async move {
        let state = &caller.state;
        let (user_id, ip) = caller.reauthenticated(&current_password).await?;
        let current = super::ssr::session_hash_of(&caller.session);
        let stamp =
            super::two_factor::disable(&state.db, user_id, current.as_deref(), ip.as_deref())
                .await?;
        super::ssr::restamp(&caller.state.config, &caller.session, stamp.as_deref()).await?;
        super::two_factor::hold_to_enrolment_if_required(&state.db, &caller.session, user_id)
            .await?;
        super::ssr::renew_signed_in_id(&caller.state.db, &caller.session).await
    })
    .await
}

/// New recovery codes (re-authenticating with the password); the old ones stop working.
#[server(prefix = "/rpc", endpoint = "regenerate_recovery_codes")]
pub async fn regenerate_recovery_codes(current_password: String) -> Result<Vec<String>, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("regenerate_recovery_codes").await?;
    ssr::respond(async move {
        let state = &caller.state;
        let (user_id, ip) = caller.reauthenticated(&current_password).await?;
        super::two_factor::regenerate_recovery_codes(
            &state.db,
            &state.config.secret,
            user_id,
            ip.as_deref(),
        )
        .await
    })
    .await
}

/// Open sign-up (when the operator allows it): emails a link that confirms the address. The
/// answer is the same whether or not the address already has an account.
#[server(prefix = "/rpc", endpoint = "sign_up")]
pub async fn sign_up(
    email: String,
    display_name: String,
    password: String,
) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("sign_up").await?;
    ssr::respond(async move {
        let state = &caller.state;
        if !state.config.signup_open {
            return Err(AppError::new(
                crate::error::ErrorCode::Disabled,
                "sign-up is closed on this instance; ask an administrator for an account",
            ));
        }
        state.check_auth_attempt(caller.source_ip)?;
        super::ssr::sign_up(
            &state.db,
            &state.config,
            &email,
            &display_name,
            &password,
            caller.source_ip_text().as_deref(),
        )
        .await
    })
    .await
}

/// Confirms a sign-up's address through its emailed link, with the account's password, and
/// signs in.
#[server(prefix = "/rpc", endpoint = "confirm_sign_up")]
pub async fn confirm_sign_up(token: String, password: String) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("confirm_sign_up").await?;
    ssr::respond(async move {
        let state = &caller.state;
        state.check_auth_attempt(caller.source_ip)?;
        let who = super::password_link::confirm_email(
            &state.db,
            &state.config.secret,
            &token,
            &password,
            caller.source_ip_text().as_deref(),
            state.config.sign_in_failures_per_hour,
        )
        .await?;
        super::ssr::start_session(&state.config, &who.user_id, &who.stamp).await
    })
    .await
}

/// Ends the current session.
#[server(prefix = "/rpc", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("sign_out").await?;
    ssr::respond(async move {
        crate::admin::impersonation::end(&caller.state.db, &caller.session, "signed_out").await?;
        ssr::session()
            .await?
            .flush()
            .await
            .map_err(AppError::internal)?;
        leptos_axum::redirect("/sign-in");
        Ok(())
    })
    .await
}

/// The signed-in user, or `None`.
#[server(prefix = "/rpc", endpoint = "current_user")]
pub async fn current_user() -> Result<Option<SignedInUser>, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("current_user").await?;
    ssr::respond(async move {
        match caller.user_id.as_deref() {
            Some(user_id) => {
                let active = crate::orgs::ssr::active(&caller.session).await?;
                let must_enrol = super::two_factor::must_enrol(&caller.session).await?;
                let impersonation =
                    crate::admin::impersonation::view(&caller.state.db, &caller.session).await?;
                Ok(
                    super::ssr::current_user(&caller.state.db, user_id, active.as_deref())
                        .await?
                        .map(|u| SignedInUser {
                            must_enrol_two_factor: must_enrol,
                            impersonation,
                            ..u
                        }),
                )
            }
            None => Ok(None),
        }
    })
    .await
}

/// Changes the caller's display name; returns it as stored.
#[server(prefix = "/rpc", endpoint = "update_profile")]
pub async fn update_profile(display_name: String) -> Result<String, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("update_profile").await?;
    ssr::respond(async move {
        super::profile::update_display_name(&caller.state.db, caller.user_id()?, &display_name)
            .await
    })
    .await
}

/// Stores the caller's display preferences (time zone: an IANA name, empty for the
/// browser's; theme: system, light or dark).
#[server(prefix = "/rpc", endpoint = "set_preferences")]
pub async fn set_preferences(
    #[server(default)] time_zone: String,
    theme: String,
) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("set_preferences").await?;
    ssr::respond(async move {
        super::profile::set_preferences(&caller.state.db, caller.user_id()?, &time_zone, &theme)
            .await
    })
    .await
}

/// The caller's console sessions, the current one marked.
#[server(prefix = "/rpc", endpoint = "my_sessions")]
pub async fn my_sessions() -> Result<Vec<super::SessionView>, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("my_sessions").await?;
    ssr::respond(async move {
        let current = super::ssr::session_hash_of(&caller.session);
        super::sessions::list(&caller.state.db, caller.user_id()?, current.as_deref()).await
    })
    .await
}

/// Signs out one of the caller's other sessions, named by its handle.
#[server(prefix = "/rpc", endpoint = "revoke_session")]
pub async fn revoke_session(handle: String) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("revoke_session").await?;
    ssr::respond(async move {
        let current = super::ssr::session_hash_of(&caller.session);
        super::sessions::revoke(
            &caller.state.db,
            caller.user_id()?,
            current.as_deref(),
            handle.trim(),
        )
        .await
    })
    .await
}

/// Signs out every session of the caller but this one; answers how many ended.
#[server(prefix = "/rpc", endpoint = "revoke_other_sessions")]
pub async fn revoke_other_sessions() -> Result<u64, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("revoke_other_sessions").await?;
    ssr::respond(async move {
        let current = caller.session_hash()?;
        let ended =
            super::sessions::revoke_others(&caller.state.db, caller.user_id()?, &current).await?;
        super::ssr::restamp(
            &caller.state.config,
            &caller.session,
            ended.stamp.as_deref(),
        )
        .await?;
        Ok(ended.count)
    })
    .await
}

/// Changes the caller's password (re-authenticating with the current one); every other
/// session of theirs ends, and this one continues under a new id.
#[server(prefix = "/rpc", endpoint = "change_password")]
pub async fn change_password(
    current_password: String,
    new_password: String,
) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("change_password").await?;
    ssr::respond(async move {
        let state = &caller.state;
        state.check_auth_attempt(caller.source_ip)?;
        let current = caller.session_hash()?;
        let counter = caller.reauth_counter().await?;
        let stamp = super::profile::change_password(
            &state.db,
            &state.config,
            caller.user_id()?,
            super::profile::SessionRef {
                hash: &current,
                counter: &counter,
            },
            &current_password,
            &new_password,
            caller.source_ip_text().as_deref(),
        )
        .await?;
        // The change ended every session of the user, this one's row included, after finding
        // it still there (in its transaction): it carries on under a new id.
        caller
            .session
            .cycle_id()
            .await
            .map_err(AppError::internal)?;
        super::ssr::restamp(&caller.state.config, &caller.session, Some(&stamp)).await
    })
    .await
}

/// Deletes the caller's own account (re-authenticating with the password); the session ends.
#[server(prefix = "/rpc", endpoint = "delete_account")]
pub async fn delete_account(current_password: String) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("delete_account").await?;
    ssr::respond(async move {
        let state = &caller.state;
        state.check_auth_attempt(caller.source_ip)?;
        let session = caller.reauth_counter().await?;
        super::profile::delete_account(
            &state.db,
            &state.config,
            caller.user_id()?,
            &session,
            &current_password,
            caller.source_ip_text().as_deref(),
        )
        .await?;
        crate::keys::ssr::KeyCache::of(state)?.clear();
        caller.session.flush().await.map_err(AppError::internal)
    })
    .await
}

/// Sends a confirmation link to a new address (re-authenticating with the password) and a
/// notice to the current one.
#[server(prefix = "/rpc", endpoint = "request_email_change")]
pub async fn request_email_change(
    new_email: String,
    current_password: String,
) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("request_email_change").await?;
    ssr::respond(async move {
        let state = &caller.state;
        state.check_auth_attempt(caller.source_ip)?;
        let session = caller.reauth_counter().await?;
        super::profile::request_email_change(
            &state.db,
            &state.config,
            caller.user_id()?,
            &session,
            &new_email,
            &current_password,
            caller.source_ip_text().as_deref(),
        )
        .await
    })
    .await
}

/// Applies an email change from its emailed link; returns the new address.
#[server(prefix = "/rpc", endpoint = "confirm_email_change")]
pub async fn confirm_email_change(token: String) -> Result<String, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("confirm_email_change").await?;
    ssr::respond(async move {
        super::profile::confirm_email_change(&caller.state.db, &caller.state.config.secret, &token)
            .await
    })
    .await
}

/// The caller's dashboard: their keys and usage against limits, keys expiring soon, recent
/// activity, unread notifications.
#[server(prefix = "/rpc", endpoint = "my_dashboard")]
pub async fn my_dashboard() -> Result<super::Dashboard, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("my_dashboard").await?;
    ssr::respond(
        async move { super::dashboard::dashboard(&caller.state.db, caller.user_id()?).await },
    )
    .await
}

/// The caller's activity log: their own sign-ins and actions, and what others did to their
/// account, newest first.
#[server(prefix = "/rpc", endpoint = "my_activity")]
pub async fn my_activity() -> Result<Vec<super::ActivityEntry>, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("my_activity").await?;
    ssr::respond(
        async move { super::dashboard::activity(&caller.state.db, caller.user_id()?).await },
    )
    .await
}
