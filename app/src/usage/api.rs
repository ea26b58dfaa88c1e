//! Plan server functions for the console. Reading the catalog needs only a session (a key's
//! page shows the plans to choose from); changing it needs `plans:write` in the system
//! organization.

use super::Plan;
#[cfg(feature = "ssr")]
use super::PlanInput;
use crate::error::AppError;
use leptos::prelude::*;

/// Every plan.
#[server(prefix = "/rpc", endpoint = "list_plans")]
pub async fn list_plans() -> Result<Vec<Plan>, AppError> {
    let caller = crate::access::guard::guard("list_plans").await?;
    crate::ssr::respond(super::ssr::list(&caller.state.db)).await
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
        let input = PlanInput {
            name: Some(name),
            description: Some(description),
            limit: Some(number("limit", &limit)?),
            window_seconds: Some(number("window_seconds", &window_seconds)?),
        };
        super::ssr::create(&caller.state.db, &input).await
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
        let input = PlanInput {
            name: Some(name),
            description: Some(description),
            limit: Some(number("limit", &limit)?),
            window_seconds: Some(number("window_seconds", &window_seconds)?),
        };
        let plan = super::ssr::update(&caller.state.db, &plan_id, &input).await?;
        crate::keys::ssr::KeyCache::of(&caller.state)?.clear();
        Ok(plan)
    })
    .await
}

/// Deletes a plan no key uses (never the default one).
#[server(prefix = "/rpc", endpoint = "delete_plan")]
pub async fn delete_plan(plan_id: String) -> Result<(), AppError> {
    let caller = crate::access::guard::guard("delete_plan").await?;
    crate::ssr::respond(super::ssr::delete(&caller.state.db, &plan_id)).await
}

/// A whole number from a form field, or a clear error naming the field.
pub fn number(field: &str, text: &str) -> Result<i64, AppError> {
    text.trim()
        .parse::<i64>()
        .map_err(|_| AppError::invalid(field, format!("{field} must be a whole number")))
}
