//! `/api/v1/keys…` and `/api/v1/me`: the key lifecycle over HTTP, scoped to the calling key's
//! organization (another organization's key is always "not found").

use super::auth::{ClientIp, KeyCaller};
use super::json::{ApiBytes, ApiJson, ApiQuery};
use app::access::ssr::Grant;
use app::error::AppError;
use app::keys::ssr::{self as keys, Acting, KeyCache, Transition};
use app::keys::{ApiKey, CreatedKey, KeyEvent, NewKey};
use app::ssr::db::now_ms;
use app::ssr::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

/// `GET /api/v1/me`: the calling key. The OpenAPI schema; the handler writes [`MeView`], which
/// a test below holds to the same JSON.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    pub key_id: String,
    pub organization_id: String,
    pub environment: String,
    pub scopes: app::keys::Scopes,
    pub permissions: Vec<String>,
}

/// [`Me`] as the handler writes it: borrowed from the verified key, not copied (the hottest
/// route of the benchmark). Same fields, same JSON.
#[derive(Serialize)]
struct MeView<'a> {
    key_id: &'a str,
    organization_id: &'a str,
    environment: &'a str,
    scopes: &'a app::keys::Scopes,
    permissions: Vec<&'static str>,
}

/// The calling key and what it may do: its grant's ceiling (a personal token's scopes as
/// bounded by its owner's current permissions).
pub async fn me(
    Extension(KeyCaller(key)): Extension<KeyCaller>,
    Extension(grant): Extension<Grant>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    Json(MeView {
        key_id: &key.id,
        organization_id: &key.organization_id,
        environment: &key.environment,
        scopes: &key.scopes,
        permissions: grant.ceiling.iter().map(|p| p.as_str()).collect(),
    })
    .into_response()
}

/// `GET /api/v1/keys`: search, filter, sort and paginate (see [`app::keys::KeyQuery`]).
pub async fn list(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiQuery(query): ApiQuery<app::keys::KeyQuery>,
) -> Result<Json<app::keys::KeyList>, AppError> {
    Ok(Json(
        keys::search(&state.db, &grant.organization_id, &query).await?,
    ))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    ApiJson(new): ApiJson<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), AppError> {
    if new.personal == Some(true) {
        return Err(AppError::invalid(
            "personal",
            "personal access tokens are created in the console by their owner",
        ));
    }
    let settings = keys::validate_new(&new, now_ms(), &grant)?;
    let created = keys::create(
        &state.db,
        &state.config.secret,
        Acting::new(&grant, ip.as_deref()),
        None,
        &settings,
    )
    .await?;
    keys::announce_pending(&state, &created.api_key).await;
    Ok((StatusCode::CREATED, Json(created)))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
) -> Result<Json<ApiKey>, AppError> {
    Ok(Json(
        keys::get(&state.db, &grant.organization_id, &id).await?,
    ))
}

pub async fn history(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    Path(id): Path<String>,
) -> Result<Json<Vec<KeyEvent>>, AppError> {
    Ok(Json(
        keys::history(&state.db, &grant.organization_id, &id).await?,
    ))
}

/// Optional body of enable / disable / revoke.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    /// Why, for the timeline (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

async fn transition(
    state: AppState,
    grant: Grant,
    ip: Option<String>,
    id: String,
    t: Transition,
    body: Bytes,
) -> Result<Json<ApiKey>, AppError> {
    let reason = reason_from(&body)?;
    let key = keys::transition(
        &state,
        Acting::new(&grant, ip.as_deref()),
        &id,
        t,
        reason.as_deref(),
    )
    .await?;
    Ok(Json(key))
}

/// The optional `{"reason": …}` body of a status change (empty: none).
fn reason_from(body: &[u8]) -> Result<Option<String>, AppError> {
    Ok(optional_body::<ReasonBody>(body)?.reason)
}

/// An optional JSON body: empty (or blank) reads as `T::default()`.
fn optional_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    if app::ssr::nul::in_json(body) {
        return Err(app::ssr::nul::refused());
    }
    serde_json::from_slice(body).map_err(|e| {
        AppError::new(
            app::error::ErrorCode::InvalidInput,
            format!("invalid JSON body: {e}"),
        )
    })
}

/// Body of approve / reject.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// The key's `updated_at` as you reviewed it (RFC 3339, as the key reads). Required to
    /// approve: you approve what you looked at, and an edit since answers `409`. Optional to
    /// reject.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub version: Option<String>,
    /// Why, for the timeline (at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

