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

use super::Query;
use crate::models::{Batch, Ctx, Hooks, Kv, Model, NeuronOp};
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

/// The unscaled pass of one prompt, kept so scaled passes can resume from it.
pub(crate) struct Trace {
    pub batch: Batch,
    /// The prompt's tokens and blank, as `batch` holds them (kept on the host so
    /// scaled passes need no read-back).
    ids: Vec<u32>,
    blank: usize,
    /// Per layer: the post-attention residual `h`, `[1, s, d]`.
    pub h: Vec<Tensor>,
    /// Per layer: the neurons `a` at every position, `[1, s, d_ff]`.
    pub a: Vec<Tensor>,
    /// Per layer: keys and values (used by causal `Fast` passes).
    pub kv: Vec<Kv>,
    /// `[1, vocab]` logits at the blank.
    pub logits: Tensor,
}

pub(crate) fn trace(model: &Model, q: &Query) -> Result<Trace> {
    let net = &model.net;
    let batch = Batch::new(
        std::slice::from_ref(&q.cloze.ids),
        &[q.cloze.blank],
        net.device(),
    )?;
    tch::no_grad(|| {
        let ctx = net.context(&batch);
        let mut x = net.embed(&batch);
        let (mut hs, mut acts, mut kvs) = (Vec::new(), Vec::new(), Vec::new());
        for l in 0..net.config().n_layers {
            let (h, kv) = net.attention(l, &x, &ctx);
            let a = net.ffn_act(l, &h);
            x = net.ffn_out(l, &h, &a);
            hs.push(h);
            acts.push(a);
            kvs.push(kv);
        }
        let logits = net.head(&batch.at_blank(&x));
        Ok(Trace {
            batch,
            ids: q.cloze.ids.clone(),
            blank: q.cloze.blank,
            h: hs,
            a: acts,
            kv: kvs,
            logits,
        })
    })
}

/// `r` copies of the traced prompt (for passes over the whole sequence).
fn copies(t: &Trace, r: i64) -> Result<Batch> {
    Batch::new(
        &vec![t.ids.clone(); r as usize],
        &vec![t.blank; r as usize],
        t.batch.ids.device(),
    )
}

