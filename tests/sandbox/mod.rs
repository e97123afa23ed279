//! The sandbox tenant over real loopback sockets: identity flows, the API's
//! OData semantics and every fault, with reqwest as the client.
//!
//! This file holds what the test files share: a client that does not follow
//! redirects, sandbox start-up, the code-flow and client-credentials steps
//! that get a token, and the API calls; the tests themselves are in
//! `identity`, `api`, `faults` and `server`.

mod api;
mod faults;
mod identity;
mod server;

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use defender_ingest::sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;
use sha2::{Digest, Sha256};

const SCOPE: &str = "https://api.securitycenter.microsoft.com/.default offline_access";
const REDIRECT: &str = "http://127.0.0.1:53682/callback";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

async fn sandbox() -> Sandbox {
    sandbox_with(SandboxConfig::default()).await
}

async fn sandbox_with(cfg: SandboxConfig) -> Sandbox {
    Sandbox::start(cfg).await.expect("sandbox starts")
}

fn token_url(sb: &Sandbox) -> String {
    format!("{}/{}/oauth2/v2.0/token", sb.url(), sb.config().tenant_id)
}

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn authorize_url(sb: &Sandbox, scope: &str, verifier: &str, redirect: &str) -> String {
    let mut u = url::Url::parse(&format!(
        "{}/{}/oauth2/v2.0/authorize",
        sb.url(),
        sb.config().tenant_domain
    ))
    .unwrap();
    u.query_pairs_mut()
        .append_pair("client_id", &sb.config().client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", scope)
        .append_pair("state", "st4te")
        .append_pair("code_challenge", &challenge(verifier))
        .append_pair("code_challenge_method", "S256");
    u.to_string()
}

/// GET the authorize URL and return the redirect's query pairs.
async fn authorize(url: &str) -> HashMap<String, String> {
    let r = client().get(url).send().await.unwrap();
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    url::Url::parse(&loc)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

async fn post_token(sb: &Sandbox, form: &[(&str, &str)]) -> (u16, Value) {
    let r = client()
        .post(token_url(sb))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn redeem(sb: &Sandbox, code: &str, verifier: &str, redirect: &str) -> (u16, Value) {
    let client_id = sb.config().client_id.clone();
    post_token(
        sb,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// A user token through the code flow.
async fn user_tokens(sb: &Sandbox) -> Value {
    let verifier = "v".repeat(50);
    let q = authorize(&authorize_url(sb, SCOPE, &verifier, REDIRECT)).await;
    let (status, body) = redeem(sb, &q["code"], &verifier, REDIRECT).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn app_token(sb: &Sandbox) -> String {
    let cfg = sb.config().clone();
    let (status, body) = post_token(
        sb,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &cfg.client_id),
            ("client_secret", &cfg.client_secret),
            ("scope", "https://api.securitycenter.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// A loopback "app" listener that answers the redirect with 200 and the query it got.
async fn app_listener() -> (String, tokio::task::JoinHandle<String>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 8192];
        let n = s.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        let line = head.lines().next().unwrap_or("").to_string();
        let body = "signed in";
        s.write_all(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        line
    });
    (format!("http://127.0.0.1:{port}/cb"), h)
}

// ---- the Defender API ----

async fn api(sb: &Sandbox, token: &str, path: &str, query: &[(&str, &str)]) -> reqwest::Response {
    client()
        .get(format!("{}{path}", sb.url()))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .unwrap()
}

async fn values(sb: &Sandbox, token: &str, path: &str, query: &[(&str, &str)]) -> Vec<Value> {
    let r = api(sb, token, path, query).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["@odata.context"]
            .as_str()
            .unwrap()
            .contains("/api/$metadata#")
    );
    body["value"].as_array().unwrap().clone()
}

fn ts(v: &Value, field: &str) -> chrono::DateTime<chrono::Utc> {
    defender_ingest::time::parse(v[field].as_str().unwrap()).unwrap()
}

fn api_error(body: &Value) -> &str {
    assert!(body["error"]["message"].is_string() && body["error"]["target"].is_string());
    body["error"]["code"].as_str().unwrap()
}
