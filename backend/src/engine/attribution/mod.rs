//! Integrated-gradients attribution (SPEC: "Knowledge attribution").
//!
//! For layer `l` with activation `w̄` at the blank,
//! `Attr(w_i) = w̄_i/m · Σ_k ∂P(y*| a_blank = α_k·w̄)/∂w_i`, right sum
//! `α_k = k/m, k = 1..m` (the paper) or left sum `k = 0..m−1` (the authors'
//! code). We evaluate the `m + 1` points `α = 0, 1/m, …, 1` in one batch: both
//! sums, `P(0)` and `P(w̄)` fall out of the same pass, and one backward gives the
//! gradient of every neuron of the layer at every step.
//!
//! How a scaled pass is run is the [`Mode`]:
//! * `Naive`: a full forward pass per layer with the blank replaced — what the
//!   public implementations do; kept as the ablation baseline.
//! * `Resume`: the unscaled pass is computed once (`Trace`); the scaled copies
//!   start at layer `l`'s FFN output, since nothing before it changes.
//! * `Fast`: `Resume`, and for causal models, whose blank is the last position,
//!   the earlier positions are untouched by the change, so their keys and values
//!   come from the trace and only the last position is recomputed per step.

mod integrate;

use super::{Chains, Query};
use crate::models::Model;
use crate::{Error, Result};
use integrate::{attribute_chunk, Chunk, Group};
use tch::Tensor;

/// Which Riemann sum approximates the integral (the API's type, so a request
/// carries it as it is).
pub use kn_shared::Riemann;

/// How scaled passes are computed: a property of the trace they resume from.
pub use super::trace::Mode;

/// Default of [`Options::max_row_tokens`].
pub use super::batching::MAX_ROW_TOKENS;

/// Largest `m` accepted.
pub const MAX_STEPS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Riemann steps `m` (SPEC default 20).
    pub steps: usize,
    pub riemann: Riemann,
    pub mode: Mode,
    /// Most scaled copies in one pass, to bound memory.
    pub max_batch: usize,
    /// Most `copies × sequence length` in one pass: longer prompts get fewer
    /// copies per pass, so a pass's memory stays bounded whatever the prompt's
    /// length (the copies' keys, values and activations grow with both).
    pub max_row_tokens: usize,
}

/// Most prompts × tokens traced together by [`attribute_many`] (their
/// scaled copies still pass `Plan::prompts` at a time): a pass over few rows
/// costs about as much as reading the weights, so the passes each prompt needs
/// once (the trace, and the path's ends: [`Options::scaled_steps`]) are run
/// for many prompts at once. Bounds what the trace keeps (every layer's
/// activations, keys, values and outputs: under 200 MB for bert-base or
/// SmolLM2-135M).
pub const TRACE_ROW_TOKENS: usize = 512;

impl Default for Options {
    fn default() -> Self {
        Options {
            steps: 20,
            riemann: Riemann::Right,
            mode: Mode::Fast,
            max_batch: 256,
            max_row_tokens: MAX_ROW_TOKENS,
        }
    }
}

impl Options {
    /// The defaults with `steps` Riemann steps.
    pub fn with_steps(steps: usize) -> Options {
        Options {
            steps,
            ..Options::default()
        }
    }

    /// The defaults for a device: on CUDA, passes large enough to fill a GPU
    /// (the prompts of a fact together). What autograd keeps for the backward
    /// of the largest pass is, estimated from the shapes, about 10 GB for
    /// bert-base and 25 GB for SmolLM2-135M; `--max-batch` and
    /// `--max-row-tokens` bound it on smaller cards.
    pub fn for_device(device: tch::Device) -> Options {
        match device {
            tch::Device::Cuda(_) => Options {
                max_batch: 2048,
                max_row_tokens: 32768,
                ..Options::default()
            },
            _ => Options::default(),
        }
    }

