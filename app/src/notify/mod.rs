//! Notifications: in-app (the bell) and email through an outbox delivered over SMTP by a
//! supervised worker. Other domains call [`ssr::notify`] with the users to tell and a dedupe
//! key, so that an event is told once however often (or on however many instances) it is seen.
//!
//! Today's events: a key reaching 80 %, 90 % and 100 % of its rate limit (once per threshold
//! and window), and a key expiring in 30, 7 and 1 day(s) (once each).

pub mod api;
#[cfg(feature = "ssr")]
pub mod mail;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;

use serde::{Deserialize, Serialize};

/// An in-app notification of the signed-in user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub id: String,
    pub kind: String,
    pub title: String,
    pub body: String,
    /// Where to act on it (a key's page).
    pub link: Option<String>,
    pub created_at: String,
    pub read: bool,
}

/// An email in the outbox, as admins see it (never its body: it may name keys).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEmail {
    pub id: String,
    pub to: String,
    pub subject: String,
    /// `pending`, `sent` or `failed` (gave up after the last attempt).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub last_error: Option<String>,
    pub created_at: String,
    pub sent_at: Option<String>,
}
