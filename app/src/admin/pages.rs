//! Admin pages: the instance's users.

use super::api::{
    list_users, user_sessions, CreateUser, DeleteUser, EndUserSession, EndUserSessions,
    ImpersonateUser, ResetUserTwoFactor, SendPasswordReset, SetPasswordFromLink, SetUserStatus,
};
use crate::ui::{action_error, count, filter_select, ErrorNote};
use leptos::prelude::*;
use leptos_meta::Title;

/// The users list's search, filters and page, as the page holds them.
#[derive(Clone, Debug, Default, PartialEq)]
struct Filters {
    q: String,
    status: String,
    role: String,
    page: u32,
}

#[component]
pub fn UsersPage() -> impl IntoView {
    let auth = crate::ui::use_auth();
    let filters = RwSignal::new(Filters {
        page: 1,
        ..Filters::default()
    });
    let create = ServerAction::<CreateUser>::new();
    let status = ServerAction::<SetUserStatus>::new();
    let reset = ServerAction::<SendPasswordReset>::new();
    let delete = ServerAction::<DeleteUser>::new();
    let end = ServerAction::<EndUserSessions>::new();
    let two_factor = ServerAction::<ResetUserTwoFactor>::new();
    let end_one = ServerAction::<EndUserSession>::new();
    // The user whose sessions are shown: (id, email).
    let viewing = RwSignal::new(None::<(String, String)>);
    let users = Resource::new(
        move || {
            (
                filters.get(),
                create.version().get(),
                status.version().get(),
                delete.version().get(),
                end.version().get(),
                two_factor.version().get(),
                end_one.version().get(),
            )
        },
        |(f, ..)| list_users(Some(f.q), Some(f.status), Some(f.role), Some(f.page)),
    );
    // Whether the signed-in user may change users (the server refuses regardless).
    let can_write = move || async move {
        auth.user
            .await
            .ok()
            .flatten()
            .is_some_and(|u| u.instance_permissions.iter().any(|p| p == "users:write"))
    };
    let may_impersonate = move || async move {
        auth.user
            .await
            .ok()
            .flatten()
            .is_some_and(|u| u.can(crate::access::Permission::ImpersonationWrite))
    };
    let set = move |f: fn(&mut Filters, String)| {
        move |ev: leptos::ev::Event| {
            let v = event_target_value(&ev);
            filters.update(|q| {
                f(q, v);
                q.page = 1;
            });
        }
    };
    view! {
        <Title text="Users" />
        <h1>"Users"</h1>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move { may_impersonate().await.then(|| view! { <Impersonate /> }) })}
        </Transition>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move { can_write().await.then(|| view! {
            <section class="card" role="region" aria-label="Create a user">
                <h2>"Create a user"</h2>
                <p class="muted">"The person gets an email with a link to choose their password (it works once, for 72 hours)."</p>
                <ActionForm action=create>
                    <label for="new-user-email">"Email"</label>
                    <input id="new-user-email" name="email" type="email" required maxlength="254" />
                    <label for="new-user-name">"Display name"</label>
                    <input id="new-user-name" name="display_name" required maxlength="100" />
                    <label for="new-user-role">"Instance role"</label>
                    <select id="new-user-role" name="system_role">
                        <option value="">"None (a regular user)"</option>
                        <option value="viewer">"viewer"</option>
                        <option value="member">"member"</option>
                        <option value="admin">"admin"</option>
                        <option value="owner">"owner"</option>
                    </select>
                    {action_error(create.value())}
                    {move || create.value().get().and_then(Result::ok).map(|u| view! { <p role="status">{format!("Created {}. A link to choose a password is on its way.", u.email)}</p> })}
                    <button type="submit">"Create user"</button>
                </ActionForm>
            </section>
            }) })}
        </Transition>
        <div class="toolbar filters" role="search" aria-label="Filter users">
            <label for="user-search">"Search"</label>
            <input id="user-search" type="search" placeholder="email or name" on:input=set(|q, v| q.q = v) />
            {filter_select("user-status", "Status", &[("", "Active and disabled"), ("active", "Active"), ("disabled", "Disabled"), ("deleted", "Deleted")], set(|q, v| q.status = v))}
            {filter_select("user-role", "Instance role", &[("", "Any"), ("owner", "owner"), ("admin", "admin"), ("member", "member"), ("viewer", "viewer"), ("none", "None")], set(|q, v| q.role = v))}
        </div>
        {action_error(status.value())}
        {action_error(reset.value())}
        {action_error(delete.value())}
        {move || reset.value().get().and_then(Result::ok).map(|_| view! { <p role="status">"Password reset link sent."</p> })}
        {move || delete.value().get().and_then(Result::ok).map(|_| view! { <p role="status">"User deleted."</p> })}
        {action_error(end.value())}
        {move || end.value().get().and_then(Result::ok).map(|n| view! { <p role="status">{format!("{n} session(s) signed out.")}</p> })}
        {move || viewing.get().map(|(user_id, email)| view! { <UserSessions user_id email end=end_one close=viewing /> })}
        {action_error(two_factor.value())}
        {move || two_factor.value().get().and_then(Result::ok).map(|_| view! { <p role="status">"Two-factor authentication turned off; the user was signed out and told."</p> })}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match users.await {
                    Ok(page) => {
                        let pages = page.pages();
                        let current = page.page;
                        let write = can_write().await;
                        let rows = page.users.into_iter().map(|u| {
                            let id = u.user_id.clone();
                            let email = u.email.clone();
                            let live = u.status != "deleted";
                            let active = u.status == "active";
                            let (reset_id, reset_email) = (id.clone(), email.clone());
                            let (delete_id, delete_email) = (id.clone(), email.clone());
                            let (end_id, end_email) = (id.clone(), email.clone());
                            let signed_in = u.sessions;
                            let has_factor = u.two_factor;
                            let (factor_id, factor_email) = (id.clone(), email.clone());
                            let (view_id, view_email) = (id.clone(), email.clone());
                            view! {
                                <tr>
                                    <td>{u.email.clone()}</td>
                                    <td>{u.display_name.clone()}</td>
                                    <td><span class="badge">{u.status.clone()}</span></td>
                                    <td>{u.system_role.clone().unwrap_or_else(|| "—".into())}</td>
                                    <td>{signed_in}</td>
                                    <td>{if has_factor { "on" } else { "off" }}</td>
                                    <td>
                                        {(write && live).then(|| view! {
                                            <ActionForm action=status attr:class="inline">
                                                <input type="hidden" name="user_id" value=id.clone() />
                                                <input type="hidden" name="active" value=(!active).to_string() />
                                                <button type="submit" class="secondary">{format!("{} {email}", if active { "Disable" } else { "Enable" })}</button>
                                            </ActionForm>
                                            {active.then(|| view! {
                                                <ActionForm action=reset attr:class="inline">
                                                    <input type="hidden" name="user_id" value=reset_id />
                                                    <button type="submit" class="secondary">{format!("Send password reset to {reset_email}")}</button>
                                                </ActionForm>
                                            })}
                                            {(signed_in > 0).then(|| {
                                                let label = format!("Show sessions of {view_email}");
                                                view! {
                                                    <button type="button" class="secondary"
                                                        on:click=move |_| viewing.set(Some((view_id.clone(), view_email.clone())))>
                                                        {label}</button>
                                                }
                                            })}
                                            {(signed_in > 0).then(|| view! {
                                                <ActionForm action=end attr:class="inline">
                                                    <input type="hidden" name="user_id" value=end_id />
                                                    <button type="submit" class="secondary">{format!("Sign {end_email} out everywhere")}</button>
                                                </ActionForm>
                                            })}
                                            {has_factor.then(|| view! {
                                                <ActionForm action=two_factor attr:class="inline">
                                                    <input type="hidden" name="user_id" value=factor_id />
                                                    <button type="submit" class="secondary">{format!("Turn off two-factor authentication for {factor_email}")}</button>
                                                </ActionForm>
                                            })}
                                            <DeleteUserButton action=delete user_id=delete_id email=delete_email />
                                        })}
                                    </td>
                                </tr>
                            }
                        }).collect_view();
                        view! {
                            <p class="muted">{count(page.total, "user", "users")}</p>
                            <table aria-label="Users">
                                <thead>
                                    <tr><th scope="col">"Email"</th><th scope="col">"Name"</th><th scope="col">"Status"</th><th scope="col">"Instance role"</th><th scope="col">"Sessions"</th><th scope="col">"2FA"</th><th scope="col">"Actions"</th></tr>
                                </thead>
                                <tbody>{rows}</tbody>
                            </table>
                            <nav class="toolbar" aria-label="Pages">
                                <button type="button" class="secondary" disabled=current <= 1 on:click=move |_| filters.update(|f| f.page = f.page.saturating_sub(1).max(1))>"Previous page"</button>
                                <span>{format!("Page {current} of {pages}")}</span>
                                <button type="button" class="secondary" disabled=current >= pages on:click=move |_| filters.update(|f| f.page += 1)>"Next page"</button>
                            </nav>
                        }
                        .into_any()
                    }
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// One user's live sessions, each with "Sign out" for administrators who may.
#[component]
fn UserSessions(
    user_id: String,
    email: String,
    end: ServerAction<EndUserSession>,
    close: RwSignal<Option<(String, String)>>,
) -> impl IntoView {
    let list = Resource::new(
        {
            let user_id = user_id.clone();
            move || (user_id.clone(), end.version().get())
        },
        |(id, _)| user_sessions(id),
    );
    let title = format!("Sessions of {email}");
    view! {
        <section class="card" role="region" aria-label=title.clone()>
            <h2>{title.clone()}</h2>
            {action_error(end.value())}
            {move || end.value().get().and_then(Result::ok).map(|_| view! { <p role="status">"Session signed out."</p> })}
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || {
                    let user_id = user_id.clone();
                    Suspend::new(async move {
                        match list.await {
                            Ok(sessions) if sessions.is_empty() => view! { <p>"No live session."</p> }.into_any(),
                            Ok(sessions) => view! {
                                <table aria-label="User sessions">
                                    <thead><tr><th scope="col">"Device"</th><th scope="col">"Address"</th><th scope="col">"Signed in"</th><th scope="col">"Last seen"</th><th scope="col">"Sign out"</th></tr></thead>
                                    <tbody>
                                        {sessions.into_iter().map(|s| {
                                            let user_id = user_id.clone();
                                            view! {
                                            <tr>
                                                <td>{s.device.clone()}</td>
                                                <td>{s.ip.clone().unwrap_or_else(|| "—".into())}</td>
                                                <td><crate::ui::time::Time at=s.signed_in_at.clone() /></td>
                                                <td><crate::ui::time::Time at=s.last_seen_at.clone() /></td>
                                                <td>
                                                    <ActionForm action=end attr:class="inline">
                                                        <input type="hidden" name="user_id" value=user_id.clone() />
                                                        <input type="hidden" name="handle" value=s.handle.clone() />
                                                        <button type="submit" class="secondary">{format!("Sign out session {}", s.handle)}</button>
                                                    </ActionForm>
                                                </td>
                                            </tr>
                                        }}).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any(),
                            Err(error) => view! { <ErrorNote error /> }.into_any(),
                        }
                    })
                }}
            </Transition>
            <button type="button" class="secondary" on:click=move |_| close.set(None)>"Close"</button>
        </section>
    }
}

/// Delete, behind a confirmation step (the account cannot be brought back).
#[component]
fn DeleteUserButton(
    action: ServerAction<DeleteUser>,
    user_id: String,
    email: String,
) -> impl IntoView {
    let confirming = RwSignal::new(false);
    let user_id = StoredValue::new(user_id);
    let label = StoredValue::new(format!("Delete {email}"));
    let confirm = StoredValue::new(format!("Confirm deleting {email}"));
    view! {
        <Show
            when=move || confirming.get()
            fallback=move || view! { <button type="button" class="danger" on:click=move |_| confirming.set(true)>{label.get_value()}</button> }
        >
            <ActionForm action=action attr:class="inline">
                <input type="hidden" name="user_id" value=user_id.get_value() />
                <span>"The account is anonymized and cannot be restored."</span>
                <button type="submit" class="danger">{confirm.get_value()}</button>
                <button type="button" class="secondary" on:click=move |_| confirming.set(false)>"Cancel"</button>
            </ActionForm>
        </Show>
    }
}

/// Choosing a password from an emailed link (`/set-password?token=…`): a new account's first
/// password, or a reset an administrator sent.
#[component]
pub fn SetPasswordPage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let token = move || query.with(|q| q.get("token").unwrap_or_default());
    let preview = Resource::new(token, super::api::open_password_link);
    let set = ServerAction::<SetPasswordFromLink>::new();
    view! {
        <Title text="Choose a password" />
        <section class="card narrow">
            <h1>"Choose your password"</h1>
            <Transition fallback=|| view! { <p>"Checking the link…"</p> }>
                {move || Suspend::new(async move {
                    match preview.await {
                        Ok(link) => view! {
                            <p>{format!("For {}", link.email)}</p>
                            <ActionForm action=set>
                                <input type="hidden" name="token" value=token />
                                <label for="link-password">"New password"</label>
                                <input id="link-password" name="new_password" type="password" autocomplete="new-password" required minlength="8" maxlength="128" />
                                {action_error(set.value())}
                                <button type="submit">"Set password"</button>
                            </ActionForm>
                        }
                        .into_any(),
                        Err(error) => view! { <ErrorNote error /> }.into_any(),
                    }
                })}
            </Transition>
            {move || set.value().get().and_then(Result::ok).map(|email| view! {
                <p role="status">{format!("Your password is set. Sign in as {email}.")}</p>
                <a href="/sign-in">"Sign in"</a>
            })}
        </section>
    }
}

/// Acting as a user for a while, with a reason: the session becomes theirs, under a banner.
#[component]
fn Impersonate() -> impl IntoView {
    let start = ServerAction::<ImpersonateUser>::new();
    // The whole console starts over as the user (menus, organization and all).
    Effect::new(move |_| {
        if let Some(Ok(())) = start.value().get() {
            let _ = window().location().set_href("/");
        }
    });
    view! {
        <section class="card" role="region" aria-label="Impersonate a user">
            <h2>"Impersonate a user"</h2>
            <p class="muted">"Act as a user to see what they see, for a stated reason and a limited time. Everything you do is recorded with both names, the user is told, and it is read-only: you cannot change their password, email, two-factor authentication, sessions or account, nor make keys, invitations or role changes in their name (disabling a key is allowed)."</p>
            <ActionForm action=start>
                <label for="imp-email">"User's email"</label>
                <input id="imp-email" name="email" type="email" required maxlength="254" />
                <label for="imp-reason">"Reason"</label>
                <input id="imp-reason" name="reason" type="text" required minlength="3" maxlength="500" placeholder="Support ticket 1234: cannot see the Acme keys" />
                <label for="imp-minutes">"Time limit (minutes)"</label>
                <input id="imp-minutes" name="minutes" type="number" min="1" max="120" value="30" required />
                {action_error(start.value())}
                <button type="submit">"Start impersonating"</button>
            </ActionForm>
        </section>
    }
}
