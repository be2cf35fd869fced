//! One module per subcommand.

pub mod quarantine;
pub mod run;
pub mod validate;
