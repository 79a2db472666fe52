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

use super::trace::{plain_logits, scaled_logits, trace};
use super::{Chains, Query};
use crate::models::Model;
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// Which Riemann sum approximates the integral.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Riemann {
    /// `k = 1..m`, the paper's.
    #[default]
    Right,
    /// `k = 0..m−1`, the authors' code.
    Left,
}

/// How scaled passes are computed (all give the same numbers).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A full forward and backward per layer (the public implementations).
    Naive,
    /// Start each layer's scaled copies at that layer.
    Resume,
    /// `Resume`, plus reuse of earlier positions' keys/values in causal models.
    #[default]
    Fast,
}

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

/// Default of [`Options::max_row_tokens`]: prompts up to 32 tokens keep all
/// 256 copies of `max_batch` in one pass.
pub const MAX_ROW_TOKENS: usize = 8192;

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
            out.extend(attribute_chunk(
                model,
                chunk,
                &groups,
                opts,
                &plan,
                layers.clone(),
                &mut |k| keep_going(done + k),
                baseline,
            )?);
        }
        return Ok(out);
    }
    attribute_chains(model, &Chains::new(qs), opts, layers, keep_going, baseline)
}

/// The acted steps of one query, as rows of a chunk, and the product `c` of
/// its other steps' probabilities (held as they are).
struct Group {
    rows: std::ops::Range<usize>,
    c: f64,
}

impl Group {
    fn one(row: usize) -> Group {
        Group {
            rows: row..row + 1,
            c: 1.0,
        }
    }
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
        let (p, _) = super::intervene::probabilities(model, &qs, &crate::models::Hooks::default())?;
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
        out.extend(attribute_chunk(
            model,
            &chunk,
            &groups,
            opts,
            &chunk_plan,
            layers.clone(),
            &mut |k| keep_going(done + k),
            baseline,
        )?);
        next = end;
    }
    Ok(out)
}

