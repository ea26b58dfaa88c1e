//! Two-factor authentication: enrolment (re-authenticated, bound to its session, ending the
//! other sessions), the second sign-in step (the TOTP window, each code once even in
//! parallel, recovery codes once, wrong codes throttled), nothing secret stored, and the
//! organization policy "require 2FA". Runs on SQLite, and on PostgreSQL when
//! `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use app::identity::two_factor::{code_at, step_of};
use common::*;
use http::StatusCode;

/// The seed behind the secret an enrolment showed (what an authenticator app holds).
fn seed_of(secret: &str) -> Vec<u8> {
    data_encoding::BASE32_NOPAD
        .decode(secret.as_bytes())
        .expect("base32 secret")
}

fn code(seed: &[u8], steps_ahead: i64) -> String {
    code_at(seed, step_of(app::ssr::db::now_ms()) + steps_ahead)
}

/// Turns on the organization's two-factor requirement (as its policy page would).
async fn require_two_factor(app: &TestApp, org: &str) {
    sqlx::query(
        "insert into organization_policy (organization_id, require_two_factor, updated_at) values ($1, 1, 0)",
    )
    .bind(org)
    .execute(&app.state.db.writer)
    .await
    .unwrap();
}

/// Turns on TOTP for the browser's user; returns the seed and the recovery codes.
async fn enrol(app: &TestApp, b: &mut Browser) -> (Vec<u8>, Vec<String>) {
    let r = app
        .rpc(b, "start_totp", &[("current_password", PASSWORD)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let seed = seed_of(r.json()["secret"].as_str().unwrap());
    let r = app
        .rpc(b, "confirm_totp", &[("code", &code(&seed, 0))])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let codes = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    (seed, codes)
}

/// A browser whose password was accepted, waiting at the second step.
async fn pending(app: &TestApp, email: &str) -> Browser {
    pending_with(app, email, PASSWORD).await
}

async fn pending_with(app: &TestApp, email: &str, password: &str) -> Browser {
    let mut b = Browser::default();
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", email), ("password", password)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.signed_in_as(&mut b).await,
        None,
        "the password alone signs nobody in"
    );
    b
}

async fn verify(app: &TestApp, b: &mut Browser, code: &str) -> Reply {
    app.rpc(b, "verify_second_factor", &[("code", code)]).await
}

#[tokio::test]
async fn enrolment_is_re_authenticated_bound_to_its_session_and_ends_the_others() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    let mut laptop = app.signed_in("ann@example.org").await;
    let mut phone = app.signed_in("ann@example.org").await;

    let r = app
        .rpc(
            &mut laptop,
            "start_totp",
            &[("current_password", "wrong password")],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "a wrong password",
    );
    let r = app
        .rpc(&mut laptop, "start_totp", &[("current_password", PASSWORD)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let shown = r.json();
    let secret = shown["secret"].as_str().unwrap().to_string();
    assert!(shown["uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/Keyward%3Aann%40example.org?secret="));
    assert!(shown["qr_image"]
        .as_str()
        .unwrap()
        .starts_with("data:image/svg+xml;base64,"));
    let seed = seed_of(&secret);
    assert_eq!(
        app.count("totp_factor").await,
        0,
        "nothing stored before the confirmation"
    );

    // Another session of the same user cannot confirm it; a wrong code does not either.
    let r = app
        .rpc(&mut phone, "confirm_totp", &[("code", &code(&seed, 0))])
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "another session",
    );
    let r = app
        .rpc(&mut laptop, "confirm_totp", &[("code", &code(&seed, 5))])
        .await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "a wrong code");
    assert_eq!(app.count("totp_factor").await, 0);
    assert_eq!(app.count("recovery_code").await, 0);

    let r = app
        .rpc(&mut laptop, "confirm_totp", &[("code", &code(&seed, 0))])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json().as_array().unwrap().len(), 10);
    assert_eq!(app.count("totp_factor").await, 1);
    assert_eq!(app.count("recovery_code").await, 10);
    // The other session ended; this one goes on.
    assert_eq!(app.signed_in_as(&mut phone).await, None);
    assert_eq!(
        app.signed_in_as(&mut laptop).await.as_deref(),
        Some("ann@example.org")
    );

    // The database holds no seed: not the secret, not the codes.
    let (salt, codes): (String, String) = (
        sqlx::query_scalar("select salt from totp_factor")
            .fetch_one(&app.state.db.reader)
            .await
            .unwrap(),
        sqlx::query_scalar::<_, String>("select code_hash from recovery_code")
            .fetch_all(&app.state.db.reader)
            .await
            .unwrap()
            .join(","),
    );
    assert!(!salt.contains(&secret) && !codes.contains(&secret));
    assert_ne!(
        app::identity::two_factor::secret_text(salt.as_bytes()),
        secret
    );

    // A second app cannot be started while one is on.
    let r = app
        .rpc(&mut laptop, "start_totp", &[("current_password", PASSWORD)])
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "a second factor");
}

