//! The outcome words of a run (DESIGN.md § Outcome vocabulary).

use std::fmt;

/// How a run ended. The `Display` form is the stable outcome word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// `act` returned.
    Ok,
    /// The fuel of the call ran out.
    OutOfFuel,
    /// The wall-clock deadline passed.
    Deadline,
    /// A memory grew past the policy's cap.
    MemoryLimit,
    /// A table grew past the policy's cap.
    TableLimit,
    /// The Wasm stack cap was exceeded.
    StackOverflow,
    /// The output cap was exceeded.
    OutputLimit,
    /// `unreachable` was executed.
    Unreachable,
    /// A memory, table or host-pointer access out of bounds.
    OutOfBounds,
    /// Integer division or remainder by zero.
    DivisionByZero,
    /// Integer overflow: `div_s` of MIN by -1, or a float-to-int truncation of a value
    /// out of the integer's range (the spec's "integer overflow" trap).
    IntegerOverflow,
    /// A float-to-int truncation of NaN (the spec's "invalid conversion to integer").
    BadConversion,
    /// `call_indirect` to a null entry or with the wrong signature.
    IndirectCall,
    /// Any other failure of the host.
    HostError,
    /// The run was interrupted by an emergency stop.
    EmergencyStop,
}

impl Outcome {
    /// Every outcome, in vocabulary order.
    pub const ALL: [Outcome; 15] = [
        Outcome::Ok,
        Outcome::OutOfFuel,
        Outcome::Deadline,
        Outcome::MemoryLimit,
        Outcome::TableLimit,
        Outcome::StackOverflow,
        Outcome::OutputLimit,
        Outcome::Unreachable,
        Outcome::OutOfBounds,
        Outcome::DivisionByZero,
        Outcome::IntegerOverflow,
        Outcome::BadConversion,
        Outcome::IndirectCall,
        Outcome::HostError,
        Outcome::EmergencyStop,
    ];

    /// The stable word, as in DESIGN.md.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::OutOfFuel => "out_of_fuel",
            Outcome::Deadline => "deadline",
            Outcome::MemoryLimit => "memory_limit",
            Outcome::TableLimit => "table_limit",
            Outcome::StackOverflow => "stack_overflow",
            Outcome::OutputLimit => "output_limit",
            Outcome::Unreachable => "unreachable",
            Outcome::OutOfBounds => "out_of_bounds",
            Outcome::DivisionByZero => "division_by_zero",
            Outcome::IntegerOverflow => "integer_overflow",
            Outcome::BadConversion => "bad_conversion",
            Outcome::IndirectCall => "indirect_call",
            Outcome::HostError => "host_error",
            Outcome::EmergencyStop => "emergency_stop",
        }
    }

    /// Parses an outcome word.
    pub fn from_word(word: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == word)
    }

    /// True for the outcomes that mean the agent hit a limit of the policy. Such a
    /// run counts against the agent's safety score (policy `[trap_weights]`).
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            Outcome::OutOfFuel
                | Outcome::Deadline
                | Outcome::MemoryLimit
                | Outcome::TableLimit
                | Outcome::StackOverflow
                | Outcome::OutputLimit
        )
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
