//! Each key's rate limit, exact across instances and without a database round trip per
//! request (server only). The arithmetic lives in [`super::window`]; this is the state.
//!
//! The authoritative count is the `rate_bucket` table: admissions (and leased tokens) per key
//! and bucket. An instance **leases** tokens from the current bucket in one transaction
//! (PostgreSQL serializes the key with an advisory lock; SQLite has one writer): it reads the
//! count of every bucket overlapping the window, grants at most what is left, and adds the
//! grant to the current bucket at once. The instance then spends the lease from memory, **only
//! while that bucket is current**: tokens counted in bucket *b* are spent inside *b*, which is
//! what the proof in `window` needs. An unspent lease is given back when its bucket ends.
//!
//! - A lease takes a quarter of what is left (at least one), so instances share the rest and
//!   a busy key costs about log₄(limit) + a few leases per bucket; only the last handful of
//!   requests before the limit take one each. The count lives in the database, so it
//!   survives a restart.
//! - A **busy** key (one used in consecutive buckets) leases the next bucket ahead of time, in
//!   the background, in the last second of the current one (at once for buckets of a second or
//!   less, which a database write behind the log's batch could otherwise outlast): when
//!   the bucket turns, its requests spend the lease already taken instead of all waiting on
//!   one database transaction (which on SQLite queues behind the request log's batch). Tokens
//!   leased ahead are counted in the bucket they will be spent in, and every lease counts
//!   every bucket that has not left its window, future ones included, so the proof holds
//!   unchanged (see `take_lease`).
//! - A refusal is remembered until the count can go down, at most a second (another instance
//!   may give tokens back), so a flood of refused requests costs one database round trip per
//!   key, instance and second.
//! - A crash loses only unspent leases, which stay counted until their window passes: the
//!   error is always toward refusing, never toward admitting.

use super::window::{Counts, Decision, Limit};
use crate::error::{AppError, ErrorCode};
use crate::ssr::db::{now_ms, Backend, Db};
use sqlx::Row;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a refusal is trusted without asking the database.
const SHARED_REFUSAL_MS: i64 = 1000;
/// How many times [`RateLimiter::usage`] reads the shared count while leases move under it.
const USAGE_READS: usize = 3;
/// Leases one decision takes at most when its bucket keeps ending while it leases (a database
/// slower than a bucket); past that the request is refused.
const LEASE_ATTEMPTS: usize = 4;
/// How long a key takes no new lease after its leases all outlasted their buckets.
const UNAVAILABLE_MS: i64 = 1000;
/// How long the last sweep waits for background leases and give-backs to finish.
const SETTLE: Duration = Duration::from_secs(2);

/// Every key's limiter state on this instance; a domain state plugged in at boot.
#[derive(Debug)]
pub struct RateLimiter {
    db: Db,
    keys: Mutex<HashMap<String, Arc<tokio::sync::Mutex<KeyState>>>>,
    pub admitted: AtomicU64,
    pub refused: AtomicU64,
    /// Leases taken (those taken ahead included).
    pub leases: Arc<AtomicU64>,
    /// Leases taken ahead that came into use.
    pub promoted: AtomicU64,
    background: Arc<Background>,
}

#[derive(Debug, Default)]
struct KeyState {
    lease: Option<Lease>,
    /// A lease of the next bucket, taken ahead, and the shared count as read then.
    ahead: Option<(Lease, Counts)>,
    /// The bucket a lease is being taken ahead for (a job that died leaves a past bucket
    /// here, which no longer holds anything back).
    leasing_ahead: Option<i64>,
    /// The current lease follows one of the bucket before: the key leases ahead.
    busy: bool,
    /// Counts the leases this instance has taken of the shared count: a reader of the key's
    /// use ([`RateLimiter::usage`]) that saw it move while it read the count reads again.
    leases_taken: u64,
    /// The shared count as read at the last lease (our grant included).
    view: Counts,
    /// The limit the lease and view were taken under: a plan change retakes them.
    limit: Option<Limit>,
    /// Refused without asking the database until then.
    refused_until: i64,
    /// After a decision whose leases all outlasted their buckets: until then no new lease is
    /// tried (503 at once), so that clients ignoring `Retry-After` do not pile transactions
    /// onto a database that is already slow (a lease taken ahead still serves its bucket).
    unavailable_until: i64,
    last_used: i64,
}

