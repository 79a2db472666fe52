//! Suppressing (×0) and amplifying (×2) each fact's neurons on its own prompts
//! (SPEC), with the baseline's and random neurons as controls, and the
//! knowledge neurons on other relations' prompts for specificity.

use super::stats::{estimate, mean, median};
use super::Done;
use crate::engine::intervene::{probabilities, random_like, scaled_change};
use crate::engine::{Neuron, Query};
use crate::models::{Hooks, Model};
use crate::Result;
use kn_shared::experiment::{Effects, EffectsCi};

/// How many other facts' prompts the specificity control uses.
pub const UNRELATED_FACTS: usize = 3;

/// Relative change of mean P(answer) over `qs` when scaling `neurons` by `factor`.
pub fn effect(
    model: &Model,
    qs: &[Query],
    before: &[f64],
    neurons: &[Neuron],
    factor: f64,
) -> Result<Option<f64>> {
    if neurons.is_empty() || qs.is_empty() {
        return Ok(None);
    }
    scaled_change(model, qs, before, neurons, factor).map(Some)
}

/// Every prompt of the next `UNRELATED_FACTS` sampled facts (round robin) of
/// other relations than fact `i`'s.
pub fn unrelated_prompts(done: &[Done], i: usize) -> Vec<Query> {
    let d = &done[i];
    (1..done.len())
        .map(|k| &done[(i + k) % done.len()])
        .filter(|o| o.rel != d.rel && o.in_sample)
        .take(UNRELATED_FACTS)
        .flat_map(|o| o.queries.iter().cloned())
        .collect()
}

/// One fact's effects: `[knowledge, baseline, random, unrelated]` for
/// suppress and for amplify (`None` where a set is empty).
pub type FactEffects = [[Option<f64>; 4]; 2];

/// The effects of fact `i` of `done` (which has knowledge neurons).
pub fn fact_effects(model: &Model, done: &[Done], i: usize, seed: u64) -> Result<FactEffects> {
    let d = &done[i];
    let (before, _) = probabilities(model, &d.queries, &Hooks::default())?;
    let rnd = random_like(model.config(), &d.knowledge, seed ^ i as u64);
    let others = unrelated_prompts(done, i);
    let others_before = if others.is_empty() {
        Vec::new()
    } else {
        probabilities(model, &others, &Hooks::default())?.0
    };
    let mut out = [[None; 4]; 2];
    for (row, factor) in out.iter_mut().zip([0.0, 2.0]) {
        *row = [
            effect(model, &d.queries, &before, &d.knowledge, factor)?,
            effect(model, &d.queries, &before, &d.baseline, factor)?,
            effect(model, &d.queries, &before, &rnd, factor)?,
            effect(model, &others, &others_before, &d.knowledge, factor)?,
        ];
    }
    Ok(out)
}

/// Means (and intervals) over facts of one direction (0 suppress, 1 amplify).
pub fn summarise(facts: &[&FactEffects], dir: usize, seed: u64) -> Effects {
    let column = |c: usize| -> Vec<f64> { facts.iter().filter_map(|f| f[dir][c]).collect() };
    let cols: Vec<Vec<f64>> = (0..4).map(column).collect();
    Effects {
        knowledge: mean(cols[0].iter().copied()),
        baseline: mean(cols[1].iter().copied()),
        random: mean(cols[2].iter().copied()),
        unrelated: mean(cols[3].iter().copied()),
        facts: cols[0].len(),
        ci: Some(EffectsCi {
            knowledge: estimate(&cols[0], seed),
            baseline: estimate(&cols[1], seed ^ 1),
            random: estimate(&cols[2], seed ^ 2),
            unrelated: estimate(&cols[3], seed ^ 3),
            knowledge_median: median(&cols[0]),
        }),
    }
}
