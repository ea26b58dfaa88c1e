//! Streaming the usage export (`app::usage::export`) as an HTTP body, for the console's
//! `GET /usage/export` (session, `usage:read` in the organization) and the REST API's
//! `GET /api/v1/usage/export` (a key with `usage:read`, its own organization).
//!
//! The row count goes first, in `X-Keyward-Rows`, so the console can draw a progress bar as
//! the body arrives; then the rows, one page at a time, in constant memory.

use app::access::ssr::Grant;
use app::access::Permission;
use app::error::AppError;
use app::ssr::AppState;
use app::usage::export::{self, Cursor, Format, Scope};
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

/// The header carrying the number of rows the body will hold.
pub const ROWS_HEADER: &str = "x-keyward-rows";

/// Exports streaming at once on this instance. Each reads a page at a time from the reader
/// pool, which key lookups and charts share: a few long exports must not crowd them out.
/// Past this, an export is refused with 429 and `Retry-After`.
pub const CONCURRENT_EXPORTS: usize = 2;

/// Exports of one organization streaming at once on this instance: one tenant cannot take
/// every slot.
pub const EXPORTS_PER_ORGANIZATION: usize = 1;

/// Exports one person (a user, with their sessions and personal tokens together) or one
/// organization key streams at once on this instance, whatever the organizations: one user of
/// a personal organization and a team cannot hold both shared slots.
pub const EXPORTS_PER_HOLDER: usize = 1;

/// Export slots kept for the system organization (the operator's own exports) on top of
/// [`CONCURRENT_EXPORTS`]: tenants holding every shared slot (one user's personal organization
/// and team, two busy tenants) do not lock the operator out.
pub const EXPORTS_RESERVED: usize = 1;

/// A client that reads nothing for this long loses its export's slot (the body ends early):
/// a slot is not held by a connection that stopped reading.
pub const EXPORT_IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// The longest an export holds its slot, however steadily it is read.
pub const EXPORT_LASTS: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The watch of a served export: [`EXPORT_IDLE`], [`EXPORT_LASTS`].
const WATCH: (std::time::Duration, std::time::Duration) = (EXPORT_IDLE, EXPORT_LASTS);

/// The export slots of this instance; a domain state plugged in at boot.
#[derive(Debug)]
pub struct ExportSlots {
    all: std::sync::Arc<tokio::sync::Semaphore>,
    /// [`EXPORTS_RESERVED`], for the system organization only.
    reserved: std::sync::Arc<tokio::sync::Semaphore>,
    by_organization: app::ssr::counted::PerKey,
    by_holder: app::ssr::counted::PerKey,
}

impl Default for ExportSlots {
    fn default() -> ExportSlots {
        ExportSlots {
            all: std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT_EXPORTS)),
            reserved: std::sync::Arc::new(tokio::sync::Semaphore::new(EXPORTS_RESERVED)),
            by_organization: app::ssr::counted::PerKey::new(EXPORTS_PER_ORGANIZATION),
            by_holder: app::ssr::counted::PerKey::new(EXPORTS_PER_HOLDER),
        }
    }
}

/// A taken export slot: the organization's and the instance's, given back when dropped (the
/// body finished, failed or was dropped) or when the watch ([`Slot::watch`]) takes it back.
#[derive(Debug)]
pub struct Slot {
    // Dropped in this order: the instance's slot is free before the organization's is.
    _all: tokio::sync::OwnedSemaphorePermit,
    _organization: app::ssr::counted::Holder<()>,
    _holder: app::ssr::counted::Holder<()>,
}

impl ExportSlots {
    /// A slot for an export of `organization_id` by `holder` (`Reader::of`), or `None` when
    /// the holder's, the organization's or the instance's are all taken (the system
    /// organization: its own, else a shared one).
    pub fn take(&self, organization_id: &str, holder: &str) -> Option<Slot> {
        // Taken first, given back (dropped) if the instance has none left.
        let holder = self.by_holder.take(holder)?;
        let organization = self.by_organization.take(organization_id)?;
        // The system organization's own slot first: a shared one it took would be one less
        // for tenants.
        let kept = (organization_id == app::access::ssr::SYSTEM_ORG_ID)
            .then(|| self.reserved.clone().try_acquire_owned().ok())
            .flatten();
        let all = match kept {
            Some(kept) => kept,
            None => self.all.clone().try_acquire_owned().ok()?,
        };
        Some(Slot {
            _organization: organization,
            _holder: holder,
            _all: all,
        })
    }

