//! End-to-end tests: they drive the built `tdev` binary as a user would.

mod agents;
mod alerts;
#[cfg(feature = "aws")]
mod aws;
mod cli;
mod dashboard;
mod deploy;
mod evolve;
mod fixtures;
#[cfg(feature = "aws")]
mod fleet;
mod guide;
mod hostile;
mod http;
mod load;
mod new;
mod operations;
mod proposers;
mod quarantine;
mod readme;
mod serve;
mod server;
mod support;
