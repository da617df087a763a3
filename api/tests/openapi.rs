//! The OpenAPI document (`GET /openapi.json`) and its rendering (`GET /docs`): the document
//! is valid OpenAPI 3.1 with every reference resolvable, and it matches the router both ways:
//! every documented operation is answered by a handler (not by the router's `not_found` /
//! `method_not_allowed` fallbacks), every method a documented path does not list is refused
//! with 405, and every path mounted in `api/src` is documented.

// Test code: a failed unwrap is a failed test (the workspace denies unwrap outside tests).
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use pi_payments_api::auth::{AuthConfig, Secret};
use pi_payments_api::{ApiState, router};
use pi_payments_core::jobs::RecordingQueue;
use pi_payments_core::ledger::Ledger;
use pi_payments_core::pi_client::{PiClient, PiClientConfig, install_crypto_provider};
use pi_payments_core::products::Catalogue;
use pi_payments_core::rate_limit::PiRateLimiter;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use tower::ServiceExt;

const ADMIN: &str = "openapi-test-admin-token-0123456789";
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The router with every optional part mounted (sign-in and ads, operator token, backend
/// token), on a scratch ledger. Pi is never reached: no probe carries a credential.
async fn full_router() -> (Router, tempfile::TempDir) {
    install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let ledger = Ledger::connect(&url).await.unwrap();
    let limiter = Arc::new(PiRateLimiter::default());
    let pi = PiClient::new(PiClientConfig::new("http://127.0.0.1:9", "unused", limiter)).unwrap();
    let config = AuthConfig {
        admin_token: Some(Secret::new(ADMIN)),
        app_api_token: Some(Secret::new("openapi-test-backend-token-0123")),
        ..AuthConfig::default()
    };
    let state = ApiState::new(ledger, Arc::new(RecordingQueue::new()), Catalogue::demo())
        .with_auth(pi, config)
        .unwrap();
    (router(state), dir)
}

async fn send(app: &Router, method: &str, path: &str) -> (StatusCode, Vec<u8>) {
    let request = Request::builder()
        .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, bytes.to_vec())
}

fn error_code(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value["error"].as_str().map(str::to_string)
}

/// The document as the API serves it.
async fn served_document(app: &Router) -> Value {
    let (status, body) = send(app, "get", "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    serde_json::from_slice(&body).unwrap()
}

/// Every (method, path) of the document.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                out.push((method.to_string(), path.clone()));
            }
        }
    }
    out
}

/// A concrete path for a templated one (`/payments/{id}` → `/payments/probe0000`).
fn concrete(path: &str) -> String {
    path.replace("{id}", "probe0000")
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1_with_resolvable_references() {
    let (app, _dir) = full_router().await;
    let doc = served_document(&app).await;
    let text = doc.to_string();
    let spec = oas3::from_json(&text).unwrap();
    let version = spec.validate_version().unwrap();
    assert_eq!((version.major, version.minor), (3, 1));
    // Every reference points at a component that exists.
    let mut refs = BTreeSet::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in &refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {reference}"));
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{reference} points nowhere"
        );
    }
    // Every operation: a unique id, a tag, a summary, responses with bodies described, and
    // security schemes that exist.
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for scheme in [
        "admin_token",
        "app_api_token",
        "pioneer_token",
        "session_cookie",
    ] {
        assert!(schemes.contains_key(scheme), "{scheme}");
    }
    let mut ids = BTreeSet::new();
    for (method, path) in operations(&doc) {
        let op = &doc["paths"][&path][&method];
        let id = op["operationId"].as_str().unwrap();
        assert!(ids.insert(id.to_string()), "operation id {id} twice");
        assert!(op["tags"][0].is_string(), "{method} {path} has no tag");
        assert!(op["summary"].is_string(), "{method} {path} has no summary");
        assert!(!op["responses"].as_object().unwrap().is_empty());
        for requirement in op["security"].as_array().into_iter().flatten() {
            for name in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(name), "{method} {path}: {name}");
            }
        }
    }
    // Operator routes say they may lock a guessing address out; public ones do not.
    for (method, path) in operations(&doc) {
        let guarded = ["/admin", "/payouts", "/dashboard"]
            .iter()
            .any(|p| path.starts_with(p));
        let has_429 = doc["paths"][&path][&method]["responses"]
            .get("429")
            .is_some_and(|r| {
                r["description"]
                    .as_str()
                    .unwrap()
                    .contains("wrong operator tokens")
            });
        assert_eq!(guarded, has_429, "{method} {path}");
    }
    // Every operation of the spec model is there too (oas3 read them all).
    assert_eq!(spec.operations().count(), ids.len());
    // The error shape.
    let error = &doc["components"]["schemas"]["Error"];
    assert_eq!(error["required"], serde_json::json!(["error", "message"]));
}

