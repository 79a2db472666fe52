//! Suppressing (×0) and amplifying (×2) each fact's neurons on its own prompts
//! (SPEC), with the baseline's and random neurons as controls, and the
//! knowledge neurons on other relations' prompts for specificity.

use super::stats::{estimate, mean, median};
use super::Done;
use crate::engine::intervene::{random_like, scaled_changes};
use crate::engine::{Neuron, Query};
use crate::models::Model;
use crate::Result;
use kn_shared::experiment::{Effects, EffectsCi};

/// How many other facts' prompts the specificity control uses.
pub const UNRELATED_FACTS: usize = 3;

/// Per `(neurons, factor)`, the relative change of mean P(answer) over `qs`
/// when scaling those neurons by that factor (`None` where the set or `qs` is
/// empty), all sets in one batched run.
pub fn effects(model: &Model, qs: &[Query], sets: &[(&[Neuron], f64)]) -> Result<Vec<Option<f64>>> {
    if qs.is_empty() {
        return Ok(vec![None; sets.len()]);
    }
    scaled_changes(model, qs, sets)
}

/// Every prompt of the next `UNRELATED_FACTS` sampled facts (round robin) of
/// other relations than fact `i`'s.
pub fn unrelated_prompts(done: &[Done], i: usize) -> Vec<Query> {
    unrelated_facts(done, i)
        .into_iter()
        .flat_map(|o| done[o].queries.iter().cloned())
        .collect()
}

/// The indices into `done` of the facts [`unrelated_prompts`] takes.
pub fn unrelated_facts(done: &[Done], i: usize) -> Vec<usize> {
    let d = &done[i];
    (1..done.len())
        .map(|k| (i + k) % done.len())
        .filter(|&o| done[o].rel != d.rel && done[o].in_sample)
        .take(UNRELATED_FACTS)
        .collect()
}

/// One fact's effects: `[knowledge, baseline, random, unrelated]` for
/// suppress and for amplify (`None` where a set is empty).
pub type FactEffects = [[Option<f64>; 4]; 2];

/// The effects of fact `i` of `done` (which has knowledge neurons).
pub fn fact_effects(model: &Model, done: &[Done], i: usize, seed: u64) -> Result<FactEffects> {
    let d = &done[i];
    let rnd = random_like(model.config(), &d.knowledge, d.seed(seed));
    let own: Vec<(&[Neuron], f64)> = [0.0, 2.0]
        .into_iter()
        .flat_map(|f| [(&d.knowledge[..], f), (&d.baseline[..], f), (&rnd[..], f)])
        .collect();
    let own = effects(model, &d.queries, &own)?;
    let others = effects(
        model,
        &unrelated_prompts(done, i),
        &[(&d.knowledge, 0.0), (&d.knowledge, 2.0)],
    )?;
    Ok([0, 1].map(|dir| {
        [
            own[3 * dir],
            own[3 * dir + 1],
            own[3 * dir + 2],
            others[dir],
        ]
    }))
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
