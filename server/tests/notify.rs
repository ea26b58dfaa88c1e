//! Notifications: usage thresholds told once per threshold and window, in the app and by
//! email that really travels over SMTP; expiry reminders once each; the outbox's retries and
//! failures visible to admins; the bell's count and marking read.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const IP: &str = "192.0.2.30";

/// An app whose SMTP server does not answer: nothing listens on its port, so every attempt
/// fails at once and is counted.
async fn spawn_with_dead_smtp() -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    spawn_with(move |c| c.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await
}

/// Tells `key_id`'s owners it reached `threshold` % of a 10-per-hour limit in the current hour
/// (as the request path's background task does): how many were told now.
async fn usage_notice(app: &TestApp, key_id: &str, org: &str, threshold: u64) -> usize {
    app::notify::ssr::usage_threshold(
        &app.state.db,
        "http://x",
        key_id,
        org,
        threshold,
        "10 per hour",
        app::ssr::db::now_ms() / 3_600_000,
    )
    .await
    .unwrap()
}

/// A key limited per second and kept at its limit tells its owners once an hour, not once a
/// second: the notice's period is the window, but never shorter than an hour.
#[tokio::test]
async fn a_key_at_its_limit_every_second_tells_its_owners_once_an_hour() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let (_, admin) = app.admin_key(&org).await;
    let (key_id, key) = app.scoped_key(&org, json!({"keys": "read"})).await;
    app.limit_key(IP, &admin, &key_id, 2, 1).await;
    let told = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from notification where kind = 'usage'")
            .fetch_one(&app.state.db.writer)
            .await
            .unwrap()
    };
    // Not across an hour's end (the next hour may tell again): the test takes about 4 s, and
    // longer on a loaded machine.
    let into_hour = app::ssr::db::now_ms() % 3_600_000;
    if into_hour > 3_600_000 - 60_000 {
        tokio::time::sleep(Duration::from_millis((3_600_000 - into_hour + 100) as u64)).await;
    }
    let mut first = None;
    for _ in 0..3 {
        for _ in 0..2 {
            app.api("GET", "/api/v1/me", Some(&key), None, IP).await;
        }
        // Its notice is written off the request path.
        for _ in 0..50 {
            if told().await > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let now = told().await;
        assert!(now > 0, "the limit was reached and told");
        assert_eq!(*first.get_or_insert(now), now, "told again a second later");
    }
}

