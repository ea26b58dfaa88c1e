//! Import and export, the list's search/filters/sort/pages, the key page's functions and
//! personal access tokens: over REST and through the console's server functions.

mod common;

use app::keys::format;
use common::*;
use http::StatusCode;
use serde_json::json;

const IP: &str = "192.0.2.10";

async fn import(app: &TestApp, key: &str, body: &str, content_type: &str, dry_run: bool) -> Reply {
    let path = format!("/api/v1/keys/import?dry_run={dry_run}");
    let headers = [("content-type", content_type)];
    app.api_raw("POST", &path, Some(key), Some(body), IP, &headers)
        .await
}

#[tokio::test]
async fn import_previews_then_imports_each_row_on_its_own() {
    let (app, _org, admin) = with_admin_key().await;
    let legacy_plain = "sk_legacy_0123456789abcdefXYZ";
    let legacy_hashed = "pk_old_system_abcdefghijklmnop";
    let rows = json!([
        { "name": "plain from legacy", "key": legacy_plain, "category": "read_only" },
        { "name": "hashed from legacy", "key_hash": format::sha256_hex(legacy_hashed), "display_prefix": "pk_old_", "status": "disabled" },
        { "name": "from an export", "id": "key_whatever", "category": "basic", "scopes": {"keys": "write", "org": "read"}, "created_at": "2020-01-01T00:00:00Z" },
        { "name": "", "category": "basic" },
        { "name": "gone", "status": "revoked" },
        { "name": "dup", "key": legacy_plain },
        { "name": "bad hash", "key_hash": "abc" },
        { "name": "bad scope", "category": "custom", "scopes": {"nope": "read"} }
    ])
    .to_string();
    let before = app.count("api_key").await;

    let preview = import(&app, &admin, &rows, "application/json", true).await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    let p = preview.json();
    let actions: Vec<&str> = p["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "would_import",
            "would_import",
            "would_issue",
            "refused",
            "skipped",
            "refused",
            "refused",
            "refused"
        ]
    );
    assert_eq!(p["rows"][5]["code"], "conflict");
    assert_eq!(p["rows"][3]["code"], "invalid_input");
    assert_eq!(
        app.count("api_key").await,
        before,
        "a preview writes nothing"
    );

    let done = import(&app, &admin, &rows, "application/json", false).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let d = done.json();
    assert_eq!(
        (d["succeeded"].as_i64(), d["failed"].as_i64()),
        (Some(4), Some(4))
    );
    assert_eq!(app.count("api_key").await, before + 3);
    // The plaintext is not kept; the issued key is shown in its row, once.
    assert!(d["rows"][0]["key"].is_null());
    let issued = d["rows"][2]["key"].as_str().unwrap();
    assert!(format::parse(issued).is_ok());
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from api_key where key_hash = $1 or display_prefix = $1",
    )
    .bind(legacy_plain)
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(stored, 0);

    // Each imported key works (or not) as its row said.
    let me = app
        .api("GET", "/api/v1/me", Some(legacy_plain), None, IP)
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.json()["scopes"]["keys"], "read");
    let r = app
        .api("GET", "/api/v1/me", Some(legacy_hashed), None, IP)
        .await;
    assert_eq!(r.error_code(), "key_disabled");
    let r = app.api("GET", "/api/v1/me", Some(issued), None, IP).await;
    assert_eq!(r.status, StatusCode::OK);

    // The timeline says where each came from.
    let id = d["rows"][0]["id"].as_str().unwrap();
    let h = app
        .api(
            "GET",
            &format!("/api/v1/keys/{id}/history"),
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(h.json()[0]["kind"], "imported");

    // Importing the same file again: every keyed row is now a duplicate.
    let again = import(&app, &admin, &rows, "application/json", false)
        .await
        .json();
    assert_eq!(again["rows"][0]["code"], "conflict");
    assert_eq!(again["rows"][1]["code"], "conflict");
}