/// Whatever this instance holds unspent of a key is in the shared count but not used: an old
/// bucket's lease until the sweep gives it back, one taken under a limit since changed, one
/// taken ahead whose bucket has begun.
fn unspent_of(st: &KeyState) -> Vec<Lease> {
    st.lease
        .into_iter()
        .chain(st.ahead.as_ref().map(|(l, _)| *l))
        .collect()
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    bucket: i64,
    left: u64,
}

impl RateLimiter {
    pub fn new(db: Db) -> RateLimiter {
        RateLimiter {
            db,
            keys: Mutex::default(),
            admitted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            leases: Arc::default(),
            promoted: AtomicU64::new(0),
            background: Arc::default(),
        }
    }

    /// The limiter, as boot plugged it into the state.
    pub fn of(state: &crate::ssr::AppState) -> Result<&RateLimiter, AppError> {
        state.domains.get::<RateLimiter>()
    }

    fn state_of(&self, key_id: &str) -> Arc<tokio::sync::Mutex<KeyState>> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        // A lookup first: the id is copied only the first time this instance sees the key.
        if let Some(state) = keys.get(key_id) {
            return state.clone();
        }
        keys.entry(key_id.to_string()).or_default().clone()
    }

    /// Decides one request of `key_id` under `limit`, now.
    pub async fn check(&self, key_id: &str, limit: Limit) -> Result<Decision, AppError> {
        self.decide(key_id, limit, now_ms).await
    }

    /// [`RateLimiter::check`] at a given time (ms): what tests drive.
    pub async fn check_at(
        &self,
        key_id: &str,
        limit: Limit,
        now: i64,
    ) -> Result<Decision, AppError> {
        self.decide(key_id, limit, move || now).await
    }

    /// [`RateLimiter::check`] reading `clock` wherever it reads the time: tests drive a
    /// clock that moves while the decision leases.
    pub async fn check_with_clock(
        &self,
        key_id: &str,
        limit: Limit,
        clock: impl Fn() -> i64,
    ) -> Result<Decision, AppError> {
        self.decide(key_id, limit, clock).await
    }

    /// Decides by `clock`, read once the key is held and again after every lease: a time
    /// read before waiting for the key (or for the database) could spend a bucket's tokens
    /// after the bucket ended, outside what the count allowed.
    async fn decide(
        &self,
        key_id: &str,
        limit: Limit,
        clock: impl Fn() -> i64,
    ) -> Result<Decision, AppError> {
        let state = self.state_of(key_id);
        let mut st = state.lock().await;
        if st.limit != Some(limit) {
            // A new key here, or its plan changed: nothing leased under the old limit is spent.
            st.refused_until = 0;
            st.unavailable_until = 0;
            st.busy = false;
            st.leasing_ahead = None;
            if let Some(lease) = st.lease.take() {
                self.give_back(key_id, lease).await?;
            }
            if let Some((lease, _)) = st.ahead.take() {
                self.give_back(key_id, lease).await?;
            }
            st.limit = Some(limit);
        }
        // Each pass reads the clock, then spends from the current lease or takes a new one;
        // the pass after the last lease only tries to spend it.
        for attempt in 0..=LEASE_ATTEMPTS {
            let now = clock();
            st.last_used = now;
            let bucket = limit.bucket_start(now);
            self.promote_ahead(key_id, &mut st, bucket);
            if let Some(lease) = st.lease.as_mut() {
                if lease.bucket == bucket && lease.left > 0 {
                    lease.left -= 1;
                    let left = lease.left;
                    if let Some(job) = self.ahead_job(key_id, &state, &mut st, limit, now) {
                        self.background.spawn(job.run());
                    }
                    return Ok(self.admit(&mut st, limit, now, left));
                }
            }
            if now < st.refused_until {
                return Ok(self.refuse(&mut st, limit, now));
            }
            if now < st.unavailable_until {
                return Err(unavailable());
            }
            if attempt == LEASE_ATTEMPTS {
                break;
            }
            // Lease anew. What is left of a lease of an older bucket goes back in the same
            // transaction, and so does a lease taken ahead: this bucket ran out first, so its
            // tokens may be needed now rather than in the next one.
            let old = st.lease.take();
            st.busy = old.is_some_and(|l| l.bucket == bucket - limit.bucket_ms())
                || (st.busy && old.is_some_and(|l| l.bucket == bucket));
            let back: Vec<Lease> = old
                .into_iter()
                .chain(st.ahead.take().map(|(lease, _)| lease))
                .filter(|l| l.left > 0)
                .collect();
            let (granted, view) =
                take_lease(&self.db, &self.leases, key_id, limit, now, &back).await?;
            st.view = view;
            if granted == 0 {
                let until = now
                    + st.view
                        .ms_until_at_most(&limit, now, limit.limit - 1)
                        .max(1);
                // Another instance may give tokens back before then: ask again within a second.
                st.refused_until = until.min(now + SHARED_REFUSAL_MS);
                return Ok(self.refuse(&mut st, limit, now));
            }
            st.refused_until = 0;
            st.leases_taken += 1;
            // Spent from the top, if its bucket is still current once the clock is read again.
            st.lease = Some(Lease {
                bucket,
                left: granted,
            });
        }
        // The bucket kept ending while leasing: the database is slower than a bucket.
        // Admitting is not safe, and a 429 would blame the key for the service's slowness.
        // The last lease's bucket has ended too: it goes back with the key's next lease or
        // the sweep.
        tracing::warn!(
            key_id,
            attempts = LEASE_ATTEMPTS,
            bucket_ms = limit.bucket_ms(),
            "rate limiter: every lease outlasted its bucket; answering 503 for a second"
        );
        st.unavailable_until = clock() + UNAVAILABLE_MS;
        Err(unavailable())
    }

    /// When the bucket a lease was taken ahead for has come, makes it the current lease; the
    /// previous lease's rest goes back in the background. A lease taken ahead for a bucket
    /// already past goes back too.
    fn promote_ahead(&self, key_id: &str, st: &mut KeyState, bucket: i64) {
        let Some((ahead, view)) = st.ahead.take_if(|(lease, _)| lease.bucket <= bucket) else {
            return;
        };
        if ahead.bucket < bucket {
            self.give_back_later(key_id, ahead);
            return;
        }
        if let Some(old) = st.lease.replace(ahead) {
            self.give_back_later(key_id, old);
        }
        st.view = view;
        st.busy = true;
        st.refused_until = 0;
        self.promoted.fetch_add(1, Ordering::Relaxed);
    }

    /// The background lease of the next bucket, for a busy key late in its bucket (see the
    /// module doc).
    fn ahead_job(
        &self,
        key_id: &str,
        state: &Arc<tokio::sync::Mutex<KeyState>>,
        st: &mut KeyState,
        limit: Limit,
        now: i64,
    ) -> Option<LeaseAhead> {
        let next = limit.next_bucket_start(now);
        let late = next - now <= limit.bucket_ms().min(1000);
        // Not near the limit: there a lease ahead would hold back tokens this bucket may need.
        // What this instance holds unspent is not use.
        let unspent = st.lease.map_or(0, |l| l.left);
        let used = st.view.counted(&limit, now).saturating_sub(unspent);
        let roomy = used.saturating_mul(2) < limit.limit;
        if !(st.busy && late && roomy) {
            return None;
        }
        self.lease_job(key_id, state, st, limit, next)
    }

    /// A lease of `bucket` to take in the background, unless the key holds one or is taking
    /// one.
    fn lease_job(
        &self,
        key_id: &str,
        state: &Arc<tokio::sync::Mutex<KeyState>>,
        st: &mut KeyState,
        limit: Limit,
        bucket: i64,
    ) -> Option<LeaseAhead> {
        if st.ahead.is_some() || st.leasing_ahead.is_some_and(|b| b >= bucket) {
            return None;
        }
        st.leasing_ahead = Some(bucket);
        Some(LeaseAhead {
            db: self.db.clone(),
            leases: self.leases.clone(),
            key_id: key_id.to_string(),
            state: state.clone(),
            limit,
            bucket,
        })
    }

    /// Leases the bucket after the one holding `now` for a key this instance has decided
    /// under `limit`, as [`RateLimiter::check_at`] does in the background for a busy key late
    /// in its bucket, and waits for it: what tests drive.
    pub async fn lease_ahead(&self, key_id: &str, limit: Limit, now: i64) {
        let state = self.state_of(key_id);
        let job = {
            let mut st = state.lock().await;
            if st.limit != Some(limit) {
                return;
            }
            self.lease_job(key_id, &state, &mut st, limit, limit.next_bucket_start(now))
        };
        if let Some(job) = job {
            job.run().await;
        }
    }

    /// How much of `limit` the key has used in the window ending `now`, without spending
    /// anything: the shared count less what this instance leased and has not spent (another
    /// instance's unspent lease counts until it is given back, within one bucket). Returns the
    /// count (above the limit when the limit was lowered) and what the `RateLimit-*` headers
    /// would say.
    pub async fn usage(
        &self,
        key_id: &str,
        limit: Limit,
        now: i64,
    ) -> Result<(u64, Decision), AppError> {
        let state = {
            let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            keys.get(key_id).cloned()
        };
        // The key's lock is never held across the read: every request of the key takes it, and
        // a viewer's reads (waiting for a connection of the reader pool, say) must not make
        // them wait. A lease taken while the count was read would be subtracted from a count
        // that may not hold it yet: when one was (or one being taken ahead was in flight), the
        // count is read again, a few times at most; then only what was held before the read
        // is subtracted, the smaller of then and now: a miss shows more used, never less.
        let mut reads = 0;
        let (rows, st, settled, held_before) = loop {
            let (before, held_before) = match &state {
                Some(state) => {
                    let st = state.lock().await;
                    (Some(st.leases_taken), unspent_of(&st))
                }
                None => (None, Vec::new()),
            };
            let rows = sqlx::query(
                "select bucket_start, bucket_end, admitted from rate_bucket where api_key_id = $1 and bucket_end > $2 and bucket_start <= $3",
            )
            .bind(key_id)
            .bind(now - limit.window_ms)
            .bind(now)
            .fetch_all(&self.db.reader)
            .await?;
            let st = match &state {
                Some(state) => Some(state.lock().await),
                None => None,
            };
            reads += 1;
            let settled = st.as_ref().is_none_or(|st| {
                Some(st.leases_taken) == before
                    && st
                        .leasing_ahead
                        .is_none_or(|b| b + limit.bucket_ms() <= now)
            });
            if settled || reads == USAGE_READS {
                break (rows, st, settled, held_before);
            }
        };
        let mut unspent = st.as_deref().map(unspent_of).unwrap_or_default();
        drop(st);
        if !settled {
            unspent = unspent
                .into_iter()
                .filter_map(|now| {
                    let then = held_before.iter().find(|l| l.bucket == now.bucket)?;
                    Some(Lease {
                        bucket: now.bucket,
                        left: now.left.min(then.left),
                    })
                })
                .collect();
        }
        let mut view = counts_of(&limit, &rows, &unspent)?;
        let used = view.counted(&limit, now);
        Ok((
            used,
            Decision {
                admitted: used < limit.limit,
                limit: limit.limit,
                remaining: limit.limit.saturating_sub(used),
                reset_ms: if used == 0 {
                    0
                } else {
                    view.ms_until_at_most(&limit, now, used - 1)
                },
            },
        ))
    }

    fn admit(&self, st: &mut KeyState, limit: Limit, now: i64, left: u64) -> Decision {
        self.admitted.fetch_add(1, Ordering::Relaxed);
        let counted = st.view.counted(&limit, now);
        // Others' use as of the lease, plus what this instance still holds.
        let remaining = limit.limit.saturating_sub(counted) + left;
        let reset_ms = st
            .view
            .ms_until_at_most(&limit, now, counted.saturating_sub(1));
        Decision {
            admitted: true,
            limit: limit.limit,
            remaining: remaining.min(limit.limit),
            reset_ms,
        }
    }

    fn refuse(&self, st: &mut KeyState, limit: Limit, now: i64) -> Decision {
        self.refused.fetch_add(1, Ordering::Relaxed);
        Decision {
            admitted: false,
            limit: limit.limit,
            remaining: 0,
            reset_ms: st
                .view
                .ms_until_at_most(&limit, now, limit.limit - 1)
                .max(st.refused_until - now)
                .max(1),
        }
    }

    async fn give_back(&self, key_id: &str, lease: Lease) -> Result<(), AppError> {
        give_back(&self.db, key_id, lease).await
    }

    /// Gives `lease` back without holding up the request path (the key's requests do not
    /// wait on the database for it). Until it is written the tokens stay counted: the error,
    /// if the process stops first, is toward refusing.
    fn give_back_later(&self, key_id: &str, lease: Lease) {
        if lease.left == 0 {
            return;
        }
        let (db, key_id) = (self.db.clone(), key_id.to_string());
        self.background
            .spawn(async move { give_back_or_warn(&db, &key_id, lease).await });
    }

    /// Gives back the unspent leases of buckets that have ended (or all of them, on
    /// shutdown), and forgets keys idle for a day. Run by the `rate-limit` worker; returns how
    /// many leases were given back.
    pub async fn sweep(&self, now: i64, everything: bool) -> Result<usize, AppError> {
        if everything {
            // Shutdown: a lease being taken ahead, or given back, is finished first (bounded),
            // so that what it holds goes back now rather than staying counted for a window.
            self.settled(SETTLE).await;
        }
        let states: Vec<(String, Arc<tokio::sync::Mutex<KeyState>>)> = {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            let all = keys.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            keys.retain(|_, st| {
                st.try_lock().map_or(true, |st| {
                    now - st.last_used < 86_400_000 || st.lease.is_some() || st.ahead.is_some()
                })
            });
            all
        };
        // The leases are taken out under each key's lock, and given back after it is let go:
        // the key's requests do not wait on those round trips (a lease they take meanwhile
        // sees these tokens still counted, which errs toward refusing).
        let mut ending = Vec::new();
        for (key_id, state) in states {
            let mut st = state.lock().await;
            let ended = match (st.lease, st.limit) {
                (Some(lease), Some(limit)) => everything || lease.bucket != limit.bucket_start(now),
                _ => false,
            };
            if ended {
                if let Some(lease) = st.lease.take() {
                    ending.push((key_id.clone(), lease));
                }
            }
            // A lease taken ahead for a bucket that has passed unused (or any, on shutdown).
            let stale = match (&st.ahead, st.limit) {
                (Some((lease, _)), Some(limit)) => {
                    everything || lease.bucket < limit.bucket_start(now)
                }
                _ => false,
            };
            if stale {
                if let Some((lease, _)) = st.ahead.take() {
                    ending.push((key_id, lease));
                }
            }
        }
        // One failure does not keep the other keys' tokens counted: each is tried, and the
        // first error is reported after.
        let (mut returned, mut failed) = (0, None);
        for (key_id, lease) in ending {
            match self.give_back(&key_id, lease).await {
                Ok(()) => returned += 1,
                Err(e) => {
                    tracing::warn!(error = %e.message, "rate-limit lease not given back");
                    failed.get_or_insert(e);
                }
            }
        }
        failed.map_or(Ok(returned), Err)
    }

    /// Waits until the background work (leases taken ahead, leases given back) is done, or
    /// `within` passes.
    pub async fn settled(&self, within: Duration) {
        self.background.settled(within).await
    }

    /// Keys with state on this instance.
    pub fn tracked(&self) -> usize {
        self.keys.lock().map(|k| k.len()).unwrap_or_default()
    }
}