#[tokio::test]
async fn a_key_at_80_90_and_100_percent_tells_its_owners_once_each_by_email_and_in_the_app() {
    let sink = SmtpSink::start().await;
    let url = sink.url.clone();
    let app = spawn_with(move |c| c.smtp_url = Some(url)).await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let (_, admin) = app.admin_key(&org).await;
    let (key_id, key) = app.scoped_key(&org, json!({"keys": "read"})).await;
    let r = app
        .api(
            "PUT",
            &format!("/api/v1/keys/{key_id}/limit"),
            Some(&admin),
            Some(json!({"rate_limit": 10, "rate_window_seconds": 3600})),
            IP,
        )
        .await;
    assert_eq!(r.status, 200);

    for _ in 0..7 {
        assert_eq!(
            app.api("GET", "/api/v1/me", Some(&key), None, IP)
                .await
                .status,
            200
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.count("notification").await, 0, "70 % tells nobody");
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&key), None, IP)
            .await
            .status,
        200
    );
    let Some(mail) = sink
        .wait_for("used 80 % of its rate limit", Duration::from_secs(5))
        .await
    else {
        let outbox: Vec<(String, String, i64, Option<String>)> =
            sqlx::query_as("select to_address, status, attempts, last_error from outbox_email")
                .fetch_all(&app.state.db.writer)
                .await
                .unwrap();
        panic!(
            "the 80 % email did not arrive over SMTP: {} notification(s), outbox {outbox:?}, sink {:?}",
            app.count("notification").await,
            sink.messages.lock().unwrap()
        );
    };
    assert!(mail.contains("ann@example.org"), "{mail}");
    assert!(
        mail.contains(&format!("/keys/{org}/{key_id}")),
        "a link to the key: {mail}"
    );
    for _ in 0..2 {
        assert_eq!(
            app.api("GET", "/api/v1/me", Some(&key), None, IP)
                .await
                .status,
            200
        );
    }
    sink.wait_for("used 90 %", Duration::from_secs(5))
        .await
        .expect("90 %");
    sink.wait_for("reached its rate limit", Duration::from_secs(5))
        .await
        .expect("100 %");
    for _ in 0..5 {
        assert_eq!(
            app.api("GET", "/api/v1/me", Some(&key), None, IP)
                .await
                .status,
            429
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.count(), 3, "once per threshold");
    assert_eq!(app.count("notification").await, 3);

    // Another instance seeing the same window tells nobody again (the database dedupes).
    let told = usage_notice(&app, &key_id, &org, 80).await;
    assert_eq!(told, 0);

    // The bell: three unread; mark one, then all.
    let mut browser = app.signed_in("ann@example.org").await;
    let r = app.rpc(&mut browser, "unread_notifications", &[]).await;
    assert_eq!(r.json(), json!(3));
    let list = app.rpc(&mut browser, "my_notifications", &[]).await.json();
    let first = list[0]["id"].as_str().unwrap().to_string();
    app.rpc(
        &mut browser,
        "mark_notifications_read",
        &[("notification_id", &first)],
    )
    .await;
    assert_eq!(
        app.rpc(&mut browser, "unread_notifications", &[])
            .await
            .json(),
        json!(2)
    );
    // Another user's notification cannot be marked.
    app.user("bob@example.org", None).await;
    let mut bob = app.signed_in("bob@example.org").await;
    let r = app
        .rpc(
            &mut bob,
            "mark_notifications_read",
            &[("notification_id", &first)],
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        app.rpc(&mut bob, "my_notifications", &[]).await.json(),
        json!([])
    );
    app.rpc(&mut browser, "mark_notifications_read", &[]).await;
    assert_eq!(
        app.rpc(&mut browser, "unread_notifications", &[])
            .await
            .json(),
        json!(0)
    );
}

#[tokio::test]
async fn expiry_reminders_go_once_each_at_30_7_and_1_days() {
    let sink = SmtpSink::start().await;
    let url = sink.url.clone();
    let app = spawn_with(move |c| c.smtp_url = Some(url)).await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let (key_id, _) = app.scoped_key(&org, json!({"keys": "read"})).await;
    let now = app::ssr::db::now_ms();
    let day = 86_400_000;
    sqlx::query("update api_key set expires_at = $1 where api_key_id = $2")
        .bind(now + 20 * day)
        .bind(&key_id)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let scan = |at: i64| {
        let db = app.state.db.clone();
        async move {
            app::notify::ssr::expiry_reminders(&db, "http://k", at)
                .await
                .unwrap()
        }
    };
    assert_eq!(scan(now).await, 1, "within 30 days");
    assert_eq!(scan(now + 3_600_000).await, 0, "once");
    assert_eq!(scan(now + 14 * day).await, 1, "within 7 days");
    assert_eq!(scan(now + 19 * day + 3_600_000).await, 1, "within a day");
    assert_eq!(scan(now + 19 * day + 7_200_000).await, 0);
    assert_eq!(
        scan(now + 21 * day).await,
        0,
        "expired keys are not reminded"
    );
    sink.wait_for("expires within a day", Duration::from_secs(5))
        .await
        .expect("emailed");
    let kinds: Vec<String> =
        sqlx::query_scalar("select title from notification order by created_at")
            .fetch_all(&app.state.db.writer)
            .await
            .unwrap();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(
        kinds[0].contains("30 days") && kinds[1].contains("7 days") && kinds[2].contains("a day"),
        "{kinds:?}"
    );
}

/// Sets `key_id` to expire at `at`.
async fn expire_at(app: &TestApp, key_id: &str, at: i64) {
    sqlx::query("update api_key set expires_at = $1 where api_key_id = $2")
        .bind(at)
        .bind(key_id)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
}

