//! The sandbox tenant over real loopback sockets: identity flows, the API's
//! OData semantics and every fault, with reqwest as the client.

use std::collections::HashMap;
use std::time::Duration;

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

fn aadsts(body: &Value) -> u64 {
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS")
    );
    assert!(body["trace_id"].is_string() && body["correlation_id"].is_string());
    assert!(body["timestamp"].is_string());
    body["error_codes"][0].as_u64().unwrap()
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

fn jwt_payload(token: &str) -> Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn pkce_code_flow_end_to_end() {
    let sb = sandbox().await;
    let verifier = "correct-horse-battery-staple-0123456789-abcdefghij";
    let q = authorize(&authorize_url(&sb, SCOPE, verifier, REDIRECT)).await;
    assert_eq!(q["state"], "st4te");
    let code = q["code"].clone();

    let (status, body) = redeem(
        &sb,
        &code,
        "wrong-verifier-wrong-verifier-wrong-verifier",
        REDIRECT,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(aadsts(&body), 50148);

    let (status, body) = redeem(&sb, &code, verifier, "http://127.0.0.1:53682/other").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(aadsts(&body), 50011);

    let (status, body) = redeem(&sb, &code, verifier, REDIRECT).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(body["refresh_token"].is_string());
    let claims = jwt_payload(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://api.securitycenter.microsoft.com");
    assert_eq!(claims["tid"], sb.config().tenant_id);
    assert_eq!(claims["appid"], sb.config().client_id);
    assert!(claims["scp"].as_str().unwrap().contains("Alert.Read.All"));
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());

    let (status, body) = redeem(&sb, &code, verifier, REDIRECT).await;
    assert_eq!(status, 400);
    assert_eq!(aadsts(&body), 54005, "a code is single-use");
}

#[tokio::test]
async fn authorize_refuses_what_entra_refuses() {
    let sb = sandbox().await;
    let c = client();
    // Not loopback: an error page, no redirect.
    let r = c
        .get(authorize_url(&sb, SCOPE, "x", "https://evil.example/cb"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("AADSTS50011"));
    // Unknown tenant and unknown client.
    let url = authorize_url(&sb, SCOPE, "x", REDIRECT);
    let r = c
        .get(url.replace(&sb.config().tenant_domain, "nope.onmicrosoft.com"))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("AADSTS90002"));
    let r = c
        .get(url.replace(
            &sb.config().client_id,
            "00000000-0000-0000-0000-000000000000",
        ))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("AADSTS700016"));
    // plain PKCE is refused by redirecting back with an error.
    let q = authorize(&url.replace("S256", "plain")).await;
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(q["state"], "st4te");
    // A scope outside the Defender API.
    let q = authorize(&authorize_url(
        &sb,
        "https://graph.microsoft.com/.default",
        "x",
        REDIRECT,
    ))
    .await;
    assert_eq!(q["error"], "invalid_scope");
    // Consent denied.
    sb.faults().deny_consent(true);
    let q = authorize(&url).await;
    assert_eq!(q["error"], "consent_required");
    assert!(q["error_description"].starts_with("AADSTS65001"));
    // Any loopback form works: localhost and [::1], any port and path.
    sb.faults().deny_consent(false);
    for redirect in ["http://localhost:1/", "http://[::1]:8080/a/b"] {
        let r = c
            .get(authorize_url(&sb, SCOPE, "x", redirect))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{redirect}");
    }
}

#[tokio::test]
async fn no_refresh_token_without_offline_access() {
    let sb = sandbox().await;
    let verifier = "w".repeat(45);
    let q = authorize(&authorize_url(
        &sb,
        "https://api.securitycenter.microsoft.com/.default openid profile",
        &verifier,
        REDIRECT,
    ))
    .await;
    let (status, body) = redeem(&sb, &q["code"], &verifier, REDIRECT).await;
    assert_eq!(status, 200);
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body["id_token"].is_string());
}

