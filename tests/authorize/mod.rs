//! `authorize` and `Session` against the sandbox tenant over real loopback sockets.
//!
//! The binary runs as a child process (sealed env); the sandbox plays the
//! browser and approves device codes. Tests that store credentials in the OS
//! keyring run only with `DEFENDER_INGEST_KEYRING_TESTS=1` (inside the D-Bus
//! session `.ci/run` starts); the `Session` tests run in process with a
//! `MemoryStore`.
//!
//! This file is the harness the test files share: the keyring gate, the
//! binary spawned with its stderr read line by line, the state dir searched
//! for secrets (`assert_nowhere`), token requests counted at the sandbox, and
//! a check that a stored profile's session reaches the API. The tests are in
//! `browser`, `device_code`, `client_secret`, `usage` and `session`.

mod browser;
mod client_secret;
mod device_code;
mod session;
mod usage;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use defender_ingest::auth::Session;
use defender_ingest::sandbox::{Sandbox, SandboxConfig};
use defender_ingest::secrets::SecretStore;
use defender_ingest::state::StateStore;

use crate::common::Env;

fn keyring_tests() -> bool {
    std::env::var("DEFENDER_INGEST_KEYRING_TESTS").as_deref() == Ok("1")
}

fn sandbox() -> Sandbox {
    Sandbox::spawn(SandboxConfig::default()).expect("sandbox starts")
}

fn base_args(sb: &Sandbox) -> Vec<String> {
    let c = sb.config();
    vec![
        "authorize".into(),
        "--tenant".into(),
        c.tenant_id.clone(),
        "--client-id".into(),
        c.client_id.clone(),
        "--login-url".into(),
        sb.url(),
        "--api-url".into(),
        sb.url(),
        "--timeout".into(),
        "60".into(),
    ]
}

/// The binary as a std child (assert_cmd cannot stream stderr), same sealed env as `Env::cmd`.
fn spawn(env: &Env, args: &[String], stdin: Option<&str>, extra_env: &[(&str, &str)]) -> Running {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("defender-ingest"));
    c.env_clear()
        .env("HOME", env.home())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("XDG_STATE_HOME", env.home().join(".local/state"))
        .env("XDG_DATA_HOME", env.home().join(".local/share"))
        .env("XDG_CONFIG_HOME", env.home().join(".config"))
        .env("DEFENDER_INGEST_STATE_DIR", &env.state_dir)
        .env("NO_COLOR", "1");
    for keep in ["DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR"] {
        if let Some(v) = std::env::var_os(keep) {
            c.env(keep, v);
        }
    }
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("binary runs");
    if let Some(input) = stdin {
        let mut si = child.stdin.take().unwrap();
        si.write_all(input.as_bytes()).unwrap();
    }
    let (tx, lines) = mpsc::channel();
    let stderr = Arc::new(Mutex::new(String::new()));
    let err = child.stderr.take().unwrap();
    let all = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            all.lock().unwrap().push_str(&line);
            all.lock().unwrap().push('\n');
            let _ = tx.send(line);
        }
    });
    Running {
        child,
        lines,
        stderr,
    }
}

struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    /// The first stderr line for which `pick` says yes.
    fn line(&self, pick: impl Fn(&str) -> bool) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(l) if pick(&l) => return l,
                Ok(_) => {}
                Err(e) => panic!(
                    "no such line on stderr ({e}): {}",
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    fn finish(mut self) -> (i32, String, String) {
        let mut stdout = String::new();
        std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let status = self.child.wait().unwrap();
        // Let the reader thread drain.
        std::thread::sleep(Duration::from_millis(100));
        let stderr = self.stderr.lock().unwrap().clone();
        (status.code().unwrap_or(-1), stdout, stderr)
    }
}

/// Everything under the state dir, concatenated.
fn state_files(env: &Env) -> String {
    let mut all = String::new();
    for e in walk(&env.state_dir) {
        all.push_str(&String::from_utf8_lossy(
            &std::fs::read(e).unwrap_or_default(),
        ));
    }
    all
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn assert_nowhere(secret: &str, what: &str, places: &[(&str, &str)]) {
    assert!(secret.len() >= 8, "{what} too short to search for");
    for (name, text) in places {
        assert!(!text.contains(secret), "the {what} appears in {name}");
    }
}

fn token_requests(sb: &Sandbox, grant: &str) -> usize {
    sb.requests()
        .iter()
        .filter(|r| r.grant_type.as_deref() == Some(grant))
        .count()
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The stored profile's session works against the sandbox API.
fn assert_session_works(sb: &Sandbox, env: &Env, secrets: Arc<dyn SecretStore>) {
    let profile = StateStore::new(&env.state_dir)
        .load_existing("default")
        .unwrap();
    block_on(async {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let session = Session::for_profile(&profile, secrets, http.clone())
            .await
            .unwrap();
        let token = session.access_token().await.unwrap();
        let r = http
            .get(format!("{}/api/alerts?$top=1", sb.url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            200,
            "{}",
            r.text().await.unwrap_or_default()
        );
    });
}