/// Logits at the blank for scaled copies of the traced prompt.
///
/// `acts[g]` (`[r_g, d_ff]`) replaces the blank activation of layer
/// `first + g`. In the resuming modes the copies form a staircase: the rows of
/// layer `first` start at its FFN output, and at every later layer `j` the rows
/// of layer `j` join the batch, so one pass (and one backward) serves the whole
/// group with larger matrix products. Rows come back in the order of `acts`.
pub(crate) fn scaled_logits(
    model: &Model,
    t: &Trace,
    first: usize,
    acts: &[Tensor],
    mode: Mode,
) -> Result<Tensor> {
    let net = &model.net;
    let n_layers = net.config().n_layers;
    let causal = !net.config().arch.is_masked();
    if mode == Mode::Naive {
        // One full forward pass per layer, as the public implementations do.
        let mut out = Vec::new();
        for (g, act) in acts.iter().enumerate() {
            let b = copies(t, act.size()[0])?;
            let mut hooks = Hooks::default();
            hooks
                .ops
                .insert(first + g, NeuronOp::Replace(act.shallow_clone()));
            out.push(net.forward(&b, &hooks).logits);
        }
        return Ok(Tensor::cat(&out, 0));
    }
    let total: i64 = acts.iter().map(|a| a.size()[0]).sum();
    let last = first + acts.len() - 1;
    if mode == Mode::Fast && causal {
        // Causal blank = last position: only that position is recomputed; the
        // earlier positions' keys and values come from the trace.
        let pos = t.batch.seq_len - 1;
        let d = t.h[first].size()[2];
        let mut x: Option<Tensor> = None;
        for j in first..n_layers {
            if let Some(prev) = &x {
                let h = net.attention_at(j, prev, &t.kv[j], pos);
                x = Some(net.ffn_out(j, &h, &net.ffn_act(j, &h)));
            }
            if j <= last {
                let act = &acts[j - first];
                let r = act.size()[0];
                let h = t.h[j].narrow(1, pos as i64, 1).expand([r, 1, d], false);
                let entering = net.ffn_out(j, &h, &act.unsqueeze(1));
                // New rows go first, so that the final order is last..first; reversed below.
                x = Some(match x {
                    None => entering,
                    Some(prev) => Tensor::cat(&[entering, prev], 0),
                });
            }
        }
        let logits = net.head(&x.expect("at least one layer").squeeze_dim(1));
        return Ok(reorder(&logits, acts));
    }
    // Whole-sequence staircase (masked models, or `Resume`).
    let b = copies(t, total)?;
    let ctx: Ctx = net.context(&b);
    let (s, d, d_ff) = (
        t.batch.seq_len as i64,
        t.h[first].size()[2],
        t.a[first].size()[2],
    );
    let mut x: Option<Tensor> = None;
    let mut rows = 0i64;
    for j in first..n_layers {
        if let Some(prev) = &x {
            let sub = ctx_rows(&ctx, rows);
            let (h, _) = net.attention(j, prev, &sub);
            x = Some(net.ffn_out(j, &h, &net.ffn_act(j, &h)));
        }
        if j <= last {
            let act = &acts[j - first];
            let r = act.size()[0];
            let sub = copies(t, r)?;
            let a = sub.put_at_blank(&t.a[j].expand([r, s, d_ff], false), act);
            let entering = net.ffn_out(j, &t.h[j].expand([r, s, d], false), &a);
            x = Some(match x {
                None => entering,
                Some(prev) => Tensor::cat(&[entering, prev], 0),
            });
            rows += r;
        }
    }
    let logits = net.head(&b.at_blank(&x.expect("at least one layer")));
    Ok(reorder(&logits, acts))
}

/// The first `rows` rows of a context built for the whole staircase.
fn ctx_rows(ctx: &Ctx, rows: i64) -> Ctx {
    Ctx {
        mask: ctx.mask.narrow(0, 0, rows),
        rope: ctx
            .rope
            .as_ref()
            .map(|(c, s)| (c.shallow_clone(), s.shallow_clone())),
    }
}

