//! Integration tests of the engine crate.

mod integrity;
mod interp;
mod islands;
mod mutants;
mod program;
mod quarantine;
#[cfg(feature = "aws")]
mod queue;
mod records;
mod store;
