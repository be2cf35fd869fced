//! Integration tests of the engine crate.

mod interp;
mod mutants;
mod program;
mod quarantine;
mod records;
mod store;
