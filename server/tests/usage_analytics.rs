//! Usage analytics: the errors report, a key's use of its limit, the streamed export (REST
//! and console) and the per-organization totals of instance admins. Runs on SQLite, and on
//! PostgreSQL when `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;

const IP: &str = "192.0.2.30";

#[tokio::test]
async fn the_errors_report_has_the_rate_codes_failing_routes_and_messages() {
    let (app, _org, admin) = with_admin_key().await;
    for _ in 0..2 {
        let r = app.api("GET", "/api/v1/me", Some(&admin), None, IP).await;
        assert_eq!(r.status, 200);
    }
    let missing = app
        .api(
            "GET",
            "/api/v1/keys/key_unknown0000000000000",
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(missing.status, 404);
    let message = missing.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    // Apart in time: the log orders by arrival (ms), then by request id.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = app
        .api(
            "GET",
            "/api/v1/keys/key_unknown0000000000001",
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, 404);
    let newest_id = r.headers["x-request-id"].to_str().unwrap().to_string();
    app.wait_for_log_rows(4).await;

    let r = app
        .api(
            "GET",
            "/api/v1/usage/errors?range=1h",
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (v["requests"].as_i64(), v["errors"].as_i64()),
        (Some(4), Some(2))
    );
    let rates = v["error_rate"].as_array().unwrap();
    assert_eq!(rates.len(), 60, "one rate per bucket");
    // Each bucket's rate is its failed share of its own requests (the four requests may
    // straddle a minute).
    let s = &v["series"];
    let at = |name: &str, i: usize| s[name][i].as_i64().unwrap();
    for (i, rate) in rates.iter().enumerate() {
        let failed = at("client_errors", i) + at("rate_limited", i) + at("server_errors", i);
        let all = failed + at("ok", i);
        let expected = if all == 0 {
            0.0
        } else {
            (failed as f64 * 1000.0 / all as f64).round() / 10.0
        };
        assert_eq!(rate.as_f64().unwrap(), expected, "bucket {i}");
    }
    assert_eq!(s["total"], json!(4));
    assert_eq!(v["top_codes"].as_array().unwrap().len(), 1);
    assert_eq!(v["top_codes"][0]["name"], json!("not_found"));
    assert_eq!(v["top_codes"][0]["requests"], json!(2));
    assert_eq!(v["top_routes"][0]["name"], json!("/api/v1/keys/{id}"));
    assert_eq!(
        v["top_routes"].as_array().unwrap().len(),
        1,
        "only failing routes"
    );
    let recent = v["recent"].as_array().unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0]["request_id"], json!(newest_id), "newest first");
    assert_eq!(
        recent[0]["message"],
        json!(message),
        "the message the client saw"
    );

    // Another organization's key sees none of it.
    let bob = app.user("bob@example.org", None).await;
    let (_, bob_key) = app.admin_key(&app.org_of(&bob).await).await;
    let r = app
        .api(
            "GET",
            "/api/v1/usage/errors?range=1h",
            Some(&bob_key),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, 200);
    let theirs = r.json();
    assert_eq!(theirs["errors"], json!(0));
    assert_eq!(theirs["recent"], json!([]));
    assert_eq!(theirs["top_codes"], json!([]));
    // Bad input is refused, naming the field: a range not offered, a filter too long.
    let long = "k".repeat(201);
    for (query, field) in [
        ("range=5m".to_string(), "range"),
        (format!("range=1h&key_id={long}"), "key_id"),
        (format!("range=1h&route={long}"), "route"),
    ] {
        let r = app
            .api(
                "GET",
                &format!("/api/v1/usage/errors?{query}"),
                Some(&admin),
                None,
                IP,
            )
            .await;
        assert_refused(&r, http::StatusCode::BAD_REQUEST, "invalid_input", field);
        assert!(r.body.contains(field), "{}", r.body);
    }
}

