//! The Security page: the scan's report, with "Narrow to what it uses" on keys whose scopes
//! are wider than their requests needed.

use super::api::{security_scan, NarrowKeyScopes};
use super::{KeyFinding, KeyIssue, SecurityReport};
use crate::keys::{Access, Scopes};
use crate::ui::{action_error, ErrorNote};
use leptos::prelude::*;
use leptos_meta::Title;

fn scopes_text(scopes: &Scopes) -> String {
    let held: Vec<String> = scopes
        .iter()
        .filter(|(_, a)| **a != Access::None)
        .map(|(r, a)| format!("{r}:{}", if *a == Access::Write { "write" } else { "read" }))
        .collect();
    if held.is_empty() {
        "none".into()
    } else {
        held.join(", ")
    }
}

#[component]
pub fn SecurityPage() -> impl IntoView {
    let orgs = Resource::new(|| (), |_| crate::orgs::api::my_organizations());
    view! {
        <Title text="Security" />
        <h1>"Security"</h1>
        <p class="muted">"What a security review would ask, answered from this instance's own state. "
            <code>"keyward security-scan"</code>" prints the same report."</p>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match orgs.await {
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                    // The active organization (the top bar's switcher) comes first.
                    Ok(orgs) => match orgs.into_iter().find(|o| o.permissions.iter().any(|p| p == "audit:read")) {
                        None => view! { <p>"You cannot read the security report of any organization."</p> }.into_any(),
                        Some(org) => view! { <Report org=org.organization_id /> }.into_any(),
                    },
                }
            })}
        </Transition>
    }
}

#[component]
fn Report(org: String) -> impl IntoView {
    let narrow = ServerAction::<NarrowKeyScopes>::new();
    let report = Resource::new(
        move || narrow.version().get(),
        move |_| security_scan(org.clone()),
    );
    view! {
        {action_error(narrow.value())}
        {move || narrow.value().get().and_then(Result::ok).map(|k| view! {
            <p role="status">{format!("{} now holds: {}.", k.name, scopes_text(&k.scopes))}</p>
        })}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match report.await {
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                    Ok(r) => view! { <Sections report=r narrow /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Sections(report: SecurityReport, narrow: ServerAction<NarrowKeyScopes>) -> impl IntoView {
    let SecurityReport {
        generated_at,
        instance,
        config,
        admins_without_two_factor,
        keys,
        endpoints,
        ..
    } = report;
    let without = endpoints.iter().filter(|e| e.no_permission).count();
    view! {
        <p class="muted">"Scanned " <crate::ui::time::Time at=generated_at /> "."</p>
        {instance.then(|| view! {
            <section class="card" role="region" aria-label="Configuration">
                <h2>"Configuration"</h2>
                {if config.is_empty() {
                    view! { <p>"No configuration risk found."</p> }.into_any()
                } else {
                    view! {
                        <ul>
                            {config.into_iter().map(|c| view! {
                                <li><strong>{c.severity.as_str()}</strong>" "<code>{c.code}</code>": "{c.message}</li>
                            }).collect_view()}
                        </ul>
                    }.into_any()
                }}
            </section>
        })}
        <section class="card" role="region" aria-label="Administrators without two-factor authentication">
            <h2>"Administrators without two-factor authentication"</h2>
            {if admins_without_two_factor.is_empty() {
                view! { <p>"Every owner and admin has a second factor."</p> }.into_any()
            } else {
                view! {
                    <ul>
                        {admins_without_two_factor.into_iter().map(|a| view! {
                            <li>{format!("{} ({} of {})", a.email, a.role, a.organization)}</li>
                        }).collect_view()}
                    </ul>
                    <p class="hint">"Settings → Policies → “Require two-factor authentication” holds them to enrolling at their next sign-in."</p>
                }.into_any()
            }}
        </section>
        <section class="card" role="region" aria-label="Keys">
            <h2>"Keys"</h2>
            {if keys.is_empty() {
                view! { <p>"No active key has an issue."</p> }.into_any()
            } else {
                view! {
                    <table aria-label="Key findings">
                        <thead><tr>
                            <th scope="col">"Key"</th>
                            <th scope="col">"Issues"</th>
                            <th scope="col">"Scopes"</th>
                            <th scope="col">"Used in 30 days"</th>
                            <th scope="col">"Action"</th>
                        </tr></thead>
                        <tbody>
                            {keys.into_iter().map(|k| view! { <KeyRow key=k narrow /> }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
        {instance.then(|| view! {
            <section class="card" role="region" aria-label="Endpoints">
                <h2>"Endpoints"</h2>
                <p>{format!("{} REST routes and server functions; {without} require no permission (sign-in, health checks, the caller's own data).", endpoints.len())}</p>
                <details>
                    <summary>"Every endpoint and what it requires"</summary>
                    <table aria-label="Endpoints">
                        <thead><tr><th scope="col">"Endpoint"</th><th scope="col">"Kind"</th><th scope="col">"Requires"</th></tr></thead>
                        <tbody>
                            {endpoints.into_iter().map(|e| view! {
                                <tr class=if e.no_permission { "flagged" } else { "" }>
                                    <td><code>{e.name}</code></td>
                                    <td>{e.kind}</td>
                                    <td>{e.requires}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </details>
            </section>
        })}
    }
}

#[component]
fn KeyRow(key: KeyFinding, narrow: ServerAction<NarrowKeyScopes>) -> impl IntoView {
    let issues: Vec<&str> = key.issues.iter().map(|i| i.label()).collect();
    let can_narrow = key.issues.contains(&KeyIssue::WiderThanUsed);
    let label = format!("Narrow {} to what it uses", key.name);
    view! {
        <tr>
            <td>{key.name.clone()}" "<code>{key.display_prefix.clone()}</code></td>
            <td>{issues.join("; ")}</td>
            <td>{scopes_text(&key.scopes)}</td>
            <td>{key.used.as_ref().map_or("nothing".to_string(), scopes_text)}</td>
            <td>
                {can_narrow.then(|| view! {
                    <ActionForm action=narrow>
                        <input type="hidden" name="organization_id" value=key.organization_id.clone() />
                        <input type="hidden" name="key_id" value=key.key_id.clone() />
                        <button type="submit" aria-label=label.clone()>"Narrow to what it uses"</button>
                    </ActionForm>
                })}
            </td>
        </tr>
    }
}
