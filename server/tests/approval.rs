//! Approval of new keys: where an organization requires it, keys created or imported by
//! someone without `approvals:write` wait (status `pending`) and do not verify; an approver
//! who holds what the key holds approves it (never their own), or rejects it (revoked); edits
//! of an approved key's access by a non-approver are refused; racing reviews apply once.
//! Runs on SQLite, and on PostgreSQL when `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use common::*;
use http::StatusCode;
use serde_json::json;

const IP: &str = "192.0.2.40";

/// An organization that requires approval: its owner, an admin and a member (signed in).
struct Team {
    app: TestApp,
    org: String,
    owner: Browser,
    admin: Browser,
    member: Browser,
    member_id: String,
}

async fn team() -> Team {
    let app = spawn().await;
    let owner_id = app.user("owner@example.org", None).await;
    let org = app.org_of(&owner_id).await;
    let admin_id = app.user("admin@example.org", None).await;
    app.add_member(&org, &admin_id, "admin").await;
    let member_id = app.user("member@example.org", None).await;
    app.add_member(&org, &member_id, "member").await;
    let mut owner = app.signed_in("owner@example.org").await;
    let r = app
        .rpc(
            &mut owner,
            "set_org_policy",
            &[
                ("organization_id", org.as_str()),
                ("max_key_lifetime_days", ""),
                ("require_key_approval", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["require_key_approval"], true);
    Team {
        admin: app.signed_in("admin@example.org").await,
        member: app.signed_in("member@example.org").await,
        owner,
        app,
        org,
        member_id,
    }
}

/// Creates a basic key in the console; answers (id, secret, status).
async fn create(t: &Team, b: &mut Browser, name: &str) -> (String, String, String) {
    let r = t
        .app
        .rpc(
            b,
            "create_key",
            &[
                ("organization_id", t.org.as_str()),
                ("name", name),
                ("environment", "live"),
                ("category", "basic"),
                ("ip_allowlist", ""),
                ("expires_in_days", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v = r.json();
    (
        v["id"].as_str().unwrap().to_string(),
        v["key"].as_str().unwrap().to_string(),
        v["status"].as_str().unwrap().to_string(),
    )
}

/// Renames `key_id` from the key page as `b`, nothing else changed.
async fn rename(t: &Team, b: &mut Browser, key_id: &str, name: &str) -> Reply {
    t.app
        .rpc(
            b,
            "update_key",
            &[
                ("organization_id", t.org.as_str()),
                ("key_id", key_id),
                ("name", name),
                ("description", ""),
                ("category", "basic"),
                ("ip_allowlist", ""),
                ("expires_on", ""),
                ("reason", ""),
            ],
        )
        .await
}

/// Reviews `key_id` as it is now (its current version), as the console does.
async fn review(app: &TestApp, org: &str, b: &mut Browser, key_id: &str, decision: &str) -> Reply {
    let version = app.key_version(key_id).await;
    review_seen(app, org, b, key_id, decision, Some(&version)).await
}

/// Reviews `key_id` as the reviewer saw it at `version` (`None`: sending none).
async fn review_seen(
    app: &TestApp,
    org: &str,
    b: &mut Browser,
    key_id: &str,
    decision: &str,
    version: Option<&str>,
) -> Reply {
    let mut form = vec![
        ("organization_id", org),
        ("key_id", key_id),
        ("decision", decision),
        ("reason", ""),
    ];
    form.extend(version.map(|v| ("version", v)));
    app.rpc(b, "review_key", &form).await
}

/// What `POST /api/v1/keys/verify` says about `secret`, asked with an approved key.
async fn verification(t: &Team, checker: &str, secret: &str) -> serde_json::Value {
    let r = t
        .app
        .api(
            "POST",
            "/api/v1/keys/verify",
            Some(checker),
            Some(json!({ "key": secret })),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

#[tokio::test]
async fn a_members_key_waits_does_not_verify_and_works_once_approved() {
    let mut t = team().await;
    let (_, checker) = t.app.admin_key(&t.org).await;
    // An approver's own keys never wait.
    let mut admin = t.admin.clone();
    let (_, _, status) = create(&t, &mut admin, "admin's key").await;
    assert_eq!(status, "active");
    let mut member = t.member.clone();
    let (id, secret, status) = create(&t, &mut member, "member's key").await;
    assert_eq!(status, "pending");

    // Refused everywhere with its own code.
    let r = t
        .app
        .api("GET", "/api/v1/keys", Some(&secret), None, IP)
        .await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "key_pending_approval",
        "pending key",
    );
    let v = verification(&t, &checker, &secret).await;
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["code"], "key_pending_approval", "{v}");
    // Listed under its filter; not as active.
    let r = t
        .app
        .api(
            "GET",
            "/api/v1/keys?status=pending",
            Some(&checker),
            None,
            IP,
        )
        .await;
    let ids: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec![id.clone()]);
    let r = t
        .app
        .api(
            "GET",
            "/api/v1/keys?status=active",
            Some(&checker),
            None,
            IP,
        )
        .await;
    assert!(!r.body.contains(&id), "a pending key is not active");
    // The approvers were told; the creator was not.
    let told: Vec<String> = sqlx::query_scalar(
        "select u.email from notification n join app_user u on u.user_id = n.user_id
         where n.kind = 'approval' order by u.email",
    )
    .fetch_all(&t.app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(told, ["admin@example.org", "owner@example.org"]);

    // Bad input writes nothing.
    let before = t.app.snapshot().await;
    let r = review(&t.app, &t.org, &mut t.admin, &id, "maybe").await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "bad decision");
    // The member can neither approve (no approvals:write) nor edit its access meanwhile
    // past what they hold.
    let r = review(&t.app, &t.org, &mut member, &id, "approve").await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "member approves");
    assert_eq!(t.app.snapshot().await, before, "refusals wrote nothing");

    // The admin approves: the key works at once, the timeline says who.
    let r = review(&t.app, &t.org, &mut t.admin, &id, "approve").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["status"], "active");
    let r = t
        .app
        .api("GET", "/api/v1/keys", Some(&secret), None, IP)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(verification(&t, &checker, &secret).await["valid"], true);
    let r = t
        .app
        .api(
            "GET",
            &format!("/api/v1/keys/{id}/history"),
            Some(&checker),
            None,
            IP,
        )
        .await;
    let kinds: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["created", "approved"]);
    let told: i64 = sqlx::query_scalar(
        "select count(*) from notification where user_id = $1 and kind = 'review' and title like '%was approved'",
    )
    .bind(&t.member_id)
    .fetch_one(&t.app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(told, 1, "the creator is told");
    // Reviewed once: a second decision is a conflict.
    let r = review(&t.app, &t.org, &mut t.admin, &id, "reject").await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "second review");
}

#[tokio::test]
async fn a_rejected_key_is_revoked_and_nobody_reviews_their_own() {
    let mut t = team().await;
    let mut member = t.member.clone();
    let (mine, secret, _) = create(&t, &mut member, "mine").await;
    // The member becomes an admin: still not the reviewer of the key they created.
    t.app.set_role(&t.org, &t.member_id, "admin").await;
    let before = t.app.snapshot().await;
    let r = review(&t.app, &t.org, &mut member, &mine, "approve").await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "own key");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("someone else"));
    assert_eq!(t.app.snapshot().await, before, "nothing written");
    // Nor through a key they made (a key is its maker's hand).
    let (their_key_id, their_key) = t
        .app
        .scoped_key(
            &t.org,
            json!({"keys": "write", "approvals": "write", "org": "read"}),
        )
        .await;
    sqlx::query("update api_key set created_by = $1 where api_key_id = $2")
        .bind(&t.member_id)
        .bind(&their_key_id)
        .execute(&t.app.state.db.writer)
        .await
        .unwrap();
    let before = t.app.snapshot().await;
    let r = t
        .app
        .api(
            "POST",
            &format!("/api/v1/keys/{mine}/approve"),
            Some(&their_key),
            Some(json!({"version": t.app.key_version(&mine).await})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "own key, through a key",
    );
    assert!(r.body.contains("someone else"), "{}", r.body);
    assert_eq!(t.app.snapshot().await, before, "nothing written");
    // Someone else rejects it: revoked, and so it stays.
    let r = review(&t.app, &t.org, &mut t.owner, &mine, "reject").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["status"], "revoked");
    let r = t
        .app
        .api("GET", "/api/v1/keys", Some(&secret), None, IP)
        .await;
    assert_refused(&r, StatusCode::UNAUTHORIZED, "key_revoked", "rejected key");
    let r = t
        .app
        .rpc(
            &mut t.owner,
            "set_key_status",
            &[
                ("organization_id", t.org.as_str()),
                ("key_id", mine.as_str()),
                ("action", "enable"),
                ("reason", ""),
            ],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::CONFLICT,
        "conflict",
        "enable a rejected key",
    );
}

