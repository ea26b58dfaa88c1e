//! Generated matrices over the declared route list and the server-function guard table:
//!
//! - **permission ceiling**: every mutating operation, called by each weaker principal (a
//!   read-only key, a basic key against a stronger target, a viewer, a member, a personal token
//!   whose owner was demoted, removed or disabled), is refused with its code, returns no
//!   secret, and leaves every key row as it was; and every key route, called by a key holding
//!   everything but restricted (IP allow-list, expiry; or a test key), gives it no key or
//!   secret outside them;
//! - **isolation and bad input**: another organization's ids, malformed JSON, unknown fields
//!   and oversize bodies on every route and server function, each refused with its code and
//!   nothing written.
//!
//! A route or server function added without a case here fails the matrix.

mod common;

use app::access::policy::{Guard, SERVER_FNS};
use common::*;
use http::{Method, StatusCode};
use keyward_server::rest::{routes, Access, Body as DocBody};
use serde_json::{json, Value};

const IP: &str = "192.0.2.10";

/// Everything the matrices act on, in one organization (and a foreign one).
struct World {
    app: TestApp,
    org: String,
    /// Active key holding everything the organization can hold.
    strong: String,
    /// Disabled key holding everything.
    strong_disabled: String,
    /// A key holding everything that awaits approval.
    strong_pending: String,
    /// Its version (what a reviewer sends).
    strong_pending_version: String,
    /// `keys:write` + `org:read`: may write keys, but not hand out what it lacks.
    basic: String,
    /// `keys:read` only.
    read_only: String,
    /// `keys:write` + `approvals:write`: may review keys, but not approve one holding more.
    approver: String,
    /// `roles:write` and everything the viewer holds (so the custom role, built on the viewer,
    /// is within its reach): may edit roles, but not build one granting more than it holds.
    roles_key: String,
    /// Holding everything, but allowed only from `192.0.2.0/24` and expiring in an hour: what
    /// it makes, edits or takes over must stay inside those restrictions.
    restricted: String,
    /// Holding everything, unrestricted but a test key: what it makes, edits or takes over
    /// must be a test key too.
    test_key: String,
    /// Personal tokens (basic) whose owners were demoted to viewer, removed, disabled.
    pat_demoted: String,
    pat_removed: String,
    pat_disabled: String,
    /// Signed-in members of the organization.
    viewer: Browser,
    member: Browser,
    /// An admin: holds `roles:write`, but not `org:write` (the owner's).
    admin: Browser,
    member_id: String,
    /// A custom role of the organization (inherits the viewer).
    custom_role: String,
    /// An empty permission group the custom role holds, and one holding `org:write` that no
    /// role holds.
    group_held: String,
    group_powers: String,
    /// A team, and a custom role inheriting the owner (everything, `org:write` included).
    team: String,
    owner_like_role: String,
    /// Another organization, its admin key and one of its keys.
    foreign_org: String,
    foreign_key_id: String,
    foreign_team: String,
    foreign_role: String,
    foreign_group: String,
}

