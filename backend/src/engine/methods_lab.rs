//! Neuron-attribution methods behind one interface, and a judge that does not
//! care which one found the neurons.
//!
//! A method turns a fact's prompts (each with the answer's token) into one
//! score per neuron at the blank, `[layers, d_ff]` per prompt. The paper's
//! integrated gradients and its activation baseline are two; the others are
//! the cheaper or later methods researchers compare them with. Every
//! definition, with its source, is in `docs/methods.md`; the Python references
//! (`scripts/reference_methods.py`) hold the numbers.
//!
//! [`compare`] then judges the methods by intervention, not by agreement: each
//! method's top-`k` neurons are suppressed (×0) and amplified (×2) on the
//! fact's prompts and on unrelated prompts, and the methods' refined sets and
//! score rankings are compared pairwise.

use super::attribution::{attribute_many, attribute_many_from, Baseline, Options};
use super::intervene::{scaled_probabilities, Scaled};
use super::readout::probabilities;
use super::selection::{coarse, refine, Thresholds};
use super::specificity;
use super::trace::trace;
use super::{cost, host, Chains, Neuron, Query};
use crate::models::{Batch, Hooks, Model, ModelConfig, NeuronOp};
use crate::{Error, Result};
use kn_shared::methods::{KEffect, MethodResult, MethodsReport};
use rand::{Rng, SeedableRng};
use std::time::Instant;
use tch::{Kind, Tensor};

/// An attribution method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Integrated gradients from zero (the paper's; today's engine).
    Ig,
    /// Integrated gradients from the activations the blank takes when the
    /// prompt's content is masked ([`Query::masked`]), after AMIG's idea (Chen
    /// et al. 2024) of a baseline that is a real input rather than zero.
    IgMasked,
    /// The activation itself (the paper's baseline).
    Activation,
    /// Activation × gradient of P(answer) at the real activation: attribution
    /// patching, the first-order term of IG (IG with one right Riemann step).
    GradXAct,
    /// Yu & Ananiadou (2024): how much the neuron's value vector, added to the
    /// residual where the layer's FFN adds it, raises log P(answer) read
    /// through the model's output head. Forward only.
    LogprobIncrease,
    /// A control: seeded uniform scores, the same for every prompt of a fact.
    Random,
}

impl Method {
    pub const ALL: [Method; 6] = [
        Method::Ig,
        Method::IgMasked,
        Method::Activation,
        Method::GradXAct,
        Method::LogprobIncrease,
        Method::Random,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Method::Ig => "ig",
            Method::IgMasked => "ig-masked-baseline",
            Method::Activation => "activation",
            Method::GradXAct => "grad-x-act",
            Method::LogprobIncrease => "logprob-increase",
            Method::Random => "random",
        }
    }

    /// FLOPs of scoring one prompt of `seq` tokens (from the shapes; only the
    /// steps, sum and mode of `opts` matter).
    pub fn flops(self, cfg: &ModelConfig, opts: &Options, seq: usize) -> f64 {
        match self {
            Method::Ig => cost::attribution(cfg, opts, seq),
            Method::IgMasked => cost::attribution(cfg, opts, seq) + cost::forward(cfg, seq),
            // One forward pass and one backward, which costs another's products.
            Method::GradXAct => 2.0 * cost::forward(cfg, seq),
            Method::Activation => cost::forward(cfg, seq),
            Method::LogprobIncrease => cost::logprob_increase(cfg, seq),
            Method::Random => 0.0,
        }
    }

    /// FLOPs of scoring one query: [`Method::flops`] of every step its answer
    /// positions act on (one step for a one-token answer), and for the
    /// integrated methods a forward pass for each step held as it is.
    pub fn query_flops(self, cfg: &ModelConfig, opts: &Options, q: &Query) -> f64 {
        (0..q.answer.len())
            .map(|j| {
                let seq = q.step_len(j);
                match (q.acts_on(j), self) {
                    (true, _) => self.flops(cfg, opts, seq),
                    // Held steps: a forward pass reads their probability for
                    // the integrated methods (grad-x-act's ride its batched
                    // backward too); the others never look at them.
                    (false, Method::Ig | Method::IgMasked) => cost::forward(cfg, seq),
                    (false, Method::GradXAct) => 2.0 * cost::forward(cfg, seq),
                    (false, _) => 0.0,
                }
            })
            .sum()
    }
}

