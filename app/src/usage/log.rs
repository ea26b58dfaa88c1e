//! The request log (server only): every `/api/v1` request becomes a row, written in batches
//! off the request path.
//!
//! The request path hands its entry to a bounded buffer ([`RequestLog::record`]). When the
//! buffer is full it **waits up to [`FULL_WAIT`]** for room (backpressure: the client sees a
//! slightly slower answer, and nothing is lost); past that the entry is dropped, counted in
//! [`RequestLog::lost`] (`keyward_request_log_lost_total` in `/metrics`, and the console's
//! usage page) and logged. The `request-log` worker takes up to [`BATCH`] entries at a time and
//! writes them in one transaction together with the per-minute rollup the charts read; on
//! shutdown it writes everything still buffered before the process exits.

use crate::error::AppError;
use crate::ssr::db::{Backend, Db};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Entries the buffer holds.
pub const CAPACITY: usize = 65_536;
/// Entries written per transaction at most.
pub const BATCH: usize = 4_096;
/// How long the request path waits for room in a full buffer before the entry is dropped.
pub const FULL_WAIT: Duration = Duration::from_millis(100);
/// Rows per insert statement (12 parameters each: under every backend's parameter limit).
const ROWS_PER_STATEMENT: usize = 500;

/// One `/api/v1` request.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    pub request_id: String,
    /// Unix ms when the request arrived.
    pub occurred_at: i64,
    pub organization_id: Option<String>,
    pub api_key_id: Option<String>,
    /// Static for the standard methods: no allocation on the request path.
    pub method: std::borrow::Cow<'static, str>,
    /// The route template (`/api/v1/keys/{id}`), never the raw path.
    pub route: std::borrow::Cow<'static, str>,
    pub status: u16,
    pub error_code: Option<String>,
    /// The error's message as the client saw it (at most 200 characters).
    pub error_message: Option<String>,
    pub latency_us: i64,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
}

/// The chart's split of statuses.
pub fn status_class(status: u16) -> &'static str {
    match status {
        429 => "429",
        400..=499 => "4xx",
        500.. => "5xx",
        _ => "2xx",
    }
}

/// The buffer between the request path and the `request-log` worker; a domain state plugged
/// in at boot.
#[derive(Debug)]
pub struct RequestLog {
    tx: mpsc::Sender<LogEntry>,
    /// The receiving end, and the batch buffer the worker reuses from round to round (a
    /// megabyte allocated and freed 50 times a second made glibc consolidate its heap).
    rx: tokio::sync::Mutex<(mpsc::Receiver<LogEntry>, Vec<LogEntry>)>,
    capacity: usize,
    /// Rows written since start.
    pub written: AtomicU64,
    /// Entries dropped because the buffer stayed full (see the module doc).
    pub lost: AtomicU64,
    /// Batches that failed to write (their rows are counted in `lost`).
    pub failed_batches: AtomicU64,
    /// Organizations whose requests were just written, for live charts (see [`RequestLog::subscribe`]).
    written_for: tokio::sync::broadcast::Sender<String>,
}

impl RequestLog {
    pub fn new(capacity: usize) -> RequestLog {
        let (tx, rx) = mpsc::channel(capacity);
        RequestLog {
            tx,
            rx: tokio::sync::Mutex::new((rx, Vec::with_capacity(BATCH))),
            capacity,
            written: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            failed_batches: AtomicU64::new(0),
            written_for: tokio::sync::broadcast::channel(1024).0,
        }
    }

    /// Tells live charts of `organization_id` that new requests were written (on PostgreSQL
    /// the `usage-notify` worker calls this for every instance's writes, from `LISTEN`).
    pub fn publish(&self, organization_id: String) {
        let _ = self.written_for.send(organization_id);
    }

