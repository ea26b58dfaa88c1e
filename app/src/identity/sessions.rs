//! The user's console sessions (server only): where they are signed in — browser and device,
//! address, when they signed in and were last seen — with the current one marked; signing out
//! one of them or all the others. Sessions are named by a handle derived from the stored
//! hash of the session id, so neither the id nor its hash ever reaches a page.

use super::SessionView;
use crate::error::AppError;
use crate::ssr::db::{now_ms, rfc3339, Backend, Db};
use crate::ssr::keys;
use crate::ssr::session_store::{ending, EndedRow};
use sha2::{Digest, Sha256};
use sqlx::Row;

/// Longest user agent kept with a session, in characters.
pub const USER_AGENT_MAX: usize = 300;

/// The handle of a session: a hash of its stored hash, cut short (unguessable enough to name
/// one of a user's sessions, useless to sign in with).
/// The stored hash among `hashes` (one user's sessions) that `wanted` names; "not found"
/// otherwise.
fn named(hashes: Vec<String>, wanted: &str) -> Result<String, AppError> {
    hashes
        .into_iter()
        .find(|h| handle(h) == wanted)
        .ok_or_else(|| AppError::not_found("session"))
}

fn handle(session_hash: &str) -> String {
    hex::encode(&Sha256::digest(format!("session-handle:{session_hash}").as_bytes())[..12])
}

/// "Chrome on Linux": the browser and system a user agent names, or "Unknown browser".
pub fn device(user_agent: &str) -> String {
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
    ]
    .iter()
    .find(|(mark, _)| user_agent.contains(mark))
    .map(|(_, name)| *name);
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(mark, _)| user_agent.contains(mark))
    .map(|(_, name)| *name);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_string(),
        (None, Some(s)) => format!("Unknown browser on {s}"),
        (None, None) => "Unknown browser".to_string(),
    }
}

/// The user's live sessions, the most recently seen first; `current` is the stored hash of
/// the caller's own session. A session holding a credential stamp that is no longer the
/// user's (a sign-in that finished while the user's sessions were being ended: it is over at
/// its first request) is not listed.
pub async fn list(
    db: &Db,
    user_id: &str,
    current: Option<&str>,
) -> Result<Vec<SessionView>, AppError> {
    let rows = sqlx::query(
        "select session_hash, data from session where user_id = $1 and expires_at > $2 and pending = 0",
    )
    .bind(user_id)
    .bind(now_ms())
    .fetch_all(&db.reader)
    .await?;
    let stamp = crate::identity::ssr::current_stamp(db, user_id).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let hash: String = row.try_get("session_hash")?;
        let data: serde_json::Value =
            serde_json::from_str(&row.try_get::<String, _>("data")?).unwrap_or_default();
        if stamp.is_none() || data[keys::CREDENTIAL].as_str() != stamp.as_deref() {
            continue;
        }
        let signed_in_at = data[keys::SIGNED_IN_AT].as_i64().unwrap_or_default();
        let last_seen_at = data[keys::LAST_SEEN_AT].as_i64().unwrap_or(signed_in_at);
        let user_agent = data[keys::USER_AGENT].as_str().unwrap_or_default();
        out.push((
            last_seen_at,
            SessionView {
                handle: handle(&hash),
                device: device(user_agent),
                ip: data[keys::IP].as_str().map(str::to_string),
                signed_in_at: rfc3339(signed_in_at),
                last_seen_at: rfc3339(last_seen_at),
                current: current == Some(hash.as_str()),
            },
        ));
    }
    out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.handle.cmp(&b.1.handle)));
    Ok(out.into_iter().map(|(_, s)| s).collect())
}

