//! The OpenAPI 3.1 document of the REST API, served at `/api/v1/openapi.json` and rendered by
//! the in-app API docs pages.
//!
//! It is generated, never written by hand: paths, methods, permissions and parameters come
//! from [`super::routes`] (the same list the router is built from, so no route can be missing
//! or stale), and the schemas are derived from the wire types with `utoipa::ToSchema`.

use super::{Access, Body, Doc, Out, RouteSpec};
use app::error::ErrorCode;
use serde_json::{json, Map, Value};
use utoipa::openapi::{RefOr, Schema};

/// Every schema the routes name, with the ones they refer to.
fn schemas() -> Map<String, Value> {
    fn add<T: utoipa::ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
        out.push((T::name().into_owned(), T::schema()));
        T::schemas(out);
    }
    let mut all = Vec::new();
    add::<app::keys::ApiKey>(&mut all);
    add::<app::keys::CreatedKey>(&mut all);
    add::<app::keys::NewKey>(&mut all);
    add::<app::keys::KeyPatch>(&mut all);
    add::<app::keys::KeyList>(&mut all);
    add::<app::keys::KeyEvent>(&mut all);
    add::<app::keys::BulkOutcome>(&mut all);
    add::<app::keys::import::ImportRow>(&mut all);
    add::<super::keys::Me>(&mut all);
    add::<super::keys::RollBody>(&mut all);
    add::<super::keys::ReasonBody>(&mut all);
    add::<super::keys::ReviewBody>(&mut all);
    add::<super::keys::VerifyBody>(&mut all);
    add::<super::keys::Verification>(&mut all);
    add::<super::keys::BulkBody>(&mut all);
    add::<super::keys::ImportReport>(&mut all);
    add::<app::usage::Plan>(&mut all);
    add::<app::usage::PlanInput>(&mut all);
    add::<app::keys::KeyLimit>(&mut all);
    add::<app::usage::UsageReport>(&mut all);
    add::<app::usage::ErrorReport>(&mut all);
    add::<app::usage::KeyLimitUsage>(&mut all);
    add::<app::usage::export::ExportRow>(&mut all);
    add::<app::audit::AuditEntry>(&mut all);
    add::<app::audit::AuditPage>(&mut all);
    add::<app::admin::UserSummary>(&mut all);
    add::<app::admin::UserPage>(&mut all);
    add::<app::admin::NewUser>(&mut all);
    add::<app::admin::UserStatusChange>(&mut all);
    add::<crate::rest::users::SessionsEnded>(&mut all);
    add::<app::identity::SessionView>(&mut all);
    add::<app::orgs::Member>(&mut all);
    add::<app::orgs::Invitation>(&mut all);
    add::<app::orgs::MemberRoleChange>(&mut all);
    add::<app::orgs::NewInvitation>(&mut all);
    add::<app::teams::Team>(&mut all);
    add::<app::teams::NewTeam>(&mut all);
    add::<app::teams::TeamMembership>(&mut all);
    add::<app::teams::TeamRoleChange>(&mut all);
    add::<app::access::RoleView>(&mut all);
    add::<app::access::PermissionView>(&mut all);
    add::<app::access::GroupView>(&mut all);
    add::<app::access::AssignResult>(&mut all);
    add::<app::access::NewRole>(&mut all);
    add::<app::access::RoleParents>(&mut all);
    add::<app::access::RolePermissionChange>(&mut all);
    add::<app::access::RoleGroupChange>(&mut all);
    add::<app::access::RoleAssignment>(&mut all);
    add::<app::access::NewPermission>(&mut all);
    add::<app::access::NewGroup>(&mut all);
    add::<app::access::GroupPermissionChange>(&mut all);
    let mut map: Map<String, Value> = all
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap_or(Value::Null)))
        .collect();
    let codes: Vec<String> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    map.insert(
        "Error".into(),
        json!({
            "type": "object",
            "description": "Every refusal: a stable machine-readable code, a message safe to show, and the offending field for invalid input.",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": { "type": "string", "enum": codes },
                        "message": { "type": "string" },
                        "field": { "type": "string" }
                    }
                }
            }
        }),
    );
    map.insert(
        "Health".into(),
        json!({
            "type": "object",
            "required": ["status", "database"],
            "properties": { "status": { "type": "string", "enum": ["ok"] }, "database": { "type": "string", "enum": ["sqlite", "postgres"] } }
        }),
    );
    map
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn out_content(out: &Out) -> Value {
    match out {
        Out::Json(name) => json!({ "application/json": { "schema": schema_ref(name) } }),
        Out::JsonArray(name) => {
            json!({ "application/json": { "schema": { "type": "array", "items": schema_ref(name) } } })
        }
        Out::Text => json!({ "text/plain": { "schema": { "type": "string" } } }),
        Out::Empty => json!({}),
        Out::Export(name) => json!({
            "application/json": { "schema": { "type": "array", "items": schema_ref(name) } },
            "text/csv": { "schema": { "type": "string" } }
        }),
    }
}

