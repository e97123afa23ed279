//! `Session`, in process: tokens from a browser sign-in kept in a
//! `MemoryStore`. Access tokens are cached while fresh and refreshed before
//! expiry or once after a 401 (shared by concurrent callers), the rotated
//! refresh token is saved; revoked or missing credentials say "run authorize"
//! with exit 3, and a failing sign-in service is retried, then exit 5.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use defender_ingest::auth::{self, Authority, BrowserOptions, Session};
use defender_ingest::cli::Flow;
use defender_ingest::cloud::Cloud;
use defender_ingest::exit::Exit;
use defender_ingest::sandbox::{Sandbox, SandboxConfig};
use defender_ingest::secrets::{Credentials, MemoryStore, SecretStore};
use defender_ingest::state::{Connection, Profile};

use super::{block_on, sandbox, token_requests};

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