    /// The steps `k` of `α_k = k/m` (`k = 0..=m`) run as scaled copies, each
    /// with its gradient. In the resuming modes the ends of the path need no
    /// copy with a gradient: at `α = 1` the copy would be the traced pass
    /// itself, whose P is known and whose gradient for every layer at once
    /// comes from one backward pass ([`super::trace::plain_logits`]); at
    /// `α = 0` the right sum needs P alone, from copies without gradients.
    /// `Naive` copies all `m + 1`, as the public implementations do.
    pub fn scaled_steps(&self) -> std::ops::Range<usize> {
        match (self.mode, self.riemann) {
            (Mode::Naive, _) => 0..self.steps + 1,
            (_, Riemann::Right) => 1..self.steps,
            (_, Riemann::Left) => 0..self.steps,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(Error::InvalidArgument(format!(
                "steps (m) is {}; it must be between 1 and {MAX_STEPS}",
                self.steps
            )));
        }
        if self.max_batch == 0 || self.max_row_tokens == 0 {
            return Err(Error::InvalidArgument(
                "max_batch and max_row_tokens must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// One prompt's attribution over all layers, on the CPU.
pub struct Attribution {
    /// `[layers, d_ff]` integrated-gradients scores.
    pub scores: Tensor,
    /// `[layers, d_ff]` activations at the blank (the baseline's scores).
    pub activations: Tensor,
    /// `P(y*|x)` of the unmodified model.
    pub p_target: f64,
    /// Per layer, `P(y*)` with that layer's blank activation set to zero.
    pub p_zero: Vec<f64>,
    /// Per layer, `Σ_i Attr(w_i) − (P(w̄) − P(0))` (SPEC's completeness law).
    pub residual: Vec<f64>,
}

/// Integrated gradients for every layer of one prompt.
pub fn attribute(model: &Model, q: &Query, opts: &Options) -> Result<Attribution> {
    attribute_with(model, q, opts, &mut || true)
}

/// [`attribute`], asking `keep_going` before each pass (a batch of scaled
/// copies); `false` stops with [`Error::Cancelled`].
pub fn attribute_with(
    model: &Model,
    q: &Query,
    opts: &Options,
    keep_going: &mut dyn FnMut() -> bool,
) -> Result<Attribution> {
    attribute_layers(model, q, opts, 0..model.config().n_layers, keep_going)
}

/// Integrated gradients for the layers `layers` only (one forward pass for the
/// trace, then scaled copies of those layers): rows of the result are the
/// layers of the range, in order. The neuron card asks for one layer.
pub fn attribute_layers(
    model: &Model,
    q: &Query,
    opts: &Options,
    layers: std::ops::Range<usize>,
    keep_going: &mut dyn FnMut() -> bool,
) -> Result<Attribution> {
    let mut out = attribute_many(model, std::slice::from_ref(q), opts, layers, &mut |_| {
        keep_going()
    })?;
    Ok(out.remove(0))
}

/// How the scaled rows of a set of prompts are cut into passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Prompts traced and attributed together.
    pub prompts: usize,
    /// Layers whose rows share one staircase pass.
    pub layers: usize,
    /// Steps per pass (all of [`Options::scaled_steps`] unless one layer's rows
    /// alone exceed the budget).
    pub steps: usize,
}

impl Plan {
    /// The largest passes within `opts`' budgets (`max_batch` rows, and
    /// `max_row_tokens` rows × tokens for prompts up to `seq_len` tokens):
    /// whole layers first (the staircase), then more prompts per pass, and
    /// when even one layer's scaled rows are too many, chunks of steps.
    pub fn new(opts: &Options, n_layers: usize, n_prompts: usize, seq_len: usize) -> Plan {
        let per_layer = opts.scaled_steps().len().max(1);
        let max_rows = opts
            .max_batch
            .min((opts.max_row_tokens / seq_len.max(1)).max(1));
        if per_layer > max_rows {
            return Plan {
                prompts: 1,
                layers: 1,
                steps: max_rows,
            };
        }
        let layers = (max_rows / per_layer).clamp(1, n_layers.max(1));
        let prompts = (max_rows / (layers * per_layer)).clamp(1, n_prompts.max(1));
        Plan {
            prompts,
            layers,
            steps: per_layer,
        }
    }

    /// The passes for exactly `rows` prompts attributed together (the steps of
    /// multi-token answers, which cannot be split): whole layers while
    /// `rows × (m + 1)` fits the budget, else chunks of steps, down to one
    /// step per pass; a query with more acted steps than the budget's rows
    /// (8 pieces at most) still passes them together.
    pub fn for_rows(opts: &Options, n_layers: usize, rows: usize, seq_len: usize) -> Plan {
        let per_layer = opts.scaled_steps().len().max(1);
        let rows = rows.max(1);
        let max_rows = opts
            .max_batch
            .min((opts.max_row_tokens / seq_len.max(1)).max(1));
        if rows * per_layer > max_rows {
            return Plan {
                prompts: rows,
                layers: 1,
                steps: (max_rows / rows).clamp(1, per_layer),
            };
        }
        Plan {
            prompts: rows,
            layers: (max_rows / (rows * per_layer)).clamp(1, n_layers.max(1)),
            steps: per_layer,
        }
    }
}

/// Integrated gradients of every prompt of `qs` (each with its own answer) for
/// the layers `layers`. Prompts are traced and attributed together as far as
/// [`Plan`] allows: rows of several prompts, right-padded to a common length
/// with attention masks and each row's own blank, in one staircase; the
/// numbers are those of one prompt at a time. `keep_going(prompts done)` is
/// asked before each pass; `false` stops with [`Error::Cancelled`].
pub fn attribute_many(
    model: &Model,
    qs: &[Query],
    opts: &Options,
    layers: std::ops::Range<usize>,
    keep_going: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<Attribution>> {
    attribute_many_from(model, qs, opts, layers, keep_going, Baseline::Zero)
}

/// Refuse answers with a token id outside the vocabulary (a libtorch
/// exception otherwise, or a device-side assert on CUDA).
pub(crate) fn check_targets(cfg: &crate::models::ModelConfig, qs: &[Query]) -> Result<()> {
    match qs
        .iter()
        .flat_map(|q| &q.answer)
        .find(|&&t| t as usize >= cfg.vocab_size)
    {
        Some(t) => Err(Error::InvalidArgument(format!(
            "target id {t} is outside the vocabulary"
        ))),
        None => Ok(()),
    }
}

/// Where the integration path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Baseline {
    /// `a = 0`: the paper's.
    #[default]
    Zero,
    /// The activations at the blank of the prompt with its content masked
    /// ([`Query::masked`]): the path is `a' + α(w̄ − a')` and the score
    /// `(w̄_i − a'_i)/m · Σ_k ∂P/∂a_i`; `p_zero` is then P at `a'`.
    Masked,
}

/// [`attribute_many`] from another [`Baseline`].
pub fn attribute_many_from(
    model: &Model,
    qs: &[Query],
    opts: &Options,
    layers: std::ops::Range<usize>,
    keep_going: &mut dyn FnMut(usize) -> bool,
    baseline: Baseline,
) -> Result<Vec<Attribution>> {
    opts.validate()?;
    let cfg = model.config().clone();
    if layers.is_empty() || layers.end > cfg.n_layers {
        return Err(Error::InvalidArgument(format!(
            "layers {layers:?}: the model has layers 0..{}",
            cfg.n_layers
        )));
    }
    check_targets(&cfg, qs)?;
    if !qs.iter().any(Query::is_chain) {
        let seq_len = qs.iter().map(|q| q.cloze.ids.len()).max().unwrap_or(1);
        let plan = Plan::new(opts, layers.len(), qs.len(), seq_len);
        let mut out = Vec::with_capacity(qs.len());
        // Prompts are traced together up to a budget, whatever `plan.prompts`:
        // the passes every prompt needs once (the trace, and the path's ends)
        // are bound by reading the weights when they hold few rows.
        for range in super::batching::by_query(qs, TRACE_ROW_TOKENS) {
            let chunk = &qs[range];
            let done = out.len();
            let groups: Vec<Group> = (0..chunk.len()).map(Group::one).collect();
            let chunk = Chunk::new(model, chunk, &groups, opts, layers.clone(), baseline)?;
            out.extend(attribute_chunk(&chunk, &plan, &mut |k| {
                keep_going(done + k)
            })?);
        }
        return Ok(out);
    }
    attribute_chains(model, &Chains::new(qs), opts, layers, keep_going, baseline)
}

/// [`attribute_many_from`] for queries with multi-token answers. A query's
/// acted steps (every step, or the first: [`Query::positions`]) are rows of one
/// chunk; its other steps' probabilities are read once and held. The path
/// scales every acted step's blank together, so the score is integrated
/// gradients of `F(α) = ∏_acted P_j(α) · ∏_other P_j`, i.e. of P(answer):
/// each row's gradient at `α_k` is weighted by the other factors at `α_k`, and
/// the rows' scores add up (completeness: `Σ_i Attr_i ≈ F(1) − F(0)`).
fn attribute_chains(
    model: &Model,
    chains: &Chains,
    opts: &Options,
    layers: std::ops::Range<usize>,
    keep_going: &mut dyn FnMut(usize) -> bool,
    baseline: Baseline,
) -> Result<Vec<Attribution>> {
    let held: Vec<usize> = (0..chains.steps.len())
        .filter(|&s| !chains.acted[s])
        .collect();
    let mut p_held = vec![1.0; chains.steps.len()];
    if !held.is_empty() {
        let qs: Vec<Query> = held.iter().map(|&s| chains.steps[s].clone()).collect();
        let (p, _) = super::readout::probabilities(model, &qs, &crate::models::Hooks::default())?;
        for (&s, p) in held.iter().zip(p) {
            p_held[s] = p;
        }
    }
    let acted: Vec<Vec<Query>> = (0..chains.of.len())
        .map(|i| chains.acted_of(i).cloned().collect())
        .collect();
    let rows: usize = acted.iter().map(Vec::len).sum();
    let seq_len = acted
        .iter()
        .flatten()
        .map(|q| q.cloze.ids.len())
        .max()
        .unwrap_or(1);
    let plan = Plan::new(opts, layers.len(), rows, seq_len);
    let mut out = Vec::with_capacity(acted.len());
    let mut next = 0;
    while next < acted.len() {
        // Whole queries into a chunk, up to the plan's rows (a query with more
        // acted steps than that gets a chunk, and passes, of its own).
        let (mut chunk, mut groups) = (Vec::new(), Vec::new());
        let mut end = next;
        while end < acted.len()
            && (chunk.is_empty() || chunk.len() + acted[end].len() <= plan.prompts)
        {
            let start = chunk.len();
            chunk.extend(acted[end].iter().cloned());
            let c = chains.of[end].clone().map(|s| p_held[s]).product();
            groups.push(Group {
                rows: start..chunk.len(),
                c,
            });
            end += 1;
        }
        let chunk_plan = Plan::for_rows(opts, layers.len(), chunk.len(), seq_len);
        let done = out.len();
        let chunk = Chunk::new(model, &chunk, &groups, opts, layers.clone(), baseline)?;
        out.extend(attribute_chunk(&chunk, &chunk_plan, &mut |k| {
            keep_going(done + k)
        })?);
        next = end;
    }
    Ok(out)
}

/// The shared (JSON) form of an attribution.
pub fn to_shared(
    model: &Model,
    q: &Query,
    a: &Attribution,
) -> Result<kn_shared::PromptAttribution> {
    Ok(kn_shared::PromptAttribution {
        prompt: q.prompt.clone(),
        tokens: q.tokens(model),
        blank_index: q.cloze.blank,
        p_target: a.p_target,
        p_zero: a.p_zero.clone(),
        residual: a.residual.clone(),
        scores: rows(&a.scores)?,
        activations: rows(&a.activations)?,
    })
}

/// A `[layers, d_ff]` map as nested vectors (the JSON form).
pub fn rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    (0..t.size()[0])
        .map(|l| Ok(Vec::<f32>::try_from(t.get(l))?))
        .collect()
}
