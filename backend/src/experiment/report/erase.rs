//! Erasing a relation (SPEC): its most frequent knowledge neurons set to zero,
//! then perplexity and accuracy on its prompts and on other relations'.

use super::stats::estimate_with;
use super::{Done, FactPrompts, ReportOptions};
use crate::engine::edit::{erase, EraseWith};
use crate::engine::edit_overlay::{answers_under, Job};
use crate::engine::readout::Answer;
use crate::engine::Neuron;
use crate::models::Model;
use crate::pararel::ParaRel;
use crate::Result;
use kn_shared::experiment::{EraseRow, PplAcc};
use kn_shared::EditSet;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::BTreeMap;

/// The `top` most frequent neurons of `facts` (the relation's knowledge
/// neurons, one set per fact, each with its summed attribution in that fact),
/// ties broken by summed attribution (then by position, for determinism).
/// Returns them with the number of candidates and how many of the chosen were
/// decided by the tie-break: those whose count equals that of the first neuron
/// left out.
pub fn most_frequent(facts: &[Vec<(Neuron, f64)>], top: usize) -> (Vec<Neuron>, usize, usize) {
    let mut counts: BTreeMap<Neuron, (usize, f64)> = BTreeMap::new();
    for set in facts {
        for &(n, score) in set {
            let e = counts.entry(n).or_default();
            e.0 += 1;
            e.1 += score;
        }
    }
    let mut ranked: Vec<(Neuron, (usize, f64))> = counts.into_iter().collect();
    ranked.sort_by(|a, b| {
        b.1 .0
            .cmp(&a.1 .0)
            .then(b.1 .1.total_cmp(&a.1 .1))
            .then(a.0.cmp(&b.0))
    });
    let candidates = ranked.len();
    let cut = ranked.get(top).map(|(_, (c, _))| *c);
    let chosen: Vec<(Neuron, usize)> = ranked
        .into_iter()
        .take(top)
        .map(|(n, (c, _))| (n, c))
        .collect();
    let ties = cut.map_or(0, |c| chosen.iter().filter(|(_, k)| *k == c).count());
    (
        chosen.into_iter().map(|(n, _)| n).collect(),
        candidates,
        ties,
    )
}

/// Per answer: −log P(gold), and whether the model's greedy answer is the
/// gold answer (every piece of a multi-token one).
fn nll_acc<'a>(answers: impl IntoIterator<Item = &'a Answer>) -> Vec<(f64, bool)> {
    answers
        .into_iter()
        .map(|a| (-(a.p.max(f64::MIN_POSITIVE)).ln(), a.greedy))
        .collect()
}

/// Perplexity and accuracy before and after, with intervals that resample the
/// facts the prompts come from (`owner[i]` is prompt `i`'s fact).
fn ppl_acc(before: &[(f64, bool)], after: &[(f64, bool)], owner: &[usize], seed: u64) -> PplAcc {
    if before.is_empty() {
        return PplAcc::default();
    }
    let facts: Vec<usize> = {
        let mut v = owner.to_vec();
        v.sort_unstable();
        v.dedup();
        v
    };
    let by_fact = |xs: &[(f64, bool)]| -> BTreeMap<usize, Vec<f64>> {
        let mut m: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        for (i, (nll, _)) in xs.iter().enumerate() {
            m.entry(owner[i]).or_default().push(*nll);
        }
        m
    };
    let ppl = |xs: &[(f64, bool)]| (xs.iter().map(|x| x.0).sum::<f64>() / xs.len() as f64).exp();
    let acc = |xs: &[(f64, bool)]| xs.iter().filter(|x| x.1).count() as f64 / xs.len() as f64;
    let ci = |xs: &[(f64, bool)], s: u64| {
        let m = by_fact(xs);
        estimate_with(facts.len(), s, |pick| {
            let all: Vec<f64> = pick
                .iter()
                .flat_map(|&k| m[&facts[k]].iter().copied())
                .collect();
            (!all.is_empty()).then(|| (all.iter().sum::<f64>() / all.len() as f64).exp())
        })
        .unwrap_or_default()
    };
    PplAcc {
        prompts: before.len(),
        ppl_before: ppl(before),
        ppl_after: ppl(after),
        acc_before: acc(before),
        acc_after: acc(after),
        ci: Some([ci(before, seed), ci(after, seed ^ 1)]),
    }
}

/// One relation's erasure, planned.
struct Planned {
    relation: String,
    ri: usize,
    neurons: usize,
    candidates: usize,
    tie_decided: usize,
    /// `(owner, prompt)`: the erased relation's prompts (owner: the fact's
    /// number) and a sample of other relations' (owner: its place in `done`),
    /// prompts as indices into the run's list.
    intra: Vec<(usize, usize)>,
    inter: Vec<(usize, usize)>,
    edit: EditSet,
}

