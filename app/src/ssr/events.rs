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

/// The longest user agent kept in an event.
pub const USER_AGENT_MAX: usize = 256;

/// Adds what the request being served tells about the event to its data (which the audit
/// chain covers): the request id, the client's user agent, and the administrator impersonating
/// the user. A handler can neither forget nor forge them.
fn with_request(mut data: serde_json::Value, actor: Option<&str>) -> serde_json::Value {
    let Some(request) = super::request_id::context() else {
        return data;
    };
    let serde_json::Value::Object(map) = &mut data else {
        return data;
    };
    // Written over whatever the event named: only the request may say these.
    map.insert("request_id".into(), request.id.clone().into());
    if let Some(agent) = &request.user_agent {
        let agent: String = String::from_utf8_lossy(agent.as_bytes())
            .chars()
            .filter(|c| !c.is_control())
            .take(USER_AGENT_MAX)
            .collect();
        map.insert("user_agent".into(), agent.into());
    }
    // The administrator's own acts while impersonating (stopping it) name them as the actor.
    match request.impersonator().filter(|a| Some(a.as_str()) != actor) {
        Some(admin) => map.insert("impersonator".into(), admin.into()),
        None => map.remove("impersonator"),
    };
    data
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
    .bind(with_request(event.data, event.actor_user_id).to_string())
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
