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

/// The statement's `where` clause for an organization and the filters, with its binds.
struct Filter {
    sql: String,
    binds: Vec<String>,
}

/// Longest actor, action or target filter, in characters: an address (254), an event kind or
/// an id is shorter. A longer one is refused (400) before it reaches a `like` (SQLite refuses
/// a pattern over 50 000 bytes with an error of its own).
pub const FILTER_MAX: usize = 320;

fn filter(organization_id: &str, q: &AuditQuery) -> Result<Filter, AppError> {
    for (field, value) in [
        ("actor", &q.actor),
        ("action", &q.action),
        ("target", &q.target),
    ] {
        if value
            .as_deref()
            .is_some_and(|v| v.chars().count() > FILTER_MAX)
        {
            return Err(AppError::invalid(
                field,
                format!("{field} is at most {FILTER_MAX} characters long"),
            ));
        }
    }
    let mut sql = String::from(" where 1 = 1");
    let mut binds: Vec<String> = Vec::new();
    if organization_id != SYSTEM_ORG_ID {
        binds.push(organization_id.to_string());
        sql.push_str(&format!(" and e.organization_id = ${}", binds.len()));
    }
    if let Some(actor) = q.actor.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        binds.push(actor.to_string());
        let exact = binds.len();
        binds.push(crate::admin::ssr::like_pattern(actor));
        sql.push_str(&format!(
            " and (e.actor_user_id = ${exact} or u.email_normalized like ${} escape '!')",
            binds.len()
        ));
    }
    if let Some(action) = q.action.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        // A prefix: `key.` finds every key action.
        let mut pattern = crate::admin::ssr::like_pattern(action);
        pattern.remove(0);
        binds.push(pattern);
        sql.push_str(&format!(" and e.kind like ${} escape '!'", binds.len()));
    }
    if let Some(target) = q.target.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        binds.push(target.to_string());
        sql.push_str(&format!(" and e.subject_id = ${}", binds.len()));
    }
    // Time bounds are numbers: written into the statement, never a string.
    if let Some(from) = q.from.as_deref().filter(|s| !s.trim().is_empty()) {
        let at = bound("from", from, false)?;
        sql.push_str(&format!(" and e.occurred_at >= {at}"));
    }
    if let Some(to) = q.to.as_deref().filter(|s| !s.trim().is_empty()) {
        let at = bound("to", to, true)?;
        sql.push_str(&format!(" and e.occurred_at < {at}"));
    }
    Ok(Filter { sql, binds })
}

const FROM: &str = " from domain_event e left join app_user u on u.user_id = e.actor_user_id";

/// How many entries match.
async fn count_of(db: &Db, f: &Filter) -> Result<i64, AppError> {
    let sql = format!("select count(*){FROM}{}", f.sql);
    let mut count = sqlx::query_scalar::<_, i64>(&sql);
    for b in &f.binds {
        count = count.bind(b);
    }
    Ok(count.fetch_one(&db.reader).await?)
}

