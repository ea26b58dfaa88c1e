//! Test harness: a fresh, migrated database per test (SQLite file, or a new PostgreSQL
//! database when `KEYWARD_TEST_DATABASE_URL` points at a server), the real router, and
//! helpers to call it like a browser would. No socket: requests go through
//! `tower::ServiceExt::oneshot`.
#![allow(dead_code)]

use app::ssr::{config::Config, AppState, Db};
use axum::body::Body;
use axum::Router;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use leptos::prelude::LeptosOptions;
#[allow(unused_imports)]
use serde_json::json;
use std::time::Duration;
use tower::ServiceExt;

pub const ORIGIN: &str = "http://127.0.0.1:3000";
/// The `Host` every test request carries unless it sets its own.
pub const HOST: &str = "127.0.0.1:3000";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    _dir: Option<TempDir>,
}

/// A directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique(prefix: &str) -> String {
    use rand::Rng;
    format!("{prefix}{:016x}", rand::thread_rng().gen::<u64>())
}

/// Whether the suite runs on PostgreSQL (`KEYWARD_TEST_DATABASE_URL`), else SQLite.
pub fn on_postgres() -> bool {
    std::env::var("KEYWARD_TEST_DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"))
}

/// Takes every connection of `pool`, held until the returned connections are dropped.
pub async fn hold_every_connection(
    pool: &sqlx::AnyPool,
) -> Vec<sqlx::pool::PoolConnection<sqlx::Any>> {
    let mut held = Vec::new();
    for _ in 0..pool.options().get_max_connections() {
        held.push(pool.acquire().await.unwrap());
    }
    held
}

/// Asserts that every connection of `pool` can be taken (5 s each): whatever is waiting
/// meanwhile holds none.
pub async fn assert_every_connection_free(pool: &sqlx::AnyPool, what: &str) {
    let n = pool.options().get_max_connections();
    let mut taken = Vec::new();
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_secs(5), pool.acquire()).await {
            Ok(Ok(connection)) => taken.push(connection),
            other => panic!(
                "{what}: {} of {n} connections taken, then {:?}",
                taken.len(),
                other.map(|r| r.err())
            ),
        }
    }
}

/// Runs `request` while a transaction holds `organization_id`'s role lock (PostgreSQL):
/// asserts that it waits for the lock (1.5 s), then releases the lock and returns its reply.
pub async fn waits_for_role_lock(
    app: &TestApp,
    organization_id: &str,
    request: impl std::future::Future<Output = Reply>,
) -> Reply {
    let mut change = app.state.db.writer.begin().await.unwrap();
    app::access::roles::lock(&mut change, organization_id)
        .await
        .unwrap();
    tokio::pin!(request);
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(1500), &mut request)
            .await
            .is_err(),
        "the request waits for the change holding the organization"
    );
    change.commit().await.unwrap();
    request.await
}

/// Waits (up to 20 s) until some transaction of the test's PostgreSQL database waits for a
/// row lock: the request under test reached the lock it is meant to wait for.
pub async fn until_a_lock_wait(app: &TestApp) {
    until_a_lock_wait_on(&app.state.db).await
}

/// [`until_a_lock_wait`] on a database without an app.
pub async fn until_a_lock_wait_on(db: &Db) {
    for _ in 0..400 {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
             where datname = current_database() and wait_event_type = 'Lock'",
        )
        .fetch_one(&db.reader)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no transaction came to wait for a lock");
}

/// Makes the database refuse to record events of `kind` (a trigger), as a collision would
/// refuse the transaction recording one: SQLite aborts (an internal error), PostgreSQL raises
/// a serialization failure (a collision, 503). [`allow_events`] takes it away.
pub async fn refuse_events(app: &TestApp, kind: &str) {
    refuse_rows(
        app,
        "refuse_event",
        "insert on domain_event",
        &format!("new.kind = '{kind}'"),
        Some("40001"),
    )
    .await;
}

