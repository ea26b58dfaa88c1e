//! Roles and permissions as data: custom roles with parents, dynamic permissions and their
//! dependencies, bulk assignment, and the authorization core deciding from all of it at once
//! (no stale cache on this instance). Runs on SQLite, and on PostgreSQL when
//! `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use app::access::ssr::{authorize, Principal};
use app::access::Permission;
use common::*;
use http::StatusCode;

struct Org {
    app: TestApp,
    org: String,
    owner: Browser,
    /// An admin of the organization: roles:write, but not the owner's org:write.
    admin: Browser,
    admin_id: String,
    member_id: String,
    viewer_id: String,
}

async fn org() -> Org {
    let app = spawn().await;
    let owner_id = app.user("owner@example.org", None).await;
    let org = app.org_of(&owner_id).await;
    let member_id = app.user("member@example.org", None).await;
    app.add_member(&org, &member_id, "member").await;
    let viewer_id = app.user("viewer@example.org", None).await;
    app.add_member(&org, &viewer_id, "viewer").await;
    let admin_id = app.user("admin@example.org", None).await;
    app.add_member(&org, &admin_id, "admin").await;
    Org {
        owner: app.signed_in("owner@example.org").await,
        admin: app.signed_in("admin@example.org").await,
        admin_id,
        app,
        org,
        member_id,
        viewer_id,
    }
}

async fn can(o: &Org, user: &str, p: Permission) -> bool {
    let who = Principal::User {
        user_id: user.into(),
    };
    authorize(&o.app.state.db, &who, &o.org, p).await.is_ok()
}

/// A server function call by the organization's owner.
async fn call(o: &Org, endpoint: &str, form: &[(&str, &str)]) -> Reply {
    let mut owner = o.owner.clone();
    let mut pairs = vec![("organization_id", o.org.as_str())];
    pairs.extend_from_slice(form);
    o.app.rpc(&mut owner, endpoint, &pairs).await
}

/// What the authorization core says about a personal token holding keys:write.
async fn token_grant(
    app: &TestApp,
    token: &str,
    org: &str,
) -> Result<app::access::ssr::Grant, app::error::AppError> {
    let db = &app.state.db;
    let key = app::keys::ssr::verify(
        db,
        app::keys::ssr::KeyCache::of(&app.state).unwrap(),
        &app.state.config.secret,
        token,
        None,
        "GET",
        "/api/v1/me",
        app::keys::ssr::Lookup {
            fresh: true,
            organization_id: None,
        },
    )
    .await
    .unwrap();
    authorize(db, &key.principal(), org, Permission::KeysWrite).await
}

