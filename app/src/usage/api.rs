//! Plan server functions for the console. Reading the catalog needs only a session (a key's
//! page shows the plans to choose from); changing it needs `plans:write` in the system
//! organization.

#[cfg(feature = "ssr")]
use super::PlanInput;
use super::{ErrorReport, KeyLimitUsage, OrgTotal, Plan, RequestSeries, UsageSummary};
#[cfg(feature = "ssr")]
use crate::access::Permission;
use crate::error::AppError;
use leptos::prelude::*;

/// Every plan.
#[server(prefix = "/rpc", endpoint = "list_plans")]
pub async fn list_plans() -> Result<Vec<Plan>, AppError> {
    let caller = crate::access::guard::guard("list_plans").await?;
    crate::ssr::respond(async move {
        let principal = crate::access::ssr::Principal::User {
            user_id: caller.user_id()?.to_string(),
        };
        super::ssr::list_for(&caller.state.db, &principal).await
    })
    .await
}

/// Creates a plan (`limit` requests per `window_seconds`).
#[server(prefix = "/rpc", endpoint = "create_plan")]
pub async fn create_plan(
    name: String,
    #[server(default)] description: String,
    limit: String,
    window_seconds: String,
) -> Result<Plan, AppError> {
    let caller = crate::access::guard::guard("create_plan").await?;
    crate::ssr::respond(async move {
        let input = form_input(name, description, &limit, &window_seconds)?;
        let grant = caller.instance_grant(Permission::PlansWrite).await?;
        super::ssr::create(&caller.state.db, &grant, &input).await
    })
    .await
}

/// Changes a plan's limit, window, name or description; its keys follow at once.
#[server(prefix = "/rpc", endpoint = "update_plan")]
pub async fn update_plan(
    plan_id: String,
    name: String,
    #[server(default)] description: String,
    limit: String,
    window_seconds: String,
) -> Result<Plan, AppError> {
    let caller = crate::access::guard::guard("update_plan").await?;
    crate::ssr::respond(async move {
        let input = form_input(name, description, &limit, &window_seconds)?;
        let grant = caller.instance_grant(Permission::PlansWrite).await?;
        super::ssr::update_applied(&caller.state, &grant, &plan_id, &input).await
    })
    .await
}

/// Deletes a plan no key uses (never the default one).
#[server(prefix = "/rpc", endpoint = "delete_plan")]
pub async fn delete_plan(plan_id: String) -> Result<(), AppError> {
    let caller = crate::access::guard::guard("delete_plan").await?;
    crate::ssr::respond(async move {
        let grant = caller.instance_grant(Permission::PlansWrite).await?;
        super::ssr::delete(&caller.state.db, &grant, &plan_id).await
    })
    .await
}

/// The plan form's fields, numbers checked.
#[cfg(feature = "ssr")]
fn form_input(
    name: String,
    description: String,
    limit: &str,
    window_seconds: &str,
) -> Result<PlanInput, AppError> {
    Ok(PlanInput {
        name: Some(name),
        description: Some(description),
        limit: Some(number("limit", limit)?),
        window_seconds: Some(number("window_seconds", window_seconds)?),
    })
}

/// A whole number from a form field, or a clear error naming the field.
pub fn number(field: &str, text: &str) -> Result<i64, AppError> {
    text.trim()
        .parse::<i64>()
        .map_err(|_| AppError::invalid(field, format!("{field} must be a whole number")))
}

/// Requests over time in the organization for a range (`1h`, `24h`, `7d`, `30d`), split by
/// status class, optionally for one key or route; buckets aligned in the viewer's time zone
/// (`tz_offset_minutes` east of UTC).
#[server(prefix = "/rpc", endpoint = "usage_series", client = crate::ui::background::PageClient)]
pub async fn usage_series(
    organization_id: String,
    range: String,
    #[server(default)] key_id: String,
    #[server(default)] route: String,
    #[server(default)] tz_offset_minutes: i32,
) -> Result<RequestSeries, AppError> {
    let (caller, grant) = crate::access::guard::guard_in("usage_series", &organization_id).await?;
    crate::ssr::respond(async move {
        let (range, filter) = super::stats::parse_view(&range, &key_id, &route)?;
        let reader = super::stats::Reader::of(&caller.state.db, &grant).await?;
        super::stats::series(
            &caller.state.db,
            &reader,
            range,
            &filter,
            crate::ssr::db::now_ms(),
            tz_offset_minutes,
        )
        .await
    })
    .await
}

/// The summary of the same range and filters as the chart: totals, error rate, latency
/// percentiles, top keys, routes and error codes, recent errors.
#[server(prefix = "/rpc", endpoint = "usage_overview", client = crate::ui::background::PageClient)]
pub async fn usage_overview(
    organization_id: String,
    range: String,
    #[server(default)] key_id: String,
    #[server(default)] route: String,
) -> Result<UsageSummary, AppError> {
    let (caller, grant) =
        crate::access::guard::guard_in("usage_overview", &organization_id).await?;
    crate::ssr::respond(async move {
        let (range, filter) = super::stats::parse_view(&range, &key_id, &route)?;
        let reader = super::stats::Reader::of(&caller.state.db, &grant).await?;
        super::stats::summary(
            &caller.state.db,
            &reader,
            range,
            &filter,
            crate::ssr::db::now_ms(),
        )
        .await
    })
    .await
}

/// The errors page: errors over time (with each bucket's error rate), top error codes, failing
/// keys and routes, and the latest errors with their messages, for a range and filters.
#[server(prefix = "/rpc", endpoint = "usage_errors", client = crate::ui::background::PageClient)]
pub async fn usage_errors(
    organization_id: String,
    range: String,
    #[server(default)] key_id: String,
    #[server(default)] route: String,
    #[server(default)] tz_offset_minutes: i32,
) -> Result<ErrorReport, AppError> {
    let (caller, grant) = crate::access::guard::guard_in("usage_errors", &organization_id).await?;
    crate::ssr::respond(async move {
        let (range, filter) = super::stats::parse_view(&range, &key_id, &route)?;
        let reader = super::stats::Reader::of(&caller.state.db, &grant).await?;
        super::stats::errors(
            &caller.state.db,
            &reader,
            range,
            &filter,
            crate::ssr::db::now_ms(),
            tz_offset_minutes,
        )
        .await
    })
    .await
}

/// Every organization's totals over a range: instance admins only.
#[server(prefix = "/rpc", endpoint = "usage_by_organization")]
pub async fn usage_by_organization(range: String) -> Result<Vec<OrgTotal>, AppError> {
    let caller = crate::access::guard::guard("usage_by_organization").await?;
    crate::ssr::respond(async move {
        let (range, _) = super::stats::parse_view(&range, "", "")?;
        let reader =
            super::stats::Reader::new(crate::access::ssr::SYSTEM_ORG_ID, caller.user_id()?);
        super::stats::org_totals(&caller.state.db, &reader, range, crate::ssr::db::now_ms()).await
    })
    .await
}

/// A key's use of its limit now, and its traffic in the last 24 hours.
#[server(prefix = "/rpc", endpoint = "key_usage")]
pub async fn key_usage(organization_id: String, key_id: String) -> Result<KeyLimitUsage, AppError> {
    let (caller, grant) = crate::access::guard::guard_in("key_usage", &organization_id).await?;
    crate::ssr::respond(async move {
        let reader = super::stats::Reader::of(&caller.state.db, &grant).await?;
        super::ssr::key_usage(&caller.state, &reader, &key_id).await
    })
    .await
}
