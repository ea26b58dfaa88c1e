//! The bundle is served like a product: precompressed brotli or gzip when the browser takes
//! it, a year of immutable caching for content-hashed names, revalidation for the rest; pages
//! are never stored; every response carries the security headers.

mod common;

use axum::body::Body;
use common::*;
use http::{header, Request, StatusCode};
use leptos::prelude::LeptosOptions;

const HASHED: &str = "keyward.Ab3_dE5-gH7iJ9kL1mN2oP.wasm";

async fn app_with_bundle() -> (TestApp, TempDir) {
    let dir =
        TempDir(std::env::temp_dir().join(format!("keyward-site-{:016x}", rand::random::<u64>())));
    let pkg = dir.0.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::write(pkg.join(HASHED), b"plain wasm bytes").unwrap();
    std::fs::write(pkg.join(format!("{HASHED}.br")), b"brotli bytes").unwrap();
    std::fs::write(pkg.join(format!("{HASHED}.gz")), b"gzip bytes").unwrap();
    std::fs::write(pkg.join("keyward.css"), b"body{}").unwrap();
    let options = LeptosOptions::builder()
        .output_name("keyward")
        .site_root(dir.0.to_string_lossy().into_owned())
        .build();
    (spawn_site(|_| {}, options).await, dir)
}

async fn get(app: &TestApp, path: &str, encoding: Option<&str>) -> Reply {
    let mut req = Request::get(path);
    if let Some(e) = encoding {
        req = req.header(header::ACCEPT_ENCODING, e);
    }
    app.send(req.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn hashed_files_are_precompressed_and_cached_for_a_year() {
    let (app, _dir) = app_with_bundle().await;
    let path = format!("/pkg/{HASHED}");
    let br = get(&app, &path, Some("gzip, deflate, br")).await;
    assert_eq!(br.status, StatusCode::OK);
    assert_eq!(br.headers[header::CONTENT_ENCODING], "br");
    assert_eq!(br.body, "brotli bytes");
    assert_eq!(
        br.headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    let gz = get(&app, &path, Some("gzip")).await;
    assert_eq!(gz.headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(gz.body, "gzip bytes");
    let plain = get(&app, &path, None).await;
    assert!(plain.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(plain.body, "plain wasm bytes");
}

#[tokio::test]
async fn unhashed_files_revalidate_and_pages_are_not_stored() {
    let (app, _dir) = app_with_bundle().await;
    let css = get(&app, "/pkg/keyward.css", Some("br")).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(css.headers[header::CACHE_CONTROL], "no-cache");
    let missing = get(&app, "/pkg/nope.Ab3_dE5-gH7iJ9kL1mN2oP.js", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.headers[header::CACHE_CONTROL], "no-cache");
    let page = get(&app, "/sign-in", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let (app, _dir) = app_with_bundle().await;
    let page = get(&app, "/sign-in", None).await;
    let json = get(&app, "/api/v1/openapi.json", None).await;
    let refused = get(&app, "/api/v1/keys", None).await;
    let bundle = get(&app, "/pkg/keyward.css", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let csp = |r: &Reply| {
        r.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string()
    };
    for p in [
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "script-src 'self' 'nonce-",
        "'wasm-unsafe-eval'",
    ] {
        assert!(csp(&page).contains(p), "page policy: {}", csp(&page));
    }
    // The nonce is the one the page's inline hydration script carries, and new per response.
    let policy = csp(&page);
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap();
    assert!(nonce.len() >= 16, "{policy}");
    assert!(
        page.body.contains(&format!("nonce=\"{nonce}\"")),
        "the hydration script carries the nonce: {}",
        page.body
    );
    let again = get(&app, "/sign-in", None).await;
    assert_ne!(csp(&again), policy, "a new nonce per response");
    for r in [&json, &refused, &bundle] {
        assert!(csp(r).contains("default-src 'none'"), "{}", csp(r));
    }
    for r in [&page, &json, &refused, &bundle] {
        assert_eq!(r.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(r.headers[header::REFERRER_POLICY], "same-origin");
        assert_eq!(r.headers[header::X_FRAME_OPTIONS], "DENY");
        assert!(
            r.headers.get(header::STRICT_TRANSPORT_SECURITY).is_none(),
            "no HSTS over plain HTTP"
        );
    }
    // Served as HTTPS: HSTS too.
    let https = spawn_with(|c| c.public_origin = "https://keys.example.org".parse().unwrap()).await;
    let r = https
        .send(
            Request::get("/api/v1/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        r.headers[header::STRICT_TRANSPORT_SECURITY],
        "max-age=31536000; includeSubDomains"
    );
}

#[test]
fn content_hashed_names() {
    use keyward_server::has_content_hash;
    assert!(has_content_hash(&format!("/pkg/{HASHED}")));
    assert!(!has_content_hash("/pkg/keyward.css"));
    assert!(!has_content_hash("/pkg/keyward_bg.wasm"));
    assert!(!has_content_hash("/pkg/keyward.short.js"));
}
