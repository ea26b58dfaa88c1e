//! The bell, the notifications page, and the outbox page for admins.

use super::api::{list_outbox, my_notifications, unread_notifications, MarkNotificationsRead};
use crate::ui::{action_error, ErrorNote};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

/// The bell in the navigation: a link to the notifications with the unread count. The count
/// is fetched by the browser after hydration (every 20 seconds, and whenever notifications are
/// marked read), so the server and the browser render the same first frame.
#[component]
pub fn Bell() -> impl IntoView {
    let count = RwSignal::new(0i64);
    let marked = expect_context::<ServerAction<MarkNotificationsRead>>();
    #[cfg(feature = "hydrate")]
    {
        let refresh = move || {
            leptos::task::spawn_local(async move {
                // A poll: the page's doing, not the user's.
                if let Ok(n) = crate::ui::background::background(true, unread_notifications()).await
                {
                    count.set(n);
                }
            })
        };
        Effect::new(move |_| {
            marked.version().get();
            refresh();
        });
        if let Ok(handle) = set_interval_with_handle(refresh, std::time::Duration::from_secs(20)) {
            on_cleanup(move || handle.clear());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (marked, unread_notifications);
    view! {
        <a href="/notifications" class="bell">
            <span aria-hidden="true">"🔔 "</span>
            "Notifications"
            {move || match count.get() {
                0 => String::new(),
                n => format!(" ({n} unread)"),
            }}
        </a>
    }
}

/// Provides the action that marks notifications read, shared by the bell and the page.
pub fn provide_notifications() {
    provide_context(ServerAction::<MarkNotificationsRead>::new());
}

#[component]
pub fn NotificationsPage() -> impl IntoView {
    let mark = expect_context::<ServerAction<MarkNotificationsRead>>();
    let items = Resource::new(move || mark.version().get(), |_| my_notifications());
    view! {
        <Title text="Notifications" />
        <h1>"Notifications"</h1>
        {action_error(mark.value())}
        <button type="button" on:click=move |_| { mark.dispatch(MarkNotificationsRead { notification_id: String::new() }); }>"Mark all as read"</button>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match items.await {
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                    Ok(items) if items.is_empty() => view! { <p>"Nothing yet."</p> }.into_any(),
                    Ok(items) => view! {
                        <ul class="notifications" aria-label="Notifications">
                            {items.into_iter().map(|n| {
                                let id = n.id.clone();
                                let label = format!("Mark \"{}\" as read", n.title);
                                view! {
                                    <li class=if n.read { "read" } else { "unread" }>
                                        <strong>{n.title.clone()}</strong>
                                        {(!n.read).then(|| view! { <span class="badge">"new"</span> })}
                                        <div>{n.body.clone()}</div>
                                        <div class="muted">
                                            <crate::ui::time::Time at=n.created_at.clone() />
                                            {n.link.clone().map(|l| view! { " · " <A href=l>"Open"</A> })}
                                        </div>
                                        {(!n.read).then(|| view! {
                                            <button type="button" class="link" aria-label=label on:click=move |_| { mark.dispatch(MarkNotificationsRead { notification_id: id.clone() }); }>"Mark as read"</button>
                                        })}
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
pub fn OutboxPage() -> impl IntoView {
    let emails = Resource::new(|| (), |_| list_outbox());
    view! {
        <Title text="Email outbox" />
        <h1>"Email outbox"</h1>
        <p class="muted">"Every email Keyward queued, with its delivery status. Failed deliveries are retried with backoff, then marked failed."</p>
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match emails.await {
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                    Ok(emails) => view! {
                        <table aria-label="Email outbox">
                            <thead>
                                <tr>
                                    <th scope="col">"To"</th>
                                    <th scope="col">"Subject"</th>
                                    <th scope="col">"Status"</th>
                                    <th scope="col">"Attempts"</th>
                                    <th scope="col">"Last error"</th>
                                    <th scope="col">"Queued"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {emails.into_iter().map(|e| view! {
                                    <tr>
                                        <td>{e.to}</td>
                                        <td>{e.subject}</td>
                                        <td><span class=format!("badge status-{}", e.status)>{e.status.clone()}</span></td>
                                        <td>{e.attempts}</td>
                                        <td>{e.last_error.unwrap_or_default()}</td>
                                        <td><crate::ui::time::Time at=e.created_at /></td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}
