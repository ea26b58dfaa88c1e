//! The signed-in home page (the user's organizations and role in each), the members page and
//! the page that accepts an invitation.

use super::api::{
    get_org_policy, list_invitations, my_organizations, open_invitation, organization_members,
    AcceptInvitation, CreateOrganization, InviteMember, LeaveOrganization, RemoveMember,
    RevokeInvitation, SetMemberRole, SetOrgPolicy, TransferOwnership,
};
use super::OrgMembership;
use crate::access::api::AssignRole;
use crate::access::AssignResult;
use crate::ui::{action_error, use_auth, ErrorNote};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::{Redirect, A};

#[component]
pub fn HomePage() -> impl IntoView {
    let auth = use_auth();
    // Created here, beside the user, not after awaiting it: during server rendering a server
    // function called from a resource made later can find its request gone.
    let dashboard = Resource::new(|| (), |_| crate::identity::api::my_dashboard());
    let orgs = Resource::new(|| (), |_| my_organizations());
    view! {
        <Title text="Home" />
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match auth.user.await {
                    Ok(Some(user)) => view! {
                        <h1>"Welcome, " {user.display_name}</h1>
                        <DashboardView dashboard />
                        <Organizations orgs />
                    }
                    .into_any(),
                    Ok(None) => view! { <Redirect path="/sign-in" /> }.into_any(),
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// A key's usage against its limit, in words ("12 / 100 per hour").
fn usage_text(k: &crate::identity::DashboardKey) -> String {
    let per = match k.window_seconds {
        60 => "per minute".to_string(),
        3600 => "per hour".to_string(),
        86_400 => "per day".to_string(),
        s => format!("per {s} s"),
    };
    format!("{} / {} {per}", k.used, k.limit)
}

#[component]
fn DashboardView(
    dashboard: Resource<Result<crate::identity::Dashboard, crate::error::AppError>>,
) -> impl IntoView {
    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match dashboard.await {
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                    Ok(d) => {
                        let expiring: Vec<_> = d.keys.iter().filter(|k| k.expires_soon).cloned().collect();
                        view! {
                            <section class="card" role="region" aria-label="Your keys">
                                <h2>"Your keys"</h2>
                                {if d.keys.is_empty() {
                                    view! { <p class="muted">"You have no active keys. " <A href="/keys">"Create one"</A></p> }.into_any()
                                } else {
                                    view! {
                                        <table aria-label="Your keys and their usage">
                                            <thead><tr><th scope="col">"Key"</th><th scope="col">"Organization"</th><th scope="col">"Used in its window"</th><th scope="col">"Expires"</th></tr></thead>
                                            <tbody>
                                                {d.keys.iter().map(|k| {
                                                    let (href, name, org, usage) = (format!("/keys/{}/{}", k.organization_id, k.id), k.name.clone(), k.organization_name.clone(), usage_text(k));
                                                    let expires = k.expires_at.clone();
                                                    let personal = k.personal.then_some(" (personal)");
                                                    view! {
                                                        <tr>
                                                            <td><A href=href>{name}</A> {personal}</td>
                                                            <td>{org}</td>
                                                            <td>{usage}</td>
                                                            <td><crate::ui::time::MaybeTime at=expires none="never" /></td>
                                                        </tr>
                                                    }
                                                }).collect_view()}
                                            </tbody>
                                        </table>
                                    }.into_any()
                                }}
                            </section>
                            <section class="card" role="region" aria-label="Expiring soon">
                                <h2>"Expiring within 30 days"</h2>
                                {if expiring.is_empty() {
                                    view! { <p class="muted">"None of your keys expires within 30 days."</p> }.into_any()
                                } else {
                                    view! {
                                        <ul>
                                            {expiring.into_iter().map(|k| {
                                                let href = format!("/keys/{}/{}", k.organization_id, k.id);
                                                let when = k.expires_at.unwrap_or_default();
                                                view! { <li><A href=href>{k.name}</A> " expires " <crate::ui::time::Time at=when /></li> }
                                            }).collect_view()}
                                        </ul>
                                    }.into_any()
                                }}
                            </section>
                            <section class="card" role="region" aria-label="Recent activity">
                                <h2>"Recent activity"</h2>
                                <p><A href="/notifications">{format!("{} unread notifications", d.unread_notifications)}</A></p>
                                {if d.activity.is_empty() {
                                    view! { <p class="muted">"Nothing yet."</p> }.into_any()
                                } else {
                                    view! {
                                        <ul>
                                            {d.activity.into_iter().map(|e| view! {
                                                <li><crate::ui::time::Time at=e.at /> " " {e.kind} {e.organization_name.map(|o| format!(" in {o}"))}</li>
                                            }).collect_view()}
                                        </ul>
                                    }.into_any()
                                }}
                            </section>
                        }
                        .into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn Organizations(
    orgs: Resource<Result<Vec<OrgMembership>, crate::error::AppError>>,
) -> impl IntoView {
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

/// Organization members: invitations, base roles, custom roles in bulk, leaving and
/// transferring ownership; and creating an organization.
#[component]
pub fn MembersPage() -> impl IntoView {
    let orgs = Resource::new(|| (), |_| my_organizations());
    let auth = use_auth();
    view! {
        <Title text="Members" />
        <h1>"Members"</h1>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let (orgs, user) = (orgs.await, auth.user.await);
                match (orgs, user) {
                    (Err(error), _) | (_, Err(error)) => view! { <ErrorNote error /> }.into_any(),
                    (_, Ok(None)) => view! { <Redirect path="/sign-in" /> }.into_any(),
                    (Ok(orgs), Ok(Some(user))) => {
                        let orgs: Vec<OrgMembership> = orgs
                            .into_iter()
                            .filter(|o| o.permissions.iter().any(|p| p == "members:read"))
                            .collect();
                        match orgs.first().cloned() {
                            None => view! { <p>"You cannot see the members of any organization."</p> }.into_any(),
                            Some(first) => {
                                let org = RwSignal::new(first.organization_id.clone());
                                let orgs = StoredValue::new(orgs);
                                let me = StoredValue::new(user.user_id.clone());
                                view! {
                                    <label for="members-org">"Organization"</label>
                                    <select id="members-org" on:change=move |ev| org.set(event_target_value(&ev))>
                                        {orgs.with_value(|o| o.iter().map(|o| view! { <option value=o.organization_id.clone()>{o.name.clone()}</option> }).collect_view())}
                                    </select>
                                    {move || {
                                        let id = org.get();
                                        orgs.with_value(|o| o.iter().find(|o| o.organization_id == id).cloned())
                                            .map(|membership| view! { <MembersEditor membership me=me.get_value() /> })
                                    }}
                                }
                                .into_any()
                            }
                        }
                    }
                }
            })}
        </Transition>
        <CreateOrganization />
    }
}

/// Reloads the whole page (menus, lists and charts follow the new active organization).
fn reload() {
    let _ = window().location().reload();
}

#[component]
fn CreateOrganization() -> impl IntoView {
    let create = ServerAction::<CreateOrganization>::new();
    Effect::new(move |_| {
        if let Some(Ok(_)) = create.value().get() {
            reload();
        }
    });
    view! {
        <section class="card" role="region" aria-label="Create an organization">
            <h2>"Create an organization"</h2>
            <ActionForm action=create>
                <label for="new-org-name">"Organization name"</label>
                <input id="new-org-name" name="name" type="text" required maxlength="100" />
                {action_error(create.value())}
                <button type="submit">"Create organization"</button>
            </ActionForm>
        </section>
    }
}

/// What an assignment did to one member, in words.
fn assign_outcome(r: &AssignResult, assign: bool) -> String {
    match (&r.error, r.changed, assign) {
        (Some(e), _, _) => e.clone(),
        (None, true, true) => "assigned".into(),
        (None, false, true) => "already had it".into(),
        (None, true, false) => "removed".into(),
        (None, false, false) => "did not have it".into(),
    }
}

#[component]
fn MembersEditor(membership: OrgMembership, me: String) -> impl IntoView {
    let can = {
        let perms = membership.permissions.clone();
        move |p: &str| perms.iter().any(|q| q == p)
    };
    let (manage, assign_roles) = (can("members:write"), can("roles:write"));
    let team = membership.kind == "team";
    let org = StoredValue::new(membership.organization_id.clone());
    let me = StoredValue::new(me);
    let invite = ServerAction::<InviteMember>::new();
    let revoke = ServerAction::<RevokeInvitation>::new();
    let remove = ServerAction::<RemoveMember>::new();
    let set_role = ServerAction::<SetMemberRole>::new();
    let leave = ServerAction::<LeaveOrganization>::new();
    let transfer = ServerAction::<TransferOwnership>::new();
    let assign = ServerAction::<AssignRole>::new();
    let last_assign = RwSignal::new(true);
    Effect::new(move |_| {
        if let Some(Ok(())) = leave.value().get() {
            reload();
        }
    });
    let members = Resource::new(
        move || {
            (
                remove.version().get(),
                set_role.version().get(),
                transfer.version().get(),
                assign.version().get(),
            )
        },
        move |_| organization_members(org.get_value()),
    );
    let invitations = Resource::new(
        move || (invite.version().get(), revoke.version().get()),
        move |_| async move {
            // Only those who may invite see who was invited.
            if manage {
                list_invitations(org.get_value()).await
            } else {
                Ok(Vec::new())
            }
        },
    );
    let roles = Resource::new(
        || (),
        move |_| async move {
            if assign_roles {
                crate::access::api::list_roles(org.get_value())
                    .await
                    .map(Some)
            } else {
                Ok(None)
            }
        },
    );
    let selected = RwSignal::new(std::collections::BTreeSet::<String>::new());
    view! {
        {action_error(remove.value())}
        {action_error(set_role.value())}
        {action_error(transfer.value())}
        {action_error(leave.value())}
        {action_error(revoke.value())}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match members.await {
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                    Ok(list) => {
                        // From the list just read: after a transfer, the former owner's page
                        // stops offering it at once.
                        let i_own = list.iter().any(|m| m.user_id == me.get_value() && m.role == "owner");
                        let others: Vec<(String, String)> = list
                            .iter()
                            .filter(|m| m.user_id != me.get_value())
                            .map(|m| (m.user_id.clone(), m.email.clone()))
                            .collect();
                        let rows = list.into_iter().map(|m| {
                            let email = m.email.clone();
                            let id = StoredValue::new(m.user_id.clone());
                            let is_me = m.user_id == me.get_value();
                            let changeable = manage && team && !is_me && m.role != "owner";
                            view! {
                                <tr>
                                    {assign_roles.then(|| view! {
                                        <td>
                                            <input
                                                type="checkbox"
                                                aria-label=format!("Select {email}")
                                                prop:checked=move || selected.with(|s| s.contains(&id.get_value()))
                                                on:change=move |ev| {
                                                    let on = event_target_checked(&ev);
                                                    selected.update(|s| { if on { s.insert(id.get_value()); } else { s.remove(&id.get_value()); } });
                                                }
                                            />
                                        </td>
                                    })}
                                    <td>{m.display_name.clone()} <span class="muted">{format!(" {}", m.email)}</span> {is_me.then_some(" (you)")}</td>
                                    <td>
                                        {if changeable {
                                            let label = format!("Role of {email}");
                                            let save = format!("Save role of {email}");
                                            view! {
                                                <ActionForm action=set_role attr:class="inline">
                                                    <input type="hidden" name="organization_id" value=org.get_value() />
                                                    <input type="hidden" name="user_id" value=id.get_value() />
                                                    <select name="role" aria-label=label>
                                                        {["admin", "member", "viewer"].into_iter().map(|r| view! { <option value=r selected=r == m.role>{r}</option> }).collect_view()}
                                                    </select>
                                                    <button type="submit" class="secondary" aria-label=save>"Save"</button>
                                                </ActionForm>
                                            }.into_any()
                                        } else {
                                            view! { <span class="badge">{m.role.clone()}</span> }.into_any()
                                        }}
                                    </td>
                                    <td>
                                        {if m.roles.is_empty() && m.team_roles.is_empty() { "—".to_string() } else { m.roles.join(", ") }}
                                        {(!m.team_roles.is_empty()).then(|| view! { <span class="muted">{format!(" through teams: {}", m.team_roles.join(", "))}</span> })}
                                    </td>
                                    <td>
                                        {changeable.then(|| view! {
                                            <ActionForm action=remove attr:class="inline">
                                                <input type="hidden" name="organization_id" value=org.get_value() />
                                                <input type="hidden" name="user_id" value=id.get_value() />
                                                <button type="submit" class="danger">{format!("Remove {email}")}</button>
                                            </ActionForm>
                                        })}
                                    </td>
                                </tr>
                            }
                        }).collect_view();
                        view! {
                            <table aria-label="Members">
                                <thead>
                                    <tr>
                                        {assign_roles.then(|| view! { <th scope="col">"Select"</th> })}
                                        <th scope="col">"Member"</th><th scope="col">"Role"</th><th scope="col">"Custom roles"</th><th scope="col">"Actions"</th>
                                    </tr>
                                </thead>
                                <tbody>{rows}</tbody>
                            </table>
                            {(i_own && team && !others.is_empty()).then(|| view! {
                                <section class="card" role="region" aria-label="Transfer ownership">
                                    <h2>"Transfer ownership"</h2>
                                    <p class="muted">"The new owner gets everything; you become an admin."</p>
                                    <ActionForm action=transfer>
                                        <input type="hidden" name="organization_id" value=org.get_value() />
                                        <label for="new-owner">"New owner"</label>
                                        <select id="new-owner" name="user_id">
                                            {others.iter().map(|(id, email)| view! { <option value=id.clone()>{email.clone()}</option> }).collect_view()}
                                        </select>
                                        <button type="submit" class="danger">"Transfer ownership"</button>
                                    </ActionForm>
                                </section>
                            })}
                        }
                        .into_any()
                    }
                }
            })}
        </Transition>
        {assign_roles.then(|| view! {
            <section class="card" role="region" aria-label="Assign a custom role">
                <h2>"Assign a custom role"</h2>
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        match roles.await {
                            Err(error) => view! { <ErrorNote error /> }.into_any(),
                            Ok(None) => ().into_any(),
                            Ok(Some(cat)) => {
                                let custom: Vec<(String, String)> = cat.roles.iter().filter(|r| !r.builtin).map(|r| (r.id.clone(), r.name.clone())).collect();
                                if custom.is_empty() {
                                    return view! { <p class="muted">"This organization has no custom roles yet: create one on the roles page."</p> }.into_any();
                                }
                                let role = RwSignal::new(custom[0].0.clone());
                                let run = move |on: bool| {
                                    last_assign.set(on);
                                    assign.dispatch(AssignRole {
                                        organization_id: org.get_value(),
                                        role_id: role.get_untracked(),
                                        user_ids: selected.get_untracked().into_iter().collect(),
                                        assign: on,
                                    });
                                };
                                view! {
                                    <label for="bulk-role">"Custom role"</label>
                                    <select id="bulk-role" on:change=move |ev| role.set(event_target_value(&ev))>
                                        {custom.iter().map(|(id, n)| view! { <option value=id.clone()>{n.clone()}</option> }).collect_view()}
                                    </select>
                                    <p class="muted">{move || format!("{} selected", selected.with(|s| s.len()))}</p>
                                    <button type="button" disabled=move || selected.with(|s| s.is_empty()) on:click=move |_| run(true)>"Assign to selected"</button>
                                    <button type="button" class="secondary" disabled=move || selected.with(|s| s.is_empty()) on:click=move |_| run(false)>"Remove from selected"</button>
                                }
                                .into_any()
                            }
                        }
                    })}
                </Transition>
                {action_error(assign.value())}
                {move || assign.value().get().and_then(Result::ok).map(|results| {
                    let on = last_assign.get();
                    let names = members.get().and_then(Result::ok).unwrap_or_default();
                    view! {
                        <table aria-label="Assignment results">
                            <thead><tr><th scope="col">"Member"</th><th scope="col">"Result"</th></tr></thead>
                            <tbody>
                                {results.iter().map(|r| {
                                    let who = names.iter().find(|m| m.user_id == r.user_id).map_or(r.user_id.clone(), |m| m.email.clone());
                                    view! { <tr><td>{who}</td><td>{assign_outcome(r, on)}</td></tr> }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }
                })}
            </section>
        })}
        {team.then(|| view! { <crate::teams::pages::TeamsSection org=org.get_value() manage assign_roles /> })}
        {(manage && team).then(|| view! {
            <section class="card" role="region" aria-label="Invite a member">
                <h2>"Invite a member"</h2>
                <ActionForm action=invite>
                    <input type="hidden" name="organization_id" value=org.get_value() />
                    <label for="invite-email">"Email"</label>
                    <input id="invite-email" name="email" type="email" required maxlength="254" />
                    <label for="invite-role">"Role"</label>
                    <select id="invite-role" name="role">
                        <option value="viewer">"viewer"</option>
                        <option value="member">"member"</option>
                        <option value="admin">"admin"</option>
                    </select>
                    {action_error(invite.value())}
                    {move || invite.value().get().and_then(Result::ok).map(|i| view! { <p role="status">{format!("Invitation sent to {}.", i.email)}</p> })}
                    <button type="submit">"Send invitation"</button>
                </ActionForm>
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        match invitations.await {
                            Err(error) => view! { <ErrorNote error /> }.into_any(),
                            Ok(list) if list.is_empty() => view! { <p class="muted">"No pending invitations."</p> }.into_any(),
                            Ok(list) => view! {
                                <table aria-label="Pending invitations">
                                    <thead><tr><th scope="col">"Email"</th><th scope="col">"Role"</th><th scope="col">"Invited by"</th><th scope="col">"Expires"</th><th scope="col">"Actions"</th></tr></thead>
                                    <tbody>
                                        {list.into_iter().map(|i| view! {
                                            <tr>
                                                <td>{i.email.clone()}</td>
                                                <td>{i.role.clone()}</td>
                                                <td>{i.invited_by.clone().unwrap_or_default()}</td>
                                                <td><crate::ui::time::Time at=i.expires_at.clone() /></td>
                                                <td>
                                                    <ActionForm action=revoke attr:class="inline">
                                                        <input type="hidden" name="organization_id" value=org.get_value() />
                                                        <input type="hidden" name="invitation_id" value=i.id.clone() />
                                                        <button type="submit" class="secondary">{format!("Revoke invitation to {}", i.email)}</button>
                                                    </ActionForm>
                                                </td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any(),
                        }
                    })}
                </Transition>
            </section>
        })}
        {team.then(|| view! {
            <section class="card" role="region" aria-label="Leave the organization">
                <h2>"Leave the organization"</h2>
                <ActionForm action=leave>
                    <input type="hidden" name="organization_id" value=org.get_value() />
                    <button type="submit" class="danger">"Leave organization"</button>
                </ActionForm>
            </section>
        })}
    }
}

/// Accepting an invitation from its emailed link (`/invite?token=…`).
#[component]
pub fn InvitePage() -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let token = move || query.with(|q| q.get("token").unwrap_or_default());
    let preview = Resource::new(token, open_invitation);
    let accept = ServerAction::<AcceptInvitation>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = accept.value().get() {
            let _ = window().location().set_href("/members");
        }
    });
    view! {
        <Title text="Invitation" />
        <section class="card narrow">
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match preview.await {
                        Err(_) => view! {
                            <h1>"Invitation not found"</h1>
                            <p role="alert" class="error">"This link is not valid. Ask for a new invitation."</p>
                        }.into_any(),
                        Ok(p) => {
                            let heading = format!("Join {}", p.organization_name);
                            let intro = format!(
                                "{} invited {} to join {} as {}.",
                                p.invited_by.clone().unwrap_or_else(|| "An administrator".into()),
                                p.email, p.organization_name, p.role
                            );
                            let body = if p.status != "pending" {
                                view! { <p role="alert" class="error">{format!("This invitation was {}. Ask for a new one.", p.status)}</p> }.into_any()
                            } else {
                                match p.signed_in_as.clone() {
                                    Some(me) if me == p.email => view! {
                                        <ActionForm action=accept>
                                            <input type="hidden" name="token" value=token() />
                                            {action_error(accept.value())}
                                            <button type="submit">"Accept invitation"</button>
                                        </ActionForm>
                                    }.into_any(),
                                    Some(me) => view! {
                                        <p role="alert" class="error">{format!("You are signed in as {me}; this invitation is for {}. Sign out, then open the link again.", p.email)}</p>
                                    }.into_any(),
                                    None if p.account_exists => view! {
                                        <ActionForm action=accept>
                                            <input type="hidden" name="token" value=token() />
                                            <p>{format!("Sign in as {} to accept.", p.email)}</p>
                                            <label for="invite-password">"Password"</label>
                                            <input id="invite-password" name="password" type="password" autocomplete="current-password" required maxlength="128" />
                                            {action_error(accept.value())}
                                            <button type="submit">"Sign in and accept"</button>
                                        </ActionForm>
                                    }.into_any(),
                                    None => view! {
                                        <ActionForm action=accept>
                                            <input type="hidden" name="token" value=token() />
                                            <p>{format!("Create your account for {} to accept.", p.email)}</p>
                                            <label for="invite-name">"Display name"</label>
                                            <input id="invite-name" name="display_name" type="text" autocomplete="name" required maxlength="100" />
                                            <label for="invite-password">"Password"</label>
                                            <input id="invite-password" name="password" type="password" autocomplete="new-password" required minlength="8" maxlength="128" />
                                            {action_error(accept.value())}
                                            <button type="submit">"Create account and accept"</button>
                                        </ActionForm>
                                    }.into_any(),
                                }
                            };
                            view! { <h1>{heading}</h1> <p>{intro}</p> {body} }.into_any()
                        }
                    }
                })}
            </Transition>
        </section>
    }
}

