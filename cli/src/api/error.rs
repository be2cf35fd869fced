//! API errors: `{"error": {"code", "message"}}` with a fitting status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::io::Write;

/// An error answered to a client.
#[derive(Debug)]
pub enum ApiError {
    /// 400
    BadRequest(String),
    /// 401, with no detail.
    Unauthorized,
    /// 404
    NotFound(String),
    /// 409
    Conflict(String),
    /// 403: the token lacks the scope the route needs.
    Forbidden {
        /// The token's name.
        token: String,
        /// The scope the route needs.
        scope: &'static str,
    },
    /// 413: something decoded from the request is over a cap.
    TooLarge {
        /// What is over the cap.
        what: &'static str,
        /// Its size in bytes.
        len: u64,
        /// The cap.
        max: u64,
        /// Where the cap is set.
        limit: &'static str,
    },
    /// 429 with Retry-After (whole seconds): the token is over its rate.
    RateLimited {
        /// The token's name.
        token: String,
        /// Seconds until a request would be let through.
        retry_after: u64,
    },
    /// 431: the request's head is over `--max-header-bytes`.
    HeadersTooLarge {
        /// Bytes of the head.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// 503 with Retry-After.
    Busy,
    /// 500 naming the task that panicked on a blocking thread (the panic's own text
    /// goes to stderr).
    Panicked(&'static str),
    /// 500; the message is logged, not sent.
    Internal(String),
    /// Any other status, with a fixed message (answers axum makes itself).
    Status(StatusCode),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut retry = None;
        let (status, code, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token".to_string(),
            ),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m),
            ApiError::Forbidden { token, scope } => (
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("token {token} lacks the scope {scope} this route needs"),
            ),
            ApiError::TooLarge {
                what,
                len,
                max,
                limit,
            } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                if what == "the run input" {
                    "input_too_large"
                } else {
                    "payload_too_large"
                },
                format!("{what} is {len} bytes, over the cap of {max} ({limit})"),
            ),
            ApiError::RateLimited { token, retry_after } => {
                retry = Some(retry_after);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("token {token} is over its request rate; retry in {retry_after} s"),
                )
            }
            ApiError::HeadersTooLarge { len, max } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
                format!(
                    "the request head is {len} bytes, over the cap of {max} (--max-header-bytes)"
                ),
            ),
            ApiError::Panicked(what) => {
                let _ = writeln!(std::io::stderr(), "tdev serve: {what} panicked");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("{what} failed: its worker thread panicked"),
                )
            }
            ApiError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many runs in progress; retry shortly".to_string(),
            ),
            ApiError::Status(s) => {
                let (code, message) = match s {
                    StatusCode::NOT_FOUND => ("not_found", "no such route"),
                    StatusCode::METHOD_NOT_ALLOWED => {
                        ("method_not_allowed", "this route does not take that method")
                    }
                    StatusCode::PAYLOAD_TOO_LARGE => (
                        "payload_too_large",
                        "the request body is over the server's cap",
                    ),
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => (
                        "headers_too_large",
                        "the request's headers are over the server's caps",
                    ),
                    StatusCode::REQUEST_TIMEOUT => (
                        "request_timeout",
                        "the request did not arrive within the server's read timeout",
                    ),
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                        ("unsupported_media_type", "unsupported content type")
                    }
                    s if s.is_server_error() => ("internal", "internal error"),
                    _ => ("bad_request", "the request could not be read"),
                };
                (s, code, message.to_string())
            }
            ApiError::Internal(m) => {
                // A closed stderr must not take the handler down with it.
                let _ = writeln!(std::io::stderr(), "tdev serve: internal error: {m}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error".to_string(),
                )
            }
        };
        let mut resp = (
            status,
            axum::Json(crate::report::ErrorReport::new(code, &message)),
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(secs) = retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl From<engine::Error> for ApiError {
    fn from(e: engine::Error) -> Self {
        match e.kind() {
            engine::ErrorKind::NotFound(_) | engine::ErrorKind::Ambiguous(_) => {
                ApiError::NotFound(runtime::escape(&e.to_string()))
            }
            engine::ErrorKind::Key(_) => ApiError::BadRequest(runtime::escape(&e.to_string())),
            engine::ErrorKind::Conflict(_) => ApiError::Conflict(e.to_string()),
            engine::ErrorKind::Runtime(r)
                if matches!(
                    r.kind(),
                    runtime::ErrorKind::Args(_) | runtime::ErrorKind::ArgValue { .. }
                ) =>
            {
                ApiError::BadRequest(runtime::escape(&e.to_string()))
            }
            engine::ErrorKind::AgentId(_) => ApiError::BadRequest(runtime::escape(&e.to_string())),
            _ => ApiError::Internal(chain(&e)),
        }
    }
}

impl From<runtime::Error> for ApiError {
    fn from(e: runtime::Error) -> Self {
        match e.kind() {
            runtime::ErrorKind::Args(_) | runtime::ErrorKind::ArgValue { .. } => {
                ApiError::BadRequest(runtime::escape(&e.to_string()))
            }
            _ => ApiError::Internal(chain(&e)),
        }
    }
}

/// An error and its sources, `outer: inner: …`, for the server's log (the typed errors
/// keep their causes as sources rather than in their own message).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        // A wrapper that repeats its cause's message adds nothing.
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("reading the record")
        }
    }

    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn the_chain_names_every_cause() {
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(chain(&e), "reading the record: disk on fire");
    }
}
