//! `GET /events/usage?organization_id=…`: Server-Sent Events telling an open usage chart that
//! new requests of the organization were written, so it redraws within a second or two without
//! a reload. Console only: the session's user must hold `usage:read` in the organization.
//!
//! One instance (SQLite): the request-log writer announces its own writes. Several instances
//! (PostgreSQL): the writer sends `NOTIFY keyward_usage` in the batch's transaction and every
//! instance's `usage-notify` worker relays what it hears ([`listen`]), so a viewer on any
//! instance sees requests served by any other.

use app::access::guard::{enforce, impersonation_gate, Activity};
use app::access::policy::Guard;
use app::access::ssr::{authorize, Principal};
use app::access::Permission;
use app::error::AppError;
use app::ssr::AppState;
use app::usage::log::RequestLog;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::time::Duration;
use tower_sessions::Session;

/// Live feeds one user may hold open on an instance at once (a few tabs; each costs a task,
/// a socket and a few queries at connect).
pub const FEEDS_PER_USER: usize = 8;

/// How long a feed lasts before the browser reconnects (`EventSource` does so by itself) and
/// the reconnection is authorized again: a member removed, demoted or signed out stops hearing
/// the organization's traffic within this.
pub const FEED_LASTS: Duration = Duration::from_secs(60);

/// How long a feed opened now lasts: [`FEED_LASTS`], or less when the session ends sooner
/// (`session_left`: its idle or absolute deadline, whichever comes first; a reconnection does
/// not push the idle one back) or an impersonation's time limit comes first.
pub fn feed_lasts(session_left: Duration, impersonation_left: Option<Duration>) -> Duration {
    let lasts = session_left.min(FEED_LASTS);
    impersonation_left.map_or(lasts, |left| lasts.min(left))
}

/// How long the session has left as things stand ([`app::access::guard::session_ends_at`]);
/// nothing when its times cannot be read.
async fn session_left(session: &Session, config: &app::ssr::config::Config) -> Duration {
    let Ok((signed_in_at, last_seen_at)) = app::access::guard::session_times(session).await else {
        return Duration::ZERO;
    };
    let ends = app::access::guard::session_ends_at(
        signed_in_at,
        last_seen_at,
        config.session_idle,
        config.session_absolute,
    );
    Duration::from_millis((ends - app::ssr::db::now_ms()).max(0) as u64)
}

/// Live feeds open on an instance at once, whoever holds them: each is a task and a socket,
/// and many accounts (or a user's every session) must not hold the instance's file
/// descriptors. Past it a feed is refused 503 and the page says its chart is not live (and
/// tries again a minute later). Lower when the process may open few files:
/// [`feeds_per_instance`].
pub const FEEDS_PER_INSTANCE: usize = 1_000;

/// [`FEEDS_PER_INSTANCE`], or a quarter of the process's open-file limit when that is lower
/// (feeds must leave room for the API's connections, the database and the log).
pub fn feeds_per_instance(open_files: Option<u64>) -> usize {
    open_files.map_or(FEEDS_PER_INSTANCE, |n| {
        FEEDS_PER_INSTANCE.min((n / 4).max(1) as usize)
    })
}

/// The process's open-file limits (soft and hard), when they can be read.
#[cfg(unix)]
fn open_files() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given, nothing else.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit)
}

/// The process's soft limit of open files, when it can be read.
pub fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every platform
    return open_files().map(|l| l.rlim_cur as u64);
    #[cfg(not(unix))]
    None
}

/// Raises the soft open-file limit to the hard one (every connection and live feed is a file
/// descriptor; the usual soft default of 1 024 is low for a server) and answers the soft limit
/// then in force.
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    if let Some(mut limit) = open_files().filter(|l| l.rlim_cur < l.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct it is given.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    }
    open_files_limit()
}