#[tokio::test]
async fn the_second_step_takes_each_code_once_and_recovery_codes_once() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    let mut first = app.signed_in("ann@example.org").await;
    let (seed, recovery) = enrol(&app, &mut first).await;

    // The password alone: a pending session that every guarded call refuses.
    let mut b = pending(&app, "ann@example.org").await;
    let r = app.rpc(&mut b, "my_sessions", &[]).await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "a pending session",
    );

    // The code the enrolment used is spent; so is anything outside ±1 step.
    let r = verify(&app, &mut b, &code(&seed, -1)).await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "a spent step");
    let r = verify(&app, &mut b, &code(&seed, 3)).await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "a far step");
    // The owner learns that their password was right and the code was not (once an hour).
    let warned: i64 = sqlx::query_scalar(
        "select count(*) from outbox_email where to_address = 'ann@example.org' and subject like '%failed at the second step'",
    )
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(warned, 1);
    let next = code(&seed, 1);
    let r = verify(&app, &mut b, &next).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.signed_in_as(&mut b).await.as_deref(),
        Some("ann@example.org")
    );
    // The same code again, from another browser: refused.
    let mut again = pending(&app, "ann@example.org").await;
    let r = verify(&app, &mut again, &next).await;
    assert_refused(&r, StatusCode::BAD_REQUEST, "invalid_input", "a used code");
    assert_eq!(app.signed_in_as(&mut again).await, None);

    // A recovery code signs in once (in any case and spacing), and the owner is told.
    let loose = recovery[0].to_uppercase().replace('-', " ");
    let r = verify(&app, &mut again, &loose).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.count("recovery_code").await, 9);
    let told: i64 = sqlx::query_scalar(
        "select count(*) from outbox_email where to_address = 'ann@example.org' and subject like 'A recovery code%' and body_text like '%9 recovery code(s) are left%'",
    )
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(told, 1);
    let mut third = pending(&app, "ann@example.org").await;
    let r = verify(&app, &mut third, &recovery[0]).await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "a used recovery code",
    );

    // The audit trail tells the steps apart.
    let kinds: Vec<String> = sqlx::query_scalar(
        "select kind from domain_event where kind like 'user.%' order by occurred_at, event_id",
    )
    .fetch_all(&app.state.db.reader)
    .await
    .unwrap_or_default();
    for kind in [
        "user.two_factor_enabled",
        "user.password_verified",
        "user.second_factor_failed",
    ] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn ending_a_users_sessions_ends_a_sign_in_waiting_for_its_second_step() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    let mut here = app.signed_in("ann@example.org").await;
    let (seed, recovery) = enrol(&app, &mut here).await;
    let sessions = |r: Reply| r.json().as_array().map_or(0, Vec::len);

    // Someone with the password waits at the second step. It is no session of Ann's yet:
    // her list and the administrators' count do not show it.
    let mut waiting = pending(&app, "ann@example.org").await;
    let r = app.rpc(&mut here, "my_sessions", &[]).await;
    assert_eq!(sessions(r), 1);
    let (_, admin) = app.admin_key(app::access::ssr::SYSTEM_ORG_ID).await;
    let r = app
        .api(
            "GET",
            "/api/v1/users?q=ann",
            Some(&admin),
            None,
            "192.0.2.8",
        )
        .await;
    assert_eq!(r.json()["users"][0]["sessions"], 1, "{}", r.body);
    let ann = r.json()["users"][0]["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .api(
            "GET",
            &format!("/api/v1/users/{ann}/sessions"),
            Some(&admin),
            None,
            "192.0.2.8",
        )
        .await;
    assert_eq!(sessions(r), 1);

    // Ann changes her password: the sign-in begun with the old one cannot finish, even with
    // a right code.
    let new_password = "a brand new passphrase";
    let r = app
        .rpc(
            &mut here,
            "change_password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new_password),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = verify(&app, &mut waiting, &code(&seed, 1)).await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "a sign-in begun with the old password",
    );
    assert_eq!(app.signed_in_as(&mut waiting).await, None);

    // "Sign out everywhere else" ends one too.
    let mut waiting = pending_with(&app, "ann@example.org", new_password).await;
    let r = app.rpc(&mut here, "revoke_other_sessions", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = verify(&app, &mut waiting, &code(&seed, 1)).await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "a sign-in waiting when the other sessions were ended",
    );

    // Left alone, a waiting sign-in still finishes.
    let mut waiting = pending_with(&app, "ann@example.org", new_password).await;
    let r = verify(&app, &mut waiting, &code(&seed, 1)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        app.signed_in_as(&mut waiting).await.as_deref(),
        Some("ann@example.org")
    );
    let r = app.rpc(&mut here, "my_sessions", &[]).await;
    assert_eq!(sessions(r), 2);

    // A password set while the second step is under way (the race a password change can
    // win against it, here without deleting the waiting row): the step may finish, but the
    // session it makes was signed in with the replaced password and is over at once.
    let mut waiting = pending_with(&app, "ann@example.org", new_password).await;
    let hash = app::ssr::password::hash("yet another passphrase".into())
        .await
        .unwrap();
    sqlx::query("update app_user set password_hash = $2 where email_normalized = $1")
        .bind("ann@example.org")
        .bind(&hash)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let r = verify(&app, &mut waiting, &recovery[0]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.signed_in_as(&mut waiting).await, None);
    assert_eq!(app.signed_in_as(&mut here).await, None, "nor Ann's own");
}