/// Reads of the raw log (error codes, percentiles, latest errors over up to 30 days) take
/// turns: while every turn is taken, a report waits for one, and the rest of the API (key
/// lookups, sessions, the log's own writes) does not wait with it.
#[tokio::test]
async fn raw_log_reports_take_turns_and_the_api_does_not_wait_for_them() {
    use app::usage::stats::{RawReaders, RAW_READERS};
    let (app, _org, admin) = with_admin_key().await;
    let turns = app.state.db.caches.get::<RawReaders>().instance.clone();
    let taken = turns
        .clone()
        .acquire_many_owned(RAW_READERS as u32)
        .await
        .unwrap();
    let report = app.api(
        "GET",
        "/api/v1/usage/errors?range=30d",
        Some(&admin),
        None,
        IP,
    );
    tokio::pin!(report);
    assert!(
        tokio::time::timeout(Duration::from_millis(1_000), &mut report)
            .await
            .is_err(),
        "the report waits for a turn"
    );
    let r = app.api("GET", "/api/v1/me", Some(&admin), None, IP).await;
    assert_eq!(r.status, 200, "{}", r.body);
    drop(taken);
    let r = report.await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        turns.available_permits(),
        RAW_READERS,
        "the turn is given back"
    );
}

/// Chart reads of the per-minute rollup take turns too: with every turn held, a chart waits
/// (a tenant cannot hold every reader connection with parallel 30-day charts) while keys are
/// still verified; given back, it is served. One organization holds two turns at most.
#[tokio::test]
async fn rollup_reads_take_turns_and_the_api_does_not_wait_for_them() {
    use app::usage::stats::{rollup_turn, Reader, RollupReaders, ROLLUP_READERS};
    let (app, org, admin) = with_admin_key().await;
    let turns = app.state.db.caches.get::<RollupReaders>().instance.clone();
    let taken = turns
        .clone()
        .acquire_many_owned(ROLLUP_READERS as u32)
        .await
        .unwrap();
    let chart = app.api("GET", "/api/v1/usage?range=30d", Some(&admin), None, IP);
    tokio::pin!(chart);
    assert!(
        tokio::time::timeout(Duration::from_millis(1_000), &mut chart)
            .await
            .is_err(),
        "the chart waits for a turn"
    );
    let r = app.api("GET", "/api/v1/me", Some(&admin), None, IP).await;
    assert_eq!(r.status, 200, "{}", r.body);
    drop(taken);
    let r = chart.await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        turns.available_permits(),
        ROLLUP_READERS,
        "turns given back"
    );

    // The organization's own share: two held, its third read waits while the instance has
    // turns to spare.
    let db = &app.state.db;
    // (Three people: one person's own share is the same size.)
    let (a, b) = (
        rollup_turn(db, &Reader::new(&org, "usr_a")).await.unwrap(),
        rollup_turn(db, &Reader::new(&org, "usr_b")).await.unwrap(),
    );
    let carl = Reader::new(&org, "usr_c");
    let third = rollup_turn(db, &carl);
    tokio::pin!(third);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut third)
            .await
            .is_err(),
        "a third turn of one organization waits"
    );
    assert_eq!(turns.available_permits(), ROLLUP_READERS - 2);
    drop(a);
    let c = third.await.unwrap();
    drop((b, c));
    assert_eq!(turns.available_permits(), ROLLUP_READERS);
}

