//! The guard every server function starts with: the session (idle and absolute timeouts, an
//! active user), the declared guard of the endpoint, and — for organization endpoints — the
//! authorization core, which returns the caller's grant.

use super::policy::{guard_for, Guard};
use super::ssr::{authorize, Grant, Principal, SYSTEM_ORG_ID};
use super::Permission;
use crate::error::AppError;
use crate::ssr::config::Config;
use crate::ssr::db::{self, Db};
use crate::ssr::{keys, session, set_error_status, state, AppState};
use tower_sessions::Session;

/// How often a used session's idle deadline is pushed back (and the session row rewritten):
/// a quarter of the idle limit, at most once a minute, so activity keeps a session alive
/// without a database write on every request.
pub fn refresh_every(idle: std::time::Duration) -> i64 {
    (idle.as_millis() as i64 / 4).min(60_000)
}

/// When the session signed in and when its user last made a request (ms); the latter is the
/// former until a request of the user's refreshes it.
pub async fn session_times(session: &Session) -> Result<(i64, i64), AppError> {
    let signed_in_at: i64 = session
        .get(keys::SIGNED_IN_AT)
        .await
        .map_err(AppError::internal)?
        .unwrap_or_default();
    let last_seen_at: i64 = session
        .get(keys::LAST_SEEN_AT)
        .await
        .map_err(AppError::internal)?
        .unwrap_or(signed_in_at);
    Ok((signed_in_at, last_seen_at))
}

/// When a session ends (ms): at its idle deadline (from the user's last request) or its
/// absolute one (from sign-in), whichever comes first.
/// (`idle` and `absolute`: `Config::session_idle` and `session_absolute`.)
pub fn session_ends_at(
    signed_in_at: i64,
    last_seen_at: i64,
    idle: std::time::Duration,
    absolute: std::time::Duration,
) -> i64 {
    (last_seen_at + idle.as_millis() as i64).min(signed_in_at + absolute.as_millis() as i64)
}

/// Whether a request is the user's doing, which pushes the session's idle deadline back, or
/// the page's own (a live feed reconnecting every minute), which must not: an unattended tab
/// would otherwise keep its session alive until the absolute timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    User,
    Background,
}

impl Activity {
    /// A server function call's: `Background` when the page says it made the call by itself
    /// (`ui::background::HEADER`; taken as sent, since it can only withhold a refresh).
    pub fn of(headers: &http::HeaderMap) -> Activity {
        match headers.get(crate::ui::background::HEADER) {
            Some(v) if v.as_bytes() == b"1" => Activity::Background,
            _ => Activity::User,
        }
    }
}

