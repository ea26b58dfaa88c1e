//! The `/api/v1` key API: every refusal, the lifecycle, rolls, history, and isolation between
//! organizations on every route.

mod common;

use app::keys::{Access, NewKey, Scopes};
use common::*;
use http::StatusCode;
use serde_json::json;

const IP: &str = "192.0.2.10";

#[tokio::test]
async fn me_describes_the_calling_key() {
    let (app, org, key) = with_admin_key().await;
    let r = app.api("GET", "/api/v1/me", Some(&key), None, IP).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let me = r.json();
    assert_eq!(me["organization_id"], org.as_str());
    assert_eq!(me["scopes"]["keys"], "write");
    assert!(me["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "keys:write"));
    assert!(!r.body.contains(&key), "the secret is never echoed");
}

#[tokio::test]
async fn each_refusal_has_its_code() {
    let (app, org, good) = with_admin_key().await;
    let check = |r: &Reply, status: StatusCode, code: &str| {
        assert_eq!(r.status, status, "{code}: {}", r.body);
        assert_eq!(r.error_code(), code);
    };
    check(
        &app.api("GET", "/api/v1/me", None, None, IP).await,
        StatusCode::UNAUTHORIZED,
        "key_missing",
    );
    check(
        &app.api("GET", "/api/v1/me", Some("kw_live_short"), None, IP)
            .await,
        StatusCode::UNAUTHORIZED,
        "key_malformed",
    );
    // Not ours and not plausibly an imported key of another system (too short, spaces).
    for junk in ["sk_live_4eC3", "sk live 4eC39HqLyjWDarjtT1zdp7dc"] {
        check(
            &app.api("GET", "/api/v1/me", Some(junk), None, IP).await,
            StatusCode::UNAUTHORIZED,
            "key_malformed",
        );
    }
    // Plausibly another system's key: looked up among imported keys, and unknown.
    check(
        &app.api(
            "GET",
            "/api/v1/me",
            Some("sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
            None,
            IP,
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "key_unknown",
    );

    // One changed character: the checksum catches it before any lookup.
    let mut typo: Vec<char> = good.chars().collect();
    typo[10] = if typo[10] == 'A' { 'B' } else { 'A' };
    let typo: String = typo.into_iter().collect();
    check(
        &app.api("GET", "/api/v1/me", Some(&typo), None, IP).await,
        StatusCode::UNAUTHORIZED,
        "key_bad_checksum",
    );

    // Well-formed but never issued.
    let stranger = app::keys::format::generate(app::keys::format::Environment::Live);
    check(
        &app.api("GET", "/api/v1/me", Some(&stranger), None, IP)
            .await,
        StatusCode::UNAUTHORIZED,
        "key_unknown",
    );

    let (id, disabled) = app.admin_key(&org).await;
    check(
        &app.api(
            "POST",
            &format!("/api/v1/keys/{id}/disable"),
            Some(&good),
            None,
            IP,
        )
        .await,
        StatusCode::OK,
        "",
    );
    check(
        &app.api("GET", "/api/v1/me", Some(&disabled), None, IP)
            .await,
        StatusCode::UNAUTHORIZED,
        "key_disabled",
    );

    let (id, revoked) = app.admin_key(&org).await;
    check(
        &app.api(
            "DELETE",
            &format!("/api/v1/keys/{id}"),
            Some(&good),
            None,
            IP,
        )
        .await,
        StatusCode::OK,
        "",
    );
    check(
        &app.api("GET", "/api/v1/me", Some(&revoked), None, IP).await,
        StatusCode::UNAUTHORIZED,
        "key_revoked",
    );

    let (id, expired) = app.admin_key(&org).await;
    sqlx::query("update api_key set expires_at = 1 where api_key_id = $1")
        .bind(&id)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    app::keys::ssr::KeyCache::of(&app.state).unwrap().clear();
    check(
        &app.api("GET", "/api/v1/me", Some(&expired), None, IP).await,
        StatusCode::UNAUTHORIZED,
        "key_expired",
    );

    let (_, fenced) = app
        .issue_key(
            &org,
            NewKey {
                name: "fenced".into(),
                category: Some("admin".into()),
                ip_allowlist: Some(vec!["10.0.0.0/8".into(), "2001:db8::/32".into()]),
                ..Default::default()
            },
        )
        .await;
    check(
        &app.api("GET", "/api/v1/me", Some(&fenced), None, "203.0.113.5")
            .await,
        StatusCode::FORBIDDEN,
        "ip_not_allowed",
    );
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&fenced), None, "10.20.30.40")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&fenced), None, "2001:db8::7")
            .await
            .status,
        StatusCode::OK
    );

    let (_, narrow) = app
        .issue_key(
            &org,
            NewKey {
                name: "narrow".into(),
                category: Some("admin".into()),
                endpoints: Some(vec![app::keys::EndpointRule {
                    method: "GET".into(),
                    path: "/api/v1/me".into(),
                }]),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&narrow), None, IP)
            .await
            .status,
        StatusCode::OK
    );
    check(
        &app.api("GET", "/api/v1/keys", Some(&narrow), None, IP)
            .await,
        StatusCode::FORBIDDEN,
        "endpoint_not_allowed",
    );

    let (_, reader) = app
        .issue_key(
            &org,
            NewKey {
                name: "reader".into(),
                scopes: Some(Scopes::from([("keys".to_string(), Access::Read)])),
                ..Default::default()
            },
        )
        .await;
    assert_eq!(
        app.api("GET", "/api/v1/keys", Some(&reader), None, IP)
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .api(
            "POST",
            "/api/v1/keys",
            Some(&reader),
            Some(json!({"name": "x"})),
            IP,
        )
        .await;
    check(&r, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        r.json()["error"]["message"],
        "missing permission: keys:write"
    );
}

#[tokio::test]
async fn create_shows_the_secret_once_and_never_again() {
    let (app, org, admin) = with_admin_key().await;
    let r = app
        .api(
            "POST",
            "/api/v1/keys",
            Some(&admin),
            Some(json!({
                "name": "billing service", "description": "charges cards", "environment": "test",
                "scopes": {"keys": "read", "org": "read"}, "ip_allowlist": ["10.0.0.0/8"],
                "expires_at": "2099-01-01T00:00:00Z", "metadata": {"team": "billing"}
            })),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let created = r.json();
    let secret = created["key"].as_str().unwrap().to_string();
    assert!(secret.starts_with("kw_test_"));
    assert_eq!(created["organization_id"], org.as_str());
    assert_eq!(created["category"], "custom");
    assert_eq!(created["status"], "active");
    assert_eq!(created["expires_at"], "2099-01-01T00:00:00Z");
    assert_eq!(created["display_prefix"].as_str().unwrap(), &secret[..12]);
    let id = created["id"].as_str().unwrap();

    let r = app
        .api("GET", &format!("/api/v1/keys/{id}"), Some(&admin), None, IP)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json().get("key").is_none());
    assert!(!r.body.contains(&secret));
    let list = app.api("GET", "/api/v1/keys", Some(&admin), None, IP).await;
    assert!(!list.body.contains(&secret));
    let stored: String = sqlx::query_scalar("select key_hash from api_key where api_key_id = $1")
        .bind(id)
        .fetch_one(&app.state.db.reader)
        .await
        .unwrap();
    assert_ne!(stored, secret);
    assert_eq!(stored.len(), 64);
}

