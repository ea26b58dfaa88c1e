//! Importing keys (server only): from our own export (JSON or CSV) or from another system.
//!
//! Each row is checked and imported on its own and gets its own outcome, so one bad row never
//! blocks the others. A row brings its key material in one of three ways:
//!
//! - `key`: the plaintext key of another system (or a Keyward key). It is stored like ours, as
//!   a peppered HMAC; the plaintext is not kept;
//! - `key_hash` (with `hash_algorithm: "sha256"`, the default): the hex SHA-256 another system
//!   stored. It is stored as is and matched by plain SHA-256 at verification;
//! - neither (e.g. a row of our own export, which never holds a secret): a new Keyward key is
//!   issued with the row's settings, and its secret is in that row's outcome, shown once.
//!
//! A dry run (`preview`) checks every row, including duplicates, and writes nothing.

use super::format;
use super::rules::{validate_new, Settings};
use super::ssr::{
    inherit_maker_rate, insert_key, record_event, Acting, KeyCache, KeyEventKind, Material,
    StoredStatus,
};
use super::verify::Algorithm;
use super::{Category, EndpointRule, ImportOutcome, NewKey, Scopes};
use crate::access::ssr::Grant;
use crate::error::{AppError, ErrorCode};
use crate::ssr::db::now_ms;
use crate::ssr::AppState;
use serde::Deserialize;

/// Most rows one import may hold.
pub const MAX_ROWS: usize = 1000;

/// One row to import. Unknown fields (`id`, `created_at`… of an export) are ignored.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ImportRow {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub scopes: Option<Scopes>,
    #[serde(default)]
    pub endpoints: Option<Vec<EndpointRule>>,
    #[serde(default)]
    pub ip_allowlist: Option<Vec<String>>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub require_signature: Option<bool>,
    #[serde(default)]
    pub metadata: Option<serde_json::Value>,
    /// The organization's own permissions the key carries (`invoices:read`); the importer
    /// must hold each.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// `active` (default), `disabled`; `revoked` rows are skipped, `expired` ones refused.
    #[serde(default)]
    pub status: Option<String>,
    /// The plaintext key of another system.
    #[serde(default)]
    pub key: Option<String>,
    /// The hex hash another system stored.
    #[serde(default)]
    pub key_hash: Option<String>,
    #[serde(default)]
    pub hash_algorithm: Option<String>,
    /// What to show in lists for a pre-hashed key (its real start is unknown).
    #[serde(default)]
    pub display_prefix: Option<String>,
}

/// Parses a JSON import: an array of rows, or an object holding one under `keys` or `data`.
pub fn parse_json(data: &str) -> Result<Vec<ImportRow>, AppError> {
    let value: serde_json::Value = serde_json::from_str(data)
        .map_err(|e| AppError::invalid("data", format!("not valid JSON: {e}")))?;
    let rows = match value {
        serde_json::Value::Array(rows) => rows,
        serde_json::Value::Object(mut o) => match o.remove("keys").or_else(|| o.remove("data")) {
            Some(serde_json::Value::Array(rows)) => rows,
            _ => {
                return Err(AppError::invalid(
                    "data",
                    "expected an array of keys, or an object with a \"keys\" array",
                ))
            }
        },
        _ => return Err(AppError::invalid("data", "expected an array of keys")),
    };
    check_count(rows.len())?;
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            serde_json::from_value(row)
                .map_err(|e| AppError::invalid("data", format!("row {}: {e}", i + 1)))
        })
        .collect()
}

fn check_count(n: usize) -> Result<(), AppError> {
    if n == 0 || n > MAX_ROWS {
        return Err(AppError::invalid(
            "data",
            format!("an import holds 1 to {MAX_ROWS} keys; this one has {n}"),
        ));
    }
    Ok(())
}

