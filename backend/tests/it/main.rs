//! The integration tests, one crate (one binary linking libtorch instead of
//! one per file): each file a module, the fixtures' helpers in [`common`].
//! They need the fixtures `scripts/make_fixtures.py` writes (the test command
//! makes them); without them the run stops at once and says so.

#![allow(dead_code)]

mod common;

mod api;
mod api_batching;
mod api_edits;
mod api_fuzz;
mod api_limits;
mod api_methods;
mod attribution;
mod chains;
mod cli;
mod edit;
mod edit_overlay;
mod engine_errors;
mod engine_smollm2;
mod errors;
mod experiment;
mod golden;
mod hub;
mod interventions;
mod methods_lab;
mod pararel;
mod precision;
mod serve;
mod smollm2;
mod upgrade;
mod zoo;