/// A code is spent in the transaction that signs in: when that transaction cannot finish (the
/// waiting sign-in ended meanwhile), the code stays unspent for the next try.
#[tokio::test]
async fn a_code_is_not_spent_by_a_sign_in_that_does_not_finish() {
    if !on_postgres() {
        // The interleaving is forced with a row lock; SQLite has one writer.
        return;
    }
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    let mut first = app.signed_in("ann@example.org").await;
    let (seed, _) = enrol(&app, &mut first).await;
    let mut b = pending(&app, "ann@example.org").await;
    let last_step = || async {
        sqlx::query_scalar::<_, i64>("select last_step from totp_factor")
            .fetch_one(&app.state.db.reader)
            .await
            .unwrap()
    };
    let before = last_step().await;
    // The waiting sign-in's row is held, so the second step waits at its last statement...
    let mut ending = app.state.db.writer.begin().await.unwrap();
    sqlx::query("select session_hash from session where pending = 1 for update")
        .fetch_all(&mut *ending)
        .await
        .unwrap();
    let next = code(&seed, 1);
    let second = verify(&app, &mut b, &next);
    let end = async {
        until_a_lock_wait(&app).await;
        // ...while the waiting sign-in ends (as "sign out everywhere" ends it).
        sqlx::query("delete from session where pending = 1")
            .execute(&mut *ending)
            .await
            .unwrap();
        ending.commit().await.unwrap();
    };
    let (r, ()) = tokio::join!(second, end);
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "the sign-in ended",
    );
    assert_eq!(last_step().await, before, "the code was not spent");
    // Signing in again, the same code works.
    let mut again = pending(&app, "ann@example.org").await;
    let r = verify(&app, &mut again, &next).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// A right code whose sign-in transaction fails (here: the database refuses the sign-in's
