//! Interventions on activations (SPEC: "Interventions on activations").
//!
//! At the blank of every prompt, the chosen neurons are multiplied by a factor
//! (0 suppresses, 2 amplifies); the answer's probability before and after gives
//! `(mean P_after − mean P_before) / mean P_before`. Controls: the same count of
//! random neurons (same layers, seeded), the baseline's neurons, and prompts of
//! an unrelated fact.

use super::batching::by_query;
use super::readout::{probabilities, prompt_effects, read_targets};
use super::trace::{trace, Trace};
use super::{Chains, Neuron, Query};
use crate::models::{At, Hooks, Kv, Model, ModelConfig, NeuronOp};
use crate::{Error, Result};
use kn_shared::InterventionEffect;
use rand::seq::index::sample;
use rand::SeedableRng;
use std::collections::{BTreeMap, BTreeSet};
use tch::{Kind, Tensor};

/// Check that every neuron exists in the model.
pub fn validate(cfg: &ModelConfig, neurons: &[Neuron]) -> Result<()> {
    if neurons.is_empty() {
        return Err(Error::InvalidArgument("the neuron set is empty".into()));
    }
    for n in neurons {
        if n.layer >= cfg.n_layers || n.index >= cfg.d_ff {
            return Err(Error::InvalidArgument(format!(
                "neuron {n} is out of range: the model has layers 0..{} with neurons 0..{}",
                cfg.n_layers - 1,
                cfg.d_ff - 1
            )));
        }
    }
    Ok(())
}

/// Hooks that multiply `neurons` by `factor` at the blank.
pub fn scale_hooks(model: &Model, neurons: &[Neuron], factor: f64) -> Result<Hooks> {
    let cfg = model.config();
    validate(cfg, neurons)?;
    if !factor.is_finite() {
        return Err(Error::InvalidArgument(format!(
            "factor {factor} is not a finite number"
        )));
    }
    let mut by_layer: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for n in neurons {
        by_layer.entry(n.layer).or_default().push(n.index as i64);
    }
    let mut hooks = Hooks::default();
    for (layer, idx) in by_layer {
        let mut f = vec![1f32; cfg.d_ff];
        for i in idx {
            f[i as usize] = factor as f32;
        }
        hooks.ops.insert(
            layer,
            NeuronOp::Scale(Tensor::from_slice(&f).to(model.net.device())),
        );
    }
    Ok(hooks)
}

/// Most rows × tokens of one unscaled pass that [`scaled_changes`] keeps (a
/// trace holds every layer's `h`, `a`, keys and values of every position:
/// about 0.3 MB per row-token on SmolLM2, so this bounds it near 600 MB).
const TRACE_ROW_TOKENS: usize = 2_048;

/// [`scaled_change`] for many neuron sets at once: per `(neurons, factor)`, the
/// relative change of mean P(answer) over `queries`; `None` for an empty set.
/// [`scaled_changes_on`] with every set on every query.
pub fn scaled_changes(
    model: &Model,
    queries: &[Query],
    sets: &[(&[Neuron], f64)],
) -> Result<Vec<Option<f64>>> {
    Ok(scaled_probabilities(model, queries, sets)?
        .into_iter()
        .map(|p| p.as_ref().map(Scaled::change))
        .collect())
}

/// [`scaled_probabilities_on`] with every set on every query.
pub fn scaled_probabilities(
    model: &Model,
    queries: &[Query],
    sets: &[(&[Neuron], f64)],
) -> Result<Vec<Option<Scaled>>> {
    let all: Vec<usize> = (0..queries.len()).collect();
    let jobs: Vec<Scaling> = sets
        .iter()
        .map(|&(neurons, factor)| Scaling {
            neurons,
            factor,
            prompts: all.clone(),
        })
        .collect();
    scaled_probabilities_on(model, queries, &jobs)
}

/// One intervention of [`scaled_changes_on`]: scale `neurons` by `factor` on
/// some of the queries.
pub struct Scaling<'a> {
    pub neurons: &'a [Neuron],
    pub factor: f64,
    /// Indices into the query list (one named twice counts twice).
    pub prompts: Vec<usize>,
}

