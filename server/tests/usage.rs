//! Usage: exact rate limits (one instance, 64 parallel clients, two instances on one
//! database), plans and their changes, the request log and its rollup, `/metrics`, and a
//! SIGTERM under load that loses no log row. Runs on SQLite, and on PostgreSQL when
//! `KEYWARD_TEST_DATABASE_URL` is set.

mod common;

use app::usage::window::max_in_any_window;
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const IP: &str = "192.0.2.20";

/// A system-organization admin key (can hold `plans:write`), and an ordinary org's.
async fn system_and_org_keys(app: &TestApp) -> (String, String, String) {
    let root = app
        .user("root@example.org", Some(app::access::Role::Owner))
        .await;
    let _ = root;
    let (_, system) = app.admin_key(app::access::ssr::SYSTEM_ORG_ID).await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let (_, org_admin) = app.admin_key(&org).await;
    (system, org, org_admin)
}

fn header(r: &Reply, name: &str) -> Option<String> {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[tokio::test]
async fn answers_carry_the_limit_and_refusals_say_when_to_retry() {
    let (app, org, admin) = with_admin_key().await;
    let (key_id, key) = app.scoped_key(&org, json!({"keys": "read"})).await;
    app.limit_key(IP, &admin, &key_id, 5, 3600).await;

    for expected_remaining in (0..5).rev() {
        let r = app.api("GET", "/api/v1/me", Some(&key), None, IP).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(header(&r, "ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(
            header(&r, "ratelimit-remaining"),
            Some(expected_remaining.to_string())
        );
        let reset: u64 = header(&r, "ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset > 0 && reset <= 3660, "reset {reset}");
    }
    let r = app.api("GET", "/api/v1/me", Some(&key), None, IP).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.error_code(), "rate_limited");
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("5 per hour"));
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((3590..=3660).contains(&retry), "retry-after {retry}");
    assert_eq!(header(&r, "ratelimit-remaining").as_deref(), Some("0"));
    // A refusal for another reason still counts and still carries the headers.
    let r = app
        .api("GET", "/api/v1/keys/key_nope", Some(&key), None, IP)
        .await;
    assert_eq!(r.status, 429);
    // Other keys are not affected.
    let r = app.api("GET", "/api/v1/me", Some(&admin), None, IP).await;
    assert_eq!(r.status, 200);
}

/// Runs `per_client` calls of `/api/v1/me` from each of `clients` tasks on the multi-threaded
/// runtime, against one instance or alternating between two; returns the statuses.
async fn hammer(apps: Vec<Arc<TestApp>>, key: &str, clients: usize, per_client: usize) -> Vec<u16> {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let app = apps[c % apps.len()].clone();
        let key = key.to_string();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for _ in 0..per_client {
                out.push(
                    app.api("GET", "/api/v1/me", Some(&key), None, IP)
                        .await
                        .status
                        .as_u16(),
                );
            }
            out
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.extend(t.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_parallel_clients_get_exactly_the_limit() {
    let (app, org, admin) = with_admin_key().await;
    let (key_id, key) = app.scoped_key(&org, json!({"keys": "read"})).await;
    app.limit_key(IP, &admin, &key_id, 50, 3600).await;
    let statuses = hammer(vec![Arc::new(app)], &key, 64, 3).await;
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(admitted, 50, "{statuses:?}");
    assert_eq!(refused, 64 * 3 - 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_database_admit_exactly_the_limit_together() {
    let (app, org, admin) = with_admin_key().await;
    let (key_id, key) = app.scoped_key(&org, json!({"keys": "read"})).await;
    app.limit_key(IP, &admin, &key_id, 40, 3600).await;
    let other = app.second_instance();
    let (a, b) = (Arc::new(app), Arc::new(other));
    let statuses = hammer(vec![a.clone(), b.clone()], &key, 32, 4).await;
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(admitted, 40, "{statuses:?}");
    // The shared count holds exactly what was admitted once the leases are given back.
    for app in [&a, &b] {
        app::usage::ssr::RateLimiter::of(&app.state)
            .unwrap()
            .sweep(app::ssr::db::now_ms(), true)
            .await
            .unwrap();
    }
    let counted: i64 = sqlx::query_scalar(
        "select cast(coalesce(sum(admitted), 0) as bigint) from rate_bucket where api_key_id = $1",
    )
    .bind(&key_id)
    .fetch_one(&a.state.db.writer)
    .await
    .unwrap();
    assert_eq!(counted, 40);
}

/// The limiter itself, on the backend under test, at simulated times: three instances share
/// one database and take random turns (requests, leases of the next bucket taken ahead,
/// sweeps, with random gaps), and no rolling window ever holds more admissions than the
/// limit. In some schedules the key's limit changes midway (a plan change, possibly to another
/// window): from then on every window of the new length ending at an admission holds at most
/// the new limit, admissions before the change included. The seed is printed: a failure
/// replays with `KEYWARD_LIMITER_SEED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_across_instances_never_admit_more_than_the_limit_in_any_rolling_window() {
    use app::usage::ssr::{Limit, RateLimiter};
    use rand::{Rng, SeedableRng};
    let (db, _dir) = fresh_db().await;
    let limiters: Vec<RateLimiter> = (0..3).map(|_| RateLimiter::new(db.clone())).collect();
    let seed: u64 = std::env::var("KEYWARD_LIMITER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("KEYWARD_LIMITER_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut admissions, mut refusals) = (0, 0);
    for case in 0..100 {
        let key = format!("key_limiter_{seed:x}_{case}");
        // Mostly 1-3 s windows (100 ms buckets, the shortest), some of minutes (1-3 s buckets).
        let mut random_limit = || {
            let window = if rng.gen_bool(0.75) {
                rng.gen_range(1..4)
            } else {
                rng.gen_range(60..180)
            };
            Limit::new(rng.gen_range(1..30), window)
        };
        let (first, second) = (random_limit(), random_limit());
        let steps = rng.gen_range(50..300);
        let change = if rng.gen_bool(0.3) {
            rng.gen_range(0..steps)
        } else {
            steps
        };
        let mut now: i64 = 1_700_000_000_000 + rng.gen_range(0..100_000);
        let (mut admitted, mut after_change) = (Vec::new(), Vec::new());
        for step in 0..steps {
            let limit = if step < change { first } else { second };
            now += match rng.gen_range(0..4) {
                0 => 0,
                1 => rng.gen_range(0..20),
                2 => rng.gen_range(0..150),
                _ => rng.gen_range(0..1_500),
            };
            let limiter = &limiters[rng.gen_range(0..limiters.len())];
            match rng.gen_range(0..40) {
                0..4 => limiter.lease_ahead(&key, limit, now).await,
                4..8 => drop(limiter.sweep(now, false).await.unwrap()),
                // What shutdown does: everything goes back, leases taken ahead included.
                8 => drop(limiter.sweep(now, true).await.unwrap()),
                _ => {
                    if limiter.check_at(&key, limit, now).await.unwrap().admitted {
                        admitted.push(now);
                        if step >= change {
                            after_change.push(now);
                        }
                    } else {
                        refusals += 1;
                    }
                }
            }
        }
        admissions += admitted.len();
        let before_change = &admitted[..admitted.len() - after_change.len()];
        assert!(
            max_in_any_window(before_change, first.window_ms) as u64 <= first.limit,
            "KEYWARD_LIMITER_SEED={seed} case {case}: {first:?} admitted at {admitted:?}"
        );
        for t in &after_change {
            let in_window = admitted
                .iter()
                .filter(|a| *a > &(t - second.window_ms) && *a <= t)
                .count();
            assert!(
                in_window as u64 <= second.limit,
                "KEYWARD_LIMITER_SEED={seed} case {case}: {first:?} then {second:?} at step {change}, admitted at {admitted:?}"
            );
        }
    }
    // The schedules do reach the limit (the property is not met by refusing nothing), and
    // leases taken ahead were spent.
    assert!(
        refusals > 0 && admissions > 0,
        "{admissions} admitted, {refusals} refused"
    );
    let promoted: u64 = limiters
        .iter()
        .map(|l| l.promoted.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    assert!(promoted > 0);
}

/// A plan change to a shorter window still counts what was admitted under the old one for as
/// long as it can be inside the new window: a row of the old, longer bucket is counted in the
/// new bucket holding its last instant, not its first.
#[tokio::test]
async fn a_plan_change_to_a_shorter_window_counts_what_the_old_one_admitted() {
    use app::usage::ssr::{Limit, RateLimiter};
    let (db, _dir) = fresh_db().await;
    let limiter = RateLimiter::new(db.clone());
    // A multiple of both bucket sizes. 10 per 2 min (2 s buckets): all 10 late in [t, t + 2 s).
    let t = 1_700_000_000_000;
    let before = Limit::new(10, 120);
    for _ in 0..10 {
        assert!(
            limiter
                .check_at("key_plan", before, t + 1_900)
                .await
                .unwrap()
                .admitted
        );
    }
    // Now 10 per second (100 ms buckets). The 10 admitted at t + 1.9 s are in the window.
    let after = Limit::new(10, 1);
    let refused = limiter
        .check_at("key_plan", after, t + 1_950)
        .await
        .unwrap();
    assert!(!refused.admitted, "{refused:?}");
    // The old bucket could hold admissions up to t + 2 s: counted until a window after that.
    // Asked of another instance, which reads the count (the first one remembers its refusal).
    let other = RateLimiter::new(db);
    assert!(
        !other
            .check_at("key_plan", after, t + 2_901)
            .await
            .unwrap()
            .admitted
    );
    assert!(
        other
            .check_at("key_plan", after, t + 3_000)
            .await
            .unwrap()
            .admitted
    );
}

/// What the console shows of a key's use counts admissions, not tokens leased: after a plan
/// change to a shorter window, the lease taken under the old one is not shown as used.
#[tokio::test]
async fn shown_usage_after_a_plan_change_counts_admissions_not_leases() {
    use app::usage::ssr::{Limit, RateLimiter};
    let (db, _dir) = fresh_db().await;
    let limiter = RateLimiter::new(db.clone());
    // 100 per 2 min (2 s buckets): one request leases more than one token.
    let t = 1_700_000_000_000;
    let before = Limit::new(100, 120);
    assert!(
        limiter
            .check_at("key_shown", before, t + 1_900)
            .await
            .unwrap()
            .admitted
    );
    let (used, _) = limiter.usage("key_shown", before, t + 1_900).await.unwrap();
    assert_eq!(used, 1);
    // The shared count holds the whole lease, more than the one admission.
    let leased: i64 = sqlx::query_scalar(
        "select cast(sum(admitted) as bigint) from rate_bucket where api_key_id = 'key_shown'",
    )
    .fetch_one(&db.reader)
    .await
    .unwrap();
    assert!(leased > 1, "{leased}");
    // Now 100 per second (100 ms buckets), before the key's next request: still one.
    let after = Limit::new(100, 1);
    let (used, d) = limiter.usage("key_shown", after, t + 1_950).await.unwrap();
    assert_eq!(used, 1, "{d:?}");
    assert_eq!(d.remaining, 99);
}

/// A decision whose every lease outlasts its bucket (a database slower than a bucket) admits
/// nothing and blames the service, not the key: 503 `unavailable` with `Retry-After`, not 429.
/// What it leased is given back.
#[tokio::test]
async fn a_decision_whose_leases_all_outlast_their_bucket_is_unavailable() {
    use app::error::ErrorCode;
    use app::usage::ssr::{Limit, RateLimiter};
    use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
    let (db, _dir) = fresh_db().await;
    let limiter = RateLimiter::new(db.clone());
    // 10 per second: 100 ms buckets. Every reading of this clock is 150 ms after the last.
    let limit = Limit::new(10, 1);
    let start = 1_700_000_000_000;
    let clock = AtomicI64::new(start);
    let e = limiter
        .check_with_clock("key_slow", limit, || clock.fetch_add(150, Relaxed))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable, "{e:?}");
    assert_eq!(e.retry_after, Some(1));
    assert_eq!(limiter.admitted.load(Relaxed), 0);
    // For a second the key takes no new lease: 503 at once, no transaction.
    let leases = limiter.leases.load(Relaxed);
    let soon = clock.load(Relaxed) + 500;
    let e = limiter.check_at("key_slow", limit, soon).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Unavailable, "{e:?}");
    assert_eq!(limiter.leases.load(Relaxed), leases);
    // Later, with a clock that stands still, the key has its whole limit: nothing the failed
    // decision leased is counted against it (asked of another instance, which reads the count).
    let now = clock.load(Relaxed) + 1_010;
    limiter.sweep(now, true).await.unwrap();
    let other = RateLimiter::new(db);
    let d = other.check_at("key_slow", limit, now).await.unwrap();
    assert!(d.admitted, "{d:?}");
    assert_eq!(d.remaining, 9, "{d:?}");
    // And the first instance leases again once its second is over.
    let d = limiter.check_at("key_slow", limit, now + 1).await.unwrap();
    assert!(d.admitted, "{d:?}");
}

/// The sweep gives ended leases back without holding their keys: a key's requests go on
/// while its old bucket's row is busy (PostgreSQL: held by another transaction here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_s_requests_do_not_wait_for_the_sweep_to_give_its_lease_back() {
    use app::usage::ssr::{Limit, RateLimiter};
    if !on_postgres() {
        // The row is held by a second transaction; SQLite has one writer.
        return;
    }
    let (db, _dir) = fresh_db().await;
    let limiter = std::sync::Arc::new(RateLimiter::new(db.clone()));
    // 100 an hour: 1-minute buckets (whatever the size, the sweep runs a minute later).
    let limit = Limit::new(100, 3600);
    let start = 1_700_000_040_000;
    assert!(
        limiter
            .check_at("key_busy", limit, start)
            .await
            .unwrap()
            .admitted
    );
    let mut holding = db.writer.begin().await.unwrap();
    let held =
        sqlx::query("select admitted from rate_bucket where api_key_id = 'key_busy' for update")
            .fetch_all(&mut *holding)
            .await
            .unwrap();
    assert!(!held.is_empty(), "the lease was counted in a row");
    let later = start + 3_600_000;
    let sweeping = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.sweep(later, false).await }
    });
    until_a_lock_wait_on(&db).await;
    let d = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        limiter.check_at("key_busy", limit, later),
    )
    .await
    .expect("the request does not wait for the sweep's give-back")
    .unwrap();
    assert!(d.admitted, "{d:?}");
    holding.commit().await.unwrap();
    assert_eq!(
        sweeping.await.unwrap().unwrap(),
        1,
        "the old lease went back"
    );
}

