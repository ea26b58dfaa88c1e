//! Instance user administration: create with an emailed set-password link, disable and enable
//! (sessions and personal tokens stop at once), password reset by link, delete (refused while
//! sole owner; anonymized otherwise), search, filters and pages; the console's server functions
//! and `/api/v1/users`. Runs on SQLite, and on PostgreSQL when `KEYWARD_TEST_DATABASE_URL` is
//! set.

mod common;

use app::access::ssr::SYSTEM_ORG_ID;
use app::access::Role;
use app::identity::password_link::{self, Purpose};
use common::*;
use http::StatusCode;
use serde_json::json;

const CHOSEN: &str = "my own chosen passphrase";
const IP: &str = "192.0.2.30";

async fn sign_in(app: &TestApp, email: &str, password: &str) -> (Reply, Browser) {
    let mut b = Browser::default();
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", email), ("password", password)],
        )
        .await;
    (r, b)
}

/// An instance with its owner and an instance admin (both signed in) and a plain member.
struct Instance {
    app: TestApp,
    owner_id: String,
    owner: Browser,
    admin_id: String,
    admin: Browser,
    member_id: String,
}

async fn instance() -> Instance {
    let app = spawn().await;
    let owner_id = app.user("owner@example.org", Some(Role::Owner)).await;
    let admin_id = app.user("admin@example.org", Some(Role::Admin)).await;
    let member_id = app.user("member@example.org", None).await;
    Instance {
        owner: app.signed_in("owner@example.org").await,
        admin: app.signed_in("admin@example.org").await,
        app,
        owner_id,
        admin_id,
        member_id,
    }
}

/// A new organization `browser`'s user creates (and owns): its id.
async fn create_org(app: &TestApp, browser: &mut Browser) -> String {
    let r = app
        .rpc(browser, "create_organization", &[("name", "Acme")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json().as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_admin_creates_a_user_who_chooses_a_password_through_the_emailed_link() {
    let mut i = instance().await;
    let app = &i.app;
    let mut member = app.signed_in("member@example.org").await;

    // Bad input: a clear error, nothing written.
    let before = app.snapshot().await;
    for (form, field) in [
        (
            [
                ("email", "not an address"),
                ("display_name", "Ann"),
                ("system_role", ""),
            ],
            "email",
        ),
        (
            [
                ("email", "ann@example.org"),
                ("display_name", " "),
                ("system_role", ""),
            ],
            "display_name",
        ),
        (
            [
                ("email", "ann@example.org"),
                ("display_name", "Ann"),
                ("system_role", "god"),
            ],
            "system_role",
        ),
    ] {
        let r = app.rpc(&mut i.admin, "create_user", &form).await;
        assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", field);
    }
    // An admin cannot make an instance owner (more than they hold).
    let r = app
        .rpc(
            &mut i.admin,
            "create_user",
            &[
                ("email", "ann@example.org"),
                ("display_name", "Ann"),
                ("system_role", "owner"),
            ],
        )
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "owner by an admin");
    // A plain member holds no users:write.
    let r = app
        .rpc(
            &mut member,
            "create_user",
            &[("email", "ann@example.org"), ("display_name", "Ann")],
        )
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "member creates");
    assert_eq!(app.snapshot().await, before, "refusals wrote nothing");

    let r = app
        .rpc(
            &mut i.admin,
            "create_user",
            &[
                ("email", "Ann@Example.org"),
                ("display_name", "Ann"),
                ("system_role", "viewer"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let ann = r.json();
    assert_eq!(ann["email"], "Ann@Example.org");
    assert_eq!(ann["status"], "active");
    assert_eq!(ann["system_role"], "viewer");
    assert_no_secret(&r, "created user");
    // The same address again: 409.
    let r = app
        .rpc(
            &mut i.admin,
            "create_user",
            &[("email", "ann@example.org"), ("display_name", "Ann 2")],
        )
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "taken address");

    let token = app.emailed_token("ann@example.org", "set-password").await;
    let mut visitor = Browser::default();
    let r = app
        .rpc(&mut visitor, "open_password_link", &[("token", &token)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"email": "Ann@Example.org", "purpose": "setup"})
    );
    // Too short a password: refused, the link still works afterwards.
    let before = app.snapshot().await;
    let r = app
        .rpc(
            &mut visitor,
            "set_password_from_link",
            &[("token", &token), ("new_password", "short")],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "short password",
    );
    // A tampered link: refused.
    let last = if token.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &token[..token.len() - 1]);
    let r = app
        .rpc(
            &mut visitor,
            "set_password_from_link",
            &[("token", &tampered), ("new_password", CHOSEN)],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "tampered link",
    );
    assert_eq!(app.snapshot().await, before);

    let r = app
        .rpc(
            &mut visitor,
            "set_password_from_link",
            &[("token", &token), ("new_password", CHOSEN)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json(), json!("Ann@Example.org"));
    let (r, _) = sign_in(app, "ann@example.org", CHOSEN).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "signs in with the chosen password: {}",
        r.body
    );
    // The link worked once.
    let before = app.snapshot().await;
    let r = app
        .rpc(
            &mut visitor,
            "set_password_from_link",
            &[
                ("token", &token),
                ("new_password", "another passphrase here"),
            ],
        )
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "second use");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn an_admin_cannot_act_on_a_stronger_user_nor_on_themselves() {
    let mut i = instance().await;
    let app = &i.app;
    let before = app.snapshot().await;
    for (endpoint, extra) in [
        ("set_user_status", Some(("active", "false"))),
        ("send_password_reset", None),
        ("delete_user", None),
    ] {
        let mut form = vec![("user_id", i.owner_id.as_str())];
        form.extend(extra);
        let r = app.rpc(&mut i.admin, endpoint, &form).await;
        assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", endpoint);

        let mut form = vec![("user_id", i.admin_id.as_str())];
        form.extend(extra);
        let r = app.rpc(&mut i.admin, endpoint, &form).await;
        assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", endpoint);

        let mut form = vec![("user_id", "usr_nobody")];
        form.extend(extra);
        let r = app.rpc(&mut i.owner, endpoint, &form).await;
        assert_refused(&r, StatusCode::NOT_FOUND, "not_found", endpoint);
    }
    assert_eq!(app.snapshot().await, before, "refusals wrote nothing");
    // The owner may act on the admin.
    let r = app
        .rpc(
            &mut i.owner,
            "set_user_status",
            &[("user_id", &i.admin_id), ("active", "false")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["status"], "disabled");
    assert_eq!(
        app.signed_in_as(&mut i.admin).await,
        None,
        "the admin's session ended"
    );
}

#[tokio::test]
async fn disabling_stops_sessions_and_tokens_at_once_and_enabling_restores_sign_in() {
    let mut i = instance().await;
    let app = &i.app;
    let mut member = app.signed_in("member@example.org").await;
    let personal = app.org_of(&i.member_id).await;
    let (_, pat) = app.pat(&mut member, &personal, "basic").await;
    let r = app.api("GET", "/api/v1/me", Some(&pat), None, IP).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Two administrators disabling at once: exactly one does.
    let mut owner2 = app.signed_in("owner@example.org").await;
    let form = [("user_id", i.member_id.as_str()), ("active", "false")];
    let (a, b) = tokio::join!(
        app.rpc(&mut i.owner, "set_user_status", &form),
        app.rpc(&mut owner2, "set_user_status", &form),
    );
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{} / {}",
        a.body,
        b.body
    );
    let events: i64 = sqlx::query_scalar(
        "select count(*) from domain_event where kind = 'user.disabled' and subject_id = $1",
    )
    .bind(&i.member_id)
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(events, 1);

    assert_eq!(app.signed_in_as(&mut member).await, None, "session ended");
    let r = app.api("GET", "/api/v1/me", Some(&pat), None, IP).await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "key_disabled",
        "token of a disabled user",
    );
    let (r, _) = sign_in(app, "member@example.org", PASSWORD).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);

    let r = app
        .rpc(
            &mut i.owner,
            "set_user_status",
            &[("user_id", &i.member_id), ("active", "true")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["status"], "active");
    let (r, _) = sign_in(app, "member@example.org", PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.api("GET", "/api/v1/me", Some(&pat), None, IP).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the token works again: {}",
        r.body
    );
}

