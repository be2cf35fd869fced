//! Integration tests of the engine crate.

mod interp;
mod mutants;
mod quarantine;
mod records;
mod store;
