//! The library of the `tdev` command: its subcommands, the operator HTTP API and the
//! JSON reports both print. The binary (`src/main.rs`) parses the command line and
//! calls [`commands`].

pub mod api;
pub mod commands;
pub mod common;
pub mod plot;
pub mod report;