#[tokio::test]
async fn refresh_rotates_and_revocation_fails_it() {
    let sb = sandbox().await;
    let first = user_tokens(&sb).await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();
    let client_id = sb.config().client_id.clone();
    let refresh = |rt: String| {
        let client_id = client_id.clone();
        let sb = &sb;
        async move {
            post_token(
                sb,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", &client_id),
                    ("refresh_token", &rt),
                    ("scope", SCOPE),
                ],
            )
            .await
        }
    };
    let (status, second) = refresh(rt1.clone()).await;
    assert_eq!(status, 200, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2, "a new refresh token on every use");
    assert_ne!(first["access_token"], second["access_token"]);
    // Entra keeps the previous refresh token valid until it expires.
    assert_eq!(refresh(rt1.clone()).await.0, 200);

    sb.faults().revoke_refresh_tokens();
    for rt in [rt1, rt2] {
        let (status, body) = refresh(rt).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        assert!([70008, 700082].contains(&aadsts(&body)));
    }
    // A fresh sign-in works again.
    let fresh = user_tokens(&sb).await;
    assert_eq!(
        refresh(fresh["refresh_token"].as_str().unwrap().into())
            .await
            .0,
        200
    );

    sb.faults().deny_consent(true);
    let (status, body) = refresh(fresh["refresh_token"].as_str().unwrap().into()).await;
    assert_eq!(status, 400);
    assert_eq!(aadsts(&body), 65001);
}