async fn world() -> World {
    let app = spawn().await;
    let owner = app.user("owner@example.org", None).await;
    let org = app.org_of(&owner).await;
    let (strong, _) = app.admin_key(&org).await;
    let (strong_disabled, _) = app.admin_key(&org).await;
    sqlx::query("update api_key set status = 'disabled' where api_key_id = $1")
        .bind(&strong_disabled)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let (strong_pending, _) = app.admin_key(&org).await;
    sqlx::query("update api_key set approval = 'pending' where api_key_id = $1")
        .bind(&strong_pending)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let strong_pending_version = app.key_version(&strong_pending).await;
    let (_, basic) = app
        .scoped_key(&org, json!({"keys": "write", "org": "read"}))
        .await;
    let (_, read_only) = app.scoped_key(&org, json!({"keys": "read"})).await;
    let (_, restricted) = app
        .issue_key(
            &org,
            app::keys::NewKey {
                name: "restricted".into(),
                category: Some("admin".into()),
                ip_allowlist: Some(vec!["192.0.2.0/24".into()]),
                expires_at: Some(app::keys::ssr::rfc3339(app::ssr::db::now_ms() + 3_600_000)),
                ..Default::default()
            },
        )
        .await;
    let (_, test_key) = app
        .issue_key(
            &org,
            app::keys::NewKey {
                name: "test".into(),
                category: Some("admin".into()),
                environment: Some("test".into()),
                ..Default::default()
            },
        )
        .await;
    let (_, approver) = app
        .scoped_key(&org, json!({"keys": "write", "approvals": "write"}))
        .await;
    let (_, roles_key) = app
        .scoped_key(
            &org,
            json!({"roles": "write", "org": "read", "members": "read", "keys": "read", "usage": "read"}),
        )
        .await;

    let mut pats = Vec::new();
    for who in ["demoted", "removed", "disabled"] {
        let user = app.user(&format!("{who}@example.org"), None).await;
        app.add_member(&org, &user, "admin").await;
        let mut b = app.signed_in(&format!("{who}@example.org")).await;
        let (_, secret) = app.pat(&mut b, &org, "basic").await;
        match who {
            "demoted" => app.set_role(&org, &user, "viewer").await,
            "removed" => app.remove_member(&org, &user).await,
            _ => app.disable_user(&user).await,
        }
        pats.push(secret);
    }
    let viewer = app.user("viewer@example.org", None).await;
    app.add_member(&org, &viewer, "viewer").await;
    let member = app.user("member@example.org", None).await;
    app.add_member(&org, &member, "member").await;
    let admin = app.user("roleadmin@example.org", None).await;
    app.add_member(&org, &admin, "admin").await;
    let custom_role = app::access::roles::create_role(
        &app.state.db,
        &app::access::ssr::Grant::operator(&org),
        "support",
        "",
        &["viewer".to_string()],
    )
    .await
    .unwrap()
    .id;
    let operator = app::access::ssr::Grant::operator(&org);
    let group_held = app::access::groups::create_group(&app.state.db, &operator, "ops", &[])
        .await
        .unwrap()
        .id;
    app::access::groups::set_role_group(&app.state.db, &operator, &custom_role, &group_held, true)
        .await
        .unwrap();
    let group_powers = app::access::groups::create_group(
        &app.state.db,
        &operator,
        "powers",
        &["org:write".to_string()],
    )
    .await
    .unwrap()
    .id;
    let owner_like_role = app::access::roles::create_role(
        &app.state.db,
        &operator,
        "deputy",
        "",
        &["owner".to_string()],
    )
    .await
    .unwrap()
    .id;
    let team = app::teams::ssr::create(&app.state.db, &operator, "ops", "")
        .await
        .unwrap()
        .id;
    let stranger = app.user("stranger@example.org", None).await;
    let foreign_org = app.org_of(&stranger).await;
    let (foreign_key_id, _) = app.admin_key(&foreign_org).await;
    let foreign_team = app::teams::ssr::create(
        &app.state.db,
        &app::access::ssr::Grant::operator(&foreign_org),
        "theirs",
        "",
    )
    .await
    .unwrap()
    .id;
    let their_operator = app::access::ssr::Grant::operator(&foreign_org);
    let foreign_role =
        app::access::roles::create_role(&app.state.db, &their_operator, "theirs", "", &[])
            .await
            .unwrap()
            .id;
    let foreign_group =
        app::access::groups::create_group(&app.state.db, &their_operator, "theirs", &[])
            .await
            .unwrap()
            .id;
    World {
        viewer: app.signed_in("viewer@example.org").await,
        member: app.signed_in("member@example.org").await,
        admin: app.signed_in("roleadmin@example.org").await,
        member_id: member,
        custom_role,
        group_held,
        group_powers,
        team,
        owner_like_role,
        app,
        org,
        strong,
        strong_disabled,
        strong_pending,
        strong_pending_version,
        basic,
        read_only,
        restricted,
        test_key,
        approver,
        pat_disabled: pats.pop().unwrap(),
        pat_removed: pats.pop().unwrap(),
        pat_demoted: pats.pop().unwrap(),
        foreign_org,
        foreign_key_id,
        foreign_team,
        foreign_role,
        foreign_group,
        roles_key,
    }
}

/// A call to a mutating REST route that would hand out or bring back power if it were let
/// through (`power: true`), or an ordinary call for routes that cannot (disable, revoke).
struct Call {
    path: String,
    body: Option<Value>,
    power: bool,
}

