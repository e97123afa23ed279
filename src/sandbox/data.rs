//! The tenant's records and how they move over time (placeholder until the API lands).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::SandboxConfig;

/// A cheap handle on the tenant's data and clock.
#[derive(Clone)]
pub struct Tenant {
    inner: Arc<Mutex<()>>,
    offset: chrono::Duration,
}

impl Tenant {
    pub(crate) fn generate(cfg: &SandboxConfig) -> Tenant {
        Tenant {
            inner: Arc::new(Mutex::new(())),
            offset: cfg.clock_offset,
        }
    }

    /// The server's clock: host clock + the configured offset.
    pub fn now(&self) -> DateTime<Utc> {
        let _ = &self.inner;
        Utc::now() + self.offset
    }

    pub fn tick(&self) {}
}
