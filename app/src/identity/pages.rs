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
                <button type="submit" disabled=move || pending.get()>"Create account"</button>
            </ActionForm>
            <p class="muted">"Already have an account? " <A href="/sign-in">"Sign in"</A></p>
        </section>
    }
}