/// A key used in consecutive buckets leases the next one in the background (in the last
/// second of a bucket; at once when buckets are a second or shorter), and spends that lease
/// when the bucket turns, without a lease on the request path.
#[tokio::test]
async fn a_busy_key_leases_its_next_bucket_ahead_in_the_background() {
    use app::usage::ssr::{Limit, RateLimiter};
    use std::sync::atomic::Ordering::Relaxed;
    let (db, _dir) = fresh_db().await;
    let limiter = RateLimiter::new(db.clone());
    let settle = Duration::from_secs(10);
    let admitted = |key: &'static str, limit: Limit, now: i64| {
        let limiter = &limiter;
        async move { limiter.check_at(key, limit, now).await.unwrap().admitted }
    };
    // A 2 min window: 2 s buckets.
    let minutes = Limit::new(1_000, 120);
    let t = 1_700_000_000_000;
    assert!(admitted("key_minutes", minutes, t).await);
    assert!(admitted("key_minutes", minutes, t + 2_000).await);
    assert_eq!(
        limiter.leases.load(Relaxed),
        2,
        "one lease per bucket so far"
    );
    // Busy, but more than a second before the bucket ends: nothing ahead yet.
    assert!(admitted("key_minutes", minutes, t + 2_100).await);
    limiter.settled(settle).await;
    assert_eq!(limiter.leases.load(Relaxed), 2);
    // In its last second: the next bucket is leased in the background.
    assert!(admitted("key_minutes", minutes, t + 3_100).await);
    limiter.settled(settle).await;
    assert_eq!(limiter.leases.load(Relaxed), 3, "a lease ahead");
    let ahead: i64 = sqlx::query_scalar(
        "select admitted from rate_bucket where api_key_id = 'key_minutes' and bucket_start = $1",
    )
    .bind(t + 4_000)
    .fetch_one(&db.reader)
    .await
    .unwrap();
    assert!(ahead > 0);
    // The bucket turns: its first request spends the lease taken ahead.
    assert!(admitted("key_minutes", minutes, t + 4_000).await);
    assert_eq!(limiter.promoted.load(Relaxed), 1);
    // A 1 s window (100 ms buckets): leased ahead as soon as the key is busy.
    let second = Limit::new(1_000, 1);
    for now in [t, t + 100, t + 101] {
        assert!(admitted("key_seconds", second, now).await);
    }
    limiter.settled(settle).await;
    assert!(admitted("key_seconds", second, t + 200).await);
    assert_eq!(limiter.promoted.load(Relaxed), 2);
    // Read before anything else runs (a current-thread runtime: the lease ahead this admission
    // started for the next bucket has not run yet), so a lease here was taken on the path.
    assert_eq!(
        limiter.leases.load(Relaxed),
        6,
        "no lease on the request path"
    );
}

