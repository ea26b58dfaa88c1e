//! Request-log writer throughput, without HTTP in the way: pushes N synthetic entries through
//! the same bounded buffer and batch writer the server uses, from four tasks at once, then
//! stops the writer the way SIGTERM does (it drains the buffer), and prints rows written per
//! second, rows lost, and rows found in the database. Used by `bench/usage.sh`.
//!
//! With a rate, the four tasks offer that many entries per second between them, paced every
//! 10 ms (a sustained load rather than a flood): whether the writer keeps up with nothing lost.
//!
//!   cargo run --release -p keyward-server --example log_writer -- [rows] [rows/s, 0: flood] [database URL]

use app::usage::log::{LogEntry, RequestLog, CAPACITY};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// The server's allocator (`main.rs`), so that the writer is measured as the server runs it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(500_000);
    let rate: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("kw-log-bench-{}", std::process::id()));
    let url = args
        .next()
        .unwrap_or_else(|| format!("sqlite://{}/bench.db", dir.display()));
    let db = app::ssr::Db::connect(&url).await.expect("database");
    db.migrate().await.expect("migrations");
    let log = Arc::new(RequestLog::new(CAPACITY));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writer = {
        let (log, db) = (log.clone(), db.clone());
        tokio::spawn(async move {
            loop {
                let mut rx = stop_rx.clone();
                let (_, stopped) = log
                    .write_round(&db, async move {
                        let _ = rx.wait_for(|s| *s).await;
                    })
                    .await;
                if stopped {
                    break;
                }
            }
        })
    };
    let started = Instant::now();
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let log = log.clone();
            tokio::spawn(async move {
                let now = app::ssr::db::now_ms();
                // Entries per 10 ms tick for this task (0: no pacing).
                let per_tick = rate / 4 / 100;
                let mut tick = tokio::time::interval(std::time::Duration::from_millis(10));
                for i in 0..rows / 4 {
                    if per_tick > 0 && i % per_tick == 0 {
                        tick.tick().await;
                    }
                    log.record(LogEntry {
                        request_id: format!("{p:02}{i:014x}"),
                        occurred_at: now + (i as i64 % 60_000),
                        organization_id: Some(format!("org_{}", i % 10)),
                        api_key_id: Some(format!("key_{}", i % 1000)),
                        method: "GET".into(),
                        route: "/api/v1/me".into(),
                        status: if i % 50 == 0 { 429 } else { 200 },
                        error_code: None,
                        error_message: None,
                        latency_us: 800,
                        client_ip: Some("127.0.0.1".into()),
                        user_agent: Some("bench".into()),
                    })
                    .await;
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    let handed = started.elapsed();
    let _ = stop_tx.send(true);
    writer.await.unwrap();
    let elapsed = started.elapsed();
    let written = log.written.load(Ordering::Relaxed);
    let lost = log.lost.load(Ordering::Relaxed);
    let in_db: i64 = sqlx::query_scalar("select count(*) from request_log")
        .fetch_one(&db.reader)
        .await
        .unwrap();
    let offered = match rate {
        0 => "flood".to_string(),
        r => format!("offered {r}/s"),
    };
    println!(
        "log writer ({offered}): {written} rows in {:.2} s = {:.0} rows/s (handed over in {:.2} s); lost {lost}; rows in the database {in_db}",
        elapsed.as_secs_f64(),
        written as f64 / elapsed.as_secs_f64(),
        handed.as_secs_f64()
    );
    db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
