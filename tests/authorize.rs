//! `authorize` and `Session` against the sandbox tenant over real loopback sockets.
//!
//! The binary runs as a child process (sealed env); the sandbox plays the
//! browser and approves device codes. Tests that store credentials in the OS
//! keyring run only with `DEFENDER_INGEST_KEYRING_TESTS=1` (inside the D-Bus
//! session `.ci/run` starts); the `Session` tests run in process with a
//! `MemoryStore`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use defender_ingest::auth::{self, Authority, BrowserOptions, Session};
use defender_ingest::cli::Flow;
use defender_ingest::cloud::Cloud;
use defender_ingest::exit::Exit;
use defender_ingest::sandbox::{Sandbox, SandboxConfig};
use defender_ingest::secrets::{Credentials, KeyringStore, MemoryStore, SecretStore};
use defender_ingest::state::{Connection, Profile, StateStore};

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

fn port_of(authorize_url: &str) -> u16 {
    let u = url::Url::parse(authorize_url).unwrap();
    let redirect = u
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .map(|(_, v)| v.into_owned())
        .expect("redirect_uri in the sign-in URL");
    assert!(redirect.starts_with("http://localhost:"), "{redirect}");
    url::Url::parse(&redirect).unwrap().port().unwrap()
}

/// Local addresses listening on `port`, from /proc/net/tcp{,6}.
fn listeners(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 3 && cols[3] == "0A" && cols[1].ends_with(&format!(":{port:04X}")) {
                out.push(cols[1].to_string());
            }
        }
    }
    out
}

fn get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    })
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

#[test]
fn browser_sign_in_refuses_forged_callbacks_and_stores_a_refresh_token() {
    if !keyring_tests() {
        eprintln!("skipped: needs DEFENDER_INGEST_KEYRING_TESTS=1 and a Secret Service");
        return;
    }
    let sb = sandbox();
    let env = Env::new();
    let mut args = base_args(&sb);
    args.push("--no-browser".into());
    let run = spawn(&env, &args, None, &[]);
    let url = run.line(|l| l.starts_with("http"));
    let port = port_of(&url);

    // Bound to 127.0.0.1 only.
    let bound = listeners(port);
    assert_eq!(
        bound,
        vec![format!("0100007F:{port:04X}")],
        "listeners on {port}"
    );

    // A callback with the wrong state is refused, not redeemed; the wait goes on.
    let (status, body) = get(&format!(
        "http://127.0.0.1:{port}/?code=forged-code-0123456789&state=not-the-state"
    ));
    assert_eq!(status, 400, "{body}");
    let (status, _) = get(&format!(
        "http://127.0.0.1:{port}/?code=forged-code-0123456789"
    ));
    assert_eq!(status, 400);
    let (status, _) = get(&format!("http://127.0.0.1:{port}/favicon.ico"));
    assert_eq!(status, 404);
    assert_eq!(token_requests(&sb, "authorization_code"), 0);

    let outcome = sb
        .browser_blocking(&url)
        .expect("the played browser signs in");
    assert_eq!(outcome.status, 200, "{}", outcome.body);
    assert!(
        outcome.body.contains("close this window"),
        "{}",
        outcome.body
    );
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("test") && stderr.contains("enable"),
        "{stderr}"
    );
    assert_eq!(token_requests(&sb, "authorization_code"), 1);

    let profile = StateStore::new(&env.state_dir)
        .load_existing("default")
        .unwrap();
    assert!(!profile.enabled);
    assert!(profile.authorized_at.is_some());
    let key = profile.credential_key.clone().expect("a credential key");
    let creds = Credentials::load(&KeyringStore::new(), &key)
        .unwrap()
        .expect("stored");
    let refresh = creds.refresh_token.expect("a refresh token");
    let auth_code = url::Url::parse(&outcome.redirected_to)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let files = state_files(&env);
    for (what, s) in [
        ("refresh token", refresh.as_str()),
        ("authorization code", auth_code.as_str()),
    ] {
        assert_nowhere(
            s,
            what,
            &[
                ("stdout", &stdout),
                ("stderr", &stderr),
                ("the state dir", &files),
            ],
        );
    }
    assert_session_works(&sb, &env, Arc::new(KeyringStore::new()));
    let _ = KeyringStore::new().delete(&key);
}