/// event, as a collision would) gives its attempt back: the retry costs none of the hour's
/// allowance. The test allows one attempt an hour, so a kept attempt refuses the retry.
#[tokio::test]
async fn a_right_code_whose_sign_in_fails_gives_its_attempt_back() {
    let app = spawn_with(|c| c.sign_in_failures_per_hour = 1).await;
    app.user("ann@example.org", None).await;
    let mut first = app.signed_in("ann@example.org").await;
    let (seed, _) = enrol(&app, &mut first).await;
    refuse_events(&app, "user.signed_in").await;
    let mut b = pending(&app, "ann@example.org").await;
    let next = code(&seed, 1);
    let r = verify(&app, &mut b, &next).await;
    assert!(r.status.is_server_error(), "{} {}", r.status, r.body);
    let kept: i64 = sqlx::query_scalar("select count(*) from sign_in_failure")
        .fetch_one(&app.state.db.reader)
        .await
        .unwrap();
    assert_eq!(kept, 0, "the attempt was given back");
    allow_events(&app).await;
    let mut again = pending(&app, "ann@example.org").await;
    let r = verify(&app, &mut again, &next).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn parallel_sign_ins_with_one_code_admit_exactly_one() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    let mut first = app.signed_in("ann@example.org").await;
    let (seed, _) = enrol(&app, &mut first).await;
    let mut browsers = Vec::new();
    for _ in 0..8 {
        browsers.push(pending(&app, "ann@example.org").await);
    }
    let the_code = code(&seed, 1);
    let replies = join_all(
        browsers
            .iter_mut()
            .map(|b| {
                let the_code = the_code.clone();
                let app = &app;
                async move { verify(app, b, &the_code).await.status }
            })
            .collect(),
    )
    .await;
    let admitted = replies.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(admitted, 1, "{replies:?}");
}

#[tokio::test]
async fn wrong_codes_spend_the_hourly_allowance() {
    let app = spawn_with(|c| c.sign_in_failures_per_hour = 3).await;
    app.user("ann@example.org", None).await;
    let mut first = app.signed_in("ann@example.org").await;
    let (seed, _) = enrol(&app, &mut first).await;
    let mut b = pending(&app, "ann@example.org").await;
    for _ in 0..3 {
        let r = verify(&app, &mut b, "000000").await;
        // (one in a million: 000000 could be right; then it is not a wrong guess.)
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    }
    let r = verify(&app, &mut b, &code(&seed, 1)).await;
    assert_refused(
        &r,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "the allowance spent",
    );
    assert_eq!(app.signed_in_as(&mut b).await, None);
}