/// The hourly scan reads only keys whose reminder is due and unsent: a key told its reminder
/// is not read again (no writer transaction per reminded key every hour) until its next
/// reminder falls due or its expiry moves.
#[tokio::test]
async fn a_reminded_key_is_not_read_again_until_its_next_reminder() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let (key_id, _) = app.scoped_key(&org, json!({"keys": "read"})).await;
    let (later_id, _) = app.scoped_key(&org, json!({"keys": "read"})).await;
    let now = app::ssr::db::now_ms();
    let day = 86_400_000;
    expire_at(&app, &key_id, now + 20 * day).await;
    expire_at(&app, &later_id, now + 50 * day).await;
    let due = |at: i64| {
        let db = app.state.db.clone();
        async move {
            app::notify::ssr::due_expiry_reminders(&db, at, "", 100)
                .await
                .unwrap()
                .into_iter()
                .map(|d| (d.key_id, d.days))
                .collect::<Vec<_>>()
        }
    };
    let scan = |at: i64| {
        let db = app.state.db.clone();
        async move {
            app::notify::ssr::expiry_reminders(&db, "http://k", at)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        due(now).await,
        vec![(key_id.clone(), 30)],
        "beyond 30 days: not due"
    );
    assert_eq!(scan(now).await, 1);
    assert_eq!(due(now + 3_600_000).await, vec![], "told: not read again");
    assert_eq!(
        due(now + 14 * day).await,
        vec![(key_id.clone(), 7)],
        "the next reminder"
    );
    // Extending the key starts its reminders over (the 30-day one is due again).
    expire_at(&app, &key_id, now + 25 * day).await;
    assert_eq!(
        due(now + 3_600_000).await,
        vec![(key_id.clone(), 30)],
        "a new expiry"
    );
    // A page ends where the last one stopped.
    expire_at(&app, &later_id, now + 10 * day).await;
    let mut both = vec![key_id.clone(), later_id.clone()];
    both.sort();
    let first = app::notify::ssr::due_expiry_reminders(&app.state.db, now, "", 1)
        .await
        .unwrap();
    let second = app::notify::ssr::due_expiry_reminders(&app.state.db, now, &first[0].key_id, 1)
        .await
        .unwrap();
    assert_eq!(
        vec![first[0].key_id.clone(), second[0].key_id.clone()],
        both
    );
}

/// A reminder read before another instance told it, or told a nearer one, is not told again
/// and does not take the key back to an earlier reminder: the claim is conditional. And a
/// round reads page after page until no key is due.
#[tokio::test]
async fn a_stale_reminder_is_refused_and_every_page_is_read() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let now = app::ssr::db::now_ms();
    let day = 86_400_000;
    let mut keys = Vec::new();
    for _ in 0..3 {
        let (key_id, _) = app.scoped_key(&org, json!({"keys": "read"})).await;
        expire_at(&app, &key_id, now + 20 * day).await;
        keys.push(key_id);
    }
    let db = &app.state.db;
    let read_early = app::notify::ssr::due_expiry_reminders(db, now, "", 100)
        .await
        .unwrap();
    assert_eq!(read_early.len(), 3);
    // Told, a page of one key at a time.
    assert_eq!(
        app::notify::ssr::expiry_reminders_in_pages(db, "http://k", now, 1)
            .await
            .unwrap(),
        3,
        "every page"
    );
    let refused = app::notify::ssr::remind_expiry(db, "http://k", &read_early[0])
        .await
        .unwrap();
    assert_eq!(refused, 0, "told already");
    // The 7-day reminder told, then a 30-day one read before it comes late.
    let later = now + 14 * day;
    let seven = app::notify::ssr::due_expiry_reminders(db, later, "", 100)
        .await
        .unwrap();
    assert_eq!(seven.len(), 3);
    assert_eq!(
        app::notify::ssr::remind_expiry(db, "http://k", &seven[0])
            .await
            .unwrap(),
        1
    );
    let stale = app::notify::ssr::DueReminder {
        days: 30,
        ..seven[0].clone()
    };
    assert_eq!(
        app::notify::ssr::remind_expiry(db, "http://k", &stale)
            .await
            .unwrap(),
        0
    );
    let due: Vec<String> = app::notify::ssr::due_expiry_reminders(db, later, "", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.key_id)
        .collect();
    assert_eq!(due.len(), 2, "the first key stays told its 7-day reminder");
    assert!(!due.contains(&seven[0].key_id));
}

