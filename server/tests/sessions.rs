//! "My sessions": a user sees where they are signed in (the current session marked, the
//! address it signed in from), signs out one other session or all of them, and can never
//! reach another user's session; handles are not the session id nor its stored hash. Runs on
//! SQLite, and on PostgreSQL when `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use common::*;
use http::StatusCode;
use serde_json::json;

async fn sessions(app: &TestApp, b: &mut Browser) -> Vec<serde_json::Value> {
    let r = app.rpc(b, "my_sessions", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json().as_array().unwrap().clone()
}

#[tokio::test]
async fn a_user_sees_their_sessions_and_signs_the_others_out() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    app.user("bob@example.org", None).await;
    let mut laptop = app
        .signed_in_from("ann@example.org", Some("198.51.100.7"))
        .await;
    let mut phone = app
        .signed_in_from("ann@example.org", Some("203.0.113.9"))
        .await;
    let mut bob = app
        .signed_in_from("bob@example.org", Some("192.0.2.55"))
        .await;

    let list = sessions(&app, &mut laptop).await;
    assert_eq!(list.len(), 2, "{list:?}");
    let mine = list
        .iter()
        .find(|s| s["current"] == true)
        .expect("the current one");
    let other = list
        .iter()
        .find(|s| s["current"] == false)
        .expect("the phone");
    assert_eq!(mine["ip"], "198.51.100.7");
    assert_eq!(other["ip"], "203.0.113.9");
    assert!(mine["signed_in_at"].as_str().unwrap().ends_with('Z'));
    // Neither the id (in the cookie) nor the stored hash reaches the page.
    let stored: Vec<String> = sqlx::query_scalar("select session_hash from session")
        .fetch_all(&app.state.db.reader)
        .await
        .unwrap();
    let body = serde_json::to_string(&list).unwrap();
    for hash in &stored {
        assert!(!body.contains(hash.as_str()), "a stored hash in {body}");
    }
    let cookie = laptop.header().unwrap();
    let id = cookie.split('=').nth(1).unwrap().split(';').next().unwrap();
    assert!(!body.contains(id), "the session id in {body}");

    // Bob's handle means nothing to Ann; her own current one is "sign out" instead.
    let bobs = sessions(&app, &mut bob).await;
    let bob_handle = bobs[0]["handle"].as_str().unwrap().to_string();
    let before = app.snapshot().await;
    let r = app
        .rpc(&mut laptop, "revoke_session", &[("handle", &bob_handle)])
        .await;
    assert_refused(
        &r,
        StatusCode::NOT_FOUND,
        "not_found",
        "another user's session",
    );
    let r = app
        .rpc(
            &mut laptop,
            "revoke_session",
            &[("handle", mine["handle"].as_str().unwrap())],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "the current session",
    );
    assert_eq!(app.snapshot().await, before, "nothing written");
    assert!(app.signed_in_as(&mut bob).await.is_some());

    // Ann signs her phone out: it is signed out at once, the laptop stays.
    let r = app
        .rpc(
            &mut laptop,
            "revoke_session",
            &[("handle", other["handle"].as_str().unwrap())],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.signed_in_as(&mut phone).await, None, "the phone is out");
    assert!(app.signed_in_as(&mut laptop).await.is_some());
    assert_eq!(sessions(&app, &mut laptop).await.len(), 1);

    // Two more sign-ins, then "sign out all other sessions".
    let mut tablet = app
        .signed_in_from("ann@example.org", Some("203.0.113.10"))
        .await;
    let mut desk = app
        .signed_in_from("ann@example.org", Some("203.0.113.11"))
        .await;
    let r = app.rpc(&mut laptop, "revoke_other_sessions", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json(), 2);
    assert_eq!(app.signed_in_as(&mut tablet).await, None);
    assert_eq!(app.signed_in_as(&mut desk).await, None);
    assert!(app.signed_in_as(&mut laptop).await.is_some());
    assert!(
        app.signed_in_as(&mut bob).await.is_some(),
        "Bob is untouched"
    );
    let kinds: Vec<String> = sqlx::query_scalar(
        "select kind from domain_event where kind like 'session.%' order by occurred_at",
    )
    .fetch_all(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(kinds, ["session.revoked", "session.others_revoked"]);
}

/// A session row as stored, to put back after it was deleted: what a sign-in whose password
/// was being checked while the user's sessions ended writes after the delete.
async fn stored_row(app: &TestApp, user_id: &str) -> (String, String, i64) {
    sqlx::query_as(
        "select session_hash, data, expires_at from session where user_id = $1 and pending = 0",
    )
    .bind(user_id)
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap()
}

async fn put_back(app: &TestApp, user_id: &str, (hash, data, expires_at): &(String, String, i64)) {
    sqlx::query(
        "insert into session (session_hash, user_id, data, expires_at, pending) values ($1, $2, $3, $4, 0)",
    )
    .bind(hash)
    .bind(user_id)
    .bind(data)
    .bind(expires_at)
    .execute(&app.state.db.writer)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_session_written_after_its_users_sessions_ended_is_over_at_its_first_request() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    app.user("admin@example.org", Some(app::access::Role::Admin))
        .await;
    let mut admin = app.signed_in("admin@example.org").await;

    // "Sign out everywhere else": the late session is over, the caller's carries on.
    let mut late = app.signed_in("ann@example.org").await;
    let row = stored_row(&app, &ann).await;
    let mut laptop = app.signed_in("ann@example.org").await;
    let r = app.rpc(&mut laptop, "revoke_other_sessions", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json(), 1);
    put_back(&app, &ann, &row).await;
    assert_eq!(
        app.signed_in_as(&mut late).await,
        None,
        "the late session is over"
    );
    for _ in 0..2 {
        assert_eq!(
            app.signed_in_as(&mut laptop).await.as_deref(),
            Some("ann@example.org"),
            "the caller's session carries on"
        );
    }
    assert_eq!(
        sessions(&app, &mut laptop).await.len(),
        1,
        "the late row is gone"
    );

    // An administrator ending every session of the user.
    let mut late = app.signed_in("ann@example.org").await;
    let row = stored_row(&app, &ann).await;
    let r = app
        .rpc(&mut admin, "end_user_sessions", &[("user_id", &ann)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    put_back(&app, &ann, &row).await;
    assert_eq!(
        app.signed_in_as(&mut late).await,
        None,
        "the late session is over"
    );
    assert_eq!(app.signed_in_as(&mut laptop).await, None);
    // A sign-in after that is a session like any other.
    let mut fresh = app.signed_in("ann@example.org").await;
    for _ in 0..2 {
        assert_eq!(
            app.signed_in_as(&mut fresh).await.as_deref(),
            Some("ann@example.org")
        );
    }
}

#[tokio::test]
async fn requests_of_the_kept_session_in_flight_while_the_others_end_stay_signed_in() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    for round in 0..5 {
        let mut laptop = app.signed_in("ann@example.org").await;
        let _other = app.signed_in("ann@example.org").await;
        let reads: Vec<_> = (0..16)
            .map(|_| {
                let mut b = laptop.clone();
                let app = &app;
                async move { app.rpc(&mut b, "current_user", &[]).await }
            })
            .collect();
        let mut me = laptop.clone();
        let (revoked, replies) = tokio::join!(
            app.rpc(&mut me, "revoke_other_sessions", &[]),
            futures::future::join_all(reads)
        );
        assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
        for r in replies {
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(
                r.json()["email"],
                "ann@example.org",
                "round {round}: {}",
                r.body
            );
        }
        laptop.cookies = me.cookies.clone();
        assert_eq!(
            app.signed_in_as(&mut laptop).await.as_deref(),
            Some("ann@example.org"),
            "round {round}: the caller's session carries on"
        );
    }
}

/// The stored hash and data of the user's only signed-in session.
async fn only_session(app: &TestApp, user_id: &str) -> (String, String) {
    let (hash, data, _) = stored_row(app, user_id).await;
    (hash, data)
}

#[tokio::test]
async fn a_session_ended_while_its_request_runs_cannot_end_the_others_and_carry_on() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let mut gone = app.signed_in("ann@example.org").await;
    let (gone_hash, _) = only_session(&app, &ann).await;
    let mut laptop = app.signed_in("ann@example.org").await;
    // `gone` passed the guard, then another device signed it out; its action arrives now.
    sqlx::query("delete from session where session_hash = $1")
        .bind(&gone_hash)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let before = app.snapshot().await;
    let epoch = || async {
        sqlx::query_scalar::<_, i64>("select session_epoch from app_user where user_id = $1")
            .bind(&ann)
            .fetch_one(&app.state.db.reader)
            .await
            .unwrap()
    };
    let epoch_before = epoch().await;
    let r = app::identity::sessions::revoke_others(&app.state.db, &ann, &gone_hash).await;
    assert_eq!(r.unwrap_err().code, app::error::ErrorCode::Unauthenticated);
    let r = app::identity::profile::change_password(
        &app.state.db,
        &app.state.config,
        &ann,
        app::identity::profile::SessionRef {
            hash: &gone_hash,
            counter: &gone_hash,
        },
        PASSWORD,
        "a brand new passphrase",
        None,
    )
    .await;
    assert_eq!(r.unwrap_err().code, app::error::ErrorCode::Conflict);
    assert_eq!(app.snapshot().await, before, "nothing written");
    assert_eq!(epoch().await, epoch_before);
    assert_eq!(app.signed_in_as(&mut gone).await, None);
    assert_eq!(
        app.signed_in_as(&mut laptop).await.as_deref(),
        Some("ann@example.org"),
        "the live session was not ended"
    );
    // The password is the one it was (the helper signs in with it, and asserts it worked).
    app.signed_in("ann@example.org").await;
}

#[tokio::test]
async fn a_stale_request_saving_the_kept_session_does_not_undo_its_new_stamp() {
    use tower_sessions::session::Record;
    use tower_sessions::SessionStore;
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let mut laptop = app.signed_in("ann@example.org").await;
    let (_, old_data) = only_session(&app, &ann).await;
    let _phone = app.signed_in("ann@example.org").await;
    let r = app.rpc(&mut laptop, "revoke_other_sessions", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // A request of the laptop's session that loaded it before, saving it now (its idle
    // deadline pushed back, say): what it writes holds the old stamp.
    let id = laptop.session_id();
    // It wrote something else too (another active organization), which is kept.
    let mut data: std::collections::HashMap<String, serde_json::Value> =
        serde_json::from_str(&old_data).unwrap();
    data.insert(app::ssr::keys::ACTIVE_ORG.into(), json!("org_elsewhere"));
    let record = Record {
        id,
        data,
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    app::ssr::session_store::DbSessionStore::new(
        app.state.db.clone(),
        app.state.config.session_absolute,
    )
    .save(&record)
    .await
    .unwrap();
    let (_, saved) = only_session(&app, &ann).await;
    let saved: serde_json::Value = serde_json::from_str(&saved).unwrap();
    assert_eq!(
        saved[app::ssr::keys::ACTIVE_ORG],
        json!("org_elsewhere"),
        "{saved}"
    );
    for _ in 0..2 {
        assert_eq!(
            app.signed_in_as(&mut laptop).await.as_deref(),
            Some("ann@example.org"),
            "the laptop stays signed in"
        );
    }
}

/// The expired-session sweep skips rows another transaction holds (PostgreSQL), instead of
/// waiting for them while holding others (a change ending a user's sessions deletes them in
/// its own order: waiting would deadlock with it). The next sweep takes what it skipped.
#[tokio::test]
async fn the_session_sweep_skips_what_another_change_holds() {
    if !on_postgres() {
        // The row is held by a second transaction; SQLite has one writer.
        return;
    }
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    app.user("bob@example.org", None).await;
    app.signed_in("ann@example.org").await;
    app.signed_in("bob@example.org").await;
    let count = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from session")
            .fetch_one(&app.state.db.reader)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 2);
    sqlx::query("update session set expires_at = 1")
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let mut holding = app.state.db.writer.begin().await.unwrap();
    sqlx::query(
        "select s.session_hash from session s join app_user u on u.user_id = s.user_id
         where u.email = 'ann@example.org' for update",
    )
    .fetch_one(&mut *holding)
    .await
    .unwrap();
    let sweep = || app::identity::sessions::sweep_expired(&app.state.db);
    tokio::time::timeout(std::time::Duration::from_secs(5), sweep())
        .await
        .expect("the sweep does not wait for the held row")
        .unwrap();
    assert_eq!(count().await, 1, "the row nobody held went");
    holding.commit().await.unwrap();
    sweep().await.unwrap();
    assert_eq!(count().await, 0, "the next sweep takes the skipped one");
}

/// What an administrator sees of `user_id`: the session count on the Users page and the
/// sessions listed on the user's page.
async fn seen_by_admin(
    app: &TestApp,
    admin: &mut Browser,
    email: &str,
    user_id: &str,
) -> (i64, usize) {
    let r = app.rpc(admin, "list_users", &[("q", email)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let count = r.json()["users"][0]["sessions"].as_i64().unwrap();
    let r = app
        .rpc(admin, "user_sessions", &[("user_id", user_id)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    (count, r.json().as_array().unwrap().len())
}

/// A session that a race let outlive the end of its user's sessions (it holds the old
/// credential stamp, and is over at its first request) is not listed before that request
/// either: neither in "My sessions" nor on the user's page for an administrator.
#[tokio::test]
async fn a_session_holding_an_old_stamp_is_not_listed_before_its_first_request() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    app.user("admin@example.org", Some(app::access::Role::Admin))
        .await;
    let mut admin = app.signed_in("admin@example.org").await;
    let _late = app.signed_in("ann@example.org").await;
    let row = stored_row(&app, &ann).await;
    let mut laptop = app.signed_in("ann@example.org").await;
    let r = app.rpc(&mut laptop, "revoke_other_sessions", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    put_back(&app, &ann, &row).await;
    assert_eq!(
        app.count("session").await,
        3,
        "admin, laptop and the late row"
    );
    let listed = sessions(&app, &mut laptop).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["current"], true);
    assert_eq!(
        seen_by_admin(&app, &mut admin, "ann@example.org", &ann).await,
        (1, 1),
        "the Users page's count and the administrator's list of ann's sessions"
    );
}

/// A session past its absolute lifetime (counted from sign-in, however active) leaves the
/// lists and counts and is swept without a request of its own: its stored end is the earlier
/// of its idle and absolute deadlines.
#[tokio::test]
async fn a_session_past_its_absolute_lifetime_leaves_lists_and_counts_at_once() {
    let app = spawn_with(|c| c.session_absolute = std::time::Duration::from_secs(2)).await;
    let db = &app.state.db;
    let ann = app.user("ann@example.org", None).await;
    let _phone = app.signed_in("ann@example.org").await;
    // What the Users page counts and the user's page lists, read as an administrator's
    // request reads them (no administrator's session to outlive the same short lifetime).
    let seen = || async {
        let page = app::admin::ssr::list(
            db,
            &app::admin::UserQuery {
                q: "ann@example.org".into(),
                status: String::new(),
                role: String::new(),
                page: None,
            },
        )
        .await
        .unwrap();
        let listed = app::identity::sessions::list(db, &ann, None).await.unwrap();
        (page.users[0].sessions, listed.len())
    };
    assert_eq!(seen().await, (1, 1), "signed in");
    tokio::time::sleep(std::time::Duration::from_millis(2_200)).await;
    // The idle deadline is 30 minutes away.
    assert_eq!(seen().await, (0, 0), "the session count and list");
    assert_eq!(
        app::identity::sessions::sweep_expired(db).await.unwrap(),
        1,
        "swept"
    );
    assert_eq!(app.count("session").await, 0);
}
