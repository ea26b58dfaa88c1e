//! The audit log's server function.

use super::AuditPage;
use crate::error::AppError;
use leptos::prelude::*;

/// One page of the organization's audit log with the given filters (empty: none).
#[server(prefix = "/rpc", endpoint = "audit_log")]
pub async fn audit_log(
    organization_id: String,
    #[server(default)] actor: String,
    #[server(default)] action: String,
    #[server(default)] target: String,
    #[server(default)] from: String,
    #[server(default)] to: String,
    #[server(default)] page: Option<u32>,
) -> Result<AuditPage, AppError> {
    let (caller, grant) = crate::access::guard::guard_in("audit_log", &organization_id).await?;
    crate::ssr::respond(async move {
        let q = super::AuditQuery {
            actor: Some(actor),
            action: Some(action),
            target: Some(target),
            from: Some(from),
            to: Some(to),
            page,
        };
        let reader = crate::usage::stats::Reader::of(&caller.state.db, &grant).await?;
        super::ssr::list(&caller.state.db, &reader, &q).await
    })
    .await
}
