//! Keyward's application: UI, server functions and domain types, shared by the WASM client
//! (`hydrate`) and the axum host (`ssr`).
#![recursion_limit = "256"]

pub mod access;
pub mod admin;
pub mod docs;
pub mod error;
pub mod identity;
pub mod keys;
pub mod notify;
pub mod orgs;
#[cfg(feature = "ssr")]
pub mod ssr;
pub mod ui;
pub mod usage;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

/// The HTML document the server renders around the app.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
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

/// The console.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
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
                    <Route path=path!("/keys") view=keys::pages::KeysPage />
                    <Route path=path!("/keys/:org/:id") view=keys::pages::KeyPage />
                    <Route path=path!("/admin/users") view=admin::pages::UsersPage />
                    <Route path=path!("/plans") view=usage::pages::PlansPage />
                    <Route path=path!("/usage") view=usage::pages::UsagePage />
                    <Route path=path!("/usage/errors") view=usage::pages::ErrorsPage />
                    <Route path=path!("/notifications") view=notify::pages::NotificationsPage />
                    <Route path=path!("/admin/outbox") view=notify::pages::OutboxPage />
                    <Route path=path!("/docs/api") view=docs::ApiDocsPage />
                </Routes>
            </ui::Layout>
        </Router>
    }
}
