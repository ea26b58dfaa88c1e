//! Background work, supervised in one place.
//!
//! Each worker is a named loop started by [`Workers::start`]. If one panics, the supervisor
//! logs it and starts it again after a pause; on shutdown every worker is told to stop, does
//! its last round (the key-use writer flushes what it holds), and [`Workers::shutdown`] waits
//! for all of them. The usage log writer, mail delivery and webhooks join here.
//!
//! Today's workers:
//! - `key-use`: writes `last_used_at` for keys used since its last round (the request path
//!   only notes the use in memory), every [`KEY_USE_EVERY`];
//! - `signature-prune`: forgets accepted request signatures past their replay window, every
//!   minute;
//! - `session-sweep`: deletes expired console sessions, sign-in failures past the hour the
//!   allowance counts, and unfinished passkey ceremonies,
//!   every ten minutes;
//! - `request-log`: writes the request log in batches as entries arrive, and everything
//!   still buffered on shutdown (after the server stopped answering);
//! - `rate-limit`: gives back the unspent rate-limit leases of ended buckets every second
//!   (all of them on shutdown), and deletes buckets no window can count any more;
//! - `usage-notify` (PostgreSQL): relays every instance's "requests written" notifications
//!   to this instance's live charts (`live::listen`);
//! - `mail`: delivers due outbox email over SMTP every second, with retries and backoff;
//! - `expiry-reminders`: tells key owners 30, 7 and 1 day(s) before a key expires, hourly;
//! - `log-retention`: deletes request-log rows and rollups older than
//!   `KEYWARD_LOG_RETENTION_DAYS`, every hour;
//! - `audit-chain`: gives new domain events their place in the audit hash chain, every
//!   second (and once more on shutdown).

use app::keys::ssr::{self as keys, KeyCache};
use app::ssr::db::now_ms;
use app::ssr::AppState;
use app::usage::log::RequestLog;
use app::usage::ssr::RateLimiter;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the key-use writer writes what the request path noted.
pub const KEY_USE_EVERY: Duration = Duration::from_millis(500);

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// How long a worker that panicked waits before it is started again.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// The running workers.
pub struct Workers {
    stop: watch::Sender<bool>,
    handles: Vec<(&'static str, JoinHandle<()>)>,
}

/// Tells a worker when to stop: `stopped()` resolves once shutdown began.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    pub async fn stopped(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }
}

impl Workers {
    /// Starts every worker for `state`.
    pub fn start(state: &AppState) -> Workers {
        let (stop, _) = watch::channel(false);
        let mut w = Workers {
            stop,
            handles: Vec::new(),
        };
        w.periodic("key-use", KEY_USE_EVERY, state, |state| async move {
            let cache = KeyCache::of(&state).map_err(|e| e.message)?;
            keys::flush_key_use(&state.db, cache)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        });
        w.periodic("signature-prune", MINUTE, state, |state| async move {
            keys::prune_signatures_at(&state.db, now_ms())
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        });
        let s = state.clone();
        w.supervise("request-log", move |stop| {
            write_request_log(stop, s.clone())
        });
        let s = state.clone();
        w.supervise("rate-limit", move |stop| sweep_rate_limits(stop, s.clone()));
        let s = state.clone();
        w.supervise("usage-notify", move |stop| {
            crate::live::listen(s.clone(), stop)
        });
        w.periodic("mail", Duration::from_secs(1), state, |state| async move {
            let mailer = app::notify::mail::Mailer::of(&state).map_err(|e| e.message)?;
            app::notify::mail::deliver_due(&state.db, mailer, now_ms())
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        });
        w.periodic("expiry-reminders", HOUR, state, |state| async move {
            let origin = state.config.origin_string();
            app::notify::ssr::expiry_reminders(&state.db, &origin, now_ms())
                .await
                .map(drop)
                .map_err(|e| e.message)
        });
        w.periodic("log-retention", HOUR, state, |state| async move {
            let days = state.config.log_retention_days;
            app::usage::log::enforce_retention(&state.db, now_ms(), days)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        });
        w.periodic("notify-retention", HOUR, state, |state| async move {
            app::notify::ssr::enforce_retention(&state.db, now_ms())
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        });
        w.periodic("unconfirmed-sweep", HOUR, state, |state| async move {
            app::identity::ssr::purge_unconfirmed(&state.db, now_ms())
                .await
                .map(drop)
                .map_err(|e| e.message)
        });
        w.periodic(
            "audit-chain",
            Duration::from_secs(1),
            state,
            |state| async move {
                app::ssr::audit::chain_pending(&state.db, &state.config.secret)
                    .await
                    .map(drop)
                    .map_err(|e| e.message)
            },
        );
        w.periodic("session-sweep", 10 * MINUTE, state, |state| async move {
            // Expired sessions, sign-in failures out of the allowance's hour, and passkey
            // ceremonies started and never finished: each tried, whichever fails.
            let sessions = app::identity::sessions::sweep_expired(&state.db).await;
            let failures = app::identity::ssr::prune_sign_in_failures(&state.db, now_ms()).await;
            let ceremonies = app::identity::passkeys::delete_expired(&state.db).await;
            sessions
                .map(drop)
                .and(failures.map(drop))
                .and(ceremonies.map(drop))
                .map_err(|e| e.message)
        });
        w
    }

