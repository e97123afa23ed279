//! HTTPS for the sandbox: a throwaway CA made at start and a leaf signed by it,
//! so the client's real TLS path (trust store plus `--ca-bundle`) is exercised
//! without any certificate on disk.
//!
//! The leaf names `localhost`, `127.0.0.1` and [`SandboxConfig::hostname`] (a
//! name only a test's proxy resolves). For error tests it can instead be
//! expired or issued for another name ([`LeafCertificate`]).

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::SandboxConfig;

/// Which leaf certificate the sandbox presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LeafCertificate {
    /// Valid now, for `localhost`, `127.0.0.1` and the configured hostname.
    #[default]
    Valid,
    /// The right names, but it expired on 2021-01-01.
    Expired,
    /// Valid now, but only for `wrong-name.invalid`.
    WrongName,
}

/// A CA (its PEM is what clients trust) and the server config signed by it.
pub(crate) struct Tls {
    pub ca_pem: String,
    pub acceptor: tokio_rustls::TlsAcceptor,
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(format!("sandbox TLS: {e}"))
}

pub(crate) fn generate(cfg: &SandboxConfig) -> std::io::Result<Tls> {
    let ca_key = KeyPair::generate().map_err(io_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(io_err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "defender-ingest sandbox CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).map_err(io_err)?;

    let names = match cfg.certificate {
        LeafCertificate::WrongName => vec!["wrong-name.invalid".to_string()],
        _ => {
            let mut n = vec!["localhost".to_string(), "127.0.0.1".to_string()];
            n.extend(cfg.hostname.clone());
            n
        }
    };
    let leaf_key = KeyPair::generate().map_err(io_err)?;
    let mut leaf_params = CertificateParams::new(names.clone()).map_err(io_err)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    if cfg.certificate == LeafCertificate::Expired {
        leaf_params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf_params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca, &ca_key)
        .map_err(io_err)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io_err)?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .map_err(io_err)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        ca_pem: ca.pem(),
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    })
}