#[test]
fn device_code_sign_in_shows_microsofts_message_and_stores_a_refresh_token() {
    if !keyring_tests() {
        eprintln!("skipped: needs DEFENDER_INGEST_KEYRING_TESTS=1 and a Secret Service");
        return;
    }
    let sb = sandbox();
    let env = Env::new();
    let mut args = base_args(&sb);
    args.extend(["--flow".into(), "device-code".into()]);
    let run = spawn(&env, &args, None, &[]);
    let message = run.line(|l| l.contains("enter the code"));
    let user_code = message
        .split("enter the code ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(sb.approve_device_code(&user_code));
    let (code, stdout, stderr) = run.finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty());
    let profile = StateStore::new(&env.state_dir)
        .load_existing("default")
        .unwrap();
    assert_eq!(profile.connection.flow, Flow::DeviceCode);
    assert!(!profile.enabled);
    let key = profile.credential_key.clone().unwrap();
    let refresh = Credentials::load(&KeyringStore::new(), &key)
        .unwrap()
        .and_then(|c| c.refresh_token)
        .unwrap();
    assert_nowhere(
        &refresh,
        "refresh token",
        &[("stderr", &stderr), ("the state dir", &state_files(&env))],
    );
    assert_session_works(&sb, &env, Arc::new(KeyringStore::new()));
    let _ = KeyringStore::new().delete(&key);
}

#[test]
fn declined_device_code_exits_3() {
    let sb = sandbox();
    let env = Env::new();
    let mut args = base_args(&sb);
    args.extend(["--flow".into(), "device-code".into()]);
    let run = spawn(&env, &args, None, &[]);
    let message = run.line(|l| l.contains("enter the code"));
    let user_code = message
        .split("enter the code ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert!(sb.decline_device_code(&user_code));
    let (code, _, stderr) = run.finish();
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("declined"), "{stderr}");
    assert!(!env.profile_file("default").exists());
}

#[test]
fn client_secret_from_stdin_is_verified_and_stored() {
    if !keyring_tests() {
        eprintln!("skipped: needs DEFENDER_INGEST_KEYRING_TESTS=1 and a Secret Service");
        return;
    }
    let sb = sandbox();
    let env = Env::new();
    let secret = sb.config().client_secret.clone();
    let mut args = base_args(&sb);
    args.extend([
        "--flow".into(),
        "client-secret".into(),
        "--client-secret-stdin".into(),
    ]);
    let (code, stdout, stderr) = spawn(&env, &args, Some(&format!("{secret}\n")), &[]).finish();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(token_requests(&sb, "client_credentials"), 1);
    let profile = StateStore::new(&env.state_dir)
        .load_existing("default")
        .unwrap();
    let key = profile.credential_key.clone().unwrap();
    let stored = Credentials::load(&KeyringStore::new(), &key)
        .unwrap()
        .unwrap();
    assert_eq!(stored.client_secret.as_deref(), Some(secret.as_str()));
    assert_nowhere(
        &secret,
        "client secret",
        &[
            ("stdout", &stdout),
            ("stderr", &stderr),
            ("the state dir", &state_files(&env)),
        ],
    );
    assert_session_works(&sb, &env, Arc::new(KeyringStore::new()));
    let _ = KeyringStore::new().delete(&key);
}

#[test]
fn client_secret_from_the_environment_works_without_a_keyring() {
    let sb = sandbox();
    let env = Env::new();
    let secret = sb.config().client_secret.clone();
    let mut args = base_args(&sb);
    args.extend(["--flow".into(), "client-secret".into()]);
    let (code, stdout, stderr) = spawn(
        &env,
        &args,
        None,
        &[("DEFENDER_INGEST_CLIENT_SECRET", &secret)],
    )
    .finish();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("starts disabled"), "{stderr}");
    assert_nowhere(
        &secret,
        "client secret",
        &[
            ("stdout", &stdout),
            ("stderr", &stderr),
            ("the state dir", &state_files(&env)),
        ],
    );
    let profile = StateStore::new(&env.state_dir)
        .load_existing("default")
        .unwrap();
    assert!(!profile.enabled);
    // At run time the env var supplies the secret, whatever the keyring holds.
    block_on(async {
        let session = Session::for_profile_with(
            &profile,
            Arc::new(MemoryStore::default()),
            reqwest::Client::builder().no_proxy().build().unwrap(),
            Some(secret.clone()),
        )
        .await
        .unwrap();
        session.access_token().await.unwrap();
    });
    if let Some(key) = profile.credential_key {
        let _ = KeyringStore::new().delete(&key);
    }
}

