//! What the charts draw, read from the per-minute rollup (server only): never a scan of the
//! raw log.

use super::{Range, RequestSeries};
use crate::error::AppError;
use crate::ssr::db::Db;
use sqlx::Row;

/// The filters of a chart.
#[derive(Clone, Debug, Default)]
pub struct Filter<'a> {
    pub key_id: Option<&'a str>,
    pub route: Option<&'a str>,
}

/// A range and filters as a form or query string sends them (empty: no filter).
pub fn parse_view<'a>(
    range: &str,
    key_id: &'a str,
    route: &'a str,
) -> Result<(Range, Filter<'a>), AppError> {
    let range = Range::parse(range)
        .ok_or_else(|| AppError::invalid("range", "the range is one of 1h, 24h, 7d, 30d"))?;
    Ok((
        range,
        Filter {
            key_id: Some(key_id).filter(|k| !k.is_empty()),
            route: Some(route).filter(|r| !r.is_empty()),
        },
    ))
}

/// The buckets of `range` ending with the one holding `now`, aligned to the bucket length in
/// a time zone `tz_offset_minutes` east of UTC (so "6-hour" buckets start at local midnight):
/// (first start, bucket length, count).
pub fn buckets(range: Range, now: i64, tz_offset_minutes: i32) -> (i64, i64, i64) {
    let size = range.bucket_ms();
    let offset = tz_offset_minutes as i64 * 60_000;
    let local = now + offset;
    let end_local = local.div_euclid(size) * size + size;
    let start = end_local - range.buckets() * size - offset;
    (start, size, range.buckets())
}

/// Requests over time in `organization_id`, split by status class, every bucket present
/// (zero when nothing happened). The buckets sum to the requests logged in the range.
pub async fn series(
    db: &Db,
    organization_id: &str,
    range: Range,
    filter: &Filter<'_>,
    now: i64,
    tz_offset_minutes: i32,
) -> Result<RequestSeries, AppError> {
    if !(-14 * 60..=14 * 60).contains(&tz_offset_minutes) {
        return Err(AppError::invalid(
            "tz_offset_minutes",
            "the time zone offset is between -840 and 840 minutes",
        ));
    }
    let (start, size, count) = buckets(range, now, tz_offset_minutes);
    let end = start + size * count;
    let rows = sqlx::query(
        "select minute, status_class, cast(sum(requests) as bigint) as n from usage_minute
         where organization_id = $1 and minute >= $2 and minute < $3
           and ($4 = '' or api_key_id = $4) and ($5 = '' or route = $5)
         group by minute, status_class",
    )
    .bind(organization_id)
    .bind(start)
    .bind(end)
    .bind(filter.key_id.unwrap_or(""))
    .bind(filter.route.unwrap_or(""))
    .fetch_all(&db.reader)
    .await?;
    let n = count as usize;
    let mut out = RequestSeries {
        range: range.as_str().to_string(),
        bucket_ms: size,
        starts: (0..count).map(|i| start + i * size).collect(),
        ok: vec![0; n],
        client_errors: vec![0; n],
        rate_limited: vec![0; n],
        server_errors: vec![0; n],
        ..Default::default()
    };
    for r in rows {
        let minute: i64 = r.try_get("minute")?;
        let class: String = r.try_get("status_class")?;
        let requests: i64 = r.try_get("n")?;
        let i = ((minute - start) / size) as usize;
        let slot = match class.as_str() {
            "2xx" => &mut out.ok,
            "4xx" => &mut out.client_errors,
            "429" => &mut out.rate_limited,
            _ => &mut out.server_errors,
        };
        if let Some(v) = slot.get_mut(i) {
            *v += requests;
            out.total += requests;
        }
    }
    out.routes = sqlx::query_scalar(
        "select distinct route from usage_minute where organization_id = $1 and minute >= $2 and minute < $3 order by route",
    )
    .bind(organization_id)
    .bind(start)
    .bind(end)
    .fetch_all(&db.reader)
    .await?;
    Ok(out)
}

/// A query of the summary, bound to its organization, time range, key and route (`$1`–`$5`).
fn scoped<'q>(
    sql: &'q str,
    organization_id: &'q str,
    (start, end): (i64, i64),
    key: &'q str,
    route: &'q str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    sqlx::query(sql)
        .bind(organization_id)
        .bind(start)
        .bind(end)
        .bind(key)
        .bind(route)
}