#[tokio::test]
async fn bad_input_is_refused_and_writes_nothing() {
    let (app, _org, admin) = with_admin_key().await;
    let before = app.count("api_key").await;
    for (body, field) in [
        (json!({"name": ""}), Some("name")),
        (
            json!({"name": "x", "scopes": {"rockets": "write"}}),
            Some("scopes"),
        ),
        (
            json!({"name": "x", "ip_allowlist": ["999.1.1.1/8"]}),
            Some("ip_allowlist"),
        ),
        (
            json!({"name": "x", "expires_at": "soon"}),
            Some("expires_at"),
        ),
        (json!({"name": "x", "colour": "blue"}), None),
        (json!({"name": 42}), None),
    ] {
        let r = app
            .api("POST", "/api/v1/keys", Some(&admin), Some(body.clone()), IP)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.error_code(), "invalid_input");
        if let Some(field) = field {
            assert_eq!(r.json()["error"]["field"], field);
        }
    }
    // Not JSON at all.
    let req = http::Request::post("/api/v1/keys")
        .header("authorization", format!("Bearer {admin}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from("{not json"))
        .unwrap();
    let r = app.send(req).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_code(), "invalid_input");
    // Too large.
    let huge = json!({"name": "x", "description": "y".repeat(keyward_server::MAX_BODY_BYTES)});
    let r = app
        .api("POST", "/api/v1/keys", Some(&admin), Some(huge), IP)
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert_eq!(app.count("api_key").await, before);
}

#[tokio::test]
async fn disable_takes_effect_at_once_and_enable_restores() {
    let (app, org, admin) = with_admin_key().await;
    let (id, key) = app.admin_key(&org).await;
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&key), None, IP)
            .await
            .status,
        StatusCode::OK
    );
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{id}/disable"),
            Some(&admin),
            Some(json!({"reason": "leaked in a log"})),
            IP,
        )
        .await;
    assert_eq!(r.json()["status"], "disabled");
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&key), None, IP)
            .await
            .error_code(),
        "key_disabled"
    );
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{id}/disable"),
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    app.api(
        "POST",
        &format!("/api/v1/keys/{id}/enable"),
        Some(&admin),
        None,
        IP,
    )
    .await;
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&key), None, IP)
            .await
            .status,
        StatusCode::OK
    );
    app.api(
        "DELETE",
        &format!("/api/v1/keys/{id}"),
        Some(&admin),
        None,
        IP,
    )
    .await;
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{id}/enable"),
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "revocation is final");

    let history = app
        .api(
            "GET",
            &format!("/api/v1/keys/{id}/history"),
            Some(&admin),
            None,
            IP,
        )
        .await
        .json();
    let kinds: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["created", "disabled", "enabled", "revoked"]);
    assert_eq!(history[1]["reason"], "leaked in a log");
    assert_eq!(history[1]["source_ip"], IP);
}

#[tokio::test]
async fn a_change_on_another_instance_is_seen_within_a_second() {
    let (app, org, _) = with_admin_key().await;
    let (id, key) = app.admin_key(&org).await;
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&key), None, IP)
            .await
            .status,
        StatusCode::OK
    );
    // Another instance revokes it: only the database changes, this instance's cache does not.
    sqlx::query("update api_key set status = 'revoked' where api_key_id = $1")
        .bind(&id)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    tokio::time::sleep(app::keys::ssr::CACHE_TTL + std::time::Duration::from_millis(100)).await;
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&key), None, IP)
            .await
            .error_code(),
        "key_revoked"
    );
}

