//! The layers every request passes: the head caps (431, 413 on a declared length),
//! the token guard (401, 429, 403) that then reads the body within its cap and the
//! read timeout (413, 408), and the JSON shape of every error answer.

use super::auth::Caller;
use super::{ApiError, AppState, Scope, server};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Bytes of a request's head as it came on the wire (request line, headers, the
/// blank line).
fn head_bytes(req: &Request) -> usize {
    let line = req.method().as_str().len()
        + req.uri().path_and_query().map_or(1, |p| p.as_str().len())
        + " HTTP/1.1\r\n".len()
        + 1;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
        .sum();
    line + headers + 2
}

/// Set by [`read_body`] on a request whose body it has read to its end.
#[derive(Clone, Default)]
struct BodyRead(Arc<AtomicBool>);

/// `Connection: close` on an answer.
fn close(resp: &mut Response) {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// Checks the head against its caps (431) and the declared body length against its
/// cap (413), reading no body. A request with a body that was not read to its end
/// (refused before it or while it came, or sent to a route that takes none) has its
/// connection closed after the answer: the rest of the body is not waited for.
pub async fn check_head(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    let limits = &st.inner.limits;
    let head = head_bytes(&req);
    let too_large = if head > limits.max_header_bytes {
        Some(ApiError::HeadersTooLarge {
            len: head,
            max: limits.max_header_bytes,
        })
    } else if req.headers().len() > limits.max_headers {
        Some(ApiError::Status(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ))
    } else {
        None
    };
    if let Some(e) = too_large {
        // As hyper does with the heads it refuses itself: the connection ends here.
        let mut resp = e.into_response();
        close(&mut resp);
        return resp;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let has_body =
        declared.is_some_and(|n| n > 0) || req.headers().contains_key(header::TRANSFER_ENCODING);
    let read = BodyRead::default();
    let mut resp = if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        ApiError::Status(StatusCode::PAYLOAD_TOO_LARGE).into_response()
    } else {
        req.extensions_mut().insert(read.clone());
        next.run(req).await
    };
    if has_body && !read.0.load(Ordering::Relaxed) {
        close(&mut resp);
    }
    resp
}

/// Reads the whole body of a request whose token was let in, within the body cap and
/// the read timeout: a client that trickles its body gets 408 and does not hold a
/// handler; one over the cap gets 413.
async fn read_body(st: &AppState, req: Request) -> Result<Request, ApiError> {
    let limits = &st.inner.limits;
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, limits.max_body_bytes);
    let collected = tokio::time::timeout(
        limits.read_timeout,
        http_body_util::BodyExt::collect(limited),
    )
    .await;
    match collected {
        Err(_) => Err(ApiError::Status(StatusCode::REQUEST_TIMEOUT)),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::Status(StatusCode::PAYLOAD_TOO_LARGE))
        }
        Ok(Err(_)) => Err(ApiError::BadRequest(
            "the request body could not be read".into(),
        )),
        Ok(Ok(body)) => {
            // Read to its end: the connection may serve another request.
            if let Some(r) = parts.extensions.get::<BodyRead>() {
                r.0.store(true, Ordering::Relaxed);
            }
            Ok(Request::from_parts(
                parts,
                axum::body::Body::from(body.to_bytes()),
            ))
        }
    }
}

/// The secret after `Bearer ` (the scheme in any case), or "".
fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim())
}

/// The guard of a route that needs `scope`, on the request's head before any of its
/// body is read: 401 without a known token, 429 with Retry-After past the token's rate
/// (every authenticated request counts), 403 when the token lacks the scope. A request
/// let in is at work on its connection from then on (see [`server`]), and its body is
/// read.
pub async fn require(
    State((st, scope)): State<(AppState, Scope)>,
    mut req: Request,
    next: Next,
) -> Response {
    let tokens = &st.inner.tokens;
    let given = bearer(req.headers());
    let Some(i) = (!given.is_empty()).then(|| tokens.find(given)).flatten() else {
        return ApiError::Unauthorized.into_response();
    };
    let token = tokens.get(i);
    if let Err(retry_after) = tokens.take(i, Instant::now()) {
        *st.metrics()
            .rate_limited
            .entry(token.name().to_string())
            .or_default() += 1;
        return ApiError::RateLimited {
            token: token.name().to_string(),
            retry_after,
        }
        .into_response();
    }
    if !token.has(scope) {
        return ApiError::Forbidden {
            token: token.name().to_string(),
            scope: scope.as_str(),
        }
        .into_response();
    }
    req.extensions_mut()
        .insert(Caller(token.name().to_string()));
    let at_work = req
        .extensions()
        .get::<server::Work>()
        .map(server::Work::begin);
    let mut resp = match read_body(&st, req).await {
        Ok(req) => next.run(req).await,
        Err(e) => e.into_response(),
    };
    if let Some(w) = at_work {
        // still at work while the answer is written
        resp.extensions_mut().insert(w);
    }
    resp
}

/// Gives every error answer the JSON shape `{"error": {"code", "message"}}`, also the
/// ones axum makes itself (unknown route, wrong method, a body that does not arrive).
/// Their own text is not passed on: it may quote the request.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, _) = resp.into_parts();
    let mut out = ApiError::Status(parts.status).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}
