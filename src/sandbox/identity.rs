//! The sandbox's Entra ID: `{base}/{tenant}/oauth2/v2.0/authorize|token|devicecode`
//! as the Microsoft identity platform documents them.
//!
//! Authorization code + PKCE (S256 only; codes single-use, 10 minutes, bound
//! to the exact loopback redirect URI), refresh tokens only with
//! `offline_access` and rotated on use, client credentials with the secret
//! checked and a `/.default` scope, and the device-code grant with its polling
//! answers. Errors carry Microsoft's JSON shape with AADSTS codes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::http::{self, Body};
use super::{RequestRecord, Shared, jwt, scopes};

const CODE_LIFETIME: Duration = Duration::from_secs(600);
const DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(900);

/// Codes and tokens handed out so far.
pub(crate) struct Identity {
    key: [u8; 32],
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, Grant>,
    devices: HashMap<String, DeviceGrant>,
}

/// What a user (or the app) was granted: reused by codes, refresh and device codes.
#[derive(Clone)]
struct Grant {
    scopes: scopes::Requested,
    epoch: u64,
}

struct CodeGrant {
    grant: Grant,
    redirect_uri: String,
    challenge: String,
    issued: Instant,
    used: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DeviceState {
    Pending,
    Approved,
    Declined,
    Redeemed,
}

struct DeviceGrant {
    scopes: scopes::Requested,
    user_code: String,
    issued: Instant,
    epoch: u64,
    state: DeviceState,
    last_poll: Option<Instant>,
}

/// An Entra error: `error`, the AADSTS number and its text.
#[derive(Debug)]
pub(crate) struct AadError {
    pub status: StatusCode,
    pub error: &'static str,
    pub code: u32,
    pub message: String,
}

fn aad(error: &'static str, code: u32, message: impl Into<String>) -> AadError {
    AadError {
        status: StatusCode::BAD_REQUEST,
        error,
        code,
        message: message.into(),
    }
}

impl AadError {
    fn with_status(mut self, status: StatusCode) -> AadError {
        self.status = status;
        self
    }

    pub(crate) fn description(&self, trace: &str, correlation: &str, ts: &str) -> String {
        format!(
            "AADSTS{}: {}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {ts}",
            self.code, self.message
        )
    }

