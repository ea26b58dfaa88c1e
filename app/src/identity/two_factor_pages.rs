//! Two-factor authentication pages: the second sign-in step, the guided enrolment an
//! organization can require, and the profile's card.

use super::api::{two_factor_status, ConfirmTotp, DisableTotp, RegenerateRecoveryCodes, StartTotp};
use crate::ui::{action_error, use_auth, ErrorNote};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

/// `/sign-in/verify`: the code after the password.
#[component]
pub fn SecondFactorPage() -> impl IntoView {
    let auth = use_auth();
    let pending = auth.verify.pending();
    let options = Resource::new(|| (), |_| super::passkey_api::second_factor_options());
    let code_form = move || {
        view! {
            <p>"Enter the 6-digit code your authenticator app shows, or one of your recovery codes."</p>
            <ActionForm action=auth.verify>
                <label for="code">"Authentication code"</label>
                <input id="code" name="code" type="text" autocomplete="one-time-code" required maxlength="20" autofocus />
                {action_error(auth.verify.value())}
                <button type="submit" disabled=move || pending.get()>"Verify"</button>
            </ActionForm>
            <p class="muted">"Lost your device? Use a recovery code. " <A href="/sign-in">"Start over"</A></p>
        }
    };
    view! {
        <Title text="Two-factor authentication" />
        <section class="card narrow">
            <h1>"Two-factor authentication"</h1>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let o = options.await.unwrap_or_default();
                    let passkey = o.passkey.then(|| view! {
                        <p>"Confirm with your passkey or security key."</p>
                        <super::passkey_pages::PasskeySecondFactor />
                    });
                    // A code is always offered when there is no passkey (recovery codes, or an
                    // expired sign-in that says so).
                    let code = (o.code || !o.passkey).then(code_form);
                    let start_over = code.is_none().then(|| view! {
                        <p class="muted"><A href="/sign-in">"Start over"</A></p>
                    });
                    view! { {passkey} {code} {start_over} }
                })}
            </Transition>
        </section>
    }
}

/// `/two-factor`: the enrolment an organization requires before anything else.
#[component]
pub fn TwoFactorPage() -> impl IntoView {
    view! {
        <Title text="Set up two-factor authentication" />
        <h1>"Set up two-factor authentication"</h1>
        <p>"A second factor keeps your account safe even if your password leaks: after the password, you enter a code from an app on your phone (such as Google Authenticator, 1Password or Aegis)."</p>
        <TwoFactor />
        <super::passkey_pages::Passkeys />
        <p><A href="/">"Continue to the console"</A></p>
    }
}

/// The codes to keep, shown once.
#[component]
fn RecoveryCodes(codes: Vec<String>) -> impl IntoView {
    view! {
        <div role="status">
            <p><strong>"Save these recovery codes now: they are shown only once."</strong>
                " Each signs you in once if you lose your authenticator app."</p>
            <ul aria-label="Recovery codes" class="recovery-codes">
                {codes.into_iter().map(|c| view! { <li><code>{c}</code></li> }).collect_view()}
            </ul>
        </div>
    }
}

/// On or off, set up, recovery codes, turn off.
#[component]
pub fn TwoFactor() -> impl IntoView {
    let auth = use_auth();
    let start = ServerAction::<StartTotp>::new();
    let confirm = ServerAction::<ConfirmTotp>::new();
    let disable = ServerAction::<DisableTotp>::new();
    let regenerate = ServerAction::<RegenerateRecoveryCodes>::new();
    let status = Resource::new(
        move || {
            (
                confirm.version().get(),
                disable.version().get(),
                regenerate.version().get(),
            )
        },
        |_| two_factor_status(),
    );
    // Turned on: the console's restriction (if any) is lifted, and the set-up is over.
    Effect::new(move |_| {
        if let Some(Ok(_)) = confirm.value().get() {
            start.value().set(None);
            auth.user.refetch();
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(())) = disable.value().get() {
            start.value().set(None);
        }
    });
    let enrolment = move || start.value().get().and_then(Result::ok);
    view! {
        <section class="card" role="region" aria-label="Two-factor authentication">
            <h2>"Two-factor authentication"</h2>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match status.await {
                        Ok(s) => {
                            let required = (!s.required_by.is_empty()).then(|| view! {
                                <p class="hint">{format!("Required by: {}.", s.required_by.join(", "))}</p>
                            });
                            match s.totp_enabled_at {
                                Some(since) => view! {
                                    {required}
                                    <p>"Authenticator app: " <strong>"on"</strong> " since " <crate::ui::time::Time at=since />
                                        {format!(". Recovery codes left: {}.", s.recovery_codes_left)}</p>
                                    <ActionForm action=regenerate>
                                        <label for="tf-regen-password">"Current password"</label>
                                        <input id="tf-regen-password" name="current_password" type="password" autocomplete="current-password" required maxlength="128" />
                                        {action_error(regenerate.value())}
                                        <button type="submit">"Make new recovery codes"</button>
                                    </ActionForm>
                                    <ActionForm action=disable>
                                        <label for="tf-off-password">"Current password"</label>
                                        <input id="tf-off-password" name="current_password" type="password" autocomplete="current-password" required maxlength="128" />
                                        {action_error(disable.value())}
                                        <button type="submit" class="danger">"Turn off two-factor authentication"</button>
                                    </ActionForm>
                                }
                                .into_any(),
                                None => view! {
                                    {required}
                                    <p>"Authenticator app: " <strong>"off"</strong></p>
                                    {move || match enrolment() {
                                        None => view! {
                                            <ActionForm action=start>
                                                <label for="tf-start-password">"Current password"</label>
                                                <input id="tf-start-password" name="current_password" type="password" autocomplete="current-password" required maxlength="128" />
                                                {action_error(start.value())}
                                                <button type="submit">"Set up authenticator app"</button>
                                            </ActionForm>
                                        }
                                        .into_any(),
                                        Some(e) => view! {
                                            <p>"Scan this code with your authenticator app, or type the secret in."</p>
                                            <img src=e.qr_image alt="QR code of the secret, for your authenticator app" width="200" height="200" />
                                            <p>"Secret: " <code aria-label="Secret">{e.secret}</code></p>
                                            <ActionForm action=confirm>
                                                <label for="tf-code">"Code from the app"</label>
                                                <input id="tf-code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required maxlength="7" />
                                                {action_error(confirm.value())}
                                                <button type="submit">"Turn on"</button>
                                            </ActionForm>
                                        }
                                        .into_any(),
                                    }}
                                }
                                .into_any(),
                            }
                        }
                        Err(error) => view! { <ErrorNote error /> }.into_any(),
                    }
                })}
            </Transition>
            {move || confirm.value().get().and_then(Result::ok).map(|codes| view! {
                <p role="status">"Two-factor authentication is on. Your other sessions were signed out."</p>
                <RecoveryCodes codes />
            })}
            {move || regenerate.value().get().and_then(Result::ok).map(|codes| view! { <RecoveryCodes codes /> })}
            {move || disable.value().get().and_then(Result::ok).map(|_| view! {
                <p role="status">"Two-factor authentication is off. Your other sessions were signed out."</p>
            })}
        </section>
    }
}
