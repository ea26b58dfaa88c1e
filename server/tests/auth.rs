//! Sign-up, sign-in, sign-out, session rotation and timeouts, throttling.

mod common;

use common::*;
use http::StatusCode;

const SESSION: &str = "keyward_session";

/// The confirmation link last emailed to `to`, as its token.
async fn confirmation_token(app: &TestApp, to: &str) -> String {
    app.emailed_token(to, "verify-email").await
}

async fn sign_up(app: &TestApp, email: &str, name: &str, password: &str) -> Reply {
    let mut b = Browser::default();
    app.rpc(
        &mut b,
        "sign_up",
        &[
            ("email", email),
            ("display_name", name),
            ("password", password),
        ],
    )
    .await
}

#[tokio::test]
async fn sign_up_confirms_the_address_by_link_then_signs_in() {
    let app = spawn().await;
    let mut b = Browser::default();
    let r = app
        .rpc(
            &mut b,
            "sign_up",
            &[
                ("email", "Ann@Example.org"),
                ("display_name", "Ann"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.rpc(&mut b, "current_user", &[]).await.json(),
        serde_json::Value::Null,
        "not signed in before the address is confirmed"
    );
    // Even the right password gets the usual answer (no oracle for whoever signed up with
    // someone else's address); the throttle does not count it.
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "ann@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "unconfirmed",
    );
    assert_eq!(app.count("sign_in_failure").await, 0);
    // Each such sign-in sends the link again, three in ten minutes at most.
    for _ in 0..4 {
        app.rpc(
            &mut b,
            "sign_in",
            &[("email", "ann@example.org"), ("password", PASSWORD)],
        )
        .await;
    }
    let links: i64 = sqlx::query_scalar(
        "select count(*) from outbox_email where body_text like '%/verify-email?token=%'",
    )
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(links, app::identity::password_link::VERIFY_LINKS_PER_10_MIN);
    // A wrong one gets the usual answer.
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[
                ("email", "ann@example.org"),
                ("password", "wrong password!"),
            ],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "wrong password",
    );

    // The link needs the password chosen at sign-up, then signs in.
    let token = confirmation_token(&app, "ann@example.org").await;
    let r = app
        .rpc(
            &mut b,
            "confirm_sign_up",
            &[("token", &token), ("password", "not the password")],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "link, wrong password",
    );
    let r = app
        .rpc(
            &mut b,
            "confirm_sign_up",
            &[("token", &token), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(b.get(SESSION).is_some(), "confirming signs the user in");
    let me = app.rpc(&mut b, "current_user", &[]).await.json();
    assert_eq!(me["email"], "Ann@Example.org");
    assert_eq!(me["display_name"], "Ann");
    assert_eq!(me["instance_permissions"], serde_json::json!([]));
    // Once only.
    let mut other = Browser::default();
    let r = app
        .rpc(
            &mut other,
            "confirm_sign_up",
            &[("token", &token), ("password", PASSWORD)],
        )
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "second use");
    // A fresh confirmation link does not set a password, and a reset link does not confirm.
    sign_up(&app, "bea@example.org", "Bea", PASSWORD).await;
    let fresh = confirmation_token(&app, "bea@example.org").await;
    let r = app
        .rpc(
            &mut other,
            "set_password_from_link",
            &[
                ("token", &fresh),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "verify link as reset",
    );
    assert!(r.body.contains("confirms an email address"), "{}", r.body);
    let bea: String = sqlx::query_scalar(
        "select user_id from app_user where email_normalized = 'bea@example.org'",
    )
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    let mut conn = app.state.db.writer.acquire().await.unwrap();
    let state = app::identity::password_link::AccountState::read(&mut conn, &bea)
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    let reset = app::identity::password_link::token(
        &app.state.config.secret,
        &bea,
        app::identity::password_link::Purpose::Reset,
        app::ssr::db::now_ms() + 3_600_000,
        &state,
    );
    let r = app
        .rpc(
            &mut other,
            "confirm_sign_up",
            &[("token", &reset), ("password", PASSWORD)],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "reset link as confirmation",
    );
    assert!(r.body.contains("sets a password"), "{}", r.body);
    // The fresh link still confirms.
    let r = app
        .rpc(
            &mut other,
            "confirm_sign_up",
            &[("token", &fresh), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let r = app.rpc(&mut b, "sign_out", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Email matching is case-insensitive.
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "ann@EXAMPLE.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.rpc(&mut b, "current_user", &[]).await.json()["display_name"],
        "Ann"
    );
}

#[tokio::test]
async fn sign_up_answers_alike_for_a_registered_address_and_changes_nothing() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    let users = app.count("app_user").await;
    let orgs = app.count("organization").await;
    let fresh = sign_up(&app, "new@example.org", "New", PASSWORD).await;
    let taken = sign_up(&app, "ANN@example.org", "Ann 2", "another long passphrase").await;
    let unconfirmed = sign_up(&app, "new@example.org", "New", PASSWORD).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    for r in [&taken, &unconfirmed] {
        assert_eq!(
            (r.status, &r.body),
            (fresh.status, &fresh.body),
            "the same answer"
        );
    }
    // Nor does signing in tell a confirmed account from one just made with its password.
    let mut probe = Browser::default();
    let made = app
        .rpc(
            &mut probe,
            "sign_in",
            &[("email", "new@example.org"), ("password", PASSWORD)],
        )
        .await;
    let existing = app
        .rpc(
            &mut probe,
            "sign_in",
            &[
                ("email", "ann@example.org"),
                ("password", "another long passphrase"),
            ],
        )
        .await;
    assert_eq!((made.status, &made.body), (existing.status, &existing.body));
    assert_eq!(
        app.count("app_user").await,
        users + 1,
        "only the new address made an account"
    );
    assert_eq!(app.count("organization").await, orgs + 1);
    // The owner is told, once an hour at most; their password still works.
    sign_up(&app, "ann@example.org", "Ann 3", "yet another passphrase").await;
    let told: i64 = sqlx::query_scalar(
        "select count(*) from outbox_email where lower(to_address) = $1 and subject = 'You already have a Keyward account'",
    )
    .bind("ann@example.org")
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(told, 1);
    let mut b = Browser::default();
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "ann@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_later_sign_up_of_an_unconfirmed_address_wins_and_voids_earlier_links() {
    let app = spawn().await;
    // Someone signs up with an address that is not theirs…
    sign_up(
        &app,
        "victim@example.org",
        "Squatter",
        "the squatter's passphrase",
    )
    .await;
    let squatter_link = confirmation_token(&app, "victim@example.org").await;
    // …the owner signs up too: their password and name win, the first link is void.
    sign_up(&app, "victim@example.org", "Vic", PASSWORD).await;
    let owner_link = confirmation_token(&app, "victim@example.org").await;
    assert_ne!(squatter_link, owner_link);
    let mut b = Browser::default();
    let r = app
        .rpc(
            &mut b,
            "confirm_sign_up",
            &[
                ("token", &squatter_link),
                ("password", "the squatter's passphrase"),
            ],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "superseded link",
    );
    // The owner's link with the squatter's password: refused too.
    let r = app
        .rpc(
            &mut b,
            "confirm_sign_up",
            &[
                ("token", &owner_link),
                ("password", "the squatter's passphrase"),
            ],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "squatter's password",
    );
    let r = app
        .rpc(
            &mut b,
            "confirm_sign_up",
            &[("token", &owner_link), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let me = app.rpc(&mut b, "current_user", &[]).await.json();
    assert_eq!(me["display_name"], "Vic");
    // Their personal organization is named after them, not the squatter.
    let names: Vec<String> =
        sqlx::query_scalar("select name from organization where kind = 'personal'")
            .fetch_all(&app.state.db.writer)
            .await
            .unwrap();
    assert_eq!(names, ["Vic (personal)"], "{me}");
    assert_eq!(app.count("app_user").await, 1);
}

#[tokio::test]
async fn sign_up_is_refused_when_closed() {
    let app = spawn_with(|c| c.signup_open = false).await;
    let mut b = Browser::default();
    let r = app
        .rpc(
            &mut b,
            "sign_up",
            &[
                ("email", "a@b.co"),
                ("display_name", "A"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "disabled");
    assert_eq!(app.count("app_user").await, 0);
}

#[tokio::test]
async fn session_id_is_rotated_at_sign_in() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    let mut b = Browser::default();
    // An anonymous session exists first (a failed attempt stores nothing in it, so write one
    // through the public current_user call is not enough): plant a pre-login cookie as an
    // attacker would for fixation.
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "ann@example.org"), ("password", "wrong password")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let planted = "keyward_session=AAAAAAAAAAAAAAAAAAAAAA".to_string();
    b.cookies
        .push((SESSION.into(), "AAAAAAAAAAAAAAAAAAAAAA".into()));
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "ann@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let issued = r
        .set_cookie(SESSION)
        .expect("sign-in sets a session cookie");
    assert_ne!(issued, planted);

    // The first session id stops working after a second sign-in rotates it.
    let first = b.clone();
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "ann@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_ne!(
        b.get(SESSION),
        first.get(SESSION),
        "a new id at every sign-in"
    );
    let mut old = first;
    assert_eq!(
        app.rpc(&mut old, "current_user", &[]).await.json(),
        serde_json::Value::Null
    );
    assert_eq!(
        app.rpc(&mut b, "current_user", &[]).await.json()["email"],
        "ann@example.org"
    );
}

#[tokio::test]
async fn session_cookie_flags() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    let mut b = Browser::default();
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "ann@example.org"), ("password", PASSWORD)],
        )
        .await;
    let cookie = r.set_cookie_header(SESSION).expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http origin: {cookie}");

    let app =
        spawn_with(|c| c.public_origin = url::Url::parse("https://keys.example.com").unwrap())
            .await;
    assert_eq!(
        app.state.config.session_cookie_name(),
        "__Host-keyward_session"
    );
    app.user("ann@example.org", None).await;
    let mut b = Browser::default();
    let req = http::Request::post("/rpc/sign_in")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://keys.example.com")
        .body(axum::body::Body::from(form_body(&[
            ("email", "ann@example.org"),
            ("password", PASSWORD),
        ])))
        .unwrap();
    let r = app.send(req).await;
    b.absorb(&r);
    let cookie = r
        .set_cookie_header("__Host-keyward_session")
        .expect("__Host- cookie over https");
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/") && !cookie.contains("Domain"),
        "{cookie}"
    );
}

