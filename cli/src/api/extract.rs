//! Typed extractors whose refusals are 400s in the JSON error shape (axum's own answer
//! in plain text and may quote the request): query strings into `deny_unknown_fields`
//! structs, and ids from the path, each decoded strictly ([`super::decode`]).

use super::{ApiError, decode};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The query string as `T`: a struct with `#[serde(deny_unknown_fields)]`, so that an
/// unknown parameter, one given twice or one missing is a 400.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// A query string (without its `?`) as `T`.
fn query<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    serde_urlencoded::from_str(text).map_err(|e| decode::bad("query", e))
}

/// The query of a route that takes none.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

/// `POST /v1/run`'s query: the typed form's arguments, `?args=1,2.5`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    /// Comma-separated arguments.
    pub args: Option<String>,
    /// A name for the module (its quarantine record shows it).
    pub name: Option<String>,
}

/// `POST /v1/evolutions/{id}/rollback`'s query: `?generation=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackQuery {
    /// The generation, in decimal ([`decode::generation`]).
    pub generation: String,
}

/// The one path parameter of a route, as text.
async fn path_text<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<String, ApiError> {
    axum::extract::Path::<String>::from_request_parts(parts, state)
        .await
        .map(|p| p.0)
        .map_err(|_| ApiError::BadRequest("the path does not decode to UTF-8 text".into()))
}

/// An agent id from the path: `sha256:` and 64 lowercase hex digits.
#[derive(Debug)]
pub struct AgentIdPath(pub engine::AgentId);

impl<S: Send + Sync> FromRequestParts<S> for AgentIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        decode::agent_id(&path_text(parts, state).await?).map(AgentIdPath)
    }
}

/// An evolution id from the path: 1 to 128 letters, digits, `-` and `_`.
#[derive(Debug)]
pub struct EvolutionIdPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for EvolutionIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        decode::evolution_id(&path_text(parts, state).await?).map(EvolutionIdPath)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_strict() {
        let run = |q: &str| query::<RunQuery>(q).map(|r| r.args);
        assert_eq!(run("args=1").ok(), Some(Some("1".to_string())));
        assert_eq!(run("").ok(), Some(None));
        for bad in ["args=1&args=2", "argz=1", "args=1&x=", "ARGS=1"] {
            let e = run(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} was taken"));
            assert!(
                matches!(e, ApiError::BadRequest(ref m) if m.starts_with("query: ")),
                "{e:?}"
            );
        }
        assert!(query::<NoQuery>("").is_ok());
        assert!(query::<NoQuery>("x=").is_err());
        assert!(query::<NoQuery>("args=1").is_err());
        let gen_ = |q: &str| query::<RollbackQuery>(q).map(|r| r.generation);
        assert_eq!(gen_("generation=7").ok(), Some("7".to_string()));
        assert!(gen_("").is_err(), "a missing generation");
        assert!(gen_("generation=1&generation=2").is_err());
    }
}
