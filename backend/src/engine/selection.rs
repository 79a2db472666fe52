//! Selecting knowledge neurons (SPEC: "Selecting and refining knowledge neurons").
//!
//! 1. Coarse set of one prompt: `Attr > t · max(Attr)` over all layers and neurons.
//! 2. Refined set of a fact with `n` prompts: neurons in the coarse sets of more
//!    than `p · n` prompts (and of at least `min_prompts`; the authors' code uses 3).
//! 3. Adaptive `p` per relation: while the facts average fewer than 2 neurons,
//!    lower `p` by 0.05; more than 5, raise it; at most `max_rounds` times.
//! 4. Relation-level neurons: shared by at least 10% of the relation's facts.
//!
//! The activation baseline goes through the same steps with the activations as
//! its scores.

use super::attribution::{attribute_many, Attribution, Options};
use super::{Neuron, Query};
use crate::models::Model;
use crate::{Error, Result};
use kn_shared::{FactNeurons, PromptSummary, ScoredNeuron};
use std::collections::BTreeMap;
use tch::{Kind, Tensor};

/// SPEC's selection parameters.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// Coarse threshold, a fraction of the prompt's maximum score (0.2).
    pub t: f64,
    /// Refining share of prompts (0.7).
    pub p: f64,
    /// At least this many prompts (1 = the paper; the authors' code uses 3).
    pub min_prompts: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            t: 0.2,
            p: 0.7,
            min_prompts: 1,
        }
    }
}

impl Thresholds {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.t) {
            return Err(Error::InvalidArgument(format!(
                "t is {}; it must be in [0, 1)",
                self.t
            )));
        }
        if !(0.0..=1.0).contains(&self.p) {
            return Err(Error::InvalidArgument(format!(
                "p is {}; it must be in [0, 1]",
                self.p
            )));
        }
        Ok(())
    }
}

/// Neurons with `score > t · max(score)` in a `[layers, d_ff]` map. Empty when
/// no score is positive.
pub fn coarse(scores: &Tensor, t: f64) -> Vec<Neuron> {
    let max = scores.max().double_value(&[]);
    if max <= 0.0 || max.is_nan() {
        return Vec::new();
    }
    let d_ff = scores.size()[1];
    let idx = scores.flatten(0, 1).gt(t * max).nonzero().squeeze_dim(1);
    Vec::<i64>::try_from(&idx)
        .unwrap_or_default()
        .into_iter()
        .map(|f| Neuron {
            layer: (f / d_ff) as usize,
            index: (f % d_ff) as usize,
        })
        .collect()
}