/// The call for each mutating route. A new mutating route must be added here.
fn call_for(w: &World, method: &Method, template: &str) -> Call {
    let on = |id: &str| template.replace("{id}", id);
    let call = |path: String, body: Option<Value>, power: bool| Call { path, body, power };
    match (method.as_str(), template) {
        ("POST", "/api/v1/keys") => call(
            on(""),
            Some(json!({"name": "p", "category": "admin"})),
            true,
        ),
        ("POST", "/api/v1/keys/bulk") => call(
            on(""),
            Some(json!({"action": "enable", "ids": [w.strong_disabled]})),
            true,
        ),
        ("POST", "/api/v1/keys/import") => call(
            on(""),
            Some(json!([{"name": "p", "category": "admin"}])),
            true,
        ),
        ("PATCH", "/api/v1/keys/{id}") => {
            call(on(&w.strong), Some(json!({"name": "renamed"})), true)
        }
        ("POST", "/api/v1/keys/{id}/enable") => call(on(&w.strong_disabled), None, true),
        // Approving hands the key's power out; rejecting only takes it away.
        ("POST", "/api/v1/keys/{id}/approve") => call(
            on(&w.strong_pending),
            Some(json!({"version": w.strong_pending_version})),
            true,
        ),
        ("POST", "/api/v1/keys/{id}/reject") => call(on(&w.strong_pending), None, false),
        ("POST", "/api/v1/keys/{id}/roll") => {
            call(on(&w.strong), Some(json!({"grace_seconds": 0})), true)
        }
        ("DELETE", "/api/v1/keys/{id}") | ("POST", "/api/v1/keys/{id}/disable") => {
            call(on(&w.strong), None, false)
        }
        // Like disable: a limit restricts a key, it hands out nothing.
        ("PUT", "/api/v1/keys/{id}/limit") => call(
            on(&w.strong),
            Some(json!({"rate_limit": 1, "rate_window_seconds": 86400})),
            false,
        ),
        // Instance plans: no key of an ordinary organization can hold plans:write.
        ("POST", "/api/v1/plans") => call(
            on(""),
            Some(json!({"name": "mine", "limit": 1000000, "window_seconds": 1})),
            false,
        ),
        ("PATCH", "/api/v1/plans/{id}") => {
            call(on("plan_free"), Some(json!({"limit": 1000000000})), false)
        }
        ("DELETE", "/api/v1/plans/{id}") => call(on("plan_pro"), None, false),
        ("POST", "/api/v1/users") => call(
            on(""),
            Some(
                json!({"email": "made@example.org", "display_name": "Made", "system_role": "owner"}),
            ),
            true,
        ),
        ("PATCH", "/api/v1/users/{id}") => {
            call(on(&w.member_id), Some(json!({"status": "disabled"})), false)
        }
        ("POST", "/api/v1/users/{id}/password-reset")
        | ("DELETE", "/api/v1/users/{id}")
        | ("DELETE", "/api/v1/users/{id}/sessions")
        | ("DELETE", "/api/v1/users/{id}/two-factor") => call(on(&w.member_id), None, false),
        ("DELETE", "/api/v1/users/{id}/sessions/{handle}") => call(
            on(&w.member_id).replace("{handle}", "s_unknown"),
            None,
            false,
        ),
        // Making a member an admin; inviting one.
        ("PATCH", "/api/v1/members/{id}") => {
            call(on(&w.member_id), Some(json!({"role": "admin"})), true)
        }
        ("DELETE", "/api/v1/members/{id}") => call(on(&w.member_id), None, false),
        ("POST", "/api/v1/invitations") => call(
            on(""),
            Some(json!({"email": "newcomer@example.org", "role": "admin"})),
            true,
        ),
        ("DELETE", "/api/v1/invitations/{id}") => call(on("inv_none"), None, false),
        // Listing who was invited needs members:write, like inviting; it changes nothing.
        ("GET", "/api/v1/invitations") => call(on(""), None, false),
        ("POST", "/api/v1/teams") => call(on(""), Some(json!({"name": "new"})), false),
        ("DELETE", "/api/v1/teams/{id}") => call(on(&w.team), None, false),
        ("PUT", "/api/v1/teams/{id}/members") => call(
            on(&w.team),
            Some(json!({"user_id": w.member_id, "member": true})),
            false,
        ),
        // Every member of the team would hold the owner's permissions.
        ("PUT", "/api/v1/teams/{id}/roles") => call(
            on(&w.team),
            Some(json!({"role_id": w.owner_like_role, "held": true})),
            true,
        ),
        // A role inheriting the owner, granting org:write, holding a group that grants it.
        ("POST", "/api/v1/roles") => call(
            on(""),
            Some(json!({"name": "mine", "parents": ["owner"]})),
            true,
        ),
        ("PUT", "/api/v1/roles/{id}/parents") => call(
            on(&w.custom_role),
            Some(json!({"parents": ["owner"]})),
            true,
        ),
        ("PUT", "/api/v1/roles/{id}/permissions") => call(
            on(&w.custom_role),
            Some(json!({"permission": "org:write", "granted": true})),
            true,
        ),
        ("PUT", "/api/v1/roles/{id}/groups") => call(
            on(&w.custom_role),
            Some(json!({"group_id": w.group_powers, "granted": true})),
            true,
        ),
        // Members would hold the owner's permissions.
        ("PUT", "/api/v1/roles/{id}/members") => call(
            on(&w.owner_like_role),
            Some(json!({"user_ids": [w.member_id], "assigned": true})),
            true,
        ),
        ("DELETE", "/api/v1/roles/{id}") => call(on(&w.custom_role), None, false),
        // A permission and a group by themselves grant nothing.
        ("POST", "/api/v1/permissions") => {
            call(on(""), Some(json!({"name": "invoices:read"})), false)
        }
        ("POST", "/api/v1/permission-groups") => call(
            on(""),
            Some(json!({"name": "more", "permissions": ["org:write"]})),
            false,
        ),
        // The custom role holds this group: org:write would reach it.
        ("PUT", "/api/v1/permission-groups/{id}/permissions") => call(
            on(&w.group_held),
            Some(json!({"permission": "org:write", "included": true})),
            true,
        ),
        ("DELETE", "/api/v1/permission-groups/{id}") => call(on(&w.group_held), None, false),
        other => panic!("mutating route {other:?} has no case in the ceiling matrix"),
    }
}

