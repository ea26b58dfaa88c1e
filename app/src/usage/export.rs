//! Exporting the usage statistics of a range and filters as CSV or JSON (server only): the
//! per-minute rollup rows the charts are drawn from, read page by page so that a 30-day export
//! of a busy organization streams in constant memory. `GET /usage/export` (console) and
//! `GET /api/v1/usage/export` (REST) serve it.

use super::stats::{buckets, Filter};
use super::Range;
use crate::error::AppError;
use crate::keys::export::csv_cell;
use crate::ssr::db::{rfc3339, Db};
use serde::Serialize;
use sqlx::Row;

/// Rows read per page.
pub const PAGE: i64 = 2_000;

/// The CSV header, in the order of [`ExportRow`]'s fields.
pub const CSV_HEADER: &[&str] = &[
    "minute",
    "api_key_id",
    "key_name",
    "route",
    "status_class",
    "requests",
    "latency_ms_avg",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, AppError> {
        match s {
            "csv" | "" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            _ => Err(AppError::invalid("format", "the format is csv or json")),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// One minute of one key, route and status class.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExportRow {
    /// RFC 3339, UTC: the minute's start.
    pub minute: String,
    pub api_key_id: String,
    pub key_name: String,
    pub route: String,
    pub status_class: String,
    pub requests: i64,
    pub latency_ms_avg: f64,
}

/// Where the next page starts: after this (minute, key, route, status class).
#[derive(Clone, Debug, Default)]
pub struct Cursor(Option<(i64, String, String, String)>);

/// An export's scope: the organization, the window and the filters, owned (it outlives the
/// request while the body streams).
#[derive(Clone, Debug)]
pub struct Scope {
    pub organization_id: String,
    pub start: i64,
    pub end: i64,
    pub key_id: String,
    pub route: String,
}

impl Scope {
    /// The chart's window for `range` in the viewer's time zone.
    pub fn new(
        organization_id: String,
        range: Range,
        filter: &Filter<'_>,
        now: i64,
        tz_offset_minutes: i32,
    ) -> Scope {
        let (start, size, count) = buckets(range, now, tz_offset_minutes);
        Scope {
            organization_id,
            start,
            end: start + size * count,
            key_id: filter.key_id.unwrap_or("").to_string(),
            route: filter.route.unwrap_or("").to_string(),
        }
    }
}

const WHERE: &str = "u.organization_id = $1 and u.minute >= $2 and u.minute < $3 and ($4 = '' or u.api_key_id = $4) and ($5 = '' or u.route = $5)";

/// How many rows the export holds (for the progress bar).
pub async fn count(db: &Db, scope: &Scope) -> Result<i64, AppError> {
    Ok(sqlx::query(&format!(
        "select count(*) from usage_minute u where {WHERE}"
    ))
    .bind(&scope.organization_id)
    .bind(scope.start)
    .bind(scope.end)
    .bind(&scope.key_id)
    .bind(&scope.route)
    .fetch_one(&db.reader)
    .await?
    .try_get(0)?)
}

/// The next page after `cursor` (empty: the export is complete), and the cursor after it.
pub async fn page(
    db: &Db,
    scope: &Scope,
    cursor: &Cursor,
) -> Result<(Vec<ExportRow>, Cursor), AppError> {
    let (m, k, r, c) =
        cursor
            .0
            .clone()
            .unwrap_or((i64::MIN, String::new(), String::new(), String::new()));
    let rows = sqlx::query(&format!(
        "select u.minute, u.api_key_id, coalesce(k.name, '') as key_name, u.route, u.status_class, u.requests, u.latency_us_sum
         from usage_minute u left join api_key k on k.api_key_id = u.api_key_id
         where {WHERE} and (u.minute > $6 or (u.minute = $6 and (u.api_key_id > $7 or (u.api_key_id = $7 and (u.route > $8 or (u.route = $8 and u.status_class > $9))))))
         order by u.minute, u.api_key_id, u.route, u.status_class limit $10"
    ))
    .bind(&scope.organization_id)
    // From the cursor's minute on: the index on (organization, minute) then starts where the
    // last page ended instead of rescanning the window for every page.
    .bind(scope.start.max(m))
    .bind(scope.end)
    .bind(&scope.key_id)
    .bind(&scope.route)
    .bind(m)
    .bind(k)
    .bind(r)
    .bind(c)
    .bind(PAGE)
    .fetch_all(&db.reader)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut next = cursor.clone();
    for row in &rows {
        let minute: i64 = row.try_get("minute")?;
        let requests: i64 = row.try_get("requests")?;
        let latency: i64 = row.try_get("latency_us_sum")?;
        let r = ExportRow {
            minute: rfc3339(minute),
            api_key_id: row.try_get("api_key_id")?,
            key_name: row.try_get("key_name")?,
            route: row.try_get("route")?,
            status_class: row.try_get("status_class")?,
            requests,
            latency_ms_avg: if requests > 0 {
                (latency as f64 / requests as f64 / 10.0).round() / 100.0
            } else {
                0.0
            },
        };
        next = Cursor(Some((
            minute,
            r.api_key_id.clone(),
            r.route.clone(),
            r.status_class.clone(),
        )));
        out.push(r);
    }
    Ok((out, next))
}

/// What goes before the first row.
pub fn head(format: Format) -> Result<Vec<u8>, AppError> {
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(CSV_HEADER).map_err(AppError::internal)?;
            w.into_inner().map_err(AppError::internal)
        }
        Format::Json => Ok(b"[".to_vec()),
    }
}

