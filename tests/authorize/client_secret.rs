//! `authorize --flow client-secret` through the binary: the secret read from
//! stdin, checked against the token endpoint and stored in the keyring only;
//! `DEFENDER_INGEST_CLIENT_SECRET` instead of a keyring; a wrong secret
//! fails at authorize time with Entra's AADSTS code and saves nothing.

use std::sync::Arc;

use defender_ingest::auth::Session;
use defender_ingest::secrets::{Credentials, KeyringStore, MemoryStore, SecretStore};
use defender_ingest::state::StateStore;

use crate::common::Env;

use super::{
    assert_nowhere, assert_session_works, base_args, block_on, keyring_tests, sandbox, spawn,
    state_files, token_requests,
};

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
