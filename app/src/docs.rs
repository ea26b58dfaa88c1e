//! The in-app API reference at `/docs/api`, readable without signing in: rendered from the
//! same OpenAPI document the server serves at `/api/v1/openapi.json`, so the pages can never
//! disagree with the API.

use crate::error::AppError;
use crate::ui::{CopyButton, ErrorNote};
use leptos::prelude::*;
use leptos_meta::Title;
use serde_json::Value;

/// The OpenAPI document (JSON text).
#[server(prefix = "/rpc", endpoint = "api_document")]
pub async fn api_document() -> Result<String, AppError> {
    crate::access::guard::guard("api_document").await?;
    Ok(crate::ssr::api_document().to_string())
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// `#/components/schemas/Name` → `Name`.
fn ref_name(v: &Value) -> Option<&str> {
    v.get("$ref")?.as_str()?.rsplit('/').next()
}

/// A short, readable type: `string`, `string | null`, `array of ApiKey`, `ApiKey`…
fn type_label(v: &Value) -> String {
    if let Some(name) = ref_name(v) {
        return name.to_string();
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(parts) = v.get(key).and_then(Value::as_array) {
            return parts.iter().map(type_label).collect::<Vec<_>>().join(" | ");
        }
    }
    let base = match v.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".to_string(),
    };
    let base = match v.get("items") {
        Some(items) => base.replace("array", &format!("array of {}", type_label(items))),
        None => base,
    };
    match v.get("enum").and_then(Value::as_array) {
        Some(values) => format!(
            "{base}: {}",
            values
                .iter()
                .map(|x| x.as_str().map_or(x.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => base,
    }
}

/// The fields of a schema (following `$ref` and `allOf`): name, type, required, description.
fn fields(doc: &Value, schema: &Value, depth: usize) -> Vec<(String, String, bool, String)> {
    if depth > 4 {
        return Vec::new();
    }
    if let Some(name) = ref_name(schema) {
        return fields(doc, &doc["components"]["schemas"][name], depth + 1);
    }
    let mut out = Vec::new();
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            out.extend(fields(doc, part, depth + 1));
        }
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, p) in props {
            out.push((
                name.clone(),
                type_label(p),
                required.contains(&name.as_str()),
                p.get("description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ));
        }
    }
    out
}

#[component]
fn Fields(rows: Vec<(String, String, bool, String)>, label: String) -> impl IntoView {
    (!rows.is_empty()).then(|| {
        view! {
            <table aria-label=label class="fields">
                <thead><tr><th scope="col">"Field"</th><th scope="col">"Type"</th><th scope="col">"Required"</th><th scope="col">"Description"</th></tr></thead>
                <tbody>
                    {rows.into_iter().map(|(name, ty, req, desc)| view! {
                        <tr><td><code>{name}</code></td><td><code>{ty}</code></td><td>{if req { "yes" } else { "" }}</td><td>{desc}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
        }
    })
}

/// One documented operation.
#[component]
fn Operation(doc: StoredValue<Value>, path: String, method: String) -> impl IntoView {
    let op = doc.with_value(|d| d["paths"][&path][&method].clone());
    let title = format!("{} {path}", method.to_uppercase());
    let anchor = op["operationId"].as_str().unwrap_or("op").to_string();
    let permission = op["x-keyward-permission"].as_str().map(str::to_string);
    let params: Vec<Value> = op["parameters"].as_array().cloned().unwrap_or_default();
    let request: Vec<(String, Value)> = op["requestBody"]["content"]
        .as_object()
        .map(|c| {
            c.iter()
                .map(|(t, v)| (t.clone(), v["schema"].clone()))
                .collect()
        })
        .unwrap_or_default();
    let responses: Vec<(String, Value)> = op["responses"]
        .as_object()
        .map(|r| r.iter().map(|(s, v)| (s.clone(), v.clone())).collect())
        .unwrap_or_default();
    let curl = op["x-codeSamples"][0]["source"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let to_copy = curl.clone();
    let heading_id = format!("{anchor}-title");
    let labelled_by = heading_id.clone();
    view! {
        <section class="card operation" id=anchor aria-labelledby=labelled_by>
            <h2 id=heading_id>{title.clone()}</h2>
            <p><strong>{op["summary"].as_str().unwrap_or("").to_string()}</strong></p>
            <p>{op["description"].as_str().unwrap_or("").to_string()}</p>
            <p>
                {match permission {
                    Some(p) => view! { "Requires an API key with permission " <code class="badge">{p}</code> }.into_any(),
                    None => view! { <span class="badge">"No credentials"</span> }.into_any(),
                }}
            </p>
            {(!params.is_empty()).then(|| view! {
                <h3>"Parameters"</h3>
                <table aria-label=format!("Parameters of {title}") class="fields">
                    <thead><tr><th scope="col">"Name"</th><th scope="col">"In"</th><th scope="col">"Type"</th><th scope="col">"Description"</th></tr></thead>
                    <tbody>
                        {params.into_iter().map(|p| view! {
                            <tr>
                                <td><code>{p["name"].as_str().unwrap_or("").to_string()}</code></td>
                                <td>{p["in"].as_str().unwrap_or("").to_string()}</td>
                                <td><code>{type_label(&p["schema"])}</code></td>
                                <td>{p["description"].as_str().unwrap_or("").to_string()}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
            {(!request.is_empty()).then(|| view! {
                <h3>"Request body"</h3>
                {request.into_iter().map(|(ctype, schema)| {
                    let rows = doc.with_value(|d| fields(d, &schema, 0));
                    view! {
                        <p><code>{ctype.clone()}</code>": "<code>{type_label(&schema)}</code></p>
                        <Fields rows label=format!("Request body of {title} ({ctype})") />
                    }
                }).collect_view()}
            })}
            <h3>"Responses"</h3>
            <ul class="responses">
                {responses.into_iter().map(|(status, r)| {
                    let schemas: Vec<String> = r["content"].as_object().map(|c| c.iter().map(|(t, v)| format!("{t}: {}", type_label(&v["schema"]))).collect()).unwrap_or_default();
                    let codes: Vec<String> = r["x-error-codes"].as_array().map(|c| c.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default();
                    view! {
                        <li>
                            <strong>{status}</strong>" "{r["description"].as_str().unwrap_or("").to_string()}
                            {(!schemas.is_empty()).then(|| view! { " · " <code>{schemas.join("; ")}</code> })}
                            {(!codes.is_empty()).then(|| view! { <div class="codes">{codes.into_iter().map(|c| view! { <code class="badge">{c}</code>" " }).collect_view()}</div> })}
                        </li>
                    }
                }).collect_view()}
            </ul>
            <h3>"Example"</h3>
            <pre tabindex="0" aria-label=format!("curl example for {title}")><code>{curl}</code></pre>
            <CopyButton label=format!("Copy curl example for {title}") text=to_copy />
        </section>
    }
}

#[component]
pub fn ApiDocsPage() -> impl IntoView {
    let document = Resource::new(|| (), |_| api_document());
    view! {
        <Title text="API reference" />
        <h1>"API reference"</h1>
        <p>
            "Call the REST API with an API key: " <code>"Authorization: Bearer kw_live_…"</code>
            ". A key acts in its own organization, within its scopes; errors are "
            <code>"{\"error\":{\"code\",\"message\"}}"</code>
            " with the stable codes listed under each endpoint. Keys that require signatures also send "
            <code>"Signature: t=<unix>,v1=<hex HMAC-SHA256 of t.METHOD.path.sha256(body)>"</code>
            ". The machine-readable document: "
            <a href="/api/v1/openapi.json">"/api/v1/openapi.json"</a>" (OpenAPI 3.1)."
        </p>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match document.await {
                    Err(error) => view! { <ErrorNote error /> }.into_any(),
                    Ok(text) => {
                        let doc: Value = match serde_json::from_str(&text) {
                            Ok(v) => v,
                            Err(_) => return view! { <p role="alert" class="error">"The API document could not be read."</p> }.into_any(),
                        };
                        let mut ops: Vec<(String, String)> = Vec::new();
                        if let Some(paths) = doc["paths"].as_object() {
                            for (path, item) in paths {
                                for m in METHODS {
                                    if item.get(m).is_some() {
                                        ops.push((path.clone(), m.to_string()));
                                    }
                                }
                            }
                        }
                        let schemas: Vec<String> = doc["components"]["schemas"].as_object().map(|s| s.keys().cloned().collect()).unwrap_or_default();
                        let doc = StoredValue::new(doc);
                        view! {
                            <nav aria-label="Endpoints" class="card">
                                <h2>"Endpoints"</h2>
                                <ul>
                                    {ops.iter().map(|(path, m)| {
                                        let id = doc.with_value(|d| d["paths"][path][m]["operationId"].as_str().unwrap_or("").to_string());
                                        view! { <li><a href=format!("#{id}")><code>{format!("{} {path}", m.to_uppercase())}</code></a></li> }
                                    }).collect_view()}
                                </ul>
                            </nav>
                            {ops.into_iter().map(|(path, method)| view! { <Operation doc path method /> }).collect_view()}
                            <h2>"Schemas"</h2>
                            {schemas.into_iter().map(|name| {
                                let rows = doc.with_value(|d| fields(d, &d["components"]["schemas"][&name], 0));
                                view! {
                                    <section class="card" aria-label=format!("Schema {name}")>
                                        <h3 id=format!("schema-{name}")>{name.clone()}</h3>
                                        <Fields rows label=format!("Fields of {name}") />
                                    </section>
                                }
                            }).collect_view()}
                        }
                        .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_labels() {
        assert_eq!(
            type_label(&json!({"type": ["string", "null"]})),
            "string | null"
        );
        assert_eq!(
            type_label(&json!({"$ref": "#/components/schemas/ApiKey"})),
            "ApiKey"
        );
        assert_eq!(
            type_label(
                &json!({"type": "array", "items": {"$ref": "#/components/schemas/KeyEvent"}})
            ),
            "array of KeyEvent"
        );
        assert_eq!(
            type_label(&json!({"type": "string", "enum": ["a", "b"]})),
            "string: a, b"
        );
    }

    #[test]
    fn fields_follow_refs_and_all_of() {
        let doc = json!({"components": {"schemas": {
            "A": {"type": "object", "required": ["x"], "properties": {"x": {"type": "string", "description": "the x"}}},
            "B": {"allOf": [{"$ref": "#/components/schemas/A"}, {"type": "object", "properties": {"y": {"type": "integer"}}}]}
        }}});
        let f = fields(&doc, &json!({"$ref": "#/components/schemas/B"}), 0);
        assert_eq!(
            f,
            vec![
                ("x".into(), "string".into(), true, "the x".into()),
                ("y".into(), "integer".into(), false, String::new())
            ]
        );
    }
}
