//! Reading the audit log (server only).

use super::{AuditEntry, AuditPage, AuditQuery, AUDIT_PER_PAGE};
use crate::access::ssr::SYSTEM_ORG_ID;
use crate::error::AppError;
use crate::ssr::db::{rfc3339, Db};
use sqlx::Row;

/// A bound of the time filter in ms: a day (`YYYY-MM-DD`, its start; its end for `to`) or an
/// RFC 3339 instant.
fn bound(field: &str, text: &str, end: bool) -> Result<i64, AppError> {
    let text = text.trim();
    if let Ok(day) = text.parse::<jiff::civil::Date>() {
        let day = if end {
            day.tomorrow().map_err(|_| invalid(field))?
        } else {
            day
        };
        let at = jiff::tz::TimeZone::UTC
            .to_timestamp(day.to_datetime(jiff::civil::Time::midnight()))
            .map_err(|_| invalid(field))?;
        return Ok(at.as_millisecond());
    }
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| invalid(field))
}

fn invalid(field: &str) -> AppError {
    AppError::invalid(
        field,
        "a day (2026-11-26) or an instant (2026-11-26T15:30:00Z)",
    )
}

/// One page of the organization's audit log (the whole instance's for the system
/// organization), newest first.
pub async fn list(db: &Db, organization_id: &str, q: &AuditQuery) -> Result<AuditPage, AppError> {
    let page = q.page.unwrap_or(1).clamp(1, 10_000);
    let mut filter = String::from(" where 1 = 1");
    let mut binds: Vec<String> = Vec::new();
    if organization_id != SYSTEM_ORG_ID {
        binds.push(organization_id.to_string());
        filter.push_str(&format!(" and e.organization_id = ${}", binds.len()));
    }
    if let Some(actor) = q.actor.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        binds.push(actor.to_string());
        let exact = binds.len();
        binds.push(crate::admin::ssr::like_pattern(actor));
        filter.push_str(&format!(
            " and (e.actor_user_id = ${exact} or u.email_normalized like ${} escape '!')",
            binds.len()
        ));
    }
    if let Some(action) = q.action.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        // A prefix: `key.` finds every key action.
        let mut pattern = crate::admin::ssr::like_pattern(action);
        pattern.remove(0);
        binds.push(pattern);
        filter.push_str(&format!(" and e.kind like ${} escape '!'", binds.len()));
    }
    if let Some(target) = q.target.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        binds.push(target.to_string());
        filter.push_str(&format!(" and e.subject_id = ${}", binds.len()));
    }
    // Time bounds are numbers: written into the statement, never a string.
    if let Some(from) = q.from.as_deref().filter(|s| !s.trim().is_empty()) {
        let at = bound("from", from, false)?;
        filter.push_str(&format!(" and e.occurred_at >= {at}"));
    }
    if let Some(to) = q.to.as_deref().filter(|s| !s.trim().is_empty()) {
        let at = bound("to", to, true)?;
        filter.push_str(&format!(" and e.occurred_at < {at}"));
    }
    let from = " from domain_event e left join app_user u on u.user_id = e.actor_user_id";
    let count_sql = format!("select count(*){from}{filter}");
    let mut count = sqlx::query_scalar::<_, i64>(&count_sql);
    for b in &binds {
        count = count.bind(b);
    }
    let total = count.fetch_one(&db.reader).await?;
    let sql = format!(
        "select e.seq, e.event_id, e.occurred_at, e.kind, e.actor_user_id, u.email, e.subject_id,
                t.email as target_email, e.organization_id, e.source_ip, e.data{from}
         left join app_user t on t.user_id = e.subject_id{filter}
         order by e.occurred_at desc, e.event_id desc limit {AUDIT_PER_PAGE} offset {}",
        (page - 1) * AUDIT_PER_PAGE
    );
    let mut query = sqlx::query(&sql);
    for b in &binds {
        query = query.bind(b);
    }
    let rows = query.fetch_all(&db.reader).await?;
    let entries = rows
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                seq: r.try_get("seq")?,
                event_id: r.try_get("event_id")?,
                at: rfc3339(r.try_get("occurred_at")?),
                action: r.try_get("kind")?,
                actor: r.try_get("actor_user_id")?,
                actor_email: r.try_get("email")?,
                target: r.try_get("subject_id")?,
                target_email: r.try_get("target_email")?,
                organization_id: r.try_get("organization_id")?,
                ip: r.try_get("source_ip")?,
                data: serde_json::from_str(&r.try_get::<String, _>("data")?)
                    .unwrap_or(serde_json::Value::Null),
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(AuditPage {
        entries,
        total,
        page,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds_read_days_and_instants() {
        assert_eq!(
            bound("from", "2026-11-26", false).unwrap(),
            1_795_651_200_000
        );
        assert_eq!(bound("to", "2026-11-26", true).unwrap(), 1_795_737_600_000);
        assert_eq!(
            bound("from", "2026-11-26T00:00:01Z", false).unwrap(),
            1_795_651_201_000
        );
        assert!(bound("from", "yesterday", false).is_err());
    }
}
