//! The browser sign-in: authorization code + PKCE (S256), redirected to a
//! one-shot listener on 127.0.0.1.
//!
//! The listener binds the IPv4 loopback address only, on any free port unless
//! `--port` asks for one, and sends `http://localhost:{port}` as the redirect URI
//! (register `http://localhost` under "Mobile and desktop applications"; Entra ID
//! ignores the port of loopback redirect URIs). It answers `/` only (anything
//! else is 404), checks `state` before it looks at `code` (a forged or replayed
//! callback gets a 400 page and is never redeemed, and the wait goes on), turns
//! the provider's `error=` into advice, and redeems the code while the browser
//! waits, so the page it shows tells the truth. Every response closes the
//! connection.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use oauth2::{AuthorizationCode, CsrfToken, PkceCodeChallenge, RedirectUrl};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::entra_errors::{EntraErrorResponse, Situation, Stage, explain};
use super::oauth::{Authority, SignInHttp, Token, redirect_uri_for_port, request_error};
use super::{AuthError, SignedIn};

/// How to run the browser flow.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// Loopback port; 0 for any free one.
    pub port: u16,
    /// Launch the system browser (the URL is printed on stderr either way).
    pub open_browser: bool,
    pub timeout: Duration,
    /// For messages ("run `defender-ingest --profile {profile} authorize`").
    pub profile: String,
}

/// What the listener hands the flow: a callback whose `state` matched.
enum Callback {
    Code(String),
    Refused(EntraErrorResponse),
}

struct Delivery {
    callback: Callback,
    /// The page to show, once the flow knows how the sign-in ended.
    page: oneshot::Sender<Page>,
}

#[derive(Debug)]
struct Page {
    status: StatusCode,
    title: &'static str,
    body: String,
}

/// Run the browser flow to the end: a refresh token to store.
pub async fn sign_in_with_browser(
    authority: &Authority,
    http: reqwest::Client,
    opts: &BrowserOptions,
) -> Result<SignedIn, AuthError> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, opts.port)))
        .await
        .map_err(|source| AuthError::Listener {
            port: opts.port,
            source,
        })?;
    let port = listener
        .local_addr()
        .map_err(|source| AuthError::Listener {
            port: opts.port,
            source,
        })?
        .port();
    let redirect_uri = redirect_uri_for_port(port);
    let client = authority
        .client(None)?
        .set_redirect_uri(RedirectUrl::new(redirect_uri.clone()).expect("a valid URL"));
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(authority.delegated_scopes())
        .set_pkce_challenge(challenge)
        .url();

    eprintln!(
        "Sign in with an account that can consent for tenant {} in your browser.",
        authority.tenant
    );
    if opts.open_browser {
        eprintln!("Opening the browser; if it does not open, visit this URL:");
    } else {
        eprintln!("Open this URL in a browser on this machine:");
    }
    eprintln!("{url}");
    eprintln!(
        "Waiting for the sign-in (up to {} s)...",
        opts.timeout.as_secs()
    );
    if opts.open_browser {
        let u = url.to_string();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = webbrowser::open(&u) {
                tracing::info!("could not launch a browser: {e}");
            }
        });
    }

    let (tx, mut rx) = mpsc::channel::<Delivery>(4);
    let server = tokio::spawn(serve(listener, state.secret().clone(), tx));
    let situation = Situation {
        authority,
        profile: &opts.profile,
        stage: Stage::Authorize,
        redirect_uri: Some(&redirect_uri),
    };
    let signin_http = SignInHttp::new(http);
    let wait = async {
        let Some(delivery) = rx.recv().await else {
            return Err(AuthError::Other("the loopback listener stopped".into()));
        };
        let outcome = match delivery.callback {
            Callback::Refused(body) => Err(explain(&body, &situation)),
            Callback::Code(code) => client
                .exchange_code(AuthorizationCode::new(code))
                .set_pkce_verifier(verifier)
                .request_async(&signin_http)
                .await
                .map_err(|e| request_error(e, &situation))
                .and_then(|resp| {
                    Token::from_response(&resp).refresh.ok_or_else(|| {
                        AuthError::Protocol(
                            "Entra ID returned no refresh token (was offline_access granted?)"
                                .into(),
                        )
                    })
                }),
        };
        let page = match &outcome {
            Ok(_) => Page {
                status: StatusCode::OK,
                title: "Signed in",
                body: "defender-ingest is authorized. You can close this window and return to the terminal.".into(),
            },
            Err(e) => Page {
                status: StatusCode::OK,
                title: "Sign-in failed",
                body: format!("{e}\n\nReturn to the terminal for details."),
            },
        };
        let _ = delivery.page.send(page);
        outcome
    };
    let result = tokio::time::timeout(opts.timeout, wait).await;
    // Give the browser a moment to receive the page before the listener goes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.abort();
    match result {
        Ok(Ok(refresh_token)) => Ok(SignedIn { refresh_token }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(AuthError::Timeout {
            what: "browser",
            secs: opts.timeout.as_secs(),
        }),
    }
}

/// Accept connections until the flow is done (it aborts this task).
async fn serve(listener: TcpListener, state: String, tx: mpsc::Sender<Delivery>) {
    let consumed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        let tx = tx.clone();
        let consumed = consumed.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                handle(req, state.clone(), tx.clone(), consumed.clone())
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    state: String,
    tx: mpsc::Sender<Delivery>,
    consumed: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != hyper::Method::GET || req.uri().path() != "/" {
        return Ok(render(Page {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            body: "Nothing here.".into(),
        }));
    }
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    // The state is checked before anything else in the callback is looked at.
    let matches = get("state").is_some_and(|s| constant_time_eq(s.as_bytes(), state.as_bytes()));
    if !matches || consumed.swap(true, std::sync::atomic::Ordering::SeqCst) {
        tracing::warn!("refused a sign-in callback that does not belong to this sign-in");
        return Ok(render(Page {
            status: StatusCode::BAD_REQUEST,
            title: "Not this sign-in",
            body: "This response does not belong to the sign-in in progress and was ignored."
                .into(),
        }));
    }
    let callback = if let Some(error) = get("error") {
        Callback::Refused(EntraErrorResponse::new(error, get("error_description")))
    } else if let Some(code) = get("code") {
        Callback::Code(code.to_string())
    } else {
        Callback::Refused(EntraErrorResponse::new(
            "invalid_request",
            Some("the redirect carried neither a code nor an error"),
        ))
    };
    let (page_tx, page_rx) = oneshot::channel();
    if tx
        .send(Delivery {
            callback,
            page: page_tx,
        })
        .await
        .is_err()
    {
        return Ok(render(Page {
            status: StatusCode::GONE,
            title: "Sign-in over",
            body: "The sign-in has already ended; return to the terminal.".into(),
        }));
    }
    let page = page_rx.await.unwrap_or(Page {
        status: StatusCode::OK,
        title: "Sign-in over",
        body: "Return to the terminal.".into(),
    });
    Ok(render(page))
}

fn render(page: Page) -> Response<Full<Bytes>> {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>defender-ingest: {t}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;line-height:1.5}}\
         pre{{white-space:pre-wrap}}</style></head><body><h1>{t}</h1><pre>{b}</pre></body></html>",
        t = page.title,
        b = escape_html(&page.body)
    );
    Response::builder()
        .status(page.status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("connection", "close")
        .body(Full::new(Bytes::from(html)))
        .expect("static headers")
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }

    #[test]
    fn state_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