/// The refusal codes a route can answer, by HTTP status.
fn error_codes(spec: &RouteSpec) -> Vec<ErrorCode> {
    let mut codes: Vec<ErrorCode> = spec.doc.errors.to_vec();
    if let Access::Key(_) = spec.access {
        codes.extend([
            ErrorCode::KeyMissing,
            ErrorCode::KeyMalformed,
            ErrorCode::KeyBadChecksum,
            ErrorCode::KeyUnknown,
            ErrorCode::KeyDisabled,
            ErrorCode::KeyRevoked,
            ErrorCode::KeyExpired,
            ErrorCode::KeyPendingApproval,
            ErrorCode::SignatureMissing,
            ErrorCode::SignatureInvalid,
            ErrorCode::SignatureStale,
            ErrorCode::SignatureReplayed,
            ErrorCode::IpNotAllowed,
            ErrorCode::EndpointNotAllowed,
            ErrorCode::RateLimited,
            ErrorCode::Forbidden,
            ErrorCode::Unavailable,
        ]);
    }
    if let Access::Operator = spec.access {
        codes.push(ErrorCode::Forbidden);
    }
    if !matches!(spec.doc.body, Body::None) {
        codes.push(ErrorCode::PayloadTooLarge);
    }
    codes.push(ErrorCode::Internal);
    codes.dedup();
    codes
}

/// A ready-to-paste curl command for the route.
pub fn curl_example(spec: &RouteSpec, origin: &str) -> String {
    let path = spec.path.replace("{id}", "key_XXXXXXXXXXXXXXXXXXXX");
    let query = spec
        .doc
        .query
        .first()
        .and_then(|p| p.example.map(|e| format!("?{}={e}", p.name)))
        .unwrap_or_default();
    let mut cmd = format!("curl -X {} '{origin}{path}{query}'", spec.method);
    if let Access::Key(_) = spec.access {
        cmd.push_str(" \\\n  -H \"Authorization: Bearer $KEYWARD_KEY\"");
    }
    match &spec.doc.body {
        Body::None => {}
        Body::Json(_, example) => {
            cmd.push_str(&format!(
                " \\\n  -H 'Content-Type: application/json' \\\n  -d '{example}'"
            ));
        }
        Body::Import => {
            cmd.push_str(" \\\n  -H 'Content-Type: text/csv' \\\n  --data-binary @keys.csv");
        }
    }
    cmd
}

