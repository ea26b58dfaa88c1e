//! Passkey server functions: the user's own passkeys (list, register after re-authentication,
//! remove), the passkey as the second sign-in step, and passwordless sign-in. Credentials
//! travel as the JSON text of webauthn-rs-proto's types; the ceremony state stays on the
//! server (`identity::passkeys`).

use super::{PasskeyView, SecondFactorChoices};
use crate::error::AppError;
use leptos::prelude::*;
use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

/// The caller's passkeys.
#[server(prefix = "/rpc", endpoint = "my_passkeys")]
pub async fn my_passkeys() -> Result<Vec<PasskeyView>, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("my_passkeys").await?;
    ssr::respond(async move { super::passkeys::list(&caller.state.db, caller.user_id()?).await })
        .await
}

/// Starts registering a passkey (re-authenticating with the password): the options for
/// `navigator.credentials.create`.
#[server(prefix = "/rpc", endpoint = "start_passkey_registration")]
pub async fn start_passkey_registration(
    current_password: String,
) -> Result<CreationChallengeResponse, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("start_passkey_registration").await?;
    ssr::respond(async move {
        let state = &caller.state;
        let (user_id, _) = caller.reauthenticated(&current_password).await?;
        super::passkeys::start_registration(&state.db, &state.config, &caller.session, user_id)
            .await
    })
    .await
}

/// Finishes this session's registration with the browser's answer (`credential`: the
/// `RegisterPublicKeyCredential` as JSON). The user's other sessions end; this one continues
/// under a new id.
#[server(prefix = "/rpc", endpoint = "finish_passkey_registration")]
pub async fn finish_passkey_registration(
    name: String,
    credential: String,
) -> Result<PasskeyView, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("finish_passkey_registration").await?;
    ssr::respond(async move {
        let state = &caller.state;
        let view = super::passkeys::finish_registration(
            &state.db,
            &state.config,
            &caller.session,
            caller.user_id()?,
            &name,
            &credential,
            caller.source_ip_text().as_deref(),
        )
        .await?;
        super::ssr::renew_signed_in_id(&caller.state.db, &caller.session).await?;
        Ok(view)
    })
    .await
}

/// Removes one of the caller's passkeys (re-authenticating with the password); the user's
/// other sessions end.
#[server(prefix = "/rpc", endpoint = "remove_passkey")]
pub async fn remove_passkey(passkey_id: String, current_password: String) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("remove_passkey").await?;
    ssr::respond(async move {
        let state = &caller.state;
        let (user_id, ip) = caller.reauthenticated(&current_password).await?;
        super::passkeys::remove(
            &state.db,
            &state.config,
            &caller.session,
            user_id,
            &passkey_id,
            ip.as_deref(),
        )
        .await?;
        super::two_factor::hold_to_enrolment_if_required(&state.db, &caller.session, user_id)
            .await?;
        super::ssr::renew_signed_in_id(&caller.state.db, &caller.session).await
    })
    .await
}

/// What the second step can take for the sign-in waiting in this session (nothing when none
/// waits).
#[server(prefix = "/rpc", endpoint = "second_factor_options")]
pub async fn second_factor_options() -> Result<SecondFactorChoices, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("second_factor_options").await?;
    ssr::respond(async move {
        super::two_factor::second_factor_options(&caller.state.db, &caller.session).await
    })
    .await
}

/// Starts the second step with a passkey: options for `navigator.credentials.get` allowing
/// the waiting user's passkeys.
#[server(prefix = "/rpc", endpoint = "start_passkey_second_factor")]
pub async fn start_passkey_second_factor() -> Result<RequestChallengeResponse, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("start_passkey_second_factor").await?;
    ssr::respond(async move {
        let state = &caller.state;
        state.check_auth_attempt(caller.source_ip)?;
        super::passkeys::start_second_factor(&state.db, &state.config, &caller.session).await
    })
    .await
}

/// The second step with a passkey's answer (`credential`: the `PublicKeyCredential` as JSON).
#[server(prefix = "/rpc", endpoint = "verify_passkey_second_factor")]
pub async fn verify_passkey_second_factor(credential: String) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("verify_passkey_second_factor").await?;
    ssr::respond(async move {
        super::two_factor::second_step(&caller, super::two_factor::Proof::Passkey(&credential))
            .await
    })
    .await
}

/// Starts a passwordless sign-in: options for `navigator.credentials.get` naming no user.
#[server(prefix = "/rpc", endpoint = "start_passkey_sign_in")]
pub async fn start_passkey_sign_in() -> Result<RequestChallengeResponse, AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("start_passkey_sign_in").await?;
    ssr::respond(async move {
        let state = &caller.state;
        state.check_auth_attempt(caller.source_ip)?;
        super::passkeys::start_sign_in(&state.db, &state.config, &caller.session).await
    })
    .await
}

/// Signs in with a passkey alone (`credential`: the `PublicKeyCredential` as JSON); rotates
/// the session id.
#[server(prefix = "/rpc", endpoint = "finish_passkey_sign_in")]
pub async fn finish_passkey_sign_in(credential: String) -> Result<(), AppError> {
    use crate::ssr;
    let caller = crate::access::guard::guard("finish_passkey_sign_in").await?;
    ssr::respond(async move {
        let state = &caller.state;
        state.check_auth_attempt(caller.source_ip)?;
        let device = super::ssr::device_cookie::read(&state.config).await;
        let who = super::passkeys::finish_sign_in(
            &state.db,
            &state.config,
            &caller.session,
            &credential,
            caller.source_ip_text().as_deref(),
        )
        .await?;
        super::ssr::start_session(&state.config, &who.user_id, &who.stamp).await?;
        super::ssr::device_cookie::issue(&state.config, &who.user_id, &who.stamp, device.as_ref())?;
        leptos_axum::redirect("/");
        Ok(())
    })
    .await
}