/// Makes the database refuse `operation` (`insert on domain_event`, `update on api_key`) of
/// every row for which `when` (SQL over `new`, the same on both backends) holds, with a
/// trigger named `name`: SQLite aborts; PostgreSQL raises `errcode` (`None`: a plain error).
pub async fn refuse_rows(
    app: &TestApp,
    name: &str,
    operation: &str,
    when: &str,
    errcode: Option<&str>,
) {
    let refuse = if on_postgres() {
        let errcode = errcode
            .map(|c| format!(" using errcode = '{c}'"))
            .unwrap_or_default();
        vec![
            format!(
                "create function {name}() returns trigger language plpgsql as $$
                 begin raise exception 'refused by the test'{errcode}; end $$"
            ),
            format!(
                "create trigger {name} before {operation} for each row
                 when ({when}) execute function {name}()"
            ),
        ]
    } else {
        vec![format!(
            "create trigger {name} before {operation}
             when ({when}) begin select raise(abort, 'refused by the test'); end"
        )]
    };
    for statement in refuse {
        sqlx::query(&statement)
            .execute(&app.state.db.writer)
            .await
            .unwrap();
    }
}

/// Takes away what [`refuse_events`] set.
pub async fn allow_events(app: &TestApp) {
    let allow = if on_postgres() {
        "drop trigger refuse_event on domain_event"
    } else {
        "drop trigger refuse_event"
    };
    sqlx::query(allow)
        .execute(&app.state.db.writer)
        .await
        .unwrap();
}

/// Opens a fresh database on the backend under test and migrates it.
pub async fn fresh_db() -> (Db, Option<TempDir>) {
    let (db, dir) = empty_db().await;
    db.migrate().await.expect("migrations");
    (db, dir)
}

/// A new database of the backend under test, with no migration applied.
pub async fn empty_db() -> (Db, Option<TempDir>) {
    match std::env::var("KEYWARD_TEST_DATABASE_URL") {
        Ok(admin_url) if admin_url.starts_with("postgres") => {
            sqlx::any::install_default_drivers();
            let name = unique("kw_test_");
            let admin = sqlx::AnyPool::connect(&admin_url)
                .await
                .expect("connect to the test PostgreSQL");
            sqlx::query(&format!("create database {name}"))
                .execute(&admin)
                .await
                .expect("create test database");
            admin.close().await;
            let (base, _) = admin_url
                .rsplit_once('/')
                .expect("postgres URL with a database");
            let db = Db::connect(&format!("{base}/{name}"))
                .await
                .expect("connect test database");
            (db, None)
        }
        _ => {
            let dir = std::env::temp_dir().join(unique("keyward-test-"));
            std::fs::create_dir_all(&dir).unwrap();
            let db = Db::connect(&format!("sqlite://{}/keyward.db", dir.display()))
                .await
                .expect("open sqlite");
            (db, Some(TempDir(dir)))
        }
    }
}

pub fn test_config() -> Config {
    Config {
        public_origin: url::Url::parse(ORIGIN).unwrap(),
        signup_open: true,
        session_idle: Duration::from_secs(1800),
        session_absolute: Duration::from_secs(12 * 3600),
        sign_in_failures_per_hour: 100,
        invitations_per_hour: 500,
        // Tests sign in many times from one (unknown) address; the limit has its own test.
        auth_attempts_per_ip_per_minute: 100_000,
        allowed_hosts: vec![HOST.to_string()],
        log_retention_days: 30,
        metrics_allow: vec!["127.0.0.0/8".parse().unwrap()],
        trusted_proxies: vec![],
        metrics_token: Some("test-metrics-token".into()),
        smtp_url: None,
        mail_from: "Keyward <keyward@test.invalid>".into(),
        secret: [42u8; 32],
        webauthn_rp_id: "localhost".into(),
        webauthn_origin: url::Url::parse("http://localhost:3000").unwrap(),
        secret_file: None,
    }
}

/// A fresh app with one user and an admin-preset key in their organization:
/// (app, organization id, key).
pub async fn with_admin_key() -> (TestApp, String, String) {
    let app = spawn().await;
    let user = app.user("ann@example.org", None).await;
    let org = app.org_of(&user).await;
    let (_, key) = app.admin_key(&org).await;
    (app, org, key)
}