impl std::str::FromStr for Method {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "unknown method `{s}`; the methods are {}",
                    Method::ALL.map(Method::name).join(", ")
                ))
            })
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every prompt's `[layers, d_ff]` scores under `method`, on the CPU. `opts`
/// are IG's (steps, mode, batching); `seed` seeds `random`.
pub fn scores(
    model: &Model,
    qs: &[Query],
    method: Method,
    opts: &Options,
    seed: u64,
) -> Result<Vec<Tensor>> {
    if qs.is_empty() {
        return Err(Error::InvalidArgument(
            "a fact needs at least one prompt".into(),
        ));
    }
    let cfg = model.config();
    let all = 0..cfg.n_layers;
    match method {
        Method::Ig => Ok(attribute_many(model, qs, opts, all, &mut |_| true)?
            .into_iter()
            .map(|a| a.scores)
            .collect()),
        Method::IgMasked => {
            Ok(
                attribute_many_from(model, qs, opts, all, &mut |_| true, Baseline::Masked)?
                    .into_iter()
                    .map(|a| a.scores)
                    .collect(),
            )
        }
        Method::GradXAct => grad_x_act(model, qs),
        Method::Activation => activations(model, qs),
        Method::LogprobIncrease => logprob_increase(model, qs),
        Method::Random => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let v: Vec<f32> = (0..cfg.n_layers * cfg.d_ff)
                .map(|_| rng.random::<f32>())
                .collect();
            let t = Tensor::from_slice(&v).view([cfg.n_layers as i64, cfg.d_ff as i64]);
            Ok(qs.iter().map(|_| t.copy()).collect())
        }
    }
}

/// Most rows × tokens of one [`grad_x_act`] pass: a backward pass keeps every
/// layer's activations of every position (about 1.2 MB per row-token on
/// SmolLM2), so this bounds its memory near 1.2 GB.
const GRAD_ROW_TOKENS: usize = 1_024;