#[tokio::test]
async fn absolute_timeout_ends_the_session() {
    let app = spawn_with(|c| c.session_absolute = std::time::Duration::ZERO).await;
    app.user("ann@example.org", None).await;
    let mut b = app.signed_in("ann@example.org").await;
    assert_eq!(
        app.rpc(&mut b, "current_user", &[]).await.json(),
        serde_json::Value::Null
    );
    let r = app.rpc(&mut b, "my_organizations", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failures_look_the_same_for_unknown_wrong_and_disabled() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    let bob = app.user("bob@example.org", None).await;
    sqlx::query("update app_user set status = 'disabled' where user_id = $1")
        .bind(&bob)
        .execute(&app.state.db.writer)
        .await
        .unwrap();

    let mut b = Browser::default();
    let unknown = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "nobody@example.org"), ("password", PASSWORD)],
        )
        .await;
    let wrong = app
        .rpc(
            &mut b,
            "sign_in",
            &[
                ("email", "ann@example.org"),
                ("password", "not the password"),
            ],
        )
        .await;
    let disabled = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "bob@example.org"), ("password", PASSWORD)],
        )
        .await;
    for r in [&unknown, &wrong, &disabled] {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.json(),
            serde_json::json!({"error": {"code": "invalid_credentials", "message": "invalid email or password"}})
        );
    }
    assert!(b.get(SESSION).is_none(), "no session for a failed sign-in");
}

