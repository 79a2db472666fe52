//! One neuron looked at closely: its integrated-gradients score and activation
//! on each prompt of a fact (only its layer is attributed, so a card costs
//! about `1/layers` of the fact's analysis), and the tokens its value slot
//! writes towards, read by projecting the slot on the output embeddings
//! (Geva et al., 2022, "Transformer Feed-Forward Layers Build Predictions by
//! Promoting Concepts in the Vocabulary Space").

use super::attribution::{attribute_layers, Options};
use super::{Neuron, Query};
use crate::engine::intervene::validate;
use crate::models::Model;
use crate::{Error, Result};
use kn_shared::{NeuronOnPrompt, TokenScore};
use tch::{Kind, Tensor};

/// Rows of the unembedding multiplied at once for a neuron's top tokens.
const HEAD_ROWS: i64 = 16_384;

/// The neuron on each prompt. `max_scores[i]` is prompt `i`'s largest score
/// over every neuron (from its analysis), so that `passed` says whether the
/// neuron is in that prompt's coarse set at threshold `t`.
pub fn on_prompts(
    model: &Model,
    queries: &[Query],
    opts: &Options,
    n: Neuron,
    max_scores: &[Option<f64>],
    t: f64,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Vec<NeuronOnPrompt>> {
    validate(model.config(), &[n])?;
    let total = queries.len();
    queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            if !progress(i, total) {
                return Err(Error::Cancelled);
            }
            let a = attribute_layers(model, q, opts, n.layer..n.layer + 1, &mut || {
                progress(i, total)
            })?;
            let score = a.scores.double_value(&[0, n.index as i64]);
            let max = max_scores.get(i).copied().flatten();
            Ok(NeuronOnPrompt {
                prompt: q.prompt.clone(),
                score,
                activation: a.activations.double_value(&[0, n.index as i64]),
                passed: max.map(|m| m > 0.0 && score > t * m),
            })
        })
        .collect()
}

/// The `k` tokens whose logits the value slot of `n` raises most and lowers
/// most, with the projection's value (`E_out · v`).
pub fn vocabulary(
    model: &Model,
    n: Neuron,
    k: usize,
) -> Result<(Vec<TokenScore>, Vec<TokenScore>)> {
    validate(model.config(), &[n])?;
    let logits = tch::no_grad(|| {
        let v = model
            .net
            .value_slots(n.layer)
            .select(1, n.index as i64)
            .to_kind(model.dtype);
        // In the compute dtype, a block of the vocabulary at a time: the
        // head may be held in bf16, and a whole f32 copy of an 8B model's
        // would be 2 GB.
        let head = model.net.output_embeddings();
        let vocab = head.size()[0];
        let parts: Vec<Tensor> = (0..vocab)
            .step_by(HEAD_ROWS as usize)
            .map(|s| {
                head.narrow(0, s, HEAD_ROWS.min(vocab - s))
                    .to_kind(model.dtype)
                    .matmul(&v)
            })
            .collect();
        Tensor::cat(&parts, 0)
            .to_kind(Kind::Float)
            .to(tch::Device::Cpu)
    });
    let k = k.min(model.config().vocab_size) as i64;
    let pick = |largest: bool| -> Result<Vec<TokenScore>> {
        let (vals, idx) = logits.topk(k, 0, largest, true);
        let vals: Vec<f32> = Vec::try_from(&vals)?;
        let idx: Vec<i64> = Vec::try_from(&idx)?;
        Ok(idx
            .into_iter()
            .zip(vals)
            .map(|(i, v)| TokenScore {
                id: i as u32,
                token: model.tokenizer.token_text(i as u32),
                value: v.into(),
            })
            .collect())
    };
    Ok((pick(true)?, pick(false)?))
}
