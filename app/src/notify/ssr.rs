//! Notifications in the database (server only), and the events that raise them.

use super::{Notification, OutboxEmail};
use crate::error::AppError;
use crate::ssr::db::{new_id, now_ms, Db};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::ssr::db::rfc3339;

/// What to tell.
pub struct Message<'a> {
    pub kind: &'a str,
    pub title: String,
    pub body: String,
    /// A path in the console (`/keys/org_…/key_…`); emails carry it as an absolute link.
    pub link: Option<String>,
    /// Tells an event once: the same key (per user) is never told twice.
    pub dedupe: String,
}

/// Tells `users`, in the app and by email, in one transaction; an event already told (same
/// dedupe key) is skipped. `origin` makes email links absolute. Returns how many users were
/// told now.
pub async fn notify(
    db: &Db,
    users: &[String],
    message: &Message<'_>,
    origin: &str,
) -> Result<usize, AppError> {
    let mut tx = db.writer.begin().await?;
    let told = notify_in(&mut tx, users, message, origin).await?;
    tx.commit().await?;
    Ok(told)
}

/// Takes `users`' row locks in `tx`, in one order (sorted), so that two instances telling the
/// same people cannot deadlock.
async fn lock_recipients(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    users: &[String],
) -> Result<(), sqlx::Error> {
    let mut sorted: Vec<&String> = users.iter().collect();
    sorted.sort();
    sorted.dedup();
    for user_id in sorted {
        crate::ssr::db::lock_user(&mut *tx, user_id).await?;
    }
    Ok(())
}

/// [`notify`] inside the caller's transaction: the notice is written if and only if the
/// change it tells of is (an impersonation never starts untold).
pub async fn notify_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    users: &[String],
    message: &Message<'_>,
    origin: &str,
) -> Result<usize, AppError> {
    let now = now_ms();
    let bulk = BULK_KINDS.contains(&message.kind);
    // The mail worker and the per-address cap find a bulk notice by its dedupe key's prefix.
    debug_assert!(
        !bulk || message.dedupe.starts_with(&format!("{}:", message.kind)),
        "a bulk notice's dedupe key starts with its kind: {}",
        message.dedupe
    );
    if bulk {
        // The per-address mail cap below counts under each recipient's row lock.
        lock_recipients(tx, users).await?;
    }
    let mut told = 0;
    for user_id in users {
        let dedupe = format!("{}:{user_id}", message.dedupe);
        let inserted = sqlx::query(
            "insert into notification (notification_id, user_id, kind, title, body, link, dedupe_key, created_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict (dedupe_key) do nothing",
        )
        .bind(new_id("ntf"))
        .bind(user_id)
        .bind(message.kind)
        .bind(&message.title)
        .bind(&message.body)
        .bind(&message.link)
        .bind(&dedupe)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            continue;
        }
        told += 1;
        let email: Option<String> = sqlx::query_scalar(
            "select email from app_user where user_id = $1 and status = 'active'",
        )
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(email) = email else { continue };
        if bulk {
            let prefix = format!("{}:", message.kind);
            let mailed = recent_emails(tx, &prefix, Some(&email), now - 3_600_000).await?;
            if mailed >= BULK_MAILS_PER_HOUR {
                // Past the cap the notice stays in the app only; the address is told once a
                // clock hour that more are there (the note counts towards the cap as well).
                let hour = now / 3_600_000;
                let more = format!("{prefix}more:{user_id}:{hour}");
                let subject = bulk_overflow_subject(message.kind);
                let text = format!(
                    "{subject}.\n\nYou were sent {BULK_MAILS_PER_HOUR} such emails in the last hour. The ones after them are not emailed: they are all in Keyward's notifications.\n\nOpen them in Keyward:\n{origin}/notifications\n"
                );
                enqueue_email(tx, &email, &subject, &text, &more, now).await?;
                continue;
            }
        }
        let mut text = format!("{}\n\n{}\n", message.title, message.body);
        if let Some(link) = &message.link {
            text.push_str(&format!("\nOpen it in Keyward:\n{origin}{link}\n"));
        }
        enqueue_email(tx, &email, &message.title, &text, &dedupe, now).await?;
    }
    Ok(told)
}

