//! What the charts draw, read from the per-minute rollup (server only). The few figures only
//! the raw log holds (error codes, latency percentiles, the latest errors) read it in turns:
//! at most [`RAW_READERS`] at once per instance, [`RAW_READERS_PER_ORGANIZATION`] of them for
//! one organization, [`READERS_PER_HOLDER`] for one person over all their organizations, and
//! one more kept for the instance's own (system organization's) reports. Rollup reads take
//! turns the same way ([`ROLLUP_READERS`]); a report never holds one while it waits for the
//! other.

use super::{Count, ErrorReport, OrgTotal, Range, RecentError, RequestSeries};
use crate::error::AppError;
use crate::ssr::db::Db;
use sqlx::Row;

/// The filters of a chart.
#[derive(Clone, Debug, Default)]
pub struct Filter<'a> {
    pub key_id: Option<&'a str>,
    pub route: Option<&'a str>,
}

impl Filter<'_> {
    /// The same filters, owned (for reads run in a task of their own: [`under`]).
    pub fn owned(&self) -> OwnedFilter {
        OwnedFilter {
            key_id: self.key_id.map(str::to_owned),
            route: self.route.map(str::to_owned),
        }
    }
}

/// A [`Filter`] owning its strings.
#[derive(Clone, Debug, Default)]
pub struct OwnedFilter {
    key_id: Option<String>,
    route: Option<String>,
}

impl OwnedFilter {
    pub fn as_filter(&self) -> Filter<'_> {
        Filter {
            key_id: self.key_id.as_deref(),
            route: self.route.as_deref(),
        }
    }
}

/// Runs `reads` in a task of their own, holding `turn` until they end, and answers what they
/// answer. A request that goes away (a closed tab, a client that hangs up) drops the future
/// it awaited; but a query dropped midway runs on in the database, and its connection stays
/// taken until the database is done with it. So the turn is held until then, not handed to
/// the next report: otherwise a client asking for a heavy report and hanging up at once, in a
/// loop, would hold every connection of the instance, past the turns meant to prevent it.
/// (Waiting for a turn stays the request's own: a request gone while it waits waits no more.)
/// The task carries the request: an error in it names the request's id.
pub async fn under<T, F>(turn: Turn, reads: F) -> Result<T, AppError>
where
    F: std::future::Future<Output = Result<T, AppError>> + Send + 'static,
    T: Send + 'static,
{
    crate::ssr::request_id::spawn(async move {
        let _turn = turn;
        reads.await
    })
    .await
    .unwrap_or_else(|e| Err(AppError::internal(e)))
}

/// Longest key id or route template a filter takes, in bytes (both are ASCII).
pub const FILTER_MAX: usize = 200;

/// A range and filters as a form or query string sends them (empty: no filter).
pub fn parse_view<'a>(
    range: &str,
    key_id: &'a str,
    route: &'a str,
) -> Result<(Range, Filter<'a>), AppError> {
    let range = Range::parse(range)
        .ok_or_else(|| AppError::invalid("range", "the range is one of 1h, 24h, 7d, 30d"))?;
    // Ids and route templates are short: a longer filter matches nothing, and is refused
    // before it reaches a query.
    for (field, value) in [("key_id", key_id), ("route", route)] {
        if value.len() > FILTER_MAX {
            return Err(AppError::invalid(
                field,
                format!("{field} is at most {FILTER_MAX} bytes long"),
            ));
        }
    }
    Ok((
        range,
        Filter {
            key_id: Some(key_id).filter(|k| !k.is_empty()),
            route: Some(route).filter(|r| !r.is_empty()),
        },
    ))
}

/// The buckets of `range` ending with the one holding `now`, aligned to the bucket length in
/// a time zone `tz_offset_minutes` east of UTC (so "6-hour" buckets start at local midnight):
/// (first start, bucket length, count).
pub fn buckets(range: Range, now: i64, tz_offset_minutes: i32) -> (i64, i64, i64) {
    let size = range.bucket_ms();
    let offset = tz_offset_minutes as i64 * 60_000;
    let local = now + offset;
    let end_local = local.div_euclid(size) * size + size;
    let start = end_local - range.buckets() * size - offset;
    (start, size, range.buckets())
}

