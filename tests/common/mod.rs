//! Shared test harness: a sealed environment for running the binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

/// A temporary HOME and state dir; every command built from it sees only them.
pub struct Env {
    pub home: TempDir,
    pub state_dir: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let home = tempfile::tempdir().expect("temp home");
        let state_dir = home.path().join("state");
        Env { home, state_dir }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `defender-ingest` with a sealed environment. The D-Bus session address is
    /// kept so keyring tests reach the private session `.ci/run` starts.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("defender-ingest").expect("binary built");
        c.env_clear()
            .env("HOME", self.home())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("XDG_STATE_HOME", self.home().join(".local/state"))
            .env("XDG_DATA_HOME", self.home().join(".local/share"))
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("DEFENDER_INGEST_STATE_DIR", &self.state_dir)
            .env("NO_COLOR", "1");
        for keep in [
            "DBUS_SESSION_BUS_ADDRESS",
            "XDG_RUNTIME_DIR",
            "DEFENDER_INGEST_KEYRING_TESTS",
        ] {
            if let Some(v) = std::env::var_os(keep) {
                c.env(keep, v);
            }
        }
        c.timeout(std::time::Duration::from_secs(120));
        c
    }

    pub fn profile_file(&self, profile: &str) -> PathBuf {
        self.state_dir.join(format!("{profile}.toml"))
    }
}

pub mod connected;
