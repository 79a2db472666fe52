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

    /// The same query with its content masked: every token that is not one of
    /// the tokenizer's special tokens becomes the mask token (masked models)
    /// or the end-of-text token (causal models, which have no mask), at the
    /// same positions, so the blank keeps its index. Integrated gradients from
    /// the activations this prompt gives at the blank is the
    /// `ig-masked-baseline` method (docs/methods.md).
    pub fn masked(&self, model: &impl Vocab) -> Result<Self> {
        let tok = model.tokenizer();
        let special: std::collections::HashSet<u32> = tok
            .inner()
            .get_added_vocabulary()
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(&id, _)| id)
            .collect();
        let filler = if model.config().arch.is_masked() {
            tok.mask().map(|(_, id)| id)
        } else {
            ["<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>"]
                .iter()
                .find_map(|t| tok.token_to_id(t))
        }
        .ok_or_else(|| {
            crate::Error::InvalidArgument(
                "this tokenizer has no mask or end-of-text token to mask a prompt with".into(),
            )
        })?;
        let mut q = self.clone();
        q.cloze.ids = self
            .cloze
            .ids
            .iter()
            .map(|&i| if special.contains(&i) { i } else { filler })
            .collect();
        q.prompt = format!("{} (masked)", self.prompt);
        Ok(q)
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
