//! A sandbox tenant and a profile connected to it through the binary's own
//! `authorize --flow client-secret` and `enable`, for tests of `pull`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;

use defender_ingest::sandbox::{Sandbox, SandboxConfig};
use serde_json::Value;

use super::Env;

pub struct Connected {
    pub sb: Sandbox,
    pub env: Env,
}

impl Connected {
    /// A sandbox with `cfg`, a profile authorized against it, enabled.
    pub fn new(cfg: SandboxConfig) -> Connected {
        let sb = Sandbox::spawn(cfg).expect("sandbox starts");
        let env = Env::new();
        let c = Connected { sb, env };
        let out = c
            .cmd()
            .args(["authorize", "--flow", "client-secret", "--tenant"])
            .arg(&c.sb.config().tenant_id)
            .arg("--client-id")
            .arg(&c.sb.config().client_id)
            .arg("--login-url")
            .arg(c.sb.url())
            .arg("--api-url")
            .arg(c.sb.url())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "authorize: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c.cmd().arg("enable").assert().success();
        c
    }

    /// The binary with the sealed env and the app's client secret in the environment.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut c = self.env.cmd();
        c.env(
            "DEFENDER_INGEST_CLIENT_SECRET",
            &self.sb.config().client_secret,
        );
        c
    }

    /// `pull --output FILE --since 60d` plus `extra`.
    pub fn pull_to(&self, file: &Path, extra: &[&str]) -> Output {
        self.cmd()
            .args(["pull", "--since", "60d", "--output"])
            .arg(file)
            .args(extra)
            .output()
            .unwrap()
    }

    /// API requests (not token requests) the sandbox has answered.
    pub fn api_calls(&self) -> usize {
        self.sb
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/api/"))
            .count()
    }

    pub fn status(&self) -> Value {
        let out = self.cmd().args(["status", "--json"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Every record version the tenant would serve now, keyed by (kind, id).
    pub fn truth(&self) -> HashMap<(String, String), Value> {
        let t = self.sb.tenant();
        let mut all = HashMap::new();
        for (kind, records) in [
            ("alert", t.alerts()),
            ("investigation", t.investigations()),
            ("recommendation", t.recommendations()),
        ] {
            for r in records {
                all.insert((kind.to_string(), r["id"].as_str().unwrap().to_string()), r);
            }
        }
        all
    }
}

/// The output lines of a JSONL file, parsed; panics on a line that is not JSON.
pub fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the file ends mid-line"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Check the output against the tenant: every current version is there, and no
/// version of any record was written twice.
pub fn assert_exactly_once(lines: &[Value], truth: &HashMap<(String, String), Value>) {
    let mut versions: HashMap<(String, String), Vec<&Value>> = HashMap::new();
    for l in lines {
        let key = (
            l["kind"].as_str().unwrap().to_string(),
            l["data"]["id"].as_str().unwrap().to_string(),
        );
        let seen = versions.entry(key.clone()).or_default();
        assert!(
            !seen.contains(&&l["data"]),
            "{key:?} was written twice with the same content"
        );
        seen.push(&l["data"]);
    }
    for (key, current) in truth {
        let written = versions
            .get(key)
            .unwrap_or_else(|| panic!("{key:?} was never written"));
        assert!(
            written.contains(&current),
            "the current version of {key:?} was not written"
        );
    }
}
