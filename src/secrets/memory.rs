//! Secrets in process memory, behind the same [`SecretStore`] trait as the OS
//! keyring: for unit tests and the demo's throwaway run, where nothing may
//! outlive the process.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{SecretError, SecretStore};

/// Secrets in process memory: for unit tests and the demo's throwaway run.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, String>>,
}

impl SecretStore for MemoryStore {
    fn load(&self, key: &str) -> Result<Option<String>, SecretError> {
        Ok(self.entries.lock().unwrap().get(key).cloned())
    }
    fn save(&self, key: &str, value: &str) -> Result<(), SecretError> {
        self.entries
            .lock()
            .unwrap()
            .insert(key.to_string(), value.to_string());
        Ok(())
    }
    fn delete(&self, key: &str) -> Result<(), SecretError> {
        self.entries.lock().unwrap().remove(key);
        Ok(())
    }
}