    /// Organizations with newly written requests, as they are written.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.written_for.subscribe()
    }

    /// The log, as boot plugged it into the state.
    pub fn of(state: &crate::ssr::AppState) -> Result<&RequestLog, AppError> {
        state.domains.get::<RequestLog>()
    }

    /// Hands an entry to the writer: at once when there is room, else after waiting up to
    /// [`FULL_WAIT`]; dropped (counted and logged) past that.
    pub async fn record(&self, entry: LogEntry) {
        let entry = match self.tx.try_send(entry) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(entry)) => entry,
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.note_loss();
                return;
            }
        };
        if self.tx.send_timeout(entry, FULL_WAIT).await.is_err() {
            self.note_loss();
        }
    }

    fn note_loss(&self) {
        let lost = self.lost.fetch_add(1, Ordering::Relaxed) + 1;
        // One line per thousand losses: the log must not become the next bottleneck.
        if lost == 1 || lost.is_multiple_of(1000) {
            tracing::warn!(lost, "request log buffer full: entries dropped");
        }
    }

    /// Entries waiting in the buffer.
    pub fn depth(&self) -> usize {
        self.capacity - self.tx.capacity()
    }

    /// Waits for entries (or `stop`), then writes up to [`BATCH`] of them; on `stop`, writes
    /// everything buffered. Returns how many rows were written and whether it stopped.
    pub async fn write_round(
        &self,
        db: &Db,
        stop: impl std::future::Future<Output = ()>,
    ) -> (usize, bool) {
        let mut guard = self.rx.lock().await;
        let (rx, batch) = &mut *guard;
        batch.clear();
        let stopped = tokio::select! {
            n = rx.recv_many(batch, BATCH) => n == 0,
            _ = stop => true,
        };
        if !stopped {
            // Give a burst a moment to fill the batch: fewer, larger transactions.
            if batch.len() < BATCH {
                tokio::time::sleep(Duration::from_millis(20)).await;
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
            }
            let n = self.write(db, batch).await;
            batch.clear();
            return (n, false);
        }
        // Shutdown: the server stopped answering before this; write what is left.
        let mut total = self.write(db, batch).await;
        loop {
            batch.clear();
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return (total, true);
            }
            total += self.write(db, batch).await;
        }
    }

    async fn write(&self, db: &Db, batch: &[LogEntry]) -> usize {
        if batch.is_empty() {
            return 0;
        }
        match write_batch(db, batch).await {
            Ok(()) => {
                self.written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                if db.backend == Backend::Sqlite {
                    // One instance: tell this one's live charts directly. PostgreSQL's NOTIFY
                    // (sent in the batch's transaction) reaches every instance, this one too.
                    for org in organizations(batch) {
                        self.publish(org);
                    }
                }
                batch.len()
            }
            Err(error) => {
                self.failed_batches.fetch_add(1, Ordering::Relaxed);
                self.lost.fetch_add(batch.len() as u64, Ordering::Relaxed);
                tracing::error!(%error, rows = batch.len(), "request log batch not written");
                0
            }
        }
    }
}

/// `($1,$2,…),($n+1,…)…`: the placeholders of a multi-row insert; plain `?` on SQLite.
///
/// SQLite looks a numbered parameter's name up by walking a list, and sqlx asks for every
/// parameter's name when it binds: with `$n` that is quadratic in the parameters of a statement
/// (5 500 in a 500-row insert), and it took 80 % of the writer's time (`perf`, see the README's
/// performance section). Anonymous `?` parameters have no name to look up.
fn placeholders(backend: Backend, rows: usize, columns: usize) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(rows * (columns * 5 + 3));
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ",(" });
        for c in 1..=columns {
            if c > 1 {
                out.push(',');
            }
            match backend {
                Backend::Sqlite => out.push('?'),
                Backend::Postgres => {
                    let _ = write!(out, "${}", r * columns + c);
                }
            }
        }
        out.push(')');
    }
    out
}