/// Activation × gradient at the real activations, every layer at once: one
/// forward pass in which each layer's neurons at each blank are multiplied by
/// a leaf of ones `s_l`, and one backward pass, since `∂F/∂s_l = a_l ⊙ ∂F/∂a_l`
/// with `a_l` flowing on to the later layers as it is (the total derivative
/// that IG with one right Riemann step also takes, layer by layer). `F` is
/// P(answer): a chain's acted steps' probabilities times its held steps'
/// (held as numbers, no gradient through them); a query's score is the sum over
/// its acted steps. Whole queries share a pass, up to [`GRAD_ROW_TOKENS`].
fn grad_x_act(model: &Model, qs: &[Query]) -> Result<Vec<Tensor>> {
    let cfg = model.config();
    let device = model.net.device();
    super::attribution::check_targets(cfg, qs)?;
    let mut out = Vec::with_capacity(qs.len());
    for group in super::batching::by_query(qs, GRAD_ROW_TOKENS) {
        let chains = Chains::new(&qs[group]);
        let steps = &chains.steps;
        let seqs: Vec<Vec<u32>> = steps.iter().map(|q| q.cloze.ids.clone()).collect();
        let blanks: Vec<usize> = steps.iter().map(|q| q.cloze.blank).collect();
        let batch = Batch::new(&seqs, &blanks, device)?;
        let rows = steps.len() as i64;
        let leaves: Vec<Tensor> = (0..cfg.n_layers)
            .map(|_| {
                Tensor::ones([rows, cfg.d_ff as i64], (Kind::Float, device)).set_requires_grad(true)
            })
            .collect();
        let mut hooks = Hooks::default();
        for (l, s) in leaves.iter().enumerate() {
            hooks.ops.insert(l, NeuronOp::Scale(s.shallow_clone()));
        }
        let logits = model.net.forward(&batch, &hooks).logits;
        let targets =
            Tensor::from_slice(&steps.iter().map(|q| q.target as i64).collect::<Vec<_>>())
                .to(device);
        let logp = logits
            .log_softmax(-1, Kind::Float)
            .gather(1, &targets.unsqueeze(1), false)
            .squeeze_dim(1);
        // Held steps enter F as numbers.
        let acted = Tensor::from_slice(&chains.acted).to(device);
        let logp = logp.where_self(&acted, &logp.detach());
        // F per query: exp of the sum of its steps' log-probabilities.
        let owner: Vec<i64> = chains
            .of
            .iter()
            .enumerate()
            .flat_map(|(i, r)| std::iter::repeat_n(i as i64, r.len()))
            .collect();
        let owner = Tensor::from_slice(&owner).to(device);
        let per_query = Tensor::zeros([chains.of.len() as i64], (Kind::Float, device))
            .index_add(0, &owner, &logp);
        per_query.exp().sum(Kind::Float).backward();
        let grads: Vec<Tensor> = leaves
            .iter()
            .map(|s| {
                let g = s.grad();
                // Every layer reaches the blank's logits; a leaf without a
                // gradient would be a model that skips a layer.
                if g.defined() {
                    g
                } else {
                    s.zeros_like()
                }
            })
            .collect();
        let all = Tensor::stack(&grads, 1); // [steps, layers, d_ff]
        let host = host::to_host(&all.to_kind(Kind::Float));
        let per_step: Vec<Tensor> = (0..rows).map(|r| host.get(r)).collect();
        out.extend(chains.over_acted(&per_step, false));
    }
    Ok(out)
}

/// The activations at the blank, from one forward pass over all prompts (a
/// multi-token answer: their mean over the steps it acts on).
fn activations(model: &Model, qs: &[Query]) -> Result<Vec<Tensor>> {
    let chains = Chains::new(qs);
    let steps = &chains.steps;
    let t = trace(model, steps)?;
    let all = tch::no_grad(|| {
        Tensor::stack(
            &t.a.iter().map(|a| t.batch.at_blank(a)).collect::<Vec<_>>(),
            1,
        )
    }); // [steps, layers, d_ff]
    let host = host::to_host(&all.to_kind(Kind::Float));
    let per_step: Vec<Tensor> = (0..steps.len() as i64).map(|p| host.get(p)).collect();
    Ok(chains.over_acted(&per_step, true))
}

/// Rows of a one-hot activation batch, bounded so that a chunk's logits stay
/// under 2^26 floats (256 MiB).
fn logprob_chunk(vocab: usize, d_ff: usize) -> usize {
    ((1usize << 26) / vocab.max(1)).clamp(1, d_ff)
}

/// `log P(y | ffn_out(h, a_i·e_i)) − log P(y | ffn_out(h, 0))` for every
/// neuron `i` of every layer, read through the model's head: the layer's
/// output with only neuron `i` active against none active (the FFN's bias and
/// BERT's LayerNorm in both, as the layer applies them). A multi-token answer:
/// the sum over the steps it acts on (log P(answer) is the sum of its pieces').
fn logprob_increase(model: &Model, qs: &[Query]) -> Result<Vec<Tensor>> {
    let chains = Chains::new(qs);
    // Only the acted steps are scored; the held ones are never read.
    let acted: Vec<Query> = (0..chains.of.len())
        .flat_map(|i| chains.acted_of(i).cloned())
        .collect();
    let mut scored = logprob_increase_steps(model, &acted)?.into_iter();
    let per_step: Vec<Tensor> = chains
        .acted
        .iter()
        .map(|&a| {
            if a {
                scored.next().expect("one score per acted step")
            } else {
                Tensor::new()
            }
        })
        .collect();
    Ok(chains.over_acted(&per_step, false))
}

