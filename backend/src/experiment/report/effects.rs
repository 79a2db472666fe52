//! Suppressing (×0) and amplifying (×2) each fact's neurons on its own prompts
//! (SPEC), with the baseline's and random neurons as controls, and the
//! knowledge neurons on other relations' prompts for specificity.

use super::stats::{estimate, mean, median};
use super::{Done, FactPrompts};
use crate::engine::intervene::{random_like, scaled_changes, scaled_changes_on, Scaling};
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

/// Facts measured in one batched run: their scales are held at once (a
/// `[d_ff]` tensor per layer a set touches, 8 sets a fact: about 30 MB at 64
/// facts of bert-base), and a run traces its facts' prompts and their
/// unrelated facts' once.
const FACTS_PER_RUN: usize = 64;

/// The effects of facts `facts` of `done` (each with knowledge neurons),
/// [`FACTS_PER_RUN`] at a time, each run batched: every fact's sets on its own
/// prompts and its knowledge neurons on its unrelated facts' prompts, each
/// prompt list traced once however many facts of the run name it
/// (`intervene::scaled_changes_on`).
pub fn facts_effects(
    model: &Model,
    done: &[Done],
    facts: &[usize],
    seed: u64,
) -> Result<Vec<FactEffects>> {
    let mut out = Vec::with_capacity(facts.len());
    for run in facts.chunks(FACTS_PER_RUN) {
        out.extend(run_effects(model, done, run, seed)?);
    }
    Ok(out)
}

fn run_effects(
    model: &Model,
    done: &[Done],
    facts: &[usize],
    seed: u64,
) -> Result<Vec<FactEffects>> {
    // Each named fact's prompts once.
    let mut prompts = FactPrompts::default();
    let mut plans = Vec::with_capacity(facts.len());
    for &i in facts {
        let own: Vec<usize> = prompts.place(done, i).collect();
        let others: Vec<usize> = unrelated_facts(done, i)
            .into_iter()
            .flat_map(|o| prompts.place(done, o))
            .collect();
        let rnd = random_like(model.config(), &done[i].knowledge, done[i].seed(seed));
        plans.push((i, own, others, rnd));
    }
    let queries = prompts.queries;
    if queries.is_empty() {
        return Ok(vec![[[None; 4]; 2]; facts.len()]);
    }
    // Per fact, in this order: its knowledge, baseline and random sets ×0,
    // the same ×2, on its own prompts; its knowledge ×0 and ×2 on the others.
    let mut jobs = Vec::with_capacity(8 * facts.len());
    for (i, own, others, rnd) in &plans {
        let d = &done[*i];
        for factor in [0.0, 2.0] {
            for neurons in [&d.knowledge[..], &d.baseline[..], &rnd[..]] {
                jobs.push(Scaling {
                    neurons,
                    factor,
                    prompts: own.clone(),
                });
            }
        }
        for factor in [0.0, 2.0] {
            jobs.push(Scaling {
                neurons: &d.knowledge,
                factor,
                prompts: others.clone(),
            });
        }
    }
    let got = scaled_changes_on(model, &queries, &jobs)?;
    Ok(got
        .chunks(8)
        .map(|g| [0, 1].map(|dir| [g[3 * dir], g[3 * dir + 1], g[3 * dir + 2], g[6 + dir]]))
        .collect())
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
