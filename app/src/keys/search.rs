//! The key list's search, filters, sort and pages (server only), built as one parameterised
//! query.

use super::ssr::{KeyRow, COLUMNS};
use super::Category;
use crate::error::AppError;
use crate::ssr::db::{now_ms, Db};
use sqlx::{Any, Row};

/// A page of the organization's keys matching `query`.
pub async fn search(
    db: &Db,
    org_id: &str,
    query: &super::KeyQuery,
) -> Result<super::KeyList, AppError> {
    enum Arg {
        Text(String),
        Int(i64),
    }
    let now = now_ms();
    let mut clauses = vec!["organization_id = $1".to_string()];
    let mut args = vec![Arg::Text(org_id.to_string())];
    fn bind(arg: Arg, args: &mut Vec<Arg>) -> String {
        args.push(arg);
        format!("${}", args.len())
    }
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        if q.chars().count() > 100 {
            return Err(AppError::invalid("q", "search at most 100 characters"));
        }
        let pattern = format!(
            "%{}%",
            q.to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let p = bind(Arg::Text(pattern), &mut args);
        clauses.push(format!(
            "(lower(name) like {p} escape '\\' or lower(description) like {p} escape '\\' or lower(display_prefix) like {p} escape '\\')"
        ));
    }
    if let Some(status) = query.status.as_deref().filter(|s| !s.is_empty()) {
        // As `effective_status` ranks them: revoked, then pending approval, then the rest.
        clauses.push(match status {
            "active" => {
                let n = bind(Arg::Int(now), &mut args);
                format!("(status = 'active' and approval <> 'pending' and (expires_at is null or expires_at > {n}))")
            }
            "expired" => {
                let n = bind(Arg::Int(now), &mut args);
                format!("(status = 'active' and approval <> 'pending' and expires_at <= {n})")
            }
            "disabled" => "(status = 'disabled' and approval <> 'pending')".into(),
            "revoked" => "status = 'revoked'".into(),
            "pending" => "(status <> 'revoked' and approval = 'pending')".into(),
            _ => {
                return Err(AppError::invalid(
                    "status",
                    "status must be active, disabled, revoked, expired or pending",
                ))
            }
        });
    }
    if let Some(c) = query.category.as_deref().filter(|s| !s.is_empty()) {
        let c = Category::parse(c).ok_or_else(|| {
            AppError::invalid(
                "category",
                "category must be basic, read_only, admin or custom",
            )
        })?;
        let p = bind(Arg::Text(c.as_str().into()), &mut args);
        clauses.push(format!("category = {p}"));
    }
    match query.owner.as_deref().filter(|s| !s.is_empty()) {
        None => {}
        Some("org") => clauses.push("owner_user_id is null".into()),
        Some("personal") => clauses.push("owner_user_id is not null".into()),
        Some(_) => return Err(AppError::invalid("owner", "owner must be org or personal")),
    }
    if let Some(days) = query.expiring_within_days {
        if !(1..=3660).contains(&days) {
            return Err(AppError::invalid(
                "expiring_within_days",
                "expiring_within_days must be between 1 and 3660",
            ));
        }
        let from = bind(Arg::Int(now), &mut args);
        let to = bind(Arg::Int(now + days * 86_400_000), &mut args);
        clauses.push(format!(
            "(status = 'active' and approval <> 'pending' and expires_at > {from} and expires_at <= {to})"
        ));
    }
    let order = match query.sort.as_deref().unwrap_or("created_desc") {
        "" | "created_desc" => "created_at desc, api_key_id",
        "created_asc" => "created_at asc, api_key_id",
        "name" => "lower(name) asc, api_key_id",
        "expires_at" => {
            "case when expires_at is null then 1 else 0 end, expires_at asc, api_key_id"
        }
        "last_used_desc" => {
            "case when last_used_at is null then 1 else 0 end, last_used_at desc, api_key_id"
        }
        _ => {
            return Err(AppError::invalid(
                "sort",
                "sort must be created_desc, created_asc, name, expires_at or last_used_desc",
            ))
        }
    };
    let per_page = query.per_page.unwrap_or(25);
    if !(1..=100).contains(&per_page) {
        return Err(AppError::invalid(
            "per_page",
            "per_page must be between 1 and 100",
        ));
    }
    let page = query.page.unwrap_or(1);
    if !(1..=100_000).contains(&page) {
        return Err(AppError::invalid("page", "page must be 1 or more"));
    }
    let filter = clauses.join(" and ");
    fn bind_all<'q>(
        sql: &'q str,
        args: &'q [Arg],
    ) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
        let mut q = sqlx::query(sql);
        for a in args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }
    let count_sql = format!("select count(*) as n from api_key where {filter}");
    let total: i64 = bind_all(&count_sql, &args)
        .fetch_one(&db.reader)
        .await?
        .try_get("n")?;
    // Only whitelisted text and checked integers are formatted into the SQL; values are bound.
    let page_sql = format!(
        "select {COLUMNS} from api_key where {filter} order by {order} limit {per_page} offset {}",
        (page - 1) * per_page
    );
    let rows = bind_all(&page_sql, &args).fetch_all(&db.reader).await?;
    let data = rows
        .iter()
        .map(|r| Ok(KeyRow::from_row(r)?.to_wire(now)))
        .collect::<Result<Vec<_>, AppError>>()?;
    Ok(super::KeyList {
        data,
        total,
        page,
        per_page,
    })
}