/// Requests over time in the reader's organization, split by status class, every bucket
/// present (zero when nothing happened). The buckets sum to the requests logged in the range.
pub async fn series(
    db: &Db,
    reader: &Reader,
    range: Range,
    filter: &Filter<'_>,
    now: i64,
    tz_offset_minutes: i32,
) -> Result<RequestSeries, AppError> {
    let turn = rollup_turn(db, reader).await?;
    let (db, organization_id, filter) =
        (db.clone(), reader.organization_id.clone(), filter.owned());
    under(turn, async move {
        let filter = filter.as_filter();
        series_in_turn(
            &db,
            &organization_id,
            range,
            &filter,
            now,
            tz_offset_minutes,
        )
        .await
    })
    .await
}

/// [`series`] for a caller holding the organization's rollup turn already.
async fn series_in_turn(
    db: &Db,
    organization_id: &str,
    range: Range,
    filter: &Filter<'_>,
    now: i64,
    tz_offset_minutes: i32,
) -> Result<RequestSeries, AppError> {
    if !(-14 * 60..=14 * 60).contains(&tz_offset_minutes) {
        return Err(AppError::invalid(
            "tz_offset_minutes",
            "the time zone offset is between -840 and 840 minutes",
        ));
    }
    let (start, size, count) = buckets(range, now, tz_offset_minutes);
    let end = start + size * count;
    // Summed per bucket in the statement: a 30-day chart is 30 rows per status class, not one
    // per minute (43 200) held in memory.
    let rows = sqlx::query(
        "select cast((minute - $2) / $6 as bigint) as bucket, status_class, cast(sum(requests) as bigint) as n
         from usage_minute
         where organization_id = $1 and minute >= $2 and minute < $3
           and ($4 = '' or api_key_id = $4) and ($5 = '' or route = $5)
         group by (minute - $2) / $6, status_class",
    )
    .bind(organization_id)
    .bind(start)
    .bind(end)
    .bind(filter.key_id.unwrap_or(""))
    .bind(filter.route.unwrap_or(""))
    .bind(size)
    .fetch_all(&db.reader)
    .await?;
    let n = count as usize;
    let mut out = RequestSeries {
        range: range.as_str().to_string(),
        bucket_ms: size,
        starts: (0..count).map(|i| start + i * size).collect(),
        ok: vec![0; n],
        client_errors: vec![0; n],
        rate_limited: vec![0; n],
        server_errors: vec![0; n],
        ..Default::default()
    };
    for r in rows {
        let i: i64 = r.try_get("bucket")?;
        let class: String = r.try_get("status_class")?;
        let requests: i64 = r.try_get("n")?;
        let Ok(i) = usize::try_from(i) else {
            continue;
        };
        let slot = match class.as_str() {
            "2xx" => &mut out.ok,
            "4xx" => &mut out.client_errors,
            "429" => &mut out.rate_limited,
            _ => &mut out.server_errors,
        };
        if let Some(v) = slot.get_mut(i) {
            *v += requests;
            out.total += requests;
        }
    }
    out.routes = sqlx::query_scalar(
        "select distinct route from usage_minute where organization_id = $1 and minute >= $2 and minute < $3 order by route",
    )
    .bind(organization_id)
    .bind(start)
    .bind(end)
    .fetch_all(&db.reader)
    .await?;
    Ok(out)
}

/// A query of the summary, bound to its organization, time range, key and route (`$1`–`$5`).
fn scoped<'q>(
    sql: &'q str,
    organization_id: &'q str,
    (start, end): (i64, i64),
    key: &'q str,
    route: &'q str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(sql)
        .bind(organization_id)
        .bind(start)
        .bind(end)
        .bind(key)
        .bind(route)
}

/// How many readers of the raw request log (a count, a sort or a grouping over a range of up
/// to 30 days) run at once on an instance. The rest wait their turn: a few viewers asking for
/// long ranges at once would otherwise hold every connection of the pool that key lookups,
/// sessions and the request log's own writes need.
pub const RAW_READERS: usize = 2;

