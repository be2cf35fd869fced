//! `GET /` and `GET /dashboard.js`: the dashboard, one page and its script, no
//! outside resources; it asks for the token and calls the API from the browser. Text
//! from modules is set with `textContent` only.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// What the dashboard may load: its own script and the API, nothing from outside, no
/// inline script (so an injected handler attribute could not run either).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The page.
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", include_str!("dashboard.html"))
}

/// The page's script.
pub async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("dashboard.js"),
    )
}
