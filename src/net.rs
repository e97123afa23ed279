//! The one HTTP client everything uses, and the rules for the URLs it may call.
//!
//! Production endpoints are HTTPS; plain `http://` is allowed only to loopback,
//! where the sandbox lives. Trust is the platform's store (rustls with the
//! native roots, so a CA that IT pushed to the OS works) plus every PEM bundle
//! in `SSL_CERT_FILE` and `--ca-bundle`. Proxies are decided in [`proxy`].
//! Redirects are never followed (a token endpoint that redirects is not to be
//! trusted with a secret). Timeouts: `--connect-timeout` for TCP + TLS (and the
//! proxy's CONNECT), `--request-timeout` for one whole request, body included.

pub mod proxy;

use std::error::Error as StdError;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use url::Url;

use crate::cli::NetArgs;
use crate::exit::{Exit, UsageError};

pub use proxy::ProxyPlan;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot use the CA bundle {path} ({origin}): {detail}")]
    CaBundle {
        path: PathBuf,
        origin: &'static str,
        detail: String,
    },
    #[error("invalid proxy in {what} ({url}): {detail}")]
    Proxy {
        what: String,
        url: String,
        detail: String,
    },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl NetError {
    pub fn exit(&self) -> Exit {
        match self {
            NetError::CaBundle { .. } | NetError::Proxy { .. } => Exit::Usage,
            NetError::Client(_) => Exit::Error,
        }
    }
}

/// A CA bundle to trust, and where it was named (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBundle {
    pub path: PathBuf,
    /// `SSL_CERT_FILE` or `--ca-bundle`.
    pub origin: &'static str,
}

/// How to build the client.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Trusted in addition to the platform's store.
    pub ca_bundles: Vec<CaBundle>,
    /// `--proxy`: `Some("")` turns proxies off; `None` uses the environment.
    pub proxy: Option<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Retries after the first attempt of an API request.
    pub max_retries: u32,
    /// The client's own call budget per minute (Microsoft's limit: 100).
    pub calls_per_minute: u32,
    /// Every URL this client will be given is plain `http://` (a loopback
    /// sandbox, say): the OS trust store is not loaded, which is most of a
    /// short command's start-up. Ignored when a proxy URL is `https://`.
    pub plain_http_only: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            ca_bundles: Vec::new(),
            proxy: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            max_retries: 5,
            calls_per_minute: 100,
            plain_http_only: false,
        }
    }
}

impl HttpOptions {
    /// The command line's network options plus `SSL_CERT_FILE` (both kinds of
    /// bundle are trusted when both are given).
    pub fn from_args(args: &NetArgs) -> Self {
        let mut ca_bundles = Vec::new();
        if let Some(p) = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
            ca_bundles.push(CaBundle {
                path: PathBuf::from(p),
                origin: "SSL_CERT_FILE",
            });
        }
        ca_bundles.extend(args.ca_bundle.iter().map(|p| CaBundle {
            path: p.clone(),
            origin: "--ca-bundle",
        }));
        HttpOptions {
            ca_bundles,
            proxy: args.proxy.clone(),
            connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
            request_timeout: Duration::from_secs(args.request_timeout.max(1)),
            max_retries: args.max_retries,
            calls_per_minute: args.calls_per_minute.max(1),
            plain_http_only: false,
        }
    }

    /// Trust the PEM bundle at `path` too (as `--ca-bundle` does).
    pub fn with_ca_bundle(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_bundles.push(CaBundle {
            path: path.into(),
            origin: "--ca-bundle",
        });
        self
    }
}

pub fn user_agent() -> String {
    format!("defender-ingest/{}", crate::VERSION)
}

/// The proxy plan of the last client built, for messages ([`proxy_for`]).
static PLAN: Mutex<Option<ProxyPlan>> = Mutex::new(None);

