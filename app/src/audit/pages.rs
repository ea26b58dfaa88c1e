//! The audit log page: filters, and the entries newest first with who, what, on what, where
//! from, and each entry's place in the tamper-evident chain.

use super::api::audit_log;
use crate::ui::ErrorNote;
use leptos::prelude::*;
use leptos_meta::Title;

#[derive(Clone, Debug, Default, PartialEq)]
struct Filters {
    actor: String,
    action: String,
    target: String,
    from: String,
    to: String,
}

#[component]
pub fn AuditPage() -> impl IntoView {
    let orgs = Resource::new(|| (), |_| crate::orgs::api::my_organizations());
    view! {
        <Title text="Audit log" />
        <h1>"Audit log"</h1>
        <p class="muted">"Every security and administration action, newest first. Each entry is chained to the one before by a keyed hash: "<code>"keyward audit verify"</code>" names any entry edited or removed."</p>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match orgs.await {
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                    // The active organization (the top bar's switcher) comes first.
                    Ok(orgs) => match orgs.into_iter().find(|o| o.permissions.iter().any(|p| p == "audit:read")) {
                        None => view! { <p>"You cannot read the audit log of any organization."</p> }.into_any(),
                        Some(org) => view! { <Log org=org.organization_id /> }.into_any(),
                    },
                }
            })}
        </Transition>
    }
}

#[component]
fn Log(org: String) -> impl IntoView {
    let filters = RwSignal::new(Filters::default());
    let page = RwSignal::new(1u32);
    let entries = Resource::new(
        move || (filters.get(), page.get()),
        move |(f, p)| {
            audit_log(
                org.clone(),
                f.actor,
                f.action,
                f.target,
                f.from,
                f.to,
                Some(p),
            )
        },
    );
    let set = move |apply: fn(&mut Filters, String)| {
        move |ev| {
            let value = event_target_value(&ev);
            filters.update(|f| apply(f, value));
            page.set(1);
        }
    };
    view! {
        <div class="toolbar filters" role="search" aria-label="Filter the audit log">
            <label for="audit-actor">"Actor"</label>
            <input id="audit-actor" type="search" placeholder="email or id" on:change=set(|f, v| f.actor = v) />
            <label for="audit-action">"Action"</label>
            <input id="audit-action" type="search" placeholder="key. or role.assigned" on:change=set(|f, v| f.action = v) />
            <label for="audit-target">"Target"</label>
            <input id="audit-target" type="search" placeholder="an id" on:change=set(|f, v| f.target = v) />
            <label for="audit-from">"From"</label>
            <input id="audit-from" type="date" on:change=set(|f, v| f.from = v) />
            <label for="audit-to">"To"</label>
            <input id="audit-to" type="date" on:change=set(|f, v| f.to = v) />
        </div>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match entries.await {
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                    Ok(p) => {
                        let pages = (p.total as u32).div_ceil(super::AUDIT_PER_PAGE).max(1);
                        view! {
                            <p class="muted">{format!("{} entries", p.total)}</p>
                            <table aria-label="Audit log">
                                <thead><tr>
                                    <th scope="col">"When"</th>
                                    <th scope="col">"Action"</th>
                                    <th scope="col">"Actor"</th>
                                    <th scope="col">"Target"</th>
                                    <th scope="col">"Address"</th>
                                    <th scope="col">"Chain"</th>
                                    <th scope="col">"Details"</th>
                                </tr></thead>
                                <tbody>
                                    {p.entries.into_iter().map(|e| view! {
                                        <tr>
                                            <td><crate::ui::time::Time at=e.at.clone() /></td>
                                            <td><code>{e.action.clone()}</code></td>
                                            <td>{e.actor_email.clone().or(e.actor.clone()).unwrap_or_else(|| "—".into())}</td>
                                            <td>{e.target_email.clone().or(e.target.clone()).unwrap_or_else(|| "—".into())}</td>
                                            <td>{e.ip.clone().unwrap_or_else(|| "—".into())}</td>
                                            <td>{e.seq.map_or("pending".to_string(), |s| format!("#{s}"))}</td>
                                            <td><details><summary>{format!("Details of {}", e.event_id)}</summary><pre>{serde_json::to_string_pretty(&e.data).unwrap_or_default()}</pre></details></td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <nav class="pager" aria-label="Audit log pages">
                                <button type="button" disabled=move || page.get() <= 1 on:click=move |_| page.update(|p| *p -= 1)>"Newer"</button>
                                <span>{format!("Page {} of {pages}", p.page)}</span>
                                <button type="button" disabled=move || page.get() >= pages on:click=move |_| page.update(|p| *p += 1)>"Older"</button>
                            </nav>
                        }
                        .into_any()
                    }
                }
            })}
        </Transition>
    }
}