fn operation(spec: &RouteSpec, origin: &str) -> Value {
    let doc = &spec.doc;
    let mut parameters: Vec<Value> = spec
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({
                "name": name, "in": "path", "required": true,
                "description": if spec.path.starts_with("/api/v1/plans") {
                    "The plan's id (`plan_…`)."
                } else {
                    "The key's id (`key_…`). Another organization's key is not found."
                },
                "schema": { "type": "string" }
            })
        })
        .collect();
    parameters.extend(doc.query.iter().map(|p| {
        let mut schema = json!({ "type": p.kind });
        if !p.values.is_empty() {
            schema["enum"] = json!(p.values);
        }
        json!({ "name": p.name, "in": "query", "required": false, "description": p.description, "schema": schema })
    }));
    let mut responses = Map::new();
    let mut ok = json!({ "description": doc.ok_description(), "content": out_content(&doc.ok.1) });
    if let Access::Key(_) = spec.access {
        ok["headers"] = rate_limit_headers(false);
    }
    responses.insert(doc.ok.0.to_string(), ok);
    let codes = error_codes(spec);
    let mut by_status: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
    for c in &codes {
        by_status.entry(c.status()).or_default().push(c.as_str());
    }
    for (status, names) in by_status {
        let mut refusal = json!({
            "description": format!("Refused: {}", names.join(", ")),
            "content": { "application/json": { "schema": schema_ref("Error") } },
            "x-error-codes": names
        });
        if status == 429 {
            refusal["headers"] = rate_limit_headers(true);
        }
        responses.insert(status.to_string(), refusal);
    }
    let operation_id = format!(
        "{}{}",
        spec.method.as_str().to_lowercase(),
        spec.path
            .split('/')
            .filter(|s| !s.is_empty() && *s != "api" && *s != "v1")
            .map(|s| {
                let s = s.trim_matches(|c| c == '{' || c == '}');
                let mut c = s.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<String>()
    );
    let mut op = json!({
        "operationId": operation_id,
        "summary": doc.summary,
        "description": doc.description,
        "tags": [tag(spec.path)],
        "parameters": parameters,
        "responses": responses,
        "x-error-codes": codes.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "x-codeSamples": [{ "lang": "curl", "label": "curl", "source": curl_example(spec, origin) }],
    });
    match spec.access {
        Access::Public => {
            op["security"] = json!([]);
            op["x-keyward-permission"] = Value::Null;
        }
        Access::Key(p) => {
            op["security"] = json!([{ "bearer": [] }]);
            op["x-keyward-permission"] = json!(p.as_str());
        }
        Access::Operator => {
            op["security"] = json!([{}, { "metricsToken": [] }]);
            op["x-keyward-permission"] = Value::Null;
        }
    }
    match &doc.body {
        Body::None => {}
        Body::Json(name, _) => {
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": schema_ref(name) } } });
        }
        Body::Import => {
            op["requestBody"] = json!({
                "required": true,
                "content": {
                    "application/json": { "schema": { "type": "array", "items": schema_ref("ImportRow"), "maxItems": app::keys::import::MAX_ROWS } },
                    "text/csv": { "schema": { "type": "string", "description": "A header row, then one key per row; columns as in ImportRow (scopes as JSON, permissions and ip_allowlist space-separated)." } }
                }
            });
        }
    }
    op
}

/// The whole document.
pub fn document(origin: &str) -> Value {
    let mut paths = Map::new();
    for spec in super::routes() {
        let item = paths
            .entry(spec.path.to_string())
            .or_insert_with(|| json!({}));
        item[spec.method.as_str().to_lowercase()] = operation(&spec, origin);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Keyward API",
            "version": "1",
            "description": "Manage and verify API keys. Authenticate with `Authorization: Bearer <key>`; a key acts in its own organization, within its scopes. Keys that require signatures also send `Signature: t=<unix>,v1=<hex HMAC-SHA256 of \"t.METHOD.path.sha256(body)\">` (see the API keys guide). Errors are `{\"error\":{\"code\",\"message\",\"field\"?}}` with stable codes.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" }
        },
        "servers": [{ "url": origin }],
        "security": [{ "bearer": [] }],
        "tags": [
            { "name": "API keys", "description": "Create, inspect, change, roll, revoke, import, export and verify keys." },
            { "name": "Plans", "description": "Rate-limit plans and each key's limit. Every key-authenticated answer carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`; over the limit the answer is 429 `rate_limited` with `Retry-After`." },
            { "name": "Usage", "description": "Requests over time and their summary, from the request log." },
            { "name": "Users", "description": "The instance's user accounts, for keys of the system organization." },
            { "name": "Organization", "description": "The key's organization: members, invitations and teams." },
            { "name": "Roles and permissions", "description": "Custom roles and their hierarchy, dynamic permissions and their dependencies, permission groups, and role assignment." },
            { "name": "Audit log", "description": "Every security and administration action, chained by a keyed hash so that an edited or removed entry is detected." },
            { "name": "Health", "description": "Readiness and liveness probes; no credentials." },
            { "name": "Operations", "description": "This document, and Prometheus metrics for the operator." }
        ],
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "An API key: `kw_live_…` or `kw_test_…`." },
                "metricsToken": { "type": "http", "scheme": "bearer", "description": "KEYWARD_METRICS_TOKEN; not needed from the networks in KEYWARD_METRICS_ALLOW." }
            },
            "schemas": schemas()
        },
        "paths": paths
    })
}

impl Doc {
    fn ok_description(&self) -> &'static str {
        match self.ok.0 {
            201 => "Created",
            204 => "Done; no content",
            _ => "OK",
        }
    }
}

fn tag(path: &str) -> &'static str {
    if path.starts_with("/api/v1/plans") || path.ends_with("/limit") {
        "Plans"
    } else if path.starts_with("/api/v1/usage") {
        "Usage"
    } else if path.starts_with("/api/v1/users") {
        "Users"
    } else if path.starts_with("/api/v1/audit") {
        "Audit log"
    } else if ["/api/v1/members", "/api/v1/invitations", "/api/v1/teams"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        "Organization"
    } else if ["/api/v1/roles", "/api/v1/permission"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        "Roles and permissions"
    } else if path.starts_with("/api/v1/keys") || path == "/api/v1/me" {
        "API keys"
    } else if path == "/metrics" || path == "/api/v1/openapi.json" {
        "Operations"
    } else {
        "Health"
    }
}

/// The `RateLimit-*` headers of a key-authenticated answer (and `Retry-After` on a 429).
fn rate_limit_headers(refused: bool) -> Value {
    let int = |description: &str| json!({ "description": description, "schema": { "type": "integer", "minimum": 0 } });
    let mut h = json!({
        "RateLimit-Limit": int("The key's limit: requests allowed in any rolling window of its length."),
        "RateLimit-Remaining": int("Requests left in the current window."),
        "RateLimit-Reset": int("Seconds until the count next goes down."),
    });
    if refused {
        h["Retry-After"] = int("Seconds until a retry can succeed.");
    }
    h
}