/// [`logprob_increase`] of one-token queries.
fn logprob_increase_steps(model: &Model, qs: &[Query]) -> Result<Vec<Tensor>> {
    let t = trace(model, qs)?;
    let net = &model.net;
    let cfg = model.config();
    let d_ff = cfg.d_ff as i64;
    let chunk = logprob_chunk(cfg.vocab_size, cfg.d_ff) as i64;
    let device = net.device();
    let all = tch::no_grad(|| {
        let mut prompts = Vec::with_capacity(qs.len());
        for (p, q) in qs.iter().enumerate() {
            let target = q.target as i64;
            let mut layers = Vec::with_capacity(cfg.n_layers);
            for l in 0..cfg.n_layers {
                // `h` is the model's own state (GPT-NeoX's parallel blocks carry
                // more than `d`): only handed back.
                let h = t.batch.at_blank(&t.h[l]).get(p as i64).view([1, 1, -1]);
                let a = t.batch.at_blank(&t.a[l]).get(p as i64);
                let lp = |x: &Tensor| {
                    net.head(&x.squeeze_dim(1))
                        .log_softmax(-1, Kind::Float)
                        .select(1, target)
                };
                let none =
                    lp(&net.ffn_out(l, &h, &Tensor::zeros([1, 1, d_ff], (a.kind(), device))));
                let mut parts = Vec::new();
                let mut start = 0;
                while start < d_ff {
                    let n = chunk.min(d_ff - start);
                    let rows = Tensor::zeros([n, d_ff], (a.kind(), device));
                    rows.narrow(1, start, n)
                        .copy_(&a.narrow(0, start, n).diag(0));
                    let x = net.ffn_out(l, &h.expand([n, 1, -1], false), &rows.unsqueeze(1));
                    parts.push(lp(&x) - &none);
                    start += n;
                }
                layers.push(Tensor::cat(&parts, 0));
            }
            prompts.push(Tensor::stack(&layers, 0));
        }
        Tensor::stack(&prompts, 0)
    });
    let host = host::to_host(&all.to_kind(Kind::Float));
    Ok((0..qs.len() as i64).map(|p| host.get(p)).collect())
}

/// The `k` neurons with the highest score in a `[layers, d_ff]` map, best
/// first (ties to the lower layer and index).
pub fn top_k(scores: &Tensor, k: usize) -> Result<Vec<Neuron>> {
    let d_ff = scores.size()[1];
    let flat: Vec<f32> = Vec::try_from(scores.flatten(0, 1).to_kind(Kind::Float))?;
    let mut idx: Vec<usize> = (0..flat.len()).collect();
    idx.sort_by(|&a, &b| flat[b].total_cmp(&flat[a]).then(a.cmp(&b)));
    Ok(idx
        .into_iter()
        .take(k)
        .map(|f| Neuron {
            layer: f / d_ff as usize,
            index: f % d_ff as usize,
        })
        .collect())
}

/// Ranks from 1, ties given their mean rank.
fn ranks(v: &[f32]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let mean = (i + j) as f64 / 2.0 + 1.0;
        for &x in &idx[i..=j] {
            r[x] = mean;
        }
        i = j + 1;
    }
    r
}

/// Spearman's rank correlation (Pearson's of the ranks, ties averaged); 0 when
/// one side is constant.
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        cov += (x - ma) * (y - mb);
        va += (x - ma) * (x - ma);
        vb += (y - mb) * (y - mb);
    }
    if va == 0.0 || vb == 0.0 {
        0.0
    } else {
        cov / (va * vb).sqrt()
    }
}

