//! Usage in the console: the plans catalog (everyone signed in reads it; `plans:write` edits
//! it), a key's limit and its use on the key's page, the usage page (chart, summary, export,
//! per-organization totals for instance admins) and the errors page.

use super::api::{list_plans, CreatePlan, DeletePlan, UpdatePlan};
use super::{describe, Plan, RequestSeries};
use crate::keys::api::SetKeyLimit;
use crate::keys::{ApiKey, KeyStatus};
use crate::ui::background::{background, only_the_feed_changed};
use crate::ui::{action_error, count, ErrorNote};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

#[component]
pub fn PlansPage() -> impl IntoView {
    let create = ServerAction::<CreatePlan>::new();
    let update = ServerAction::<UpdatePlan>::new();
    let delete = ServerAction::<DeletePlan>::new();
    let plans = Resource::new(
        move || {
            (
                create.version().get(),
                update.version().get(),
                delete.version().get(),
            )
        },
        |_| list_plans(),
    );
    let auth = crate::ui::use_auth();
    view! {
        <Title text="Plans" />
        <h1>"Plans"</h1>
        <p class="muted">
            "A plan limits each of its keys to a number of requests in any rolling window. "
            "Keys without a plan follow the default one. A key can also carry its own limit (on its page)."
        </p>
        {action_error(update.value())}
        {action_error(delete.value())}
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                // Both awaited here, so the server and the browser render the same thing.
                let can_edit = auth
                    .user
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|u| u.can(crate::access::Permission::PlansWrite));
                match plans.await {
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                    Ok(plans) => view! {
                        <table aria-label="Plans">
                            <thead>
                                <tr>
                                    <th scope="col">"Name"</th>
                                    <th scope="col">"Limit"</th>
                                    <th scope="col">"Keys"</th>
                                    <th scope="col">"Description"</th>
                                    <th scope="col">"Actions"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {plans.into_iter().map(|p| view! { <PlanRow plan=p update delete can_edit /> }).collect_view()}
                            </tbody>
                        </table>
                        {can_edit.then(|| view! { <NewPlan create /> })}
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn NewPlan(create: ServerAction<CreatePlan>) -> impl IntoView {
    view! {
        <section class="card" role="region" aria-label="New plan">
            <h2>"New plan"</h2>
            <ActionForm action=create>
                <label for="plan-name">"Name"</label>
                <input id="plan-name" name="name" required maxlength="40" pattern="[a-z0-9][a-z0-9_\\-]*" />
                <label for="plan-limit">"Requests"</label>
                <input id="plan-limit" name="limit" type="number" min="1" required />
                <label for="plan-window">"Per"</label>
                <WindowSelect id="plan-window" selected=3600 />
                <label for="plan-description">"Description"</label>
                <input id="plan-description" name="description" maxlength="200" />
                <button type="submit">"Create plan"</button>
            </ActionForm>
            {action_error(create.value())}
        </section>
    }
}

/// The windows offered in forms (REST takes any number of seconds up to a day).
const WINDOWS: &[(i64, &str)] = &[
    (1, "second"),
    (60, "minute"),
    (3600, "hour"),
    (86_400, "day"),
];

#[component]
fn WindowSelect(id: &'static str, selected: i64) -> impl IntoView {
    let name = if id.starts_with("key-") {
        "rate_window_seconds"
    } else {
        "window_seconds"
    };
    let mut options: Vec<(i64, String)> =
        WINDOWS.iter().map(|(s, l)| (*s, l.to_string())).collect();
    if !WINDOWS.iter().any(|(s, _)| *s == selected) {
        options.push((selected, format!("{selected} s")));
    }
    view! {
        <select id=id name=name prop:value=selected.to_string()>
            {options.into_iter().map(|(s, label)| view! { <option value=s.to_string()>{label}</option> }).collect_view()}
        </select>
    }
}

#[component]
fn PlanRow(
    plan: Plan,
    update: ServerAction<UpdatePlan>,
    delete: ServerAction<DeletePlan>,
    can_edit: bool,
) -> impl IntoView {
    let editing = RwSignal::new(false);
    let Plan {
        id,
        name,
        description,
        limit,
        window_seconds,
        is_default,
        keys,
        ..
    } = plan;
    let label = if is_default {
        format!("{name} (default)")
    } else {
        name.clone()
    };
    let actions = {
        let (id, name) = (id.clone(), name.clone());
        move || {
            let id = id.clone();
            view! {
                <button type="button" aria-label=format!("Edit plan {name}") on:click=move |_| editing.update(|e| *e = !*e)>"Edit"</button>
                {(!is_default).then(|| view! {
                    <button
                        type="button"
                        class="danger"
                        aria-label=format!("Delete plan {name}")
                        on:click=move |_| {
                            delete.dispatch(DeletePlan { plan_id: id.clone() });
                        }
                    >
                        "Delete"
                    </button>
                })}
            }
        }
    };
    let editor = {
        let description = description.clone();
        move || {
            let (id, name, description) = (id.clone(), name.clone(), description.clone());
            view! {
                <tr>
                    <td colspan="5">
                        <ActionForm action=update>
                            <input type="hidden" name="plan_id" value=id.clone() />
                            <label for=format!("edit-{id}-name")>"Name"</label>
                            <input id=format!("edit-{id}-name") name="name" required value=name />
                            <label for=format!("edit-{id}-limit")>"Requests"</label>
                            <input id=format!("edit-{id}-limit") name="limit" type="number" min="1" required value=limit.to_string() />
                            <label for=format!("edit-{id}-window")>"Per (seconds)"</label>
                            <input id=format!("edit-{id}-window") name="window_seconds" type="number" min="1" max="86400" required value=window_seconds.to_string() />
                            <label for=format!("edit-{id}-description")>"Description"</label>
                            <input id=format!("edit-{id}-description") name="description" maxlength="200" value=description />
                            <button type="submit">"Save plan"</button>
                        </ActionForm>
                    </td>
                </tr>
            }
        }
    };
    view! {
        <tr>
            <td>{label}</td>
            <td>{describe(limit, window_seconds)}</td>
            <td>{keys.map_or_else(|| "—".to_string(), |n| n.to_string())}</td>
            <td>{description}</td>
            <td>{can_edit.then(actions)}</td>
        </tr>
        {move || editing.get().then(editor.clone())}
    }
}

/// The "Rate limit" section of a key's page: its plan and its own limit.
#[component]
pub fn KeyLimitSection(
    key: ApiKey,
    #[prop(into)] org: Signal<String>,
    set_limit: ServerAction<SetKeyLimit>,
) -> impl IntoView {
    let plans = Resource::new(|| (), |_| list_plans());
    let editable = key.status != KeyStatus::Revoked;
    let saved = RwSignal::new(false);
    Effect::new(move |_| saved.set(matches!(set_limit.value().get(), Some(Ok(_)))));
    let current_plan = key
        .plan_id
        .clone()
        .unwrap_or_else(|| super::DEFAULT_PLAN_ID.to_string());
    let override_limit = key.rate_limit.map(|l| l.to_string()).unwrap_or_default();
    let override_window = key.rate_window_seconds.unwrap_or(3600);
    let key_id = key.id.clone();
    view! {
        <section class="card" role="region" aria-label="Rate limit">
            <h2>"Rate limit"</h2>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || {
                    let current_plan = current_plan.clone();
                    let override_limit = override_limit.clone();
                    let key_id = key_id.clone();
                    Suspend::new(async move {
                        match plans.await {
                            Err(error) => view! { <ErrorNote error /> }.into_any(),
                            Ok(plans) => {
                                let effective = match (key.rate_limit, key.rate_window_seconds) {
                                    (Some(l), Some(w)) => format!("{} (the key's own limit)", describe(l, w)),
                                    _ => plans
                                        .iter()
                                        .find(|p| p.id == current_plan)
                                        .map(|p| format!("{} (plan {})", describe(p.limit, p.window_seconds), p.name))
                                        .unwrap_or_default(),
                                };
                                view! {
                                    <dl class="facts"><dt>"In force"</dt><dd>{effective}</dd></dl>
                                    <ActionForm action=set_limit>
                                        <input type="hidden" name="organization_id" prop:value=move || org.get() />
                                        <input type="hidden" name="key_id" value=key_id.clone() />
                                        <fieldset disabled={!editable}>
                                            <label for="key-plan">"Plan"</label>
                                            <select id="key-plan" name="plan_id" prop:value=current_plan.clone()>
                                                {plans.iter().map(|p| view! {
                                                    <option value=p.id.clone()>{format!("{} — {}", p.name, describe(p.limit, p.window_seconds))}</option>
                                                }).collect_view()}
                                            </select>
                                            <label for="key-limit">"Own limit (empty: follow the plan)"</label>
                                            <input id="key-limit" name="rate_limit" type="number" min="1" value=override_limit.clone() />
                                            <label for="key-window">"Own limit per"</label>
                                            <WindowSelect id="key-window" selected=override_window />
                                            <button type="submit">"Save limit"</button>
                                        </fieldset>
                                    </ActionForm>
                                }
                                .into_any()
                            }
                        }
                    })
                }}
            </Transition>
            <Show when=move || saved.get()>
                <p role="status">"Limit saved."</p>
            </Show>
            {action_error(set_limit.value())}
        </section>
    }
}

/// Usage: requests over time for an organization, by status class, with range, key and route
/// filters, drawn with charming and kept live by server push.
#[component]
pub fn UsagePage() -> impl IntoView {
    view! {
        <Title text="Usage" />
        <h1>"Usage"</h1>
        <p><A href="/usage/errors">"Errors"</A></p>
        <WithUsageOrgs render=|orgs, admin| view! { <OrgUsage orgs admin /> }.into_any() />
    }
}

/// Errors: failed requests over time with the error rate, top error codes, failing keys and
/// routes, and the latest errors with their messages; the same filters as the usage page.
#[component]
pub fn ErrorsPage() -> impl IntoView {
    view! {
        <Title text="Errors" />
        <h1>"Errors"</h1>
        <p><A href="/usage">"Usage"</A></p>
        <WithUsageOrgs render=|orgs, _| view! { <OrgErrors orgs /> }.into_any() />
    }
}

/// Renders `render` with the organizations whose usage the user may read, and whether the
/// user is an instance admin (who also sees every organization's totals).
#[component]
fn WithUsageOrgs(render: fn(Vec<crate::orgs::OrgMembership>, bool) -> AnyView) -> impl IntoView {
    let auth = crate::ui::use_auth();
    let orgs = Resource::new(|| (), |_| crate::orgs::api::my_organizations());
    view! {
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let admin = auth
                    .user
                    .await
                    .ok()
                    .flatten()
                    .is_some_and(|u| u.can(crate::access::Permission::UsersRead));
                match orgs.await {
                    Ok(orgs) => {
                        let orgs: Vec<crate::orgs::OrgMembership> = orgs
                            .into_iter()
                            .filter(|o| o.permissions.iter().any(|p| p == "usage:read"))
                            .collect();
                        if orgs.is_empty() {
                            view! { <p>"You cannot see the usage of any organization."</p> }.into_any()
                        } else {
                            render(orgs, admin)
                        }
                    }
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// What the usage and errors pages show: the organization, range and filters, the viewer's
/// time zone, and a counter the live feed bumps.
#[derive(Clone, Copy)]
struct UsageView {
    org: RwSignal<String>,
    range: RwSignal<String>,
    key: RwSignal<String>,
    route: RwSignal<String>,
    /// UTC on the server and during hydration (both render the same), the viewer's zone after.
    tz: RwSignal<i32>,
    refresh: RwSignal<u64>,
    /// The server refused the live feed: the page says the chart is not live.
    live_off: RwSignal<bool>,
}

/// (organization, range, key, route, time zone) as a resource's source.
type ViewArgs = (String, String, String, String, i32, u64);

impl UsageView {
    fn new(orgs: &[crate::orgs::OrgMembership], range: &str) -> UsageView {
        UsageView {
            org: RwSignal::new(orgs[0].organization_id.clone()),
            range: RwSignal::new(range.to_string()),
            key: RwSignal::new(String::new()),
            route: RwSignal::new(String::new()),
            tz: RwSignal::new(0),
            refresh: RwSignal::new(0),
            live_off: RwSignal::new(false),
        }
    }

    /// Everything a fetch depends on, tracked.
    fn args(self) -> ViewArgs {
        (
            self.org.get(),
            self.range.get(),
            self.key.get(),
            self.route.get(),
            self.tz.get(),
            self.refresh.get(),
        )
    }
}

const CHART_ID: &str = "requests-chart";

#[component]
fn OrgUsage(orgs: Vec<crate::orgs::OrgMembership>, admin: bool) -> impl IntoView {
    use super::api::usage_series;
    let view = UsageView::new(&orgs, "1h");
    let UsageView {
        org,
        range,
        key,
        route,
        tz,
        refresh,
        live_off,
    } = view;
    let last = StoredValue::new(None);
    let series = Resource::new(
        move || view.args(),
        move |(org, range, key, route, tz, _)| {
            let feed = only_the_feed_changed(
                last,
                (org.clone(), range.clone(), key.clone(), route.clone(), tz),
            );
            background(feed, usage_series(org, range, key, route, tz))
        },
    );
    let keys = keys_of(org);
    #[cfg(feature = "hydrate")]
    {
        // Buckets start at midnight (and on the hour) in the viewer's zone.
        let clock = crate::ui::time::use_clock();
        Effect::new(move |_| clock.follow(tz));
        // Redraw whenever a new series arrives, or the zone changes.
        Effect::new(move |_| {
            if let Some(Ok(s)) = series.get() {
                let zone = clock.zone.get();
                leptos::task::spawn_local(async move {
                    if let Err(e) = super::chart::draw(CHART_ID, &s, zone.as_deref()).await {
                        leptos::logging::warn!("chart not drawn: {e:?}");
                    }
                });
            }
        });
        live_refresh(org, refresh, live_off);
    }
    view! {
        <UsageFilters orgs org range key route keys series />
        <section class="card" role="region" aria-label="Requests over time">
            <h2>"Requests over time"</h2>
            <LiveOff live_off />
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match series.await {
                        Err(error) => view! { <ErrorNote error /> }.into_any(),
                        Ok(s) => {
                            let minutes = s.bucket_ms / 60_000;
                            let bucket = if minutes >= 60 { format!("{} h", minutes / 60) } else { format!("{minutes} min") };
                            view! {
                                <p role="status">{count(s.total, "request", "requests")}</p>
                                <p class="muted">{format!("{} buckets of {bucket}, in your time zone; updates live", s.starts.len())}</p>
                            }
                            .into_any()
                        }
                    }
                })}
            </Transition>
            <div id=CHART_ID class="chart" role="img" aria-label="Requests over time, stacked by status class"></div>
        </section>
        <UsageSummarySection org range key route refresh />
        <ExportSection org range key route tz />
        <OrgTotalsSection range admin />
    }
}

/// The keys of an organization, for a filter.
fn keys_of(
    org: RwSignal<String>,
) -> Resource<Result<crate::keys::KeyList, crate::error::AppError>> {
    Resource::new(
        move || org.get(),
        |org| {
            crate::keys::api::list_keys(
                org,
                crate::keys::KeyQuery {
                    per_page: Some(100),
                    sort: Some("name".into()),
                    ..Default::default()
                },
            )
        },
    )
}

/// Organization, range, key and route: the filters of the usage and errors pages.
#[component]
fn UsageFilters(
    orgs: Vec<crate::orgs::OrgMembership>,
    org: RwSignal<String>,
    range: RwSignal<String>,
    key: RwSignal<String>,
    route: RwSignal<String>,
    keys: Resource<Result<crate::keys::KeyList, crate::error::AppError>>,
    /// Whose routes fill the route filter.
    series: Resource<Result<RequestSeries, crate::error::AppError>>,
) -> impl IntoView {
    use super::Range;
    let on_select =
        |signal: RwSignal<String>| move |ev: leptos::ev::Event| signal.set(event_target_value(&ev));
    view! {
        <section class="filters" role="search" aria-label="Usage filters">
            <label for="usage-org">"Organization"</label>
            <select id="usage-org" on:change=move |ev| { org.set(event_target_value(&ev)); key.set(String::new()); route.set(String::new()); }>
                {orgs.iter().map(|o| view! { <option value=o.organization_id.clone()>{o.name.clone()}</option> }).collect_view()}
            </select>
            <label for="usage-range">"Range"</label>
            <select id="usage-range" on:change=on_select(range) prop:value=move || range.get()>
                {Range::ALL.iter().map(|r| view! { <option value=r.as_str()>{r.label()}</option> }).collect_view()}
            </select>
            <label for="usage-key">"Key"</label>
            <select id="usage-key" on:change=on_select(key) prop:value=move || key.get()>
                <option value="">"All keys"</option>
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        keys.await.map(|list| list.data.into_iter().map(|k| view! { <option value=k.id.clone()>{k.name.clone()}</option> }).collect_view()).ok()
                    })}
                </Transition>
            </select>
            <label for="usage-route">"Route"</label>
            <select id="usage-route" on:change=on_select(route) prop:value=move || route.get()>
                <option value="">"All routes"</option>
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        series.await.map(|s| s.routes.into_iter().map(|r| view! { <option value=r.clone()>{r.clone()}</option> }).collect_view()).ok()
                    })}
                </Transition>
            </select>
        </section>
    }
}