/// The raw rows' insert of `rows` rows. Nearly every row of a busy log goes through the
/// full-size statement: it is built once per backend (building it took 5 % of the writer's
/// time), the last, shorter chunk of a batch each time.
fn insert_log_sql(backend: Backend, rows: usize) -> std::borrow::Cow<'static, str> {
    static FULL: [std::sync::OnceLock<String>; 2] =
        [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
    let build = || {
        format!(
            "insert into request_log (request_id, occurred_at, organization_id, api_key_id, method, route, status, error_code, error_message, latency_us, client_ip, user_agent) values {}",
            placeholders(backend, rows, 12)
        )
    };
    if rows == ROWS_PER_STATEMENT {
        let slot = &FULL[usize::from(backend == Backend::Postgres)];
        std::borrow::Cow::Borrowed(slot.get_or_init(build))
    } else {
        std::borrow::Cow::Owned(build())
    }
}

/// (minute, organization, key, route, status class) of a rollup row.
type RollupKey<'a> = (i64, &'a str, &'a str, &'a str, &'a str);

/// The organizations a batch has rows for.
fn organizations(batch: &[LogEntry]) -> Vec<String> {
    let mut orgs: Vec<String> = batch
        .iter()
        .filter_map(|e| e.organization_id.clone())
        .collect();
    orgs.sort();
    orgs.dedup();
    orgs
}

/// The PostgreSQL channel that carries "requests written for organization X".
pub const NOTIFY_CHANNEL: &str = "keyward_usage";

/// Writes raw rows and adds them to the per-minute rollup, in one transaction.
pub async fn write_batch(db: &Db, batch: &[LogEntry]) -> Result<(), sqlx::Error> {
    let mut tx = db.writer.begin().await?;
    for chunk in batch.chunks(ROWS_PER_STATEMENT) {
        let sql = insert_log_sql(db.backend, chunk.len());
        // Borrowed, not `&String`: sqlx copies a bound `String` into its arguments, and a
        // 500-row statement binds up to 3 000 of them.
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(e.request_id.as_str())
                .bind(e.occurred_at)
                .bind(e.organization_id.as_deref())
                .bind(e.api_key_id.as_deref())
                .bind(e.method.as_ref())
                .bind(e.route.as_ref())
                .bind(e.status as i64)
                .bind(e.error_code.as_deref())
                .bind(e.error_message.as_deref())
                .bind(e.latency_us)
                .bind(e.client_ip.as_deref())
                .bind(e.user_agent.as_deref());
        }
        q.execute(&mut *tx).await?;
    }
    let mut rollup: HashMap<RollupKey, (i64, i64)> = HashMap::new();
    for e in batch {
        let slot = rollup
            .entry((
                e.occurred_at - e.occurred_at.rem_euclid(60_000),
                e.organization_id.as_deref().unwrap_or(""),
                e.api_key_id.as_deref().unwrap_or(""),
                e.route.as_ref(),
                status_class(e.status),
            ))
            .or_default();
        slot.0 += 1;
        slot.1 += e.latency_us;
    }
    // In key order: two instances' writers add to the same rows at once, and upserts taking
    // them in different orders deadlock on PostgreSQL (one whole batch lost).
    let mut rows: Vec<_> = rollup.into_iter().collect();
    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut sql = format!(
            "insert into usage_minute (minute, organization_id, api_key_id, route, status_class, requests, latency_us_sum) values {}",
            placeholders(db.backend, chunk.len(), 7)
        );
        sql.push_str(
            " on conflict (minute, organization_id, api_key_id, route, status_class) do update
              set requests = usage_minute.requests + excluded.requests,
                  latency_us_sum = usage_minute.latency_us_sum + excluded.latency_us_sum",
        );
        let mut q = sqlx::query(&sql);
        for ((minute, org, key, route, class), (n, latency)) in chunk {
            q = q
                .bind(*minute)
                .bind(*org)
                .bind(*key)
                .bind(*route)
                .bind(*class)
                .bind(*n)
                .bind(*latency);
        }
        q.execute(&mut *tx).await?;
    }
    if db.backend == Backend::Postgres {
        for org in organizations(batch) {
            sqlx::query("select 1 as sent from (select pg_notify($1, $2)) as n")
                .bind(NOTIFY_CHANNEL)
                .bind(org)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await
}

/// Deletes raw rows and rollups older than `days`, a bounded number of rows per statement so
/// that no transaction holds the log for long. Returns the raw rows deleted.
///
/// The log has no index on time alone (one B-tree fewer for every request to write): this
/// walks the organizations through the (organization, time) index, each one a seek for the
/// next greater id (a loose index scan), rows without an organization first.
pub async fn enforce_retention(db: &Db, now: i64, days: u32) -> Result<u64, sqlx::Error> {
    let before = now - days as i64 * 86_400_000;
    let mut total = delete_older(db, None, before).await?;
    let mut after = String::new();
    while let Some(org) = sqlx::query_scalar::<_, Option<String>>(
        "select min(organization_id) from request_log where organization_id > $1",
    )
    .bind(&after)
    .fetch_one(&db.reader)
    .await?
    {
        total += delete_older(db, Some(&org), before).await?;
        after = org;
    }
    delete_old_rollups(db, before - before.rem_euclid(60_000)).await?;
    Ok(total)
}

/// Deletes the per-minute rollups before minute `before`, oldest first, at most 10 000 rows
/// a statement (by primary key, which leads with the minute: a minute holding more rows than
/// that takes several), so that a long backlog never holds the writer in one statement.
async fn delete_old_rollups(db: &Db, before: i64) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let n = sqlx::query(
            "delete from usage_minute where (minute, organization_id, api_key_id, route, status_class) in
                (select minute, organization_id, api_key_id, route, status_class from usage_minute
                 where minute < $1 order by minute limit 10000)",
        )
        .bind(before)
        .execute(&db.writer)
        .await?
        .rows_affected();
        total += n;
        if n < 10_000 {
            return Ok(total);
        }
    }
}