#[test]
fn a_wrong_client_secret_fails_at_authorize_time() {
    let sb = sandbox();
    let env = Env::new();
    let mut args = base_args(&sb);
    args.extend([
        "--flow".into(),
        "client-secret".into(),
        "--client-secret-stdin".into(),
    ]);
    let (code, stdout, stderr) = spawn(&env, &args, Some("wrong-secret-value~123\n"), &[]).finish();
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("AADSTS7000215") && stderr.contains("Secret ID"),
        "{stderr}"
    );
    assert_nowhere(
        "wrong-secret-value~123",
        "client secret",
        &[("stdout", &stdout), ("stderr", &stderr)],
    );
    assert!(
        !env.profile_file("default").exists(),
        "nothing saved on failure"
    );
}

#[test]
fn denied_consent_exits_3_with_the_admin_consent_url() {
    let sb = sandbox();
    sb.faults().deny_consent(true);
    let env = Env::new();
    let mut args = base_args(&sb);
    args.push("--no-browser".into());
    let run = spawn(&env, &args, None, &[]);
    let url = run.line(|l| l.starts_with("http"));
    let outcome = sb.browser_blocking(&url).expect("browser played");
    assert!(outcome.body.contains("adminconsent"), "{}", outcome.body);
    let (code, _, stderr) = run.finish();
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("AADSTS65001"), "{stderr}");
    assert!(stderr.contains("/v2.0/adminconsent?client_id="), "{stderr}");
    assert_eq!(token_requests(&sb, "authorization_code"), 0);
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    env.cmd()
        .args(["authorize", "--client-id", "x"])
        .assert()
        .code(2);
    env.cmd()
        .args([
            "authorize",
            "--tenant",
            "t",
            "--client-id",
            "x",
            "--login-url",
            "http://login.example.com",
        ])
        .assert()
        .code(2);
    env.cmd()
        .args([
            "authorize",
            "--tenant",
            "t",
            "--client-id",
            "x",
            "--flow",
            "client-secret",
        ])
        .assert()
        .code(2);
}

// ---- Session, in process: tokens from a browser sign-in kept in a MemoryStore ----

/// Sign in through the library (the sandbox plays the browser) and keep the
/// refresh token in `store`; the profile is returned, not saved.
async fn signed_in_profile(sb: &Sandbox, store: &MemoryStore) -> Profile {
    let c = sb.config();
    let authority = Authority::new(
        url::Url::parse(&sb.url()).unwrap(),
        &c.tenant_id,
        &c.client_id,
        Cloud::Global.endpoints().scope,
    );
    let (tx, rx) = mpsc::channel();
    let opts = BrowserOptions {
        port: 0,
        open_browser: false,
        timeout: Duration::from_secs(30),
        profile: "default".into(),
        url_sink: Some(tx),
    };
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let flow =
        tokio::spawn(async move { auth::sign_in_with_browser(&authority, http, &opts).await });
    let url = tokio::task::spawn_blocking(move || rx.recv().unwrap())
        .await
        .unwrap();
    sb.browser(&url).await.unwrap();
    let signed = flow.await.unwrap().unwrap();
    let key = "default-0123456789abcdef";
    Credentials {
        refresh_token: Some(signed.refresh_token),
        client_secret: None,
    }
    .save(store, key)
    .unwrap();
    let mut p = Profile::new(
        "default",
        Connection {
            tenant_id: c.tenant_id.clone(),
            client_id: c.client_id.clone(),
            cloud: Cloud::Global,
            flow: Flow::Browser,
            login_url: sb.url(),
            api_url: sb.url(),
            scope: Cloud::Global.endpoints().scope.into(),
        },
    );
    p.credential_key = Some(key.into());
    p
}

fn stored_refresh(store: &MemoryStore, p: &Profile) -> String {
    Credentials::load(store, p.credential_key.as_deref().unwrap())
        .unwrap()
        .unwrap()
        .refresh_token
        .unwrap()
}

