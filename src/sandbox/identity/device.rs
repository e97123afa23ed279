//! The device-code grant: the devicecode endpoint that hands out a device
//! code and a user code, the token endpoint's polling answers (pending,
//! slow down, declined, expired, redeemed), and the `/devicelogin` page
//! where the user types the code and approves or declines the sign-in.

use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::errors::{AadError, aad, consent_missing, unknown_client};
use super::{DeviceGrant, DeviceState, Identity, get, token};
use crate::sandbox::http::{self, Body};
use crate::sandbox::{Shared, jwt, scopes};

const DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(900);

impl Identity {
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

pub(super) fn device_poll(
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
            Ok(token::issue_user_tokens(shared, &scopes))
        }
    }
}

pub(super) fn devicecode(
    shared: &Shared,
    form: &[(String, String)],
) -> Result<serde_json::Value, AadError> {
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
