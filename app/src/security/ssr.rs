//! The security scan (server only): reads the instance's state, changes nothing; and the one
//! change it offers, narrowing a key to what it used.

use super::{
    AdminFinding, ConfigFinding, EndpointCheck, KeyFinding, KeyIssue, RouteCatalog, SecurityReport,
    Severity,
};
use crate::access::policy::{Guard, SERVER_FNS};
use crate::access::ssr::SYSTEM_ORG_ID;
use crate::error::AppError;
use crate::keys::{Access, Scopes};
use crate::ssr::config::Config;
use crate::ssr::db::{rfc3339, Db};
use crate::usage::stats::Reader;
use std::collections::BTreeMap;

/// How far back "used" and "unused" look (at most: the request log's retention).
pub const LOOKBACK_MS: i64 = 30 * 86_400_000;

/// Resources whose write lets a key hand out access (create or roll keys, grant roles and
/// permissions, set members' roles): its scopes bound what it may grant, so what its requests
/// needed is not all it needs, and it is never offered a narrowing.
const GRANTING: [&str; 3] = ["keys", "roles", "members"];

/// The lookback the request log can answer for.
fn lookback(config: &Config) -> i64 {
    LOOKBACK_MS.min(i64::from(config.log_retention_days) * 86_400_000)
}

/// What a scan may show: each section needs the permission that guards its data elsewhere.
#[derive(Clone, Copy, Debug)]
pub struct Sections {
    /// The key inventory and its use (`keys:read`).
    pub keys: bool,
    /// Members' addresses and second factors (`members:read`).
    pub members: bool,
    /// Every organization's administrators, in the instance's report (`users:read`, which
    /// lists the instance's users; `members:read` of the system organization alone does not).
    pub users: bool,
}

impl Sections {
    pub const ALL: Sections = Sections {
        keys: true,
        members: true,
        users: true,
    };

    pub fn of(grant: &crate::access::ssr::Grant) -> Sections {
        use crate::access::Permission;
        Sections {
            keys: grant.allows(Permission::KeysRead),
            members: grant.allows(Permission::MembersRead),
            users: grant.allows(Permission::UsersRead),
        }
    }
}

/// Scans the organization (for the system organization also the configuration, every
/// endpoint, and every organization's keys).
pub async fn scan(
    db: &Db,
    config: &Config,
    catalog: &RouteCatalog,
    reader: &Reader,
    sections: Sections,
    now: i64,
) -> Result<SecurityReport, AppError> {
    let organization_id = reader.organization_id.as_str();
    let instance = organization_id == SYSTEM_ORG_ID;
    Ok(SecurityReport {
        organization_id: organization_id.to_string(),
        generated_at: rfc3339(now),
        instance,
        config: if instance {
            config_risks(config)
        } else {
            Vec::new()
        },
        admins_without_two_factor: if sections.members && (!instance || sections.users) {
            admins_without_two_factor(db, organization_id).await?
        } else {
            Vec::new()
        },
        keys: if sections.keys {
            // Every organization's keys, like every organization's administrators, only for
            // a caller who may list the instance's users; else the system organization's.
            key_findings(db, config, catalog, reader, sections.users, now).await?
        } else {
            Vec::new()
        },
        endpoints: if instance {
            endpoints(catalog)
        } else {
            Vec::new()
        },
    })
}