pub async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_site(
        adjust,
        LeptosOptions::builder().output_name("keyward").build(),
    )
    .await
}

/// A fresh app serving its bundle from `options.site_root`.
pub async fn spawn_site(adjust: impl FnOnce(&mut Config), options: LeptosOptions) -> TestApp {
    let (db, dir) = fresh_db().await;
    // Tests call the API many times with one key; the rate-limit tests give their keys their
    // own limits (an override) and leave this alone.
    sqlx::query("update plan set request_limit = 1000000 where plan_id = 'plan_free'")
        .execute(&db.writer)
        .await
        .expect("raise the default plan for tests");
    let mut config = test_config();
    adjust(&mut config);
    let domains = keyward_server::boot::domains(&db, &config).expect("domains");
    let state = AppState::new(db, config, options, domains);
    let router = keyward_server::router(state.clone());
    // The background workers, as `keyward serve` runs them (they end with the test's runtime).
    std::mem::forget(keyward_server::workers::Workers::start(&state));
    TestApp {
        state,
        router,
        _dir: dir,
    }
}

/// A response, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `code` of an `{"error":{"code","message"}}` body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// `name=value` of the session cookie this response sets, if any.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(|v| v.split(';').next().unwrap().to_string())
    }

    pub fn set_cookie_header(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }
}

/// A cookie jar of one browser.
#[derive(Default, Clone)]
pub struct Browser {
    pub cookies: Vec<(String, String)>,
    /// The address the browser calls from (none: the request carries no peer address).
    pub ip: Option<String>,
    /// The `User-Agent` it sends (none: no header).
    pub user_agent: Option<String>,
    /// Its server function calls say the page made them by itself (`x-keyward-background`).
    pub background: bool,
    /// The `Content-Type` of its server function calls (none: a form's).
    pub content_type: Option<&'static str>,
}

impl Browser {
    /// The console session id this browser holds (the cookie of a plain-HTTP test server).
    pub fn session_id(&self) -> tower_sessions::session::Id {
        self.cookies
            .iter()
            .find(|(name, _)| name == "keyward_session")
            .map(|(_, value)| value.parse().expect("a session id"))
            .expect("a session cookie")
    }