    /// Runs `round` every `period` as the worker `name` (see [`every`]).
    fn periodic<R, Fut>(&mut self, name: &'static str, period: Duration, state: &AppState, round: R)
    where
        R: Fn(AppState) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let state = state.clone();
        self.supervise(name, move |stop| {
            every(name, period, stop, state.clone(), round.clone())
        });
    }

    /// Runs `make(stop)` as the worker `name`, starting it again if it panics.
    fn supervise<F, Fut>(&mut self, name: &'static str, make: F)
    where
        F: Fn(Stop) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = Stop(self.stop.subscribe());
        let handle = tokio::spawn(async move {
            loop {
                match tokio::spawn(make(stop.clone())).await {
                    Ok(()) => break,
                    Err(e) if e.is_panic() => {
                        tracing::error!(worker = name, "worker panicked; starting it again");
                        if stop.is_stopped() {
                            break;
                        }
                        tokio::time::sleep(RESTART_AFTER).await;
                    }
                    Err(_) => break,
                }
            }
        });
        self.handles.push((name, handle));
    }

    /// Tells every worker to stop, and waits up to `grace` in all for them to finish their
    /// last round (a worker stuck on a database that stopped answering is left behind).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        for (name, handle) in self.handles {
            match tokio::time::timeout_at(deadline, handle).await {
                Ok(_) => tracing::debug!(worker = name, "worker stopped"),
                Err(_) => tracing::warn!(worker = name, "worker did not stop in time"),
            }
        }
    }
}

/// The request-log writer: batches as they come; on shutdown, everything left.
async fn write_request_log(stop: Stop, state: AppState) {
    let Ok(log) = RequestLog::of(&state) else {
        return;
    };
    loop {
        let mut s = stop.clone();
        let (_, stopped) = log
            .write_round(&state.db, async move { s.stopped().await })
            .await;
        if stopped {
            break;
        }
    }
}

/// The rate limiter's sweep: every second it gives back the unspent leases of ended buckets
/// (all of them on shutdown); every minute it deletes buckets no window can count any more.
async fn sweep_rate_limits(mut stop: Stop, state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut rounds = 0u64;
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.stopped() => true,
        };
        let now = now_ms();
        if let Ok(limiter) = RateLimiter::of(&state) {
            if let Err(e) = limiter.sweep(now, last).await {
                tracing::warn!(error = %e.message, "rate-limit sweep failed");
            }
        }
        if rounds.is_multiple_of(60) {
            if let Err(error) = app::usage::ssr::prune_buckets(&state.db, now).await {
                tracing::warn!(%error, "rate-limit prune failed");
            }
        }
        rounds += 1;
        if last {
            break;
        }
    }
}

/// A periodic worker body: runs `round` every `period` until stopped, then once more (so what
/// was noted before shutdown is written). A failed round is logged and retried next period.
async fn every<R, Fut>(name: &str, period: Duration, mut stop: Stop, state: AppState, round: R)
where
    R: Fn(AppState) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let last = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.stopped() => true,
        };
        if let Err(error) = round(state.clone()).await {
            tracing::warn!(worker = name, %error, "background round failed");
        }
        if last {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_panicking_worker_is_started_again_and_shutdown_waits() {
        let (stop, _) = watch::channel(false);
        let mut workers = Workers {
            stop,
            handles: Vec::new(),
        };
        let starts = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let (s, f) = (starts.clone(), finished.clone());
        workers.supervise("test", move |mut stop| {
            let (s, f) = (s.clone(), f.clone());
            async move {
                if s.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first run fails");
                }
                stop.stopped().await;
                f.fetch_add(1, Ordering::SeqCst);
            }
        });
        for _ in 0..100 {
            if starts.load(Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "restarted after the panic"
        );
        assert_eq!(
            finished.load(Ordering::SeqCst),
            0,
            "still running until shutdown"
        );
        workers.shutdown(Duration::from_secs(5)).await;
        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "its last round ran before shutdown returned"
        );
    }
}
