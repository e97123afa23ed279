//! The sandbox's Entra ID: `{base}/{tenant}/oauth2/v2.0/authorize|token|devicecode`
//! as the Microsoft identity platform documents them.
//!
//! Authorization code + PKCE (S256 only; codes single-use, 10 minutes, bound
//! to the exact loopback redirect URI), refresh tokens only with
//! `offline_access` and rotated on use, client credentials with the secret
//! checked and a `/.default` scope, and the device-code grant with its polling
//! answers. Errors carry Microsoft's JSON shape with AADSTS codes.
//!
//! This module holds what the endpoints share: the [`Identity`] state (codes,
//! refresh tokens and device codes handed out so far) and the routing of
//! `{tenant}/oauth2/v2.0/{op}` to `authorize`, `token` and `device`; `errors`
//! has the AADSTS error bodies they all answer with.

mod authorize;
mod device;
mod errors;
mod token;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request, Response, StatusCode};

use super::http::{self, Body};
use super::{RequestRecord, Shared, scopes};
use errors::{aad, unknown_tenant};

pub(crate) use device::device_login_page;
pub(crate) use errors::AadError;

// At the paths they had before this module became a directory, for the rest
// of the sandbox; nothing outside `identity` uses them yet.
#[allow(unused_imports)]
pub(crate) use {authorize::is_loopback_redirect, errors::html_escape};

const CODE_LIFETIME: Duration = Duration::from_secs(600);

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
}

/// `{tenant}/oauth2/v2.0/{op}`.
pub(crate) async fn handle(
    shared: &Shared,
    tenant: &str,
    op: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    match (op, req.method().clone()) {
        ("authorize", Method::GET) => {
            authorize::authorize(shared, tenant, &http::query_pairs(&req))
        }
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
                token::token(shared, &form, basic)
            } else {
                device::devicecode(shared, &form)
            };
            let response = match result {
                Ok(v) => http::json(StatusCode::OK, &v),
                Err(e) => e.to_response(),
            };
            let now = Instant::now();
            shared.record(RequestRecord {
                at: now,
                answered: now,
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
