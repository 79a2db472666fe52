//! One neuron looked at closely: its integrated-gradients score and activation
//! on each prompt of a fact (only its layer is attributed, so a card costs
//! about `1/layers` of the fact's analysis), and the tokens its value slot
//! writes towards, read by projecting the slot on the output embeddings
//! (Geva et al., 2022, "Transformer Feed-Forward Layers Build Predictions by
//! Promoting Concepts in the Vocabulary Space").

use super::attribution::{attribute_layers, Options};
use super::{Neuron, Query};
use crate::engine::intervene::validate;
use crate::models::{Batch, Model};
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

/// What a neuron's value slot writes into the vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    /// The `k` tokens whose logits the neuron raises most at activation
    /// `a` (`a · E_out v`, strongest first): the direction it really takes.
    /// A neuron that fires negative (the rule under SwiGLU) pushes up what
    /// its slot points away from.
    pub promotes: Vec<TokenScore>,
    /// ... and lowers most (most negative first).
    pub suppresses: Vec<TokenScore>,
    /// The slot itself, as if the neuron fired at +1 (`E_out v`, Geva et
    /// al.'s projection): raised most, lowered most.
    pub slot_promotes: Vec<TokenScore>,
    pub slot_suppresses: Vec<TokenScore>,
    /// The answer's rank among the tokens the neuron raises at `a` (1 = the
    /// most raised), when an answer is given.
    pub answer_rank: Option<usize>,
}

/// What the value slot of `n` writes at activation `a` (the neuron's mean
/// over a fact's prompts, say), and as a slot; `answer`'s rank in it.
pub fn vocabulary(
    model: &Model,
    n: Neuron,
    k: usize,
    a: f64,
    answer: Option<u32>,
) -> Result<Vocabulary> {
    validate(model.config(), &[n])?;
    let slot = slot_logits(model, n);
    // What the neuron adds to the logits is `a · E_out v`: at a negative `a`
    // the slot's lowest tokens are the ones it raises. A neuron at 0 writes
    // nothing: its lists are then the slot's own.
    let scale = if a == 0.0 { 1.0 } else { a };
    let answer_rank = match answer {
        Some(t) if (t as usize) < model.config().vocab_size => {
            let own = slot.double_value(&[t as i64]);
            let above = if scale < 0.0 {
                slot.lt(own)
            } else {
                slot.gt(own)
            };
            Some(i64::try_from(above.sum(Kind::Int64))? as usize + 1)
        }
        _ => None,
    };
    let slot_promotes = top(model, &slot, k, true)?;
    let slot_suppresses = top(model, &slot, k, false)?;
    let (up, down) = if scale < 0.0 {
        (&slot_suppresses, &slot_promotes)
    } else {
        (&slot_promotes, &slot_suppresses)
    };
    let (promotes, suppresses) = (rescale(up, scale), rescale(down, scale));
    Ok(Vocabulary {
        promotes,
        suppresses,
        slot_promotes,
        slot_suppresses,
        answer_rank,
    })
}

/// `E_out v` over the whole vocabulary, in f32 on the CPU.
fn slot_logits(model: &Model, n: Neuron) -> Tensor {
    tch::no_grad(|| {
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
    })
}

/// The `k` largest (or smallest) of `logits`, with their tokens.
fn top(model: &Model, logits: &Tensor, k: usize, largest: bool) -> Result<Vec<TokenScore>> {
    let k = k.min(model.config().vocab_size) as i64;
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
}

fn rescale(list: &[TokenScore], by: f64) -> Vec<TokenScore> {
    list.iter()
        .map(|t| TokenScore {
            value: t.value * by,
            ..t.clone()
        })
        .collect()
}

/// The neuron's activation at every position of a tokenised text (Neuronpedia's
/// view of a neuron on text of the user's): the layers up to the neuron's run on
/// the whole sequence, and its layer's activations are read at every position.
pub fn along_text(model: &Model, ids: &[u32], n: Neuron) -> Result<Vec<f64>> {
    validate(model.config(), &[n])?;
    if ids.is_empty() {
        return Err(Error::InvalidArgument(
            "the text tokenises to nothing".into(),
        ));
    }
    let net = &model.net;
    let batch = Batch::new(&[ids.to_vec()], &[ids.len() - 1], net.device())?;
    let a = tch::no_grad(|| {
        let ctx = net.context(&batch);
        let mut x = net.embed(&batch);
        for l in 0..n.layer {
            let (h, _) = net.attention(l, &x, &ctx);
            let a = net.ffn_act(l, &h);
            x = net.ffn_out(l, &h, &a);
        }
        let (h, _) = net.attention(n.layer, &x, &ctx);
        net.ffn_act(n.layer, &h)
            .select(2, n.index as i64)
            .squeeze_dim(0)
    });
    Ok(Vec::<f64>::try_from(
        a.to_kind(Kind::Double).to(tch::Device::Cpu),
    )?)
}

/// The neuron's activation at the blank of each of `queries` (one-token
/// answers: the prompt's own blank), in passes of the engine's default budget.
pub fn at_blanks(model: &Model, queries: &[Query], n: Neuron) -> Result<Vec<f64>> {
    validate(model.config(), &[n])?;
    let clozes: Vec<crate::cloze::Cloze> = queries.iter().map(|q| q.cloze.clone()).collect();
    let mut out = vec![0.0; queries.len()];
    super::readout::at_blanks(model, &clozes, super::batching::MAX_ROW_TOKENS, |i, at| {
        out[i] = at(&n);
    })?;
    Ok(out)
}
