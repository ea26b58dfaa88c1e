//! Plans in the database (server only). Every change is one conditional statement: a plan in
//! use, or the default one, cannot be deleted however two admins interleave.

use super::{Plan, PlanInput, DEFAULT_PLAN_ID, MAX_LIMIT, MAX_WINDOW_SECONDS};
use crate::access::ssr::Grant;
use crate::error::AppError;
use crate::ssr::db::{new_id, now_ms, Db};
use sqlx::Row;

pub use super::limiter::*;
pub use super::window::{Decision, Limit};

use crate::ssr::db::rfc3339;

const SELECT: &str = "select p.plan_id, p.name, p.description, p.request_limit, p.window_seconds, p.created_at, p.updated_at,
        (select count(*) from api_key k where coalesce(k.plan_id, 'plan_free') = p.plan_id) as keys
     from plan p";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Plan, sqlx::Error> {
    let id: String = r.try_get("plan_id")?;
    Ok(Plan {
        is_default: id == DEFAULT_PLAN_ID,
        id,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        limit: r.try_get("request_limit")?,
        window_seconds: r.try_get("window_seconds")?,
        keys: Some(r.try_get("keys")?),
        created_at: rfc3339(r.try_get("created_at")?),
        updated_at: rfc3339(r.try_get("updated_at")?),
    })
}

/// Every plan, smallest limit first.
pub async fn list(db: &Db) -> Result<Vec<Plan>, AppError> {
    let rows = sqlx::query(&format!(
        "{SELECT} order by p.request_limit * 86400 / p.window_seconds, p.name"
    ))
    .fetch_all(&db.reader)
    .await?;
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// Every plan as `principal` may see it: the instance's key counts only for those who may
/// change plans.
pub async fn list_for(
    db: &Db,
    principal: &crate::access::ssr::Principal,
) -> Result<Vec<Plan>, AppError> {
    let mut plans = list(db).await?;
    let instance_wide = match crate::access::ssr::authorize(
        db,
        principal,
        crate::access::ssr::SYSTEM_ORG_ID,
        crate::access::Permission::PlansWrite,
    )
    .await
    {
        Ok(_) => true,
        Err(e) if e.is_server_fault() => return Err(e),
        Err(_) => false,
    };
    if !instance_wide {
        for plan in &mut plans {
            plan.keys = None;
        }
    }
    Ok(plans)
}

pub async fn get(db: &Db, plan_id: &str) -> Result<Plan, AppError> {
    let r = sqlx::query(&format!("{SELECT} where p.plan_id = $1"))
        .bind(plan_id)
        .fetch_optional(&db.writer)
        .await?;
    match r {
        Some(r) => Ok(from_row(&r)?),
        None => Err(AppError::not_found("plan")),
    }
}

/// Checked fields of a plan.
struct Checked {
    name: Option<String>,
    description: Option<String>,
    limit: Option<i64>,
    window_seconds: Option<i64>,
}

fn check(input: &PlanInput) -> Result<Checked, AppError> {
    let name = match &input.name {
        None => None,
        Some(n) => {
            let n = n.trim();
            let ok = !n.is_empty()
                && n.len() <= 40
                && n.bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && n.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
                return Err(AppError::invalid(
                    "name",
                    "a plan name has 1 to 40 characters: lower-case letters, digits, - and _, starting with a letter or digit",
                ));
            }
            Some(n.to_string())
        }
    };
    let description = match &input.description {
        Some(d) if d.chars().count() > 200 => {
            return Err(AppError::invalid(
                "description",
                "the description has at most 200 characters",
            ))
        }
        d => d.as_ref().map(|d| d.trim().to_string()),
    };
    if input.limit.is_some_and(|l| !(1..=MAX_LIMIT).contains(&l)) {
        return Err(AppError::invalid(
            "limit",
            format!("the limit is a number of requests from 1 to {MAX_LIMIT}"),
        ));
    }
    if input
        .window_seconds
        .is_some_and(|w| !(1..=MAX_WINDOW_SECONDS).contains(&w))
    {
        return Err(AppError::invalid(
            "window_seconds",
            format!("the window is from 1 to {MAX_WINDOW_SECONDS} seconds (a day)"),
        ));
    }
    Ok(Checked {
        name,
        description,
        limit: input.limit,
        window_seconds: input.window_seconds,
    })
}

fn name_taken(e: sqlx::Error) -> AppError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            AppError::conflict("name", "a plan with this name exists")
        }
        _ => AppError::from(e),
    }
}