#[tokio::test]
async fn a_reset_link_works_once_expires_and_ends_the_sessions() {
    let mut i = instance().await;
    let app = &i.app;
    let mut member = app.signed_in("member@example.org").await;
    let r = app
        .rpc(
            &mut i.admin,
            "send_password_reset",
            &[("user_id", &i.member_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The current password keeps working until the link is used.
    assert!(app.signed_in_as(&mut member).await.is_some());
    let token = app
        .emailed_token("member@example.org", "set-password")
        .await;

    // An expired link (made with the instance secret, the account as it is, a past expiry).
    let state = account_state(app, &i.member_id).await;
    let expired = password_link::token(
        &app.state.config.secret,
        &i.member_id,
        Purpose::Reset,
        app::ssr::db::now_ms() - 1,
        &state,
    );
    let mut visitor = Browser::default();
    let r = app
        .rpc(
            &mut visitor,
            "set_password_from_link",
            &[("token", &expired), ("new_password", CHOSEN)],
        )
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "expired");
    assert!(r.body.contains("expired"), "{}", r.body);

    let r = app
        .rpc(
            &mut visitor,
            "set_password_from_link",
            &[("token", &token), ("new_password", CHOSEN)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.signed_in_as(&mut member).await, None, "sessions ended");
    let (r, _) = sign_in(app, "member@example.org", PASSWORD).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the old password is gone"
    );
    let (r, _) = sign_in(app, "member@example.org", CHOSEN).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .rpc(
            &mut visitor,
            "set_password_from_link",
            &[
                ("token", &token),
                ("new_password", "yet another passphrase"),
            ],
        )
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "used link");

    // An address change voids a link sent to the old address.
    let r = app
        .rpc(
            &mut i.admin,
            "send_password_reset",
            &[("user_id", &i.member_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let to_old_address = app
        .emailed_token("member@example.org", "set-password")
        .await;
    let r = app
        .rpc(
            &mut visitor,
            "open_password_link",
            &[("token", &to_old_address)],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the link works before the change: {}",
        r.body
    );
    for (email, when) in [
        ("moved@example.org", "moved"),
        ("member@example.org", "moved back"),
    ] {
        sqlx::query("update app_user set email = $2, email_normalized = $2 where user_id = $1")
            .bind(&i.member_id)
            .bind(email)
            .execute(&app.state.db.writer)
            .await
            .unwrap();
        if when == "moved" {
            let r = app
                .rpc(
                    &mut visitor,
                    "open_password_link",
                    &[("token", &to_old_address)],
                )
                .await;
            assert_refused(
                &r,
                StatusCode::BAD_REQUEST,
                "invalid_input",
                "after an address change",
            );
        }
    }

    // A disabled account gets no reset link, and an earlier link stops working, for good.
    let r = app
        .rpc(
            &mut i.admin,
            "send_password_reset",
            &[("user_id", &i.member_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let pending = app
        .emailed_token("member@example.org", "set-password")
        .await;
    assert_ne!(pending, to_old_address);
    let r = app
        .rpc(&mut visitor, "open_password_link", &[("token", &pending)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .rpc(
            &mut i.admin,
            "set_user_status",
            &[("user_id", &i.member_id), ("active", "false")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .rpc(
            &mut i.admin,
            "send_password_reset",
            &[("user_id", &i.member_id)],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::CONFLICT,
        "conflict",
        "reset for a disabled user",
    );
    let r = app
        .rpc(&mut visitor, "open_password_link", &[("token", &pending)])
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "link of a disabled user",
    );
    let r = app
        .rpc(
            &mut i.admin,
            "set_user_status",
            &[("user_id", &i.member_id), ("active", "true")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .rpc(&mut visitor, "open_password_link", &[("token", &pending)])
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "link after re-enabling",
    );
}

/// Disabling an account stops the keys of its personal organization at once on this
/// instance, cached answers included (they take the account's status), and enabling it again
/// brings them back at once.
#[tokio::test]
async fn disabling_an_account_stops_its_personal_keys_at_once() {
    let mut i = instance().await;
    let app = &i.app;
    let personal = app.org_of(&i.member_id).await;
    let (_, key) = app.admin_key(&personal).await;
    // And a personal token of theirs in a team's organization.
    let mut owner = app.signed_in("owner@example.org").await;
    let acme = create_org(app, &mut owner).await;
    app.add_member(&acme, &i.member_id, "admin").await;
    let mut member = app.signed_in("member@example.org").await;
    let (_, token) = app.pat(&mut member, &acme, "basic").await;
    // In the key cache, as active.
    for key in [&key, &token] {
        let r = app.api("GET", "/api/v1/me", Some(key), None, IP).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    for (active, expected) in [("false", Some("key_disabled")), ("true", None)] {
        let r = app
            .rpc(
                &mut i.admin,
                "set_user_status",
                &[("user_id", &i.member_id), ("active", active)],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        // At once: well inside the cache's one-second bound.
        for key in [&key, &token] {
            let r = app.api("GET", "/api/v1/me", Some(key), None, IP).await;
            match expected {
                Some(code) => assert_refused(&r, StatusCode::UNAUTHORIZED, code, "after disabling"),
                None => assert_eq!(r.status, StatusCode::OK, "after enabling: {}", r.body),
            }
        }
    }
}

async fn account_state(app: &TestApp, user_id: &str) -> password_link::AccountState {
    let mut conn = app.state.db.writer.acquire().await.unwrap();
    password_link::AccountState::read(&mut conn, user_id)
        .await
        .unwrap()
        .expect("an active account")
}

/// Disabling or deleting an account first takes the role lock of every organization the
/// user belongs to, owner or not: an administrator of one of them removing the user at the
/// same moment waits (or is waited for) instead of taking the user's roles and invitations in
/// the other order (a deadlock, answered with a 500).
#[tokio::test]
async fn disabling_waits_for_a_change_holding_any_of_the_user_s_organizations() {
    if !on_postgres() {
        // SQLite has one writer: the role lock is the writer itself.
        return;
    }
    let mut i = instance().await;
    let app = &i.app;
    let mut owner = app.signed_in("owner@example.org").await;
    let acme = create_org(app, &mut owner).await;
    // A plain member there: nothing to refuse, but a change there must not interleave.
    app.add_member(&acme, &i.member_id, "viewer").await;
    let form = [("user_id", i.member_id.as_str()), ("active", "false")];
    let disable = app.rpc(&mut i.admin, "set_user_status", &form);
    let r = waits_for_role_lock(app, &acme, disable).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// An organization the user is creating while an administrator disables or deletes them
/// counts: the administrator's change waits for the creation (which holds the account's row
/// until it commits), then finds the user its only owner and is refused, instead of leaving
/// an organization whose only owner is disabled, or gone.
#[tokio::test]
async fn an_organization_being_created_counts_when_its_owner_is_disabled_or_deleted() {
    if !on_postgres() {
        // SQLite has one writer: the creation is done, or not begun.
        return;
    }
    let i = instance().await;
    let app = &i.app;
    let db = &app.state.db;
    for (n, (endpoint, extra)) in [
        ("set_user_status", Some(("active", "false"))),
        ("delete_user", None),
    ]
    .into_iter()
    .enumerate()
    {
        // The creation, caught before its commit, as `create_organization` makes it: the
        // account's row held, the organization and its ownership written.
        let org = format!("org_racing{n}");
        let mut creating = db.writer.begin().await.unwrap();
        sqlx::query("select user_id from app_user where user_id = $1 for no key update")
            .bind(&i.member_id)
            .fetch_one(&mut *creating)
            .await
            .unwrap();
        sqlx::query(
            "insert into organization (organization_id, name, slug, kind, created_at)
             values ($1, $1, $1, 'team', 0)",
        )
        .bind(&org)
        .execute(&mut *creating)
        .await
        .unwrap();
        sqlx::query(
            "insert into membership (organization_id, user_id, role, created_at) values ($1, $2, 'owner', 0)",
        )
        .bind(&org)
        .bind(&i.member_id)
        .execute(&mut *creating)
        .await
        .unwrap();
        let mut form = vec![("user_id", i.member_id.as_str())];
        form.extend(extra);
        let mut admin = i.admin.clone();
        let change = app.rpc(&mut admin, endpoint, &form);
        tokio::pin!(change);
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(1000), &mut change).await;
        assert!(waited.is_err(), "{endpoint} did not wait for the creation");
        creating.commit().await.unwrap();
        let r = change.await;
        assert_refused(&r, StatusCode::CONFLICT, "conflict", endpoint);
        assert!(r.body.contains(&org), "{}", r.body);
        let (status, deleted): (String, Option<i64>) =
            sqlx::query_as("select status, deleted_at from app_user where user_id = $1")
                .bind(&i.member_id)
                .fetch_one(&db.reader)
                .await
                .unwrap();
        assert_eq!((status.as_str(), deleted), ("active", None), "{endpoint}");
        // Someone else owns it now, so the next round starts from an account owning nothing
        // alone.
        app.add_member(&org, &i.admin_id, "owner").await;
    }
}

/// Deleting your own account takes the `system` organization before your other ones, as an
/// administrator's change (which holds `system` first) does: while it waits for `system` it
/// holds none of the others, so the two cannot deadlock.
#[tokio::test]
async fn deleting_your_own_account_takes_the_system_organization_first() {
    if !on_postgres() {
        // SQLite has one writer: the role lock is the writer itself.
        return;
    }
    let i = instance().await;
    let app = &i.app;
    let db = &app.state.db;
    // A team organization whose id sorts before `org_system`, the administrator a viewer there.
    let mut owner = app.signed_in("owner@example.org").await;
    let team = loop {
        let id = create_org(app, &mut owner).await;
        if id.as_str() < "org_system" {
            break id;
        }
    };
    app.add_member(&team, &i.admin_id, "viewer").await;
    let mut admin = app.signed_in("admin@example.org").await;
    let mut change = db.writer.begin().await.unwrap();
    app::access::roles::lock(&mut change, "org_system")
        .await
        .unwrap();
    let form = [("current_password", PASSWORD)];
    let delete = app.rpc(&mut admin, "delete_account", &form);
    let probe = async {
        until_a_lock_wait(app).await;
        let mut other = db.writer.begin().await.unwrap();
        sqlx::query("set local lock_timeout = '1s'")
            .execute(&mut *other)
            .await
            .unwrap();
        let took = app::access::roles::lock(&mut other, &team).await;
        other.rollback().await.unwrap();
        change.commit().await.unwrap();
        took
    };
    let (r, took) = tokio::join!(delete, probe);
    assert!(
        took.is_ok(),
        "the team was free while the deletion waited: {took:?}"
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Deleting an account takes the account's row before anything of theirs: an invitation they
/// are accepting holds a share lock on the row (its membership's foreign key) and then updates
/// its outbox mail, so a deletion holding that mail first would deadlock with it.
#[tokio::test]
async fn deleting_an_account_takes_its_row_before_its_mail() {
    if !on_postgres() {
        return;
    }
    let mut i = instance().await;
    let app = &i.app;
    let db = &app.state.db;
    let r = app
        .rpc(
            &mut i.admin,
            "send_password_reset",
            &[("user_id", &i.member_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut accepting = db.writer.begin().await.unwrap();
    sqlx::query("select user_id from app_user where user_id = $1 for key share")
        .bind(&i.member_id)
        .fetch_one(&mut *accepting)
        .await
        .unwrap();
    let form = [("user_id", i.member_id.as_str())];
    let delete = app.rpc(&mut i.admin, "delete_user", &form);
    let probe = async {
        until_a_lock_wait(app).await;
        sqlx::query("set local lock_timeout = '1s'")
            .execute(&mut *accepting)
            .await
            .unwrap();
        let updated = sqlx::query(
            "update outbox_email set body_text = body_text where lower(to_address) = 'member@example.org'",
        )
        .execute(&mut *accepting)
        .await
        .map(|r| r.rows_affected());
        accepting.commit().await.unwrap();
        updated
    };
    let (r, updated) = tokio::join!(delete, probe);
    assert_eq!(
        updated.ok(),
        Some(1),
        "the mail was free while the deletion waited"
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn deleting_is_refused_while_sole_owner_and_anonymizes_the_account_otherwise() {
    let mut i = instance().await;
    let app = &i.app;
    let mut member = app.signed_in("member@example.org").await;
    let acme = create_org(app, &mut member).await;
    let personal = app.org_of(&i.member_id).await;
    let (_, pat) = app.pat(&mut member, &acme, "basic").await;
    let (_, personal_key) = app.admin_key(&personal).await;
    // Both keys work, and are in the key cache, before the delete.
    for key in [&pat, &personal_key] {
        let r = app.api("GET", "/api/v1/me", Some(key), None, IP).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }

    let before = app.snapshot().await;
    let r = app
        .rpc(
            &mut i.admin,
            "set_user_status",
            &[("user_id", &i.member_id), ("active", "false")],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::CONFLICT,
        "conflict",
        "disabling a sole owner",
    );
    let r = app
        .rpc(&mut i.admin, "delete_user", &[("user_id", &i.member_id)])
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "sole owner");
    assert!(
        r.body.contains("Acme"),
        "names the organization: {}",
        r.body
    );
    assert_eq!(app.snapshot().await, before);

    let other = app.user("other@example.org", None).await;
    app.add_member(&acme, &other, "owner").await;
    // Mail went to them (a reset link); deleting the account deletes it too.
    let r = app
        .rpc(
            &mut i.admin,
            "send_password_reset",
            &[("user_id", &i.member_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mail_to = |address: &'static str| async move {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from outbox_email where lower(to_address) = $1",
        )
        .bind(address)
        .fetch_one(&app.state.db.reader)
        .await
        .unwrap()
    };
    assert_eq!(mail_to("member@example.org").await, 1);
    let r = app
        .rpc(&mut i.admin, "delete_user", &[("user_id", &i.member_id)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        mail_to("member@example.org").await,
        0,
        "the outbox forgets them"
    );

    let r = app
        .rpc(&mut i.admin, "list_users", &[("status", "deleted")])
        .await;
    let page = r.json();
    assert_eq!(page["total"], 1, "{page}");
    let gone = &page["users"][0];
    assert_eq!(gone["user_id"], i.member_id.as_str());
    assert_eq!(gone["display_name"], "Deleted user");
    assert_eq!(gone["status"], "deleted");
    assert!(!gone["email"].as_str().unwrap().contains("member@"));
    assert_eq!(app.signed_in_as(&mut member).await, None, "session ended");
    let (r, _) = sign_in(app, "member@example.org", PASSWORD).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for (key, what) in [
        (&pat, "personal token"),
        (&personal_key, "personal org key"),
    ] {
        let r = app.api("GET", "/api/v1/me", Some(key), None, IP).await;
        assert_refused(&r, StatusCode::UNAUTHORIZED, "key_revoked", what);
    }
    let revoked: i64 = sqlx::query_scalar(
        "select count(*) from api_key where status = 'revoked' and (owner_user_id = $1 or organization_id = $2)",
    )
    .bind(&i.member_id)
    .bind(&personal)
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(revoked, 2);
    let memberships: i64 = sqlx::query_scalar("select count(*) from membership where user_id = $1")
        .bind(&i.member_id)
        .fetch_one(&app.state.db.reader)
        .await
        .unwrap();
    assert_eq!(memberships, 0);
    // Deleted accounts cannot be acted on again, and the address is free.
    let r = app
        .rpc(&mut i.admin, "delete_user", &[("user_id", &i.member_id)])
        .await;
    assert_refused(&r, StatusCode::NOT_FOUND, "not_found", "deleted twice");
    let r = app
        .rpc(
            &mut i.admin,
            "create_user",
            &[
                ("email", "member@example.org"),
                ("display_name", "Member again"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The system organization's only owner cannot be deleted even by themselves through the
    // admin path (it is their own account) nor by anyone weaker.
    let r = app
        .rpc(&mut i.owner, "delete_user", &[("user_id", &i.owner_id)])
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "own account");
}

#[tokio::test]
async fn the_list_searches_filters_and_pages() {
    let mut i = instance().await;
    let app = &i.app;
    for n in 0..27 {
        app.user(&format!("bulk{n:02}@example.org"), None).await;
    }
    app.user("percent%sign@example.org", None).await;
    let owner = &mut i.owner;
    // 3 + 27 + 1 users.
    let r = app.rpc(owner, "list_users", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let first = r.json();
    assert_eq!(first["total"], 31);
    assert_eq!(first["users"].as_array().unwrap().len(), 25);
    assert_eq!(
        first["users"][0]["email"], "percent%sign@example.org",
        "newest first"
    );
    let second = app.rpc(owner, "list_users", &[("page", "2")]).await.json();
    assert_eq!(second["users"].as_array().unwrap().len(), 6);
    assert_eq!(second["users"][5]["email"], "owner@example.org");

    let total = |r: Reply| r.json()["total"].clone();
    let r = app.rpc(owner, "list_users", &[("q", "BULK1")]).await;
    assert_eq!(total(r), 10, "bulk10..bulk19");
    // `%` is a character, not a wildcard.
    let r = app.rpc(owner, "list_users", &[("q", "%")]).await;
    assert_eq!(total(r), 1);
    let r = app
        .rpc(owner, "list_users", &[("role", "admin")])
        .await
        .json();
    assert_eq!(r["users"][0]["email"], "admin@example.org");
    assert_eq!(r["total"], 1);
    let r = app.rpc(owner, "list_users", &[("role", "none")]).await;
    assert_eq!(total(r), 29);
    app.disable_user(&i.member_id).await;
    let r = app
        .rpc(owner, "list_users", &[("status", "disabled")])
        .await
        .json();
    assert_eq!(r["total"], 1);
    assert_eq!(r["users"][0]["email"], "member@example.org");
    for (field, value) in [("status", "gone"), ("role", "god"), ("page", "0")] {
        let r = app.rpc(owner, "list_users", &[(field, value)]).await;
        assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", field);
    }
}

#[tokio::test]
async fn the_rest_api_administers_users_with_the_same_rules() {
    let i = instance().await;
    let app = &i.app;
    let (_, admin_key) = app.admin_key(SYSTEM_ORG_ID).await;
    // users:write (and what it requires) but no org:write: weaker than the instance owner.
    let (_, weak_key) = app
        .scoped_key(SYSTEM_ORG_ID, json!({"users": "write"}))
        .await;
    let team = app.org_of(&i.member_id).await;
    let (_, org_key) = app.admin_key(&team).await;

    let r = app
        .api("GET", "/api/v1/users", Some(&org_key), None, IP)
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "organization key");

    let r = app
        .api(
            "POST",
            "/api/v1/users",
            Some(&admin_key),
            Some(json!({"email": "rest@example.org", "display_name": "Rest"})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.json()["user_id"].as_str().unwrap().to_string();
    assert!(app
        .emailed_token("rest@example.org", "set-password")
        .await
        .contains('.'));

    let r = app
        .api(
            "GET",
            "/api/v1/users?q=rest&status=active",
            Some(&weak_key),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["total"], 1);
    let r = app
        .api(
            "GET",
            "/api/v1/users?status=nope",
            Some(&weak_key),
            None,
            IP,
        )
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "bad filter");

    let before = app.snapshot().await;
    let owner_path = format!("/api/v1/users/{}", i.owner_id);
    let r = app
        .api(
            "PATCH",
            &owner_path,
            Some(&weak_key),
            Some(json!({"status": "disabled"})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "weaker key on the owner",
    );
    let r = app
        .api("DELETE", &owner_path, Some(&weak_key), None, IP)
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "weaker key deletes the owner",
    );
    let r = app
        .api(
            "PATCH",
            &format!("/api/v1/users/{id}"),
            Some(&weak_key),
            Some(json!({"status": "gone"})),
            IP,
        )
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "bad status");
    // Nor on an instance admin (who holds org:read, keys:write… the key lacks), nor make one.
    let r = app
        .api(
            "PATCH",
            &format!("/api/v1/users/{}", i.admin_id),
            Some(&weak_key),
            Some(json!({"status": "disabled"})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "weaker key on an admin",
    );
    let r = app
        .api(
            "POST",
            "/api/v1/users",
            Some(&weak_key),
            Some(json!({"email": "boss@example.org", "display_name": "Boss", "system_role": "admin"})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "weaker key makes an admin",
    );
    assert_eq!(app.snapshot().await, before, "refusals wrote nothing");
    // A key acts for whoever made it: the admin's own key cannot act on the admin.
    let (made_by_admin, made_secret) = app.admin_key(SYSTEM_ORG_ID).await;
    sqlx::query("update api_key set created_by = $2 where api_key_id = $1")
        .bind(&made_by_admin)
        .bind(&i.admin_id)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let before = app.snapshot().await;
    let r = app
        .api(
            "PATCH",
            &format!("/api/v1/users/{}", i.admin_id),
            Some(&made_secret),
            Some(json!({"status": "disabled"})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "a key on its maker",
    );
    assert_eq!(app.snapshot().await, before, "refusals wrote nothing");

    let path = format!("/api/v1/users/{id}");
    let r = app
        .api(
            "PATCH",
            &path,
            Some(&weak_key),
            Some(json!({"status": "disabled"})),
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["status"], "disabled");
    let r = app
        .api(
            "PATCH",
            &path,
            Some(&weak_key),
            Some(json!({"status": "active"})),
            IP,
        )
        .await;
    assert_eq!(r.json()["status"], "active");
    let r = app
        .api(
            "POST",
            &format!("{path}/password-reset"),
            Some(&weak_key),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = app.api("DELETE", &path, Some(&weak_key), None, IP).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = app.api("GET", &path, Some(&weak_key), None, IP).await;
    assert_eq!(r.json()["status"], "deleted");
}

/// Password links are capped per account and hour (an administrator cannot flood an inbox),
/// and a confirmation link is never previewed as a set-password link.
#[tokio::test]
async fn password_links_are_capped_and_confirmation_links_are_not_password_links() {
    let mut i = instance().await;
    let app = &i.app;
    let reset = [("user_id", i.member_id.as_str())];
    for n in 0..app::identity::password_link::PASSWORD_LINKS_PER_HOUR {
        let r = app.rpc(&mut i.admin, "send_password_reset", &reset).await;
        assert_eq!(r.status, StatusCode::OK, "reset {n}: {}", r.body);
    }
    let before = app.snapshot().await;
    let r = app.rpc(&mut i.admin, "send_password_reset", &reset).await;
    assert_refused(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "one reset too many",
    );
    assert_eq!(
        app.snapshot().await,
        before,
        "nothing queued, nothing recorded"
    );

    let state = account_state(app, &i.member_id).await;
    let confirm = password_link::token(
        &app.state.config.secret,
        &i.member_id,
        Purpose::Verify,
        app::ssr::db::now_ms() + 3_600_000,
        &state,
    );
    let mut visitor = Browser::default();
    let r = app
        .rpc(&mut visitor, "open_password_link", &[("token", &confirm)])
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "a confirmation link",
    );
    assert!(r.body.contains("confirms an email address"), "{}", r.body);
}

/// An administrator signs a user out everywhere (the list shows how many sessions each user
/// has): every console session ends at once; never their own account nor a stronger one's.
/// The same over REST.
#[tokio::test]
async fn an_admin_signs_a_user_out_everywhere() {
    let mut i = instance().await;
    let app = &i.app;
    let mut phone = app.signed_in("member@example.org").await;
    let mut laptop = app.signed_in("member@example.org").await;
    let viewer = i.admin.clone();
    let count = |who: &'static str| {
        let (app, mut admin) = (app, viewer.clone());
        async move {
            let r = app.rpc(&mut admin, "list_users", &[("q", who)]).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.json()["users"][0]["sessions"].as_i64().unwrap()
        }
    };
    assert_eq!(count("member@").await, 2);
    let before = app.snapshot().await;
    for (target, status, code) in [
        (&i.admin_id, StatusCode::BAD_REQUEST, "invalid_input"),
        (&i.owner_id, StatusCode::FORBIDDEN, "forbidden"),
    ] {
        let r = app
            .rpc(&mut i.admin, "end_user_sessions", &[("user_id", target)])
            .await;
        assert_refused(&r, status, code, target);
    }
    assert_eq!(app.snapshot().await, before, "nothing written");
    let r = app
        .rpc(
            &mut i.admin,
            "end_user_sessions",
            &[("user_id", &i.member_id)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json(), 2);
    assert_eq!(app.signed_in_as(&mut phone).await, None);
    assert_eq!(app.signed_in_as(&mut laptop).await, None);
    assert_eq!(count("member@").await, 0);
    assert!(app.signed_in_as(&mut i.admin).await.is_some());

    // Over REST, with an instance admin key.
    let mut again = app.signed_in("member@example.org").await;
    let (_, key) = app.admin_key(SYSTEM_ORG_ID).await;
    let r = app
        .api(
            "DELETE",
            &format!("/api/v1/users/{}/sessions", i.member_id),
            Some(&key),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["sessions_ended"], 1);
    assert_eq!(app.signed_in_as(&mut again).await, None);
}

/// An administrator sees each of a user's sessions (device, address, times) and signs out one
/// of them; never their own account's nor a stronger user's; a plain member sees none.
#[tokio::test]
async fn an_admin_lists_a_user_s_sessions_and_signs_one_out() {
    let mut i = instance().await;
    let app = &i.app;
    let mut phone = app
        .signed_in_from("member@example.org", Some("198.51.100.7"))
        .await;
    let mut laptop = app.signed_in("member@example.org").await;
    let r = app
        .rpc(&mut i.admin, "user_sessions", &[("user_id", &i.member_id)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let sessions = r.json();
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert!(
        sessions.iter().any(|s| s["ip"] == "198.51.100.7"),
        "{sessions:?}"
    );
    assert!(!r.body.contains("session_hash"));
    let phone_handle = sessions.iter().find(|s| s["ip"] == "198.51.100.7").unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_string();

    // Not for a plain member; not on someone stronger; not on oneself; not another user's
    // handle. Nothing written.
    let mut member = app.signed_in("member@example.org").await;
    let r = app
        .rpc(&mut member, "user_sessions", &[("user_id", &i.admin_id)])
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "a plain member");
    let owner_sessions = app
        .rpc(&mut i.admin, "user_sessions", &[("user_id", &i.owner_id)])
        .await
        .json();
    let owner_handle = owner_sessions[0]["handle"].as_str().unwrap().to_string();
    let before = app.snapshot().await;
    for (user, handle, status, code) in [
        (
            &i.owner_id,
            &owner_handle,
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            &i.member_id,
            &owner_handle,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            &i.admin_id,
            &phone_handle,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
    ] {
        let r = app
            .rpc(
                &mut i.admin,
                "end_user_session",
                &[("user_id", user), ("handle", handle)],
            )
            .await;
        assert_refused(&r, status, code, handle);
    }
    assert_eq!(app.snapshot().await, before, "nothing written");

    let r = app
        .rpc(
            &mut i.admin,
            "end_user_session",
            &[("user_id", &i.member_id), ("handle", &phone_handle)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.signed_in_as(&mut phone).await,
        None,
        "that session ended"
    );
    assert_eq!(
        app.signed_in_as(&mut laptop).await.as_deref(),
        Some("member@example.org"),
        "the others go on"
    );
    let ended: i64 = sqlx::query_scalar(
        "select count(*) from domain_event where kind = 'user.session_ended' and subject_id = $1",
    )
    .bind(&i.member_id)
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(ended, 1);
    let r = app
        .rpc(&mut i.admin, "user_sessions", &[("user_id", "usr_nobody")])
        .await;
    assert_refused(&r, StatusCode::NOT_FOUND, "not_found", "no such user");
}

#[tokio::test]
async fn the_rest_api_lists_a_users_sessions_and_ends_one() {
    let i = instance().await;
    let app = &i.app;
    let (_, admin_key) = app.admin_key(SYSTEM_ORG_ID).await;
    let (_, reader_key) = app
        .scoped_key(SYSTEM_ORG_ID, json!({"users": "read"}))
        .await;
    let mut laptop = app
        .signed_in_from("member@example.org", Some("198.51.100.7"))
        .await;
    let mut phone = app
        .signed_in_from("member@example.org", Some("203.0.113.9"))
        .await;
    let path = format!("/api/v1/users/{}/sessions", i.member_id);

    // users:read lists them: handles, addresses, no id or stored hash; no "current".
    let r = app.api("GET", &path, Some(&reader_key), None, IP).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let listed = r.json().as_array().unwrap().clone();
    assert_eq!(listed.len(), 2, "{}", r.body);
    let stored: Vec<String> = sqlx::query_scalar("select session_hash from session")
        .fetch_all(&app.state.db.reader)
        .await
        .unwrap();
    for s in &listed {
        assert_eq!(s["current"], false);
        let handle = s["handle"].as_str().unwrap();
        assert!(stored
            .iter()
            .all(|h| !h.contains(handle) && !handle.contains(h.as_str())));
    }
    let phone_handle = listed
        .iter()
        .find(|s| s["ip"] == "203.0.113.9")
        .and_then(|s| s["handle"].as_str())
        .unwrap()
        .to_string();
    // But cannot end one.
    let one = format!("{path}/{phone_handle}");
    let before = app.snapshot().await;
    let events_before = app.count("domain_event").await;
    let r = app.api("DELETE", &one, Some(&reader_key), None, IP).await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "forbidden",
        "users:read ends a session",
    );
    // A handle of another user's session, or an unknown one: not found, nothing written.
    let owner_sessions = app
        .api(
            "GET",
            &format!("/api/v1/users/{}/sessions", i.owner_id),
            Some(&admin_key),
            None,
            IP,
        )
        .await;
    let owner_handle = owner_sessions.json()[0]["handle"]
        .as_str()
        .unwrap()
        .to_string();
    for (handle, what) in [
        (owner_handle.as_str(), "another user's session"),
        ("abc", "unknown"),
    ] {
        let r = app
            .api(
                "DELETE",
                &format!("{path}/{handle}"),
                Some(&admin_key),
                None,
                IP,
            )
            .await;
        assert_refused(&r, StatusCode::NOT_FOUND, "not_found", what);
    }
    let r = app
        .api(
            "GET",
            "/api/v1/users/nobody/sessions",
            Some(&admin_key),
            None,
            IP,
        )
        .await;
    assert_refused(&r, StatusCode::NOT_FOUND, "not_found", "no such user");
    assert_eq!(app.snapshot().await, before, "refusals wrote nothing");
    assert_eq!(app.count("domain_event").await, events_before);

    // users:write ends the phone's session, and only that one; it is audited.
    let r = app.api("DELETE", &one, Some(&admin_key), None, IP).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(app.signed_in_as(&mut phone).await, None);
    assert_eq!(
        app.signed_in_as(&mut laptop).await.as_deref(),
        Some("member@example.org")
    );
    let r = app.api("GET", &path, Some(&reader_key), None, IP).await;
    assert_eq!(r.json().as_array().unwrap().len(), 1, "{}", r.body);
    let ended: i64 = sqlx::query_scalar(
        "select count(*) from domain_event where kind = 'user.session_ended' and subject_id = $1",
    )
    .bind(&i.member_id)
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(ended, 1);
    // Ended is ended: the same handle again is not found.
    let r = app.api("DELETE", &one, Some(&admin_key), None, IP).await;
    assert_refused(&r, StatusCode::NOT_FOUND, "not_found", "an ended session");
}
