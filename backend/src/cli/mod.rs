//! The subcommands that have grown their own room; `main.rs` parses and
//! dispatches.

pub mod args;
pub mod bench;
pub mod experiment;
pub mod methods;