/// The active organization's settings: its policies (owners: `org:write`).
#[component]
pub fn SettingsPage() -> impl IntoView {
    let orgs = Resource::new(|| (), |_| my_organizations());
    view! {
        <Title text="Organization settings" />
        <h1>"Organization settings"</h1>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match orgs.await {
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                    Ok(orgs) => {
                        let orgs: Vec<OrgMembership> = orgs
                            .into_iter()
                            .filter(|o| o.permissions.iter().any(|p| p == "org:write"))
                            .collect();
                        match orgs.first().cloned() {
                            None => view! { <p>"You cannot change the settings of any organization."</p> }.into_any(),
                            Some(first) => {
                                let org = RwSignal::new(first.organization_id.clone());
                                view! {
                                    <label for="settings-org">"Organization"</label>
                                    <select id="settings-org" on:change=move |ev| org.set(event_target_value(&ev))>
                                        {orgs.iter().map(|o| view! { <option value=o.organization_id.clone()>{o.name.clone()}</option> }).collect_view()}
                                    </select>
                                    {move || view! { <PolicyForm org=org.get() /> }}
                                }
                                .into_any()
                            }
                        }
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn PolicyForm(org: String) -> impl IntoView {
    let save = ServerAction::<SetOrgPolicy>::new();
    let policy = {
        let org = org.clone();
        Resource::new(
            move || save.version().get(),
            move |_| get_org_policy(org.clone()),
        )
    };
    let org = StoredValue::new(org);
    view! {
        <section class="card" role="region" aria-label="Policies">
            <h2>"Policies"</h2>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match policy.await {
                        Err(error) => view! { <ErrorNote error /> }.into_any(),
                        Ok(p) => view! {
                            <ActionForm action=save>
                                <input type="hidden" name="organization_id" value=org.get_value() />
                                // The policies as loaded: saved only if nobody changed them since.
                                <input type="hidden" name="loaded" value=serde_json::to_string(&p).unwrap_or_default() />
                                <label for="policy-lifetime">"Maximum key lifetime (days)"</label>
                                <input id="policy-lifetime" name="max_key_lifetime_days" type="number" min="1" max="3660" placeholder="no limit" aria-describedby="policy-lifetime-hint" value=p.max_key_lifetime_days.map(|d| d.to_string()).unwrap_or_default() />
                                <p id="policy-lifetime-hint" class="hint">"New keys, rolls and new expiry dates must fall within it. GitHub allows 366."</p>
                                <label class="check">
                                    <input type="checkbox" name="require_key_approval" value="on" checked=p.require_key_approval />
                                    "Require approval of new keys (keys created by members without approvals:write wait for an owner or admin, and do not work until approved)"
                                </label>
                                <label class="check">
                                    <input type="checkbox" name="require_two_factor" value="on" checked=p.require_two_factor />
                                    "Require two-factor authentication for members (at sign-in, a member without it must set it up before anything else)"
                                </label>
                                <button type="submit">"Save policies"</button>
                            </ActionForm>
                        }.into_any(),
                    }
                })}
            </Transition>
            // Outside the reload: a save that holds the admin to enrolment (they required a
            // second factor they do not have) makes the reload fail, and the outcome must stay.
            {action_error(save.value())}
            {move || save.value().get().and_then(Result::ok).map(|_| view! { <p role="status">"Policies saved."</p> })}
        </section>
    }
}
