//! The index page and the `/_sandbox/...` control endpoints (placeholder).

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::Shared;
use super::http::{self, Body};

pub(crate) fn index(shared: &Shared) -> Response<Body> {
    http::html(
        StatusCode::OK,
        format!(
            "<!doctype html><title>defender-ingest sandbox</title><h1>defender-ingest sandbox</h1><p>{}</p>",
            shared.base_url
        ),
    )
}

pub(crate) async fn handle(_shared: &Shared, _req: Request<Incoming>) -> Response<Body> {
    http::json(
        StatusCode::NOT_FOUND,
        &super::api::error_body("NotFound", "no such control"),
    )
}