/// Neurons in more than `p · n` of `sets` (and at least `min_prompts`), with
/// their counts, most frequent first.
pub fn refine(sets: &[Vec<Neuron>], p: f64, min_prompts: usize) -> Vec<(Neuron, usize)> {
    let mut counts: BTreeMap<Neuron, usize> = BTreeMap::new();
    for set in sets {
        for &n in set {
            *counts.entry(n).or_default() += 1;
        }
    }
    let need = p * sets.len() as f64;
    let mut out: Vec<(Neuron, usize)> = counts
        .into_iter()
        .filter(|&(_, c)| c as f64 > need && c >= min_prompts.max(1))
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// The result of adapting `p` over a relation's facts.
pub struct Adapted {
    pub p: f64,
    pub rounds: usize,
    /// Per fact, its refined neurons with counts.
    pub facts: Vec<Vec<(Neuron, usize)>>,
}

/// SPEC's adaptive `p`: move it by 0.05 until the facts average 2–5 neurons, at
/// most `max_rounds` times.
///
/// `p` stays at most 0.95: "in more than p·n prompts" is impossible at `p = 1`,
/// so a relation whose facts share more than 5 neurons across *all* their few
/// prompts (a causal model may have 2 or 3 templates) would otherwise be pushed
/// to empty sets. A step that would jump across the range (more than 5 to fewer
/// than 2, or back) is taken only if it lands closer to 2–5.
pub fn adaptive_refine(
    facts: &[Vec<Vec<Neuron>>],
    p0: f64,
    min_prompts: usize,
    max_rounds: usize,
) -> Adapted {
    const P_MAX: f64 = 0.95;
    let at = |p: f64| -> (Vec<Vec<(Neuron, usize)>>, f64) {
        let refined: Vec<_> = facts
            .iter()
            .map(|sets| refine(sets, p, min_prompts))
            .collect();
        let mean = refined.iter().map(Vec::len).sum::<usize>() as f64 / facts.len().max(1) as f64;
        (refined, mean)
    };
    // How far a mean count is from the target range 2–5.
    let miss = |m: f64| (2.0 - m).max(m - 5.0).max(0.0);
    let mut p = p0;
    let (mut refined, mut mean) = at(p);
    let mut rounds = 0;
    while rounds < max_rounds && miss(mean) > 0.0 {
        let step = if mean < 2.0 { -0.05 } else { 0.05 };
        let next = ((p + step) * 100.0).round() / 100.0;
        if !(0.0..=P_MAX).contains(&next) {
            break;
        }
        let (r, m) = at(next);
        let crosses = (mean < 2.0 && m > 5.0) || (mean > 5.0 && m < 2.0);
        if crosses && miss(m) >= miss(mean) {
            break;
        }
        (p, refined, mean) = (next, r, m);
        rounds += 1;
    }
    Adapted {
        p,
        rounds,
        facts: refined,
    }
}

/// The activation baseline's coarse threshold, tuned (SPEC: "the same adaptive
/// way") so that its refined sets average 2–5 neurons per fact: `t` moves by
/// 0.05 within [0.05, 0.95]. Activations are far less peaked than attributions,
/// so at the knowledge neurons' `t` the baseline would pick dozens.
pub fn tune_baseline_t(facts: &[&FactAttribution], t0: f64, p: f64, min_prompts: usize) -> f64 {
    let mean_count = |t: f64| {
        facts
            .iter()
            .map(|f| refine(&f.coarse_baseline(t), p, min_prompts).len())
            .sum::<usize>() as f64
            / facts.len().max(1) as f64
    };
    let mut t = t0;
    for _ in 0..18 {
        let c = mean_count(t);
        let next = if c > 5.0 {
            t + 0.05
        } else if c < 2.0 {
            t - 0.05
        } else {
            return t;
        };
        if !(0.05..=0.95).contains(&next) {
            return t;
        }
        // Moving down past a set that was too large would oscillate: stop there.
        if c < 2.0 && mean_count(next) > 5.0 {
            return t;
        }
        t = (next * 100.0).round() / 100.0;
    }
    t
}

/// Neurons shared by at least `share` of the facts' refined sets, and by at
/// least two facts (in a sample of under 10 facts, 10% is less than one fact,
/// and a neuron of one fact is not "shared"), with counts.
pub fn relation_neurons(facts: &[Vec<Neuron>], share: f64) -> Vec<(Neuron, usize)> {
    let mut counts: BTreeMap<Neuron, usize> = BTreeMap::new();
    for f in facts {
        for &n in f {
            *counts.entry(n).or_default() += 1;
        }
    }
    let need = share * facts.len() as f64;
    let mut out: Vec<_> = counts
        .into_iter()
        .filter(|&(_, c)| c as f64 >= need && c >= 2)
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// One fact's prompts, attributed.
pub struct FactAttribution {
    pub queries: Vec<Query>,
    pub attributions: Vec<Attribution>,
}

impl FactAttribution {
    pub fn coarse_knowledge(&self, t: f64) -> Vec<Vec<Neuron>> {
        self.attributions
            .iter()
            .map(|a| coarse(&a.scores, t))
            .collect()
    }

    pub fn coarse_baseline(&self, t: f64) -> Vec<Vec<Neuron>> {
        self.attributions
            .iter()
            .map(|a| coarse(&a.activations, t))
            .collect()
    }

    /// Mean score and activation of a neuron over the prompts.
    fn mean(&self, n: Neuron, of_scores: bool) -> f64 {
        let sum: f64 = self
            .attributions
            .iter()
            .map(|a| {
                let m = if of_scores { &a.scores } else { &a.activations };
                m.double_value(&[n.layer as i64, n.index as i64])
            })
            .sum();
        sum / self.attributions.len().max(1) as f64
    }

    /// Refined neurons with their evidence, strongest first (by prompt count,
    /// then mean score of the selecting map).
    pub fn scored(&self, refined: &[(Neuron, usize)], by_scores: bool) -> Vec<ScoredNeuron> {
        let mut out: Vec<ScoredNeuron> = refined
            .iter()
            .map(|&(n, c)| ScoredNeuron {
                layer: n.layer,
                index: n.index,
                prompts: c,
                score: self.mean(n, true),
                activation: self.mean(n, false),
            })
            .collect();
        out.sort_by(|a, b| {
            let key = |s: &ScoredNeuron| if by_scores { s.score } else { s.activation };
            b.prompts.cmp(&a.prompts).then(key(b).total_cmp(&key(a)))
        });
        out
    }
}

/// Attribute every prompt of a fact.
pub fn attribute_fact(
    model: &Model,
    queries: Vec<Query>,
    opts: &Options,
) -> Result<FactAttribution> {
    attribute_fact_with(model, queries, opts, &mut |_, _| true)
}

/// [`attribute_fact`] that reports `(prompts done, prompts)` before each pass
/// and at the end; the callback returns `false` to cancel ([`Error::Cancelled`]).
/// The prompts are attributed together as far as `opts`' budgets allow.
pub fn attribute_fact_with(
    model: &Model,
    queries: Vec<Query>,
    opts: &Options,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<FactAttribution> {
    if queries.is_empty() {
        return Err(Error::InvalidArgument(
            "a fact needs at least one prompt".into(),
        ));
    }
    let n = queries.len();
    let layers = 0..model.config().n_layers;
    let attributions =
        attribute_many(model, &queries, opts, layers, &mut |done| progress(done, n))?;
    progress(queries.len(), queries.len());
    Ok(FactAttribution {
        queries,
        attributions,
    })
}

/// Knowledge neurons and baseline neurons of one fact with fixed thresholds.
pub fn fact_neurons(
    model: &Model,
    fact: &FactAttribution,
    target: &str,
    th: &Thresholds,
) -> Result<FactNeurons> {
    th.validate()?;
    let ck = fact.coarse_knowledge(th.t);
    let baseline_t = tune_baseline_t(&[fact], th.t, th.p, th.min_prompts);
    let cb = fact.coarse_baseline(baseline_t);
    let knowledge = fact.scored(&refine(&ck, th.p, th.min_prompts), true);
    let baseline = fact.scored(&refine(&cb, th.p, th.min_prompts), false);
    let overlap = knowledge
        .iter()
        .map(ScoredNeuron::neuron)
        .filter(|n| baseline.iter().any(|b| b.neuron() == *n))
        .collect();
    let prompts = fact
        .queries
        .iter()
        .zip(&fact.attributions)
        .zip(ck.iter().zip(&cb))
        .map(|((q, a), (k, b))| PromptSummary {
            prompt: q.prompt.clone(),
            p_target: a.p_target,
            coarse_knowledge: k.len(),
            coarse_baseline: b.len(),
        })
        .collect();
    let _ = model;
    Ok(FactNeurons {
        target: target.to_string(),
        t: th.t,
        baseline_t,
        p: th.p,
        min_prompts: th.min_prompts,
        prompts,
        knowledge,
        baseline,
        overlap,
    })
}

/// `[layers, d_ff]` mean of the prompts' score maps.
pub fn mean_scores(fact: &FactAttribution) -> Tensor {
    mean_of(fact, |a| &a.scores)
}

/// `[layers, d_ff]` mean of the prompts' activations at the blank.
pub fn mean_activations(fact: &FactAttribution) -> Tensor {
    mean_of(fact, |a| &a.activations)
}

fn mean_of(fact: &FactAttribution, map: impl Fn(&Attribution) -> &Tensor) -> Tensor {
    let maps: Vec<Tensor> = fact
        .attributions
        .iter()
        .map(|a| map(a).shallow_clone())
        .collect();
    Tensor::stack(&maps, 0).mean_dim(0, false, Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(layer: usize, index: usize) -> Neuron {
        Neuron { layer, index }
    }

    #[test]
    fn coarse_uses_fraction_of_global_max() {
        let s = Tensor::from_slice(&[0.1f32, 1.0, 0.25, -3.0, 0.2, 0.5]).reshape([2, 3]);
        assert_eq!(coarse(&s, 0.2), vec![n(0, 1), n(0, 2), n(1, 2)]);
        let neg = Tensor::from_slice(&[-0.1f32, -1.0]).reshape([1, 2]);
        assert!(coarse(&neg, 0.2).is_empty());
    }

    #[test]
    fn refine_needs_more_than_p_share_and_min_prompts() {
        let sets = vec![
            vec![n(0, 1), n(1, 1)],
            vec![n(0, 1)],
            vec![n(0, 1), n(1, 1)],
            vec![n(1, 2)],
        ];
        // 0:1 in 3/4 > 0.7·4 = 2.8; 1:1 in 2/4 is not.
        assert_eq!(refine(&sets, 0.7, 1), vec![(n(0, 1), 3)]);
        assert_eq!(refine(&sets, 0.4, 1), vec![(n(0, 1), 3), (n(1, 1), 2)]);
        assert_eq!(refine(&sets, 0.4, 3), vec![(n(0, 1), 3)]);
    }

    #[test]
    fn adaptive_p_moves_towards_two_to_five() {
        // One fact, 10 prompts; neuron k is in k+1 prompts (k = 0..9).
        let sets: Vec<Vec<Neuron>> = (0..10)
            .map(|i| (i..10).map(|k| n(0, k)).collect())
            .collect();
        let a = adaptive_refine(std::slice::from_ref(&sets), 0.7, 1, 6);
        // At p = 0.7 (> 7 prompts): neurons 7, 8, 9 → 3, already in range.
        assert_eq!((a.p, a.rounds, a.facts[0].len()), (0.7, 0, 3));
        let a = adaptive_refine(std::slice::from_ref(&sets), 0.95, 1, 6);
        // 0.95 → 0 neurons; lowered to 0.85 → 2 neurons.
        assert_eq!((a.p, a.facts[0].len()), (0.85, 2));
        let a = adaptive_refine(std::slice::from_ref(&sets), 0.1, 1, 2);
        assert_eq!((a.p, a.rounds), (0.2, 2), "bounded rounds");
        // Three prompts with 8 neurons in all of them: no p < 1 gets below 8,
        // and p = 1 would empty the set, so p stops at 0.95 with the 8.
        let all: Vec<Vec<Neuron>> = (0..3).map(|_| (0..8).map(|k| n(1, k)).collect()).collect();
        let a = adaptive_refine(std::slice::from_ref(&all), 0.7, 1, 6);
        assert_eq!((a.p, a.facts[0].len()), (0.95, 8));
        // 6 neurons in all 4 prompts, 1 more in 3 of them: raising p past 0.75
        // drops to 6, never to nothing.
        let mut four: Vec<Vec<Neuron>> =
            (0..4).map(|_| (0..6).map(|k| n(0, k)).collect()).collect();
        for s in four.iter_mut().take(3) {
            s.push(n(0, 9));
        }
        let a = adaptive_refine(std::slice::from_ref(&four), 0.7, 1, 6);
        assert_eq!(a.facts[0].len(), 6);
        assert!(a.p <= 0.95);
    }

    #[test]
    fn relation_neurons_at_ten_percent() {
        let facts: Vec<Vec<Neuron>> = (0..20)
            .map(|i| {
                if i < 2 {
                    vec![n(3, 7), n(1, i)]
                } else {
                    vec![n(1, i)]
                }
            })
            .collect();
        assert_eq!(relation_neurons(&facts, 0.1), vec![(n(3, 7), 2)]);
        // Five facts: 10% is half a fact, but a neuron needs two facts to be shared.
        assert_eq!(relation_neurons(&facts[..5], 0.1), vec![(n(3, 7), 2)]);
    }
}
