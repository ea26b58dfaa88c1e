//! The API keys console, one file per concern: the list (search, filters, sort, pages, bulk
//! actions, create with a reveal-once panel) in `list`, import and export in `transfer`, the
//! key page (settings editor, timeline, actions) in `key`; what several of them show is here.

mod key;
mod list;
mod transfer;

pub use key::KeyPage;
pub use list::KeysPage;
use transfer::*;

use super::api::{
    export_keys, get_key, key_history, list_keys, BulkKeys, CreateKey, ImportKeys, ReviewKey,
    RollKey, SetKeyStatus, UpdateKey,
};
use super::{ApiKey, CreatedKey, ImportOutcome, KeyQuery, KeyStatus};
use crate::error::AppError;
use crate::orgs::api::my_organizations;
use crate::orgs::OrgMembership;
use crate::ui::{action_error, count, filter_select, CopyButton, ErrorNote};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

/// A secret and its signing secret, shown once.
#[derive(Clone, Debug, PartialEq)]
struct Secrets {
    key: String,
    signing_secret: String,
    /// The key waits for approval before it works.
    pending: bool,
}

impl From<CreatedKey> for Secrets {
    fn from(c: CreatedKey) -> Self {
        Secrets {
            pending: c.api_key.status == KeyStatus::Pending,
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
                    {s.pending.then(|| view! { <p role="note" class="hint">"This organization requires approval of new keys: this key works once an owner or admin approves it."</p> })}
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
    let expiry = RwSignal::new(String::new());
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
    let expiry_id = format!("roll-expiry-{}", key.id);
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
                <label for=expiry_id.clone()>"New key expires"</label>
                <select id=expiry_id.clone() on:change=move |ev| expiry.set(event_target_value(&ev))>
                    <option value="" selected>"When the old key was to"</option>
                    <option value="30">"In 30 days"</option>
                    <option value="90">"In 90 days"</option>
                    <option value="365">"In a year"</option>
                    <option value="never">"Never"</option>
                </select>
                <button
                    type="button"
                    on:click=move |_| {
                        let grace_seconds = match grace.get_untracked().as_str() {
                            // Out-of-range or empty input is sent as is and refused by the server
                            // with a readable message.
                            "custom" => custom_hours.get_untracked().trim().parse::<i64>().map_or(-1, |h| h * 3600),
                            g => g.parse().unwrap_or(3600),
                        };
                        roll.dispatch(RollKey {
                            organization_id: org.get_untracked(),
                            key_id: id.get_value(),
                            grace_seconds,
                            expires_in_days: Some(expiry.get_untracked()),
                        });
                        rolling.set(false);
                    }
                >
                    "Roll key"
                </button>
            </span>
        </Show>
    }
}

/// Approve and Reject for a key awaiting approval, shown to those who may review keys.
/// Approve first opens what approving hands out (scopes, permissions, endpoint rules, IP
/// allow-list, signature, expiry, owner), so that a reviewer on the list approves what they
/// saw there, not only the row's name and access level; Confirm sends the version shown.
#[component]
fn ReviewActions(
    key: ApiKey,
    #[prop(into)] org: Signal<String>,
    review: ServerAction<ReviewKey>,
) -> impl IntoView {
    let id = StoredValue::new(key.id.clone());
    // What the reviewer sees is what they approve: an edit since sends them back (409).
    let version = StoredValue::new(key.updated_at.clone());
    let confirming = RwSignal::new(false);
    let decide = move |decision: &'static str| {
        confirming.set(false);
        review.dispatch(ReviewKey {
            organization_id: org.get_untracked(),
            key_id: id.get_value(),
            decision: decision.into(),
            reason: String::new(),
            // Rejecting takes power away whatever the key became: no version, no
            // needless "look again".
            version: (decision == "approve").then(|| version.get_value()),
        });
    };
    let name = key.name.clone();
    // A disclosure: Approve shows the panel right after itself (next in the tab order), and
    // says it controls it.
    let panel_id = format!("approve-{}", key.id);
    let grants = StoredValue::new(key);
    view! {
        <button type="button" aria-label=format!("Approve {name}") aria-controls=panel_id.clone() aria-expanded=move || confirming.get().to_string() on:click=move |_| confirming.update(|c| *c = !*c)>"Approve"</button>
        <Show when=move || confirming.get()>
            <div class="confirm" id=panel_id.clone() role="group" aria-label=format!("Approve {}?", grants.with_value(|k| k.name.clone()))>
                <p><strong>"Approving hands out:"</strong></p>
                {grants.with_value(|k| view! { <Grants key=k.clone() /> })}
                <div class="actions">
                    <button type="button" on:click=move |_| decide("approve")>"Confirm approval"</button>
                    <button type="button" class="secondary" on:click=move |_| confirming.set(false)>"Cancel"</button>
                </div>
            </div>
        </Show>
        <button type="button" class="danger" aria-label=format!("Reject {name}") on:click=move |_| decide("reject")>"Reject"</button>
    }
}