#[tokio::test]
async fn import_refuses_bad_files_and_stronger_keys() {
    let (app, org, admin) = with_admin_key().await;
    let before = app.count("api_key").await;
    for (body, ctype) in [
        ("not json", "application/json"),
        ("[]", "application/json"),
        ("{\"name\":\"x\"}", "application/json"),
        ("foo,bar\n1,2\n", "text/csv"),
        ("[{\"name\":\"x\"}]", "text/plain"),
    ] {
        let r = import(&app, &admin, body, ctype, false).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.error_code(), "invalid_input");
    }
    // A key that may only read cannot import (keys:write) at all…
    let (_, reader) = app
        .issue_key(
            &org,
            app::keys::NewKey {
                name: "r".into(),
                category: Some("read_only".into()),
                ..Default::default()
            },
        )
        .await;
    let r = import(
        &app,
        &reader,
        "[{\"name\":\"x\"}]",
        "application/json",
        false,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // …and a basic key cannot import an admin key: that row is refused.
    let (_, basic) = app
        .issue_key(
            &org,
            app::keys::NewKey {
                name: "b".into(),
                category: Some("basic".into()),
                ..Default::default()
            },
        )
        .await;
    let r = import(
        &app,
        &basic,
        "[{\"name\":\"x\",\"category\":\"admin\"}]",
        "application/json",
        false,
    )
    .await;
    assert_eq!(r.json()["rows"][0]["code"], "forbidden", "{}", r.body);
    assert_eq!(app.count("api_key").await, before + 2);
    // More than 64 KiB is fine for an import (up to 1 MiB)…
    let big: Vec<_> = (0..300)
        .map(|i| json!({"name": format!("k{i}"), "description": "d".repeat(300)}))
        .collect();
    let big = serde_json::to_string(&big).unwrap();
    assert!(big.len() > 64 * 1024);
    let r = import(&app, &admin, &big, "application/json", true).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        &r.body[..200.min(r.body.len())]
    );
    assert_eq!(r.json()["succeeded"], 300);
    // …but not beyond.
    let huge = format!(
        "[{}]",
        vec![format!("{{\"name\":\"{}\"}}", "n".repeat(90)); 12_000].join(",")
    );
    let r = import(&app, &admin, &huge, "application/json", true).await;
    assert_eq!(
        r.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        &r.body[..r.body.len().min(300)]
    );
}

