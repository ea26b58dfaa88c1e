//! Sign-in and sign-up pages.

use crate::ui::{action_error, use_auth};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

/// A password input with a show/hide toggle (a client-side interaction once hydrated).
#[component]
fn PasswordField(#[prop(into)] autocomplete: String) -> impl IntoView {
    let (visible, set_visible) = signal(false);
    view! {
        <label for="password">"Password"</label>
        <div class="password">
            <input
                id="password"
                name="password"
                type=move || if visible.get() { "text" } else { "password" }
                autocomplete=autocomplete
                required
                minlength="8"
                maxlength="128"
            />
            <button
                type="button"
                class="secondary"
                aria-pressed=move || visible.get().to_string()
                on:click=move |_| set_visible.update(|v| *v = !*v)
            >
                {move || if visible.get() { "Hide password" } else { "Show password" }}
            </button>
        </div>
    }
}

#[component]
pub fn SignInPage() -> impl IntoView {
    let auth = use_auth();
    let pending = auth.sign_in.pending();
    view! {
        <Title text="Sign in" />
        <section class="card narrow">
            <h1>"Sign in to Keyward"</h1>
            <ActionForm action=auth.sign_in>
                <label for="email">"Email"</label>
                <input id="email" name="email" type="email" autocomplete="username" required maxlength="254" />
                <PasswordField autocomplete="current-password" />
                {action_error(auth.sign_in.value())}
                <button type="submit" disabled=move || pending.get()>"Sign in"</button>
            </ActionForm>
            <super::passkey_pages::PasskeySignIn />
            <p class="muted">"No account? " <A href="/sign-up">"Sign up"</A></p>
        </section>
    }
}

#[component]
pub fn SignUpPage() -> impl IntoView {
    let auth = use_auth();
    let pending = auth.sign_up.pending();
    view! {
        <Title text="Sign up" />
        <section class="card narrow">
            <h1>"Create your account"</h1>
            <ActionForm action=auth.sign_up>
                <label for="email">"Email"</label>
                <input id="email" name="email" type="email" autocomplete="email" required maxlength="254" />
                <label for="display_name">"Display name"</label>
                <input id="display_name" name="display_name" type="text" autocomplete="name" required maxlength="100" />
                <PasswordField autocomplete="new-password" />
                <p class="hint">"At least 8 characters. Long passphrases are best."</p>
                {action_error(auth.sign_up.value())}
                {move || auth.sign_up.value().get().and_then(Result::ok).map(|_| view! {
                    <p role="status">"Check your inbox: we sent you a link to confirm your email address. Open it to finish creating your account."</p>
                })}
                <button type="submit" disabled=move || pending.get()>"Create account"</button>
            </ActionForm>
            <p class="muted">"Already have an account? " <A href="/sign-in">"Sign in"</A></p>
        </section>
    }
}

/// The user's own profile: display name, password, email address.
/// The time zone every date and chart is shown in, and the theme.
#[component]
fn Preferences(time_zone: Option<String>, theme: super::Theme) -> impl IntoView {
    let auth = use_auth();
    let save = auth.preferences;
    // The browser's list of zones, for suggestions (the server checks the name either way).
    let zones = RwSignal::new(Vec::<String>::new());
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let list = js_sys::Reflect::get(&js_sys::global(), &"Intl".into())
            .and_then(|intl| {
                js_sys::Reflect::get(&intl, &"supportedValuesOf".into()).map(|f| (intl, f))
            })
            .ok()
            .and_then(|(intl, f)| {
                use wasm_bindgen::JsCast;
                f.dyn_into::<js_sys::Function>()
                    .ok()?
                    .call1(&intl, &"timeZone".into())
                    .ok()
            })
            .map(|v| {
                js_sys::Array::from(&v)
                    .iter()
                    .filter_map(|z| z.as_string())
                    .collect()
            })
            .unwrap_or_default();
        zones.set(list);
    });
    let now = move || {
        // Re-rendered after each save, so the sample shows the zone just chosen.
        save.version().get();
        crate::ui::time::now_rfc3339()
    };
    view! {
        <section class="card" role="region" aria-label="Preferences">
            <h2>"Preferences"</h2>
            <ActionForm action=save>
                <label for="pref-zone">"Time zone"</label>
                <input id="pref-zone" name="time_zone" type="text" list="time-zones" maxlength="64" autocomplete="off"
                    placeholder="Your browser's time zone" value=time_zone.unwrap_or_default() />
                <datalist id="time-zones">
                    {move || zones.get().into_iter().map(|z| view! { <option value=z></option> }).collect_view()}
                </datalist>
                <p class="hint">"An IANA name such as Europe/Paris; empty: your browser's. Every date and chart follows it. Now: "
                    {move || view! { <crate::ui::time::Time at=now() /> }}
                </p>
                <label for="pref-theme">"Theme"</label>
                <select id="pref-theme" name="theme">
                    {super::Theme::ALL.into_iter().map(|t| view! {
                        <option value=t.as_str() selected=t == theme>{t.label()}</option>
                    }).collect_view()}
                </select>
                {action_error(save.value())}
                {move || save.value().get().and_then(Result::ok).map(|_| view! { <p role="status">"Preferences saved."</p> })}
                <button type="submit">"Save preferences"</button>
            </ActionForm>
        </section>
    }
}

