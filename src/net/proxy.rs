//! Which proxy a request goes through, decided once per process.
//!
//! `--proxy URL` sends everything through URL (`--proxy ""` turns proxies off,
//! as with curl). Otherwise the environment decides, as curl and Go do:
//! `HTTPS_PROXY` for https:// URLs and `HTTP_PROXY` for http:// ones (upper
//! case first, then lower case, then `ALL_PROXY`), except for hosts listed in
//! `NO_PROXY`. Loopback (`localhost`, 127.0.0.0/8, `::1`) is never sent to an
//! environment proxy, whatever `NO_PROXY` says: the sandbox and the browser
//! redirect live there, and a corporate proxy cannot reach this host's loopback.
//! reqwest 0.12 on its own would send 127.0.0.1 through `HTTPS_PROXY` unless
//! `NO_PROXY` names it, so the client is built with `.no_proxy()` and the
//! proxies set here instead.
//!
//! Proxy URLs may carry credentials (`http://user:pass@proxy:3128`); they are
//! sent as `Proxy-Authorization: Basic` on CONNECT and never shown: every
//! message and log line uses [`redact`].

use url::Url;

use super::NetError;

/// Hosts that never go to an environment proxy.
const ALWAYS_DIRECT: &str = "localhost,127.0.0.0/8,::1";

/// The proxy configuration of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyPlan {
    /// `--proxy ""`: connect directly, ignore the environment.
    Off,
    /// `--proxy URL`: every request goes through it.
    Explicit(Url),
    /// From `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` (either case).
    Environment {
        https: Option<(String, Url)>,
        http: Option<(String, Url)>,
        no_proxy: String,
    },
}

