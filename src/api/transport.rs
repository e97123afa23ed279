//! Reading a failed request: which transport errors are worth retrying and
//! which (a certificate the host does not trust, a proxy that refuses us) only
//! a person can fix, with a message saying what to do.

use std::error::Error as StdError;

/// What went wrong below HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// The server's certificate was refused; `reason` says why.
    Certificate { reason: String },
    /// Worth another try: reset, timeout, refused connection, cut-off body.
    Transient(String),
}

/// Classify a reqwest error by walking its source chain.
pub fn classify(err: &reqwest::Error) -> Transport {
    if let Some(reason) = certificate_problem(err) {
        return Transport::Certificate { reason };
    }
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_body() || err.is_decode() {
        "the response body was cut off"
    } else {
        "the request failed"
    };
    Transport::Transient(format!("{what}: {}", chain(err)))
}

/// The error and its causes on one line, without the URL (which may carry a
/// `$filter` worth keeping out of repeated log lines; the caller names the endpoint).
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let text = match e.downcast_ref::<reqwest::Error>() {
            Some(r) => r.without_url_ref(),
            None => e.to_string(),
        };
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let s = self.to_string();
        match self.url() {
            Some(u) => s
                .replace(&format!(" ({u})"), "")
                .replace(u.as_str(), "<url>"),
            None => s,
        }
    }
}

/// Why the TLS handshake refused the server's certificate, if that is what happened.
pub fn certificate_problem(err: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return rustls_reason(r);
        }
        // io::Error::source() skips the error it wraps, and hyper-util wraps
        // tokio-rustls's io::Error in another one: look inside explicitly.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            let inner: &(dyn StdError + 'static) = inner;
            if let Some(r) = inner.downcast_ref::<rustls::Error>() {
                return rustls_reason(r);
            }
            cur = Some(inner);
            continue;
        }
        cur = e.source();
    }
    // Fallback on the text, for stacks that flatten the error.
    let text = chain(err).to_ascii_lowercase();
    if text.contains("invalid peer certificate") || text.contains("certificate verify failed") {
        return Some(format!("the certificate was refused ({})", chain(err)));
    }
    None
}

fn rustls_reason(e: &rustls::Error) -> Option<String> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(c) = e else {
        return None;
    };
    Some(
        match c {
            C::UnknownIssuer => {
                "its certificate is signed by an issuer this host does not trust (unknown issuer; \
                 a TLS-inspecting proxy or a private CA?)"
            }
            C::Expired | C::ExpiredContext { .. } => "its certificate has expired",
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "its certificate is not valid yet (is this host's clock right?)"
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "its certificate is not valid for this host name (name mismatch)"
            }
            C::Revoked => "its certificate has been revoked",
            C::BadSignature => "its certificate has a bad signature",
            _ => return Some(format!("its certificate was refused ({c:?})")),
        }
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_reasons_are_found_inside_io_errors() {
        let e = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ));
        let reason = certificate_problem(&e).unwrap();
        assert!(reason.contains("unknown issuer"), "{reason}");
        let e = std::io::Error::other(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Expired,
        ));
        assert!(certificate_problem(&e).unwrap().contains("expired"));
        // As hyper-util hands it over: an io::Error around tokio-rustls's io::Error.
        let e = std::io::Error::other(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName),
        ));
        assert!(certificate_problem(&e).unwrap().contains("name mismatch"));
        let e = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(certificate_problem(&e), None);
    }
}
