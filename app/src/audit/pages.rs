//! The audit log page: filters, and the entries newest first with who, what, on what, where
//! from, and each entry's place in the tamper-evident chain.

use super::api::audit_log;
use super::AuditEntry;
use crate::ui::{count, ErrorNote};
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

impl Filters {
    /// The export's address for these filters.
    fn export_url(&self, org: &str, format: &str) -> String {
        use crate::ui::urlencode;
        format!(
            "/audit/export?organization_id={}&format={format}&actor={}&action={}&target={}&from={}&to={}",
            urlencode(org),
            urlencode(&self.actor),
            urlencode(&self.action),
            urlencode(&self.target),
            urlencode(&self.from),
            urlencode(&self.to),
        )
    }
}

/// One entry in full: who (and who impersonated them), what, on what, before and after,
/// from where, and its place in the chain.
#[component]
fn EntryDetail(entry: AuditEntry, close: RwSignal<Option<AuditEntry>>) -> impl IntoView {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    let json = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
            .unwrap_or_else(|| "—".into())
    };
    let who = |email: &Option<String>, id: &Option<String>| match (email, id) {
        (Some(email), Some(id)) => format!("{email} ({id})"),
        (None, Some(id)) => id.clone(),
        _ => "—".into(),
    };
    view! {
        <section class="card" role="region" aria-label="Audit entry">
            <h2>{format!("Audit entry {}", entry.event_id)}</h2>
            <dl class="details">
                <dt>"When (UTC)"</dt><dd>{entry.at.clone()}</dd>
                <dt>"Action"</dt><dd><code>{entry.action.clone()}</code></dd>
                <dt>"Actor"</dt><dd>{who(&entry.actor_email, &entry.actor)}</dd>
                <dt>"Impersonated by"</dt><dd>{who(&entry.impersonator_email, &entry.impersonator)}</dd>
                <dt>"Target"</dt><dd>{who(&entry.target_email, &entry.target)}</dd>
                <dt>"Organization"</dt><dd>{show(&entry.organization_id)}</dd>
                <dt>"Address"</dt><dd>{show(&entry.ip)}</dd>
                <dt>"User agent"</dt><dd>{show(&entry.user_agent)}</dd>
                <dt>"Request id"</dt><dd><code>{show(&entry.request_id)}</code></dd>
                <dt>"Chain position"</dt><dd>{entry.seq.map_or("pending".to_string(), |s| format!("#{s}"))}</dd>
                <dt>"Before"</dt><dd><pre aria-label="Before">{json(&entry.before)}</pre></dd>
                <dt>"After"</dt><dd><pre aria-label="After">{json(&entry.after)}</pre></dd>
                <dt>"All data"</dt><dd><pre>{serde_json::to_string_pretty(&entry.data).unwrap_or_default()}</pre></dd>
            </dl>
            <button type="button" class="secondary" on:click=move |_| close.set(None)>"Close"</button>
        </section>
    }
}

#[component]
fn Log(org: String) -> impl IntoView {
    let filters = RwSignal::new(Filters::default());
    let page = RwSignal::new(1u32);
    let selected = RwSignal::new(None::<AuditEntry>);
    let export_org = org.clone();
    let export = move |format: &'static str| {
        let org = export_org.clone();
        move || filters.with(|f| f.export_url(&org, format))
    };
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
            <a class="button secondary" href=export("csv") download="">"Export CSV"</a>
            <a class="button secondary" href=export("json") download="">"Export JSON"</a>
        </div>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match entries.await {
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                    Ok(p) => {
                        let pages = (p.total as u32).div_ceil(super::AUDIT_PER_PAGE).max(1);
                        view! {
                            <p class="muted">{count(p.total, "entry", "entries")}</p>
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
                                            <td>{e.actor_email.clone().or(e.actor.clone()).unwrap_or_else(|| "—".into())}
                                                {e.impersonator_email.clone().or(e.impersonator.clone()).map(|admin| view! { <span class="muted">{format!(" (impersonated by {admin})")}</span> })}</td>
                                            <td>{e.target_email.clone().or(e.target.clone()).unwrap_or_else(|| "—".into())}</td>
                                            <td>{e.ip.clone().unwrap_or_else(|| "—".into())}</td>
                                            <td>{e.seq.map_or("pending".to_string(), |s| format!("#{s}"))}</td>
                                            <td><button type="button" class="secondary"
                                                on:click={
                                                    let e = e.clone();
                                                    move |_| selected.set(Some(e.clone()))
                                                }>{format!("Details of {}", e.event_id)}</button></td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            {move || selected.get().map(|entry| view! { <EntryDetail entry close=selected /> })}
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