/// Splits CSV (RFC 4180: quoted cells, doubled quotes, CRLF or LF) into records, with the
/// `csv` crate. Blank lines are skipped.
pub fn csv_records(data: &str) -> Result<Vec<Vec<String>>, AppError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data.as_bytes());
    let mut records = Vec::new();
    for record in reader.records() {
        let record =
            record.map_err(|e| AppError::invalid("data", format!("not valid CSV: {e}")))?;
        let cells: Vec<String> = record.iter().map(str::to_owned).collect();
        if !(cells.len() == 1 && cells[0].trim().is_empty()) {
            records.push(cells);
        }
    }
    Ok(records)
}

/// Undoes the formula escaping of our own export ([`super::ssr::to_csv`]): a leading `'`
/// before `=`, `+`, `-`, `@`, tab or carriage return.
fn unescape_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(super::ssr::FORMULA_STARTS) => rest,
        _ => cell,
    }
}

/// Parses a CSV import with a header row. Columns are those of our export (`name`,
/// `description`, `environment`, `status`, `category`, `scopes`, `endpoints` and `metadata`
/// as JSON, `permissions` and `ip_allowlist` space-separated, `require_signature`,
/// `expires_at`) plus `key`, `key_hash`, `hash_algorithm`; others are ignored.
pub fn parse_csv(data: &str) -> Result<Vec<ImportRow>, AppError> {
    let mut records = csv_records(data)?.into_iter();
    let header: Vec<String> = records
        .next()
        .ok_or_else(|| AppError::invalid("data", "the CSV is empty"))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if !header.iter().any(|h| h == "name") {
        return Err(AppError::invalid(
            "data",
            "the CSV header needs a name column",
        ));
    }
    let rows: Vec<Vec<String>> = records.collect();
    check_count(rows.len())?;
    rows.into_iter()
        .enumerate()
        .map(|(i, cells)| {
            let get = |col: &str| {
                header
                    .iter()
                    .position(|h| h == col)
                    .and_then(|at| cells.get(at))
                    .map(|s| unescape_cell(s.trim()).to_string())
                    .filter(|s| !s.is_empty())
            };
            // A cell holding JSON (as the export writes it), parsed into its type.
            fn json<T: serde::de::DeserializeOwned>(
                row: usize,
                col: &str,
                cell: Option<String>,
                example: &str,
            ) -> Result<Option<T>, AppError> {
                cell.map(|s| {
                    serde_json::from_str(&s).map_err(|_| {
                        AppError::invalid(
                            "data",
                            format!("row {row}: {col} must be JSON, e.g. {example}"),
                        )
                    })
                })
                .transpose()
            }
            let row = i + 1;
            let scopes = json(row, "scopes", get("scopes"), r#"{"keys":"read"}"#)?;
            let endpoints = json(
                row,
                "endpoints",
                get("endpoints"),
                r#"[{"method":"GET","path":"/api/v1/me"}]"#,
            )?;
            let metadata = json(row, "metadata", get("metadata"), r#"{"team":"billing"}"#)?;
            Ok(ImportRow {
                name: get("name").unwrap_or_default(),
                description: get("description"),
                environment: get("environment"),
                category: get("category"),
                scopes,
                endpoints,
                metadata,
                ip_allowlist: get("ip_allowlist")
                    .map(|s| s.split_whitespace().map(str::to_owned).collect()),
                expires_at: get("expires_at"),
                require_signature: get("require_signature").map(|s| s == "true"),
                permissions: get("permissions")
                    .map(|p| p.split_whitespace().map(str::to_string).collect()),
                status: get("status"),
                key: get("key"),
                key_hash: get("key_hash"),
                hash_algorithm: get("hash_algorithm"),
                display_prefix: get("display_prefix"),
            })
        })
        .collect()
}

/// Parses an import in `format` (`json` or `csv`).
pub fn parse(format: &str, data: &str) -> Result<Vec<ImportRow>, AppError> {
    // A NUL, raw (or escaped in JSON), would reach a text column ([`crate::ssr::nul`]).
    let nul = match format {
        "json" => crate::ssr::nul::in_json(data.as_bytes()),
        _ => data.contains('\0'),
    };
    if nul {
        return Err(crate::ssr::nul::refused());
    }
    match format {
        "json" => parse_json(data),
        "csv" => parse_csv(data),
        _ => Err(AppError::invalid("format", "format must be json or csv")),
    }
}

/// What a row will be stored as.
struct Planned {
    settings: Settings,
    status: StoredStatus,
    /// `None`: issue a new key.
    material: Option<Material>,
    source: &'static str,
}

fn plan(
    row: &ImportRow,
    pepper: &[u8; 32],
    now: i64,
    grant: &Grant,
) -> Result<Option<Planned>, AppError> {
    let status = match row.status.as_deref().unwrap_or("active") {
        "active" | "expired" => StoredStatus::Active,
        "disabled" => StoredStatus::Disabled,
        "revoked" => return Ok(None),
        other => {
            return Err(AppError::invalid(
                "status",
                format!("unknown status {other:?}; use active or disabled"),
            ))
        }
    };
    // An export carries both a preset category and the scopes it stands for.
    let preset = row
        .category
        .as_deref()
        .and_then(Category::parse)
        .is_some_and(|c| c != Category::Custom);
    // A Keyward key says its environment (`kw_test_…`): a row that leaves it out takes it
    // from there, and a row that names another is refused, so a test secret cannot come in
    // as a live key.
    let key_env = row
        .key
        .as_deref()
        .or(row.display_prefix.as_deref())
        .map(str::trim)
        .and_then(format::Environment::of_key);
    let new = NewKey {
        name: row.name.clone(),
        description: row.description.clone(),
        environment: row
            .environment
            .clone()
            .or_else(|| key_env.map(|e| e.as_str().to_string())),
        category: row.category.clone(),
        scopes: if preset { None } else { row.scopes.clone() },
        permissions: row.permissions.clone(),
        endpoints: row.endpoints.clone(),
        ip_allowlist: row.ip_allowlist.clone(),
        expires_at: row.expires_at.clone(),
        require_signature: row.require_signature,
        metadata: row.metadata.clone(),
        personal: None,
    };
    let settings = validate_new(&new, now, grant)?;
    if let Some(env) = key_env.filter(|e| *e != settings.environment) {
        return Err(AppError::invalid(
            "environment",
            format!(
                "the key is a {} key ({}…); its environment must be {}",
                env.as_str(),
                env.prefix(),
                env.as_str()
            ),
        ));
    }
    let (material, source) = match (&row.key, &row.key_hash) {
        (Some(_), Some(_)) => {
            return Err(AppError::invalid(
                "key",
                "give either key or key_hash, not both",
            ))
        }
        (Some(key), None) => (Some(material_from_plaintext(pepper, key)?), "plaintext"),
        (None, Some(hash)) => (
            Some(material_from_hash(
                pepper,
                hash,
                row.hash_algorithm.as_deref(),
                row.display_prefix.as_deref(),
            )?),
            "hash",
        ),
        (None, None) => (None, "issued"),
    };
    Ok(Some(Planned {
        settings,
        status,
        material,
        source,
    }))
}

fn material_from_plaintext(pepper: &[u8; 32], key: &str) -> Result<Material, AppError> {
    let key = key.trim();
    if key.starts_with("kw_") {
        format::parse(key)
            .map_err(|_| AppError::invalid("key", "a kw_ key must be a well-formed Keyward key"))?;
    } else if !format::foreign_ok(key) {
        return Err(AppError::invalid(
            "key",
            "an imported key must be 16 to 256 visible ASCII characters",
        ));
    }
    Ok(Material::from_secret(pepper, key))
}

fn material_from_hash(
    pepper: &[u8; 32],
    hash: &str,
    algorithm: Option<&str>,
    prefix: Option<&str>,
) -> Result<Material, AppError> {
    if algorithm.is_some_and(|a| a != Algorithm::Sha256.name()) {
        return Err(AppError::invalid(
            "hash_algorithm",
            "only sha256 hashes can be imported",
        ));
    }
    let hash = hash.trim().to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::invalid(
            "key_hash",
            "key_hash must be a hex SHA-256 (64 characters)",
        ));
    }
    let prefix = prefix
        .map(str::trim)
        .filter(|p| !p.is_empty() && p.len() <= 16 && p.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("imported");
    Ok(Material {
        fingerprint: format::fingerprint(pepper, &hash),
        hash,
        algorithm: Algorithm::Sha256,
        display_prefix: prefix.to_string(),
    })
}

/// Whether the key value is stored already, in any organization and either form (the
/// unique index on the fingerprint settles a race; this makes a preview say it too).
async fn already_registered(state: &AppState, m: &Material) -> Result<bool, AppError> {
    let n: i64 = sqlx::query_scalar(
        "select count(*) from api_key where key_hash = $1 or key_fingerprint = $2",
    )
    .bind(&m.hash)
    .bind(&m.fingerprint)
    .fetch_one(&state.db.reader)
    .await?;
    Ok(n > 0)
}

/// Imports rows into `org_id` (or, with `dry_run`, says what would happen and writes nothing).
///
/// Every row is validated against the importer's grant like a new key: a row can never
/// grant more than the importer holds.
pub async fn import(
    state: &AppState,
    acting: Acting<'_>,
    rows: &[ImportRow],
    dry_run: bool,
) -> Result<Vec<ImportOutcome>, AppError> {
    let (org_id, actor) = (acting.org(), acting.actor());
    check_count(rows.len())?;
    let pepper = &state.config.secret;
    let now = now_ms();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(rows.len());
    let mut pending: Vec<(String, String)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let mut outcome = ImportOutcome {
            row: i + 1,
            name: row.name.clone(),
            ok: false,
            action: String::new(),
            id: None,
            key: None,
            signing_secret: None,
            code: None,
            message: None,
        };
        let planned = async {
            let Some(p) = plan(row, pepper, now, acting.grant)? else {
                return Ok(None);
            };
            let permissions = &p.settings.permissions;
            if !permissions.is_empty() {
                // As when creating: what is asked must exist (400), then be held (403).
                let mut conn = state.db.reader.acquire().await?;
                crate::keys::ssr::check_known(&mut conn, org_id, permissions).await?;
                crate::access::ssr::require_dynamic(&state.db, acting.grant, permissions).await?;
            }
            if let Some(m) = &p.material {
                if !seen.insert(m.fingerprint.clone()) || already_registered(state, m).await? {
                    return Err(AppError::conflict("key", "this key is already registered"));
                }
            }
            Ok(Some(p))
        }
        .await;
        match planned {
            Err(e) if e.code == ErrorCode::Internal => {
                stop_at(&mut out, outcome, e, &rows[i + 1..])?;
                break;
            }
            Err(e) => {
                outcome.action = "refused".into();
                outcome.code = Some(e.code.as_str());
                outcome.message = Some(e.message);
            }
            Ok(None) => {
                outcome.ok = true;
                outcome.action = "skipped".into();
                outcome.message = Some("revoked keys are not imported".into());
            }
            Ok(Some(p)) if dry_run => {
                outcome.ok = true;
                outcome.action = match p.source {
                    "issued" => "would_issue",
                    _ => "would_import",
                }
                .into();
            }
            Ok(Some(p)) => {
                let secret = p
                    .material
                    .is_none()
                    .then(|| format::generate(p.settings.environment));
                let material = match (&p.material, &secret) {
                    (Some(m), _) => m.clone(),
                    (None, Some(s)) => Material::from_secret(pepper, s),
                    (None, None) => unreachable!("a secret is drawn when no material is given"),
                };
                // The row in one transaction; whatever fails is this row's outcome, so the
                // secrets of rows issued before it are still answered (a 500 would lose them).
                let written = async {
                    let mut tx = acting.begin(&state.db).await?;
                    let approval =
                        crate::orgs::policy::new_key_approval(&mut tx, acting.grant).await?;
                    let (id, signing) = insert_key(
                        &mut tx,
                        org_id,
                        None,
                        &p.settings,
                        &material,
                        (p.status, approval),
                        pepper,
                        actor,
                    )
                    .await?;
                    inherit_maker_rate(&mut tx, acting.grant, &id).await?;
                    let detail = serde_json::json!({ "source": p.source, "row": i + 1 });
                    record_event(
                        &mut tx,
                        &id,
                        org_id,
                        KeyEventKind::Imported,
                        None,
                        actor,
                        detail,
                    )
                    .await?;
                    tx.commit().await?;
                    Ok::<_, AppError>((id, signing, approval))
                }
                .await;
                let (id, signing, approval) = match written {
                    Ok(done) => done,
                    Err(e) if e.code == ErrorCode::Internal => {
                        stop_at(&mut out, outcome, e, &rows[i + 1..])?;
                        break;
                    }
                    // Registered meanwhile by a concurrent import (conflict), or a collision
                    // (unavailable): this row is refused, the others stand.
                    Err(e) => {
                        outcome.action = "refused".into();
                        outcome.code = Some(e.code.as_str());
                        outcome.message = Some(e.message);
                        out.push(outcome);
                        continue;
                    }
                };
                outcome.ok = true;
                outcome.action = match p.source {
                    "issued" => "issued",
                    _ => "imported",
                }
                .into();
                if approval == crate::keys::ssr::Approval::Pending {
                    outcome.message = Some("awaits approval".into());
                    pending.push((id.clone(), outcome.name.clone()));
                }
                outcome.id = Some(id);
                outcome.signing_secret = secret.as_ref().map(|_| signing.expose().to_string());
                outcome.key = secret;
            }
        }
        out.push(outcome);
    }
    if !dry_run {
        KeyCache::of(state)?.clear();
    }
    // The approvers hear of the import once, however many of its keys wait (one notice and
    // one email each, not one per row).
    if !pending.is_empty() {
        let origin = state.config.link_base();
        if let Err(e) = crate::notify::ssr::keys_await_approval(
            &state.db,
            origin,
            org_id,
            &pending,
            acting.grant.principal.acting_user(),
        )
        .await
        {
            tracing::error!(error = %e, "could not tell the approvers about imported keys");
        }
    }
    Ok(out)
}

