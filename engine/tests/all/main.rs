//! Integration tests of the engine crate.

mod mutants;
mod store;
