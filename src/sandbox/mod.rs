//! The sandbox tenant: a local Entra ID and Defender for Endpoint API that
//! behave as Microsoft documents them, served on loopback.
//!
//! No test machine, CI runner or first-time user can reach Microsoft, so every
//! test, `defender-ingest sandbox` and the demo run against this instead: the
//! identity endpoints (`{base}/{tenant}/oauth2/v2.0/...`), the three API
//! endpoints (`{base}/api/...`), deterministic data that moves like a real
//! tenant's ([`Tenant`]) and faults on demand ([`Faults`]).

mod alert_json;
mod api;
mod control;
mod data;
mod faults;
mod http;
mod identity;
mod jwt;
pub mod odata;
mod render;
mod scopes;
mod tls;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use data::Tenant;
pub use faults::Faults;
pub use tls::LeafCertificate;

/// How a sandbox tenant is set up.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// The tenant's id (a GUID); URLs accept it or [`SandboxConfig::tenant_domain`].
    pub tenant_id: String,
    pub tenant_domain: String,
    /// The one registered application.
    pub client_id: String,
    /// Its client secret, for the client-credentials grant.
    pub client_secret: String,
    /// Initial record counts.
    pub alerts: usize,
    pub investigations: usize,
    pub recommendations: usize,
    /// Seed of all synthetic data.
    pub seed: u64,
    /// Server clock = host clock + offset (may be negative).
    pub clock_offset: chrono::Duration,
    /// Serve HTTPS with a CA generated at start.
    pub tls: bool,
    /// With `tls`: the name the sandbox calls itself (its URL and the extra
    /// name in its certificate), e.g. `defender.proxy.test`, which only a test's
    /// proxy resolves. It still listens on 127.0.0.1.
    pub hostname: Option<String>,
    /// With `tls`: a valid leaf, or an expired / wrong-name one for error tests.
    pub certificate: LeafCertificate,
    /// Port on 127.0.0.1; `None` picks a free one.
    pub port: Option<u16>,
    /// Run [`Tenant::tick`] this often in the background.
    pub evolve_every: Option<Duration>,
    pub access_token_lifetime: Duration,
    /// Polling interval the device-code endpoint asks for.
    pub device_code_interval: Duration,
    /// Calls per minute per endpoint per app before 429 (Microsoft: 100); `None` is unlimited.
    pub rate_limit_per_minute: Option<u32>,
    /// Send API pages as they are rendered, chunked and without a
    /// Content-Length (as a streaming OData service may), instead of
    /// rendering each whole before its first byte.
    pub chunked_bodies: bool,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            tenant_id: "6f3e1c2a-0b7d-4e59-9a41-5c8d2e7f1b30".into(),
            tenant_domain: "sandbox.onmicrosoft.com".into(),
            client_id: "3b9f6a2e-5d41-4c8e-b7a0-2e6d9c1f4a85".into(),
            client_secret: "sandbox-client-secret".into(),
            alerts: 200,
            investigations: 20,
            recommendations: 40,
            seed: 1,
            clock_offset: chrono::Duration::zero(),
            tls: false,
            hostname: None,
            certificate: LeafCertificate::Valid,
            port: None,
            evolve_every: None,
            access_token_lifetime: Duration::from_secs(3600),
            device_code_interval: Duration::from_secs(1),
            rate_limit_per_minute: Some(100),
            chunked_bodies: false,
        }
    }
}

/// One request the sandbox answered (API and token endpoint).
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// Host clock when it arrived.
    pub at: Instant,
    /// Host clock when its answer was decided (later than `at` by any
    /// injected delay).
    pub answered: Instant,
    pub method: String,
    pub path: String,
    /// Decoded query pairs, e.g. `("$filter", "lastUpdateTime ge ...")`.
    pub query: Vec<(String, String)>,
    /// The status answered; 0 when the connection was reset instead.
    pub status: u16,
    /// For token requests, the `grant_type` sent.
    pub grant_type: Option<String>,
}

/// What the played browser saw at the end of a sign-in.
#[derive(Debug, Clone)]
pub struct BrowserOutcome {
    /// Where the authorize endpoint sent the browser (the app's redirect URI with code or error).
    pub redirected_to: String,
    /// The app listener's answer.
    pub status: u16,
    pub body: String,
}

/// State shared by every connection.
pub(crate) struct Shared {
    pub cfg: SandboxConfig,
    pub base_url: String,
    pub faults: Faults,
    pub tenant: Tenant,
    pub identity: identity::Identity,
    pub requests: Mutex<Vec<RequestRecord>>,
    pub throttle: api::Throttle,
}