/// How many of those turns one organization holds at once. One: a tenant asking for 30-day
/// reports over and over (its own log, filled cheaply with refused requests) waits for its
/// own turn, and cannot take every turn from one organization alone.
pub const RAW_READERS_PER_ORGANIZATION: u32 = 1;

/// Turns kept for the system organization's reports (its own usage, the instance security
/// scan) on top of [`RAW_READERS`]: tenants holding every shared turn (one user's personal
/// organization and team, or two busy tenants) cannot make the operator's reports wait.
pub const RAW_READERS_RESERVED: usize = 1;

/// The same for the per-minute rollup's readers (the charts, the summary's totals and top
/// lists, the key page's traffic): much cheaper than the raw log, but a tenant whose keys
/// fill the rollup (1000 keys × every route × every status class, refused requests
/// included) and who asks for 30-day charts in parallel would otherwise hold every reader
/// connection too. A report reading both gives its rollup turn back before it asks for its
/// raw one.
pub const ROLLUP_READERS: usize = 3;
pub const ROLLUP_READERS_PER_ORGANIZATION: u32 = 2;

/// How many turns of the raw log (and of the audit log) one holder takes at once, over every
/// organization: one person (a console user with their personal tokens), or the organization
/// keys one person made (followed through keys that made keys), counted apart ([`Reader::of`]).
/// Organizations are cheap to make (a user may own 100): counted per organization only, one
/// account's reports over many of them queued ahead of every other tenant's in the instance's
/// turns. Counted per holder, the rest of its reports wait for its own turn instead, outside
/// the instance's queue.
pub const READERS_PER_HOLDER: u32 = 1;
/// The same for the rollup's turns: a usage page reads its chart and its summary at once.
pub const ROLLUP_READERS_PER_HOLDER: u32 = 2;

/// How long a read waits for its turn before the request is told to retry (503).
const READ_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

type Turns = std::sync::Arc<tokio::sync::Semaphore>;
/// Each organization's turns, counted by the reports that hold or wait for them.
type TurnsByOrganization = crate::ssr::counted::Counted<Turns>;

/// Turns to read a table at once: the instance's, one more reserved for the system
/// organization, and each organization's share (an organization no report holds or waits for
/// is not kept).
pub struct Turnstile {
    pub instance: Turns,
    /// For the system organization only.
    pub reserved: Turns,
    per_organization: u32,
    per_holder: u32,
    by_organization: TurnsByOrganization,
    by_holder: TurnsByOrganization,
    /// What the 503 says is busy.
    busy: &'static str,
}

impl Turnstile {
    fn new(
        instance: usize,
        reserved: usize,
        per_organization: u32,
        per_holder: u32,
        busy: &'static str,
    ) -> Turnstile {
        Turnstile {
            instance: std::sync::Arc::new(tokio::sync::Semaphore::new(instance)),
            reserved: std::sync::Arc::new(tokio::sync::Semaphore::new(reserved)),
            per_organization,
            per_holder,
            by_organization: Default::default(),
            by_holder: Default::default(),
            busy,
        }
    }

    /// How many organizations hold or wait for a turn now.
    pub fn organizations(&self) -> usize {
        self.by_organization.keys()
    }

    /// How many holders hold or wait for a turn now.
    pub fn holders(&self) -> usize {
        self.by_holder.keys()
    }