/// Erase each relation (on its sampled facts), every erasure measured in one
/// batched run: each on its own rows, the weights untouched
/// (`edited::answers_under`).
pub fn erase_relations(
    model: &Model,
    data: &ParaRel,
    done: &[Done],
    opts: &ReportOptions,
) -> Result<Vec<EraseRow>> {
    // Every sampled prompt once, in `done`'s order.
    let mut prompts = FactPrompts::default();
    for i in (0..done.len()).filter(|&i| done[i].in_sample) {
        prompts.place(done, i);
    }
    let FactPrompts {
        queries: prompts,
        at,
    } = prompts;
    let mut plans = Vec::new();
    for (ri, rel) in data.relations.iter().enumerate() {
        let mine: Vec<usize> = (0..done.len())
            .filter(|&i| done[i].rel == ri && done[i].in_sample)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let facts: Vec<Vec<(Neuron, f64)>> = mine
            .iter()
            .map(|&i| {
                let d = &done[i];
                d.knowledge
                    .iter()
                    .map(|&n| (n, d.summed_score(n)))
                    .collect()
            })
            .collect();
        let (neurons, candidates, tie_decided) = most_frequent(&facts, opts.erase_top);
        if neurons.is_empty() {
            continue;
        }
        // The erased relation's prompts: every prompt of its sampled facts; the
        // others: a seeded sample of other relations' prompts.
        let intra: Vec<(usize, usize)> = mine
            .iter()
            .flat_map(|&i| at[&i].clone().map(move |q| (done[i].fact, q)))
            .collect();
        let mut inter: Vec<(usize, usize)> = (0..done.len())
            .filter(|&i| done[i].rel != ri && done[i].in_sample)
            .flat_map(|i| at[&i].clone().map(move |q| (i, q)))
            .collect();
        inter.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed));
        inter.truncate(opts.eval_prompts);
        let edit = erase(
            model,
            &neurons,
            EraseWith::Zero,
            format!("erase {}", rel.id),
        )?;
        plans.push(Planned {
            relation: rel.id.clone(),
            ri,
            neurons: neurons.len(),
            candidates,
            tie_decided,
            intra,
            inter,
            edit,
        });
    }
    if plans.is_empty() {
        return Ok(Vec::new());
    }
    let jobs: Vec<Job> = plans
        .iter()
        .map(|p| Job {
            edit: &p.edit,
            prompts: p.intra.iter().chain(&p.inter).map(|&(_, q)| q).collect(),
        })
        .collect();
    let m = answers_under(model, &prompts, &jobs)?;
    Ok(plans
        .iter()
        .zip(&m.after)
        .map(|(p, after)| {
            let owners = |v: &[(usize, usize)]| -> Vec<usize> { v.iter().map(|x| x.0).collect() };
            let before = |v: &[(usize, usize)]| nll_acc(v.iter().map(|&(_, q)| &m.before[q]));
            let n = p.intra.len();
            let seed = opts.seed;
            EraseRow {
                relation: p.relation.clone(),
                neurons: p.neurons,
                candidates: p.candidates,
                tie_decided: p.tie_decided,
                intra: ppl_acc(
                    &before(&p.intra),
                    &nll_acc(&after[..n]),
                    &owners(&p.intra),
                    seed ^ p.ri as u64,
                ),
                inter: ppl_acc(
                    &before(&p.inter),
                    &nll_acc(&after[n..]),
                    &owners(&p.inter),
                    seed ^ (p.ri as u64) << 8,
                ),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_frequent_win_and_ties_go_to_attribution() {
        let n = |i| Neuron { layer: 0, index: i };
        // n(5) has the largest attribution, n(2) the least.
        let score = |i: usize| match i {
            5 => 9.0,
            4 => 3.0,
            3 => 2.0,
            2 => 1.0,
            _ => 0.0,
        };
        let set = |ids: &[usize]| ids.iter().map(|&i| (n(i), score(i))).collect::<Vec<_>>();
        let facts = vec![set(&[1, 2, 3]), set(&[1, 4]), set(&[5])];
        let (chosen, candidates, ties) = most_frequent(&facts, 3);
        // n(1) is in two facts; of the four in one fact, attribution decides.
        assert_eq!(chosen, vec![n(1), n(5), n(4)]);
        assert_eq!(
            (candidates, ties),
            (5, 2),
            "two of the three were decided among equals"
        );
        let (all, _, ties) = most_frequent(&facts, 10);
        assert_eq!(
            (all.len(), ties),
            (5, 0),
            "nothing left out, nothing decided by ties"
        );
    }
}
