//! Signing in to Entra ID and keeping an access token fresh.
//!
//! `authorize` runs one of three flows (browser + PKCE on a loopback listener,
//! device code, client secret) and stores what is needed to sign in again in the
//! keyring. At run time a [`Session`] turns those credentials into access tokens,
//! refreshing before expiry and once more after a 401, and saves rotated refresh
//! tokens back.

use crate::exit::Exit;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("profile `{profile}` has no credentials in the keyring; run `defender-ingest --profile {profile} authorize`")]
    NoCredentials { profile: String },
    #[error("sign-in failed: {0}")]
    Other(String),
}

impl AuthError {
    pub fn exit(&self) -> Exit {
        match self {
            AuthError::NoCredentials { .. } => Exit::NotAuthorized,
            AuthError::Other(_) => Exit::NotAuthorized,
        }
    }
}