async fn alerts_status(sb: &Sandbox, token: &str) -> u16 {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{}/api/alerts?$top=1", sb.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[test]
fn session_caches_then_refreshes_after_a_401_once_and_saves_the_rotated_token() {
    let sb = sandbox();
    block_on(async {
        let store = Arc::new(MemoryStore::default());
        let profile = signed_in_profile(&sb, &store).await;
        let first_rt = stored_refresh(&store, &profile);
        let session = Arc::new(
            Session::for_profile_with(&profile, store.clone(), http(), None)
                .await
                .unwrap(),
        );
        let t1 = session.access_token().await.unwrap();
        assert_eq!(
            session.access_token().await.unwrap(),
            t1,
            "cached while fresh"
        );
        assert_eq!(token_requests(&sb, "refresh_token"), 1);
        assert_eq!(alerts_status(&sb, &t1).await, 200);
        let rotated = stored_refresh(&store, &profile);
        assert_ne!(rotated, first_rt, "the rotated refresh token is saved");

        sb.faults().expire_access_tokens();
        assert_eq!(alerts_status(&sb, &t1).await, 401);
        // Four callers rejected with the same token share one refresh.
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let s = session.clone();
            let t = t1.clone();
            tasks.push(tokio::spawn(async move {
                s.refresh_after_rejection(&t).await.unwrap()
            }));
        }
        let mut fresh = Vec::new();
        for t in tasks {
            fresh.push(t.await.unwrap());
        }
        assert!(fresh.iter().all(|t| *t == fresh[0] && *t != t1));
        assert_eq!(token_requests(&sb, "refresh_token"), 2);
        assert_eq!(alerts_status(&sb, &fresh[0]).await, 200);
        assert_ne!(stored_refresh(&store, &profile), rotated);
    });
}

#[test]
fn session_refreshes_before_expiry() {
    let sb = Sandbox::spawn(SandboxConfig {
        // Short-lived tokens are renewed a quarter of their lifetime before
        // they expire, not on every call.
        access_token_lifetime: Duration::from_secs(2),
        ..SandboxConfig::default()
    })
    .unwrap();
    block_on(async {
        let store = Arc::new(MemoryStore::default());
        let profile = signed_in_profile(&sb, &store).await;
        let session = Session::for_profile_with(&profile, store.clone(), http(), None)
            .await
            .unwrap();
        let a = session.access_token().await.unwrap();
        let b = session.access_token().await.unwrap();
        assert_eq!(a, b, "a fresh token is reused");
        assert_eq!(token_requests(&sb, "refresh_token"), 1);
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let c = session.access_token().await.unwrap();
        assert_ne!(a, c, "renewed before it expires");
        assert_eq!(token_requests(&sb, "refresh_token"), 2);
    });
}

#[test]
fn revoked_refresh_token_says_run_authorize_exit_3() {
    let sb = sandbox();
    block_on(async {
        let store = Arc::new(MemoryStore::default());
        let profile = signed_in_profile(&sb, &store).await;
        sb.faults().revoke_refresh_tokens();
        let session = Session::for_profile_with(&profile, store.clone(), http(), None)
            .await
            .unwrap();
        let e = session.access_token().await.unwrap_err();
        assert_eq!(e.exit(), Exit::NotAuthorized);
        assert_eq!(e.entra_code(), Some(700082));
        assert!(
            e.to_string()
                .contains("defender-ingest --profile default authorize"),
            "{e}"
        );
    });
}

#[test]
fn missing_credentials_say_run_authorize_exit_3() {
    let sb = sandbox();
    block_on(async {
        let store = Arc::new(MemoryStore::default());
        let mut profile = signed_in_profile(&sb, &store).await;
        store
            .delete(profile.credential_key.as_deref().unwrap())
            .unwrap();
        let e = Session::for_profile_with(&profile, store.clone(), http(), None)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::NotAuthorized);
        assert!(e.to_string().contains("authorize"), "{e}");
        profile.connection.flow = Flow::ClientSecret;
        let e = Session::for_profile_with(&profile, store.clone(), http(), None)
            .await
            .unwrap_err();
        assert_eq!(e.exit(), Exit::NotAuthorized);
        assert!(
            e.to_string().contains("DEFENDER_INGEST_CLIENT_SECRET"),
            "{e}"
        );
    });
}

#[test]
fn sign_in_service_failures_are_retried_then_exit_5() {
    let sb = sandbox();
    block_on(async {
        let store = Arc::new(MemoryStore::default());
        let profile = signed_in_profile(&sb, &store).await;
        let session = Session::for_profile_with(&profile, store.clone(), http(), None)
            .await
            .unwrap();
        sb.faults().token_fail_next(1, 503);
        session.access_token().await.expect("one 503 is retried");
        sb.faults().token_fail_next(10, 503);
        let session = Session::for_profile_with(&profile, store.clone(), http(), None)
            .await
            .unwrap();
        let e = session.access_token().await.unwrap_err();
        assert_eq!(e.exit(), Exit::Unavailable, "{e}");
    });
}