/// Everything a key would let its holder do, and from where: what a reviewer approves.
#[component]
fn Grants(key: ApiKey) -> impl IntoView {
    let or = |items: Vec<String>, none: &str| {
        if items.is_empty() {
            none.to_string()
        } else {
            items.join(", ")
        }
    };
    let endpoints = key
        .endpoints
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    view! {
        <dl class="facts" aria-label="What approving hands out">
            <dt>"Owner"</dt><dd>{owner_text(&key)}</dd>
            <dt>"Environment"</dt><dd>{key.environment.clone()}</dd>
            <dt>"Access"</dt><dd>{key.category.as_str()}</dd>
            <dt>"Scopes"</dt><dd>{scopes_text(&key.scopes)}</dd>
            <dt>"Service permissions"</dt><dd>{or(key.permissions.clone(), "none")}</dd>
            <dt>"Endpoints"</dt><dd>{or(endpoints, "any its scopes allow")}</dd>
            <dt>"IP allow-list"</dt><dd>{or(key.ip_allowlist.clone(), "any address")}</dd>
            <dt>"Signed requests"</dt><dd>{if key.require_signature { "required" } else { "not required" }}</dd>
            <dt>"Expires"</dt><dd><crate::ui::time::MaybeTime at=key.expires_at.clone() none="never" /></dd>
            <dt>"Rate limit"</dt><dd>{limit_text(&key)}</dd>
        </dl>
    }
}

/// A key's scopes as `resource: access`, comma-separated (`none` when it has none).
fn scopes_text(scopes: &super::Scopes) -> String {
    if scopes.is_empty() {
        return "none".into();
    }
    scopes
        .iter()
        .map(|(resource, access)| {
            let access = serde_json::to_string(access).unwrap_or_default();
            format!("{resource}: {}", access.trim_matches('"'))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A key's limit as approving sets it: its own override, else its plan's.
fn limit_text(key: &ApiKey) -> String {
    match (key.rate_limit, key.rate_window_seconds) {
        (Some(limit), Some(window)) => format!("{limit} per {window} s (its own)"),
        _ => format!(
            "the {} plan's",
            key.plan_id
                .as_deref()
                .unwrap_or("plan_free")
                .trim_start_matches("plan_")
        ),
    }
}

/// Whose key it is: the organization's, or a person's token.
fn owner_text(key: &ApiKey) -> String {
    key.owner_user_id
        .as_ref()
        .map_or("organization".to_string(), |u| {
            format!("personal token of {u}")
        })
}

/// Whether the user may review keys in `org` (holds `approvals:write` there).
fn may_review(orgs: &[OrgMembership], org: &str) -> bool {
    orgs.iter()
        .any(|o| o.organization_id == org && o.permissions.iter().any(|p| p == "approvals:write"))
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
