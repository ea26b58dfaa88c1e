//! Teams: a team's members hold its roles at once (and lose them at once); nobody gives,
//! through a team, more than they hold (the organization's own permissions included); bad
//! input writes nothing; leaving the organization leaves its teams. Runs on SQLite, and on
//! PostgreSQL when `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use app::access::ssr::Grant;
use common::*;
use http::StatusCode;
use serde_json::json;

const IP: &str = "192.0.2.50";

/// An organization with its owner, an admin and a member (signed in), a custom role granting
/// `members:write` ("inviter") and one inheriting the owner ("deputy").
struct Org {
    app: TestApp,
    org: String,
    owner: Browser,
    admin: Browser,
    member: Browser,
    member_id: String,
    inviter: String,
    deputy: String,
}

async fn org() -> Org {
    let app = spawn().await;
    let owner_id = app.user("owner@example.org", None).await;
    let org = app.org_of(&owner_id).await;
    let admin_id = app.user("admin@example.org", None).await;
    app.add_member(&org, &admin_id, "admin").await;
    let member_id = app.user("member@example.org", None).await;
    app.add_member(&org, &member_id, "member").await;
    let operator = Grant::operator(&org);
    let db = &app.state.db;
    let inviter = app::access::roles::create_role(db, &operator, "inviter", "", &[])
        .await
        .unwrap()
        .id;
    app::access::roles::set_permission(db, &operator, &inviter, "members:write", true, false)
        .await
        .unwrap();
    let deputy =
        app::access::roles::create_role(db, &operator, "deputy", "", &["owner".to_string()])
            .await
            .unwrap()
            .id;
    Org {
        owner: app.signed_in("owner@example.org").await,
        admin: app.signed_in("admin@example.org").await,
        member: app.signed_in("member@example.org").await,
        app,
        org,
        member_id,
        inviter,
        deputy,
    }
}

async fn call(o: &Org, b: &mut Browser, endpoint: &str, form: &[(&str, &str)]) -> Reply {
    let mut full = vec![("organization_id", o.org.as_str())];
    full.extend_from_slice(form);
    o.app.rpc(b, endpoint, &full).await
}

