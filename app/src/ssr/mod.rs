//! Server-only plumbing shared by every domain: the application state, typed accessors that
//! turn a missing context into a clear error, the session, and server-function responses.
//!
//! The plumbing imports no domain (a test checks it): domains plug their own state into
//! [`Domains`], composed once at boot. The guard every server function starts with belongs to
//! the authorization core (`access::guard`).

/// Whether `name` (trimmed by the caller) is 1 to `max` characters, none of them
/// [`unprintable`]: what a role, group, team or organization may be called.
pub fn fits_name(name: &str, max: usize) -> bool {
    !name.is_empty() && name.chars().count() <= max && !name.chars().any(unprintable)
}

/// Characters no role, group, team or organization name may hold: controls, and the invisible
/// formatting ones (soft hyphen, zero-width spaces and joiners, bidirectional marks, overrides
/// and isolates, variation selectors, the byte-order mark, Hangul fillers) that would let one
/// name pass for another ("owner\u{200B}") or reorder how it reads.
pub fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
        )
}

pub mod audit;
pub mod client;
pub mod config;
pub mod counted;
pub mod csrf;
pub mod db;
pub mod events;
pub mod limit;
pub mod nul;
pub mod password;
pub mod request_id;
pub mod session_store;

use crate::error::AppError;
use axum::extract::FromRef;
use leptos::prelude::*;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;
use tower_sessions::Session;

pub use config::Config;
pub use db::Db;

/// Everything a request needs. Built once at boot; cloning it is one reference count (every
/// middleware layer and extractor clones it: a field-by-field clone of the options, the
/// database handle and the configuration was 8 % of the API's hot path under `perf`).
#[derive(Clone, Debug)]
pub struct AppState(Arc<StateInner>);

/// The fields of [`AppState`], read through it (`state.db`).
#[derive(Debug)]
pub struct StateInner {
    pub db: Db,
    pub config: Arc<Config>,
    pub leptos_options: LeptosOptions,
    /// Sign-in and sign-up attempts per client address.
    pub auth_attempts: Arc<limit::ClientLimiter>,
    /// What the domains keep in memory (the keys domain's cache…), plugged in at boot.
    pub domains: Domains,
}

/// The state domains plug into [`AppState`], one value per type, composed once at boot
/// (`keyward_server::boot::domains`). The plumbing holds it without knowing the types.
#[derive(Clone, Default)]
pub struct Domains(Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>);

impl Domains {
    /// Adds a domain's state (at boot, before the state is shared).
    pub fn with<T: Any + Send + Sync>(self, value: T) -> Domains {
        let mut map = Arc::try_unwrap(self.0).unwrap_or_else(|shared| (*shared).clone());
        map.insert(TypeId::of::<T>(), Arc::new(value));
        Domains(Arc::new(map))
    }

    /// A domain's state; a clear internal error when boot did not plug it in.
    pub fn get<T: Any + Send + Sync>(&self) -> Result<&T, AppError> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
            .ok_or_else(|| {
                AppError::internal(format!(
                    "domain state {} missing: compose it in boot::domains",
                    std::any::type_name::<T>()
                ))
            })
    }
}

impl std::fmt::Debug for Domains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Domains({} plugged in)", self.0.len())
    }
}

impl AppState {
    pub fn new(
        db: Db,
        config: Config,
        leptos_options: LeptosOptions,
        domains: Domains,
    ) -> AppState {
        AppState(Arc::new(StateInner {
            db,
            auth_attempts: Arc::new(limit::ClientLimiter::new(
                config.auth_attempts_per_ip_per_minute,
            )),
            config: Arc::new(config),
            leptos_options,
            domains,
        }))
    }

    /// Takes one unauthenticated attempt (sign-in, sign-up) from `client`, or refuses with
    /// `rate_limited` and `Retry-After` before any password is hashed.
    pub fn check_auth_attempt(&self, client: Option<std::net::IpAddr>) -> Result<(), AppError> {
        self.auth_attempts
            .check(client, db::now_ms())
            .map_err(|secs| {
                tracing::warn!(client = ?client, "sign-in/sign-up attempts over the allowance");
                AppError::rate_limited(secs)
            })
    }
}

impl std::ops::Deref for AppState {
    type Target = StateInner;