/// Whether a reply is a refusal with `code`: the status of that code, or — for routes that
/// answer one outcome per row (bulk, import) — 200 with every outcome refused with it.
fn refused_with(r: &Reply, status: StatusCode, code: &str) -> bool {
    if r.status == status && r.error_code() == code {
        return true;
    }
    if r.status != StatusCode::OK {
        return false;
    }
    let v = r.json();
    let rows = v.get("rows").cloned().unwrap_or(v);
    rows.as_array().is_some_and(|rows| {
        !rows.is_empty()
            && rows
                .iter()
                .all(|row| row["code"] == code && row["ok"] == false)
    })
}

#[tokio::test]
async fn rest_ceiling_matrix() {
    let w = world().await;
    let mut cases = 0;
    for spec in routes() {
        let Access::Key(permission) = spec.access else {
            continue;
        };
        if !permission.is_write() {
            continue;
        }
        let principals: [(&str, &str, StatusCode, &str, bool); 7] = [
            (
                "read-only key",
                &w.read_only,
                StatusCode::FORBIDDEN,
                "forbidden",
                false,
            ),
            (
                "token of a demoted owner",
                &w.pat_demoted,
                StatusCode::FORBIDDEN,
                "forbidden",
                false,
            ),
            (
                "token of a removed owner",
                &w.pat_removed,
                StatusCode::UNAUTHORIZED,
                "key_disabled",
                false,
            ),
            (
                "token of a disabled owner",
                &w.pat_disabled,
                StatusCode::UNAUTHORIZED,
                "key_disabled",
                false,
            ),
            (
                "basic key, stronger target",
                &w.basic,
                StatusCode::FORBIDDEN,
                "forbidden",
                true,
            ),
            (
                "approver key, stronger target",
                &w.approver,
                StatusCode::FORBIDDEN,
                "forbidden",
                true,
            ),
            (
                "roles key, stronger target",
                &w.roles_key,
                StatusCode::FORBIDDEN,
                "forbidden",
                true,
            ),
        ];
        for (who, key, status, code, power_only) in principals {
            let call = call_for(&w, &spec.method, spec.path);
            if power_only && !call.power {
                continue;
            }
            let what = format!("{who}: {} {}", spec.method, call.path);
            let before = w.app.snapshot().await;
            let r = w
                .app
                .api(
                    spec.method.as_str(),
                    &call.path,
                    Some(key),
                    call.body.clone(),
                    IP,
                )
                .await;
            assert!(
                refused_with(&r, status, code),
                "{what}: expected {code}, got {} {}",
                r.status,
                r.body
            );
            assert_no_secret(&r, &what);
            assert_eq!(w.app.snapshot().await, before, "{what}: rows changed");
            cases += 1;
        }
    }
    assert!(cases >= 30, "only {cases} cases: is the route list empty?");
}