/// Every REST route and server function with what it requires.
pub fn endpoints(catalog: &RouteCatalog) -> Vec<EndpointCheck> {
    let rest = catalog.0.iter().map(|r| EndpointCheck {
        kind: "rest".into(),
        name: format!("{} {}", r.method, r.path),
        requires: r
            .permission
            .map_or(r.requires.to_string(), |p| p.as_str().to_string()),
        no_permission: r.permission.is_none(),
    });
    let fns = SERVER_FNS.iter().map(|(name, guard)| {
        let (requires, none) = match guard {
            Guard::Public => ("public".to_string(), true),
            Guard::SignedIn | Guard::Enrolling => ("signed in (own data)".to_string(), true),
            Guard::Org(p) => (p.as_str().to_string(), false),
            Guard::Instance(p) => (format!("{} (instance)", p.as_str()), false),
        };
        EndpointCheck {
            kind: "server_fn".into(),
            name: (*name).to_string(),
            requires,
            no_permission: none,
        }
    });
    rest.chain(fns).collect()
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost" || d.ends_with(".localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// How the instance runs: plain HTTP beyond this machine, open sign-up, a secret file others
/// can read, email not configured.
pub fn config_risks(config: &Config) -> Vec<ConfigFinding> {
    let mut found = Vec::new();
    let mut add = |code: &str, severity, message: String| {
        found.push(ConfigFinding {
            code: code.into(),
            severity,
            message,
        })
    };
    if config.public_origin.scheme() == "http" && !is_loopback(&config.public_origin) {
        add(
            "plain_http",
            Severity::High,
            format!("The console is served over plain HTTP at {}: passwords, session cookies and keys cross the network in the clear. Serve it over TLS and set KEYWARD_PUBLIC_ORIGIN=https://….", config.origin_string()),
        );
    }
    if config.signup_open {
        add(
            "signup_open",
            Severity::Medium,
            "Anyone can create an account (KEYWARD_SIGNUP=open). Close it unless this instance is meant to be public.".into(),
        );
    }
    if let Some(file) = &config.secret_file {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(file) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => add(
                "secret_file_mode",
                Severity::High,
                format!("The server secret file {} can be read by other users of this machine (mode {:o}): chmod 600 it.", file.display(), meta.permissions().mode() & 0o777),
            ),
            Ok(_) => {}
            Err(e) => add(
                "secret_file_missing",
                Severity::Medium,
                format!("The server secret file {} cannot be read ({e}).", file.display()),
            ),
        }
    }
    if config.smtp_url.is_none() {
        add(
            "smtp_missing",
            Severity::Info,
            "Email is not configured (KEYWARD_SMTP_URL): security notices (new passkeys, recovery codes used, impersonation) stay queued in the outbox.".into(),
        );
    }
    found
}

/// Owners and admins with no second factor: of the organization, or for the system
/// organization's report of every organization (a user's own personal organization aside:
/// every user owns one, and their account is what a second factor protects there).
async fn admins_without_two_factor(
    db: &Db,
    organization_id: &str,
) -> Result<Vec<AdminFinding>, AppError> {
    let scope = if organization_id == SYSTEM_ORG_ID {
        "not (o.kind = 'personal' and u.personal_organization_id = o.organization_id)"
    } else {
        "m.organization_id = $1"
    };
    let sql = format!(
        "select u.user_id, u.email, m.role, o.organization_id, o.name from membership m
         join app_user u on u.user_id = m.user_id
         join organization o on o.organization_id = m.organization_id
         where {scope} and m.role in ('owner', 'admin')
           and u.status = 'active' and u.deleted_at is null
           and not exists (select 1 from totp_factor t where t.user_id = u.user_id)
           and not exists (select 1 from passkey p where p.user_id = u.user_id)
         order by u.email, o.name, o.organization_id"
    );
    let mut query = sqlx::query_as::<_, (String, String, String, String, String)>(&sql);
    if organization_id != SYSTEM_ORG_ID {
        query = query.bind(organization_id);
    }
    Ok(query
        .fetch_all(&db.reader)
        .await?
        .into_iter()
        .map(
            |(user_id, email, role, organization_id, organization)| AdminFinding {
                user_id,
                email,
                role,
                organization_id,
                organization,
            },
        )
        .collect())
}

/// The scopes a route needs: its permission as resource → access.
fn needs(catalog: &RouteCatalog, method: &str, route: &str) -> Option<(String, Access)> {
    // A HEAD is answered by the GET route.
    let method = if method == "HEAD" { "GET" } else { method };
    let p = catalog
        .0
        .iter()
        .find(|r| r.method == method && r.path == route)?
        .permission?;
    let access = if p.is_write() {
        Access::Write
    } else {
        Access::Read
    };
    Some((p.resource().to_string(), access))
}

