//! The signed-in user's dashboard (server only): their keys across organizations with usage
//! against each key's limit, keys expiring soon, their recent activity, unread notifications.

use super::{Dashboard, DashboardEvent, DashboardKey};
use crate::error::AppError;
use crate::ssr::db::{now_ms, rfc3339, Db};
use sqlx::Row;

/// Keys expiring within this many days are called out.
pub const EXPIRING_DAYS: i64 = 30;
/// Most keys shown.
const KEYS_MAX: i64 = 50;

/// The dashboard of `user_id`: only keys of organizations they are still an active member of
/// (a key they made in an organization they left is not theirs to see).
pub async fn dashboard(db: &Db, user_id: &str) -> Result<Dashboard, AppError> {
    let now = now_ms();
    // One statement: the keys, and each one's use over its window from the per-minute rollup
    // (from the minute its window starts in).
    let rows = sqlx::query(
        "select x.*, (select cast(coalesce(sum(u.requests), 0) as bigint) from usage_minute u
                      where u.api_key_id = x.api_key_id and u.minute >= x.since) as used
         from (select k.api_key_id, k.organization_id, o.name as organization_name, k.name, k.display_prefix,
                      k.expires_at, k.owner_user_id, k.created_at,
                      coalesce(k.rate_limit, p.request_limit, 100) as effective_limit,
                      coalesce(k.rate_window_seconds, p.window_seconds, 3600) as effective_window,
                      (($2 - coalesce(k.rate_window_seconds, p.window_seconds, 3600) * 1000) / 60000) * 60000 as since
               from api_key k
               join organization o on o.organization_id = k.organization_id
               join membership m on m.organization_id = k.organization_id and m.user_id = $1
               left join plan p on p.plan_id = coalesce(k.plan_id, 'plan_free')
               where (k.created_by = $1 or k.owner_user_id = $1) and k.status = 'active' and k.approval <> 'pending'
                 and (k.expires_at is null or k.expires_at > $2)
               order by k.created_at desc, k.api_key_id limit $3) x
         order by x.created_at desc, x.api_key_id",
    )
    .bind(user_id)
    .bind(now)
    .bind(KEYS_MAX)
    .fetch_all(&db.reader)
    .await?;
    let mut keys = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.try_get("api_key_id")?;
        let window: i64 = r.try_get("effective_window")?;
        let used: i64 = r.try_get("used")?;
        let expires_at: Option<i64> = r.try_get("expires_at")?;
        keys.push(DashboardKey {
            id,
            organization_id: r.try_get("organization_id")?,
            organization_name: r.try_get("organization_name")?,
            name: r.try_get("name")?,
            display_prefix: r.try_get("display_prefix")?,
            personal: r.try_get::<Option<String>, _>("owner_user_id")?.is_some(),
            used,
            limit: r.try_get("effective_limit")?,
            window_seconds: window,
            expires_soon: expires_at.is_some_and(|at| at - now <= EXPIRING_DAYS * 86_400_000),
            expires_at: expires_at.map(rfc3339),
        });
    }
    let events = sqlx::query(
        "select e.kind, e.occurred_at, o.name as organization_name from domain_event e
         left join organization o on o.organization_id = e.organization_id
         where e.actor_user_id = $1 order by e.occurred_at desc, e.event_id desc limit 10",
    )
    .bind(user_id)
    .fetch_all(&db.reader)
    .await?;
    let activity = events
        .iter()
        .map(|r| {
            Ok(DashboardEvent {
                kind: r.try_get("kind")?,
                at: rfc3339(r.try_get("occurred_at")?),
                organization_name: r.try_get("organization_name")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Dashboard {
        keys,
        activity,
        unread_notifications: crate::notify::ssr::unread(db, user_id).await?,
    })
}

/// Entries in the activity log.
const ACTIVITY_MAX: i64 = 100;

/// The user's activity log, newest first: their own actions (sign-ins, changes, keys…) and
/// what others did to their account (sign-in failures, an administrator's actions,
/// impersonation). Never other users' data.
pub async fn activity(db: &Db, user_id: &str) -> Result<Vec<super::ActivityEntry>, AppError> {
    let rows = sqlx::query(&format!(
        "select e.kind, e.occurred_at, e.source_ip, e.actor_user_id, a.email as actor_email
         from domain_event e left join app_user a on a.user_id = e.actor_user_id
         where e.actor_user_id = $1 or e.subject_id = $1
         order by e.occurred_at desc, e.event_id desc limit {ACTIVITY_MAX}"
    ))
    .bind(user_id)
    .fetch_all(&db.reader)
    .await?;
    rows.iter()
        .map(|r| {
            let actor: Option<String> = r.try_get("actor_user_id")?;
            let by = match actor {
                Some(a) if a == user_id => None,
                Some(a) => Some(r.try_get::<Option<String>, _>("actor_email")?.unwrap_or(a)),
                None => None,
            };
            Ok(super::ActivityEntry {
                action: r.try_get("kind")?,
                at: rfc3339(r.try_get("occurred_at")?),
                ip: r.try_get("source_ip")?,
                by,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(AppError::from)
}
