//! Cross-cutting UI: the layout and navigation, the signed-in user's context, error display.

pub mod background;
pub mod time;

use crate::access::Permission;
use crate::error::AppError;
use crate::identity::api::{
    current_user, SetPreferences, SignIn, SignOut, SignUp, VerifySecondFactor,
};
use crate::identity::{SignedInUser, Theme};
use leptos::prelude::*;
use leptos_router::components::A;

/// The signed-in user (refetched whenever a sign-in, sign-up, sign-out or change of
/// preferences completes) and the actions that change it.
#[derive(Clone, Copy)]
pub struct Auth {
    pub user: Resource<Result<Option<SignedInUser>, AppError>>,
    pub sign_in: ServerAction<SignIn>,
    /// The second sign-in step.
    pub verify: ServerAction<VerifySecondFactor>,
    pub sign_up: ServerAction<SignUp>,
    pub sign_out: ServerAction<SignOut>,
    pub preferences: ServerAction<SetPreferences>,
}

/// Provides [`Auth`], and applies the signed-in user's preferences: their time zone to every
/// [`time::Time`] and chart, their theme to the page (and its cookie, so that the server
/// renders the next page in it).
pub fn provide_auth() {
    let sign_in = ServerAction::<SignIn>::new();
    let verify = ServerAction::<VerifySecondFactor>::new();
    let sign_up = ServerAction::<SignUp>::new();
    let sign_out = ServerAction::<SignOut>::new();
    let preferences = ServerAction::<SetPreferences>::new();
    let user = Resource::new(
        move || {
            (
                sign_in.version().get(),
                verify.version().get(),
                sign_up.version().get(),
                sign_out.version().get(),
                preferences.version().get(),
            )
        },
        |_| current_user(),
    );
    let clock = time::use_clock();
    Effect::new(move |_| {
        if let Some(Ok(user)) = user.get() {
            clock
                .zone
                .set(user.as_ref().and_then(|u| u.time_zone.clone()));
            if let Some(u) = user {
                apply_theme(u.theme);
            }
        }
    });
    provide_context(Auth {
        user,
        sign_in,
        verify,
        sign_up,
        sign_out,
        preferences,
    });
}

/// Puts `theme` on `<html data-theme>` (the stylesheet follows it) and in its cookie.
pub fn apply_theme(theme: Theme) {
    if let Some(root) = document().document_element() {
        let _ = root.set_attribute("data-theme", theme.as_str());
    }
    let cookie = format!(
        "{}={}; path=/; max-age=31536000; samesite=lax",
        crate::identity::THEME_COOKIE,
        theme.as_str()
    );
    let _ = js_sys_set_cookie(&cookie);
}

#[cfg(feature = "hydrate")]
fn js_sys_set_cookie(cookie: &str) -> Result<bool, wasm_bindgen::JsValue> {
    js_sys::Reflect::set(
        &document(),
        &wasm_bindgen::JsValue::from_str("cookie"),
        &wasm_bindgen::JsValue::from_str(cookie),
    )
}

#[cfg(not(feature = "hydrate"))]
fn js_sys_set_cookie(_cookie: &str) -> Result<bool, ()> {
    Ok(false)
}

pub fn use_auth() -> Auth {
    expect_context::<Auth>()
}

/// Marks `<body data-hydrated>` once the WASM app has taken over the page (effects only run
/// in the browser). Browser tests wait for it before interacting.
pub fn mark_hydrated() {
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
}

