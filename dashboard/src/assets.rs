//! The pages: plain HTML, CSS and JavaScript compiled into the binary. No build
//! step, no framework, nothing fetched from the network at run time.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::Error;

/// `(name, content type, bytes)` of every asset.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/common.js"),
    ),
    (
        "list.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/list.js"),
    ),
    (
        "run.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/run.js"),
    ),
    (
        "trace.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/trace.js"),
    ),
    (
        "graph.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/graph.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../assets/favicon.svg"),
    ),
];

const LIST_PAGE: &str = include_str!("../assets/index.html");
const RUN_PAGE: &str = include_str!("../assets/run.html");

fn html(body: &'static str) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `GET /`: the runs list.
pub(crate) async fn list_page() -> Response {
    html(LIST_PAGE)
}

/// `GET /runs/{id}`: a run's page (it reads the id from its URL).
pub(crate) async fn run_page() -> Response {
    html(RUN_PAGE)
}

/// `GET /assets/{name}`.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => Error::NotFound(format!("no asset `{name}`")).into_response(),
    }
}
