//! The sandbox tenant over real loopback sockets: identity flows, the API's
//! OData semantics and every fault, with reqwest as the client.

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
