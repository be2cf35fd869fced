//! Agent ids (`sha256:<64 lowercase hex digits>`), parsed once where they enter the
//! engine: from a user, a stored record or the runtime.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The id of an agent: the SHA-256 digest of its module bytes, as `sha256:<hex>`. Its
/// `Display`, `FromStr` and serde forms are that string.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentId(String);

/// A string that is not an agent id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{given} is not an agent id (sha256: and 64 lowercase hex digits)")]
pub struct AgentIdError {
    /// What was given, escaped for messages.
    pub given: String,
}

impl AgentId {
    const PREFIX: &'static str = "sha256:";

    /// The id of a module's bytes.
    pub fn of(bytes: &[u8]) -> AgentId {
        AgentId(runtime::agent_id(bytes))
    }

    /// The id of 64 lowercase hex digits (a key's last part in the agents bucket).
    pub fn from_hex(hex: &str) -> Result<AgentId, AgentIdError> {
        format!("{}{hex}", Self::PREFIX).parse()
    }

    /// The id as `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits, without `sha256:` (the form the store's keys use).
    pub fn hex(&self) -> &str {
        // Every `AgentId` was checked to start with the prefix when it was made.
        self.0.strip_prefix(Self::PREFIX).unwrap_or(&self.0)
    }
}

impl FromStr for AgentId {
    type Err = AgentIdError;

    fn from_str(s: &str) -> Result<AgentId, AgentIdError> {
        AgentId::try_from(s.to_string())
    }
}

impl TryFrom<String> for AgentId {
    type Error = AgentIdError;

    fn try_from(s: String) -> Result<AgentId, AgentIdError> {
        if runtime::is_agent_id(&s) {
            Ok(AgentId(s))
        } else {
            Err(AgentIdError {
                given: runtime::escape(&s),
            })
        }
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl AsRef<str> for AgentId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for AgentId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for AgentId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for AgentId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl From<AgentId> for String {
    fn from(id: AgentId) -> String {
        id.0
    }
}

impl Serialize for AgentId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AgentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AgentId, D::Error> {
        AgentId::try_from(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// 128 unpredictable bits in hex: ids of changes, alerts and temporary names, which must
/// not repeat or be guessed. Each `RandomState` has its own keys, from a random seed
/// the OS gives each thread, so two hashes under two of them are 128 random bits (no
/// crate needed for that).
pub(crate) fn random_hex() -> String {
    use std::hash::BuildHasher;
    let pid = std::process::id();
    let a = std::collections::hash_map::RandomState::new().hash_one(pid);
    let b = std::collections::hash_map::RandomState::new().hash_one(pid);
    format!("{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_once_and_keeps_the_string_form() {
        let id = AgentId::of(b"module");
        assert_eq!(id.as_str(), runtime::agent_id(b"module"));
        assert_eq!(id.hex().len(), 64);
        assert_eq!(AgentId::from_hex(id.hex()), Ok(id.clone()));
        assert_eq!(id.to_string().parse::<AgentId>(), Ok(id.clone()));
        let json = serde_json::to_string(&id).expect("json");
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<AgentId>(&json).expect("back"), id);
        for bad in [
            "",
            "sha256:",
            "sha256:abc",
            &id.as_str().to_uppercase(),
            &format!("sha1:{}", id.hex()),
            &format!("{}0", id.as_str()),
            id.hex(),
        ] {
            assert!(bad.parse::<AgentId>().is_err(), "{bad}");
        }
        let err = "sha256:\u{1b}x".parse::<AgentId>().expect_err("bad");
        assert!(!err.to_string().contains('\u{1b}'), "{err}");
        assert!(serde_json::from_str::<AgentId>("\"sha256:00\"").is_err());
    }
}