/// The staircase stacks later layers' rows first; put them back in `acts` order.
fn reorder(logits: &Tensor, acts: &[Tensor]) -> Tensor {
    let mut parts = Vec::with_capacity(acts.len());
    let mut end = logits.size()[0];
    for a in acts {
        let r = a.size()[0];
        parts.push(logits.narrow(0, end - r, r));
        end -= r;
    }
    Tensor::cat(&parts, 0)
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
    opts.validate()?;
    let cfg = model.config().clone();
    if layers.is_empty() || layers.end > cfg.n_layers {
        return Err(Error::InvalidArgument(format!(
            "layers {layers:?}: the model has layers 0..{}",
            cfg.n_layers
        )));
    }
    if q.target as usize >= cfg.vocab_size {
        return Err(Error::InvalidArgument(format!(
            "target id {} is outside the vocabulary",
            q.target
        )));
    }
    let t = trace(model, q)?;
    let device = model.net.device();
    let m = opts.steps as i64;
    let target = q.target as i64;
    let p_target = t.logits.softmax(-1, Kind::Float).select(1, target);
    let alphas = Tensor::arange(m + 1, (Kind::Float, device)) / m as f64;
    let w: Vec<Tensor> = tch::no_grad(|| {
        (0..cfg.n_layers)
            .map(|l| t.batch.at_blank(&t.a[l]).get(0))
            .collect()
    });
    // Work units: (first layer, layers in the group, first step, steps). Whole
    // layers are grouped while their m + 1 rows fit in max_batch; a layer whose
    // rows alone exceed it is split into chunks of steps.
    let per_layer = (m + 1) as usize;
    let max_batch = opts
        .max_batch
        .min((opts.max_row_tokens / q.cloze.ids.len().max(1)).max(1));
    let mut units = Vec::new();
    if per_layer <= max_batch {
        let group = (max_batch / per_layer).max(1);
        let mut l = layers.start;
        while l < layers.end {
            let n = group.min(layers.end - l);
            units.push((l, n, 0i64, m + 1));
            l += n;
        }
    } else {
        for l in layers.clone() {
            let mut start = 0i64;
            while start <= m {
                let n = (max_batch as i64).min(m + 1 - start);
                units.push((l, 1, start, n));
                start += n;
            }
        }
    }
    let mut grads: Vec<Vec<Tensor>> = (0..cfg.n_layers).map(|_| Vec::new()).collect();
    let mut probs: Vec<Vec<Tensor>> = (0..cfg.n_layers).map(|_| Vec::new()).collect();
    for (first, n, start, steps) in units {
        if !keep_going() {
            return Err(Error::Cancelled);
        }
        let alpha = alphas.narrow(0, start, steps);
        let acts: Vec<Tensor> = (first..first + n)
            .map(|l| {
                (alpha.unsqueeze(1) * w[l].unsqueeze(0))
                    .detach()
                    .set_requires_grad(true)
            })
            .collect();
        let logits = scaled_logits(model, &t, first, &acts, opts.mode)?;
        let p = logits.softmax(-1, Kind::Float).select(1, target);
        let leaves: Vec<&Tensor> = acts.iter().collect();
        let g = Tensor::run_backward(&[p.sum(Kind::Float)], &leaves, false, false);
        let p = p.detach();
        for (k, l) in (first..first + n).enumerate() {
            grads[l].push(g[k].detach());
            probs[l].push(p.narrow(0, k as i64 * steps, steps));
        }
    }
    // Everything stays on the device until the prompt is done, then comes back
    // in one read: `[scores | activations | P(0), P(w̄)]` per layer, and P(y*).
    let d_ff = cfg.d_ff as i64;
    let packed: Vec<Tensor> = layers
        .clone()
        .map(|l| {
            let grads = Tensor::cat(&grads[l], 0); // [m+1, d_ff]
            let probs = Tensor::cat(&probs[l], 0); // [m+1]
            let summed = match opts.riemann {
                Riemann::Right => grads.narrow(0, 1, m),
                Riemann::Left => grads.narrow(0, 0, m),
            }
            .sum_dim_intlist(0, false, Kind::Float);
            let s = &w[l] * summed / m as f64;
            let ends = Tensor::stack(&[probs.get(0), probs.get(m)], 0);
            Tensor::cat(&[s, w[l].shallow_clone(), ends], 0)
        })
        .collect();
    let all = Tensor::cat(&[Tensor::stack(&packed, 0).view(-1), p_target.view(-1)], 0);
    let host = super::host::to_host(&all.to_kind(Kind::Float));
    let n = layers.len() as i64;
    let per = 2 * d_ff + 2;
    let table = host.narrow(0, 0, n * per).view([n, per]);
    let scores = table.narrow(1, 0, d_ff).contiguous();
    let activations = table.narrow(1, d_ff, d_ff).contiguous();
    let ends: Vec<f32> = Vec::try_from(table.narrow(1, 2 * d_ff, 2).contiguous().view(-1))?;
    let sums: Vec<f64> = Vec::try_from(scores.sum_dim_intlist(1, false, Kind::Double))?;
    let p_zero: Vec<f64> = ends.iter().step_by(2).map(|&p| p as f64).collect();
    let residual = (0..n as usize)
        .map(|i| sums[i] - (ends[2 * i + 1] as f64 - ends[2 * i] as f64))
        .collect();
    Ok(Attribution {
        scores,
        activations,
        p_target: host.double_value(&[n * per]),
        p_zero,
        residual,
    })
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