/// A reminder takes its recipients' rows before its key's, as an account's deletion does
/// (the account, then the keys it revokes): the two running together on PostgreSQL wait for
/// each other in turn instead of deadlocking.
#[tokio::test]
async fn a_reminder_and_an_account_deletion_do_not_deadlock() {
    if !on_postgres() {
        // One writer: the two cannot interleave.
        return;
    }
    use app::ssr::db::{lock_row, LockedRow, RowLock};
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let (key_id, _) = app.scoped_key(&org, json!({"keys": "read"})).await;
    let now = app::ssr::db::now_ms();
    expire_at(&app, &key_id, now + 5 * 86_400_000).await;
    let due = app::notify::ssr::due_expiry_reminders(&app.state.db, now, "", 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    // The deletion, caught after it took the account's row.
    let mut erase = app.state.db.writer.begin().await.unwrap();
    lock_row(&mut erase, LockedRow::User(&ann), RowLock::Update)
        .await
        .unwrap();
    let db = app.state.db.clone();
    let reminder =
        tokio::spawn(
            async move { app::notify::ssr::remind_expiry(&db, "http://k", &due[0]).await },
        );
    until_a_lock_wait_on(&app.state.db).await;
    // …then revoking the account's keys, as `erase` does.
    sqlx::query("update api_key set status = 'revoked' where api_key_id = $1")
        .bind(&key_id)
        .execute(&mut *erase)
        .await
        .expect("the deletion goes on");
    erase.commit().await.unwrap();
    let told = reminder.await.unwrap().expect("the reminder ends well");
    assert_eq!(told, 0, "the key was revoked meanwhile: nothing to remind");
    assert_eq!(
        app.count("notification").await,
        0,
        "no reminder for a revoked key"
    );
}

/// One key whose reminder cannot be written does not stop the round: the others are told,
/// the scan ends well, and the failed one is due again next round.
#[tokio::test]
async fn a_key_whose_reminder_fails_does_not_stop_the_others() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let now = app::ssr::db::now_ms();
    let mut keys = Vec::new();
    for _ in 0..3 {
        let (key_id, _) = app.scoped_key(&org, json!({"keys": "read"})).await;
        expire_at(&app, &key_id, now + 5 * 86_400_000).await;
        keys.push(key_id);
    }
    keys.sort();
    // The middle key (by id, the scan's order) cannot be claimed.
    let broken = keys[1].clone();
    refuse_rows(
        &app,
        "refuse_claim",
        "update on api_key",
        &format!("new.api_key_id = '{broken}'"),
        None,
    )
    .await;
    let told = app::notify::ssr::expiry_reminders(&app.state.db, "http://k", now)
        .await
        .expect("the round ends well");
    assert_eq!(told, 2, "the two other keys' owner");
    let reminded: Vec<String> =
        sqlx::query_scalar("select link from notification where kind = 'expiry' order by link")
            .fetch_all(&app.state.db.writer)
            .await
            .unwrap();
    assert_eq!(
        reminded,
        vec![
            format!("/keys/{org}/{}", keys[0]),
            format!("/keys/{org}/{}", keys[2])
        ]
    );
    let due: Vec<String> = app::notify::ssr::due_expiry_reminders(&app.state.db, now, "", 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.key_id)
        .collect();
    assert_eq!(due, vec![broken], "tried again next round");
}

