//! `authorize --flow device-code` through the binary: Microsoft's message
//! (URL and user code) on stderr, polling until the sandbox approves, the
//! refresh token stored in the keyring and nowhere else; a declined sign-in
//! exits 3 and saves nothing.

use std::sync::Arc;
use std::time::Duration;

use defender_ingest::cli::Flow;
use defender_ingest::secrets::{Credentials, KeyringStore, SecretStore};
use defender_ingest::state::StateStore;

use crate::common::Env;

use super::{
    assert_nowhere, assert_session_works, base_args, keyring_tests, sandbox, spawn, state_files,
};

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
