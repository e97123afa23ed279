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
    #[error(
        "profile `{profile}` has no credentials in the keyring; run `defender-ingest --profile {profile} authorize`"
    )]
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

use std::sync::Mutex;

/// Hands out access tokens for one profile.
///
/// The auth module grows the real sources (refresh token, client secret) behind
/// this same interface; [`Session::with_token`] serves tests that already hold a
/// token.
pub struct Session {
    token: Mutex<Option<String>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Session { .. }")
    }
}

impl Session {
    /// A session that always presents `token` and cannot refresh it.
    pub fn with_token(token: impl Into<String>) -> Session {
        Session {
            token: Mutex::new(Some(token.into())),
        }
    }

    /// STUB until the auth branch lands: the session of a stored profile.
    pub async fn for_profile(
        profile: &crate::state::Profile,
        secrets: std::sync::Arc<dyn crate::secrets::SecretStore>,
        http: reqwest::Client,
    ) -> Result<Session, AuthError> {
        let _ = (secrets, http);
        Err(AuthError::NoCredentials {
            profile: profile.name.clone(),
        })
    }

    /// A token to send now: cached, or freshly obtained when missing or about to expire.
    pub async fn access_token(&self) -> Result<String, AuthError> {
        self.token
            .lock()
            .unwrap()
            .clone()
            .ok_or_else(|| AuthError::Other("no access token".into()))
    }

    /// The API answered 401 to `rejected`: get a new token (once per rejection).
    pub async fn refresh_after_rejection(&self, rejected: &str) -> Result<String, AuthError> {
        let _ = rejected;
        Err(AuthError::Other(
            "the access token was rejected and this session cannot refresh it".into(),
        ))
    }
}
