//! Domain events: the one place where a change announces itself ("user.signed_up",
//! "user.signed_in", "membership.granted"…). Events are written in the same transaction as the
//! change, so the audit log, notifications and webhooks that read them later never miss one
//! nor see one for a change that rolled back.

use super::db::{new_id, now_ms};
use sqlx::{Any, Transaction};

/// What happened, to what, by whom.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub kind: &'static str,
    pub organization_id: Option<&'a str>,
    pub actor_user_id: Option<&'a str>,
    pub subject_id: Option<&'a str>,
    pub source_ip: Option<&'a str>,
    pub data: serde_json::Value,
}

/// Records `event` inside `tx`.
pub async fn record(tx: &mut Transaction<'_, Any>, event: Event<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into domain_event (event_id, organization_id, actor_user_id, kind, subject_id, source_ip, data, occurred_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(new_id("evt"))
    .bind(event.organization_id)
    .bind(event.actor_user_id)
    .bind(event.kind)
    .bind(event.subject_id)
    .bind(event.source_ip)
    .bind(event.data.to_string())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    tracing::info!(
        kind = event.kind,
        subject = event.subject_id,
        "domain event"
    );
    Ok(())
}
