//! Organization SQL (server only).

use super::{Member, OrgMembership};
use crate::error::AppError;
use crate::ssr::Db;
use sqlx::Row;

pub async fn memberships(db: &Db, user_id: &str) -> Result<Vec<OrgMembership>, AppError> {
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
    Ok(out)
}

pub async fn members(db: &Db, organization_id: &str) -> Result<Vec<Member>, AppError> {
    let rows = sqlx::query(
        "select u.user_id, u.email, u.display_name, m.role
         from membership m join app_user u on u.user_id = m.user_id
         where m.organization_id = $1 order by u.email",
    )
    .bind(organization_id)
    .fetch_all(&db.reader)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Member {
                user_id: r.try_get("user_id")?,
                email: r.try_get("email")?,
                display_name: r.try_get("display_name")?,
                role: r.try_get("role")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(AppError::from)
}