async fn review(
    state: AppState,
    grant: Grant,
    ip: Option<String>,
    id: String,
    decision: keys::Decision,
    body: Bytes,
) -> Result<Json<ApiKey>, AppError> {
    let body: ReviewBody = optional_body(&body)?;
    let key = keys::review(
        &state,
        Acting::new(&grant, ip.as_deref()),
        &id,
        decision,
        keys::parse_version(body.version.as_deref())?,
        body.reason.as_deref(),
    )
    .await?;
    Ok(Json(key))
}

/// `POST /api/v1/keys/{id}/approve`: a key awaiting approval starts working.
pub async fn approve(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<ApiKey>, AppError> {
    review(state, grant, ip, id, keys::Decision::Approve, body).await
}

/// `POST /api/v1/keys/{id}/reject`: a key awaiting approval is revoked.
pub async fn reject(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<ApiKey>, AppError> {
    review(state, grant, ip, id, keys::Decision::Reject, body).await
}

pub async fn enable(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<ApiKey>, AppError> {
    transition(state, grant, ip, id, Transition::Enable, body).await
}

pub async fn disable(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<ApiKey>, AppError> {
    transition(state, grant, ip, id, Transition::Disable, body).await
}

/// `DELETE /api/v1/keys/{id}` revokes (final); the row stays for the timeline.
pub async fn revoke(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiBytes(body): ApiBytes,
) -> Result<Json<ApiKey>, AppError> {
    transition(state, grant, ip, id, Transition::Revoke, body).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollBody {
    /// How long the old key keeps working (0 = stops now), up to 90 days.
    #[schema(minimum = 0, maximum = 7776000)]
    pub grace_seconds: i64,
    /// The new key's expiry (RFC 3339, in the future); `null` for none; absent: the old key's.
    #[serde(default, deserialize_with = "app::keys::present")]
    #[schema(format = DateTime)]
    pub expires_at: Option<Option<String>>,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

pub async fn roll(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RollBody>,
) -> Result<(StatusCode, Json<CreatedKey>), AppError> {
    let created = keys::roll(
        &state,
        Acting::new(&grant, ip.as_deref()),
        &id,
        body.grace_seconds,
        body.expires_at.as_ref().map(Option::as_deref),
        body.reason.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    #[schema(min_length = 1, max_length = 256)]
    pub key: String,
    /// The address the key was presented from, to check the key's IP allow-list.
    #[serde(default)]
    pub ip: Option<String>,
    /// The method and path it was presented for, to check its endpoint restrictions.
    #[serde(default)]
    pub method: Option<String>,
    /// The request's path with its query string, as it was sent (`/orders?id=5`): endpoint
    /// rules see the path alone, as they do on Keyward's own API; a signature covers both.
    #[serde(default)]
    pub path: Option<String>,
    /// The request's `Signature` header, to check it too (required when the key requires
    /// signatures). Checked against `method`, `path` (with its query string) and
    /// `body_sha256`; an accepted signature cannot be used again.
    #[serde(default)]
    pub signature: Option<String>,
    /// Hex SHA-256 of the request body (default: of the empty body).
    #[serde(default)]
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub body_sha256: Option<String>,
    /// Permissions the key must hold for this request, built-in (`keys:read`) or the
    /// organization's own (`invoices:read`), at most 50. When one is missing the answer is
    /// `valid: false`, code `insufficient_permissions`, with the missing ones in `missing`.
    #[serde(default)]
    #[schema(max_items = 50)]
    pub permissions: Option<Vec<String>>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Verification {
    pub valid: bool,
    /// `valid`, or the refusal code (`key_revoked`, `ip_not_allowed`…).
    pub code: String,
    pub key_id: Option<String>,
    pub org_id: Option<String>,
    pub environment: Option<String>,
    pub scopes: Option<app::keys::Scopes>,
    /// Everything the key holds now: built-in permissions and the organization's own.
    pub permissions: Option<Vec<String>>,
    pub expires_at: Option<String>,
    /// With `insufficient_permissions`: the required permissions the key lacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<Vec<String>>,
    /// The checked key's rate limit after this check, which counted against it (absent when
    /// the key is not one of the organization's working keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratelimit: Option<VerifiedRate>,
}

/// A checked key's limit, as `RateLimit-*` headers tell a caller of the API its own.
#[derive(Clone, Serialize, utoipa::ToSchema)]
pub struct VerifiedRate {
    pub limit: u64,
    /// Checks left in the current window.
    pub remaining: u64,
    /// Seconds until the count next goes down (after a refusal: until a check can pass).
    pub reset: u64,
}

/// `POST /api/v1/keys/verify`: lets another service check a key Keyward issued. Only keys of
/// the caller's own organization exist here: any other answers exactly like an unknown key,
/// whatever its status or restrictions. A personal token is reported with its owner's
/// current bound (and refused when its owner is gone).
pub async fn verify(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<Json<Verification>, AppError> {
    let ip = match body.ip.as_deref() {
        None => None,
        Some(s) => Some(
            s.trim()
                .parse()
                .map_err(|_| AppError::invalid("ip", "ip must be an IPv4 or IPv6 address"))?,
        ),
    };
    let method = body.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let path = body.path.as_deref().unwrap_or("/");
    let refused = |code: app::error::ErrorCode| Verification {
        valid: false,
        code: code.as_str(),
        key_id: None,
        org_id: None,
        environment: None,
        scopes: None,
        permissions: None,
        expires_at: None,
        missing: None,
        ratelimit: None,
    };
    let required = body.permissions.clone().unwrap_or_default();
    if required.len() > 50 {
        return Err(AppError::invalid("permissions", "at most 50 permissions"));
    }
    if let Some(bad) = required
        .iter()
        .find(|p| !app::access::model::valid_permission_name(p))
    {
        return Err(AppError::invalid(
            "permissions",
            format!("not a permission name: {bad:?} (resource:action, lower case)"),
        ));
    }
    let how = keys::Lookup {
        fresh: false,
        organization_id: Some(&grant.organization_id),
    };
    match keys::verify(
        &state.db,
        KeyCache::of(&state)?,
        &state.config.secret,
        &body.key,
        ip,
        &method,
        path.split_once('?').map_or(path, |(route, _)| route),
        how,
    )
    .await
    {
        Ok(key) => {
            // A check counts against the checked key's limit, as a request of its own to the
            // API does, whatever comes of it: one limiter, exact across instances.
            let decision = app::usage::ssr::RateLimiter::of(&state)?
                .check(&key.id, key.rate)
                .await?;
            let ratelimit = Some(VerifiedRate {
                limit: decision.limit,
                remaining: decision.remaining,
                reset: decision.reset_secs(),
            });
            if !decision.admitted {
                return Ok(Json(Verification {
                    key_id: Some(key.id.clone()),
                    org_id: Some(key.organization_id.clone()),
                    ratelimit,
                    ..refused(app::error::ErrorCode::RateLimited)
                }));
            }
            super::auth::tell_usage_thresholds(&state, &key, &decision);
            let refused = |code| Verification {
                ratelimit: ratelimit.clone(),
                ..refused(code)
            };
            let principal = key.principal();
            let held = async {
                let builtin =
                    app::access::ssr::ceiling(&state.db, &principal, &key.organization_id).await?;
                let dynamic =
                    app::access::ssr::dynamic_held(&state.db, &principal, &key.organization_id)
                        .await?
                        .unwrap_or_default();
                Ok::<_, AppError>((builtin, dynamic))
            }
            .await;
            let permissions: Vec<String> = match held {
                Ok((builtin, dynamic)) => builtin.names().into_iter().chain(dynamic).collect(),
                Err(e) if e.is_server_fault() => return Err(e),
                Err(e) => return Ok(Json(refused(e.code))),
            };
            let digest = match body.body_sha256.as_deref() {
                None => app::keys::signature::body_digest(b""),
                Some(d) if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    d.to_string()
                }
                Some(_) => {
                    return Err(AppError::invalid(
                        "body_sha256",
                        "body_sha256 must be a hex SHA-256 (64 characters)",
                    ))
                }
            };
            if let Err(e) = keys::check_signature(
                &state.db,
                &key,
                body.signature.as_deref(),
                &method,
                path,
                &digest,
            )
            .await
            {
                return if e.is_server_fault() {
                    Err(e)
                } else {
                    Ok(Json(refused(e.code)))
                };
            }
            let missing: Vec<String> = required
                .iter()
                .filter(|p| !permissions.contains(p))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Ok(Json(Verification {
                    key_id: Some(key.id.clone()),
                    org_id: Some(key.organization_id.clone()),
                    missing: Some(missing),
                    ..refused(app::error::ErrorCode::InsufficientPermissions)
                }));
            }
            if let Ok(cache) = KeyCache::of(&state) {
                keys::touch(cache, &key.id);
            }
            Ok(Json(Verification {
                valid: true,
                code: "valid".into(),
                key_id: Some(key.id.clone()),
                org_id: Some(key.organization_id.clone()),
                environment: Some(key.environment.clone()),
                scopes: Some(key.scopes.clone()),
                expires_at: key.bounds.expires_at.map(keys::rfc3339),
                missing: None,
                permissions: Some(permissions),
                ratelimit,
            }))
        }
        Err(e) if e.is_server_fault() => Err(e),
        Err(e) => Ok(Json(refused(e.code))),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// `enable`, `disable` or `revoke`.
    #[schema(pattern = "^(enable|disable|revoke)$")]
    pub action: String,
    /// 1 to 100 key ids of the caller's organization.
    #[schema(min_items = 1, max_items = 100)]
    pub ids: Vec<String>,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

/// `POST /api/v1/keys/bulk`: one action on many keys, with each key's own outcome.
pub async fn bulk(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<BulkBody>,
) -> Result<Json<Vec<app::keys::BulkOutcome>>, AppError> {
    let t = keys::parse_transition(&body.action)?;
    let outcomes = keys::bulk(
        &state,
        Acting::new(&grant, ip.as_deref()),
        &body.ids,
        t,
        body.reason.as_deref(),
    )
    .await?;
    Ok(Json(outcomes))
}

#[derive(Deserialize)]
pub struct ExportQuery {
    /// `json` (default) or `csv`.
    #[serde(default)]
    pub format: Option<String>,
}

/// `GET /api/v1/keys/export?format=json|csv`: every key's settings and state, never a secret.
pub async fn export(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<axum::response::Response, AppError> {
    use axum::response::IntoResponse;
    let list = keys::list(&state.db, &grant.organization_id).await?;
    match query.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(list).into_response()),
        "csv" => Ok((
            [
                (http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    http::header::CONTENT_DISPOSITION,
                    "attachment; filename=\"keyward-keys.csv\"",
                ),
            ],
            keys::to_csv(&list)?,
        )
            .into_response()),
        _ => Err(AppError::invalid("format", "format must be json or csv")),
    }
}

/// `PATCH /api/v1/keys/{id}`: edit settings; the key can never be given more than the caller
/// holds.
pub async fn update(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<app::keys::KeyPatch>,
) -> Result<Json<ApiKey>, AppError> {
    let updated = keys::update(
        &state,
        Acting::new(&grant, ip.as_deref()),
        &id,
        &patch,
        None,
    )
    .await?;
    Ok(Json(updated))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// `true`: check every row and report, write nothing.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// The answer to an import: a count and one outcome per row.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub dry_run: bool,
    pub succeeded: usize,
    pub failed: usize,
    pub rows: Vec<app::keys::ImportOutcome>,
}

impl ImportReport {
    pub fn new(dry_run: bool, rows: Vec<app::keys::ImportOutcome>) -> ImportReport {
        let succeeded = rows.iter().filter(|r| r.ok).count();
        ImportReport {
            dry_run,
            succeeded,
            failed: rows.len() - succeeded,
            rows,
        }
    }
}

/// `POST /api/v1/keys/import[?dry_run=true]`: a JSON array (`application/json`) or CSV
/// (`text/csv`) of keys; each row gets its own outcome.
pub async fn import(
    State(state): State<AppState>,
    Extension(grant): Extension<Grant>,
    ClientIp(ip): ClientIp,
    ApiQuery(query): ApiQuery<ImportQuery>,
    headers: http::HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Json<ImportReport>, AppError> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let format = if content_type.starts_with("application/json") {
        "json"
    } else if content_type.starts_with("text/csv") {
        "csv"
    } else {
        return Err(AppError::invalid(
            "content_type",
            "send application/json or text/csv",
        ));
    };
    let text = std::str::from_utf8(&body)
        .map_err(|_| AppError::invalid("data", "the body must be UTF-8"))?;
    let rows = app::keys::import::parse(format, text)?;
    let dry_run = query.dry_run.unwrap_or(false);
    let outcomes =
        app::keys::import::import(&state, Acting::new(&grant, ip.as_deref()), &rows, dry_run)
            .await?;
    Ok(Json(ImportReport::new(dry_run, outcomes)))
}

#[cfg(test)]
mod tests {
    use super::{Me, MeView};
    use app::access::{Permission, Permissions};

    /// What the handler writes is what the OpenAPI document describes: same fields, same
    /// order, same values.
    #[test]
    fn the_borrowed_view_writes_the_documented_json() {
        let scopes: app::keys::Scopes =
            serde_json::from_str(r#"{"keys":"write","usage":"read"}"#).unwrap();
        let ceiling: Permissions = [
            Permission::KeysRead,
            Permission::KeysWrite,
            Permission::UsageRead,
        ]
        .into_iter()
        .collect();
        let documented = Me {
            key_id: "key_1".into(),
            organization_id: "org_1".into(),
            environment: "live".into(),
            scopes: scopes.clone(),
            permissions: ceiling.names(),
        };
        let written = MeView {
            key_id: "key_1",
            organization_id: "org_1",
            environment: "live",
            scopes: &scopes,
            permissions: ceiling.iter().map(|p| p.as_str()).collect(),
        };
        let json = serde_json::to_string(&written).unwrap();
        assert_eq!(json, serde_json::to_string(&documented).unwrap());
        assert!(
            json.contains(r#""permissions":["keys:read","keys:write","usage:read"]"#),
            "{json}"
        );
    }
}
