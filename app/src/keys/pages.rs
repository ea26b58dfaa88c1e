//! The API keys console: the list (search, filters, sort, pages, bulk actions), create with a
//! reveal-once panel, import and export, and the key page (settings editor, timeline, actions).

use super::api::{
    export_keys, get_key, key_history, list_keys, BulkKeys, CreateKey, ImportKeys, RollKey,
    SetKeyStatus, UpdateKey,
};
use super::{ApiKey, CreatedKey, ImportOutcome, KeyQuery, KeyStatus};
use crate::error::AppError;
use crate::orgs::api::my_organizations;
use crate::orgs::OrgMembership;
use crate::ui::{action_error, CopyButton, ErrorNote};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

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

/// A secret and its signing secret, shown once.
#[derive(Clone, Debug, PartialEq)]
struct Secrets {
    key: String,
    signing_secret: String,
}

impl From<CreatedKey> for Secrets {
    fn from(c: CreatedKey) -> Self {
        Secrets {
            key: c.key,
            signing_secret: c.signing_secret,
        }
    }
}

/// A read-only secret with a Copy button.
#[component]
fn CopyField(label: &'static str, value: String) -> impl IntoView {
    let to_copy = value.clone();
    view! {
        <div class="password">
            <input readonly aria-label=label value=value />
            <CopyButton label=format!("Copy {}", label.to_lowercase()) text=to_copy />
        </div>
    }
}

/// Shows a new key once, with copy buttons and a warning; closing forgets it.
#[component]
fn Reveal(secret: RwSignal<Option<Secrets>>) -> impl IntoView {
    move || {
        secret.get().map(|s| {
            view! {
                <section class="card reveal" role="region" aria-label="New API key">
                    <h2>"Copy your new key now"</h2>
                    <p class="warning">"This is the only time the key is shown. Store it in a secret manager; Keyward keeps only a hash."</p>
                    <CopyField label="New API key" value=s.key />
                    <p class="hint">"Signing secret, for the optional Signature header (also shown only now):"</p>
                    <CopyField label="Signing secret" value=s.signing_secret />
                    <button type="button" class="secondary" on:click=move |_| secret.set(None)>
                        "I have stored it"
                    </button>
                </section>
            }
        })
    }
}

