//! "My sessions": a user sees where they are signed in (the current session marked, the
//! address it signed in from), signs out one other session or all of them, and can never
//! reach another user's session; handles are not the session id nor its stored hash. Runs on
//! SQLite, and on PostgreSQL when `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use common::*;
use http::StatusCode;

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