#[tokio::test]
async fn enabling_a_pending_key_does_not_approve_it() {
    let mut t = team().await;
    let mut member = t.member.clone();
    let (id, secret, _) = create(&t, &mut member, "sneaky").await;
    for action in ["disable", "enable"] {
        let r = t
            .app
            .rpc(
                &mut member,
                "set_key_status",
                &[
                    ("organization_id", t.org.as_str()),
                    ("key_id", id.as_str()),
                    ("action", action),
                    ("reason", ""),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{action}: {}", r.body);
        assert_eq!(r.json()["status"], "pending", "{action}");
    }
    let r = t
        .app
        .api("GET", "/api/v1/keys", Some(&secret), None, IP)
        .await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "key_pending_approval",
        "after enable",
    );
    // Nor does a roll hand out a working successor.
    let r = t
        .app
        .rpc(
            &mut member,
            "roll_key",
            &[
                ("organization_id", t.org.as_str()),
                ("key_id", id.as_str()),
                ("grace_seconds", "0"),
            ],
        )
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "roll a pending key");
    // Only its creator (or an approver) reshapes a key that waits.
    let other = t.app.user("other@example.org", None).await;
    t.app.add_member(&t.org, &other, "member").await;
    let mut other = t.app.signed_in("other@example.org").await;
    let before = t.app.snapshot().await;
    let r = rename(&t, &mut other, &id, "hijacked").await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "another member edits",
    );
    assert!(r.body.contains("creator or an approver"), "{}", r.body);
    assert_eq!(t.app.snapshot().await, before, "nothing written");
    let _ = &mut t;
}

