//! Request signatures: a key that requires them refuses unsigned, forged, altered, stale and
//! replayed requests, each with its own code; a valid signature passes and the handler still
//! sees the body.

mod common;

use app::keys::signature::{self, SigningSecret};
use app::keys::NewKey;
use common::*;
use http::StatusCode;

const IP: &str = "192.0.2.10";

struct Signed {
    app: TestApp,
    org: String,
    key: String,
    secret: SigningSecret,
    signing_secret_shown: String,
}

async fn setup(require: bool) -> Signed {
    setup_with(NewKey {
        name: "signed".into(),
        category: Some("admin".into()),
        require_signature: Some(require),
        ..Default::default()
    })
    .await
}

async fn setup_with(new: NewKey) -> Signed {
    let app = spawn().await;
    let user = app.user("sig@example.org", None).await;
    let org = app.org_of(&user).await;
    let grant = app::access::ssr::Grant::operator(&org);
    let settings = app::keys::ssr::validate_new(&new, app::ssr::db::now_ms(), &grant).unwrap();
    let created = app::keys::ssr::create(
        &app.state.db,
        &app.state.config.secret,
        app::keys::ssr::Acting::new(&grant, None),
        None,
        &settings,
    )
    .await
    .unwrap();
    let salt: String = sqlx::query_scalar("select signing_salt from api_key where api_key_id = $1")
        .bind(&created.api_key.id)
        .fetch_one(&app.state.db.reader)
        .await
        .unwrap();
    Signed {
        secret: signature::signing_secret(&app.state.config.secret, &created.api_key.id, &salt),
        signing_secret_shown: created.signing_secret,
        key: created.key,
        org,
        app,
    }
}

fn now() -> i64 {
    app::ssr::db::now_ms() / 1000
}

fn header(secret: &SigningSecret, t: i64, method: &str, path: &str, body: &str) -> String {
    let v1 = signature::sign(
        secret,
        &signature::payload(t, method, path, body.as_bytes()),
    );
    format!("t={t},v1={v1}")
}

impl Signed {
    /// What `POST /api/v1/keys/verify` answers `service` (a key of the organization) for `body`.
    async fn verify_as(&self, service: &str, body: serde_json::Value) -> serde_json::Value {
        let r = self
            .app
            .api("POST", "/api/v1/keys/verify", Some(service), Some(body), IP)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.json()
    }

    async fn call(&self, method: &str, path: &str, body: Option<&str>, sig: Option<&str>) -> Reply {
        let headers: Vec<(&str, &str)> = sig.map(|s| ("signature", s)).into_iter().collect();
        self.app
            .api_raw(method, path, Some(&self.key), body, IP, &headers)
            .await
    }
}

