//! What both benchmarks need from the sandbox besides the binary: an app-only
//! access token, fetched with `curl` the way the wire-limit runs fetch pages.

use std::process::Command;

use defender_ingest::sandbox::Sandbox;

/// `curl -s --fail ARGS`'s stdout; panics when curl fails.
pub fn curl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-s", "--fail"])
        .args(args)
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {args:?}");
    out.stdout
}

/// An access token for the Defender API from the sandbox's client-credentials grant.
pub fn access_token(sb: &Sandbox) -> String {
    let cfg = sb.config();
    let token_url = format!("{}/{}/oauth2/v2.0/token", sb.url(), cfg.tenant_id);
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope=https://api.securitycenter.microsoft.com/.default",
        cfg.client_id, cfg.client_secret
    );
    let v: serde_json::Value =
        serde_json::from_slice(&curl(&["-X", "POST", &token_url, "-d", &form]))
            .expect("token JSON");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}
