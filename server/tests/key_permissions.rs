//! Dynamic permissions on keys: an organization's own permissions (`invoices:read`) put on keys
//! by those who hold them, checked by other services through `POST /api/v1/keys/verify` with
//! the permissions a request needs (requirements included, a personal token bounded by its
//! owner). Runs on SQLite, and on PostgreSQL when `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use common::*;
use http::StatusCode;
use serde_json::json;

const IP: &str = "192.0.2.20";

struct Org {
    app: TestApp,
    org: String,
    owner: Browser,
    member: Browser,
    member_id: String,
    /// An admin-preset key of the organization: verifies, creates keys (but holds no dynamic
    /// permission itself).
    admin_key: String,
}

async fn org() -> Org {
    let app = spawn().await;
    let owner_id = app.user("owner@example.org", None).await;
    let org = app.org_of(&owner_id).await;
    let member_id = app.user("member@example.org", None).await;
    app.add_member(&org, &member_id, "member").await;
    let (_, admin_key) = app.admin_key(&org).await;
    let mut owner = app.signed_in("owner@example.org").await;
    for form in [
        vec![("name", "invoices:read")],
        vec![("name", "invoices:write"), ("requires[0]", "invoices:read")],
        vec![("name", "invoices:refund")],
    ] {
        let mut pairs = vec![("organization_id", org.as_str())];
        pairs.extend(form);
        let r = app.rpc(&mut owner, "create_permission", &pairs).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    Org {
        member: app.signed_in("member@example.org").await,
        app,
        org,
        owner,
        member_id,
        admin_key,
    }
}

/// Creates a key from the console as `who` with these service permissions.
async fn console_key(o: &Org, who: &Browser, permissions: &str, personal: bool) -> Reply {
    let mut b = who.clone();
    let mut form = vec![
        ("organization_id", o.org.as_str()),
        ("name", "service key"),
        ("environment", "live"),
        ("category", "basic"),
        ("ip_allowlist", ""),
        ("expires_in_days", ""),
        ("permissions", permissions),
    ];
    if personal {
        form.push(("personal", "on"));
    }
    o.app.rpc(&mut b, "create_key", &form).await
}

async fn verify(o: &Org, key: &str, required: &[&str]) -> serde_json::Value {
    let r = o
        .app
        .api(
            "POST",
            "/api/v1/keys/verify",
            Some(&o.admin_key),
            Some(json!({"key": key, "permissions": required})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

#[tokio::test]
async fn a_key_carries_the_organization_s_permissions_and_verify_checks_them() {
    let o = org().await;
    // The owner holds every permission of the organization.
    let r = console_key(&o, &o.owner, "invoices:write", false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let created = r.json();
    assert_eq!(created["permissions"], json!(["invoices:write"]));
    let key = created["key"].as_str().unwrap().to_string();

    // What it needs, requirements included: valid, with everything it holds.
    let v = verify(&o, &key, &["invoices:read", "keys:read"]).await;
    assert_eq!(v["valid"], true, "{v}");
    let held: Vec<String> = serde_json::from_value(v["permissions"].clone()).unwrap();
    for p in ["invoices:read", "invoices:write", "keys:read"] {
        assert!(held.contains(&p.to_string()), "{p} in {held:?}");
    }
    assert!(!held.contains(&"invoices:refund".to_string()));
    // Something it lacks: not valid, and the answer names what is missing.
    let v = verify(
        &o,
        &key,
        &["audit:read", "invoices:read", "invoices:refund"],
    )
    .await;
    assert_eq!(v["valid"], false);
    assert_eq!(v["code"], "insufficient_permissions");
    assert_eq!(v["missing"], json!(["audit:read", "invoices:refund"]));
    // A malformed requirement is a clear 400.
    let r = o
        .app
        .api(
            "POST",
            "/api/v1/keys/verify",
            Some(&o.admin_key),
            Some(json!({"key": key, "permissions": ["Not A Name"]})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "bad requirement",
    );
}

#[tokio::test]
async fn nobody_puts_on_a_key_a_permission_they_do_not_hold() {
    let o = org().await;
    let before = o.app.snapshot().await;
    // A member holds none of the organization's own permissions.
    let r = console_key(&o, &o.member, "invoices:read", false).await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "member");
    assert!(r.body.contains("invoices:read"), "{}", r.body);
    // An admin-preset key holds no dynamic permission either.
    let r = o
        .app
        .api(
            "POST",
            "/api/v1/keys",
            Some(&o.admin_key),
            Some(json!({"name": "k", "permissions": ["invoices:read"]})),
            IP,
        )
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "admin key");
    // Unknown and built-in names are refused as input, even for the owner.
    let r = console_key(&o, &o.owner, "ghost:read", false).await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "unknown permission",
    );
    let r = console_key(&o, &o.owner, "keys:write", false).await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "built-in permission",
    );
    assert_eq!(o.app.snapshot().await, before, "rows changed");

    // A key with a dynamic permission cannot be rolled (its secret taken over) by a caller who
    // lacks it.
    let r = console_key(&o, &o.owner, "invoices:refund", false).await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    let before = o.app.snapshot().await;
    let mut member = o.member.clone();
    let r = o
        .app
        .rpc(
            &mut member,
            "roll_key",
            &[
                ("organization_id", &o.org),
                ("key_id", &id),
                ("grace_seconds", "0"),
            ],
        )
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "member rolls");
    let r = o
        .app
        .api(
            "POST",
            &format!("/api/v1/keys/{id}/roll"),
            Some(&o.admin_key),
            Some(json!({"grace_seconds": 0})),
            IP,
        )
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "admin key rolls");
    assert_eq!(o.app.snapshot().await, before, "rows changed");
    // The owner may, and the successor keeps the permission.
    let mut owner = o.owner.clone();
    let r = o
        .app
        .rpc(
            &mut owner,
            "roll_key",
            &[
                ("organization_id", &o.org),
                ("key_id", &id),
                ("grace_seconds", "0"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.json()["permissions"],
        json!(["invoices:refund"]),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_personal_token_holds_no_more_than_its_owner_holds_now() {
    let o = org().await;
    // The member gets invoices:read through a custom role, and puts it on a personal token.
    let mut owner = o.owner.clone();
    let r = o
        .app
        .rpc(
            &mut owner,
            "create_role",
            &[
                ("organization_id", &o.org),
                ("name", "billing"),
                ("parents[0]", "member"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let role = r.json()["id"].as_str().unwrap().to_string();
    let r = o
        .app
        .rpc(
            &mut owner,
            "set_role_permission",
            &[
                ("organization_id", &o.org),
                ("role_id", &role),
                ("permission", "invoices:read"),
                ("granted", "true"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let assign = |on: &'static str| {
        let mut owner = owner.clone();
        let (org, role, member) = (o.org.clone(), role.clone(), o.member_id.clone());
        let app = &o.app;
        async move {
            app.rpc(
                &mut owner,
                "assign_role",
                &[
                    ("organization_id", &org),
                    ("role_id", &role),
                    ("user_ids[0]", &member),
                    ("assign", on),
                ],
            )
            .await
        }
    };
    assert_eq!(assign("true").await.status, StatusCode::OK);
    let r = console_key(&o, &o.member, "invoices:read", true).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = r.json()["key"].as_str().unwrap().to_string();
    assert_eq!(verify(&o, &token, &["invoices:read"]).await["valid"], true);
    // The role is taken away: the token loses the permission at once.
    assert_eq!(assign("false").await.status, StatusCode::OK);
    let v = verify(&o, &token, &["invoices:read"]).await;
    assert_eq!(v["code"], "insufficient_permissions", "{v}");
}

#[tokio::test]
async fn editing_a_key_that_holds_more_is_refused() {
    let o = org().await;
    let r = console_key(&o, &o.owner, "invoices:refund", false).await;
    let created = r.json();
    let (id, secret) = (
        created["id"].as_str().unwrap().to_string(),
        created["key"].as_str().unwrap().to_string(),
    );
    // Rolled with no grace: the old secret stops now.
    let mut owner = o.owner.clone();
    let r = o
        .app
        .rpc(
            &mut owner,
            "roll_key",
            &[
                ("organization_id", &o.org),
                ("key_id", &id),
                ("grace_seconds", "0"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let before = o.app.snapshot().await;
    // Moving its expiry would bring the stopped secret back: refused to a caller who lacks
    // the key's permission, as is loosening its restrictions.
    let r = o
        .app
        .api(
            "PATCH",
            &format!("/api/v1/keys/{id}"),
            Some(&o.admin_key),
            Some(json!({"expires_at": "2030-01-01T00:00:00Z"})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "admin key moves expiry",
    );
    let r = o
        .app
        .api(
            "PATCH",
            &format!("/api/v1/keys/{id}"),
            Some(&o.admin_key),
            Some(json!({"ip_allowlist": []})),
            IP,
        )
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "admin key edits");
    assert_eq!(o.app.snapshot().await, before, "rows changed");
    assert_eq!(verify(&o, &secret, &[]).await["valid"], false);
}

/// An export lists each key's own permissions and an import brings them back: each must be
/// one of the organization's and held by the importer, checked row by row.
#[tokio::test]
async fn export_and_import_carry_the_organization_s_permissions() {
    let o = org().await;
    let r = console_key(&o, &o.owner, "invoices:refund", false).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut owner = o.owner.clone();
    let r = o
        .app
        .rpc(
            &mut owner,
            "export_keys",
            &[("organization_id", o.org.as_str()), ("format", "csv")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let csv: String = serde_json::from_str(&r.body).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().unwrap().clone();
    let column = header
        .iter()
        .position(|h| h == "permissions")
        .expect("a permissions column");
    let name = header.iter().position(|h| h == "name").unwrap();
    let record = reader
        .records()
        .map(Result::unwrap)
        .find(|r| &r[name] == "service key")
        .expect("the key's row");
    assert_eq!(&record[column], "invoices:refund", "{csv}");
    let row = csv
        .lines()
        .find(|l| l.contains("service key"))
        .expect("the key's line");

    let import = |who: &Browser, data: String| {
        let (app, org, mut b) = (&o.app, o.org.clone(), who.clone());
        async move {
            let r = app
                .rpc(
                    &mut b,
                    "import_keys",
                    &[
                        ("organization_id", org.as_str()),
                        ("format", "csv"),
                        ("data", data.as_str()),
                        ("dry_run", "false"),
                    ],
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.json()[0].clone()
        }
    };
    let only_row = format!("{}\n{}\n", csv.lines().next().unwrap(), row);
    // The member holds no invoices:refund: the row is refused, nothing written.
    let before = o.app.snapshot().await;
    let out = import(&o.member, only_row.clone()).await;
    assert_eq!(out["action"], "refused", "{out}");
    assert_eq!(out["code"], "forbidden", "{out}");
    let unknown = only_row.replace("invoices:refund", "payroll:run");
    let out = import(&o.owner, unknown).await;
    assert_eq!(out["action"], "refused", "{out}");
    assert_eq!(out["code"], "invalid_input", "{out}");
    assert!(
        out["message"].as_str().unwrap().contains("payroll:run"),
        "{out}"
    );
    assert_eq!(o.app.snapshot().await, before, "nothing written");
    // The owner re-imports it: a new key, with the permission, that verifies with it.
    let out = import(&o.owner, only_row).await;
    assert_eq!(out["action"], "issued", "{out}");
    let key = out["key"].as_str().unwrap().to_string();
    let v = verify(&o, &key, &["invoices:refund"]).await;
    assert_eq!(v["valid"], true, "{v}");
}

/// A weaker caller cannot edit a stronger key even to narrow it (narrowing an admin key and
/// dropping its restrictions is still taking it over), nor rename or throttle it; a caller
/// holding everything it holds can.
#[tokio::test]
async fn a_weaker_caller_cannot_narrow_or_rename_a_stronger_key() {
    let o = org().await;
    let (admin_id, _) = o.app.admin_key(&o.org).await;
    let (_, weak) = o
        .app
        .scoped_key(&o.org, json!({"keys": "write", "org": "read"}))
        .await;
    let before = o.app.snapshot().await;
    for (patch, what) in [
        (json!({"scopes": {"keys": "read"}}), "narrow the scopes"),
        (json!({"name": "mine now"}), "rename"),
    ] {
        let r = o
            .app
            .api(
                "PATCH",
                &format!("/api/v1/keys/{admin_id}"),
                Some(&weak),
                Some(patch),
                IP,
            )
            .await;
        assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", what);
    }
    // Nor throttle it.
    let r = o
        .app
        .api(
            "PUT",
            &format!("/api/v1/keys/{admin_id}/limit"),
            Some(&weak),
            Some(json!({"rate_limit": 1, "rate_window_seconds": 86400})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "throttle a stronger key",
    );
    assert_eq!(o.app.snapshot().await, before, "nothing written");
    let r = o
        .app
        .api(
            "PATCH",
            &format!("/api/v1/keys/{admin_id}"),
            Some(&o.admin_key),
            Some(json!({"name": "renamed by an equal"})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}