/// |A ∩ B| / |A ∪ B|; `None` when both are empty.
pub fn jaccard(a: &[Neuron], b: &[Neuron]) -> Option<f64> {
    let a: std::collections::BTreeSet<_> = a.iter().collect();
    let b: std::collections::BTreeSet<_> = b.iter().collect();
    let union = a.union(&b).count();
    (union > 0).then(|| a.intersection(&b).count() as f64 / union as f64)
}

/// A control fact of the specificity rows: its kind (`same relation`, …),
/// answer and prompts.
pub struct Control {
    pub kind: String,
    pub target: String,
    pub queries: Vec<Query>,
}

/// What to compare, and on what.
pub struct Comparison<'a> {
    pub methods: &'a [Method],
    /// The fact's answer, as the report names it.
    pub target: &'a str,
    /// The fact's prompts, each with the answer.
    pub queries: &'a [Query],
    /// Prompts of unrelated facts, each with its own answer (specificity).
    pub unrelated: &'a [Query],
    /// The unrelated prompts' answer, as the specificity rows name it.
    pub unrelated_target: &'a str,
    /// More control facts for the specificity rows (suppression only).
    pub controls: &'a [Control],
    pub ks: &'a [usize],
    pub opts: &'a Options,
    pub thresholds: Thresholds,
    pub seed: u64,
}