/// The signed-in user's id, if any. Enforces the idle timeout (sliding with the user's
/// activity), the absolute timeout (from sign-in, however active), and that the user is still
/// active: a session that fails any of them is ended here.
pub async fn session_user_id(
    db: &Db,
    session: &Session,
    config: &Config,
    activity: Activity,
) -> Result<Option<String>, AppError> {
    let user_id: Option<String> = session
        .get(keys::USER_ID)
        .await
        .map_err(AppError::internal)?;
    let Some(mut user_id) = user_id else {
        return Ok(None);
    };
    if let Some((admin, until)) = crate::admin::impersonation::current(session).await? {
        // The administrator must still be active and still hold the permission (a disabled
        // or demoted administrator loses the session); the time limit ends it, and so does the
        // user coming to hold, in the system organization, what the administrator does not
        // (never someone stronger: checked when it started, and on every request after).
        let grant = match authorize(
            db,
            &Principal::User {
                user_id: admin.clone(),
            },
            SYSTEM_ORG_ID,
            Permission::ImpersonationWrite,
        )
        .await
        {
            Ok(grant) => grant,
            Err(e) => {
                // Any failure ends the session; only a refusal is the administrator's doing.
                let why = if e.code == crate::error::ErrorCode::Forbidden {
                    "unauthorized"
                } else {
                    "error"
                };
                crate::admin::impersonation::lapse(db, session, why).await;
                session.flush().await.map_err(AppError::internal)?;
                return Ok(None);
            }
        };
        let target = super::ssr::user_ceiling(db, &user_id, SYSTEM_ORG_ID).await?;
        let outranked = grant.ceiling.first_missing(target).is_some();
        if outranked || db::now_ms() >= until {
            use crate::admin::impersonation::{end, Ending};
            let why = if outranked { "outranked" } else { "expired" };
            match end(db, session, why).await? {
                Ending::NotImpersonating => {}
                Ending::Ended { admin } => user_id = admin,
                // Another request ended it (and holds the session's new id), or the session
                // was ended meanwhile: this request's copy of the session is stale and is
                // neither served nor written back.
                Ending::EndedElsewhere { .. } => return Ok(None),
            }
        }
    }
    let (signed_in_at, last_seen_at) = session_times(session).await?;
    let now = db::now_ms();
    let expired = now
        >= session_ends_at(
            signed_in_at,
            last_seen_at,
            config.session_idle,
            config.session_absolute,
        );
    let user: Option<(String, String, i64)> = sqlx::query_as(
        "select status, password_hash, session_epoch from app_user where user_id = $1",
    )
    .bind(&user_id)
    .fetch_optional(&db.reader)
    .await?;
    // The session must hold the credential stamp of the password it was signed in with, and
    // that password must still be the stored one (an impersonating session: the
    // administrator's). A password change or reset deletes the user's sessions; this also
    // ends any that a race let survive, or that a sign-in finishing meanwhile created.
    let impersonator: Option<String> = session
        .get(keys::IMPERSONATOR)
        .await
        .map_err(AppError::internal)?;
    let held: Option<String> = session
        .get(keys::CREDENTIAL)
        .await
        .map_err(AppError::internal)?;
    let current = match &impersonator {
        None => user
            .as_ref()
            .map(|(_, hash, epoch)| crate::identity::ssr::credential_stamp(hash, *epoch)),
        Some(admin) => crate::identity::ssr::current_stamp(db, admin).await?,
    };
    let mut credential_ok = held.is_some() && held == current;
    if !credential_ok && held.is_some() {
        if let (Some(current), Some(hash)) =
            (&current, crate::identity::ssr::session_hash_of(session))
        {
            // A request of the session that an action ending the user's other sessions kept,
            // loaded before that action: the stored session holds the new stamp already, and
            // this request carries it on (so that what it saves does not undo it).
            let owner = impersonator.as_deref().unwrap_or(&user_id);
            let stored =
                crate::ssr::session_store::stored_credential(&db.reader, &hash, owner).await?;
            if stored.as_ref() == Some(current) {
                session
                    .insert(keys::CREDENTIAL, current)
                    .await
                    .map_err(AppError::internal)?;
                credential_ok = true;
            }
        }
    }
    let active = !expired && credential_ok && user.is_some_and(|(status, _, _)| status == "active");
    if !active {
        if impersonator.is_some() {
            crate::admin::impersonation::lapse(db, session, "inactive").await;
        }
        session.flush().await.map_err(AppError::internal)?;
        return Ok(None);
    }
    if activity == Activity::User && now - last_seen_at >= refresh_every(config.session_idle) {
        // Marks the session modified: the layer saves it with a new idle deadline and sends
        // the cookie again with a fresh Max-Age.
        session
            .insert(keys::LAST_SEEN_AT, now)
            .await
            .map_err(AppError::internal)?;
    }
    Ok(Some(user_id))
}

/// The caller of a guarded endpoint.
#[derive(Clone, Debug)]
pub struct Caller {
    pub state: AppState,
    /// `None` only for [`Guard::Public`] endpoints called without a session.
    pub user_id: Option<String>,
    /// The request's remote address, for events and per-client limits.
    pub source_ip: Option<std::net::IpAddr>,
    /// The console session, taken from the request before anything else: during server
    /// rendering a server function runs in a task of its own, and reading the request's
    /// context again after an await can find it gone.
    pub session: Session,
}

impl Caller {
    /// The signed-in user's id (guards other than `Public` guarantee one).
    pub fn user_id(&self) -> Result<&str, AppError> {
        self.user_id
            .as_deref()
            .ok_or_else(AppError::unauthenticated)
    }

    /// The signed-in user as a principal of the authorization core.
    pub fn principal(&self) -> Result<Principal, AppError> {
        Ok(Principal::User {
            user_id: self.user_id()?.to_string(),
        })
    }

    /// The counter of this sign-in's re-authentication guesses: one per sign-in, kept across
    /// the session id changes that starting and stopping an impersonation make (a counter
    /// keyed by the session's hash would start afresh each time, a fresh allowance of guesses
    /// for whoever holds the cookie). Sessions from before sign-ins had an id use the hash.
    pub async fn reauth_counter(&self) -> Result<String, AppError> {
        match self
            .session
            .get::<String>(crate::ssr::keys::SIGN_IN_ID)
            .await
            .map_err(AppError::internal)?
        {
            Some(id) => Ok(id),
            None => self.session_hash(),
        }
    }

    /// The stored hash of the caller's console session (every guarded caller has one).
    pub fn session_hash(&self) -> Result<String, AppError> {
        crate::identity::ssr::session_hash_of(&self.session).ok_or_else(AppError::unauthenticated)
    }