    fn deref(&self) -> &StateInner {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The REST API's OpenAPI document (JSON), built by the host from its route list at start-up,
/// for `/api/v1/openapi.json` and the in-app API docs pages.
static API_DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Builds the OpenAPI document once per process (every router of the process serves the same
/// routes; later calls do no work).
pub fn init_api_document(build: impl FnOnce() -> String) {
    API_DOCUMENT.get_or_init(build);
}

pub fn api_document() -> &'static str {
    API_DOCUMENT.get().map_or("{}", String::as_str)
}

/// The application state, provided to every server function and page render.
pub fn state() -> Result<AppState, AppError> {
    use_context::<AppState>().ok_or_else(|| AppError::internal("AppState missing from context"))
}

/// The database.
pub fn db() -> Result<Db, AppError> {
    Ok(state()?.db.clone())
}

/// Session keys.
pub mod keys {
    /// The signed-in user's id.
    pub const USER_ID: &str = "user_id";
    /// When the user signed in (ms): the absolute timeout counts from here.
    pub const SIGNED_IN_AT: &str = "signed_in_at";
    /// The sign-in's own id (`sgn_…`), kept across the session's id changes: what its
    /// re-authentication guesses are counted under.
    pub const SIGN_IN_ID: &str = "sign_in_id";
    /// When the session was last used (ms), refreshed at most every [`super::refresh_every`]:
    /// the idle timeout counts from here.
    pub const LAST_SEEN_AT: &str = "last_seen_at";
    /// The organization the console shows (menus, lists and charts follow it).
    pub const ACTIVE_ORG: &str = "active_org";
    /// The address the user signed in from (for "My sessions").
    pub const IP: &str = "ip";
    /// The browser's user agent at sign-in, cut to `identity::sessions::USER_AGENT_MAX`.
    pub const USER_AGENT: &str = "user_agent";
    /// A sign-in whose password was right, waiting for the second factor: the user's id (the
    /// session holds no [`USER_ID`] meanwhile) and when the password was checked (ms).
    pub const PENDING_USER_ID: &str = "pending_user_id";
    pub const PENDING_AT: &str = "pending_at";
    /// The credential stamp of the password the waiting sign-in was checked against.
    pub const PENDING_CREDENTIAL: &str = "pending_credential";
    /// The credential stamp (`identity::ssr::credential_stamp`) of the signed-in user's
    /// password as it was when they signed in (for an impersonating session, the
    /// administrator's): a session whose stamp no longer matches the stored password is over,
    /// so a password change or reset ends every session signed in with the old one, even one
    /// whose row a race let survive the change.
    pub const CREDENTIAL: &str = "credential";
    /// An enrolment this session started: the new factor's salt, and when (ms).
    pub const TOTP_ENROLMENT: &str = "totp_enrolment";
    pub const TOTP_ENROLMENT_AT: &str = "totp_enrolment_at";
    /// Signed in without the second factor an organization requires: the session may only
    /// enrol one (and sign out).
    pub const MUST_ENROL: &str = "must_enrol";
    /// Impersonation: the administrator acting as [`USER_ID`], and until when (ms).
    pub const IMPERSONATOR: &str = "impersonator";
    pub const IMPERSONATION_UNTIL: &str = "impersonation_until";
    /// The WebAuthn ceremony this session started (the id of its server-side row).
    pub const WEBAUTHN_CEREMONY: &str = "webauthn_ceremony";
}

/// The current console session (tower-sessions puts it in the request extensions).
pub async fn session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>()
        .await
        .map_err(|e| AppError::internal(format!("no session layer: {e}")))
}

/// The pages' Content-Security-Policy: scripts only from our origin or carrying this
/// response's nonce (the hydration script Leptos writes inline), WebAssembly compiled by the
/// browser, no plugins, never framed, no `<base>`, forms posted only here. Styles stay open
/// (ECharts styles its elements inline).
pub fn page_policy(nonce: Option<&str>) -> String {
    let inline = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "script-src 'self'{inline} 'wasm-unsafe-eval'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )
}

/// Puts [`page_policy`] with the response's nonce on the page being rendered.
pub fn set_page_policy() {
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    if let Ok(value) = http::HeaderValue::from_str(&page_policy(Some(&nonce))) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

/// Sets the HTTP status of the current server-function response from an error's code.
pub fn set_error_status(err: &AppError) {
    if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(status) = http::StatusCode::from_u16(err.code.status()) {
            options.set_status(status);
        }
        if let Some(secs) = err.retry_after {
            options.insert_header(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
    }
}

/// Runs a server function body and gives its error, if any, the matching HTTP status.
pub async fn respond<T>(
    body: impl std::future::Future<Output = Result<T, AppError>>,
) -> Result<T, AppError> {
    body.await.inspect_err(set_error_status)
}

/// Parses the `loaded` field a form sends back: what the page showed when it loaded (JSON),
/// so that a save made from a stale page can be refused. Absent: no such check was asked.
pub fn parse_loaded<T: serde::de::DeserializeOwned>(
    loaded: Option<String>,
    expected: &str,
) -> Result<Option<T>, AppError> {
    loaded
        .map(|l| serde_json::from_str(&l).map_err(|_| AppError::invalid("loaded", expected)))
        .transpose()
}
