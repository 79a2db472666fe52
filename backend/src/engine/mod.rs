//! The knowledge-neuron method (SPEC), on top of [`crate::models::NeuronModel`].
//!
//! * [`attribution`]: integrated gradients for every neuron of every layer at the
//!   blank, and the activation baseline, for one prompt.
//! * [`neurons`]: coarse selection, refining across paraphrases, adaptive `p`,
//!   relation-level neurons.
//! * [`intervene`]: suppress/amplify a neuron set at the blank, with controls.
//! * [`edit`]: reversible weight edits (update a fact, erase a relation).
//! * [`edited`]: many edits measured in the same passes, each on its own rows,
//!   without writing them into the weights.
//! * [`methods`]: other attribution methods beside IG, judged by intervention.
//! * `batching`: cutting work into passes within a rows × tokens budget.
//! * `trace`: the passes they are made of: the unscaled pass traced once, and
//!   copies with the blank changed at a layer, resumed from it there.
//! * [`host`]: device-to-host reads, counted.
//! * [`precision`]: what bf16 or f16 costs a fact's attribution against f32.
//! * `query`: a prompt with its answer; a multi-token answer as a chain of
//!   one-token steps.

pub mod analysis;
pub mod attribution;
pub(crate) mod batching;
pub mod cost;
pub mod edit;
pub mod edited;
pub mod host;
pub mod intervene;
pub mod methods;
pub mod neuron;
pub mod neurons;
pub mod precision;
mod query;
pub mod relation;
mod trace;

pub use kn_shared::{AnswerPositions, Neuron};
pub(crate) use query::Chains;
pub use query::Query;
