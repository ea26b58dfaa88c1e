//! The keys list: search, filters, sort, pages, bulk actions, create.

use super::*;

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

#[component]
pub(super) fn OrgKeys(orgs: Vec<OrgMembership>) -> impl IntoView {
    let org = RwSignal::new(orgs[0].organization_id.clone());
    let can_write = {
        let orgs = orgs.clone();
        move || {
            orgs.iter().any(|o| {
                o.organization_id == org.get() && o.permissions.iter().any(|p| p == "keys:write")
            })
        }
    };
    let memberships = StoredValue::new(orgs.clone());
    let create = ServerAction::<CreateKey>::new();
    let status = ServerAction::<SetKeyStatus>::new();
    let roll = ServerAction::<RollKey>::new();
    let review = ServerAction::<ReviewKey>::new();
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
                review.version().get(),
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
            {filter_select("filter-status", "Status", &[("", "Any"), ("active", "Active"), ("disabled", "Disabled"), ("expired", "Expired"), ("revoked", "Revoked"), ("pending", "Pending approval")], set_filter(|q, v| q.status = v))}
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
        {action_error(review.value())}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match keys.await {
                    Ok(list) if list.total == 0 => view! { <p class="muted">"No keys match."</p> }.into_any(),
                    Ok(list) => {
                        let can_review = memberships.with_value(|m| may_review(m, &org.get_untracked()));
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
                                    {list.data.into_iter().map(|k| view! { <KeyRow key=k org status roll review can_review selected /> }).collect_view()}
                                </tbody>
                            </table>
                            <nav class="toolbar" aria-label="Pages">
                                <button type="button" class="secondary" disabled={page <= 1} on:click=move |_| query.update(|q| q.page = Some(page - 1))>"Previous page"</button>
                                <span>{format!("Page {page} of {pages} · {}", count(list.total, "key", "keys"))}</span>
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

#[component]
pub(super) fn CreateForm(org: RwSignal<String>, create: ServerAction<CreateKey>) -> impl IntoView {
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
                <label for="key-permissions">"Service permissions"</label>
                <input id="key-permissions" name="permissions" type="text" aria-describedby="key-permissions-hint" placeholder="invoices:read, invoices:write" />
                <p id="key-permissions-hint" class="hint">"Your organization's own permissions (from the roles page) that your services check with POST /api/v1/keys/verify. You can give only those you hold."</p>
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

#[component]
pub(super) fn KeyRow(
    key: ApiKey,
    org: RwSignal<String>,
    status: ServerAction<SetKeyStatus>,
    roll: ServerAction<RollKey>,
    review: ServerAction<ReviewKey>,
    can_review: bool,
    selected: RwSignal<Vec<String>>,
) -> impl IntoView {
    let reviewable = can_review && key.status == KeyStatus::Pending;
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
            <td><crate::ui::time::MaybeTime at=key.expires_at.clone() none="never" /></td>
            <td><crate::ui::time::MaybeTime at=key.last_used_at.clone() none="never" /></td>
            <td class="actions">
                {reviewable.then(|| view! { <ReviewActions key=key.clone() org review /> })}
                <KeyActions key org status roll />
            </td>
        </tr>
    }
}
