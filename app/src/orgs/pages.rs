//! The signed-in home page: the user's organizations and role in each.

use super::api::my_organizations;
use crate::ui::{use_auth, ErrorNote};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;

#[component]
pub fn HomePage() -> impl IntoView {
    let auth = use_auth();
    view! {
        <Title text="Home" />
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match auth.user.await {
                    Ok(Some(user)) => view! {
                        <h1>"Welcome, " {user.display_name}</h1>
                        <Organizations />
                    }
                    .into_any(),
                    Ok(None) => view! { <Redirect path="/sign-in" /> }.into_any(),
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Organizations() -> impl IntoView {
    let orgs = Resource::new(|| (), |_| my_organizations());
    view! {
        <section class="card">
            <h2>"Your organizations"</h2>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match orgs.await {
                        Ok(orgs) => view! {
                            <table>
                                <thead>
                                    <tr><th scope="col">"Organization"</th><th scope="col">"Kind"</th><th scope="col">"Your role"</th><th scope="col">"Permissions"</th></tr>
                                </thead>
                                <tbody>
                                    {orgs.into_iter().map(|o| view! {
                                        <tr>
                                            <td>{o.name}</td>
                                            <td>{o.kind}</td>
                                            <td><span class="badge">{o.role}</span></td>
                                            <td class="muted">{o.permissions.join(", ")}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }
                        .into_any(),
                        Err(error) => view! { <ErrorNote error /> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
