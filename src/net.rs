//! The one HTTP client everything uses, and the rules for the URLs it may call.
//!
//! Production endpoints are HTTPS; plain `http://` is allowed only to loopback,
//! where the sandbox lives. The platform trust store is used, plus
//! `SSL_CERT_FILE` / `--ca-bundle`; proxies come from the environment or
//! `--proxy`. Redirects are never followed (a token endpoint that redirects is
//! not to be trusted with a secret).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::cli::NetArgs;
use crate::exit::{Exit, UsageError};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot read the CA bundle {path}: {detail}")]
    CaBundle { path: PathBuf, detail: String },
    #[error("invalid proxy URL: {0}")]
    Proxy(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl NetError {
    pub fn exit(&self) -> Exit {
        match self {
            NetError::CaBundle { .. } | NetError::Proxy(_) => Exit::Usage,
            NetError::Client(_) => Exit::Error,
        }
    }
}

/// How to build the client.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub ca_bundles: Vec<PathBuf>,
    pub proxy: Option<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Retries after the first attempt of an API request.
    pub max_retries: u32,
    /// The client's own call budget per minute (Microsoft's limit: 100).
    pub calls_per_minute: u32,
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
        }
    }
}

impl HttpOptions {
    pub fn from_args(args: &NetArgs) -> Self {
        let mut ca_bundles = Vec::new();
        if let Some(p) = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()) {
            ca_bundles.push(PathBuf::from(p));
        }
        ca_bundles.extend(args.ca_bundle.clone());
        HttpOptions {
            ca_bundles,
            proxy: args.proxy.clone(),
            connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
            request_timeout: Duration::from_secs(args.request_timeout.max(1)),
            max_retries: args.max_retries,
            calls_per_minute: args.calls_per_minute.max(1),
        }
    }
}

pub fn user_agent() -> String {
    format!("defender-ingest/{}", crate::VERSION)
}

/// Build the shared client: redirects off, timeouts on, trust and proxies as configured.
pub fn client(opts: &HttpOptions) -> Result<reqwest::Client, NetError> {
    let mut b = reqwest::Client::builder()
        .user_agent(user_agent())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(opts.connect_timeout)
        .timeout(opts.request_timeout)
        .pool_idle_timeout(Duration::from_secs(30));
    for path in &opts.ca_bundles {
        let pem = std::fs::read(path).map_err(|e| NetError::CaBundle {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| NetError::CaBundle {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(NetError::CaBundle {
                path: path.clone(),
                detail: "no PEM certificates in it".into(),
            });
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let Some(p) = &opts.proxy {
        let proxy = reqwest::Proxy::all(p).map_err(|_| NetError::Proxy(redact_url(p)))?;
        b = b.proxy(proxy);
    }
    b.build().map_err(|e| NetError::Client(e.to_string()))
}

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
    match Url::parse(s) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable URL>".to_string(),
    }
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