impl Shared {
    pub(crate) fn record(&self, r: RequestRecord) {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r);
    }

    /// Whether `t` names this tenant (id or domain, case-insensitive).
    pub(crate) fn is_tenant(&self, t: &str) -> bool {
        t.eq_ignore_ascii_case(&self.cfg.tenant_id)
            || t.eq_ignore_ascii_case(&self.cfg.tenant_domain)
    }
}

/// A running sandbox; dropping it stops the server.
pub struct Sandbox {
    shared: Arc<Shared>,
    ca_pem: Option<String>,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sandbox {
    /// Start serving inside the current tokio runtime.
    pub async fn start(cfg: SandboxConfig) -> std::io::Result<Sandbox> {
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", cfg.port.unwrap_or(0)))?;
        std_listener.set_nonblocking(true)?;
        let port = std_listener.local_addr()?.port();
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let tls = if cfg.tls {
            Some(tls::generate(&cfg)?)
        } else {
            None
        };
        let base_url = match tls {
            Some(_) => format!(
                "https://{}:{port}",
                cfg.hostname.as_deref().unwrap_or("localhost")
            ),
            None => format!("http://127.0.0.1:{port}"),
        };
        let tenant = Tenant::generate(&cfg);
        let shared = Arc::new(Shared {
            identity: identity::Identity::new(),
            faults: Faults::default(),
            requests: Mutex::new(Vec::new()),
            throttle: api::Throttle::default(),
            tenant,
            base_url,
            cfg,
        });
        let (shutdown, rx) = watch::channel(false);
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        tokio::spawn(http::serve(
            listener,
            shared.clone(),
            tls.map(|t| t.acceptor),
            rx.clone(),
        ));
        if let Some(every) = shared.cfg.evolve_every {
            let tenant = shared.tenant.clone();
            let mut rx = rx;
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(every);
                interval.tick().await;
                loop {
                    tokio::select! {
                        _ = interval.tick() => tenant.tick(),
                        _ = rx.changed() => return,
                    }
                }
            });
        }
        Ok(Sandbox {
            shared,
            ca_pem,
            shutdown,
            thread: None,
        })
    }

    /// Start serving on a runtime of its own, on a background thread (for sync code and tests).
    pub fn spawn(cfg: SandboxConfig) -> std::io::Result<Sandbox> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sandbox".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    match Sandbox::start(cfg).await {
                        Ok(sb) => {
                            let mut stop = sb.shutdown.subscribe();
                            let _ = tx.send(Ok(sb));
                            while !*stop.borrow() {
                                if stop.changed().await.is_err() {
                                    break;
                                }
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                });
                rt.shutdown_timeout(Duration::from_millis(200));
            })?;
        let mut sb = rx
            .recv()
            .map_err(|_| std::io::Error::other("sandbox thread died"))??;
        sb.thread = Some(thread);
        Ok(sb)
    }

    /// `http://127.0.0.1:PORT` or `https://localhost:PORT` (or `https://{hostname}:PORT`):
    /// both the login and the API base.
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The CA to trust, when serving HTTPS.
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.shared.cfg
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults.clone()
    }

    pub fn tenant(&self) -> Tenant {
        self.shared.tenant.clone()
    }

    /// Every API and token request answered so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Approve a pending device-code sign-in, as the user would on `/devicelogin`.
    pub fn approve_device_code(&self, user_code: &str) -> bool {
        self.shared.identity.decide_device_code(user_code, true)
    }

    /// Decline a pending device-code sign-in.
    pub fn decline_device_code(&self, user_code: &str) -> bool {
        self.shared.identity.decide_device_code(user_code, false)
    }

    /// Play the user's browser: open `authorize_url` (the sandbox consents),
    /// follow its redirect to the app's loopback listener and return what that said.
    pub async fn browser(&self, authorize_url: &str) -> Result<BrowserOutcome, String> {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(Duration::from_secs(30));
        if let Some(pem) = &self.ca_pem {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
            b = b.add_root_certificate(cert);
        }
        let client = b.build().map_err(|e| e.to_string())?;
        let r = client
            .get(authorize_url)
            .send()
            .await
            .map_err(|e| format!("authorize request failed: {e}"))?;
        if !r.status().is_redirection() {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            return Err(format!("the authorize page answered {status}: {body}"));
        }
        let location = r
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or("the authorize redirect has no Location")?
            .to_string();
        let r = client
            .get(&location)
            .send()
            .await
            .map_err(|e| format!("the app's redirect listener did not answer: {e}"))?;
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        Ok(BrowserOutcome {
            redirected_to: location,
            status,
            body,
        })
    }

    /// [`Sandbox::browser`] for code without a runtime (runs on a thread of its own).
    pub fn browser_blocking(&self, authorize_url: &str) -> Result<BrowserOutcome, String> {
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(self.browser(authorize_url))
            })
            .join()
            .map_err(|_| "browser thread panicked".to_string())?
        })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