    /// Waits for a turn of `reader` (its organization's first, then its holder's, then one of
    /// the instance's, or for the system organization its reserved turn, else whichever comes
    /// first); held until dropped. 503 with `Retry-After` past [`READ_WAIT`].
    ///
    /// The organization's turn comes before the holder's: a report waiting for a busy
    /// organization (any member can keep its one raw-log turn busy) holds nothing of its
    /// holder's, so it does not hold up that person's reports in their other organizations.
    /// Waiting for its holder, it holds its organization's turn: no more than that member's
    /// own reports there could.
    async fn turn(&self, reader: &Reader) -> Result<Turn, AppError> {
        let organization_id = reader.organization_id.as_str();
        let holder_claim = self.by_holder.enter(&reader.holder, || {
            std::sync::Arc::new(tokio::sync::Semaphore::new(self.per_holder as usize))
        });
        let claim = self.by_organization.enter(organization_id, || {
            std::sync::Arc::new(tokio::sync::Semaphore::new(self.per_organization as usize))
        });
        let system = organization_id == crate::access::ssr::SYSTEM_ORG_ID;
        let taken = tokio::time::timeout(READ_WAIT, async {
            let organization = claim.value().clone().acquire_owned().await.ok()?;
            let holder = holder_claim.value().clone().acquire_owned().await.ok()?;
            let shared = self.instance.clone().acquire_owned();
            let instance = if system {
                // Its own turn first: a shared one taken by the operator is one less for
                // tenants.
                tokio::select! {
                    biased;
                    t = self.reserved.clone().acquire_owned() => t,
                    t = shared => t,
                }
            } else {
                shared.await
            };
            Some((holder, organization, instance.ok()?))
        })
        .await;
        match taken {
            Ok(Some((holder, organization, instance))) => Ok(Turn {
                _organization: organization,
                _instance: instance,
                _holder: holder,
                _claim: claim,
                _holder_claim: holder_claim,
            }),
            _ => Err(AppError {
                retry_after: Some(5),
                ..AppError::new(
                    crate::error::ErrorCode::Unavailable,
                    format!(
                        "{} busy on this server; try again in a few seconds",
                        self.busy
                    ),
                )
            }),
        }
    }
}