/// Opens a plan change's transaction for `grant`: plans govern live keys' limits, so a test
/// key may not change them (a test key's reach is test keys).
async fn begin_plan_change(
    db: &Db,
    grant: &Grant,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, AppError> {
    grant
        .require_live_change("a test key cannot change plans: they set the limits of live keys")?;
    Ok(db.writer.begin().await?)
}

/// Records a plan change on the audit log, in its transaction.
async fn record_plan(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    grant: &Grant,
    kind: &'static str,
    plan_id: &str,
    data: serde_json::Value,
) -> Result<(), AppError> {
    crate::access::roles::record(tx, grant, kind, plan_id, data).await
}

pub async fn create(db: &Db, grant: &Grant, input: &PlanInput) -> Result<Plan, AppError> {
    let c = check(input)?;
    let name = c
        .name
        .ok_or_else(|| AppError::invalid("name", "a plan needs a name"))?;
    let limit = c
        .limit
        .ok_or_else(|| AppError::invalid("limit", "a plan needs a limit"))?;
    let window = c
        .window_seconds
        .ok_or_else(|| AppError::invalid("window_seconds", "a plan needs a window in seconds"))?;
    let id = new_id("plan");
    let now = now_ms();
    let mut tx = begin_plan_change(db, grant).await?;
    sqlx::query("insert into plan (plan_id, name, description, request_limit, window_seconds, created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $6)")
        .bind(&id)
        .bind(&name)
        .bind(c.description.unwrap_or_default())
        .bind(limit)
        .bind(window)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(name_taken)?;
    let fields = serde_json::json!({ "name": name, "limit": limit, "window_seconds": window });
    record_plan(&mut tx, grant, "plan.created", &id, fields).await?;
    tx.commit().await?;
    get(db, &id).await
}

/// Changes a plan; its keys follow at once (this instance's key cache is cleared by the
/// caller; other instances within the cache's bound, 1 s).
pub async fn update(
    db: &Db,
    grant: &Grant,
    plan_id: &str,
    input: &PlanInput,
) -> Result<Plan, AppError> {
    let c = check(input)?;
    if c.name.is_none()
        && c.description.is_none()
        && c.limit.is_none()
        && c.window_seconds.is_none()
    {
        return Err(AppError::invalid(
            "body",
            "send at least one field to change",
        ));
    }
    let mut tx = begin_plan_change(db, grant).await?;
    // The row as it was, for the audit entry: locked on PostgreSQL (SQLite has one writer),
    // so that `before` is what this change replaces.
    // No key update: the statement below takes the stronger lock itself only when it renames.
    let lock = if db.backend == crate::ssr::db::Backend::Postgres {
        " for no key update"
    } else {
        ""
    };
    let settings = format!(
        "select name, request_limit, window_seconds, description from plan where plan_id = $1{lock}"
    );
    let before: Option<(String, i64, i64, String)> = sqlx::query_as(&settings)
        .bind(plan_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(before) = before else {
        return Err(AppError::not_found("plan"));
    };
    let after: Option<(String, i64, i64, String)> = sqlx::query_as(
        "update plan set name = coalesce($1, name), description = coalesce($2, description),
            request_limit = coalesce($3, request_limit), window_seconds = coalesce($4, window_seconds), updated_at = $5
         where plan_id = $6
         returning name, request_limit, window_seconds, description",
    )
    .bind(c.name)
    .bind(c.description)
    .bind(c.limit)
    .bind(c.window_seconds)
    .bind(now_ms())
    .bind(plan_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(name_taken)?;
    let Some(after) = after else {
        return Err(AppError::not_found("plan"));
    };
    let fields = |(name, limit, window, _): &(String, i64, i64, String)| serde_json::json!({ "name": name, "limit": limit, "window_seconds": window });
    let data = serde_json::json!({
        "before": fields(&before),
        "after": fields(&after),
        "description_changed": before.3 != after.3,
    });
    record_plan(&mut tx, grant, "plan.updated", plan_id, data).await?;
    tx.commit().await?;
    get(db, plan_id).await
}

/// [`update`], then this instance's key cache is cleared so that the plan's keys follow at
/// once (other instances within the cache's bound). The console and REST both call this.
pub async fn update_applied(
    state: &crate::ssr::AppState,
    grant: &Grant,
    plan_id: &str,
    input: &PlanInput,
) -> Result<Plan, AppError> {
    let plan = update(&state.db, grant, plan_id, input).await?;
    crate::keys::ssr::KeyCache::of(state)?.clear();
    Ok(plan)
}

/// Deletes a plan that no key uses; the default plan stays.
pub async fn delete(db: &Db, grant: &Grant, plan_id: &str) -> Result<(), AppError> {
    if plan_id == DEFAULT_PLAN_ID {
        return Err(AppError::conflict(
            "plan",
            "the default plan cannot be deleted (keys without a plan follow it); edit it instead",
        ));
    }
    let mut tx = begin_plan_change(db, grant).await?;
    let deleted: Option<(String, i64, i64)> = match sqlx::query_as(
        "delete from plan where plan_id = $1 and not exists (select 1 from api_key where plan_id = $1)
         returning name, request_limit, window_seconds",
    )
    .bind(plan_id)
    .fetch_optional(&mut *tx)
    .await
    {
        Ok(done) => done,
        // A key put on the plan meanwhile (on PostgreSQL the delete waited for that change,
        // then the key's foreign key refused it): refused like a plan with keys.
        Err(e) if foreign_key_refused(&e) => {
            return Err(AppError::conflict(
                "plan",
                "a key was put on the plan while it was being deleted: move its keys to another plan first",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some((name, limit, window)) = deleted {
        let data = serde_json::json!({ "name": name, "limit": limit, "window_seconds": window });
        record_plan(&mut tx, grant, "plan.deleted", plan_id, data).await?;
        tx.commit().await?;
        return Ok(());
    }
    drop(tx);
    let plan = get(db, plan_id).await?;
    Err(AppError::conflict(
        "plan",
        format!(
            "{} key(s) are on the plan {}: move them to another plan first",
            plan.keys.unwrap_or_default(),
            plan.name
        ),
    ))
}

/// Whether a write failed on a foreign key: it named a plan a concurrent delete had just
/// removed, or removed one a concurrent write had just named (the checks before the write
/// saw the other state).
pub fn foreign_key_refused(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}

/// The answer for a plan that is not there, or no longer: 400 on `plan_id`.
pub fn no_such_plan() -> AppError {
    AppError::invalid("plan_id", "no such plan")
}

/// The plan a key may be put on: it must exist.
pub async fn require(db: &Db, plan_id: &str) -> Result<(), AppError> {
    get(db, plan_id)
        .await
        .map(|_| ())
        .map_err(|e| match e.code {
            crate::error::ErrorCode::NotFound => no_such_plan(),
            _ => e,
        })
}

/// The limit a key of `organization_id` is held to: its own override, else its plan's (the
/// default plan without one), as (requests, window seconds); `None` for no such key.
pub async fn effective_limit(
    pool: &sqlx::AnyPool,
    organization_id: &str,
    key_id: &str,
) -> Result<Option<(i64, i64)>, AppError> {
    Ok(sqlx::query_as(
        "select coalesce(k.rate_limit, p.request_limit, 100), coalesce(k.rate_window_seconds, p.window_seconds, 3600)
         from api_key k left join plan p on p.plan_id = coalesce(k.plan_id, $3)
         where k.api_key_id = $1 and k.organization_id = $2",
    )
    .bind(key_id)
    .bind(organization_id)
    .bind(super::DEFAULT_PLAN_ID)
    .fetch_optional(pool)
    .await?)
}

/// `key_id`'s use of its limit now (see [`super::limiter::RateLimiter::usage`]) and its
/// traffic in the last 24 hours; `not_found` unless the key belongs to the reader's
/// organization.
pub async fn key_usage(
    state: &crate::ssr::AppState,
    reader: &super::stats::Reader,
    key_id: &str,
) -> Result<super::KeyLimitUsage, AppError> {
    let organization_id = reader.organization_id.as_str();
    let (limit, window) = effective_limit(&state.db.reader, organization_id, key_id)
        .await?
        .ok_or_else(|| AppError::not_found("key"))?;
    let now = now_ms();
    let (used, decision) = super::limiter::RateLimiter::of(state)?
        .usage(
            key_id,
            super::window::Limit::new(limit.max(1) as u64, window.max(1)),
            now,
        )
        .await?;
    let (requests_24h, errors_24h) =
        super::stats::key_traffic(&state.db, reader, key_id, now - 86_400_000).await?;
    Ok(super::KeyLimitUsage {
        key_id: key_id.to_string(),
        limit,
        window_seconds: window,
        used: used as i64,
        remaining: decision.remaining as i64,
        reset_seconds: (decision.reset_ms.max(0) + 999) / 1000,
        requests_24h,
        errors_24h,
    })
}
