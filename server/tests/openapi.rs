//! The OpenAPI document: served without credentials, lists every declared route with its
//! permission, and every schema it refers to exists.

mod common;

use common::*;
use http::StatusCode;
use keyward_server::rest::{routes, Access};
use serde_json::Value;

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_lists_every_route_and_resolves_every_schema() {
    let app = spawn().await;
    let r = app.get(&Browser::default(), "/api/v1/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");

    let mut declared = 0;
    for spec in routes() {
        declared += 1;
        let op = &doc["paths"][spec.path][spec.method.as_str().to_lowercase()];
        assert!(
            op.is_object(),
            "{} {} missing from the document",
            spec.method,
            spec.path
        );
        assert!(!op["summary"].as_str().unwrap_or("").is_empty());
        match spec.access {
            Access::Public | Access::Operator => assert!(op["x-keyward-permission"].is_null()),
            Access::Key(p) => {
                assert_eq!(op["x-keyward-permission"], p.as_str());
                assert_eq!(op["security"][0]["bearer"], serde_json::json!([]));
                let codes = op["x-error-codes"].as_array().unwrap();
                for c in [
                    "key_missing",
                    "key_revoked",
                    "signature_replayed",
                    "forbidden",
                ] {
                    assert!(codes.iter().any(|x| x == c), "{} lacks {c}", spec.path);
                }
            }
        }
        if spec.path.contains("{id}") {
            assert!(op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "id" && p["in"] == "path" && p["required"] == true));
        }
        // Each operation sits under a declared tag, and only key routes under "API keys".
        let tag = op["tags"][0].as_str().unwrap();
        assert!(
            doc["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["name"] == tag),
            "{} has the undeclared tag {tag}",
            spec.path
        );
        if tag == "API keys" {
            assert!(
                spec.path.starts_with("/api/v1/keys") || spec.path == "/api/v1/me",
                "{} is not a key route",
                spec.path
            );
        }
        let curl = op["x-codeSamples"][0]["source"].as_str().unwrap();
        assert!(curl.starts_with(&format!("curl -X {}", spec.method)));
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented, declared,
        "the document holds exactly the declared routes"
    );

    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 20);
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("local schema ref");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
    // A few schemas carry what a client needs.
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["NewKey"]["properties"]["ip_allowlist"].is_object());
    assert!(schemas["CreatedKey"].to_string().contains("signing_secret"));
    assert!(schemas["Error"].to_string().contains("signature_stale"));
}

#[tokio::test]
async fn the_docs_page_is_public_and_server_rendered() {
    let app = spawn().await;
    let r = app.get(&Browser::default(), "/docs/api").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("POST /api/v1/keys/{id}/roll"),
        "rendered on the server"
    );
    assert!(r.body.contains("keys:write"));
}

/// The schemas state the constraints the server enforces, so that generated clients and
/// fuzzers build bodies the server accepts (and know which it refuses).
#[tokio::test]
async fn schemas_state_the_real_constraints() {
    let app = spawn().await;
    let doc = app
        .get(&Browser::default(), "/api/v1/openapi.json")
        .await
        .json();
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    let new_key = schema("NewKey");
    let name = &new_key["properties"]["name"];
    assert_eq!(
        (name["minLength"].clone(), name["maxLength"].clone()),
        (1.into(), 100.into()),
        "{name}"
    );
    assert_eq!(new_key["properties"]["description"]["maxLength"], 1000);
    assert_eq!(new_key["properties"]["ip_allowlist"]["maxItems"], 100);
    assert_eq!(new_key["properties"]["endpoints"]["maxItems"], 50);
    assert_eq!(
        new_key["properties"]["environment"]["pattern"],
        "^(live|test)$"
    );
    assert_eq!(new_key["properties"]["expires_at"]["format"], "date-time");
    let rule = schema("EndpointRule");
    assert_eq!(rule["properties"]["path"]["maxLength"], 200);
    assert!(rule["properties"]["method"]["pattern"].is_string());
    let roll = schema("RollBody");
    assert_eq!(roll["properties"]["grace_seconds"]["minimum"], 0);
    assert_eq!(roll["properties"]["grace_seconds"]["maximum"], 7776000);
    let bulk = schema("BulkBody");
    assert_eq!(
        (
            bulk["properties"]["ids"]["minItems"].clone(),
            bulk["properties"]["ids"]["maxItems"].clone()
        ),
        (1.into(), 100.into())
    );
    assert_eq!(
        bulk["properties"]["action"]["pattern"],
        "^(enable|disable|revoke)$"
    );
    assert_eq!(schema("KeyPatch")["properties"]["reason"]["maxLength"], 500);
}