#[tokio::test]
async fn csv_export_imports_into_another_organization() {
    let (app, _org, admin) = with_admin_key().await;
    for (name, category) in [("alpha", "basic"), ("beta, with comma", "read_only")] {
        let r = app
            .api(
                "POST",
                "/api/v1/keys",
                Some(&admin),
                Some(json!({"name": name, "category": category, "ip_allowlist": ["10.0.0.0/8"]})),
                IP,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let csv = app
        .api(
            "GET",
            "/api/v1/keys/export?format=csv",
            Some(&admin),
            None,
            IP,
        )
        .await
        .body;
    let bob = app.user("bob@example.org", None).await;
    let bob_org = app.org_of(&bob).await;
    let (_, bob_admin) = app.admin_key(&bob_org).await;
    let r = import(&app, &bob_admin, &csv, "text/csv", false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["failed"], 0, "{}", r.body);
    let list = app
        .api(
            "GET",
            "/api/v1/keys?q=with%20comma",
            Some(&bob_admin),
            None,
            IP,
        )
        .await
        .json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["data"][0]["category"], "read_only");
    assert_eq!(list["data"][0]["ip_allowlist"], json!(["10.0.0.0/8"]));
}

#[tokio::test]
async fn list_searches_filters_sorts_and_pages() {
    let (app, org, admin) = with_admin_key().await;
    let mk = |name: &str, category: &str, expires: Option<&str>| {
        let mut body = json!({"name": name, "category": category});
        if let Some(e) = expires {
            body["expires_at"] = json!(e);
        }
        body
    };
    let soon = app::keys::ssr::rfc3339(app::ssr::db::now_ms() + 3 * 86_400_000);
    let later = app::keys::ssr::rfc3339(app::ssr::db::now_ms() + 60 * 86_400_000);
    for body in [
        mk("Zulu reader", "read_only", None),
        mk("alpha deploy", "basic", Some(&soon)),
        mk("Bravo deploy", "basic", Some(&later)),
    ] {
        assert_eq!(
            app.api("POST", "/api/v1/keys", Some(&admin), Some(body), IP)
                .await
                .status,
            StatusCode::CREATED
        );
    }
    let get = |q: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let r = app
                .api("GET", &format!("/api/v1/keys?{q}"), Some(&admin), None, IP)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.body);
            let v = r.json();
            let names: Vec<String> = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["name"].as_str().unwrap().to_string())
                .collect();
            (v["total"].as_i64().unwrap(), names)
        }
    };
    // 4 keys: the admin key from setup plus three.
    assert_eq!(
        get("sort=name").await,
        (
            4,
            vec![
                "admin".into(),
                "alpha deploy".into(),
                "Bravo deploy".into(),
                "Zulu reader".into()
            ]
        )
    );
    assert_eq!(
        get("q=DEPLOY&sort=name").await.1,
        vec!["alpha deploy", "Bravo deploy"]
    );
    assert_eq!(get("q=%25").await.0, 0, "% is matched literally");
    assert_eq!(get("category=read_only").await.1, vec!["Zulu reader"]);
    assert_eq!(get("expiring_within_days=7").await.1, vec!["alpha deploy"]);
    assert_eq!(
        get("expiring_within_days=90&sort=expires_at").await.1,
        vec!["alpha deploy", "Bravo deploy"]
    );
    assert_eq!(
        get("sort=name&per_page=3&page=2").await,
        (4, vec!["Zulu reader".into()])
    );
    assert_eq!(get("owner=personal").await.0, 0);

    // Status is the effective one: disabling shows under disabled, not active.
    let zulu = app
        .api("GET", "/api/v1/keys?q=zulu", Some(&admin), None, IP)
        .await
        .json()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.api(
        "POST",
        &format!("/api/v1/keys/{zulu}/disable"),
        Some(&admin),
        None,
        IP,
    )
    .await;
    assert_eq!(get("status=disabled").await.1, vec!["Zulu reader"]);
    assert_eq!(get("status=active").await.0, 3);
    sqlx::query("update api_key set expires_at = 1 where api_key_id = $1")
        .bind(&zulu)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    sqlx::query("update api_key set status = 'active' where api_key_id = $1")
        .bind(&zulu)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    assert_eq!(get("status=expired").await.1, vec!["Zulu reader"]);

    for bad in [
        "status=weird",
        "sort=drop%20table",
        "per_page=0",
        "per_page=1000",
        "page=0",
        "expiring_within_days=0",
        "owner=x",
        "unknown=1",
    ] {
        let r = app
            .api(
                "GET",
                &format!("/api/v1/keys?{bad}"),
                Some(&admin),
                None,
                IP,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        assert_eq!(r.error_code(), "invalid_input");
    }
    let _ = org;
}