/// [`attribute_many`] for prompts that share every pass: one result per
/// group of rows (one row each, unless they are the steps of a multi-token
/// answer: [`attribute_chains`]).
#[allow(clippy::too_many_arguments)]
fn attribute_chunk(
    model: &Model,
    qs: &[Query],
    groups: &[Group],
    opts: &Options,
    plan: &Plan,
    layers: std::ops::Range<usize>,
    keep_going: &mut dyn FnMut(usize) -> bool,
    baseline: Baseline,
) -> Result<Vec<Attribution>> {
    let cfg = model.config();
    let t = trace(model, qs)?;
    // `[p, d_ff]` per layer: where the path starts (`None`: at zero).
    let origin: Option<Vec<Tensor>> = match baseline {
        Baseline::Zero => None,
        Baseline::Masked => {
            let masked = qs
                .iter()
                .map(|q| q.masked(model))
                .collect::<Result<Vec<_>>>()?;
            let t0 = trace(model, &masked)?;
            Some(tch::no_grad(|| {
                (0..cfg.n_layers)
                    .map(|l| t0.batch.at_blank(&t0.a[l]))
                    .collect()
            }))
        }
    };
    let device = model.net.device();
    let (m, d_ff, pn) = (opts.steps as i64, cfg.d_ff as i64, qs.len() as i64);
    let targets =
        Tensor::from_slice(&qs.iter().map(|q| q.target as i64).collect::<Vec<_>>()).to(device);
    let p_target = t
        .logits
        .softmax(-1, Kind::Float)
        .gather(1, &targets.unsqueeze(1), false)
        .squeeze_dim(1);
    // In the model's dtype: the scaled activations replace its own.
    let alphas = (Tensor::arange(m + 1, (Kind::Float, device)) / m as f64).to_kind(model.dtype);
    // `[p, d_ff]` activations at the blanks.
    let w: Vec<Tensor> = tch::no_grad(|| {
        (0..cfg.n_layers)
            .map(|l| t.batch.at_blank(&t.a[l]))
            .collect()
    });
    // Passes: (first layer, layers in the pass, first step, steps).
    let scaled = opts.scaled_steps();
    let (s0, s1) = (scaled.start as i64, scaled.end as i64);
    let mut units = Vec::new();
    let mut l = layers.start;
    while l < layers.end {
        let n = plan.layers.min(layers.end - l);
        let mut start = s0;
        while start < s1 {
            let steps = (plan.steps as i64).min(s1 - start);
            units.push((l, n, start, steps));
            start += steps;
        }
        l += n;
    }
    // Per layer: the gradients and P of the scaled steps, `[p, steps]` pieces.
    let mut grads: Vec<Vec<Tensor>> = (0..cfg.n_layers).map(|_| Vec::new()).collect();
    let mut probs: Vec<Vec<Tensor>> = (0..cfg.n_layers).map(|_| Vec::new()).collect();
    // P of each row's answer, for rows `rows_per_prompt` per prompt of
    // `prompts`, repeated for `layers` layers.
    let row_p =
        |logits: &Tensor, prompts: &std::ops::Range<i64>, rows_per_prompt: i64, layers: i64| {
            let row_targets = targets
                .narrow(0, prompts.start, prompts.end - prompts.start)
                .repeat_interleave_self_int(rows_per_prompt, Some(0), None)
                .repeat([layers]);
            logits
                .softmax(-1, Kind::Float)
                .gather(1, &row_targets.unsqueeze(1), false)
                .squeeze_dim(1)
        };
    // The traced prompts pass `plan.prompts` at a time; each group's pieces
    // are joined along the steps, then the groups along the prompts.
    let mut start_p = 0i64;
    while start_p < pn {
        let prompts = start_p..(start_p + plan.prompts as i64).min(pn);
        let np = prompts.end - prompts.start;
        let mut g_part: Vec<Vec<Tensor>> = (0..cfg.n_layers).map(|_| Vec::new()).collect();
        let mut p_part: Vec<Vec<Tensor>> = (0..cfg.n_layers).map(|_| Vec::new()).collect();
        for &(first, n, start, steps) in &units {
            if !keep_going(start_p as usize) {
                return Err(Error::Cancelled);
            }
            let alpha = alphas.narrow(0, start, steps).view([1, steps, 1]);
            // Rows prompt-major within each layer: prompt p's `steps` scaled copies.
            let who: Vec<i64> = prompts
                .clone()
                .flat_map(|p| std::iter::repeat_n(p, steps as usize))
                .collect();
            let acts: Vec<Tensor> = (first..first + n)
                .map(|l| {
                    let w = w[l].narrow(0, prompts.start, np).unsqueeze(1);
                    match &origin {
                        None => &alpha * w,
                        Some(b) => {
                            let b = b[l].narrow(0, prompts.start, np).unsqueeze(1);
                            &b + &alpha * (w - &b)
                        }
                    }
                    .reshape([np * steps, d_ff])
                    .detach()
                    .set_requires_grad(true)
                })
                .collect();
            let logits = scaled_logits(model, &t, first, &acts, &vec![who; n], opts.mode)?;
            let p = row_p(&logits, &prompts, steps, n as i64);
            let leaves: Vec<&Tensor> = acts.iter().collect();
            let g = Tensor::run_backward(&[p.sum(Kind::Float)], &leaves, false, false);
            let p = p.detach();
            let rows = np * steps;
            for (k, l) in (first..first + n).enumerate() {
                g_part[l].push(g[k].detach().view([np, steps, d_ff]));
                p_part[l].push(p.narrow(0, k as i64 * rows, rows).view([np, steps]));
            }
        }
        for l in layers.clone().filter(|&l| !g_part[l].is_empty()) {
            grads[l].push(Tensor::cat(&g_part[l], 1));
            probs[l].push(Tensor::cat(&p_part[l], 1));
        }
        start_p = prompts.end;
    }
    for l in layers.clone() {
        if grads[l].len() > 1 {
            grads[l] = vec![Tensor::cat(&grads[l], 0)];
            probs[l] = vec![Tensor::cat(&probs[l], 0)];
        }
    }
    // The ends of the path that the scaled steps leave out (see
    // `Options::scaled_steps`): at α = 0, P alone, from copies without
    // gradients; at α = 1, the traced pass itself: its P, and the gradient of
    // every layer from one backward pass.
    let all = 0..pn;
    if s0 > 0 {
        let who: Vec<i64> = all.clone().collect();
        // Every traced prompt at once, as many layers per pass as the
        // rows × tokens budget allows (no gradients are kept).
        let per_pass = (opts.max_row_tokens / (qs.len() * t.batch.seq_len).max(1)).max(1);
        tch::no_grad(|| -> Result<()> {
            let mut l = layers.start;
            while l < layers.end {
                let n = per_pass.min(layers.end - l);
                let acts: Vec<Tensor> = (l..l + n)
                    .map(|l| match &origin {
                        None => w[l].zeros_like(),
                        Some(b) => b[l].shallow_clone(),
                    })
                    .collect();
                let logits = scaled_logits(model, &t, l, &acts, &vec![who.clone(); n], opts.mode)?;
                let p = row_p(&logits, &all, 1, n as i64);
                for (k, l) in (l..l + n).enumerate() {
                    probs[l].insert(0, p.narrow(0, k as i64 * pn, pn).view([pn, 1]));
                }
                l += n;
            }
            Ok(())
        })?;
    }
    if s1 <= m {
        for l in layers.clone() {
            probs[l].push(p_target.view([pn, 1]));
        }
        if opts.riemann == Riemann::Right {
            let leaves: Vec<Tensor> = layers
                .clone()
                .map(|l| w[l].zeros_like().set_requires_grad(true))
                .collect();
            let logits = plain_logits(model, &t, layers.start, &leaves, opts.mode)?;
            let p = row_p(&logits, &all, 1, 1);
            let refs: Vec<&Tensor> = leaves.iter().collect();
            let g = Tensor::run_backward(&[p.sum(Kind::Float)], &refs, false, false);
            for (k, l) in layers.clone().enumerate() {
                grads[l].push(g[k].detach().view([pn, 1, d_ff]));
            }
        }
    }
    let chained = groups.len() < qs.len() || groups.iter().any(|g| g.c != 1.0);
    // The sum's `m` steps (from 1 or from 0) of a `[p, steps, …]` tensor
    // whose steps start at `from`: the gradients held start at `s0` (with
    // α = 1's at the end when it came from the traced pass), the P at 0.
    let window = |x: &Tensor, from: i64| match opts.riemann {
        Riemann::Right => x.narrow(1, 1 - from, m),
        Riemann::Left => x.narrow(1, -from, m),
    };
    // Everything stays on the device until the prompts are done, then comes
    // back in one read: per layer and prompt `[scores | activations | P(0),
    // P(w̄)]`, then each prompt's P(y*).
    let packed: Vec<Tensor> = layers
        .clone()
        .map(|l| {
            let grads = Tensor::cat(&grads[l], 1); // [p, ≥ m, d_ff]
            let probs = Tensor::cat(&probs[l], 1); // [p, m+1]
            let span = match &origin {
                None => w[l].shallow_clone(),
                Some(b) => &w[l] - &b[l],
            };
            if !chained {
                let summed = window(&grads, s0).sum_dim_intlist(1, false, Kind::Float);
                let s = span * summed / m as f64;
                let ends = Tensor::stack(&[probs.select(1, 0), probs.select(1, m)], 1);
                return Tensor::cat(&[s, w[l].to_kind(Kind::Float), ends], 1);
            }
            // A group's F(α_k) = c · ∏_rows P_r(α_k); row r's gradient is
            // weighted by the factors other than its own.
            let (mut s, mut act, mut ends) = (Vec::new(), Vec::new(), Vec::new());
            for g in groups {
                let (r0, n) = (g.rows.start as i64, g.rows.len() as i64);
                let p = probs.narrow(0, r0, n); // [n, m+1]
                let weights = Tensor::stack(
                    &(0..n)
                        .map(|r| {
                            let others: Vec<Tensor> =
                                (0..n).filter(|&o| o != r).map(|o| p.get(o)).collect();
                            if others.is_empty() {
                                p.get(r).ones_like() * g.c
                            } else {
                                Tensor::stack(&others, 0).prod_dim_int(0, false, Kind::Float) * g.c
                            }
                        })
                        .collect::<Vec<_>>(),
                    0,
                ); // [n, m+1]
                let weighted = (window(&grads.narrow(0, r0, n), s0)
                    * window(&weights, 0).unsqueeze(2))
                .sum_dim_intlist(1, false, Kind::Float); // [n, d_ff]
                s.push(
                    (span.narrow(0, r0, n) * weighted / m as f64).sum_dim_intlist(
                        0,
                        false,
                        Kind::Float,
                    ),
                );
                act.push(w[l].narrow(0, r0, n).mean_dim(0, false, Kind::Float));
                let f = p.prod_dim_int(0, false, Kind::Float) * g.c; // [m+1]
                ends.push(Tensor::stack(&[f.get(0), f.get(m)], 0));
            }
            Tensor::cat(
                &[
                    Tensor::stack(&s, 0),
                    Tensor::stack(&act, 0),
                    Tensor::stack(&ends, 0),
                ],
                1,
            )
        })
        .collect();
    let p_target = if chained {
        Tensor::stack(
            &groups
                .iter()
                .map(|g| {
                    p_target
                        .narrow(0, g.rows.start as i64, g.rows.len() as i64)
                        .prod(Kind::Float)
                        * g.c
                })
                .collect::<Vec<_>>(),
            0,
        )
    } else {
        p_target
    };
    let pn = groups.len() as i64;
    let all = Tensor::cat(&[Tensor::stack(&packed, 0).view(-1), p_target.view(-1)], 0);
    let host = super::host::to_host(&all.to_kind(Kind::Float));
    let (nl, per) = (layers.len() as i64, 2 * d_ff + 2);
    let table = host.narrow(0, 0, nl * pn * per).view([nl, pn, per]);
    (0..pn)
        .map(|p| {
            let mine = table.select(1, p);
            let scores = mine.narrow(1, 0, d_ff).contiguous();
            let activations = mine.narrow(1, d_ff, d_ff).contiguous();
            let ends: Vec<f32> = Vec::try_from(mine.narrow(1, 2 * d_ff, 2).contiguous().view(-1))?;
            let sums: Vec<f64> = Vec::try_from(scores.sum_dim_intlist(1, false, Kind::Double))?;
            Ok(Attribution {
                scores,
                activations,
                p_target: host.double_value(&[nl * pn * per + p]),
                p_zero: ends.iter().step_by(2).map(|&x| x as f64).collect(),
                residual: (0..nl as usize)
                    .map(|i| sums[i] - (ends[2 * i + 1] as f64 - ends[2 * i] as f64))
                    .collect(),
            })
        })
        .collect()
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