/// Header, navigation (only what the user may use) and the page.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let auth = use_auth();
    let stop = ServerAction::<crate::admin::api::StopImpersonation>::new();
    // Back to the administrator's own console, menus and all.
    Effect::new(move |_| {
        if let Some(Ok(())) = stop.value().get() {
            let _ = window().location().set_href("/admin/users");
        }
    });
    view! {
        <header class="topbar">
            <A href="/" attr:class="brand">"Keyward"</A>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    let user = auth.user.await.ok().flatten();
                    view! { <Nav user /> }
                })}
            </Transition>
        </header>
        <main class="page">
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    let user = auth.user.await.ok().flatten();
                    let enrol = user.as_ref().is_some_and(|u| u.must_enrol_two_factor);
                    let acting = user.and_then(|u| u.impersonation.map(|i| (u.email, i)));
                    view! {
                        {enrol.then(|| view! {
                            <p role="alert" class="banner">
                                "Your organization requires two-factor authentication. "
                                <A href="/two-factor">"Set it up now"</A>
                            </p>
                        })}
                        {acting.map(|(email, i)| view! {
                            <div role="region" aria-label="Impersonation" class="banner">
                                <p>
                                    {format!("{} is acting as {email}, until ", i.by)}
                                    <time::Time at=i.until />
                                    ". Everything is recorded with both names."
                                </p>
                                {action_error(stop.value())}
                                <ActionForm action=stop>
                                    <button type="submit">"Stop impersonating"</button>
                                </ActionForm>
                            </div>
                        })}
                    }
                })}
            </Transition>
            {children()}
        </main>
    }
}

#[component]
fn Nav(user: Option<SignedInUser>) -> impl IntoView {
    let auth = use_auth();
    match user {
        None => view! {
            <nav aria-label="Main">
                <A href="/docs/api">"API docs"</A>
                <A href="/sign-in">"Sign in"</A>
                <A href="/sign-up">"Sign up"</A>
            </nav>
        }
        .into_any(),
        Some(user) => {
            // Exactly what the user may use: organization menus follow their effective
            // permissions in the active organization, admin menus the system organization's.
            // The server refuses everything else regardless.
            let admin = user.can(Permission::UsersRead);
            let may = |p: &str| user.may(p);
            let (keys, usage, members, roles, settings, audit) = (
                may("keys:read"),
                may("usage:read"),
                may("members:read"),
                may("roles:read"),
                may("org:write"),
                may("audit:read"),
            );
            view! {
                <nav aria-label="Main">
                    <A href="/">"Home"</A>
                    {keys.then(|| view! { <A href="/keys">"API keys"</A> })}
                    {usage.then(|| view! { <A href="/usage">"Usage"</A> })}
                    {members.then(|| view! { <A href="/members">"Members"</A> })}
                    {roles.then(|| view! { <A href="/roles">"Roles"</A> })}
                    {settings.then(|| view! { <A href="/settings">"Settings"</A> })}
                    {audit.then(|| view! { <A href="/audit">"Audit log"</A> })}
                    {audit.then(|| view! { <A href="/security">"Security"</A> })}
                    <A href="/plans">"Plans"</A>
                    <A href="/docs/api">"API docs"</A>
                    {admin.then(|| view! {
                        <A href="/admin/users">"Users"</A>
                        <A href="/admin/outbox">"Email outbox"</A>
                    })}
                </nav>
                <OrgSwitcher organizations=user.organizations.clone() />
                <div class="whoami">
                    <crate::notify::pages::Bell />
                    <A href="/profile">{user.display_name.clone()}</A>
                    <ActionForm action=auth.sign_out>
                        <button type="submit" class="link">"Sign out"</button>
                    </ActionForm>
                </div>
            }
            .into_any()
        }
    }
}

/// The active organization, switchable: the page reloads so that menus, lists and charts all
/// follow the new one.
#[component]
fn OrgSwitcher(organizations: Vec<crate::identity::OrgChoice>) -> impl IntoView {
    let switch = ServerAction::<crate::orgs::api::SwitchOrganization>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = switch.value().get() {
            let _ = window().location().reload();
        }
    });
    (organizations.len() > 1).then(|| {
        view! {
            <select
                class="org-switcher"
                aria-label="Active organization"
                on:change=move |ev| {
                    switch.dispatch(crate::orgs::api::SwitchOrganization {
                        organization_id: event_target_value(&ev),
                    });
                }
            >
                {organizations
                    .into_iter()
                    .map(|o| view! { <option value=o.organization_id>{o.name}</option> })
                    .collect_view()}
            </select>
            {action_error(switch.value())}
        }
    })
}