    /// The caller's grant in the system organization for an instance endpoint (its guard has
    /// already checked `permission`; this re-checks and returns the ceiling).
    pub async fn instance_grant(&self, permission: Permission) -> Result<Grant, AppError> {
        authorize(
            &self.state.db,
            &self.principal()?,
            SYSTEM_ORG_ID,
            permission,
        )
        .await
    }

    /// Re-authentication with the caller's current password, through the per-client and the
    /// per-account sign-in allowances (a wrong one is a 400 on `current_password`). Returns
    /// the caller's id and source address as text.
    pub async fn reauthenticated(
        &self,
        password: &str,
    ) -> Result<(&str, Option<String>), AppError> {
        self.state.check_auth_attempt(self.source_ip)?;
        let user_id = self.user_id()?;
        let ip = self.source_ip_text();
        let session = self.reauth_counter().await?;
        crate::identity::profile::reauthenticate(
            &self.state.db,
            &self.state.config,
            user_id,
            &session,
            password,
            ip.as_deref(),
        )
        .await?;
        Ok((user_id, ip))
    }

    /// The source address as text, for timelines and events.
    pub fn source_ip_text(&self) -> Option<String> {
        self.source_ip.map(|ip| ip.to_string())
    }
}

/// Enforces a declared guard for a session: returns the signed-in user's id (if any) when the
/// guard lets the call through. `None` (no declaration) is refused: deny by default. Used both
/// by [`guard`] (inside the function, which also covers calls made during server rendering)
/// and by the `/rpc` middleware (before the function runs).
pub async fn enforce(
    state: &AppState,
    declared: Option<Guard>,
    session: &Session,
    activity: Activity,
) -> Result<Option<String>, AppError> {
    let Some(declared) = declared else {
        return Err(AppError::new(
            crate::error::ErrorCode::Forbidden,
            "endpoint not declared",
        ));
    };
    let user_id = session_user_id(&state.db, session, &state.config, activity).await?;
    match declared {
        Guard::Public => {}
        Guard::Enrolling => {
            user_id.as_deref().ok_or_else(AppError::unauthenticated)?;
        }
        Guard::SignedIn | Guard::Org(_) => {
            let user_id = user_id.as_deref().ok_or_else(AppError::unauthenticated)?;
            refuse_until_enrolled(&state.db, session, user_id).await?;
        }
        Guard::Instance(permission) => {
            let user_id = user_id.clone().ok_or_else(AppError::unauthenticated)?;
            refuse_until_enrolled(&state.db, session, &user_id).await?;
            authorize(
                &state.db,
                &Principal::User { user_id },
                SYSTEM_ORG_ID,
                permission,
            )
            .await?;
        }
    }
    Ok(user_id)
}

/// While the session impersonates someone: refuses what an impersonator may not do
/// ([`super::policy::allowed_while_impersonating`]) and records every other call with both
/// identities (but `current_user`, which every page asks). Nothing when not impersonating.
pub async fn impersonation_gate(
    state: &AppState,
    session: &Session,
    endpoint: &str,
    user_id: Option<&str>,
    source_ip: Option<std::net::IpAddr>,
) -> Result<(), AppError> {
    let Some((admin, _)) = crate::admin::impersonation::current(session).await? else {
        return Ok(());
    };
    // Every event this request records names the administrator too.
    crate::ssr::request_id::set_impersonator(&admin);
    if !super::policy::allowed_while_impersonating(endpoint) {
        return Err(crate::admin::impersonation::refused(endpoint));
    }
    if endpoint != "current_user" {
        let ip = source_ip.map(|ip| ip.to_string());
        crate::admin::impersonation::record_call(
            &state.db,
            &admin,
            user_id,
            endpoint,
            ip.as_deref(),
        )
        .await?;
    }
    Ok(())
}

/// Refuses a session whose user must first enrol the second factor an organization requires:
/// decided on every call from the database (an organization of the user's requires one and they
/// have none), so it reaches sessions opened before the requirement (the policy turned on, or
/// the user joined such an organization on another device) and lets go as soon as nothing
/// requires it any more. The session's flag mirrors the answer for the pages
/// (`current_user`). Not while an administrator impersonates the user (read-only, and the flag
/// would stay on the administrator's own session).
async fn refuse_until_enrolled(db: &Db, session: &Session, user_id: &str) -> Result<(), AppError> {
    if crate::admin::impersonation::current(session)
        .await?
        .is_some()
    {
        return Ok(());
    }
    if crate::identity::two_factor::hold_to_enrolment(db, session, user_id).await? {
        return Err(AppError::new(
            crate::error::ErrorCode::TwoFactorRequired,
            "your organization requires two-factor authentication: set it up at /two-factor first",
        ));
    }
    Ok(())
}

