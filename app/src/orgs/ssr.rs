//! Organization SQL (server only), and the session's active organization.

use super::OrgMembership;
use crate::error::AppError;
use crate::ssr::Db;
use sqlx::Row;
use tower_sessions::Session;

/// The user's organizations (personal first, then teams by name, the system one last), the
/// `active` one moved to the front, each with the user's base role and effective permissions.
pub async fn memberships(
    db: &Db,
    user_id: &str,
    active: Option<&str>,
) -> Result<Vec<OrgMembership>, AppError> {
    let rows = sqlx::query(
        "select o.organization_id, o.name, o.kind, m.role
         from membership m join organization o on o.organization_id = m.organization_id
         where m.user_id = $1
         order by case o.kind when 'personal' then 0 when 'system' then 2 else 1 end, o.name",
    )
    .bind(user_id)
    .fetch_all(&db.reader)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let role: String = r.try_get("role")?;
        let organization_id: String = r.try_get("organization_id")?;
        // What the authorization core would decide: every role, inherited and required
        // permissions included.
        let permissions = crate::access::ssr::effective_names(db, user_id, &organization_id)
            .await?
            .unwrap_or_default();
        out.push(OrgMembership {
            organization_id,
            name: r.try_get("name")?,
            kind: r.try_get("kind")?,
            role,
            permissions,
        });
    }
    if let Some(i) = active.and_then(|a| out.iter().position(|o| o.organization_id == a)) {
        let active = out.remove(i);
        out.insert(0, active);
    }
    Ok(out)
}

/// The session's active organization, as last chosen (it may since have been left: callers
/// fall back to the first membership).
pub async fn active(session: &Session) -> Result<Option<String>, AppError> {
    session
        .get(crate::ssr::keys::ACTIVE_ORG)
        .await
        .map_err(AppError::internal)
}

/// Makes `organization_id` the session's active organization (the caller checked membership).
pub async fn set_active(session: &Session, organization_id: &str) -> Result<(), AppError> {
    session
        .insert(crate::ssr::keys::ACTIVE_ORG, organization_id)
        .await
        .map_err(AppError::internal)
}

/// Forgets the active organization if it is `organization_id` (after leaving it).
pub async fn clear_active(session: &Session, organization_id: &str) -> Result<(), AppError> {
    let current: Option<String> = session
        .get(crate::ssr::keys::ACTIVE_ORG)
        .await
        .map_err(AppError::internal)?;
    if current.as_deref() == Some(organization_id) {
        session
            .remove::<String>(crate::ssr::keys::ACTIVE_ORG)
            .await
            .map_err(AppError::internal)?;
    }
    Ok(())
}
