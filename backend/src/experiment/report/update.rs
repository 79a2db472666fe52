//! Updating facts (SPEC): the edited facts' knowledge neurons (without the
//! relation-shared ones) get `v := v − λ1·e(t) + λ2·e(t′)`, with `t′` a random
//! other answer of the relation; measured against the same edit on random
//! neurons, and as `k` grows on one fixed set of facts.

use super::stats::{estimate, mean};
use super::{Done, FactPrompts, ReportOptions};
use crate::engine::edit::{perplexity_of, rates_of, update_fact, UpdateOptions};
use crate::engine::edit_overlay::{answers_under, Job};
use crate::engine::intervene::random_like;
use crate::engine::readout::Answer;
use crate::engine::{Neuron, Query};
use crate::models::Model;
use crate::pararel::ParaRel;
use crate::Result;
use kn_shared::experiment::{KRates, UpdateCi, UpdateMetrics, UpdateSummary};
use kn_shared::EditSet;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// One edited fact: change (SPEC), change among known prompts, success, and
/// perplexities intra before/after, inter before/after.
#[derive(Clone, Copy)]
struct Row {
    change: f64,
    change_known: Option<f64>,
    success: f64,
    ppl: [f64; 4],
}

fn metrics(rows: &[Row], seed: u64) -> UpdateMetrics {
    let col = |f: &dyn Fn(&Row) -> f64| -> Vec<f64> { rows.iter().map(f).collect() };
    let known: Vec<f64> = rows.iter().filter_map(|r| r.change_known).collect();
    let ppl =
        |i: usize| mean(rows.iter().map(|r| r.ppl[i]).filter(|x| x.is_finite())).unwrap_or(0.0);
    let geo = |i: usize| {
        mean(
            rows.iter()
                .map(|r| r.ppl[i])
                .filter(|x| x.is_finite() && *x > 0.0)
                .map(f64::ln),
        )
        .map_or(0.0, f64::exp)
    };
    let increase = |i: usize| col(&|r: &Row| r.ppl[i + 1] - r.ppl[i]);
    UpdateMetrics {
        change_rate: mean(rows.iter().map(|r| r.change)).unwrap_or(0.0),
        success_rate: mean(rows.iter().map(|r| r.success)).unwrap_or(0.0),
        intra_before: ppl(0),
        intra_after: ppl(1),
        inter_before: ppl(2),
        inter_after: ppl(3),
        change_rate_known: mean(known.iter().copied()),
        geometric: Some([geo(0), geo(1), geo(2), geo(3)]),
        ci: Some(UpdateCi {
            change_rate: estimate(&col(&|r: &Row| r.change), seed).unwrap_or_default(),
            change_rate_known: estimate(&known, seed ^ 1),
            success_rate: estimate(&col(&|r: &Row| r.success), seed ^ 2).unwrap_or_default(),
            intra_increase: estimate(&increase(0), seed ^ 3).unwrap_or_default(),
            inter_increase: estimate(&increase(2), seed ^ 4).unwrap_or_default(),
        }),
    }
}

/// One fact's update, planned: its prompts' place in the relation's list and
/// its edits.
struct Planned {
    fact: usize,
    own: Range<usize>,
    new: u32,
    k: usize,
    /// The edit of its top-k knowledge neurons, then the random control's.
    pair: [EditSet; 2],
    /// The sweep's `(k, edit)`, for facts with at least the largest k.
    sweep: Vec<(usize, EditSet)>,
}

/// The perplexity of these answers (NaN for none).
fn ppl<'a>(answers: impl IntoIterator<Item = &'a Answer>) -> f64 {
    let p: Vec<f64> = answers.into_iter().map(|a| a.p).collect();
    if p.is_empty() {
        f64::NAN
    } else {
        perplexity_of(&p)
    }
}

/// Up to `n` of `qs`, a seeded sample.
fn sample(mut qs: Vec<Query>, n: usize, seed: u64) -> Vec<Query> {
    qs.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    qs.truncate(n);
    qs
}

/// What the update experiment has measured so far, over relations.
#[derive(Default)]
struct Tally {
    /// One row per edited fact: its knowledge-neuron edit and the control's.
    kn: Vec<Row>,
    rnd: Vec<Row>,
    /// How many facts were edited with each k (fewer neurons than k: all).
    k_used: BTreeMap<usize, usize>,
    /// Per k of the sweep, each fact's (change, success).
    sweep: BTreeMap<usize, Vec<(f64, f64)>>,
    prompts_seen: usize,
    known_prompts: usize,
    intra_sizes: Vec<f64>,
    inter_size: usize,
}