    pub(crate) fn to_response(&self) -> Response<Body> {
        let (trace, correlation) = (jwt::guid(), jwt::guid());
        let ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
        http::json(
            self.status,
            &json!({
                "error": self.error,
                "error_description": self.description(&trace, &correlation, &ts),
                "error_codes": [self.code],
                "timestamp": ts,
                "trace_id": trace,
                "correlation_id": correlation,
                "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
            }),
        )
    }
}

impl Identity {
    pub(crate) fn new() -> Identity {
        Identity {
            key: rand::random(),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    /// Approve or decline the pending device sign-in with this user code.
    pub(crate) fn decide_device_code(&self, user_code: &str, approve: bool) -> bool {
        let wanted = normalize_user_code(user_code);
        let mut s = self.lock();
        for d in s.devices.values_mut() {
            if d.user_code == wanted && d.state == DeviceState::Pending {
                d.state = if approve {
                    DeviceState::Approved
                } else {
                    DeviceState::Declined
                };
                return true;
            }
        }
        false
    }
}

fn normalize_user_code(c: &str) -> String {
    c.trim()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_ascii_uppercase()
}

/// `{tenant}/oauth2/v2.0/{op}`.
pub(crate) async fn handle(
    shared: &Shared,
    tenant: &str,
    op: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    match (op, req.method().clone()) {
        ("authorize", Method::GET) => authorize(shared, tenant, &http::query_pairs(&req)),
        ("token", Method::POST) | ("devicecode", Method::POST) => {
            let basic = basic_auth(&req);
            let path = req.uri().path().to_string();
            let form = http::form_pairs(&http::read_body(req).await);
            let grant_type = get(&form, "grant_type").map(str::to_string);
            let result = if !shared.is_tenant(tenant) {
                Err(unknown_tenant(tenant))
            } else if let Some(status) = shared.faults.take_token() {
                Err(aad(
                    "temporarily_unavailable",
                    500012,
                    "The server is temporarily unavailable. Try again later.",
                )
                .with_status(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                ))
            } else if op == "token" {
                token(shared, &form, basic)
            } else {
                devicecode(shared, &form)
            };
            let response = match result {
                Ok(v) => http::json(StatusCode::OK, &v),
                Err(e) => e.to_response(),
            };
            shared.record(RequestRecord {
                at: Instant::now(),
                method: "POST".into(),
                path,
                query: Vec::new(),
                status: response.status().as_u16(),
                grant_type,
            });
            response
        }
        _ => aad(
            "invalid_request",
            900561,
            format!(
                "The endpoint only accepts {} requests.",
                if op == "authorize" { "GET" } else { "POST" }
            ),
        )
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
        .to_response(),
    }
}

fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn basic_auth(req: &Request<Incoming>) -> Option<(String, String)> {
    let v = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let raw = STANDARD.decode(v.strip_prefix("Basic ")?.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let dec = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((dec(id), dec(secret)))
}

fn unknown_tenant(tenant: &str) -> AadError {
    aad(
        "invalid_request",
        90002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        ),
    )
}

fn unknown_client(client_id: &str, tenant: &str) -> AadError {
    aad(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
        ),
    )
}

fn consent_missing(client_id: &str) -> AadError {
    aad(
        "invalid_grant",
        65001,
        format!(
            "The user or administrator has not consented to use the application with ID '{client_id}' named 'defender-ingest'. Send an interactive authorization request for this user and resource."
        ),
    )
}

/// Is this a loopback `http` redirect URI (any port, any path)?
pub(crate) fn is_loopback_redirect(uri: &str) -> bool {
    match url::Url::parse(uri) {
        Ok(u) => {
            u.scheme() == "http"
                && matches!(
                    u.host(),
                    Some(url::Host::Domain("localhost"))
                        | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
                        | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
                )
                && u.fragment().is_none()
        }
        Err(_) => false,
    }
}

fn error_page(e: &AadError) -> Response<Body> {
    let (trace, correlation) = (jwt::guid(), jwt::guid());
    let ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let text = html_escape(&e.description(&trace, &correlation, &ts));
    http::html(
        StatusCode::BAD_REQUEST,
        format!(
            "<!doctype html><title>Sign in to your account</title><h1>Sign in</h1>\
             <p>Sorry, but we're having trouble signing you in.</p><pre>{text}</pre>"
        ),
    )
}

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn redirect(uri: &str, params: &[(&str, &str)]) -> Response<Body> {
    let mut u = url::Url::parse(uri).expect("checked before");
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    let mut r = http::response(StatusCode::FOUND, "text/html; charset=utf-8", "");
    r.headers_mut().insert(
        LOCATION,
        u.as_str().parse().expect("a URL is a header value"),
    );
    r
}

fn authorize(shared: &Shared, tenant: &str, q: &[(String, String)]) -> Response<Body> {
    if !shared.is_tenant(tenant) {
        return error_page(&unknown_tenant(tenant));
    }
    let client_id = get(q, "client_id").unwrap_or("");
    if client_id != shared.cfg.client_id {
        return error_page(&unknown_client(client_id, tenant));
    }
    let redirect_uri = get(q, "redirect_uri").unwrap_or("");
    if !is_loopback_redirect(redirect_uri) {
        return error_page(&aad(
            "invalid_request",
            50011,
            format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal."
            ),
        ));
    }
    let state = get(q, "state").unwrap_or("");
    let fail = |e: AadError| {
        let (trace, correlation) = (jwt::guid(), jwt::guid());
        let ts = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
        let desc = e.description(&trace, &correlation, &ts);
        let mut params = vec![("error", e.error), ("error_description", desc.as_str())];
        if !state.is_empty() {
            params.push(("state", state));
        }
        redirect(redirect_uri, &params)
    };
    if get(q, "response_type") != Some("code") {
        return fail(aad(
            "unsupported_response_type",
            700054,
            "response_type must be 'code' for this application.",
        ));
    }
    let requested = match scopes::parse(get(q, "scope").unwrap_or(""), &shared.base_url) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let challenge = get(q, "code_challenge").unwrap_or("");
    match get(q, "code_challenge_method") {
        _ if challenge.is_empty() => {
            return fail(aad(
                "invalid_request",
                9002325,
                "Proof Key for Code Exchange is required: send code_challenge with code_challenge_method=S256.",
            ));
        }
        Some("S256") => {}
        other => {
            return fail(aad(
                "invalid_request",
                9002325,
                format!(
                    "code_challenge_method '{}' is not supported; use S256.",
                    other.unwrap_or("plain")
                ),
            ));
        }
    }
    if shared.faults.lock().deny_consent {
        let mut e = consent_missing(client_id);
        e.error = "consent_required";
        return fail(e);
    }
    let code = format!("1.{}", jwt::random_token(48));
    let epoch = shared.faults.lock().refresh_epoch;
    shared.identity.lock().codes.insert(
        code.clone(),
        CodeGrant {
            grant: Grant {
                scopes: requested,
                epoch,
            },
            redirect_uri: redirect_uri.to_string(),
            challenge: challenge.to_string(),
            issued: Instant::now(),
            used: false,
        },
    );
    let session_state = jwt::guid();
    let mut params = vec![("code", code.as_str())];
    if !state.is_empty() {
        params.push(("state", state));
    }
    params.push(("session_state", session_state.as_str()));
    redirect(redirect_uri, &params)
}

fn token(
    shared: &Shared,
    form: &[(String, String)],
    basic: Option<(String, String)>,
) -> Result<serde_json::Value, AadError> {
    let (client_id, secret) = match &basic {
        Some((id, secret)) => (id.as_str(), Some(secret.as_str())),
        None => (
            get(form, "client_id").unwrap_or(""),
            get(form, "client_secret"),
        ),
    };
    if client_id.is_empty() {
        return Err(aad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        ));
    }
    if client_id != shared.cfg.client_id {
        return Err(unknown_client(client_id, &shared.cfg.tenant_id));
    }
    if let Some(s) = secret
        && s != shared.cfg.client_secret
    {
        return Err(bad_secret(client_id));
    }
    let deny = shared.faults.lock().deny_consent;
    match get(form, "grant_type").unwrap_or("") {
        "authorization_code" => {
            let code = get(form, "code").unwrap_or("");
            let mut s = shared.identity.lock();
            let Some(c) = s.codes.get_mut(code) else {
                return Err(aad(
                    "invalid_grant",
                    9002313,
                    "Invalid request. Request is malformed or invalid: the provided value for the 'code' parameter is not valid.",
                ));
            };
            if c.used {
                return Err(aad(
                    "invalid_grant",
                    54005,
                    "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
                ));
            }
            if c.issued.elapsed() > CODE_LIFETIME {
                return Err(aad(
                    "invalid_grant",
                    70008,
                    "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
                ));
            }
            if get(form, "redirect_uri").unwrap_or("") != c.redirect_uri {
                return Err(aad(
                    "invalid_grant",
                    50011,
                    "The redirect URI specified in the request does not match the redirect URI used to obtain the authorization code.",
                ));
            }
            let verifier = get(form, "code_verifier").unwrap_or("");
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if verifier.is_empty() || computed != c.challenge {
                return Err(aad(
                    "invalid_grant",
                    50148,
                    "The code_verifier does not match the code_challenge supplied in the authorization request for PKCE.",
                ));
            }
            c.used = true;
            let grant = c.grant.clone();
            drop(s);
            if deny {
                return Err(consent_missing(client_id));
            }
            Ok(issue_user_tokens(shared, &grant.scopes))
        }
        "refresh_token" => {
            let rt = get(form, "refresh_token").unwrap_or("");
            let grant = shared.identity.lock().refresh.get(rt).cloned();
            let Some(grant) = grant else {
                return Err(aad(
                    "invalid_grant",
                    9002313,
                    "Invalid request. Request is malformed or invalid: the refresh token is not valid.",
                ));
            };
            if grant.epoch != shared.faults.lock().refresh_epoch {
                return Err(aad(
                    "invalid_grant",
                    700082,
                    "The refresh token has expired due to inactivity. The token was issued on a date and was inactive for longer than allowed. Send a new interactive authorization request for this user and resource.",
                ));
            }
            if deny {
                return Err(consent_missing(client_id));
            }
            let mut scopes = grant.scopes.clone();
            if let Some(asked) = get(form, "scope") {
                let asked = scopes::parse(asked, &shared.base_url)?;
                scopes.resource = asked.resource;
                scopes.names = asked.names;
                scopes.openid = asked.openid;
                // offline_access stays granted once consented.
                scopes.offline = scopes.offline || asked.offline;
            }
            Ok(issue_user_tokens(shared, &scopes))
        }
        "client_credentials" => {
            if secret.is_none() {
                return Err(aad(
                    "invalid_client",
                    7000218,
                    "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                )
                .with_status(StatusCode::UNAUTHORIZED));
            }
            let scope = get(form, "scope").unwrap_or("");
            let asked = scopes::parse(scope, &shared.base_url)?;
            if asked.names != [".default"] || asked.offline || asked.openid {
                return Err(aad(
                    "invalid_scope",
                    1002012,
                    format!(
                        "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                    ),
                ));
            }
            let roles: Vec<&str> = if deny {
                Vec::new()
            } else {
                scopes::APP_ROLES.to_vec()
            };
            let lifetime = shared.cfg.access_token_lifetime.as_secs();
            let access = mint_access(
                shared,
                &asked.resource,
                json!({"roles": roles, "idtyp": "app"}),
            );
            Ok(json!({
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": access,
            }))
        }
        "urn:ietf:params:oauth:grant-type:device_code" => {
            device_poll(shared, form, deny, client_id)
        }
        "" => Err(aad(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        )),
        other => Err(aad(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

fn bad_secret(client_id: &str) -> AadError {
    aad(
        "invalid_client",
        7000215,
        format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
        ),
    )
    .with_status(StatusCode::UNAUTHORIZED)
}

fn device_poll(
    shared: &Shared,
    form: &[(String, String)],
    deny: bool,
    client_id: &str,
) -> Result<serde_json::Value, AadError> {
    let code = get(form, "device_code").unwrap_or("");
    let epoch = shared.faults.lock().device_epoch;
    let interval = shared.cfg.device_code_interval;
    let mut s = shared.identity.lock();
    let Some(d) = s.devices.get_mut(code) else {
        return Err(aad(
            "bad_verification_code",
            70019,
            "The provided value for the input parameter 'device_code' is not valid.",
        ));
    };
    if d.epoch != epoch || d.issued.elapsed() > DEVICE_CODE_LIFETIME {
        return Err(aad(
            "expired_token",
            70020,
            "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
        ));
    }
    let now = Instant::now();
    let too_fast = d
        .last_poll
        .is_some_and(|last| now.duration_since(last) < interval / 2);
    d.last_poll = Some(now);
    match d.state {
        DeviceState::Pending if too_fast => Err(aad(
            "slow_down",
            70016,
            "OAuth 2.0 device flow error. Polling too fast: wait `interval` seconds between requests.",
        )),
        DeviceState::Pending => Err(aad(
            "authorization_pending",
            70016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        )),
        DeviceState::Declined => Err(aad(
            "authorization_declined",
            70000,
            "The user declined the sign-in request.",
        )),
        DeviceState::Redeemed => Err(aad(
            "invalid_grant",
            54005,
            "OAuth2 device code was already redeemed, please retry with a new device code or use an existing refresh token.",
        )),
        DeviceState::Approved => {
            d.state = DeviceState::Redeemed;
            let scopes = d.scopes.clone();
            drop(s);
            if deny {
                return Err(consent_missing(client_id));
            }
            Ok(issue_user_tokens(shared, &scopes))
        }
    }
}

fn devicecode(shared: &Shared, form: &[(String, String)]) -> Result<serde_json::Value, AadError> {
    let client_id = get(form, "client_id").unwrap_or("");
    if client_id != shared.cfg.client_id {
        return Err(unknown_client(client_id, &shared.cfg.tenant_id));
    }
    let scopes = scopes::parse(get(form, "scope").unwrap_or(""), &shared.base_url)?;
    let device_code = jwt::random_token(48);
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let user_code: String = (0..9)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    let verification_uri = format!("{}/devicelogin", shared.base_url);
    let epoch = shared.faults.lock().device_epoch;
    shared.identity.lock().devices.insert(
        device_code.clone(),
        DeviceGrant {
            scopes,
            user_code: user_code.clone(),
            issued: Instant::now(),
            epoch,
            state: DeviceState::Pending,
            last_poll: None,
        },
    );
    Ok(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": verification_uri,
        "expires_in": DEVICE_CODE_LIFETIME.as_secs(),
        "interval": shared.cfg.device_code_interval.as_secs().max(1),
        "message": format!(
            "To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."
        ),
    }))
}

/// The signed-in sandbox administrator.
const USER_OID: &str = "2c1d0e4f-8a3b-4f6e-9d7c-1b2a3c4d5e6f";
const USER_UPN: &str = "admin@sandbox.onmicrosoft.com";

/// Token times use the host clock: `clock_offset` skews the Defender data, not Entra.
fn mint_access(shared: &Shared, resource: &str, extra: serde_json::Value) -> String {
    let now = chrono::Utc::now().timestamp();
    let lifetime = shared.cfg.access_token_lifetime.as_secs() as i64;
    let mut payload = json!({
        "aud": resource,
        "iss": format!("https://sts.windows.net/{}/", shared.cfg.tenant_id),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "tid": shared.cfg.tenant_id,
        "appid": shared.cfg.client_id,
        "ver": "1.0",
        "uti": jwt::random_token(16),
        "sbx_epoch": shared.faults.lock().access_epoch,
    });
    if let (Some(p), Some(e)) = (payload.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    jwt::mint(shared.identity.key(), &payload)
}

fn issue_user_tokens(shared: &Shared, scopes: &scopes::Requested) -> serde_json::Value {
    let lifetime = shared.cfg.access_token_lifetime.as_secs();
    let scp = scopes.delegated_scp();
    let access = mint_access(
        shared,
        &scopes.resource,
        json!({"scp": scp, "oid": USER_OID, "upn": USER_UPN, "name": "Sandbox Admin", "idtyp": "user"}),
    );
    let mut granted: Vec<String> = scopes.granted();
    let mut out = json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access,
    });
    if scopes.offline {
        let rt = format!("0.{}", jwt::random_token(96));
        let epoch = shared.faults.lock().refresh_epoch;
        shared.identity.lock().refresh.insert(
            rt.clone(),
            Grant {
                scopes: scopes.clone(),
                epoch,
            },
        );
        out["refresh_token"] = json!(rt);
        granted.push("offline_access".into());
    }
    if scopes.openid {
        let now = chrono::Utc::now().timestamp();
        out["id_token"] = json!(jwt::mint(
            shared.identity.key(),
            &json!({
                "aud": shared.cfg.client_id,
                "iss": format!("{}/{}/v2.0", shared.base_url, shared.cfg.tenant_id),
                "iat": now, "nbf": now, "exp": now + 3600,
                "tid": shared.cfg.tenant_id, "oid": USER_OID,
                "preferred_username": USER_UPN, "name": "Sandbox Admin", "ver": "2.0",
            })
        ));
        granted.push("openid".into());
        granted.push("profile".into());
    }
    out["scope"] = json!(granted.join(" "));
    out
}

/// `GET /devicelogin`: the page where a user types the code; `POST` approves or declines it.
pub(crate) async fn device_login_page(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let form_html = |msg: &str| {
        format!(
            "<!doctype html><title>Enter code</title><h1>defender-ingest sandbox: enter code</h1>\
             <p>{msg}</p><form method=post action=/devicelogin>\
             <input name=code autofocus placeholder=Code> \
             <button name=action value=approve>Next (approve)</button> \
             <button name=action value=decline>Decline</button></form>"
        )
    };
    if req.method() != Method::POST {
        return http::html(
            StatusCode::OK,
            form_html("Enter the code displayed on your app or device."),
        );
    }
    let form = http::form_pairs(&http::read_body(req).await);
    let code = get(&form, "code").unwrap_or("");
    let approve = get(&form, "action") != Some("decline");
    if shared.identity.decide_device_code(code, approve) {
        let what = if approve {
            "signed in"
        } else {
            "declined the sign-in"
        };
        http::html(
            StatusCode::OK,
            format!(
                "<!doctype html><title>Done</title><h1>You have {what}</h1><p>You may now close this window.</p>"
            ),
        )
    } else {
        http::html(
            StatusCode::BAD_REQUEST,
            form_html("That code didn't work. Check the code and try again."),
        )
    }
}