#[tokio::test]
async fn plans_set_limits_and_a_plan_change_applies_to_its_keys_at_once() {
    let app = spawn().await;
    let (system, org, org_admin) = system_and_org_keys(&app).await;
    let (key_id, key) = app.scoped_key(&org, json!({"keys": "read"})).await;

    let r = app
        .api(
            "POST",
            "/api/v1/plans",
            Some(&system),
            Some(json!({"name": "tiny", "limit": 3, "window_seconds": 3600, "description": "for tests"})),
            IP,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let plan_id = r.json()["id"].as_str().unwrap().to_string();
    let r = app
        .api(
            "PUT",
            &format!("/api/v1/keys/{key_id}/limit"),
            Some(&org_admin),
            Some(json!({"plan_id": plan_id, "reason": "downgrade"})),
            IP,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["plan_id"], json!(plan_id));

    let calls = |n: usize| {
        let (app, key) = (&app, key.clone());
        async move {
            let mut statuses = Vec::new();
            for _ in 0..n {
                statuses.push(
                    app.api("GET", "/api/v1/me", Some(&key), None, IP)
                        .await
                        .status
                        .as_u16(),
                );
            }
            statuses
        }
    };
    assert_eq!(calls(4).await, vec![200, 200, 200, 429]);
    let r = app
        .api(
            "PATCH",
            &format!("/api/v1/plans/{plan_id}"),
            Some(&system),
            Some(json!({"limit": 5})),
            IP,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["keys"], json!(1));
    // At once: two more, then refused again.
    assert_eq!(calls(3).await, vec![200, 200, 429]);

    // A plan in use cannot be deleted; the answer says how many keys use it.
    let r = app
        .api(
            "DELETE",
            &format!("/api/v1/plans/{plan_id}"),
            Some(&system),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, 409);
    assert!(r.body.contains("1 key(s)"), "{}", r.body);
    let r = app
        .api("DELETE", "/api/v1/plans/plan_free", Some(&system), None, IP)
        .await;
    assert_eq!(r.status, 409);
    // Back to the default plan, then the plan can go.
    let r = app
        .api(
            "PUT",
            &format!("/api/v1/keys/{key_id}/limit"),
            Some(&org_admin),
            Some(json!({"plan_id": null})),
            IP,
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .api(
            "DELETE",
            &format!("/api/v1/plans/{plan_id}"),
            Some(&system),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(app.count("plan").await, 2);
    // The timeline has the change.
    let r = app
        .api(
            "GET",
            &format!("/api/v1/keys/{key_id}/history"),
            Some(&org_admin),
            None,
            IP,
        )
        .await;
    assert!(
        r.body.contains("\"limit\"") || r.body.contains("downgrade"),
        "{}",
        r.body
    );
}

/// Every key may read the plans (to choose one), but how many keys of the instance each
/// holds is for those who may change plans only: to anyone else it would tell of other
/// organizations' keys.
#[tokio::test]
async fn plan_key_counts_are_for_plan_administrators_only() {
    let app = spawn().await;
    let (system, org, org_admin) = system_and_org_keys(&app).await;
    let plans = |key: String| {
        let app = &app;
        async move {
            let r = app.api("GET", "/api/v1/plans", Some(&key), None, IP).await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.json().as_array().unwrap().clone()
        }
    };
    let counts = |seen: Vec<serde_json::Value>| {
        let of = |id: &str| seen.iter().find(|p| p["id"] == id).unwrap()["keys"].clone();
        (of("plan_free"), of("plan_pro"))
    };
    // The instance's two keys (the system's and ann's organization's), both on the default.
    assert_eq!(counts(plans(system.clone()).await), (json!(2), json!(0)));
    sqlx::query("update api_key set plan_id = 'plan_pro' where organization_id = $1")
        .bind(&org)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
    assert_eq!(
        counts(plans(system).await),
        (json!(1), json!(1)),
        "counted over every organization"
    );
    let seen = plans(org_admin).await;
    assert!(!seen.is_empty());
    for plan in &seen {
        assert!(plan["keys"].is_null(), "{plan}");
    }
    // The console's list the same way: a user who is no plan administrator sees no counts.
    app.user("zed@example.org", None).await;
    let mut zed = app.signed_in("zed@example.org").await;
    let r = app.rpc(&mut zed, "list_plans", &[]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for plan in r.json().as_array().unwrap() {
        assert!(plan["keys"].is_null(), "{plan}");
    }
}

#[tokio::test]
async fn plan_writes_need_the_instance_permission_and_bad_input_writes_nothing() {
    let app = spawn().await;
    let (system, org, org_admin) = system_and_org_keys(&app).await;
    let before = app.count("plan").await;
    // An organization's admin key cannot hold plans:write.
    let r = app
        .api(
            "POST",
            "/api/v1/plans",
            Some(&org_admin),
            Some(json!({"name": "mine", "limit": 1000000, "window_seconds": 1})),
            IP,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("plans:write"), "{}", r.body);
    let r = app
        .api(
            "PATCH",
            "/api/v1/plans/plan_free",
            Some(&org_admin),
            Some(json!({"limit": 1000000})),
            IP,
        )
        .await;
    assert_eq!(r.status, 403);
    let free_limit: i64 =
        sqlx::query_scalar("select request_limit from plan where plan_id = 'plan_free'")
            .fetch_one(&app.state.db.writer)
            .await
            .unwrap();
    assert_eq!(
        free_limit, 1_000_000,
        "the test harness's default, unchanged"
    );

    for (body, field) in [
        (
            json!({"name": "x", "limit": 0, "window_seconds": 60}),
            "limit",
        ),
        (
            json!({"name": "x", "limit": 10, "window_seconds": 86401}),
            "window_seconds",
        ),
        (
            json!({"name": "Bad Name", "limit": 10, "window_seconds": 60}),
            "name",
        ),
        (json!({"limit": 10, "window_seconds": 60}), "name"),
    ] {
        let r = app
            .api("POST", "/api/v1/plans", Some(&system), Some(body), IP)
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.json()["error"]["field"], json!(field), "{}", r.body);
    }
    let r = app
        .api(
            "POST",
            "/api/v1/plans",
            Some(&system),
            Some(json!({"name": "pro", "limit": 1, "window_seconds": 1})),
            IP,
        )
        .await;
    assert_eq!(r.status, 409, "a taken name: {}", r.body);
    assert_eq!(app.count("plan").await, before);

    let (key_id, _) = app.scoped_key(&org, json!({"keys": "read"})).await;
    let snapshot = app.snapshot().await;
    for body in [
        json!({"rate_limit": 10}),
        json!({"rate_limit": 0, "rate_window_seconds": 60}),
        json!({"plan_id": "plan_nope"}),
    ] {
        let r = app
            .api(
                "PUT",
                &format!("/api/v1/keys/{key_id}/limit"),
                Some(&org_admin),
                Some(body),
                IP,
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
    }
    assert_eq!(app.snapshot().await, snapshot, "nothing written");
}

/// Plans set live keys' limits: a test key of the system organization, even with
/// `plans:write`, changes none (403, nothing written); each change by a live key is on the
/// audit log with the acting key and, for an edit, the settings before and after.
#[tokio::test]
async fn plan_changes_are_audited_and_test_keys_make_none() {
    let app = spawn().await;
    let (system, _org, _) = system_and_org_keys(&app).await;
    let system_id: String = sqlx::query_scalar(
        "select api_key_id from api_key where organization_id = $1 order by created_at limit 1",
    )
    .bind(app::access::ssr::SYSTEM_ORG_ID)
    .fetch_one(&app.state.db.writer)
    .await
    .unwrap();
    let (_, test_key) = app
        .issue_key(
            app::access::ssr::SYSTEM_ORG_ID,
            app::keys::NewKey {
                name: "sandbox".into(),
                category: Some("admin".into()),
                environment: Some("test".into()),
                ..Default::default()
            },
        )
        .await;
    assert!(test_key.starts_with("kw_test_"));
    let before = app.snapshot().await;
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/plans",
            Some(json!({"name": "sneaky", "limit": 10, "window_seconds": 60})),
        ),
        (
            "PATCH",
            "/api/v1/plans/plan_free",
            Some(json!({"limit": 1})),
        ),
        ("DELETE", "/api/v1/plans/plan_pro", None),
    ] {
        let r = app.api(method, path, Some(&test_key), body, IP).await;
        assert_refused(&r, http::StatusCode::FORBIDDEN, "forbidden", path);
        assert!(r.body.contains("test key"), "{}", r.body);
    }
    assert_eq!(app.snapshot().await, before, "nothing written");

    let r = app
        .api(
            "POST",
            "/api/v1/plans",
            Some(&system),
            Some(json!({"name": "team", "limit": 1000, "window_seconds": 3600})),
            IP,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let plan = r.json()["id"].as_str().unwrap().to_string();
    let r = app
        .api(
            "PATCH",
            &format!("/api/v1/plans/{plan}"),
            Some(&system),
            Some(json!({"limit": 2000})),
            IP,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .api(
            "DELETE",
            &format!("/api/v1/plans/{plan}"),
            Some(&system),
            None,
            IP,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let events: Vec<(String, String, String)> = sqlx::query_as(
        "select kind, subject_id, data from domain_event where kind like 'plan.%' order by kind",
    )
    .fetch_all(&app.state.db.writer)
    .await
    .unwrap();
    let kinds: Vec<&str> = events.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(kinds, ["plan.created", "plan.deleted", "plan.updated"]);
    for (kind, subject, data) in &events {
        assert_eq!(subject, &plan, "{kind}");
        let data: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(data["actor"], json!(system_id), "{kind}: {data}");
        if kind == "plan.updated" {
            assert_eq!(data["before"]["limit"], json!(1000), "{data}");
            assert_eq!(data["after"]["limit"], json!(2000), "{data}");
            assert_eq!(data["after"]["name"], json!("team"), "{data}");
        }
    }
}

/// A plan `name` made over REST by `system`, and a trigger `trigger` that races it: `body`
/// runs `timing` (say `before delete on plan`) for each row, returning `returns` (`new` or
/// `old`) on PostgreSQL.
async fn racing_plan(
    app: &TestApp,
    system: &str,
    name: &str,
    trigger: &str,
    timing: &str,
    body: &str,
    returns: &str,
) -> String {
    let r = app
        .api(
            "POST",
            "/api/v1/plans",
            Some(system),
            Some(json!({"name": name, "limit": 5, "window_seconds": 60})),
            IP,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let statements = if on_postgres() {
        vec![
            format!("create function {trigger}() returns trigger language plpgsql as $$ begin {body}; return {returns}; end $$"),
            format!("create trigger {trigger} {timing} for each row execute function {trigger}()"),
        ]
    } else {
        vec![format!(
            "create trigger {trigger} {timing} begin {body}; end"
        )]
    };
    for sql in &statements {
        sqlx::query(sql)
            .execute(&app.state.db.writer)
            .await
            .unwrap();
    }
    r.json()["id"].as_str().unwrap().to_string()
}

/// A plan deleted between the check that it exists and the write that puts a key on it (a
/// trigger deletes it at that moment; the failed write rolls the trigger's delete back too):
/// the answer is the one for a missing plan, 400, not an internal error, and the key is
/// unchanged.
#[tokio::test]
async fn a_plan_deleted_while_a_key_is_put_on_it_is_no_such_plan() {
    let app = spawn().await;
    let (system, org, org_admin) = system_and_org_keys(&app).await;
    let (key_id, _) = app.scoped_key(&org, json!({"keys": "read"})).await;
    let plan_id = racing_plan(
        &app,
        &system,
        "fleeting",
        "kw_test_drop_plan",
        "before update of plan_id on api_key",
        "delete from plan where plan_id = new.plan_id",
        "new",
    )
    .await;
    let db = &app.state.db;
    let read = || async {
        sqlx::query_as::<_, (Option<String>, i64)>(
            "select plan_id, updated_at from api_key where api_key_id = $1",
        )
        .bind(&key_id)
        .fetch_one(&db.reader)
        .await
        .unwrap()
    };
    let before = read().await;
    let r = app
        .api(
            "PUT",
            &format!("/api/v1/keys/{key_id}/limit"),
            Some(&org_admin),
            Some(json!({"plan_id": plan_id})),
            IP,
        )
        .await;
    assert_refused(
        &r,
        http::StatusCode::BAD_REQUEST,
        "invalid_input",
        "no such plan",
    );
    assert_eq!(read().await, before, "the key is unchanged");
    assert!(r.body.contains("no such plan"), "{}", r.body);
}

/// A key put on a plan while the plan is being deleted: the delete is refused like one of a
/// plan with keys (409), with a message that says what happened, and the plan and the key stay
/// as they are.
#[tokio::test]
async fn a_plan_a_key_is_put_on_while_it_is_deleted_stays() {
    let app = spawn().await;
    let (system, org, _) = system_and_org_keys(&app).await;
    let (key_id, _) = app.scoped_key(&org, json!({"keys": "read"})).await;
    // The key is put on the plan at the moment of the delete, after its `not exists` check.
    let plan_id = racing_plan(
        &app,
        &system,
        "contested",
        "kw_test_take_plan",
        "before delete on plan",
        &format!("update api_key set plan_id = old.plan_id where api_key_id = '{key_id}'"),
        "old",
    )
    .await;
    let db = &app.state.db;
    let r = app
        .api(
            "DELETE",
            &format!("/api/v1/plans/{plan_id}"),
            Some(&system),
            None,
            IP,
        )
        .await;
    assert_refused(&r, http::StatusCode::CONFLICT, "conflict", "plan");
    assert!(
        r.body.contains("move its keys to another plan"),
        "{}",
        r.body
    );
    let plan: Option<String> =
        sqlx::query_scalar("select plan_id from api_key where api_key_id = $1")
            .bind(&key_id)
            .fetch_one(&db.reader)
            .await
            .unwrap();
    assert_eq!(plan, None, "the key's change was undone with the delete");
    let left: i64 = sqlx::query_scalar("select count(*) from plan where plan_id = $1")
        .bind(&plan_id)
        .fetch_one(&db.reader)
        .await
        .unwrap();
    assert_eq!(left, 1, "the plan stays");
}

/// route, status, error code, key, client IP.
type LogRow = (String, i64, Option<String>, Option<String>, Option<String>);

#[tokio::test]
async fn every_api_request_is_logged_with_its_key_route_status_and_code() {
    let (app, _org, admin) = with_admin_key().await;
    let admin_id: String = sqlx::query_scalar("select api_key_id from api_key")
        .fetch_one(&app.state.db.writer)
        .await
        .unwrap();
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&admin), None, IP)
            .await
            .status,
        200
    );
    assert_eq!(
        app.api(
            "GET",
            "/api/v1/keys/key_unknown0000000000000",
            Some(&admin),
            None,
            IP
        )
        .await
        .status,
        404
    );
    assert_eq!(
        app.api("GET", "/api/v1/me", None, None, IP).await.status,
        401
    );
    app.wait_for_log_rows(3).await;

    let rows: Vec<LogRow> = sqlx::query_as(
        "select route, status, error_code, api_key_id, client_ip from request_log order by occurred_at, status",
    )
    .fetch_all(&app.state.db.writer)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    let found = |status: i64| rows.iter().find(|r| r.1 == status).unwrap().clone();
    let ok = found(200);
    assert_eq!(ok.0, "/api/v1/me");
    assert_eq!(ok.2, None);
    assert_eq!(ok.3.as_deref(), Some(admin_id.as_str()));
    assert_eq!(ok.4.as_deref(), Some(IP));
    let missing = found(404);
    assert_eq!(
        missing.0, "/api/v1/keys/{id}",
        "the route template, never the raw path"
    );
    assert_eq!(missing.2.as_deref(), Some("not_found"));
    let anonymous = found(401);
    assert_eq!(anonymous.2.as_deref(), Some("key_missing"));
    assert_eq!(anonymous.3, None);

    // The rollup counts the same requests, by status class.
    let by_class: Vec<(String, i64)> = sqlx::query_as(
        "select status_class, cast(sum(requests) as bigint) from usage_minute group by status_class order by status_class",
    )
    .fetch_all(&app.state.db.writer)
    .await
    .unwrap();
    assert_eq!(
        by_class,
        vec![("2xx".to_string(), 1), ("4xx".to_string(), 2)]
    );
}

#[tokio::test]
async fn old_log_rows_go_after_the_retention_period() {
    let (app, _org, admin) = with_admin_key().await;
    app.api("GET", "/api/v1/me", Some(&admin), None, IP).await;
    app.wait_for_log_rows(1).await;
    let now = app::ssr::db::now_ms();
    let deleted = app::usage::log::enforce_retention(&app.state.db, now, 30)
        .await
        .unwrap();
    assert_eq!(deleted, 0, "a fresh row stays");
    let deleted = app::usage::log::enforce_retention(&app.state.db, now + 31 * 86_400_000, 30)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(app.count("request_log").await, 0);
    assert_eq!(app.count("usage_minute").await, 0);
}

/// Retention reaches every organization's rows and those without one (the log has no index
/// on time alone; it walks the organizations), past its 10 000-row statements, and keeps
/// every recent row; the per-minute rollups go the same way, also past their 10 000-row
/// statements.
#[tokio::test]
async fn retention_walks_every_organization_and_keeps_what_is_recent() {
    use app::usage::log::{enforce_retention, write_batch, LogEntry};
    let (db, _dir) = fresh_db().await;
    let now = app::ssr::db::now_ms();
    let old = now - 31 * 86_400_000;
    let entry = |i: usize, org: Option<&str>, at: i64| LogEntry {
        request_id: format!("req_{i:08}"),
        occurred_at: at,
        organization_id: org.map(str::to_string),
        // A rollup row per key and minute: over 10 000 old ones.
        api_key_id: Some(format!("key_{i}")),
        method: "GET".into(),
        route: "/api/v1/me".into(),
        status: 200,
        error_code: None,
        error_message: None,
        latency_us: 1,
        client_ip: None,
        user_agent: None,
    };
    let mut batch = Vec::new();
    for (org, old_rows) in [(Some("org_a"), 10_050), (Some("org_b"), 3), (None, 2)] {
        for _ in 0..old_rows {
            // Spread over minutes (about 60 a minute), so that rollups take several statements.
            batch.push(entry(batch.len(), org, old - 1_000 * batch.len() as i64));
        }
        batch.push(entry(batch.len(), org, now));
    }
    write_batch(&db, &batch).await.unwrap();
    let deleted = enforce_retention(&db, now, 30).await.unwrap();
    assert_eq!(deleted, 10_055);
    let left: Vec<(Option<String>, i64)> = sqlx::query_as(
        "select organization_id, occurred_at from request_log order by organization_id",
    )
    .fetch_all(&db.reader)
    .await
    .unwrap();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.iter().all(|(_, at)| *at == now), "{left:?}");
    let rollups: Vec<i64> = sqlx::query_scalar("select minute from usage_minute")
        .fetch_all(&db.reader)
        .await
        .unwrap();
    assert!(!rollups.is_empty(), "the recent minute's rollups stay");
    assert!(
        rollups.iter().all(|m| *m == now - now.rem_euclid(60_000)),
        "{} rollups, the oldest at {:?}",
        rollups.len(),
        rollups.iter().min()
    );
}

/// Two instances' log writers add to the same per-minute rollups at once, and neither batch
/// is lost: on PostgreSQL, upserts taking the same rows in different orders would deadlock,
/// and one whole batch would be dropped.
#[tokio::test]
async fn log_batches_written_at_once_add_to_the_same_rollups_without_losing_either() {
    let (db, _dir) = fresh_db().await;
    let now = app::ssr::db::now_ms();
    // 400 rollup rows (one per key) in each batch; each batch builds its rollup in its own
    // hash map, so the two write them in unrelated orders.
    let batch = || -> Vec<_> {
        (0..800)
            .map(|i| {
                log_entry(
                    now,
                    "org_race",
                    &format!("key_{}", i % 400),
                    "/api/v1/me",
                    200,
                )
            })
            .collect()
    };
    let (one, two) = (batch(), batch());
    for _ in 0..5 {
        let (a, b) = tokio::join!(
            app::usage::log::write_batch(&db, &one),
            app::usage::log::write_batch(&db, &two)
        );
        a.expect("the first batch is written");
        b.expect("the second batch is written");
    }
    let (rows, requests): (i64, i64) = sqlx::query_as(
        "select count(*), cast(sum(requests) as bigint) from usage_minute where organization_id = 'org_race'",
    )
    .fetch_one(&db.reader)
    .await
    .unwrap();
    assert_eq!((rows, requests), (400, 5 * 2 * 800));
}

#[tokio::test]
async fn metrics_are_served_to_allowed_networks_or_with_the_token() {
    let (app, _org, admin) = with_admin_key().await;
    app.api("GET", "/api/v1/me", Some(&admin), None, IP).await;
    // A method the client made up is counted (and logged) as OTHER, not as sent: a new
    // series per method would grow without end.
    let made_up = format!("MADEUP{}", "X".repeat(2_000));
    let r = app.api(&made_up, "/api/v1/me", None, None, IP).await;
    assert_eq!(r.status, 405, "{}", r.body);
    let r = app.api("GET", "/metrics", None, None, "127.0.0.1").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(
            "keyward_http_requests_total{route=\"/api/v1/me\",method=\"OTHER\",status=\"405\"} 1"
        ),
        "{}",
        r.body
    );
    assert!(!r.body.contains("MADEUP"), "{}", r.body);
    assert!(
        r.body.contains(
            "keyward_http_requests_total{route=\"/api/v1/me\",method=\"GET\",status=\"200\"} 1"
        ),
        "{}",
        r.body
    );
    assert!(r.body.contains(
        "keyward_http_request_duration_seconds_bucket{route=\"/api/v1/me\",le=\"+Inf\"} 2"
    ));
    assert!(r
        .body
        .contains("keyward_rate_limit_decisions_total{decision=\"admitted\"} 1"));
    assert!(r.body.contains("keyward_request_log_lost_total 0"));

    let r = app.api("GET", "/metrics", None, None, "203.0.113.9").await;
    assert_eq!(r.status, 403, "{}", r.body);
    // From loopback, addressed by an IP (a scraper): served; by a name not ours (a page on a
    // rebound name, read by a browser on the host): refused.
    for (host, status) in [
        ("192.0.2.1:3000", 200),
        ("[::1]:3000", 200),
        ("evil.test:3000", 403),
        ("evil.test", 403),
    ] {
        let r = app
            .api_raw(
                "GET",
                "/metrics",
                None,
                None,
                "127.0.0.1",
                &[("host", host)],
            )
            .await;
        assert_eq!(r.status, status, "{host}: {}", r.body);
    }
    // From loopback, but forwarded by a proxy (whoever is behind it): the token is needed.
    for header in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        let r = app
            .api_raw(
                "GET",
                "/metrics",
                None,
                None,
                "127.0.0.1",
                &[(header, "203.0.113.9")],
            )
            .await;
        assert_eq!(r.status, 403, "{header}: {}", r.body);
    }
    // An API key is not the metrics token.
    let r = app
        .api("GET", "/metrics", Some(&admin), None, "203.0.113.9")
        .await;
    assert_eq!(r.status, 403);
    let r = app
        .api(
            "GET",
            "/metrics",
            Some("test-metrics-token"),
            None,
            "203.0.113.9",
        )
        .await;
    assert_eq!(r.status, 200);
}