/// The limiter's background work (leases taken ahead, leases given back), counted so that the
/// last sweep can wait for it.
#[derive(Debug, Default)]
struct Background {
    running: AtomicUsize,
    finished: tokio::sync::Notify,
}

impl Background {
    fn spawn(self: &Arc<Self>, work: impl Future<Output = ()> + Send + 'static) {
        self.running.fetch_add(1, Ordering::SeqCst);
        let done = Finished(self.clone());
        tokio::spawn(async move {
            // Counted down when the task ends, whether it finished or panicked.
            let _done = done;
            work.await;
        });
    }

    /// Waits until no background work runs, or `within` passes.
    async fn settled(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let finished = self.finished.notified();
            tokio::pin!(finished);
            finished.as_mut().enable();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                return;
            }
        }
    }
}

struct Finished(Arc<Background>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
        self.0.finished.notify_waiters();
    }
}

/// A lease of the next bucket being taken in the background (see [`RateLimiter::ahead_job`]).
struct LeaseAhead {
    db: Db,
    leases: Arc<AtomicU64>,
    key_id: String,
    state: Arc<tokio::sync::Mutex<KeyState>>,
    limit: Limit,
    /// The bucket the lease is for.
    bucket: i64,
}

impl LeaseAhead {
    /// Takes the lease without holding the key (its requests go on spending the current
    /// lease), then keeps it, unless the key's limit changed meanwhile (then it goes back).
    async fn run(self) {
        let taken = take_lease(
            &self.db,
            &self.leases,
            &self.key_id,
            self.limit,
            self.bucket,
            &[],
        )
        .await;
        let mut st = self.state.lock().await;
        if st.leasing_ahead == Some(self.bucket) {
            st.leasing_ahead = None;
        }
        match taken {
            Ok((0, _)) => {}
            Ok((granted, view)) => {
                let lease = Lease {
                    bucket: self.bucket,
                    left: granted,
                };
                st.leases_taken += 1;
                if st.limit == Some(self.limit) && st.ahead.is_none() {
                    st.ahead = Some((lease, view));
                } else {
                    drop(st);
                    give_back_or_warn(&self.db, &self.key_id, lease).await;
                }
            }
            Err(e) => tracing::warn!(error = %e.message, "rate-limit lease ahead not taken"),
        }
    }
}

