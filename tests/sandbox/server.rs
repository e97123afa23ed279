//! The sandbox as a server: spawned on its own runtime, serving HTTPS with its
//! own CA, stopping when dropped, and building the same tenant from the same
//! seed.

use defender_ingest::sandbox::{Sandbox, SandboxConfig};

use super::{SCOPE, app_listener, authorize_url};

#[test]
fn spawned_sandbox_serves_https_with_its_own_ca() {
    let sb = Sandbox::spawn(SandboxConfig {
        tls: true,
        ..SandboxConfig::default()
    })
    .unwrap();
    assert!(sb.url().starts_with("https://localhost:"));
    let pem = sb.ca_pem().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let trusted = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
            .no_proxy()
            .build()
            .unwrap();
        let r = trusted.get(sb.url()).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let untrusted = reqwest::Client::builder().no_proxy().build().unwrap();
        assert!(untrusted.get(sb.url()).send().await.is_err());
    });
    let (redirect, listener) = rt.block_on(app_listener());
    let out = sb
        .browser_blocking(&authorize_url(&sb, SCOPE, &"q".repeat(43), &redirect))
        .unwrap();
    assert_eq!(out.status, 200);
    rt.block_on(listener).unwrap();
    let url = sb.url();
    drop(sb);
    let r = rt.block_on(
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send(),
    );
    assert!(r.is_err(), "dropping the sandbox stops it");
}

#[test]
fn the_same_seed_gives_the_same_tenant() {
    let a = Sandbox::spawn(SandboxConfig::default()).unwrap();
    let b = Sandbox::spawn(SandboxConfig::default()).unwrap();
    let c = Sandbox::spawn(SandboxConfig {
        seed: 2,
        ..SandboxConfig::default()
    })
    .unwrap();
    let titles = |s: &Sandbox| {
        s.tenant()
            .alerts()
            .iter()
            .map(|a| a["title"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(titles(&a), titles(&b));
    assert_ne!(titles(&a), titles(&c));
    a.tenant().tick();
    assert!(a.tenant().alerts().len() > 200);
}
