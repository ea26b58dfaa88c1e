//! tower-sessions store in Keyward's own database (SQLite or PostgreSQL), table `session`.
//!
//! Only SHA-256(session id) is stored. The signed-in user's id is lifted into its own column so
//! sessions can be listed and revoked per user.

use super::db::{now_ms, Backend, Db};
use super::keys;
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::Row;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};

#[derive(Clone, Debug)]
pub struct DbSessionStore {
    db: Db,
    /// The absolute session lifetime, from sign-in (`Config::session_absolute`).
    absolute: std::time::Duration,
}

impl DbSessionStore {
    /// A store whose signed-in sessions end, as stored, at their idle deadline (the record's
    /// expiry) or `absolute` after sign-in, whichever comes first.
    pub fn new(db: Db, absolute: std::time::Duration) -> Self {
        DbSessionStore { db, absolute }
    }

    fn expires_ms(&self, record: &Record) -> i64 {
        stored_end(record, self.absolute)
    }
}

/// When a stored session ends (ms): the record's expiry (the idle deadline), or, for a
/// signed-in session, the absolute deadline from sign-in when that comes first. So a session
/// past its absolute lifetime stops loading, leaves the session lists and counts, and is
/// swept, without waiting for a request of its own to notice. A sign-in waiting for its
/// second step is not signed in: the sign-in time its browser's earlier session left in the
/// data does not shorten it (the second step sets a new one).
fn stored_end(record: &Record, absolute: std::time::Duration) -> i64 {
    let idle = (record.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64;
    if signed_in(record).is_none() {
        return idle;
    }
    match record.data.get(keys::SIGNED_IN_AT).and_then(|v| v.as_i64()) {
        Some(signed_in_at) => idle.min(signed_in_at.saturating_add(absolute.as_millis() as i64)),
        None => idle,
    }
}

/// What the table stores for a session id (the id itself never is).
pub fn session_hash(id: &Id) -> String {
    hex::encode(Sha256::digest(id.to_string().as_bytes()))
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

/// The stored form of a record.
struct Stored {
    /// The data as JSON.
    data: String,
    /// Whose session it is, lifted out of the data so that a user's sessions can be listed
    /// and ended: the signed-in user; the administrator impersonating them (so that ending
    /// the administrator's sessions ends this one too); or the user a sign-in waits for at
    /// the second step (so that a password change, a reset or "sign out everywhere" also
    /// ends a half-finished sign-in made with the old password).
    user_id: Option<String>,
    /// Waiting for the second step: not signed in, kept out of session lists and counts.
    pending: bool,
}

/// Whose signed-in session `record` is: the administrator impersonating in it, else the user;
/// `None` when nobody is signed in (a sign-in waiting for its second step included).
fn signed_in(record: &Record) -> Option<&str> {
    let text = |key: &str| record.data.get(key).and_then(|v| v.as_str());
    text(keys::IMPERSONATOR).or_else(|| text(keys::USER_ID))
}

fn encode(record: &Record) -> session_store::Result<Stored> {
    let data = serde_json::to_string(&record.data)
        .map_err(|e| session_store::Error::Encode(e.to_string()))?;
    let signed_in = signed_in(record);
    let waiting = record
        .data
        .get(keys::PENDING_USER_ID)
        .and_then(|v| v.as_str());
    Ok(Stored {
        data,
        user_id: signed_in.or(waiting).map(str::to_owned),
        pending: signed_in.is_none() && waiting.is_some(),
    })
}

/// The credential stamp the stored session `session_hash` holds, when it is a signed-in
/// session filed under `owner` (the user, or the administrator impersonating them).
pub async fn stored_credential<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    session_hash: &str,
    owner: &str,
) -> Result<Option<String>, sqlx::Error> {
    let data: Option<String> = sqlx::query_scalar(
        "select data from session where session_hash = $1 and user_id = $2 and pending = 0",
    )
    .bind(session_hash)
    .bind(owner)
    .fetch_optional(executor)
    .await?;
    Ok(data
        .and_then(|d| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&d).ok())
        .and_then(|m| m.get(keys::CREDENTIAL)?.as_str().map(str::to_owned)))
}

/// SQL: the text value `key` of the session data `json` (a column or a parameter).
fn field_in(backend: Backend, json: &str, key: &str) -> String {
    match backend {
        Backend::Sqlite => format!("json_extract({json}, '$.{key}')"),
        Backend::Postgres => format!("({json}::jsonb ->> '{key}')"),
    }
}

/// SQL: the credential stamp held in the session data `json` (a column or a parameter).
pub(crate) fn stamp_in(backend: Backend, json: &str) -> String {
    field_in(backend, json, keys::CREDENTIAL)
}

/// What a statement ending sessions returns of each row it deleted: the administrator
/// impersonating in it (`None` when nobody was) and the user impersonated.
pub type EndedRow = (Option<String>, Option<String>);

/// `delete` (a `delete from session where …` statement) returning an [`EndedRow`] per row.
pub fn ending(backend: Backend, delete: &str) -> String {
    format!(
        "{delete} returning {}, {}",
        field_in(backend, "data", keys::IMPERSONATOR),
        field_in(backend, "data", keys::USER_ID)
    )
}