/// Rows encoded; `first` says whether any row came before (JSON's commas). JSON puts one row
/// per line, so a client can count rows as they arrive in either format.
pub fn encode(format: Format, rows: &[ExportRow], first: bool) -> Result<Vec<u8>, AppError> {
    match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            for r in rows {
                let requests = r.requests.to_string();
                let latency = r.latency_ms_avg.to_string();
                w.write_record([
                    r.minute.as_str(),
                    &csv_cell(&r.api_key_id),
                    &csv_cell(&r.key_name),
                    &csv_cell(&r.route),
                    r.status_class.as_str(),
                    requests.as_str(),
                    latency.as_str(),
                ])
                .map_err(AppError::internal)?;
            }
            w.into_inner().map_err(AppError::internal)
        }
        Format::Json => {
            let mut out = Vec::new();
            for (i, r) in rows.iter().enumerate() {
                if !(first && i == 0) {
                    out.push(b',');
                }
                out.push(b'\n');
                serde_json::to_writer(&mut out, r).map_err(AppError::internal)?;
            }
            Ok(out)
        }
    }
}

/// What goes after the last row.
pub fn tail(format: Format) -> &'static [u8] {
    match format {
        Format::Csv => b"",
        Format::Json => b"\n]\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> ExportRow {
        ExportRow {
            minute: "2026-11-26T00:00:00Z".into(),
            api_key_id: "key_1".into(),
            key_name: name.into(),
            route: "/api/v1/me".into(),
            status_class: "2xx".into(),
            requests: 3,
            latency_ms_avg: 1.25,
        }
    }

    #[test]
    fn csv_escapes_formulas_and_json_is_one_row_per_line() {
        let csv =
            String::from_utf8(encode(Format::Csv, &[row("=HYPERLINK(1)")], true).unwrap()).unwrap();
        assert_eq!(
            csv,
            "2026-11-26T00:00:00Z,key_1,'=HYPERLINK(1),/api/v1/me,2xx,3,1.25\n"
        );
        let mut json = head(Format::Json).unwrap();
        json.extend(encode(Format::Json, &[row("a"), row("b")], true).unwrap());
        json.extend(encode(Format::Json, &[row("c")], false).unwrap());
        json.extend(tail(Format::Json));
        let text = String::from_utf8(json).unwrap();
        let parsed: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[2]["key_name"], "c");
        assert_eq!(text.lines().filter(|l| l.contains("\"minute\"")).count(), 3);
    }
}