#[tokio::test]
async fn a_three_level_hierarchy_grants_inherited_and_required_permissions_at_once() {
    let o = org().await;
    // tickets:write requires tickets:read.
    let r = call(&o, "create_permission", &[("name", "tickets:read")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(
        &o,
        "create_permission",
        &[("name", "tickets:write"), ("requires[0]", "tickets:read")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let support = call(
        &o,
        "create_role",
        &[("name", "support"), ("parents[0]", "viewer")],
    )
    .await;
    let support = support.json()["id"].as_str().unwrap().to_string();
    let lead = call(
        &o,
        "create_role",
        &[("name", "lead"), ("parents[0]", &support)],
    )
    .await;
    let lead = lead.json()["id"].as_str().unwrap().to_string();
    let r = call(
        &o,
        "set_role_permission",
        &[
            ("role_id", &lead),
            ("permission", "members:write"),
            ("granted", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(
        &o,
        "set_role_permission",
        &[
            ("role_id", &support),
            ("permission", "tickets:write"),
            ("granted", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let manager = call(
        &o,
        "create_role",
        &[("name", "manager"), ("parents[0]", &lead)],
    )
    .await;
    assert_eq!(manager.status, StatusCode::OK, "{}", manager.body);
    let effective = &manager.json()["effective"];
    let sources = |name: &str| {
        effective
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["sources"].clone())
    };
    // Three levels up: the viewer's keys:read; two: support's tickets:write and what it
    // requires; one: lead's members:write and its members:read.
    assert_eq!(
        sources("keys:read").unwrap(),
        serde_json::json!([{"kind": "inherited", "role": "viewer", "group": null}])
    );
    assert_eq!(
        sources("tickets:read").unwrap(),
        serde_json::json!([{"kind": "dependency", "of": "tickets:write"}])
    );
    assert_eq!(
        sources("members:read").unwrap(),
        serde_json::json!([
            {"kind": "inherited", "role": "viewer", "group": null},
            {"kind": "dependency", "of": "members:write"}
        ])
    );
    assert!(sources("keys:write").is_none());
    let manager = manager.json()["id"].as_str().unwrap().to_string();

    // The viewer holds none of it until assigned; then at once (no stale cache).
    assert!(!can(&o, &o.viewer_id, Permission::MembersWrite).await);
    let r = call(
        &o,
        "assign_role",
        &[
            ("role_id", &manager),
            ("user_ids[0]", &o.viewer_id),
            ("user_ids[1]", &o.member_id),
            ("user_ids[2]", "usr_nobody"),
            ("assign", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let results = r.json();
    assert_eq!(results[0]["ok"], true);
    assert_eq!(results[0]["changed"], true);
    assert_eq!(results[1]["ok"], true);
    assert_eq!(results[2]["ok"], false);
    assert_eq!(results[2]["error"], "not a member of this organization");
    assert!(can(&o, &o.viewer_id, Permission::MembersWrite).await);
    // The member's own base role still counts: keys:write and the manager's grants.
    assert!(can(&o, &o.member_id, Permission::KeysWrite).await);
    assert!(can(&o, &o.member_id, Permission::MembersWrite).await);
    // The console's view of the organization shows the dynamic permissions too.
    let mut viewer = o.app.signed_in("viewer@example.org").await;
    let mine = o.app.rpc(&mut viewer, "my_organizations", &[]).await.json();
    let here = mine
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["organization_id"] == o.org.as_str())
        .unwrap()
        .clone();
    let names: Vec<&str> = here["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"tickets:read") && names.contains(&"members:write"),
        "{names:?}"
    );

    // Taking the role away (bulk) takes the permissions away at once.
    let r = call(
        &o,
        "assign_role",
        &[
            ("role_id", &manager),
            ("user_ids[0]", &o.viewer_id),
            ("assign", "false"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!can(&o, &o.viewer_id, Permission::MembersWrite).await);
    // Deleting a parent takes its grants from the children at once.
    let r = call(&o, "delete_role", &[("role_id", &lead)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!can(&o, &o.member_id, Permission::MembersWrite).await);
}

#[tokio::test]
async fn a_cycle_is_refused_naming_it_and_nothing_is_written() {
    let o = org().await;
    let a = call(&o, "create_role", &[("name", "a")]).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = call(&o, "create_role", &[("name", "b"), ("parents[0]", &a)])
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let c = call(&o, "create_role", &[("name", "c"), ("parents[0]", &b)])
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = o.app.snapshot().await;
    let r = call(
        &o,
        "set_role_parents",
        &[("role_id", &a), ("parents[0]", &c)],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body.contains("that would make a cycle: a → c → b → a"),
        "{}",
        r.body
    );
    assert_eq!(o.app.snapshot().await, before);
    // Unknown parents and built-in roles are refused too, nothing written.
    let r = call(
        &o,
        "set_role_parents",
        &[("role_id", &a), ("parents[0]", "rol_nope")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = call(
        &o,
        "set_role_parents",
        &[("role_id", "admin"), ("parents[0]", "owner")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body.contains("built-in roles are read-only"),
        "{}",
        r.body
    );
    assert_eq!(o.app.snapshot().await, before);
}

#[tokio::test]
async fn removing_a_required_permission_names_what_needs_it_or_cascades() {
    let o = org().await;
    let role = call(&o, "create_role", &[("name", "keys person")])
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for p in ["keys:read", "keys:write"] {
        let r = call(
            &o,
            "set_role_permission",
            &[("role_id", &role), ("permission", p), ("granted", "true")],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let before = o.app.snapshot().await;
    let take = |cascade: &'static str| {
        vec![
            ("role_id", role.clone()),
            ("permission", "keys:read".to_string()),
            ("granted", "false".to_string()),
            ("cascade", cascade.to_string()),
        ]
    };
    let form = take("false");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = call(&o, "set_role_permission", &pairs).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(
        r.body.contains("keys:write of this role require keys:read"),
        "{}",
        r.body
    );
    assert_eq!(o.app.snapshot().await, before);
    let form = take("true");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = call(&o, "set_role_permission", &pairs).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["permissions"], serde_json::json!([]));
}

#[tokio::test]
async fn bad_names_and_unknown_permissions_are_refused_and_nothing_is_written() {
    let o = org().await;
    let before = o.app.snapshot().await;
    for (endpoint, form) in [
        ("create_permission", vec![("name", "Invoices")]),
        ("create_permission", vec![("name", "keys:read")]),
        (
            "create_permission",
            vec![("name", "a:b"), ("requires[0]", "nope:nope")],
        ),
        ("create_role", vec![("name", "admin")]),
        ("create_role", vec![("name", "  ")]),
        (
            "create_role",
            vec![("name", "x"), ("parents[0]", "rol_missing")],
        ),
        (
            "set_role_permission",
            vec![
                ("role_id", "rol_missing"),
                ("permission", "keys:read"),
                ("granted", "true"),
            ],
        ),
        (
            "assign_role",
            vec![
                ("role_id", "viewer"),
                ("user_ids[0]", "usr_x"),
                ("assign", "true"),
            ],
        ),
    ] {
        let r = call(&o, endpoint, &form).await;
        assert!(
            r.status.is_client_error() && r.json()["error"]["message"].as_str().is_some(),
            "{endpoint} {form:?}: {} {}",
            r.status,
            r.body
        );
    }
    assert_eq!(o.app.snapshot().await, before);
}

#[tokio::test]
async fn a_personal_token_shrinks_when_its_owner_loses_a_custom_role() {
    let o = org().await;
    // A viewer given a role with keys:write creates a personal token with write access.
    let writer = call(&o, "create_role", &[("name", "writer")]).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for p in ["keys:write"] {
        let r = call(
            &o,
            "set_role_permission",
            &[("role_id", &writer), ("permission", p), ("granted", "true")],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = call(
        &o,
        "assign_role",
        &[
            ("role_id", &writer),
            ("user_ids[0]", &o.viewer_id),
            ("assign", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut viewer = o.app.signed_in("viewer@example.org").await;
    let (_, token) = o.app.pat(&mut viewer, &o.org, "basic").await;
    assert!(token_grant(&o.app, &token, &o.org).await.is_ok());
    let r = call(
        &o,
        "assign_role",
        &[
            ("role_id", &writer),
            ("user_ids[0]", &o.viewer_id),
            ("assign", "false"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let refused = token_grant(&o.app, &token, &o.org).await.unwrap_err();
    assert_eq!(refused.message, "missing permission: keys:write");
}

/// A server function call by the organization's admin.
async fn as_admin(o: &Org, endpoint: &str, form: &[(&str, &str)]) -> Reply {
    let mut admin = o.admin.clone();
    let mut pairs = vec![("organization_id", o.org.as_str())];
    pairs.extend_from_slice(form);
    o.app.rpc(&mut admin, endpoint, &pairs).await
}

fn id(r: &Reply) -> String {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_admin_manages_roles_within_their_own_ceiling_only() {
    let o = org().await;
    let role = id(&as_admin(
        &o,
        "create_role",
        &[("name", "keys team"), ("parents[0]", "member")],
    )
    .await);
    // Within the ceiling: allowed.
    let r = as_admin(
        &o,
        "set_role_permission",
        &[
            ("role_id", &role),
            ("permission", "members:write"),
            ("granted", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let before = o.app.snapshot().await;
    // Beyond it: refused, naming the permission, nothing written.
    for (endpoint, form) in [
        (
            "set_role_permission",
            vec![
                ("role_id", role.as_str()),
                ("permission", "org:write"),
                ("granted", "true"),
            ],
        ),
        (
            "set_role_parents",
            vec![("role_id", role.as_str()), ("parents[0]", "owner")],
        ),
        (
            "create_role",
            vec![("name", "deputy"), ("parents[0]", "owner")],
        ),
    ] {
        let r = as_admin(&o, endpoint, &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{endpoint}: {}", r.body);
        assert_eq!(
            r.json()["error"]["message"],
            "missing permission: org:write",
            "{endpoint}"
        );
    }
    // A role the owner made with more than an admin holds: the admin can neither strip,
    // delete, assign nor unassign it.
    let deputy = id(&call(
        &o,
        "create_role",
        &[("name", "deputy"), ("parents[0]", "owner")],
    )
    .await);
    let before_owner_role = o.app.snapshot().await;
    for (endpoint, form) in [
        ("set_role_parents", vec![("role_id", deputy.as_str())]),
        ("delete_role", vec![("role_id", deputy.as_str())]),
        (
            "assign_role",
            vec![
                ("role_id", deputy.as_str()),
                ("user_ids[0]", o.admin_id.as_str()),
                ("assign", "true"),
            ],
        ),
        (
            "assign_role",
            vec![
                ("role_id", deputy.as_str()),
                ("user_ids[0]", o.member_id.as_str()),
                ("assign", "false"),
            ],
        ),
    ] {
        let r = as_admin(&o, endpoint, &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{endpoint}: {}", r.body);
    }
    assert_eq!(o.app.snapshot().await, before_owner_role);
    assert_ne!(before, before_owner_role, "the owner's role was written");
    // A dynamic permission cannot require a built-in one (granting it would grant org:write
    // to whoever holds it).
    let r = as_admin(
        &o,
        "create_permission",
        &[("name", "billing:view"), ("requires[0]", "org:write")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body.contains("only other dynamic permissions"),
        "{}",
        r.body
    );
}

/// A role the owner built on an admin's role (inheriting it, granting more than an admin
/// holds): the admin can no longer change the role it inherits from, since that would change
/// the owner's too. Nothing is written.
#[tokio::test]
async fn an_admin_cannot_weaken_a_stronger_role_through_the_role_it_inherits() {
    let o = org().await;
    let base = id(&as_admin(
        &o,
        "create_role",
        &[("name", "keys team"), ("parents[0]", "member")],
    )
    .await);
    let group = id(&as_admin(
        &o,
        "create_group",
        &[("name", "key readers"), ("permissions", "keys:read")],
    )
    .await);
    let r = as_admin(
        &o,
        "set_role_group",
        &[
            ("role_id", &base),
            ("group_id", &group),
            ("granted", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Before the owner builds on it, the admin may change it.
    let r = as_admin(
        &o,
        "set_role_permission",
        &[
            ("role_id", &base),
            ("permission", "members:write"),
            ("granted", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let strong = id(&call(
        &o,
        "create_role",
        &[("name", "deputy"), ("parents[0]", &base)],
    )
    .await);
    let r = call(
        &o,
        "set_role_permission",
        &[
            ("role_id", &strong),
            ("permission", "org:write"),
            ("granted", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let before = o.app.snapshot().await;
    for (endpoint, form) in [
        (
            "set_role_permission",
            vec![
                ("role_id", base.as_str()),
                ("permission", "members:write"),
                ("granted", "false"),
            ],
        ),
        ("set_role_parents", vec![("role_id", base.as_str())]),
        ("delete_role", vec![("role_id", base.as_str())]),
        (
            "set_group_permission",
            vec![
                ("group_id", group.as_str()),
                ("permission", "keys:read"),
                ("included", "false"),
            ],
        ),
        ("delete_group", vec![("group_id", group.as_str())]),
    ] {
        let r = as_admin(&o, endpoint, &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{endpoint}: {}", r.body);
    }
    assert_eq!(o.app.snapshot().await, before, "nothing written");
    // The owner may.
    let r = call(&o, "delete_role", &[("role_id", &base)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_grant_checked_a_moment_ago_is_checked_again_inside_the_change() {
    // The guard decides from what it read; the change re-reads the caller's roles under the
    // organization's lock, so a caller demoted in between cannot act on the old answer.
    let o = org().await;
    let who = Principal::User {
        user_id: o.admin_id.clone(),
    };
    let stale = authorize(&o.app.state.db, &who, &o.org, Permission::RolesWrite)
        .await
        .unwrap();
    o.app.set_role(&o.org, &o.admin_id, "viewer").await;
    let refused = app::access::roles::create_role(&o.app.state.db, &stale, "late", "", &[])
        .await
        .unwrap_err();
    assert_eq!(refused.message, "missing permission: roles:write");
}

#[tokio::test]
async fn another_organizations_roles_do_not_exist_here_and_repeats_are_harmless() {
    let o = org().await;
    let stranger = o.app.user("stranger@example.org", None).await;
    let elsewhere = o.app.org_of(&stranger).await;
    let foreign = app::access::roles::create_role(
        &o.app.state.db,
        &app::access::ssr::Grant::operator(&elsewhere),
        "theirs",
        "",
        &[],
    )
    .await
    .unwrap()
    .id;
    let before = o.app.snapshot().await;
    let r = call(
        &o,
        "set_role_permission",
        &[
            ("role_id", &foreign),
            ("permission", "keys:read"),
            ("granted", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = call(
        &o,
        "create_role",
        &[("name", "mine"), ("parents[0]", &foreign)],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = call(
        &o,
        "assign_role",
        &[
            ("role_id", &foreign),
            ("user_ids[0]", &o.member_id),
            ("assign", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(o.app.snapshot().await, before);
    // The same parent twice is one parent, not a database error.
    let r = call(
        &o,
        "create_role",
        &[
            ("name", "twice"),
            ("parents[0]", "viewer"),
            ("parents[1]", "viewer"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["parents"], serde_json::json!(["viewer"]));
}

/// A server function call by the organization's admin (roles:write, not org:write).
async fn call_as_admin(o: &Org, endpoint: &str, form: &[(&str, &str)]) -> Reply {
    let mut admin = o.admin.clone();
    let mut pairs = vec![("organization_id", o.org.as_str())];
    pairs.extend_from_slice(form);
    o.app.rpc(&mut admin, endpoint, &pairs).await
}

#[tokio::test]
async fn a_permission_group_is_granted_as_a_unit_and_its_changes_follow_at_once() {
    let o = org().await;
    let r = call(
        &o,
        "create_group",
        &[
            ("name", "auditors"),
            ("permissions", "audit:read, usage:read"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let group = r.json()["id"].as_str().unwrap().to_string();
    let r = call(
        &o,
        "create_role",
        &[("name", "support"), ("parents[0]", "viewer")],
    )
    .await;
    let role = r.json()["id"].as_str().unwrap().to_string();
    let r = call(
        &o,
        "set_role_group",
        &[
            ("role_id", &role),
            ("group_id", &group),
            ("granted", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Provenance: the group is named.
    let effective = r.json()["effective"].clone();
    let audit = effective
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "audit:read")
        .expect("audit:read is effective");
    assert!(audit["sources"].to_string().contains(&group), "{audit}");
    let r = call(
        &o,
        "assign_role",
        &[
            ("role_id", &role),
            ("user_ids[0]", &o.member_id),
            ("assign", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(can(&o, &o.member_id, Permission::AuditRead).await);
    // Taking audit:read out of the group takes it from the member at once.
    let r = call(
        &o,
        "set_group_permission",
        &[
            ("group_id", &group),
            ("permission", "audit:read"),
            ("included", "false"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(!can(&o, &o.member_id, Permission::AuditRead).await);
    // Taking out what is not in the group (again, or text that names nothing), or a group the
    // role does not hold, changes nothing and records nothing on the audit log.
    let events = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from domain_event")
            .fetch_one(&o.app.state.db.writer)
            .await
            .unwrap()
    };
    let r = call(&o, "create_role", &[("name", "bystander")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let bystander = r.json()["id"].as_str().unwrap().to_string();
    let recorded = events().await;
    for permission in ["audit:read", &"x".repeat(5000)] {
        let r = call(
            &o,
            "set_group_permission",
            &[
                ("group_id", &group),
                ("permission", permission),
                ("included", "false"),
            ],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = call(
        &o,
        "set_role_group",
        &[
            ("role_id", &bystander),
            ("group_id", &group),
            ("granted", "false"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Granting the role a group it holds, or a permission it holds, and revoking one it lacks.
    let r = call(
        &o,
        "set_role_group",
        &[
            ("role_id", &role),
            ("group_id", &group),
            ("granted", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        events().await,
        recorded,
        "no-op group changes are not recorded"
    );
    let r = call(
        &o,
        "set_role_permission",
        &[
            ("role_id", &bystander),
            ("permission", "keys:read"),
            ("granted", "true"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let recorded = recorded + 1;
    assert_eq!(events().await, recorded, "a real grant is recorded");
    for (permission, granted) in [
        ("keys:read", "true"),
        ("usage:read", "false"),
        ("members:read", "false"),
    ] {
        let r = call(
            &o,
            "set_role_permission",
            &[
                ("role_id", &bystander),
                ("permission", permission),
                ("granted", granted),
            ],
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    assert_eq!(events().await, recorded, "no-op changes were recorded");

    // The admin may make a group of anything (it grants nothing by itself)…
    let r = call_as_admin(
        &o,
        "create_group",
        &[("name", "powers"), ("permissions", "org:write")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let powers = r.json()["id"].as_str().unwrap().to_string();
    // …but not put it on a role, nor grow a held group past what they hold.
    let before = o.app.snapshot().await;
    let r = call_as_admin(
        &o,
        "set_role_group",
        &[
            ("role_id", &role),
            ("group_id", &powers),
            ("granted", "true"),
        ],
    )
    .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "admin grants org:write by group",
    );
    let r = call_as_admin(
        &o,
        "set_group_permission",
        &[
            ("group_id", &group),
            ("permission", "org:write"),
            ("included", "true"),
        ],
    )
    .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "admin grows a held group",
    );
    // Bad input: an unknown permission, a duplicate name.
    let r = call(
        &o,
        "create_group",
        &[("name", "x"), ("permissions", "nope:nope")],
    )
    .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "unknown permission",
    );
    let r = call(&o, "create_group", &[("name", "auditors")]).await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "duplicate name");
    assert_eq!(o.app.snapshot().await, before, "rows changed");

    // Deleting the group takes what it held from the role.
    let r = call(&o, "delete_group", &[("group_id", &group)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(&o, "list_roles", &[]).await;
    assert!(!r.body.contains(&group), "the group is gone: {}", r.body);
}

/// The same model over REST: a service defines its permissions, groups them, builds a role
/// on a built-in one, assigns it in bulk, and another service checks a key scoped with it.
/// Every refusal is the console's (cycle named, dependency named, built-in read-only, the
/// key's own ceiling), with nothing written.
#[tokio::test]
async fn roles_permissions_and_groups_are_managed_over_rest() {
    let o = org().await;
    let (_, admin_key) = o.app.admin_key(&o.org).await;
    // roles:write and everything the viewer holds: the roles built on the viewer are within
    // its reach, so its refusals below are the ceiling's, not a stronger target's.
    let (_, roles_key) = o
        .app
        .scoped_key(
            &o.org,
            serde_json::json!({"roles": "write", "org": "read", "members": "read", "keys": "read", "usage": "read"}),
        )
        .await;
    let api = |method: &'static str, path: String, key: String, body: Option<serde_json::Value>| {
        let app = &o.app;
        async move { app.api(method, &path, Some(&key), body, "192.0.2.80").await }
    };
    let admin = || admin_key.clone();

    // Dynamic permissions with a dependency.
    let r = api(
        "POST",
        "/api/v1/permissions".into(),
        admin(),
        Some(serde_json::json!({"name": "invoices:read"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = api(
        "POST",
        "/api/v1/permissions".into(),
        admin(),
        Some(serde_json::json!({"name": "invoices:write", "description": "issue invoices", "requires": ["invoices:read"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.json()["requires"], serde_json::json!(["invoices:read"]));
    let r = api("GET", "/api/v1/permissions".into(), admin(), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let names: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"invoices:write".to_string()) && names.contains(&"keys:read".to_string()),
        "{names:?}"
    );

    // A group and a role holding it, built on the viewer.
    let r = api(
        "POST",
        "/api/v1/permission-groups".into(),
        admin(),
        Some(serde_json::json!({"name": "billing", "permissions": ["invoices:write"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let group = r.json()["id"].as_str().unwrap().to_string();
    let r = api(
        "POST",
        "/api/v1/roles".into(),
        admin(),
        Some(serde_json::json!({"name": "billing", "parents": ["viewer"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let role = r.json()["id"].as_str().unwrap().to_string();
    let r = api(
        "PUT",
        format!("/api/v1/roles/{role}/groups"),
        admin(),
        Some(serde_json::json!({"group_id": group, "granted": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = api("GET", format!("/api/v1/roles/{role}"), admin(), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let effective = r.json()["effective"].clone();
    let source = |name: &str| {
        effective
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["sources"].to_string())
            .unwrap_or_default()
    };
    assert!(source("invoices:write").contains(&group), "{effective}");
    assert!(
        source("invoices:read").contains("dependency"),
        "{effective}"
    );
    assert!(source("keys:read").contains("inherited"), "{effective}");

    // Bulk assignment: a result per user; a stranger is not assigned.
    let stranger = o.app.user("stranger@example.org", None).await;
    let r = api(
        "PUT",
        format!("/api/v1/roles/{role}/members"),
        admin(),
        Some(serde_json::json!({"user_ids": [o.member_id, stranger], "assigned": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let results = r.json();
    assert_eq!(results[0]["ok"], true, "{results}");
    assert_eq!(results[0]["changed"], true, "{results}");
    assert_eq!(results[1]["ok"], false, "{results}");
    let invoices_write = |user: String| {
        let db = o.app.state.db.clone();
        let org = o.org.clone();
        async move {
            app::access::ssr::dynamic_held(&db, &Principal::User { user_id: user }, &org)
                .await
                .unwrap()
                .unwrap_or_default()
                .contains("invoices:write")
        }
    };
    assert!(invoices_write(o.member_id.clone()).await);
    assert!(!invoices_write(stranger.clone()).await);

    // Refusals, each with nothing written.
    let before = o.app.snapshot().await;
    let r = api(
        "POST",
        "/api/v1/roles".into(),
        admin(),
        Some(serde_json::json!({"name": "child", "parents": [role]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let child = r.json()["id"].as_str().unwrap().to_string();
    let after_child = o.app.snapshot().await;
    assert_ne!(before, after_child);
    let r = api(
        "PUT",
        format!("/api/v1/roles/{role}/parents"),
        admin(),
        Some(serde_json::json!({"parents": [child]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.body.contains("billing") && r.body.contains("child"),
        "the cycle is named: {}",
        r.body
    );
    let r = api(
        "PUT",
        format!("/api/v1/roles/{child}/permissions"),
        admin(),
        Some(serde_json::json!({"permission": "invoices:write", "granted": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Within its reach, the roles key may change the role…
    let r = api(
        "PUT",
        format!("/api/v1/roles/{child}/permissions"),
        roles_key.clone(),
        Some(serde_json::json!({"permission": "usage:read", "granted": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let with_grant = o.app.snapshot().await;
    let r = api("DELETE", "/api/v1/roles/owner".into(), admin(), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // …but not past what it holds (the console's ceiling).
    let r = api(
        "PUT",
        format!("/api/v1/roles/{child}/permissions"),
        roles_key.clone(),
        Some(serde_json::json!({"permission": "keys:write", "granted": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        r.body.contains("keys:write"),
        "names what it lacks: {}",
        r.body
    );
    let r = api(
        "POST",
        "/api/v1/roles".into(),
        roles_key.clone(),
        Some(serde_json::json!({"name": "up", "parents": ["admin"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("missing permission"), "{}", r.body);
    let r = api(
        "POST",
        "/api/v1/permissions".into(),
        admin(),
        Some(serde_json::json!({"name": "Not A Name"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.error_code(), "invalid_input");
    let r = api(
        "PUT",
        format!("/api/v1/roles/{role}/members"),
        admin(),
        Some(serde_json::json!({"user_ids": [], "assigned": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(o.app.snapshot().await, with_grant, "refusals wrote nothing");

    // Cleanup: the group, then the roles; the member loses invoices:write at once.
    let r = api(
        "DELETE",
        format!("/api/v1/permission-groups/{group}"),
        admin(),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(!invoices_write(o.member_id.clone()).await);
    let r = api("GET", "/api/v1/permission-groups".into(), admin(), None).await;
    assert_eq!(r.json(), serde_json::json!([]));
    for id in [&child, &role] {
        let r = api("DELETE", format!("/api/v1/roles/{id}"), admin(), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    }
    let r = api("GET", "/api/v1/roles".into(), admin(), None).await;
    let ids: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        ["admin", "member", "owner", "viewer"],
        "built-in ones, by name"
    );
}

/// A key is its maker's hand: when the maker is demoted, the key administers members and roles
/// only within what the maker holds now, so it cannot give them their power back. A key the
/// CLI made stands for no one and keeps its scopes.
#[tokio::test]
async fn a_key_cannot_give_its_demoted_maker_their_power_back() {
    let o = org().await;
    let operator = app::access::ssr::Grant::operator(&o.org);
    let helper = app::access::roles::create_role(
        &o.app.state.db,
        &operator,
        "helper",
        "",
        &["viewer".to_string()],
    )
    .await
    .unwrap()
    .id;
    let scopes = serde_json::json!({"roles": "write", "org": "read", "members": "read", "keys": "read", "usage": "read"});
    let (key_id, key) = o.app.scoped_key(&o.org, scopes.clone()).await;
    // Made by the admin (as the console records it).
    sqlx::query("update api_key set created_by = $1 where api_key_id = $2")
        .bind(&o.admin_id)
        .bind(&key_id)
        .execute(&o.app.state.db.writer)
        .await
        .unwrap();
    let (_, cli_key) = o.app.scoped_key(&o.org, scopes).await;
    let assign = |key: &str, user: &str| {
        let (app, key, path) = (
            &o.app,
            key.to_string(),
            format!("/api/v1/roles/{helper}/members"),
        );
        let body = serde_json::json!({ "user_ids": [user], "assigned": true });
        async move {
            app.api("PUT", &path, Some(&key), Some(body), "192.0.2.81")
                .await
        }
    };
    // While its maker is an admin, the key assigns the role.
    let r = assign(&key, &o.member_id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()[0]["changed"], true, "{}", r.body);
    // The owner demotes the admin; their key can no longer administer roles, for them least.
    o.app.set_role(&o.org, &o.admin_id, "member").await;
    let before = o.app.snapshot().await;
    let r = assign(&key, &o.admin_id).await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "demoted maker's key",
    );
    let r = assign(&key, &o.viewer_id).await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "demoted maker's key",
    );
    assert_eq!(o.app.snapshot().await, before, "nothing written");
    assert!(!can(&o, &o.admin_id, Permission::RolesWrite).await);
    // The CLI's key keeps its scopes.
    let r = assign(&cli_key, &o.viewer_id).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()[0]["changed"], true, "{}", r.body);
}

/// Keys made by keys lead back to a person however long the chain: a key nine steps from a
/// demoted admin is cut down to what they hold now, and a chain too long to follow is refused
/// rather than cut (whoever stands at its end must not slip out of the rules).
#[tokio::test]
async fn a_chain_of_keys_leads_back_to_its_maker_or_is_refused() {
    let o = org().await;
    let scopes = serde_json::json!({"roles": "write", "org": "read", "members": "read", "keys": "read", "usage": "read"});
    // A chain of `n` keys whose first was made by `person`; answers the last key's secret.
    let chain = |person: String, n: usize| {
        let (app, org, scopes) = (&o.app, &o.org, scopes.clone());
        async move {
            let mut maker = person;
            let mut secret = String::new();
            for _ in 0..n {
                let (id, key) = app.scoped_key(org, scopes.clone()).await;
                sqlx::query("update api_key set created_by = $1 where api_key_id = $2")
                    .bind(&maker)
                    .bind(&id)
                    .execute(&app.state.db.writer)
                    .await
                    .unwrap();
                (maker, secret) = (id, key);
            }
            secret
        }
    };
    let from_admin = chain(o.admin_id.clone(), 9).await;
    let owner_id: String = sqlx::query_scalar(
        "select user_id from membership where organization_id = $1 and role = 'owner'",
    )
    .bind(&o.org)
    .fetch_one(&o.app.state.db.reader)
    .await
    .unwrap();
    let too_long = chain(owner_id, app::access::roles::MAKER_CHAIN_MAX + 2).await;
    let create = |key: String, name: &'static str| {
        let app = &o.app;
        async move {
            app.api(
                "POST",
                "/api/v1/roles",
                Some(&key),
                Some(serde_json::json!({ "name": name, "parents": ["viewer"] })),
                "192.0.2.82",
            )
            .await
        }
    };
    let r = create(from_admin.clone(), "first").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    o.app.set_role(&o.org, &o.admin_id, "member").await;
    let before = o.app.snapshot().await;
    let r = create(from_admin, "second").await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "nine keys from a demoted admin",
    );
    let r = create(too_long, "third").await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "a chain too long");
    assert!(r.body.contains("keys made by keys"), "{}", r.body);
    assert_eq!(o.app.snapshot().await, before, "nothing written");
}

/// A role's name and description are shown in the members, roles and audit views: control
/// characters (which could forge lines there) are refused, and nothing is written.
#[tokio::test]
async fn a_role_name_with_control_characters_is_refused() {
    let o = org().await;
    let before = o.app.snapshot().await;
    for (name, description) in [
        ("sup\u{8}port", ""),
        ("ok", "line\u{1b}[31m"),
        ("", ""),
        // Invisible characters that would let one name pass for another, or reverse it.
        ("owner\u{200B}", ""),
        ("\u{202E}renwo", ""),
        ("sup\u{FEFF}port", ""),
    ] {
        let r = call(
            &o,
            "create_role",
            &[("name", name), ("description", description)],
        )
        .await;
        assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", name);
    }
    assert_eq!(o.app.snapshot().await, before, "rows changed");
    let r = call(
        &o,
        "create_role",
        &[
            ("name", "support"),
            ("description", "first line\nsecond line"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Nor a name that reads as a built-in role, or as another custom role, but for case.
    let before = o.app.snapshot().await;
    for name in ["Owner", "ADMIN", "Support"] {
        let r = call(&o, "create_role", &[("name", name)]).await;
        assert_refused(&r, StatusCode::CONFLICT, "conflict", name);
    }
    assert_eq!(o.app.snapshot().await, before, "rows changed");
}

/// The role page sends the parents it loaded: a form loaded before someone else re-parented
/// the role is refused (409) rather than undoing it; reloaded, it saves.
#[tokio::test]
async fn a_stale_parents_form_cannot_undo_another_change() {
    let o = org().await;
    let a = call(&o, "create_role", &[("name", "a")]).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = call(&o, "create_role", &[("name", "b")]).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Loaded with no parent; meanwhile the role got `viewer`.
    let r = call(
        &o,
        "set_role_parents",
        &[("role_id", &a), ("parents[0]", "viewer"), ("loaded", "[]")],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let before = o.app.snapshot().await;
    let r = call(
        &o,
        "set_role_parents",
        &[("role_id", &a), ("parents[0]", &b), ("loaded", "[]")],
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.json()["error"]["field"], "loaded", "{}", r.body);
    assert_eq!(o.app.snapshot().await, before, "rows changed");
    // What the page loaded, garbled: a clear 400 on the field, nothing written.
    let r = call(
        &o,
        "set_role_parents",
        &[("role_id", &a), ("parents[0]", &b), ("loaded", "viewer")],
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.json()["error"]["field"], "loaded", "{}", r.body);
    assert_eq!(o.app.snapshot().await, before, "rows changed");
    let r = call(
        &o,
        "set_role_parents",
        &[
            ("role_id", &a),
            ("parents[0]", &b),
            ("loaded", r#"["viewer"]"#),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["parents"], serde_json::json!([b]), "{}", r.body);
}

/// The role page ticks parents in a list: the form sends `parents[i]` for the ticked ones
/// only, so the indexes have gaps, and nothing ticked sends no field at all. Every ticked
/// parent is kept (a role made with several over REST keeps them all), and none clears them.
#[tokio::test]
async fn the_parents_form_keeps_every_ticked_parent_and_none_clears_them() {
    let o = org().await;
    let b = call(&o, "create_role", &[("name", "b")]).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = call(&o, "create_role", &[("name", "a")]).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = call(
        &o,
        "set_role_parents",
        &[
            ("role_id", &a),
            ("parents[1]", "viewer"),
            ("parents[4]", &b),
            ("loaded", "[]"),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut parents: Vec<String> = serde_json::from_value(r.json()["parents"].clone()).unwrap();
    parents.sort();
    let mut want = vec![b.clone(), "viewer".to_string()];
    want.sort();
    assert_eq!(parents, want, "{}", r.body);

    let loaded = serde_json::to_string(&want).unwrap();
    let r = call(
        &o,
        "set_role_parents",
        &[("role_id", &a), ("loaded", &loaded)],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["parents"], serde_json::json!([]), "{}", r.body);
}

/// Every change re-reads an organization's whole role graph under its lock (on SQLite, the
/// instance's one writer): one tenant may not grow it without bound. Each list is refused
/// past its length before anything is read; each kind of definition is refused past its count,
/// the last one that fits is accepted, and nothing is written by a refusal.
#[tokio::test]
async fn an_organization_s_roles_permissions_groups_and_teams_are_bounded() {
    use app::access::groups::GROUPS_MAX;
    use app::access::roles::{PARENTS_MAX, PERMISSIONS_MAX, REQUIRES_MAX, ROLES_MAX};
    use app::teams::ssr::TEAMS_MAX;
    let o = org().await;
    let db = &o.app.state.db.writer;
    let before = o.app.snapshot().await;
    let list = |field: &str, n: usize| -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("{field}[{i}]"), format!("x{i}:read")))
            .collect()
    };
    let form = |fixed: &[(&str, &str)], extra: &[(String, String)]| -> Vec<(String, String)> {
        let mut f: Vec<(String, String)> = fixed
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        f.extend_from_slice(extra);
        f
    };
    let send = |endpoint: &'static str, f: Vec<(String, String)>| {
        let o = &o;
        async move {
            let pairs: Vec<(&str, &str)> =
                f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            call(o, endpoint, &pairs).await
        }
    };
    // Too many parents or requirements: 400 naming the field, before any lookup.
    let r = send(
        "create_role",
        form(&[("name", "wide")], &list("parents", PARENTS_MAX + 1)),
    )
    .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "parents");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("at most {PARENTS_MAX}")),
        "{}",
        r.body
    );
    let r = send(
        "set_role_parents",
        form(&[("role_id", "rol_any")], &list("parents", PARENTS_MAX + 1)),
    )
    .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "re-parenting");
    let r = send(
        "create_permission",
        form(
            &[("name", "wide:read")],
            &list("requires", REQUIRES_MAX + 1),
        ),
    )
    .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "requires");
    assert_eq!(o.app.snapshot().await, before, "rows changed");

    // One short of each count, written straight to the database.
    let now = app::ssr::db::now_ms();
    for i in 0..ROLES_MAX - 1 {
        sqlx::query("insert into role (role_id, organization_id, name, builtin, created_at) values ($1, $2, $3, 0, $4)")
            .bind(format!("rol_fill{i}")).bind(&o.org).bind(format!("fill {i}")).bind(now)
            .execute(db).await.unwrap();
    }
    for i in 0..PERMISSIONS_MAX - 1 {
        sqlx::query(
            "insert into custom_permission (organization_id, name, created_at) values ($1, $2, $3)",
        )
        .bind(&o.org)
        .bind(format!("fill{i}:read"))
        .bind(now)
        .execute(db)
        .await
        .unwrap();
    }
    for i in 0..GROUPS_MAX - 1 {
        sqlx::query("insert into permission_group (group_id, organization_id, name, created_at) values ($1, $2, $3, $4)")
            .bind(format!("grp_fill{i}")).bind(&o.org).bind(format!("fill {i}")).bind(now)
            .execute(db).await.unwrap();
    }
    for i in 0..TEAMS_MAX - 1 {
        sqlx::query(
            "insert into team (team_id, organization_id, name, created_at) values ($1, $2, $3, $4)",
        )
        .bind(format!("team_fill{i}"))
        .bind(&o.org)
        .bind(format!("fill {i}"))
        .bind(now)
        .execute(db)
        .await
        .unwrap();
    }
    // The last of each fits (with the most parents and requirements allowed)...
    let parents: Vec<(String, String)> = (0..PARENTS_MAX)
        .map(|i| (format!("parents[{i}]"), format!("rol_fill{i}")))
        .collect();
    let requires: Vec<(String, String)> = (0..REQUIRES_MAX)
        .map(|i| (format!("requires[{i}]"), format!("fill{i}:read")))
        .collect();
    for (endpoint, f) in [
        ("create_role", form(&[("name", "last")], &parents)),
        (
            "create_permission",
            form(&[("name", "last:read")], &requires),
        ),
        ("create_group", form(&[("name", "last")], &[])),
        ("create_team", form(&[("name", "last")], &[])),
    ] {
        let r = send(endpoint, f).await;
        assert_eq!(r.status, StatusCode::OK, "{endpoint}: {}", r.body);
    }
    // ...and the next is refused, saying why, writing nothing.
    let full = o.app.snapshot().await;
    for endpoint in [
        "create_role",
        "create_permission",
        "create_group",
        "create_team",
    ] {
        let name = if endpoint == "create_permission" {
            "next:read"
        } else {
            "next"
        };
        let r = send(endpoint, form(&[("name", name)], &[])).await;
        assert_refused(&r, StatusCode::CONFLICT, "conflict", endpoint);
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("the most it may"),
            "{endpoint}: {}",
            r.body
        );
    }
    assert_eq!(o.app.snapshot().await, full, "rows changed");
}