/// `data:` URL of a text file, for a download link (no server round trip, no secret in it).
fn data_url(mime: &str, text: &str) -> String {
    let mut out = format!("data:{mime};charset=utf-8,");
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The status, enable/disable, roll and revoke controls of one key (list row and key page).
#[component]
fn KeyActions(
    key: ApiKey,
    #[prop(into)] org: Signal<String>,
    status: ServerAction<SetKeyStatus>,
    roll: ServerAction<RollKey>,
) -> impl IntoView {
    let confirming = RwSignal::new(false);
    let rolling = RwSignal::new(false);
    let grace = RwSignal::new("3600".to_string());
    let custom_hours = RwSignal::new(String::new());
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
    let disabled = key.status == KeyStatus::Disabled;
    let revocable = key.status != KeyStatus::Revoked;
    let rollable = active && key.rolled_to_key_id.is_none();
    let grace_id = format!("grace-{}", key.id);
    let hours_id = StoredValue::new(format!("grace-hours-{}", key.id));
    let name = key.name.clone();
    view! {
        <Show when=move || active>
            <button type="button" class="secondary" aria-label=format!("Disable {name}") on:click=dispatch("disable")>"Disable"</button>
        </Show>
        <Show when=move || disabled>
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
                    <option value="custom">"Custom…"</option>
                </select>
                <Show when=move || grace.get() == "custom">
                    <label for=hours_id.get_value()>"Hours"</label>
                    <input id=hours_id.get_value() type="number" min="0" max="2160" on:input=move |ev| custom_hours.set(event_target_value(&ev)) />
                </Show>
                <button
                    type="button"
                    on:click=move |_| {
                        let grace_seconds = match grace.get_untracked().as_str() {
                            // Out-of-range or empty input is sent as is and refused by the server
                            // with a readable message.
                            "custom" => custom_hours.get_untracked().trim().parse::<i64>().map_or(-1, |h| h * 3600),
                            g => g.parse().unwrap_or(3600),
                        };
                        roll.dispatch(RollKey { organization_id: org.get_untracked(), key_id: id.get_value(), grace_seconds });
                        rolling.set(false);
                    }
                >
                    "Roll key"
                </button>
            </span>
        </Show>
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
    let import = ServerAction::<ImportKeys>::new();
    let selected = RwSignal::new(Vec::<String>::new());
    let query = RwSignal::new(KeyQuery::default());
    let keys = Resource::new(
        move || {
            (
                org.get(),
                query.get(),
                create.version().get(),
                status.version().get(),
                roll.version().get(),
                bulk.version().get(),
                import.version().get(),
            )
        },
        |(org, query, ..)| list_keys(org, query),
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
    let secret = RwSignal::new(None::<Secrets>);
    let show_create = RwSignal::new(false);
    let show_import = RwSignal::new(false);
    // Move a fresh secret into the reveal panel and drop it from the action's memory.
    Effect::new(move |_| {
        if let Some(Ok(created)) = create.value().get() {
            secret.set(Some(created.into()));
            show_create.set(false);
            create.value().set(None);
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(rolled)) = roll.value().get() {
            secret.set(Some(rolled.into()));
            roll.value().set(None);
        }
    });
    // Any filter change starts again at page 1.
    let set_filter = move |f: fn(&mut KeyQuery, Option<String>)| {
        move |ev: leptos::ev::Event| {
            let v = event_target_value(&ev);
            query.update(|q| {
                f(q, Some(v).filter(|v| !v.is_empty()));
                q.page = None;
            });
        }
    };
    view! {
        <div class="toolbar">
            <label for="org">"Organization"</label>
            <select id="org" on:change=move |ev| { org.set(event_target_value(&ev)); query.update(|q| q.page = None); }>
                {orgs.iter().map(|o| view! { <option value=o.organization_id.clone()>{o.name.clone()}</option> }).collect_view()}
            </select>
            <Show when=can_write.clone()>
                <button type="button" on:click=move |_| show_create.update(|s| *s = !*s)>"Create key"</button>
                <button type="button" class="secondary" on:click=move |_| show_import.update(|s| *s = !*s)>"Import keys"</button>
            </Show>
            <Export org />
        </div>
        <Reveal secret />
        <Show when=move || show_create.get()>
            <CreateForm org create />
        </Show>
        <Show when=move || show_import.get()>
            <ImportPanel org import />
        </Show>
        <div class="toolbar filters" role="search" aria-label="Filter keys">
            <label for="key-search">"Search"</label>
            <input id="key-search" type="search" placeholder="name, description or prefix" on:input=set_filter(|q, v| q.q = v) />
            {filter_select("filter-status", "Status", &[("", "Any"), ("active", "Active"), ("disabled", "Disabled"), ("expired", "Expired"), ("revoked", "Revoked")], set_filter(|q, v| q.status = v))}
            {filter_select("filter-category", "Access level", &[("", "Any"), ("basic", "Basic"), ("read_only", "Read-only"), ("admin", "Admin"), ("custom", "Custom")], set_filter(|q, v| q.category = v))}
            {filter_select("filter-owner", "Owner", &[("", "Any"), ("org", "Organization keys"), ("personal", "Personal tokens")], set_filter(|q, v| q.owner = v))}
            {filter_select("filter-expiring", "Expiring within", &[("", "Any time"), ("7", "7 days"), ("30", "30 days"), ("90", "90 days")], set_filter(|q, v| q.expiring_within_days = v.and_then(|d| d.parse().ok())))}
            {filter_select("sort", "Sort", &[("created_desc", "Newest first"), ("created_asc", "Oldest first"), ("name", "Name"), ("expires_at", "Expiry"), ("last_used_desc", "Last used")], set_filter(|q, v| q.sort = v))}
        </div>
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
                    Ok(list) if list.total == 0 => view! { <p class="muted">"No keys match."</p> }.into_any(),
                    Ok(list) => {
                        let pages = (list.total + list.per_page - 1) / list.per_page;
                        let page = list.page;
                        view! {
                            <table aria-label="API keys">
                                <thead>
                                    <tr>
                                        <th scope="col"><span class="sr-only">"Select"</span></th>
                                        <th scope="col">"Name"</th>
                                        <th scope="col">"Key"</th>
                                        <th scope="col">"Status"</th>
                                        <th scope="col">"Access"</th>
                                        <th scope="col">"Expires"</th>
                                        <th scope="col">"Last used"</th>
                                        <th scope="col">"Actions"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {list.data.into_iter().map(|k| view! { <KeyRow key=k org status roll selected /> }).collect_view()}
                                </tbody>
                            </table>
                            <nav class="toolbar" aria-label="Pages">
                                <button type="button" class="secondary" disabled={page <= 1} on:click=move |_| query.update(|q| q.page = Some(page - 1))>"Previous page"</button>
                                <span>{format!("Page {page} of {pages} · {} keys", list.total)}</span>
                                <button type="button" class="secondary" disabled={page >= pages} on:click=move |_| query.update(|q| q.page = Some(page + 1))>"Next page"</button>
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

/// A labelled select of the filter bar.
fn filter_select(
    id: &'static str,
    label: &'static str,
    options: &'static [(&'static str, &'static str)],
    on_change: impl FnMut(leptos::ev::Event) + 'static,
) -> impl IntoView {
    view! {
        <label for=id>{label}</label>
        <select id=id on:change=on_change>
            {options.iter().map(|(value, text)| view! { <option value=*value>{*text}</option> }).collect_view()}
        </select>
    }
}

#[component]
fn CreateForm(org: RwSignal<String>, create: ServerAction<CreateKey>) -> impl IntoView {
    view! {
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
                <label class="check">
                    <input type="checkbox" name="require_signature" value="on" />
                    "Require signed requests"
                </label>
                <label class="check">
                    <input type="checkbox" name="personal" value="on" />
                    "Personal access token (acts as me, never beyond my permissions)"
                </label>
                <button type="submit">"Create"</button>
            </ActionForm>
        </section>
    }
}

/// Export buttons: fetch the file from the server, then offer it as a download link.
#[component]
fn Export(org: RwSignal<String>) -> impl IntoView {
    let export = Action::new(move |format: &&'static str| {
        let format = *format;
        async move {
            export_keys(org.get_untracked(), format.to_string())
                .await
                .map(|text| (format, text))
        }
    });
    view! {
        <button type="button" class="secondary" on:click=move |_| { export.dispatch("json"); }>"Export JSON"</button>
        <button type="button" class="secondary" on:click=move |_| { export.dispatch("csv"); }>"Export CSV"</button>
        {move || export.value().get().map(|r| match r {
            Ok((format, text)) => {
                let (mime, file) = match format {
                    "csv" => ("text/csv", "keyward-keys.csv"),
                    _ => ("application/json", "keyward-keys.json"),
                };
                view! { <a href=data_url(mime, &text) download=file>{format!("Download {file}")}</a> }.into_any()
            }
            Err(error) => view! { <ErrorNote error /> }.into_any(),
        })}
    }
}

/// Reads the chosen file into `text` (and guesses the format from its name).
#[cfg(feature = "hydrate")]
fn read_file(ev: leptos::ev::Event, text: RwSignal<String>, format: RwSignal<String>) {
    use wasm_bindgen::JsCast;
    let Some(input) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
    else {
        return;
    };
    let Some(file) = input.files().and_then(|f| f.get(0)) else {
        return;
    };
    format.set(
        if file.name().to_lowercase().ends_with(".csv") {
            "csv"
        } else {
            "json"
        }
        .into(),
    );
    leptos::task::spawn_local(async move {
        if let Ok(value) = wasm_bindgen_futures::JsFuture::from(file.text()).await {
            text.set(value.as_string().unwrap_or_default());
        }
    });
}

#[cfg(not(feature = "hydrate"))]
fn read_file(_: leptos::ev::Event, _: RwSignal<String>, _: RwSignal<String>) {}

#[component]
fn ImportPanel(org: RwSignal<String>, import: ServerAction<ImportKeys>) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let format = RwSignal::new("json".to_string());
    let preview = Action::new(move |_: &()| {
        super::api::import_keys(
            org.get_untracked(),
            format.get_untracked(),
            text.get_untracked(),
            true,
        )
    });
    view! {
        <section class="card" role="region" aria-label="Import keys">
            <h2>"Import keys"</h2>
            <p class="hint">
                "A JSON or CSV file: a Keyward export (each row gets a new key, shown once), or keys from another system with "
                <code>"key"</code>" (plaintext) or "<code>"key_hash"</code>" (hex SHA-256). Preview first; each row is reported."
            </p>
            <label for="import-file">"File (JSON or CSV)"</label>
            <input id="import-file" type="file" accept=".json,.csv,application/json,text/csv" on:change=move |ev| read_file(ev, text, format) />
            <label for="import-format">"Format"</label>
            <select id="import-format" prop:value=move || format.get() on:change=move |ev| format.set(event_target_value(&ev))>
                <option value="json">"JSON"</option>
                <option value="csv">"CSV"</option>
            </select>
            <label for="import-text">"Keys to import"</label>
            <textarea id="import-text" rows="6" prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev))></textarea>
            <div class="toolbar">
                <button type="button" class="secondary" on:click=move |_| { import.value().set(None); preview.dispatch(()); }>"Preview"</button>
                <Show when=move || matches!(preview.value().get(), Some(Ok(ref rows)) if rows.iter().any(|r| r.ok))>
                    <button type="button" on:click=move |_| { import.dispatch(ImportKeys {
                        organization_id: org.get_untracked(),
                        format: format.get_untracked(),
                        data: text.get_untracked(),
                        dry_run: false,
                    }); preview.value().set(None); }>"Import"</button>
                </Show>
            </div>
            {move || preview.value().get().map(|r| view! { <ImportResults label="Import preview" result=r /> })}
            {move || import.value().get().map(|r| view! { <ImportResults label="Import results" result=r /> })}
        </section>
    }
}

#[component]
fn ImportResults(
    label: &'static str,
    result: Result<Vec<ImportOutcome>, AppError>,
) -> impl IntoView {
    match result {
        Err(error) => view! { <ErrorNote error /> }.into_any(),
        Ok(rows) => {
            let ok = rows.iter().filter(|r| r.ok).count();
            let issued = rows.iter().any(|r| r.key.is_some());
            view! {
                <p role="status">{format!("{label}: {ok} of {} rows ok", rows.len())}</p>
                <Show when=move || issued>
                    <p class="warning">"New keys were issued for rows without key material. Copy them now: they are not shown again."</p>
                </Show>
                <table aria-label=label>
                    <thead><tr><th scope="col">"Row"</th><th scope="col">"Name"</th><th scope="col">"Result"</th><th scope="col">"Detail"</th></tr></thead>
                    <tbody>
                        {rows.into_iter().map(|r| view! {
                            <tr>
                                <td>{r.row}</td>
                                <td>{r.name.clone()}</td>
                                <td>{r.action.clone()}</td>
                                <td>
                                    {r.message.clone()}
                                    {r.key.clone().map(|k| view! { <CopyField label="Issued key" value=k /> })}
                                </td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            }
            .into_any()
        }
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
    let id = StoredValue::new(key.id.clone());
    let href = format!("/keys/{}/{}", key.organization_id, key.id);
    let name = key.name.clone();
    let personal = key.owner_user_id.is_some();
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
            <td>
                <A href=href>{name.clone()}</A>
                {personal.then(|| view! { " " <span class="badge">"personal"</span> })}
            </td>
            <td><code>{format!("{}…", key.display_prefix)}</code></td>
            <td><span class=format!("badge status-{}", key.status.as_str())>{key.status.as_str()}</span></td>
            <td>{key.category.as_str()}</td>
            <td>{key.expires_at.clone().unwrap_or_else(|| "never".into())}</td>
            <td>{key.last_used_at.clone().unwrap_or_else(|| "never".into())}</td>
            <td class="actions"><KeyActions key org status roll /></td>
        </tr>
    }
}

/// `/keys/:org/:id`: one key, its settings editor, timeline and actions.
#[component]
pub fn KeyPage() -> impl IntoView {
    let params = use_params_map();
    let org = Signal::derive(move || params.read().get("org").unwrap_or_default());
    let key_id = Signal::derive(move || params.read().get("id").unwrap_or_default());
    let status = ServerAction::<SetKeyStatus>::new();
    let roll = ServerAction::<RollKey>::new();
    let update = ServerAction::<UpdateKey>::new();
    let set_limit = ServerAction::<crate::keys::api::SetKeyLimit>::new();
    let secret = RwSignal::new(None::<Secrets>);
    Effect::new(move |_| {
        if let Some(Ok(rolled)) = roll.value().get() {
            secret.set(Some(rolled.into()));
            roll.value().set(None);
        }
    });
    let versions = move || {
        (
            org.get(),
            key_id.get(),
            status.version().get(),
            roll.version().get(),
            update.version().get(),
            set_limit.version().get(),
        )
    };
    let key = Resource::new(versions, |(org, id, ..)| get_key(org, id));
    let history = Resource::new(versions, |(org, id, ..)| key_history(org, id));
    view! {
        <p><A href="/keys">"← All keys"</A></p>
        <Reveal secret />
        {action_error(status.value())}
        {action_error(roll.value())}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match key.await {
                    Err(error) => view! { <h1>"Key"</h1> <ErrorNote error /> }.into_any(),
                    Ok(k) => view! {
                        <Title text=k.name.clone() />
                        <h1>{k.name.clone()}</h1>
                        <dl class="facts">
                            <dt>"Key"</dt><dd><code>{format!("{}…", k.display_prefix)}</code></dd>
                            <dt>"Status"</dt><dd><span class=format!("badge status-{}", k.status.as_str())>{k.status.as_str()}</span></dd>
                            <dt>"Environment"</dt><dd>{k.environment.clone()}</dd>
                            <dt>"Owner"</dt><dd>{k.owner_user_id.clone().map_or("organization".to_string(), |u| format!("personal token of {u}"))}</dd>
                            <dt>"Scopes"</dt><dd>{k.scopes.iter().map(|(r, a)| format!("{r}: {}", serde_json::to_string(a).unwrap_or_default().trim_matches('"'))).collect::<Vec<_>>().join(", ")}</dd>
                            <dt>"Created"</dt><dd>{k.created_at.clone()}</dd>
                            <dt>"Last used"</dt><dd>{k.last_used_at.clone().unwrap_or_else(|| "never".into())}</dd>
                            {k.rolled_to_key_id.clone().map(|to| view! { <dt>"Rolled to"</dt><dd><A href=format!("/keys/{}/{to}", k.organization_id)>{to.clone()}</A></dd> })}
                        </dl>
                        <div class="actions" role="group" aria-label="Key actions"><KeyActions key=k.clone() org status roll /></div>
                        <crate::usage::pages::KeyUsageSection key_id=k.id.clone() org refresh=Signal::derive(move || set_limit.version().get()) />
                        <crate::usage::pages::KeyLimitSection key=k.clone() org set_limit />
                        <KeySettings key=k org update />
                    }
                    .into_any(),
                }
            })}
        </Transition>
        <section class="card" role="region" aria-label="Timeline">
            <h2>"Timeline"</h2>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match history.await {
                        Err(error) => view! { <ErrorNote error /> }.into_any(),
                        Ok(events) => view! {
                            <ol class="timeline" aria-label="Status history">
                                {events.into_iter().map(|e| view! {
                                    <li>
                                        <strong>{e.kind.clone()}</strong>
                                        " · " <time>{e.occurred_at.clone()}</time>
                                        {e.actor.clone().map(|a| format!(" · by {a}"))}
                                        {e.source_ip.clone().map(|ip| format!(" · from {ip}"))}
                                        {e.reason.clone().map(|r| view! { <div class="muted">{format!("Reason: {r}")}</div> })}
                                    </li>
                                }).collect_view()}
                            </ol>
                        }
                        .into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn KeySettings(
    key: ApiKey,
    #[prop(into)] org: Signal<String>,
    update: ServerAction<UpdateKey>,
) -> impl IntoView {
    let editable = key.status != KeyStatus::Revoked;
    let saved = RwSignal::new(false);
    Effect::new(move |_| saved.set(matches!(update.value().get(), Some(Ok(_)))));
    let expires_on = key
        .expires_at
        .as_deref()
        .map(|e| e.chars().take(10).collect::<String>())
        .unwrap_or_default();
    view! {
        <section class="card" role="region" aria-label="Settings">
            <h2>"Settings"</h2>
            <Show when=move || !editable>
                <p class="muted">"A revoked key cannot be edited."</p>
            </Show>
            <ActionForm action=update>
                <input type="hidden" name="organization_id" prop:value=move || org.get() />
                <input type="hidden" name="key_id" value=key.id.clone() />
                <fieldset disabled={!editable}>
                    <label for="edit-name">"Name"</label>
                    <input id="edit-name" name="name" required maxlength="100" value=key.name.clone() />
                    <label for="edit-description">"Description"</label>
                    <textarea id="edit-description" name="description" rows="2" prop:value=key.description.clone()></textarea>
                    <label for="edit-category">"Access"</label>
                    <select id="edit-category" name="category" prop:value=key.category.as_str()>
                        <option value="basic">"Basic"</option>
                        <option value="read_only">"Read-only"</option>
                        <option value="admin">"Admin"</option>
                        <option value="custom">"Custom (keep the current scopes)"</option>
                    </select>
                    <label for="edit-ips">"IP allow-list"</label>
                    <textarea id="edit-ips" name="ip_allowlist" rows="2" prop:value=key.ip_allowlist.join("\n")></textarea>
                    <label for="edit-expiry">"Expires on (UTC, empty: never)"</label>
                    <input id="edit-expiry" name="expires_on" type="date" value=expires_on />
                    <label class="check">
                        <input type="checkbox" name="require_signature" value="on" checked=key.require_signature />
                        "Require signed requests"
                    </label>
                    <label for="edit-reason">"Reason (for the timeline)"</label>
                    <input id="edit-reason" name="reason" maxlength="500" />
                    <button type="submit">"Save changes"</button>
                </fieldset>
            </ActionForm>
            <Show when=move || saved.get()>
                <p role="status">"Saved."</p>
            </Show>
            {action_error(update.value())}
        </section>
    }
}