/// Per job, the relative change of mean P(answer) over its own queries when
/// its neurons are scaled by its factor; `None` for an empty set or no query.
///
/// The unscaled pass runs once for every job, and the jobs' copies of their
/// queries' steps run together as the rows of a few large passes instead of
/// one small pass per set. A causal model's copies start at their set's first
/// scaled layer and recompute only the blank, its last position: a scale at
/// the blank reaches no earlier position, so their keys and values, and
/// everything below the first scaled layer, are the unscaled pass's (a
/// staircase over the sets' first layers, as attribution's fast mode). A
/// masked model's copies run whole, each row with its set's scales. Whole
/// queries are taken [`TRACE_ROW_TOKENS`] at a time, so a query is traced once
/// however many jobs name it (the report's facts each name their own prompts
/// and other facts'); copies at most
/// [`MAX_ROW_TOKENS`](super::batching::MAX_ROW_TOKENS) to a
/// pass. Every job's scales are held at once (a `[d_ff]` tensor per layer its
/// set touches): callers bound the number of jobs. The numbers are
/// [`scaled_change`]'s (tests/interventions.rs holds them to it on every
/// architecture).
pub fn scaled_changes_on(
    model: &Model,
    queries: &[Query],
    jobs: &[Scaling],
) -> Result<Vec<Option<f64>>> {
    Ok(scaled_probabilities_on(model, queries, jobs)?
        .into_iter()
        .map(|p| p.as_ref().map(Scaled::change))
        .collect())
}

/// P(answer) of each of a job's queries, in the order the job names them,
/// unscaled and under its scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaled {
    pub before: Vec<f64>,
    pub after: Vec<f64>,
}

impl Scaled {
    /// The relative change of the mean ([`relative_change`]).
    pub fn change(&self) -> f64 {
        relative_change(&self.before, &self.after)
    }
}

/// [`scaled_changes_on`]'s probabilities, before they are reduced to one
/// relative change: for an interval over the prompts (the methods lab's
/// specificity) the caller needs each prompt's.
pub fn scaled_probabilities_on(
    model: &Model,
    queries: &[Query],
    jobs: &[Scaling],
) -> Result<Vec<Option<Scaled>>> {
    if queries.is_empty() {
        return Err(Error::InvalidArgument("no prompts".into()));
    }
    if let Some(&i) = jobs
        .iter()
        .flat_map(|j| &j.prompts)
        .find(|&&i| i >= queries.len())
    {
        return Err(Error::InvalidArgument(format!(
            "prompt {i} of an intervention's list: there are {} prompts",
            queries.len()
        )));
    }
    // (job index, hooks, first scaled layer) of the jobs with neurons and
    // queries, by that layer.
    let mut scaled: Vec<(usize, Hooks, usize)> = Vec::new();
    for (k, j) in jobs.iter().enumerate() {
        if j.prompts.is_empty() {
            continue;
        }
        if let Some(&first) = j.neurons.iter().map(|n| &n.layer).min() {
            scaled.push((k, scale_hooks(model, j.neurons, j.factor)?, first));
        }
    }
    scaled.sort_by_key(|s| s.2);
    let mut out = vec![None; jobs.len()];
    if scaled.is_empty() {
        return Ok(out);
    }
    // Per query, the scaled jobs (indices into `scaled`) that name it.
    let mut wanted: Vec<Vec<usize>> = vec![Vec::new(); queries.len()];
    for (c, (k, _, _)) in scaled.iter().enumerate() {
        for &qi in &jobs[*k].prompts {
            if wanted[qi].last() != Some(&c) {
                wanted[qi].push(c);
            }
        }
    }
    let mut before = vec![0.0; queries.len()];
    // Per scaled job, P(answer) of each query it names, under its scaling.
    let mut after: Vec<BTreeMap<usize, f64>> = vec![BTreeMap::new(); scaled.len()];
    for group in by_query(queries, TRACE_ROW_TOKENS) {
        let chains = Chains::new(&queries[group.clone()]);
        let steps = &chains.steps;
        // Recomputing the blank alone needs every blank at its row's last
        // position, as every causal cloze has it; otherwise (masked models)
        // the copies run every position from their first scaled layer up.
        let blank_only = !model.config().arch.is_masked()
            && steps.iter().all(|q| q.cloze.blank + 1 == q.cloze.ids.len());
        let t = trace(model, steps)?;
        let targets: Vec<u32> = steps.iter().map(|q| q.target).collect();
        let b = read_targets(&t.logits, &targets)?.0;
        for (qi, p) in group.clone().zip(chains.product(&b)) {
            before[qi] = p;
        }
        // The copies: (job, step) for the steps the hooks act on of every
        // query a job names, job-major, so that the rows of a pass join in
        // order of their first scaled layer. The other steps (a multi-token
        // answer's later pieces under `AnswerPositions::First`) keep their
        // unscaled P.
        let mut rows: Vec<(usize, usize)> = Vec::new();
        for (l, qi) in group.clone().enumerate() {
            for &c in &wanted[qi] {
                rows.extend(
                    chains.of[l]
                        .clone()
                        .filter(|&s| chains.acted[s])
                        .map(|s| (c, s)),
                );
            }
        }
        rows.sort_by_key(|&(c, _)| c);
        let seq = steps.iter().map(|q| q.cloze.ids.len()).max().unwrap_or(1);
        let per_pass = (super::batching::MAX_ROW_TOKENS / seq).max(1);
        let mut p_of: BTreeMap<(usize, usize), f64> = BTreeMap::new();
        for pass in rows.chunks(per_pass) {
            let copies = Rows::new(pass, &scaled, model);
            let logits = if blank_only {
                copies.resumed(model, &t)?
            } else {
                copies.staircase(model, &t)?
            };
            let targets: Vec<u32> = pass.iter().map(|&(_, s)| targets[s]).collect();
            let (p, _) = read_targets(&logits, &targets)?;
            p_of.extend(pass.iter().copied().zip(p));
        }
        for (l, qi) in group.enumerate() {
            for &c in &wanted[qi] {
                let p = chains.of[l]
                    .clone()
                    .map(|s| p_of.get(&(c, s)).copied().unwrap_or(b[s]))
                    .product();
                after[c].insert(qi, p);
            }
        }
    }
    for (c, (k, _, _)) in scaled.iter().enumerate() {
        let prompts = &jobs[*k].prompts;
        out[*k] = Some(Scaled {
            before: prompts.iter().map(|&qi| before[qi]).collect(),
            after: prompts.iter().map(|&qi| after[c][&qi]).collect(),
        });
    }
    Ok(out)
}