/// The update experiment over `done`'s facts marked for it (the known facts,
/// or the sample for runs made without them).
pub fn update_facts(
    model: &Model,
    data: &ParaRel,
    done: &[Done],
    rel_shared: &BTreeMap<usize, Vec<Neuron>>,
    opts: &ReportOptions,
) -> Result<Option<UpdateSummary>> {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let known_facts = done.iter().any(|d| d.known);
    let mut tally = Tally::default();
    for ri in 0..data.relations.len() {
        let shared = rel_shared.get(&ri).cloned().unwrap_or_default();
        let cands = candidates(done, ri, &shared, known_facts, opts, &mut rng);
        if cands.is_empty() {
            continue;
        }
        // The perplexity sets: every prompt of the relation's other sampled
        // facts (intra), and one seeded sample of other relations' prompts
        // (inter), the same for every fact of the relation.
        let inter = sample(
            done.iter()
                .filter(|o| o.rel != ri && o.in_sample)
                .flat_map(|o| o.queries.iter().cloned())
                .collect(),
            opts.eval_prompts,
            opts.seed ^ ri as u64,
        );
        tally.inter_size = tally.inter_size.max(inter.len());
        // Every measurement of the relation in one batched run
        // (`edited::answers_under`): the prompts are the relation's sampled
        // facts' (the intra sets), the updated facts' own and the inter
        // sample; each edit runs on its own rows, the weights untouched.
        let mut prompts = FactPrompts::default();
        for o in (0..done.len()).filter(|&o| done[o].rel == ri && done[o].in_sample) {
            prompts.place(done, o);
        }
        let mut plans: Vec<Planned> = Vec::new();
        for &i in &cands {
            let fact = FactToEdit {
                done,
                i,
                shared: &shared,
            };
            if let Some(p) = fact.plan(model, data, &mut prompts, opts, &mut rng)? {
                plans.push(p);
            }
        }
        if !plans.is_empty() {
            measure_relation(model, done, prompts, inter, &plans, &mut tally)?;
        }
    }
    Ok(summary(tally, known_facts, opts))
}

/// The relation `ri`'s facts to edit: one-token answers, the known facts (or
/// the sample for runs without them), with a knowledge neuron outside the
/// relation-shared ones; a seeded draw of `update_facts` of them.
fn candidates(
    done: &[Done],
    ri: usize,
    shared: &[Neuron],
    known_facts: bool,
    opts: &ReportOptions,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    let mut cands: Vec<usize> = (0..done.len())
        .filter(|&i| {
            let d = &done[i];
            // An update is defined on one-token answers.
            d.rel == ri
                && !d.queries.iter().any(Query::is_chain)
                && (d.known || !known_facts)
                && d.knowledge.iter().any(|n| !shared.contains(n))
        })
        .collect();
    if cands.is_empty() {
        return cands;
    }
    cands.shuffle(rng);
    cands.truncate(opts.update_facts);
    cands
}

/// One fact of `done` to update, and the neurons its update leaves out.
struct FactToEdit<'a> {
    done: &'a [Done],
    i: usize,
    shared: &'a [Neuron],
}

impl FactToEdit<'_> {
    /// Its edits (towards a random other answer of the relation that is one
    /// token here; `None` when there is none), its control and its sweep,
    /// with its prompts placed in the relation's list.
    fn plan(
        &self,
        model: &Model,
        data: &ParaRel,
        prompts: &mut FactPrompts,
        opts: &ReportOptions,
        rng: &mut ChaCha8Rng,
    ) -> Result<Option<Planned>> {
        let d = &self.done[self.i];
        let neurons: Vec<Neuron> = d
            .knowledge
            .iter()
            .copied()
            .filter(|n| !self.shared.contains(n))
            .collect();
        let first = &d.queries[0];
        // t′: a random other answer of the relation, one token here.
        let mut answers: Vec<&str> = data.relations[d.rel]
            .facts
            .iter()
            .map(|f| f.object.as_str())
            .filter(|o| *o != d.record.object)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        answers.shuffle(rng);
        let Some(new) = answers
            .iter()
            .find_map(|a| crate::cloze::target_id(model, &first.cloze, a).ok())
        else {
            return Ok(None);
        };
        let old = first.target;
        let k = opts.update.k.min(neurons.len());
        let control = random_like(model.config(), &neurons[..k], d.seed(opts.seed));
        let edit =
            |set: &[Neuron], u: &UpdateOptions| update_fact(model, set, old, new, u, String::new());
        let pair = [
            edit(&neurons[..k], &opts.update)?,
            edit(&control, &opts.update)?,
        ];
        // The sweep: one fixed set, the facts with at least the largest k.
        let sweep_k = opts.k_sweep.iter().copied().max().unwrap_or(1);
        let mut sweep = Vec::new();
        if neurons.len() >= sweep_k {
            for &ks in &opts.k_sweep {
                let u = UpdateOptions {
                    k: ks,
                    ..opts.update
                };
                sweep.push((ks, edit(&neurons, &u)?));
            }
        }
        Ok(Some(Planned {
            fact: self.i,
            own: prompts.place(self.done, self.i),
            new,
            k,
            pair,
            sweep,
        }))
    }
}