/// One organization holds one of the instance's raw-log turns at most: while one of its
/// reports reads, its next one waits, and another organization's report is served at once.
#[tokio::test]
async fn one_organization_cannot_take_every_raw_log_turn() {
    use app::usage::stats::{raw_turn, RawReaders, Reader, RAW_READERS};
    let (app, _org, admin) = with_admin_key().await;
    let db = &app.state.db;
    let readers = db.caches.get::<RawReaders>();
    // Two of its members (one person's reports wait for that person's own turn anyway).
    let (ann, bob) = (
        Reader::new("org_busy_tenant", "usr_ann"),
        Reader::new("org_busy_tenant", "usr_bob"),
    );
    let held = raw_turn(db, &ann).await.unwrap();
    let next = raw_turn(db, &bob);
    tokio::pin!(next);
    assert!(
        tokio::time::timeout(Duration::from_millis(1_000), &mut next)
            .await
            .is_err(),
        "the organization's second report waits for its own turn"
    );
    assert_eq!(readers.instance.available_permits(), RAW_READERS - 1);
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        app.api(
            "GET",
            "/api/v1/usage/errors?range=30d",
            Some(&admin),
            None,
            IP,
        ),
    )
    .await
    .expect("another organization's report does not wait");
    assert_eq!(r.status, 200, "{}", r.body);
    drop(held);
    let turn = tokio::time::timeout(Duration::from_secs(5), next)
        .await
        .expect("the turn passes to the waiting report")
        .unwrap();
    assert_eq!(readers.instance.available_permits(), RAW_READERS - 1);
    drop(turn);
    assert_eq!(readers.instance.available_permits(), RAW_READERS);
    assert_eq!(
        readers.organizations(),
        0,
        "idle organizations are forgotten"
    );

    // A report that stops waiting (its request cancelled) after the holder gave the turn back
    // leaves nothing behind either.
    let held = raw_turn(db, &ann).await.unwrap();
    let mut waiting = Box::pin(raw_turn(db, &bob));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut waiting)
            .await
            .is_err(),
        "it waits"
    );
    drop(held);
    assert_eq!(readers.organizations(), 1, "the waiting report keeps it");
    drop(waiting);
    assert_eq!(readers.organizations(), 0, "a cancelled wait is forgotten");
    assert_eq!(readers.instance.available_permits(), RAW_READERS);
}

/// The instance's own reports have a turn kept for them: tenants holding every shared turn
/// make other tenants wait, not the system organization; the kept turn is never a tenant's.
#[tokio::test]
async fn the_system_organization_has_a_raw_log_turn_of_its_own() {
    use app::access::ssr::SYSTEM_ORG_ID;
    use app::usage::stats::{raw_turn, RawReaders, Reader, RAW_READERS, RAW_READERS_RESERVED};
    let (app, ..) = with_admin_key().await;
    let db = &app.state.db;
    let (operator, tenant) = (
        Reader::new(SYSTEM_ORG_ID, "usr_operator"),
        Reader::new("org_another_tenant", "usr_tenant"),
    );
    let readers = db.caches.get::<RawReaders>();
    // The system organization takes its own turn first, leaving the shared ones to tenants.
    let turn = raw_turn(db, &operator).await.unwrap();
    assert_eq!(readers.instance.available_permits(), RAW_READERS);
    assert_eq!(readers.reserved.available_permits(), 0);
    drop(turn);
    assert_eq!(readers.reserved.available_permits(), RAW_READERS_RESERVED);

    let tenants = readers
        .instance
        .clone()
        .acquire_many_owned(RAW_READERS as u32)
        .await
        .unwrap();
    let tenant = raw_turn(db, &tenant);
    tokio::pin!(tenant);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut tenant)
            .await
            .is_err(),
        "another tenant waits for a shared turn"
    );
    let system = tokio::time::timeout(Duration::from_secs(5), raw_turn(db, &operator))
        .await
        .expect("the system organization does not wait behind tenants")
        .unwrap();
    assert_eq!(readers.reserved.available_permits(), 0);
    drop(system);
    assert_eq!(
        readers.reserved.available_permits(),
        RAW_READERS_RESERVED,
        "the kept turn is given back"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut tenant)
            .await
            .is_err(),
        "the kept turn does not go to a tenant"
    );
    drop(tenants);
    let turn = tokio::time::timeout(Duration::from_secs(5), tenant)
        .await
        .expect("the tenant is served once a shared turn is free")
        .unwrap();
    assert_eq!(readers.reserved.available_permits(), RAW_READERS_RESERVED);
    drop(turn);
}

