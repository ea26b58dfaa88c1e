//! `/keys/:org/:id`: one key.

use super::*;

/// `/keys/:org/:id`: one key, its settings editor, timeline and actions.
#[component]
pub fn KeyPage() -> impl IntoView {
    let params = use_params_map();
    let org = Signal::derive(move || params.read().get("org").unwrap_or_default());
    let key_id = Signal::derive(move || params.read().get("id").unwrap_or_default());
    let status = ServerAction::<SetKeyStatus>::new();
    let roll = ServerAction::<RollKey>::new();
    let review = ServerAction::<ReviewKey>::new();
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
            review.version().get(),
            update.version().get(),
            set_limit.version().get(),
        )
    };
    let key = Resource::new(versions, |(org, id, ..)| get_key(org, id));
    let history = Resource::new(versions, |(org, id, ..)| key_history(org, id));
    let memberships = Resource::new(|| (), |_| my_organizations());
    view! {
        <p><A href="/keys">"← All keys"</A></p>
        <Reveal secret />
        {action_error(status.value())}
        {action_error(roll.value())}
        {action_error(review.value())}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let can_review = memberships
                    .await
                    .is_ok_and(|m| may_review(&m, &org.get_untracked()));
                match key.await {
                    Err(error) => view! { <h1>"Key"</h1> <ErrorNote error /> }.into_any(),
                    Ok(k) => view! {
                        <Title text=k.name.clone() />
                        <h1>{k.name.clone()}</h1>
                        <dl class="facts" aria-label="Key facts">
                            <dt>"Key"</dt><dd><code>{format!("{}…", k.display_prefix)}</code></dd>
                            <dt>"Status"</dt><dd><span class=format!("badge status-{}", k.status.as_str())>{k.status.as_str()}</span></dd>
                            <dt>"Environment"</dt><dd>{k.environment.clone()}</dd>
                            <dt>"Owner"</dt><dd>{owner_text(&k)}</dd>
                            <dt>"Scopes"</dt><dd>{scopes_text(&k.scopes)}</dd>
                            <dt>"Service permissions"</dt><dd>{if k.permissions.is_empty() { "none".to_string() } else { k.permissions.join(", ") }}</dd>
                            <dt>"Created"</dt><dd><crate::ui::time::Time at=k.created_at.clone() /></dd>
                            <dt>"Last used"</dt><dd><crate::ui::time::MaybeTime at=k.last_used_at.clone() none="never" /></dd>
                            {k.rolled_to_key_id.clone().map(|to| view! { <dt>"Rolled to"</dt><dd><A href=format!("/keys/{}/{to}", k.organization_id)>{to.clone()}</A></dd> })}
                        </dl>
                        <div class="actions" role="group" aria-label="Key actions">
                            {(can_review && k.status == KeyStatus::Pending).then(|| view! { <ReviewActions key=k.clone() org review /> })}
                            <KeyActions key=k.clone() org status roll />
                        </div>
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
                                        " · " <crate::ui::time::Time at=e.occurred_at.clone() />
                                        {e.actor.clone().map(|a| format!(" · by {a}"))}
                                        {e.source_ip.clone().map(|ip| format!(" · from {ip}"))}
                                        {e.summary().map(|s| view! { <div class="muted">{s}</div> })}
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
pub(super) fn KeySettings(
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
                // The key as loaded: saved only if nobody changed it since.
                <input type="hidden" name="version" value=key.updated_at.clone() />
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
