//! Credentials in the OS keyring, behind a small trait.
//!
//! What a profile needs to sign in again unattended (a refresh token, or the
//! client secret of an app-only profile) is kept as one JSON value per profile in
//! the platform's credential store: Secret Service on Linux, Keychain on macOS,
//! Credential Manager on Windows ([`KeyringStore`]). Refresh tokens run to
//! several KB and Windows caps one entry at 2,560 bytes, so long values are
//! split over several entries (`chunks`). Tests and the demo use
//! [`MemoryStore`] behind the same [`SecretStore`] trait.
//! `DEFENDER_INGEST_CLIENT_SECRET`, when set, supplies the client secret at run
//! time instead (keyring-less cron hosts).

mod chunks;
mod keyring;
mod memory;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::exit::Exit;

pub use self::keyring::KeyringStore;
pub use self::memory::MemoryStore;

/// The env var that supplies a client secret at run time.
pub const CLIENT_SECRET_ENV: &str = "DEFENDER_INGEST_CLIENT_SECRET";

/// The keyring service name every entry is filed under.
pub const SERVICE: &str = "defender-ingest";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no OS keyring is reachable ({detail}).\n\
         On a headless host either run inside a desktop or D-Bus session with a Secret Service \
         (e.g. gnome-keyring), or use an app-only profile: `authorize --flow client-secret` and \
         supply the secret at run time with {CLIENT_SECRET_ENV}."
    )]
    Unavailable { detail: String },
    #[error("the OS keyring refused to {action} the credentials of `{key}`: {detail}")]
    Backend {
        action: &'static str,
        key: String,
        detail: String,
    },
    #[error("the credentials stored for `{key}` are unreadable ({detail}); run `authorize` again")]
    Corrupt { key: String, detail: String },
}

impl SecretError {
    pub fn exit(&self) -> Exit {
        match self {
            SecretError::Unavailable { .. } | SecretError::Corrupt { .. } => Exit::NotAuthorized,
            SecretError::Backend { .. } => Exit::Error,
        }
    }
}

/// A place to keep secrets: load → Option, save, delete.
pub trait SecretStore: Send + Sync {
    fn load(&self, key: &str) -> Result<Option<String>, SecretError>;
    fn save(&self, key: &str, value: &str) -> Result<(), SecretError>;
    /// Deleting what is not there is not an error.
    fn delete(&self, key: &str) -> Result<(), SecretError>;
}

/// What one profile keeps in the keyring.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    pub fn load(store: &dyn SecretStore, key: &str) -> Result<Option<Credentials>, SecretError> {
        match store.load(key)? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| SecretError::Corrupt {
                    key: key.to_string(),
                    detail: format!("not JSON at column {}", e.column()),
                }),
        }
    }

    pub fn save(&self, store: &dyn SecretStore, key: &str) -> Result<(), SecretError> {
        let text = serde_json::to_string(self).expect("credentials serialize");
        store.save(key, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_never_shows_secrets() {
        let c = Credentials {
            refresh_token: Some("0.ARsecretrefresh".into()),
            client_secret: Some("s3cr3t~value".into()),
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("secretrefresh") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn memory_store_round_trips_large_values() {
        let store = MemoryStore::default();
        let c = Credentials {
            refresh_token: Some("x".repeat(8000)),
            client_secret: None,
        };
        c.save(&store, "k").unwrap();
        assert_eq!(Credentials::load(&store, "k").unwrap(), Some(c));
        store.delete("k").unwrap();
        assert_eq!(Credentials::load(&store, "k").unwrap(), None);
    }
}