/// One transaction: give back an old lease, read the count of every bucket that overlaps the
/// window ending at `at` **or starts later** (a lease another instance took ahead), grant a
/// quarter of what is left (at least one), and count the grant in the bucket holding `at`.
///
/// `at` is now for the current bucket, or the start of the next one for a lease taken ahead.
/// Why no window over-admits: take any rolling window and, among the grants whose tokens were
/// spent in it, the last one (the database serializes grants per key). Tokens are spent only
/// inside their bucket, at or after their grant's `at`, so every earlier grant spent in the
/// window has a bucket that ends after `at − W` and was counted whole by that last grant, which
/// kept the total at or below the limit. Counting future buckets only ever counts more.
async fn take_lease(
    db: &Db,
    leases: &AtomicU64,
    key_id: &str,
    limit: Limit,
    at: i64,
    back: &[Lease],
) -> Result<(u64, Counts), AppError> {
    leases.fetch_add(1, Ordering::Relaxed);
    let mut tx = db.writer.begin().await?;
    if db.backend == Backend::Postgres {
        sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 7))")
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
    }
    for old in back {
        give_back_statement(key_id, old).execute(&mut *tx).await?;
    }
    let rows = sqlx::query(
        "select bucket_start, bucket_end, admitted from rate_bucket where api_key_id = $1 and bucket_end > $2",
    )
    .bind(key_id)
    .bind(at - limit.window_ms)
    .fetch_all(&mut *tx)
    .await?;
    let mut view = counts_of(&limit, &rows, &[])?;
    let used = view.counted(&limit, at);
    let left = limit.limit.saturating_sub(used);
    // A quarter of what is left (at least one): other instances keep a share, and a crash
    // strands at most a quarter.
    let granted = left.div_ceil(4);
    if granted > 0 {
        let start = limit.bucket_start(at);
        sqlx::query(
            "insert into rate_bucket (api_key_id, bucket_start, bucket_end, admitted) values ($1, $2, $3, $4)
             on conflict (api_key_id, bucket_start) do update set admitted = rate_bucket.admitted + excluded.admitted,
                 bucket_end = case when excluded.bucket_end > rate_bucket.bucket_end then excluded.bucket_end else rate_bucket.bucket_end end",
        )
        .bind(key_id)
        .bind(start)
        .bind(start + limit.bucket_ms())
        .bind(granted as i64)
        .execute(&mut *tx)
        .await?;
        view.add(&limit, at, granted);
    }
    tx.commit().await?;
    Ok((granted, view))
}