fn collect_refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => {
                        out.insert(reference.clone());
                    }
                    _ => collect_refs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_documented_operation_is_mounted_and_no_other_method_is() {
    let (app, _dir) = full_router().await;
    let doc = served_document(&app).await;
    let operations = operations(&doc);
    assert!(operations.len() >= 25, "{operations:?}");
    for (method, path) in &operations {
        let (status, body) = send(&app, method, &concrete(path)).await;
        let code = error_code(&body);
        assert!(
            !(status == StatusCode::NOT_FOUND && code.as_deref() == Some("not_found"))
                && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but the router does not serve it: {status} {code:?}"
        );
    }
    // A documented path serves exactly its documented methods.
    let paths: BTreeSet<&String> = operations.iter().map(|(_, path)| path).collect();
    for path in paths {
        for method in METHODS {
            if operations.iter().any(|(m, p)| m == method && p == path) {
                continue;
            }
            let (status, body) = send(&app, method, &concrete(path)).await;
            assert_eq!(
                (status, error_code(&body).as_deref()),
                (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed")),
                "{} {path} is served but not documented",
                method.to_uppercase()
            );
        }
    }
}

/// The paths that `api/src` mounts: the first argument of every `.route(` outside test
/// modules (`format!("{prefix}/…")` expanded with the callback prefixes).
fn mounted_paths() -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        let code = source.split("#[cfg(test)]").next().unwrap();
        for call in code.split(".route(").skip(1) {
            let call = call.trim_start();
            let call = call.strip_prefix("&format!(").unwrap_or(call);
            let Some(rest) = call.strip_prefix('"') else {
                panic!(
                    "{}: a .route( whose path is not a literal; make it one so this test can check it is documented",
                    file.display()
                );
            };
            let path = &rest[..rest.find('"').unwrap()];
            if path.contains("{prefix}") {
                for prefix in pi_payments_api::callbacks::PREFIXES {
                    paths.insert(path.replace("{prefix}", prefix));
                }
            } else {
                paths.insert(path.to_string());
            }
        }
    }
    paths
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[tokio::test]
async fn every_mounted_path_is_documented() {
    let (app, _dir) = full_router().await;
    let doc = served_document(&app).await;
    let mounted = mounted_paths();
    assert!(
        mounted.len() >= 25,
        "the scan found too few routes: {mounted:?}"
    );
    assert!(
        mounted.contains("/api/pi_payment/incomplete"),
        "{mounted:?}"
    );
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let missing: Vec<&String> = mounted.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "mounted but not in the OpenAPI document (annotate the handler with #[utoipa::path] and list it in openapi::ApiDoc): {missing:?}"
    );
}

#[tokio::test]
async fn docs_renders_every_operation_and_schema_without_scripts() {
    let (app, _dir) = full_router().await;
    let doc = served_document(&app).await;
    let (status, body) = send(&app, "get", "/docs").await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8(body).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(!page.contains("<script"), "the page needs no JavaScript");
    assert!(
        !page.contains("https://"),
        "the page loads nothing from elsewhere"
    );
    for (method, path) in operations(&doc) {
        let entry = format!("<code>{} {path}</code>", method.to_uppercase());
        assert!(page.contains(&entry), "{entry} is not on the page");
        let op = &doc["paths"][&path][&method];
        let summary = op["summary"].as_str().unwrap();
        // The page shows `backquoted` parts as code, and escapes the text.
        for part in summary.split('`').filter(|p| !p.is_empty()) {
            assert!(
                page.contains(&html_escape(part)),
                "{method} {path}: summary {summary:?} is not on the page"
            );
        }
    }
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        assert!(
            page.contains(&format!("id=\"schema-{name}\"")),
            "schema {name} is not on the page"
        );
    }
    for scheme in doc["components"]["securitySchemes"]
        .as_object()
        .unwrap()
        .keys()
    {
        assert!(page.contains(&format!("id=\"auth-{scheme}\"")), "{scheme}");
    }
}

#[tokio::test]
async fn the_document_and_the_docs_are_public() {
    let (app, _dir) = full_router().await;
    for path in ["/openapi.json", "/docs"] {
        let (status, body) = send(&app, "get", path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let text = String::from_utf8(body).unwrap();
        assert!(!text.contains(ADMIN), "{path} shows the admin token");
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