/// Enforces the guard declared for `endpoint` in [`crate::access::policy::SERVER_FNS`]. Every
/// server function starts with this (or [`guard_in`]); an endpoint without a declaration is
/// refused.
pub async fn guard(endpoint: &str) -> Result<Caller, AppError> {
    let result = async {
        let state = state()?;
        let session = session().await?;
        let declared = guard_for(endpoint);
        if declared.is_none() {
            tracing::error!(endpoint, "server function without a declared guard refused");
        }
        // The same activity as the `/rpc` middleware saw (it ran `enforce` first).
        let activity = leptos_axum::extract::<http::HeaderMap>()
            .await
            .map_or(Activity::User, |h| Activity::of(&h));
        // The `/rpc` middleware decided this very request under the same declaration: its
        // answer stands (deciding again would only repeat the session's queries).
        let decided = leptos_axum::extract::<axum::Extension<Enforced>>()
            .await
            .ok()
            .map(|axum::Extension(e)| e)
            .filter(|e| e.declared == declared);
        let user_id = match decided {
            Some(e) => e.user_id,
            None => enforce(&state, declared, &session, activity).await?,
        };
        let source_ip = source_ip(&state.config.trusted_proxies).await;
        // Not signed in (a public endpoint), nobody is being impersonated, whatever a stale
        // copy of an ended session still says.
        if user_id.is_some() {
            impersonation_gate(&state, &session, endpoint, user_id.as_deref(), source_ip).await?;
        }
        Ok(Caller {
            state,
            user_id,
            source_ip,
            session,
        })
    }
    .await;
    result.inspect_err(set_error_status)
}

/// For [`Guard::Org`] endpoints: the guard, then the authorization core for the organization
/// the call names, with the endpoint's declared permission (so the check cannot drift from the
/// declaration). Returns the caller and their grant, whose ceiling bounds what the call may
/// hand out.
pub async fn guard_in(endpoint: &str, organization_id: &str) -> Result<(Caller, Grant), AppError> {
    let caller = guard(endpoint).await?;
    let result = async {
        let permission: Permission = match guard_for(endpoint) {
            Some(Guard::Org(p)) => p,
            other => {
                return Err(AppError::internal(format!(
                    "guard_in on {endpoint} declared as {other:?}"
                )))
            }
        };
        authorize(
            &caller.state.db,
            &caller.principal()?,
            organization_id,
            permission,
        )
        .await
    }
    .await
    .inspect_err(set_error_status)?;
    Ok((caller, result))
}

/// What the `/rpc` middleware decided for a request ([`enforce`] under `declared`), handed to
/// the server function's own [`guard`] in the request's extensions (which a client cannot set).
#[derive(Clone, Debug)]
struct Enforced {
    declared: Option<Guard>,
    user_id: Option<String>,
}

/// Middleware of the console (pages, `/rpc/*`, its plain routes): refuses a NUL in the URI
/// ([`crate::ssr::nul`]), and enforces a server function's declared guard before it runs.
pub async fn rpc_middleware(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if crate::ssr::nul::in_uri(request.uri()) {
        return crate::ssr::nul::refused().into_response();
    }
    let path = request.uri().path();
    // Server functions are served on POST only; let the router answer 405 to anything else.
    if !path.starts_with(crate::access::policy::RPC_PREFIX)
        || request.method() != http::Method::POST
    {
        return next.run(request).await;
    }
    let declared = crate::access::policy::guard_for_path(path);
    let Some(session) = request.extensions().get::<Session>().cloned() else {
        return AppError::internal("session layer missing").into_response();
    };
    let activity = Activity::of(request.headers());
    match enforce(&state, declared, &session, activity).await {
        Ok(user_id) => {
            request
                .extensions_mut()
                .insert(Enforced { declared, user_id });
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// The address of the client making the current server-function call (behind a trusted
/// proxy, the address it forwarded for: [`crate::ssr::client`]).
pub(crate) async fn source_ip(trusted_proxies: &[ipnet::IpNet]) -> Option<std::net::IpAddr> {
    use axum::extract::ConnectInfo;
    use std::net::SocketAddr;
    let peer = leptos_axum::extract::<ConnectInfo<SocketAddr>>()
        .await
        .ok()
        .map(|ConnectInfo(addr)| addr.ip());
    if trusted_proxies.is_empty() {
        return peer;
    }
    match leptos::prelude::use_context::<http::request::Parts>() {
        Some(parts) => crate::ssr::client::client_addr(peer, &parts.headers, trusted_proxies),
        None => peer,
    }
}