/// Where the user is signed in, the current session marked; sign out any other, or all.
#[component]
fn Sessions() -> impl IntoView {
    let revoke = ServerAction::<super::api::RevokeSession>::new();
    let others = ServerAction::<super::api::RevokeOtherSessions>::new();
    let sessions = Resource::new(
        move || (revoke.version().get(), others.version().get()),
        |_| super::api::my_sessions(),
    );
    view! {
        <section class="card" role="region" aria-label="Sessions">
            <h2>"Sessions"</h2>
            <p class="muted">"Where your account is signed in. Signing a session out ends it at once."</p>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match sessions.await {
                        Ok(list) => {
                            let more = list.iter().any(|s| !s.current);
                            view! {
                                <table aria-label="Your sessions">
                                    <thead><tr>
                                        <th scope="col">"Browser and device"</th>
                                        <th scope="col">"Address"</th>
                                        <th scope="col">"Signed in"</th>
                                        <th scope="col">"Last seen"</th>
                                        <th scope="col"><span class="sr-only">"Action"</span></th>
                                    </tr></thead>
                                    <tbody>
                                        {list.into_iter().map(|s| {
                                            let label = format!("Sign out {} ({})", s.device, s.ip.clone().unwrap_or_else(|| "unknown address".into()));
                                            view! {
                                                <tr>
                                                    <td>{s.device.clone()} {s.current.then(|| view! { " " <span class="badge">"This session"</span> })}</td>
                                                    <td>{s.ip.clone().unwrap_or_else(|| "—".into())}</td>
                                                    <td><crate::ui::time::Time at=s.signed_in_at.clone() /></td>
                                                    <td><crate::ui::time::Time at=s.last_seen_at.clone() /></td>
                                                    <td>{(!s.current).then(|| view! {
                                                        <ActionForm action=revoke>
                                                            <input type="hidden" name="handle" value=s.handle.clone() />
                                                            <button type="submit" aria-label=label>"Sign out"</button>
                                                        </ActionForm>
                                                    })}</td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                                {more.then(|| view! {
                                    <ActionForm action=others>
                                        <button type="submit">"Sign out all other sessions"</button>
                                    </ActionForm>
                                })}
                            }
                            .into_any()
                        }
                        Err(error) => view! { <crate::ui::ErrorNote error /> }.into_any(),
                    }
                })}
            </Transition>
            {action_error(revoke.value())}
            {action_error(others.value())}
            {move || revoke.value().get().and_then(Result::ok).map(|_| view! { <p role="status">"Session signed out."</p> })}
            {move || others.value().get().and_then(Result::ok).map(|n| view! { <p role="status">{format!("{n} other session(s) signed out.")}</p> })}
        </section>
    }
}

/// The user's own activity log.
#[component]
fn Activity() -> impl IntoView {
    let entries = Resource::new(|| (), |_| super::api::my_activity());
    view! {
        <section class="card" role="region" aria-label="Activity">
            <h2>"Activity"</h2>
            <p class="muted">"Your sign-ins and actions, and what anyone else did to your account, newest first (the last 100)."</p>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match entries.await {
                        Ok(list) => view! {
                            <table aria-label="Your activity">
                                <thead><tr>
                                    <th scope="col">"When"</th>
                                    <th scope="col">"Action"</th>
                                    <th scope="col">"Address"</th>
                                    <th scope="col">"By"</th>
                                </tr></thead>
                                <tbody>
                                    {list.into_iter().map(|e| view! {
                                        <tr>
                                            <td><crate::ui::time::Time at=e.at.clone() /></td>
                                            <td><code>{e.action.clone()}</code></td>
                                            <td>{e.ip.clone().unwrap_or_else(|| "—".into())}</td>
                                            <td>{e.by.clone().unwrap_or_else(|| "you".into())}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }
                        .into_any(),
                        Err(error) => view! { <crate::ui::ErrorNote error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
pub fn ProfilePage() -> impl IntoView {
    let auth = use_auth();
    let name = ServerAction::<super::api::UpdateProfile>::new();
    let password = ServerAction::<super::api::ChangePassword>::new();
    let email = ServerAction::<super::api::RequestEmailChange>::new();
    let delete = ServerAction::<super::api::DeleteAccount>::new();
    // A deleted account is signed out: the whole console starts over at the sign-in page.
    Effect::new(move |_| {
        if let Some(Ok(())) = delete.value().get() {
            let _ = window().location().set_href("/sign-in");
        }
    });
    // A new name shows in the top bar at once.
    Effect::new(move |_| {
        if let Some(Ok(_)) = name.value().get() {
            auth.user.refetch();
        }
    });
    view! {
        <Title text="Profile" />
        <h1>"Your profile"</h1>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match auth.user.await {
                    Ok(Some(user)) => view! {
                        <section class="card" role="region" aria-label="Profile">
                            <h2>"Profile"</h2>
                            <p>"Signed in as " <strong>{user.email.clone()}</strong></p>
                            <ActionForm action=name>
                                <label for="profile-name">"Display name"</label>
                                <input id="profile-name" name="display_name" type="text" autocomplete="name" required maxlength="100" value=user.display_name.clone() />
                                {action_error(name.value())}
                                {move || name.value().get().and_then(Result::ok).map(|n| view! { <p role="status">{format!("Saved: {n}")}</p> })}
                                <button type="submit">"Save name"</button>
                            </ActionForm>
                        </section>
                        <Preferences time_zone=user.time_zone.clone() theme=user.theme />
                    }
                    .into_any(),
                    Ok(None) => view! { <leptos_router::components::Redirect path="/sign-in" /> }.into_any(),
                    Err(error) => view! { <crate::ui::ErrorNote error /> }.into_any(),
                }
            })}
        </Transition>
        <super::two_factor_pages::TwoFactor />
        <super::passkey_pages::Passkeys />
        <Sessions />
        <Activity />
        <section class="card" role="region" aria-label="Change password">
            <h2>"Change password"</h2>
            <p class="muted">"Your other sessions are signed out."</p>
            <ActionForm action=password>
                <label for="pw-current">"Current password"</label>
                <input id="pw-current" name="current_password" type="password" autocomplete="current-password" required maxlength="128" />
                <label for="pw-new">"New password"</label>
                <input id="pw-new" name="new_password" type="password" autocomplete="new-password" required minlength="8" maxlength="128" />
                {action_error(password.value())}
                {move || password.value().get().and_then(Result::ok).map(|_| view! { <p role="status">"Password changed. Your other sessions were signed out."</p> })}
                <button type="submit">"Change password"</button>
            </ActionForm>
        </section>
        <section class="card" role="region" aria-label="Change email">
            <h2>"Change email"</h2>
            <p class="muted">"We send a link to the new address; nothing changes until you open it. Your current address is told."</p>
            <ActionForm action=email>
                <label for="email-new">"New email"</label>
                <input id="email-new" name="new_email" type="email" autocomplete="email" required maxlength="254" />
                <label for="email-password">"Current password"</label>
                <input id="email-password" name="current_password" type="password" autocomplete="current-password" required maxlength="128" />
                {action_error(email.value())}
                {move || email.value().get().and_then(Result::ok).map(|_| view! { <p role="status">"Check the new address for a confirmation link."</p> })}
                <button type="submit">"Send confirmation link"</button>
            </ActionForm>
        </section>
        <section class="card danger-zone" role="region" aria-label="Delete account">
            <h2>"Delete account"</h2>
            <p class="muted">"Your account is anonymized and signed out everywhere; your personal organization's keys and your personal tokens are revoked. Transfer the ownership of any organization you alone own first. This cannot be undone."</p>
            <ActionForm action=delete>
                <label for="delete-password">"Current password"</label>
                <input id="delete-password" name="current_password" type="password" autocomplete="current-password" required maxlength="128" />
                {action_error(delete.value())}
                <button type="submit" class="danger">"Delete my account"</button>
            </ActionForm>
        </section>
    }
}

/// Confirming a new email address from its emailed link (`/confirm-email?token=…`).
#[component]
pub fn ConfirmEmailPage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let token = move || query.with(|q| q.get("token").unwrap_or_default());
    let confirm = ServerAction::<super::api::ConfirmEmailChange>::new();
    view! {
        <Title text="Confirm your email" />
        <section class="card narrow">
            <h1>"Confirm your new email address"</h1>
            <ActionForm action=confirm>
                <input type="hidden" name="token" value=token />
                {action_error(confirm.value())}
                {move || confirm.value().get().and_then(Result::ok).map(|e| view! { <p role="status">{format!("Your address is now {e}. Use it to sign in.")}</p> })}
                <button type="submit">"Confirm new email address"</button>
            </ActionForm>
        </section>
    }
}

/// Confirming a sign-up's address from its emailed link (`/verify-email?token=…`), with the
/// password chosen at sign-up; signs in.
#[component]
pub fn VerifyEmailPage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let token = move || query.with(|q| q.get("token").unwrap_or_default());
    let confirm = ServerAction::<super::api::ConfirmSignUp>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = confirm.value().get() {
            // Signed in: the whole console starts over, menus and all.
            let _ = window().location().set_href("/");
        }
    });
    view! {
        <Title text="Confirm your email" />
        <section class="card narrow">
            <h1>"Confirm your email address"</h1>
            <p>"Enter the password you chose when you signed up."</p>
            <ActionForm action=confirm>
                <input type="hidden" name="token" value=token />
                <PasswordField autocomplete="current-password" />
                {action_error(confirm.value())}
                <button type="submit">"Confirm and sign in"</button>
            </ActionForm>
        </section>
    }
}
