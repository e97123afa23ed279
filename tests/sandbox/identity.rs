//! The sandbox's Entra ID as a client sees it: authorization code + PKCE,
//! what the authorize endpoint refuses, refresh tokens (only with
//! `offline_access`, rotated, revocable), client credentials, the device-code
//! grant, and a browser following the redirect to a loopback app.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use defender_ingest::sandbox::Sandbox;
use serde_json::Value;

use super::{
    REDIRECT, SCOPE, app_listener, app_token, authorize, authorize_url, client, post_token, redeem,
    sandbox, token_url, user_tokens,
};

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
