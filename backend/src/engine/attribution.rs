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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            steps: 20,
            riemann: Riemann::Right,
            mode: Mode::Fast,
            max_batch: 64,
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
        if self.max_batch == 0 {
            return Err(Error::InvalidArgument(
                "max_batch must be at least 1".into(),
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
            h: hs,
            a: acts,
            kv: kvs,
            logits,
        })
    })
}

/// `r` copies of the traced prompt (for passes over the whole sequence).
fn copies(t: &Trace, r: i64) -> (Batch, i64) {
    let ids: Vec<u32> = Vec::<i64>::try_from(t.batch.ids.get(0))
        .expect("ids")
        .into_iter()
        .map(|i| i as u32)
        .collect();
    let blank = t.batch.blank.int64_value(&[0]) as usize;
    let b = Batch::new(
        &vec![ids; r as usize],
        &vec![blank; r as usize],
        t.batch.ids.device(),
    )
    .expect("valid copies");
    (b, r)
}

/// Logits at the blank, `[r, vocab]`, with layer `layer`'s blank activation
/// replaced by the rows of `act` (`[r, d_ff]`).
pub(crate) fn scaled_logits(
    model: &Model,
    t: &Trace,
    layer: usize,
    act: &Tensor,
    mode: Mode,
) -> Tensor {
    let net = &model.net;
    let n_layers = net.config().n_layers;
    let r = act.size()[0];
    let causal = !net.config().arch.is_masked();
    match mode {
        Mode::Naive => {
            let (b, _) = copies(t, r);
            let mut hooks = Hooks::default();
            hooks
                .ops
                .insert(layer, NeuronOp::Replace(act.shallow_clone()));
            net.forward(&b, &hooks).logits
        }
        Mode::Fast if causal => {
            // Causal blank = last position: resume on that position alone.
            let pos = t.batch.seq_len - 1;
            let d = t.h[layer].size()[2];
            let h = t.h[layer].narrow(1, pos as i64, 1).expand([r, 1, d], false);
            let mut x = net.ffn_out(layer, &h, &act.unsqueeze(1));
            for j in layer + 1..n_layers {
                let h = net.attention_at(j, &x, &t.kv[j], pos);
                x = net.ffn_out(j, &h, &net.ffn_act(j, &h));
            }
            net.head(&x.squeeze_dim(1))
        }
        Mode::Resume | Mode::Fast => {
            let (b, _) = copies(t, r);
            let ctx: Ctx = net.context(&b);
            let sz = t.a[layer].size();
            let a = b.put_at_blank(&t.a[layer].expand([r, sz[1], sz[2]], false), act);
            let hsz = t.h[layer].size();
            let mut x = net.ffn_out(layer, &t.h[layer].expand([r, hsz[1], hsz[2]], false), &a);
            for j in layer + 1..n_layers {
                let (h, _) = net.attention(j, &x, &ctx);
                x = net.ffn_out(j, &h, &net.ffn_act(j, &h));
            }
            net.head(&b.at_blank(&x))
        }
    }
}

/// Integrated gradients for every layer of one prompt.
pub fn attribute(model: &Model, q: &Query, opts: &Options) -> Result<Attribution> {
    opts.validate()?;
    let cfg = model.config().clone();
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
    let p_target = t.logits.softmax(-1, Kind::Float).double_value(&[0, target]);
    let alphas = Tensor::arange(m + 1, (Kind::Float, device)) / m as f64;
    let (mut scores, mut acts, mut p_zero, mut residual) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for l in 0..cfg.n_layers {
        let w = tch::no_grad(|| t.batch.at_blank(&t.a[l]).get(0)); // [d_ff]
        let mut grads = Vec::new();
        let mut probs = Vec::new();
        let mut start = 0i64;
        while start <= m {
            let n = (opts.max_batch as i64).min(m + 1 - start);
            let alpha = alphas.narrow(0, start, n);
            let act = (alpha.unsqueeze(1) * w.unsqueeze(0))
                .detach()
                .set_requires_grad(true);
            let logits = scaled_logits(model, &t, l, &act, opts.mode);
            let p = logits.softmax(-1, Kind::Float).select(1, target);
            let g = Tensor::run_backward(&[p.sum(Kind::Float)], &[&act], false, false);
            grads.push(g[0].detach());
            probs.push(p.detach());
            start += n;
        }
        let grads = Tensor::cat(&grads, 0); // [m+1, d_ff]
        let probs = Tensor::cat(&probs, 0); // [m+1]
        let summed = match opts.riemann {
            Riemann::Right => grads.narrow(0, 1, m),
            Riemann::Left => grads.narrow(0, 0, m),
        }
        .sum_dim_intlist(0, false, Kind::Float);
        let s = (&w * summed / m as f64).to(tch::Device::Cpu);
        let p0 = probs.double_value(&[0]);
        let p1 = probs.double_value(&[m]);
        residual.push(s.sum(Kind::Double).double_value(&[]) - (p1 - p0));
        p_zero.push(p0);
        scores.push(s);
        acts.push(w.to(tch::Device::Cpu));
    }
    Ok(Attribution {
        scores: Tensor::stack(&scores, 0),
        activations: Tensor::stack(&acts, 0),
        p_target,
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
    let rows = |t: &Tensor| -> Result<Vec<Vec<f32>>> {
        (0..t.size()[0])
            .map(|l| Ok(Vec::<f32>::try_from(t.get(l))?))
            .collect()
    };
    Ok(kn_shared::PromptAttribution {
        prompt: q.prompt.clone(),
        tokens: q
            .cloze
            .ids
            .iter()
            .map(|&i| model.tokenizer.token_text(i))
            .collect(),
        blank_index: q.cloze.blank,
        p_target: a.p_target,
        p_zero: a.p_zero.clone(),
        residual: a.residual.clone(),
        scores: rows(&a.scores)?,
        activations: rows(&a.activations)?,
    })
}
