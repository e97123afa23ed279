//! `sandbox`: serve the built-in sandbox tenant in the foreground, evolving its
//! data every few seconds, and print how to point `defender-ingest` at it, so a
//! user can wire their SIEM pipeline before they have a tenant.

use std::time::Duration;

use anyhow::Context as _;

use crate::cli::SandboxArgs;
use crate::sandbox::{Sandbox, SandboxConfig};
use crate::{Context, Exit};

pub async fn run(_ctx: &Context, args: &SandboxArgs) -> anyhow::Result<Exit> {
    let cfg = SandboxConfig {
        port: args.port,
        alerts: args.alerts,
        seed: args.seed,
        tls: args.tls_ca_out.is_some(),
        evolve_every: Some(Duration::from_secs(10)),
        chunked_bodies: args.chunked,
        ..SandboxConfig::default()
    };
    let sb = Sandbox::start(cfg).await.with_context(|| match args.port {
        Some(p) => format!("cannot serve the sandbox on 127.0.0.1:{p}"),
        None => "cannot serve the sandbox on 127.0.0.1".to_string(),
    })?;
    let mut ca = String::new();
    if let (Some(path), Some(pem)) = (&args.tls_ca_out, sb.ca_pem()) {
        std::fs::write(path, pem.as_bytes())
            .with_context(|| format!("cannot write the sandbox CA to {}", path.display()))?;
        ca = format!(" --ca-bundle {}", shell_word(&path.display().to_string()));
    }
    eprintln!("{}", instructions(&sb, &ca));
    wait_for_stop().await;
    eprintln!("sandbox: stopping");
    drop(sb);
    Ok(Exit::Ok)
}

fn shell_word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:=".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn instructions(sb: &Sandbox, ca: &str) -> String {
    let c = sb.config();
    let url = sb.url();
    let common = format!(
        "--tenant {} --client-id {} --login-url {url} --api-url {url}",
        c.tenant_id, c.client_id
    );
    format!(
        "\
defender-ingest sandbox tenant serving at {url}
  tenant id:      {tid} (also {dom})
  client id:      {cid}
  client secret:  {secret}   (a fake one, for --flow client-secret)
  device sign-in: {url}/devicelogin
  data: {alerts} alerts, {inv} investigations, {recs} recommendations; new and updated alerts every 10 s

Authorize a profile against it (the sandbox consents for you):
  defender-ingest -p sandbox{ca} authorize {common}
  defender-ingest -p sandbox{ca} authorize {common} --no-browser      # open the printed URL yourself
  defender-ingest -p sandbox{ca} authorize {common} --flow device-code
  printf %s {secret} | defender-ingest -p sandbox{ca} authorize {common} --flow client-secret --client-secret-stdin

Then:
  defender-ingest -p sandbox{ca} test
  defender-ingest -p sandbox enable
  defender-ingest -p sandbox{ca} pull --output sandbox.jsonl

Faults for testing your pipeline, e.g.:
  curl -X POST '{url}/_sandbox/faults/throttle?n=3&retry_after=2'
  curl -X POST '{url}/_sandbox/tick'

Stop with Ctrl-C.",
        tid = c.tenant_id,
        dom = c.tenant_domain,
        cid = c.client_id,
        secret = c.client_secret,
        alerts = c.alerts,
        inv = c.investigations,
        recs = c.recommendations,
    )
}

async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
