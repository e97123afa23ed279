//! Signing in to Entra ID and keeping an access token fresh.
//!
//! `authorize` runs one of three flows (browser + PKCE on a loopback listener,
//! device code, client secret) and stores what is needed to sign in again in the
//! keyring. At run time a [`Session`] turns those credentials into access tokens,
//! refreshing before expiry and once more after a 401, and saves rotated refresh
//! tokens back.
//!
//! Every failure is an [`AuthError`]; Entra ID's own errors (the `AADSTS` codes)
//! are translated in one table, `entra_errors`, into a sentence that says what to
//! do. No message ever carries a token, an authorization code or a secret.

mod browser;
mod client_secret;
mod device;
mod entra_errors;
mod oauth;
mod session;

pub use browser::{BrowserOptions, sign_in_with_browser};
pub use client_secret::verify_client_secret;
pub use device::sign_in_with_device_code;
pub use entra_errors::EntraErrorResponse;
pub use oauth::{Authority, redirect_uri_for_port};
pub use session::Session;

use crate::exit::Exit;
use crate::secrets::SecretError;

/// What `authorize` needs to keep after a delegated sign-in.
pub struct SignedIn {
    /// The refresh token to store in the keyring.
    pub refresh_token: String,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignedIn { .. }")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "profile `{profile}` has no credentials in the keyring; run `defender-ingest --profile {profile} authorize`"
    )]
    NoCredentials { profile: String },
    /// Entra ID refused; `advice` says what to do, `detail` is Entra's own first line.
    #[error("{advice}\n  (Entra ID: {detail})")]
    Refused {
        code: Option<u32>,
        error: String,
        advice: String,
        detail: String,
        unavailable: bool,
    },
    #[error("{0}")]
    Cancelled(String),
    #[error(
        "gave up waiting for the {what} sign-in after {secs} s; run `authorize` again (--timeout SECS waits longer)"
    )]
    Timeout { what: &'static str, secs: u64 },
    #[error("the sign-in service stayed unavailable: {0}; try again later")]
    Unavailable(String),
    /// The sign-in host's certificate was refused (never retried).
    #[error(
        "cannot establish a trusted TLS connection to the sign-in service {host}: {detail}. {}",
        crate::net::CA_ADVICE
    )]
    Tls { host: String, detail: String },
    /// The proxy wants credentials (407; never retried).
    #[error(
        "the proxy {proxy} refused to connect us to the sign-in service {host}: \
         407 Proxy Authentication Required. Give its credentials as \
         http://USER:PASSWORD@HOST:PORT in `--proxy` or HTTPS_PROXY"
    )]
    Proxy { host: String, proxy: String },
    #[error("the sign-in service answered in a way this tool does not understand: {0}")]
    Protocol(String),
    #[error("cannot listen for the browser's redirect on 127.0.0.1:{port}: {source}")]
    Listener {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Secrets(#[from] SecretError),
    #[error("sign-in failed: {0}")]
    Other(String),
}

impl AuthError {
    pub fn exit(&self) -> Exit {
        match self {
            AuthError::NoCredentials { .. }
            | AuthError::Cancelled(_)
            | AuthError::Timeout { .. }
            | AuthError::Other(_) => Exit::NotAuthorized,
            AuthError::Refused { unavailable, .. } => {
                if *unavailable {
                    Exit::Unavailable
                } else {
                    Exit::NotAuthorized
                }
            }
            AuthError::Unavailable(_) | AuthError::Tls { .. } | AuthError::Proxy { .. } => {
                Exit::Unavailable
            }
            AuthError::Protocol(_) | AuthError::Listener { .. } => Exit::Error,
            AuthError::Secrets(e) => e.exit(),
        }
    }

    /// The AADSTS code Entra ID gave, if this is one of its refusals.
    pub fn entra_code(&self) -> Option<u32> {
        match self {
            AuthError::Refused { code, .. } => *code,
            _ => None,
        }
    }
}
