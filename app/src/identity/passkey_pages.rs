//! Passkey UI: the profile's list (add, remove), the second step's "Use a passkey", and
//! "Sign in with a passkey". The browser's WebAuthn calls go through webauthn-rs-proto's
//! `wasm` conversions; the server keeps the ceremony state.

use super::passkey_api::{
    finish_passkey_registration, finish_passkey_sign_in, my_passkeys, start_passkey_registration,
    start_passkey_second_factor, start_passkey_sign_in, verify_passkey_second_factor,
    RemovePasskey,
};
use super::PasskeyView;
use crate::error::AppError;
use crate::ui::{action_error, hydrated, use_auth, ErrorNote};
use leptos::prelude::*;

/// The browser side of a ceremony: asks the authenticator, answers the credential as JSON.
#[cfg(feature = "hydrate")]
mod browser {
    use wasm_bindgen_futures::JsFuture;
    use webauthn_rs_proto::{
        CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
        RequestChallengeResponse,
    };

    fn refused(e: wasm_bindgen::JsValue) -> String {
        let name = js_sys::Reflect::get(&e, &"name".into())
            .ok()
            .and_then(|n| n.as_string())
            .unwrap_or_default();
        match name.as_str() {
            "NotAllowedError" => "The passkey prompt was closed or timed out.".into(),
            "InvalidStateError" => "This passkey is already registered.".into(),
            "SecurityError" => "Passkeys do not work at this address: open Keyward at its configured address (see the docs).".into(),
            _ => "Your browser could not use a passkey here.".into(),
        }
    }

    fn container() -> Result<web_sys::CredentialsContainer, String> {
        Ok(web_sys::window()
            .ok_or("no window")?
            .navigator()
            .credentials())
    }

    pub async fn create(options: CreationChallengeResponse) -> Result<String, String> {
        let options: web_sys::CredentialCreationOptions = options.into();
        let promise = container()?
            .create_with_options(&options)
            .map_err(refused)?;
        let value = JsFuture::from(promise).await.map_err(refused)?;
        let credential =
            RegisterPublicKeyCredential::from(web_sys::PublicKeyCredential::from(value));
        serde_json::to_string(&credential).map_err(|e| e.to_string())
    }

    pub async fn get(options: RequestChallengeResponse) -> Result<String, String> {
        let options: web_sys::CredentialRequestOptions = options.into();
        let promise = container()?.get_with_options(&options).map_err(refused)?;
        let value = JsFuture::from(promise).await.map_err(refused)?;
        let credential = PublicKeyCredential::from(web_sys::PublicKeyCredential::from(value));
        serde_json::to_string(&credential).map_err(|e| e.to_string())
    }
}

/// On the server nothing is asked (these run from clicks, in the browser).
#[cfg(not(feature = "hydrate"))]
mod browser {
    use webauthn_rs_proto::{CreationChallengeResponse, RequestChallengeResponse};

    pub async fn create(_: CreationChallengeResponse) -> Result<String, String> {
        Err("passkeys work in the browser".into())
    }

    pub async fn get(_: RequestChallengeResponse) -> Result<String, String> {
        Err("passkeys work in the browser".into())
    }
}

fn browser_error(message: String) -> AppError {
    AppError::invalid("credential", message)
}

/// Registers a passkey: re-authenticates, asks the authenticator, stores it.
async fn register(name: String, current_password: String) -> Result<PasskeyView, AppError> {
    // A bad name is refused before the authenticator is bothered.
    if name.trim().is_empty() {
        return Err(AppError::invalid(
            "name",
            "give the passkey a name, such as \"Laptop\"",
        ));
    }
    let options = start_passkey_registration(current_password).await?;
    let credential = browser::create(options).await.map_err(browser_error)?;
    finish_passkey_registration(name, credential).await
}

