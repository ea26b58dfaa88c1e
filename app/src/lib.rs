//! Keyward's application: UI, server functions and domain types, shared by the WASM client
//! (`hydrate`) and the axum host (`ssr`).
#![recursion_limit = "256"]

pub mod access;
pub mod admin;
pub mod audit;
pub mod docs;
pub mod error;
pub mod identity;
pub mod keys;
pub mod notify;
pub mod orgs;
pub mod security;
#[cfg(feature = "ssr")]
pub mod ssr;
pub mod teams;
pub mod ui;
pub mod usage;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    lazy_route, path, Lazy, LazyRoute,
};

/// Pages whose code the browser fetches when they are first visited (cargo-leptos `--split`
/// cuts each into its own WASM chunk), so the first load of the console carries only the
/// shell, sign-in and the home page. The server renders them like any other page.
macro_rules! lazy_pages {
    ($($route:ident => $page:path),* $(,)?) => {$(
        #[doc = concat!("The lazily loaded route of `", stringify!($page), "`.")]
        pub struct $route;

        #[lazy_route]
        impl LazyRoute for $route {
            fn data() -> Self {
                $route
            }

            fn view(_this: Self) -> AnyView {
                $page().into_any()
            }
        }
    )*};
}

lazy_pages! {
    KeysRoute => keys::pages::KeysPage,
    KeyRoute => keys::pages::KeyPage,
    UsersRoute => admin::pages::UsersPage,
    PlansRoute => usage::pages::PlansPage,
    UsageRoute => usage::pages::UsagePage,
    ErrorsRoute => usage::pages::ErrorsPage,
    NotificationsRoute => notify::pages::NotificationsPage,
    OutboxRoute => notify::pages::OutboxPage,
    ApiDocsRoute => docs::ApiDocsPage,
    RolesRoute => access::pages::RolesPage,
    MembersRoute => orgs::pages::MembersPage,
    InviteRoute => orgs::pages::InvitePage,
    ProfileRoute => identity::pages::ProfilePage,
    ConfirmEmailRoute => identity::pages::ConfirmEmailPage,
    VerifyEmailRoute => identity::pages::VerifyEmailPage,
    SetPasswordRoute => admin::pages::SetPasswordPage,
    SettingsRoute => orgs::pages::SettingsPage,
    AuditRoute => audit::pages::AuditPage,
    SecurityRoute => security::pages::SecurityPage,
    SecondFactorRoute => identity::two_factor_pages::SecondFactorPage,
    TwoFactorRoute => identity::two_factor_pages::TwoFactorPage,
}

/// The HTML document the server renders around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    ssr::set_page_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en" data-theme=theme_of_request()>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <HashedStylesheet options=options.clone() id="leptos" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The theme the request's cookie names (`system` without one), so that the page arrives in
/// the user's colours before the app has loaded.
fn theme_of_request() -> &'static str {
    #[cfg(feature = "ssr")]
    {
        let cookies = use_context::<http::request::Parts>()
            .and_then(|p| {
                p.headers
                    .get(http::header::COOKIE)
                    .and_then(|v| v.to_str().ok().map(str::to_owned))
            })
            .unwrap_or_default();
        let wanted = cookies.split(';').find_map(|c| {
            c.trim()
                .strip_prefix(identity::THEME_COOKIE)
                .and_then(|v| v.strip_prefix('='))
                .and_then(identity::Theme::parse)
        });
        wanted.unwrap_or_default().as_str()
    }
    #[cfg(not(feature = "ssr"))]
    {
        identity::Theme::System.as_str()
    }
}

/// The console.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    ui::time::provide_clock();
    ui::provide_auth();
    notify::pages::provide_notifications();
    ui::mark_hydrated();

    view! {
        <Title formatter=|t: String| if t.is_empty() { "Keyward".to_string() } else { format!("{t} · Keyward") } />
        <Router>
            <ui::Layout>
                <Routes fallback=ui::NotFound>
                    <Route path=path!("/") view=orgs::pages::HomePage />
                    <Route path=path!("/sign-in") view=identity::pages::SignInPage />
                    <Route path=path!("/sign-up") view=identity::pages::SignUpPage />
                    <Route path=path!("/keys") view={Lazy::<KeysRoute>::new()} />
                    <Route path=path!("/keys/:org/:id") view={Lazy::<KeyRoute>::new()} />
                    <Route path=path!("/admin/users") view={Lazy::<UsersRoute>::new()} />
                    <Route path=path!("/plans") view={Lazy::<PlansRoute>::new()} />
                    <Route path=path!("/usage") view={Lazy::<UsageRoute>::new()} />
                    <Route path=path!("/usage/errors") view={Lazy::<ErrorsRoute>::new()} />
                    <Route path=path!("/notifications") view={Lazy::<NotificationsRoute>::new()} />
                    <Route path=path!("/admin/outbox") view={Lazy::<OutboxRoute>::new()} />
                    <Route path=path!("/docs/api") view={Lazy::<ApiDocsRoute>::new()} />
                    <Route path=path!("/roles") view={Lazy::<RolesRoute>::new()} />
                    <Route path=path!("/members") view={Lazy::<MembersRoute>::new()} />
                    <Route path=path!("/invite") view={Lazy::<InviteRoute>::new()} />
                    <Route path=path!("/profile") view={Lazy::<ProfileRoute>::new()} />
                    <Route path=path!("/confirm-email") view={Lazy::<ConfirmEmailRoute>::new()} />
                    <Route path=path!("/verify-email") view={Lazy::<VerifyEmailRoute>::new()} />
                    <Route path=path!("/set-password") view={Lazy::<SetPasswordRoute>::new()} />
                    <Route path=path!("/settings") view={Lazy::<SettingsRoute>::new()} />
                    <Route path=path!("/audit") view={Lazy::<AuditRoute>::new()} />
                    <Route path=path!("/security") view={Lazy::<SecurityRoute>::new()} />
                    <Route path=path!("/sign-in/verify") view={Lazy::<SecondFactorRoute>::new()} />
                    <Route path=path!("/two-factor") view={Lazy::<TwoFactorRoute>::new()} />
                </Routes>
            </ui::Layout>
        </Router>
    }
}

#[cfg(test)]
mod tests {
    /// The first load stays small as pages are added (`bench/bundle.sh`: 248 KB of a 300 KB
    /// budget): every route but the few the first visit needs is lazy, so a new page cannot
    /// join the main module by accident.
    #[test]
    fn every_page_but_the_first_visit_s_is_a_lazy_route() {
        const EAGER: &[&str] = &["\"/\"", "\"/sign-in\"", "\"/sign-up\""];
        let source = include_str!("lib.rs");
        let routes: Vec<&str> = source
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("<Route path="))
            .collect();
        assert!(routes.len() >= 12, "routes not found: {routes:?}");
        // Every route is on one line of its own, so none escapes the check below.
        let app = source.split("#[cfg(test)]").next().unwrap_or_default();
        assert_eq!(app.matches("path!(").count(), routes.len(), "{routes:?}");
        for route in routes {
            let eager = EAGER.iter().any(|p| route.contains(&format!("path!({p})")));
            assert_eq!(
                route.contains("view={Lazy::<"),
                !eager,
                "{route}: only the first visit's pages are eager; add others to lazy_pages!"
            );
        }
    }
}