async fn create_team(o: &Org, b: &mut Browser, name: &str) -> String {
    let r = call(o, b, "create_team", &[("name", name), ("description", "")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_teams_roles_come_and_go_with_membership() {
    let o = org().await;
    let mut owner = o.owner.clone();
    let team = create_team(&o, &mut owner, "recruiting").await;
    let r = call(
        &o,
        &mut owner,
        "set_team_role",
        &[("team_id", &team), ("role_id", &o.inviter), ("add", "true")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json(), true);
    let mut member = o.member.clone();

    // Not in the team yet: no members:write.
    let r = call(&o, &mut member, "list_invitations", &[]).await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "before joining");
    let r = call(
        &o,
        &mut owner,
        "set_team_member",
        &[
            ("team_id", &team),
            ("user_id", &o.member_id),
            ("add", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // In the team: the role counts at once, for the session…
    let r = call(&o, &mut member, "list_invitations", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "in the team: {}", r.body);
    let r = o.app.rpc(&mut member, "my_organizations", &[]).await;
    assert!(r.body.contains("members:write"), "{}", r.body);
    // …and the list shows who is in it, holding what.
    let r = call(&o, &mut owner, "list_teams", &[]).await;
    let teams = r.json();
    assert_eq!(teams[0]["name"], "recruiting");
    assert_eq!(teams[0]["members"][0]["email"], "member@example.org");
    assert_eq!(teams[0]["roles"][0]["name"], "inviter");
    // The members list shows the power a team gives, and through which team.
    let r = call(&o, &mut owner, "organization_members", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let members = r.json();
    let row = members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "member@example.org")
        .unwrap()
        .clone();
    assert_eq!(row["team_roles"], json!(["inviter (recruiting)"]), "{row}");
    assert_eq!(row["roles"], json!([]), "{row}");

    // Out of the team: gone at once.
    let r = call(
        &o,
        &mut owner,
        "set_team_member",
        &[
            ("team_id", &team),
            ("user_id", &o.member_id),
            ("add", "false"),
        ],
    )
    .await;
    assert_eq!(r.json(), true, "{}", r.body);
    let r = call(&o, &mut member, "list_invitations", &[]).await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "after leaving the team",
    );

    // Back in, then the team loses the role: gone too.
    call(
        &o,
        &mut owner,
        "set_team_member",
        &[
            ("team_id", &team),
            ("user_id", &o.member_id),
            ("add", "true"),
        ],
    )
    .await;
    let r = call(
        &o,
        &mut owner,
        "set_team_role",
        &[
            ("team_id", &team),
            ("role_id", &o.inviter),
            ("add", "false"),
        ],
    )
    .await;
    assert_eq!(r.json(), true, "{}", r.body);
    let r = call(&o, &mut member, "list_invitations", &[]).await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "after the team lost the role",
    );

    // Leaving the organization leaves its teams.
    o.app.remove_member(&o.org, &o.member_id).await;
    let r = call(&o, &mut owner, "list_teams", &[]).await;
    assert_eq!(
        r.json()[0]["members"].as_array().unwrap().len(),
        0,
        "{}",
        r.body
    );
}

#[tokio::test]
async fn nobody_gives_through_a_team_more_than_they_hold() {
    let o = org().await;
    let (mut owner, mut admin) = (o.owner.clone(), o.admin.clone());
    let team = create_team(&o, &mut owner, "leads").await;
    // The admin lacks the owner's org:write: a team cannot be given a role holding it.
    let before = o.app.snapshot().await;
    let r = call(
        &o,
        &mut admin,
        "set_team_role",
        &[("team_id", &team), ("role_id", &o.deputy), ("add", "true")],
    )
    .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "admin gives deputy");
    assert_eq!(o.app.snapshot().await, before, "nothing written");
    // The owner can; then the admin can neither add people to that team, nor take them out,
    // nor delete it.
    let r = call(
        &o,
        &mut owner,
        "set_team_role",
        &[("team_id", &team), ("role_id", &o.deputy), ("add", "true")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let before = o.app.snapshot().await;
    for (endpoint, form) in [
        (
            "set_team_member",
            vec![
                ("team_id", team.as_str()),
                ("user_id", o.member_id.as_str()),
                ("add", "true"),
            ],
        ),
        (
            "set_team_member",
            vec![
                ("team_id", team.as_str()),
                ("user_id", o.member_id.as_str()),
                ("add", "false"),
            ],
        ),
        ("delete_team", vec![("team_id", team.as_str())]),
    ] {
        let r = call(&o, &mut admin, endpoint, &form).await;
        assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", endpoint);
    }
    assert_eq!(o.app.snapshot().await, before, "nothing written");
    // A member holds no members:write at all.
    let mut member = o.member.clone();
    let r = call(&o, &mut member, "create_team", &[("name", "mine")]).await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "member creates");
    // The owner may delete it.
    let r = call(&o, &mut owner, "delete_team", &[("team_id", &team)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(o.app.count("team").await, 0);
}

#[tokio::test]
async fn bad_input_writes_nothing() {
    let o = org().await;
    let mut owner = o.owner.clone();
    let team = create_team(&o, &mut owner, "ops").await;
    let stranger = o.app.user("stranger@example.org", None).await;
    let before = o.app.snapshot().await;
    let long = "x".repeat(101);
    for (endpoint, form, status, code) in [
        (
            "create_team",
            vec![("name", "  ")],
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "create_team",
            vec![("name", long.as_str())],
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "create_team",
            vec![("name", "ops")],
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            "set_team_member",
            vec![
                ("team_id", team.as_str()),
                ("user_id", stranger.as_str()),
                ("add", "true"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "set_team_role",
            vec![
                ("team_id", team.as_str()),
                ("role_id", "admin"),
                ("add", "true"),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "set_team_role",
            vec![
                ("team_id", team.as_str()),
                ("role_id", "role_nope"),
                ("add", "true"),
            ],
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "delete_team",
            vec![("team_id", "team_nope")],
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let r = call(&o, &mut owner, endpoint, &form).await;
        assert_refused(&r, status, code, &format!("{endpoint} {form:?}"));
    }
    assert_eq!(o.app.snapshot().await, before, "nothing written");
}

#[tokio::test]
async fn racing_creates_of_one_name_make_one_team() {
    let o = org().await;
    let browsers = [o.owner.clone(), o.admin.clone()];
    let calls = browsers
        .into_iter()
        .map(|mut b| {
            let o = &o;
            async move { call(o, &mut b, "create_team", &[("name", "twins")]).await }
        })
        .collect();
    let mut statuses: Vec<u16> = join_all(calls)
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    statuses.sort();
    assert_eq!(statuses, [200, 409]);
    assert_eq!(o.app.count("team").await, 1);
}

#[tokio::test]
async fn over_rest_a_weaker_key_cannot_hand_out_more_through_a_team() {
    let o = org().await;
    let (_, strong) = o.app.admin_key(&o.org).await;
    let (_, weaker) = o
        .app
        .scoped_key(
            &o.org,
            json!({"members": "write", "roles": "write", "org": "read"}),
        )
        .await;
    let r = o
        .app
        .api(
            "POST",
            "/api/v1/teams",
            Some(&weaker),
            Some(json!({"name": "ops"})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let team = r.json()["id"].as_str().unwrap().to_string();
    let before = o.app.snapshot().await;
    let path = format!("/api/v1/teams/{team}/roles");
    let r = o
        .app
        .api(
            "PUT",
            &path,
            Some(&weaker),
            Some(json!({"role_id": o.deputy, "held": true})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "weaker key gives deputy",
    );
    assert_eq!(o.app.snapshot().await, before, "nothing written");
    // The inviter role is within its reach; a stronger key may give the deputy role.
    let r = o
        .app
        .api(
            "PUT",
            &path,
            Some(&weaker),
            Some(json!({"role_id": o.inviter, "held": true})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["roles"][0]["name"], "inviter");
    let r = o
        .app
        .api(
            "PUT",
            &path,
            Some(&strong),
            Some(json!({"role_id": o.deputy, "held": true})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Now holding the deputy role, the team is out of the weaker key's reach altogether.
    let r = o
        .app
        .api(
            "PUT",
            &format!("/api/v1/teams/{team}/members"),
            Some(&weaker),
            Some(json!({"user_id": o.member_id, "member": true})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "weaker key adds to a deputy team",
    );
    let r = o
        .app
        .api(
            "GET",
            &format!("/api/v1/teams/{team}"),
            Some(&weaker),
            None,
            IP,
        )
        .await;
    assert_eq!(
        r.json()["members"].as_array().unwrap().len(),
        0,
        "{}",
        r.body
    );
}

#[tokio::test]
async fn members_write_alone_cannot_spread_the_organizations_own_permissions() {
    let o = org().await;
    // A role granting only a permission of the organization's own, held by a team.
    let team = o.app.finance_team(&o.org).await;
    // A key holding members:write (and every built-in permission the role grants) but not
    // refunds:issue may not put anyone in that team.
    let (_, recruiter) = o
        .app
        .scoped_key(&o.org, json!({"members": "write", "org": "read"}))
        .await;
    let before = o.app.snapshot().await;
    let r = o
        .app
        .api(
            "PUT",
            &format!("/api/v1/teams/{team}/members"),
            Some(&recruiter),
            Some(json!({"user_id": o.member_id, "member": true})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "spread refunds:issue",
    );
    assert!(r.body.contains("refunds:issue"), "{}", r.body);
    assert_eq!(o.app.snapshot().await, before, "nothing written");
    // The owner holds everything, the organization's own permissions included.
    let mut owner = o.owner.clone();
    let r = call(
        &o,
        &mut owner,
        "set_team_member",
        &[
            ("team_id", &team),
            ("user_id", &o.member_id),
            ("add", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Now in the team, the member is out of the same key's reach: it cannot take them out
    // either (`members.rs` has the same for removing and demoting them).
    let before = o.app.snapshot().await;
    let r = o
        .app
        .api(
            "PUT",
            &format!("/api/v1/teams/{team}/members"),
            Some(&recruiter),
            Some(json!({"user_id": o.member_id, "member": false})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "take out of finance",
    );
    assert!(r.body.contains("refunds:issue"), "{}", r.body);
    assert_eq!(o.app.snapshot().await, before, "nothing written");
}

/// One rule for `roles:write`: it administers the organization's own permissions (it grants
/// them to roles), so a key holding it, and not `refunds:issue`, gives a role granting that to
/// a team and to a member alike; what it can never do is put the permission on a key
/// (`key_permissions.rs`), and `members:write` alone cannot spread it (above).
#[tokio::test]
async fn roles_write_gives_a_role_of_the_organization_s_own_to_teams_and_members_alike() {
    let o = org().await;
    o.app.finance_team(&o.org).await;
    let finance: String = sqlx::query_scalar(
        "select role_id from role where organization_id = $1 and name = 'finance'",
    )
    .bind(&o.org)
    .fetch_one(&o.app.state.db.reader)
    .await
    .unwrap();
    let mut owner = o.owner.clone();
    let ops = create_team(&o, &mut owner, "ops").await;
    let (_, roles_key) = o
        .app
        .scoped_key(&o.org, json!({"roles": "write", "org": "read"}))
        .await;
    let r = o
        .app
        .api(
            "PUT",
            &format!("/api/v1/teams/{ops}/roles"),
            Some(&roles_key),
            Some(json!({"role_id": finance, "held": true})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = o
        .app
        .api(
            "PUT",
            &format!("/api/v1/roles/{finance}/members"),
            Some(&roles_key),
            Some(json!({"user_ids": [o.member_id], "assigned": true})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()[0]["changed"], true, "{}", r.body);
    let held: Vec<String> = sqlx::query_scalar(
        "select role_id from team_role where team_id = $1
         union all
         select role_id from role_assignment where organization_id = $2 and user_id = $3",
    )
    .bind(&ops)
    .bind(&o.org)
    .bind(&o.member_id)
    .fetch_all(&o.app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(
        held,
        vec![finance.clone(), finance],
        "the team's and the member's"
    );
}

/// The system organization has no teams, and the schema itself keeps a team's members in the
/// team's organization: a row putting another organization's member into it is refused.
#[tokio::test]
async fn teams_stay_inside_their_organization() {
    let o = org().await;
    let db = &o.app.state.db;
    let system = Grant::operator(app::access::ssr::SYSTEM_ORG_ID);
    let before = o.app.snapshot().await;
    let refused = app::teams::ssr::create(db, &system, "admins", "")
        .await
        .expect_err("no teams in the system organization");
    assert_eq!(refused.code, app::error::ErrorCode::InvalidInput);
    assert_eq!(o.app.snapshot().await, before, "nothing written");

    let mut owner = o.owner.clone();
    let team = create_team(&o, &mut owner, "ops").await;
    let outsider = o.app.user("outsider@example.org", None).await;
    let elsewhere = o.app.org_of(&outsider).await;
    let inserted = sqlx::query(
        "insert into team_member (team_id, organization_id, user_id, created_at) values ($1, $2, $3, 0)",
    )
    .bind(&team)
    .bind(&elsewhere)
    .bind(&outsider)
    .execute(&db.writer)
    .await;
    assert!(
        inserted.is_err(),
        "a foreign member in the team: {inserted:?}"
    );
    assert_eq!(o.app.count("team_member").await, 0);
}

/// A team change checks the organization's own permissions inside its transaction, against the
/// graph it read under the organization's lock: a graph this instance cached a moment before
/// another instance took a permission from the caller's role does not let the caller spread it.
#[tokio::test]
async fn own_permissions_are_checked_against_the_graph_the_change_read() {
    let o = org().await;
    let db = &o.app.state.db;
    let operator = Grant::operator(&o.org);
    let team = o.app.finance_team(&o.org).await;
    // The admin holds refunds:issue through a role of their own...
    let refunder = app::access::roles::create_role(db, &operator, "refunder", "", &[])
        .await
        .unwrap()
        .id;
    app::access::roles::set_permission(db, &operator, &refunder, "refunds:issue", true, false)
        .await
        .unwrap();
    let admin_id: String =
        sqlx::query_scalar("select user_id from app_user where email = 'admin@example.org'")
            .fetch_one(&db.reader)
            .await
            .unwrap();
    app::access::roles::assign(db, &operator, &refunder, &[admin_id], true)
        .await
        .unwrap();
    // ...until another instance takes it from the role, after this one cached the graph
    // (written past this instance's cache, as another instance's commit would be).
    app::access::ssr::model(db, &o.org).await.unwrap();
    sqlx::query("delete from role_permission where role_id = $1")
        .bind(&refunder)
        .execute(&db.writer)
        .await
        .unwrap();
    let before = o.app.snapshot().await;
    let mut admin = o.admin.clone();
    let r = call(
        &o,
        &mut admin,
        "set_team_member",
        &[
            ("team_id", &team),
            ("user_id", &o.member_id),
            ("add", "true"),
        ],
    )
    .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "spread a lost permission",
    );
    assert!(r.body.contains("refunds:issue"), "{}", r.body);
    assert_eq!(o.app.snapshot().await, before, "nothing written");
}