/// Build the shared client: redirects off, timeouts on, trust and proxies as configured.
pub fn client(opts: &HttpOptions) -> Result<reqwest::Client, NetError> {
    let mut b = reqwest::Client::builder()
        .user_agent(user_agent())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.request_timeout)
        .pool_idle_timeout(Duration::from_secs(30))
        // Proxies are ours to decide (loopback never goes to an env proxy).
        .no_proxy();
    for bundle in &opts.ca_bundles {
        for c in read_bundle(bundle)? {
            b = b.add_root_certificate(c);
        }
    }
    let plan = ProxyPlan::decide(opts.proxy.as_deref())?;
    for p in plan.proxies()? {
        b = b.proxy(p);
    }
    let tls_proxy = match &plan {
        ProxyPlan::Off => false,
        ProxyPlan::Explicit(u) => u.scheme() != "http",
        ProxyPlan::Environment { https, http, .. } => [https, http]
            .into_iter()
            .flatten()
            .any(|(_, u)| u.scheme() != "http"),
    };
    if opts.plain_http_only && !tls_proxy {
        // No TLS handshake can happen, so no root is ever consulted.
        b = b.tls_built_in_native_certs(false);
    }
    match &plan {
        ProxyPlan::Off => tracing::debug!("proxies off (--proxy \"\")"),
        ProxyPlan::Explicit(u) => tracing::debug!(
            "every request goes through --proxy {}",
            proxy::redact(u.as_str())
        ),
        ProxyPlan::Environment {
            https,
            http,
            no_proxy,
        } => tracing::debug!(
            https = https.as_ref().map(|(v, u)| format!("{v}={}", proxy::redact(u.as_str()))),
            http = http.as_ref().map(|(v, u)| format!("{v}={}", proxy::redact(u.as_str()))),
            no_proxy = %no_proxy,
            "proxies from the environment"
        ),
    }
    *PLAN.lock().unwrap_or_else(|e| e.into_inner()) = Some(plan);
    b.build().map_err(|e| NetError::Client(e.to_string()))
}

fn read_bundle(bundle: &CaBundle) -> Result<Vec<reqwest::Certificate>, NetError> {
    let err = |detail: String| NetError::CaBundle {
        path: bundle.path.clone(),
        origin: bundle.origin,
        detail,
    };
    let pem = std::fs::read(&bundle.path).map_err(|e| err(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err(
            "it holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(certs)
}

/// The proxy (password hidden) a request to `url` goes through, for messages.
pub fn proxy_for(url: &Url) -> Option<String> {
    PLAN.lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|p| p.for_target(url))
}

/// What a proxy said when it would not open a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyRefusal {
    /// 407: it wants credentials (none or wrong ones were sent). Not transient.
    AuthRequired,
    /// Another non-200 answer to CONNECT (a 403 policy block, a 502 upstream).
    Refused,
}

/// Whether `err` is a proxy refusing the CONNECT (hyper-util does not export
/// its tunnel error type, so this reads its message).
pub fn proxy_refusal(err: &(dyn StdError + 'static)) -> Option<ProxyRefusal> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        let text = e.to_string();
        if text.contains("proxy authorization required") {
            return Some(ProxyRefusal::AuthRequired);
        }
        if text.contains("tunnel error: unsuccessful") {
            return Some(ProxyRefusal::Refused);
        }
        cur = e.source();
    }
    None
}

/// What to do about a certificate the client refused (shared by the sign-in
/// and API errors).
pub const CA_ADVICE: &str = "If a TLS-inspecting proxy or a private CA sits in between, add its CA \
certificate with `--ca-bundle PATH` or `SSL_CERT_FILE=PATH` (a PEM bundle)";

/// Whether `url`'s host is loopback (127.0.0.0/8, `localhost`, `[::1]`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Parse a login or API base URL given by the user, refusing plain HTTP except to loopback.
pub fn parse_base_url(what: &str, s: &str) -> Result<Url, UsageError> {
    let url = Url::parse(s.trim())
        .map_err(|e| UsageError::new(format!("{what} `{s}` is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(UsageError::new(format!(
                "{what} `{}` uses plain http:// to a host that is not loopback; use https://",
                redact_url(s)
            )));
        }
        other => {
            return Err(UsageError::new(format!(
                "{what} `{s}` has scheme `{other}`; use https://"
            )));
        }
    }
    if url.host().is_none() {
        return Err(UsageError::new(format!("{what} `{s}` has no host")));
    }
    Ok(url)
}

/// A URL with any password replaced, for messages (proxy URLs carry credentials).
pub fn redact_url(s: &str) -> String {
    proxy::redact(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_only_to_loopback() {
        for ok in [
            "https://api.securitycenter.microsoft.com",
            "http://127.0.0.1:8400",
            "http://127.8.9.1",
            "http://localhost:1",
            "http://[::1]:9",
        ] {
            assert!(parse_base_url("--api-url", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "not a url",
        ] {
            assert!(parse_base_url("--api-url", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxy_passwords_are_redacted() {
        let shown = redact_url("http://user:hunter2@proxy.corp:3128");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("user"), "{shown}");
    }
}