    /// Free shared slots (tests).
    pub fn available(&self) -> usize {
        self.all.available_permits()
    }

    /// Free slots kept for the system organization (tests).
    pub fn reserved_available(&self) -> usize {
        self.reserved.available_permits()
    }
}

/// A slot shared by a body and its watch: whichever lets go first gives it back.
type Held = std::sync::Arc<std::sync::Mutex<Option<Slot>>>;

impl Slot {
    /// Hands the slot to a watch that takes it back when the body has not been read for
    /// `idle`, or after `lasts` in all; the body, read again after that, ends early. Returns
    /// the shared slot and the time of the last read, which the body updates.
    fn watch(
        self,
        idle: std::time::Duration,
        lasts: std::time::Duration,
    ) -> (Held, std::sync::Arc<std::sync::Mutex<tokio::time::Instant>>) {
        let held: Held = std::sync::Arc::new(std::sync::Mutex::new(Some(self)));
        let started = tokio::time::Instant::now();
        let read = std::sync::Arc::new(std::sync::Mutex::new(started));
        let (watched, last) = (std::sync::Arc::downgrade(&held), read.clone());
        tokio::spawn(async move {
            let tick = idle.min(std::time::Duration::from_secs(5));
            loop {
                tokio::time::sleep(tick).await;
                // The body is gone: its slot went with it.
                let Some(held) = watched.upgrade() else {
                    return;
                };
                let now = tokio::time::Instant::now();
                let last = *last.lock().unwrap_or_else(|p| p.into_inner());
                if now - last >= idle || now - started >= lasts {
                    if held
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take()
                        .is_some()
                    {
                        tracing::warn!("an export's client stopped reading (or took too long): its slot is taken back");
                    }
                    return;
                }
            }
        });
        (held, read)
    }
}

/// The query string of both routes (`organization_id` only on the console's).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub range: Option<String>,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub tz_offset_minutes: Option<i32>,
    #[serde(default)]
    pub format: Option<String>,
}