/// The matching entries (newest first) after `more` (a further condition) and with `limit`
/// (`limit … offset …`), each with its time in ms (an export's cursor).
async fn fetch(
    db: &Db,
    f: &Filter,
    more: &str,
    more_binds: &[&str],
    limit: &str,
) -> Result<Vec<(i64, AuditEntry)>, AppError> {
    let sql = format!(
        "select e.seq, e.event_id, e.occurred_at, e.kind, e.actor_user_id, u.email, e.subject_id,
                t.email as target_email, e.organization_id, e.source_ip, e.data{FROM}
         left join app_user t on t.user_id = e.subject_id{}{more}
         order by e.occurred_at desc, e.event_id desc {limit}",
        f.sql
    );
    let mut query = sqlx::query(&sql);
    for b in f
        .binds
        .iter()
        .map(String::as_str)
        .chain(more_binds.iter().copied())
    {
        query = query.bind(b);
    }
    let rows = query.fetch_all(&db.reader).await?;
    let mut entries = rows
        .iter()
        .map(|r| {
            let at: i64 = r.try_get("occurred_at")?;
            let data: serde_json::Value = serde_json::from_str(&r.try_get::<String, _>("data")?)
                .unwrap_or(serde_json::Value::Null);
            let text = |k: &str| data.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let entry = AuditEntry {
                seq: r.try_get("seq")?,
                event_id: r.try_get("event_id")?,
                at: rfc3339(at),
                action: r.try_get("kind")?,
                actor: r.try_get("actor_user_id")?,
                actor_email: r.try_get("email")?,
                impersonator: text("impersonator"),
                impersonator_email: None,
                target: r.try_get("subject_id")?,
                target_email: r.try_get("target_email")?,
                organization_id: r.try_get("organization_id")?,
                ip: r.try_get("source_ip")?,
                user_agent: text("user_agent"),
                request_id: text("request_id"),
                before: data.get("before").cloned(),
                after: data.get("after").cloned(),
                data,
            };
            Ok((at, entry))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    name_impersonators(db, &mut entries).await?;
    Ok(entries)
}

/// Fills in the impersonating administrators' addresses.
async fn name_impersonators(db: &Db, entries: &mut [(i64, AuditEntry)]) -> Result<(), AppError> {
    let mut ids: Vec<String> = entries
        .iter()
        .filter_map(|(_, e)| e.impersonator.clone())
        .collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "select user_id, email from app_user where user_id in ({})",
        marks.join(", ")
    );
    let mut query = sqlx::query_as::<_, (String, String)>(&sql);
    for id in &ids {
        query = query.bind(id);
    }
    let emails: std::collections::HashMap<String, String> =
        query.fetch_all(&db.reader).await?.into_iter().collect();
    for (_, e) in entries.iter_mut() {
        e.impersonator_email = e
            .impersonator
            .as_ref()
            .and_then(|id| emails.get(id).cloned());
    }
    Ok(())
}

/// One page of the organization's audit log (the whole instance's for the system
/// organization), newest first.
pub async fn list(
    db: &Db,
    reader: &crate::usage::stats::Reader,
    q: &AuditQuery,
) -> Result<AuditPage, AppError> {
    let page = q.page.unwrap_or(1).clamp(1, 10_000);
    let f = filter(&reader.organization_id, q)?;
    let turn = crate::usage::stats::audit_turn(db, reader).await?;
    let db = db.clone();
    let (total, entries) = crate::usage::stats::under(turn, async move {
        let total = count_of(&db, &f).await?;
        let limit = format!(
            "limit {AUDIT_PER_PAGE} offset {}",
            (page - 1) * AUDIT_PER_PAGE
        );
        let entries = fetch(&db, &f, "", &[], &limit)
            .await?
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        Ok((total, entries))
    })
    .await?;
    Ok(AuditPage {
        entries,
        total,
        page,
    })
}

/// Entries an export reads at a time.
pub const EXPORT_PAGE: usize = 500;

/// An export of the audit log: the organization and filters, checked once.
#[derive(Clone)]
pub struct Export {
    filter: std::sync::Arc<Filter>,
    organization_id: std::sync::Arc<str>,
}

/// Where an export goes on: after this entry (newest first).
#[derive(Clone, Debug, Default)]
pub struct ExportCursor(Option<(i64, String)>);

impl Export {
    /// Validates the filters; refuses a bad one before anything streams.
    pub fn new(organization_id: &str, q: &AuditQuery) -> Result<Export, AppError> {
        Ok(Export {
            filter: std::sync::Arc::new(filter(organization_id, q)?),
            organization_id: organization_id.into(),
        })
    }

    /// How many entries the export holds, before anything is sent (taking a turn to read:
    /// [`crate::usage::stats::audit_turn`], as `reader`'s holder; a 503 then is still a clean
    /// refusal).
    pub async fn count(
        &self,
        db: &Db,
        reader: &crate::usage::stats::Reader,
    ) -> Result<i64, AppError> {
        let reader = reader.in_organization(&self.organization_id);
        let turn = crate::usage::stats::audit_turn(db, &reader).await?;
        let (db, filter) = (db.clone(), self.filter.clone());
        crate::usage::stats::under(turn, async move { count_of(&db, &filter).await }).await
    }

    /// The next entries after `cursor` (keyset: entries recorded meanwhile neither repeat nor
    /// shift the rest), and the cursor after them; empty at the end.
    pub async fn page(
        &self,
        db: &Db,
        cursor: &ExportCursor,
    ) -> Result<(Vec<AuditEntry>, ExportCursor), AppError> {
        // No turn here: the export's slot already bounds how many read at once, and a page
        // refused after the first had gone out would cut the file short.
        let limit = format!("limit {EXPORT_PAGE}");
        let rows = match &cursor.0 {
            None => fetch(db, &self.filter, "", &[], &limit).await?,
            Some((at, id)) => {
                let n = self.filter.binds.len() + 1;
                let more = format!(
                    " and (e.occurred_at < {at} or (e.occurred_at = {at} and e.event_id < ${n}))"
                );
                fetch(db, &self.filter, &more, &[id.as_str()], &limit).await?
            }
        };
        let next = ExportCursor(
            rows.last()
                .map(|(at, e)| (*at, e.event_id.clone()))
                .or_else(|| cursor.0.clone()),
        );
        Ok((rows.into_iter().map(|(_, e)| e).collect(), next))
    }
}

/// The CSV columns of an export.
pub const CSV_HEADER: [&str; 17] = [
    "seq",
    "event_id",
    "at",
    "action",
    "actor",
    "actor_email",
    "impersonator",
    "impersonator_email",
    "organization_id",
    "target",
    "target_email",
    "ip",
    "user_agent",
    "request_id",
    "before",
    "after",
    "data",
];

/// What goes before the first entry.
pub fn head(format: crate::usage::export::Format) -> Result<Vec<u8>, AppError> {
    use crate::usage::export::Format;
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(CSV_HEADER).map_err(AppError::internal)?;
            w.into_inner().map_err(AppError::internal)
        }
        Format::Json => Ok(b"[".to_vec()),
    }
}