/// Totals, error rate, latency percentiles, top lists and the latest errors of the same range
/// and filters as the chart.
#[component]
fn UsageSummarySection(
    org: RwSignal<String>,
    range: RwSignal<String>,
    key: RwSignal<String>,
    route: RwSignal<String>,
    refresh: RwSignal<u64>,
) -> impl IntoView {
    let last = StoredValue::new(None);
    let summary = Resource::new(
        move || {
            (
                org.get(),
                range.get(),
                key.get(),
                route.get(),
                refresh.get(),
            )
        },
        move |(org, range, key, route, _)| {
            let feed = only_the_feed_changed(
                last,
                (org.clone(), range.clone(), key.clone(), route.clone()),
            );
            background(feed, super::api::usage_overview(org, range, key, route))
        },
    );
    view! {
        <section class="card" role="region" aria-label="Summary">
            <h2>"Summary"</h2>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match summary.await {
                        Err(error) => view! { <ErrorNote error /> }.into_any(),
                        Ok(s) => view! {
                            <dl class="facts">
                                <dt>"Requests"</dt><dd>{s.requests}</dd>
                                <dt>"Errors"</dt><dd>{format!("{} ({:.1} %)", s.errors, s.error_rate * 100.0)}</dd>
                                <dt>"Latency p50 / p95 / p99"</dt><dd>{format!("{:.1} / {:.1} / {:.1} ms", s.p50_ms, s.p95_ms, s.p99_ms)}</dd>
                            </dl>
                            <div class="columns">
                                {count_list("Top keys", s.top_keys)}
                                {count_list("Top routes", s.top_routes)}
                                {count_list("Top error codes", s.top_error_codes)}
                            </div>
                            <h3>"Recent errors"</h3>
                            {errors_table("Recent errors", s.recent_errors)}
                        }
                        .into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// Live: bumps `refresh` when the server says new requests of `org` were written (at most every
/// 500 ms), so the page refetches without a reload.
#[cfg(feature = "hydrate")]
fn live_refresh(org: RwSignal<String>, refresh: RwSignal<u64>, live_off: RwSignal<bool>) {
    // A refused feed is asked for again a minute later (the server's caps free up as tabs
    // close); the page says it is not live until a feed opens.
    let attempt = RwSignal::new(0u64);
    Effect::new(
        move |previous: Option<send_wrapper::SendWrapper<Option<super::chart::LiveFeed>>>| {
            drop(previous);
            attempt.track();
            let pending = std::rc::Rc::new(std::cell::Cell::new(false));
            let feed = super::chart::LiveFeed::open(
                &org.get(),
                move || {
                    if pending.replace(true) {
                        return;
                    }
                    let pending = pending.clone();
                    leptos::prelude::set_timeout(
                        move || {
                            pending.set(false);
                            refresh.update(|n| *n += 1);
                        },
                        std::time::Duration::from_millis(500),
                    );
                },
                move || {
                    let _ = live_off.try_set(false);
                },
                move || {
                    let _ = live_off.try_set(true);
                    leptos::prelude::set_timeout(
                        move || {
                            let _ = attempt.try_update(|n| *n += 1);
                        },
                        LIVE_RETRY,
                    );
                },
            );
            send_wrapper::SendWrapper::new(feed)
        },
    );
}

/// How long after a refused live feed the page asks for one again.
#[cfg(feature = "hydrate")]
const LIVE_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// Said where a chart would update live when the server refused its live feed (too many tabs
/// open, or the server holding all the feeds it serves).
#[component]
fn LiveOff(live_off: RwSignal<bool>) -> impl IntoView {
    move || {
        live_off.get().then(|| {
            view! {
                <p role="alert" class="banner">
                    "Live updates are off: the server refused the live feed (too many open tabs, or a busy server). The figures are as loaded; the page tries again every minute."
                </p>
            }
        })
    }
}

/// A list of counts under a heading ("None" when empty).
fn count_list(title: &'static str, items: Vec<super::Count>) -> impl IntoView {
    view! {
        <div>
            <h3>{title}</h3>
            {if items.is_empty() {
                view! { <p class="muted">"None"</p> }.into_any()
            } else {
                view! {
                    <ol aria-label=title>
                        {items.into_iter().map(|c| view! { <li>{format!("{} — {}", c.label, c.requests)}</li> }).collect_view()}
                    </ol>
                }
                .into_any()
            }}
        </div>
    }
}

/// The latest failed requests, with their messages.
fn errors_table(label: &'static str, errors: Vec<super::RecentError>) -> impl IntoView {
    view! {
        <table aria-label=label>
            <thead>
                <tr>
                    <th scope="col">"Time"</th>
                    <th scope="col">"Request"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Code"</th>
                    <th scope="col">"Message"</th>
                    <th scope="col">"Route"</th>
                    <th scope="col">"Request id"</th>
                </tr>
            </thead>
            <tbody>
                {errors.into_iter().map(|e| view! {
                    <tr>
                        <td><crate::ui::time::Time at=e.at /></td>
                        <td>{e.method}</td>
                        <td>{e.status}</td>
                        <td>{e.code.unwrap_or_default()}</td>
                        <td>{e.message.unwrap_or_default()}</td>
                        <td><code>{e.route}</code></td>
                        <td><code>{e.request_id}</code></td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
}

const ERRORS_CHART_ID: &str = "errors-chart";

#[component]
fn OrgErrors(orgs: Vec<crate::orgs::OrgMembership>) -> impl IntoView {
    use super::api::{usage_errors, usage_series};
    let view = UsageView::new(&orgs, "24h");
    let UsageView {
        org,
        range,
        key,
        route,
        refresh,
        live_off,
        ..
    } = view;
    let (last_report, last_series) = (StoredValue::new(None), StoredValue::new(None));
    let report = Resource::new(
        move || view.args(),
        move |(org, range, key, route, tz, _)| {
            let feed = only_the_feed_changed(
                last_report,
                (org.clone(), range.clone(), key.clone(), route.clone(), tz),
            );
            background(feed, usage_errors(org, range, key, route, tz))
        },
    );
    // The route filter lists every route of the range, failing or not.
    let series = Resource::new(
        move || (org.get(), range.get(), refresh.get()),
        move |(org, range, _)| {
            let feed = only_the_feed_changed(last_series, (org.clone(), range.clone()));
            background(
                feed,
                usage_series(org, range, String::new(), String::new(), 0),
            )
        },
    );
    let keys = keys_of(org);
    #[cfg(feature = "hydrate")]
    {
        let clock = crate::ui::time::use_clock();
        let tz = view.tz;
        Effect::new(move |_| clock.follow(tz));
        Effect::new(move |_| {
            if let Some(Ok(r)) = report.get() {
                let zone = clock.zone.get();
                leptos::task::spawn_local(async move {
                    if let Err(e) =
                        super::chart::draw_errors(ERRORS_CHART_ID, &r, zone.as_deref()).await
                    {
                        leptos::logging::warn!("chart not drawn: {e:?}");
                    }
                });
            }
        });
        live_refresh(org, refresh, live_off);
    }
    view! {
        <UsageFilters orgs org range key route keys series />
        <section class="card" role="region" aria-label="Error rate over time">
            <h2>"Error rate over time"</h2>
            <LiveOff live_off />
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match report.await {
                        Err(error) => view! { <ErrorNote error /> }.into_any(),
                        Ok(r) => {
                            let rate = if r.requests > 0 { r.errors as f64 * 100.0 / r.requests as f64 } else { 0.0 };
                            view! {
                                <p role="status">{format!("{} failed of {} ({rate:.1} %)", r.errors, count(r.requests, "request", "requests"))}</p>
                            }
                            .into_any()
                        }
                    }
                })}
            </Transition>
            <div id=ERRORS_CHART_ID class="chart" role="img" aria-label="Failed requests by status class, and the error rate"></div>
        </section>
        <section class="card" role="region" aria-label="Where errors come from">
            <h2>"Where errors come from"</h2>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match report.await {
                        Err(error) => view! { <ErrorNote error /> }.into_any(),
                        Ok(r) => view! {
                            <div class="columns">
                                {count_list("Top error codes", r.top_codes)}
                                {count_list("Failing keys", r.top_keys)}
                                {count_list("Failing routes", r.top_routes)}
                            </div>
                            <h3>"Latest errors"</h3>
                            {errors_table("Latest errors", r.recent)}
                        }
                        .into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// A key's use of its limit now and its last 24 hours, on the key's page.
#[component]
pub fn KeyUsageSection(
    key_id: String,
    #[prop(into)] org: Signal<String>,
    /// Changes when the key's limit was saved.
    #[prop(into)]
    refresh: Signal<usize>,
) -> impl IntoView {
    let usage = Resource::new(
        move || (org.get(), key_id.clone(), refresh.get()),
        |(org, key, _)| super::api::key_usage(org, key),
    );
    view! {
        <section class="card" role="region" aria-label="Usage against the limit">
            <h2>"Usage"</h2>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match usage.await {
                        Err(error) => view! { <ErrorNote error /> }.into_any(),
                        Ok(u) => {
                            let reset = if u.reset_seconds > 0 { format!("; the count goes down in {} s", u.reset_seconds) } else { String::new() };
                            view! {
                                <p role="status">{format!("{} of {} used in the current window ({}), {} left{reset}", u.used, u.limit, describe(u.limit, u.window_seconds), u.remaining)}</p>
                                <meter aria-label="Share of the limit used" min="0" max=u.limit value=u.used high=u.limit * 8 / 10 optimum="0"></meter>
                                <p>{format!("Last 24 hours: {}, {} failed", count(u.requests_24h, "request", "requests"), u.errors_24h)}</p>
                            }
                            .into_any()
                        }
                    }
                })}
            </Transition>
        </section>
    }
}

/// CSV and JSON export of the range and filters, streamed, with a progress bar.
#[component]
fn ExportSection(
    org: RwSignal<String>,
    range: RwSignal<String>,
    key: RwSignal<String>,
    route: RwSignal<String>,
    tz: RwSignal<i32>,
) -> impl IntoView {
    // (rows received, rows in all) while an export runs or after it ended.
    let progress = RwSignal::new(None::<(i64, i64)>);
    let message = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let start = move |format: &'static str| {
        let url = format!(
            "/usage/export?organization_id={}&range={}&key_id={}&route={}&tz_offset_minutes={}&format={format}",
            crate::ui::urlencode(&org.get_untracked()),
            crate::ui::urlencode(&range.get_untracked()),
            crate::ui::urlencode(&key.get_untracked()),
            crate::ui::urlencode(&route.get_untracked()),
            tz.get_untracked()
        );
        let file = format!(
            "usage-{}-{}.{format}",
            org.get_untracked(),
            range.get_untracked()
        );
        busy.set(true);
        progress.set(Some((0, 0)));
        message.set("Exporting…".into());
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let outcome = super::chart::download(&url, &file, format == "json", move |got, all| {
                progress.set(Some((got, all)))
            })
            .await;
            busy.set(false);
            match outcome {
                Ok(rows) => message.set(format!("Exported {rows} rows to {file}.")),
                Err(e) => message.set(format!(
                    "The export failed: {}",
                    e.as_string().unwrap_or_else(|| "network error".into())
                )),
            }
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = (url, file);
    };
    view! {
        <section class="card" role="region" aria-label="Export">
            <h2>"Export"</h2>
            <p class="muted">"The per-minute statistics of the range and filters above (requests and mean latency per minute, key, route and status class)."</p>
            <div class="actions">
                <button type="button" on:click=move |_| start("csv") disabled=move || busy.get()>"Export CSV"</button>
                <button type="button" on:click=move |_| start("json") disabled=move || busy.get()>"Export JSON"</button>
            </div>
            <Show when=move || progress.get().is_some()>
                <progress aria-label="Export progress" max=move || progress.get().map_or(1, |(_, all)| all.max(1)) value=move || progress.get().map_or(0, |(got, _)| got)></progress>
                <p role="status">{move || {
                    let (got, all) = progress.get().unwrap_or_default();
                    if busy.get() { format!("{} — {got} of {all} rows", message.get()) } else { message.get() }
                }}</p>
            </Show>
        </section>
    }
}

/// Percent-encodes a query value.
/// Every organization's totals over the range: instance admins only (others never see it,
/// and the server refuses them). One resource, created with the page on both sides, that
/// asks the server only for admins. Whether the user is one is known before the resource is
/// made: a fetcher that awaited the user first ran the server function, during server
/// rendering, after its owner had lost the request's context ("AppState missing"), and the
/// page then failed to hydrate, in about one load out of six.
#[component]
fn OrgTotalsSection(range: RwSignal<String>, admin: bool) -> impl IntoView {
    let totals = Resource::new(
        move || range.get(),
        move |range| async move {
            if admin {
                super::api::usage_by_organization(range).await.map(Some)
            } else {
                Ok(None)
            }
        },
    );
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match totals.await {
                    Ok(None) => ().into_any(),
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                    Ok(Some(rows)) => view! {
                        <section class="card" role="region" aria-label="Organizations">
                            <h2>"All organizations"</h2>
                            <table aria-label="Requests by organization">
                                <thead><tr>
                                    <th scope="col">"Organization"</th>
                                    <th scope="col">"Requests"</th>
                                    <th scope="col">"Failed"</th>
                                    <th scope="col">"Active keys"</th>
                                </tr></thead>
                                <tbody>
                                    {rows.into_iter().map(|o| view! {
                                        <tr><td>{o.name}</td><td>{o.requests}</td><td>{o.errors}</td><td>{o.keys}</td></tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </section>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}
