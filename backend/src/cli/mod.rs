//! The subcommands that have grown their own room; `main.rs` parses and
//! dispatches.

pub mod args;
pub mod bench;
pub mod edit;
pub mod experiment;
pub mod fact;
pub mod methods_cmd;
pub mod predict;
pub mod serve;