/// Entries encoded; `first`: no entry came before (JSON's commas). One entry per line.
pub fn encode(
    format: crate::usage::export::Format,
    entries: &[AuditEntry],
    first: bool,
) -> Result<Vec<u8>, AppError> {
    use crate::keys::export::csv_cell;
    use crate::usage::export::Format;
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let json = |v: &Option<serde_json::Value>| {
                v.as_ref().map(|v| v.to_string()).unwrap_or_default()
            };
            for e in entries {
                let text = |v: &Option<String>| csv_cell(v.as_deref().unwrap_or("")).into_owned();
                w.write_record([
                    e.seq.map(|s| s.to_string()).unwrap_or_default(),
                    e.event_id.clone(),
                    e.at.clone(),
                    csv_cell(&e.action).into_owned(),
                    text(&e.actor),
                    text(&e.actor_email),
                    text(&e.impersonator),
                    text(&e.impersonator_email),
                    text(&e.organization_id),
                    text(&e.target),
                    text(&e.target_email),
                    text(&e.ip),
                    text(&e.user_agent),
                    text(&e.request_id),
                    csv_cell(&json(&e.before)).into_owned(),
                    csv_cell(&json(&e.after)).into_owned(),
                    csv_cell(&e.data.to_string()).into_owned(),
                ])
                .map_err(AppError::internal)?;
            }
            w.into_inner().map_err(AppError::internal)
        }
        Format::Json => {
            let mut out = Vec::new();
            for (i, e) in entries.iter().enumerate() {
                if !(first && i == 0) {
                    out.push(b',');
                }
                out.push(b'\n');
                serde_json::to_writer(&mut out, e).map_err(AppError::internal)?;
            }
            Ok(out)
        }
    }
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
