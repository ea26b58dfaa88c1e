//! The roles console: the organization's role hierarchy as a tree, custom roles (create,
//! re-parent with a keyboard-usable control, grant and remove permissions, delete), dynamic
//! permissions, and each role's effective permissions with where each comes from.

use super::api::{
    CreateGroup, CreatePermission, CreateRole, DeleteGroup, DeleteRole, SetRoleGroup,
    SetRoleParents, SetRolePermission,
};
use super::model::Source;
use super::{RoleCatalog, RoleView};
use crate::ui::{action_error, ErrorNote};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn RolesPage() -> impl IntoView {
    let orgs = Resource::new(|| (), |_| crate::orgs::api::my_organizations());
    view! {
        <Title text="Roles" />
        <h1>"Roles and permissions"</h1>
        <p class="muted">
            "A role grants its own permissions, its groups', everything its parent roles grant, and every permission those require. "
            "Built-in roles are read-only; create a role that inherits one to extend it."
        </p>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match orgs.await {
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                    Ok(orgs) => {
                        let orgs: Vec<_> = orgs
                            .into_iter()
                            .filter(|o| o.permissions.iter().any(|p| p == "roles:read"))
                            .collect();
                        match orgs.first() {
                            None => view! { <p>"You cannot see the roles of any organization."</p> }.into_any(),
                            Some(first) => {
                                let org = RwSignal::new(first.organization_id.clone());
                                let editable: Vec<(String, bool)> = orgs
                                    .iter()
                                    .map(|o| (o.organization_id.clone(), o.permissions.iter().any(|p| p == "roles:write")))
                                    .collect();
                                view! {
                                    <label for="roles-org">"Organization"</label>
                                    <select id="roles-org" on:change=move |ev| org.set(event_target_value(&ev))>
                                        {orgs.iter().map(|o| view! { <option value=o.organization_id.clone()>{o.name.clone()}</option> }).collect_view()}
                                    </select>
                                    {move || {
                                        let id = org.get();
                                        let can_edit = editable.iter().any(|(o, w)| *o == id && *w);
                                        view! { <RolesEditor org=id can_edit /> }
                                    }}
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
fn RolesEditor(org: String, can_edit: bool) -> impl IntoView {
    let create = ServerAction::<CreateRole>::new();
    let parents = ServerAction::<SetRoleParents>::new();
    let grant = ServerAction::<SetRolePermission>::new();
    let delete = ServerAction::<DeleteRole>::new();
    let permission = ServerAction::<CreatePermission>::new();
    let role_group = ServerAction::<SetRoleGroup>::new();
    let new_group = ServerAction::<CreateGroup>::new();
    let del_group = ServerAction::<DeleteGroup>::new();
    let selected = RwSignal::new(None::<String>);
    // A new role is selected as soon as it exists.
    Effect::new(move |_| {
        if let Some(Ok(role)) = create.value().get() {
            selected.set(Some(role.id));
        }
    });
    let catalog = {
        let org = org.clone();
        Resource::new(
            move || {
                (
                    create.version().get(),
                    parents.version().get(),
                    grant.version().get(),
                    delete.version().get(),
                    permission.version().get(),
                    (
                        role_group.version().get(),
                        new_group.version().get(),
                        del_group.version().get(),
                    ),
                )
            },
            move |_| super::api::list_roles(org.clone()),
        )
    };
    let org = StoredValue::new(org);
    view! {
        {action_error(parents.value())}
        {action_error(grant.value())}
        {action_error(delete.value())}
        {action_error(role_group.value())}
        {action_error(del_group.value())}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match catalog.await {
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                    Ok(cat) => {
                        let cat = StoredValue::new(cat);
                        view! {
                            <section class="card" role="region" aria-label="Role hierarchy">
                                <h2>"Role hierarchy"</h2>
                                <ul class="tree">{cat.with_value(|c| tree(c, None, 0, selected))}</ul>
                            </section>
                            {move || {
                                let id = selected.get()?;
                                let role = cat.with_value(|c| c.roles.iter().find(|r| r.id == id).cloned())?;
                                Some(view! { <RoleDetail role cat=cat.get_value() org=org.get_value() can_edit parents grant delete role_group /> })
                            }}
                            <Groups cat=cat.get_value() org=org.get_value() can_edit del_group />
                        }
                        .into_any()
                    }
                }
            })}
        </Transition>
        {can_edit.then(|| view! {
            <NewRole org=org.get_value() catalog create />
            <NewPermission org=org.get_value() permission />
            <NewGroup org=org.get_value() new_group />
        })}
    }
}

/// The roles under `parent` (the roots when `None`), each with its children, as list items.
fn tree(
    cat: &RoleCatalog,
    parent: Option<&str>,
    depth: usize,
    selected: RwSignal<Option<String>>,
) -> Vec<AnyView> {
    if depth > 32 {
        return Vec::new();
    }
    cat.roles
        .iter()
        .filter(|r| match parent {
            None => r.parents.is_empty(),
            Some(p) => r.parents.iter().any(|q| q == p),
        })
        .map(|r| {
            let id = r.id.clone();
            let children = tree(cat, Some(&r.id), depth + 1, selected);
            let current = {
                let id = id.clone();
                move || selected.get().as_deref() == Some(id.as_str())
            };
            view! {
                <li>
                    <button type="button" class="link" aria-pressed=move || current().to_string() on:click=move |_| selected.set(Some(id.clone()))>
                        {r.name.clone()}
                    </button>
                    {r.builtin.then_some(" (built-in)")}
                    {(!children.is_empty()).then(|| view! { <ul>{children}</ul> })}
                </li>
            }
            .into_any()
        })
        .collect()
}

/// Where an effective permission comes from, in words.
fn source_text(cat: &RoleCatalog, s: &Source) -> String {
    let role = |id: &str| {
        cat.roles
            .iter()
            .find(|r| r.id == id)
            .map_or(id.to_string(), |r| r.name.clone())
    };
    let group = |id: &str| {
        cat.groups
            .iter()
            .find(|g| g.id == id)
            .map_or(id.to_string(), |g| g.name.clone())
    };
    match s {
        Source::Direct => "direct".into(),
        Source::Group { group: g } => format!("group {}", group(g)),
        Source::Inherited {
            role: r,
            group: None,
        } => format!("inherited from {}", role(r)),
        Source::Inherited {
            role: r,
            group: Some(g),
        } => format!("inherited from {} (group {})", role(r), group(g)),
        Source::Dependency { of } => format!("required by {of}"),
    }
}

#[component]
fn RoleDetail(
    role: RoleView,
    cat: RoleCatalog,
    org: String,
    can_edit: bool,
    parents: ServerAction<SetRoleParents>,
    grant: ServerAction<SetRolePermission>,
    delete: ServerAction<DeleteRole>,
    role_group: ServerAction<SetRoleGroup>,
) -> impl IntoView {
    let name = role.name.clone();
    let held_groups: Vec<(String, String)> = cat
        .groups
        .iter()
        .filter(|g| role.groups.contains(&g.id))
        .map(|g| (g.id.clone(), g.name.clone()))
        .collect();
    let other_groups: Vec<(String, String)> = cat
        .groups
        .iter()
        .filter(|g| !role.groups.contains(&g.id))
        .map(|g| (g.id.clone(), g.name.clone()))
        .collect();
    let org = StoredValue::new(org);
    let role_id = StoredValue::new(role.id.clone());
    let direct = role.permissions.clone();
    let editable = can_edit && !role.builtin;
    let title = name.clone();
    let current_parents = role.parents.clone();
    let others: Vec<(String, String)> = cat
        .roles
        .iter()
        .filter(|r| r.id != role.id)
        .map(|r| (r.id.clone(), r.name.clone()))
        .collect();
    let grantable: Vec<String> = cat
        .permissions
        .iter()
        .filter(|p| !role.permissions.contains(&p.name))
        .map(|p| p.name.clone())
        .collect();
    let effective: Vec<(String, String)> = role
        .effective
        .iter()
        .map(|e| {
            let from: Vec<String> = e.sources.iter().map(|s| source_text(&cat, s)).collect();
            (e.name.clone(), from.join("; "))
        })
        .collect();
    view! {
        <section class="card" role="region" aria-label=format!("Role {name}")>
            <h2>{format!("Role {name}")}</h2>
            <p class="muted">{role.description.clone()}</p>
            {editable.then(|| view! {
                <ActionForm action=parents>
                    <input type="hidden" name="organization_id" value=org.get_value() />
                    <input type="hidden" name="role_id" value=role_id.get_value() />
                    // The parents as loaded: saved only if nobody changed them since.
                    <input type="hidden" name="loaded" value=serde_json::to_string(&role.parents).unwrap_or_default() />
                    // A role inherits from every parent ticked (none: it stands alone). The
                    // indexes follow the list; the unticked leave gaps the decoder skips.
                    <fieldset>
                        <legend>"Parent roles"</legend>
                        {others.iter().enumerate().map(|(i, (id, n))| view! {
                            <label class="check">
                                <input type="checkbox" name=format!("parents[{i}]") value=id.clone() checked=current_parents.contains(id) />
                                {n.clone()}
                            </label>
                        }).collect_view()}
                    </fieldset>
                    <button type="submit">"Save parents"</button>
                </ActionForm>
                <ActionForm action=grant>
                    <input type="hidden" name="organization_id" value=org.get_value() />
                    <input type="hidden" name="role_id" value=role_id.get_value() />
                    <input type="hidden" name="granted" value="true" />
                    <label for="role-permission">"Permission"</label>
                    <select id="role-permission" name="permission">
                        {grantable.iter().map(|p| view! { <option value=p.clone()>{p.clone()}</option> }).collect_view()}
                    </select>
                    <button type="submit">"Grant"</button>
                </ActionForm>
                <table aria-label=format!("Permissions granted directly by {title}")>
                    <thead><tr><th scope="col">"Permission"</th><th scope="col">"Actions"</th></tr></thead>
                    <tbody>
                        {direct.into_iter().map(|p| view! {
                            <tr>
                                <td>{p.clone()}</td>
                                <td>
                                    <ActionForm action=grant>
                                        <input type="hidden" name="organization_id" value=org.get_value() />
                                        <input type="hidden" name="role_id" value=role_id.get_value() />
                                        <input type="hidden" name="permission" value=p.clone() />
                                        <input type="hidden" name="granted" value="false" />
                                        <label>
                                            <input type="checkbox" name="cascade" value="true" />
                                            " with what requires it"
                                        </label>
                                        <button type="submit" class="secondary" aria-label=format!("Remove {p}")>"Remove"</button>
                                    </ActionForm>
                                </td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
                {(!other_groups.is_empty()).then(|| view! {
                    <ActionForm action=role_group>
                        <input type="hidden" name="organization_id" value=org.get_value() />
                        <input type="hidden" name="role_id" value=role_id.get_value() />
                        <input type="hidden" name="granted" value="true" />
                        <label for="role-group">"Group"</label>
                        <select id="role-group" name="group_id">
                            {other_groups.iter().map(|(id, n)| view! { <option value=id.clone()>{n.clone()}</option> }).collect_view()}
                        </select>
                        <button type="submit">"Grant group"</button>
                    </ActionForm>
                })}
                {(!held_groups.is_empty()).then(|| view! {
                    <table aria-label=format!("Groups granted to {title}")>
                        <thead><tr><th scope="col">"Group"</th><th scope="col">"Actions"</th></tr></thead>
                        <tbody>
                            {held_groups.into_iter().map(|(id, n)| view! {
                                <tr>
                                    <td>{n.clone()}</td>
                                    <td>
                                        <ActionForm action=role_group>
                                            <input type="hidden" name="organization_id" value=org.get_value() />
                                            <input type="hidden" name="role_id" value=role_id.get_value() />
                                            <input type="hidden" name="group_id" value=id />
                                            <input type="hidden" name="granted" value="false" />
                                            <button type="submit" class="secondary">{format!("Remove group {n}")}</button>
                                        </ActionForm>
                                    </td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                })}
                <ActionForm action=delete>
                    <input type="hidden" name="organization_id" value=org.get_value() />
                    <input type="hidden" name="role_id" value=role_id.get_value() />
                    <button type="submit" class="danger">{format!("Delete role {title}")}</button>
                </ActionForm>
            })}
            <table aria-label=format!("Effective permissions of {name}")>
                <thead><tr><th scope="col">"Permission"</th><th scope="col">"From"</th></tr></thead>
                <tbody>
                    {effective.into_iter().map(|(p, from)| view! { <tr><td>{p}</td><td>{from}</td></tr> }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

#[component]
fn NewRole(
    org: String,
    catalog: Resource<Result<RoleCatalog, crate::error::AppError>>,
    create: ServerAction<CreateRole>,
) -> impl IntoView {
    view! {
        <section class="card" role="region" aria-label="Create a role">
            <h2>"Create a role"</h2>
            <ActionForm action=create>
                <input type="hidden" name="organization_id" value=org />
                <label for="new-role-name">"Name"</label>
                <input id="new-role-name" name="name" required maxlength="64" />
                <label for="new-role-parent">"Inherits from"</label>
                <select id="new-role-parent" name="parents[0]">
                    <option value="">"(nothing)"</option>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            catalog.await.map(|c| c.roles.into_iter().map(|r| view! { <option value=r.id>{r.name}</option> }).collect_view()).ok()
                        })}
                    </Transition>
                </select>
                <label for="new-role-description">"Description"</label>
                <input id="new-role-description" name="description" maxlength="200" />
                <button type="submit">"Create role"</button>
            </ActionForm>
            {action_error(create.value())}
        </section>
    }
}

#[component]
fn NewPermission(org: String, permission: ServerAction<CreatePermission>) -> impl IntoView {
    view! {
        <section class="card" role="region" aria-label="New permission">
            <h2>"New permission"</h2>
            <p class="muted">"For your own services (checked through POST /api/v1/keys/verify): resource:action, such as invoices:read."</p>
            <ActionForm action=permission>
                <input type="hidden" name="organization_id" value=org />
                <label for="new-permission-name">"Name"</label>
                <input id="new-permission-name" name="name" required maxlength="64" placeholder="invoices:read" />
                <label for="new-permission-requires">"Requires"</label>
                <input id="new-permission-requires" name="requires[0]" maxlength="64" placeholder="optional, e.g. invoices:read" />
                <button type="submit">"Create permission"</button>
            </ActionForm>
            {action_error(permission.value())}
            {move || permission.value().get().and_then(Result::ok).map(|p| view! { <p role="status">{format!("Created {}", p.name)}</p> })}
        </section>
    }
}

/// The organization's permission groups: named sets of permissions granted to roles as a unit.
#[component]
fn Groups(
    cat: RoleCatalog,
    org: String,
    can_edit: bool,
    del_group: ServerAction<DeleteGroup>,
) -> impl IntoView {
    let org = StoredValue::new(org);
    view! {
        <section class="card" role="region" aria-label="Permission groups">
            <h2>"Permission groups"</h2>
            {if cat.groups.is_empty() {
                view! { <p class="muted">"No groups yet."</p> }.into_any()
            } else {
                view! {
                    <table aria-label="Groups">
                        <thead><tr><th scope="col">"Group"</th><th scope="col">"Permissions"</th><th scope="col">"Actions"</th></tr></thead>
                        <tbody>
                            {cat.groups.into_iter().map(|g| view! {
                                <tr>
                                    <td>{g.name.clone()}</td>
                                    <td>{g.permissions.join(", ")}</td>
                                    <td>
                                        {can_edit.then(|| view! {
                                            <ActionForm action=del_group>
                                                <input type="hidden" name="organization_id" value=org.get_value() />
                                                <input type="hidden" name="group_id" value=g.id.clone() />
                                                <button type="submit" class="danger">{format!("Delete group {}", g.name)}</button>
                                            </ActionForm>
                                        })}
                                    </td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn NewGroup(org: String, new_group: ServerAction<CreateGroup>) -> impl IntoView {
    view! {
        <section class="card" role="region" aria-label="New group">
            <h2>"New group"</h2>
            <ActionForm action=new_group>
                <input type="hidden" name="organization_id" value=org />
                <label for="new-group-name">"Name"</label>
                <input id="new-group-name" name="name" required maxlength="64" />
                <label for="new-group-permissions">"Permissions"</label>
                <input id="new-group-permissions" name="permissions" placeholder="audit:read, usage:read" />
                <button type="submit">"Create group"</button>
            </ActionForm>
            {action_error(new_group.value())}
            {move || new_group.value().get().and_then(Result::ok).map(|g| view! { <p role="status">{format!("Created group {}", g.name)}</p> })}
        </section>
    }
}