/// Sent and failed mail and read notifications go after 90 days; pending mail, unread
/// notifications and anything recent stay.
#[tokio::test]
async fn old_sent_mail_and_read_notifications_are_swept() {
    let app = spawn().await;
    let user = app.user("kept@example.org", None).await;
    let now = app::ssr::db::now_ms();
    let old = now - 91 * 86_400_000;
    let recent = now - 89 * 86_400_000;
    for (id, status, at) in [
        ("tst_old_sent", "sent", old),
        ("tst_old_failed", "failed", old),
        ("tst_old_pending", "pending", old),
        ("tst_recent_sent", "sent", recent),
    ] {
        sqlx::query(
            "insert into outbox_email (outbox_email_id, to_address, subject, body_text, status, next_attempt_at, created_at)
             values ($1, 'a@example.org', 's', 'b', $2, $3, $3)",
        )
        .bind(id)
        .bind(status)
        .bind(at)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    }
    for (id, read, at) in [
        ("tst_old_read", Some(old), old),
        ("tst_old_unread", None, old),
        ("tst_recent_read", Some(recent), recent),
    ] {
        sqlx::query(
            "insert into notification (notification_id, user_id, kind, title, body, created_at, read_at)
             values ($1, $2, 'test', 't', 'b', $3, $4)",
        )
        .bind(id)
        .bind(&user)
        .bind(at)
        .bind(read)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    }
    // (The hourly worker may have swept first: what is left is what counts.)
    app::notify::ssr::enforce_retention(&app.state.db, now)
        .await
        .unwrap();
    let mail: Vec<String> =
        sqlx::query_scalar("select outbox_email_id from outbox_email where outbox_email_id like 'tst%' order by outbox_email_id")
            .fetch_all(&app.state.db.writer)
            .await
            .unwrap();
    assert_eq!(mail, ["tst_old_pending", "tst_recent_sent"]);
    let notes: Vec<String> =
        sqlx::query_scalar("select notification_id from notification where notification_id like 'tst%' order by notification_id")
            .fetch_all(&app.state.db.writer)
            .await
            .unwrap();
    assert_eq!(notes, ["tst_old_unread", "tst_recent_read"]);
}

/// A round of the mail worker sends links and security notices before bulk notices (usage,
/// expiry), however long the bulk backlog has waited; the rest of the round goes to the
/// backlog, oldest first.
#[tokio::test]
async fn bulk_notices_wait_behind_links_and_security_mail() {
    use app::notify::mail::ROUND;
    let app = spawn_with_dead_smtp().await;
    // Due an hour from now: the app's own worker (every second, at its clock) leaves them to
    // the one round below.
    let base = app::ssr::db::now_ms() + 3_600_000;
    let queue = |id: String, dedupe: String, due: i64| {
        sqlx::query(
            "insert into outbox_email (outbox_email_id, to_address, subject, body_text, next_attempt_at, dedupe_key, created_at)
             values ($1, 'a@example.org', 's', 'b', $2, $3, $2)",
        )
        .bind(id)
        .bind(due)
        .bind(dedupe)
        .execute(&app.state.db.writer)
    };
    // 200 usage notices due first (a tenant's keys all crossing their limits), then a
    // password link and a security notice (a second factor reset).
    for i in 0..200 {
        queue(
            format!("eml_usage{i:03}"),
            format!("usage:key_{i}:0:100"),
            base + i,
        )
        .await
        .unwrap();
    }
    for (id, dedupe) in [
        ("eml_link", "password-link:password:usr_x:1"),
        ("eml_security", "2fa-reset:usr_x:1"),
    ] {
        queue(id.into(), dedupe.into(), base + 300).await.unwrap();
    }
    let mailer = app::notify::mail::Mailer::of(&app.state).unwrap();
    app::notify::mail::deliver_due(&app.state.db, mailer, base + 1_000)
        .await
        .unwrap();
    let tried: Vec<String> = sqlx::query_scalar(
        "select outbox_email_id from outbox_email where attempts > 0 order by outbox_email_id",
    )
    .fetch_all(&app.state.db.writer)
    .await
    .unwrap();
    let mut expected = vec!["eml_link".to_string(), "eml_security".to_string()];
    expected.extend((0..ROUND - 2).map(|i| format!("eml_usage{i:03}")));
    expected.sort();
    assert_eq!(
        tried, expected,
        "one round: the link and the security notice, then the oldest of the backlog"
    );
}