#[tokio::test]
async fn console_key_page_functions_check_the_organization() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let bob = app.user("bob@example.org", None).await;
    let (ann_org, bob_org) = (app.org_of(&ann).await, app.org_of(&bob).await);
    let (bob_key_id, _) = app.admin_key(&bob_org).await;
    let (ann_key_id, _) = app.admin_key(&ann_org).await;
    let mut b = app.signed_in("ann@example.org").await;

    // Another organization: refused before anything is read or written.
    for (f, form) in [
        (
            "get_key",
            vec![
                ("organization_id", bob_org.as_str()),
                ("key_id", bob_key_id.as_str()),
            ],
        ),
        (
            "export_keys",
            vec![("organization_id", bob_org.as_str()), ("format", "json")],
        ),
        (
            "import_keys",
            vec![
                ("organization_id", bob_org.as_str()),
                ("format", "json"),
                ("data", "[{\"name\":\"x\"}]"),
                ("dry_run", "false"),
            ],
        ),
        (
            "update_key",
            vec![
                ("organization_id", bob_org.as_str()),
                ("key_id", bob_key_id.as_str()),
                ("name", "pwned"),
                ("description", ""),
                ("category", "admin"),
                ("ip_allowlist", ""),
                ("expires_on", ""),
                ("reason", ""),
            ],
        ),
    ] {
        let r = app.rpc(&mut b, f, &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{f}: {}", r.body);
    }
    // Bob's key named under Ann's organization is not found.
    let r = app
        .rpc(
            &mut b,
            "get_key",
            &[("organization_id", &ann_org), ("key_id", &bob_key_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(app.count("api_key").await, 2);

    // Her own key: edit from the key page, and the timeline says so.
    let r = app
        .rpc(
            &mut b,
            "update_key",
            &[
                ("organization_id", &ann_org),
                ("key_id", &ann_key_id),
                ("name", "renamed"),
                ("description", "edited in the console"),
                ("category", "read_only"),
                ("ip_allowlist", "10.0.0.0/8\n192.0.2.0/24"),
                ("expires_on", "2099-12-31"),
                ("require_signature", "on"),
                ("reason", "tighten"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let k = r.json();
    assert_eq!(k["name"], "renamed");
    assert_eq!(k["category"], "read_only");
    assert_eq!(k["require_signature"], true);
    assert_eq!(k["expires_at"], "2099-12-31T23:59:59Z");
    assert_eq!(k["ip_allowlist"], json!(["10.0.0.0/8", "192.0.2.0/24"]));
    let h = app
        .rpc(
            &mut b,
            "key_history",
            &[("organization_id", &ann_org), ("key_id", &ann_key_id)],
        )
        .await
        .json();
    let last = h.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["kind"].as_str(), last["reason"].as_str()),
        (Some("edited"), Some("tighten"))
    );
    // A bad date is refused with its field, nothing changes.
    let r = app
        .rpc(
            &mut b,
            "update_key",
            &[
                ("organization_id", &ann_org),
                ("key_id", &ann_key_id),
                ("name", "again"),
                ("description", ""),
                ("category", "read_only"),
                ("ip_allowlist", ""),
                ("expires_on", "someday"),
                ("reason", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.json()["error"]["field"], "expires_at");
    let k = app
        .rpc(
            &mut b,
            "get_key",
            &[("organization_id", &ann_org), ("key_id", &ann_key_id)],
        )
        .await
        .json();
    assert_eq!(k["name"], "renamed");

    // Export from the console never holds a secret or hash; the JSON imports back (preview).
    let json_export = app
        .rpc(
            &mut b,
            "export_keys",
            &[("organization_id", &ann_org), ("format", "json")],
        )
        .await;
    assert_eq!(json_export.status, StatusCode::OK);
    let text: String = json_export.json().as_str().unwrap().to_string();
    assert!(!text.contains("key_hash") && text.contains("renamed"));
    let r = app
        .rpc(
            &mut b,
            "import_keys",
            &[
                ("organization_id", &ann_org),
                ("format", "json"),
                ("data", &text),
                ("dry_run", "true"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()[0]["action"], "would_issue");
}

#[tokio::test]
async fn a_personal_token_acts_within_its_owners_current_permissions() {
    let app = spawn().await;
    let owner = app.user("owner@example.org", None).await;
    let team: String = app.org_of(&owner).await;
    let ann = app.user("ann@example.org", None).await;
    sqlx::query("insert into membership (organization_id, user_id, role, created_at) values ($1, $2, 'admin', 0)")
        .bind(&team)
        .bind(&ann)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let mut b = app.signed_in("ann@example.org").await;
    let r = app
        .rpc(
            &mut b,
            "create_key",
            &[
                ("organization_id", team.as_str()),
                ("name", "ann's laptop"),
                ("environment", "live"),
                ("category", "basic"),
                ("ip_allowlist", ""),
                ("expires_in_days", ""),
                ("personal", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let pat = r.json();
    assert_eq!(pat["owner_user_id"], ann.as_str());
    let secret = pat["key"].as_str().unwrap().to_string();
    let list = app
        .rpc(
            &mut b,
            "list_keys",
            &[
                ("organization_id", team.as_str()),
                ("query[owner]", "personal"),
            ],
        )
        .await;
    assert_eq!(list.json()["total"], 1, "{}", list.body);

    let body = json!({"name": "made by the token"});
    let r = app
        .api(
            "POST",
            "/api/v1/keys",
            Some(&secret),
            Some(body.clone()),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Ann is made a viewer: her token loses write at once, though its scopes still say write.
    sqlx::query(
        "update membership set role = 'viewer' where organization_id = $1 and user_id = $2",
    )
    .bind(&team)
    .bind(&ann)
    .execute(&app.state.db.writer)
    .await
    .unwrap();
    let r = app
        .api("POST", "/api/v1/keys", Some(&secret), Some(body), IP)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(
        r.json()["error"]["message"],
        "missing permission: keys:write"
    );
    // Removed from the organization: the token stops.
    sqlx::query("delete from membership where organization_id = $1 and user_id = $2")
        .bind(&team)
        .bind(&ann)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let r = app.api("GET", "/api/v1/me", Some(&secret), None, IP).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.error_code(), "key_disabled");
}

/// A row the database fails to write (here: it refuses the row's timeline entry) stops the
/// import there, on both backends: the rows issued before it are answered with their one-time
/// secrets (a 500 would have lost the secrets of keys already committed), the failed row is
/// refused, and the rows after it are refused as not attempted (a database that is down is not
/// waited on once per row). Failing before any row was written, the import is a plain 500.
#[tokio::test]
async fn a_row_the_database_refuses_does_not_lose_the_secrets_of_the_others() {
    let (app, _org, admin) = with_admin_key().await;
    refuse_rows(
        &app,
        "refuse_second_row",
        "insert on api_key_event",
        r#"new.detail like '%"row":2%'"#,
        None,
    )
    .await;
    let before = app.count("api_key").await;
    let rows = json!([{"name": "first"}, {"name": "second"}, {"name": "third"}]).to_string();
    let r = import(&app, &admin, &rows, "application/json", false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let rows = r.json()["rows"].clone();
    let actions: Vec<&str> = (0..3)
        .map(|i| rows[i]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["issued", "refused", "refused"], "{rows}");
    assert_eq!(rows[1]["code"], "internal");
    assert_eq!(rows[2]["code"], "unavailable");
    assert!(rows[2]["message"]
        .as_str()
        .unwrap()
        .contains("not attempted"));
    assert!(rows[1]["key"].is_null() && rows[2]["key"].is_null());
    assert_eq!(
        app.count("api_key").await,
        before + 1,
        "a refused row's key was kept"
    );
    let key = rows[0]["key"].as_str().expect("the issued key's secret");
    let r = app.api("GET", "/api/v1/me", Some(key), None, IP).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // The first row refused for its own fault, the second failing: nothing was written.
    let rows = json!([{"name": ""}, {"name": "second"}]).to_string();
    let r = import(&app, &admin, &rows, "application/json", false).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.body);
    assert_eq!(app.count("api_key").await, before + 1);
}

async fn key_of(app: &TestApp, b: &mut Browser, org: &str, id: &str) -> serde_json::Value {
    app.rpc(b, "get_key", &[("organization_id", org), ("key_id", id)])
        .await
        .json()
}

/// Saving the key page's form unchanged but for the name keeps the key's exact expiry and
/// access (the form shows the expiry's day; sending it back is no change); a new day is.
#[tokio::test]
async fn saving_the_key_page_keeps_what_the_form_did_not_change() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let (id, _) = app
        .issue_key(
            &org,
            app::keys::NewKey {
                name: "dated".into(),
                ip_allowlist: Some(vec!["10.0.0.0/8".into()]),
                expires_at: Some("2099-06-01T12:00:00Z".into()),
                ..Default::default()
            },
        )
        .await;
    let mut b = app.signed_in("ann@example.org").await;
    let before = key_of(&app, &mut b, &org, &id).await;
    let save = |day: &'static str, name: &'static str| {
        vec![
            ("organization_id", org.clone()),
            ("key_id", id.clone()),
            ("name", name.to_string()),
            ("description", String::new()),
            ("category", before["category"].as_str().unwrap().to_string()),
            ("ip_allowlist", "10.0.0.0/8".to_string()),
            ("expires_on", day.to_string()),
            ("reason", String::new()),
        ]
    };
    let form = save("2099-06-01", "renamed");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = app.rpc(&mut b, "update_key", &pairs).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let after = key_of(&app, &mut b, &org, &id).await;
    assert_eq!(after["name"], "renamed");
    assert_eq!(
        after["expires_at"], before["expires_at"],
        "a rename moved the expiry"
    );
    assert_eq!(after["ip_allowlist"], json!(["10.0.0.0/8"]));

    let form = save("2099-06-02", "renamed");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = app.rpc(&mut b, "update_key", &pairs).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let moved = key_of(&app, &mut b, &org, &id).await;
    assert!(
        moved["expires_at"]
            .as_str()
            .unwrap()
            .starts_with("2099-06-02T23:59:59"),
        "{moved}"
    );
    // The timeline names what changed, not what the form sent; saving it as it is records
    // nothing.
    let r = app.rpc(&mut b, "update_key", &pairs).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let edits: Vec<String> = sqlx::query_scalar(
        "select detail from api_key_event where api_key_id = $1 and kind = 'edited'",
    )
    .bind(&id)
    .fetch_all(&app.state.db.reader)
    .await
    .unwrap();
    let mut edits: Vec<String> = edits
        .iter()
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap()["changed"].to_string())
        .collect();
    edits.sort();
    assert_eq!(edits, [r#"["expires_at"]"#, r#"["name"]"#]);

    // A new address and the signature box are changes of their own, and only they.
    let mut form = save("2099-06-02", "renamed");
    form[5].1 = "10.0.0.0/8\n192.168.0.0/16".to_string();
    form.push(("require_signature", "on".to_string()));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = app.rpc(&mut b, "update_key", &pairs).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let after = key_of(&app, &mut b, &org, &id).await;
    assert_eq!(
        after["ip_allowlist"],
        json!(["10.0.0.0/8", "192.168.0.0/16"])
    );
    assert_eq!(after["require_signature"], true);
    assert_eq!(after["expires_at"], moved["expires_at"]);
    let last: String = sqlx::query_scalar(
        "select detail from api_key_event where api_key_id = $1 and kind = 'edited' and detail like '%ip_allowlist%'",
    )
    .bind(&id)
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&last).unwrap()["changed"],
        json!(["ip_allowlist", "require_signature"])
    );

    // A form loaded before someone else tightened the key is refused, not saved over it.
    let loaded = key_of(&app, &mut b, &org, &id).await;
    sqlx::query(
        "update api_key set ip_allowlist = '[\"172.16.0.0/12\"]', updated_at = updated_at + 1 where api_key_id = $1",
    )
    .bind(&id)
    .execute(&app.state.db.writer)
    .await
    .unwrap();
    let mut form = save("2099-06-02", "renamed again");
    form[5].1 = loaded["ip_allowlist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    form.push(("require_signature", "on".to_string()));
    form.push((
        "version",
        loaded["updated_at"].as_str().unwrap().to_string(),
    ));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = app.rpc(&mut b, "update_key", &pairs).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.json()["error"]["field"], "version", "{}", r.body);
    let after = key_of(&app, &mut b, &org, &id).await;
    assert_eq!(after["ip_allowlist"], json!(["172.16.0.0/12"]));
    assert_eq!(after["name"], "renamed");
    // Reloaded, the same save goes through.
    let form: Vec<(&str, String)> = form
        .into_iter()
        .map(|(k, v)| match k {
            "version" => (k, after["updated_at"].as_str().unwrap().to_string()),
            "ip_allowlist" => (k, "172.16.0.0/12".to_string()),
            _ => (k, v),
        })
        .collect();
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = app.rpc(&mut b, "update_key", &pairs).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["name"], "renamed again");
}