/// Deletes one organization's rows (or those without one) older than `before`, the 10 000
/// oldest at a time.
async fn delete_older(db: &Db, org: Option<&str>, before: i64) -> Result<u64, sqlx::Error> {
    // Two spellings: PostgreSQL uses no index for `is not distinct from`.
    let of_org = match org {
        Some(_) => "organization_id = $2",
        None => "organization_id is null",
    };
    let sql = format!(
        "delete from request_log where {of_org} and occurred_at < $1 and occurred_at <= (select max(occurred_at) from (select occurred_at from request_log where {of_org} and occurred_at < $1 order by occurred_at limit 10000) as oldest)"
    );
    let mut total = 0;
    loop {
        let mut query = sqlx::query(&sql).bind(before);
        if let Some(org) = org {
            query = query.bind(org);
        }
        let n = query.execute(&db.writer).await?.rows_affected();
        total += n;
        if n < 10_000 {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn multi_row_placeholders() {
        use crate::ssr::db::Backend;
        assert_eq!(
            super::placeholders(Backend::Postgres, 2, 3),
            "($1,$2,$3),($4,$5,$6)"
        );
        assert_eq!(super::placeholders(Backend::Sqlite, 2, 2), "(?,?),(?,?)");
        // The cached full-size statement is the one a full chunk needs, on either backend.
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let full = super::ROWS_PER_STATEMENT;
            let cached = super::insert_log_sql(backend, full);
            assert_eq!(cached, super::insert_log_sql(backend, full));
            assert!(cached.ends_with(&super::placeholders(backend, full, 12)));
            assert!(matches!(cached, std::borrow::Cow::Borrowed(_)));
            let short = super::insert_log_sql(backend, 3);
            assert!(short.ends_with(&format!(" values {}", super::placeholders(backend, 3, 12))));
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(super::status_class(200), "2xx");
        assert_eq!(super::status_class(201), "2xx");
        assert_eq!(super::status_class(404), "4xx");
        assert_eq!(super::status_class(429), "429");
        assert_eq!(super::status_class(503), "5xx");
    }
}