/// For each mutating key route, the call by which a restricted key would escape its
/// restrictions (a key of its own unrestricted, an unrestricted key's secret, a faster
/// limit), or `None` where the route hands a key nothing to escape with. A new key route must
/// be added here.
fn escape_for(w: &World, method: &Method, template: &str) -> Option<Call> {
    let on = |id: &str| template.replace("{id}", id);
    let call = |path: String, body: Option<Value>| {
        Some(Call {
            path,
            body,
            power: true,
        })
    };
    match (method.as_str(), template) {
        ("POST", "/api/v1/keys") => call(
            on(""),
            Some(json!({"name": "p", "ip_allowlist": [], "environment": "live"})),
        ),
        ("POST", "/api/v1/keys/import") => call(
            on(""),
            Some(
                json!([{"name": "p", "expires_at": null, "ip_allowlist": [], "environment": "live"}]),
            ),
        ),
        ("POST", "/api/v1/keys/bulk") => call(
            on(""),
            Some(json!({"action": "enable", "ids": [w.strong_disabled]})),
        ),
        ("POST", "/api/v1/keys/{id}/enable") => call(on(&w.strong_disabled), None),
        ("POST", "/api/v1/keys/{id}/roll") => {
            call(on(&w.strong), Some(json!({"grace_seconds": 0})))
        }
        // Narrowing an unrestricted key part of the way is still taking it over.
        ("PATCH", "/api/v1/keys/{id}") => call(
            on(&w.strong),
            Some(json!({"ip_allowlist": ["192.0.2.0/24"]})),
        ),
        // Slower than the acting keys' own limits: only their restrictions can refuse it.
        ("PUT", "/api/v1/keys/{id}/limit") => call(
            on(&w.strong),
            Some(json!({"rate_limit": 1, "rate_window_seconds": 86400})),
        ),
        // Approving hands a key to its creator, who chose its restrictions under their own;
        // the rest only take away.
        ("POST", "/api/v1/keys/{id}/approve")
        | ("POST", "/api/v1/keys/{id}/reject")
        | ("POST", "/api/v1/keys/{id}/disable")
        | ("DELETE", "/api/v1/keys/{id}") => None,
        (_, path) if path.starts_with("/api/v1/keys") => {
            panic!("key route {method} {path} has no case in the restrictions matrix")
        }
        _ => None,
    }
}