    pub fn header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            None
        } else {
            Some(
                self.cookies
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        }
    }

    pub fn absorb(&mut self, reply: &Reply) {
        for v in reply
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let pair = v.split(';').next().unwrap();
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let removed = v.to_ascii_lowercase().contains("max-age=0");
            self.cookies.retain(|(k, _)| k != name);
            if !removed && !value.is_empty() {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl TestApp {
    pub async fn send(&self, mut request: Request<Body>) -> Reply {
        if !request.headers().contains_key(header::HOST) {
            request
                .headers_mut()
                .insert(header::HOST, http::HeaderValue::from_static(HOST));
        }
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible router");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Calls a server function the way the hydrated console does: same-origin POST, URL-encoded.
    pub async fn rpc(&self, browser: &mut Browser, endpoint: &str, form: &[(&str, &str)]) -> Reply {
        let body = form_body(form);
        let mut req = Request::post(format!("/rpc/{endpoint}"))
            .header(
                header::CONTENT_TYPE,
                browser
                    .content_type
                    .unwrap_or("application/x-www-form-urlencoded"),
            )
            .header(header::ORIGIN, ORIGIN)
            .header("sec-fetch-site", "same-origin")
            .header(header::ACCEPT, "application/json");
        if let Some(c) = browser.header() {
            req = req.header(header::COOKIE, c);
        }
        if let Some(agent) = &browser.user_agent {
            req = req.header(header::USER_AGENT, agent);
        }
        if browser.background {
            req = req.header(app::ui::background::HEADER, "1");
        }
        let mut request = req.body(Body::from(body)).unwrap();
        if let Some(ip) = &browser.ip {
            let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(addr));
        }
        let reply = self.send(request).await;
        browser.absorb(&reply);
        reply
    }

    pub async fn get(&self, browser: &Browser, path: &str) -> Reply {
        let mut req = Request::get(path);
        if let Some(c) = browser.header() {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    /// Creates a user (through the domain, not the UI) and returns their id.
    pub async fn user(&self, email: &str, role_in_system: Option<app::access::Role>) -> String {
        app::identity::ssr::create_user(
            &self.state.db,
            email,
            email.split('@').next().unwrap(),
            PASSWORD,
            role_in_system,
            None,
        )
        .await
        .expect("create user")
    }

    /// A browser signed in as `email`.
    /// Spends the untrusted browsers' sign-in allowance of `email` (`n` wrong passwords from
    /// `browser`, each refused).
    pub async fn wrong_sign_ins(&self, browser: &mut Browser, email: &str, n: i64) {
        for _ in 0..n {
            let r = self
                .rpc(
                    browser,
                    "sign_in",
                    &[("email", email), ("password", "guess guess")],
                )
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        }
    }

    pub async fn signed_in(&self, email: &str) -> Browser {
        self.signed_in_from(email, None).await
    }

    /// A browser signed in as `email`, calling from `ip` (none: no peer address).
    pub async fn signed_in_from(&self, email: &str, ip: Option<&str>) -> Browser {
        let mut b = Browser {
            ip: ip.map(str::to_string),
            ..Default::default()
        };
        let r = self
            .rpc(
                &mut b,
                "sign_in",
                &[("email", email), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "sign in: {}", r.body);
        b
    }

    /// Who the browser is signed in as (their email), if anyone.
    pub async fn signed_in_as(&self, browser: &mut Browser) -> Option<String> {
        let r = self.rpc(browser, "current_user", &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.json()["email"].as_str().map(str::to_string)
    }

    /// Deletes every stored session of the user behind the server's back: what signing them
    /// out elsewhere does while a request of theirs is in flight.
    pub async fn delete_sessions_of(&self, user_id: &str) {
        sqlx::query("delete from session where user_id = $1")
            .bind(user_id)
            .execute(&self.state.db.writer)
            .await
            .unwrap();
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&self.state.db.reader)
            .await
            .unwrap()
    }
}

pub fn form_body(form: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish()
}

impl TestApp {
    /// The personal organization of a user.
    pub async fn org_of(&self, user_id: &str) -> String {
        sqlx::query_scalar("select personal_organization_id from app_user where user_id = $1")
            .bind(user_id)
            .fetch_one(&self.state.db.reader)
            .await
            .unwrap()
    }

    /// Issues a key in `org_id` through the domain; returns (key id, secret).
    pub async fn issue_key(&self, org_id: &str, new: app::keys::NewKey) -> (String, String) {
        let grant = app::access::ssr::Grant::operator(org_id);
        let settings = app::keys::ssr::validate_new(&new, app::ssr::db::now_ms(), &grant)
            .expect("valid key settings");
        let created = app::keys::ssr::create(
            &self.state.db,
            &self.state.config.secret,
            app::keys::ssr::Acting::new(&grant, None),
            None,
            &settings,
        )
        .await
        .expect("create key");
        (created.api_key.id, created.key)
    }

    /// A key with every scope (the admin preset) in `org_id`.
    pub async fn admin_key(&self, org_id: &str) -> (String, String) {
        self.issue_key(
            org_id,
            app::keys::NewKey {
                name: "admin".into(),
                category: Some("admin".into()),
                ..Default::default()
            },
        )
        .await
    }

    /// An admin-preset key that expires in `days` (for organizations that limit key lifetime).
    pub async fn admin_key_expiring(&self, org_id: &str, days: i64) -> (String, String) {
        let at = app::ssr::db::now_ms() + days * 86_400_000;
        self.issue_key(
            org_id,
            app::keys::NewKey {
                name: "admin".into(),
                category: Some("admin".into()),
                expires_at: Some(app::keys::ssr::rfc3339(at)),
                ..Default::default()
            },
        )
        .await
    }

    /// Calls the REST API with a bearer key from `ip`.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<serde_json::Value>,
        ip: &str,
    ) -> Reply {
        let body = body.map(|json| json.to_string());
        self.api_raw(method, path, key, body.as_deref(), ip, &[])
            .await
    }

    /// Calls the REST API with a raw body (JSON unless the headers name another
    /// content type) and extra headers.
    pub async fn api_raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
        ip: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let typed = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        let body = match body {
            Some(text) => {
                if !typed {
                    req = req.header(header::CONTENT_TYPE, "application/json");
                }
                Body::from(text.to_string())
            }
            None => Body::empty(),
        };
        let mut request = req.body(body).unwrap();
        let addr: std::net::SocketAddr = format!("{ip}:40000")
            .parse()
            .or_else(|_| format!("[{ip}]:40000").parse())
            .unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
        self.send(request).await
    }
}

impl TestApp {
    /// Another instance on the same database: its own key cache and limits, as a second
    /// process behind a load balancer would have.
    pub fn second_instance(&self) -> TestApp {
        let state = AppState::new(
            self.state.db.clone(),
            (*self.state.config).clone(),
            self.state.leptos_options.clone(),
            keyward_server::boot::domains(&self.state.db, &self.state.config).expect("domains"),
        );
        std::mem::forget(keyward_server::workers::Workers::start(&state));
        TestApp {
            router: keyward_server::router(state.clone()),
            state,
            _dir: None,
        }
    }

    /// Makes `user_id` a member of `org_id` with `role`.
    pub async fn add_member(&self, org_id: &str, user_id: &str, role: &str) {
        sqlx::query("insert into membership (organization_id, user_id, role, created_at) values ($1, $2, $3, 0)")
            .bind(org_id)
            .bind(user_id)
            .bind(role)
            .execute(&self.state.db.writer)
            .await
            .unwrap();
    }

    pub async fn set_role(&self, org_id: &str, user_id: &str, role: &str) {
        sqlx::query("update membership set role = $1 where organization_id = $2 and user_id = $3")
            .bind(role)
            .bind(org_id)
            .bind(user_id)
            .execute(&self.state.db.writer)
            .await
            .unwrap();
    }

    pub async fn remove_member(&self, org_id: &str, user_id: &str) {
        sqlx::query("delete from membership where organization_id = $1 and user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .execute(&self.state.db.writer)
            .await
            .unwrap();
    }

    pub async fn disable_user(&self, user_id: &str) {
        sqlx::query("update app_user set status = 'disabled' where user_id = $1")
            .bind(user_id)
            .execute(&self.state.db.writer)
            .await
            .unwrap();
    }

    /// A team "finance" of `org` holding a role "finance" that grants only a permission of the
    /// organization's own, `refunds:issue` (made by the operator): the team's id. What a
    /// caller holding every built-in permission still lacks.
    pub async fn finance_team(&self, org: &str) -> String {
        let (db, operator) = (&self.state.db, app::access::ssr::Grant::operator(org));
        app::access::roles::create_permission(db, &operator, "refunds:issue", "", &[])
            .await
            .unwrap();
        let finance = app::access::roles::create_role(db, &operator, "finance", "", &[])
            .await
            .unwrap()
            .id;
        app::access::roles::set_permission(db, &operator, &finance, "refunds:issue", true, false)
            .await
            .unwrap();
        let team = app::teams::ssr::create(db, &operator, "finance", "")
            .await
            .unwrap()
            .id;
        app::teams::ssr::set_role(db, &operator, &team, &finance, true)
            .await
            .unwrap();
        team
    }

    /// A personal access token created in the console by the signed-in `browser` in `org_id`
    /// with `category`: (key id, secret).
    pub async fn pat(
        &self,
        browser: &mut Browser,
        org_id: &str,
        category: &str,
    ) -> (String, String) {
        let r = self
            .rpc(
                browser,
                "create_key",
                &[
                    ("organization_id", org_id),
                    ("name", "personal token"),
                    ("environment", "live"),
                    ("category", category),
                    ("ip_allowlist", ""),
                    ("expires_in_days", ""),
                    ("personal", "on"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "create PAT: {}", r.body);
        let j = r.json();
        (
            j["id"].as_str().unwrap().to_string(),
            j["key"].as_str().unwrap().to_string(),
        )
    }

    /// Issues a key with custom scopes: (key id, secret).
    pub async fn scoped_key(&self, org_id: &str, scopes: serde_json::Value) -> (String, String) {
        self.issue_key(
            org_id,
            serde_json::from_value(json!({"name": "scoped", "scopes": scopes})).unwrap(),
        )
        .await
    }

    /// The token of the last `/{page}?token=…` link emailed to `to` (an invitation, a
    /// password link, a confirmation).
    pub async fn emailed_token(&self, to: &str, page: &str) -> String {
        let link = format!("/{page}?token=");
        let body: String = sqlx::query_scalar(
            "select body_text from outbox_email where to_address = $1 and body_text like $2
             order by created_at desc, outbox_email_id desc limit 1",
        )
        .bind(to)
        .bind(format!("%{link}%"))
        .fetch_one(&self.state.db.reader)
        .await
        .unwrap_or_else(|e| panic!("no {page} link was queued for {to}: {e}"));
        let start = body.find(&link).unwrap() + link.len();
        body[start..].split_whitespace().next().unwrap().to_string()
    }

    /// A key's version as its reader sees it: `updated_at` in RFC 3339 (what a review sends).
    pub async fn key_version(&self, key_id: &str) -> String {
        let ms: i64 = sqlx::query_scalar("select updated_at from api_key where api_key_id = $1")
            .bind(key_id)
            .fetch_one(&self.state.db.writer)
            .await
            .unwrap();
        app::ssr::db::rfc3339(ms)
    }

    /// Everything a refused call must leave as it was: every key row (but `last_used_at`,
    /// written off the request path), and the row counts of the tables calls write to.
    pub async fn snapshot(&self) -> String {
        use sqlx::Row;
        let rows = sqlx::query(
            "select api_key_id, organization_id, owner_user_id, name, description, status, category, scopes,
                endpoints, ip_allowlist, require_signature, metadata, expires_at, rolled_to_key_id, updated_at,
                plan_id, rate_limit, rate_window_seconds, permissions, approval, reviewed_by
             from api_key order by api_key_id",
        )
        .fetch_all(&self.state.db.writer)
        .await
        .unwrap();
        let mut out = String::new();
        for r in rows {
            for i in 0..r.len() {
                let text: Option<String> = r.try_get(i).ok().flatten();
                let num: Option<i64> = r.try_get(i).ok().flatten();
                out.push_str(&format!("{text:?}/{num:?}|"));
            }
            out.push('\n');
        }
        let plans: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "select plan_id, name, request_limit, window_seconds from plan order by plan_id",
        )
        .fetch_all(&self.state.db.writer)
        .await
        .unwrap();
        out.push_str(&format!("plans={plans:?}\n"));
        // The role graph and memberships in full: a change that swapped one row for another
        // keeps the counts.
        for (table, columns) in [
            ("membership", "organization_id, user_id, role"),
            ("role", "role_id, organization_id, name, description"),
            ("role_parent", "role_id, parent_id"),
            ("role_permission", "role_id, permission"),
            ("custom_permission", "organization_id, name, description"),
            (
                "permission_dependency",
                "organization_id, permission, requires",
            ),
            ("role_assignment", "organization_id, user_id, role_id"),
            ("permission_group", "group_id, organization_id, name"),
            (
                "organization_policy",
                "organization_id, cast(max_key_lifetime_days as text), cast(require_two_factor as text), cast(require_key_approval as text)",
            ),
            ("team", "team_id, organization_id, name, description"),
            ("team_member", "team_id, organization_id, user_id"),
            ("team_role", "team_id, role_id"),
            ("permission_group_item", "group_id, permission"),
            ("role_group", "role_id, group_id"),
            (
                "invitation",
                "invitation_id, organization_id, email, role, accepted_by, cast(revoked_at as text)",
            ),
            (
                "app_user",
                "user_id, email_normalized, display_name, password_hash, status, cast(deleted_at as text)",
            ),
            ("session", "session_hash, user_id"),
        ] {
            let rows = sqlx::query(&format!("select {columns} from {table} order by {columns}"))
                .fetch_all(&self.state.db.writer)
                .await
                .unwrap();
            out.push_str(table);
            for r in rows {
                let cells: Vec<Option<String>> =
                    (0..r.len()).map(|i| r.try_get(i).ok().flatten()).collect();
                out.push_str(&format!(" {cells:?}"));
            }
            out.push('\n');
        }
        for table in ["api_key_event", "app_user", "organization", "outbox_email"] {
            let n: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
                .fetch_one(&self.state.db.writer)
                .await
                .unwrap();
            out.push_str(&format!("{table}={n}\n"));
        }
        out
    }
}

/// Asserts a refusal: the status and code, and that no secret came back.
pub fn assert_refused(r: &Reply, status: StatusCode, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(r.error_code(), code, "{what}: {}", r.body);
    assert_no_secret(r, what);
}

/// No key secret or signing secret in a response. (Display prefixes such as `kw_live_4eC3`
/// are not secrets: a secret has 20 or more characters after the prefix.)
pub fn assert_no_secret(r: &Reply, what: &str) {
    for prefix in ["kw_live_", "kw_test_"] {
        for (at, _) in r.body.match_indices(prefix) {
            let rest = &r.body[at + prefix.len()..];
            let run = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .count();
            assert!(run < 20, "{what}: a secret came back: {}", r.body);
        }
    }
    assert!(
        !r.body.contains("kwsig_"),
        "{what}: a signing secret came back"
    );
}

/// Runs the futures concurrently on this task (so they race for real against the same
/// router) and returns their outputs in order.
pub async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

/// A real SMTP server on loopback for the tests: accepts every message and keeps what arrived
/// (the DATA of each, with its envelope recipients). Mail really travels over SMTP to it.
pub struct SmtpSink {
    pub url: String,
    pub messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = messages.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
                    let mut envelope = String::new();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO")
                        {
                            b"250 sink\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            envelope.push_str(&line);
                            envelope.push('\n');
                            b"250 ok\r\n"
                        } else if upper.starts_with("DATA") {
                            let _ = write.write_all(b"354 go ahead\r\n").await;
                            let mut data = envelope.clone();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                data.push_str(&l);
                                data.push('\n');
                            }
                            store.lock().unwrap().push(data);
                            envelope.clear();
                            b"250 queued\r\n"
                        } else if upper.starts_with("QUIT") {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        } else {
                            b"250 ok\r\n"
                        };
                        if write.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        SmtpSink { url, messages }
    }

    /// Waits up to `within` for a message containing `needle`.
    pub async fn wait_for(&self, needle: &str, within: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(m) = self
                .messages
                .lock()
                .unwrap()
                .iter()
                .find(|m| m.contains(needle))
            {
                return Some(m.clone());
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn count(&self) -> usize {
        self.messages.lock().unwrap().len()
    }
}

impl TestApp {
    /// Gives `key_id` its own limit, through the REST API with `admin`.
    pub async fn limit_key(&self, ip: &str, admin: &str, key_id: &str, limit: i64, window: i64) {
        let r = self
            .api(
                "PUT",
                &format!("/api/v1/keys/{key_id}/limit"),
                Some(admin),
                Some(json!({"rate_limit": limit, "rate_window_seconds": window})),
                ip,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    /// Waits until the request log holds `n` rows (the writer works off the request path).
    pub async fn wait_for_log_rows(&self, n: i64) {
        for _ in 0..100 {
            if self.count("request_log").await >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the request log has {} rows, expected {n}",
            self.count("request_log").await
        );
    }
}

/// A request-log entry of `key` in `org` at `at` (Unix ms), 1 ms latency, for writing straight
/// to the log with `app::usage::log::write_batch`.
pub fn log_entry(
    at: i64,
    org: &str,
    key: &str,
    route: &str,
    status: u16,
) -> app::usage::log::LogEntry {
    use rand::Rng;
    app::usage::log::LogEntry {
        request_id: format!("{:016x}", rand::thread_rng().gen::<u64>()),
        occurred_at: at,
        organization_id: Some(org.to_string()),
        api_key_id: Some(key.to_string()),
        method: "GET".into(),
        route: route.to_string().into(),
        status,
        error_code: None,
        error_message: None,
        latency_us: 1000,
        client_ip: None,
        user_agent: None,
    }
}
