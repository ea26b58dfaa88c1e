//! Organization SQL (server only), and the session's active organization.

use super::OrgMembership;
use crate::error::AppError;
use crate::ssr::Db;
use sqlx::Row;
use tower_sessions::Session;

/// One of a user's organizations, as [`organizations_of`] lists them.
pub struct Joined {
    pub organization_id: String,
    pub name: String,
    pub kind: String,
    /// The user's base role there.
    pub role: String,
}

/// The user's organizations: personal first, then teams by name, the system one last, with
/// the `active` one moved to the front.
pub async fn organizations_of(
    db: &Db,
    user_id: &str,
    active: Option<&str>,
) -> Result<Vec<Joined>, AppError> {
    let rows = sqlx::query(
        "select o.organization_id, o.name, o.kind, m.role
         from membership m join organization o on o.organization_id = m.organization_id
         where m.user_id = $1
         order by case o.kind when 'personal' then 0 when 'system' then 2 else 1 end, o.name",
    )
    .bind(user_id)
    .fetch_all(&db.reader)
    .await?;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(Joined {
                organization_id: r.try_get("organization_id")?,
                name: r.try_get("name")?,
                kind: r.try_get("kind")?,
                role: r.try_get("role")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    if let Some(i) = active.and_then(|a| out.iter().position(|o| o.organization_id == a)) {
        let chosen = out.remove(i);
        out.insert(0, chosen);
    }
    Ok(out)
}

/// [`organizations_of`], each with the user's effective permissions there.
pub async fn memberships(
    db: &Db,
    user_id: &str,
    active: Option<&str>,
) -> Result<Vec<OrgMembership>, AppError> {
    let mut out = Vec::new();
    for o in organizations_of(db, user_id, active).await? {
        // What the authorization core would decide: every role, inherited and required
        // permissions included.
        let permissions = crate::access::ssr::effective_names(db, user_id, &o.organization_id)
            .await?
            .unwrap_or_default();
        out.push(OrgMembership {
            organization_id: o.organization_id,
            name: o.name,
            kind: o.kind,
            role: o.role,
            permissions,
        });
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
