//! Permissions, declarations, CSRF, bad input, health and pages.

mod common;

use app::access::policy::{guard_for_path, Guard, SERVER_FNS};
use app::access::Role;
use axum::body::Body;
use common::*;
use http::{header, Request, StatusCode};

#[tokio::test]
async fn member_is_refused_admin_functions_and_admin_is_allowed() {
    let app = spawn().await;
    app.user("admin@example.org", Some(Role::Owner)).await;
    app.user("member@example.org", None).await;

    let mut member = app.signed_in("member@example.org").await;
    let r = app.rpc(&mut member, "list_users", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json(),
        serde_json::json!({"error": {"code": "forbidden", "message": "missing permission: users:read"}})
    );
    let me = app.rpc(&mut member, "current_user", &[]).await.json();
    assert_eq!(
        me["instance_permissions"],
        serde_json::json!([]),
        "no admin menus for a member"
    );

    let mut admin = app.signed_in("admin@example.org").await;
    let r = app.rpc(&mut admin, "list_users", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let users = r.json();
    assert_eq!(users["total"], 2);
    let emails: Vec<&str> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    // Newest first.
    assert_eq!(emails, vec!["member@example.org", "admin@example.org"]);
    assert!(!r.body.contains("argon2"), "no password hash on the wire");
    let me = app.rpc(&mut admin, "current_user", &[]).await.json();
    assert!(me["instance_permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "users:read"));
}

#[tokio::test]
async fn organizations_are_isolated() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    app.user("bob@example.org", None).await;
    let mut ann = app.signed_in("ann@example.org").await;
    let mut bob = app.signed_in("bob@example.org").await;
    let ann_org = app.rpc(&mut ann, "my_organizations", &[]).await.json()[0]["organization_id"]
        .as_str()
        .unwrap()
        .to_string();

    let r = app
        .rpc(
            &mut ann,
            "organization_members",
            &[("organization_id", &ann_org)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()[0]["email"], "ann@example.org");

    let r = app
        .rpc(
            &mut bob,
            "organization_members",
            &[("organization_id", &ann_org)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.error_code(), "forbidden");
    let r = app
        .rpc(
            &mut bob,
            "organization_members",
            &[("organization_id", "org_doesnotexist")],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "same answer whether or not the org exists"
    );
}

#[tokio::test]
async fn every_server_function_is_declared_and_denies_by_default() {
    let app = spawn().await;
    let registered: Vec<(&str, http::Method)> =
        leptos::server_fn::axum::server_fn_paths().collect();
    assert!(registered.len() >= SERVER_FNS.len());
    for (path, method) in &registered {
        let guard = guard_for_path(path)
            .unwrap_or_else(|| panic!("{path} has no guard in access::policy::SERVER_FNS"));
        assert_eq!(
            *method,
            http::Method::POST,
            "{path}: mutations and reads alike are POST-only"
        );
        if guard == Guard::Public {
            continue;
        }
        // Without a session, every non-public function is refused before it runs.
        let mut anonymous = Browser::default();
        let r = app
            .rpc(&mut anonymous, path.trim_start_matches("/rpc/"), &[])
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: {}", r.body);
        assert_eq!(r.error_code(), "unauthenticated");
    }
    for (name, _) in SERVER_FNS {
        assert!(
            registered.iter().any(|(p, _)| *p == format!("/rpc/{name}")),
            "stale declaration: {name}"
        );
    }
    // A path under /rpc that nobody declared is refused (deny by default).
    let mut b = Browser::default();
    let r = app.rpc(&mut b, "not_a_function", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn every_rest_route_is_declared() {
    use keyward_server::rest::{routes, Access};
    let app = spawn().await;
    let specs = routes();
    assert!(!specs.is_empty());
    for spec in specs {
        let r = app
            .send(
                Request::builder()
                    .method(spec.method.clone())
                    .uri(spec.path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        match spec.access {
            Access::Public => assert!(
                r.status.is_success(),
                "{} {}: {}",
                spec.method,
                spec.path,
                r.status
            ),
            Access::Key(_) => assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{} {}",
                spec.method,
                spec.path
            ),
            // No peer address and no token: not from an allowed network.
            Access::Operator => assert_eq!(
                r.status,
                StatusCode::FORBIDDEN,
                "{} {}",
                spec.method,
                spec.path
            ),
        }
    }
}

#[tokio::test]
async fn cross_site_requests_are_refused_and_change_nothing() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    let body = form_body(&[
        ("email", "evil@example.org"),
        ("display_name", "Evil"),
        ("password", PASSWORD),
    ]);
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("origin", "null"),
    ] {
        let req = Request::post("/rpc/sign_up")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "127.0.0.1:3000")
            .header(name, value)
            .body(Body::from(body.clone()))
            .unwrap();
        let r = app.send(req).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{name}: {value}");
        assert_eq!(r.error_code(), "csrf_rejected");
    }
    assert_eq!(app.count("app_user").await, 1, "no account was created");

    // A cross-site sign-out cannot end a session either.
    let mut ann = app.signed_in("ann@example.org").await;
    let req = Request::post("/rpc/sign_out")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::HOST, "127.0.0.1:3000")
        .header(header::COOKIE, ann.header().unwrap())
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(req).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.rpc(&mut ann, "current_user", &[]).await.json()["email"],
        "ann@example.org"
    );
}

#[tokio::test]
async fn server_functions_refuse_get() {
    let app = spawn().await;
    let r = app.get(&Browser::default(), "/rpc/sign_out").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn bad_input_gets_a_4xx_and_writes_nothing() {
    let app = spawn().await;
    let mut b = Browser::default();

    // Missing field.
    let r = app.rpc(&mut b, "sign_up", &[("email", "a@b.co")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.error_code(), "invalid_input");

    // Malformed body.
    let req = Request::post("/rpc/sign_up")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(vec![0xff, 0xfe, b'%', b'%', 0x00]))
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // Invalid values, each with a field-level message.
    for (email, name, password, field) in [
        ("not-an-email", "Ann", PASSWORD, "email"),
        ("a@b.co", "   ", PASSWORD, "display_name"),
        ("a@b.co", "Ann", "short", "password"),
        ("a@b.co", "Ann", "password123", "password"),
    ] {
        let r = app
            .rpc(
                &mut b,
                "sign_up",
                &[
                    ("email", email),
                    ("display_name", name),
                    ("password", password),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{field}: {}", r.body);
        assert_eq!(r.json()["error"]["field"], field);
    }

    // Oversize body.
    let huge = "x".repeat(keyward_server::MAX_BODY_BYTES + 1);
    let req = Request::post("/rpc/sign_up")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONTENT_LENGTH, huge.len() + 30)
        .body(Body::from(form_body(&[
            ("email", "a@b.co"),
            ("display_name", &huge),
            ("password", PASSWORD),
        ])))
        .unwrap();
    let r = app.send(req).await;
    assert!(r.status.is_client_error(), "{}", r.status);

    assert_eq!(app.count("app_user").await, 0);
    assert_eq!(app.count("session").await, 0);
}

#[tokio::test]
async fn internal_errors_are_opaque() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    let mut b = app.signed_in("ann@example.org").await;
    // Break the database under the app: the client must not see the SQL error.
    sqlx::query("drop table domain_event")
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let mut other = Browser::default();
    let r = app
        .rpc(
            &mut other,
            "sign_up",
            &[
                ("email", "c@d.co"),
                ("display_name", "C"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.error_code(), "internal");
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.starts_with("internal error (id "), "{message}");
    assert!(
        !message.to_lowercase().contains("domain_event"),
        "{message}"
    );
    assert!(r.headers.contains_key("x-request-id"));
    let _ = app.rpc(&mut b, "current_user", &[]).await;
}

#[tokio::test]
async fn healthz_checks_the_database() {
    let app = spawn().await;
    let r = app.get(&Browser::default(), "/healthz").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "ok");
    app.state.db.close().await;
    let r = app.get(&Browser::default(), "/healthz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.error_code(), "unavailable");
}

#[tokio::test]
async fn pages_render_on_the_server() {
    let app = spawn().await;
    app.user("admin@example.org", Some(Role::Owner)).await;
    let r = app.get(&Browser::default(), "/sign-in").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Sign in to Keyward"), "{}", r.body);
    assert!(
        r.body.contains("/pkg/keyward.js"),
        "hydration script is linked"
    );

    let b = app.signed_in("admin@example.org").await;
    let r = app.get(&b, "/").await;
    assert!(r.body.contains("Your organizations"), "{}", r.body);
    assert!(r.body.contains(">Users<"), "admin sees the Users menu");
}
