//! Knowledge Neuron Studio's engine.
//!
//! The crate is split the way data flows through it:
//!
//! * [`source`] turns a model name (`smollm2`, a directory, a `.gguf` file, a hub
//!   id) into files on disk;
//! * [`gguf`] reads llama.cpp's container and dequantises its tensors;
//! * [`tokenizer`] builds a Hugging Face `tokenizers` tokenizer from any of those
//!   sources;
//! * [`models`] holds one file per architecture and the [`models::NeuronModel`]
//!   trait, the single interface the knowledge-neuron engine uses to read,
//!   replace, scale and differentiate the feed-forward activations;
//! * [`cloze`] places the blank of a cloze prompt and tokenises its answer;
//!   [`predict`] reads the answer distribution there;
//! * [`server`] is the axum HTTP API that the web client talks to.
//!
//! `ARCHITECTURE.md` at the repository root is the map; `docs/method.md`
//! states the method as this project implements it.

pub mod cloze;
pub mod device;
pub mod engine;
pub mod error;
pub mod experiment;
pub mod gguf;
pub mod models;
pub mod pararel;
pub mod predict;
pub mod server;
pub mod source;
pub mod stats;
pub mod store;
pub mod tokenizer;

pub use error::{Error, Result};
pub use models::{load_model, load_model_as, load_model_with, Model, Precision, Storage};