/// The real binary, serving on a free port with its own SQLite file, and a system key.
struct Binary {
    child: std::process::Child,
    addr: String,
    db: String,
    dir: std::path::PathBuf,
    key: String,
}

async fn start_binary(name: &str) -> Binary {
    let dir = std::env::temp_dir().join(format!("kw-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}/k.db", dir.display());
    let bin = env!("CARGO_BIN_EXE_keyward");
    let leptos = concat!(env!("CARGO_MANIFEST_DIR"), "/../Leptos.toml");
    let env = |c: &mut std::process::Command| {
        c.env("KEYWARD_DATABASE_URL", &db)
            .env("KEYWARD_SECRET", "sigterm-test-secret-sigterm-test-secret")
            .env("KEYWARD_LOG", "warn")
            .env("KEYWARD_LEPTOS_CONFIG", leptos);
    };
    let mut migrate = std::process::Command::new(bin);
    env(&mut migrate);
    assert!(migrate.arg("migrate").status().unwrap().success());
    let mut create = std::process::Command::new(bin);
    env(&mut create);
    let out = create
        .args(["create-key", "--org", "system", "--name", "load"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve = std::process::Command::new(bin);
    env(&mut serve);
    let child = serve
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-password",
            "sigterm passphrase",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Binary {
        child,
        addr,
        db,
        dir,
        key,
    }
}

fn signal(child: &std::process::Child, name: &str) {
    assert!(std::process::Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

/// A client that never finishes its request cannot hold a stop hostage: the binary exits
/// after the drain; and a second signal exits at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_client_cannot_hold_the_stop_and_a_second_signal_exits_at_once() {
    if on_postgres() {
        return;
    }
    use tokio::io::AsyncWriteExt;
    for twice in [false, true] {
        let Binary {
            mut child,
            addr,
            dir,
            ..
        } = start_binary(if twice { "twice" } else { "stuck" }).await;
        // Headers promise a body that never comes.
        let mut stuck = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let req = format!(
            "POST /rpc/sign_in HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nemail="
        );
        stuck.write_all(req.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        signal(&child, "-TERM");
        if twice {
            tokio::time::sleep(Duration::from_millis(500)).await;
            signal(&child, "-TERM");
        }
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        let took = started.elapsed();
        let _ = std::fs::remove_dir_all(&dir);
        if twice {
            assert!(
                took < Duration::from_secs(5),
                "a second signal exits at once: {took:?}"
            );
            assert_eq!(status.code(), Some(130), "{status:?}");
        } else {
            assert!(
                took >= Duration::from_secs(9) && took < Duration::from_secs(30),
                "the stop waited for the drain, then went on: {took:?}"
            );
            assert!(status.success(), "{status:?}");
        }
        drop(stuck);
    }
}

/// The real binary under load gets SIGTERM: every request it answered has its log row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_loses_no_log_row() {
    if on_postgres() {
        // The binary test runs once, on SQLite; the log writer is the same code on both.
        return;
    }
    let Binary {
        mut child,
        addr,
        db,
        dir,
        key,
    } = start_binary("sigterm").await;
    let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (addr, key, answered) = (addr.clone(), key.clone(), answered.clone());
        clients.push(tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else { break };
                let req = format!("GET /api/v1/me HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n");
                if s.write_all(req.as_bytes()).await.is_err() {
                    break;
                }
                let mut buf = Vec::new();
                if s.read_to_end(&mut buf).await.is_err() {
                    break;
                }
                if buf.starts_with(b"HTTP/1.1 200") || buf.starts_with(b"HTTP/1.1 429") {
                    answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                } else if buf.is_empty() {
                    break;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&child, "-TERM");
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");
    for c in clients {
        let _ = c.await;
    }
    let answered = answered.load(std::sync::atomic::Ordering::SeqCst);
    assert!(answered > 50, "the load ran: {answered} answers");

    let db = app::ssr::Db::connect(&db).await.unwrap();
    let rows: i64 =
        sqlx::query_scalar("select count(*) from request_log where route = '/api/v1/me'")
            .fetch_one(&db.reader)
            .await
            .unwrap();
    db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(rows as u64, answered, "every answered request has its row");
}

#[tokio::test]
async fn chart_buckets_sum_to_the_logged_requests_with_zero_gaps_and_follow_the_range() {
    use app::usage::stats::{series, Filter, Reader};
    use app::usage::Range;
    let app = spawn().await;
    let db = &app.state.db;
    let now = app::ssr::db::now_ms();
    let org = "org_chart";
    let mut rows = Vec::new();
    for _ in 0..3 {
        rows.push(log_entry(now - 5 * 60_000, org, "key_a", "/api/v1/me", 200));
    }
    rows.push(log_entry(now - 5 * 60_000, org, "key_a", "/api/v1/me", 429));
    rows.push(log_entry(
        now - 30 * 60_000,
        org,
        "key_b",
        "/api/v1/keys",
        500,
    ));
    rows.push(log_entry(
        now - 30 * 60_000,
        org,
        "key_b",
        "/api/v1/keys",
        404,
    ));
    rows.push(log_entry(
        now - 2 * 3_600_000,
        org,
        "key_a",
        "/api/v1/me",
        200,
    ));
    rows.push(log_entry(
        now - 60_000,
        "org_other",
        "key_c",
        "/api/v1/me",
        200,
    ));
    app::usage::log::write_batch(db, &rows).await.unwrap();
    let viewer = Reader::new(org, "usr_viewer");
    let viewer = &viewer;
    let chart = |range, filter: Filter<'static>, tz| async move {
        series(db, viewer, range, &filter, now, tz).await
    };

    let hour = chart(Range::Hour, Filter::default(), 0).await.unwrap();
    assert_eq!(hour.starts.len(), 60);
    assert_eq!(hour.ok.len(), 60);
    assert_eq!(
        hour.total, 6,
        "the row two hours ago and the other org's are out"
    );
    let sum: i64 = [
        &hour.ok,
        &hour.client_errors,
        &hour.rate_limited,
        &hour.server_errors,
    ]
    .iter()
    .flat_map(|v| v.iter())
    .sum();
    assert_eq!(sum, hour.total);
    let (start, end) = (hour.starts[0], hour.starts[59] + hour.bucket_ms);
    let logged: i64 = sqlx::query_scalar(
        "select count(*) from request_log where organization_id = $1 and occurred_at >= $2 and occurred_at < $3",
    )
    .bind(org)
    .bind(start)
    .bind(end)
    .fetch_one(&db.writer)
    .await
    .unwrap();
    assert_eq!(
        hour.total, logged,
        "buckets sum to the logged requests in the range, exactly"
    );
    let at = |t: i64| ((t - start) / hour.bucket_ms) as usize;
    let five = at(now - 5 * 60_000);
    assert_eq!((hour.ok[five], hour.rate_limited[five]), (3, 1));
    let thirty = at(now - 30 * 60_000);
    assert_eq!(
        (hour.server_errors[thirty], hour.client_errors[thirty]),
        (1, 1)
    );
    let busy: Vec<usize> = (0..60)
        .filter(|i| {
            hour.ok[*i] + hour.client_errors[*i] + hour.rate_limited[*i] + hour.server_errors[*i]
                > 0
        })
        .collect();
    assert_eq!(busy, vec![thirty, five], "every other bucket is a zero");

    let day = chart(Range::Day, Filter::default(), 0).await.unwrap();
    assert_eq!((day.starts.len(), day.total), (96, 7));
    let month = chart(Range::Month, Filter::default(), 120).await.unwrap();
    assert_eq!((month.starts.len(), month.total), (120, 7));
    assert_eq!(
        (month.starts[0] + 120 * 60_000) % (6 * 3_600_000),
        0,
        "6-hour buckets start at local midnight"
    );

    let only_b = chart(
        Range::Hour,
        Filter {
            key_id: Some("key_b"),
            route: None,
        },
        0,
    )
    .await
    .unwrap();
    assert_eq!(only_b.total, 2);
    let only_me = chart(
        Range::Day,
        Filter {
            key_id: None,
            route: Some("/api/v1/me"),
        },
        0,
    )
    .await
    .unwrap();
    assert_eq!(only_me.total, 5);
    assert_eq!(
        hour.routes,
        vec!["/api/v1/keys".to_string(), "/api/v1/me".to_string()]
    );

    let bad = chart(Range::Hour, Filter::default(), 10_000).await;
    assert_eq!(bad.unwrap_err().code, app::error::ErrorCode::InvalidInput);
}

#[tokio::test]
async fn the_chart_of_another_organization_is_refused() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let bob = app.user("bob@example.org", None).await;
    let bob_org = app.org_of(&bob).await;
    let ann_org = app.org_of(&ann).await;
    let mut browser = app.signed_in("ann@example.org").await;
    let r = app
        .rpc(
            &mut browser,
            "usage_series",
            &[("organization_id", &bob_org), ("range", "1h")],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = app
        .rpc(
            &mut browser,
            "usage_series",
            &[("organization_id", &ann_org), ("range", "2h")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"]["field"], json!("range"));
    let r = app
        .rpc(
            &mut browser,
            "usage_series",
            &[("organization_id", &ann_org), ("range", "7d")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["starts"].as_array().unwrap().len(), 168);
}

/// Opens `/events/usage` for `org` as `browser`; the response (its body is the stream).
async fn open_events(app: &TestApp, browser: &Browser, org: &str) -> axum::response::Response {
    use tower::ServiceExt;
    let mut req = http::Request::get(format!("/events/usage?organization_id={org}"))
        .header(http::header::HOST, HOST);
    if let Some(c) = browser.header() {
        req = req.header(http::header::COOKIE, c);
    }
    app.router
        .clone()
        .oneshot(req.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap()
}

/// Waits up to `within` for a `usage` event naming `org` on an open stream.
async fn next_usage_event(response: axum::response::Response, org: &str, within: Duration) -> bool {
    use http_body_util::BodyExt;
    let mut body = response.into_body();
    let deadline = tokio::time::Instant::now() + within;
    let mut seen = String::new();
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, body.frame()).await {
        if let Some(data) = frame.data_ref() {
            seen.push_str(&String::from_utf8_lossy(data));
            if seen.contains(&format!("event: usage\ndata: {org}")) {
                return true;
            }
        }
    }
    false
}

#[tokio::test]
async fn live_events_need_a_session_with_usage_read_and_announce_new_requests() {
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let bob = app.user("bob@example.org", None).await;
    let (ann_org, bob_org) = (app.org_of(&ann).await, app.org_of(&bob).await);
    let (_, key) = app.admin_key(&ann_org).await;

    let r = open_events(&app, &Browser::default(), &ann_org).await;
    assert_eq!(r.status(), 401);
    let browser = app.signed_in("ann@example.org").await;
    let r = open_events(&app, &browser, &bob_org).await;
    assert_eq!(r.status(), 403, "another organization's feed");

    let stream = open_events(&app, &browser, &ann_org).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers()[http::header::CONTENT_TYPE],
        "text/event-stream"
    );
    let waiting = tokio::spawn({
        let org = ann_org.clone();
        async move { next_usage_event(stream, &org, Duration::from_secs(2)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&key), None, IP)
            .await
            .status,
        200
    );
    assert!(
        waiting.await.unwrap(),
        "the open feed heard of the request within 2 s"
    );
}

/// The live feed reconnecting is the page's doing, not the user's: it does not push back the
/// session's idle deadline (an unattended usage tab ends like any other).
#[tokio::test]
async fn a_live_feed_does_not_keep_an_idle_session_alive() {
    let app = spawn_with(|c| c.session_idle = Duration::from_millis(6000)).await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let mut browser = app.signed_in("ann@example.org").await;
    let t0 = tokio::time::Instant::now();
    let at = |ms: u64| tokio::time::sleep_until(t0 + Duration::from_millis(ms));
    // Reconnects every 1.6 s (a user's request past 1.5 s would push the deadline back):
    // served, and the session is not saved again (no cookie sent)…
    for i in 1..=3 {
        at(1_600 * i).await;
        let r = open_events(&app, &browser, &org).await;
        assert_eq!(r.status(), 200);
        assert!(
            !r.headers().contains_key(http::header::SET_COOKIE),
            "a reconnection refreshed the session"
        );
    }
    // A feed opened now ends, cleanly, when the session does (6 s after sign-in, just before
    // t0), not a minute later.
    let r = open_events(&app, &browser, &org).await;
    assert_eq!(r.status(), 200);
    let ended = {
        use http_body_util::BodyExt;
        let mut body = r.into_body();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), body.frame()).await {
                Ok(Some(Ok(_))) => continue,
                Ok(None) => break Ok(tokio::time::Instant::now()),
                other => break Err(format!("{other:?}")),
            }
        }
    };
    let ended = ended.expect("the feed ended cleanly");
    let deadline = t0 + Duration::from_millis(6_000);
    assert!(
        ended + Duration::from_millis(500) >= deadline,
        "the feed ended {:?} before the session",
        deadline - ended
    );
    assert!(
        ended < deadline + Duration::from_millis(1_500),
        "the feed outlived the session by {:?}",
        ended - deadline
    );
    // …and the session still ends 6 s after the user's last request.
    at(6_800).await;
    assert_eq!(open_events(&app, &browser, &org).await.status(), 401);
    assert_eq!(
        app.rpc(&mut browser, "current_user", &[]).await.json(),
        serde_json::Value::Null
    );
}

/// One user holds at most `FEEDS_PER_USER` live feeds open on an instance, and the instance
/// `FEEDS_PER_INSTANCE` in all; a closed one frees its place.
#[tokio::test]
async fn a_user_holds_a_bounded_number_of_live_feeds() {
    use keyward_server::live::FEEDS_PER_USER;
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let browser = app.signed_in("ann@example.org").await;
    let mut open = Vec::new();
    for _ in 0..FEEDS_PER_USER {
        let r = open_events(&app, &browser, &org).await;
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let r = open_events(&app, &browser, &org).await;
    assert_eq!(r.status(), 429, "one feed too many");
    assert!(r.headers().contains_key(http::header::RETRY_AFTER));
    // Another user is not held back by Ann's feeds.
    let bob = app.user("bob@example.org", None).await;
    let bob_org = app.org_of(&bob).await;
    let bob_browser = app.signed_in("bob@example.org").await;
    assert_eq!(
        open_events(&app, &bob_browser, &bob_org).await.status(),
        200
    );
    drop(open.pop());
    assert_eq!(open_events(&app, &browser, &org).await.status(), 200);

    // The instance's cap, whoever holds the feeds: full, a new feed is refused 503; a place
    // given back is taken again.
    use keyward_server::live::OpenFeeds;
    let instance = app.state.db.caches.get::<OpenFeeds>().instance.clone();
    let room = instance.available_permits() as u32;
    let taken = instance.clone().acquire_many_owned(room).await.unwrap();
    let r = open_events(&app, &bob_browser, &bob_org).await;
    assert_eq!(r.status(), 503, "the instance is full");
    assert!(r.headers().contains_key(http::header::RETRY_AFTER));
    drop(taken);
    assert_eq!(
        open_events(&app, &bob_browser, &bob_org).await.status(),
        200
    );
}

#[tokio::test]
async fn live_events_reach_viewers_on_another_instance() {
    if !on_postgres() {
        // Several instances means PostgreSQL (LISTEN/NOTIFY); SQLite serves one instance.
        return;
    }
    let app = spawn().await;
    let ann = app.user("ann@example.org", None).await;
    let org = app.org_of(&ann).await;
    let (_, key) = app.admin_key(&org).await;
    let other = app.second_instance();
    let browser = app.signed_in("ann@example.org").await;
    // Let the other instance's listener connect.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stream = open_events(&other, &browser, &org).await;
    assert_eq!(stream.status(), 200);
    let waiting = tokio::spawn({
        let org = org.clone();
        async move { next_usage_event(stream, &org, Duration::from_secs(2)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        app.api("GET", "/api/v1/me", Some(&key), None, IP)
            .await
            .status,
        200
    );
    assert!(
        waiting.await.unwrap(),
        "a request served by one instance reaches the other's viewer"
    );
}

#[tokio::test]
async fn the_summary_counts_errors_ranks_keys_and_routes_and_reports_latency_percentiles() {
    use app::usage::stats::{summary, Filter, Reader};
    use app::usage::Range;
    let app = spawn().await;
    let db = &app.state.db;
    let now = app::ssr::db::now_ms();
    let org = "org_sum";
    let mut rows = Vec::new();
    for i in 0..100i64 {
        let mut e = log_entry(
            now - 10 * 60_000,
            org,
            if i < 70 { "key_a" } else { "key_b" },
            "/api/v1/me",
            200,
        );
        e.latency_us = (i + 1) * 1000; // 1..100 ms
        if i >= 90 {
            e.status = 429;
            e.error_code = Some("rate_limited".into());
            e.route = "/api/v1/keys".into();
        }
        rows.push(e);
    }
    app::usage::log::write_batch(db, &rows).await.unwrap();
    let report = |org, range, filter: Filter<'static>| async move {
        summary(db, &Reader::new(org, "usr_viewer"), range, &filter, now).await
    };
    let s = report(org, Range::Hour, Filter::default()).await.unwrap();
    assert_eq!((s.requests, s.errors), (100, 10));
    assert!((s.error_rate - 0.1).abs() < 1e-9);
    assert_eq!(
        (s.p50_ms, s.p95_ms, s.p99_ms),
        (50.0, 95.0, 99.0),
        "nearest rank"
    );
    assert_eq!(s.top_keys[0].name, "key_a");
    assert_eq!((s.top_keys[0].requests, s.top_keys[1].requests), (70, 30));
    assert_eq!(s.top_routes[0].name, "/api/v1/me");
    assert_eq!(s.top_error_codes[0].name, "rate_limited");
    assert_eq!(s.top_error_codes[0].requests, 10);
    assert_eq!(s.recent_errors.len(), 10);
    assert!(s.recent_errors.iter().all(|e| e.status == 429));
    let b = report(
        org,
        Range::Hour,
        Filter {
            key_id: Some("key_b"),
            route: None,
        },
    )
    .await
    .unwrap();
    assert_eq!((b.requests, b.errors), (30, 10));
    let other = report("org_nothing", Range::Hour, Filter::default())
        .await
        .unwrap();
    assert_eq!((other.requests, other.p99_ms), (0, 0.0));
}

#[tokio::test]
async fn usage_is_readable_over_rest_for_the_key_s_own_organization() {
    let (app, _org, admin) = with_admin_key().await;
    for _ in 0..3 {
        assert_eq!(
            app.api("GET", "/api/v1/me", Some(&admin), None, IP)
                .await
                .status,
            200
        );
    }
    app.wait_for_log_rows(3).await;
    let r = app
        .api("GET", "/api/v1/usage?range=1h", Some(&admin), None, IP)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["series"]["starts"].as_array().unwrap().len(), 60);
    assert_eq!(v["series"]["total"], json!(3));
    assert_eq!(v["summary"]["requests"], json!(3));
    let r = app
        .api("GET", "/api/v1/usage?range=2d", Some(&admin), None, IP)
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["field"], json!("range"));
    // Another organization's key sees only its own organization's requests.
    let bob = app.user("bob@example.org", None).await;
    let bob_org = app.org_of(&bob).await;
    let (_, bob_key) = app.admin_key(&bob_org).await;
    let r = app
        .api("GET", "/api/v1/usage?range=1h", Some(&bob_key), None, IP)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["summary"]["requests"], json!(0), "{}", r.body);
}

/// A declared proxy's requests are forwarded ones, with or without forwarding headers (a
/// proxy that sends none would otherwise pass every client off as itself, on loopback), and
/// need the token; a direct client on a dual-stack listener (an IPv4-mapped peer) is the IPv4
/// address it maps.
#[tokio::test]
async fn metrics_treat_a_declared_proxy_as_forwarding_and_read_mapped_peers_as_ipv4() {
    let app = spawn_with(|c| {
        c.trusted_proxies = vec!["127.0.0.2/32".parse().unwrap()];
    })
    .await;
    let r = app.api("GET", "/metrics", None, None, "127.0.0.2").await;
    assert_refused(
        &r,
        axum::http::StatusCode::FORBIDDEN,
        "forbidden",
        "a declared proxy",
    );
    let r = app
        .api(
            "GET",
            "/metrics",
            Some("test-metrics-token"),
            None,
            "127.0.0.2",
        )
        .await;
    assert_eq!(r.status, 200, "with the token: {}", r.body);
    let r = app.api("GET", "/metrics", None, None, "127.0.0.1").await;
    assert_eq!(r.status, 200, "loopback, not a proxy: {}", r.body);
    let r = app
        .api("GET", "/metrics", None, None, "::ffff:127.0.0.1")
        .await;
    assert_eq!(r.status, 200, "an IPv4-mapped loopback peer: {}", r.body);
}

/// Looking at a key's use of its limit (the key page, `GET /api/v1/keys/{id}/usage`) never
/// holds the key's requests: with every reader connection taken, the look waits for one, and
/// the key's requests are decided meanwhile (an attacker-review finding: the look held the
/// key's limiter lock across its read, so a viewer could stall a production key).
#[tokio::test]
async fn looking_at_a_key_s_use_never_holds_its_requests() {
    use app::usage::window::Limit;
    let app = spawn().await;
    let limiter = app::usage::ssr::RateLimiter::of(&app.state).unwrap();
    let (key, limit) = ("key_watched", Limit::new(1_000, 3_600));
    assert!(limiter.check(key, limit).await.unwrap().admitted);
    let held = hold_every_connection(&app.state.db.reader).await;
    let look = limiter.usage(key, limit, app::ssr::db::now_ms());
    tokio::pin!(look);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut look)
            .await
            .is_err(),
        "the look waits for a reader connection"
    );
    let decided = tokio::time::timeout(Duration::from_secs(2), limiter.check(key, limit))
        .await
        .expect("the key's request does not wait for the look")
        .unwrap();
    assert!(decided.admitted);
    drop(held);
    let (used, _) = tokio::time::timeout(Duration::from_secs(5), look)
        .await
        .expect("the look reads once a connection is free")
        .unwrap();
    assert_eq!(used, 2, "both requests, and none of the unspent lease");
}

/// The start-up warning's condition: a trusted proxy inside the metrics networks while no
/// token is set (a scraper on the proxy's address is then refused).
#[test]
fn a_trusted_proxy_inside_the_metrics_networks_without_a_token_is_found() {
    use keyward_server::metrics::proxy_in_allowed_networks;
    let mut c = test_config();
    c.metrics_allow = vec!["127.0.0.0/8".parse().unwrap()];
    c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    c.metrics_token = None;
    assert_eq!(
        proxy_in_allowed_networks(&c),
        Some("127.0.0.1/32".parse().unwrap())
    );
    c.metrics_token = Some("a token".into());
    assert_eq!(proxy_in_allowed_networks(&c), None, "the token opens it");
    c.metrics_token = None;
    c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    assert_eq!(proxy_in_allowed_networks(&c), None, "elsewhere");
}

/// A service checking a key through `POST /api/v1/keys/verify` spends that key's limit, as
/// the key's own requests do (one limiter for both, so together they never pass it), and is
/// told where the key stands; past the limit the check answers `rate_limited`. The key's
/// owners hear of 80 % as they would from its own traffic.
#[tokio::test]
async fn a_verification_counts_against_the_checked_key_s_limit() {
    let (app, org, admin) = with_admin_key().await;
    let (key_id, key) = app.scoped_key(&org, json!({"keys": "read"})).await;
    app.limit_key(IP, &admin, &key_id, 10, 3600).await;
    let check = || {
        let (app, admin, key) = (&app, admin.clone(), key.clone());
        async move {
            let r = app
                .api(
                    "POST",
                    "/api/v1/keys/verify",
                    Some(&admin),
                    Some(json!({ "key": key })),
                    IP,
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            r.json()
        }
    };
    for remaining in (3..=9).rev() {
        let v = check().await;
        assert_eq!(v["valid"], true, "{v}");
        assert_eq!(v["ratelimit"]["limit"], 10, "{v}");
        assert_eq!(v["ratelimit"]["remaining"], remaining, "{v}");
    }
    // The key's own request takes the eighth place (80 %)…
    let r = app.api("GET", "/api/v1/me", Some(&key), None, IP).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(header(&r, "ratelimit-remaining").as_deref(), Some("2"));
    for remaining in [1, 0] {
        let v = check().await;
        assert_eq!(
            (&v["valid"], &v["ratelimit"]["remaining"]),
            (&json!(true), &json!(remaining)),
            "{v}"
        );
    }
    // …and past the limit a check is refused, saying when to try again.
    let v = check().await;
    assert_eq!(v["valid"], false, "{v}");
    assert_eq!(v["code"], "rate_limited", "{v}");
    assert_eq!(v["key_id"], key_id.as_str(), "{v}");
    assert_eq!(v["ratelimit"]["remaining"], 0, "{v}");
    assert!(v["ratelimit"]["reset"].as_u64().unwrap() > 0, "{v}");
    let r = app.api("GET", "/api/v1/me", Some(&key), None, IP).await;
    assert_eq!(r.status, 429, "the key's own requests share the limit");
    // An unknown key spends nothing and says nothing of a limit.
    let unknown = app::keys::format::generate(app::keys::format::Environment::Live);
    let r = app
        .api(
            "POST",
            "/api/v1/keys/verify",
            Some(&admin),
            Some(json!({ "key": unknown })),
            IP,
        )
        .await;
    assert_eq!(r.json()["code"], "key_unknown", "{}", r.body);
    assert!(r.json().get("ratelimit").is_none(), "{}", r.body);
    // The owners were told of 80 %, 90 % and 100 % (written off the request path).
    let mut told = 0;
    for _ in 0..100 {
        told =
            sqlx::query_scalar::<_, i64>("select count(*) from notification where kind = 'usage'")
                .fetch_one(&app.state.db.writer)
                .await
                .unwrap();
        if told >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(told, 3, "80, 90 and 100 %");
}