/// Kinds of notice that can come by the thousand, one per key (usage thresholds, expiry
/// reminders, keys awaiting approval and their outcomes: a member may create many, a key
/// holding `approvals:write` review many). Their dedupe keys start with the kind and `:`; the
/// mail worker sends them after every other message, and each address gets at most
/// [`BULK_MAILS_PER_HOUR`] of each kind by email in any hour (the notices themselves are all
/// in the app).
pub const BULK_KINDS: [&str; 4] = ["usage", "expiry", "approval", "review"];

/// Emails of one bulk kind an address is sent in a rolling hour before the rest stay in the app
/// (with one email a clock hour saying so).
pub const BULK_MAILS_PER_HOUR: i64 = 10;

fn bulk_overflow_subject(kind: &str) -> String {
    match kind {
        "usage" => "More of your keys are near their rate limits".to_string(),
        "expiry" => "More of your keys expire soon".to_string(),
        "approval" => "More keys await your approval".to_string(),
        "review" => "More of your keys were reviewed".to_string(),
        other => format!("More {other} notices"),
    }
}

/// Puts an email in the outbox inside the caller's transaction (the delivery worker sends it
/// after commit, with retries); an email with a `dedupe` key already queued is not queued again.
pub async fn enqueue_email(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    to: &str,
    subject: &str,
    text: &str,
    dedupe: &str,
    now: i64,
) -> Result<(), AppError> {
    sqlx::query(
        "insert into outbox_email (outbox_email_id, to_address, subject, body_text, next_attempt_at, dedupe_key, created_at)
         values ($1, $2, $3, $4, $5, $6, $5) on conflict (dedupe_key) do nothing",
    )
    .bind(new_id("eml"))
    .bind(to)
    .bind(subject)
    .bind(text)
    .bind(now)
    .bind(dedupe)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How many emails whose dedupe key starts with `prefix` were queued after `since`, and of
/// those how many went `to` an address (when given). The prefix is matched literally: `_` and
/// `%` in it (user ids hold `_`) are escaped, not wildcards. Callers cap how often a mail goes
/// out with it, counting under a row lock so that racing requests cannot each see room.
pub async fn recent_emails(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    prefix: &str,
    to: Option<&str>,
    since: i64,
) -> Result<i64, AppError> {
    let pattern = format!(
        "{}%",
        prefix
            .replace('\\', "\\\\")
            .replace('_', "\\_")
            .replace('%', "\\%")
    );
    // Two spellings rather than `$3 is null or …`, so each can use its index.
    let sql = match to {
        None => "select count(*) from outbox_email where dedupe_key like $1 escape '\\' and created_at > $2",
        Some(_) => "select count(*) from outbox_email where to_address = $3 and created_at > $2 and dedupe_key like $1 escape '\\'",
    };
    let mut query = sqlx::query_scalar(sql).bind(pattern).bind(since);
    if let Some(to) = to {
        query = query.bind(to);
    }
    let count = query.fetch_one(&mut **tx).await?;
    Ok(count)
}

/// Who is told about a key: a personal token's owner; for an organization key, the
/// organization's owners and admins.
pub async fn key_recipients(db: &Db, key_id: &str) -> Result<Vec<String>, AppError> {
    let r = sqlx::query("select organization_id, owner_user_id from api_key where api_key_id = $1")
        .bind(key_id)
        .fetch_optional(&db.reader)
        .await?;
    let Some(r) = r else { return Ok(Vec::new()) };
    if let Some(owner) = r.try_get::<Option<String>, _>("owner_user_id")? {
        return Ok(vec![owner]);
    }
    let org: String = r.try_get("organization_id")?;
    org_admins(db, &org).await
}

/// An organization's owners and admins (by base role), by id.
async fn org_admins(db: &Db, organization_id: &str) -> Result<Vec<String>, AppError> {
    Ok(sqlx::query_scalar(
        "select user_id from membership where organization_id = $1 and role in ('owner', 'admin') order by user_id",
    )
    .bind(organization_id)
    .fetch_all(&db.reader)
    .await?)
}

/// The organization's members who may review keys: those holding `approvals:write` through
/// their base role, an assigned role or a team, by id.
async fn approvers(db: &Db, organization_id: &str) -> Result<Vec<String>, AppError> {
    // Only these can hold it: base owners and admins, and members with more roles.
    let candidates: Vec<String> = sqlx::query_scalar(
        "select user_id from membership where organization_id = $1 and role in ('owner', 'admin')
         union select user_id from role_assignment where organization_id = $1
         union select user_id from team_member where organization_id = $1
         order by 1",
    )
    .bind(organization_id)
    .fetch_all(&db.reader)
    .await?;
    let mut out = Vec::new();
    for user_id in candidates {
        let held = crate::access::ssr::user_ceiling(db, &user_id, organization_id).await?;
        if held.contains(crate::access::Permission::ApprovalsWrite) {
            out.push(user_id);
        }
    }
    Ok(out)
}

/// The signed-in user's notifications, newest first (at most 100).
pub async fn list(db: &Db, user_id: &str) -> Result<Vec<Notification>, AppError> {
    let rows = sqlx::query(
        "select notification_id, kind, title, body, link, created_at, read_at from notification
         where user_id = $1 order by created_at desc, notification_id limit 100",
    )
    .bind(user_id)
    .fetch_all(&db.reader)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Notification {
                id: r.try_get("notification_id")?,
                kind: r.try_get("kind")?,
                title: r.try_get("title")?,
                body: r.try_get("body")?,
                link: r.try_get("link")?,
                created_at: rfc3339(r.try_get("created_at")?),
                read: r.try_get::<Option<i64>, _>("read_at")?.is_some(),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(AppError::from)
}

pub async fn unread(db: &Db, user_id: &str) -> Result<i64, AppError> {
    Ok(sqlx::query_scalar(
        "select count(*) from notification where user_id = $1 and read_at is null",
    )
    .bind(user_id)
    .fetch_one(&db.reader)
    .await?)
}

/// Marks one notification of the user (or all of them) read.
pub async fn mark_read(db: &Db, user_id: &str, id: Option<&str>) -> Result<(), AppError> {
    let n = sqlx::query(
        "update notification set read_at = $1 where user_id = $2 and read_at is null and ($3 = '' or notification_id = $3)",
    )
    .bind(now_ms())
    .bind(user_id)
    .bind(id.unwrap_or(""))
    .execute(&db.writer)
    .await?
    .rows_affected();
    if n == 0 && id.is_some() {
        let exists: i64 = sqlx::query_scalar(
            "select count(*) from notification where user_id = $1 and notification_id = $2",
        )
        .bind(user_id)
        .bind(id.unwrap_or(""))
        .fetch_one(&db.writer)
        .await?;
        if exists == 0 {
            return Err(AppError::not_found("notification"));
        }
    }
    Ok(())
}

/// The outbox, newest first (at most 200), for admins.
pub async fn outbox(db: &Db) -> Result<Vec<OutboxEmail>, AppError> {
    let rows = sqlx::query(
        "select outbox_email_id, to_address, subject, status, attempts, next_attempt_at, last_error, created_at, sent_at
         from outbox_email order by created_at desc, outbox_email_id limit 200",
    )
    .fetch_all(&db.reader)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(OutboxEmail {
                id: r.try_get("outbox_email_id")?,
                to: r.try_get("to_address")?,
                subject: r.try_get("subject")?,
                status: r.try_get("status")?,
                attempts: r.try_get("attempts")?,
                next_attempt_at: rfc3339(r.try_get("next_attempt_at")?),
                last_error: r.try_get("last_error")?,
                created_at: rfc3339(r.try_get("created_at")?),
                sent_at: r.try_get::<Option<i64>, _>("sent_at")?.map(rfc3339),
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(AppError::from)
}

/// The usage thresholds a key's owners hear about, in percent of its limit.
pub const USAGE_THRESHOLDS: [u64; 3] = [80, 90, 100];

/// Remembers, per key, the last threshold told in each window, so the request path asks the
/// database only when a key crosses a new threshold; the database's dedupe key keeps it to
/// once per threshold and window across instances. A domain state plugged in at boot.
#[derive(Debug, Default)]
pub struct UsageAlerts {
    told: Mutex<HashMap<String, (i64, u64)>>,
}

impl UsageAlerts {
    pub fn of(state: &crate::ssr::AppState) -> Result<&UsageAlerts, AppError> {
        state.domains.get::<UsageAlerts>()
    }

    /// The threshold a request just reached, if it is new for this key and window: `used` of
    /// `limit` in the window numbered `window`.
    pub fn crossed(&self, key_id: &str, window: i64, used: u64, limit: u64) -> Option<u64> {
        let reached = USAGE_THRESHOLDS
            .iter()
            .copied()
            .filter(|t| used * 100 >= t * limit)
            .max()?;
        let mut told = self.told.lock().unwrap_or_else(|p| p.into_inner());
        match told.get(key_id) {
            Some((w, t)) if *w == window && *t >= reached => None,
            _ => {
                if told.len() > 100_000 {
                    told.retain(|_, (w, _)| *w == window);
                }
                told.insert(key_id.to_string(), (window, reached));
                Some(reached)
            }
        }
    }
}

/// The number of the period a usage notice is told once in, at `now` (ms), for a key whose
/// limit counts `window_seconds`: the limit's window, but never shorter than an hour. A key
/// limited per second and kept at its limit would otherwise tell its owners three times a
/// second, by email.
pub fn usage_alert_period(now: i64, window_seconds: i64) -> i64 {
    now / (window_seconds.max(1) * 1000).max(3_600_000)
}

/// Usage notices written at once on an instance. Each is a transaction that waits for its
/// recipients' row locks (the mail cap); a tenant whose many keys cross a threshold together
/// would otherwise hold one pool connection per key while they queue on the same admins, and
/// key lookups, sign-ins and the request log would wait for the pool. Here they wait in memory.
pub const NOTICE_WRITERS: usize = 2;

/// The turns of [`NOTICE_WRITERS`], one set per database (`Db::caches`).
pub struct NoticeWriters(pub tokio::sync::Semaphore);

impl Default for NoticeWriters {
    fn default() -> NoticeWriters {
        NoticeWriters(tokio::sync::Semaphore::new(NOTICE_WRITERS))
    }
}

/// Tells a key's owners it reached `threshold` % of its limit in window `window` (waiting for
/// a turn of [`NOTICE_WRITERS`] first).
pub async fn usage_threshold(
    db: &Db,
    origin: &str,
    key_id: &str,
    organization_id: &str,
    threshold: u64,
    limit_text: &str,
    window: i64,
) -> Result<usize, AppError> {
    let writers = db.caches.get::<NoticeWriters>();
    let _turn = writers
        .0
        .acquire()
        .await
        .map_err(|_| AppError::internal("notice turns closed"))?;
    let users = key_recipients(db, key_id).await?;
    let name: String = sqlx::query_scalar("select name from api_key where api_key_id = $1")
        .bind(key_id)
        .fetch_optional(&db.reader)
        .await?
        .unwrap_or_else(|| key_id.to_string());
    let title = if threshold >= 100 {
        format!("Key \"{name}\" reached its rate limit")
    } else {
        format!("Key \"{name}\" used {threshold} % of its rate limit")
    };
    let body = if threshold >= 100 {
        format!("The key {key_id} used its whole limit ({limit_text}); further requests are refused with 429 until the window moves on. Raise its limit or move it to another plan if this is expected.")
    } else {
        format!("The key {key_id} used {threshold} % of its limit ({limit_text}) in the current window.")
    };
    notify(
        db,
        &users,
        &Message {
            kind: "usage",
            title,
            body,
            link: Some(format!("/keys/{organization_id}/{key_id}")),
            dedupe: format!("usage:{key_id}:{window}:{threshold}"),
        },
        origin,
    )
    .await
}

/// Tells everyone who may review keys in the organization (owners, admins, and members holding
/// `approvals:write` through a custom role or a team) that a key awaits their approval. Its
/// creator, if one of them, is not told: they cannot review it.
pub async fn key_awaits_approval(
    db: &Db,
    origin: &str,
    organization_id: &str,
    key_id: &str,
    name: &str,
    creator: Option<&str>,
) -> Result<usize, AppError> {
    let mut users = approvers(db, organization_id).await?;
    users.retain(|u| Some(u.as_str()) != creator);
    notify(
        db,
        &users,
        &Message {
            kind: "approval",
            title: format!("Key \"{name}\" awaits your approval"),
            body: format!("The key {key_id} was created in an organization that requires approval of new keys. It does not work until someone with approvals:write approves it."),
            link: Some(format!("/keys/{organization_id}/{key_id}")),
            dedupe: format!("approval:{key_id}"),
        },
        origin,
    )
    .await
}

/// Tells the approvers that the keys `pending` (id, name) of one import await approval: the
/// one key's notice for a single key, else one notice for all of them.
pub async fn keys_await_approval(
    db: &Db,
    origin: &str,
    organization_id: &str,
    pending: &[(String, String)],
    creator: Option<&str>,
) -> Result<usize, AppError> {
    let [(first, _), ..] = pending else {
        return Ok(0);
    };
    if let [(id, name)] = pending {
        return key_awaits_approval(db, origin, organization_id, id, name, creator).await;
    }
    let mut users = approvers(db, organization_id).await?;
    users.retain(|u| Some(u.as_str()) != creator);
    let n = pending.len();
    notify(
        db,
        &users,
        &Message {
            kind: "approval",
            title: format!("{n} imported keys await your approval"),
            body: format!("An import created {n} keys in an organization that requires approval of new keys (the first: {first}). They do not work until someone with approvals:write approves them: filter the key list by status pending."),
            link: Some("/keys".to_string()),
            dedupe: format!("approval:import:{first}"),
        },
        origin,
    )
    .await
}

/// Tells a key's creator (when a user) that it was approved or rejected.
pub async fn key_reviewed(
    db: &Db,
    origin: &str,
    organization_id: &str,
    key_id: &str,
    name: &str,
    creator: &str,
    approved: bool,
) -> Result<usize, AppError> {
    let is_user: Option<String> =
        sqlx::query_scalar("select user_id from app_user where user_id = $1")
            .bind(creator)
            .fetch_optional(&db.reader)
            .await?;
    let Some(user) = is_user else { return Ok(0) };
    let (verb, body) = if approved {
        (
            "approved",
            format!("The key {key_id} was approved and works from now on."),
        )
    } else {
        (
            "rejected",
            format!("The key {key_id} was rejected and is revoked."),
        )
    };
    notify(
        db,
        &[user],
        &Message {
            kind: "review",
            title: format!("Key \"{name}\" was {verb}"),
            body,
            link: Some(format!("/keys/{organization_id}/{key_id}")),
            dedupe: format!("review:{key_id}"),
        },
        origin,
    )
    .await
}

/// Reminders sent before a key expires, in days.
pub const EXPIRY_REMINDERS: [i64; 3] = [30, 7, 1];

/// How many keys one read of [`expiry_reminders`] takes (it pages through them by id).
const EXPIRY_PAGE: i64 = 500;

/// A key whose expiry reminder is due and not sent yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueReminder {
    pub key_id: String,
    pub organization_id: String,
    pub name: String,
    pub expires_at: i64,
    /// Which reminder: the smallest of [`EXPIRY_REMINDERS`] not before the expiry.
    pub days: i64,
}

/// The reminder due for a key expiring at `expires_at` (after `now`) as an SQL expression over
/// `expires_at` and `$1` (now): the smallest of [`EXPIRY_REMINDERS`] that applies.
fn due_days_sql() -> String {
    let mut days = EXPIRY_REMINDERS.to_vec();
    days.sort_unstable();
    let (widest, narrower) = days.split_last().expect("reminders");
    let mut sql = String::from("case");
    for d in narrower {
        sql.push_str(&format!(
            " when expires_at - $1 <= {} then {d}",
            d * 86_400_000
        ));
    }
    sql.push_str(&format!(" else {widest} end"));
    sql
}

/// Up to `limit` keys, by id after `after`, whose expiry reminder is due at `now` and not
/// sent: active, approved, not rolled, expiring within the widest reminder, and not yet told
/// this reminder (or a nearer one) for this expiry.
pub async fn due_expiry_reminders(
    db: &Db,
    now: i64,
    after: &str,
    limit: i64,
) -> Result<Vec<DueReminder>, AppError> {
    let widest = EXPIRY_REMINDERS.iter().copied().max().unwrap_or(0);
    let days = due_days_sql();
    let rows = sqlx::query(&format!(
        "select api_key_id, organization_id, name, expires_at, {days} as days from api_key
         where expires_at > $1 and expires_at <= $2 and status = 'active' and approval <> 'pending'
           and rolled_to_key_id is null and api_key_id > $3
           and (reminded_expiry is null or reminded_expiry <> expires_at or reminded_days > {days})
         order by api_key_id limit $4"
    ))
    .bind(now)
    .bind(now + widest * 86_400_000)
    .bind(after)
    .bind(limit)
    .fetch_all(&db.reader)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DueReminder {
                key_id: r.try_get("api_key_id")?,
                organization_id: r.try_get("organization_id")?,
                name: r.try_get("name")?,
                expires_at: r.try_get("expires_at")?,
                days: r.try_get("days")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(AppError::from)
}

/// Tells the owners of active keys expiring within 30, 7 and 1 day(s), each reminder once
/// (the smallest that applies: a key created 5 days before expiry gets the 7-day one, not the
/// 30-day one as well). Run hourly by the `expiry-reminders` worker; returns users told.
///
/// Only keys whose reminder is due and unsent are read, a page at a time, so a key already
/// reminded costs the round nothing. A key that fails is logged and left for the next round;
/// the others are still told.
pub async fn expiry_reminders(db: &Db, origin: &str, now: i64) -> Result<usize, AppError> {
    expiry_reminders_in_pages(db, origin, now, EXPIRY_PAGE).await
}

/// [`expiry_reminders`], reading `page` keys at a time.
pub async fn expiry_reminders_in_pages(
    db: &Db,
    origin: &str,
    now: i64,
    page: i64,
) -> Result<usize, AppError> {
    let mut told = 0;
    let mut after = String::new();
    loop {
        let due = due_expiry_reminders(db, now, &after, page).await?;
        for key in &due {
            match remind_expiry(db, origin, key).await {
                Ok(n) => told += n,
                Err(e) => tracing::warn!(
                    key_id = %key.key_id,
                    code = ?e.code,
                    message = %e.message,
                    "expiry reminder not sent; the next round tries again"
                ),
            }
        }
        match due.last() {
            Some(last) if due.len() as i64 == page => after = last.key_id.clone(),
            _ => return Ok(told),
        }
    }
}

/// Claims `key`'s reminder (one conditional update: the key still expires then, is active,
/// and was not told this reminder, or a nearer one, by another instance meanwhile) and tells
/// its owners in the same transaction; 0 when the claim is refused.
pub async fn remind_expiry(db: &Db, origin: &str, key: &DueReminder) -> Result<usize, AppError> {
    let users = key_recipients(db, &key.key_id).await?;
    let mut tx = db.writer.begin().await?;
    // The recipients' rows before the key's (the documented order: the account, then what
    // hangs off it). `notify_in` takes them for its mail cap in any case; taken after the
    // claim, they would deadlock with an account's deletion revoking its keys on PostgreSQL.
    lock_recipients(&mut tx, &users).await?;
    let claimed = sqlx::query(
        "update api_key set reminded_expiry = $2, reminded_days = $3
         where api_key_id = $1 and expires_at = $2 and status = 'active' and rolled_to_key_id is null
           and (reminded_expiry is null or reminded_expiry <> $2 or reminded_days > $3)",
    )
    .bind(&key.key_id)
    .bind(key.expires_at)
    .bind(key.days)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Ok(0);
    }
    let (days, name, key_id, expires_at) = (key.days, &key.name, &key.key_id, key.expires_at);
    let when = if days == 1 {
        "a day".to_string()
    } else {
        format!("{days} days")
    };
    let told = notify_in(
        &mut tx,
        &users,
        &Message {
            kind: "expiry",
            title: format!("Key \"{name}\" expires within {when}"),
            body: format!(
                "The key {key_id} stops working at {}. Roll it (its successor keeps its settings, with the expiry you choose) or extend its expiry on its page.",
                rfc3339(expires_at)
            ),
            link: Some(format!("/keys/{}/{key_id}", key.organization_id)),
            dedupe: format!("expiry:{key_id}:{expires_at}:{days}"),
        },
        origin,
    )
    .await?;
    tx.commit().await?;
    Ok(told)
}

/// How long sent (or failed) emails and read notifications are kept, in days. Longer than any
/// dedupe key needs (an expiry reminder's lives at most 30 days before the expiry it names; a
/// usage threshold's for its window, at most a day; the mail caps count the last hour).
pub const NOTIFY_RETENTION_DAYS: i64 = 90;

/// Deletes emails done with (sent or failed) and read notifications older than
/// [`NOTIFY_RETENTION_DAYS`], a batch at a time; pending mail and unread notifications stay.
/// Answers how many rows went. Run hourly by the `notify-retention` worker.
pub async fn enforce_retention(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    let before = now - NOTIFY_RETENTION_DAYS * 86_400_000;
    let mut total = 0;
    for sql in [
        "delete from outbox_email where outbox_email_id in (select outbox_email_id from outbox_email
             where status in ('sent', 'failed') and created_at < $1 limit 5000)",
        "delete from notification where notification_id in (select notification_id from notification
             where read_at is not null and created_at < $1 limit 5000)",
    ] {
        loop {
            let n = sqlx::query(sql)
                .bind(before)
                .execute(&db.writer)
                .await?
                .rows_affected();
            total += n;
            if n < 5000 {
                break;
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threshold_is_crossed_once_per_window() {
        let alerts = UsageAlerts::default();
        assert_eq!(alerts.crossed("k", 1, 7, 10), None);
        assert_eq!(alerts.crossed("k", 1, 8, 10), Some(80));
        assert_eq!(alerts.crossed("k", 1, 8, 10), None);
        assert_eq!(alerts.crossed("k", 1, 9, 10), Some(90));
        assert_eq!(alerts.crossed("k", 1, 10, 10), Some(100));
        assert_eq!(alerts.crossed("k", 1, 10, 10), None);
        assert_eq!(alerts.crossed("k", 2, 8, 10), Some(80), "a new window");
        assert_eq!(alerts.crossed("other", 2, 100, 100), Some(100));
    }
}
