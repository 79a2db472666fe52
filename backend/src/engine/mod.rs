//! The knowledge-neuron method (SPEC), on top of [`crate::models::NeuronModel`].
//!
//! * [`attribution`]: integrated gradients for every neuron of every layer at the
//!   blank, and the activation baseline, for one prompt.
//! * [`neurons`]: coarse selection, refining across paraphrases, adaptive `p`,
//!   relation-level neurons.
//! * [`intervene`]: suppress/amplify a neuron set at the blank, with controls.
//! * [`edit`]: reversible weight edits (update a fact, erase a relation).
//! * [`methods`]: other attribution methods beside IG, judged by intervention.
//! * [`host`]: device-to-host reads, counted.

pub mod analysis;
pub mod attribution;
pub mod cost;
pub mod edit;
pub mod host;
pub mod intervene;
pub mod methods;
pub mod neuron;
pub mod neurons;
pub mod relation;

use crate::models::Vocab;
use crate::predict::{cloze, target_id, Cloze};
use crate::Result;
pub use kn_shared::Neuron;

/// A prompt ready for the engine: tokens, blank, and the answer's token id.
#[derive(Debug, Clone)]
pub struct Query {
    pub prompt: String,
    pub cloze: Cloze,
    pub target: u32,
}

impl Query {
    /// The prompt's input tokens as text.
    pub fn tokens(&self, model: &impl Vocab) -> Vec<String> {
        self.cloze
            .ids
            .iter()
            .map(|&i| model.tokenizer().token_text(i))
            .collect()
    }

    pub fn new(model: &impl Vocab, prompt: &str, target: &str) -> Result<Self> {
        let c = cloze(model, prompt)?;
        let t = target_id(model, &c, target)?;
        Ok(Query {
            prompt: prompt.to_string(),
            cloze: c,
            target: t,
        })
    }
}