impl ProxyPlan {
    /// `--proxy` when given, else the environment.
    pub fn decide(explicit: Option<&str>) -> Result<ProxyPlan, NetError> {
        if let Some(p) = explicit {
            if p.trim().is_empty() {
                return Ok(ProxyPlan::Off);
            }
            return Ok(ProxyPlan::Explicit(parse("--proxy", p)?));
        }
        let https = env_proxy(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"])?;
        let http = env_proxy(&["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"])?;
        let listed = first_env(&["NO_PROXY", "no_proxy"])
            .map(|(_, v)| v)
            .unwrap_or_default();
        let no_proxy = if listed.trim().is_empty() {
            ALWAYS_DIRECT.to_string()
        } else {
            format!("{listed},{ALWAYS_DIRECT}")
        };
        Ok(ProxyPlan::Environment {
            https,
            http,
            no_proxy,
        })
    }

    /// The reqwest proxies that carry this plan out (the client is built with
    /// `.no_proxy()` first, so nothing else applies).
    pub fn proxies(&self) -> Result<Vec<reqwest::Proxy>, NetError> {
        let bad = |what: &str, u: &Url, e: reqwest::Error| NetError::Proxy {
            what: what.to_string(),
            url: redact(u.as_str()),
            detail: e.to_string(),
        };
        match self {
            ProxyPlan::Off => Ok(Vec::new()),
            ProxyPlan::Explicit(u) => Ok(vec![
                reqwest::Proxy::all(u.as_str()).map_err(|e| bad("--proxy", u, e))?,
            ]),
            ProxyPlan::Environment {
                https,
                http,
                no_proxy,
            } => {
                let mut out = Vec::new();
                let no = || reqwest::NoProxy::from_string(no_proxy);
                if let Some((var, u)) = https {
                    out.push(
                        reqwest::Proxy::https(u.as_str())
                            .map_err(|e| bad(var, u, e))?
                            .no_proxy(no()),
                    );
                }
                if let Some((var, u)) = http {
                    out.push(
                        reqwest::Proxy::http(u.as_str())
                            .map_err(|e| bad(var, u, e))?
                            .no_proxy(no()),
                    );
                }
                Ok(out)
            }
        }
    }

    /// The proxy (redacted) a request to `target` goes through, if any.
    pub fn for_target(&self, target: &Url) -> Option<String> {
        match self {
            ProxyPlan::Off => None,
            ProxyPlan::Explicit(u) => Some(redact(u.as_str())),
            ProxyPlan::Environment {
                https,
                http,
                no_proxy,
            } => {
                let host = target.host_str()?;
                if super::is_loopback(target) || no_proxy_matches(no_proxy, host) {
                    return None;
                }
                let chosen = if target.scheme() == "https" {
                    https
                } else {
                    http
                };
                chosen.as_ref().map(|(_, u)| redact(u.as_str()))
            }
        }
    }
}

fn first_env(names: &[&str]) -> Option<(String, String)> {
    names.iter().find_map(|n| {
        std::env::var(n)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .map(|v| (n.to_string(), v))
    })
}

fn env_proxy(names: &[&str]) -> Result<Option<(String, Url)>, NetError> {
    match first_env(names) {
        Some((var, v)) => Ok(Some((var.clone(), parse(&var, &v)?))),
        None => Ok(None),
    }
}

/// A proxy URL; `host:port` alone means `http://host:port`, as with curl.
fn parse(what: &str, s: &str) -> Result<Url, NetError> {
    let s = s.trim();
    let with_scheme = if s.contains("://") {
        s.to_string()
    } else {
        format!("http://{s}")
    };
    let err = |detail: &str| NetError::Proxy {
        what: what.to_string(),
        url: redact(&with_scheme),
        detail: detail.to_string(),
    };
    let u = Url::parse(&with_scheme).map_err(|e| err(&e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(err("only http:// and https:// proxies are supported"));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(err("it has no host"));
    }
    Ok(u)
}

/// curl's NO_PROXY rules, for messages only (reqwest applies the real ones):
/// `*`, a domain and its subdomains (leading dot optional), an IP or a CIDR.
fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = host.parse::<std::net::IpAddr>().ok();
    list.split(',').map(str::trim).any(|entry| {
        if entry == "*" {
            return true;
        }
        if let Some(ip) = ip {
            return match entry.split_once('/') {
                Some((net, bits)) => cidr_contains(net, bits, ip),
                None => entry.parse::<std::net::IpAddr>().ok() == Some(ip),
            };
        }
        let d = entry.trim_start_matches('.');
        !d.is_empty()
            && (host.eq_ignore_ascii_case(d)
                || host
                    .to_ascii_lowercase()
                    .ends_with(&format!(".{}", d.to_ascii_lowercase())))
    })
}

fn cidr_contains(net: &str, bits: &str, ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr::{V4, V6};
    let Ok(bits) = bits.parse::<u32>() else {
        return false;
    };
    match (net.parse::<std::net::IpAddr>(), ip) {
        (Ok(V4(n)), V4(a)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (Ok(V6(n)), V6(a)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// A URL with its password (and the user name's presence kept) hidden.
pub fn redact(s: &str) -> String {
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

    fn env_plan(https: &str, no: &str) -> ProxyPlan {
        ProxyPlan::Environment {
            https: Some(("HTTPS_PROXY".into(), Url::parse(https).unwrap())),
            http: None,
            no_proxy: format!("{no},{ALWAYS_DIRECT}"),
        }
    }

    #[test]
    fn loopback_and_no_proxy_hosts_go_direct() {
        let p = env_plan(
            "http://u:secret@proxy.corp:3128",
            "internal.corp,10.0.0.0/8",
        );
        let via = |u: &str| p.for_target(&Url::parse(u).unwrap());
        assert_eq!(via("https://127.0.0.1:8400/x"), None);
        assert_eq!(via("https://127.5.0.1/x"), None);
        assert_eq!(via("https://localhost:9/x"), None);
        assert_eq!(via("https://[::1]:9/x"), None);
        assert_eq!(via("https://api.internal.corp/x"), None);
        assert_eq!(via("https://10.2.3.4/x"), None);
        assert_eq!(via("http://api.securitycenter.microsoft.com/x"), None);
        let shown = via("https://api.securitycenter.microsoft.com/x").unwrap();
        assert!(shown.contains("proxy.corp:3128"), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(!no_proxy_matches("corp", "notcorp"));
    }

    #[test]
    fn explicit_proxy_takes_everything_and_empty_turns_it_off() {
        let p = ProxyPlan::decide(Some("proxy.corp:8080")).unwrap();
        assert_eq!(
            p.for_target(&Url::parse("https://127.0.0.1/").unwrap()),
            Some("http://proxy.corp:8080/".into())
        );
        assert_eq!(ProxyPlan::decide(Some("")).unwrap(), ProxyPlan::Off);
    }

    #[test]
    fn bad_proxy_urls_are_refused_without_showing_the_password() {
        let e = ProxyPlan::decide(Some("socks5://u:hunter2@p:1080")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("--proxy"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }
}
