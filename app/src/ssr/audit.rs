//! The audit chain: every domain event takes a place (`seq`) in one hash chain, so that an
//! edited or deleted entry is detected. Events are written by the changes themselves (in
//! their transactions, `events::record`); [`chain_pending`] then gives each new event, in
//! the order they were committed and seen, the next place and its hash
//!
//! `entry_hash = HMAC-SHA-256(K, prev_hash ‖ seq ‖ every field of the event)` (fields as
//! JSON), with the first entry's `prev_hash` empty and `K` derived from the server secret: an
//! attacker who can write the database but does not hold the secret cannot recompute the chain
//! after editing it. Chaining off the request path keeps the
//! changes free of a global lock; one chainer runs at a time (SQLite: the single writer;
//! PostgreSQL: a transaction-scoped advisory lock), and the unique index on `seq` refuses a
//! second place for anything. [`verify`] walks the chain and names the first broken entry:
//! a hash that does not match its fields (edited), a `prev_hash` that is not the previous
//! entry's hash, or a missing place (deleted).

use super::db::{Backend, Db};
use crate::error::AppError;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::Row;

/// Most events chained in one round.
const BATCH: i64 = 500;

/// The advisory lock that makes one PostgreSQL transaction at a time the chainer.
const CHAIN_LOCK: i64 = 0x6b65_7977_6172_6401;

const FIELDS: &str =
    "event_id, organization_id, actor_user_id, kind, subject_id, source_ip, data, occurred_at";

/// The chain's key: derived from the server secret, for this use only.
fn chain_key(secret: &[u8; 32]) -> Hmac<Sha256> {
    let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("any key length");
    derive.update(b"keyward audit chain v1");
    let key = derive.finalize().into_bytes();
    <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length")
}

/// The hash of an entry at `seq` after `prev`.
fn entry_hash(
    key: &Hmac<Sha256>,
    prev: &str,
    seq: i64,
    row: &sqlx::any::AnyRow,
) -> Result<String, sqlx::Error> {
    let fields = serde_json::json!([
        seq,
        row.try_get::<String, _>("event_id")?,
        row.try_get::<Option<String>, _>("organization_id")?,
        row.try_get::<Option<String>, _>("actor_user_id")?,
        row.try_get::<String, _>("kind")?,
        row.try_get::<Option<String>, _>("subject_id")?,
        row.try_get::<Option<String>, _>("source_ip")?,
        row.try_get::<String, _>("data")?,
        row.try_get::<i64, _>("occurred_at")?,
    ]);
    let mut h = key.clone();
    h.update(prev.as_bytes());
    h.update(b"\n");
    h.update(fields.to_string().as_bytes());
    Ok(hex::encode(h.finalize().into_bytes()))
}

/// Chains the events not chained yet (up to [`BATCH`]), oldest first; answers how many.
pub async fn chain_pending(db: &Db, secret: &[u8; 32]) -> Result<u64, AppError> {
    let key = chain_key(secret);
    let mut tx = db.writer.begin().await?;
    if db.backend == Backend::Postgres {
        sqlx::query("select pg_advisory_xact_lock($1)")
            .bind(CHAIN_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    let tail: Option<(i64, String)> = sqlx::query_as(
        "select seq, entry_hash from domain_event where seq is not null order by seq desc limit 1",
    )
    .fetch_optional(&mut *tx)
    .await?;
    let (mut seq, mut prev) = tail.unwrap_or((0, String::new()));
    let pending = sqlx::query(&format!(
        "select {FIELDS} from domain_event where seq is null order by occurred_at, event_id limit {BATCH}"
    ))
    .fetch_all(&mut *tx)
    .await?;
    for row in &pending {
        seq += 1;
        let hash = entry_hash(&key, &prev, seq, row)?;
        sqlx::query(
            "update domain_event set seq = $1, prev_hash = $2, entry_hash = $3
             where event_id = $4 and seq is null",
        )
        .bind(seq)
        .bind(&prev)
        .bind(&hash)
        .bind(row.try_get::<String, _>("event_id")?)
        .execute(&mut *tx)
        .await?;
        prev = hash;
    }
    tx.commit().await?;
    Ok(pending.len() as u64)
}

/// The first entry that breaks the chain, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub seq: i64,
    pub event_id: String,
    pub why: &'static str,
}

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// Entries checked (up to and including a broken one).
    pub checked: u64,
    /// Events not chained yet (the worker chains them within a second).
    pub pending: u64,
    pub first_broken: Option<Broken>,
}

/// Walks the chain from its first entry.
pub async fn verify(db: &Db, secret: &[u8; 32]) -> Result<Verification, AppError> {
    let key = chain_key(secret);
    let mut conn = db.reader.acquire().await?;
    let mut prev = String::new();
    let mut expected = 1i64;
    let mut checked = 0u64;
    loop {
        let rows = sqlx::query(&format!(
            "select {FIELDS}, seq, prev_hash, entry_hash from domain_event
             where seq >= $1 order by seq limit 1000"
        ))
        .bind(expected)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let seq: i64 = row.try_get("seq")?;
            let event_id: String = row.try_get("event_id")?;
            checked += 1;
            let broken = |why| {
                Some(Broken {
                    seq,
                    event_id: event_id.clone(),
                    why,
                })
            };
            let why = if seq != expected {
                Some("the entry before it is missing (deleted)")
            } else if row.try_get::<Option<String>, _>("prev_hash")?.as_deref() != Some(&prev) {
                Some("it does not follow the entry before it")
            } else if row.try_get::<Option<String>, _>("entry_hash")?
                != Some(entry_hash(&key, &prev, seq, row)?)
            {
                Some("its content does not match its hash (edited)")
            } else {
                None
            };
            if let Some(why) = why {
                let pending = unchained(&mut conn).await?;
                return Ok(Verification {
                    checked,
                    pending,
                    first_broken: broken(why),
                });
            }
            prev = row.try_get("entry_hash")?;
            expected += 1;
        }
    }
    let pending = unchained(&mut conn).await?;
    Ok(Verification {
        checked,
        pending,
        first_broken: None,
    })
}

async fn unchained(conn: &mut sqlx::AnyConnection) -> Result<u64, AppError> {
    let n: i64 = sqlx::query_scalar("select count(*) from domain_event where seq is null")
        .fetch_one(conn)
        .await?;
    Ok(n as u64)
}
