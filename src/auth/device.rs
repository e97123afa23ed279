//! The device-code sign-in, for hosts without a browser.
//!
//! Asks Entra ID for a device code, shows Microsoft's own `message` (the URL
//! and the user code) on stderr, and polls the token endpoint at the interval
//! Entra ID gives. `authorization_pending` keeps polling, `slow_down` adds five
//! seconds (both handled by the `oauth2` crate), and `authorization_declined`,
//! `expired_token` and `bad_verification_code` end the flow with advice.

use std::time::Duration;

use oauth2::{DeviceAuthorizationResponse, ExtraDeviceAuthorizationFields};
use serde::{Deserialize, Serialize};

use super::entra_errors::{Situation, Stage};
use super::oauth::{Authority, SignInHttp, Token, request_error};
use super::{AuthError, SignedIn};

/// Entra ID adds a ready-made, localized instruction to the device-code answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EntraDeviceFields {
    #[serde(default)]
    message: Option<String>,
}

impl ExtraDeviceAuthorizationFields for EntraDeviceFields {}

/// Run the device-code flow to the end: a refresh token to store.
pub async fn sign_in_with_device_code(
    authority: &Authority,
    http: reqwest::Client,
    timeout: Duration,
    profile: &str,
) -> Result<SignedIn, AuthError> {
    let client = authority.client(None)?;
    let http = SignInHttp::new(http);
    let situation = Situation {
        authority,
        profile,
        stage: Stage::Authorize,
        redirect_uri: None,
    };
    let details: DeviceAuthorizationResponse<EntraDeviceFields> = client
        .exchange_device_code()
        .add_scopes(authority.delegated_scopes())
        .request_async(&http)
        .await
        .map_err(|e| request_error(e, &situation))?;

    match &details.extra_fields().message {
        Some(m) if !m.trim().is_empty() => eprintln!("{}", m.trim()),
        _ => eprintln!(
            "To sign in, use a web browser to open the page {} and enter the code {} to authenticate.",
            details.verification_uri().as_str(),
            details.user_code().secret()
        ),
    }
    let wait = timeout.min(details.expires_in());
    eprintln!("Waiting for the sign-in (up to {} s)...", wait.as_secs());

    let poll = client.exchange_device_access_token(&details).request_async(
        &http,
        tokio::time::sleep,
        None,
    );
    let resp = match tokio::time::timeout(wait, poll).await {
        Err(_) => {
            return Err(AuthError::Timeout {
                what: "device-code",
                secs: wait.as_secs(),
            });
        }
        Ok(r) => r.map_err(|e| request_error(e, &situation))?,
    };
    let refresh_token = Token::from_response(&resp).refresh.ok_or_else(|| {
        AuthError::Protocol(
            "Entra ID returned no refresh token (was offline_access granted?)".into(),
        )
    })?;
    Ok(SignedIn { refresh_token })
}