/// `GET /usage/export?organization_id=…&range=…&format=csv|json`: the console's export.
pub async fn console(
    State(state): State<AppState>,
    session: Session,
    crate::rest::auth::PeerIp(ip): crate::rest::auth::PeerIp,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    async move {
        let (q, org) = console_org(
            &state,
            &session,
            ip,
            query,
            "usage_export",
            Permission::UsageRead,
            |q| q.organization_id.clone(),
        )
        .await?;
        stream(&state, &org, &q).await
    }
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// A console export's query and the organization it may read: the query parsed (a clear 400
/// otherwise), then the session holding `permission` in the organization it names, through
/// the impersonation gate (`live::session_grant`).
async fn console_org<Q>(
    state: &AppState,
    session: &Session,
    source_ip: Option<std::net::IpAddr>,
    query: Result<Query<Q>, axum::extract::rejection::QueryRejection>,
    endpoint: &str,
    permission: Permission,
    organization_of: impl Fn(&Q) -> Option<String>,
) -> Result<(Q, Grant), AppError> {
    let Ok(Query(q)) = query else {
        return Err(AppError::invalid(
            "query",
            "unknown or malformed query parameters",
        ));
    };
    let org = organization_of(&q).unwrap_or_default();
    let grant = crate::live::session_grant(
        state,
        session,
        endpoint,
        &org,
        permission,
        source_ip,
        app::access::guard::Activity::User,
    )
    .await?;
    Ok((q, grant))
}

/// The export of the grant's organization (already authorized) for the query's range and
/// filters.
pub async fn stream(
    state: &AppState,
    grant: &Grant,
    q: &ExportQuery,
) -> Result<Response, AppError> {
    let organization_id = grant.organization_id.clone();
    let format = Format::parse(q.format.as_deref().unwrap_or(""))?;
    let range = q.range.as_deref().unwrap_or("24h");
    let (range, filter) = app::usage::stats::parse_view(
        range,
        q.key_id.as_deref().unwrap_or(""),
        q.route.as_deref().unwrap_or(""),
    )?;
    let tz = q.tz_offset_minutes.unwrap_or(0);
    if !(-840..=840).contains(&tz) {
        return Err(AppError::invalid(
            "tz_offset_minutes",
            "the time zone offset is between -840 and 840 minutes",
        ));
    }
    let file = format!(
        "usage-{}-{}.{}",
        organization_id,
        range.as_str(),
        format.extension()
    );
    let reader = app::usage::stats::Reader::of(&state.db, grant).await?;
    let permit = export_slot(state, &reader)?;
    let scope = Scope::new(organization_id, range, &filter, app::ssr::db::now_ms(), tz);
    let rows = export::count(&state.db, &scope).await?;
    let head = export::head(format)?;
    let db = state.db.clone();
    let next = move |cursor: Cursor, first: bool| {
        let (db, scope) = (db.clone(), scope.clone());
        async move {
            let (rows, cursor) = export::page(&db, &scope, &cursor).await?;
            if rows.is_empty() {
                return Ok(None);
            }
            Ok(Some((export::encode(format, &rows, first)?, cursor)))
        }
    };
    let body = Body::from_stream(chunked(WATCH, head, export::tail(format), next, permit));
    Ok(download(format, &file, rows, body))
}

/// A download: its type, file name and row count, never cached.
fn download(format: Format, file: &str, rows: i64, body: Body) -> Response {
    (
        [
            (
                http::header::CONTENT_TYPE,
                format.content_type().to_string(),
            ),
            (
                http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
            (http::header::CACHE_CONTROL, "no-store".to_string()),
            (http::HeaderName::from_static(ROWS_HEADER), rows.to_string()),
        ],
        body,
    )
        .into_response()
}

/// One of this instance's export slots for the reader's organization, or 429 with
/// `Retry-After` when the holder's, the instance's or the organization's are all taken. The
/// holder is `Reader::of`'s: a person (the user, or a personal token's owner), or apart from
/// them the organization keys one person made, so that one person's exports count together
/// over every organization.
fn export_slot(state: &AppState, reader: &app::usage::stats::Reader) -> Result<Slot, AppError> {
    state
        .domains
        .get::<ExportSlots>()?
        .take(&reader.organization_id, &reader.holder)
        .ok_or_else(|| AppError::rate_limited(5))
}

/// A streamed body: `head`, then the chunk `next` makes from each cursor (it also learns
/// whether the chunk is the first) until it answers none, then `tail`. A database error
/// mid-stream ends the body early (logged); the client sees fewer rows than `X-Keyward-Rows`
/// promised.
fn chunked<C, F, Fut>(
    // How long the client may read nothing, and hold the slot in all ([`WATCH`]).
    (idle, lasts): (std::time::Duration, std::time::Duration),
    head: Vec<u8>,
    tail: &'static [u8],
    next: F,
    // Released when the body is dropped (finished, failed or abandoned by the client), or
    // taken back when the client stops reading ([`Slot::watch`]).
    permit: Slot,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>>
where
    C: Default + Send + 'static,
    F: Fn(C, bool) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Option<(Vec<u8>, C)>, AppError>> + Send,
{
    enum Step<C> {
        Head(Vec<u8>),
        Rows { cursor: C, first: bool },
        Done,
    }
    enum Pending<Fut> {
        Head(Vec<u8>),
        Chunk(Fut),
        TakenBack,
        Done,
    }
    let (held, read) = permit.watch(idle, lasts);
    futures::stream::unfold(Step::Head(head), move |step| {
        *read.lock().unwrap_or_else(|p| p.into_inner()) = tokio::time::Instant::now();
        let taken_back = held.lock().unwrap_or_else(|p| p.into_inner()).is_none();
        let pending = match step {
            Step::Done => Pending::Done,
            _ if taken_back => Pending::TakenBack,
            Step::Head(head) => Pending::Head(head),
            Step::Rows { cursor, first } => Pending::Chunk(next(cursor, first)),
        };
        async move {
            match pending {
                Pending::Head(head) => Some((
                    Ok(Bytes::from(head)),
                    Step::Rows {
                        cursor: C::default(),
                        first: true,
                    },
                )),
                Pending::Chunk(chunk) => match chunk.await {
                    Ok(None) => Some((Ok(Bytes::from_static(tail)), Step::Done)),
                    Ok(Some((bytes, cursor))) => Some((
                        Ok(Bytes::from(bytes)),
                        Step::Rows {
                            cursor,
                            first: false,
                        },
                    )),
                    Err(e) => {
                        tracing::error!(error = %e.message, "export stopped");
                        Some((Err(std::io::Error::other("export failed")), Step::Done))
                    }
                },
                Pending::TakenBack => Some((
                    Err(std::io::Error::other(
                        "export ended: the client stopped reading",
                    )),
                    Step::Done,
                )),
                Pending::Done => None,
            }
        }
    })
}

/// The audit export's query string (`organization_id` only on the console's).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditExportQuery {
    #[serde(default)]
    pub organization_id: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
}

/// `GET /audit/export?organization_id=…&format=csv|json&actor=…`: the console's audit export
/// (session, `audit:read` in the organization).
pub async fn audit_console(
    State(state): State<AppState>,
    session: Session,
    crate::rest::auth::PeerIp(ip): crate::rest::auth::PeerIp,
    query: Result<Query<AuditExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    async move {
        let (q, org) = console_org(
            &state,
            &session,
            ip,
            query,
            "audit_export",
            Permission::AuditRead,
            |q| q.organization_id.clone(),
        )
        .await?;
        audit_stream(&state, &org, &q).await
    }
    .await
    .unwrap_or_else(IntoResponse::into_response)
}

/// The audit log of the grant's organization (already authorized; the whole instance's for
/// the system organization) with the query's filters, newest first, streamed as CSV or JSON.
pub async fn audit_stream(
    state: &AppState,
    grant: &Grant,
    q: &AuditExportQuery,
) -> Result<Response, AppError> {
    let organization_id = grant.organization_id.clone();
    use app::audit::ssr::{self as audit, Export, ExportCursor};
    let format = Format::parse(q.format.as_deref().unwrap_or(""))?;
    let filters = app::audit::AuditQuery {
        actor: q.actor.clone(),
        action: q.action.clone(),
        target: q.target.clone(),
        from: q.from.clone(),
        to: q.to.clone(),
        page: None,
    };
    let export = Export::new(&organization_id, &filters)?;
    let reader = app::usage::stats::Reader::of(&state.db, grant).await?;
    let permit = export_slot(state, &reader)?;
    let rows = export.count(&state.db, &reader).await?;
    let head = audit::head(format)?;
    let db = state.db.clone();
    let next = move |cursor: ExportCursor, first: bool| {
        let (db, export) = (db.clone(), export.clone());
        async move {
            let (entries, cursor) = export.page(&db, &cursor).await?;
            if entries.is_empty() {
                return Ok(None);
            }
            Ok(Some((audit::encode(format, &entries, first)?, cursor)))
        }
    };
    let body = Body::from_stream(chunked(WATCH, head, export::tail(format), next, permit));
    let file = format!("audit-{organization_id}.{}", format.extension());
    Ok(download(format, &file, rows, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::time::Duration;

    /// An endless export: a chunk per read.
    fn endless(
        slot: Slot,
        idle: Duration,
        lasts: Duration,
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
        chunked(
            (idle, lasts),
            b"[".to_vec(),
            b"]",
            |(), _| async { Ok(Some((b"x".to_vec(), ()))) },
            slot,
        )
    }

    // Real time, scaled down (an idle limit of 1 s for 30 s): reads 200 ms apart keep the
    // slot, 3 s without one loses it.
    #[tokio::test]
    async fn a_client_that_stops_reading_loses_its_slot_and_one_that_reads_keeps_it() {
        let slots = ExportSlots::default();
        let slot = slots.take("org_a", "usr_a").unwrap();
        let body = endless(slot, Duration::from_secs(1), Duration::from_secs(60));
        tokio::pin!(body);
        assert!(
            slots.take("org_a", "usr_other").is_none(),
            "one per organization"
        );
        for _ in 0..8 {
            assert!(body.next().await.unwrap().is_ok());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(
            slots.available(),
            CONCURRENT_EXPORTS - 1,
            "read steadily: kept"
        );
        // Nothing read: the slot comes back, to the instance and to the organization, and
        // the body ends with an error.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(slots.available(), CONCURRENT_EXPORTS);
        drop(
            slots
                .take("org_a", "usr_a")
                .expect("the organization's slot is back"),
        );
        assert!(body.next().await.unwrap().is_err());
        assert!(body.next().await.is_none());
    }

    #[tokio::test]
    async fn no_export_holds_its_slot_longer_than_the_limit() {
        let slots = ExportSlots::default();
        let started = tokio::time::Instant::now();
        let slot = slots.take("org_a", "usr_a").unwrap();
        let body = endless(slot, Duration::from_secs(1), Duration::from_millis(1_500));
        tokio::pin!(body);
        let mut reads = 0;
        while let Some(Ok(_)) = body.next().await {
            reads += 1;
            assert!(reads < 1_000, "the body never ended");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(1_500));
        assert_eq!(slots.available(), CONCURRENT_EXPORTS);
    }

    #[test]
    fn a_refused_export_leaves_no_count_behind() {
        let slots = ExportSlots::default();
        let (a, b) = (
            slots.take("org_a", "usr_a").unwrap(),
            slots.take("org_b", "usr_b").unwrap(),
        );
        assert!(
            slots.take("org_c", "usr_c").is_none(),
            "the instance's slots are taken"
        );
        drop((a, b));
        let counted = slots.by_organization.keys();
        assert_eq!(
            counted, 0,
            "no organization counted once its exports are done"
        );
    }

    #[test]
    fn tenants_holding_every_shared_slot_leave_the_operator_its_own() {
        use app::access::ssr::SYSTEM_ORG_ID;
        let slots = ExportSlots::default();
        // The system organization takes its own slot first, leaving the shared ones to tenants.
        let system = slots.take(SYSTEM_ORG_ID, "usr_root").unwrap();
        assert_eq!(slots.available(), CONCURRENT_EXPORTS);
        assert_eq!(slots.reserved_available(), 0);
        drop(system);

        let tenants = (
            slots.take("org_a", "usr_a").unwrap(),
            slots.take("org_b", "usr_b").unwrap(),
        );
        assert!(
            slots.take("org_c", "usr_c").is_none(),
            "another tenant is refused"
        );
        let system = slots
            .take(SYSTEM_ORG_ID, "usr_root")
            .expect("the operator's export is served");
        assert_eq!(slots.reserved_available(), 0);
        assert!(
            slots.take(SYSTEM_ORG_ID, "usr_other").is_none(),
            "one per organization, the system's too"
        );
        drop(system);
        assert_eq!(slots.reserved_available(), EXPORTS_RESERVED);
        assert!(
            slots.take("org_c", "usr_c").is_none(),
            "the kept slot never goes to a tenant"
        );
        drop(tenants);
        assert!(slots.take("org_c", "usr_c").is_some());
        assert_eq!(slots.by_organization.keys(), 0);
    }

    #[test]
    fn one_person_holds_one_export_slot_whatever_the_organizations() {
        let slots = ExportSlots::default();
        let personal = slots.take("org_personal", "usr_ann").unwrap();
        // Ann's team: the organization and the instance have room, Ann has not.
        assert!(slots.take("org_team", "usr_ann").is_none());
        assert_eq!(slots.available(), CONCURRENT_EXPORTS - 1, "given back");
        // Someone else of the team may.
        let bob = slots.take("org_team", "usr_bob").unwrap();
        drop((personal, bob));
        assert_eq!(slots.by_holder.keys(), 0, "no holder counted once done");
        assert!(slots.take("org_team", "usr_ann").is_some());
    }
}