/// What each key's successful requests (2xx and 3xx) of the lookback needed: key → scopes.
/// Refused requests (a missing permission, the rate limit, bad input) prove no use. `key_id`:
/// one key only, of `organization_id` (the caller checked that). `every_organization`: every
/// organization's rows (the instance's report), not `organization_id`'s.
async fn used_scopes(
    db: &Db,
    config: &Config,
    catalog: &RouteCatalog,
    reader: &Reader,
    key_id: Option<&str>,
    every_organization: bool,
    now: i64,
) -> Result<BTreeMap<String, Scopes>, AppError> {
    let organization_id = reader.organization_id.as_str();
    let mut sql = String::from(
        "select api_key_id, method, route from request_log
         where occurred_at >= $1 and api_key_id is not null and status >= 200 and status < 400",
    );
    let mut binds: Vec<String> = Vec::new();
    // Only the instance's report of every key spans every organization; one key's rows are its
    // organization's, read through the log's one index, (organization, time).
    if !every_organization || key_id.is_some() {
        binds.push(organization_id.to_string());
        sql.push_str(&format!(" and organization_id = ${}", binds.len() + 1));
    }
    if let Some(key) = key_id {
        binds.push(key.to_string());
        sql.push_str(&format!(" and api_key_id = ${}", binds.len() + 1));
    }
    sql.push_str(" group by api_key_id, method, route");
    let since = now - lookback(config);
    // A grouping over the raw log's lookback: one of the instance's raw-log turns, held until
    // the query ends (`usage::stats::under`).
    let turn = crate::usage::stats::raw_turn(db, reader).await?;
    let db = db.clone();
    let rows = crate::usage::stats::under(turn, async move {
        let mut query = sqlx::query_as::<_, (String, String, String)>(&sql).bind(since);
        for b in &binds {
            query = query.bind(b);
        }
        Ok(query.fetch_all(&db.reader).await?)
    })
    .await?;
    let mut used: BTreeMap<String, Scopes> = BTreeMap::new();
    for (key, method, route) in rows {
        let scopes = used.entry(key).or_default();
        if let Some((resource, access)) = needs(catalog, &method, &route) {
            let held = scopes.entry(resource).or_insert(Access::None);
            *held = (*held).max(access);
        }
    }
    Ok(used)
}

/// Whether `scopes` grant more than `used` needs.
fn wider(scopes: &Scopes, used: &Scopes) -> bool {
    scopes
        .iter()
        .any(|(resource, access)| *access > used.get(resource).copied().unwrap_or(Access::None))
}

/// The narrowed scopes: per resource, the lesser of what the key holds and what it used, so
/// the result never holds more than the key. `None` when there is nothing to narrow: the key
/// used nothing, holds no more than that, or writes a resource that hands out access
/// ([`GRANTING`]).
fn narrowed(scopes: &Scopes, used: &Scopes) -> Option<Scopes> {
    if used.is_empty()
        || GRANTING
            .iter()
            .any(|r| used.get(*r).copied() == Some(Access::Write))
    {
        return None;
    }
    let narrow: Scopes = scopes
        .iter()
        .filter_map(|(resource, held)| {
            let access = (*held).min(used.get(resource).copied().unwrap_or(Access::None));
            (access != Access::None).then(|| (resource.clone(), access))
        })
        .collect();
    wider(scopes, &narrow).then_some(narrow)
}

/// The active keys with an issue, worst first: `organization_id`'s, or with
/// `every_organization` in the system organization's report, every organization's.
async fn key_findings(
    db: &Db,
    config: &Config,
    catalog: &RouteCatalog,
    reader: &Reader,
    every_organization: bool,
    now: i64,
) -> Result<Vec<KeyFinding>, AppError> {
    let organization_id = reader.organization_id.as_str();
    let every_organization = every_organization && organization_id == SYSTEM_ORG_ID;
    let mut sql = String::from(
        "select api_key_id, organization_id, name, display_prefix, scopes, ip_allowlist, expires_at, created_at, last_used_at
         from api_key where status = 'active' and (expires_at is null or expires_at > $1)",
    );
    if !every_organization {
        sql.push_str(" and organization_id = $2");
    }
    sql.push_str(" order by created_at, api_key_id");
    type Row = (
        String,
        String,
        String,
        String,
        String,
        String,
        Option<i64>,
        i64,
        Option<i64>,
    );
    let mut query = sqlx::query_as::<_, Row>(&sql).bind(now);
    if !every_organization {
        query = query.bind(organization_id);
    }
    let rows = query.fetch_all(&db.reader).await?;
    let mut used = used_scopes(db, config, catalog, reader, None, every_organization, now).await?;
    let mut found = Vec::new();
    for row in rows {
        let (key_id, org, name, display_prefix, scopes, allowlist, expires_at, created, last_used) =
            row;
        let scopes: Scopes = serde_json::from_str(&scopes).unwrap_or_default();
        let allowlist: Vec<String> = serde_json::from_str(&allowlist).unwrap_or_default();
        let key_used = used.remove(&key_id).filter(|s| !s.is_empty());
        let mut issues = Vec::new();
        if expires_at.is_none() {
            issues.push(KeyIssue::NoExpiry);
        }
        if allowlist.is_empty() {
            issues.push(KeyIssue::NoIpAllowlist);
        }
        if last_used.unwrap_or(created) < now - LOOKBACK_MS {
            issues.push(KeyIssue::Unused30Days);
        }
        if key_used
            .as_ref()
            .is_some_and(|u| narrowed(&scopes, u).is_some())
        {
            issues.push(KeyIssue::WiderThanUsed);
        }
        if !issues.is_empty() {
            found.push(KeyFinding {
                key_id,
                organization_id: org,
                name,
                display_prefix,
                issues,
                scopes,
                used: key_used,
            });
        }
    }
    found.sort_by_key(|k| std::cmp::Reverse(k.issues.len()));
    Ok(found)
}

