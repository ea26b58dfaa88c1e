//! The security scan: endpoints with their permission, risky keys (no expiry, no allow-list,
//! unused, wider than used) with the one-click narrowing, administrators without 2FA, and
//! configuration risks; the organization's view and the instance's. Runs on SQLite, and on
//! PostgreSQL when `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use app::access::ssr::SYSTEM_ORG_ID;
use app::access::Role;
use app::security::{KeyIssue, Severity};
use common::*;
use http::StatusCode;

/// The report `b` gets for `org` (asserting it is given).
async fn report_of(app: &TestApp, b: &mut Browser, org: &str) -> app::security::SecurityReport {
    let r = app
        .rpc(b, "security_scan", &[("organization_id", org)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    serde_json::from_value(r.json()).unwrap()
}

#[tokio::test]
async fn the_scan_finds_risky_keys_and_narrows_one_to_what_it_used() {
    let app = spawn().await;
    let owner = app.user("owner@example.org", None).await;
    let org = app.org_of(&owner).await;
    let viewer = app.user("viewer@example.org", None).await;
    app.add_member(&org, &viewer, "viewer").await;
    let (key_id, key) = app.admin_key(&org).await;
    // The key reads keys twice and writes nothing; a refused call does not count as use.
    for _ in 0..2 {
        let r = app
            .api("GET", "/api/v1/keys", Some(&key), None, "192.0.2.9")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = app
        .api("GET", "/api/v1/users", Some(&key), None, "192.0.2.9")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    app.wait_for_log_rows(3).await;

    let mut b = app.signed_in("owner@example.org").await;
    let report = report_of(&app, &mut b, &org).await;
    assert!(!report.instance, "an organization's report");
    assert!(report.config.is_empty() && report.endpoints.is_empty());
    assert_eq!(report.admins_without_two_factor.len(), 1, "{report:?}");
    assert_eq!(
        report.admins_without_two_factor[0].email,
        "owner@example.org"
    );
    let finding = report.keys.iter().find(|k| k.key_id == key_id).unwrap();
    assert_eq!(
        finding.issues,
        [
            KeyIssue::NoExpiry,
            KeyIssue::NoIpAllowlist,
            KeyIssue::WiderThanUsed
        ]
    );
    let used = finding.used.clone().unwrap();
    assert_eq!(
        serde_json::to_value(&used).unwrap(),
        serde_json::json!({ "keys": "read" })
    );

    // A viewer may not narrow (keys:write); nothing changes.
    let mut v = app.signed_in("viewer@example.org").await;
    let r = app
        .rpc(
            &mut v,
            "narrow_key_scopes",
            &[("organization_id", &org), ("key_id", &key_id)],
        )
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "a viewer");
    // The owner narrows it: the key now holds what it used, and the change is audited.
    let r = app
        .rpc(
            &mut b,
            "narrow_key_scopes",
            &[("organization_id", &org), ("key_id", &key_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["scopes"], serde_json::json!({ "keys": "read" }));
    assert_eq!(r.json()["category"], "custom");
    let r = app
        .api(
            "POST",
            "/api/v1/keys",
            Some(&key),
            Some(serde_json::json!({"name": "x"})),
            "192.0.2.9",
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the narrowed key writes no more: {}",
        r.body
    );
    let r = app
        .api("GET", "/api/v1/keys", Some(&key), None, "192.0.2.9")
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "what it used still works: {}",
        r.body
    );
    let edited: i64 = sqlx::query_scalar(
        "select count(*) from domain_event where kind = 'key.edited' and subject_id = $1",
    )
    .bind(&key_id)
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(edited, 1);
    // Twice: nothing more to take away.
    let r = app
        .rpc(
            &mut b,
            "narrow_key_scopes",
            &[("organization_id", &org), ("key_id", &key_id)],
        )
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "already narrow");

    // A key that was never used is flagged, and not narrowed (there is nothing to narrow to).
    let (idle, _) = app.admin_key(&org).await;
    sqlx::query("update api_key set created_at = $1 where api_key_id = $2")
        .bind(app::ssr::db::now_ms() - 31 * 86_400_000)
        .bind(&idle)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let report = app::security::ssr::scan(
        &app.state.db,
        &app.state.config,
        &keyward_server::boot::route_catalog(),
        &app::usage::stats::Reader::new(&org, "usr_viewer"),
        app::security::ssr::Sections::ALL,
        app::ssr::db::now_ms(),
    )
    .await
    .unwrap();
    let finding = report.keys.iter().find(|k| k.key_id == idle).unwrap();
    assert!(
        finding.issues.contains(&KeyIssue::Unused30Days),
        "{finding:?}"
    );
    assert!(!finding.issues.contains(&KeyIssue::WiderThanUsed));
    let r = app
        .rpc(
            &mut b,
            "narrow_key_scopes",
            &[("organization_id", &org), ("key_id", &idle)],
        )
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "an unused key");

    // Refused calls prove no use, so narrowing never widens: a key that reads usage and was
    // refused writing keys (permission, then rate limit) is narrowed to reading usage only.
    let (scoped_id, scoped) = app
        .scoped_key(&org, serde_json::json!({ "usage": "read", "org": "read" }))
        .await;
    let logged = app.count("request_log").await;
    let r = app
        .api(
            "GET",
            "/api/v1/usage?range=1h",
            Some(&scoped),
            None,
            "192.0.2.9",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for _ in 0..3 {
        let r = app
            .api(
                "POST",
                "/api/v1/keys",
                Some(&scoped),
                Some(serde_json::json!({"name": "x"})),
                "192.0.2.9",
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
    app.wait_for_log_rows(logged + 4).await;
    let r = app
        .rpc(
            &mut b,
            "narrow_key_scopes",
            &[("organization_id", &org), ("key_id", &scoped_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["scopes"], serde_json::json!({ "usage": "read" }));

    // A member without audit:read gets no report.
    let r = app
        .rpc(&mut v, "security_scan", &[("organization_id", &org)])
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "no audit:read");
}

/// An instance key is narrowed from its own organization's rows (the request log's one index
/// is organization and time): what it used is found.
#[tokio::test]
async fn an_instance_key_is_narrowed_to_what_it_used() {
    let app = spawn().await;
    app.user("root@example.org", Some(Role::Owner)).await;
    let (key_id, key) = app.admin_key(SYSTEM_ORG_ID).await;
    let r = app
        .api("GET", "/api/v1/keys", Some(&key), None, "192.0.2.9")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.wait_for_log_rows(1).await;
    let mut b = app.signed_in("root@example.org").await;
    let r = app
        .rpc(
            &mut b,
            "narrow_key_scopes",
            &[("organization_id", SYSTEM_ORG_ID), ("key_id", &key_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["scopes"], serde_json::json!({ "keys": "read" }));
}

#[tokio::test]
async fn the_instance_report_lists_every_endpoint_and_the_configuration_risks() {
    let app = spawn_with(|c| {
        c.public_origin = url::Url::parse("http://keys.example.com").unwrap();
        c.signup_open = true;
    })
    .await;
    app.user("root@example.org", Some(Role::Owner)).await;
    let mut b = app.signed_in("root@example.org").await;
    let report = report_of(&app, &mut b, SYSTEM_ORG_ID).await;
    assert!(report.instance);
    // Instance owners without a second factor, and (below) every organization's.
    let named: Vec<(&str, &str)> = report
        .admins_without_two_factor
        .iter()
        .map(|a| (a.email.as_str(), a.organization_id.as_str()))
        .collect();
    assert_eq!(named, [("root@example.org", SYSTEM_ORG_ID)]);
    let codes: Vec<&str> = report.config.iter().map(|c| c.code.as_str()).collect();
    assert!(codes.contains(&"plain_http"), "{codes:?}");
    assert!(codes.contains(&"signup_open"), "{codes:?}");
    assert_eq!(report.worst(), Some(Severity::High));
    // Every REST route and server function is listed with what it requires; those that require
    // no permission are exactly the public and self-service ones.
    let rest = keyward_server::rest::routes().len();
    let fns = app::access::policy::SERVER_FNS.len();
    assert_eq!(report.endpoints.len(), rest + fns);
    let find = |name: &str| report.endpoints.iter().find(|e| e.name == name).unwrap();
    assert_eq!(find("GET /api/v1/keys").requires, "keys:read");
    assert!(!find("GET /api/v1/keys").no_permission);
    assert_eq!(find("create_key").requires, "keys:write");
    assert!(find("sign_in").no_permission);
    assert!(find("GET /healthz").no_permission);
    for e in report.endpoints.iter().filter(|e| e.no_permission) {
        assert!(
            [
                "public",
                "signed in (own data)",
                "operator (metrics networks or token)"
            ]
            .contains(&e.requires.as_str()),
            "{e:?}"
        );
    }

    // Only holders of audit:read see a report; another organization's is refused.
    let ann = app.user("ann@example.org", None).await;
    let ann_org = app.org_of(&ann).await;

    // The instance's report names every organization's administrators without a second
    // factor: a team's admin, and a member made admin of someone's personal organization;
    // not each user as the owner of their own personal organization, nor a viewer.
    sqlx::query(
        "insert into organization (organization_id, name, slug, kind, created_at) values ('org_acme', 'Acme', 'acme', 'team', 0)",
    )
    .execute(&app.state.db.writer)
    .await
    .unwrap();
    let bob = app.user("bob@example.org", None).await;
    let cy = app.user("cy@example.org", None).await;
    app.add_member("org_acme", &bob, "admin").await;
    app.add_member("org_acme", &cy, "viewer").await;
    app.add_member(&ann_org, &cy, "admin").await;
    let report = report_of(&app, &mut b, SYSTEM_ORG_ID).await;
    let named: Vec<(&str, &str, &str)> = report
        .admins_without_two_factor
        .iter()
        .map(|a| (a.email.as_str(), a.role.as_str(), a.organization.as_str()))
        .collect();
    let ann_org_name: String =
        sqlx::query_scalar("select name from organization where organization_id = $1")
            .bind(&ann_org)
            .fetch_one(&app.state.db.reader)
            .await
            .unwrap();
    let system_name: String =
        sqlx::query_scalar("select name from organization where organization_id = $1")
            .bind(SYSTEM_ORG_ID)
            .fetch_one(&app.state.db.reader)
            .await
            .unwrap();
    assert_eq!(
        named,
        [
            ("bob@example.org", "admin", "Acme"),
            ("cy@example.org", "admin", ann_org_name.as_str()),
            ("root@example.org", "owner", system_name.as_str()),
        ]
    );
    // That list is the instance's users: an auditor of the system organization (audit:read
    // and a viewer's members:read, no users:read) gets the report without it.
    let form = |pairs: &[(&str, &str)]| {
        let mut all = vec![("organization_id", SYSTEM_ORG_ID)];
        all.extend_from_slice(pairs);
        all.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let call = |b: &mut Browser, endpoint: &'static str, pairs: Vec<(String, String)>| {
        let app = &app;
        let mut b = b.clone();
        async move {
            let pairs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            app.rpc(&mut b, endpoint, &pairs).await
        }
    };
    let r = call(
        &mut b,
        "create_role",
        form(&[("name", "auditor"), ("parents[0]", "viewer")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let auditor = r.json()["id"].as_str().unwrap().to_string();
    let r = call(
        &mut b,
        "set_role_permission",
        form(&[
            ("role_id", &auditor),
            ("permission", "audit:read"),
            ("granted", "true"),
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let dee = app.user("dee@example.org", Some(Role::Viewer)).await;
    let r = call(
        &mut b,
        "assign_role",
        form(&[
            ("role_id", &auditor),
            ("user_ids[0]", &dee),
            ("assign", "true"),
        ]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Every organization's keys likewise: the auditor (keys:read, no users:read) gets the
    // system organization's keys only; the owner, every organization's.
    let (system_key, _) = app.admin_key(SYSTEM_ORG_ID).await;
    let (ann_key, _) = app.admin_key(&ann_org).await;
    let mut d = app.signed_in("dee@example.org").await;
    let report = report_of(&app, &mut d, SYSTEM_ORG_ID).await;
    assert!(report.instance && !report.endpoints.is_empty());
    assert!(report.admins_without_two_factor.is_empty(), "{report:?}");
    let listed = |report: &app::security::SecurityReport| -> Vec<String> {
        report.keys.iter().map(|k| k.key_id.clone()).collect()
    };
    assert!(listed(&report).contains(&system_key), "{report:?}");
    assert!(
        report
            .keys
            .iter()
            .all(|k| k.organization_id == SYSTEM_ORG_ID),
        "{report:?}"
    );
    let everything = report_of(&app, &mut b, SYSTEM_ORG_ID).await;
    assert!(listed(&everything).contains(&system_key));
    assert!(listed(&everything).contains(&ann_key), "{everything:?}");
    let r = app
        .rpc(&mut b, "security_scan", &[("organization_id", &ann_org)])
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "another organization",
    );
    let mut a = app.signed_in("ann@example.org").await;
    let r = app
        .rpc(
            &mut a,
            "security_scan",
            &[("organization_id", SYSTEM_ORG_ID)],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "not an instance admin",
    );

    // A secret file others can read is named.
    let dir = std::env::temp_dir().join(format!("keyward-scan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("keyward.secret");
    std::fs::write(&file, "x".repeat(40)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut config = (*app.state.config).clone();
    config.secret_file = Some(file.clone());
    let risks = app::security::ssr::config_risks(&config);
    assert!(
        risks.iter().any(|c| c.code == "secret_file_mode"),
        "{risks:?}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let risks = app::security::ssr::config_risks(&config);
    assert!(
        !risks.iter().any(|c| c.code == "secret_file_mode"),
        "{risks:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
