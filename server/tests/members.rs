//! Organizations and their members: creating one, invitations (signed, expiring, single use,
//! sent through the outbox) and accepting them, removing, leaving, changing roles, transferring
//! ownership, the last-owner rule under concurrency, and the active organization. Runs on
//! SQLite, and on PostgreSQL when `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use common::*;
use http::StatusCode;

/// A team organization owned by owner@, with an admin and a viewer.
struct Team {
    app: TestApp,
    org: String,
    owner: Browser,
    owner_id: String,
    admin: Browser,
    admin_id: String,
    viewer: Browser,
    viewer_id: String,
}

async fn team() -> Team {
    let app = spawn().await;
    let owner_id = app.user("owner@example.org", None).await;
    let mut owner = app.signed_in("owner@example.org").await;
    let r = app
        .rpc(&mut owner, "create_organization", &[("name", "Acme")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let org: String = r.json().as_str().unwrap().to_string();
    let admin_id = app.user("admin@example.org", None).await;
    app.add_member(&org, &admin_id, "admin").await;
    let viewer_id = app.user("viewer@example.org", None).await;
    app.add_member(&org, &viewer_id, "viewer").await;
    Team {
        admin: app.signed_in("admin@example.org").await,
        viewer: app.signed_in("viewer@example.org").await,
        app,
        org,
        owner,
        owner_id,
        admin_id,
        viewer_id,
    }
}

async fn call(t: &Team, who: &Browser, endpoint: &str, form: &[(&str, &str)]) -> Reply {
    let mut b = who.clone();
    let mut pairs = vec![("organization_id", t.org.as_str())];
    pairs.extend_from_slice(form);
    t.app.rpc(&mut b, endpoint, &pairs).await
}

async fn role_of(t: &Team, user_id: &str) -> Option<String> {
    sqlx::query_scalar("select role from membership where organization_id = $1 and user_id = $2")
        .bind(&t.org)
        .bind(user_id)
        .fetch_optional(&t.app.state.db.reader)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_invited_person_without_an_account_joins_through_the_emailed_link_once() {
    let t = team().await;
    let r = call(
        &t,
        &t.owner,
        "invite_member",
        &[("email", "New.Person@Example.org"), ("role", "member")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_no_secret(&r, "invite");
    assert!(
        !r.body.contains("token"),
        "the link never reaches the inviter: {}",
        r.body
    );
    let token = t
        .app
        .emailed_token("new.person@example.org", "invite")
        .await;
    // The link is signed: no column of the invitation row holds it.
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from invitation where invitation_id || email || role like '%' || $1 || '%'",
    )
    .bind(token.split('.').nth(1).unwrap())
    .fetch_one(&t.app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(stored, 0);

    // The page's preview, before signing in (sign-up is closed on this instance).
    let mut anon = Browser::default();
    let r = t
        .app
        .rpc(&mut anon, "open_invitation", &[("token", &token)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let p = r.json();
    assert_eq!(p["organization_name"], "Acme");
    assert_eq!(p["email"], "new.person@example.org");
    assert_eq!(p["status"], "pending");
    assert_eq!(p["account_exists"], false);

    // A forged token (another signature) is not found, and writes nothing.
    let forged = format!("{}.{}", token.split('.').next().unwrap(), "00".repeat(32));
    let before = t.app.snapshot().await;
    let r = t
        .app
        .rpc(
            &mut anon,
            "accept_invitation",
            &[
                ("token", &forged),
                ("display_name", "New"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_refused(&r, StatusCode::NOT_FOUND, "not_found", "forged token");
    assert_eq!(t.app.snapshot().await, before, "forged token: rows changed");

    // Accepting creates the account and the membership, and signs in.
    let users = t.app.count("app_user").await;
    let r = t
        .app
        .rpc(
            &mut anon,
            "accept_invitation",
            &[
                ("token", &token),
                ("display_name", "New"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(t.app.count("app_user").await, users + 1);
    let new_id: String = sqlx::query_scalar(
        "select user_id from app_user where email_normalized = 'new.person@example.org'",
    )
    .fetch_one(&t.app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(role_of(&t, &new_id).await.as_deref(), Some("member"));
    // Signed in, with the joined organization active and first.
    let r = t.app.rpc(&mut anon, "my_organizations", &[]).await;
    assert_eq!(r.json()[0]["organization_id"], t.org.as_str(), "{}", r.body);
    let r = t.app.rpc(&mut anon, "current_user", &[]).await;
    let me = r.json();
    assert_eq!(me["organizations"][0]["organization_id"], t.org.as_str());
    assert!(me["active_permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "keys:write"));

    // Single use: the same link again is refused, and nothing changes.
    let before = t.app.snapshot().await;
    let mut other = Browser::default();
    let r = t
        .app
        .rpc(
            &mut other,
            "accept_invitation",
            &[
                ("token", &token),
                ("display_name", "Again"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "second use");
    assert!(r.body.contains("used"), "{}", r.body);
    assert_eq!(t.app.snapshot().await, before, "second use: rows changed");
}

#[tokio::test]
async fn revoked_expired_and_misaddressed_invitations_are_refused() {
    let t = team().await;
    for email in ["a@example.org", "b@example.org"] {
        let r = call(
            &t,
            &t.admin,
            "invite_member",
            &[("email", email), ("role", "viewer")],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let a = t.app.emailed_token("a@example.org", "invite").await;
    let b = t.app.emailed_token("b@example.org", "invite").await;
    let r = call(&t, &t.owner, "list_invitations", &[]).await;
    assert_eq!(r.json().as_array().unwrap().len(), 2, "{}", r.body);
    let a_id = a.split('.').next().unwrap();
    let users = t.app.count("app_user").await;
    // A viewer cannot revoke; the owner can.
    let r = call(
        &t,
        &t.viewer,
        "revoke_invitation",
        &[("invitation_id", a_id)],
    )
    .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "viewer revokes");
    let r = call(
        &t,
        &t.owner,
        "revoke_invitation",
        &[("invitation_id", a_id)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut anon = Browser::default();
    let r = t
        .app
        .rpc(
            &mut anon,
            "accept_invitation",
            &[("token", &a), ("display_name", "A"), ("password", PASSWORD)],
        )
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "revoked");
    assert!(r.body.contains("revoked"), "{}", r.body);

    // Expired: the clock is the database's expiry column.
    sqlx::query("update invitation set expires_at = 1 where email = 'b@example.org'")
        .execute(&t.app.state.db.writer)
        .await
        .unwrap();
    let r = t
        .app
        .rpc(
            &mut anon,
            "accept_invitation",
            &[("token", &b), ("display_name", "B"), ("password", PASSWORD)],
        )
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "expired");
    assert_eq!(
        t.app.count("app_user").await,
        users,
        "no account was created"
    );

    // Signed in as someone else: refused, naming the invited address.
    let r = call(
        &t,
        &t.owner,
        "invite_member",
        &[("email", "c@example.org"), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let c = t.app.emailed_token("c@example.org", "invite").await;
    let mut viewer = t.viewer.clone();
    let r = t
        .app
        .rpc(&mut viewer, "accept_invitation", &[("token", &c)])
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "another account");
    assert!(r.body.contains("c@example.org"), "{}", r.body);
}

#[tokio::test]
async fn nobody_hands_out_more_than_they_hold_and_the_last_owner_stays() {
    let t = team().await;
    // An admin may invite admins, never owners.
    let r = call(
        &t,
        &t.admin,
        "invite_member",
        &[("email", "x@example.org"), ("role", "owner")],
    )
    .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "invite as owner",
    );
    // An admin cannot remove or re-role the owner.
    let before = t.app.snapshot().await;
    let r = call(&t, &t.admin, "remove_member", &[("user_id", &t.owner_id)]).await;
    assert!(r.status.is_client_error(), "{}", r.body);
    let r = call(
        &t,
        &t.admin,
        "set_member_role",
        &[("user_id", &t.owner_id), ("role", "viewer")],
    )
    .await;
    assert!(r.status.is_client_error(), "{}", r.body);
    // Nor transfer ownership (org:write is the owner's).
    let r = call(
        &t,
        &t.admin,
        "transfer_ownership",
        &[("user_id", &t.admin_id)],
    )
    .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "admin transfers");
    // The last owner cannot leave.
    let r = call(&t, &t.owner, "leave_organization", &[]).await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "last owner leaves");
    assert_eq!(t.app.snapshot().await, before, "rows changed");

    // A personal organization takes no invitations.
    let personal = t.app.org_of(&t.owner_id).await;
    let mut owner = t.owner.clone();
    let r = t
        .app
        .rpc(
            &mut owner,
            "invite_member",
            &[
                ("organization_id", &personal),
                ("email", "y@example.org"),
                ("role", "viewer"),
            ],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "personal invite",
    );
    assert_eq!(t.app.snapshot().await, before, "rows changed");

    // The owner changes the viewer's role, then hands the organization to the admin.
    let r = call(
        &t,
        &t.owner,
        "set_member_role",
        &[("user_id", &t.viewer_id), ("role", "member")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(role_of(&t, &t.viewer_id).await.as_deref(), Some("member"));
    let r = call(
        &t,
        &t.owner,
        "transfer_ownership",
        &[("user_id", &t.admin_id)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(role_of(&t, &t.admin_id).await.as_deref(), Some("owner"));
    assert_eq!(role_of(&t, &t.owner_id).await.as_deref(), Some("admin"));
    // Now the former owner may leave; the new one may remove the member.
    let r = call(&t, &t.owner, "leave_organization", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(role_of(&t, &t.owner_id).await, None);
    let r = call(&t, &t.admin, "remove_member", &[("user_id", &t.viewer_id)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(role_of(&t, &t.viewer_id).await, None);
}

#[tokio::test]
async fn two_owners_leaving_at_once_leave_one_owner_behind() {
    for _ in 0..5 {
        let t = team().await;
        sqlx::query(
            "update membership set role = 'owner' where organization_id = $1 and user_id = $2",
        )
        .bind(&t.org)
        .bind(&t.admin_id)
        .execute(&t.app.state.db.writer)
        .await
        .unwrap();
        let (a, b) = tokio::join!(
            call(&t, &t.owner, "leave_organization", &[]),
            call(&t, &t.admin, "leave_organization", &[]),
        );
        let ok = [&a, &b]
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .count();
        assert_eq!(ok, 1, "exactly one leaves: {} / {}", a.body, b.body);
        let owners: i64 = sqlx::query_scalar(
            "select count(*) from membership where organization_id = $1 and role = 'owner'",
        )
        .bind(&t.org)
        .fetch_one(&t.app.state.db.reader)
        .await
        .unwrap();
        assert_eq!(owners, 1);
    }
}

#[tokio::test]
async fn the_active_organization_is_one_of_mine_and_the_menus_follow_it() {
    let t = team().await;
    let mut viewer = t.viewer.clone();
    // The viewer's personal organization is active at first: they own it.
    let r = t.app.rpc(&mut viewer, "current_user", &[]).await;
    assert!(r.json()["active_permissions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == "org:write"));
    let r = t
        .app
        .rpc(
            &mut viewer,
            "switch_organization",
            &[("organization_id", &t.org)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = t.app.rpc(&mut viewer, "current_user", &[]).await;
    let perms: Vec<String> =
        serde_json::from_value(r.json()["active_permissions"].clone()).unwrap();
    assert!(perms.contains(&"keys:read".to_string()), "{perms:?}");
    assert!(
        !perms.iter().any(|p| p.ends_with(":write")),
        "a viewer writes nothing: {perms:?}"
    );
    // Another organization cannot be made active.
    let stranger = t.app.user("stranger@example.org", None).await;
    let foreign = t.app.org_of(&stranger).await;
    let r = t
        .app
        .rpc(
            &mut viewer,
            "switch_organization",
            &[("organization_id", &foreign)],
        )
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "foreign switch");
    // And a direct call the menus do not offer is refused by the server.
    let r = call(
        &t,
        &t.viewer,
        "invite_member",
        &[("email", "z@example.org"), ("role", "viewer")],
    )
    .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "viewer invites");
}

/// A custom role of the organization granting `permissions` on top of the viewer, assigned to
/// `user_id` (all through the owner's server functions).
async fn grant_custom(t: &Team, name: &str, permissions: &[&str], user_id: &str) {
    let r = call(
        t,
        &t.owner,
        "create_role",
        &[("name", name), ("parents[0]", "viewer")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let role = r.json()["id"].as_str().unwrap().to_string();
    for p in permissions {
        let r = call(
            t,
            &t.owner,
            "set_role_permission",
            &[("role_id", &role), ("permission", p), ("granted", "true")],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = call(
        t,
        &t.owner,
        "assign_role",
        &[
            ("role_id", &role),
            ("user_ids[0]", user_id),
            ("assign", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_disabled_member_is_not_a_weaker_one_and_does_not_count_as_an_owner() {
    let t = team().await;
    let co_owner = t.app.user("co@example.org", None).await;
    t.app.add_member(&t.org, &co_owner, "owner").await;
    t.app.disable_user(&co_owner).await;
    let before = t.app.snapshot().await;
    // The admin cannot remove a disabled owner.
    let r = call(&t, &t.admin, "remove_member", &[("user_id", &co_owner)]).await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "admin removes disabled owner",
    );
    // The active owner is the last one who can act: they cannot leave, nor hand over to the
    // disabled one.
    let r = call(&t, &t.owner, "leave_organization", &[]).await;
    assert_refused(
        &r,
        StatusCode::CONFLICT,
        "conflict",
        "last active owner leaves",
    );
    let r = call(
        &t,
        &t.owner,
        "transfer_ownership",
        &[("user_id", &co_owner)],
    )
    .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "transfer to disabled",
    );
    assert_eq!(t.app.snapshot().await, before, "rows changed");
    // The active owner may remove the disabled one: the organization keeps its owner.
    let r = call(&t, &t.owner, "remove_member", &[("user_id", &co_owner)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let left: i64 = sqlx::query_scalar(
        "select count(*) from membership where organization_id = $1 and user_id = $2",
    )
    .bind(&t.org)
    .bind(&co_owner)
    .fetch_one(&t.app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(left, 0);
    // The only owner, disabled (suspended by the instance), is not removed by anyone, not even
    // by a key holding everything the organization can hold: it would leave no owner at all.
    let owner_id: String = sqlx::query_scalar(
        "select user_id from membership where organization_id = $1 and role = 'owner'",
    )
    .bind(&t.org)
    .fetch_one(&t.app.state.db.reader)
    .await
    .unwrap();
    let (_, everything) = t.app.admin_key(&t.org).await;
    t.app.disable_user(&owner_id).await;
    let before = t.app.snapshot().await;
    let r = t
        .app
        .api(
            "DELETE",
            &format!("/api/v1/members/{owner_id}"),
            Some(&everything),
            None,
            "192.0.2.50",
        )
        .await;
    assert_refused(
        &r,
        StatusCode::CONFLICT,
        "conflict",
        "the only owner, disabled",
    );
    assert_eq!(t.app.snapshot().await, before, "rows changed");
}

#[tokio::test]
async fn an_invitation_does_not_outlive_its_sender_s_power_nor_keep_its_link() {
    let t = team().await;
    let r = call(
        &t,
        &t.admin,
        "invite_member",
        &[("email", "alt@example.org"), ("role", "admin")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = t.app.emailed_token("alt@example.org", "invite").await;
    // The admin is removed: their pending invitation goes with them, link included.
    let r = call(&t, &t.owner, "remove_member", &[("user_id", &t.admin_id)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut anon = Browser::default();
    let r = t
        .app
        .rpc(
            &mut anon,
            "accept_invitation",
            &[
                ("token", &token),
                ("display_name", "Alt"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::CONFLICT,
        "conflict",
        "accept after the sender left",
    );
    let links: i64 =
        sqlx::query_scalar("select count(*) from outbox_email where body_text like '%token=%'")
            .fetch_one(&t.app.state.db.reader)
            .await
            .unwrap();
    assert_eq!(links, 0, "no working link stays in the outbox");

    // Accepting also takes the link out; revoking an accepted invitation is a conflict.
    let r = call(
        &t,
        &t.owner,
        "invite_member",
        &[("email", "b@example.org"), ("role", "viewer")],
    )
    .await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    let token = t.app.emailed_token("b@example.org", "invite").await;
    let r = t
        .app
        .rpc(
            &mut Browser::default(),
            "accept_invitation",
            &[
                ("token", &token),
                ("display_name", "B"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(&t, &t.owner, "revoke_invitation", &[("invitation_id", &id)]).await;
    assert!(r.status.is_client_error(), "{}", r.body);
    let links: i64 =
        sqlx::query_scalar("select count(*) from outbox_email where body_text like '%token=%'")
            .fetch_one(&t.app.state.db.reader)
            .await
            .unwrap();
    assert_eq!(links, 0);
}

#[tokio::test]
async fn re_inviting_cannot_replace_a_stronger_invitation_and_invitations_are_bounded() {
    let t = team().await;
    // The viewer may invite (a custom role with members:write), but holds a viewer's power.
    grant_custom(&t, "inviter", &["members:write"], &t.viewer_id).await;
    let r = call(
        &t,
        &t.owner,
        "invite_member",
        &[("email", "boss@example.org"), ("role", "admin")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let before = t.app.snapshot().await;
    let r = call(
        &t,
        &t.viewer,
        "invite_member",
        &[("email", "boss@example.org"), ("role", "viewer")],
    )
    .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "replace an admin invitation",
    );
    assert_eq!(t.app.snapshot().await, before, "rows changed");
    // And they cannot invite beyond themselves.
    let r = call(
        &t,
        &t.viewer,
        "invite_member",
        &[("email", "x@example.org"), ("role", "member")],
    )
    .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "invite a member");

    // Re-inviting one address over and over stops at the hourly bound.
    let mut refused = 0;
    for _ in 0..60 {
        let r = call(
            &t,
            &t.owner,
            "invite_member",
            &[("email", "spam@example.org"), ("role", "viewer")],
        )
        .await;
        if r.status == StatusCode::CONFLICT {
            refused += 1;
        } else {
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    }
    // One invitation (boss@) was sent before the loop: 49 more fit in the hour.
    assert_eq!(refused, 11);
    let mails: i64 = sqlx::query_scalar(
        "select count(*) from outbox_email where to_address = 'spam@example.org'",
    )
    .fetch_one(&t.app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(mails, 49);
}

#[tokio::test]
async fn the_key_lifetime_policy_bounds_every_new_expiry() {
    let t = team().await;
    // A key made before the policy, without an expiry (a key that expires bounds the expiry of
    // what it makes by its own, inside the policy's).
    let (_, admin_key) = t.app.admin_key(&t.org).await;
    // Only org:write sets policies; bad input is refused and writes nothing.
    let before = t.app.snapshot().await;
    let r = call(
        &t,
        &t.admin,
        "set_org_policy",
        &[("max_key_lifetime_days", "30")],
    )
    .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "admin sets policy");
    for bad in ["abc", "0", "99999"] {
        let r = call(
            &t,
            &t.owner,
            "set_org_policy",
            &[("max_key_lifetime_days", bad)],
        )
        .await;
        assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", bad);
    }
    assert_eq!(t.app.snapshot().await, before, "rows changed");
    let r = call(
        &t,
        &t.owner,
        "set_org_policy",
        &[("max_key_lifetime_days", "30")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(&t, &t.viewer, "get_org_policy", &[]).await;
    assert_eq!(r.json()["max_key_lifetime_days"], 30, "{}", r.body);
    assert_eq!(r.json()["require_two_factor"], false);

    let create = |days: &'static str| {
        let (app, org, mut owner) = (&t.app, t.org.clone(), t.owner.clone());
        async move {
            app.rpc(
                &mut owner,
                "create_key",
                &[
                    ("organization_id", org.as_str()),
                    ("name", "k"),
                    ("environment", "live"),
                    ("category", "basic"),
                    ("ip_allowlist", ""),
                    ("expires_in_days", days),
                ],
            )
            .await
        }
    };
    let before = t.app.snapshot().await;
    for days in ["", "31"] {
        let r = create(days).await;
        assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", days);
        assert!(r.body.contains("within 30 days"), "{}", r.body);
    }
    assert_eq!(t.app.snapshot().await, before, "rows changed");
    let r = create("7").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_string();
    // Over REST too: a key without expiry, an edit past the limit, an import row without one.
    let r = t
        .app
        .api(
            "POST",
            "/api/v1/keys",
            Some(&admin_key),
            Some(serde_json::json!({"name": "r"})),
            "192.0.2.40",
        )
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "REST create");
    let r = t
        .app
        .api(
            "PATCH",
            &format!("/api/v1/keys/{id}"),
            Some(&admin_key),
            Some(serde_json::json!({"expires_at": "2099-01-01T00:00:00Z"})),
            "192.0.2.40",
        )
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "REST edit");
    // An import row without an expiry: that row is refused, naming the policy; nothing written.
    let before = t.app.snapshot().await;
    let r = t
        .app
        .api(
            "POST",
            "/api/v1/keys/import",
            Some(&admin_key),
            Some(serde_json::json!([{"name": "i"}])),
            "192.0.2.40",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let row = &r.json()["rows"][0];
    assert_eq!(row["action"], "refused", "{row}");
    assert_eq!(row["code"], "invalid_input", "{row}");
    assert!(row["key"].is_null());
    assert!(r.body.contains("within 30 days"), "{}", r.body);
    assert_eq!(t.app.snapshot().await, before, "rows changed");
}

#[tokio::test]
async fn members_and_invitations_over_rest_follow_the_same_rules() {
    let t = team().await;
    const IP: &str = "192.0.2.60";
    // A key that may manage members but holds no more than an admin's member powers.
    let (_, manager) = t
        .app
        .scoped_key(
            &t.org,
            serde_json::json!({"members": "write", "org": "read", "keys": "read", "usage": "read", "roles": "read"}),
        )
        .await;
    let r = t
        .app
        .api("GET", "/api/v1/members", Some(&manager), None, IP)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let emails: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        emails,
        [
            "admin@example.org",
            "owner@example.org",
            "viewer@example.org"
        ]
    );
    // Inviting as viewer works; as admin (more than the key holds) is refused, nothing sent.
    let r = t
        .app
        .api(
            "POST",
            "/api/v1/invitations",
            Some(&manager),
            Some(serde_json::json!({"email": "new@example.org", "role": "viewer"})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let invitation = r.json()["id"].as_str().unwrap().to_string();
    assert!(!r.body.contains("token"), "never the link: {}", r.body);
    let before = t.app.snapshot().await;
    let r = t
        .app
        .api(
            "POST",
            "/api/v1/invitations",
            Some(&manager),
            Some(serde_json::json!({"email": "boss@example.org", "role": "admin"})),
            IP,
        )
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "invite as admin");
    assert_eq!(t.app.snapshot().await, before, "nothing written");
    let r = t
        .app
        .api("GET", "/api/v1/invitations", Some(&manager), None, IP)
        .await;
    assert_eq!(r.json().as_array().unwrap().len(), 1, "{}", r.body);
    let r = t
        .app
        .api(
            "DELETE",
            &format!("/api/v1/invitations/{invitation}"),
            Some(&manager),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    // The admin holds more than the key: neither demoted nor removed by it.
    let before = t.app.snapshot().await;
    let r = t
        .app
        .api(
            "PATCH",
            &format!("/api/v1/members/{}", t.admin_id),
            Some(&manager),
            Some(serde_json::json!({"role": "viewer"})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "demote a stronger member",
    );
    let r = t
        .app
        .api(
            "DELETE",
            &format!("/api/v1/members/{}", t.admin_id),
            Some(&manager),
            None,
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "remove a stronger member",
    );
    assert_eq!(t.app.snapshot().await, before, "nothing written");
    // The viewer is within reach: removed.
    let r = t
        .app
        .api(
            "DELETE",
            &format!("/api/v1/members/{}", t.viewer_id),
            Some(&manager),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(role_of(&t, &t.viewer_id).await, None);
}

/// Accepting as a newcomer creates the account and the membership in one transaction: a
/// revocation racing the acceptance (landing while the password is hashed) leaves either both
/// or neither, never an account on an instance whose sign-up is closed.
#[tokio::test]
async fn a_revocation_racing_a_newcomer_s_acceptance_leaves_no_account_behind() {
    let t = team().await;
    // How long a password hash takes here: the revocation is aimed at its middle.
    let started = std::time::Instant::now();
    app::ssr::password::hash(PASSWORD.to_string())
        .await
        .unwrap();
    let aim = started.elapsed() / 2;
    for i in 0..4 {
        let email = format!("racer{i}@example.org");
        let r = call(
            &t,
            &t.owner,
            "invite_member",
            &[("email", email.as_str()), ("role", "viewer")],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let token = t.app.emailed_token(&email, "invite").await;
        let id = token.split('.').next().unwrap().to_string();
        let mut anon = Browser::default();
        let form = [
            ("token", token.as_str()),
            ("display_name", "R"),
            ("password", PASSWORD),
        ];
        let accept = t.app.rpc(&mut anon, "accept_invitation", &form);
        let revoke = async {
            tokio::time::sleep(aim).await;
            call(&t, &t.owner, "revoke_invitation", &[("invitation_id", &id)]).await
        };
        let (accepted, revoked) = tokio::join!(accept, revoke);
        let account: Option<String> =
            sqlx::query_scalar("select user_id from app_user where email_normalized = $1")
                .bind(&email)
                .fetch_optional(&t.app.state.db.reader)
                .await
                .unwrap();
        let joined = match &account {
            Some(user) => role_of(&t, user).await.is_some(),
            None => false,
        };
        assert_eq!(
            account.is_some(),
            joined,
            "account without membership (accept {} {}, revoke {} {})",
            accepted.status,
            accepted.body,
            revoked.status,
            revoked.body
        );
        assert_eq!(
            accepted.status == StatusCode::OK,
            revoked.status != StatusCode::OK,
            "exactly one wins: accept {} {}, revoke {} {}",
            accepted.status,
            accepted.body,
            revoked.status,
            revoked.body
        );
    }
}

/// Accepting an invitation takes the organization's role lock before anything else, as every
/// membership change does: the sender's power is checked against roles nobody is changing,
/// and a revocation or resend holding the organization never waits for an acceptance holding
/// the invitation (a deadlock, answered with a 500).
#[tokio::test]
async fn accepting_an_invitation_waits_for_a_change_holding_the_organization() {
    if !on_postgres() {
        // SQLite has one writer: the role lock is the writer itself.
        return;
    }
    let t = team().await;
    let late = t.app.user("late@example.org", None).await;
    let r = call(
        &t,
        &t.owner,
        "invite_member",
        &[("email", "late@example.org"), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = t.app.emailed_token("late@example.org", "invite").await;
    let mut browser = t.app.signed_in("late@example.org").await;
    let form = [("token", token.as_str())];
    let accept = t.app.rpc(&mut browser, "accept_invitation", &form);
    let r = waits_for_role_lock(&t.app, &t.org, accept).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(role_of(&t, &late).await.as_deref(), Some("viewer"));
}

/// An invitation is accepted only while whoever sent it could still give its role: power that
/// came from a custom role taken away since, or from a key revoked since, does not stay in a
/// pending link. Nothing is written by a refused acceptance.
#[tokio::test]
async fn an_invitation_is_accepted_only_while_its_sender_could_still_give_the_role() {
    let t = team().await;
    // The viewer can recruit members through a custom role…
    grant_custom(
        &t,
        "recruiter",
        &["members:write", "keys:write"],
        &t.viewer_id,
    )
    .await;
    let r = call(
        &t,
        &t.viewer,
        "invite_member",
        &[("email", "v-alt@example.org"), ("role", "member")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let by_viewer = t.app.emailed_token("v-alt@example.org", "invite").await;
    // A role the viewer still holds after losing the recruiter role: but not the right to
    // invite.
    let r = call(
        &t,
        &t.viewer,
        "invite_member",
        &[("email", "v-view@example.org"), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let viewer_role = t.app.emailed_token("v-view@example.org", "invite").await;
    // …until the owner takes the role away.
    let role: String = sqlx::query_scalar("select role_id from role where name = 'recruiter'")
        .fetch_one(&t.app.state.db.reader)
        .await
        .unwrap();
    let r = call(
        &t,
        &t.owner,
        "assign_role",
        &[
            ("role_id", &role),
            ("user_ids[0]", &t.viewer_id),
            ("assign", "false"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // A key invites twice; one link is used while the key works, then the key is revoked.
    let (key_id, key) = t.app.admin_key(&t.org).await;
    for email in ["k1@example.org", "k2@example.org"] {
        let r = t
            .app
            .api(
                "POST",
                "/api/v1/invitations",
                Some(&key),
                Some(serde_json::json!({ "email": email, "role": "admin" })),
                "192.0.2.90",
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let accept = |token: String, name: &'static str| {
        let app = &t.app;
        async move {
            let form = [
                ("token", token.as_str()),
                ("display_name", name),
                ("password", PASSWORD),
            ];
            app.rpc(&mut Browser::default(), "accept_invitation", &form)
                .await
        }
    };
    let r = accept(t.app.emailed_token("k1@example.org", "invite").await, "K1").await;
    assert_eq!(r.status, StatusCode::OK, "while the key works: {}", r.body);
    let r = t
        .app
        .api(
            "DELETE",
            &format!("/api/v1/keys/{key_id}"),
            Some(&key),
            None,
            "192.0.2.90",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let by_key = t.app.emailed_token("k2@example.org", "invite").await;

    let before = t.app.snapshot().await;
    for (token, what) in [
        (by_viewer, "role taken away"),
        (viewer_role, "no longer allowed to invite"),
        (by_key, "key revoked"),
    ] {
        let r = accept(token, "Late").await;
        assert_refused(&r, StatusCode::CONFLICT, "conflict", what);
        assert!(r.body.contains("can no longer give"), "{what}: {}", r.body);
    }
    assert_eq!(t.app.snapshot().await, before, "no account, no membership");
}

/// A policy change re-reads the caller's permission under the organization's lock: a caller
/// demoted after the guard's check cannot act on its old answer.
#[tokio::test]
async fn a_policy_change_checks_the_caller_again_inside_it() {
    let t = team().await;
    t.app.set_role(&t.org, &t.admin_id, "owner").await;
    let stale = app::access::ssr::authorize(
        &t.app.state.db,
        &app::access::ssr::Principal::User {
            user_id: t.admin_id.clone(),
        },
        &t.org,
        app::access::Permission::OrgWrite,
    )
    .await
    .unwrap();
    t.app.set_role(&t.org, &t.admin_id, "admin").await;
    let before = t.app.snapshot().await;
    let policy = app::orgs::OrgPolicy {
        require_two_factor: false,
        require_key_approval: true,
        max_key_lifetime_days: None,
    };
    let refused = app::orgs::policy::set(&t.app.state.db, &stale, &policy, None)
        .await
        .unwrap_err();
    assert_eq!(refused.message, "missing permission: org:write");
    assert_eq!(t.app.snapshot().await, before, "rows changed");
}

/// The policy form sends the policies it was loaded with: loaded before someone else turned a
/// requirement on, it is refused (409) rather than switching it off again; reloaded, it saves.
#[tokio::test]
async fn a_stale_policy_form_cannot_undo_a_requirement() {
    let t = team().await;
    let loaded = call(&t, &t.owner, "get_org_policy", &[]).await.body;
    let r = call(
        &t,
        &t.owner,
        "set_org_policy",
        &[
            ("max_key_lifetime_days", ""),
            ("require_key_approval", "on"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let before = t.app.snapshot().await;
    let r = call(
        &t,
        &t.owner,
        "set_org_policy",
        &[("max_key_lifetime_days", "30"), ("loaded", &loaded)],
    )
    .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "stale policy form");
    assert_eq!(t.app.snapshot().await, before, "rows changed");
    let r = call(
        &t,
        &t.owner,
        "set_org_policy",
        &[("max_key_lifetime_days", "30"), ("loaded", "{\"max\":1}")],
    )
    .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "garbled loaded policy",
    );
    assert_eq!(r.json()["error"]["field"], "loaded", "{}", r.body);
    assert_eq!(t.app.snapshot().await, before, "rows changed");
    let r = call(&t, &t.viewer, "get_org_policy", &[]).await;
    assert_eq!(r.json()["require_key_approval"], true, "{}", r.body);
    assert!(r.json()["max_key_lifetime_days"].is_null(), "{}", r.body);

    let loaded = call(&t, &t.owner, "get_org_policy", &[]).await.body;
    let r = call(
        &t,
        &t.owner,
        "set_org_policy",
        &[("max_key_lifetime_days", "30"), ("loaded", &loaded)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["max_key_lifetime_days"], 30, "{}", r.body);
    assert_eq!(r.json()["require_key_approval"], false, "{}", r.body);
}

/// Seeds invitations already sent from `org` at `at` (revoked, so none is pending), number `i`
/// of `range` by `sender(i)` with id `inv_{tag}_{i}`: what the hourly bounds count.
async fn sent_invitations(
    app: &TestApp,
    org: &str,
    tag: &str,
    range: std::ops::Range<i64>,
    at: i64,
    sender: impl Fn(i64) -> String,
) {
    let mut tx = app.state.db.writer.begin().await.unwrap();
    for i in range {
        sqlx::query(
            "insert into invitation (invitation_id, organization_id, email, role, invited_by, created_at, expires_at, sent_by, revoked_at, accountable_id)
             values ($1, $2, $3, 'viewer', null, $4, $5, $6, $4, $6)",
        )
        .bind(format!("inv_{tag}_{i}"))
        .bind(org)
        .bind(format!("n{i}@example.org"))
        .bind(at)
        .bind(at + 86_400_000)
        .bind(sender(i))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// One sender's invitations are bounded over all their organizations (50 an hour): owning many
/// organizations does not multiply the mail one account can send.
#[tokio::test]
async fn a_sender_s_invitations_are_bounded_over_all_their_organizations() {
    let t = team().await;
    let personal = t.app.org_of(&t.owner_id).await;
    let now = app::ssr::db::now_ms();
    sent_invitations(&t.app, &personal, "elsewhere", 0..50, now - 1000, |_| {
        t.owner_id.clone()
    })
    .await;
    let before = t.app.snapshot().await;
    let r = call(
        &t,
        &t.owner,
        "invite_member",
        &[("email", "one-more@example.org"), ("role", "viewer")],
    )
    .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "the sender's 51st");
    assert!(r.body.contains("a person: 50 an hour"), "{}", r.body);
    assert_eq!(t.app.snapshot().await, before, "rows changed");
    // Another member of the same organization still may.
    let r = call(
        &t,
        &t.admin,
        "invite_member",
        &[("email", "one-more@example.org"), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// The keys a person makes share that person's invitation allowance: an owner cannot multiply
/// their 50 an hour by making a `members:write` key in each organization they own. A key made by
/// a key answers to the person at the start of the chain; a key no person made (the command
/// line's) answers for itself.
#[tokio::test]
async fn the_keys_a_person_makes_share_their_invitation_allowance() {
    const IP: &str = "192.0.2.61";
    let t = team().await;
    let personal = t.app.org_of(&t.owner_id).await;
    let now = app::ssr::db::now_ms();
    sent_invitations(&t.app, &personal, "elsewhere", 0..49, now - 1000, |_| {
        t.owner_id.clone()
    })
    .await;
    let scopes = serde_json::json!({"members": "write", "org": "read", "keys": "read", "usage": "read", "roles": "read"});
    // The owner made `first`, which made `second`.
    let (first, _) = t.app.scoped_key(&t.org, scopes.clone()).await;
    let (second, by_key) = t.app.scoped_key(&t.org, scopes.clone()).await;
    for (key, maker) in [(&first, &t.owner_id), (&second, &first)] {
        sqlx::query("update api_key set created_by = $1 where api_key_id = $2")
            .bind(maker)
            .bind(key)
            .execute(&t.app.state.db.writer)
            .await
            .unwrap();
    }
    let invite = |secret: String, email: &'static str| {
        let app = &t.app;
        async move {
            app.api(
                "POST",
                "/api/v1/invitations",
                Some(&secret),
                Some(serde_json::json!({"email": email, "role": "viewer"})),
                IP,
            )
            .await
        }
    };
    // The owner's 50th, through the key: still within.
    let r = invite(by_key.clone(), "fiftieth@example.org").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let answers: String = sqlx::query_scalar(
        "select accountable_id from invitation where email = 'fiftieth@example.org'",
    )
    .fetch_one(&t.app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(answers, t.owner_id);
    // The 51st: refused through the key and in the owner's console alike, nothing written.
    let before = t.app.snapshot().await;
    let r = invite(by_key.clone(), "fifty-first@example.org").await;
    assert_refused(
        &r,
        StatusCode::CONFLICT,
        "conflict",
        "the owner's 51st, by key",
    );
    assert!(r.body.contains("a person: 50 an hour"), "{}", r.body);
    let r = call(
        &t,
        &t.owner,
        "invite_member",
        &[("email", "fifty-first@example.org"), ("role", "viewer")],
    )
    .await;
    assert_refused(
        &r,
        StatusCode::CONFLICT,
        "conflict",
        "the owner's 51st, signed in",
    );
    assert!(r.body.contains("a person: 50 an hour"), "{}", r.body);
    assert_eq!(t.app.snapshot().await, before, "rows changed");
    // A key the command line made answers for itself.
    let (_, cli_made) = t.app.scoped_key(&t.org, scopes).await;
    let r = invite(cli_made, "fifty-first@example.org").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// The whole instance sends at most `KEYWARD_INVITATIONS_PER_HOUR` invitations an hour (500
/// here), however many organizations and senders ask: many accounts made by sign-up cannot
/// together turn the instance into a mail relay. Rows older than the hour do not count.
#[tokio::test]
async fn the_instance_s_invitations_are_bounded_over_all_senders() {
    let t = team().await;
    let elsewhere = t.app.org_of(&t.viewer_id).await;
    let now = app::ssr::db::now_ms();
    let sender = |i: i64| format!("usr_sender_{i}");
    // 499 in the hour, and some from before it: one more may go.
    sent_invitations(&t.app, &elsewhere, "other", 0..499, now - 1000, sender).await;
    sent_invitations(
        &t.app,
        &elsewhere,
        "other",
        499..560,
        now - 3_601_000,
        sender,
    )
    .await;
    let r = call(
        &t,
        &t.owner,
        "invite_member",
        &[("email", "the-500th@example.org"), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let before = t.app.snapshot().await;
    let r = call(
        &t,
        &t.admin,
        "invite_member",
        &[("email", "the-501st@example.org"), ("role", "viewer")],
    )
    .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "the instance's 501st");
    assert!(r.body.contains("this instance: 500 an hour"), "{}", r.body);
    assert_eq!(t.app.snapshot().await, before, "rows changed");
}

/// The sender's and the instance's hourly bounds hold for invitations sent at once from
/// several organizations, whose own locks do not exclude each other (on PostgreSQL the
/// invitations take one more lock; SQLite has one writer).
#[tokio::test]
async fn invitations_sent_at_once_from_many_organizations_stay_within_the_bounds() {
    let t = team().await;
    let mut owner = t.owner.clone();
    let mut orgs = Vec::new();
    for name in ["North", "South", "East", "West"] {
        let r = t
            .app
            .rpc(&mut owner, "create_organization", &[("name", name)])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        orgs.push(r.json().as_str().unwrap().to_string());
    }
    // 49 of the sender's 50 an hour already went out (from an organization of theirs).
    let now = app::ssr::db::now_ms();
    sent_invitations(&t.app, &t.org, "earlier", 0..49, now - 1000, |_| {
        t.owner_id.clone()
    })
    .await;
    let calls = orgs.iter().enumerate().map(|(i, org)| {
        let (app, mut b) = (&t.app, t.owner.clone());
        let email = format!("at-once-{i}@example.org");
        async move {
            app.rpc(
                &mut b,
                "invite_member",
                &[
                    ("organization_id", org.as_str()),
                    ("email", &email),
                    ("role", "viewer"),
                ],
            )
            .await
        }
    });
    let replies = futures::future::join_all(calls).await;
    let sent = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert_refused(
            r,
            StatusCode::CONFLICT,
            "conflict",
            "past the sender's bound",
        );
    }
    assert_eq!(sent, 1, "exactly the one invitation left in the hour");
    let total: i64 = sqlx::query_scalar("select count(*) from invitation where sent_by = $1")
        .bind(&t.owner_id)
        .fetch_one(&t.app.state.db.writer)
        .await
        .unwrap();
    assert_eq!(total, 50);
}

/// One account owns at most 100 team organizations, also when it creates several at once
/// (on PostgreSQL the creations take the account's row lock in turn; SQLite has one writer):
/// past the bound, a clear refusal and nothing written.
#[tokio::test]
async fn an_account_owns_a_bounded_number_of_organizations_even_created_at_once() {
    let t = team().await;
    let owned = || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from membership m join organization o on o.organization_id = m.organization_id
             where m.user_id = $1 and m.role = 'owner' and o.kind = 'team'",
        )
        .bind(&t.owner_id)
        .fetch_one(&t.app.state.db.writer)
        .await
        .unwrap()
    };
    // 98 owned: `team()`'s organization and 97 more.
    let now = app::ssr::db::now_ms();
    for i in 0..97 {
        let org = format!("org_filled{i:03}");
        sqlx::query(
            "insert into organization (organization_id, name, slug, kind, created_at)
             values ($1, $1, $2, 'team', $3)",
        )
        .bind(&org)
        .bind(org.to_lowercase().replace('_', "-"))
        .bind(now)
        .execute(&t.app.state.db.writer)
        .await
        .unwrap();
        sqlx::query(
            "insert into membership (organization_id, user_id, role, created_at) values ($1, $2, 'owner', $3)",
        )
        .bind(&org)
        .bind(&t.owner_id)
        .bind(now)
        .execute(&t.app.state.db.writer)
        .await
        .unwrap();
    }
    assert_eq!(owned().await, 98);
    let calls = (0..6).map(|i| {
        let (app, mut b) = (&t.app, t.owner.clone());
        let name = format!("At once {i}");
        async move {
            app.rpc(&mut b, "create_organization", &[("name", name.as_str())])
                .await
        }
    });
    let replies = futures::future::join_all(calls).await;
    let made = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert_refused(r, StatusCode::CONFLICT, "conflict", "past the bound");
        assert!(
            r.body
                .contains("most organizations one account may own (100)"),
            "{}",
            r.body
        );
    }
    assert_eq!(made, 2, "exactly the two left under the bound");
    assert_eq!(owned().await, 100);
    let organizations: i64 =
        sqlx::query_scalar("select count(*) from organization where name like 'At once %'")
            .fetch_one(&t.app.state.db.writer)
            .await
            .unwrap();
    assert_eq!(
        organizations, 2,
        "a refused creation leaves no organization behind"
    );
}

/// An account disabled or deleted after its request's checks creates no organization: the
/// creating statement asks for an active account itself.
#[tokio::test]
async fn a_disabled_or_deleted_account_creates_no_organization() {
    let t = team().await;
    let db = &t.app.state.db;
    for change in [
        "update app_user set status = 'disabled' where user_id = $1",
        "update app_user set status = 'active', deleted_at = 1 where user_id = $1",
    ] {
        sqlx::query(change)
            .bind(&t.owner_id)
            .execute(&db.writer)
            .await
            .unwrap();
        let before = t.app.snapshot().await;
        let refused =
            app::orgs::members::create_organization(db, &t.owner_id, "Too late", None).await;
        assert_eq!(
            refused.expect_err(change).code,
            app::error::ErrorCode::Unauthenticated,
            "{change}"
        );
        assert_eq!(t.app.snapshot().await, before, "nothing written: {change}");
    }
}

/// While sign-up is closed, an invitation creates an account only when an instance
/// administrator sent it: a member who can invite (in an organization of their own, say)
/// cannot open sign-up. An account that exists joins either way.
#[tokio::test]
async fn with_sign_up_closed_only_an_administrator_s_invitation_creates_an_account() {
    let app = spawn_with(|c| c.signup_open = false).await;
    app.user("root@example.org", Some(app::access::Role::Owner))
        .await;
    app.user("owner@example.org", None).await;
    let accept = |token: String| {
        let app = &app;
        async move {
            let mut anon = Browser::default();
            app.rpc(
                &mut anon,
                "accept_invitation",
                &[
                    ("token", token.as_str()),
                    ("display_name", "New"),
                    ("password", PASSWORD),
                ],
            )
            .await
        }
    };
    let invite = |who: &'static str, email: &'static str| {
        let app = &app;
        async move {
            let mut b = app.signed_in(who).await;
            let r = app
                .rpc(&mut b, "create_organization", &[("name", "Acme")])
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            let org = r.json().as_str().unwrap().to_string();
            let r = app
                .rpc(
                    &mut b,
                    "invite_member",
                    &[
                        ("organization_id", org.as_str()),
                        ("email", email),
                        ("role", "member"),
                    ],
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            app.emailed_token(email, "invite").await
        }
    };
    // A member's invitation: refused, no account, the invitation still pending.
    let token = invite("owner@example.org", "stranger@example.org").await;
    let (users, before) = (app.count("app_user").await, app.snapshot().await);
    let r = accept(token.clone()).await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "a member's invitation",
    );
    assert!(r.body.contains("sign-up is closed"), "{}", r.body);
    assert_eq!(app.count("app_user").await, users, "an account was made");
    assert_eq!(app.snapshot().await, before, "rows changed");
    // Once an administrator made the account, the same link joins it.
    app.user("stranger@example.org", None).await;
    let r = accept(token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // An instance administrator's invitation creates the account.
    let token = invite("root@example.org", "hire@example.org").await;
    let users = app.count("app_user").await;
    let r = accept(token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.count("app_user").await, users + 1);
}

/// A test key's reach is test keys: even with admin scopes it cannot invite someone (who could
/// then make live keys), change a member, or make a role, team or permission; nothing written.
#[tokio::test]
async fn a_test_key_changes_no_member_role_team_or_invitation() {
    let t = team().await;
    let (_, test_key) = t
        .app
        .issue_key(
            &t.org,
            app::keys::NewKey {
                name: "sandbox".into(),
                category: Some("admin".into()),
                environment: Some("test".into()),
                ..Default::default()
            },
        )
        .await;
    assert!(test_key.starts_with("kw_test_"));
    let ip = "192.0.2.90";
    let before = t.app.snapshot().await;
    let viewer = format!("/api/v1/members/{}", t.viewer_id);
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/invitations",
            Some(serde_json::json!({"email": "attacker@example.org", "role": "admin"})),
        ),
        (
            "PATCH",
            viewer.as_str(),
            Some(serde_json::json!({"role": "admin"})),
        ),
        ("DELETE", viewer.as_str(), None),
        (
            "POST",
            "/api/v1/roles",
            Some(serde_json::json!({"name": "sneaky"})),
        ),
        (
            "POST",
            "/api/v1/teams",
            Some(serde_json::json!({"name": "sneaky"})),
        ),
        (
            "POST",
            "/api/v1/permissions",
            Some(serde_json::json!({"name": "refunds:issue"})),
        ),
    ] {
        let r = t.app.api(method, path, Some(&test_key), body, ip).await;
        assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", path);
        assert!(r.body.contains("test key"), "{method} {path}: {}", r.body);
    }
    assert_eq!(t.app.snapshot().await, before, "nothing written");
    // A live key with the same scopes may.
    let (_, live) = t.app.admin_key(&t.org).await;
    let r = t
        .app
        .api(
            "POST",
            "/api/v1/roles",
            Some(&live),
            Some(serde_json::json!({"name": "support"})),
            ip,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

/// `members:write` alone cannot remove or demote a member whose team grants the organization's
/// own permissions the caller lacks (removing them takes them out of the team with it); the
/// owner, who holds everything, may.
#[tokio::test]
async fn a_member_whose_team_grants_more_than_the_caller_holds_stays() {
    let t = team().await;
    let db = &t.app.state.db;
    let operator = app::access::ssr::Grant::operator(&t.org);
    let team = t.app.finance_team(&t.org).await;
    app::teams::ssr::set_member(db, &operator, &team, &t.viewer_id, true)
        .await
        .unwrap();
    let (_, recruiter) = t
        .app
        .scoped_key(
            &t.org,
            // Every built-in permission of a viewer and a member: only the team's own
            // permission is beyond it.
            serde_json::json!({"members": "write", "org": "read", "keys": "write", "usage": "read", "roles": "read"}),
        )
        .await;
    let ip = "192.0.2.91";
    let before = t.app.snapshot().await;
    let member = format!("/api/v1/members/{}", t.viewer_id);
    for (method, body) in [
        ("PATCH", Some(serde_json::json!({"role": "member"}))),
        ("DELETE", None),
    ] {
        let r = t.app.api(method, &member, Some(&recruiter), body, ip).await;
        assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", method);
        assert!(r.body.contains("refunds:issue"), "{method}: {}", r.body);
    }
    assert_eq!(t.app.snapshot().await, before, "nothing written");
    let r = call(&t, &t.owner, "remove_member", &[("user_id", &t.viewer_id)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}
