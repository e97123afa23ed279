//! The Defender API (placeholder until it lands).

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::Shared;
use super::http::{self, Body, ConnCtl};

#[derive(Default)]
pub(crate) struct Throttle;

pub(crate) fn error_body(code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"error": {"code": code, "message": message, "target": super::jwt::guid()}})
}

pub(crate) async fn handle(
    _shared: &Shared,
    _req: Request<Incoming>,
    _ctl: &ConnCtl,
) -> Response<Body> {
    http::json(StatusCode::NOT_FOUND, &error_body("NotFound", "not yet"))
}