/// The copies of one pass of [`scaled_changes_on`]: one per (job, acted
/// step), with each layer's scales as a table indexed per row.
struct Rows<'a> {
    /// `(set in this pass, step)` of each row, in order of the sets' first
    /// scaled layer.
    of: Vec<(usize, usize)>,
    /// The pass's sets, with their first scaled layer.
    sets: Vec<&'a (usize, Hooks, usize)>,
    /// `[d_ff]` ones: the scale of a row its set leaves alone at a layer.
    ones: Tensor,
}

impl<'a> Rows<'a> {
    /// `rows` are `(index into scaled, step)`, sorted by that index; `scaled`
    /// is sorted by first scaled layer.
    fn new(rows: &[(usize, usize)], scaled: &'a [(usize, Hooks, usize)], model: &Model) -> Self {
        let cfg = model.config();
        let ones = Tensor::ones([cfg.d_ff as i64], (Kind::Float, model.net.device()));
        let mut sets: Vec<&(usize, Hooks, usize)> = Vec::new();
        let mut of = Vec::with_capacity(rows.len());
        let mut last = None;
        for &(c, s) in rows {
            if last != Some(c) {
                sets.push(&scaled[c]);
                last = Some(c);
            }
            of.push((sets.len() - 1, s));
        }
        Rows { of, sets, ones }
    }

    /// The rows of the sets whose first scaled layer is `layer`: a run of
    /// `self.of`, which is in order of that layer.
    fn entering(&self, layer: usize) -> Vec<(usize, usize)> {
        self.of
            .iter()
            .copied()
            .filter(|&(c, _)| self.sets[c].2 == layer)
            .collect()
    }

    /// The `[rows.len(), d_ff]` scales of layer `layer` for `rows`, or `None`
    /// when none of them is scaled there.
    fn scales(&self, layer: usize, rows: &[(usize, usize)]) -> Option<Tensor> {
        let mut table = vec![self.ones.shallow_clone()];
        let mut index = vec![0i64; self.sets.len()];
        for (c, &(_, h, _)) in self.sets.iter().enumerate() {
            if let Some(NeuronOp::Scale(f)) = h.ops.get(&layer) {
                index[c] = table.len() as i64;
                table.push(f.shallow_clone());
            }
        }
        if table.len() == 1 {
            return None;
        }
        let per_row: Vec<i64> = rows.iter().map(|&(c, _)| index[c]).collect();
        let idx = Tensor::from_slice(&per_row).to(self.ones.device());
        Some(Tensor::stack(&table, 0).index_select(0, &idx))
    }

