//! The holes an attacker's review found, each shown closed: the permission ceiling on roll and
//! enable, personal tokens that belong to their owner, race-free transitions (one instance and
//! two), sign-in under parallel guessing and floods, sessions that idle out as documented,
//! verification that never probes another organization, imports that resolve a key value to
//! one key, fail-closed restrictions, replay windows, and foreign hosts.

mod common;

use common::*;
use http::{header, Request, StatusCode};
use serde_json::json;
use std::time::Duration;

const IP: &str = "192.0.2.10";

async fn status_of(app: &TestApp, key_id: &str) -> String {
    sqlx::query_scalar("select status from api_key where api_key_id = $1")
        .bind(key_id)
        .fetch_one(&app.state.db.writer)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_weaker_key_cannot_roll_or_re_enable_a_stronger_one() {
    let (app, org, admin) = with_admin_key().await;
    let (strong, strong_secret) = app
        .scoped_key(
            &org,
            json!({"keys": "write", "members": "write", "org": "write"}),
        )
        .await;
    let (_, weak) = app.scoped_key(&org, json!({"keys": "write"})).await;

    let before = app.snapshot().await;
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{strong}/roll"),
            Some(&weak),
            Some(json!({"grace_seconds": 0})),
            IP,
        )
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "weak rolls strong");
    assert_eq!(r.json()["error"]["message"], "missing permission: org:read");
    assert_eq!(app.snapshot().await, before, "nothing written");
    // The real holder's key still works.
    let r = app
        .api("GET", "/api/v1/me", Some(&strong_secret), None, IP)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // An admin disables the strong key; the weak key cannot bring it back.
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{strong}/disable"),
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let before = app.snapshot().await;
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{strong}/enable"),
            Some(&weak),
            None,
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "weak enables strong",
    );
    assert_eq!(app.snapshot().await, before);
    // Nor in bulk: the outcome names the refusal, and the key stays disabled.
    let r = app
        .api(
            "POST",
            "/api/v1/keys/bulk",
            Some(&weak),
            Some(json!({"action": "enable", "ids": [strong]})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()[0]["code"], "forbidden", "{}", r.body);
    assert_eq!(app.snapshot().await, before);
    assert_eq!(status_of(&app, &strong).await, "disabled");

    // The admin key, which holds everything, may.
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{strong}/enable"),
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_personal_token_is_rolled_and_re_enabled_by_its_owner_only() {
    let app = spawn().await;
    let owner = app.user("owner@example.org", None).await;
    let org = app.org_of(&owner).await;
    let ann = app.user("ann@example.org", None).await;
    app.add_member(&org, &ann, "member").await;
    let mut ann_browser = app.signed_in("ann@example.org").await;
    let (pat, _) = app.pat(&mut ann_browser, &org, "basic").await;
    let mut owner_browser = app.signed_in("owner@example.org").await;
    let (_, admin_key) = app.admin_key(&org).await;

    // The organization's owner and its admin key hold more than the token, yet cannot take it
    // over: its new secret would be theirs.
    let before = app.snapshot().await;
    let r = app
        .rpc(
            &mut owner_browser,
            "roll_key",
            &[
                ("organization_id", &org),
                ("key_id", &pat),
                ("grace_seconds", "0"),
            ],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "owner of the org rolls Ann's token",
    );
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{pat}/roll"),
            Some(&admin_key),
            Some(json!({"grace_seconds": 0})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "admin key rolls Ann's token",
    );
    assert_eq!(app.snapshot().await, before);

    // They may still disable it; then only Ann can re-enable it.
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{pat}/disable"),
            Some(&admin_key),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let before = app.snapshot().await;
    let r = app
        .rpc(
            &mut owner_browser,
            "set_key_status",
            &[
                ("organization_id", &org),
                ("key_id", &pat),
                ("action", "enable"),
                ("reason", ""),
            ],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "owner of the org re-enables Ann's token",
    );
    assert_eq!(app.snapshot().await, before);
    let r = app
        .rpc(
            &mut ann_browser,
            "set_key_status",
            &[
                ("organization_id", &org),
                ("key_id", &pat),
                ("action", "enable"),
                ("reason", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .rpc(
            &mut ann_browser,
            "roll_key",
            &[
                ("organization_id", &org),
                ("key_id", &pat),
                ("grace_seconds", "0"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["owner_user_id"], ann.as_str());
}

#[tokio::test]
async fn a_personal_token_goes_down_with_its_owner_everywhere() {
    let app = spawn().await;
    let owner = app.user("owner@example.org", None).await;
    let org = app.org_of(&owner).await;
    let ann = app.user("ann@example.org", None).await;
    app.add_member(&org, &ann, "admin").await;
    let mut ann_browser = app.signed_in("ann@example.org").await;
    let (_, pat) = app.pat(&mut ann_browser, &org, "basic").await;
    let (_, service) = app.admin_key(&org).await;
    let verify = || async {
        app.api(
            "POST",
            "/api/v1/keys/verify",
            Some(&service),
            Some(json!({"key": pat})),
            IP,
        )
        .await
        .json()
    };
    let v = verify().await;
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(
        v["permissions"],
        json!(["org:read", "keys:read", "keys:write"])
    );

    // Demoted: the token shrinks with her, in the pipeline and in verification.
    app.set_role(&org, &ann, "viewer").await;
    let v = verify().await;
    assert_eq!(v["permissions"], json!(["org:read", "keys:read"]), "{v}");
    let r = app.api("GET", "/api/v1/me", Some(&pat), None, IP).await;
    assert_eq!(r.json()["permissions"], json!(["org:read", "keys:read"]));

    // Disabled: the token stops.
    app.set_role(&org, &ann, "admin").await;
    app.disable_user(&ann).await;
    let r = app.api("GET", "/api/v1/me", Some(&pat), None, IP).await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "key_disabled",
        "owner disabled",
    );
    let v = verify().await;
    assert_eq!(
        (v["valid"].clone(), v["code"].clone()),
        (json!(false), json!("key_disabled"))
    );
    // …and so does her session.
    let r = app.rpc(&mut ann_browser, "my_organizations", &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(
        app.rpc(&mut ann_browser, "current_user", &[]).await.json(),
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn instance_permissions_stay_in_the_system_organization() {
    let (app, _org, admin) = with_admin_key().await;
    let r = app
        .api(
            "POST",
            "/api/v1/keys",
            Some(&admin),
            Some(json!({"name": "x", "scopes": {"users": "read"}})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "users scope outside system",
    );
    // The admin preset of an ordinary organization holds every organization resource, and no
    // instance one.
    let r = app.api("GET", "/api/v1/me", Some(&admin), None, IP).await;
    let perms = r.json()["permissions"].clone();
    assert!(!perms.to_string().contains("users:"), "{perms}");
    assert!(perms.to_string().contains("members:write"), "{perms}");
}

#[tokio::test]
async fn revoke_wins_every_race_with_enables_on_two_instances() {
    let (a, org, admin) = with_admin_key().await;
    let b = a.second_instance();
    for round in 0..3 {
        let (target, _) = a.admin_key(&org).await;
        let r = a
            .api(
                "POST",
                &format!("/api/v1/keys/{target}/disable"),
                Some(&admin),
                None,
                IP,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let path_enable = format!("/api/v1/keys/{target}/enable");
        let path_revoke = format!("/api/v1/keys/{target}");
        let mut calls = Vec::new();
        for i in 0..12 {
            let app = if i % 2 == 0 { &a } else { &b };
            calls.push(app.api("POST", &path_enable, Some(&admin), None, IP));
        }
        let revoke = b.api("DELETE", &path_revoke, Some(&admin), None, IP);
        let (revoked, enables) = tokio::join!(revoke, join_all(calls));
        assert_eq!(
            revoked.status,
            StatusCode::OK,
            "round {round}: {}",
            revoked.body
        );
        for r in &enables {
            assert!(
                r.status == StatusCode::OK || r.status == StatusCode::CONFLICT,
                "round {round}: {} {}",
                r.status,
                r.body
            );
        }
        assert_eq!(status_of(&a, &target).await, "revoked", "round {round}");
        // Still revoked after any enable that might have been in flight.
        let r = a.api("POST", &path_enable, Some(&admin), None, IP).await;
        assert_refused(&r, StatusCode::CONFLICT, "conflict", "enable after revoke");
    }
}

#[tokio::test]
async fn a_disabled_key_cannot_act_on_another_instance_and_reads_follow_within_a_second() {
    let (a, org, admin) = with_admin_key().await;
    let b = a.second_instance();
    let (target, secret) = a.admin_key(&org).await;
    // Instance B has the key in its cache, as active.
    assert_eq!(
        b.api("GET", "/api/v1/me", Some(&secret), None, IP)
            .await
            .status,
        StatusCode::OK
    );
    let r = a
        .api(
            "POST",
            &format!("/api/v1/keys/{target}/disable"),
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Through B, the disabled key tries to enable itself: B checks it against the database.
    let r = b
        .api(
            "POST",
            &format!("/api/v1/keys/{target}/enable"),
            Some(&secret),
            None,
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "key_disabled",
        "disabled key enables itself",
    );
    assert_eq!(status_of(&a, &target).await, "disabled");
    // Reads may use B's cache for at most the documented bound (1 s).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = b.api("GET", "/api/v1/me", Some(&secret), None, IP).await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "key_disabled",
        "read after the bound",
    );
}

/// A request of key `secret` to POST `path`, verified and authorized (`keys:write` in `org`)
/// as the API's layers would, before it reaches the write: what a test then races.
async fn in_flight_grant(
    a: &TestApp,
    org: &str,
    secret: &str,
    path: &str,
) -> app::access::ssr::Grant {
    let verified = app::keys::verify::verify(
        &a.state.db,
        app::keys::ssr::KeyCache::of(&a.state).unwrap(),
        &a.state.config.secret,
        secret,
        None,
        "POST",
        path,
        app::keys::verify::Lookup {
            fresh: true,
            organization_id: None,
        },
    )
    .await
    .unwrap();
    app::access::ssr::authorize(
        &a.state.db,
        &verified.principal(),
        org,
        app::access::Permission::KeysWrite,
    )
    .await
    .unwrap()
}

/// `transition` of `target` by the in-flight `grant` is refused as a disabled key would be.
async fn refused_in_flight(
    a: &TestApp,
    grant: &app::access::ssr::Grant,
    target: &str,
    t: app::keys::lifecycle::Transition,
) {
    let refused = app::keys::lifecycle::transition(
        &a.state,
        app::keys::ssr::Acting::new(grant, None),
        target,
        t,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(
        refused.code,
        app::error::ErrorCode::KeyDisabled,
        "{refused:?}"
    );
}

/// A key whose account (behind its personal organization) is disabled while the key's request
/// is in flight changes nothing: the write refuses it as verification would have.
#[tokio::test]
async fn a_key_whose_account_is_disabled_mid_request_changes_nothing() {
    let (a, org, _admin) = with_admin_key().await;
    let (target, _) = a.admin_key(&org).await;
    let (_, secret) = a.admin_key(&org).await;
    let grant = in_flight_grant(&a, &org, &secret, &format!("/api/v1/keys/{target}/disable")).await;
    // The account behind the organization goes off…
    sqlx::query("update app_user set status = 'disabled' where personal_organization_id = $1")
        .bind(&org)
        .execute(&a.state.db.writer)
        .await
        .unwrap();
    // …and the request reaches the write.
    refused_in_flight(
        &a,
        &grant,
        &target,
        app::keys::lifecycle::Transition::Disable,
    )
    .await;
    assert_eq!(status_of(&a, &target).await, "active");
}

/// A request verified a moment before an administrator disabled its key does not go on to
/// act as it where that would undo the disable: the key enabling itself, or changing roles.
#[tokio::test]
async fn a_key_disabled_while_its_request_is_in_flight_does_not_enable_itself() {
    let (a, org, admin) = with_admin_key().await;
    let (target, secret) = a.admin_key(&org).await;
    // The request: verified and authorized while the key was active…
    let grant = in_flight_grant(&a, &org, &secret, &format!("/api/v1/keys/{target}/enable")).await;
    // …then the administrator disables it…
    let r = a
        .api(
            "POST",
            &format!("/api/v1/keys/{target}/disable"),
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // …and the request reaches the write.
    refused_in_flight(
        &a,
        &grant,
        &target,
        app::keys::lifecycle::Transition::Enable,
    )
    .await;
    assert_eq!(status_of(&a, &target).await, "disabled");
    // Nor mint a new secret (a key of its own making would undo the disable)…
    let before = a.snapshot().await;
    let new = app::keys::NewKey {
        name: "escape".into(),
        category: Some("admin".into()),
        ..Default::default()
    };
    let settings = app::keys::ssr::validate_new(&new, app::ssr::db::now_ms(), &grant).unwrap();
    let refused = app::keys::ssr::create(
        &a.state.db,
        &a.state.config.secret,
        app::keys::ssr::Acting::new(&grant, None),
        None,
        &settings,
    )
    .await
    .unwrap_err();
    assert_eq!(
        refused.code,
        app::error::ErrorCode::KeyDisabled,
        "{refused:?}"
    );
    assert_eq!(a.snapshot().await, before, "rows changed");
    // …nor change roles with the grant it had.
    let refused = app::access::roles::create_role(&a.state.db, &grant, "sneaky", "", &[])
        .await
        .unwrap_err();
    assert_eq!(
        refused.code,
        app::error::ErrorCode::KeyDisabled,
        "{refused:?}"
    );
    assert_eq!(a.snapshot().await, before, "rows changed");
}

#[tokio::test]
async fn parallel_guesses_get_at_most_the_allowance_of_password_checks() {
    let app = spawn_with(|c| c.sign_in_failures_per_hour = 3).await;
    let user = app.user("ann@example.org", None).await;
    let guesses: Vec<_> = (0..30)
        .map(|i| {
            let app = &app;
            async move {
                let mut b = Browser::default();
                let password = format!("wrong guess number {i}");
                app.rpc(
                    &mut b,
                    "sign_in",
                    &[("email", "ann@example.org"), ("password", &password)],
                )
                .await
            }
        })
        .collect();
    for r in join_all(guesses).await {
        assert_refused(&r, StatusCode::UNAUTHORIZED, "invalid_credentials", "guess");
    }
    let checked: i64 = sqlx::query_scalar(
        "select count(*) from domain_event where kind = 'user.sign_in_failed' and subject_id = $1",
    )
    .bind(&user)
    .fetch_one(&app.state.db.writer)
    .await
    .unwrap();
    assert_eq!(checked, 3, "password checks for an allowance of 3");
    assert_eq!(app.count("sign_in_failure").await, 3);
    // The right password from an unknown browser is throttled too now.
    let mut b = Browser::default();
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
        "throttled owner",
    );
}

#[tokio::test]
async fn sign_in_and_sign_up_attempts_are_limited_per_client_address() {
    let app = spawn_with(|c| c.auth_attempts_per_ip_per_minute = 3).await;
    app.user("ann@example.org", None).await;
    let attempt = |ip: &'static str| {
        let app = &app;
        async move {
            let mut b = Browser {
                ip: Some(ip.into()),
                ..Default::default()
            };
            app.rpc(
                &mut b,
                "sign_in",
                &[
                    ("email", "ann@example.org"),
                    ("password", "wrong password!"),
                ],
            )
            .await
        }
    };
    for _ in 0..3 {
        assert_eq!(
            attempt("203.0.113.5").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = attempt("203.0.113.5").await;
    assert_refused(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "fourth attempt",
    );
    let retry: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry), "Retry-After {retry}");
    // Refused before any password work: no failure was recorded for it.
    assert_eq!(app.count("sign_in_failure").await, 3);
    // Sign-up shares the allowance; another client has its own.
    let mut b = Browser {
        ip: Some("203.0.113.5".into()),
        ..Default::default()
    };
    let r = app
        .rpc(
            &mut b,
            "sign_up",
            &[
                ("email", "new@example.org"),
                ("display_name", "New"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_refused(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited", "sign-up");
    assert_eq!(app.count("app_user").await, 1, "nothing written");
    assert_eq!(
        attempt("198.51.100.7").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_idle_timeout_slides_with_activity_and_the_absolute_one_does_not() {
    let app = spawn_with(|c| {
        c.session_idle = Duration::from_millis(2000);
        c.session_absolute = Duration::from_secs(3600);
    })
    .await;
    app.user("ann@example.org", None).await;
    let mut b = app.signed_in("ann@example.org").await;
    // Used every 0.7 s for 4 s (twice the idle limit): still signed in.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let me = app.rpc(&mut b, "current_user", &[]).await.json();
        assert_eq!(me["email"], "ann@example.org", "session ended while in use");
    }
    // Left alone past the idle limit: ended.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(
        app.rpc(&mut b, "current_user", &[]).await.json(),
        serde_json::Value::Null
    );

    let app = spawn_with(|c| {
        c.session_idle = Duration::from_secs(60);
        c.session_absolute = Duration::from_millis(2500);
    })
    .await;
    app.user("ann@example.org", None).await;
    let mut b = app.signed_in("ann@example.org").await;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(
            app.rpc(&mut b, "current_user", &[]).await.json()["email"],
            "ann@example.org"
        );
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        app.rpc(&mut b, "current_user", &[]).await.json(),
        serde_json::Value::Null,
        "the absolute limit holds however active"
    );
}

/// What the page asks for by itself (the bell's poll, a refetch the live feed asked for)
/// carries `x-keyward-background` and does not push the idle deadline back; the same calls
/// without it do.
#[tokio::test]
async fn the_page_s_own_calls_do_not_keep_an_idle_session_alive() {
    // Idle 6 s: a call 1.5 s after the last refresh would refresh it.
    let app = spawn_with(|c| c.session_idle = Duration::from_millis(6000)).await;
    app.user("ann@example.org", None).await;
    let mut b = app.signed_in("ann@example.org").await;
    let t0 = tokio::time::Instant::now();
    let at = |ms: u64| tokio::time::sleep_until(t0 + Duration::from_millis(ms));
    b.background = true;
    // Polled every 1.6 s for 4.8 s (each past the 1.5 s after which a call would refresh):
    // answered, and not one of them sends the session cookie again (nothing was saved).
    for i in 1..=3 {
        at(1_600 * i).await;
        let r = app.rpc(&mut b, "unread_notifications", &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            !r.headers.contains_key(http::header::SET_COOKIE),
            "a background call refreshed the session"
        );
    }
    // The user's own call, 1.6 s later: the deadline had not moved, so the session is over.
    at(6_400).await;
    b.background = false;
    assert_eq!(
        app.rpc(&mut b, "current_user", &[]).await.json(),
        serde_json::Value::Null,
        "the session outlived its idle limit"
    );

    // The control: the same calls as the user's refresh the deadline (the cookie is sent again).
    let mut b = app.signed_in("ann@example.org").await;
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let r = app.rpc(&mut b, "unread_notifications", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.headers.contains_key(http::header::SET_COOKIE));
}

#[tokio::test]
async fn verify_answers_for_a_foreign_key_exactly_like_an_unknown_one() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let bob = app.user("bob@example.org", None).await;
    let (ann_org, bob_org) = (app.org_of(&ann).await, app.org_of(&bob).await);
    let (_, service) = app.admin_key(&ann_org).await;
    let unknown = app::keys::format::generate(app::keys::format::Environment::Live);
    let ask = |key: String| {
        let (app, service) = (&app, service.clone());
        async move {
            app.api(
                "POST",
                "/api/v1/keys/verify",
                Some(&service),
                Some(json!({"key": key, "ip": "198.51.100.1", "method": "DELETE", "path": "/x"})),
                IP,
            )
            .await
            .body
        }
    };
    let baseline = ask(unknown).await;
    assert!(baseline.contains("key_unknown"), "{baseline}");
    // Bob's keys in every state and with every restriction look the same from Ann's org.
    let (revoked_id, revoked) = app.admin_key(&bob_org).await;
    app.api(
        "DELETE",
        &format!("/api/v1/keys/{revoked_id}"),
        Some(&revoked),
        None,
        IP,
    )
    .await;
    let (_, limited) = app
        .issue_key(
            &bob_org,
            serde_json::from_value(json!({
                "name": "limited", "ip_allowlist": ["10.0.0.0/8"],
                "endpoints": [{"method": "GET", "path": "/only"}]
            }))
            .unwrap(),
        )
        .await;
    let (_, plain) = app.admin_key(&bob_org).await;
    for key in [revoked, limited, plain] {
        assert_eq!(ask(key).await, baseline);
    }
}

#[tokio::test]
async fn a_key_value_resolves_to_one_key_whatever_the_order_and_organization() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let bob = app.user("bob@example.org", None).await;
    let (_, ann_key) = app.admin_key(&app.org_of(&ann).await).await;
    let (_, bob_key) = app.admin_key(&app.org_of(&bob).await).await;
    let import = |key: String, rows: serde_json::Value| {
        let app = &app;
        async move {
            let r = app
                .api("POST", "/api/v1/keys/import", Some(&key), Some(rows), IP)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.json()["rows"][0].clone()
        }
    };
    for first in [true, false] {
        let value = format!("legacy_{}_0123456789abcdef", first);
        let plain = json!([{ "name": "plain", "key": value }]);
        let hashed =
            json!([{ "name": "hashed", "key_hash": app::keys::format::sha256_hex(&value) }]);
        let (a, b) = if first {
            (plain, hashed)
        } else {
            (hashed, plain)
        };
        let done = import(ann_key.clone(), a).await;
        assert_eq!(done["action"], "imported", "{done}");
        let before = app.snapshot().await;
        let refused = import(bob_key.clone(), b).await;
        assert_eq!(refused["code"], "conflict", "{refused}");
        let message = refused["message"].as_str().unwrap();
        assert!(
            !message.contains("org_"),
            "names no organization: {message}"
        );
        assert_eq!(app.snapshot().await, before);
        // The value verifies as exactly one key, Ann's.
        let v = app
            .api(
                "POST",
                "/api/v1/keys/verify",
                Some(&ann_key),
                Some(json!({"key": value})),
                IP,
            )
            .await
            .json();
        assert_eq!(v["key_id"], done["id"], "{v}");
    }
}

#[tokio::test]
async fn endpoint_rules_take_double_star_last_only() {
    let (app, _org, admin) = with_admin_key().await;
    let before = app.snapshot().await;
    let r = app
        .api(
            "POST",
            "/api/v1/keys",
            Some(&admin),
            Some(json!({"name": "x", "endpoints": [{"method": "GET", "path": "/api/v1/keys/**/history"}]})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "** in the middle",
    );
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn unreadable_stored_restrictions_refuse_the_key() {
    let (app, org, _admin) = with_admin_key().await;
    for (column, value) in [
        ("ip_allowlist", r#"["10.0.0.0/8", "not an address"]"#),
        ("endpoints", "{oops"),
    ] {
        let (id, secret) = app.admin_key(&org).await;
        sqlx::query(&format!(
            "update api_key set {column} = $1 where api_key_id = $2"
        ))
        .bind(value)
        .bind(&id)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
        let r = app
            .api("GET", "/api/v1/me", Some(&secret), None, "10.1.2.3")
            .await;
        assert_refused(
            &r,
            StatusCode::FORBIDDEN,
            "key_restrictions_invalid",
            column,
        );
    }
}

#[tokio::test]
async fn requests_for_a_foreign_host_are_refused() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    // A rebinding page: its own name in Host and Origin, which match each other.
    let req = Request::post("/rpc/sign_in")
        .header(header::HOST, "evil.test:3000")
        .header(header::ORIGIN, "http://evil.test:3000")
        .header("sec-fetch-site", "same-origin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(form_body(&[
            ("email", "ann@example.org"),
            ("password", PASSWORD),
        ])))
        .unwrap();
    let r = app.send(req).await;
    assert_refused(&r, StatusCode::FORBIDDEN, "csrf_rejected", "foreign host");
    assert!(r.set_cookie("keyward_session").is_none());
    let page = app
        .send(
            Request::get("/sign-in")
                .header(header::HOST, "evil.test:3000")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // Probes answer whatever the host.
    let probe = app
        .send(
            Request::get("/livez")
                .header(header::HOST, "10.0.0.7:3000")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(probe.status, StatusCode::OK);
}

/// A server function's body that breaks off on the way is a 400 (not a 413 blaming its size);
/// one sent without a length (chunked) past the limit is a 413.
#[tokio::test]
async fn a_server_function_body_cut_off_is_a_bad_request_and_an_endless_one_too_large() {
    use axum::body::{Body, Bytes};
    let app = spawn().await;
    let post = |body: Body| {
        Request::post("/rpc/sign_in")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ORIGIN, ORIGIN)
            .header("sec-fetch-site", "same-origin")
            .header(header::ACCEPT, "application/json")
            .body(body)
            .unwrap()
    };
    let cut: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"email=a%40example.org&pass")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "the client went away",
        )),
    ];
    let r = app
        .send(post(Body::from_stream(futures::stream::iter(cut))))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.error_code(), "invalid_input", "{}", r.body);

    let chunk = Bytes::from(vec![b'a'; 16 * 1024]);
    let endless =
        futures::stream::iter((0..10).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let r = app.send(post(Body::from_stream(endless))).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert_eq!(r.error_code(), "payload_too_large", "{}", r.body);
}

/// A pool with no connection free within its wait is the server being busy: 503
/// `unavailable` with `Retry-After`, not an opaque 500 (docs/architecture.md, "Errors").
#[tokio::test]
async fn a_busy_database_pool_answers_503_to_retry() {
    let (app, _org, admin) = with_admin_key().await;
    let held = hold_every_connection(&app.state.db.reader).await;
    // A fresh key: its lookup reads the pool (no cached verification to answer from).
    let r = app.api("GET", "/api/v1/keys", Some(&admin), None, IP).await;
    drop(held);
    assert_refused(
        &r,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "no connection free",
    );
    assert_eq!(r.headers[header::RETRY_AFTER], "5");
    let r = app.api("GET", "/api/v1/keys", Some(&admin), None, IP).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "served once the pool is free: {}",
        r.body
    );
}