/// How many live sessions each of `users` (a user id and the user's current credential stamp,
/// [`crate::identity::ssr::credential_stamp`]) has, counted as [`list`] lists them: signed in,
/// not expired, and holding that stamp. One statement for the lot.
pub async fn live_counts(
    db: &Db,
    users: &[(String, String)],
) -> Result<std::collections::HashMap<String, i64>, AppError> {
    let mut counts = std::collections::HashMap::new();
    if users.is_empty() {
        return Ok(counts);
    }
    let ids = (2..users.len() + 2)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "select user_id, {stamp} as stamp, count(*) as n from session
         where user_id in ({ids}) and expires_at > $1 and pending = 0
         group by user_id, {stamp}",
        stamp = crate::ssr::session_store::stamp_in(db.backend, "data"),
    );
    let mut query = sqlx::query(&sql).bind(now_ms());
    for (user_id, _) in users {
        query = query.bind(user_id);
    }
    let stamps: std::collections::HashMap<&str, &str> = users
        .iter()
        .map(|(u, s)| (u.as_str(), s.as_str()))
        .collect();
    for row in query.fetch_all(&db.reader).await? {
        let user_id: String = row.try_get("user_id")?;
        let stamp: Option<String> = row.try_get("stamp")?;
        if stamp.is_some() && stamp.as_deref() == stamps.get(user_id.as_str()).copied() {
            *counts.entry(user_id).or_insert(0) += row.try_get::<i64, _>("n")?;
        }
    }
    Ok(counts)
}

/// Signs out one of the user's sessions by its handle (not the current one: that is
/// "Sign out"). Another user's session, or a gone one, is "not found".
pub async fn revoke(
    db: &Db,
    user_id: &str,
    current: Option<&str>,
    wanted: &str,
) -> Result<(), AppError> {
    let mut tx = db.writer.begin().await?;
    let ended = end_named(&mut tx, user_id, wanted, current, Why::SignedOut).await?;
    record(&mut tx, user_id, "session.revoked", ended).await?;
    tx.commit().await?;
    Ok(())
}

/// Ends the user's session named by `handle`, inside `tx`: "not found" for another user's
/// session or one already gone (also when a concurrent request ended it first: the delete is
/// conditional, so only one of them records it). `current` (the caller's own session, by its
/// stored hash) is refused: that one is signed out with "Sign out". Returns how many ended (1).
pub(crate) async fn end_named(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    handle: &str,
    current: Option<&str>,
    why: Why,
) -> Result<u64, AppError> {
    let hashes: Vec<String> =
        sqlx::query_scalar("select session_hash from session where user_id = $1")
            .bind(user_id)
            .fetch_all(&mut **tx)
            .await?;
    let hash = named(hashes, handle)?;
    if current == Some(hash.as_str()) {
        return Err(AppError::invalid(
            "handle",
            "this is the session you are using: sign out instead",
        ));
    }
    // Conditional on the owner: a handle never reaches another user's session.
    let ended = end_where(
        tx,
        "delete from session where session_hash = $1 and user_id = $2",
        [&hash, user_id],
        why,
    )
    .await?;
    if ended == 0 {
        return Err(AppError::not_found("session"));
    }
    Ok(ended)
}

/// Signs out every session of the user but `current`; answers how many ended, and the
/// stamp the current session carries on with.
pub async fn revoke_others(db: &Db, user_id: &str, current: &str) -> Result<Ended, AppError> {
    let mut tx = db.writer.begin().await?;
    let ended = end_all(&mut tx, user_id, Some(current), Why::SignedOut).await?;
    record(&mut tx, user_id, "session.others_revoked", ended.count).await?;
    tx.commit().await?;
    Ok(ended)
}

/// What ending a user's sessions left behind.
#[derive(Debug)]
pub struct Ended {
    /// Sessions ended.
    pub count: u64,
    /// The user's credential stamp from now on (`None`: no such user): the kept session's.
    pub stamp: Option<String>,
}

/// Ends every session of the user but `keep` (a stored hash; `None`: every one), inside `tx`:
/// a sign-in waiting for its second step included.
///
/// Deleting rows is not enough on its own: a sign-in whose password was being checked at this
/// moment writes its session row after the delete. So the user's session epoch moves on in
/// the same transaction, and with it the credential stamp every session must hold (see
/// [`crate::identity::ssr::credential_stamp`]): such a session holds the old one and is over at
/// its first request. The kept session's stored stamp becomes the new one in the same
/// transaction (a request of it already in flight adopts it, see the guard); the caller gives
/// its own copy of the session the returned stamp ([`crate::identity::ssr::restamp`]). A kept
/// session that is no longer one of the user's, holding the stamp from before, was itself
/// ended meanwhile: then nothing happens, and the caller is signed out.
///
/// With `keep`, the password must not have changed earlier in `tx`.
pub(crate) async fn end_all(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    keep: Option<&str>,
    why: Why,
) -> Result<Ended, AppError> {
    let user: Option<(String, i64)> = sqlx::query_as(
        "update app_user set session_epoch = session_epoch + 1 where user_id = $1 returning password_hash, session_epoch",
    )
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?;
    let stamp = user
        .as_ref()
        .map(|(hash, epoch)| crate::identity::ssr::credential_stamp(hash, *epoch));
    if let (Some(keep), Some((hash, epoch)), Some(stamp)) = (keep, &user, &stamp) {
        let before = crate::identity::ssr::credential_stamp(hash, epoch - 1);
        if !crate::ssr::session_store::restamp_stored(tx, user_id, keep, &before, stamp).await? {
            return Err(AppError::unauthenticated());
        }
    }
    let count = end_where(
        tx,
        "delete from session where user_id = $1 and session_hash <> $2",
        [user_id, keep.unwrap_or_default()],
        why,
    )
    .await?;
    Ok(Ended { count, stamp })
}

