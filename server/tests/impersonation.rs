//! Accountable impersonation: only with `impersonation:write`, never on oneself or someone
//! stronger, with a reason and a time limit; the user's own affairs (and anything that would
//! outlast the limit) refused meanwhile; every call audited with both identities; the user
//! told; the limit returns the session to the administrator. Runs on SQLite, and on PostgreSQL
//! when `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use app::access::ssr::SYSTEM_ORG_ID;
use app::access::Role;
use common::*;
use http::StatusCode;

async fn impersonate(app: &TestApp, b: &mut Browser, email: &str, reason: &str) -> Reply {
    app.rpc(
        b,
        "impersonate_user",
        &[("email", email), ("reason", reason), ("minutes", "30")],
    )
    .await
}

async fn events(app: &TestApp, kind: &str) -> Vec<(Option<String>, Option<String>, String)> {
    sqlx::query_as(
        "select actor_user_id, subject_id, data from domain_event where kind = $1 order by occurred_at, event_id",
    )
    .bind(kind)
    .fetch_all(&app.state.db.reader)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_owner_acts_as_a_user_under_a_banner_and_is_refused_their_own_affairs() {
    let app = spawn().await;
    let root = app.user("root@example.org", Some(Role::Owner)).await;
    let ann = app.user("ann@example.org", None).await;
    let ann_org = app.org_of(&ann).await;
    let mut b = app.signed_in("root@example.org").await;

    // A reason is required; nothing happens without one.
    for (reason, minutes) in [("", "30"), ("ok reason", "0"), ("ok reason", "121")] {
        let r = app
            .rpc(
                &mut b,
                "impersonate_user",
                &[
                    ("email", "ann@example.org"),
                    ("reason", reason),
                    ("minutes", minutes),
                ],
            )
            .await;
        assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", reason);
    }
    assert!(events(&app, "user.impersonation_started").await.is_empty());
    assert_eq!(
        app.signed_in_as(&mut b).await.as_deref(),
        Some("root@example.org")
    );

    let r = impersonate(
        &app,
        &mut b,
        "Ann@Example.org",
        "ticket 42: cannot see her keys",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let me = app.rpc(&mut b, "current_user", &[]).await.json();
    assert_eq!(me["email"], "ann@example.org");
    assert_eq!(me["impersonation"]["by"], "root@example.org", "{me}");
    let started = events(&app, "user.impersonation_started").await;
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].0.as_deref(), Some(root.as_str()));
    assert_eq!(started[0].1.as_deref(), Some(ann.as_str()));
    assert!(started[0].2.contains("ticket 42"), "{}", started[0].2);

    // What Ann sees, the administrator sees; each call is recorded with both names.
    let r = app
        .rpc(&mut b, "list_keys", &[("organization_id", &ann_org)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let calls = events(&app, "impersonation.call").await;
    assert!(
        calls.iter().any(
            |(actor, subject, data)| actor.as_deref() == Some(root.as_str())
                && subject.as_deref() == Some(ann.as_str())
                && data.contains("list_keys")
        ),
        "{calls:?}"
    );

    // What the administrator may change (a key's status, for incident response) is recorded
    // as Ann's action with the administrator as the impersonator, in the entry's data that the
    // audit chain covers, with the request's user agent and id; the audit log names both.
    let (key_id, _) = app.admin_key(&ann_org).await;
    b.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64)\t keyward-test".into());
    let r = app
        .rpc(
            &mut b,
            "set_key_status",
            &[
                ("organization_id", &ann_org),
                ("key_id", &key_id),
                ("action", "disable"),
                ("reason", "leaked in a ticket"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let page = app::audit::ssr::list(
        &app.state.db,
        &app::usage::stats::Reader::new(SYSTEM_ORG_ID, "usr_viewer"),
        &app::audit::AuditQuery {
            action: Some("key.disabled".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let entry = &page.entries[0];
    assert_eq!(entry.actor.as_deref(), Some(ann.as_str()), "{entry:?}");
    assert_eq!(
        entry.impersonator.as_deref(),
        Some(root.as_str()),
        "{entry:?}"
    );
    assert_eq!(
        entry.impersonator_email.as_deref(),
        Some("root@example.org")
    );
    assert!(
        entry.request_id.as_deref().is_some_and(|id| id.len() == 16),
        "{entry:?}"
    );
    assert_eq!(
        entry.user_agent.as_deref(),
        Some("Mozilla/5.0 (X11; Linux x86_64) keyward-test"),
        "control characters dropped"
    );

    // Her password, email, second factor, sessions, account, and anything that outlasts the
    // time limit (her membership of another organization included): refused, nothing written.
    let mut root_again = app.signed_in("root@example.org").await;
    let r = app
        .rpc(&mut root_again, "create_organization", &[("name", "Acme")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let team = r.json().as_str().unwrap().to_string();
    app.add_member(&team, &ann, "admin").await;
    let before = app.snapshot().await;
    for (endpoint, form) in [
        (
            "change_password",
            vec![
                ("current_password", PASSWORD),
                ("new_password", "another long one"),
            ],
        ),
        (
            "request_email_change",
            vec![
                ("new_email", "root2@example.org"),
                ("current_password", PASSWORD),
            ],
        ),
        ("start_totp", vec![("current_password", PASSWORD)]),
        ("revoke_other_sessions", vec![]),
        (
            "leave_organization",
            vec![("organization_id", team.as_str())],
        ),
        ("delete_account", vec![("current_password", PASSWORD)]),
        (
            "impersonate_user",
            vec![("email", "root@example.org"), ("reason", "nested one")],
        ),
        (
            "create_key",
            vec![
                ("organization_id", ann_org.as_str()),
                ("name", "mine now"),
                ("environment", "live"),
                ("category", "admin"),
                ("ip_allowlist", ""),
                ("expires_in_days", ""),
                ("personal", "on"),
            ],
        ),
    ] {
        let r = app.rpc(&mut b, endpoint, &form).await;
        assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", endpoint);
        // (Another impersonation is refused even earlier: Ann lacks the permission.)
        if endpoint != "impersonate_user" {
            assert!(
                r.body.contains("not while impersonating"),
                "{endpoint}: {}",
                r.body
            );
        }
    }
    assert_eq!(app.snapshot().await, before);

    // Ann is told, in the app and by email.
    let told: i64 = sqlx::query_scalar(
        "select count(*) from notification where user_id = $1 and kind = 'impersonation' and body like '%ticket 42%'",
    )
    .bind(&ann)
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(told, 1);
    let mailed: i64 = sqlx::query_scalar(
        "select count(*) from outbox_email where to_address = 'ann@example.org' and subject like 'root@example.org is acting as you%'",
    )
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(mailed, 1);

    // Stopping returns the session to the administrator.
    let r = app.rpc(&mut b, "stop_impersonation", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let me = app.rpc(&mut b, "current_user", &[]).await.json();
    assert_eq!(me["email"], "root@example.org");
    assert!(me["impersonation"].is_null(), "{me}");
    let ended = events(&app, "user.impersonation_ended").await;
    assert_eq!(ended.len(), 1);
    assert!(ended[0].2.contains("stopped"));
    // Recorded during the impersonation, but the administrator's own act: they are its actor,
    // not its impersonator.
    assert_eq!(ended[0].0.as_deref(), Some(root.as_str()));
    assert!(!ended[0].2.contains("\"impersonator\""), "{}", ended[0].2);
    // And after it, the administrator's requests name no impersonator.
    let root_org = app.org_of(&root).await;
    let (root_key, _) = app.admin_key(&root_org).await;
    let r = app
        .rpc(
            &mut b,
            "set_key_status",
            &[
                ("organization_id", &root_org),
                ("key_id", &root_key),
                ("action", "disable"),
                ("reason", "rotated"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let enabled = app::audit::ssr::list(
        &app.state.db,
        &app::usage::stats::Reader::new(SYSTEM_ORG_ID, "usr_viewer"),
        &app::audit::AuditQuery {
            action: Some("key.disabled".into()),
            target: Some(root_key.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(enabled.entries[0].actor.as_deref(), Some(root.as_str()));
    assert_eq!(enabled.entries[0].impersonator, None);
    let r = app.rpc(&mut b, "stop_impersonation", &[]).await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "not impersonating");

    // Ann's activity log shows it, by whom; her own sign-in as hers; nobody else's entries.
    app.user("bob@example.org", None).await;
    app.signed_in("bob@example.org").await;
    let mut own = app.signed_in("ann@example.org").await;
    let r = app.rpc(&mut own, "my_activity", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let log = r.json();
    let entries = log.as_array().unwrap();
    let started = entries
        .iter()
        .find(|e| e["action"] == "user.impersonation_started")
        .expect("the impersonation in her log");
    assert_eq!(started["by"], "root@example.org");
    let signed_in = entries
        .iter()
        .find(|e| e["action"] == "user.signed_in")
        .expect("her sign-in");
    assert!(signed_in["by"].is_null(), "{signed_in}");
    assert!(!r.body.contains("bob@example.org"), "{}", r.body);
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["action"] == "user.signed_in")
            .count(),
        1,
        "only her own sign-in: {}",
        r.body
    );
}

#[tokio::test]
async fn only_with_the_permission_and_never_on_oneself_or_someone_stronger() {
    let app = spawn().await;
    app.user("root@example.org", Some(Role::Owner)).await;
    app.user("adm@example.org", Some(Role::Admin)).await;
    let weak = app.user("weak@example.org", Some(Role::Viewer)).await;
    let gone = app.user("gone@example.org", None).await;
    let ann = app.user("ann@example.org", None).await;
    app.disable_user(&gone).await;

    // An admin does not hold impersonation:write by default.
    let mut adm = app.signed_in("adm@example.org").await;
    let r = impersonate(&app, &mut adm, "ann@example.org", "looking around").await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "an admin");

    // A support role holding only impersonation:write (and what it implies).
    let mut root = app.signed_in("root@example.org").await;
    let r = app
        .rpc(
            &mut root,
            "create_role",
            &[
                ("organization_id", SYSTEM_ORG_ID),
                ("name", "support"),
                ("parents[0]", "viewer"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let role = r.json()["id"].as_str().unwrap().to_string();
    for (endpoint, form) in [
        (
            "set_role_permission",
            vec![
                ("role_id", role.as_str()),
                ("permission", "impersonation:write"),
                ("granted", "true"),
            ],
        ),
        (
            "assign_role",
            vec![
                ("role_id", role.as_str()),
                ("user_ids[0]", weak.as_str()),
                ("assign", "true"),
            ],
        ),
    ] {
        let mut form = form;
        form.insert(0, ("organization_id", SYSTEM_ORG_ID));
        let r = app.rpc(&mut root, endpoint, &form).await;
        assert_eq!(r.status, StatusCode::OK, "{endpoint}: {}", r.body);
    }
    let mut w = app.signed_in("weak@example.org").await;
    // Not someone holding more (the admin holds users:write), not oneself, not a disabled or
    // unknown account.
    let r = impersonate(&app, &mut w, "adm@example.org", "want admin powers").await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "someone stronger");
    let r = impersonate(&app, &mut w, "weak@example.org", "myself").await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "oneself");
    for email in ["gone@example.org", "nobody@example.org"] {
        let r = impersonate(&app, &mut w, email, "a reason").await;
        assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", email);
    }
    assert!(events(&app, "user.impersonation_started").await.is_empty());
    assert_eq!(
        app.signed_in_as(&mut w).await.as_deref(),
        Some("weak@example.org")
    );
    // A plain user, yes.
    let r = impersonate(&app, &mut w, "ann@example.org", "support ticket 7").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.signed_in_as(&mut w).await.as_deref(),
        Some("ann@example.org")
    );
    // Ann is made an instance admin meanwhile: she now holds what the support role does not,
    // and the impersonation ends at the next request (back to the support user's own session).
    app.add_member(SYSTEM_ORG_ID, &ann, "admin").await;
    assert_eq!(
        app.signed_in_as(&mut w).await.as_deref(),
        Some("weak@example.org")
    );
    let ended = events(&app, "user.impersonation_ended").await;
    assert!(
        ended.iter().any(
            |(_, subject, data)| subject.as_deref() == Some(ann.as_str())
                && data.contains("outranked")
        ),
        "{ended:?}"
    );
}

/// Moves the impersonation's deadline of every stored session to `until` (ms).
async fn set_deadline(app: &TestApp, until: i64) {
    let rows: Vec<(String, String)> =
        sqlx::query_as("select session_hash, data from session where data like '%impersonator%'")
            .fetch_all(&app.state.db.writer)
            .await
            .unwrap();
    assert!(!rows.is_empty());
    for (hash, data) in rows {
        let mut data: serde_json::Value = serde_json::from_str(&data).unwrap();
        data["impersonation_until"] = until.into();
        sqlx::query("update session set data = $2 where session_hash = $1")
            .bind(hash)
            .bind(data.to_string())
            .execute(&app.state.db.writer)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_arriving_together_at_the_time_limit_end_it_once() {
    let app = spawn().await;
    app.user("root@example.org", Some(Role::Owner)).await;
    app.user("ann@example.org", None).await;
    let mut b = app.signed_in("root@example.org").await;
    let r = impersonate(&app, &mut b, "ann@example.org", "ticket 12").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    set_deadline(&app, app::ssr::db::now_ms() - 1).await;
    // Eight requests of the same browser at once. The one that ends the impersonation is the
    // administrator's, no longer impersonating; the others hold a stale copy of the session
    // and are served signed out (the browser keeps the winner's cookie); none is the user's.
    let calls_before = events(&app, "impersonation.call").await.len();
    let calls = (0..8).map(|_| {
        let (app, mut b) = (&app, b.clone());
        async move { app.rpc(&mut b, "current_user", &[]).await }
    });
    // And public calls (recorded while impersonating) from the same browser at once.
    let public = (0..4).map(|_| {
        let (app, mut b) = (&app, b.clone());
        async move { app.rpc(&mut b, "api_document", &[]).await }
    });
    let (replies, public) = tokio::join!(
        futures::future::join_all(calls),
        futures::future::join_all(public)
    );
    // Exactly one request, of either kind, ends it: the only one answered with a new session
    // id (a public call can be that one, and then no `current_user` reply is the root's).
    let cookie = app.state.config.session_cookie_name();
    let new_id = |r: &Reply| r.set_cookie(cookie).is_some_and(|c| !c.ends_with('='));
    let winners = public
        .iter()
        .chain(replies.iter())
        .filter(|r| new_id(r))
        .count();
    assert_eq!(winners, 1);
    for r in public {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let mut as_root = 0;
    for r in replies {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let me = r.json();
        match me["email"].as_str() {
            Some("root@example.org") => {
                as_root += 1;
                assert!(me["impersonation"].is_null(), "{me}");
                assert!(new_id(&r), "the winner holds the new session id");
            }
            // No new session id (at most the removal of the dead one, for a request that
            // loaded the session after the winner replaced it).
            None => assert!(
                r.set_cookie(app.state.config.session_cookie_name())
                    .is_none_or(|c| c.ends_with('=')),
                "{:?}",
                r.headers
            ),
            other => panic!("served as {other:?} after the time limit"),
        }
    }
    assert!(as_root <= 1);
    // Nothing was recorded as a call made while impersonating once the time was up.
    let calls = events(&app, "impersonation.call").await;
    assert_eq!(calls.len(), calls_before, "{calls:?}");
    let ended = events(&app, "user.impersonation_ended").await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    // One session is left, the administrator's own, and it is signed in.
    let left: Vec<String> = sqlx::query_scalar("select data from session")
        .fetch_all(&app.state.db.reader)
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(!left[0].contains("impersonator"), "{left:?}");
}

#[tokio::test]
async fn the_time_limit_returns_the_session_and_a_disabled_administrator_loses_it() {
    let app = spawn().await;
    app.user("root@example.org", Some(Role::Owner)).await;
    let root2 = app.user("root2@example.org", Some(Role::Owner)).await;
    app.user("ann@example.org", None).await;
    let mut b = app.signed_in("root@example.org").await;
    assert_eq!(
        impersonate(&app, &mut b, "ann@example.org", "ticket 9")
            .await
            .status,
        StatusCode::OK
    );
    set_deadline(&app, app::ssr::db::now_ms() - 1).await;
    assert_eq!(
        app.signed_in_as(&mut b).await.as_deref(),
        Some("root@example.org")
    );
    let ended = events(&app, "user.impersonation_ended").await;
    assert_eq!(ended.len(), 1);
    assert!(ended[0].2.contains("expired"), "{ended:?}");

    // Ending the administrator's sessions ends an impersonating one too, and records it
    // (`an_impersonation_ended_without_a_request_records_its_end` has the other ways).
    assert_eq!(
        impersonate(&app, &mut b, "ann@example.org", "ticket 11")
            .await
            .status,
        StatusCode::OK
    );
    let mut laptop = app.signed_in("root@example.org").await;
    let r = app.rpc(&mut laptop, "revoke_other_sessions", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.signed_in_as(&mut b).await, None);
    let ended = events(&app, "user.impersonation_ended").await;
    assert_eq!(ended.len(), 2, "{ended:?}");
    assert!(ended[1].2.contains("signed_out"), "{ended:?}");

    // The administrator's account disabled meanwhile: the session ends altogether.
    let mut c = app.signed_in("root2@example.org").await;
    assert_eq!(
        impersonate(&app, &mut c, "ann@example.org", "ticket 10")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.signed_in_as(&mut c).await.as_deref(),
        Some("ann@example.org")
    );
    sqlx::query("update app_user set status = 'disabled' where user_id = $1")
        .bind(&root2)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    assert_eq!(app.signed_in_as(&mut c).await, None);

    // An administrator who loses the permission (demoted in the system organization, which
    // leaves their sessions be): the impersonating session ends on its next request, and its
    // end is recorded, once, with why.
    let root3 = app.user("root3@example.org", Some(Role::Owner)).await;
    let mut e = app.signed_in("root3@example.org").await;
    assert_eq!(
        impersonate(&app, &mut e, "ann@example.org", "ticket 13")
            .await
            .status,
        StatusCode::OK
    );
    let recorded = events(&app, "user.impersonation_ended").await.len();
    sqlx::query("update membership set role = 'member' where user_id = $1 and organization_id = 'org_system'")
        .bind(&root3)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    assert_eq!(app.signed_in_as(&mut e).await, None);
    assert_eq!(app.signed_in_as(&mut e).await, None);
    let ended = events(&app, "user.impersonation_ended").await;
    assert_eq!(ended.len(), recorded + 1, "{ended:?}");
    assert_eq!(ended[recorded].0.as_deref(), Some(root3.as_str()));
    assert!(ended[recorded].2.contains("unauthorized"), "{ended:?}");

    // The user is disabled while impersonated: the session ends, its end recorded with why.
    let mut d = app.signed_in("root@example.org").await;
    assert_eq!(
        impersonate(&app, &mut d, "ann@example.org", "ticket 12")
            .await
            .status,
        StatusCode::OK
    );
    sqlx::query("update app_user set status = 'disabled' where email = 'ann@example.org'")
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    assert_eq!(app.signed_in_as(&mut d).await, None);
    let ended = events(&app, "user.impersonation_ended").await;
    assert_eq!(ended.len(), recorded + 2, "{ended:?}");
    assert!(ended[recorded + 1].2.contains("inactive"), "{ended:?}");
}

/// A new session of `admin`, impersonating ann@example.org.
async fn as_ann(app: &TestApp, admin: &str, ticket: &str) -> Browser {
    let mut b = app.signed_in(admin).await;
    let r = impersonate(app, &mut b, "ann@example.org", ticket).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    b
}

/// An impersonating session that ends with no request of its own to find it records its end
/// all the same, once, with the administrator as actor, the user as subject, and why: swept
/// once idle, its tab closed (`inactive`); or ended with the administrator's sessions — by
/// another administrator (`ended_by_administrator`, `account_disabled`, `account_deleted`), or
/// by themselves from another browser (`signed_out`, `credentials_changed`). Sessions that were
/// not impersonating record nothing.
#[tokio::test]
async fn an_impersonation_ended_without_a_request_records_its_end() {
    let app = spawn().await;
    let root = app.user("root@example.org", Some(Role::Owner)).await;
    let root2 = app.user("root2@example.org", Some(Role::Owner)).await;
    let boss = app.user("boss@example.org", Some(Role::Owner)).await;
    let ann = app.user("ann@example.org", None).await;
    let mut admins = app.signed_in("boss@example.org").await;
    // The ends recorded so far; the last one is `admin`'s, of ann, for `why`.
    let ended_for = |admin: String, why: &'static str, count: usize| {
        let (app, ann) = (&app, ann.clone());
        async move {
            let ended = events(app, "user.impersonation_ended").await;
            assert_eq!(ended.len(), count, "{ended:?}");
            let last = &ended[count - 1];
            assert_eq!(last.0.as_deref(), Some(admin.as_str()), "{ended:?}");
            assert_eq!(last.1.as_deref(), Some(ann.as_str()), "{ended:?}");
            assert!(last.2.contains(&format!("\"why\":\"{why}\"")), "{ended:?}");
        }
    };

    // Swept once idle: the impersonating session records `inactive`; another expired session
    // (not impersonating) records nothing.
    as_ann(&app, "root@example.org", "ticket 21").await;
    app.signed_in("ann@example.org").await;
    sqlx::query("update session set expires_at = 1 where user_id <> $1")
        .bind(&boss)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    app::identity::sessions::sweep_expired(&app.state.db)
        .await
        .unwrap();
    ended_for(root.clone(), "inactive", 1).await;

    // Ended by its handle from the Users page.
    let mut b = as_ann(&app, "root@example.org", "ticket 22").await;
    let listed = app
        .rpc(&mut admins, "user_sessions", &[("user_id", &root)])
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let handle = listed.json()[0]["handle"].as_str().unwrap().to_owned();
    let r = app
        .rpc(
            &mut admins,
            "end_user_session",
            &[("user_id", &root), ("handle", &handle)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.signed_in_as(&mut b).await, None);
    ended_for(root.clone(), "ended_by_administrator", 2).await;

    // The administrator's account disabled by another: every session of theirs ends.
    let mut b = as_ann(&app, "root@example.org", "ticket 23").await;
    let status = |active: &'static str| {
        let (app, mut admins, root) = (&app, admins.clone(), root.clone());
        async move {
            let form = [("user_id", root.as_str()), ("active", active)];
            let r = app.rpc(&mut admins, "set_user_status", &form).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    };
    status("false").await;
    assert_eq!(app.signed_in_as(&mut b).await, None);
    ended_for(root.clone(), "account_disabled", 3).await;
    status("true").await;

    // The administrator signs their other sessions out, then changes their password, from
    // another browser.
    let mut laptop = app.signed_in("root@example.org").await;
    let mut b = as_ann(&app, "root@example.org", "ticket 24").await;
    let r = app.rpc(&mut laptop, "revoke_other_sessions", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.signed_in_as(&mut b).await, None);
    ended_for(root.clone(), "signed_out", 4).await;
    let mut b = as_ann(&app, "root@example.org", "ticket 25").await;
    let r = app
        .rpc(
            &mut laptop,
            "change_password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "an entirely new passphrase 25"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.signed_in_as(&mut b).await, None);
    ended_for(root.clone(), "credentials_changed", 5).await;

    // Another administrator's account deleted.
    let mut b = as_ann(&app, "root2@example.org", "ticket 26").await;
    let r = app
        .rpc(&mut admins, "delete_user", &[("user_id", &root2)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.signed_in_as(&mut b).await, None);
    ended_for(root2.clone(), "account_deleted", 6).await;
    assert_eq!(events(&app, "user.impersonation_started").await.len(), 6);
}

/// A page rendered on the server while impersonating runs its server functions in the
/// renderer's own tasks: their `impersonation.call` entries still carry the request's id and
/// user agent, like calls from the browser.
#[tokio::test]
async fn calls_made_while_rendering_a_page_carry_the_request() {
    let app = spawn().await;
    app.user("root@example.org", Some(Role::Owner)).await;
    let ann = app.user("ann@example.org", None).await;
    let mut b = app.signed_in("root@example.org").await;
    let r = impersonate(&app, &mut b, "ann@example.org", "ticket 13").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    b.user_agent = Some("page-render-test/1.0".into());
    let before = events(&app, "impersonation.call").await.len();
    let mut request = http::Request::get("/keys");
    for (name, value) in [
        ("cookie", b.header().unwrap()),
        ("user-agent", "page-render-test/1.0".to_string()),
    ] {
        request = request.header(name, value);
    }
    let r = app
        .send(request.body(axum::body::Body::empty()).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let request_id = r.headers["x-request-id"].to_str().unwrap().to_string();
    let calls = events(&app, "impersonation.call").await;
    let rendered = &calls[before..];
    assert!(
        !rendered.is_empty(),
        "the page's server functions were recorded"
    );
    for (_, subject, data) in rendered {
        assert_eq!(subject.as_deref(), Some(ann.as_str()));
        let data: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(data["request_id"], request_id.as_str(), "{data}");
        assert_eq!(data["user_agent"], "page-render-test/1.0", "{data}");
    }
}

#[tokio::test]
async fn a_session_ended_while_its_start_runs_does_not_come_back_impersonating() {
    use app::access::ssr::{authorize, Principal};
    use app::access::Permission;
    let app = spawn().await;
    let root = app.user("root@example.org", Some(Role::Owner)).await;
    app.user("ann@example.org", None).await;
    let b = app.signed_in("root@example.org").await;
    let id = b.session_id();
    let store = std::sync::Arc::new(app::ssr::session_store::DbSessionStore::new(
        app.state.db.clone(),
        app.state.config.session_absolute,
    ));
    let session = tower_sessions::Session::new(Some(id), store, None);
    // The request passed the guard (so it holds a grant); then the session was ended by name
    // on another device.
    let grant = authorize(
        &app.state.db,
        &Principal::User {
            user_id: root.clone(),
        },
        SYSTEM_ORG_ID,
        Permission::ImpersonationWrite,
    )
    .await
    .unwrap();
    app.delete_sessions_of(&root).await;
    let r = app::admin::impersonation::start(
        &app.state,
        &session,
        &grant,
        "ann@example.org",
        "ticket 77",
        Some(30),
        None,
    )
    .await;
    assert_eq!(r.unwrap_err().code, app::error::ErrorCode::Unauthenticated);
    // What the session layer does at the end of the request: no session of the
    // administrator's comes back (at most an empty, signed-out one).
    session.save().await.unwrap();
    let theirs: i64 = sqlx::query_scalar("select count(*) from session where user_id is not null")
        .fetch_one(&app.state.db.reader)
        .await
        .unwrap();
    assert_eq!(theirs, 0, "no session came back");
    assert!(events(&app, "user.impersonation_started").await.is_empty());
}

/// The console's plain routes (the usage export and live feed, the audit export) record an
/// impersonated call with the address it came from, as server functions do.
#[tokio::test]
async fn an_impersonated_export_is_recorded_with_its_address() {
    let app = spawn().await;
    app.user("root@example.org", Some(Role::Owner)).await;
    let ann = app.user("ann@example.org", None).await;
    let ann_org = app.org_of(&ann).await;
    let mut b = app.signed_in("root@example.org").await;
    let r = impersonate(&app, &mut b, "ann@example.org", "ticket 7: her export").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut request = http::Request::get(format!(
        "/usage/export?organization_id={ann_org}&range=1h&format=csv"
    ));
    if let Some(cookie) = b.header() {
        request = request.header(http::header::COOKIE, cookie);
    }
    let mut request = request.body(axum::body::Body::empty()).unwrap();
    let peer: std::net::SocketAddr = "198.51.100.23:50000".parse().unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let r = app.send(request).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let recorded: Vec<Option<String>> = sqlx::query_scalar(
        "select source_ip from domain_event where kind = 'impersonation.call' and data like '%usage_export%'",
    )
    .fetch_all(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(recorded, vec![Some("198.51.100.23".to_string())]);
}

/// A user held to enrolling a second factor (their organization requires one, they have none)
/// does not hold the administrator impersonating them: the read-only calls go through, and the
/// administrator's own session is not left held when the impersonation ends.
#[tokio::test]
async fn a_user_held_to_enrolment_does_not_hold_the_administrator() {
    let app = spawn().await;
    app.user("root@example.org", Some(Role::Owner)).await;
    let ann = app.user("ann@example.org", None).await;
    let ann_org = app.org_of(&ann).await;
    sqlx::query(
        "insert into organization_policy (organization_id, require_two_factor, updated_at) values ($1, 1, 0)",
    )
    .bind(&ann_org)
    .execute(&app.state.db.writer)
    .await
    .unwrap();
    // Ann herself is held.
    let mut ann_b = app.signed_in("ann@example.org").await;
    let r = app
        .rpc(&mut ann_b, "list_keys", &[("organization_id", &ann_org)])
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "two_factor_required", "ann");

    let mut b = app.signed_in("root@example.org").await;
    let r = impersonate(&app, &mut b, "ann@example.org", "ticket 7: her keys").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .rpc(&mut b, "list_keys", &[("organization_id", &ann_org)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let me = app.rpc(&mut b, "current_user", &[]).await.json();
    assert_eq!(me["email"], "ann@example.org");
    assert_eq!(me["must_enrol_two_factor"], false, "{me}");

    let r = app.rpc(&mut b, "stop_impersonation", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let me = app.rpc(&mut b, "current_user", &[]).await.json();
    assert_eq!(me["email"], "root@example.org");
    assert_eq!(me["must_enrol_two_factor"], false, "{me}");
    let r = app.rpc(&mut b, "list_users", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn wrong_current_password(app: &TestApp, b: &mut Browser) -> Reply {
    app.rpc(
        b,
        "change_password",
        &[
            ("current_password", "not the password at all"),
            ("new_password", "a brand new passphrase"),
        ],
    )
    .await
}

/// Starting and stopping an impersonation gives the session a new id, not a new sign-in: the
/// password guesses its re-authentications spent still count (a stolen administrator's cookie
/// cannot renew its allowance by impersonating someone and stopping).
#[tokio::test]
async fn an_impersonation_does_not_renew_the_session_s_password_guesses() {
    let app = spawn_with(|c| c.sign_in_failures_per_hour = 3).await;
    app.user("root@example.org", Some(Role::Owner)).await;
    app.user("ann@example.org", None).await;
    let mut b = app.signed_in("root@example.org").await;
    for _ in 0..3 {
        let r = wrong_current_password(&app, &mut b).await;
        assert_refused(
            &r,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "a wrong guess",
        );
    }
    let r = wrong_current_password(&app, &mut b).await;
    assert_refused(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited", "the 4th");
    let r = impersonate(&app, &mut b, "ann@example.org", "ticket 42").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.rpc(&mut b, "stop_impersonation", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.signed_in_as(&mut b).await.as_deref(),
        Some("root@example.org")
    );
    let r = wrong_current_password(&app, &mut b).await;
    assert_refused(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited", "after");
}