#[tokio::test]
async fn an_approved_keys_access_changes_only_through_an_approver() {
    let mut t = team().await;
    let mut member = t.member.clone();
    let (id, _, _) = create(&t, &mut member, "worker").await;
    let r = review(&t.app, &t.org, &mut t.admin, &id, "approve").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let edit = |ips: &'static str, name: &'static str| {
        vec![
            ("organization_id", t.org.clone()),
            ("key_id", id.clone()),
            ("name", name.to_string()),
            ("description", String::new()),
            ("category", "basic".to_string()),
            ("ip_allowlist", ips.to_string()),
            ("expires_on", String::new()),
            ("reason", String::new()),
        ]
    };
    // Renaming is fine; dropping to another IP allow-list is the approver's call.
    let form = edit("", "renamed");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = t.app.rpc(&mut member, "update_key", &pairs).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let before = t.app.snapshot().await;
    let form = edit("10.0.0.0/8", "renamed");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = t.app.rpc(&mut member, "update_key", &pairs).await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "member edits access",
    );
    assert_eq!(t.app.snapshot().await, before, "nothing written");
    let r = t.app.rpc(&mut t.admin, "update_key", &pairs).await;
    assert_eq!(r.status, StatusCode::OK, "an approver may: {}", r.body);
    // The limit is part of what was approved: a member cannot raise it.
    let before = t.app.snapshot().await;
    let limit = [
        ("organization_id", t.org.as_str()),
        ("key_id", id.as_str()),
        ("rate_limit", "100000"),
        ("rate_window_seconds", "60"),
    ];
    let r = t.app.rpc(&mut member, "set_key_limit", &limit).await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "member raises the limit",
    );
    assert_eq!(t.app.snapshot().await, before, "nothing written");
    let r = t.app.rpc(&mut t.admin, "set_key_limit", &limit).await;
    assert_eq!(r.status, StatusCode::OK, "an approver may: {}", r.body);
    assert_eq!(r.json()["rate_limit"], 100000, "{}", r.body);
    // A roll by someone who cannot approve hands out a successor that waits; the old key
    // works through its grace meanwhile.
    let r = t
        .app
        .rpc(
            &mut member,
            "roll_key",
            &[
                ("organization_id", t.org.as_str()),
                ("key_id", id.as_str()),
                ("grace_seconds", "3600"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["status"], "pending", "{}", r.body);
    let successor = r.json()["key"].as_str().unwrap().to_string();
    let r = t
        .app
        .api("GET", "/api/v1/keys", Some(&successor), None, IP)
        .await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "key_pending_approval",
        "successor",
    );
}

