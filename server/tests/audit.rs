//! The audit chain: every domain event gets a place in one keyed hash chain; `keyward audit
//! verify` checks it and names the first entry that was edited or whose predecessor was
//! deleted. Runs on SQLite, and on PostgreSQL when `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use app::ssr::audit::{chain_pending, verify};
use common::*;
use http::StatusCode;

#[tokio::test]
async fn the_chain_verifies_and_names_the_first_edited_or_deleted_entry() {
    let app = spawn().await;
    for i in 0..5 {
        app.user(&format!("u{i}@example.org"), None).await;
    }
    let (db, secret) = (&app.state.db, app.state.config.secret);
    let chained = chain_pending(db, &secret).await.unwrap();
    assert!(chained >= 5, "{chained}");
    assert_eq!(
        chain_pending(db, &secret).await.unwrap(),
        0,
        "nothing twice"
    );
    let v = verify(db, &secret).await.unwrap();
    assert_eq!(v.first_broken, None);
    assert_eq!((v.checked, v.pending), (chained, 0));

    // Later events follow on; before chaining they are counted as pending.
    app.user("late@example.org", None).await;
    assert!(verify(db, &secret).await.unwrap().pending >= 1);
    let more = chain_pending(db, &secret).await.unwrap();
    let v = verify(db, &secret).await.unwrap();
    assert_eq!((v.checked, v.first_broken), (chained + more, None));

    // Without the server secret the chain cannot be checked (nor recomputed after an edit).
    let v = verify(db, &[7u8; 32]).await.unwrap();
    assert_eq!(v.first_broken.unwrap().seq, 1);

    // An edited entry is named.
    let original: String = sqlx::query_scalar("select data from domain_event where seq = 3")
        .fetch_one(&db.reader)
        .await
        .unwrap();
    let edit = |data: String| async move {
        sqlx::query("update domain_event set data = $1 where seq = 3")
            .bind(data)
            .execute(&db.writer)
            .await
            .unwrap();
    };
    edit(r#"{"forged":true}"#.to_string()).await;
    let broken = verify(db, &secret).await.unwrap().first_broken.unwrap();
    assert_eq!(broken.seq, 3);
    assert!(broken.why.contains("edited"), "{broken:?}");
    edit(original).await;
    assert_eq!(verify(db, &secret).await.unwrap().first_broken, None);

    // A deleted entry is named by the one after it, and the command says so (exit 1).
    sqlx::query("delete from domain_event where seq = 4")
        .execute(&db.writer)
        .await
        .unwrap();
    let broken = verify(db, &secret).await.unwrap().first_broken.unwrap();
    assert_eq!(broken.seq, 5);
    assert!(broken.why.contains("deleted"), "{broken:?}");
    let report = keyward_server::boot::audit_verify(db, &secret)
        .await
        .unwrap_err();
    assert!(report.contains("broken at entry #5"), "{report}");
}

/// The audit log of an organization, in the console and over REST: its own events only
/// (another organization's never), with actor, action, target and time filters; refused
/// without `audit:read`; bad filters are a clear 400.
#[tokio::test]
async fn the_audit_log_lists_the_organization_s_actions_with_filters() {
    let app = spawn().await;
    let owner_id = app.user("owner@example.org", None).await;
    let org = app.org_of(&owner_id).await;
    let viewer_id = app.user("viewer@example.org", None).await;
    app.add_member(&org, &viewer_id, "viewer").await;
    let stranger = app.user("stranger@example.org", None).await;
    let elsewhere = app.org_of(&stranger).await;
    let mut owner = app.signed_in("owner@example.org").await;
    let mut s = app.signed_in("stranger@example.org").await;
    for (b, o) in [(&mut owner, &org), (&mut s, &elsewhere)] {
        let r = app
            .rpc(
                b,
                "create_key",
                &[
                    ("organization_id", o.as_str()),
                    ("name", "audited"),
                    ("environment", "live"),
                    ("category", "basic"),
                    ("ip_allowlist", ""),
                    ("expires_in_days", ""),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let key_id: String = sqlx::query_scalar(
        "select api_key_id from api_key where organization_id = $1 and name = 'audited'",
    )
    .bind(&org)
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    chain_pending(&app.state.db, &app.state.config.secret)
        .await
        .unwrap();

    let log = |form: Vec<(&'static str, String)>| {
        let (app, org, mut b) = (&app, org.clone(), owner.clone());
        async move {
            let mut pairs = vec![("organization_id", org)];
            pairs.extend(form);
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.rpc(&mut b, "audit_log", &pairs).await
        }
    };
    let r = log(vec![("action", "key.".into())]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let page = r.json();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(page["total"], 1, "only this organization's key: {page}");
    assert_eq!(entries[0]["action"], "key.created");
    assert_eq!(entries[0]["target"], key_id.as_str());
    assert_eq!(entries[0]["actor_email"], "owner@example.org");
    assert!(entries[0]["seq"].as_i64().is_some(), "chained: {page}");
    // Filters: actor (part of the address), target, and a time window.
    let r = log(vec![("actor", "OWNER@".into()), ("target", key_id.clone())]).await;
    assert_eq!(r.json()["total"], 1, "{}", r.body);
    let r = log(vec![("actor", "viewer@".into())]).await;
    assert_eq!(r.json()["total"], 0, "{}", r.body);
    let r = log(vec![("to", "2001-01-01".into())]).await;
    assert_eq!(r.json()["total"], 0, "{}", r.body);
    let r = log(vec![("from", "yesterday".into())]).await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "a bad day");
    // Without audit:read: refused.
    let mut viewer = app.signed_in("viewer@example.org").await;
    let r = app
        .rpc(
            &mut viewer,
            "audit_log",
            &[("organization_id", org.as_str())],
        )
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "a viewer");

    // Over REST: the key's organization only.
    let (_, key) = app.admin_key(&org).await;
    let r = app
        .api(
            "GET",
            "/api/v1/audit?action=key.",
            Some(&key),
            None,
            "192.0.2.77",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let actions: Vec<String> = r.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    assert!(actions.iter().all(|a| a.starts_with("key.")), "{actions:?}");
    assert!(
        !r.body.contains(&elsewhere),
        "another organization's events"
    );
    let r = app
        .api(
            "GET",
            "/api/v1/audit?page=x",
            Some(&key),
            None,
            "192.0.2.77",
        )
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "a bad page");
}

#[tokio::test]
async fn the_audit_log_exports_every_matching_entry_and_records_before_and_after() {
    let app = spawn().await;
    let owner_id = app.user("owner@example.org", None).await;
    let org = app.org_of(&owner_id).await;
    let viewer_id = app.user("viewer@example.org", None).await;
    app.add_member(&org, &viewer_id, "viewer").await;
    let stranger = app.user("stranger@example.org", None).await;
    let elsewhere = app.org_of(&stranger).await;
    let mut owner = app.signed_in("owner@example.org").await;

    // A settings change records the policy before and after.
    for approval in ["on", ""] {
        let r = app
            .rpc(
                &mut owner,
                "set_org_policy",
                &[
                    ("organization_id", org.as_str()),
                    ("max_key_lifetime_days", "90"),
                    ("require_key_approval", approval),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let page = app::audit::ssr::list(
        &app.state.db,
        &app::usage::stats::Reader::new(&org, "usr_viewer"),
        &app::audit::AuditQuery {
            action: Some("organization.policy_changed".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(page.total, 2);
    let latest = &page.entries[0];
    assert_eq!(
        latest.before.as_ref().unwrap()["require_key_approval"],
        true
    );
    assert_eq!(
        latest.after.as_ref().unwrap()["require_key_approval"],
        false
    );
    let first = &page.entries[1];
    assert_eq!(
        first.before.as_ref().unwrap()["max_key_lifetime_days"],
        serde_json::Value::Null
    );
    assert_eq!(first.after.as_ref().unwrap()["max_key_lifetime_days"], 90);

    // More entries than one export page, so that the export walks several.
    let n = app::audit::ssr::EXPORT_PAGE + 30;
    let mut tx = app.state.db.writer.begin().await.unwrap();
    for i in 0..n {
        app::ssr::events::record(
            &mut tx,
            app::ssr::events::Event {
                kind: "test.bulk",
                organization_id: Some(&org),
                actor_user_id: Some(&owner_id),
                // A target a spreadsheet would run as a formula.
                subject_id: Some("=cmd|' /C calc'!A0"),
                source_ip: None,
                data: serde_json::json!({ "i": i }),
            },
        )
        .await
        .unwrap();
    }
    app::ssr::events::record(
        &mut tx,
        app::ssr::events::Event {
            kind: "test.bulk",
            organization_id: Some(&elsewhere),
            actor_user_id: Some(&stranger),
            subject_id: Some("thing"),
            source_ip: None,
            data: serde_json::json!({ "i": -1 }),
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // Every entry in the same millisecond: the export's pages meet inside a tie, which the
    // keyset (time, then id) must cross without skipping or repeating an entry.
    sqlx::query("update domain_event set occurred_at = $1 where kind = 'test.bulk'")
        .bind(app::ssr::db::now_ms())
        .execute(&app.state.db.writer)
        .await
        .unwrap();

    // Over REST, CSV: the header, then every entry of this organization once, newest first.
    let (_, key) = app.admin_key_expiring(&org, 30).await;
    let r = app
        .api(
            "GET",
            "/api/v1/audit/export?action=test.&format=csv",
            Some(&key),
            None,
            "192.0.2.77",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.headers["x-keyward-rows"].to_str().unwrap(), n.to_string());
    assert!(r.headers[http::header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .contains(".csv"));
    let mut csv = csv::Reader::from_reader(r.body.as_bytes());
    assert_eq!(
        csv.headers().unwrap().iter().collect::<Vec<_>>(),
        app::audit::ssr::CSV_HEADER.to_vec()
    );
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), n, "every entry, across pages");
    let target = app::audit::ssr::CSV_HEADER
        .iter()
        .position(|c| *c == "target")
        .unwrap();
    let data = app::audit::ssr::CSV_HEADER
        .iter()
        .position(|c| *c == "data")
        .unwrap();
    assert!(
        rows.iter().all(|row| &row[target] == "'=cmd|' /C calc'!A0"),
        "a formula-like cell is quoted: {:?}",
        &rows[0]
    );
    let mut seen: Vec<i64> = rows
        .iter()
        .map(|row| {
            let data: serde_json::Value = serde_json::from_str(&row[data]).unwrap();
            data["i"].as_i64().unwrap()
        })
        .collect();
    assert!(seen.iter().all(|i| *i >= 0), "another organization's entry");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), n, "no entry twice");
    assert!(!r.body.contains(&elsewhere));

    // JSON: one entry per line, the same count; filters apply.
    let r = app
        .api(
            "GET",
            "/api/v1/audit/export?action=organization.&format=json",
            Some(&key),
            None,
            "192.0.2.77",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let entries = r.json();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["after"]["require_key_approval"], false);

    // Bad input: a clear error, before anything streams.
    for bad in [
        "/api/v1/audit/export?format=xml",
        "/api/v1/audit/export?from=yesterday",
        "/api/v1/audit/export?organization_id=org_other",
        "/api/v1/audit/export?nonsense=1",
    ] {
        let r = app.api("GET", bad, Some(&key), None, "192.0.2.77").await;
        assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", bad);
    }

    // The console's export: the session's organization, with audit:read only.
    let r = app
        .get(
            &owner,
            &format!("/audit/export?organization_id={org}&format=csv&action=test."),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body.lines().count(), n + 1);
    let viewer = app.signed_in("viewer@example.org").await;
    let r = app
        .get(&viewer, &format!("/audit/export?organization_id={org}"))
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "a viewer");
    let r = app
        .get(
            &owner,
            &format!("/audit/export?organization_id={elsewhere}"),
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "another organization",
    );
    let r = app
        .get(
            &Browser::default(),
            &format!("/audit/export?organization_id={org}"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

/// Audit log reads take turns: with every turn held, a page waits (a member with `audit:read`
/// cannot hold every reader connection with parallel filtered pages) and is served once a turn
/// is given back; one organization reads one page (or starts one export) at a time.
#[tokio::test]
async fn audit_log_reads_take_turns() {
    use app::usage::stats::{audit_turn, AuditReaders, AUDIT_READERS};
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let (_, key) = app.admin_key(&org).await;
    let ip = "192.0.2.78";
    let turns = app.state.db.caches.get::<AuditReaders>().instance.clone();
    let taken = turns
        .clone()
        .acquire_many_owned(AUDIT_READERS as u32)
        .await
        .unwrap();
    let page = app.api("GET", "/api/v1/audit?action=key.", Some(&key), None, ip);
    tokio::pin!(page);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(1_000), &mut page)
            .await
            .is_err(),
        "the page waits for a turn"
    );
    assert_every_connection_free(&app.state.db.reader, "a waiting page").await;
    drop(taken);
    let r = page.await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        turns.available_permits(),
        AUDIT_READERS,
        "the turn is given back"
    );

    // The organization's own turn: held, its next read waits though the instance has room.
    // (Held by another member: the key's maker would wait for their own turn anyway.)
    let held = audit_turn(
        &app.state.db,
        &app::usage::stats::Reader::new(&org, "usr_another_member"),
    )
    .await
    .unwrap();
    let export = app.api(
        "GET",
        "/api/v1/audit/export?format=csv",
        Some(&key),
        None,
        ip,
    );
    tokio::pin!(export);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(1_000), &mut export)
            .await
            .is_err(),
        "the export waits for its organization's turn"
    );
    drop(held);
    let r = export.await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.starts_with("seq,"), "{}", r.body);
}

/// A filter longer than any address, event kind or id is refused with a clear error before it
/// reaches a `like` (SQLite answers a pattern over 50 000 bytes with an error of its own, and
/// that was a 500), on the page, the export and the console's page alike.
#[tokio::test]
async fn an_overlong_audit_filter_is_refused_clearly() {
    use app::audit::ssr::FILTER_MAX;
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let (_, key) = app.admin_key(&org).await;
    let ip = "192.0.2.79";
    let at_most = "a".repeat(FILTER_MAX);
    let r = app
        .api(
            "GET",
            &format!("/api/v1/audit?actor={at_most}"),
            Some(&key),
            None,
            ip,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let long = "a".repeat(50_001);
    for field in ["actor", "action", "target"] {
        for path in ["/api/v1/audit", "/api/v1/audit/export"] {
            let r = app
                .api(
                    "GET",
                    &format!("{path}?{field}={long}"),
                    Some(&key),
                    None,
                    ip,
                )
                .await;
            assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", path);
            assert_eq!(r.json()["error"]["field"], field, "{}", r.body);
        }
    }
    let mut browser = app.signed_in("ann@example.org").await;
    let r = app
        .rpc(
            &mut browser,
            "audit_log",
            &[("organization_id", org.as_str()), ("actor", &long)],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "the console's page",
    );
}
