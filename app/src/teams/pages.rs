//! The Teams section of the members page: create and delete teams, add and remove members,
//! give and take custom roles. Controls show only to those who may use them; the server
//! checks every call regardless.

use super::api::{list_teams, CreateTeam, DeleteTeam, SetTeamMember, SetTeamRole};
use super::Team;
use crate::orgs::Member;
use crate::ui::{action_error, ErrorNote};
use leptos::prelude::*;

/// Teams of `org`. `manage`: may create, delete and change membership (`members:write`);
/// `assign_roles`: may give and take roles (`roles:write`).
#[component]
pub fn TeamsSection(org: String, manage: bool, assign_roles: bool) -> impl IntoView {
    let org = StoredValue::new(org);
    let create = ServerAction::<CreateTeam>::new();
    let delete = ServerAction::<DeleteTeam>::new();
    let member = ServerAction::<SetTeamMember>::new();
    let role = ServerAction::<SetTeamRole>::new();
    let teams = Resource::new(
        move || {
            (
                create.version().get(),
                delete.version().get(),
                member.version().get(),
                role.version().get(),
            )
        },
        move |_| list_teams(org.get_value()),
    );
    let members = Resource::new(
        || (),
        move |_| crate::orgs::api::organization_members(org.get_value()),
    );
    let roles = Resource::new(
        || (),
        move |_| async move {
            if !assign_roles {
                return Ok(Vec::new());
            }
            crate::access::api::list_roles(org.get_value())
                .await
                .map(|cat| {
                    cat.roles
                        .into_iter()
                        .filter(|r| !r.builtin)
                        .map(|r| (r.id, r.name))
                        .collect::<Vec<_>>()
                })
        },
    );
    view! {
        <section class="card" role="region" aria-label="Teams">
            <h2>"Teams"</h2>
            <p class="muted">"A team's members hold its roles, beside their own."</p>
            {action_error(delete.value())}
            {action_error(member.value())}
            {action_error(role.value())}
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let (list, people, custom) = (teams.await, members.await, roles.await);
                    match (list, people, custom) {
                        (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => view! { <ErrorNote error /> }.into_any(),
                        (Ok(list), _, _) if list.is_empty() => view! { <p class="muted">"No teams yet."</p> }.into_any(),
                        (Ok(list), Ok(people), Ok(custom)) => {
                            let people = StoredValue::new(people);
                            let custom = StoredValue::new(custom);
                            list.into_iter()
                                .map(|team| view! { <TeamCard team org=org.get_value() people custom manage assign_roles delete member role /> })
                                .collect_view()
                                .into_any()
                        }
                    }
                })}
            </Transition>
            {manage.then(|| view! {
                <h3>"Create a team"</h3>
                <ActionForm action=create>
                    <input type="hidden" name="organization_id" value=org.get_value() />
                    <label for="team-name">"Team name"</label>
                    <input id="team-name" name="name" required maxlength="100" />
                    <label for="team-description">"Description"</label>
                    <input id="team-description" name="description" maxlength="500" />
                    {action_error(create.value())}
                    <button type="submit">"Create team"</button>
                </ActionForm>
            })}
        </section>
    }
}

#[component]
#[allow(clippy::too_many_arguments)]
fn TeamCard(
    team: Team,
    org: String,
    people: StoredValue<Vec<Member>>,
    custom: StoredValue<Vec<(String, String)>>,
    manage: bool,
    assign_roles: bool,
    delete: ServerAction<DeleteTeam>,
    member: ServerAction<SetTeamMember>,
    role: ServerAction<SetTeamRole>,
) -> impl IntoView {
    let (org, id, name) = (
        StoredValue::new(org),
        StoredValue::new(team.id.clone()),
        team.name.clone(),
    );
    let outside: Vec<(String, String)> = people.with_value(|p| {
        p.iter()
            .filter(|m| !team.members.iter().any(|t| t.user_id == m.user_id))
            .map(|m| (m.user_id.clone(), m.email.clone()))
            .collect()
    });
    let not_held: Vec<(String, String)> = custom.with_value(|c| {
        c.iter()
            .filter(|(rid, _)| !team.roles.iter().any(|r| r.id == *rid))
            .cloned()
            .collect()
    });
    let pick_member = RwSignal::new(outside.first().map(|(u, _)| u.clone()).unwrap_or_default());
    let pick_role = RwSignal::new(not_held.first().map(|(r, _)| r.clone()).unwrap_or_default());
    let set_member = move |user_id: String, add: bool| {
        member.dispatch(SetTeamMember {
            organization_id: org.get_value(),
            team_id: id.get_value(),
            user_id,
            add,
        });
    };
    let set_role = move |role_id: String, add: bool| {
        role.dispatch(SetTeamRole {
            organization_id: org.get_value(),
            team_id: id.get_value(),
            role_id,
            add,
        });
    };
    let (add_id, role_select_id) = (
        format!("team-add-{}", team.id),
        format!("team-role-{}", team.id),
    );
    view! {
        <section class="card" role="region" aria-label=format!("Team {name}")>
            <h3>{name.clone()}</h3>
            {(!team.description.is_empty()).then(|| view! { <p class="muted">{team.description.clone()}</p> })}
            <h4>"Members"</h4>
            <ul aria-label=format!("Members of {name}")>
                {team.members.iter().map(|m| {
                    let user = m.user_id.clone();
                    view! {
                        <li>
                            {format!("{} ({})", m.display_name, m.email)}
                            {manage.then(|| view! {
                                " " <button type="button" class="secondary" on:click=move |_| set_member(user.clone(), false)>{format!("Remove {} from {}", m.email, name)}</button>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ul>
            {(manage && !outside.is_empty()).then(|| view! {
                <label for=add_id.clone()>{format!("Add to {name}")}</label>
                <select id=add_id.clone() on:change=move |ev| pick_member.set(event_target_value(&ev))>
                    {outside.iter().map(|(u, e)| view! { <option value=u.clone()>{e.clone()}</option> }).collect_view()}
                </select>
                <button type="button" on:click=move |_| set_member(pick_member.get_untracked(), true)>"Add to team"</button>
            })}
            <h4>"Roles"</h4>
            <ul aria-label=format!("Roles of {name}")>
                {team.roles.iter().map(|r| {
                    let rid = r.id.clone();
                    view! {
                        <li>
                            {r.name.clone()}
                            {assign_roles.then(|| view! {
                                " " <button type="button" class="secondary" on:click=move |_| set_role(rid.clone(), false)>{format!("Take {} from {}", r.name, name)}</button>
                            })}
                        </li>
                    }
                }).collect_view()}
            </ul>
            {(assign_roles && !not_held.is_empty()).then(|| view! {
                <label for=role_select_id.clone()>{format!("Role for {name}")}</label>
                <select id=role_select_id.clone() on:change=move |ev| pick_role.set(event_target_value(&ev))>
                    {not_held.iter().map(|(r, n)| view! { <option value=r.clone()>{n.clone()}</option> }).collect_view()}
                </select>
                <button type="button" on:click=move |_| set_role(pick_role.get_untracked(), true)>"Give role"</button>
            })}
            {manage.then(|| view! {
                <p>
                    <button type="button" class="danger" on:click=move |_| { delete.dispatch(DeleteTeam { organization_id: org.get_value(), team_id: id.get_value() }); }>
                        {format!("Delete team {name}")}
                    </button>
                </p>
            })}
        </section>
    }
}
