//! The API keys console: list, create with a reveal-once panel, enable/disable, revoke with
//! confirmation, roll with a grace period.

use super::api::{list_keys, BulkKeys, CreateKey, RollKey, SetKeyStatus};
use super::{ApiKey, KeyStatus};
use crate::orgs::api::my_organizations;
use crate::orgs::OrgMembership;
use crate::ui::{action_error, ErrorNote};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn KeysPage() -> impl IntoView {
    let orgs = Resource::new(|| (), |_| my_organizations());
    view! {
        <Title text="API keys" />
        <h1>"API keys"</h1>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match orgs.await {
                    Ok(orgs) => {
                        let orgs: Vec<OrgMembership> = orgs
                            .into_iter()
                            .filter(|o| o.permissions.iter().any(|p| p == "keys:read"))
                            .collect();
                        if orgs.is_empty() {
                            view! { <p>"You cannot see the keys of any organization."</p> }.into_any()
                        } else {
                            view! { <OrgKeys orgs /> }.into_any()
                        }
                    }
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// Shows a secret once, with a copy button and a warning; closing forgets it.
#[component]
fn Reveal(secret: RwSignal<Option<String>>) -> impl IntoView {
    let copied = RwSignal::new(false);
    move || {
        secret.get().map(|key| {
            let to_copy = key.clone();
            view! {
                <section class="card reveal" role="region" aria-label="New API key">
                    <h2>"Copy your new key now"</h2>
                    <p class="warning">"This is the only time the key is shown. Store it in a secret manager; Keyward keeps only a hash."</p>
                    <div class="password">
                        <input readonly aria-label="New API key" value=key.clone() />
                        <button
                            type="button"
                            on:click=move |_| {
                                let clipboard = window().navigator().clipboard();
                                let _ = clipboard.write_text(&to_copy);
                                copied.set(true);
                            }
                        >
                            {move || if copied.get() { "Copied" } else { "Copy" }}
                        </button>
                    </div>
                    <button type="button" class="secondary" on:click=move |_| { secret.set(None); copied.set(false); }>
                        "I have stored it"
                    </button>
                </section>
            }
        })
    }
}

#[component]
fn OrgKeys(orgs: Vec<OrgMembership>) -> impl IntoView {
    let org = RwSignal::new(orgs[0].organization_id.clone());
    let can_write = {
        let orgs = orgs.clone();
        move || {
            orgs.iter().any(|o| {
                o.organization_id == org.get() && o.permissions.iter().any(|p| p == "keys:write")
            })
        }
    };
    let create = ServerAction::<CreateKey>::new();
    let status = ServerAction::<SetKeyStatus>::new();
    let roll = ServerAction::<RollKey>::new();
    let bulk = ServerAction::<BulkKeys>::new();
    let selected = RwSignal::new(Vec::<String>::new());
    let keys = Resource::new(
        move || {
            (
                org.get(),
                create.version().get(),
                status.version().get(),
                roll.version().get(),
                bulk.version().get(),
            )
        },
        |(org, ..)| list_keys(org),
    );
    let run_bulk = move |action: &'static str| {
        move |_| {
            bulk.dispatch(BulkKeys {
                organization_id: org.get_untracked(),
                key_ids: selected.get_untracked(),
                action: action.into(),
            });
            selected.set(Vec::new());
        }
    };
    let secret = RwSignal::new(None::<String>);
    let show_create = RwSignal::new(false);
    // Move a fresh secret into the reveal panel and drop it from the action's memory.
    Effect::new(move |_| {
        if let Some(Ok(created)) = create.value().get() {
            secret.set(Some(created.key));
            show_create.set(false);
            create.value().set(None);
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(rolled)) = roll.value().get() {
            secret.set(Some(rolled.key));
            roll.value().set(None);
        }
    });
    view! {
        <div class="toolbar">
            <label for="org">"Organization"</label>
            <select id="org" on:change=move |ev| org.set(event_target_value(&ev))>
                {orgs.iter().map(|o| view! { <option value=o.organization_id.clone()>{o.name.clone()}</option> }).collect_view()}
            </select>
            <Show when=can_write.clone()>
                <button type="button" on:click=move |_| show_create.update(|s| *s = !*s)>"Create key"</button>
            </Show>
        </div>
        <Reveal secret />
        <Show when=move || show_create.get()>
            <section class="card" role="region" aria-label="Create an API key">
                <h2>"Create an API key"</h2>
                <ActionForm action=create>
                    <input type="hidden" name="organization_id" prop:value=move || org.get() />
                    <label for="key-name">"Name"</label>
                    <input id="key-name" name="name" required maxlength="100" />
                    <label for="key-env">"Environment"</label>
                    <select id="key-env" name="environment">
                        <option value="live">"Live"</option>
                        <option value="test">"Test"</option>
                    </select>
                    <label for="key-category">"Access"</label>
                    <select id="key-category" name="category">
                        <option value="basic">"Basic: manage keys, read the organization"</option>
                        <option value="read_only">"Read-only"</option>
                        <option value="admin">"Admin: everything you may grant"</option>
                    </select>
                    <label for="key-ips">"IP allow-list"</label>
                    <textarea id="key-ips" name="ip_allowlist" rows="2" placeholder="10.0.0.0/8, 2001:db8::/32 (empty: any address)"></textarea>
                    <label for="key-expiry">"Expires in (days)"</label>
                    <input id="key-expiry" name="expires_in_days" type="number" min="1" max="3660" placeholder="never" />
                    <button type="submit">"Create"</button>
                </ActionForm>
            </section>
        </Show>
        <Show when=move || !selected.get().is_empty()>
            <div class="toolbar" role="group" aria-label="Bulk actions">
                <span>{move || format!("{} selected", selected.get().len())}</span>
                <button type="button" class="secondary" on:click=run_bulk("disable")>"Disable selected"</button>
                <button type="button" class="secondary" on:click=run_bulk("enable")>"Enable selected"</button>
                <button type="button" class="danger" on:click=run_bulk("revoke")>"Revoke selected"</button>
            </div>
        </Show>
        {move || {
            bulk.value().get().map(|result| match result {
                Ok(items) => view! {
                    <ul role="status" aria-label="Bulk results" class="card">
                        {items
                            .into_iter()
                            .map(|o| {
                                let outcome = if o.ok {
                                    o.status.map(|s| s.as_str().to_string()).unwrap_or_default()
                                } else {
                                    format!("failed: {}", o.message.unwrap_or_default())
                                };
                                view! { <li>{format!("{}: {outcome}", o.id)}</li> }
                            })
                            .collect_view()}
                    </ul>
                }
                .into_any(),
                Err(error) => view! { <ErrorNote error /> }.into_any(),
            })
        }}
        {action_error(create.value())}
        {action_error(status.value())}
        {action_error(roll.value())}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match keys.await {
                    Ok(list) if list.is_empty() => view! { <p class="muted">"No keys yet."</p> }.into_any(),
                    Ok(list) => view! {
                        <table aria-label="API keys">
                            <thead>
                                <tr>
                                    <th scope="col"><span class="sr-only">"Select"</span></th>
                                    <th scope="col">"Name"</th>
                                    <th scope="col">"Key"</th>
                                    <th scope="col">"Status"</th>
                                    <th scope="col">"Access"</th>
                                    <th scope="col">"Expires"</th>
                                    <th scope="col">"Actions"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {list.into_iter().map(|k| view! { <KeyRow key=k org status roll selected /> }).collect_view()}
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

#[component]
fn KeyRow(
    key: ApiKey,
    org: RwSignal<String>,
    status: ServerAction<SetKeyStatus>,
    roll: ServerAction<RollKey>,
    selected: RwSignal<Vec<String>>,
) -> impl IntoView {
    let confirming = RwSignal::new(false);
    let rolling = RwSignal::new(false);
    let grace = RwSignal::new("3600".to_string());
    let id = StoredValue::new(key.id.clone());
    let dispatch = move |action: &'static str| {
        move |_| {
            status.dispatch(SetKeyStatus {
                organization_id: org.get_untracked(),
                key_id: id.get_value(),
                action: action.into(),
                reason: String::new(),
            });
        }
    };
    let active = key.status == KeyStatus::Active;
    let revocable = key.status != KeyStatus::Revoked;
    let rollable = active && key.rolled_to_key_id.is_none();
    let grace_id = format!("grace-{}", key.id);
    let name = key.name.clone();
    view! {
        <tr>
            <td>
                <input
                    type="checkbox"
                    aria-label=format!("Select {}", key.name)
                    on:change=move |ev| {
                        let checked = event_target_checked(&ev);
                        let key_id = id.get_value();
                        selected.update(|s| {
                            s.retain(|x| *x != key_id);
                            if checked {
                                s.push(key_id);
                            }
                        });
                    }
                />
            </td>
            <td>{key.name.clone()}</td>
            <td><code>{format!("{}…", key.display_prefix)}</code></td>
            <td><span class=format!("badge status-{}", key.status.as_str())>{key.status.as_str()}</span></td>
            <td>{key.category.as_str()}</td>
            <td>{key.expires_at.clone().unwrap_or_else(|| "never".into())}</td>
            <td class="actions">
                <Show when=move || active>
                    <button type="button" class="secondary" aria-label=format!("Disable {name}") on:click=dispatch("disable")>"Disable"</button>
                </Show>
                <Show when=move || key.status == KeyStatus::Disabled>
                    <button type="button" class="secondary" on:click=dispatch("enable")>"Enable"</button>
                </Show>
                <Show when=move || rollable>
                    <button type="button" class="secondary" on:click=move |_| rolling.update(|r| *r = !*r)>"Roll"</button>
                </Show>
                <Show when=move || revocable && !confirming.get()>
                    <button type="button" class="danger" on:click=move |_| confirming.set(true)>"Revoke"</button>
                </Show>
                <Show when=move || confirming.get()>
                    <span role="group" aria-label="Confirm revocation">
                        "Revoke for good? "
                        <button type="button" class="danger" on:click=dispatch("revoke")>"Confirm revoke"</button>
                        <button type="button" class="secondary" on:click=move |_| confirming.set(false)>"Cancel"</button>
                    </span>
                </Show>
                <Show when=move || rolling.get()>
                    <span role="group" aria-label="Roll key">
                        <label for=grace_id.clone()>"Old key keeps working for"</label>
                        <select id=grace_id.clone() on:change=move |ev| grace.set(event_target_value(&ev))>
                            <option value="0">"Stop now"</option>
                            <option value="3600" selected>"1 hour"</option>
                            <option value="86400">"24 hours"</option>
                            <option value="604800">"7 days"</option>
                        </select>
                        <button
                            type="button"
                            on:click=move |_| {
                                let grace_seconds = grace.get_untracked().parse().unwrap_or(3600);
                                roll.dispatch(RollKey { organization_id: org.get_untracked(), key_id: id.get_value(), grace_seconds });
                                rolling.set(false);
                            }
                        >
                            "Roll key"
                        </button>
                    </span>
                </Show>
            </td>
        </tr>
    }
}