/// A device cookie counts only under the credentials it was issued with: once the owner ends
/// their other sessions (or changes the password, or adds a factor), cookies collected before
/// by someone who had the password give no counter of their own, while the owner's browser,
/// which made the change, is trusted anew.
#[tokio::test]
async fn a_device_cookie_stops_counting_once_the_credentials_change() {
    let limit = 3;
    let app = spawn_with(|c| c.sign_in_failures_per_hour = limit).await;
    app.user("ann@example.org", None).await;
    let thief = app.signed_in("ann@example.org").await;
    let stolen = thief.get("keyward_device").unwrap().to_string();
    // A session alone (a stolen session cookie, no device cookie) proves no password: ending
    // the other sessions from it gives it no device cookie.
    let mut hijacked = app.signed_in("ann@example.org").await;
    hijacked
        .cookies
        .retain(|(name, _)| name != "keyward_device");
    let r = app.rpc(&mut hijacked, "revoke_other_sessions", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(hijacked.get("keyward_device"), None);
    let mut owner = app.signed_in("ann@example.org").await;
    let before = owner.get("keyward_device").unwrap().to_string();
    let r = app.rpc(&mut owner, "revoke_other_sessions", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let renewed = owner.get("keyward_device").unwrap().to_string();
    assert_ne!(renewed, stolen);
    assert_ne!(renewed, before);

    // The untrusted browsers' allowance is spent.
    let mut stranger = Browser::default();
    app.wrong_sign_ins(&mut stranger, "ann@example.org", limit)
        .await;
    let with_cookie = |cookie: &str| {
        let mut b = Browser::default();
        b.cookies
            .push(("keyward_device".into(), cookie.to_string()));
        b
    };
    // The cookie from before the change is an untrusted browser now: refused.
    let mut b = with_cookie(&stolen);
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "ann@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    // The owner's renewed one still has its own counter.
    let mut b = with_cookie(&renewed);
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "ann@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn throttling_stops_guessing_but_not_the_owners_browser() {
    let limit = 5;
    let app = spawn_with(|c| c.sign_in_failures_per_hour = limit).await;
    app.user("ann@example.org", None).await;

    // The owner signed in from this browser before: it holds a device cookie.
    let owner = app.signed_in("ann@example.org").await;
    let device = owner
        .get("keyward_device")
        .expect("device cookie after sign-in")
        .to_string();

    // An attacker burns the account's allowance.
    let mut attacker = Browser::default();
    app.wrong_sign_ins(&mut attacker, "ann@example.org", limit)
        .await;
    // Now even the right password is refused from an unknown browser, with the same answer.
    let r = app
        .rpc(
            &mut attacker,
            "sign_in",
            &[("email", "ann@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error_code(), "invalid_credentials");
    assert!(attacker.get(SESSION).is_none());

    // The owner's browser is counted on its own and still gets in: no lock-out.
    let mut trusted = Browser::default();
    trusted.cookies.push(("keyward_device".into(), device));
    let r = app
        .rpc(
            &mut trusted,
            "sign_in",
            &[("email", "ann@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // A forged device cookie does not help the attacker.
    let mut forger = Browser::default();
    forger
        .cookies
        .push(("keyward_device".into(), "usr_x.dev_y.00".into()));
    let r = app
        .rpc(
            &mut forger,
            "sign_in",
            &[("email", "ann@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // The window slides: once the failures are older than an hour, the account opens again.
    sqlx::query("update sign_in_failure set failed_at = failed_at - 3600001")
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let r = app
        .rpc(
            &mut attacker,
            "sign_in",
            &[("email", "ann@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Failures past the allowance's hour are deleted by the sweep, recent ones stay (they still
/// count), and failing to sign in deletes nobody else's.
#[tokio::test]
async fn old_sign_in_failures_are_swept_and_recent_ones_kept() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    app.user("bob@example.org", None).await;
    let mut b = Browser::default();
    for email in ["ann@example.org", "bob@example.org"] {
        let r = app
            .rpc(
                &mut b,
                "sign_in",
                &[("email", email), ("password", "wrong password")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    }
    // Ann's failure is from over an hour ago.
    sqlx::query(
        "update sign_in_failure set failed_at = failed_at - 3600001
         where user_id = (select user_id from app_user where email_normalized = 'ann@example.org')",
    )
    .execute(&app.state.db.writer)
    .await
    .unwrap();
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "bob@example.org"), ("password", "wrong again")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.count("sign_in_failure").await,
        3,
        "a failure deletes nobody's rows"
    );
    // Kept through a second hour: a sweeping instance whose clock runs ahead must not delete
    // what another still counts.
    let sweep = || async {
        app::identity::ssr::prune_sign_in_failures(&app.state.db, app::ssr::db::now_ms())
            .await
            .unwrap()
    };
    assert_eq!(sweep().await, 0);
    sqlx::query(
        "update sign_in_failure set failed_at = failed_at - 3600000
         where user_id = (select user_id from app_user where email_normalized = 'ann@example.org')",
    )
    .execute(&app.state.db.writer)
    .await
    .unwrap();
    assert_eq!(sweep().await, 1);
    let left: Vec<String> = sqlx::query_scalar(
        "select u.email_normalized from sign_in_failure f join app_user u on u.user_id = f.user_id",
    )
    .fetch_all(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(left, ["bob@example.org", "bob@example.org"]);
}

#[tokio::test]
async fn create_user_records_events_and_personal_org() {
    let app = spawn().await;
    let id = app.user("ann@example.org", None).await;
    let kinds: Vec<String> = sqlx::query_scalar(
        "select kind from domain_event where subject_id = $1 order by occurred_at, kind",
    )
    .bind(&id)
    .fetch_all(&app.state.db.reader)
    .await
    .unwrap();
    assert!(kinds.contains(&"user.created".to_string()), "{kinds:?}");
    assert!(
        kinds.contains(&"membership.granted".to_string()),
        "{kinds:?}"
    );
    let mut b = app.signed_in("ann@example.org").await;
    let orgs = app.rpc(&mut b, "my_organizations", &[]).await.json();
    assert_eq!(orgs.as_array().unwrap().len(), 1);
    assert_eq!(orgs[0]["kind"], "personal");
    assert_eq!(orgs[0]["role"], "owner");
}

/// A stored session's record for `user`, signed in, good for an hour.
fn signed_in_record(user: &str) -> tower_sessions::session::Record {
    let mut record = tower_sessions::session::Record {
        id: Default::default(),
        data: Default::default(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    record
        .data
        .insert("user_id".into(), serde_json::json!(user));
    record
}

/// A session ended while a request that loaded it was in flight (a password change, the user
/// disabled) is not written back when that request saves it.
#[tokio::test]
async fn an_ended_session_is_not_written_back_by_a_request_in_flight() {
    use tower_sessions::SessionStore;
    let app = spawn().await;
    let user = app.user("inflight@example.org", None).await;
    let store = app::ssr::session_store::DbSessionStore::new(
        app.state.db.clone(),
        app.state.config.session_absolute,
    );
    let mut record = signed_in_record(&user);
    store.create(&mut record).await.unwrap();
    assert!(store.load(&record.id).await.unwrap().is_some());
    // Saving an existing session updates it.
    record.data.insert("seen".into(), serde_json::json!(1));
    store.save(&record).await.unwrap();
    let loaded = store.load(&record.id).await.unwrap().expect("still there");
    assert_eq!(loaded.data.get("seen"), Some(&serde_json::json!(1)));
    // Ended elsewhere (what a password change or a disable does), then saved by the request
    // that had loaded it: it stays ended.
    app.delete_sessions_of(&user).await;
    store.save(&record).await.unwrap();
    assert!(store.load(&record.id).await.unwrap().is_none());
    assert_eq!(app.count("session").await, 0);
}

/// A session ended by handle while a request renewing its id (a second factor confirmed, the
/// password changed, a passkey added or removed) was in flight stays ended: the renewal finds
/// its row gone and signs the browser out. tower-sessions' `cycle_id` alone would carry the
/// data into a new row, reviving the session under a new id.
#[tokio::test]
async fn an_ended_session_is_not_revived_under_a_new_id() {
    use std::sync::Arc;
    use tower_sessions::{Session, SessionStore};
    let app = spawn().await;
    let db = &app.state.db;
    let user = app.user("renewed@example.org", None).await;
    let store = Arc::new(app::ssr::session_store::DbSessionStore::new(
        db.clone(),
        app.state.config.session_absolute,
    ));
    let signed_in = || async {
        let mut record = signed_in_record(&user);
        store.create(&mut record).await.unwrap();
        // What the request loaded (the guard reads the session first).
        let session = Session::new(Some(record.id), store.clone(), None);
        let holder: Option<String> = session.get("user_id").await.unwrap();
        assert_eq!(holder.as_deref(), Some(user.as_str()));
        (record.id, session)
    };
    // What the session layer does with the response.
    let respond = |session: Session| async move {
        if !session.is_empty().await {
            session.save().await.unwrap();
        }
        session.id()
    };
    let sessions_of_user = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from session where user_id = $1")
            .bind(&user)
            .fetch_one(&db.reader)
            .await
            .unwrap()
    };

    // A live session carries on under a new id.
    let (old, session) = signed_in().await;
    app::identity::ssr::renew_signed_in_id(db, &session)
        .await
        .unwrap();
    let new = respond(session).await.expect("a new id");
    assert_ne!(new, old);
    assert!(store.load(&old).await.unwrap().is_none());
    let renewed = store.load(&new).await.unwrap().expect("renewed");
    assert_eq!(renewed.data.get("user_id"), Some(&serde_json::json!(user)));
    assert_eq!(sessions_of_user().await, 1);

    // One ended by handle meanwhile does not come back.
    let (ended, session) = signed_in().await;
    assert_eq!(sessions_of_user().await, 2);
    store.delete(&ended).await.unwrap();
    let refused = app::identity::ssr::renew_signed_in_id(db, &session)
        .await
        .unwrap_err();
    assert_eq!(refused.code.as_str(), "unauthenticated", "{refused:?}");
    assert_eq!(respond(session).await, None, "no id for the browser");
    assert_eq!(
        sessions_of_user().await,
        1,
        "only the renewed session is left"
    );
    assert!(store.load(&new).await.unwrap().is_some());
}

/// A sign-in for an address no account has goes through the database's writer as a wrong
/// password for a known address does, so the time it takes does not tell the two apart: while
/// what a known address's attempt waits for is held (SQLite's one writer connection; on
/// PostgreSQL the failure table, locked), neither answers; once it is free, both give the same
/// answer.
#[tokio::test]
async fn an_unknown_address_waits_where_a_known_one_does() {
    let app = spawn().await;
    app.user("known@example.org", None).await;
    let attempt = |email: &'static str| {
        let app = &app;
        async move {
            let mut browser = Browser::default();
            app.rpc(
                &mut browser,
                "sign_in",
                &[("email", email), ("password", "guess guess")],
            )
            .await
        }
    };
    // Both answer at once while nothing is held.
    for email in ["known@example.org", "nobody@example.org"] {
        let r = attempt(email).await;
        assert_refused(&r, StatusCode::UNAUTHORIZED, "invalid_credentials", email);
    }
    let mut hold = app.state.db.writer.begin().await.unwrap();
    if on_postgres() {
        sqlx::query("lock table sign_in_failure in access exclusive mode")
            .execute(&mut *hold)
            .await
            .unwrap();
    }
    let mut known = std::pin::pin!(attempt("known@example.org"));
    let mut unknown = std::pin::pin!(attempt("nobody@example.org"));
    let first = tokio::time::timeout(std::time::Duration::from_secs(3), async {
        tokio::select! {
            r = &mut known => ("known", r),
            r = &mut unknown => ("unknown", r),
        }
    })
    .await;
    if let Ok((which, r)) = first {
        panic!(
            "the {which} address answered while the writer was held: {}",
            r.body
        );
    }
    hold.rollback().await.unwrap();
    let (known, unknown) = tokio::join!(known, unknown);
    assert_refused(
        &known,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "known",
    );
    assert_refused(
        &unknown,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "unknown",
    );
    assert_eq!(known.body, unknown.body);
}

/// The unconfirmed sign-up holding `email`: its user id and personal organization.
async fn unconfirmed(app: &TestApp, email: &str) -> (String, String) {
    sqlx::query_as(
        "select user_id, personal_organization_id from app_user
         where email_normalized = $1 and email_verified_at is null",
    )
    .bind(email)
    .fetch_one(&app.state.db.reader)
    .await
    .expect("an unconfirmed sign-up")
}

/// Whether the account and its personal organization are gone.
async fn gone(app: &TestApp, (user_id, org_id): &(String, String)) -> bool {
    let left: i64 = sqlx::query_scalar(
        "select (select count(*) from app_user where user_id = $1)
              + (select count(*) from organization where organization_id = $2)",
    )
    .bind(user_id)
    .bind(org_id)
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    left == 0
}

/// The only account of `email`: its id, and whether it is confirmed.
async fn account_of(app: &TestApp, email: &str) -> (String, bool) {
    let rows: Vec<(String, Option<i64>)> = sqlx::query_as(
        "select user_id, email_verified_at from app_user where email_normalized = $1",
    )
    .bind(email)
    .fetch_all(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1, "{email}: {rows:?}");
    (rows[0].0.clone(), rows[0].1.is_some())
}

/// An address nobody confirmed belongs to nobody: an administrator can create the account,
/// an invitation can be accepted and an email change confirmed for it (a squatter blocks none
/// of them), and the sweep deletes unconfirmed sign-ups a day after their last link, and
/// nothing else.
#[tokio::test]
async fn an_unconfirmed_sign_up_neither_blocks_the_address_nor_stays() {
    let app = spawn().await;
    let root = app
        .user("root@example.org", Some(app::access::Role::Owner))
        .await;

    // 1. An administrator creates the account.
    sign_up(
        &app,
        "squatted@example.org",
        "Squatter",
        "the squatter's pass",
    )
    .await;
    let squatter = unconfirmed(&app, "squatted@example.org").await;
    let squatter_link = confirmation_token(&app, "squatted@example.org").await;
    let grant = app::access::ssr::Grant::operator(app::access::ssr::SYSTEM_ORG_ID);
    let created = app::admin::ssr::create(
        &app.state.db,
        &app.state.config,
        &grant,
        &app::admin::NewUser {
            email: "squatted@example.org".into(),
            display_name: "Sam".into(),
            system_role: None,
        },
        None,
    )
    .await
    .expect("the administrator's account takes the unconfirmed address");
    assert!(gone(&app, &squatter).await);
    assert_eq!(
        account_of(&app, "squatted@example.org").await,
        (created.user_id.clone(), true)
    );
    // The squatter's link died with their account.
    let mut b = Browser::default();
    let r = app
        .rpc(
            &mut b,
            "confirm_sign_up",
            &[
                ("token", &squatter_link),
                ("password", "the squatter's pass"),
            ],
        )
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "dead link");

    // 2. An invitation is accepted for a squatted address.
    sign_up(
        &app,
        "invitee@example.org",
        "Squatter",
        "the squatter's pass",
    )
    .await;
    let squatter = unconfirmed(&app, "invitee@example.org").await;
    let mut owner = app.signed_in("root@example.org").await;
    let r = app
        .rpc(&mut owner, "create_organization", &[("name", "Acme")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let root_org = r.json().as_str().unwrap().to_string();
    let r = app
        .rpc(
            &mut owner,
            "invite_member",
            &[
                ("organization_id", &root_org),
                ("email", "invitee@example.org"),
                ("role", "member"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = app.emailed_token("invitee@example.org", "invite").await;
    let mut anon = Browser::default();
    let preview = app
        .rpc(&mut anon, "open_invitation", &[("token", &token)])
        .await;
    assert_eq!(preview.json()["account_exists"], false, "{}", preview.body);
    let r = app
        .rpc(
            &mut anon,
            "accept_invitation",
            &[
                ("token", &token),
                ("display_name", "Ivy"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(gone(&app, &squatter).await);
    let (ivy, confirmed) = account_of(&app, "invitee@example.org").await;
    assert!(confirmed);
    assert_ne!(ivy, squatter.0);

    // 3. A confirmed email change takes a squatted address.
    sign_up(
        &app,
        "wanted@example.org",
        "Squatter",
        "the squatter's pass",
    )
    .await;
    let squatter = unconfirmed(&app, "wanted@example.org").await;
    let r = app
        .rpc(
            &mut owner,
            "request_email_change",
            &[
                ("new_email", "wanted@example.org"),
                ("current_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = app
        .emailed_token("wanted@example.org", "confirm-email")
        .await;
    let r = app
        .rpc(&mut owner, "confirm_email_change", &[("token", &token)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(gone(&app, &squatter).await);
    assert_eq!(
        account_of(&app, "wanted@example.org").await,
        (root.clone(), true)
    );

    // 4. The sweep: a stale unconfirmed sign-up goes with its personal organization; a fresh
    // one, and confirmed accounts however old, stay.
    sign_up(&app, "stale@example.org", "Stale", PASSWORD).await;
    sign_up(&app, "fresh@example.org", "Fresh", PASSWORD).await;
    let stale = unconfirmed(&app, "stale@example.org").await;
    let now = app::ssr::db::now_ms();
    let long_ago = now - app::identity::ssr::UNCONFIRMED_KEPT_MS - 1;
    sqlx::query(
        "update app_user set updated_at = $1, verify_sent_at = $1, created_at = $1
         where email_normalized in ('stale@example.org', 'wanted@example.org', 'squatted@example.org')",
    )
    .bind(long_ago)
    .execute(&app.state.db.writer)
    .await
    .unwrap();
    let users = app.count("app_user").await;
    let purged = app::identity::ssr::purge_unconfirmed(&app.state.db, now)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert!(gone(&app, &stale).await);
    assert_eq!(app.count("app_user").await, users - 1);
    assert!(
        !account_of(&app, "fresh@example.org").await.1,
        "a fresh sign-up stays"
    );
    // Nothing stale left: the sweep again deletes nothing.
    assert_eq!(
        app::identity::ssr::purge_unconfirmed(&app.state.db, now)
            .await
            .unwrap(),
        0
    );
}

/// Sets the user's password behind the application's back, as a change racing another
/// request could leave things: the sessions' rows are not deleted.
async fn set_password_underneath(app: &TestApp, email: &str, password: &str) {
    let hash = app::ssr::password::hash(password.to_string())
        .await
        .unwrap();
    sqlx::query("update app_user set password_hash = $2 where email_normalized = $1")
        .bind(email)
        .bind(hash)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_session_signed_in_with_a_replaced_password_is_over_even_if_its_row_survived() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    let mut b = app.signed_in("ann@example.org").await;
    assert!(app.signed_in_as(&mut b).await.is_some());
    set_password_underneath(&app, "ann@example.org", "another passphrase entirely").await;
    let rows = app.count("session").await;
    assert_eq!(app.signed_in_as(&mut b).await, None);
    assert_eq!(
        app.count("session").await,
        rows - 1,
        "the stale session is deleted"
    );
    // Signing in with the new password gives a session that stays.
    let mut again = Browser::default();
    let r = app
        .rpc(
            &mut again,
            "sign_in",
            &[
                ("email", "ann@example.org"),
                ("password", "another passphrase entirely"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for _ in 0..2 {
        assert_eq!(
            app.signed_in_as(&mut again).await.as_deref(),
            Some("ann@example.org")
        );
    }
}

/// A right password whose sign-in transaction fails (here: the database refuses the sign-in's
/// event, as a collision would) gives its attempt back: with one attempt an hour, the retry
/// still signs in. Nothing of the failed one was kept.
#[tokio::test]
async fn a_right_password_whose_sign_in_fails_gives_its_attempt_back() {
    let app = spawn_with(|c| c.sign_in_failures_per_hour = 1).await;
    app.user("ann@example.org", None).await;
    refuse_events(&app, "user.signed_in").await;
    let mut b = Browser::default();
    let sign_in = [("email", "ann@example.org"), ("password", PASSWORD)];
    let r = app.rpc(&mut b, "sign_in", &sign_in).await;
    assert!(r.status.is_server_error(), "{} {}", r.status, r.body);
    assert_eq!(
        app.count("sign_in_failure").await,
        0,
        "the attempt was given back"
    );
    assert_eq!(app.count("session").await, 0, "nobody signed in");
    allow_events(&app).await;
    let r = app.rpc(&mut b, "sign_in", &sign_in).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.rpc(&mut b, "current_user", &[]).await.json()["email"],
        "ann@example.org"
    );
}

/// Two instances starting together on an empty database both bootstrap the first
/// administrator: one creates it, the other finds it made and starts (it used to exit on the
/// duplicate address).
#[tokio::test]
async fn two_instances_bootstrapping_at_once_both_start() {
    let app = spawn().await;
    let users = app.count("app_user").await;
    assert_eq!(users, 0, "the test needs an empty database");
    let db = &app.state.db;
    let boot =
        || keyward_server::boot::bootstrap_admin(db, "first@example.org", Some(PASSWORD), ORIGIN);
    let (a, b) = tokio::join!(boot(), boot());
    assert_eq!((a, b), (Ok(()), Ok(())));
    assert_eq!(app.count("app_user").await, 1);
}

/// Whoever holds a sign-up's confirmation link (the mailbox's owner, not always whoever signed
/// up) cannot guess the account's password through it without bound: each wrong password spends
/// one of the account's allowance, as a sign-in does, on a counter of its own; past it even the
/// right password is refused (429) and the address stays unconfirmed. Within it, the right
/// password confirms and takes its own reservation back.
#[tokio::test]
async fn guesses_through_a_confirmation_link_spend_the_account_s_allowance() {
    let app = spawn_with(|c| c.sign_in_failures_per_hour = 3).await;
    let counted = |email: &'static str| {
        let app = &app;
        async move {
            sqlx::query_scalar::<_, i64>(
                "select count(*) from sign_in_failure f join app_user u on u.user_id = f.user_id
                 where u.email_normalized = $1 and f.device_id = 'confirm-link'",
            )
            .bind(email)
            .fetch_one(&app.state.db.reader)
            .await
            .unwrap()
        }
    };
    let confirm = |token: String, password: &'static str| {
        let app = &app;
        async move {
            let mut b = Browser::default();
            let r = app
                .rpc(
                    &mut b,
                    "confirm_sign_up",
                    &[("token", &token), ("password", password)],
                )
                .await;
            (r, b)
        }
    };
    // `n` wrong passwords through `token`, each refused as a wrong password.
    let wrong = |token: String, n: usize| {
        let confirm = &confirm;
        async move {
            for _ in 0..n {
                let (r, _) = confirm(token.clone(), "a wrong guess!!").await;
                assert_refused(
                    &r,
                    StatusCode::UNAUTHORIZED,
                    "invalid_credentials",
                    "a guess",
                );
            }
        }
    };
    // Within the allowance: two wrong, then the right one confirms and gives its own back.
    sign_up(&app, "bea@example.org", "Bea", PASSWORD).await;
    let token = confirmation_token(&app, "bea@example.org").await;
    wrong(token.clone(), 2).await;
    let (r, b) = confirm(token, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(b.get(SESSION).is_some(), "confirming signs in");
    assert_eq!(
        counted("bea@example.org").await,
        2,
        "the right password gave its own back"
    );

    // Past it: the right password is refused too, and nothing is confirmed.
    sign_up(&app, "cy@example.org", "Cy", PASSWORD).await;
    let token = confirmation_token(&app, "cy@example.org").await;
    wrong(token.clone(), 3).await;
    let (r, b) = confirm(token, PASSWORD).await;
    assert_refused(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "past the allowance",
    );
    assert!(b.get(SESSION).is_none(), "nobody signed in");
    let verified: Option<i64> = sqlx::query_scalar(
        "select email_verified_at from app_user where email_normalized = 'cy@example.org'",
    )
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(verified, None, "the address stays unconfirmed");
    assert_eq!(counted("cy@example.org").await, 3);
}
