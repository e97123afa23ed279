//! The socket side of the sandbox: accept on 127.0.0.1, optionally wrap in
//! TLS, serve HTTP/1.1 with keep-alive through hyper, route each request, and
//! carry out the faults that live below HTTP (a reset connection, a body cut
//! off mid-way).

use std::convert::Infallible;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use super::Shared;

pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

/// Lets a handler act on the connection its request came in on.
#[derive(Clone)]
pub(crate) struct ConnCtl {
    fd: RawFd,
    kill: Arc<Notify>,
}

impl ConnCtl {
    /// Abort the connection with a TCP RST (SO_LINGER 0) and never answer.
    pub(crate) async fn reset(&self) -> Response<Body> {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: the fd belongs to the stream the connection task still owns;
        // the task only drops it after `kill` is notified below.
        unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const libc::linger as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        self.kill.notify_one();
        std::future::pending().await
    }
}

/// Accept connections until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, _peer)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let ctl = ConnCtl {
            fd: stream.as_raw_fd(),
            kill: Arc::new(Notify::new()),
        };
        let shared = shared.clone();
        let tls = tls.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let kill = ctl.kill.clone();
            let svc_ctl = ctl.clone();
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                let ctl = svc_ctl.clone();
                async move { Ok::<_, Infallible>(route(shared, req, ctl).await) }
            });
            let conn = async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(stream).await {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(s), service)
                                .await;
                        }
                    }
                    None => {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            };
            tokio::select! {
                _ = conn => {}
                _ = kill.notified() => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

async fn route(shared: Arc<Shared>, req: Request<Incoming>, ctl: ConnCtl) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        [""] => super::control::index(&shared),
        ["devicelogin"] => super::identity::device_login_page(&shared, req).await,
        ["_sandbox", ..] => super::control::handle(&shared, req).await,
        ["api", _] => super::api::handle(&shared, req, &ctl).await,
        [tenant, "oauth2", "v2.0", op] => {
            let (tenant, op) = (tenant.to_string(), op.to_string());
            super::identity::handle(&shared, &tenant, &op, req).await
        }
        _ => json(
            StatusCode::NOT_FOUND,
            &super::api::error_body("NotFound", "General Not Found error message."),
        ),
    }
}

pub(crate) fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

pub(crate) fn response(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let body: Bytes = body.into();
    let mut r = Response::new(full(body.clone()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
    h.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    r
}

pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    response(
        status,
        "application/json; charset=utf-8",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

pub(crate) fn html(status: StatusCode, body: String) -> Response<Body> {
    response(status, "text/html; charset=utf-8", body)
}

/// A response whose body is sent as `parts` arrive, without a Content-Length
/// (HTTP/1.1 chunked).
pub(crate) fn streamed(
    status: StatusCode,
    content_type: &str,
    parts: tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> Response<Body> {
    let frames = futures_util::stream::unfold(parts, |mut parts| async move {
        let part = parts.recv().await?;
        Some((Ok(Frame::data(Bytes::from(part))), parts))
    });
    let mut r = Response::new(StreamBody::new(frames).boxed());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
    r
}

/// The same response, but its body stops after half, with the full
/// Content-Length announced (or, `chunked`, without the last chunk), and the
/// connection is then closed.
pub(crate) fn truncated(
    status: StatusCode,
    content_type: &str,
    body: Bytes,
    chunked: bool,
) -> Response<Body> {
    let half = body.slice(..body.len() / 2);
    let len = body.len();
    // Let hyper flush the headers and the half before the body fails.
    let frames = futures_util::stream::unfold(Some(half), |half| async move {
        match half {
            Some(h) => Some((Ok(Frame::data(h)), None)),
            None => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "sandbox fault: body truncated",
                    )),
                    None,
                ))
            }
        }
    });
    let mut r = Response::new(StreamBody::new(frames).boxed());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
    if !chunked {
        h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    r
}

/// Read a request body (small forms only).
pub(crate) async fn read_body(req: Request<Incoming>) -> Bytes {
    let limited = http_body_util::Limited::new(req.into_body(), 1 << 20);
    match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    }
}

/// Decoded `application/x-www-form-urlencoded` pairs (also used for query strings).
pub(crate) fn form_pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

pub(crate) fn query_pairs(req: &Request<Incoming>) -> Vec<(String, String)> {
    form_pairs(req.uri().query().unwrap_or("").as_bytes())
}