/// Totals, error rate, latency percentiles, top keys, routes and error codes, and the latest
/// errors of `organization_id` over `range` (the same window as the chart, in UTC).
pub async fn summary(
    db: &Db,
    organization_id: &str,
    range: Range,
    filter: &Filter<'_>,
    now: i64,
) -> Result<super::UsageSummary, AppError> {
    use super::{Count, RecentError, UsageSummary};
    let (start, size, count) = buckets(range, now, 0);
    let end = start + size * count;
    let (key, route) = (filter.key_id.unwrap_or(""), filter.route.unwrap_or(""));
    // Totals and top lists from the rollup.
    const WHERE: &str = "organization_id = $1 and minute >= $2 and minute < $3 and ($4 = '' or api_key_id = $4) and ($5 = '' or route = $5)";
    let totals = scoped(&format!(
        "select cast(coalesce(sum(requests), 0) as bigint) as n,
                cast(coalesce(sum(case when status_class <> '2xx' then requests else 0 end), 0) as bigint) as e
         from usage_minute where {WHERE}"
    ), organization_id, (start, end), key, route)
    .fetch_one(&db.reader)
    .await?;
    let requests: i64 = totals.try_get("n")?;
    let errors: i64 = totals.try_get("e")?;
    let top = |column: &'static str| {
        let sql = format!(
            "select {column} as name, cast(sum(requests) as bigint) as n from usage_minute where {WHERE}
             group by {column} order by n desc, name limit 5"
        );
        async move {
            let rows = scoped(&sql, organization_id, (start, end), key, route)
                .fetch_all(&db.reader)
                .await?;
            rows.iter()
                .map(|r| {
                    let name: String = r.try_get("name")?;
                    Ok(Count {
                        label: name.clone(),
                        name,
                        requests: r.try_get("n")?,
                    })
                })
                .collect::<Result<Vec<Count>, sqlx::Error>>()
        }
    };
    let mut top_keys = top("api_key_id").await?;
    top_keys.retain(|c| !c.name.is_empty());
    for k in &mut top_keys {
        if let Some(name) =
            sqlx::query_scalar::<_, String>("select name from api_key where api_key_id = $1")
                .bind(&k.name)
                .fetch_optional(&db.reader)
                .await?
        {
            k.label = name;
        }
    }
    let top_routes = top("route").await?;
    // Error codes, latency and recent errors from the raw log (kept for the retention period).
    const RAW: &str = "organization_id = $1 and occurred_at >= $2 and occurred_at < $3 and ($4 = '' or api_key_id = $4) and ($5 = '' or route = $5)";
    let codes = scoped(&format!(
        "select error_code as name, count(*) as n from request_log where {RAW} and error_code is not null
         group by error_code order by n desc, name limit 5"
    ), organization_id, (start, end), key, route)
    .fetch_all(&db.reader)
    .await?;
    let top_error_codes = codes
        .iter()
        .map(|r| {
            let name: String = r.try_get("name")?;
            Ok(Count {
                label: name.clone(),
                name,
                requests: r.try_get("n")?,
            })
        })
        .collect::<Result<Vec<Count>, sqlx::Error>>()?;
    let logged: i64 = scoped(
        &format!("select count(*) from request_log where {RAW}"),
        organization_id,
        (start, end),
        key,
        route,
    )
    .fetch_one(&db.reader)
    .await?
    .try_get(0)?;
    let mut percentiles = [0.0f64; 3];
    if logged > 0 {
        for (slot, p) in percentiles.iter_mut().zip([0.50, 0.95, 0.99]) {
            // Nearest rank: the smallest value with at least p of the values at or below it.
            let rank = ((p * logged as f64).ceil() as i64).clamp(1, logged) - 1;
            let us: i64 = scoped(&format!(
                "select latency_us from request_log where {RAW} order by latency_us limit 1 offset $6"
            ), organization_id, (start, end), key, route)
            .bind(rank)
                .fetch_one(&db.reader)
                .await?
                .try_get(0)?;
            *slot = us as f64 / 1000.0;
        }
    }
    let recent = scoped(&format!(
        "select request_id, occurred_at, api_key_id, method, route, status, error_code from request_log
         where {RAW} and status >= 400 order by occurred_at desc, request_id limit 20"
    ), organization_id, (start, end), key, route)
    .fetch_all(&db.reader)
    .await?;
    let recent_errors = recent
        .iter()
        .map(|r| {
            Ok(RecentError {
                request_id: r.try_get("request_id")?,
                at: crate::ssr::db::rfc3339(r.try_get("occurred_at")?),
                key_id: r.try_get("api_key_id")?,
                method: r.try_get("method")?,
                route: r.try_get("route")?,
                status: r.try_get("status")?,
                code: r.try_get("error_code")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(UsageSummary {
        range: range.as_str().to_string(),
        requests,
        errors,
        error_rate: if requests > 0 {
            errors as f64 / requests as f64
        } else {
            0.0
        },
        p50_ms: percentiles[0],
        p95_ms: percentiles[1],
        p99_ms: percentiles[2],
        top_keys,
        top_routes,
        top_error_codes,
        recent_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_aligned_and_hold_now() {
        let now = 1_764_000_000_000 + 37_123; // some instant, not aligned
        for range in Range::ALL {
            for tz in [0, 60, -300, 330, 345] {
                let (start, size, count) = buckets(*range, now, tz);
                let end = start + size * count;
                assert!(start <= now && now < end, "{range:?} {tz}");
                assert!(end - now <= size, "the last bucket holds now");
                assert_eq!(
                    (start + tz as i64 * 60_000).rem_euclid(size),
                    0,
                    "aligned in local time"
                );
                assert_eq!(
                    start % 60_000,
                    0,
                    "whole minutes: rollup rows fall in one bucket"
                );
            }
        }
        assert_eq!(
            buckets(Range::Month, now, 0).2 * Range::Month.bucket_ms(),
            30 * 86_400_000
        );
        assert_eq!(
            buckets(Range::Day, now, 0).2 * Range::Day.bucket_ms(),
            86_400_000
        );
    }
}
