//! The knowledge-neuron method (SPEC), on top of [`crate::models::NeuronModel`].
//!
//! * [`attribution`]: integrated gradients for every neuron of every layer at the
//!   blank, and the activation baseline, for one prompt.
//! * [`selection`]: coarse selection, refining across paraphrases, adaptive
//!   `p`, relation-level neurons: which neurons are a fact's knowledge neurons.
//! * [`intervene`]: suppress/amplify a neuron set at the blank, with controls.
//! * [`edit`]: reversible weight edits (update a fact, erase a relation).
//! * [`edit_overlay`]: many edits measured in the same passes, each added on its
//!   own rows, without writing them into the weights.
//! * [`methods_lab`]: other attribution methods beside IG, judged by intervention.
//! * [`neuron_card`]: one neuron of a fact looked at closely.
//! * [`analysis`]: one fact end to end, as the web app's result view shows it.
//! * `batching`: cutting work into passes within a rows × tokens budget.
//! * `trace`: the passes they are made of: the unscaled pass traced once, and
//!   copies with the blank changed at a layer, resumed from it there.
//! * [`readout`]: P(answer), top-1 and ranks at the blank under given hooks.
//! * [`host`]: device-to-host reads, counted.
//! * [`precision`]: what bf16 or f16 costs a fact's attribution against f32.
//! * `query`: a prompt with its answer; a multi-token answer as a chain of
//!   one-token steps.

pub mod analysis;
pub mod attribution;
pub(crate) mod batching;
pub mod cost;
pub mod edit;
pub mod edit_overlay;
pub mod edit_strength;
pub mod host;
pub mod intervene;
pub mod methods_lab;
pub mod neuron_card;
pub mod precision;
mod query;
pub mod readout;
pub mod relation;
pub mod selection;
pub mod specificity;
mod trace;

pub use kn_shared::{AnswerPositions, Neuron};
pub(crate) use query::Chains;
pub use query::{one_token, Query};