/// A tenant whose many keys cross a threshold at once sends each admin at most ten such emails
/// an hour, then one saying the rest are in the app; every notice is still in the app, and
/// another kind of notice has its own allowance.
#[tokio::test]
async fn an_address_gets_at_most_ten_bulk_emails_of_a_kind_an_hour() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    // Not across an hour's end: the note is once per clock hour.
    let into_hour = app::ssr::db::now_ms() % 3_600_000;
    if into_hour > 3_600_000 - 60_000 {
        tokio::time::sleep(Duration::from_millis((3_600_000 - into_hour + 100) as u64)).await;
    }
    let mut keys = Vec::new();
    for _ in 0..14 {
        keys.push(app.scoped_key(&org, json!({"keys": "read"})).await.0);
    }
    let mails = |pattern: &'static str| {
        let db = app.state.db.writer.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "select subject from outbox_email where to_address = 'ann@example.org' and dedupe_key like $1 order by created_at, outbox_email_id",
            )
            .bind(pattern)
            .fetch_all(&db)
            .await
            .unwrap()
        }
    };
    for threshold in [80, 90] {
        for key_id in &keys {
            let told = usage_notice(&app, key_id, &org, threshold).await;
            assert_eq!(told, 1, "every notice is in the app");
        }
    }
    assert_eq!(
        app.count("notification").await,
        28,
        "every notice is in the app"
    );
    let usage = mails("usage:%").await;
    let notices = usage.iter().filter(|s| s.starts_with("Key \"")).count();
    let notes = usage
        .iter()
        .filter(|s| *s == "More of your keys are near their rate limits")
        .count();
    assert_eq!(
        (notices, notes, usage.len()),
        (10, 1, 11),
        "ten notices and one note: {usage:?}"
    );
    // Another kind has its own allowance.
    let told = app::notify::ssr::notify(
        &app.state.db,
        std::slice::from_ref(&ann),
        &app::notify::ssr::Message {
            kind: "expiry",
            title: "Key \"k\" expires within 7 days".into(),
            body: "b".into(),
            link: None,
            dedupe: format!("expiry:{}:1:7", keys[0]),
        },
        "http://x",
    )
    .await
    .unwrap();
    assert_eq!(told, 1);
    assert_eq!(mails("expiry:%").await.len(), 1);
    assert_eq!(
        mails("usage:%").await.len(),
        11,
        "nothing more of the first kind"
    );
}

/// Keys awaiting approval are bulk notices too (`BULK_KINDS`: sent after every other mail, see
/// above): a member who creates key after key in an organization requiring approval emails
/// each approver at most ten an hour, then one note; every notice is still in the app.
#[tokio::test]
async fn approval_requests_are_bulk_mail() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    // Not across an hour's end: the note is once per clock hour.
    let into_hour = app::ssr::db::now_ms() % 3_600_000;
    if into_hour > 3_600_000 - 60_000 {
        tokio::time::sleep(Duration::from_millis((3_600_000 - into_hour + 100) as u64)).await;
    }
    for i in 0..12 {
        let told = app::notify::ssr::key_awaits_approval(
            &app.state.db,
            "http://x",
            &org,
            &format!("key_pending{i:02}"),
            &format!("pending {i}"),
            None,
        )
        .await
        .unwrap();
        assert_eq!(told, 1, "ann, the owner, is told");
    }
    assert_eq!(
        app.count("notification").await,
        12,
        "every notice is in the app"
    );
    let subjects: Vec<String> = sqlx::query_scalar(
        "select subject from outbox_email where to_address = 'ann@example.org' and dedupe_key like 'approval:%'",
    )
    .fetch_all(&app.state.db.writer)
    .await
    .unwrap();
    let notices = subjects
        .iter()
        .filter(|s| s.ends_with("awaits your approval"))
        .count();
    let notes = subjects
        .iter()
        .filter(|s| *s == "More keys await your approval")
        .count();
    assert_eq!(
        (notices, notes, subjects.len()),
        (10, 1, 11),
        "{subjects:?}"
    );
    // An import's one notice is of the same kind: past the cap too.
    let pending: Vec<(String, String)> = (0..3)
        .map(|i| (format!("key_imported{i}"), format!("imported {i}")))
        .collect();
    app::notify::ssr::keys_await_approval(&app.state.db, "http://x", &org, &pending, None)
        .await
        .unwrap();
    let mailed: i64 = sqlx::query_scalar(
        "select count(*) from outbox_email where to_address = 'ann@example.org' and subject like '%imported keys%'",
    )
    .fetch_one(&app.state.db.writer)
    .await
    .unwrap();
    assert_eq!(mailed, 0, "in the app only, past the hour's ten");
    assert_eq!(app.count("notification").await, 13);
    // Reviews are their own kind, with their own allowance.
    for i in 0..12 {
        let told = app::notify::ssr::key_reviewed(
            &app.state.db,
            "http://x",
            &org,
            &format!("key_pending{i:02}"),
            &format!("pending {i}"),
            &ann,
            true,
        )
        .await
        .unwrap();
        assert_eq!(told, 1);
    }
    let reviews: Vec<String> = sqlx::query_scalar(
        "select subject from outbox_email where to_address = 'ann@example.org' and dedupe_key like 'review:%'",
    )
    .fetch_all(&app.state.db.writer)
    .await
    .unwrap();
    let approved = reviews
        .iter()
        .filter(|s| s.ends_with("was approved"))
        .count();
    assert_eq!((approved, reviews.len()), (10, 11), "{reviews:?}");
    assert!(
        reviews.contains(&"More of your keys were reviewed".to_string()),
        "{reviews:?}"
    );
}