/// A button that copies `text` to the clipboard and says so once the browser has: "Copied",
/// or "Copy failed" where the browser refuses (the clipboard is missing outside secure
/// contexts: a plain-HTTP address that is not loopback), so that nobody leaves believing a
/// secret is on their clipboard when it is not.
#[component]
pub fn CopyButton(#[prop(into)] label: String, text: String) -> impl IntoView {
    // `None`: not tried yet.
    let copied = RwSignal::new(None::<bool>);
    // Read by the click handler, which only the browser's build has.
    #[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
    let text = StoredValue::new(text);
    view! {
        <button
            type="button"
            class="secondary"
            aria-label=label
            on:click=move |_| {
                #[cfg(feature = "hydrate")]
                leptos::task::spawn_local(async move {
                    use wasm_bindgen::JsCast;
                    let clipboard = js_sys::Reflect::get(&window().navigator(), &"clipboard".into())
                        .ok()
                        .and_then(|c| c.dyn_into::<web_sys::Clipboard>().ok());
                    let ok = match clipboard {
                        Some(c) => wasm_bindgen_futures::JsFuture::from(c.write_text(&text.get_value()))
                            .await
                            .is_ok(),
                        None => false,
                    };
                    let _ = copied.try_set(Some(ok));
                });
            }
        >
            {move || match copied.get() {
                None => "Copy",
                Some(true) => "Copied",
                Some(false) => "Copy failed: select the text and copy it",
            }}
        </button>
        // The button's label names what it copies; the outcome is said here, to screen
        // readers too.
        <span class="sr-only" role="status">
            {move || match copied.get() {
                None => "",
                Some(true) => "Copied to the clipboard",
                Some(false) => "Copy failed: select the text and copy it",
            }}
        </span>
    }
}

/// `n` and its noun, singular for exactly one: "1 request", "0 requests", "2 requests".
pub fn count(n: impl Into<i128>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A readable error for the user (never internal details: those stay in the server log).
#[component]
pub fn ErrorNote(error: AppError) -> impl IntoView {
    view! { <p role="alert" class="error">{error.message}</p> }
}

/// Shows the error of the last run of an action, if it failed.
pub fn action_error<T: Clone + Send + Sync + 'static>(
    value: impl Get<Value = Option<Result<T, AppError>>> + Send + Sync + 'static,
) -> impl IntoView {
    move || {
        value
            .get()
            .and_then(Result::err)
            .map(|error| view! { <ErrorNote error /> })
    }
}

#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <leptos_meta::Title text="Page not found" />
        <h1>"Page not found"</h1>
        <p><A href="/">"Back to the console"</A></p>
    }
}

/// A labelled `<select>` for a list's filter bar.
pub fn filter_select(
    id: &'static str,
    label: &'static str,
    options: &'static [(&'static str, &'static str)],
    on_change: impl FnMut(leptos::ev::Event) + 'static,
) -> impl IntoView {
    view! {
        <label for=id>{label}</label>
        <select id=id on:change=on_change>
            {options.iter().map(|(value, text)| view! { <option value=*value>{*text}</option> }).collect_view()}
        </select>
    }
}

/// A query-string value, percent-encoded (everything but the unreserved characters).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// False until the component that calls it runs in the browser (effects run only there):
/// a control whose work needs the app, such as a WebAuthn prompt, stays disabled until its
/// handler is bound, so an early click is not lost.
pub fn hydrated() -> Signal<bool> {
    let ready = RwSignal::new(false);
    Effect::new(move |_| ready.set(true));
    ready.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_singular_for_exactly_one() {
        assert_eq!(count(0, "request", "requests"), "0 requests");
        assert_eq!(count(1, "request", "requests"), "1 request");
        assert_eq!(count(2, "entry", "entries"), "2 entries");
        assert_eq!(count(-1, "row", "rows"), "-1 rows");
    }
}