/// "Passkeys and security keys" on the profile (and the enrolment page).
#[component]
pub fn Passkeys() -> impl IntoView {
    let auth = use_auth();
    let add = Action::new_local(|input: &(String, String)| {
        let (name, password) = input.clone();
        register(name, password)
    });
    let remove = ServerAction::<RemovePasskey>::new();
    let list = Resource::new(
        move || (add.version().get(), remove.version().get()),
        |_| my_passkeys(),
    );
    // A passkey is a factor: the console's restriction (if any) is lifted.
    Effect::new(move |_| {
        if let Some(Ok(_)) = add.value().get() {
            auth.user.refetch();
        }
    });
    let name = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let adding = add.pending();
    let ready = hydrated();
    view! {
        <section class="card" role="region" aria-label="Passkeys">
            <h2>"Passkeys and security keys"</h2>
            <p class="hint">"A passkey signs you in with your device's screen lock or a security key, without a password, and counts as your second factor after a password."</p>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match list.await {
                        Ok(keys) if keys.is_empty() => view! { <p>"No passkeys yet."</p> }.into_any(),
                        Ok(keys) => view! {
                            <table>
                                <thead><tr><th>"Name"</th><th>"Added"</th><th>"Last used"</th><th>"Remove"</th></tr></thead>
                                <tbody>
                                    {keys.into_iter().map(|k| {
                                        let label = format!("Remove passkey {}", k.name);
                                        let field = format!("pk-remove-{}", k.id);
                                        view! {
                                            <tr>
                                                <td>{k.name.clone()}</td>
                                                <td><crate::ui::time::Time at=k.created_at /></td>
                                                <td>{match k.last_used_at {
                                                    Some(at) => view! { <crate::ui::time::Time at /> }.into_any(),
                                                    None => view! { "never" }.into_any(),
                                                }}</td>
                                                <td>
                                                    <ActionForm action=remove>
                                                        <input type="hidden" name="passkey_id" value=k.id.clone() />
                                                        <label for=field.clone()>{format!("Current password to remove {}", k.name)}</label>
                                                        <input id=field name="current_password" type="password" autocomplete="current-password" required maxlength="128" />
                                                        <button type="submit" class="danger">{label}</button>
                                                    </ActionForm>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(error) => view! { <ErrorNote error /> }.into_any(),
                    }
                })}
            </Transition>
            {action_error(remove.value())}
            {move || remove.value().get().and_then(Result::ok).map(|_| view! {
                <p role="status">"The passkey was removed. Your other sessions were signed out."</p>
            })}
            <form on:submit=move |ev| {
                ev.prevent_default();
                add.dispatch((name.get_untracked(), password.get_untracked()));
            }>
                <label for="pk-name">"Passkey name"</label>
                <input id="pk-name" type="text" required maxlength="64" placeholder="Laptop"
                    prop:value=move || name.get() on:input=move |ev| name.set(event_target_value(&ev)) />
                <label for="pk-password">"Current password"</label>
                <input id="pk-password" type="password" autocomplete="current-password" required maxlength="128"
                    prop:value=move || password.get() on:input=move |ev| password.set(event_target_value(&ev)) />
                {action_error(add.value())}
                <button type="submit" disabled=move || !ready.get() || adding.get()>"Add a passkey"</button>
            </form>
            {move || add.value().get().and_then(Result::ok).map(|k| view! {
                <p role="status">{format!("Passkey \"{}\" added. Your other sessions were signed out.", k.name)}</p>
            })}
        </section>
    }
}

/// "Sign in with a passkey" on the sign-in page: no email, no password.
#[component]
pub fn PasskeySignIn() -> impl IntoView {
    let auth = use_auth();
    let sign_in = Action::new_local(|_: &()| async move {
        let options = start_passkey_sign_in().await?;
        let credential = browser::get(options).await.map_err(browser_error)?;
        finish_passkey_sign_in(credential).await
    });
    Effect::new(move |_| {
        if let Some(Ok(())) = sign_in.value().get() {
            auth.user.refetch();
        }
    });
    let pending = sign_in.pending();
    let ready = hydrated();
    view! {
        <button type="button" class="secondary" disabled=move || !ready.get() || pending.get()
            on:click=move |_| { sign_in.dispatch(()); }>"Sign in with a passkey"</button>
        {action_error(sign_in.value())}
    }
}

/// "Use a passkey" at the second step.
#[component]
pub fn PasskeySecondFactor() -> impl IntoView {
    let auth = use_auth();
    let verify = Action::new_local(|_: &()| async move {
        let options = start_passkey_second_factor().await?;
        let credential = browser::get(options).await.map_err(browser_error)?;
        verify_passkey_second_factor(credential).await
    });
    Effect::new(move |_| {
        if let Some(Ok(())) = verify.value().get() {
            auth.user.refetch();
        }
    });
    let pending = verify.pending();
    let ready = hydrated();
    view! {
        <button type="button" disabled=move || !ready.get() || pending.get()
            on:click=move |_| { verify.dispatch(()); }>"Use a passkey"</button>
        {action_error(verify.value())}
    }
}
