//! Email delivery from the outbox over SMTP with lettre (server only).
//!
//! `KEYWARD_SMTP_URL` says where and how, in lettre's URL form:
//! - `smtp://host:25` — plain SMTP, no TLS (a local relay);
//! - `smtp://user:password@host:587?tls=required` — STARTTLS, refused without it;
//! - `smtps://user:password@host:465` — TLS from the first byte.
//!
//! Without it, messages stay `pending` with the note "SMTP is not configured", visible on the
//! console's outbox page. Each round takes due messages one by one: it first moves a message's
//! next attempt a minute forward with a conditional update (so another instance cannot take it
//! too), sends it, then marks it `sent`, or schedules a retry with exponential backoff (30 s
//! doubling, at most an hour) and gives up as `failed` after [`MAX_ATTEMPTS`]. Bulk notices
//! (usage thresholds, expiry reminders) go after every other due message.

use crate::ssr::db::{now_ms, Db};
use lettre::message::header::ContentType;
use lettre::message::Body;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::Row;

/// Attempts before a message is marked `failed`.
pub const MAX_ATTEMPTS: i64 = 8;
/// Messages one round takes at most.
pub const ROUND: i64 = 50;
/// How long a taken message is reserved for the instance sending it.
const CLAIM_MS: i64 = 60_000;
/// The longest one message's SMTP exchange may take, all its steps together (each step has
/// 20 s): well inside its claim, so a slow relay cannot keep sending a message after the claim
/// lapsed and another instance took it (and sent it again). Past it, the attempt failed and is
/// retried with backoff.
pub const SEND_LIMIT: std::time::Duration = std::time::Duration::from_secs(40);

/// A configured SMTP sender; a domain state plugged in at boot.
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: lettre::message::Mailbox,
    send_limit: std::time::Duration,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may hold the SMTP password.
        f.debug_struct("Mailer")
            .field("configured", &self.transport.is_some())
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Mailer {
    /// From `KEYWARD_SMTP_URL` (none: not configured) and the sender address.
    pub fn new(url: Option<&str>, from: &str) -> Result<Mailer, String> {
        let from = from
            .parse()
            .map_err(|e| format!("KEYWARD_MAIL_FROM {from:?} is not an address: {e}"))?;
        let transport = match url {
            None => None,
            Some(url) => Some(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| format!("KEYWARD_SMTP_URL cannot be used: {e}"))?
                    .timeout(Some(std::time::Duration::from_secs(20)))
                    .build(),
            ),
        };
        Ok(Mailer {
            transport,
            from,
            send_limit: SEND_LIMIT,
        })
    }

    /// The same sender with another [`SEND_LIMIT`] (for tests: a shorter one).
    pub fn with_send_limit(self, send_limit: std::time::Duration) -> Mailer {
        Mailer { send_limit, ..self }
    }

    pub fn of(state: &crate::ssr::AppState) -> Result<&Mailer, crate::error::AppError> {
        state.domains.get::<Mailer>()
    }
}

/// Backoff before attempt `attempts + 1`: 30 s, 60 s, 120 s… at most an hour.
pub fn backoff_ms(attempts: i64) -> i64 {
    (30_000i64 << attempts.clamp(0, 7)).min(3_600_000)
}

/// SQL: an email carrying a link that acts (an invitation, a password or confirmation link,
/// an address change); its body is not kept once it is sent or has failed for good.
const ACTING_LINK: &str = "(dedupe_key like 'invitation:%' or dedupe_key like 'password-link:%' or dedupe_key like 'email-change:%')";

