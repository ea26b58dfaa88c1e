//! Exporting keys as CSV (server only): settings and state, never a secret, with formula
//! escaping.

use super::ApiKey;
use crate::error::AppError;

/// Cell starts that spreadsheets read as a formula (CSV injection).
pub const FORMULA_STARTS: &[char] = &['=', '+', '-', '@', '\t', '\r'];

/// A cell as written to CSV: one that a spreadsheet would run as a formula gets a leading `'`
/// (OWASP's advice); our import takes it off again.
pub fn csv_cell(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(FORMULA_STARTS) {
        format!("'{s}").into()
    } else {
        s.into()
    }
}

/// CSV export of keys: settings and state, never a secret or hash. Written with the `csv`
/// crate (quoting) and [`csv_cell`] (formula escaping).
pub fn to_csv(keys: &[ApiKey]) -> Result<String, AppError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "id",
        "name",
        "description",
        "environment",
        "display_prefix",
        "status",
        "category",
        "scopes",
        "permissions",
        "ip_allowlist",
        "endpoints",
        "require_signature",
        "metadata",
        "expires_at",
        "created_at",
        "last_used_at",
    ];
    w.write_record(header).map_err(AppError::internal)?;
    for k in keys {
        let scopes = serde_json::to_string(&k.scopes).unwrap_or_default();
        let ips = k.ip_allowlist.join(" ");
        let permissions = k.permissions.join(" ");
        // JSON, as the scopes: an import of this file restores the key's restrictions (a key
        // re-issued without its endpoint rules or signing requirement would be wider).
        let endpoints = if k.endpoints.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&k.endpoints).unwrap_or_default()
        };
        let metadata = match &k.metadata {
            serde_json::Value::Object(m) if m.is_empty() => String::new(),
            serde_json::Value::Null => String::new(),
            m => m.to_string(),
        };
        let signs = if k.require_signature { "true" } else { "false" };
        let row = [
            k.id.as_str(),
            &k.name,
            &k.description,
            &k.environment,
            &k.display_prefix,
            k.status.as_str(),
            k.category.as_str(),
            &scopes,
            &permissions,
            &ips,
            &endpoints,
            signs,
            &metadata,
            k.expires_at.as_deref().unwrap_or(""),
            &k.created_at,
            k.last_used_at.as_deref().unwrap_or(""),
        ];
        w.write_record(row.iter().map(|c| csv_cell(c).into_owned()))
            .map_err(AppError::internal)?;
    }
    let bytes = w.into_inner().map_err(AppError::internal)?;
    String::from_utf8(bytes).map_err(AppError::internal)
}