#[tokio::test]
async fn roll_with_grace_keeps_both_working_until_the_grace_ends() {
    let (app, org, admin) = with_admin_key().await;
    let (id, old) = app
        .issue_key(
            &org,
            NewKey {
                name: "deploy".into(),
                category: Some("admin".into()),
                ip_allowlist: Some(vec!["192.0.2.0/24".into()]),
                ..Default::default()
            },
        )
        .await;
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{id}/roll"),
            Some(&admin),
            Some(json!({"grace_seconds": 3600, "reason": "quarterly rotation"})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let rolled = r.json();
    let new = rolled["key"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(
        rolled["ip_allowlist"],
        json!(["192.0.2.0/24"]),
        "same settings"
    );
    assert_eq!(rolled["name"], "deploy");
    for key in [&old, &new] {
        assert_eq!(
            app.api("GET", "/api/v1/me", Some(key), None, IP)
                .await
                .status,
            StatusCode::OK
        );
    }
    let old_view = app
        .api("GET", &format!("/api/v1/keys/{id}"), Some(&admin), None, IP)
        .await
        .json();
    assert_eq!(old_view["rolled_to_key_id"], rolled["id"]);
    assert!(old_view["expires_at"].is_string());

    // When the grace ends, the old key stops and the new one goes on.
    sqlx::query("update api_key set expires_at = $1 where api_key_id = $2")
        .bind(app::ssr::db::now_ms() - 1)
        .bind(&id)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    app::keys::ssr::KeyCache::of(&app.state).unwrap().clear();
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&old), None, IP)
            .await
            .error_code(),
        "key_expired"
    );
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&new), None, IP)
            .await
            .status,
        StatusCode::OK
    );
    let kinds: Vec<String> = app
        .api(
            "GET",
            &format!("/api/v1/keys/{id}/history"),
            Some(&admin),
            None,
            IP,
        )
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, vec!["created", "rolled", "expired"]);

    // A roll with no grace stops the old key at once; a rolled key cannot be rolled again.
    let new_id = rolled["id"].as_str().unwrap();
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{new_id}/roll"),
            Some(&admin),
            Some(json!({"grace_seconds": 0})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&new), None, IP)
            .await
            .error_code(),
        "key_expired"
    );
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{new_id}/roll"),
            Some(&admin),
            Some(json!({"grace_seconds": 0})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{id}/roll"),
            Some(&admin),
            Some(json!({"grace_seconds": -5})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// A rolled key's grace can be shortened, never extended: a later expiry would keep two
/// working secrets. The refusal writes nothing.
#[tokio::test]
async fn a_rolled_key_s_grace_cannot_be_extended() {
    let (app, org, admin) = with_admin_key().await;
    let (id, _) = app
        .issue_key(
            &org,
            NewKey {
                name: "deploy".into(),
                ..Default::default()
            },
        )
        .await;
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{id}/roll"),
            Some(&admin),
            Some(json!({"grace_seconds": 3600})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let view = || async {
        app.api("GET", &format!("/api/v1/keys/{id}"), Some(&admin), None, IP)
            .await
            .json()
    };
    let grace_ends = view().await["expires_at"].clone();
    for later in [json!("2031-01-01T00:00:00Z"), serde_json::Value::Null] {
        let r = app
            .api(
                "PATCH",
                &format!("/api/v1/keys/{id}"),
                Some(&admin),
                Some(json!({ "expires_at": later })),
                IP,
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{later}: {}", r.body);
        assert_eq!(r.error_code(), "conflict");
        assert_eq!(view().await["expires_at"], grace_ends, "nothing written");
    }
    // Shorter is fine (and so is an edit that leaves the expiry alone).
    let sooner = app::ssr::db::rfc3339(app::ssr::db::now_ms() + 60_000);
    let r = app
        .api(
            "PATCH",
            &format!("/api/v1/keys/{id}"),
            Some(&admin),
            Some(json!({ "expires_at": sooner, "name": "deploy (old)" })),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .api(
            "PATCH",
            &format!("/api/v1/keys/{id}"),
            Some(&admin),
            Some(json!({ "description": "rolled on Tuesday" })),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// A roll copies the settings it read: an edit committed while the roll runs (an allow-list
/// added during an incident) makes the roll refuse rather than give the successor the old
/// settings (PostgreSQL: the interleaving is forced with a row lock).
#[tokio::test]
async fn a_roll_does_not_lose_an_edit_made_while_it_runs() {
    if !on_postgres() {
        // The interleaving is forced with a row lock; SQLite has one writer.
        return;
    }
    let (app, org, admin) = with_admin_key().await;
    let (id, _) = app
        .issue_key(
            &org,
            NewKey {
                name: "deploy".into(),
                ..Default::default()
            },
        )
        .await;
    let mut edit = app.state.db.writer.begin().await.unwrap();
    sqlx::query("select api_key_id from api_key where api_key_id = $1 for update")
        .bind(&id)
        .fetch_one(&mut *edit)
        .await
        .unwrap();
    let path = format!("/api/v1/keys/{id}/roll");
    let roll = app.api(
        "POST",
        &path,
        Some(&admin),
        Some(json!({"grace_seconds": 60})),
        IP,
    );
    let restrict = async {
        until_a_lock_wait(&app).await;
        sqlx::query(
            "update api_key set ip_allowlist = '[\"192.0.2.0/24\"]', updated_at = updated_at + 1
             where api_key_id = $1",
        )
        .bind(&id)
        .execute(&mut *edit)
        .await
        .unwrap();
        edit.commit().await.unwrap();
    };
    let (r, ()) = tokio::join!(roll, restrict);
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let successors: i64 = sqlx::query_scalar("select count(*) from api_key where name = 'deploy'")
        .fetch_one(&app.state.db.reader)
        .await
        .unwrap();
    assert_eq!(successors, 1, "no successor with the old settings");
}

#[tokio::test]
async fn verify_endpoint_answers_for_the_callers_organization_only() {
    let (app, org, admin) = with_admin_key().await;
    let (_, key) = app
        .issue_key(
            &org,
            NewKey {
                name: "svc".into(),
                ip_allowlist: Some(vec!["10.0.0.0/8".into()]),
                ..Default::default()
            },
        )
        .await;
    let r = app
        .api(
            "POST",
            "/api/v1/keys/verify",
            Some(&admin),
            Some(json!({"key": key, "ip": "10.1.1.1"})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = r.json();
    assert_eq!(v["valid"], true);
    assert_eq!(v["code"], "valid");
    assert_eq!(v["org_id"], org.as_str());
    assert_eq!(v["scopes"]["keys"], "write");
    let v = app
        .api(
            "POST",
            "/api/v1/keys/verify",
            Some(&admin),
            Some(json!({"key": key, "ip": "8.8.8.8"})),
            IP,
        )
        .await
        .json();
    assert_eq!(
        (v["valid"].clone(), v["code"].clone()),
        (json!(false), json!("ip_not_allowed"))
    );
    let v = app
        .api(
            "POST",
            "/api/v1/keys/verify",
            Some(&admin),
            Some(json!({"key": "kw_live_nope"})),
            IP,
        )
        .await
        .json();
    assert_eq!(v["code"], "key_malformed");

    // Another organization's valid key is unknown to this caller.
    let bob = app.user("bob@example.org", None).await;
    let (_, bobs) = app.admin_key(&app.org_of(&bob).await).await;
    let v = app
        .api(
            "POST",
            "/api/v1/keys/verify",
            Some(&admin),
            Some(json!({"key": bobs})),
            IP,
        )
        .await
        .json();
    assert_eq!(
        (v["valid"].clone(), v["code"].clone()),
        (json!(false), json!("key_unknown"))
    );
    assert!(v["org_id"].is_null());
}

#[tokio::test]
async fn organizations_never_see_or_touch_each_others_keys() {
    let (app, _org, ann) = with_admin_key().await;
    let bob = app.user("bob@example.org", None).await;
    let bob_org = app.org_of(&bob).await;
    let (bob_key_id, bob_key) = app.admin_key(&bob_org).await;

    let list = app.api("GET", "/api/v1/keys", Some(&ann), None, IP).await;
    assert!(!list.body.contains(&bob_key_id));
    for (method, path, body) in [
        ("GET", format!("/api/v1/keys/{bob_key_id}"), None),
        ("GET", format!("/api/v1/keys/{bob_key_id}/history"), None),
        ("POST", format!("/api/v1/keys/{bob_key_id}/disable"), None),
        ("POST", format!("/api/v1/keys/{bob_key_id}/enable"), None),
        (
            "POST",
            format!("/api/v1/keys/{bob_key_id}/roll"),
            Some(json!({"grace_seconds": 0})),
        ),
        ("DELETE", format!("/api/v1/keys/{bob_key_id}"), None),
    ] {
        let r = app.api(method, &path, Some(&ann), body, IP).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            r.body
        );
        assert_eq!(r.error_code(), "not_found");
    }
    // Bob's key is untouched and still works.
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&bob_key), None, IP)
            .await
            .status,
        StatusCode::OK
    );
    let events: i64 =
        sqlx::query_scalar("select count(*) from api_key_event where api_key_id = $1")
            .bind(&bob_key_id)
            .fetch_one(&app.state.db.reader)
            .await
            .unwrap();
    assert_eq!(events, 1, "only its creation");
}

#[tokio::test]
async fn a_key_cannot_mint_a_stronger_key() {
    let (app, org, _) = with_admin_key().await;
    let (_, basic) = app
        .issue_key(
            &org,
            NewKey {
                name: "basic".into(),
                ..Default::default()
            },
        )
        .await;
    let r = app
        .api(
            "POST",
            "/api/v1/keys",
            Some(&basic),
            Some(json!({"name": "escalate", "category": "admin"})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = app
        .api(
            "POST",
            "/api/v1/keys",
            Some(&basic),
            Some(json!({"name": "same", "category": "basic"})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// Behind a trusted proxy (`KEYWARD_TRUSTED_PROXIES`), the allow-list and the request log see
/// the client the proxy forwarded for; from anywhere else the header is ignored.
#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_the_client() {
    let app = spawn_with(|c| c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let user = app.user("ann@example.org", None).await;
    let org = app.org_of(&user).await;
    let (_, fenced) = app
        .issue_key(
            &org,
            NewKey {
                name: "fenced".into(),
                ip_allowlist: Some(vec!["192.0.2.0/24".into()]),
                ..Default::default()
            },
        )
        .await;
    let me = |peer: &'static str, forwarded: &'static str| {
        let (app, fenced) = (&app, &fenced);
        async move {
            app.api_raw(
                "GET",
                "/api/v1/me",
                Some(fenced),
                None,
                peer,
                &[("x-forwarded-for", forwarded)],
            )
            .await
            .status
        }
    };
    // Through the proxy: the forwarded client, whatever it claims left of it.
    assert_eq!(me("10.0.0.2", "192.0.2.7").await, StatusCode::OK);
    assert_eq!(
        me("10.0.0.2", "192.0.2.7, 198.51.100.1").await,
        StatusCode::FORBIDDEN
    );
    // Not through a proxy of ours: the socket peer, the header ignored.
    assert_eq!(me("198.51.100.1", "192.0.2.7").await, StatusCode::FORBIDDEN);
    app.wait_for_log_rows(3).await;
    let ips: Vec<String> =
        sqlx::query_scalar("select client_ip from request_log order by occurred_at, status")
            .fetch_all(&app.state.db.writer)
            .await
            .unwrap();
    let mut ips = ips;
    ips.sort();
    assert_eq!(ips, ["192.0.2.7", "198.51.100.1", "198.51.100.1"]);
}

/// A test key (`kw_test_`) makes, rolls and edits test keys only: what it makes is a test
/// key unless it asks for live (refused), and a live key's secret is out of its reach. An
/// import takes a Keyward key's environment from its prefix and refuses a row naming another.
#[tokio::test]
async fn a_test_key_reaches_test_keys_only() {
    let (app, org, admin) = with_admin_key().await;
    let (_, test) = app
        .issue_key(
            &org,
            NewKey {
                name: "sandbox".into(),
                category: Some("admin".into()),
                environment: Some("test".into()),
                ..Default::default()
            },
        )
        .await;
    let (live_id, _) = app
        .issue_key(
            &org,
            NewKey {
                name: "live".into(),
                ..Default::default()
            },
        )
        .await;
    let keys = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from api_key")
            .fetch_one(&app.state.db.writer)
            .await
            .unwrap()
    };
    let before = app.snapshot().await;
    let call = |method: &'static str, path: String, body: serde_json::Value| {
        let (app, test) = (&app, &test);
        async move { app.api(method, &path, Some(test), Some(body), IP).await }
    };
    let r = call(
        "POST",
        "/api/v1/keys".into(),
        json!({"name": "x", "environment": "live"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("test key"), "{}", r.body);
    let r = call(
        "POST",
        format!("/api/v1/keys/{live_id}/roll"),
        json!({"grace_seconds": 0}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = call(
        "PATCH",
        format!("/api/v1/keys/{live_id}"),
        json!({"require_signature": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = call(
        "POST",
        "/api/v1/keys/import".into(),
        json!([{"name": "i", "environment": "live"}]),
    )
    .await;
    assert_eq!(r.json()["rows"][0]["code"], "forbidden", "{}", r.body);
    // Nor touch a live key at all: a leaked test key cannot rename or stop production keys.
    let r = call(
        "PATCH",
        format!("/api/v1/keys/{live_id}"),
        json!({"name": "renamed"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = call("POST", format!("/api/v1/keys/{live_id}/disable"), json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = call("DELETE", format!("/api/v1/keys/{live_id}"), json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(
        app.snapshot().await,
        before,
        "nothing is written on a refusal"
    );
    // Left out, the environment is the maker's; its own test keys it may change.
    let r = call("POST", "/api/v1/keys".into(), json!({"name": "t"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.json()["environment"], "test");
    assert!(r.json()["key"].as_str().unwrap().starts_with("kw_test_"));
    let made = r.json()["id"].as_str().unwrap().to_string();
    let r = call(
        "PATCH",
        format!("/api/v1/keys/{made}"),
        json!({"name": "t2", "require_signature": true}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["name"], "t2");
    assert_eq!(r.json()["require_signature"], true);
    let r = call(
        "POST",
        format!("/api/v1/keys/{made}/roll"),
        json!({"grace_seconds": 0}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(r.json()["key"].as_str().unwrap().starts_with("kw_test_"));
    let rolled = r.json()["id"].as_str().unwrap().to_string();
    let r = call("POST", format!("/api/v1/keys/{rolled}/disable"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // An import (by an administrator) of a test secret cannot make it live.
    let secret = app::keys::format::generate(app::keys::format::Environment::Test);
    let before = keys().await;
    let r = app
        .api(
            "POST",
            "/api/v1/keys/import",
            Some(&admin),
            Some(json!([{"name": "moved", "key": secret, "environment": "live"}])),
            IP,
        )
        .await;
    assert_eq!(r.json()["rows"][0]["code"], "invalid_input", "{}", r.body);
    assert!(
        r.json()["rows"][0]["message"]
            .as_str()
            .unwrap()
            .contains("must be test"),
        "{}",
        r.body
    );
    assert_eq!(keys().await, before, "nothing is written on a refusal");
    let r = app
        .api(
            "POST",
            "/api/v1/keys/import",
            Some(&admin),
            Some(json!([{"name": "moved", "key": secret}])),
            IP,
        )
        .await;
    assert_eq!(r.json()["rows"][0]["action"], "imported", "{}", r.body);
    let r = app.api("GET", "/api/v1/me", Some(&secret), None, IP).await;
    assert_eq!(r.json()["environment"], "test", "{}", r.body);
}

/// A restricted key (IP allow-list, expiry) makes, edits, rolls and limits keys only inside
/// its own restrictions: it cannot mint, edit or roll its way out of them.
#[tokio::test]
async fn a_restricted_key_cannot_make_or_change_a_key_outside_its_restrictions() {
    let (app, org, admin) = with_admin_key().await;
    let now = app::ssr::db::now_ms();
    let (hour, later) = (
        app::ssr::db::rfc3339(now + 3_600_000),
        app::ssr::db::rfc3339(now + 7_200_000),
    );
    let (ci_id, ci) = app
        .issue_key(
            &org,
            NewKey {
                name: "ci".into(),
                ip_allowlist: Some(vec!["192.0.2.0/24".into()]),
                expires_at: Some(hour.clone()),
                ..Default::default()
            },
        )
        .await;
    // The same permissions, unrestricted, made by an administrator.
    let (free_id, _) = app
        .issue_key(
            &org,
            NewKey {
                name: "free".into(),
                ..Default::default()
            },
        )
        .await;
    let call = |method: &'static str, path: String, body: serde_json::Value| {
        let (app, ci) = (&app, &ci);
        async move { app.api(method, &path, Some(ci), Some(body), IP).await }
    };
    let keys = app.count("api_key").await;
    for (body, why) in [
        (json!({"name": "x", "ip_allowlist": []}), "IP allow-list"),
        (
            json!({"name": "x", "ip_allowlist": ["0.0.0.0/0"]}),
            "IP allow-list",
        ),
        (
            json!({"name": "x", "ip_allowlist": ["192.0.0.0/16"]}),
            "IP allow-list",
        ),
        (json!({"name": "x", "expires_at": later}), "outlives"),
    ] {
        let r = call("POST", "/api/v1/keys".into(), body.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{body}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "forbidden");
        let message = r.json()["error"]["message"].to_string();
        assert!(message.contains(why), "{body}: {message}");
    }
    assert_eq!(
        app.count("api_key").await,
        keys,
        "a refused key was written"
    );

    // What the request leaves out, the new key inherits; narrower is fine.
    let r = call("POST", "/api/v1/keys".into(), json!({"name": "inherits"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let made = r.json();
    assert_eq!(made["ip_allowlist"], json!(["192.0.2.0/24"]));
    assert_eq!(made["expires_at"], json!(hour));
    let r = call(
        "POST",
        "/api/v1/keys".into(),
        json!({"name": "narrow", "ip_allowlist": ["192.0.2.10/32"],
               "expires_at": app::ssr::db::rfc3339(now + 1_800_000)}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // It cannot lift its own restrictions; renaming itself is no escape.
    for body in [
        json!({"expires_at": null}),
        json!({"ip_allowlist": []}),
        json!({"expires_at": later}),
    ] {
        let r = call("PATCH", format!("/api/v1/keys/{ci_id}"), body.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{body}: {}", r.body);
    }
    let r = call(
        "PATCH",
        format!("/api/v1/keys/{ci_id}"),
        json!({"name": "ci 2"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let me = app
        .api("GET", &format!("/api/v1/keys/{ci_id}"), Some(&ci), None, IP)
        .await
        .json();
    assert_eq!(me["expires_at"], json!(hour));
    assert_eq!(me["ip_allowlist"], json!(["192.0.2.0/24"]));

    // Nor take over an unrestricted key: re-enable it (alone or in bulk), roll it, or edit its
    // access.
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{free_id}/disable"),
            Some(&admin),
            Some(json!({})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call("POST", format!("/api/v1/keys/{free_id}/enable"), json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = call(
        "POST",
        "/api/v1/keys/bulk".into(),
        json!({"action": "enable", "ids": [free_id]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()[0]["ok"], false, "{}", r.body);
    assert_eq!(r.json()[0]["code"], "forbidden", "{}", r.body);
    let status: String = sqlx::query_scalar("select status from api_key where api_key_id = $1")
        .bind(&free_id)
        .fetch_one(&app.state.db.reader)
        .await
        .unwrap();
    assert_eq!(status, "disabled");
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{free_id}/enable"),
            Some(&admin),
            Some(json!({})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(
        "POST",
        format!("/api/v1/keys/{free_id}/roll"),
        json!({"grace_seconds": 0}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = call(
        "PATCH",
        format!("/api/v1/keys/{free_id}"),
        json!({"ip_allowlist": ["192.0.2.0/24"], "expires_at": hour}),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);

    // Nor give a key (itself included) a faster limit than its own (100/h, set by an admin).
    let r = app
        .api(
            "PUT",
            &format!("/api/v1/keys/{ci_id}/limit"),
            Some(&admin),
            Some(json!({"rate_limit": 100, "rate_window_seconds": 3600})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for body in [
        json!({"rate_limit": 1_000_000, "rate_window_seconds": 1}),
        json!({"rate_limit": 101, "rate_window_seconds": 3600}),
        // The same average, but 2400 at once.
        json!({"rate_limit": 2400, "rate_window_seconds": 86_400}),
        json!({"plan_id": "plan_pro"}),
    ] {
        let r = call("PUT", format!("/api/v1/keys/{ci_id}/limit"), body.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{body}: {}", r.body);
    }
    let r = call(
        "PUT",
        format!("/api/v1/keys/{ci_id}/limit"),
        json!({"rate_limit": 50, "rate_window_seconds": 3600}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let limits: (Option<String>, Option<i64>) =
        sqlx::query_as("select plan_id, rate_limit from api_key where api_key_id = $1")
            .bind(&ci_id)
            .fetch_one(&app.state.db.reader)
            .await
            .unwrap();
    assert_eq!(limits, (None, Some(50)));

    // A key it makes starts no faster than it (the default plan, 100/h, would be): it takes
    // its maker's 50/h as its own limit, and answers with it.
    let r = call("POST", "/api/v1/keys".into(), json!({"name": "minted"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let minted = r.json();
    let minted_id = minted["id"].as_str().unwrap().to_string();
    let limits: (Option<String>, Option<i64>, Option<i64>) = sqlx::query_as(
        "select plan_id, rate_limit, rate_window_seconds from api_key where api_key_id = $1",
    )
    .bind(&minted_id)
    .fetch_one(&app.state.db.writer)
    .await
    .unwrap();
    assert_eq!(limits, (None, Some(50), Some(3600)));
    // The same for a key it imports.
    let r = call(
        "POST",
        "/api/v1/keys/import".into(),
        json!([{"name": "imported"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let imported_id = r.json()["rows"][0]["id"].as_str().unwrap().to_string();
    let imported: (Option<i64>, Option<i64>) =
        sqlx::query_as("select rate_limit, rate_window_seconds from api_key where api_key_id = $1")
            .bind(&imported_id)
            .fetch_one(&app.state.db.writer)
            .await
            .unwrap();
    assert_eq!(imported, (Some(50), Some(3600)));
    let secret = minted["key"].as_str().unwrap();
    let r = app.api("GET", "/api/v1/me", Some(secret), None, IP).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.headers
            .get("ratelimit-limit")
            .and_then(|v| v.to_str().ok()),
        Some("50"),
        "{:?}",
        r.headers
    );

    // Nor take over (roll) a key as restricted as it but faster: its secret would go faster.
    for (name, limit, rolled) in [("faster", 5_000, false), ("slower", 10, true)] {
        let (id, _) = app
            .issue_key(
                &org,
                NewKey {
                    name: name.into(),
                    ip_allowlist: Some(vec!["192.0.2.0/24".into()]),
                    expires_at: Some(hour.clone()),
                    ..Default::default()
                },
            )
            .await;
        let r = app
            .api(
                "PUT",
                &format!("/api/v1/keys/{id}/limit"),
                Some(&admin),
                Some(json!({"rate_limit": limit, "rate_window_seconds": 3600})),
                IP,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let r = call(
            "POST",
            format!("/api/v1/keys/{id}/roll"),
            json!({"grace_seconds": 0}),
        )
        .await;
        let expected = if rolled {
            StatusCode::CREATED
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(r.status, expected, "{name}: {}", r.body);
    }
}

/// A key limited to some endpoints makes only keys limited to endpoints it covers: none (any
/// endpoint) or a wider rule is refused and nothing written; left out, its rules are inherited.
#[tokio::test]
async fn an_endpoint_limited_key_makes_only_keys_within_its_endpoints() {
    let (app, org, _) = with_admin_key().await;
    let (_, limited) = app
        .issue_key(
            &org,
            NewKey {
                name: "limited".into(),
                endpoints: Some(vec![
                    app::keys::EndpointRule {
                        method: "GET".into(),
                        path: "/api/v1/**".into(),
                    },
                    app::keys::EndpointRule {
                        method: "POST".into(),
                        path: "/api/v1/keys".into(),
                    },
                ]),
                ..Default::default()
            },
        )
        .await;
    let keys = app.count("api_key").await;
    for endpoints in [
        json!([]),
        json!([{"method": "*", "path": "/api/v1/keys"}]),
        json!([{"method": "POST", "path": "/api/v1/**"}]),
        json!([{"method": "DELETE", "path": "/api/v1/keys/*"}]),
    ] {
        let body = json!({"name": "x", "endpoints": endpoints});
        let r = app
            .api(
                "POST",
                "/api/v1/keys",
                Some(&limited),
                Some(body.clone()),
                IP,
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{body}: {}", r.body);
        assert!(r.body.contains("endpoints"), "{body}: {}", r.body);
    }
    assert_eq!(
        app.count("api_key").await,
        keys,
        "a refused key was written"
    );
    let r = app
        .api(
            "POST",
            "/api/v1/keys",
            Some(&limited),
            Some(json!({"name": "narrow", "endpoints": [{"method": "GET", "path": "/api/v1/keys/*"}]})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app
        .api(
            "POST",
            "/api/v1/keys",
            Some(&limited),
            Some(json!({"name": "inherits"})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        r.json()["endpoints"],
        json!([{"method": "GET", "path": "/api/v1/**"}, {"method": "POST", "path": "/api/v1/keys"}])
    );
}

/// A key whose stored restrictions cannot be read is not written back unrestricted: a user
/// (unbounded) renaming or rolling it is refused (409) and nothing is written, until an edit
/// sets both lists anew.
#[tokio::test]
async fn an_unreadable_restriction_is_not_written_back_as_none() {
    let (app, org, admin) = with_admin_key().await;
    let (id, _) = app
        .issue_key(
            &org,
            NewKey {
                name: "fenced".into(),
                ip_allowlist: Some(vec!["192.0.2.0/24".into(), "198.51.100.0/24".into()]),
                ..Default::default()
            },
        )
        .await;
    // One entry that no longer reads (a hand edit, a downgrade): the rest must not be lost.
    sqlx::query(
        "update api_key set ip_allowlist = '[\"192.0.2.0/24\",\"nonsense\"]' where api_key_id = $1",
    )
    .bind(&id)
    .execute(&app.state.db.writer)
    .await
    .unwrap();
    let snapshot = || async {
        sqlx::query_as::<_, (i64, String, String)>(
            "select count(*), min(name), min(ip_allowlist) from api_key where organization_id = $1 and name <> 'admin'",
        )
        .bind(&org)
        .fetch_one(&app.state.db.writer)
        .await
        .unwrap()
    };
    let before = snapshot().await;
    let patch = |body: serde_json::Value| {
        let (app, admin, path) = (&app, &admin, format!("/api/v1/keys/{id}"));
        async move { app.api("PATCH", &path, Some(admin), Some(body), IP).await }
    };
    let r = patch(json!({"name": "renamed"})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let r = app
        .api(
            "POST",
            &format!("/api/v1/keys/{id}/roll"),
            Some(&admin),
            Some(json!({"grace_seconds": 0})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(snapshot().await, before, "nothing is written on a refusal");
    // Setting both anew mends it.
    let r = patch(json!({"ip_allowlist": ["192.0.2.0/24"], "endpoints": []})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.json()["ip_allowlist"],
        json!(["192.0.2.0/24"]),
        "{}",
        r.body
    );
}

/// A bulk action answers each key: one whose stored restrictions cannot be read is refused
/// (409) and the others go on; a key the database fails on stops the action there, with the
/// keys already changed reported as changed and the rest as not attempted (no 500 hiding what
/// was written); failing on the first key, nothing was written and the answer is a 500.
#[tokio::test]
async fn a_bulk_action_reports_every_key_whatever_fails() {
    let (app, org, admin) = with_admin_key().await;
    let hour = app::ssr::db::rfc3339(app::ssr::db::now_ms() + 3_600_000);
    let restricted = |name: &str| NewKey {
        name: name.into(),
        ip_allowlist: Some(vec!["192.0.2.0/24".into()]),
        expires_at: Some(hour.clone()),
        ..Default::default()
    };
    let (_, ci) = app.issue_key(&org, restricted("ci")).await;
    let mut ids = Vec::new();
    for name in ["a", "unreadable", "b"] {
        ids.push(app.issue_key(&org, restricted(name)).await.0);
    }
    let bulk = |secret: &str, action: &str, ids: &[String]| {
        let (app, secret) = (&app, secret.to_string());
        let body = json!({"action": action, "ids": ids});
        async move {
            app.api("POST", "/api/v1/keys/bulk", Some(&secret), Some(body), IP)
                .await
        }
    };
    let statuses = |ids: Vec<String>| {
        let app = &app;
        async move {
            let mut out = Vec::new();
            for id in ids {
                let s: String =
                    sqlx::query_scalar("select status from api_key where api_key_id = $1")
                        .bind(&id)
                        .fetch_one(&app.state.db.reader)
                        .await
                        .unwrap();
                out.push(s);
            }
            out
        }
    };
    let r = bulk(&admin, "disable", &ids).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    sqlx::query("update api_key set ip_allowlist = 'not a list' where api_key_id = $1")
        .bind(&ids[1])
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let r = bulk(&ci, "enable", &ids).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let codes: Vec<serde_json::Value> = (0..3).map(|i| r.json()[i]["code"].clone()).collect();
    assert_eq!(
        codes,
        [json!(null), json!("conflict"), json!(null)],
        "{}",
        r.body
    );
    assert_eq!(
        statuses(ids.clone()).await,
        ["active", "disabled", "active"]
    );

    // The database refuses the second key's timeline entry: the first stays disabled, the
    // second and third are untouched.
    let (x, y, z) = (ids[0].clone(), ids[2].clone(), ids[1].clone());
    refuse_rows(
        &app,
        "refuse_key",
        "insert on api_key_event",
        &format!("new.api_key_id = '{y}'"),
        None,
    )
    .await;
    let r = bulk(&admin, "revoke", &[x.clone(), y.clone(), z.clone()]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let out = r.json();
    assert_eq!(out[0]["ok"], true, "{out}");
    assert_eq!(out[1]["code"], "internal", "{out}");
    assert_eq!(out[2]["code"], "unavailable", "{out}");
    assert!(
        out[2]["message"]
            .as_str()
            .unwrap()
            .contains("not attempted"),
        "{out}"
    );
    assert_eq!(
        statuses(vec![x.clone(), y.clone(), z.clone()]).await,
        ["revoked", "active", "disabled"]
    );
    // Failing on the first key: nothing changed, a plain 500.
    let r = bulk(&admin, "disable", &[y.clone(), z.clone()]).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.body);
    assert_eq!(statuses(vec![y, z]).await, ["active", "disabled"]);
}

/// A NUL character (which PostgreSQL cannot store in text) is refused with a clear 400
/// wherever it comes in, on both backends, and nothing is written; text that merely looks like
/// one is not.
#[tokio::test]
async fn a_nul_character_is_refused_wherever_it_comes_in() {
    let (app, org, admin) = with_admin_key().await;
    let keys = app.count("api_key").await;
    let refused = |r: &Reply, what: &str| {
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
        assert_eq!(r.json()["error"]["code"], "invalid_input", "{what}");
        assert!(r.body.contains("NUL"), "{what}: {}", r.body);
    };
    for path in [
        "/api/v1/keys?q=%00",
        "/api/v1/keys/key_%00",
        "/api/v1/audit?actor=%00",
        "/api/v1/usage?range=1h&key_id=%00",
    ] {
        let r = app.api("GET", path, Some(&admin), None, IP).await;
        refused(&r, path);
    }
    for body in [
        json!({"name": "a", "description": "a\u{0}"}),
        json!({"name": "a\u{0}"}),
    ] {
        let r = app
            .api("POST", "/api/v1/keys", Some(&admin), Some(body.clone()), IP)
            .await;
        refused(&r, &body.to_string());
    }
    let rows = r#"[{"name": "first"}, {"name": "second", "description": "\u0000"}]"#;
    let headers = [("content-type", "application/json")];
    let r = app
        .api_raw(
            "POST",
            "/api/v1/keys/import",
            Some(&admin),
            Some(rows),
            IP,
            &headers,
        )
        .await;
    refused(&r, "import");
    // A server function, as a form; and whatever Content-Type the call claims (the function
    // decodes its body as a form all the same).
    let mut b = app.signed_in("ann@example.org").await;
    for kind in [
        None,
        Some("text/plain"),
        Some("application/json"),
        Some("Application/X-WWW-Form-Urlencoded"),
    ] {
        b.content_type = kind;
        let r = app
            .rpc(
                &mut b,
                "create_key",
                &[
                    ("organization_id", org.as_str()),
                    ("name", "nul\0name"),
                    ("environment", "live"),
                    ("category", "basic"),
                    ("ip_allowlist", ""),
                    ("expires_in_days", ""),
                ],
            )
            .await;
        refused(&r, kind.unwrap_or("a form"));
    }
    assert_eq!(
        app.count("api_key").await,
        keys,
        "a refused key was written"
    );
    // A status change's reason (its own body reader).
    let (victim, _) = app
        .issue_key(
            &org,
            NewKey {
                name: "victim".into(),
                ..Default::default()
            },
        )
        .await;
    let events = app.count("api_key_event").await;
    for (method, path) in [
        ("POST", format!("/api/v1/keys/{victim}/disable")),
        ("DELETE", format!("/api/v1/keys/{victim}")),
    ] {
        let r = app
            .api(
                method,
                &path,
                Some(&admin),
                Some(json!({"reason": "x\u{0}"})),
                IP,
            )
            .await;
        refused(&r, &path);
    }
    assert_eq!(
        app.count("api_key_event").await,
        events,
        "a refused change was recorded"
    );

    // A backslash followed by "u0000" is text, not a NUL.
    let r = app
        .api(
            "POST",
            "/api/v1/keys",
            Some(&admin),
            Some(json!({"name": "a", "description": "\\u0000 is how JSON writes NUL"})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.json()["description"], "\\u0000 is how JSON writes NUL");
}

#[tokio::test]
async fn console_key_functions_check_the_organization() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let bob = app.user("bob@example.org", None).await;
    let (ann_org, bob_org) = (app.org_of(&ann).await, app.org_of(&bob).await);
    let (bob_key_id, bob_key) = app.admin_key(&bob_org).await;
    let mut b = app.signed_in("ann@example.org").await;

    let r = app
        .rpc(&mut b, "list_keys", &[("organization_id", &bob_org)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(
        r.json()["error"]["message"],
        "missing permission: keys:read"
    );
    let r = app
        .rpc(
            &mut b,
            "set_key_status",
            &[
                ("organization_id", &bob_org),
                ("key_id", &bob_key_id),
                ("action", "revoke"),
                ("reason", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = app
        .rpc(
            &mut b,
            "set_key_status",
            &[
                ("organization_id", &ann_org),
                ("key_id", &bob_key_id),
                ("action", "revoke"),
                ("reason", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = app
        .rpc(
            &mut b,
            "roll_key",
            &[
                ("organization_id", &ann_org),
                ("key_id", &bob_key_id),
                ("grace_seconds", "0"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&bob_key), None, IP)
            .await
            .status,
        StatusCode::OK
    );

    // In her own organization the console creates a key and reveals it in that one answer.
    let form = [
        ("organization_id", ann_org.as_str()),
        ("name", "console key"),
        ("environment", "test"),
        ("category", "read_only"),
        ("ip_allowlist", "10.0.0.0/8, 192.0.2.0/24"),
        ("expires_in_days", "30"),
    ];
    let r = app.rpc(&mut b, "create_key", &form).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let created = r.json();
    assert!(created["key"].as_str().unwrap().starts_with("kw_test_"));
    assert_eq!(
        created["ip_allowlist"],
        json!(["10.0.0.0/8", "192.0.2.0/24"])
    );
    assert_eq!(created["category"], "read_only");
    let listed = app
        .rpc(&mut b, "list_keys", &[("organization_id", &ann_org)])
        .await;
    assert!(!listed.body.contains(created["key"].as_str().unwrap()));

    let mut bad = form;
    bad[5] = ("expires_in_days", "soon");
    let r = app.rpc(&mut b, "create_key", &bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["field"], "expires_in_days");
}

#[tokio::test]
async fn use_is_recorded_off_the_request_path() {
    let (app, org, _) = with_admin_key().await;
    let (id, key) = app.admin_key(&org).await;
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&key), None, IP)
            .await
            .status,
        StatusCode::OK
    );
    let mut last_used: Option<i64> = None;
    // The key-use worker writes every 500 ms.
    for _ in 0..150 {
        last_used = sqlx::query_scalar("select last_used_at from api_key where api_key_id = $1")
            .bind(&id)
            .fetch_one(&app.state.db.reader)
            .await
            .unwrap();
        if last_used.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(last_used.is_some(), "last_used_at is written after a use");
    let view = app
        .api("GET", &format!("/api/v1/keys/{id}"), Some(&key), None, IP)
        .await
        .json();
    assert!(view["last_used_at"].is_string());
}

#[tokio::test]
async fn writing_uses_never_waits_on_a_key_another_change_holds() {
    use app::keys::ssr::{flush_key_use, touch, KeyCache};
    if !on_postgres() {
        // SQLite has one writer and no row locks: nothing to wait on.
        return;
    }
    let (app, org, _) = with_admin_key().await;
    let (id, _) = app.admin_key(&org).await;
    let db = &app.state.db;
    let last_used = || async {
        sqlx::query_scalar::<_, Option<i64>>(
            "select last_used_at from api_key where api_key_id = $1",
        )
        .bind(&id)
        .fetch_one(&db.reader)
        .await
        .unwrap()
    };
    // Its own cache: the running key-use worker flushes the instance's, not this one.
    let cache = KeyCache::default();
    touch(&cache, &id);
    // A change holds the key's row (as an account deletion revoking its keys does). Waiting
    // for it could deadlock with the change's next lock and abort the change.
    let mut change = db.writer.begin().await.unwrap();
    sqlx::query("update api_key set updated_at = updated_at where api_key_id = $1")
        .bind(&id)
        .execute(&mut *change)
        .await
        .unwrap();
    let flushed =
        tokio::time::timeout(std::time::Duration::from_secs(5), flush_key_use(db, &cache))
            .await
            .expect("the flush gives up instead of waiting for the change");
    assert_eq!(flushed.unwrap(), 0, "nothing written this round");
    change.commit().await.unwrap();
    assert_eq!(last_used().await, None);
    // The use was kept: the next round writes it.
    assert_eq!(flush_key_use(db, &cache).await.unwrap(), 1);
    assert!(last_used().await.is_some());
}

/// A role or membership change holds its organization's role lock; a key change in the same
/// organization does not wait for it (its event only references the organization). Were it
/// to wait, the two could deadlock: an account deletion holds the organization and then
/// revokes keys another request is changing.
#[tokio::test]
async fn key_changes_do_not_wait_for_the_organization_s_role_lock() {
    if !on_postgres() {
        // SQLite has one writer: the role lock is the writer itself.
        return;
    }
    let (app, org, admin) = with_admin_key().await;
    let (id, _) = app.admin_key(&org).await;
    let mut change = app.state.db.writer.begin().await.unwrap();
    app::access::roles::lock(&mut change, &org).await.unwrap();
    let r = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        app.api(
            "POST",
            &format!("/api/v1/keys/{id}/disable"),
            Some(&admin),
            None,
            IP,
        ),
    )
    .await
    .expect("the key change does not wait for the role lock");
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    change.rollback().await.unwrap();
}

#[tokio::test]
async fn bulk_reports_each_key_and_export_never_holds_a_secret() {
    let (app, org, admin) = with_admin_key().await;
    let (a, ka) = app.admin_key(&org).await;
    let (b, kb) = app.admin_key(&org).await;
    let (c, _) = app.admin_key(&org).await;
    app.api(
        "DELETE",
        &format!("/api/v1/keys/{c}"),
        Some(&admin),
        None,
        IP,
    )
    .await;
    let bob = app.user("bob@example.org", None).await;
    let (bobs, _) = app.admin_key(&app.org_of(&bob).await).await;

    let r = app
        .api(
            "POST",
            "/api/v1/keys/bulk",
            Some(&admin),
            Some(json!({"action": "disable", "ids": [a, b, c, bobs], "reason": "incident 42"})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let out = r.json();
    let summary: Vec<(bool, &str)> = out
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["ok"].as_bool().unwrap(),
                o["code"]
                    .as_str()
                    .unwrap_or(o["status"].as_str().unwrap_or("")),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (true, "disabled"),
            (true, "disabled"),
            (false, "conflict"),
            (false, "not_found")
        ]
    );
    for key in [&ka, &kb] {
        assert_eq!(
            app.api("GET", "/api/v1/me", Some(key), None, IP)
                .await
                .error_code(),
            "key_disabled"
        );
    }
    for body in [
        json!({"action": "explode", "ids": [a]}),
        json!({"action": "enable", "ids": []}),
    ] {
        let r = app
            .api("POST", "/api/v1/keys/bulk", Some(&admin), Some(body), IP)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
    }

    let json_export = app
        .api("GET", "/api/v1/keys/export", Some(&admin), None, IP)
        .await;
    assert_eq!(json_export.status, StatusCode::OK);
    assert_eq!(json_export.json().as_array().unwrap().len(), 4);
    let csv = app
        .api(
            "GET",
            "/api/v1/keys/export?format=csv",
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert_eq!(csv.body.lines().count(), 5, "{}", csv.body);
    assert!(csv
        .body
        .starts_with("id,name,description,environment,display_prefix,status"));
    for export in [&json_export.body, &csv.body] {
        for secret in [&admin, &ka, &kb] {
            assert!(!export.contains(secret.as_str()));
        }
        assert!(
            !export.contains(&bobs),
            "another organization's key is not exported"
        );
        let hash: String = sqlx::query_scalar("select key_hash from api_key where api_key_id = $1")
            .bind(&a)
            .fetch_one(&app.state.db.reader)
            .await
            .unwrap();
        assert!(!export.contains(&hash));
    }
    let r = app
        .api(
            "GET",
            "/api/v1/keys/export?format=xml",
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn patch_edits_settings_with_the_same_rules_as_create() {
    let (app, org, admin) = with_admin_key().await;
    let (id, key) = app
        .issue_key(
            &org,
            NewKey {
                name: "edit me".into(),
                category: Some("admin".into()),
                expires_at: Some("2099-01-01T00:00:00Z".into()),
                ..Default::default()
            },
        )
        .await;
    let path = format!("/api/v1/keys/{id}");
    let r = app
        .api(
            "PATCH",
            &path,
            Some(&admin),
            Some(json!({"name": "edited", "ip_allowlist": ["10.0.0.0/8"], "reason": "lock down"})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let view = r.json();
    assert_eq!(view["name"], "edited");
    assert_eq!(view["ip_allowlist"], json!(["10.0.0.0/8"]));
    assert_eq!(view["category"], "admin", "untouched fields stay");
    assert_eq!(view["expires_at"], "2099-01-01T00:00:00Z");
    // The new allow-list applies at once.
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&key), None, IP)
            .await
            .error_code(),
        "ip_not_allowed"
    );
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&key), None, "10.9.8.7")
            .await
            .status,
        StatusCode::OK
    );

    // null clears the expiry; scopes switch the key to custom.
    let r = app
        .api(
            "PATCH",
            &path,
            Some(&admin),
            Some(json!({"expires_at": null, "scopes": {"keys": "read"}})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.json()["expires_at"].is_null());
    assert_eq!(r.json()["category"], "custom");
    assert_eq!(r.json()["scopes"], json!({"keys": "read"}));

    // Bad input changes nothing (last_used_at is written off the request path, so it may land
    // at any moment: leave it out of the comparison).
    let settings = |mut v: serde_json::Value| {
        v.as_object_mut().unwrap().remove("last_used_at");
        v
    };
    let before = settings(app.api("GET", &path, Some(&admin), None, IP).await.json());
    for body in [
        json!({"scopes": {"rockets": "write"}}),
        json!({"name": ""}),
        json!({}),
        json!({"status": "active"}),
        json!({"name": "x", "reason": "r".repeat(501)}),
    ] {
        let r = app
            .api("PATCH", &path, Some(&admin), Some(body.clone()), IP)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
    }
    assert_eq!(
        settings(app.api("GET", &path, Some(&admin), None, IP).await.json()),
        before
    );

    // A basic key cannot widen another key beyond what it holds.
    let (_, basic) = app
        .issue_key(
            &org,
            NewKey {
                name: "basic".into(),
                ..Default::default()
            },
        )
        .await;
    let r = app
        .api(
            "PATCH",
            &path,
            Some(&basic),
            Some(json!({"category": "admin"})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Another organization's key is not found; the timeline names what changed.
    let bob = app.user("bob@example.org", None).await;
    let (_, bobs) = app.admin_key(&app.org_of(&bob).await).await;
    assert_eq!(
        app.api("PATCH", &path, Some(&bobs), Some(json!({"name": "x"})), IP)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let history = app
        .api("GET", &format!("{path}/history"), Some(&admin), None, IP)
        .await
        .json();
    let kinds: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["created", "edited", "edited"]);
    assert_eq!(history[1]["reason"], "lock down");
    assert_eq!(
        history[1]["detail"]["changed"],
        json!(["name", "ip_allowlist"]),
        "{history}"
    );
    // Scopes set by hand make the category custom; the expiry was cleared.
    assert_eq!(
        history[2]["detail"]["changed"],
        json!(["category", "scopes", "expires_at"]),
        "{history}"
    );
}

/// A key exported as CSV and imported again keeps its restrictions: its endpoint rules, its
/// signing requirement and its metadata (a re-issued key without them would be wider).
#[tokio::test]
async fn a_csv_export_imported_again_keeps_the_key_s_restrictions() {
    let (app, org, admin) = with_admin_key().await;
    let rules = json!([{"method": "GET", "path": "/api/v1/me"}]);
    let (id, _) = app
        .issue_key(
            &org,
            NewKey {
                name: "narrow".into(),
                endpoints: Some(serde_json::from_value(rules.clone()).unwrap()),
                require_signature: Some(true),
                metadata: Some(json!({"team": "billing, \"north\""})),
                ..Default::default()
            },
        )
        .await;
    let csv = app
        .api(
            "GET",
            "/api/v1/keys/export?format=csv",
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.body);
    let header = csv.body.lines().next().unwrap();
    let row = csv.body.lines().find(|l| l.starts_with(&id)).unwrap();
    let file = format!("{header}\n{row}\n");
    let r = app
        .api_raw(
            "POST",
            "/api/v1/keys/import",
            Some(&admin),
            Some(&file),
            IP,
            &[("content-type", "text/csv")],
        )
        .await;
    assert_eq!(r.json()["rows"][0]["action"], "issued", "{}", r.body);
    let new = r.json()["rows"][0]["id"].as_str().unwrap().to_string();
    let view = app
        .api(
            "GET",
            &format!("/api/v1/keys/{new}"),
            Some(&admin),
            None,
            IP,
        )
        .await
        .json();
    assert_eq!(view["name"], "narrow");
    assert_eq!(view["endpoints"], rules, "{view}");
    assert_eq!(view["require_signature"], true, "{view}");
    assert_eq!(
        view["metadata"],
        json!({"team": "billing, \"north\""}),
        "{view}"
    );

    // A cell that is not JSON is named, and nothing is imported.
    let before = app.count("api_key").await;
    let bad = "name,endpoints\nbroken,GET /api/v1/me\n";
    let r = app
        .api_raw(
            "POST",
            "/api/v1/keys/import",
            Some(&admin),
            Some(bad),
            IP,
            &[("content-type", "text/csv")],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "bad endpoints",
    );
    assert!(r.body.contains("endpoints must be JSON"), "{}", r.body);
    assert_eq!(app.count("api_key").await, before);
}

/// Rolling can give the successor a new expiry, or none; left out, the successor keeps the
/// old key's. The organization's lifetime policy and a key acting's own expiry hold as on
/// creation, and a refused roll writes nothing.
#[tokio::test]
async fn a_roll_can_set_the_successor_s_expiry_within_the_policy() {
    let (app, org, admin) = with_admin_key().await;
    let mut ann = app.signed_in("ann@example.org").await;
    let (old_id, _) = app.scoped_key(&org, json!({"keys": "read"})).await;
    let r = app
        .rpc(
            &mut ann,
            "set_org_policy",
            &[
                ("organization_id", org.as_str()),
                ("max_key_lifetime_days", "30"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let roll = |key_id: String, caller: String, body: serde_json::Value| {
        let app = &app;
        async move {
            app.api(
                "POST",
                &format!("/api/v1/keys/{key_id}/roll"),
                Some(&caller),
                Some(body),
                IP,
            )
            .await
        }
    };
    let at = |days: i64| app::ssr::db::rfc3339(app::ssr::db::now_ms() + days * 86_400_000);
    let before = app.snapshot().await;
    // The key has no expiry, which the policy no longer allows: kept, it is refused…
    let r = roll(old_id.clone(), admin.clone(), json!({"grace_seconds": 0})).await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "no expiry under the policy",
    );
    // …as are an expiry past the policy's 30 days, none, and one in the past.
    for expires_at in [json!(at(40)), json!(null), json!("2020-01-01T00:00:00Z")] {
        let r = roll(
            old_id.clone(),
            admin.clone(),
            json!({"grace_seconds": 0, "expires_at": expires_at}),
        )
        .await;
        assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "a bad expiry");
    }
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused roll writes nothing"
    );
    // Within it, the successor has the new expiry.
    let ten = at(10);
    let r = roll(
        old_id.clone(),
        admin.clone(),
        json!({"grace_seconds": 60, "expires_at": ten}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let new_id = r.json()["id"].as_str().unwrap().to_string();
    let successor = app
        .api(
            "GET",
            &format!("/api/v1/keys/{new_id}"),
            Some(&admin),
            None,
            IP,
        )
        .await
        .json();
    assert_eq!(
        app::keys::rules::parse_rfc3339("x", successor["expires_at"].as_str().unwrap()).unwrap(),
        app::keys::rules::parse_rfc3339("x", &ten).unwrap(),
        "{successor}"
    );
    // Left out, the next successor keeps it.
    let r = roll(new_id.clone(), admin.clone(), json!({"grace_seconds": 0})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.json()["expires_at"], successor["expires_at"]);
    let third = r.json()["id"].as_str().unwrap().to_string();
    // A key acting that expires in 5 days may roll a key expiring in 3 (within its own
    // restrictions), but cannot give the successor 20 days, nor none.
    let _ = third;
    let made = |name: &'static str, days: i64| {
        let (app, admin) = (&app, admin.clone());
        async move {
            let r = app
                .api(
                    "POST",
                    "/api/v1/keys",
                    Some(&admin),
                    Some(json!({"name": name, "category": "admin", "expires_at": at(days)})),
                    IP,
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            r.json()
        }
    };
    let short = made("short-lived admin", 5).await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let soon = made("soon", 3).await["id"].as_str().unwrap().to_string();
    let before = app.snapshot().await;
    for expires_at in [json!(at(20)), json!(null)] {
        let r = roll(
            soon.clone(),
            short.clone(),
            json!({"grace_seconds": 0, "expires_at": expires_at}),
        )
        .await;
        assert_refused(
            &r,
            StatusCode::FORBIDDEN,
            "forbidden",
            "past the acting key",
        );
    }
    assert_eq!(app.snapshot().await, before);
    let r = roll(
        soon.clone(),
        short.clone(),
        json!({"grace_seconds": 0, "expires_at": at(4)}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}