/// The shared count from `rate_bucket` rows. Each row is counted in the bucket, under `limit`,
/// that holds its **last** instant: a row written under another window (before a plan change)
/// then leaves the count no earlier than it leaves the window. Under the same window it is the
/// row's own bucket.
///
/// `unspent` (leases this instance holds and has not spent) comes off each lease's own row
/// first, by the row's start: after a plan change a row need not start where the current
/// limit's bucket does.
fn counts_of(
    limit: &Limit,
    rows: &[sqlx::any::AnyRow],
    unspent: &[Lease],
) -> Result<Counts, sqlx::Error> {
    let mut view = Counts::default();
    for r in rows {
        let start: i64 = r.try_get("bucket_start")?;
        let end: i64 = r.try_get("bucket_end")?;
        let n: i64 = r.try_get("admitted")?;
        let held: u64 = unspent
            .iter()
            .filter(|l| l.bucket == start)
            .map(|l| l.left)
            .sum();
        view.add(limit, end - 1, (n.max(0) as u64).saturating_sub(held));
    }
    Ok(view)
}

/// The answer when the database is too slow for the limiter to decide: 503, retry in a second.
fn unavailable() -> AppError {
    AppError {
        retry_after: Some(1),
        ..AppError::new(
            ErrorCode::Unavailable,
            "the rate limiter could not decide in time; try again in a second",
        )
    }
}