/// Open feeds on this instance (`Db::caches`): [`FEEDS_PER_USER`] per user,
/// [`FEEDS_PER_INSTANCE`] in all.
pub struct OpenFeeds {
    per_user: app::ssr::counted::PerKey,
    pub instance: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Default for OpenFeeds {
    fn default() -> OpenFeeds {
        OpenFeeds {
            per_user: app::ssr::counted::PerKey::new(FEEDS_PER_USER),
            instance: std::sync::Arc::new(tokio::sync::Semaphore::new(feeds_per_instance(
                open_files_limit(),
            ))),
        }
    }
}

/// A feed's places, the user's and the instance's, given back when the stream ends.
pub struct FeedSlot {
    _user: app::ssr::counted::Holder<()>,
    _instance: tokio::sync::OwnedSemaphorePermit,
}

impl OpenFeeds {
    /// A place for one more feed of `user_id`: 429 past the user's own cap, 503 when the
    /// instance holds its cap (both with `Retry-After`).
    pub fn take(&self, user_id: &str) -> Result<FeedSlot, AppError> {
        let Some(user) = self.per_user.take(user_id) else {
            return Err(AppError {
                retry_after: Some(60),
                ..AppError::new(
                    app::error::ErrorCode::RateLimited,
                    format!("at most {FEEDS_PER_USER} live usage feeds at once; close another tab"),
                )
            });
        };
        let Ok(instance) = self.instance.clone().try_acquire_owned() else {
            return Err(AppError {
                retry_after: Some(60),
                ..AppError::new(
                    app::error::ErrorCode::Unavailable,
                    "this server holds as many live usage feeds as it serves; the chart is not live for now",
                )
            });
        };
        Ok(FeedSlot {
            _user: user,
            _instance: instance,
        })
    }
}

#[derive(serde::Deserialize)]
pub struct UsageEventsQuery {
    organization_id: String,
}

/// The signed-in user's grant of `permission` in `organization_id`, through the same guard
/// as server functions (timeouts, a second factor an organization requires, what an
/// impersonator may do, audited) and the one authorization core: what the console's plain
/// axum routes (this feed, the usage export, named `endpoint`) check before they answer.
pub async fn session_grant(
    state: &AppState,
    session: &Session,
    endpoint: &str,
    organization_id: &str,
    permission: Permission,
    source_ip: Option<std::net::IpAddr>,
    activity: Activity,
) -> Result<app::access::ssr::Grant, AppError> {
    let user_id = enforce(state, Some(Guard::Org(permission)), session, activity)
        .await?
        .ok_or_else(AppError::unauthenticated)?;
    impersonation_gate(state, session, endpoint, Some(&user_id), source_ip).await?;
    authorize(
        &state.db,
        &Principal::User { user_id },
        organization_id,
        permission,
    )
    .await
}

pub async fn usage_events(
    State(state): State<AppState>,
    session: Session,
    crate::rest::auth::PeerIp(ip): crate::rest::auth::PeerIp,
    query: Result<Query<UsageEventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return AppError::invalid(
            "organization_id",
            "name the organization: ?organization_id=org_…",
        )
        .into_response();
    };
    let grant = match session_grant(
        &state,
        &session,
        "usage_events",
        &query.organization_id,
        Permission::UsageRead,
        ip,
        // The page reconnects by itself: not the user's activity.
        Activity::Background,
    )
    .await
    {
        Ok(grant) => grant,
        Err(e) => return e.into_response(),
    };
    let user_id = match &grant.principal {
        Principal::User { user_id } => user_id.clone(),
        Principal::Key { key_id, .. } => key_id.clone(),
    };
    let slot = match state.db.caches.get::<OpenFeeds>().take(&user_id) {
        Ok(slot) => slot,
        Err(e) => return e.into_response(),
    };
    let rx = match RequestLog::of(&state) {
        Ok(log) => log.subscribe(),
        Err(e) => return e.into_response(),
    };
    // The stream ends after a minute (sooner if the session ends, or an impersonation's time
    // limit comes first); the browser reconnects, and the reconnection is authorized again.
    let impersonation_left = match app::admin::impersonation::current(&session).await {
        Ok(Some((_, until))) => Some(Duration::from_millis(
            (until - app::ssr::db::now_ms()).max(0) as u64,
        )),
        _ => None,
    };
    let session_left = session_left(&session, &state.config).await;
    let deadline = tokio::time::Instant::now() + feed_lasts(session_left, impersonation_left);
    let org = grant.organization_id;
    let stream = futures::stream::unfold((rx, org, slot), move |(mut rx, org, slot)| async move {
        loop {
            let next = tokio::time::timeout_at(deadline, rx.recv()).await;
            let event = match next {
                Err(_) => return None,
                Ok(Ok(written)) if written == org => Event::default().event("usage").data(&written),
                Ok(Ok(_)) => continue,
                // Missed some: the chart refetches anyway.
                Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                    Event::default().event("usage").data(&org)
                }
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return None,
            };
            return Some((Ok::<_, std::convert::Infallible>(event), (rx, org, slot)));
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// PostgreSQL: relays `NOTIFY keyward_usage` from every instance to this one's live charts,
/// until `stop`. Reconnects after a pause when the connection drops.
pub async fn listen(state: AppState, mut stop: crate::workers::Stop) {
    use app::ssr::db::Backend;
    if state.db.backend != Backend::Postgres {
        return;
    }
    let Ok(log) = RequestLog::of(&state) else {
        return;
    };
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect(&state.db.url).await {
            Ok(l) => l,
            Err(error) => {
                tracing::warn!(%error, "usage-notify: cannot connect; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                    _ = stop.stopped() => return,
                }
            }
        };
        if let Err(error) = listener.listen(app::usage::log::NOTIFY_CHANNEL).await {
            tracing::warn!(%error, "usage-notify: LISTEN failed; retrying");
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                _ = stop.stopped() => return,
            }
        }
        loop {
            tokio::select! {
                n = listener.recv() => match n {
                    Ok(n) => log.publish(n.payload().to_string()),
                    Err(error) => {
                        tracing::warn!(%error, "usage-notify: connection lost; reconnecting");
                        break;
                    }
                },
                _ = stop.stopped() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_s_feeds_leave_most_open_files_to_the_rest() {
        assert_eq!(feeds_per_instance(None), FEEDS_PER_INSTANCE);
        assert_eq!(feeds_per_instance(Some(1_024)), 256);
        assert_eq!(feeds_per_instance(Some(1_048_576)), FEEDS_PER_INSTANCE);
        assert_eq!(feeds_per_instance(Some(2)), 1);
    }

    #[test]
    fn a_feed_lasts_a_minute_or_less_and_is_then_authorized_again() {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        assert_eq!(feed_lasts(minutes(30), None), FEED_LASTS);
        assert_eq!(FEED_LASTS, Duration::from_secs(60));
        assert_eq!(
            feed_lasts(Duration::from_secs(20), None),
            Duration::from_secs(20)
        );
        assert_eq!(
            feed_lasts(minutes(30), Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(feed_lasts(minutes(30), Some(minutes(10))), FEED_LASTS);
    }

    #[test]
    fn a_session_ends_at_its_idle_or_absolute_deadline_whichever_comes_first() {
        use app::access::guard::session_ends_at;
        let (idle, absolute) = (Duration::from_secs(30 * 60), Duration::from_secs(12 * 3600));
        let ends = |signed_in, last_seen| session_ends_at(signed_in, last_seen, idle, absolute);
        let (minute, hour) = (60_000, 3_600_000);
        // Idle counts from the user's last request, not from sign-in.
        assert_eq!(ends(0, 10 * minute), 40 * minute);
        assert_eq!(ends(0, 0), 30 * minute);
        // Late in a long session, the absolute deadline comes first.
        assert_eq!(ends(0, 11 * hour + 50 * minute), 12 * hour);
    }
}