/// A server error on a row (the database failing, logged and opaque): the import stops there.
/// When no row was written yet, it fails as a whole (nothing to lose). Otherwise the rows
/// written keep their outcomes (and one-time secrets), this row is refused with the error, and
/// the rest are refused as not attempted (a database that is down is not waited on once per
/// row).
fn stop_at(
    out: &mut Vec<ImportOutcome>,
    mut outcome: ImportOutcome,
    e: AppError,
    rest: &[ImportRow],
) -> Result<(), AppError> {
    if !out.iter().any(|o| o.id.is_some()) {
        return Err(e);
    }
    let failed = outcome.row;
    outcome.action = "refused".into();
    outcome.code = Some(e.code.as_str());
    outcome.message = Some(e.message);
    out.push(outcome);
    for (n, row) in rest.iter().enumerate() {
        out.push(ImportOutcome {
            row: failed + 1 + n,
            name: row.name.clone(),
            ok: false,
            action: "refused".into(),
            id: None,
            key: None,
            signing_secret: None,
            code: Some(ErrorCode::Unavailable.as_str()),
            message: Some(format!(
                "not attempted: row {failed} failed; import the rows from {failed} on again"
            )),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_line_ends() {
        let r = csv_records("a,b\r\n\"x, \"\"y\"\"\",\"multi\nline\"\nlast,\n").unwrap();
        assert_eq!(
            r,
            vec![
                vec!["a".to_string(), "b".into()],
                vec!["x, \"y\"".into(), "multi\nline".into()],
                vec!["last".into(), "".into()],
            ]
        );
        assert!(csv_records("").unwrap().is_empty());
    }

    #[test]
    fn export_escaping_round_trips() {
        let keys = vec![crate::keys::ApiKey {
            name: "=HYPERLINK(\"http://evil.test\")".into(),
            description: "-1+2, \"quoted\"\nline".into(),
            ..sample_key()
        }];
        let csv = super::super::ssr::to_csv(&keys).unwrap();
        assert!(
            csv.contains("\"'=HYPERLINK(\"\"http://evil.test\"\")\""),
            "formula escaped: {csv}"
        );
        let rows = parse_csv(&csv).unwrap();
        assert_eq!(rows[0].name, keys[0].name);
        assert_eq!(
            rows[0].description.as_deref(),
            Some(keys[0].description.as_str())
        );
    }

    fn sample_key() -> crate::keys::ApiKey {
        crate::keys::ApiKey {
            id: "key_1".into(),
            organization_id: "org_1".into(),
            owner_user_id: None,
            name: "k".into(),
            description: String::new(),
            environment: "live".into(),
            display_prefix: "kw_live_abcd".into(),
            status: crate::keys::KeyStatus::Active,
            category: Category::Basic,
            scopes: Scopes::new(),
            permissions: vec![],
            endpoints: vec![],
            ip_allowlist: vec![],
            require_signature: false,
            metadata: serde_json::json!({}),
            expires_at: None,
            rolled_to_key_id: None,
            created_by: None,
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
            last_used_at: None,
            plan_id: None,
            rate_limit: None,
            rate_window_seconds: None,
        }
    }

    #[test]
    fn csv_rows_by_header() {
        let rows = parse_csv(
            "id,name,scopes,ip_allowlist,key_hash\nkey_1,ci,\"{\"\"keys\"\":\"\"read\"\"}\",10.0.0.0/8 ::1,abc\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].name, "ci");
        assert_eq!(
            rows[0].scopes.as_ref().unwrap()["keys"],
            super::super::Access::Read
        );
        assert_eq!(rows[0].ip_allowlist.as_ref().unwrap().len(), 2);
        assert_eq!(rows[0].key_hash.as_deref(), Some("abc"));
        assert!(
            parse_csv("foo\nbar\n").is_err(),
            "a name column is required"
        );
        assert!(parse_csv("name\n").is_err(), "no rows");
    }

    #[test]
    fn json_shapes() {
        assert_eq!(parse_json(r#"[{"name":"a","id":"x"}]"#).unwrap().len(), 1);
        assert_eq!(parse_json(r#"{"keys":[{"name":"a"}]}"#).unwrap().len(), 1);
        assert_eq!(parse_json(r#"{"data":[{"name":"a"}]}"#).unwrap().len(), 1);
        assert!(parse_json(r#"{"name":"a"}"#).is_err());
        assert!(parse_json("[]").is_err());
        assert!(parse_json(r#"[{"name":1}]"#).is_err());
    }

    #[test]
    fn key_material() {
        let pepper = [3u8; 32];
        assert!(material_from_plaintext(&pepper, "kw_live_typo").is_err());
        assert!(material_from_plaintext(&pepper, "short").is_err());
        assert!(material_from_plaintext(&pepper, "has a space in it, sadly").is_err());
        let m = material_from_plaintext(&pepper, "sk_live_0123456789abcdef").unwrap();
        assert_eq!(m.algorithm, Algorithm::HmacSha256);
        assert_eq!(m.hash, format::hash(&pepper, "sk_live_0123456789abcdef"));
        let h = format::sha256_hex("legacy");
        let m = material_from_hash(&pepper, &h.to_uppercase(), None, Some("lg_")).unwrap();
        assert_eq!(
            (m.hash.as_str(), m.algorithm, m.display_prefix.as_str()),
            (h.as_str(), Algorithm::Sha256, "lg_")
        );
        assert!(material_from_hash(&pepper, &h, Some("md5"), None).is_err());
        assert!(material_from_hash(&pepper, "abc", None, None).is_err());
        // One key value, one fingerprint, whether we saw it in plaintext or as a hash.
        let plain = material_from_plaintext(&pepper, "legacy-key-0123456789").unwrap();
        let hashed = material_from_hash(
            &pepper,
            &format::sha256_hex("legacy-key-0123456789"),
            None,
            None,
        )
        .unwrap();
        assert_ne!(plain.hash, hashed.hash);
        assert_eq!(plain.fingerprint, hashed.fingerprint);
    }
}