/// A [`Turnstile`] kept once per database (`Db::caches`), with its sizes.
macro_rules! turnstile {
    ($(#[$doc:meta])* $name:ident, $instance:expr, $reserved:expr, $per_organization:expr, $per_holder:expr, $busy:expr) => {
        $(#[$doc])*
        pub struct $name(Turnstile);

        impl Default for $name {
            fn default() -> $name {
                $name(Turnstile::new($instance, $reserved, $per_organization, $per_holder, $busy))
            }
        }

        impl std::ops::Deref for $name {
            type Target = Turnstile;
            fn deref(&self) -> &Turnstile {
                &self.0
            }
        }
    };
}

turnstile!(
    /// The turns of [`RAW_READERS`], one set per database (`Db::caches`).
    RawReaders,
    RAW_READERS,
    RAW_READERS_RESERVED,
    RAW_READERS_PER_ORGANIZATION,
    READERS_PER_HOLDER,
    "usage analytics are"
);

turnstile!(
    /// The turns of [`ROLLUP_READERS`], one set per database (`Db::caches`).
    RollupReaders,
    ROLLUP_READERS,
    1,
    ROLLUP_READERS_PER_ORGANIZATION,
    ROLLUP_READERS_PER_HOLDER,
    "usage analytics are"
);

/// How many reads of the audit log (a page with its filtered count, an export's count: a join, a `like` and an offset over every entry of the organization, of the whole
/// instance for the system organization) run at once on an instance; one at a time per
/// organization. A member holding `audit:read` asking for page after page in parallel waits
/// for its own turn instead of holding the reader connections everyone needs.
pub const AUDIT_READERS: usize = 2;

turnstile!(
    /// The turns of [`AUDIT_READERS`], one set per database (`Db::caches`); one more kept for
    /// the system organization (the operator's instance-wide log).
    AuditReaders,
    AUDIT_READERS,
    1,
    1,
    READERS_PER_HOLDER,
    "audit log reads are"
);

/// One report's claim on its organization's turns: counted from before it waits until it is
/// dropped (turn given back, wait timed out, or the request cancelled), whichever way that
/// happens; the last one out forgets the organization.
type Claim = crate::ssr::counted::Holder<Turns>;

/// A turn to read: the organization's, the holder's and the instance's, given back when
/// dropped.
pub struct Turn {
    // Dropped in this order: the instance's turn is free before the organization's next
    // report can ask for it, and the organization's before the holder's.
    _instance: tokio::sync::OwnedSemaphorePermit,
    _organization: tokio::sync::OwnedSemaphorePermit,
    _holder: tokio::sync::OwnedSemaphorePermit,
    _claim: Claim,
    _holder_claim: Claim,
}

/// Who reads, for the turns: the organization whose rows are read, and the holder whose
/// reports count together over every organization ([`READERS_PER_HOLDER`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reader {
    pub organization_id: String,
    pub holder: String,
}

impl Reader {
    pub fn new(organization_id: &str, holder: &str) -> Reader {
        Reader {
            organization_id: organization_id.to_string(),
            holder: holder.to_string(),
        }
    }

    /// The grant's organization, and whose reports the grant's count with: a person's own
    /// (the user, or a personal token's owner), or, for an organization key, those of the
    /// organization keys of the nearest person up its chain of makers ([`keys_holder`]); a key
    /// no person made (the command line's) holds for itself. A person's keys count apart from
    /// the person: a key they handed to a contractor or a job cannot hold up their console.
    pub async fn of(db: &Db, grant: &crate::access::ssr::Grant) -> Result<Reader, AppError> {
        let holder = match grant.principal.acting_user() {
            Some(user) => user.to_string(),
            None => key_holder(db, grant.principal.actor_id()).await?,
        };
        Ok(Reader {
            organization_id: grant.organization_id.clone(),
            holder,
        })
    }

    /// The same holder reading another organization's rows (the instance-wide reports read
    /// as the system organization).
    pub fn in_organization(&self, organization_id: &str) -> Reader {
        Reader::new(organization_id, &self.holder)
    }
}

/// The holder of the organization keys `person` made (directly, or through keys they made).
pub fn keys_holder(person: &str) -> String {
    format!("{person}/keys")
}

/// The holder of organization key `key_id`: the keys of the nearest person up its chain of
/// makers (a key's owner, else its maker, followed through keys that made keys), else the
/// last key of the chain (made by the command line, or more than 32 keys deep: counted as
/// itself rather than refused).
async fn key_holder(db: &Db, key_id: &str) -> Result<String, AppError> {
    use crate::access::roles::{accountable, Accountable};
    let mut conn = db.reader.acquire().await?;
    Ok(match accountable(&mut conn, key_id).await? {
        Accountable::Person(person) => keys_holder(&person),
        Accountable::Key(key) => key,
    })
}

/// A turn of `reader` to read the raw log ([`RAW_READERS`]).
pub async fn raw_turn(db: &Db, reader: &Reader) -> Result<Turn, AppError> {
    db.caches.get::<RawReaders>().turn(reader).await
}

/// A turn of `reader` to read the per-minute rollup ([`ROLLUP_READERS`]).
pub async fn rollup_turn(db: &Db, reader: &Reader) -> Result<Turn, AppError> {
    db.caches.get::<RollupReaders>().turn(reader).await
}

/// A turn of `reader` to read the audit log ([`AUDIT_READERS`]).
pub async fn audit_turn(db: &Db, reader: &Reader) -> Result<Turn, AppError> {
    db.caches.get::<AuditReaders>().turn(reader).await
}

/// The raw log's rows of an organization, window, key and route (`$1`–`$5` of [`scoped`]).
const RAW: &str = "organization_id = $1 and occurred_at >= $2 and occurred_at < $3 and ($4 = '' or api_key_id = $4) and ($5 = '' or route = $5)";
/// The rollup's rows of the same.
const ROLLUP: &str = "organization_id = $1 and minute >= $2 and minute < $3 and ($4 = '' or api_key_id = $4) and ($5 = '' or route = $5)";
/// Rollup rows of failed requests.
const FAILED: &str = " and status_class <> '2xx'";

/// One organization, window and filters: the top lists and recent errors read from it. It
/// owns what it reads with, so that a report's reads take it into their task ([`under`]).
struct View {
    db: Db,
    organization_id: String,
    window: (i64, i64),
    key: String,
    route: String,
}

impl View {
    fn new(db: &Db, organization_id: &str, window: (i64, i64), filter: &Filter<'_>) -> View {
        View {
            db: db.clone(),
            organization_id: organization_id.to_owned(),
            window,
            key: filter.key_id.unwrap_or("").to_owned(),
            route: filter.route.unwrap_or("").to_owned(),
        }
    }

    fn query<'q>(
        &'q self,
        sql: &'q str,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        scoped(
            sql,
            &self.organization_id,
            self.window,
            &self.key,
            &self.route,
        )
    }

    /// The five largest `column` values by requests in the rollup (`extra`: more conditions).
    async fn top(&self, column: &str, extra: &str) -> Result<Vec<Count>, AppError> {
        let sql = format!(
            "select {column} as name, cast(sum(requests) as bigint) as n from usage_minute where {ROLLUP}{extra}
             group by {column} order by n desc, name limit 5"
        );
        counts(self.query(&sql).fetch_all(&self.db.reader).await?)
    }

    /// [`View::top`] by key, labelled with the keys' names (requests without a key left out).
    async fn top_keys(&self, extra: &str) -> Result<Vec<Count>, AppError> {
        let mut keys = self.top("api_key_id", extra).await?;
        keys.retain(|c| !c.name.is_empty());
        for k in &mut keys {
            if let Some(name) =
                sqlx::query_scalar::<_, String>("select name from api_key where api_key_id = $1")
                    .bind(&k.name)
                    .fetch_optional(&self.db.reader)
                    .await?
            {
                k.label = name;
            }
        }
        Ok(keys)
    }

    /// The most frequent error codes, from the raw log.
    async fn top_codes(&self, n: i64) -> Result<Vec<Count>, AppError> {
        let sql = format!(
            "select error_code as name, count(*) as n from request_log where {RAW} and error_code is not null
             group by error_code order by n desc, name limit $6"
        );
        counts(self.query(&sql).bind(n).fetch_all(&self.db.reader).await?)
    }

    /// The latest failed requests, newest first.
    async fn recent_errors(&self, n: i64) -> Result<Vec<RecentError>, AppError> {
        let sql = format!(
            "select request_id, occurred_at, api_key_id, method, route, status, error_code, error_message from request_log
             where {RAW} and status >= 400 order by occurred_at desc, request_id limit $6"
        );
        let rows = self.query(&sql).bind(n).fetch_all(&self.db.reader).await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok(RecentError {
                    request_id: r.try_get("request_id")?,
                    at: crate::ssr::db::rfc3339(r.try_get("occurred_at")?),
                    key_id: r.try_get("api_key_id")?,
                    method: r.try_get("method")?,
                    route: r.try_get("route")?,
                    status: r.try_get("status")?,
                    code: r.try_get("error_code")?,
                    message: r.try_get("error_message")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?)
    }
}