/// SQL: the session data `json` with its credential stamp set to the text `stamp`.
fn with_stamp(backend: Backend, json: &str, stamp: &str) -> String {
    match backend {
        Backend::Sqlite => format!("json_set({json}, '$.{}', {stamp})", keys::CREDENTIAL),
        Backend::Postgres => format!(
            "({json}::jsonb || jsonb_build_object('{}', cast({stamp} as text)))::text",
            keys::CREDENTIAL
        ),
    }
}

/// Moves the stored session `session_hash` of `user_id` from the credential stamp `before` to
/// `stamp`, inside `tx`, in one conditional statement. False when there is no such signed-in
/// session holding `before`: the session was ended meanwhile (or never held that stamp).
pub async fn restamp_stored(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    session_hash: &str,
    before: &str,
    stamp: &str,
) -> Result<bool, sqlx::Error> {
    let backend = Backend::of(tx);
    let updated = sqlx::query(&format!(
        "update session set data = {}
         where session_hash = $1 and user_id = $2 and pending = 0 and {} = $3",
        with_stamp(backend, "data", "$4"),
        stamp_in(backend, "data"),
    ))
    .bind(session_hash)
    .bind(user_id)
    .bind(before)
    .bind(stamp)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // Ids are 128 random bits; on the astronomically unlikely collision, draw again.
        loop {
            let stored = encode(record)?;
            let inserted = sqlx::query(
                "insert into session (session_hash, user_id, data, expires_at, pending) values ($1, $2, $3, $4, $5)
                 on conflict (session_hash) do nothing",
            )
            .bind(session_hash(&record.id))
            .bind(stored.user_id)
            .bind(stored.data)
            .bind(self.expires_ms(record))
            .bind(stored.pending as i32)
            .execute(&self.db.writer)
            .await
            .map_err(backend)?;
            if inserted.rows_affected() == 1 {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    /// Updates a session that still exists, and only that: tower-sessions saves a session it
    /// loaded at the start of a request, and a session ended meanwhile (sign-out elsewhere, a
    /// password set or changed, the user disabled or deleted) must not be written back by a
    /// request that was in flight. New sessions go through [`Self::create`].
    ///
    /// Nor does a save change the credential stamp a stored session holds: only a new session
    /// ([`Self::create`]) and [`restamp_stored`] set one, and a save writes everything else
    /// with the stored stamp kept. A request that loaded the session before an action gave it a
    /// new stamp would otherwise write the old one back and sign the session out at its next
    /// request; refusing its save instead would lose what else it wrote (an organization's
    /// "enrol a second factor first", say).
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let stored = encode(record)?;
        let kind = self.db.backend;
        let data = format!(
            "case when {stored} is null then $3 else {kept} end",
            stored = stamp_in(kind, "data"),
            kept = with_stamp(kind, "$3", &stamp_in(kind, "data")),
        );
        sqlx::query(&format!(
            "update session set user_id = $2, data = {data}, expires_at = $4, pending = $5
             where session_hash = $1"
        ))
        .bind(session_hash(&record.id))
        .bind(stored.user_id)
        .bind(stored.data)
        .bind(self.expires_ms(record))
        .bind(stored.pending as i32)
        .execute(&self.db.writer)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let row = sqlx::query(
            "select data, expires_at from session where session_hash = $1 and expires_at > $2",
        )
        .bind(session_hash(id))
        .bind(now_ms())
        .fetch_optional(&self.db.reader)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let data: String = row.try_get("data").map_err(backend)?;
        let expires_at: i64 = row.try_get("expires_at").map_err(backend)?;
        let data =
            serde_json::from_str(&data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        let expiry_date =
            time::OffsetDateTime::from_unix_timestamp_nanos(expires_at as i128 * 1_000_000)
                .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *id,
            data,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        sqlx::query("delete from session where session_hash = $1")
            .bind(session_hash(id))
            .execute(&self.db.writer)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_in_session_ends_at_its_absolute_deadline_a_waiting_one_at_its_idle_one() {
        let hour = std::time::Duration::from_secs(3600);
        let idle_at = time::OffsetDateTime::from_unix_timestamp(10_000).unwrap();
        let record = |pairs: &[(&str, serde_json::Value)]| Record {
            id: Id::default(),
            data: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            expiry_date: idle_at,
        };
        let idle = 10_000_000;
        let signed_in_at = (keys::SIGNED_IN_AT, serde_json::json!(9_000_000 - 3_600_000));
        let user = (keys::USER_ID, serde_json::json!("usr_a"));
        assert_eq!(
            stored_end(&record(&[user.clone(), signed_in_at.clone()]), hour),
            9_000_000,
            "the absolute deadline comes first"
        );
        assert_eq!(
            stored_end(
                &record(&[user.clone(), (keys::SIGNED_IN_AT, serde_json::json!(idle))]),
                hour
            ),
            idle,
            "the idle deadline comes first"
        );
        assert_eq!(stored_end(&record(&[user]), hour), idle, "no sign-in time");
        let waiting = (keys::PENDING_USER_ID, serde_json::json!("usr_a"));
        assert_eq!(
            stored_end(&record(&[waiting, signed_in_at.clone()]), hour),
            idle,
            "a sign-in waiting for its second step keeps its own deadline"
        );
        let acting = (keys::IMPERSONATOR, serde_json::json!("usr_root"));
        assert_eq!(
            stored_end(&record(&[acting, signed_in_at]), hour),
            9_000_000,
            "an impersonating session: the administrator's sign-in"
        );
    }
}