#[tokio::test]
async fn turning_it_off_and_new_recovery_codes_need_the_password() {
    let app = spawn().await;
    app.user("ann@example.org", None).await;
    let mut b = app.signed_in("ann@example.org").await;
    let (seed, old) = enrol(&app, &mut b).await;
    let mut other = pending(&app, "ann@example.org").await;
    assert_eq!(
        verify(&app, &mut other, &old[1]).await.status,
        StatusCode::OK
    );

    let r = app
        .rpc(
            &mut b,
            "regenerate_recovery_codes",
            &[("current_password", "nope nope")],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "a wrong password",
    );
    let r = app
        .rpc(
            &mut b,
            "regenerate_recovery_codes",
            &[("current_password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let fresh: Vec<String> = serde_json::from_value(r.json()).unwrap();
    assert_eq!(fresh.len(), 10);
    let mut p = pending(&app, "ann@example.org").await;
    let r = verify(&app, &mut p, &old[2]).await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "an old recovery code",
    );

    let r = app
        .rpc(&mut b, "disable_totp", &[("current_password", "nope nope")])
        .await;
    assert_refused(
        &r,
        StatusCode::BAD_REQUEST,
        "invalid_input",
        "a wrong password",
    );
    assert_eq!(app.count("totp_factor").await, 1);
    let r = app
        .rpc(&mut b, "disable_totp", &[("current_password", PASSWORD)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(app.count("totp_factor").await, 0);
    assert_eq!(app.count("recovery_code").await, 0);
    // The other sessions ended; this one goes on; the password alone signs in again.
    assert_eq!(app.signed_in_as(&mut other).await, None);
    assert!(app.signed_in_as(&mut b).await.is_some());
    let mut plain = app.signed_in("ann@example.org").await;
    assert!(app.signed_in_as(&mut plain).await.is_some());
    let _ = seed;
}

/// New recovery codes asked for while the authenticator app is being turned off are not
/// issued once it is off: no codes outlive the app they stand in for.
#[tokio::test]
async fn recovery_codes_asked_for_as_the_app_goes_are_not_issued() {
    use app::ssr::db::{lock_row, LockedRow, RowLock};
    let app = spawn().await;
    let user = app.user("ann@example.org", None).await;
    let mut b = app.signed_in("ann@example.org").await;
    enrol(&app, &mut b).await;
    // Turning it off, caught half-way: the account is locked and the factor deleted, not yet
    // committed (on SQLite this transaction holds the one writer).
    let mut off = app.state.db.writer.begin().await.unwrap();
    lock_row(&mut off, LockedRow::User(&user), RowLock::NoKeyUpdate)
        .await
        .unwrap();
    for table in ["totp_factor", "recovery_code"] {
        sqlx::query(&format!("delete from {table} where user_id = $1"))
            .bind(&user)
            .execute(&mut *off)
            .await
            .unwrap();
    }
    let regenerate = app::identity::two_factor::regenerate_recovery_codes(
        &app.state.db,
        &app.state.config.secret,
        &user,
        None,
    );
    let finish = async {
        if on_postgres() {
            // The regeneration waits on the account's row lock (not merely starts late).
            until_a_lock_wait_on(&app.state.db).await;
        } else {
            // One writer: the regeneration reads, then waits for it.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        off.commit().await.unwrap();
    };
    let (codes, ()) = tokio::join!(regenerate, finish);
    let refused = codes.expect_err("codes issued for a factor that is gone");
    assert_eq!(refused.code, app::error::ErrorCode::Conflict, "{refused:?}");
    assert_eq!(app.count("recovery_code").await, 0);
}

#[tokio::test]
async fn an_organization_requiring_it_allows_only_enrolment_until_then() {
    let app = spawn().await;
    let owner = app.user("olga@example.org", None).await;
    let bob = app.user("bob@example.org", None).await;
    let org = app.org_of(&owner).await;
    app.add_member(&org, &bob, "member").await;
    // Olga turns the requirement on through the policy page's call.
    let mut olga = app.signed_in("olga@example.org").await;
    let r = app
        .rpc(
            &mut olga,
            "set_org_policy",
            &[
                ("organization_id", org.as_str()),
                ("max_key_lifetime_days", ""),
                ("require_two_factor", "on"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let stored = app::orgs::policy::get(&app.state.db, &org).await.unwrap();
    assert!(stored.require_two_factor, "{stored:?}");
    // Olga has no factor herself: her own session is held to enrolment from now on.
    let r = app.rpc(&mut olga, "my_organizations", &[]).await;
    assert_refused(&r, StatusCode::FORBIDDEN, "two_factor_required", "olga");

    let mut b = Browser::default();
    let r = app
        .rpc(
            &mut b,
            "sign_in",
            &[("email", "bob@example.org"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let me = app.rpc(&mut b, "current_user", &[]).await.json();
    assert_eq!(me["must_enrol_two_factor"], true, "{me}");
    for endpoint in ["my_sessions", "my_organizations"] {
        let r = app.rpc(&mut b, endpoint, &[]).await;
        assert_refused(&r, StatusCode::FORBIDDEN, "two_factor_required", endpoint);
    }
    let r = app.rpc(&mut b, "two_factor_status", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["must_enrol"], true);
    assert_eq!(r.json()["required_by"].as_array().unwrap().len(), 1);

    enrol(&app, &mut b).await;
    let me = app.rpc(&mut b, "current_user", &[]).await.json();
    assert_eq!(me["must_enrol_two_factor"], false, "{me}");
    let r = app.rpc(&mut b, "my_sessions", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Turning it off (to move to another phone, say) holds the session back again at once.
    let r = app
        .rpc(&mut b, "disable_totp", &[("current_password", PASSWORD)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.rpc(&mut b, "my_sessions", &[]).await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "two_factor_required",
        "after turning it off",
    );

    // Carol, in no such organization, is not held back.
    app.user("carol@example.org", None).await;
    let mut o = app.signed_in("carol@example.org").await;
    let r = app.rpc(&mut o, "my_sessions", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Sessions opened before an organization required a second factor (the policy turned on, or
/// the user joined such an organization on another device) are held to enrolment at their next
/// call, not left free until they time out; a user with a factor is not.
#[tokio::test]
async fn a_requirement_reaches_sessions_opened_before_it() {
    let app = spawn().await;
    let owner = app.user("olga@example.org", None).await;
    let org = app.org_of(&owner).await;
    let bob = app.user("bob@example.org", None).await;
    let dan = app.user("dan@example.org", None).await;
    app.add_member(&org, &dan, "member").await;
    let mut laptop = app.signed_in("bob@example.org").await;
    let mut phone = app.signed_in("bob@example.org").await;
    let mut dan_b = app.signed_in("dan@example.org").await;
    enrol(&app, &mut dan_b).await;
    for b in [&mut laptop, &mut phone] {
        let r = app.rpc(b, "my_organizations", &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    require_two_factor(&app, &org).await;
    // Not a member yet: Bob is not held.
    let r = app.rpc(&mut phone, "my_organizations", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // He joins (as on his laptop); his phone's session is held at its next call, and stays so.
    app.add_member(&org, &bob, "member").await;
    for endpoint in ["my_organizations", "my_sessions"] {
        let r = app.rpc(&mut phone, endpoint, &[]).await;
        assert_refused(&r, StatusCode::FORBIDDEN, "two_factor_required", endpoint);
    }
    let me = app.rpc(&mut phone, "current_user", &[]).await.json();
    assert_eq!(me["must_enrol_two_factor"], true, "{me}");
    let r = app
        .rpc(&mut laptop, "list_keys", &[("organization_id", &org)])
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "two_factor_required", "laptop");
    // Enrolling on one device frees that one.
    enrol(&app, &mut laptop).await;
    let r = app
        .rpc(&mut laptop, "list_keys", &[("organization_id", &org)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Dan has a factor: not held.
    let r = app.rpc(&mut dan_b, "my_sessions", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Erin, held, is let go as soon as nothing requires a factor of her any more.
    let erin = app.user("erin@example.org", None).await;
    app.add_member(&org, &erin, "member").await;
    let mut e = app.signed_in("erin@example.org").await;
    let r = app.rpc(&mut e, "my_sessions", &[]).await;
    assert_refused(&r, StatusCode::FORBIDDEN, "two_factor_required", "erin");
    sqlx::query("update organization_policy set require_two_factor = 0 where organization_id = $1")
        .bind(&org)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    let r = app.rpc(&mut e, "my_sessions", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let me = app.rpc(&mut e, "current_user", &[]).await.json();
    assert_eq!(me["must_enrol_two_factor"], false, "{me}");
}

#[tokio::test]
async fn an_invitation_link_does_not_sign_in_past_the_second_factor() {
    let app = spawn().await;
    app.user("olga@example.org", None).await;
    let ann = app.user("ann@example.org", None).await;
    let mut b = app.signed_in("ann@example.org").await;
    enrol(&app, &mut b).await;
    let mut o = app.signed_in("olga@example.org").await;
    // Olga requires a second factor of Acme's members below, herself included.
    enrol(&app, &mut o).await;
    let r = app
        .rpc(&mut o, "create_organization", &[("name", "Acme")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let org = r.json().as_str().unwrap().to_string();
    let r = app
        .rpc(
            &mut o,
            "invite_member",
            &[
                ("organization_id", &org),
                ("email", "ann@example.org"),
                ("role", "member"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = app.emailed_token("ann@example.org", "invite").await;
    let mut anon = Browser::default();
    let r = app
        .rpc(
            &mut anon,
            "accept_invitation",
            &[("token", &token), ("password", PASSWORD)],
        )
        .await;
    assert_refused(
        &r,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "password only",
    );
    assert_eq!(app.signed_in_as(&mut anon).await, None);
    let joined: i64 = sqlx::query_scalar(
        "select count(*) from membership where organization_id = $1 and user_id = $2",
    )
    .bind(&org)
    .bind(&ann)
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(joined, 0);
    // Signed in with both factors, the same link works.
    let r = app
        .rpc(&mut b, "accept_invitation", &[("token", &token)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Acme now requires a second factor: Carl, who has none, joins through a link with his
    // password and is held to enrolling one.
    require_two_factor(&app, &org).await;
    app.user("carl@example.org", None).await;
    let r = app
        .rpc(
            &mut o,
            "invite_member",
            &[
                ("organization_id", &org),
                ("email", "carl@example.org"),
                ("role", "member"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = app.emailed_token("carl@example.org", "invite").await;
    let mut carl = Browser::default();
    let r = app
        .rpc(
            &mut carl,
            "accept_invitation",
            &[("token", &token), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let me = app.rpc(&mut carl, "current_user", &[]).await.json();
    assert_eq!(me["email"], "carl@example.org");
    assert_eq!(me["must_enrol_two_factor"], true, "{me}");
    let r = app
        .rpc(&mut carl, "list_keys", &[("organization_id", &org)])
        .await;
    assert_refused(
        &r,
        StatusCode::FORBIDDEN,
        "two_factor_required",
        "before enrolling",
    );
}

#[tokio::test]
async fn an_administrator_turns_a_lost_factor_off_but_never_a_stronger_users() {
    let app = spawn().await;
    let root = app
        .user("root@example.org", Some(app::access::Role::Owner))
        .await;
    app.user("adm@example.org", Some(app::access::Role::Admin))
        .await;
    let ann = app.user("ann@example.org", None).await;
    let mut a = app.signed_in("ann@example.org").await;
    enrol(&app, &mut a).await;
    let mut r0 = app.signed_in("root@example.org").await;
    enrol(&app, &mut r0).await;

    // An admin cannot turn the owner's off; nobody their own through this door.
    let mut adm = app.signed_in("adm@example.org").await;
    let before = app.count("totp_factor").await;
    let r = app
        .rpc(&mut adm, "reset_user_two_factor", &[("user_id", &root)])
        .await;
    assert_refused(&r, StatusCode::FORBIDDEN, "forbidden", "a stronger user");
    assert_eq!(app.count("totp_factor").await, before);

    let r = app
        .rpc(&mut adm, "reset_user_two_factor", &[("user_id", &ann)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let left: i64 = sqlx::query_scalar(
        "select (select count(*) from totp_factor where user_id = $1) + (select count(*) from recovery_code where user_id = $1)",
    )
    .bind(&ann)
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(left, 0);
    assert_eq!(app.signed_in_as(&mut a).await, None, "her sessions ended");
    let told: i64 = sqlx::query_scalar(
        "select count(*) from notification where user_id = $1 and title like 'An administrator turned off%'",
    )
    .bind(&ann)
    .fetch_one(&app.state.db.reader)
    .await
    .unwrap();
    assert_eq!(told, 1);
    // The password alone signs her in again; a second reset has nothing to turn off.
    let mut again = app.signed_in("ann@example.org").await;
    assert!(app.signed_in_as(&mut again).await.is_some());
    let r = app
        .rpc(&mut adm, "reset_user_two_factor", &[("user_id", &ann)])
        .await;
    assert_refused(&r, StatusCode::CONFLICT, "conflict", "nothing to turn off");
    let users = app.rpc(&mut adm, "list_users", &[]).await.json();
    let row = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "root@example.org")
        .unwrap()
        .clone();
    assert_eq!(row["two_factor"], true, "{row}");
}
