//! Admin pages.

use super::api::list_users;
use crate::ui::ErrorNote;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn UsersPage() -> impl IntoView {
    let users = Resource::new(|| (), |_| list_users());
    view! {
        <Title text="Users" />
        <h1>"Users"</h1>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match users.await {
                    Ok(users) => view! {
                        <table>
                            <thead>
                                <tr><th scope="col">"Email"</th><th scope="col">"Name"</th><th scope="col">"Status"</th><th scope="col">"Instance role"</th></tr>
                            </thead>
                            <tbody>
                                {users.into_iter().map(|u| view! {
                                    <tr>
                                        <td>{u.email}</td>
                                        <td>{u.display_name}</td>
                                        <td>{u.status}</td>
                                        <td>{u.system_role.unwrap_or_else(|| "—".into())}</td>
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
    }
}