#[tokio::test]
async fn a_key_s_usage_is_what_it_used_of_the_limit_in_force() {
    let (app, org, admin) = with_admin_key().await;
    let (key_id, key) = app.scoped_key(&org, json!({"keys": "read"})).await;
    app.limit_key(IP, &admin, &key_id, 10, 3600).await;
    // Two requests: the first leases 3 tokens (a quarter of 10, rounded up), so one is
    // leased but unspent and must not count as used.
    for _ in 0..2 {
        assert_eq!(
            app.api("GET", "/api/v1/me", Some(&key), None, IP)
                .await
                .status,
            200
        );
    }
    app.wait_for_log_rows(3).await;
    let r = app
        .api(
            "GET",
            &format!("/api/v1/keys/{key_id}/usage"),
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["limit"], json!(10));
    assert_eq!(v["window_seconds"], json!(3600));
    assert_eq!(v["used"], json!(2), "{v}");
    assert_eq!(v["remaining"], json!(8));
    // The oldest bucket counts in full until it leaves the window: at most the window plus one
    // bucket (1/60 of it) away.
    assert!(
        (1..=3660).contains(&v["reset_seconds"].as_i64().unwrap()),
        "{v}"
    );
    assert_eq!(v["requests_24h"], json!(2));
    assert_eq!(v["errors_24h"], json!(0));
    // Lowered below what was used: the real count shows, over the limit, and the leased but
    // unspent token still does not count.
    app.limit_key(IP, &admin, &key_id, 1, 3600).await;
    let r = app
        .api(
            "GET",
            &format!("/api/v1/keys/{key_id}/usage"),
            Some(&admin),
            None,
            IP,
        )
        .await;
    let v = r.json();
    assert_eq!(
        (
            v["limit"].as_i64(),
            v["used"].as_i64(),
            v["remaining"].as_i64()
        ),
        (Some(1), Some(2), Some(0)),
        "{v}"
    );
    app.limit_key(IP, &admin, &key_id, 10, 3600).await;
    // The same through the console, for a member of the organization.
    let ann_browser = &mut app.signed_in("ann@example.org").await;
    let r = app
        .rpc(
            ann_browser,
            "key_usage",
            &[("organization_id", &org), ("key_id", &key_id)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["used"], json!(2));

    // Another organization: its key gets 404 for our key; its member 403 for our organization
    // and 404 for our key under theirs.
    let bob = app.user("bob@example.org", None).await;
    let bob_org = app.org_of(&bob).await;
    let (_, bob_key) = app.admin_key(&bob_org).await;
    let r = app
        .api(
            "GET",
            &format!("/api/v1/keys/{key_id}/usage"),
            Some(&bob_key),
            None,
            IP,
        )
        .await;
    assert_refused(&r, http::StatusCode::NOT_FOUND, "not_found", "foreign key");
    let bob_browser = &mut app.signed_in("bob@example.org").await;
    let r = app
        .rpc(
            bob_browser,
            "key_usage",
            &[("organization_id", &org), ("key_id", &key_id)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = app
        .rpc(
            bob_browser,
            "key_usage",
            &[("organization_id", &bob_org), ("key_id", &key_id)],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
}

#[tokio::test]
async fn the_export_streams_every_rollup_row_with_the_count_first() {
    let (app, org, admin) = with_admin_key().await;
    let db = &app.state.db;
    let now = app::ssr::db::now_ms();
    let minute = now - now.rem_euclid(60_000);
    // 50 keys × 50 minutes = 2 500 rollup rows (more than one page of the export), two
    // requests each (one 2xx, one 5xx: a second row per key and minute).
    let mut rows = Vec::new();
    for k in 0..50 {
        for m in 1..=50 {
            let at = minute - m * 60_000 + 1;
            rows.push(log_entry(
                at,
                &org,
                &format!("seed_{k:02}"),
                "/api/v1/me",
                200,
            ));
            if k == 0 {
                rows.push(log_entry(at, &org, "seed_00", "/api/v1/me", 503));
            }
        }
    }
    rows.push(log_entry(
        minute - 60_000,
        "org_other",
        "key_x",
        "/api/v1/me",
        200,
    ));
    app::usage::log::write_batch(db, &rows).await.unwrap();
    let expected_rows = 50 * 50 + 50;

    let r = app
        .api(
            "GET",
            "/api/v1/usage/export?range=1h&format=csv",
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.headers.get("x-keyward-rows").unwrap().to_str().unwrap(),
        expected_rows.to_string()
    );
    assert!(r.headers[http::header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .contains(".csv"));
    let mut reader = csv::Reader::from_reader(r.body.as_bytes());
    let headers = reader.headers().unwrap().clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        app::usage::export::CSV_HEADER
    );
    // The export's own request may be logged (in the current minute) while the body streams:
    // count the seeded keys' rows.
    let records: Vec<csv::StringRecord> = reader
        .records()
        .map(|r| r.unwrap())
        .filter(|r| r[1].starts_with("seed_"))
        .collect();
    assert_eq!(records.len(), expected_rows);
    let distinct: std::collections::HashSet<(String, String, String)> = records
        .iter()
        .map(|r| (r[0].to_string(), r[1].to_string(), r[4].to_string()))
        .collect();
    assert_eq!(distinct.len(), expected_rows, "no row twice across pages");
    let total: i64 = records.iter().map(|r| r[5].parse::<i64>().unwrap()).sum();
    assert_eq!(
        total,
        (rows.len() - 1) as i64,
        "every request of the organization"
    );

    let r = app
        .api(
            "GET",
            "/api/v1/usage/export?range=1h&format=json&key_id=seed_00",
            Some(&admin),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let parsed: Vec<serde_json::Value> = serde_json::from_str(&r.body).unwrap();
    assert_eq!(parsed.len(), 100, "seed_00: 50 minutes × 2 classes");
    assert!(parsed.iter().all(|v| v["api_key_id"] == json!("seed_00")));
    assert_eq!(r.headers.get("x-keyward-rows").unwrap(), "100");

    for bad in [
        "/api/v1/usage/export?range=1h&format=xml",
        "/api/v1/usage/export?range=9h",
        "/api/v1/usage/export?organization_id=org_other",
        "/api/v1/usage/export?nonsense=1",
    ] {
        let r = app.api("GET", bad, Some(&admin), None, IP).await;
        assert_refused(&r, http::StatusCode::BAD_REQUEST, "invalid_input", bad);
    }

    // The console's export needs a session with usage:read in the organization.
    let path = format!("/usage/export?organization_id={org}&range=1h&format=csv");
    let r = app.get(&Browser::default(), &path).await;
    assert_eq!(r.status, 401);
    let bob = app.user("bob@example.org", None).await;
    let _ = bob;
    let r = app
        .get(&app.signed_in("bob@example.org").await, &path)
        .await;
    assert_eq!(r.status, 403, "another organization's export");
    let r = app
        .get(&app.signed_in("ann@example.org").await, &path)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The REST calls above were logged too (the admin key's own rows in this minute).
    let promised: usize = r.headers["x-keyward-rows"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(promised >= expected_rows, "{promised}");
    let seeded = r.body.lines().filter(|l| l.contains(",seed_")).count();
    assert_eq!(seeded, expected_rows, "every seeded row");
    assert!(
        r.body.lines().count() > promised,
        "header and every promised row"
    );
}

#[tokio::test]
async fn per_organization_totals_are_for_instance_admins_only() {
    let app = spawn().await;
    app.user("root@example.org", Some(app::access::Role::Owner))
        .await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let now = app::ssr::db::now_ms();
    let rows = vec![
        log_entry(now - 120_000, &org, "key_a", "/api/v1/me", 200),
        log_entry(now - 120_000, &org, "key_b", "/api/v1/me", 500),
        log_entry(now - 120_000, &org, "key_b", "/api/v1/me", 200),
        // Another organization's request, and one older than the range.
        log_entry(now - 120_000, "org_other", "key_c", "/api/v1/me", 200),
        log_entry(now - 3 * 3_600_000, &org, "key_a", "/api/v1/me", 200),
    ];
    app::usage::log::write_batch(&app.state.db, &rows)
        .await
        .unwrap();

    let r = app
        .rpc(
            &mut app.signed_in("ann@example.org").await,
            "usage_by_organization",
            &[("range", "1h")],
        )
        .await;
    assert_eq!(
        r.status, 403,
        "an organization owner is not an instance admin"
    );
    let root = &mut app.signed_in("root@example.org").await;
    let r = app
        .rpc(root, "usage_by_organization", &[("range", "1h")])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let totals = r.json();
    let list = totals.as_array().unwrap();
    assert_eq!(list.len(), 2, "one row per organization: {totals}");
    assert_eq!(list[0]["organization_id"], json!(org), "busiest first");
    assert_ne!(list[0]["name"], json!(org), "named, not just the id");
    assert_eq!(list[1]["organization_id"], json!("org_other"));
    assert_eq!(
        list[1]["name"],
        json!("org_other"),
        "unknown organizations keep their id"
    );
    let ours = totals
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["organization_id"] == json!(org))
        .expect("the organization is listed");
    assert_eq!(
        (
            ours["requests"].as_i64(),
            ours["errors"].as_i64(),
            ours["keys"].as_i64()
        ),
        (Some(3), Some(1), Some(2))
    );
    let r = app
        .rpc(root, "usage_by_organization", &[("range", "1y")])
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn at_most_two_exports_stream_at_once_and_one_per_organization() {
    use tower::ServiceExt;
    let app = spawn().await;
    let mut keys = Vec::new();
    for email in ["ann@example.org", "bob@example.org", "cy@example.org"] {
        let user = app.user(email, None).await;
        let org = app.org_of(&user).await;
        keys.push(app.scoped_key(&org, json!({"usage": "read"})).await.1);
    }
    let open = |key: &str| {
        let mut req = http::Request::get("/api/v1/usage/export?range=1h")
            .header(http::header::HOST, HOST)
            .header(http::header::AUTHORIZATION, format!("Bearer {key}"))
            .body(axum::body::Body::empty())
            .unwrap();
        let addr: std::net::SocketAddr = format!("{IP}:40000").parse().unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
        app.router.clone().oneshot(req)
    };
    // Responses whose bodies nobody has read yet hold their slots: Ann's organization has
    // one, and no second.
    let ann = open(&keys[0]).await.unwrap();
    assert_eq!(ann.status(), 200);
    let again = open(&keys[0]).await.unwrap();
    assert_eq!(again.status(), 429, "one export per organization at once");
    assert_eq!(again.headers()[http::header::RETRY_AFTER], "5");
    // Bob's takes the instance's second; Cy's finds none left.
    let bob = open(&keys[1]).await.unwrap();
    assert_eq!(bob.status(), 200);
    let cy = open(&keys[2]).await.unwrap();
    assert_eq!(cy.status(), 429, "two at once on the instance");
    // A slot comes back when a body is done with (read to the end, or dropped).
    drop(ann);
    assert_eq!(open(&keys[2]).await.unwrap().status(), 200);
    drop(bob);
    assert_eq!(open(&keys[0]).await.unwrap().status(), 200);
}

/// One person's keys take one raw-log turn at a time over every organization they read
/// (organizations are cheap to make, and one account's reports over many of them would queue
/// ahead of every other tenant's): their next report waits for their own turn, outside the
/// instance's queue, and another tenant is served at once. An organization key counts with
/// the other keys of the person who made it, apart from that person's own console (a key
/// handed to a job cannot hold its maker up).
#[tokio::test]
async fn one_person_takes_one_raw_log_turn_over_all_their_organizations() {
    use app::usage::stats::{keys_holder, raw_turn, RawReaders, Reader, RAW_READERS};
    let app = spawn().await;
    let db = &app.state.db;
    let readers = db.caches.get::<RawReaders>();
    let ann = app.user("ann@example.org", None).await;
    let bob = app.user("bob@example.org", None).await;
    let (ann_org, bob_org) = (app.org_of(&ann).await, app.org_of(&bob).await);
    // A key of Ann's organization that she made.
    let (key_id, ann_key) = app.admin_key(&ann_org).await;
    sqlx::query("update api_key set created_by = $1 where api_key_id = $2")
        .bind(&ann)
        .bind(&key_id)
        .execute(&db.writer)
        .await
        .unwrap();
    let (_, bob_key) = app.admin_key(&bob_org).await;

    // Another key Ann made reads another organization of hers.
    let held = raw_turn(db, &Reader::new("org_anns_other", &keys_holder(&ann)))
        .await
        .unwrap();
    assert_eq!(readers.instance.available_permits(), RAW_READERS - 1);
    let errors = "/api/v1/usage/errors?range=30d";
    let anns = app.api("GET", errors, Some(&ann_key), None, IP);
    tokio::pin!(anns);
    assert!(
        tokio::time::timeout(Duration::from_millis(1_000), &mut anns)
            .await
            .is_err(),
        "the report of the key she made waits for her own turn"
    );
    assert_eq!(
        readers.instance.available_permits(),
        RAW_READERS - 1,
        "it waits outside the instance's turns"
    );
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        app.api("GET", errors, Some(&bob_key), None, IP),
    )
    .await
    .expect("another tenant's report does not wait");
    assert_eq!(r.status, 200, "{}", r.body);
    // Ann herself, in the console: not held up by her keys.
    let own = tokio::time::timeout(
        Duration::from_secs(5),
        raw_turn(db, &Reader::new("org_anns_third", &ann)),
    )
    .await
    .expect("her own reports do not wait for her keys'")
    .unwrap();
    drop(own);
    drop(held);
    let r = tokio::time::timeout(Duration::from_secs(5), anns)
        .await
        .expect("her turn passes to her waiting report");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(readers.holders(), 0, "idle holders are forgotten");
    assert_eq!(readers.instance.available_permits(), RAW_READERS);
}

/// A report that reads the rollup and then the raw log gives its rollup turn back before it
/// waits for the raw one: waiting on the slow read, it holds no turn every chart needs.
#[tokio::test]
async fn a_report_waiting_for_the_raw_log_holds_no_rollup_turn() {
    use app::usage::stats::{raw_turn, RawReaders, Reader, RollupReaders, ROLLUP_READERS};
    let (app, org, admin) = with_admin_key().await;
    let db = &app.state.db;
    // Another member of the organization reads its raw log: the organization's one turn.
    let held = raw_turn(db, &Reader::new(&org, "usr_another_member"))
        .await
        .unwrap();
    for path in ["/api/v1/usage?range=30d", "/api/v1/usage/errors?range=30d"] {
        let report = app.api("GET", path, Some(&admin), None, IP);
        tokio::pin!(report);
        assert!(
            tokio::time::timeout(Duration::from_millis(1_000), &mut report)
                .await
                .is_err(),
            "{path} waits for the raw log's turn"
        );
        assert_eq!(
            db.caches
                .get::<RollupReaders>()
                .instance
                .available_permits(),
            ROLLUP_READERS,
            "{path} holds no rollup turn while it waits"
        );
        assert_eq!(db.caches.get::<RollupReaders>().holders(), 0);
        // (The waiting report is dropped with this iteration: its wait is cancelled.)
    }
    drop(held);
    assert_eq!(db.caches.get::<RawReaders>().organizations(), 0);
}

/// A report whose client goes away mid-query keeps its raw-log turn until the query ends: the
/// database runs a dropped query on, and its connection stays taken until then, so a client
/// asking and hanging up in a loop would otherwise hold every connection of the instance.
#[tokio::test]
async fn a_report_abandoned_mid_query_keeps_its_turn_until_the_query_ends() {
    use app::usage::stats::{raw_turn, Reader};
    if !on_postgres() {
        // SQLite's readers never wait on a writer: nothing holds a query midway.
        return;
    }
    let (app, org, admin) = with_admin_key().await;
    let db = &app.state.db;
    // The raw log held: the report reads the rollup, then waits on its raw-log query.
    let mut lock = db.writer.begin().await.unwrap();
    sqlx::query("lock table request_log in access exclusive mode")
        .execute(&mut *lock)
        .await
        .unwrap();
    // Boxed, so that dropping it below drops the request (as a client hanging up does).
    let mut report = Box::pin(app.api("GET", "/api/v1/usage?range=30d", Some(&admin), None, IP));
    // Until it holds the instance's raw-log turn (its query then waits on the lock).
    let raw = db.caches.get::<app::usage::stats::RawReaders>();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while raw.instance.available_permits() == app::usage::stats::RAW_READERS {
        assert!(
            std::time::Instant::now() < deadline,
            "the report took no turn"
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut report)
                .await
                .is_err(),
            "the report waits on the raw log"
        );
    }
    drop(report);
    // Its client is gone, its query is not: another member of the organization waits for the
    // organization's one raw-log turn...
    let other = Reader::new(&org, "usr_another_member");
    assert!(
        tokio::time::timeout(Duration::from_millis(1_000), raw_turn(db, &other))
            .await
            .is_err(),
        "the abandoned report still holds its turn"
    );
    // ...until the query ends.
    lock.rollback().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), raw_turn(db, &other))
        .await
        .expect("the turn comes back once the query ends")
        .unwrap();
}

/// An error inside a report's own task (its reads run apart from the request, see
/// `usage::stats::under`) names the request's id, as the response's `x-request-id` does.
#[tokio::test]
async fn an_error_in_a_report_s_task_names_the_request() {
    let (app, _org, admin) = with_admin_key().await;
    sqlx::query("alter table usage_minute rename to usage_minute_gone")
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let r = app
        .api("GET", "/api/v1/usage?range=1h", Some(&admin), None, IP)
        .await;
    assert_eq!(r.status, 500, "{}", r.body);
    let request_id = r.headers["x-request-id"].to_str().unwrap();
    assert_eq!(
        r.json()["error"]["message"],
        json!(format!("internal error (id {request_id})")),
    );
}

/// A report waiting for a busy organization holds nothing of its person's: any member can
/// keep an organization's one raw-log turn busy, and that must not hold up the same person's
/// reports in their other organizations.
#[tokio::test]
async fn waiting_for_a_busy_organization_does_not_hold_up_the_person_elsewhere() {
    use app::usage::stats::{raw_turn, RawReaders, Reader, RAW_READERS};
    let app = spawn().await;
    let db = &app.state.db;
    let busy = raw_turn(db, &Reader::new("org_shared", "usr_noisy"))
        .await
        .unwrap();
    let there = Reader::new("org_shared", "usr_ann");
    let waiting = raw_turn(db, &there);
    tokio::pin!(waiting);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "her report in the busy organization waits"
    );
    let elsewhere = tokio::time::timeout(
        Duration::from_secs(5),
        raw_turn(db, &Reader::new("org_anns_own", "usr_ann")),
    )
    .await
    .expect("her report in another organization does not wait for it")
    .unwrap();
    drop(elsewhere);
    drop(busy);
    let turn = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the busy organization's turn passes to her")
        .unwrap();
    drop(turn);
    let readers = db.caches.get::<RawReaders>();
    assert_eq!(readers.instance.available_permits(), RAW_READERS);
    assert_eq!((readers.organizations(), readers.holders()), (0, 0));
}
