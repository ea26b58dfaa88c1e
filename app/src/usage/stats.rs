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