/// Narrows a key's scopes to what its requests of the last 30 days needed (a `custom` key,
/// through the keys domain's edit: the caller's ceiling, the timeline, the audit log). Refused
/// when the key used nothing, or already holds no more than that.
pub async fn narrow(
    state: &crate::ssr::AppState,
    acting: crate::keys::ssr::Acting<'_>,
    key_id: &str,
) -> Result<crate::keys::ApiKey, AppError> {
    let org = acting.org().to_string();
    // Read from the writer, and narrowed only if it is still what was read: scopes removed
    // meanwhile must not come back.
    let row = crate::keys::ssr::row_fresh(&state.db, &org, key_id).await?;
    let current = row.to_wire(crate::ssr::db::now_ms());
    let catalog = state.domains.get::<RouteCatalog>()?;
    let reader = Reader::of(&state.db, acting.grant).await?;
    let used = used_scopes(
        &state.db,
        &state.config,
        catalog,
        &reader,
        Some(key_id),
        false,
        crate::ssr::db::now_ms(),
    )
    .await?
    .remove(key_id)
    .unwrap_or_default();
    if used.is_empty() {
        return Err(AppError::conflict(
            "key_id",
            "this key made no successful request in 30 days: disable or revoke it instead",
        ));
    }
    let Some(narrow) = narrowed(&current.scopes, &used) else {
        return Err(AppError::conflict(
            "key_id",
            "nothing to narrow: the key holds no more than it used, or it creates keys or grants roles (its scopes bound what it may grant)",
        ));
    };
    let patch = crate::keys::KeyPatch {
        category: Some("custom".into()),
        scopes: Some(narrow),
        reason: Some("narrowed to what it used in the last 30 days (security scan)".into()),
        ..Default::default()
    };
    crate::keys::ssr::update(state, acting, key_id, &patch, Some(row.updated_at)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wider_compares_each_resource() {
        let s = |pairs: &[(&str, Access)]| -> Scopes {
            pairs.iter().map(|(r, a)| (r.to_string(), *a)).collect()
        };
        let used = s(&[("keys", Access::Read)]);
        assert!(wider(&s(&[("keys", Access::Write)]), &used));
        assert!(wider(
            &s(&[("keys", Access::Read), ("org", Access::Read)]),
            &used
        ));
        assert!(!wider(&s(&[("keys", Access::Read)]), &used));
        assert!(!wider(
            &s(&[("keys", Access::Read), ("org", Access::None)]),
            &used
        ));
        assert!(!wider(&s(&[]), &used));
    }

    #[test]
    fn narrowing_never_widens_nor_touches_granting_keys() {
        let s = |pairs: &[(&str, Access)]| -> Scopes {
            pairs.iter().map(|(r, a)| (r.to_string(), *a)).collect()
        };
        // Used more than it holds (a refused call would show that): never more than held.
        let held = s(&[("usage", Access::Read), ("org", Access::Write)]);
        let used = s(&[("usage", Access::Write), ("audit", Access::Read)]);
        assert_eq!(narrowed(&held, &used), Some(s(&[("usage", Access::Read)])));
        assert_eq!(narrowed(&held, &s(&[])), None);
        assert_eq!(narrowed(&s(&[("usage", Access::Read)]), &held), None);
        // A key that writes keys, roles or members keeps its scopes.
        for granting in ["keys", "roles", "members"] {
            let held = s(&[(granting, Access::Write), ("usage", Access::Write)]);
            assert_eq!(narrowed(&held, &s(&[(granting, Access::Write)])), None);
        }
        let held = s(&[("keys", Access::Write), ("usage", Access::Write)]);
        assert_eq!(
            narrowed(&held, &s(&[("keys", Access::Read)])),
            Some(s(&[("keys", Access::Read)]))
        );
    }
}