/// Usage notices wait for a turn in memory before they open a transaction: with every turn
/// held, a notice writes nothing and holds no connection; given back, it is written.
#[tokio::test]
async fn usage_notices_wait_their_turn_before_touching_the_database() {
    use app::notify::ssr::{NoticeWriters, NOTICE_WRITERS};
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let (key_id, _) = app.scoped_key(&org, json!({"keys": "read"})).await;
    let writers = app.state.db.caches.get::<NoticeWriters>();
    let held = writers.0.acquire_many(NOTICE_WRITERS as u32).await.unwrap();
    let notice = app::notify::ssr::usage_threshold(
        &app.state.db,
        "http://x",
        &key_id,
        &org,
        80,
        "10 per hour",
        app::ssr::db::now_ms() / 3_600_000,
    );
    tokio::pin!(notice);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut notice)
            .await
            .is_err(),
        "the notice waits for a turn"
    );
    assert_every_connection_free(&app.state.db.writer, "a waiting notice").await;
    assert_eq!(app.count("notification").await, 0);
    drop(held);
    assert_eq!(notice.await.unwrap(), 1);
    assert_eq!(app.count("notification").await, 1);
}

/// A link that acts (a password link here) is not kept once its mail has failed for good: a
/// copy of the database holds no working link; another mail keeps its body for the admins.
#[tokio::test]
async fn a_link_that_failed_for_good_is_not_kept() {
    let app = spawn_with_dead_smtp().await;
    let now = app::ssr::db::now_ms();
    for (id, dedupe, attempts) in [
        (
            "eml_link",
            "password-link:password:usr_x:1",
            app::notify::mail::MAX_ATTEMPTS - 1,
        ),
        ("eml_early", "password-link:password:usr_y:1", 1),
        ("eml_notice", "test:1", app::notify::mail::MAX_ATTEMPTS - 1),
    ] {
        sqlx::query(
            "insert into outbox_email (outbox_email_id, to_address, subject, body_text, attempts, next_attempt_at, dedupe_key, created_at)
             values ($1, 'a@example.org', 's', 'https://x/set-password?token=secret', $2, $3, $4, $3)",
        )
        .bind(id)
        .bind(attempts)
        .bind(now)
        .bind(dedupe)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    }
    let mailer = app::notify::mail::Mailer::of(&app.state).unwrap();
    app::notify::mail::deliver_due(&app.state.db, mailer, now + 1)
        .await
        .unwrap();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "select outbox_email_id, status, body_text from outbox_email order by outbox_email_id",
    )
    .fetch_all(&app.state.db.writer)
    .await
    .unwrap();
    let row = |id: &str| rows.iter().find(|r| r.0 == id).unwrap().clone();
    let (_, status, body) = row("eml_link");
    assert_eq!(status, "failed");
    assert!(!body.contains("token="), "{body}");
    let (_, status, body) = row("eml_early");
    assert_eq!(status, "pending", "retried later");
    assert!(body.contains("token="), "kept until it is sent or given up");
    let (_, status, body) = row("eml_notice");
    assert_eq!(status, "failed");
    assert!(body.contains("token="), "another mail keeps its body");
}