    /// Masked models (or any): each set's copies join at its first scaled
    /// layer from the trace (its output there with the blank's row
    /// recomputed), run every position of the later layers with each row's
    /// scales at the blank, and the top layer only where the blank reads;
    /// `[rows, vocab]` logits in the order of `self.of`.
    fn staircase(&self, model: &Model, t: &Trace) -> Result<Tensor> {
        let net = &model.net;
        let top = net.config().n_layers - 1;
        let first = self.sets.first().map_or(0, |x| x.2);
        tch::no_grad(|| {
            // Rows join in set order (the sets come sorted by first layer), so
            // the rows at any layer are a prefix of the final order.
            let joined_all = &self.of;
            let who_all: Vec<i64> = joined_all.iter().map(|&(_, st)| st as i64).collect();
            let batch = t.batch.select(&who_all);
            let ctx = net.context(&batch);
            let (mut x, mut at_top): (Option<Tensor>, Option<Tensor>) = (None, None);
            let mut rows = 0usize;
            for j in first..=top {
                let joined = &joined_all[..rows];
                if let Some(prev) = x.take() {
                    let r = rows as i64;
                    let ctx_r = ctx.rows(0, r);
                    let blank = batch.blank.narrow(0, 0, r);
                    if j == top {
                        let h = net.attention_one(j, &prev, &ctx_r, &blank);
                        let a = net.ffn_act(j, &h);
                        let a = match self.scales(j, joined) {
                            Some(f) => {
                                let k = a.kind();
                                a * f.to_kind(k).unsqueeze(1)
                            }
                            None => a,
                        };
                        at_top = Some(net.ffn_out(j, &h, &a).squeeze_dim(1));
                    } else {
                        let (h, _) = net.attention(j, &prev, &ctx_r);
                        let a = net.ffn_act(j, &h);
                        let a = match self.scales(j, joined) {
                            Some(f) => {
                                let idx = Tensor::arange(r, (Kind::Int64, a.device()));
                                let at = [Some(&idx), Some(&blank)];
                                let scaled = a.index(&at) * f.to_kind(a.kind());
                                a.index_put(&at, &scaled, false)
                            }
                            None => a,
                        };
                        x = Some(net.ffn_out(j, &h, &a));
                    }
                }
                let entering = self.entering(j);
                if entering.is_empty() {
                    continue;
                }
                let who: Vec<i64> = entering.iter().map(|&(_, st)| st as i64).collect();
                let h = t.rows(&t.batch.at_blank(&t.h[j]), &who);
                let a = t.rows(&t.batch.at_blank(&t.a[j]), &who);
                let a = match self.scales(j, &entering) {
                    Some(f) => {
                        let k = a.kind();
                        a * f.to_kind(k)
                    }
                    None => a,
                };
                let blank_out = net.ffn_out(j, &h, &a); // [r, d]
                if j == top {
                    at_top = Some(match at_top {
                        None => blank_out,
                        Some(prev) => Tensor::cat(&[prev, blank_out], 0),
                    });
                } else {
                    let sub = t.batch.select(&who);
                    let new = sub.put_at_blank(&t.rows(&t.out[j], &who), &blank_out);
                    x = Some(match x {
                        None => new,
                        Some(prev) => Tensor::cat(&[prev, new], 0),
                    });
                }
                rows += entering.len();
            }
            Ok(net.head(&at_top.expect("a set has a layer")))
        })
    }

