//! The OS keyring, through the `keyring` crate (v4, feature `v1`): Secret
//! Service over D-Bus on Linux and the BSDs, Keychain on macOS, Credential
//! Manager on Windows. Entries are filed under service [`SERVICE`] with the
//! credential key as the user name; long values go through [`super::chunks`].
//!
//! The crate connects to the platform store once per process, on first use,
//! and keeps it. On Linux that connection is a blocking zbus call driven by
//! zbus's own executor; since subcommands run inside a tokio runtime, every
//! keyring operation runs on a plain thread of its own when a runtime is
//! current, so it never blocks or nests inside a tokio worker.

use ::keyring::{Entry, Error as KeyringError};

use super::chunks::{self, Entries};
use super::{SERVICE, SecretError, SecretStore};

/// The OS keyring, through the `keyring` crate.
#[derive(Debug, Default)]
pub struct KeyringStore {}

impl KeyringStore {
    pub fn new() -> Self {
        KeyringStore {}
    }
}

impl SecretStore for KeyringStore {
    fn load(&self, key: &str) -> Result<Option<String>, SecretError> {
        off_runtime(|| chunks::load(&OsEntries, key))
    }
    fn save(&self, key: &str, value: &str) -> Result<(), SecretError> {
        off_runtime(|| chunks::save(&OsEntries, key, value))
    }
    fn delete(&self, key: &str) -> Result<(), SecretError> {
        off_runtime(|| chunks::delete(&OsEntries, key))
    }
}

/// Run `f` on a thread of its own when a tokio runtime is current, else here.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Single entries of the platform store.
struct OsEntries;

impl OsEntries {
    fn entry(&self, name: &str, action: &'static str) -> Result<Entry, SecretError> {
        Entry::new(SERVICE, name).map_err(|e| classify(e, action, name))
    }
}

impl Entries for OsEntries {
    fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
        match self.entry(name, "read")?.get_password() {
            Ok(v) => Ok(Some(v)),
            Err(KeyringError::NoEntry) => Ok(None),
            Err(e) => Err(classify(e, "read", name)),
        }
    }

    fn set(&self, name: &str, value: &str) -> Result<(), SecretError> {
        self.entry(name, "save")?
            .set_password(value)
            .map_err(|e| classify(e, "save", name))
    }

    fn remove(&self, name: &str) -> Result<bool, SecretError> {
        match self.entry(name, "delete")?.delete_credential() {
            Ok(()) => Ok(true),
            Err(KeyringError::NoEntry) => Ok(false),
            Err(e) => Err(classify(e, "delete", name)),
        }
    }
}

/// No store at all, or a store that cannot be opened without a person (a
/// locked collection and no prompter): `Unavailable`, exit 3 with the remedies.
/// Anything else is the backend failing: `Backend`. Only `Display` of the
/// crate's errors is used; none of them carries the secret there.
fn classify(err: KeyringError, action: &'static str, key: &str) -> SecretError {
    match err {
        KeyringError::NoDefaultStore => SecretError::Unavailable {
            detail: store_failure(),
        },
        KeyringError::NoStorageAccess(e) => SecretError::Unavailable {
            detail: format!("the keyring is locked and could not be unlocked here: {e}"),
        },
        other => SecretError::Backend {
            action,
            key: key.to_string(),
            detail: other.to_string(),
        },
    }
}

/// Why the platform store could not be opened, in words for a cron host.
fn store_failure() -> String {
    let why = match Entry::store_status() {
        Err(e) => e.to_string(),
        Ok(()) => "no credential store is set up".to_string(),
    };
    if cfg!(all(unix, not(target_os = "macos"))) {
        let bus = if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
            "DBUS_SESSION_BUS_ADDRESS is set"
        } else {
            "DBUS_SESSION_BUS_ADDRESS is not set"
        };
        format!("cannot reach a Secret Service on the D-Bus session bus ({bus}): {why}")
    } else {
        why
    }
}
