//! `authorize --flow browser` (the default) through the binary: the loopback
//! listener on 127.0.0.1 only, forged callbacks refused, the refresh token
//! stored in the keyring and nowhere else, and denied consent pointing at the
//! admin consent URL with exit 3.

use std::sync::Arc;

use defender_ingest::secrets::{Credentials, KeyringStore, SecretStore};
use defender_ingest::state::StateStore;

use crate::common::Env;

use super::{
    assert_nowhere, assert_session_works, base_args, keyring_tests, sandbox, spawn, state_files,
    token_requests,
};

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