/// Run every method on the fact and judge it (see the module's comment).
/// `progress(method index)` is called before each method; `false` cancels.
pub fn compare(
    model: &Model,
    c: &Comparison,
    progress: &mut dyn FnMut(usize) -> bool,
) -> Result<MethodsReport> {
    c.opts.validate()?;
    c.thresholds.validate()?;
    if c.methods.is_empty() {
        return Err(Error::InvalidArgument("no methods to compare".into()));
    }
    if c.ks.is_empty() || c.ks.contains(&0) {
        return Err(Error::InvalidArgument(
            "k must be a list of numbers of at least 1".into(),
        ));
    }
    let cfg = model.config();
    let max_k = *c.ks.iter().max().expect("not empty");
    if max_k > cfg.n_layers * cfg.d_ff {
        return Err(Error::InvalidArgument(format!(
            "k is {max_k}; the model has {} neurons",
            cfg.n_layers * cfg.d_ff
        )));
    }
    let (before, _) = probabilities(model, c.queries, &Hooks::default())?;
    let mut results = Vec::new();
    let mut means = Vec::new();
    for (i, &m) in c.methods.iter().enumerate() {
        if !progress(i) {
            return Err(Error::Cancelled);
        }
        let t0 = Instant::now();
        let per_prompt = scores(model, c.queries, m, c.opts, c.seed)?;
        let seconds = t0.elapsed().as_secs_f64();
        let gflop = c
            .queries
            .iter()
            .map(|q| m.query_flops(model.config(), c.opts, q))
            .sum::<f64>()
            / 1e9;
        let mean = Tensor::stack(&per_prompt, 0).mean_dim(0, false, Kind::Float);
        let top = top_k(&mean, max_k)?;
        let refined = (m != Method::Random).then(|| {
            let sets: Vec<Vec<Neuron>> = per_prompt
                .iter()
                .map(|s| coarse(s, c.thresholds.t))
                .collect();
            refine(&sets, c.thresholds.p, c.thresholds.min_prompts)
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        });
        means.push(Vec::<f32>::try_from(mean.flatten(0, 1))?);
        results.push(MethodResult {
            method: m.name().to_string(),
            seconds,
            gflop,
            top,
            refined,
            by_k: Vec::new(),
        });
    }
    judge_by_k(model, c, &mut results)?;
    let n = results.len();
    let jaccard = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| match (&results[i].refined, &results[j].refined) {
                    (Some(a), Some(b)) => jaccard(a, b),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let spearman = (0..n)
        .map(|i| (0..n).map(|j| spearman(&means[i], &means[j])).collect())
        .collect();
    Ok(MethodsReport {
        request: None,
        model: model.name.clone(),
        fingerprint: model.fingerprint.clone(),
        target: c.target.to_string(),
        prompts: c.queries.iter().map(|q| q.prompt.clone()).collect(),
        p_target: before,
        unrelated_prompts: c.unrelated.iter().map(|q| q.prompt.clone()).collect(),
        ks: c.ks.to_vec(),
        methods: results,
        jaccard,
        spearman,
    })
}

/// Every method's every k, suppressed and amplified, in one batched run per
/// prompt list (each list traced once), into each method's `by_k`; with
/// controls, each k's suppression beside them with intervals (specificity).
fn judge_by_k(model: &Model, c: &Comparison, results: &mut [MethodResult]) -> Result<()> {
    let sets: Vec<(&[Neuron], f64)> = results
        .iter()
        .flat_map(|r| {
            c.ks.iter()
                .flat_map(|&k| [(&r.top[..k], 0.0), (&r.top[..k], 2.0)])
        })
        .collect();
    let own = scaled_probabilities(model, c.queries, &sets)?;
    let unrelated = if c.unrelated.is_empty() {
        vec![None; sets.len()]
    } else {
        scaled_probabilities(model, c.unrelated, &sets)?
    };
    // The controls need the suppressions alone (the even sets).
    let suppressions: Vec<(&[Neuron], f64)> = sets.iter().step_by(2).copied().collect();
    let controls = c
        .controls
        .iter()
        .map(|x| scaled_probabilities(model, &x.queries, &suppressions))
        .collect::<Result<Vec<_>>>()?;
    let change = |p: &Option<Scaled>| p.as_ref().map(Scaled::change);
    let per_method = 2 * c.ks.len();
    for (i, r) in results.iter_mut().enumerate() {
        let at = |j: usize| i * per_method + j;
        let mut by_k = Vec::with_capacity(c.ks.len());
        for (j, &k) in c.ks.iter().enumerate() {
            let (Some(suppress), Some(amplify)) =
                (change(&own[at(2 * j)]), change(&own[at(2 * j + 1)]))
            else {
                return Err(Error::InvalidArgument(format!("{}: no top {k}", r.method)));
            };
            let mut rows = Vec::new();
            let mut push = |set: &str, target: &str, p: &Option<Scaled>| {
                if let Some(p) = p {
                    rows.push(specificity::row_of(set, target, &p.before, &p.after));
                }
            };
            push("this fact", c.target, &own[at(2 * j)]);
            push("unrelated", c.unrelated_target, &unrelated[at(2 * j)]);
            for (x, probs) in c.controls.iter().zip(&controls) {
                push(&x.kind, &x.target, &probs[at(2 * j) / 2]);
            }
            by_k.push(KEffect {
                k,
                suppress,
                amplify,
                suppress_unrelated: change(&unrelated[at(2 * j)]),
                amplify_unrelated: change(&unrelated[at(2 * j + 1)]),
                specificity: (rows.len() > 1).then(|| specificity::judge(rows)),
            });
        }
        r.by_k = by_k;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_correlations() {
        assert_eq!(ranks(&[3.0, 1.0, 2.0, 1.0]), vec![4.0, 1.5, 3.0, 1.5]);
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((spearman(&a, &[10.0, 20.0, 30.0, 40.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(spearman(&a, &[1.0; 4]), 0.0);
        let n = |l, i| Neuron { layer: l, index: i };
        assert_eq!(
            jaccard(&[n(0, 1), n(1, 2)], &[n(1, 2), n(2, 3)]),
            Some(1.0 / 3.0)
        );
        assert_eq!(jaccard(&[], &[]), None);
        assert_eq!("grad-x-act".parse::<Method>().unwrap(), Method::GradXAct);
        assert!("gradient".parse::<Method>().is_err());
    }
}
