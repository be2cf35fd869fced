//! Typed form: integer division that panics on a zero divisor. A panic in an agent
//! is logged and becomes a trap (`unreachable`), never a hang; built with the SDK's
//! `panic-message` feature, the log line says where and why.
#![no_std]

agent_sdk::act! {
    fn(a: i64, b: i64) -> i64 {
        match a.checked_div(b) {
            Some(q) => q,
            None => panic!("division by zero or overflow"),
        }
    }
}