/// Deletes every expired session (the worker's sweep, every 10 minutes). An impersonating
/// one among them, its tab closed, records its end (`inactive`): nothing else would. On
/// PostgreSQL, rows another transaction holds are skipped (the next sweep takes them): a change
/// ending a user's sessions deletes them in its own order, and a sweep waiting on one of those
/// while holding another would deadlock with it. Answers how many went.
pub async fn sweep_expired(db: &Db) -> Result<u64, AppError> {
    let delete = match db.backend {
        Backend::Postgres => {
            "delete from session where session_hash in
                (select session_hash from session where expires_at <= $1 for update skip locked)"
        }
        Backend::Sqlite => "delete from session where expires_at <= $1",
    };
    let mut tx = db.writer.begin().await?;
    let ended: Vec<EndedRow> = sqlx::query_as(&ending(db.backend, delete))
        .bind(now_ms())
        .fetch_all(&mut *tx)
        .await?;
    let count = crate::admin::impersonation::record_ended(&mut tx, &ended, "inactive").await?;
    tx.commit().await?;
    Ok(count)
}

/// Why a user's sessions end, as an impersonating one among them records it
/// (`user.impersonation_ended`): the sessions are the administrator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// They signed out their other sessions, or one by its handle.
    SignedOut,
    /// They changed or reset their password, two-factor authentication or passkeys.
    CredentialsChanged,
    /// Another administrator ended their sessions or reset their two-factor authentication.
    EndedByAdministrator,
    /// Their account was disabled.
    AccountDisabled,
    /// Their account was deleted.
    AccountDeleted,
}

impl Why {
    pub fn as_str(self) -> &'static str {
        match self {
            Why::SignedOut => "signed_out",
            Why::CredentialsChanged => "credentials_changed",
            Why::EndedByAdministrator => "ended_by_administrator",
            Why::AccountDisabled => "account_disabled",
            Why::AccountDeleted => "account_deleted",
        }
    }
}

/// Deletes the sessions `delete` selects (its parameters `$1` and `$2`), inside `tx`;
/// an administrator's impersonating session among them records its end with `why`.
/// Answers how many ended.
async fn end_where(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    delete: &str,
    [first, second]: [&str; 2],
    why: Why,
) -> Result<u64, AppError> {
    let sql = ending(Backend::of(tx), delete);
    let ended: Vec<EndedRow> = sqlx::query_as(&sql)
        .bind(first)
        .bind(second)
        .fetch_all(&mut **tx)
        .await?;
    Ok(crate::admin::impersonation::record_ended(tx, &ended, why.as_str()).await?)
}

async fn record(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    kind: &'static str,
    ended: u64,
) -> Result<(), AppError> {
    crate::ssr::events::record(
        tx,
        crate::ssr::events::Event {
            kind,
            organization_id: None,
            actor_user_id: Some(user_id),
            subject_id: Some(user_id),
            source_ip: None,
            data: serde_json::json!({ "sessions_ended": ended }),
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_named_from_user_agents() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
        assert_eq!(device(chrome), "Chrome on Linux");
        let edge = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0";
        assert_eq!(device(edge), "Edge on Windows");
        let safari = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        assert_eq!(device(safari), "Safari on iOS");
        assert_eq!(device(""), "Unknown browser");
        assert_ne!(handle("a"), handle("b"));
        assert_eq!(handle("a").len(), 24);
    }
}