/// A relay that answers every step slowly (each within its own timeout) cannot keep one
/// message's exchange going past its limit, which is well inside the message's claim: the
/// attempt fails and is retried, rather than another instance taking the lapsed claim and
/// sending the message a second time.
#[tokio::test]
async fn a_slow_relay_cannot_stretch_a_send_past_its_claim() {
    let app = spawn().await;
    // An SMTP server that greets and answers every command after a second (the whole
    // exchange would take about 8 s).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                tokio::time::sleep(Duration::from_millis(1_000)).await;
                let _ = write.write_all(b"220 slow.example ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    tokio::time::sleep(Duration::from_millis(1_000)).await;
                    let reply: &[u8] = match line.to_ascii_uppercase().as_str() {
                        l if l.starts_with("EHLO") => b"250 slow.example\r\n",
                        l if l.starts_with("DATA") => b"354 go on\r\n",
                        _ => b"250 ok\r\n",
                    };
                    if write.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let mailer = app::notify::mail::Mailer::new(
        Some(&format!("smtp://127.0.0.1:{port}")),
        "keyward@example.org",
    )
    .unwrap()
    .with_send_limit(Duration::from_secs(1));
    // Due an hour from now: the app's own mail worker (no relay configured) leaves it alone.
    let now = app::ssr::db::now_ms() + 3_600_000;
    sqlx::query(
        "insert into outbox_email (outbox_email_id, to_address, subject, body_text, attempts, next_attempt_at, dedupe_key, created_at)
         values ('eml_slow', 'a@example.org', 's', 'b', 0, $1, 'test:slow', $1)",
    )
    .bind(now)
    .execute(&app.state.db.writer)
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let sent = app::notify::mail::deliver_due(&app.state.db, &mailer, now + 1)
        .await
        .unwrap();
    assert_eq!(sent, 0);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "given up at the limit, not at the relay's pace"
    );
    let (status, attempts, error): (String, i64, Option<String>) = sqlx::query_as(
        "select status, attempts, last_error from outbox_email where outbox_email_id = 'eml_slow'",
    )
    .fetch_one(&app.state.db.writer)
    .await
    .unwrap();
    assert_eq!((status.as_str(), attempts), ("pending", 1), "retried later");
    assert!(
        error
            .as_deref()
            .unwrap_or_default()
            .contains("took longer than 1 s"),
        "{error:?}"
    );
}

#[tokio::test]
async fn undeliverable_email_is_retried_with_backoff_and_admins_see_why() {
    let app = spawn_with_dead_smtp().await;
    let root = app
        .user("root@example.org", Some(app::access::Role::Owner))
        .await;
    let org = app.org_of(&root).await;
    let told = app::notify::ssr::notify(
        &app.state.db,
        std::slice::from_ref(&root),
        &app::notify::ssr::Message {
            kind: "test",
            title: "Hello".into(),
            body: "A test message".into(),
            link: None,
            dedupe: "test:1".into(),
        },
        "http://k",
    )
    .await
    .unwrap();
    assert_eq!(told, 1);
    let _ = org;
    let mailer = app::notify::mail::Mailer::of(&app.state).unwrap();
    let now = app::ssr::db::now_ms() + 1000;
    // The worker may have tried already; drive attempts by hand from here.
    let _ = app::notify::mail::deliver_due(&app.state.db, mailer, now)
        .await
        .unwrap();
    let (attempts, next, status, error): (i64, i64, String, Option<String>) =
        sqlx::query_as("select attempts, next_attempt_at, status, last_error from outbox_email")
            .fetch_one(&app.state.db.writer)
            .await
            .unwrap();
    assert!(attempts >= 1, "tried");
    assert_eq!(status, "pending", "retried later");
    assert!(next > now, "with backoff");
    assert!(error.is_some());
    // An admin sees it on the outbox page's data.
    let mut browser = app.signed_in("root@example.org").await;
    let r = app.rpc(&mut browser, "list_outbox", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()[0]["status"], json!("pending"));
    assert!(r.json()[0]["last_error"].as_str().is_some());
    // After the last attempt it is marked failed.
    sqlx::query("update outbox_email set attempts = $1, next_attempt_at = 0")
        .bind(app::notify::mail::MAX_ATTEMPTS - 1)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    app::notify::mail::deliver_due(&app.state.db, mailer, app::ssr::db::now_ms())
        .await
        .unwrap();
    let status: String = sqlx::query_scalar("select status from outbox_email")
        .fetch_one(&app.state.db.writer)
        .await
        .unwrap();
    assert_eq!(status, "failed");
    // Someone without users:read cannot read the outbox.
    app.user("ann@example.org", None).await;
    let mut ann = app.signed_in("ann@example.org").await;
    assert_eq!(app.rpc(&mut ann, "list_outbox", &[]).await.status, 403);
}