/// `name`, `n` rows as counts labelled with their names.
fn counts(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<Count>, AppError> {
    Ok(rows
        .iter()
        .map(|r| {
            let name: String = r.try_get("name")?;
            Ok(Count {
                label: name.clone(),
                name,
                requests: r.try_get("n")?,
            })
        })
        .collect::<Result<Vec<Count>, sqlx::Error>>()?)
}

/// The errors page of the reader's organization over `range`: the chart's series with each
/// bucket's error rate, totals, top error codes, failing keys and routes, and the latest
/// errors.
pub async fn errors(
    db: &Db,
    reader: &Reader,
    range: Range,
    filter: &Filter<'_>,
    now: i64,
    tz_offset_minutes: i32,
) -> Result<ErrorReport, AppError> {
    let organization_id = reader.organization_id.as_str();
    // The rollup's turn, given back before the raw log's is asked for: a report waiting for
    // the slow raw read never holds a turn that every chart needs.
    let series = series(db, reader, range, filter, now, tz_offset_minutes).await?;
    let error_rate: Vec<f64> = (0..series.starts.len())
        .map(|i| {
            let errors = series.client_errors[i] + series.rate_limited[i] + series.server_errors[i];
            let all = errors + series.ok[i];
            if all == 0 {
                0.0
            } else {
                (errors as f64 * 1000.0 / all as f64).round() / 10.0
            }
        })
        .collect();
    let errors: i64 = series.client_errors.iter().sum::<i64>()
        + series.rate_limited.iter().sum::<i64>()
        + series.server_errors.iter().sum::<i64>();
    let end = series.starts.last().map_or(0, |s| s + series.bucket_ms);
    let window = (series.starts.first().copied().unwrap_or(0), end);
    let view = View::new(db, organization_id, window, filter);
    let raw = raw_turn(db, reader).await?;
    let (top_codes, top_keys, top_routes, recent) = under(raw, async move {
        Ok((
            view.top_codes(10).await?,
            view.top_keys(FAILED).await?,
            view.top("route", FAILED).await?,
            view.recent_errors(50).await?,
        ))
    })
    .await?;
    Ok(ErrorReport {
        requests: series.total,
        errors,
        error_rate,
        top_codes,
        top_keys,
        top_routes,
        recent,
        series,
    })
}

/// Every organization's requests, errors and active keys over `range` (UTC), busiest first:
/// what instance admins see (`reader`: in the system organization).
pub async fn org_totals(
    db: &Db,
    reader: &Reader,
    range: Range,
    now: i64,
) -> Result<Vec<OrgTotal>, AppError> {
    let reader = reader.in_organization(crate::access::ssr::SYSTEM_ORG_ID);
    let turn = rollup_turn(db, &reader).await?;
    let (start, size, count) = buckets(range, now, 0);
    let db = db.clone();
    let rows = under(turn, async move {
        let rows = sqlx::query(
            "select u.organization_id, coalesce(o.name, u.organization_id) as name,
                    cast(sum(u.requests) as bigint) as n,
                    cast(sum(case when u.status_class <> '2xx' then u.requests else 0 end) as bigint) as e,
                    count(distinct nullif(u.api_key_id, '')) as k
             from usage_minute u left join organization o on o.organization_id = u.organization_id
             where u.minute >= $1 and u.minute < $2 and u.organization_id <> ''
             group by u.organization_id, o.name order by n desc, u.organization_id limit 200",
        )
        .bind(start)
        .bind(start + size * count)
        .fetch_all(&db.reader)
        .await?;
        Ok(rows)
    })
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            Ok(OrgTotal {
                organization_id: r.try_get("organization_id")?,
                name: r.try_get("name")?,
                requests: r.try_get("n")?,
                errors: r.try_get("e")?,
                keys: r.try_get("k")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?)
}

/// A key of the reader's organization: its requests and failed requests logged from `since`
/// (from the rollup: whole minutes). The organization is in the query, not only checked by
/// the caller.
pub async fn key_traffic(
    db: &Db,
    reader: &Reader,
    key_id: &str,
    since: i64,
) -> Result<(i64, i64), AppError> {
    let turn = rollup_turn(db, reader).await?;
    let (db, organization_id, key_id) = (
        db.clone(),
        reader.organization_id.clone(),
        key_id.to_owned(),
    );
    under(turn, async move {
        let r = sqlx::query(
            "select cast(coalesce(sum(requests), 0) as bigint) as n,
                    cast(coalesce(sum(case when status_class <> '2xx' then requests else 0 end), 0) as bigint) as e
             from usage_minute where organization_id = $1 and api_key_id = $2 and minute >= $3",
        )
        .bind(organization_id)
        .bind(key_id)
        .bind(since - since.rem_euclid(60_000))
        .fetch_one(&db.reader)
        .await?;
        Ok((r.try_get("n")?, r.try_get("e")?))
    })
    .await
}

/// Totals, error rate, latency percentiles, top keys, routes and error codes, and the latest
/// errors of the reader's organization over `range` (the same window as the chart, in UTC).
pub async fn summary(
    db: &Db,
    reader: &Reader,
    range: Range,
    filter: &Filter<'_>,
    now: i64,
) -> Result<super::UsageSummary, AppError> {
    use super::UsageSummary;
    let (start, size, count) = buckets(range, now, 0);
    let view = std::sync::Arc::new(View::new(
        db,
        &reader.organization_id,
        (start, start + size * count),
        filter,
    ));
    // Totals and top lists from the rollup, in its turn, given back before the raw log's is
    // asked for.
    let rollup = rollup_turn(db, reader).await?;
    let (requests, errors, top_keys, top_routes) = under(rollup, {
        let view = view.clone();
        async move {
            let totals = view
                .query(&format!(
                    "select cast(coalesce(sum(requests), 0) as bigint) as n,
                        cast(coalesce(sum(case when status_class <> '2xx' then requests else 0 end), 0) as bigint) as e
                     from usage_minute where {ROLLUP}"
                ))
                .fetch_one(&view.db.reader)
                .await?;
            let requests: i64 = totals.try_get("n")?;
            let errors: i64 = totals.try_get("e")?;
            let top_keys = view.top_keys("").await?;
            let top_routes = view.top("route", "").await?;
            Ok((requests, errors, top_keys, top_routes))
        }
    })
    .await?;
    let raw = raw_turn(db, reader).await?;
    let (top_error_codes, percentiles, recent_errors) = under(raw, async move {
        let top_error_codes = view.top_codes(5).await?;
        // Nearest rank: the smallest value with at least p of the values at or below it, rank
        // ceil(p * n). The three are read in one sort of the range, counted in the same
        // statement (rows written or retired meanwhile cannot move the ranks off the rows).
        let rows = view
            .query(&format!(
                "select rn, n, latency_us from
                (select latency_us, row_number() over (order by latency_us) as rn, count(*) over () as n
                 from request_log where {RAW}) ranked
             where rn = (50 * n + 99) / 100 or rn = (95 * n + 99) / 100 or rn = (99 * n + 99) / 100"
            ))
            .fetch_all(&view.db.reader)
            .await?;
        let mut percentiles = [0.0f64; 3];
        if let Some(first) = rows.first() {
            let logged: i64 = first.try_get("n")?;
            let mut at = std::collections::HashMap::new();
            for row in &rows {
                at.insert(
                    row.try_get::<i64, _>("rn")?,
                    row.try_get::<i64, _>("latency_us")?,
                );
            }
            for (slot, p) in percentiles.iter_mut().zip([50, 95, 99]) {
                let rank = (p * logged + 99) / 100;
                let us = at.get(&rank).copied().ok_or_else(|| {
                    AppError::internal(format!("latency rank {rank} of {logged} not found"))
                })?;
                *slot = us as f64 / 1000.0;
            }
        }
        let recent_errors = view.recent_errors(20).await?;
        Ok((top_error_codes, percentiles, recent_errors))
    })
    .await?;
    Ok(UsageSummary {
        range: range.as_str().to_string(),
        requests,
        errors,
        error_rate: if requests > 0 {
            errors as f64 / requests as f64
        } else {
            0.0
        },
        p50_ms: percentiles[0],
        p95_ms: percentiles[1],
        p99_ms: percentiles[2],
        top_keys,
        top_routes,
        top_error_codes,
        recent_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_aligned_and_hold_now() {
        let now = 1_764_000_000_000 + 37_123; // some instant, not aligned
        for range in Range::ALL {
            for tz in [0, 60, -300, 330, 345] {
                let (start, size, count) = buckets(*range, now, tz);
                let end = start + size * count;
                assert!(start <= now && now < end, "{range:?} {tz}");
                assert!(end - now <= size, "the last bucket holds now");
                assert_eq!(
                    (start + tz as i64 * 60_000).rem_euclid(size),
                    0,
                    "aligned in local time"
                );
                assert_eq!(
                    start % 60_000,
                    0,
                    "whole minutes: rollup rows fall in one bucket"
                );
            }
        }
        assert_eq!(
            buckets(Range::Month, now, 0).2 * Range::Month.bucket_ms(),
            30 * 86_400_000
        );
        assert_eq!(
            buckets(Range::Day, now, 0).2 * Range::Day.bucket_ms(),
            86_400_000
        );
    }
}