/// Every edit of a relation measured in one batched run, added to `tally`.
fn measure_relation(
    model: &Model,
    done: &[Done],
    prompts: FactPrompts,
    inter: Vec<Query>,
    plans: &[Planned],
    tally: &mut Tally,
) -> Result<()> {
    let FactPrompts {
        queries: mut prompts,
        at: own,
    } = prompts;
    let inter_at: Vec<usize> = (prompts.len()..prompts.len() + inter.len()).collect();
    prompts.extend(inter);
    // Each fact's intra set: the other sampled facts' prompts.
    let intras: Vec<Vec<usize>> = plans
        .iter()
        .map(|p| {
            own.iter()
                .filter(|&(&o, _)| o != p.fact && done[o].in_sample)
                .flat_map(|(_, r)| r.clone())
                .collect()
        })
        .collect();
    let jobs = jobs(plans, &intras, &inter_at);
    let m = answers_under(model, &prompts, &jobs)?;
    let mut job = 0;
    for (p, intra) in plans.iter().zip(&intras) {
        let d = &done[p.fact];
        tally.intra_sizes.push(intra.len() as f64);
        let known: Vec<bool> = p.own.clone().map(|q| m.before[q].greedy).collect();
        tally.prompts_seen += known.len();
        tally.known_prompts += known.iter().filter(|&&k| k).count();
        let (intra_b, inter_b) = (
            ppl(intra.iter().map(|&q| &m.before[q])),
            ppl(inter_at.iter().map(|&q| &m.before[q])),
        );
        *tally.k_used.entry(p.k).or_default() += 1;
        let (n_intra, n_inter) = (intra.len(), inter_at.len());
        for acc in [&mut tally.kn, &mut tally.rnd] {
            let after = &m.after[job];
            job += 1;
            let top: Vec<u32> = after[n_intra + n_inter..].iter().map(|a| a.top1).collect();
            let r = rates_of(&top, &d.queries, p.new, &known);
            acc.push(Row {
                change: r.change,
                change_known: r.change_known,
                success: r.success,
                ppl: [
                    intra_b,
                    ppl(&after[..n_intra]),
                    inter_b,
                    ppl(&after[n_intra..n_intra + n_inter]),
                ],
            });
        }
        for &(ks, _) in &p.sweep {
            let top: Vec<u32> = m.after[job].iter().map(|a| a.top1).collect();
            job += 1;
            let r = rates_of(&top, &d.queries, p.new, &known);
            tally
                .sweep
                .entry(ks)
                .or_default()
                .push((r.change, r.success));
        }
    }
    Ok(())
}

/// The jobs of a relation's run, in the order they are read back: per fact,
/// the pair on intra, inter and its own prompts, then the sweep on its own.
fn jobs<'a>(plans: &'a [Planned], intras: &[Vec<usize>], inter_at: &[usize]) -> Vec<Job<'a>> {
    let mut jobs = Vec::new();
    for (p, intra) in plans.iter().zip(intras) {
        let eval: Vec<usize> = intra
            .iter()
            .chain(inter_at)
            .copied()
            .chain(p.own.clone())
            .collect();
        for edit in &p.pair {
            jobs.push(Job {
                edit,
                prompts: eval.clone(),
            });
        }
        for (_, edit) in &p.sweep {
            jobs.push(Job {
                edit,
                prompts: p.own.clone().collect(),
            });
        }
    }
    jobs
}

/// The section of the report, `None` when no fact was edited.
fn summary(tally: Tally, known_facts: bool, opts: &ReportOptions) -> Option<UpdateSummary> {
    if tally.kn.is_empty() {
        return None;
    }
    Some(UpdateSummary {
        facts: tally.kn.len(),
        prompts: tally.prompts_seen,
        known_prompts: tally.known_prompts,
        k: opts.update.k,
        lambda1: opts.update.lambda1,
        lambda2: opts.update.lambda2,
        norm_scaled: opts.update.norm_scaled,
        knowledge: metrics(&tally.kn, opts.seed),
        random: metrics(&tally.rnd, opts.seed ^ 0x5a),
        k_sweep: tally
            .sweep
            .into_iter()
            .map(|(k, v)| KRates {
                k,
                facts: v.len(),
                change_rate: mean(v.iter().map(|x| x.0)).unwrap_or(0.0),
                success_rate: mean(v.iter().map(|x| x.1)).unwrap_or(0.0),
            })
            .collect(),
        known_facts,
        k_used: tally.k_used.into_iter().collect(),
        intra_prompts: mean(tally.intra_sizes).unwrap_or(0.0),
        inter_prompts: tally.inter_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perplexities_average_arithmetically_with_the_geometric_beside() {
        let row = |a: f64, b: f64| Row {
            change: 1.0,
            change_known: None,
            success: 0.0,
            ppl: [a, b, a, b],
        };
        let m = metrics(&[row(10.0, 10.0), row(10.0, 1000.0)], 0);
        assert_eq!((m.intra_before, m.intra_after), (10.0, 505.0));
        let g = m.geometric.unwrap();
        assert!((g[1] - 100.0).abs() < 1e-9, "{g:?}");
        assert_eq!(m.change_rate_known, None);
        assert!((m.ci.unwrap().intra_increase.mean - 495.0).abs() < 1e-9);
    }
}