/// A key holding everything but restricted (IP allow-list, expiry; or a test key) cannot use
/// any key route to get a key, or a key's secret, outside its restrictions: refused
/// `forbidden`, no secret, nothing written.
#[tokio::test]
async fn restricted_key_matrix() {
    let w = world().await;
    for (who, key, environment) in [
        ("restricted key", &w.restricted, "live"),
        ("test key", &w.test_key, "test"),
    ] {
        let mut cases = 0;
        for spec in routes() {
            if !matches!(spec.access, Access::Key(p) if p.is_write()) {
                continue;
            }
            let Some(call) = escape_for(&w, &spec.method, spec.path) else {
                continue;
            };
            let what = format!("{who}: {} {}", spec.method, call.path);
            let before = w.app.snapshot().await;
            let r = w
                .app
                .api(
                    spec.method.as_str(),
                    &call.path,
                    Some(key),
                    call.body.clone(),
                    IP,
                )
                .await;
            assert!(
                refused_with(&r, StatusCode::FORBIDDEN, "forbidden"),
                "{what}: expected forbidden, got {} {}",
                r.status,
                r.body
            );
            assert_no_secret(&r, &what);
            assert_eq!(w.app.snapshot().await, before, "{what}: rows changed");
            cases += 1;
        }
        assert_eq!(cases, 7, "a key route lost its case");
        // The same key may make a key inside its restrictions (which it inherits): the
        // refusals above are about them.
        let r = w
            .app
            .api(
                "POST",
                "/api/v1/keys",
                Some(key),
                Some(json!({"name": "inside", "category": "admin"})),
                IP,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{who}: {}", r.body);
        assert_eq!(r.json()["environment"], environment, "{who}: {}", r.body);
    }
}

/// The form of each organization server function: the call that would hand out or bring
/// back power (or, for reads and non-power writes, an ordinary call), in organization `org`.
fn form_for(w: &World, endpoint: &str, org: &str) -> (Vec<(String, String)>, bool) {
    let f = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let import = json!([{"name": "p", "category": "admin"}]).to_string();
    match endpoint {
        "list_keys" | "organization_members" | "audit_log" | "security_scan" => {
            (f(&[("organization_id", org)]), false)
        }
        "key_usage" => (f(&[("organization_id", org), ("key_id", &w.strong)]), false),
        // Narrowing only takes scopes away (and the strong key used nothing): no power to gain.
        "narrow_key_scopes" => (f(&[("organization_id", org), ("key_id", &w.strong)]), false),
        "usage_series" | "usage_overview" | "usage_errors" => {
            (f(&[("organization_id", org), ("range", "1h")]), false)
        }
        "get_key" | "key_history" => (f(&[("organization_id", org), ("key_id", &w.strong)]), false),
        "export_keys" => (f(&[("organization_id", org), ("format", "csv")]), false),
        "update_key" => (
            f(&[
                ("organization_id", org),
                ("key_id", &w.strong),
                ("name", "renamed"),
                ("description", ""),
                ("category", "admin"),
                ("ip_allowlist", ""),
                ("expires_on", ""),
                ("reason", ""),
            ]),
            true,
        ),
        "import_keys" => (
            f(&[
                ("organization_id", org),
                ("format", "json"),
                ("data", &import),
                ("dry_run", "false"),
            ]),
            true,
        ),
        "create_key" => (
            f(&[
                ("organization_id", org),
                ("name", "p"),
                ("environment", "live"),
                ("category", "admin"),
                ("ip_allowlist", ""),
                ("expires_in_days", ""),
            ]),
            true,
        ),
        "set_key_status" => (
            f(&[
                ("organization_id", org),
                ("key_id", &w.strong_disabled),
                ("action", "enable"),
                ("reason", ""),
            ]),
            true,
        ),
        "review_key" => (
            f(&[
                ("organization_id", org),
                ("key_id", &w.strong_pending),
                ("decision", "approve"),
                ("version", &w.strong_pending_version),
                ("reason", ""),
            ]),
            true,
        ),
        "roll_key" => (
            f(&[
                ("organization_id", org),
                ("key_id", &w.strong),
                ("grace_seconds", "0"),
            ]),
            true,
        ),
        "bulk_keys" => (
            f(&[
                ("organization_id", org),
                ("key_ids[0]", &w.strong_disabled),
                ("action", "enable"),
            ]),
            true,
        ),
        "set_key_limit" => (
            f(&[
                ("organization_id", org),
                ("key_id", &w.strong),
                ("plan_id", ""),
                ("rate_limit", "1"),
                ("rate_window_seconds", "86400"),
            ]),
            false,
        ),
        "list_roles" => (f(&[("organization_id", org)]), false),
        // A role inheriting the owner: everything, org:write included.
        "create_role" => (
            f(&[
                ("organization_id", org),
                ("name", "escalate"),
                ("parents[0]", "owner"),
            ]),
            true,
        ),
        "set_role_parents" => (
            f(&[
                ("organization_id", org),
                ("role_id", &w.custom_role),
                ("parents[0]", "owner"),
            ]),
            true,
        ),
        "set_role_permission" => (
            f(&[
                ("organization_id", org),
                ("role_id", &w.custom_role),
                ("permission", "org:write"),
                ("granted", "true"),
            ]),
            true,
        ),
        "delete_role" => (
            f(&[("organization_id", org), ("role_id", &w.custom_role)]),
            false,
        ),
        "create_permission" => (
            f(&[("organization_id", org), ("name", "invoices:read")]),
            false,
        ),
        "list_teams" => (f(&[("organization_id", org)]), false),
        "create_team" => (f(&[("organization_id", org), ("name", "new")]), false),
        "delete_team" => (f(&[("organization_id", org), ("team_id", &w.team)]), false),
        "set_team_member" => (
            f(&[
                ("organization_id", org),
                ("team_id", &w.team),
                ("user_id", &w.member_id),
                ("add", "true"),
            ]),
            false,
        ),
        // Every member of the team would hold the owner's permissions.
        "set_team_role" => (
            f(&[
                ("organization_id", org),
                ("team_id", &w.team),
                ("role_id", &w.owner_like_role),
                ("add", "true"),
            ]),
            true,
        ),
        "assign_role" => (
            f(&[
                ("organization_id", org),
                ("role_id", &w.custom_role),
                ("user_ids[0]", &w.member_id),
                ("assign", "true"),
            ]),
            false,
        ),
        "switch_organization" | "leave_organization" | "list_invitations" | "get_org_policy" => {
            (f(&[("organization_id", org)]), false)
        }
        // Inviting as admin, making a member admin, handing over the organization.
        "invite_member" => (
            f(&[
                ("organization_id", org),
                ("email", "newcomer@example.org"),
                ("role", "admin"),
            ]),
            true,
        ),
        "set_member_role" => (
            f(&[
                ("organization_id", org),
                ("user_id", &w.member_id),
                ("role", "admin"),
            ]),
            true,
        ),
        "transfer_ownership" => (
            f(&[("organization_id", org), ("user_id", &w.member_id)]),
            true,
        ),
        "set_org_policy" => (
            f(&[
                ("organization_id", org),
                ("max_key_lifetime_days", ""),
                ("require_two_factor", ""),
            ]),
            false,
        ),
        "revoke_invitation" => (
            f(&[("organization_id", org), ("invitation_id", "inv_none")]),
            false,
        ),
        "remove_member" => (
            f(&[("organization_id", org), ("user_id", &w.member_id)]),
            false,
        ),
        // A group grants nothing by itself.
        "create_group" => (
            f(&[
                ("organization_id", org),
                ("name", "g"),
                ("permissions", "org:write"),
            ]),
            false,
        ),
        // Every role holding the group would grant org:write.
        "set_group_permission" => (
            f(&[
                ("organization_id", org),
                ("group_id", &w.group_held),
                ("permission", "org:write"),
                ("included", "true"),
            ]),
            true,
        ),
        "set_role_group" => (
            f(&[
                ("organization_id", org),
                ("role_id", &w.custom_role),
                ("group_id", &w.group_powers),
                ("granted", "true"),
            ]),
            true,
        ),
        "delete_group" => (
            f(&[("organization_id", org), ("group_id", &w.group_held)]),
            false,
        ),
        other => panic!("organization server function {other:?} has no case in the matrix"),
    }
}

async fn rpc_form(
    app: &TestApp,
    b: &mut Browser,
    endpoint: &str,
    form: &[(String, String)],
) -> Reply {
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    app.rpc(b, endpoint, &pairs).await
}

#[tokio::test]
async fn server_function_ceiling_matrix() {
    let w = world().await;
    let mut cases = 0;
    for (endpoint, guard) in SERVER_FNS {
        let Guard::Org(permission) = guard else {
            continue;
        };
        let (form, power) = form_for(&w, endpoint, &w.org);
        // A viewer holds no write at all; a member holds keys:write but not what the strong
        // key holds.
        let mut who: Vec<(&str, bool)> = Vec::new();
        if permission.is_write() {
            who.push(("viewer", false));
            if power {
                who.push(("member", true));
            }
            // Role management: an admin holds roles:write, yet cannot make or change a role
            // into more than they hold (the owner's org:write); nor hand over the organization.
            if power
                && matches!(
                    permission,
                    app::access::Permission::RolesWrite
                        | app::access::Permission::OrgWrite
                        | app::access::Permission::ApprovalsWrite
                )
            {
                who.push(("admin", true));
            }
        }
        for (name, _) in who {
            let before = w.app.snapshot().await;
            let mut b = match name {
                "viewer" => w.viewer.clone(),
                "admin" => w.admin.clone(),
                _ => w.member.clone(),
            };
            let r = rpc_form(&w.app, &mut b, endpoint, &form).await;
            let what = format!("{name}: {endpoint}");
            assert!(
                refused_with(&r, StatusCode::FORBIDDEN, "forbidden"),
                "{what}: got {} {}",
                r.status,
                r.body
            );
            assert_no_secret(&r, &what);
            assert_eq!(w.app.snapshot().await, before, "{what}: rows changed");
            cases += 1;
        }
    }
    assert!(cases >= 12, "only {cases} cases");
}

#[tokio::test]
async fn rest_isolation_and_bad_input_sweep() {
    let w = world().await;
    let (_, org_admin) = w.app.admin_key(&w.org).await;
    // Instance routes (plans) are for system-organization keys.
    let (_, system_admin) = w.app.admin_key(app::access::ssr::SYSTEM_ORG_ID).await;
    let mut cases = 0;
    for spec in routes() {
        let Access::Key(permission) = spec.access else {
            continue;
        };
        let admin = if permission.is_instance() {
            system_admin.clone()
        } else {
            org_admin.clone()
        };
        let method = spec.method.as_str();
        let has_body = !matches!(spec.doc.body, DocBody::None);
        let check = |r: &Reply, status: StatusCode, code: &str, what: &str| {
            assert_refused(r, status, code, what);
        };
        // Another organization's id of the route's kind: not found, whatever the route.
        if spec.path.contains("{id}") {
            let foreign = if spec.path.starts_with("/api/v1/teams") {
                &w.foreign_team
            } else if spec.path.starts_with("/api/v1/roles") {
                &w.foreign_role
            } else if spec.path.starts_with("/api/v1/permission-groups") {
                &w.foreign_group
            } else {
                &w.foreign_key_id
            };
            let path = spec
                .path
                .replace("{id}", foreign)
                .replace("{handle}", "s_unknown");
            let body = match &spec.doc.body {
                DocBody::Json(_, example) => Some(serde_json::from_str(example).unwrap()),
                _ => None,
            };
            let before = w.app.snapshot().await;
            let r = w.app.api(method, &path, Some(&admin), body, IP).await;
            check(
                &r,
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("foreign id: {method} {path}"),
            );
            assert_eq!(w.app.snapshot().await, before);
            cases += 1;
        }
        if !has_body {
            continue;
        }
        let path = spec.path.replace("{id}", &w.strong);
        let json_type = [("content-type", "application/json")];
        // Malformed JSON.
        let before = w.app.snapshot().await;
        let r = w
            .app
            .api_raw(
                method,
                &path,
                Some(&admin),
                Some("{\"name\": "),
                IP,
                &json_type,
            )
            .await;
        check(
            &r,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            &format!("malformed: {method} {path}"),
        );
        // Unknown fields (the import takes other systems' extra columns on purpose).
        if let DocBody::Json(_, example) = &spec.doc.body {
            let mut body: Value = serde_json::from_str(example).unwrap();
            body["no_such_field"] = json!(1);
            let r = w.app.api(method, &path, Some(&admin), Some(body), IP).await;
            check(
                &r,
                StatusCode::BAD_REQUEST,
                "invalid_input",
                &format!("unknown field: {method} {path}"),
            );
        }
        // Oversize.
        let big = format!("[\"{}\"]", "x".repeat(spec.body_limit + 1));
        let r = w
            .app
            .api_raw(method, &path, Some(&admin), Some(&big), IP, &json_type)
            .await;
        check(
            &r,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("oversize: {method} {path}"),
        );
        assert_eq!(
            w.app.snapshot().await,
            before,
            "{method} {path}: rows changed"
        );
        cases += 3;
    }
    assert!(cases >= 20, "only {cases} cases");
}

#[tokio::test]
async fn server_function_isolation_and_bad_input_sweep() {
    let w = world().await;
    let mut owner = w.app.signed_in("owner@example.org").await;
    let mut cases = 0;
    for (endpoint, guard) in SERVER_FNS {
        let Guard::Org(_) = guard else { continue };
        // Another organization: refused as if it did not exist.
        let (form, _) = form_for(&w, endpoint, &w.foreign_org);
        let before = w.app.snapshot().await;
        let r = rpc_form(&w.app, &mut owner, endpoint, &form).await;
        assert_refused(
            &r,
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("foreign org: {endpoint}"),
        );
        // Another organization's key, team, role or group, named in one's own organization: not found,
        // and nothing written.
        for (field, foreign) in [
            ("key_id", &w.foreign_key_id),
            ("team_id", &w.foreign_team),
            ("role_id", &w.foreign_role),
            ("group_id", &w.foreign_group),
        ] {
            if !form.iter().any(|(k, _)| k == field) {
                continue;
            }
            let (form, _) = form_for(&w, endpoint, &w.org);
            let form: Vec<(String, String)> = form
                .into_iter()
                .map(|(k, v)| {
                    if k == field {
                        (k, foreign.clone())
                    } else {
                        (k, v)
                    }
                })
                .collect();
            let before = w.app.snapshot().await;
            let r = rpc_form(&w.app, &mut owner, endpoint, &form).await;
            assert_refused(
                &r,
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("foreign {field}: {endpoint}"),
            );
            assert_eq!(
                w.app.snapshot().await,
                before,
                "foreign {field}: {endpoint}"
            );
        }
        // Missing arguments: a clear 400.
        let r = w
            .app
            .rpc(
                &mut owner,
                endpoint,
                &[("organization_id", w.org.as_str()), ("unexpected", "1")],
            )
            .await;
        // Those that take nothing but the organization have no argument to get wrong.
        if ![
            "list_keys",
            "organization_members",
            "list_roles",
            "list_invitations",
            "list_teams",
            "switch_organization",
            "leave_organization",
            "get_org_policy",
            "audit_log",
            "security_scan",
        ]
        .contains(endpoint)
        {
            assert_refused(
                &r,
                StatusCode::BAD_REQUEST,
                "invalid_input",
                &format!("bad args: {endpoint}"),
            );
        }
        assert_eq!(w.app.snapshot().await, before, "{endpoint}: rows changed");
        cases += 1;
    }
    assert!(cases >= 10, "only {cases} cases");
}