#[tokio::test]
async fn racing_reviews_apply_once() {
    let t = team().await;
    let mut member = t.member.clone();
    let (id, _, _) = create(&t, &mut member, "contested").await;
    let (_, approver_a) = t.app.admin_key(&t.org).await;
    let (_, approver_b) = t.app.admin_key(&t.org).await;
    let version = t.app.key_version(&id).await;
    let calls = [("approve", approver_a), ("reject", approver_b)]
        .into_iter()
        .map(|(decision, key)| {
            let app = &t.app;
            let path = format!("/api/v1/keys/{id}/{decision}");
            let body = json!({ "version": version });
            async move { app.api("POST", &path, Some(&key), Some(body), IP).await }
        })
        .collect();
    let replies = join_all(calls).await;
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 409],
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let events: i64 = sqlx::query_scalar(
        "select count(*) from api_key_event where api_key_id = $1 and kind in ('approved', 'rejected')",
    )
    .bind(&id)
    .fetch_one(&t.app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(events, 1);
}

#[tokio::test]
async fn without_the_policy_nothing_waits_and_imports_follow_it() {
    let mut t = team().await;
    // Imported by someone who cannot approve: waits too.
    let (_, basic) = t
        .app
        .scoped_key(&t.org, json!({"keys": "write", "org": "read"}))
        .await;
    let r = t
        .app
        .api(
            "POST",
            "/api/v1/keys/import",
            Some(&basic),
            Some(json!([
                {"name": "imported", "category": "basic"},
                {"name": "imported 2", "category": "basic"},
                {"name": "imported 3", "category": "basic"}
            ])),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let row = &r.json()["rows"][0];
    assert_eq!(row["message"], "awaits approval", "{row}");
    // The approvers hear of the import once each, not once per row.
    let told: Vec<(String, i64)> = sqlx::query_as(
        "select user_id, count(*) from notification where kind = 'approval' group by user_id order by user_id",
    )
    .fetch_all(&t.app.state.db.reader)
    .await
    .unwrap();
    // The owner and the admin; not the member, who cannot approve.
    let approvers: Vec<(String, i64)> = sqlx::query_scalar::<_, String>(
        "select user_id from app_user where email in ('owner@example.org', 'admin@example.org') order by user_id",
    )
    .fetch_all(&t.app.state.db.reader)
    .await
    .unwrap()
    .into_iter()
    .map(|u| (u, 1))
    .collect();
    assert_eq!(told, approvers);
    let n = told.len() as i64;
    let mailed: i64 = sqlx::query_scalar(
        "select count(*) from outbox_email where subject like '%imported keys await your approval%'",
    )
    .fetch_one(&t.app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(mailed, n);
    let id = row["id"].as_str().unwrap().to_string();
    let status: String = sqlx::query_scalar("select approval from api_key where api_key_id = $1")
        .bind(&id)
        .fetch_one(&t.app.state.db.reader)
        .await
        .unwrap();
    assert_eq!(status, "pending");
    // Policy off: a member's new key works at once.
    let r = t
        .app
        .rpc(
            &mut t.owner,
            "set_org_policy",
            &[
                ("organization_id", t.org.as_str()),
                ("max_key_lifetime_days", ""),
            ],
        )
        .await;
    assert_eq!(r.json()["require_key_approval"], false, "{}", r.body);
    let mut member = t.member.clone();
    let (_, secret, status) = create(&t, &mut member, "later").await;
    assert_eq!(status, "active");
    let r = t
        .app
        .api("GET", "/api/v1/keys", Some(&secret), None, IP)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Everyone who may review keys is told a key waits: owners and admins, and a member holding
/// `approvals:write` through a custom role; a member whose custom role lacks it is not.
#[tokio::test]
async fn members_approving_through_a_custom_role_are_told_a_key_waits() {
    let t = team().await;
    let operator = app::access::ssr::Grant::operator(&t.org);
    let db = &t.app.state.db;
    let reviewers =
        app::access::roles::create_role(db, &operator, "reviewers", "", &["member".to_string()])
            .await
            .unwrap()
            .id;
    app::access::roles::set_permission(db, &operator, &reviewers, "approvals:write", true, false)
        .await
        .unwrap();
    let helpers =
        app::access::roles::create_role(db, &operator, "helpers", "", &["member".to_string()])
            .await
            .unwrap()
            .id;
    for (email, role) in [
        ("rev@example.org", &reviewers),
        ("help@example.org", &helpers),
    ] {
        let user = t.app.user(email, None).await;
        t.app.add_member(&t.org, &user, "member").await;
        let results = app::access::roles::assign(db, &operator, role, &[user], true)
            .await
            .unwrap();
        assert!(results[0].ok, "{results:?}");
    }
    let mut member = t.member.clone();
    let (_, _, status) = create(&t, &mut member, "worker").await;
    assert_eq!(status, "pending");
    let told: Vec<String> = sqlx::query_scalar(
        "select u.email from notification n join app_user u on u.user_id = n.user_id
         where n.kind = 'approval' order by u.email",
    )
    .fetch_all(&t.app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(
        told,
        ["admin@example.org", "owner@example.org", "rev@example.org"]
    );
}

/// A reviewer approves the key they looked at: an edit by its creator since that version sends
/// them back (409), and an approval that names no version is refused; nothing is written
/// either way. Approving the version they see then works.
#[tokio::test]
async fn an_approval_applies_to_the_key_as_the_reviewer_saw_it() {
    let mut t = team().await;
    let mut member = t.member.clone();
    let (id, secret, _) = create(&t, &mut member, "reporting").await;
    let seen = t.app.key_version(&id).await;
    // While the admin looks, the creator reshapes it.
    let r = rename(&t, &mut member, &id, "reporting (reshaped)").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_ne!(t.app.key_version(&id).await, seen);
    let before = t.app.snapshot().await;
    let r = review_seen(&t.app, &t.org, &mut t.admin, &id, "approve", Some(&seen)).await;
    assert_refused(
        &r,
        StatusCode::CONFLICT,
        "conflict",
        "approve a stale version",
    );
    assert!(r.body.contains("changed while you reviewed"), "{}", r.body);
    // No version at all, through the console's function or over REST.
    let r = review_seen(&t.app, &t.org, &mut t.admin, &id, "approve", None).await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "no version");
    assert_eq!(t.app.snapshot().await, before, "nothing written");
    let (_, approver) = t.app.admin_key(&t.org).await;
    let before_rest = t.app.snapshot().await;
    for body in [None, Some(json!({"reason": "looks fine"}))] {
        let r = t
            .app
            .api(
                "POST",
                &format!("/api/v1/keys/{id}/approve"),
                Some(&approver),
                body,
                IP,
            )
            .await;
        assert_refused(
            &r,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "REST, no version",
        );
        assert!(r.body.contains("version"), "{}", r.body);
    }
    assert_eq!(t.app.snapshot().await, before_rest, "nothing written");
    assert_eq!(
        verification(&t, &approver, &secret).await["code"],
        "key_pending_approval"
    );
    // The version the admin sees now.
    let r = review(&t.app, &t.org, &mut t.admin, &id, "approve").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["name"], "reporting (reshaped)");
    assert_eq!(verification(&t, &approver, &secret).await["valid"], true);

    // Rejecting takes power away whatever the key became: no version needed.
    let (other, _, _) = create(&t, &mut member, "other").await;
    let r = rename(&t, &mut member, &other, "other (reshaped)").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = review_seen(&t.app, &t.org, &mut t.admin, &other, "reject", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["status"], "revoked");
}

/// A pending key is handed out only while whoever made it still stands behind it: not once
/// the key that made it was revoked (a leaked key's pending children), nor once the person who
/// made it left the organization. Rejecting such a key still works.
#[tokio::test]
async fn an_approval_needs_a_maker_who_still_stands_behind_the_key() {
    let mut t = team().await;
    let (maker_id, maker) = t
        .app
        .scoped_key(&t.org, json!({"keys": "write", "org": "read"}))
        .await;
    let (_, checker) = t.app.admin_key(&t.org).await;
    let make = |name: &'static str| {
        let (app, maker) = (&t.app, &maker);
        async move {
            let r = app
                .api(
                    "POST",
                    "/api/v1/keys",
                    Some(maker),
                    Some(json!({"name": name})),
                    IP,
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
            assert_eq!(r.json()["status"], "pending", "{}", r.body);
            (
                r.json()["id"].as_str().unwrap().to_string(),
                r.json()["key"].as_str().unwrap().to_string(),
            )
        }
    };
    let (first, _) = make("first").await;
    let (second, second_secret) = make("second").await;
    // While the maker stands, its keys can be approved.
    let r = review(&t.app, &t.org, &mut t.admin, &first, "approve").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The maker leaks and is revoked: what it left pending is not handed out.
    let r = t
        .app
        .api(
            "DELETE",
            &format!("/api/v1/keys/{maker_id}"),
            Some(&checker),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let before = t.app.snapshot().await;
    let r = review(&t.app, &t.org, &mut t.admin, &second, "approve").await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "maker revoked");
    assert!(r.body.contains("no longer stands behind it"), "{}", r.body);
    assert_eq!(t.app.snapshot().await, before, "nothing written");
    assert_eq!(
        verification(&t, &checker, &second_secret).await["code"],
        "key_pending_approval"
    );
    let r = review(&t.app, &t.org, &mut t.admin, &second, "reject").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["status"], "revoked");

    // A key that rolled itself (grace 0: it stops at once) stands behind its successor: the
    // end of its grace is the roll, not a withdrawal.
    let (roller_id, roller) = t
        .app
        .scoped_key(&t.org, json!({"keys": "write", "org": "read"}))
        .await;
    let r = t
        .app
        .api(
            "POST",
            &format!("/api/v1/keys/{roller_id}/roll"),
            Some(&roller),
            Some(json!({"grace_seconds": 0})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.json()["status"], "pending", "{}", r.body);
    let (successor_id, successor) = (
        r.json()["id"].as_str().unwrap().to_string(),
        r.json()["key"].as_str().unwrap().to_string(),
    );
    let r = review(&t.app, &t.org, &mut t.admin, &successor_id, "approve").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(verification(&t, &checker, &successor).await["valid"], true);

    // A person who made a key and left the organization since.
    let mut member = t.member.clone();
    let (left_behind, _, _) = create(&t, &mut member, "left behind").await;
    t.app.remove_member(&t.org, &t.member_id).await;
    let before = t.app.snapshot().await;
    let r = review(&t.app, &t.org, &mut t.admin, &left_behind, "approve").await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "maker removed");
    assert!(r.body.contains("no longer stands behind it"), "{}", r.body);
    assert_eq!(t.app.snapshot().await, before, "nothing written");
    let _ = &mut t;
}
