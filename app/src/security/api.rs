//! The security scan's server functions.

use super::SecurityReport;
use crate::error::AppError;
use crate::keys::ApiKey;
use leptos::prelude::*;

/// The organization's security report (the whole instance's for the system organization).
#[server(prefix = "/rpc", endpoint = "security_scan")]
pub async fn security_scan(organization_id: String) -> Result<SecurityReport, AppError> {
    let (caller, grant) = crate::access::guard::guard_in("security_scan", &organization_id).await?;
    crate::ssr::respond(async move {
        let state = &caller.state;
        let reader = crate::usage::stats::Reader::of(&state.db, &grant).await?;
        super::ssr::scan(
            &state.db,
            &state.config,
            state.domains.get::<super::RouteCatalog>()?,
            &reader,
            super::ssr::Sections::of(&grant),
            crate::ssr::db::now_ms(),
        )
        .await
    })
    .await
}

/// Narrows a key's scopes to what it used in the last 30 days.
#[server(prefix = "/rpc", endpoint = "narrow_key_scopes")]
pub async fn narrow_key_scopes(
    organization_id: String,
    key_id: String,
) -> Result<ApiKey, AppError> {
    let (caller, grant) =
        crate::access::guard::guard_in("narrow_key_scopes", &organization_id).await?;
    crate::ssr::respond(async move {
        let ip = caller.source_ip_text();
        let acting = crate::keys::ssr::Acting::new(&grant, ip.as_deref());
        super::ssr::narrow(&caller.state, acting, &key_id).await
    })
    .await
}
