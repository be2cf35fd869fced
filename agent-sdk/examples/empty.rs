//! The smallest agent: does nothing and succeeds.
#![no_std]

agent_sdk::act! {
    fn() -> i32 { 0 }
}
