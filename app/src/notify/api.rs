//! Notification server functions: the signed-in user's own (the bell), and the outbox for
//! instance admins.

use super::{Notification, OutboxEmail};
use crate::error::AppError;
use leptos::prelude::*;

/// The caller's notifications, newest first.
#[server(prefix = "/rpc", endpoint = "my_notifications")]
pub async fn my_notifications() -> Result<Vec<Notification>, AppError> {
    let caller = crate::access::guard::guard("my_notifications").await?;
    crate::ssr::respond(async move { super::ssr::list(&caller.state.db, caller.user_id()?).await })
        .await
}

/// How many of the caller's notifications are unread (the bell's count).
#[server(prefix = "/rpc", endpoint = "unread_notifications", client = crate::ui::background::PageClient)]
pub async fn unread_notifications() -> Result<i64, AppError> {
    let caller = crate::access::guard::guard("unread_notifications").await?;
    crate::ssr::respond(
        async move { super::ssr::unread(&caller.state.db, caller.user_id()?).await },
    )
    .await
}

/// Marks one of the caller's notifications read, or all of them (`notification_id` empty).
#[server(prefix = "/rpc", endpoint = "mark_notifications_read")]
pub async fn mark_notifications_read(
    #[server(default)] notification_id: String,
) -> Result<(), AppError> {
    let caller = crate::access::guard::guard("mark_notifications_read").await?;
    crate::ssr::respond(async move {
        let id = Some(notification_id.as_str()).filter(|i| !i.is_empty());
        super::ssr::mark_read(&caller.state.db, caller.user_id()?, id).await
    })
    .await
}

/// The email outbox with each message's delivery status. Requires `users:read` in the system
/// organization.
#[server(prefix = "/rpc", endpoint = "list_outbox")]
pub async fn list_outbox() -> Result<Vec<OutboxEmail>, AppError> {
    let caller = crate::access::guard::guard("list_outbox").await?;
    crate::ssr::respond(super::ssr::outbox(&caller.state.db)).await
}