#[tokio::test]
async fn the_secret_shown_once_is_the_one_that_signs() {
    let s = setup(true).await;
    assert_eq!(s.signing_secret_shown, s.secret.expose());
    assert!(s.signing_secret_shown.starts_with("kwsig_"));
    // Never stored: no column holds it.
    let hits: i64 = sqlx::query_scalar(
        "select count(*) from api_key where key_hash = $1 or signing_salt = $1 or metadata like $2",
    )
    .bind(&s.signing_secret_shown)
    .bind(format!("%{}%", s.signing_secret_shown))
    .fetch_one(&s.app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(hits, 0);
    // GET never shows it again.
    let r = s
        .call(
            "GET",
            "/api/v1/keys",
            None,
            Some(&header(&s.secret, now(), "GET", "/api/v1/keys", "")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!r.body.contains(&s.signing_secret_shown));
}

#[tokio::test]
async fn each_signature_refusal_has_its_code() {
    let s = setup(true).await;
    let check = |r: &Reply, code: &str| {
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{code}: {}", r.body);
        assert_eq!(r.error_code(), code, "{}", r.body);
    };

    check(
        &s.call("GET", "/api/v1/me", None, None).await,
        "signature_missing",
    );
    check(
        &s.call("GET", "/api/v1/me", None, Some("t=1,v1=zz")).await,
        "signature_invalid",
    );
    // Signed with another secret.
    let other = signature::signing_secret(&[9; 32], "key_x", "salt");
    check(
        &s.call(
            "GET",
            "/api/v1/me",
            None,
            Some(&header(&other, now(), "GET", "/api/v1/me", "")),
        )
        .await,
        "signature_invalid",
    );
    // Signed for another path, method or body.
    let t = now();
    check(
        &s.call(
            "GET",
            "/api/v1/me",
            None,
            Some(&header(&s.secret, t, "GET", "/api/v1/keys", "")),
        )
        .await,
        "signature_invalid",
    );
    let body = r#"{"name":"x"}"#;
    check(
        &s.call(
            "POST",
            "/api/v1/keys",
            Some(r#"{"name":"y"}"#),
            Some(&header(&s.secret, t, "POST", "/api/v1/keys", body)),
        )
        .await,
        "signature_invalid",
    );
    // Correct, but signed six minutes ago (or ahead).
    check(
        &s.call(
            "GET",
            "/api/v1/me",
            None,
            Some(&header(&s.secret, t - 360, "GET", "/api/v1/me", "")),
        )
        .await,
        "signature_stale",
    );
    check(
        &s.call(
            "GET",
            "/api/v1/me",
            None,
            Some(&header(&s.secret, t + 360, "GET", "/api/v1/me", "")),
        )
        .await,
        "signature_stale",
    );
    // Nothing was created by the refused POST.
    assert_eq!(s.app.count("api_key").await, 1);
}

#[tokio::test]
async fn a_valid_signature_passes_once_and_a_replay_is_refused() {
    let s = setup(true).await;
    let body = r#"{"name":"made by a signed request"}"#;
    let sig = header(&s.secret, now(), "POST", "/api/v1/keys", body);
    let r = s.call("POST", "/api/v1/keys", Some(body), Some(&sig)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // The handler saw the buffered body.
    assert_eq!(r.json()["name"], "made by a signed request");

    let again = s.call("POST", "/api/v1/keys", Some(body), Some(&sig)).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{}", again.body);
    assert_eq!(again.error_code(), "signature_replayed");
    assert_eq!(s.app.count("api_key").await, 2, "the replay wrote nothing");

    // The query string is signed too.
    let path = "/api/v1/keys/export?format=csv";
    let r = s
        .call(
            "GET",
            path,
            None,
            Some(&header(&s.secret, now(), "GET", path, "")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_key_without_the_requirement_checks_a_signature_only_when_sent() {
    let s = setup(false).await;
    let r = s.call("GET", "/api/v1/me", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = s.call("GET", "/api/v1/me", None, Some("t=1,v1=00")).await;
    assert_eq!(r.error_code(), "signature_invalid");
    let r = s
        .call(
            "GET",
            "/api/v1/me",
            None,
            Some(&header(&s.secret, now(), "GET", "/api/v1/me", "")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn roll_gives_the_new_key_a_new_signing_secret() {
    let s = setup(true).await;
    let path = "/api/v1/me";
    let me = s
        .call(
            "GET",
            path,
            None,
            Some(&header(&s.secret, now(), "GET", path, "")),
        )
        .await
        .json();
    let id = me["key_id"].as_str().unwrap().to_string();
    let roll_path = format!("/api/v1/keys/{id}/roll");
    let body = r#"{"grace_seconds":3600}"#;
    let r = s
        .call(
            "POST",
            &roll_path,
            Some(body),
            Some(&header(&s.secret, now(), "POST", &roll_path, body)),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let rolled = r.json();
    let new_secret = rolled["signing_secret"].as_str().unwrap();
    assert_ne!(new_secret, s.signing_secret_shown);
    assert_eq!(rolled["require_signature"], true);
}

#[tokio::test]
async fn verify_checks_a_forwarded_signature_once() {
    let s = setup(true).await;
    let (_, service) = s.app.admin_key(&s.org).await;
    let verify = |body: serde_json::Value| s.verify_as(&service, body);
    let body = r#"{"amount":42}"#;
    let digest = signature::body_digest(body.as_bytes());
    let sig = header(&s.secret, now(), "POST", "/charges", body);
    let base = serde_json::json!({"key": s.key, "method": "POST", "path": "/charges", "body_sha256": digest});

    let mut unsigned = base.clone();
    unsigned.as_object_mut().unwrap().remove("body_sha256");
    assert_eq!(verify(unsigned).await["code"], "signature_missing");
    let mut signed = base.clone();
    signed["signature"] = serde_json::json!(sig);
    let v = verify(signed.clone()).await;
    assert_eq!(
        (v["valid"].as_bool(), v["code"].as_str()),
        (Some(true), Some("valid")),
        "{v}"
    );
    assert_eq!(verify(signed).await["code"], "signature_replayed");
    let mut tampered = base.clone();
    tampered["body_sha256"] = serde_json::json!(signature::body_digest(b"{\"amount\":4200}"));
    tampered["signature"] = serde_json::json!(header(&s.secret, now(), "POST", "/charges", body));
    assert_eq!(verify(tampered).await["code"], "signature_invalid");
    let mut bad = base.clone();
    bad["body_sha256"] = serde_json::json!("xyz");
    let r = s
        .app
        .api("POST", "/api/v1/keys/verify", Some(&service), Some(bad), IP)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// A service verifying a signed request that has a query string sends the path as it was
/// sent: the key's endpoint rules see the path alone (as on Keyward's own API), while the
/// signature covers the query too.
#[tokio::test]
async fn verify_matches_endpoint_rules_on_the_path_and_the_signature_on_the_query() {
    let s = setup_with(NewKey {
        name: "orders reader".into(),
        category: Some("admin".into()),
        require_signature: Some(true),
        endpoints: Some(vec![app::keys::EndpointRule {
            method: "GET".into(),
            path: "/orders".into(),
        }]),
        ..Default::default()
    })
    .await;
    let (_, service) = s.app.admin_key(&s.org).await;
    let verify = |path: &'static str, sig: String| {
        let body =
            serde_json::json!({"key": s.key, "method": "GET", "path": path, "signature": sig});
        let answer = s.verify_as(&service, body);
        async move { answer.await["code"].as_str().unwrap().to_string() }
    };
    let signed = |path: &str| header(&s.secret, now(), "GET", path, "");
    assert_eq!(
        verify("/orders?id=5", signed("/orders?id=5")).await,
        "valid"
    );
    // The query is signed: another one under the same signature is not.
    assert_eq!(
        verify("/orders?id=6", signed("/orders?id=5")).await,
        "signature_invalid"
    );
    // The rule is still the rule.
    assert_eq!(
        verify("/refunds?id=5", signed("/refunds?id=5")).await,
        "endpoint_not_allowed"
    );
}

#[tokio::test]
async fn one_signature_sent_many_times_at_once_passes_exactly_once() {
    let s = setup(true).await;
    let b = s.app.second_instance();
    let sig = header(&s.secret, now(), "GET", "/api/v1/me", "");
    let calls: Vec<_> = (0..16)
        .map(|i| {
            let app = if i % 2 == 0 { &s.app } else { &b };
            let headers = [("signature", sig.as_str())];
            let key = s.key.clone();
            async move {
                app.api_raw("GET", "/api/v1/me", Some(&key), None, IP, &headers)
                    .await
            }
        })
        .collect();
    let replies = join_all(calls).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "exactly one of the parallel copies passes");
    for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert_refused(r, StatusCode::UNAUTHORIZED, "signature_replayed", "copy");
    }
}

/// A signature stamped as far in the future as the tolerance allows stays fresh for twice the
/// tolerance after it is first seen; pruning at any moment of that window must not forget it.
#[tokio::test]
async fn a_replay_is_refused_for_the_whole_window_across_pruning() {
    let s = setup(true).await;
    let db = &s.app.state.db;
    let key = app::keys::ssr::verify(
        db,
        app::keys::ssr::KeyCache::of(&s.app.state).unwrap(),
        &s.app.state.config.secret,
        &s.key,
        None,
        "GET",
        "/api/v1/me",
        Default::default(),
    )
    .await
    .unwrap();
    let seen_at = app::ssr::db::now_ms();
    let t = seen_at / 1000 + signature::TOLERANCE_SECS;
    let sig = header(&s.secret, t, "GET", "/api/v1/me", "");
    let digest = signature::body_digest(b"");
    let check = |now: i64| {
        let (key, sig, digest) = (key.clone(), sig.clone(), digest.clone());
        async move {
            app::keys::ssr::check_signature_at(
                db,
                &key,
                Some(&sig),
                "GET",
                "/api/v1/me",
                &digest,
                now,
            )
            .await
        }
    };
    assert!(check(seen_at).await.is_ok(), "first use");
    // The last moment the timestamp is still within tolerance, after a prune at that moment
    // (and one a little later, as an instance with a fast clock would run it).
    let last_fresh = (t + signature::TOLERANCE_SECS) * 1000;
    for prune_at in [last_fresh, last_fresh + 30_000] {
        app::keys::ssr::prune_signatures_at(db, prune_at)
            .await
            .unwrap();
        let e = check(last_fresh).await.unwrap_err();
        assert_eq!(
            e.code.as_str(),
            "signature_replayed",
            "pruned at {prune_at}"
        );
    }
    // Past the window it is stale anyway, and may be forgotten.
    let e = check(last_fresh + 1000).await.unwrap_err();
    assert_eq!(e.code.as_str(), "signature_stale");
}

/// A key that must sign its requests makes only keys that must too: asking for an unsigned one
/// is refused (nothing written), and leaving it out inherits the requirement.
#[tokio::test]
async fn a_signing_key_makes_only_signing_keys() {
    let s = setup(true).await;
    let post = |body: String| {
        let s = &s;
        async move {
            let sig = header(&s.secret, now(), "POST", "/api/v1/keys", &body);
            s.call("POST", "/api/v1/keys", Some(&body), Some(&sig))
                .await
        }
    };
    let keys = s.app.count("api_key").await;
    let r = post(r#"{"name":"unsigned","require_signature":false}"#.into()).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("sign"), "{}", r.body);
    assert_eq!(
        s.app.count("api_key").await,
        keys,
        "the refused key was written"
    );
    let r = post(r#"{"name":"inherits"}"#.into()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.json()["require_signature"], true, "{}", r.body);
    assert_eq!(s.org, r.json()["organization_id"], "{}", r.body);
}