    /// Causal models: each set's copies join at its first scaled layer from
    /// the trace, and only the blank (the last position) is recomputed from
    /// there, attending to the trace's keys and values; `[rows, vocab]` logits
    /// in the order of `self.of`.
    fn resumed(&self, model: &Model, t: &Trace) -> Result<Tensor> {
        let net = &model.net;
        let s = t.batch.seq_len as i64;
        let first = self.sets.first().map_or(0, |x| x.2);
        let scale =
            |a: Tensor, layer: usize, rows: &[(usize, usize)]| match self.scales(layer, rows) {
                Some(f) => {
                    let f = f.to_kind(a.kind()).unsqueeze(1);
                    a * f
                }
                None => a,
            };
        tch::no_grad(|| {
            let mut x: Option<Tensor> = None;
            let mut joined: Vec<(usize, usize)> = Vec::new();
            for j in first..net.config().n_layers {
                if let Some(prev) = &x {
                    let who: Vec<i64> = joined.iter().map(|&(_, st)| st as i64).collect();
                    let pos: Vec<i64> = who.iter().map(|&p| t.blanks[p as usize]).collect();
                    let at = At::new(&pos, s, net.device());
                    let past = Kv {
                        k: t.rows(&t.kv[j].k, &who),
                        v: t.rows(&t.kv[j].v, &who),
                        q: None,
                    };
                    let h = net.attention_at(j, prev, &past, &at);
                    let a = scale(net.ffn_act(j, &h), j, &joined);
                    x = Some(net.ffn_out(j, &h, &a));
                }
                let entering = self.entering(j);
                if entering.is_empty() {
                    continue;
                }
                let who: Vec<i64> = entering.iter().map(|&(_, st)| st as i64).collect();
                let h = t.rows(&t.batch.at_blank(&t.h[j]), &who).unsqueeze(1);
                let a = t.rows(&t.batch.at_blank(&t.a[j]), &who).unsqueeze(1);
                let new = net.ffn_out(j, &h, &scale(a, j, &entering));
                x = Some(match x {
                    None => new,
                    Some(prev) => Tensor::cat(&[prev, new], 0),
                });
                joined.extend(entering);
            }
            // `joined` is `self.of`: rows joined layer by layer, and `of` is
            // in order of the layer they join at.
            debug_assert_eq!(joined, self.of);
            Ok(net.head(&x.expect("a set has a layer").squeeze_dim(1)))
        })
    }
}

/// Relative change of the mean of `after` against the mean of `before`
/// (SPEC's measure of an intervention); 0 when `before` averages 0.
pub fn relative_change(before: &[f64], after: &[f64]) -> f64 {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (b, a) = (mean(before), mean(after));
    if b > 0.0 {
        (a - b) / b
    } else {
        0.0
    }
}

/// [`relative_change`] of P(answer) over `queries` when `neurons` are scaled by
/// `factor`, against the unscaled probabilities `before`.
pub fn scaled_change(
    model: &Model,
    queries: &[Query],
    before: &[f64],
    neurons: &[Neuron],
    factor: f64,
) -> Result<f64> {
    let (after, _) = probabilities(model, queries, &scale_hooks(model, neurons, factor)?)?;
    Ok(relative_change(before, &after))
}

/// Scale `neurons` by `factor` at the blank of every query and report the effect.
pub fn intervene(
    model: &Model,
    queries: &[Query],
    neurons: &[Neuron],
    factor: f64,
) -> Result<InterventionEffect> {
    let hooks = scale_hooks(model, neurons, factor)?;
    let (before, top_before) = probabilities(model, queries, &Hooks::default())?;
    let (after, top_after) = probabilities(model, queries, &hooks)?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (mb, ma) = (mean(&before), mean(&after));
    let relative_change = relative_change(&before, &after);
    Ok(InterventionEffect {
        neurons: neurons.to_vec(),
        factor,
        prompts: prompt_effects(model, queries, (&before, &top_before), (&after, &top_after)),
        mean_before: mb,
        mean_after: ma,
        relative_change,
    })
}

/// Random neurons with the same count per layer as `neurons`, none of them in
/// `neurons`, reproducible from `seed`.
pub fn random_like(cfg: &ModelConfig, neurons: &[Neuron], seed: u64) -> Vec<Neuron> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let taken: BTreeSet<Neuron> = neurons.iter().copied().collect();
    let mut per_layer: BTreeMap<usize, usize> = BTreeMap::new();
    for n in neurons {
        *per_layer.entry(n.layer).or_default() += 1;
    }
    let mut out = Vec::new();
    for (layer, count) in per_layer {
        let free: Vec<usize> = (0..cfg.d_ff)
            .filter(|&i| !taken.contains(&Neuron { layer, index: i }))
            .collect();
        for k in sample(&mut rng, free.len(), count.min(free.len())) {
            out.push(Neuron {
                layer,
                index: free[k],
            });
        }
    }
    out.sort();
    out
}