#[tokio::test]
async fn client_credentials_checks_the_secret_and_scope() {
    let sb = sandbox().await;
    let token = app_token(&sb).await;
    let claims = jwt_payload(&token);
    assert!(
        claims["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "Alert.Read.All")
    );
    let client_id = sb.config().client_id.clone();
    let (status, body) = post_token(
        &sb,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", "wrong"),
            ("scope", "https://api.securitycenter.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert_eq!(aadsts(&body), 7000215);
    let (status, body) = post_token(
        &sb,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", "sandbox-client-secret"),
            (
                "scope",
                "https://api.securitycenter.microsoft.com/Alert.Read.All",
            ),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    // HTTP Basic client authentication, as the oauth2 crate sends it by default.
    let r = client()
        .post(token_url(&sb))
        .basic_auth(&client_id, Some("sandbox-client-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "scope",
                "https://api-gcc.securitycenter.microsoft.us/.default",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Unknown tenant in the token URL.
    let r = client()
        .post(token_url(&sb).replace(&sb.config().tenant_id, "contoso.onmicrosoft.com"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(aadsts(&body), 90002);
}

async fn poll_device(sb: &Sandbox, device_code: &str) -> (u16, Value) {
    let client_id = sb.config().client_id.clone();
    post_token(
        sb,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", &client_id),
            ("device_code", device_code),
        ],
    )
    .await
}

#[tokio::test]
async fn device_code_pending_then_approved() {
    let sb = sandbox().await;
    let client_id = sb.config().client_id.clone();
    let r = client()
        .post(format!(
            "{}/{}/oauth2/v2.0/devicecode",
            sb.url(),
            sb.config().tenant_id
        ))
        .form(&[("client_id", client_id.as_str()), ("scope", SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let dc: Value = r.json().await.unwrap();
    for field in [
        "device_code",
        "user_code",
        "verification_uri",
        "expires_in",
        "interval",
        "message",
    ] {
        assert!(!dc[field].is_null(), "{field} in {dc}");
    }
    let user_code = dc["user_code"].as_str().unwrap();
    assert!(dc["message"].as_str().unwrap().contains(user_code));
    let device_code = dc["device_code"].as_str().unwrap();
    let poll = || poll_device(&sb, device_code);
    let (status, body) = poll().await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    let (_, body) = poll().await;
    assert_eq!(
        body["error"], "slow_down",
        "polled faster than the interval"
    );

    // The user types the code on the device-login page.
    let page = client()
        .get(dc["verification_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert!(page.text().await.unwrap().contains("<form"));
    assert!(!sb.approve_device_code("NOTACODE1"));
    let r = client()
        .post(dc["verification_uri"].as_str().unwrap())
        .form(&[
            ("code", user_code.to_lowercase().as_str()),
            ("action", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(sb.config().device_code_interval).await;
    let (status, body) = poll().await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].is_string());
    let (_, body) = poll().await;
    assert_eq!(
        body["error"], "invalid_grant",
        "a device code is redeemed once"
    );

    // Expiry.
    let r = client()
        .post(format!(
            "{}/{}/oauth2/v2.0/devicecode",
            sb.url(),
            sb.config().tenant_id
        ))
        .form(&[("client_id", client_id.as_str()), ("scope", SCOPE)])
        .send()
        .await
        .unwrap();
    let dc2: Value = r.json().await.unwrap();
    sb.faults().expire_device_codes();
    let (_, body) = poll_device(&sb, dc2["device_code"].as_str().unwrap()).await;
    assert_eq!(body["error"], "expired_token");
}

#[tokio::test]
async fn token_endpoint_faults() {
    let sb = sandbox().await;
    sb.faults().token_fail_next(1, 503);
    let cfg = sb.config().clone();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", cfg.client_id.as_str()),
        ("client_secret", cfg.client_secret.as_str()),
        ("scope", "https://api.securitycenter.microsoft.com/.default"),
    ];
    let (status, body) = post_token(&sb, &form).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(post_token(&sb, &form).await.0, 200);
    let grants: Vec<_> = sb
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/token"))
        .map(|r| (r.status, r.grant_type))
        .collect();
    assert_eq!(
        grants,
        vec![
            (503, Some("client_credentials".to_string())),
            (200, Some("client_credentials".to_string()))
        ]
    );
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

#[tokio::test]
async fn browser_follows_the_redirect_to_the_app() {
    let sb = sandbox().await;
    let (redirect, listener) = app_listener().await;
    let out = sb
        .browser(&authorize_url(&sb, SCOPE, &"z".repeat(43), &redirect))
        .await
        .unwrap();
    assert_eq!(out.status, 200);
    assert_eq!(out.body, "signed in");
    assert!(out.redirected_to.starts_with(&redirect));
    let line = listener.await.unwrap();
    assert!(line.starts_with("GET /cb?code="), "{line}");
}

#[test]
fn spawned_sandbox_serves_https_with_its_own_ca() {
    let sb = Sandbox::spawn(SandboxConfig {
        tls: true,
        ..SandboxConfig::default()
    })
    .unwrap();
    assert!(sb.url().starts_with("https://localhost:"));
    let pem = sb.ca_pem().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let trusted = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
            .no_proxy()
            .build()
            .unwrap();
        let r = trusted.get(sb.url()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let untrusted = reqwest::Client::builder().no_proxy().build().unwrap();
        assert!(untrusted.get(sb.url()).send().await.is_err());
    });
    let (redirect, listener) = rt.block_on(app_listener());
    let out = sb
        .browser_blocking(&authorize_url(&sb, SCOPE, &"q".repeat(43), &redirect))
        .unwrap();
    assert_eq!(out.status, 200);
    rt.block_on(listener).unwrap();
    let url = sb.url();
    drop(sb);
    let r = rt.block_on(
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send(),
    );
    assert!(r.is_err(), "dropping the sandbox stops it");
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

#[tokio::test]
async fn bearer_tokens_and_permissions() {
    let sb = sandbox().await;
    let r = client()
        .get(format!("{}/api/alerts", sb.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(api_error(&r.json().await.unwrap()), "Unauthorized");
    assert_eq!(
        api(&sb, "not.a.token", "/api/alerts", &[]).await.status(),
        401
    );

    let app = app_token(&sb).await;
    let user = user_tokens(&sb).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    for token in [&app, &user] {
        for path in ["/api/alerts", "/api/investigations", "/api/recommendations"] {
            assert_eq!(
                api(&sb, token, path, &[("$top", "1")]).await.status(),
                200,
                "{path}"
            );
        }
    }
    sb.faults().remove_permission("Alert.Read.All");
    for path in ["/api/alerts", "/api/investigations"] {
        let r = api(&sb, &app, path, &[]).await;
        assert_eq!(r.status(), 403);
        assert_eq!(api_error(&r.json().await.unwrap()), "Forbidden");
    }
    assert_eq!(
        api(&sb, &user, "/api/recommendations", &[]).await.status(),
        200
    );
    sb.faults().restore_permission("Alert.Read.All");
    assert_eq!(api(&sb, &app, "/api/alerts", &[]).await.status(), 200);

    sb.faults().expire_access_tokens();
    assert_eq!(api(&sb, &app, "/api/alerts", &[]).await.status(), 401);
    let fresh = app_token(&sb).await;
    assert_eq!(api(&sb, &fresh, "/api/alerts", &[]).await.status(), 200);

    let short = sandbox_with(SandboxConfig {
        access_token_lifetime: Duration::from_secs(1),
        ..SandboxConfig::default()
    })
    .await;
    let t = app_token(&short).await;
    assert_eq!(
        api(&short, &t, "/api/alerts", &[("$top", "1")])
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        api(&short, &t, "/api/alerts", &[("$top", "1")])
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn alerts_carry_every_documented_field_and_mixed_precision() {
    let sb = sandbox().await;
    let t = app_token(&sb).await;
    let all = values(&sb, &t, "/api/alerts", &[("$expand", "evidence")]).await;
    assert_eq!(all.len(), 200);
    for field in [
        "id",
        "incidentId",
        "investigationId",
        "assignedTo",
        "severity",
        "status",
        "classification",
        "determination",
        "investigationState",
        "detectionSource",
        "detectorId",
        "category",
        "threatFamilyName",
        "title",
        "description",
        "alertCreationTime",
        "firstEventTime",
        "lastEventTime",
        "lastUpdateTime",
        "resolvedTime",
        "machineId",
        "computerDnsName",
        "rbacGroupName",
        "aadTenantId",
        "threatName",
        "mitreTechniques",
        "relatedUser",
        "loggedOnUsers",
        "comments",
        "evidence",
    ] {
        assert!(all[0].get(field).is_some(), "{field}");
    }
    assert!(all[0]["id"].as_str().unwrap().starts_with("da"));
    assert!(!all[0]["evidence"].as_array().unwrap().is_empty());
    let fractions: std::collections::BTreeSet<usize> = all
        .iter()
        .map(|a| {
            let s = a["lastUpdateTime"].as_str().unwrap();
            s.split_once('.')
                .map_or(0, |(_, f)| f.trim_end_matches('Z').len())
        })
        .collect();
    assert_eq!(
        fractions,
        [0, 2, 7].into_iter().collect(),
        "mixed precision"
    );
    let statuses: std::collections::BTreeSet<&str> =
        all.iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert!(statuses.len() >= 2, "{statuses:?}");
    let oldest = all
        .iter()
        .map(|a| ts(a, "alertCreationTime"))
        .min()
        .unwrap();
    assert!(sb.tenant().now() - oldest > chrono::Duration::days(20));
    // Without $expand the evidence is empty; the ground truth matches the API.
    let plain = values(&sb, &t, "/api/alerts", &[("$top", "5")]).await;
    assert_eq!(plain[0]["evidence"], serde_json::json!([]));
    assert_eq!(sb.tenant().alerts().len(), 200);

    let inv = values(&sb, &t, "/api/investigations", &[]).await;
    assert_eq!(inv.len(), 20);
    for f in [
        "id",
        "startTime",
        "endTime",
        "state",
        "cancelledBy",
        "statusDetails",
        "machineId",
        "computerDnsName",
        "triggeringAlertId",
    ] {
        assert!(inv[0].get(f).is_some(), "{f}");
    }
    let recs = values(&sb, &t, "/api/recommendations", &[]).await;
    assert_eq!(recs.len(), 40);
    for f in [
        "id",
        "productName",
        "recommendationName",
        "weaknesses",
        "vendor",
        "recommendedVersion",
        "recommendationCategory",
        "subCategory",
        "severityScore",
        "publicExploit",
        "activeAlert",
        "associatedThreats",
        "remediationType",
        "status",
        "configScoreImpact",
        "exposureImpact",
        "totalMachineCount",
        "exposedMachinesCount",
        "nonProductivityImpactedAssets",
        "relatedComponent",
    ] {
        assert!(recs[0].get(f).is_some(), "{f}");
    }
    assert!(
        recs.iter()
            .any(|r| r["id"] == "va-_-microsoft-_-windows_10")
    );
}

#[tokio::test]
async fn filter_orderby_top_skip_semantics() {
    let sb = sandbox().await;
    let t = app_token(&sb).await;
    let all = values(&sb, &t, "/api/alerts", &[]).await;
    let mut times: Vec<_> = all.iter().map(|a| ts(a, "lastUpdateTime")).collect();
    times.sort();
    let pivot = times[100];
    // Cursor written with 7 digits, 2 digits, none and no zone: compared as an instant.
    let expected = times.iter().filter(|t| **t >= pivot).count();
    let got = values(
        &sb,
        &t,
        "/api/alerts",
        &[(
            "$filter",
            &format!("lastUpdateTime ge {}", defender_ingest::time::odata(pivot)),
        )],
    )
    .await;
    assert_eq!(got.len(), expected);
    assert!(got.iter().all(|a| ts(a, "lastUpdateTime") >= pivot));
    let whole = pivot.format("%Y-%m-%dT%H:%M:%S").to_string();
    let got = values(
        &sb,
        &t,
        "/api/alerts",
        &[("$filter", &format!("lastUpdateTime gt {whole}"))],
    )
    .await;
    let floor = defender_ingest::time::parse(&whole).unwrap();
    assert_eq!(got.len(), times.iter().filter(|t| **t > floor).count());

    // $orderby asc with $top/$skip pages through everything in order, exactly once.
    let mut paged = Vec::new();
    for skip in (0..200).step_by(30) {
        let skip = skip.to_string();
        paged.extend(
            values(
                &sb,
                &t,
                "/api/alerts",
                &[
                    ("$orderby", "lastUpdateTime asc"),
                    ("$top", "30"),
                    ("$skip", &skip),
                ],
            )
            .await,
        );
    }
    assert_eq!(paged.len(), 200);
    assert!(
        paged
            .windows(2)
            .all(|w| ts(&w[0], "lastUpdateTime") <= ts(&w[1], "lastUpdateTime"))
    );
    let ids: std::collections::BTreeSet<_> = paged
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 200);
    let desc = values(
        &sb,
        &t,
        "/api/alerts",
        &[("$orderby", "alertCreationTime desc"), ("$top", "10")],
    )
    .await;
    assert!(
        desc.windows(2)
            .all(|w| ts(&w[0], "alertCreationTime") >= ts(&w[1], "alertCreationTime"))
    );

    // Ties: one exact lastUpdateTime shared by 7 alerts, ordered by id, stable across pages.
    let tie = sb.tenant().now() - chrono::Duration::hours(1);
    sb.tenant().add_alerts_at(7, tie);
    let q = format!("lastUpdateTime eq {}", defender_ingest::time::odata(tie));
    let tied = values(
        &sb,
        &t,
        "/api/alerts",
        &[("$filter", &q), ("$orderby", "lastUpdateTime")],
    )
    .await;
    assert_eq!(tied.len(), 7);
    let tied_ids: Vec<_> = tied
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = tied_ids.clone();
    sorted.sort();
    assert_eq!(tied_ids, sorted);
    let second = values(
        &sb,
        &t,
        "/api/alerts",
        &[
            ("$filter", &q),
            ("$orderby", "lastUpdateTime"),
            ("$top", "3"),
            ("$skip", "3"),
        ],
    )
    .await;
    assert_eq!(
        second
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        tied_ids[3..6]
    );

    // Other filterable fields, and investigations by startTime.
    let new = values(
        &sb,
        &t,
        "/api/alerts",
        &[("$filter", "status eq 'New' and severity ne 'Informational'")],
    )
    .await;
    assert!(
        new.iter()
            .all(|a| a["status"] == "New" && a["severity"] != "Informational")
    );
    let inv = values(
        &sb,
        &t,
        "/api/investigations",
        &[("$orderby", "startTime desc")],
    )
    .await;
    assert!(
        inv.windows(2)
            .all(|w| ts(&w[0], "startTime") >= ts(&w[1], "startTime"))
    );

    // Errors: Microsoft's shape, 400 ODataError.
    for bad in [
        vec![("$top", "10001")],
        vec![("$top", "-1")],
        vec![("$filter", "lastUpdateTime gt")],
        vec![("$filter", "title eq 'x'")],
        vec![("$orderby", "lastUpdateTime sideways")],
        vec![("$expand", "machines")],
    ] {
        let r = api(&sb, &t, "/api/alerts", &bad).await;
        assert_eq!(r.status(), 400, "{bad:?}");
        assert_eq!(api_error(&r.json().await.unwrap()), "ODataError");
    }
    assert_eq!(
        values(&sb, &t, "/api/alerts", &[("$top", "10000")])
            .await
            .len(),
        207
    );
}

#[tokio::test]
async fn without_orderby_the_order_is_not_time() {
    let sb = sandbox().await;
    let t = app_token(&sb).await;
    let all = values(&sb, &t, "/api/alerts", &[]).await;
    let ascending = all
        .windows(2)
        .filter(|w| ts(&w[0], "lastUpdateTime") <= ts(&w[1], "lastUpdateTime"))
        .count();
    assert!(
        (50..150).contains(&ascending),
        "looks sorted: {ascending}/199"
    );
    // ... but it is stable, so $skip pages do not overlap.
    let again = values(&sb, &t, "/api/alerts", &[]).await;
    assert_eq!(all, again);
}

#[tokio::test]
async fn api_faults() {
    let sb = sandbox().await;
    let t = app_token(&sb).await;
    let f = sb.faults();

    f.throttle_next(2, 7);
    for _ in 0..2 {
        let r = api(&sb, &t, "/api/alerts", &[]).await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
        assert_eq!(api_error(&r.json().await.unwrap()), "TooManyRequests");
    }
    assert_eq!(api(&sb, &t, "/api/alerts", &[]).await.status(), 200);

    f.fail_next(2, 503);
    assert_eq!(api(&sb, &t, "/api/alerts", &[]).await.status(), 503);
    assert_eq!(api(&sb, &t, "/api/investigations", &[]).await.status(), 503);
    assert_eq!(api(&sb, &t, "/api/alerts", &[]).await.status(), 200);

    f.reset_next(1);
    let err = client()
        .get(format!("{}/api/alerts", sb.url()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert_eq!(api(&sb, &t, "/api/alerts", &[]).await.status(), 200);

    f.truncate_next(1);
    let r = api(&sb, &t, "/api/alerts", &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "the body is cut off");
    assert_eq!(api(&sb, &t, "/api/alerts", &[]).await.status(), 200);

    f.slow_next(1, Duration::from_millis(700));
    let started = std::time::Instant::now();
    assert_eq!(
        api(&sb, &t, "/api/alerts", &[("$top", "1")]).await.status(),
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(700));

    f.page_cap(Some(15));
    let r: Value = api(&sb, &t, "/api/alerts", &[("$top", "100")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["value"].as_array().unwrap().len(), 15);
    assert!(r.get("@odata.nextLink").is_none());
    f.page_cap(None);

    f.next_link(true);
    let r: Value = api(&sb, &t, "/api/alerts", &[("$top", "150")])
        .await
        .json()
        .await
        .unwrap();
    let next = r["@odata.nextLink"].as_str().unwrap().to_string();
    let r2: Value = client()
        .get(&next)
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r2["value"].as_array().unwrap().len(), 50);
    assert!(r2.get("@odata.nextLink").is_none());
    f.next_link(false);

    f.api_down(true);
    assert_eq!(
        api(&sb, &t, "/api/recommendations", &[]).await.status(),
        503
    );
    f.api_down(false);

    let records = sb.requests();
    assert!(
        records.iter().any(|r| r.status == 0),
        "the reset is recorded"
    );
    assert!(
        records
            .iter()
            .any(|r| r.query.iter().any(|(k, v)| k == "$top" && v == "150"))
    );
}

#[tokio::test]
async fn throttles_at_the_documented_rate() {
    let sb = sandbox_with(SandboxConfig {
        rate_limit_per_minute: Some(5),
        ..SandboxConfig::default()
    })
    .await;
    let t = app_token(&sb).await;
    for _ in 0..5 {
        assert_eq!(
            api(&sb, &t, "/api/alerts", &[("$top", "1")]).await.status(),
            200
        );
    }
    let r = api(&sb, &t, "/api/alerts", &[("$top", "1")]).await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));
    // per endpoint
    assert_eq!(
        api(&sb, &t, "/api/recommendations", &[]).await.status(),
        200
    );
    // Microsoft's 100/min by default
    assert_eq!(SandboxConfig::default().rate_limit_per_minute, Some(100));
}

#[tokio::test]
async fn clock_offset_and_late_alerts() {
    let sb = sandbox_with(SandboxConfig {
        clock_offset: chrono::Duration::hours(-3),
        ..SandboxConfig::default()
    })
    .await;
    let skew = chrono::Utc::now() - sb.tenant().now();
    assert!((skew - chrono::Duration::hours(3)).num_seconds().abs() <= 1);
    let t = app_token(&sb).await;
    let all = values(&sb, &t, "/api/alerts", &[]).await;
    let newest = all.iter().map(|a| ts(a, "lastUpdateTime")).max().unwrap();
    assert!(
        newest <= sb.tenant().now(),
        "nothing after the server's now"
    );

    let before = sb.tenant().now();
    sb.tenant().add_late_alert(Duration::from_millis(1500));
    sb.tenant().add_alerts(2);
    sb.tenant().update_alerts(3);
    let q = format!(
        "lastUpdateTime ge {}",
        defender_ingest::time::odata(before - chrono::Duration::seconds(1))
    );
    let first = values(&sb, &t, "/api/alerts", &[("$filter", &q)]).await;
    assert!((2..=5).contains(&first.len()), "{}", first.len());
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let later = values(&sb, &t, "/api/alerts", &[("$filter", &q)]).await;
    assert_eq!(later.len(), first.len() + 1, "the late alert shows up");
    let late = later
        .iter()
        .find(|a| !first.iter().any(|f| f["id"] == a["id"]))
        .unwrap();
    assert!(ts(late, "lastUpdateTime") < sb.tenant().now() - chrono::Duration::seconds(1));

    // Investigations change state with no timestamp to show it.
    let before: Vec<Value> = sb.tenant().investigations();
    sb.tenant().progress_investigations(5);
    let after = sb.tenant().investigations();
    let changed: Vec<_> = before.iter().zip(&after).filter(|(a, b)| a != b).collect();
    assert!(!changed.is_empty());
    for (a, b) in changed {
        assert_ne!(a["state"], b["state"]);
        assert_eq!(a["startTime"], b["startTime"]);
    }
    let recs = sb.tenant().recommendations();
    sb.tenant().change_recommendations(5);
    assert_ne!(recs, sb.tenant().recommendations());
}

#[test]
fn the_same_seed_gives_the_same_tenant() {
    let a = Sandbox::spawn(SandboxConfig::default()).unwrap();
    let b = Sandbox::spawn(SandboxConfig::default()).unwrap();
    let c = Sandbox::spawn(SandboxConfig {
        seed: 2,
        ..SandboxConfig::default()
    })
    .unwrap();
    let titles = |s: &Sandbox| {
        s.tenant()
            .alerts()
            .iter()
            .map(|a| a["title"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(titles(&a), titles(&b));
    assert_ne!(titles(&a), titles(&c));
    a.tenant().tick();
    assert!(a.tenant().alerts().len() > 200);
}

#[tokio::test]
async fn a_big_tenant_serves_a_full_page() {
    let sb = sandbox_with(SandboxConfig {
        alerts: 0,
        ..SandboxConfig::default()
    })
    .await;
    sb.tenant().bulk_alerts(30_000);
    let t = app_token(&sb).await;
    let page = values(
        &sb,
        &t,
        "/api/alerts",
        &[
            ("$orderby", "lastUpdateTime"),
            ("$top", "10000"),
            ("$expand", "evidence"),
        ],
    )
    .await;
    assert_eq!(page.len(), 10_000);
    assert!(
        page.windows(2)
            .all(|w| ts(&w[0], "lastUpdateTime") <= ts(&w[1], "lastUpdateTime"))
    );
}
