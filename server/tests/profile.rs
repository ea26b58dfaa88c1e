//! The user's own profile: display name, password change (re-authentication, other sessions
//! end, this one continues), email change (re-authentication, a signed single-use link to the
//! new address, a notice to the old). Runs on SQLite, and on PostgreSQL when
//! `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use common::*;
use http::StatusCode;

const NEW_PASSWORD: &str = "a brand new passphrase";

/// The last email queued to `to` whose subject contains `subject`.
async fn mail(app: &TestApp, to: &str, subject: &str) -> Option<String> {
    sqlx::query_scalar(
        "select body_text from outbox_email where to_address = $1 and subject like '%' || $2 || '%'
         order by created_at desc, outbox_email_id desc limit 1",
    )
    .bind(to)
    .bind(subject)
    .fetch_optional(&app.state.db.reader)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_password_change_re_authenticates_and_ends_the_other_sessions() {
    let app = spawn().await;
    app.user("pat@example.org", None).await;
    let mut here = app.signed_in("pat@example.org").await;
    let mut laptop = app.signed_in("pat@example.org").await;

    // A wrong current password changes nothing and signs nobody out.
    let before = app.snapshot().await;
    let r = app
        .rpc(
            &mut here,
            "change_password",
            &[
                ("current_password", "not it at all"),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "wrong current password",
    );
    assert_eq!(app.snapshot().await, before);
    assert!(app.signed_in_as(&mut laptop).await.is_some());
    // Too short a new password: a clear error.
    let r = app
        .rpc(
            &mut here,
            "change_password",
            &[("current_password", PASSWORD), ("new_password", "short")],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "short password",
    );

    let r = app
        .rpc(
            &mut here,
            "change_password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // This session continues (under a new id); the other one is over.
    assert_eq!(
        app.signed_in_as(&mut here).await.as_deref(),
        Some("pat@example.org")
    );
    assert_eq!(app.signed_in_as(&mut laptop).await, None);
    // The new password signs in, the old one no longer does; the address was told.
    let mut b = Browser::default();
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "pat@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "old password",
    );
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "pat@example.org"), ("password", NEW_PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(mail(&app, "pat@example.org", "password was changed")
        .await
        .is_some());
}

/// The account's credential stamp now (what an email-change link is bound to).
async fn stamp_of(app: &TestApp, user_id: &str) -> String {
    let (hash, epoch): (String, i64) =
        sqlx::query_as("select password_hash, session_epoch from app_user where user_id = $1")
            .bind(user_id)
            .fetch_one(&app.state.db.reader)
            .await
            .unwrap();
    app::identity::ssr::credential_stamp(&hash, epoch)
}

/// An email-change link asked for with a stolen password dies with the password: changed
/// meanwhile (the notice to the old address says to), the link is refused and the address
/// stays.
#[tokio::test]
async fn an_email_change_link_dies_when_the_password_changes() {
    let app = spawn().await;
    app.user("vic@example.org", None).await;
    let mut thief = app.signed_in("vic@example.org").await;
    let r = app
        .rpc(
            &mut thief,
            "request_email_change",
            &[
                ("new_email", "thief@example.org"),
                ("current_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = app
        .emailed_token("thief@example.org", "confirm-email")
        .await;
    let mut vic = app.signed_in("vic@example.org").await;
    let r = app
        .rpc(
            &mut vic,
            "change_password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut anon = Browser::default();
    let r = app
        .rpc(&mut anon, "confirm_email_change", &[("token", &token)])
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "link after a password change",
    );
    assert_eq!(
        app.signed_in_as(&mut vic).await.as_deref(),
        Some("vic@example.org")
    );
}

#[tokio::test]
async fn an_email_change_takes_a_confirmed_link_used_once() {
    let app = spawn().await;
    let id = app.user("old@example.org", None).await;
    app.user("taken@example.org", None).await;
    let mut b = app.signed_in("old@example.org").await;

    let before = app.snapshot().await;
    let r = app
        .rpc(
            &mut b,
            "request_email_change",
            &[
                ("new_email", "new@example.org"),
                ("current_password", "wrong wrong"),
            ],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "wrong password",
    );
    let r = app
        .rpc(
            &mut b,
            "request_email_change",
            &[
                ("new_email", "not an address"),
                ("current_password", PASSWORD),
            ],
        )
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "bad address");
    assert_eq!(app.snapshot().await, before, "rows changed");

    let r = app
        .rpc(
            &mut b,
            "request_email_change",
            &[
                ("new_email", "New@Example.org"),
                ("current_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Nothing changes yet; the old address is told, the new one gets the link.
    assert_eq!(
        app.signed_in_as(&mut b).await.as_deref(),
        Some("old@example.org")
    );
    assert!(mail(&app, "old@example.org", "email change was asked")
        .await
        .unwrap()
        .contains("new@example.org"));
    assert!(mail(&app, "new@example.org", "Confirm your new")
        .await
        .is_some());
    let token = app.emailed_token("new@example.org", "confirm-email").await;

    // A tampered link is refused and changes nothing.
    let mut anon = Browser::default();
    // The last character, changed (to something else than it was: a fixed replacement would
    // leave one token in 64 untouched).
    let last = if token.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &token[..token.len() - 1]);
    let r = app
        .rpc(&mut anon, "confirm_email_change", &[("token", &tampered)])
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "tampered link",
    );
    assert_eq!(
        app.signed_in_as(&mut b).await.as_deref(),
        Some("old@example.org")
    );

    let r = app
        .rpc(&mut anon, "confirm_email_change", &[("token", &token)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json(), "new@example.org");
    assert_eq!(
        app.signed_in_as(&mut b).await.as_deref(),
        Some("new@example.org")
    );
    assert!(mail(&app, "old@example.org", "address was changed")
        .await
        .is_some());
    // Once only.
    let r = app
        .rpc(&mut anon, "confirm_email_change", &[("token", &token)])
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "second use");

    // A link to an address someone else took meanwhile is a conflict, and nothing changes.
    let token = app::identity::profile::email_token(
        &app.state.config.secret,
        &id,
        "new@example.org",
        "taken@example.org",
        &stamp_of(&app, &id).await,
        app::ssr::db::now_ms() + 60_000,
    );
    let r = app
        .rpc(&mut anon, "confirm_email_change", &[("token", &token)])
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "taken address");
    assert_eq!(
        app.signed_in_as(&mut b).await.as_deref(),
        Some("new@example.org")
    );
    // An expired link is refused.
    let token = app::identity::profile::email_token(
        &app.state.config.secret,
        &id,
        "new@example.org",
        "later@example.org",
        &stamp_of(&app, &id).await,
        app::ssr::db::now_ms() - 1,
    );
    let r = app
        .rpc(&mut anon, "confirm_email_change", &[("token", &token)])
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "expired");
}

#[tokio::test]
async fn the_display_name_changes_and_a_blank_one_is_refused() {
    let app = spawn().await;
    app.user("dee@example.org", None).await;
    let mut b = app.signed_in("dee@example.org").await;
    let r = app
        .rpc(&mut b, "update_profile", &[("display_name", "   ")])
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "blank name");
    let r = app
        .rpc(&mut b, "update_profile", &[("display_name", "  Dee Dee ")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.rpc(&mut b, "current_user", &[]).await;
    assert_eq!(r.json()["display_name"], "Dee Dee");
    // Signed out: refused.
    let r = app
        .rpc(
            &mut Browser::default(),
            "update_profile",
            &[("display_name", "X")],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "signed out",
    );
}

#[tokio::test]
async fn the_dashboard_shows_my_keys_with_usage_against_limits_and_nobody_else_s() {
    let app = spawn().await;
    let me = app.user("dash@example.org", None).await;
    let org = app.org_of(&me).await;
    let mut b = app.signed_in("dash@example.org").await;
    let r = app
        .rpc(
            &mut b,
            "create_key",
            &[
                ("organization_id", org.as_str()),
                ("name", "soon"),
                ("environment", "live"),
                ("category", "basic"),
                ("ip_allowlist", ""),
                ("expires_in_days", "7"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (id, secret) = (
        r.json()["id"].as_str().unwrap().to_string(),
        r.json()["key"].as_str().unwrap().to_string(),
    );
    // Someone else's key in the same organization is not mine.
    let (other_id, _) = app.admin_key(&org).await;
    for _ in 0..3 {
        let r = app
            .api("GET", "/api/v1/me", Some(&secret), None, "192.0.2.30")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    app.wait_for_log_rows(3).await;
    let mut d = serde_json::Value::Null;
    for _ in 0..50 {
        d = app.rpc(&mut b, "my_dashboard", &[]).await.json();
        if d["keys"][0]["used"] == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let keys = d["keys"].as_array().unwrap_or_else(|| panic!("{d}"));
    assert_eq!(keys.len(), 1, "{d}");
    assert_eq!(keys[0]["id"], id.as_str());
    assert_ne!(keys[0]["id"], other_id.as_str());
    assert_eq!(keys[0]["used"], 3, "{d}");
    // The free plan's limit (tests raise it out of the way).
    let (limit, window): (i64, i64) = sqlx::query_as(
        "select request_limit, window_seconds from plan where plan_id = 'plan_free'",
    )
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(keys[0]["limit"], limit);
    assert_eq!(keys[0]["window_seconds"], window);
    assert_eq!(keys[0]["expires_soon"], true);
    // A stranger's dashboard holds none of it.
    app.user("stranger@example.org", None).await;
    let mut s = app.signed_in("stranger@example.org").await;
    let d = app.rpc(&mut s, "my_dashboard", &[]).await.json();
    assert_eq!(d["keys"], serde_json::json!([]), "{d}");
    // Signed out: refused.
    let r = app.rpc(&mut Browser::default(), "my_dashboard", &[]).await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "signed out",
    );
}

#[tokio::test]
async fn deleting_one_s_account_re_authenticates_and_is_refused_while_sole_owner() {
    let app = spawn().await;
    let me = app.user("leaver@example.org", None).await;
    let mut b = app.signed_in("leaver@example.org").await;
    let mut laptop = app.signed_in("leaver@example.org").await;
    let personal = app.org_of(&me).await;
    let (_, token) = app.pat(&mut b, &personal, "basic").await;
    let r = app
        .rpc(&mut b, "create_organization", &[("name", "Solo Ltd")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let solo = r.json().as_str().unwrap().to_string();

    let before = app.snapshot().await;
    let r = app
        .rpc(
            &mut b,
            "delete_account",
            &[("current_password", "not it at all")],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "wrong password",
    );
    let r = app
        .rpc(&mut b, "delete_account", &[("current_password", PASSWORD)])
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "sole owner");
    assert!(
        r.body.contains("Solo Ltd"),
        "names the organization: {}",
        r.body
    );
    assert_eq!(app.snapshot().await, before, "refusals wrote nothing");

    let heir = app.user("heir@example.org", None).await;
    app.add_member(&solo, &heir, "owner").await;
    let r = app
        .rpc(&mut b, "delete_account", &[("current_password", PASSWORD)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.signed_in_as(&mut b).await, None, "this session ended");
    assert_eq!(
        app.signed_in_as(&mut laptop).await,
        None,
        "every session ended"
    );
    let mut fresh = Browser::default();
    let r = app
        .rpc(
            &mut fresh,
            "sign_in",
            &[("email", "leaver@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    let r = app
        .api("GET", "/api/v1/me", Some(&token), None, "192.0.2.40")
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "token revoked: {}",
        r.body
    );
    let (name, status): (String, String) = sqlx::query_as(
        "select display_name, status from app_user where user_id = $1 and deleted_at is not null",
    )
    .bind(&me)
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(
        (name.as_str(), status.as_str()),
        ("Deleted user", "disabled")
    );
}

#[tokio::test]
async fn preferences_hold_a_known_time_zone_and_a_theme_and_bad_ones_write_nothing() {
    let app = spawn().await;
    app.user("tia@example.org", None).await;
    let mut b = app.signed_in("tia@example.org").await;
    let me = |b: &mut Browser| {
        let mut b = b.clone();
        let app = &app;
        async move { app.rpc(&mut b, "current_user", &[]).await.json() }
    };
    // The defaults: the browser's zone, the system's theme.
    let user = me(&mut b).await;
    assert_eq!(user["time_zone"], serde_json::Value::Null, "{user}");
    assert_eq!(user["theme"], "system", "{user}");

    let r = app
        .rpc(
            &mut b,
            "set_preferences",
            &[("time_zone", " asia/kolkata "), ("theme", "dark")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let user = me(&mut b).await;
    assert_eq!(
        user["time_zone"], "Asia/Kolkata",
        "stored as the database spells it: {user}"
    );
    assert_eq!(user["theme"], "dark", "{user}");

    // Unknown zones and themes: refused, naming the field, and nothing changes.
    for (zone, theme, field) in [
        ("Mars/Olympus_Mons", "light", "time_zone"),
        ("UTC+2", "light", "time_zone"),
        ("Europe/Paris", "purple", "theme"),
        ("Europe/Paris", "", "theme"),
    ] {
        let r = app
            .rpc(
                &mut b,
                "set_preferences",
                &[("time_zone", zone), ("theme", theme)],
            )
            .await;
        assert_refused(
            &r,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            &format!("{zone} / {theme}"),
        );
        assert!(r.body.contains(field), "{}", r.body);
        let user = me(&mut b).await;
        assert_eq!(
            (user["time_zone"].clone(), user["theme"].clone()),
            (serde_json::json!("Asia/Kolkata"), serde_json::json!("dark"))
        );
    }
    // Empty: back to the browser's zone.
    let r = app
        .rpc(
            &mut b,
            "set_preferences",
            &[("time_zone", ""), ("theme", "light")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(me(&mut b).await["time_zone"], serde_json::Value::Null);
    // Signed out: refused.
    let r = app
        .rpc(
            &mut Browser::default(),
            "set_preferences",
            &[("time_zone", "UTC"), ("theme", "dark")],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "signed out",
    );
}

#[tokio::test]
async fn the_server_renders_the_page_in_the_theme_its_cookie_names() {
    let app = spawn().await;
    for (cookie, theme) in [
        (Some("dark"), "dark"),
        (Some("light"), "light"),
        (Some("<script>"), "system"),
        (None, "system"),
    ] {
        let b = Browser {
            cookies: cookie
                .map(|c| vec![("keyward_theme".to_string(), c.to_string())])
                .unwrap_or_default(),
            ..Default::default()
        };
        let r = app.get(&b, "/sign-in").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            r.body
                .contains(&format!("<html lang=\"en\" data-theme=\"{theme}\"")),
            "{cookie:?}: {}",
            &r.body[..r.body.len().min(300)]
        );
    }
}

#[tokio::test]
async fn of_two_password_changes_racing_one_wins_and_the_other_is_told() {
    let app = spawn().await;
    app.user("pat@example.org", None).await;
    let mut here = app.signed_in("pat@example.org").await;
    let mut laptop = app.signed_in("pat@example.org").await;
    let (a, b) = tokio::join!(
        app.rpc(
            &mut here,
            "change_password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        ),
        app.rpc(
            &mut laptop,
            "change_password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "yet another passphrase"),
            ],
        )
    );
    let (mut winner, new, loser) = match (a.status, b.status) {
        (StatusCode::OK, _) => (here, NEW_PASSWORD, b),
        (_, StatusCode::OK) => (laptop, "yet another passphrase", a),
        _ => panic!("neither change went through: {} / {}", a.body, b.body),
    };
    // The other one was checked against a password that is gone by the time it would write:
    // refused (a conflict, or a wrong current password if it started after the winner's).
    assert!(
        loser.status == StatusCode::CONFLICT || loser.status == StatusCode::BAD_REQUEST,
        "{} {}",
        loser.status,
        loser.body
    );
    // The winner's session carries on, and its password is the one stored.
    assert_eq!(
        app.signed_in_as(&mut winner).await.as_deref(),
        Some("pat@example.org")
    );
    let mut again = Browser::default();
    let r = app
        .rpc(
            &mut again,
            "sign_in",
            &[("email", "pat@example.org"), ("password", new)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let changes: i64 = sqlx::query_scalar(
        "select count(*) from domain_event where kind = 'user.password_changed'",
    )
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(changes, 1);
}

/// Re-authentication counts on the session's own allowance: guesses from outside (which spend
/// the untrusted browsers' counter) cannot keep the owner from changing the password, and a
/// session's own wrong passwords are answered `rate_limited` once spent, not "not right".
#[tokio::test]
async fn outside_guesses_cannot_block_the_owner_from_re_authenticating() {
    let limit = 3;
    let app = spawn_with(|c| c.sign_in_failures_per_hour = limit).await;
    app.user("pat@example.org", None).await;
    let mut here = app.signed_in("pat@example.org").await;
    let mut laptop = app.signed_in("pat@example.org").await;
    let mut stranger = Browser::default();
    app.wrong_sign_ins(&mut stranger, "pat@example.org", limit)
        .await;
    // This session's own allowance: wrong passwords are told apart until it is spent.
    for _ in 0..limit {
        let r = app
            .rpc(
                &mut here,
                "change_password",
                &[
                    ("current_password", "not it at all"),
                    ("new_password", NEW_PASSWORD),
                ],
            )
            .await;
        assert_refused(
            &r,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "wrong password",
        );
    }
    let r = app
        .rpc(
            &mut here,
            "change_password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.error_code(), "rate_limited", "{}", r.body);
    // Another session of the owner's is not held by it, nor by the stranger's guesses.
    let r = app
        .rpc(
            &mut laptop,
            "change_password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// An account asks for at most five address changes an hour: the sixth is `429 rate_limited`
/// and sends nothing, so "confirm your new address" cannot flood someone else's inbox.
#[tokio::test]
async fn address_change_mails_are_bounded_per_account() {
    let app = spawn().await;
    app.user("pat@example.org", None).await;
    let mut b = app.signed_in("pat@example.org").await;
    for _ in 0..app::identity::profile::EMAIL_CHANGES_PER_HOUR {
        let r = ask(&app, &mut b).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let mails = app.count("outbox_email").await;
    let r = ask(&app, &mut b).await;
    assert_eq!(r.error_code(), "rate_limited", "{}", r.body);
    assert_eq!(app.count("outbox_email").await, mails, "nothing sent");
    // The hour slides.
    sqlx::query("update outbox_email set created_at = created_at - 3600001")
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    assert_eq!(ask(&app, &mut b).await.status, StatusCode::OK);
}

async fn ask(app: &TestApp, b: &mut Browser) -> Reply {
    app.rpc(
        b,
        "request_email_change",
        &[
            ("new_email", "victim@example.net"),
            ("current_password", PASSWORD),
        ],
    )
    .await
}

/// Nor can many accounts together flood one address: it receives at most five address-change
/// confirmations an hour, whoever asks.
#[tokio::test]
async fn address_change_mails_are_bounded_per_receiving_address() {
    let app = spawn().await;
    let mut browsers = Vec::new();
    for i in 0..=app::identity::profile::EMAIL_CHANGES_PER_HOUR {
        let email = format!("user{i}@example.org");
        app.user(&email, None).await;
        browsers.push(app.signed_in(&email).await);
    }
    let last = browsers.pop().unwrap();
    for mut b in browsers {
        assert_eq!(ask(&app, &mut b).await.status, StatusCode::OK);
    }
    let mails = app.count("outbox_email").await;
    let mut last = last;
    let r = ask(&app, &mut last).await;
    assert_eq!(r.error_code(), "rate_limited", "{}", r.body);
    assert_eq!(app.count("outbox_email").await, mails, "nothing sent");
}

/// On PostgreSQL, accounts asking at once to mail one address are ordered by a lock on that
/// address before they count its mails (their own row locks do not order them): a request
/// waits while another transaction holds it, and goes on when it is let go.
#[tokio::test]
async fn address_change_requests_to_one_address_take_its_lock_in_turn() {
    if !on_postgres() {
        return; // SQLite has one writer connection: nothing to order.
    }
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    let mut b = app.signed_in("ann@example.org").await;
    let mut holder = app.state.db.writer.begin().await.unwrap();
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!(
            "{}victim@example.net",
            app::identity::profile::ADDRESS_LOCK_PREFIX
        ))
        .execute(&mut *holder)
        .await
        .unwrap();
    let mails = app.count("outbox_email").await;
    let request = ask(&app, &mut b);
    tokio::pin!(request);
    let waited = tokio::time::timeout(std::time::Duration::from_millis(1500), &mut request).await;
    assert!(
        waited.is_err(),
        "the request did not wait for the address's lock"
    );
    assert_eq!(
        app.count("outbox_email").await,
        mails,
        "nothing sent while it waits"
    );
    holder.rollback().await.unwrap();
    let r = request.await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(app.count("outbox_email").await > mails);
}
