//! The words the engine stores (checkpoint status, cull keys, safety flags, audit
//! actions), as enums whose `Display` and serde forms are the stored word, like the
//! runtime's [`Outcome`].

use runtime::Outcome;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Writes the `Display` of the enums below from the serde word of each variant.
macro_rules! words {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $v:ident = $w:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),* }

        impl $name {
            /// Every variant.
            pub const ALL: &'static [$name] = &[$($name::$v),*];

            /// The stored word.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $w),* }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;

            fn from_str(s: &str) -> Result<$name, UnknownWord> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownWord(runtime::escape(s)))
            }
        }
    };
}

/// A word that names no variant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown word {0:?}")]
pub struct UnknownWord(pub String);

words! {
    /// Where an evolution stands: the `status` of its checkpoints (`running`, `solved`,
    /// `finished`) and, in [`crate::evolve::list`], `stopped` for a run stopped at its
    /// head.
    pub enum RunStatus {
        /// More generations to go.
        Running = "running",
        /// The success threshold was reached.
        Solved = "solved",
        /// The last generation asked for was reached.
        Finished = "finished",
        /// Stopped at its head by a stop request (never in a checkpoint).
        Stopped = "stopped",
        /// Submitted to a queue; no worker has committed its first generation yet
        /// (never in a checkpoint).
        Queued = "queued",
        /// Its last job failed; after the queue's maximum of deliveries the job is in
        /// the dead-letter queue (never in a checkpoint).
        Failed = "failed",
    }
}

words! {
    /// An anomaly flag of a generation (safety snapshots and state rows).
    pub enum SafetyFlag {
        /// More than half of the evaluated offspring trapped or were rejected.
        TrapRateSpike = "trap_rate_spike",
        /// The mean module size is over 80% of `limits.module_bytes`.
        SizeBloat = "size_bloat",
        /// The best error fell below 1% of the previous generation's.
        SuddenFitnessJump = "sudden_fitness_jump",
    }
}

words! {
    /// What an entry of a quarantine record's audit trail records.
    pub enum AuditAction {
        /// The module was quarantined (or quarantined again after a purge).
        Quarantined = "quarantined",
        /// A run of it hit a limit.
        Trapped = "trapped",
        /// A person released it.
        Released = "released",
        /// A person purged it.
        Purged = "purged",
    }
}

/// Why an offspring was culled: the key of the `culled` counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cull {
    /// It trapped on a case: the outcome word.
    Trap(Outcome),
    /// Its encoding was over `limits.module_bytes` (`size_cap`).
    SizeCap,
    /// The policy did not admit it (`rejected`).
    Rejected,
}

impl Cull {
    /// The stored word: the outcome word, `size_cap` or `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cull::Trap(o) => o.as_str(),
            Cull::SizeCap => "size_cap",
            Cull::Rejected => "rejected",
        }
    }
}

impl fmt::Display for Cull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Cull {
    type Err = UnknownWord;

    fn from_str(s: &str) -> Result<Cull, UnknownWord> {
        match s {
            "size_cap" => Ok(Cull::SizeCap),
            "rejected" => Ok(Cull::Rejected),
            _ => Outcome::from_word(s)
                .map(Cull::Trap)
                .ok_or_else(|| UnknownWord(runtime::escape(s))),
        }
    }
}

/// Ordered by word, as the stored maps are.
impl Ord for Cull {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Cull {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

// By hand: a variant carries an `Outcome`, whose word is the key (serde's derive
// cannot say that, and map keys must be plain strings).
impl Serialize for Cull {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Cull {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cull, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn display_serde_and_parse_agree() {
        for s in RunStatus::ALL {
            let json = serde_json::to_string(s).expect("json");
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(s.to_string().parse::<RunStatus>(), Ok(*s));
        }
        for f in SafetyFlag::ALL {
            assert_eq!(serde_json::to_string(f).expect("json"), format!("\"{f}\""));
        }
        for a in AuditAction::ALL {
            assert_eq!(serde_json::to_string(a).expect("json"), format!("\"{a}\""));
        }
        assert_eq!(
            SafetyFlag::SuddenFitnessJump.to_string(),
            "sudden_fitness_jump"
        );
        assert!("Running".parse::<RunStatus>().is_err());
        // widths and alignment apply, as for strings
        assert_eq!(format!("{:<12}|", AuditAction::Purged), "purged      |");
    }

    #[test]
    fn cull_keys_are_outcome_words_or_their_own() {
        let mut m = BTreeMap::new();
        m.insert(Cull::SizeCap, 1u64);
        m.insert(Cull::Trap(Outcome::OutOfFuel), 2);
        m.insert(Cull::Rejected, 3);
        m.insert(Cull::Trap(Outcome::DivisionByZero), 4);
        let json = serde_json::to_string(&m).expect("json");
        assert_eq!(
            json,
            r#"{"division_by_zero":4,"out_of_fuel":2,"rejected":3,"size_cap":1}"#
        );
        let back: BTreeMap<Cull, u64> = serde_json::from_str(&json).expect("back");
        assert_eq!(back, m);
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Cull>(), Ok(Cull::Trap(o)));
        }
        assert!(serde_json::from_str::<BTreeMap<Cull, u64>>(r#"{"tired":1}"#).is_err());
    }
}