/// Takes `lease`'s unspent tokens back out of its bucket's shared count (never below zero).
fn give_back_statement<'q>(
    key_id: &'q str,
    lease: &Lease,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query("update rate_bucket set admitted = admitted - $1 where api_key_id = $2 and bucket_start = $3 and admitted >= $1")
        .bind(lease.left as i64)
        .bind(key_id)
        .bind(lease.bucket)
}

async fn give_back(db: &Db, key_id: &str, lease: Lease) -> Result<(), AppError> {
    if lease.left == 0 {
        return Ok(());
    }
    give_back_statement(key_id, &lease)
        .execute(&db.writer)
        .await?;
    Ok(())
}

/// [`give_back`] off the request path: a failure is logged (the tokens stay counted, which
/// errs toward refusing).
async fn give_back_or_warn(db: &Db, key_id: &str, lease: Lease) {
    if let Err(e) = give_back(db, key_id, lease).await {
        tracing::warn!(error = %e.message, "rate-limit lease not given back");
    }
}

/// Deletes buckets that no window (a day at most) can count any more.
pub async fn prune_buckets(db: &Db, now: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("delete from rate_bucket where bucket_end < $1")
        .bind(now - 86_400_000 - 60_000)
        .execute(&db.writer)
        .await?
        .rows_affected())
}