/// Sends the messages due at `now`; returns how many were sent.
pub async fn deliver_due(db: &Db, mailer: &Mailer, now: i64) -> Result<usize, sqlx::Error> {
    // Notices that can come by the thousand (usage thresholds, expiry reminders: one per key)
    // wait behind everything else: a tenant whose many keys cross their limits must not hold
    // up someone's password link, invitation or security notice.
    // Two bounded reads in the due index's order (one sorted by the bulk flag would read and
    // sort every due message each round, worst during the very backlog this is for).
    let bulk = crate::notify::ssr::BULK_KINDS
        .iter()
        .map(|kind| format!("coalesce(dedupe_key, '') like '{kind}:%'"))
        .collect::<Vec<_>>()
        .join(" or ");
    let mut due = Vec::new();
    for kind in [format!("not ({bulk})"), format!("({bulk})")] {
        let room = ROUND - due.len() as i64;
        if room == 0 {
            break;
        }
        due.extend(
            sqlx::query(&format!(
                "select outbox_email_id, to_address, subject, body_text, attempts, next_attempt_at from outbox_email
                 where status = 'pending' and next_attempt_at <= $1 and {kind}
                 order by next_attempt_at limit $2"
            ))
            .bind(now)
            .bind(room)
            .fetch_all(&db.reader)
            .await?,
        );
    }
    let mut sent = 0;
    let started = now_ms();
    for r in due {
        let id: String = r.try_get("outbox_email_id")?;
        let attempts: i64 = r.try_get("attempts")?;
        let planned: i64 = r.try_get("next_attempt_at")?;
        // Take it: only the instance whose update moved the planned time sends it. The claim
        // runs from now, not from the round's start (a slow round must not hand out claims
        // already lapsed), and the outcome is written only while the claim is still ours.
        let claimed = now + (now_ms() - started).max(0) + CLAIM_MS;
        let taken = sqlx::query(
            "update outbox_email set next_attempt_at = $1 where outbox_email_id = $2 and status = 'pending' and next_attempt_at = $3",
        )
        .bind(claimed)
        .bind(&id)
        .bind(planned)
        .execute(&db.writer)
        .await?
        .rows_affected();
        if taken == 0 {
            continue;
        }
        let outcome = match &mailer.transport {
            None => Err("SMTP is not configured (KEYWARD_SMTP_URL)".to_string()),
            Some(transport) => {
                let to: String = r.try_get("to_address")?;
                let subject: String = r.try_get("subject")?;
                let body: String = r.try_get("body_text")?;
                let exchange = send(transport, &mailer.from, &to, &subject, body);
                tokio::time::timeout(mailer.send_limit, exchange)
                    .await
                    .unwrap_or_else(|_| {
                        Err(format!(
                            "the SMTP exchange took longer than {} s",
                            mailer.send_limit.as_secs_f64()
                        ))
                    })
            }
        };
        match outcome {
            Ok(()) => {
                // A sent link that acts (an invitation, a password link) is not kept: its
                // holder alone should have it.
                sqlx::query(&format!("update outbox_email set status = 'sent', sent_at = $1, attempts = $2, last_error = null,
                     body_text = case when {ACTING_LINK} then 'Sent. The link is not kept.' else body_text end
                     where outbox_email_id = $3 and status = 'pending' and next_attempt_at = $4"))
                    .bind(now_ms())
                    .bind(attempts + 1)
                    .bind(&id)
                    .bind(claimed)
                    .execute(&db.writer)
                    .await?;
                sent += 1;
            }
            Err(error) => {
                let attempts = attempts + 1;
                let status = if attempts >= MAX_ATTEMPTS {
                    "failed"
                } else {
                    "pending"
                };
                tracing::warn!(outbox_email_id = %id, attempts, %error, "email not delivered");
                // Not over an outcome another instance wrote after taking a lapsed claim. A link
                // that will not be sent any more is not kept either (a copy of the database
                // must not hold a working set-up link for 90 days).
                sqlx::query(&format!("update outbox_email set status = $1, attempts = $2, next_attempt_at = $3, last_error = $4,
                     body_text = case when $1 = 'failed' and {ACTING_LINK} then 'Not delivered. The link is not kept.' else body_text end
                     where outbox_email_id = $5 and status = 'pending' and next_attempt_at = $6"))
                    .bind(status)
                    .bind(attempts)
                    .bind(now_ms() + backoff_ms(attempts - 1))
                    .bind(error.chars().take(500).collect::<String>())
                    .bind(&id)
                    .bind(claimed)
                    .execute(&db.writer)
                    .await?;
            }
        }
    }
    Ok(sent)
}

async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &lettre::message::Mailbox,
    to: &str,
    subject: &str,
    body: String,
) -> Result<(), String> {
    let message = Message::builder()
        .from(from.clone())
        .to(to
            .parse()
            .map_err(|e| format!("bad recipient address: {e}"))?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        // Wrapped at 72 columns, so that plain text goes as 7bit and links stay whole on
        // their line (quoted-printable would split them).
        .body(Body::new(wrap(&body, 72)))
        .map_err(|e| e.to_string())?;
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Wraps each line at `width` columns on spaces; a longer word (a link) keeps its own line.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut current = String::new();
        for word in line.split(' ') {
            if !current.is_empty() && current.len() + 1 + word.len() > width {
                out.push_str(&current);
                out.push('\n');
                current.clear();
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
        out.push_str(&current);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn wraps_on_spaces_and_keeps_links_whole() {
        let link = format!(
            "http://127.0.0.1:3000/keys/org_{}/key_{}",
            "a".repeat(20),
            "b".repeat(20)
        );
        let text = format!("{} end\n{link}\n", "word ".repeat(30));
        let wrapped = super::wrap(&text, 72);
        assert!(
            wrapped.lines().all(|l| l.len() <= 72 || l == link),
            "{wrapped}"
        );
        assert!(wrapped.lines().any(|l| l == link));
        assert_eq!(
            wrapped.split_whitespace().count(),
            text.split_whitespace().count()
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(super::backoff_ms(0), 30_000);
        assert_eq!(super::backoff_ms(1), 60_000);
        assert_eq!(super::backoff_ms(6), 1_920_000);
        assert_eq!(super::backoff_ms(7), 3_600_000);
        assert_eq!(super::backoff_ms(20), 3_600_000);
    }
}
