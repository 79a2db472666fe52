//! Refining a run's stored coarse sets into each fact's knowledge neurons and
//! baseline neurons. SPEC's adaptive `p` is a property of a relation's facts
//! together: it adapts on the relation's sampled facts, and the relation's
//! known facts outside the sample are refined at the adapted `p`.

use super::stats::mean;
use super::{neuron, Done, ReportOptions};
use crate::engine::selection::{adaptive_refine, refine as refine_sets, relation_neurons};
use crate::engine::Neuron;
use crate::experiment::db::FactRecord;
use crate::experiment::{fact_queries, Item, Plan, Settings};
use crate::models::Model;
use crate::pararel::{ParaRel, Relation};
use crate::{Error, Result};
use kn_shared::experiment::{Effects, RelationRow};
use std::collections::BTreeMap;

/// Every relation refined.
pub(super) struct Refined {
    /// The finished facts with their refined sets, relation by relation.
    pub done: Vec<Done>,
    /// One row per relation with a sampled fact (its effects are filled later).
    pub rows: Vec<RelationRow>,
    /// Per relation, the neurons the update leaves out (shared by more than
    /// `share` of its facts).
    pub rel_shared: BTreeMap<usize, Vec<Neuron>>,
    /// Per relation, the adapted refining share.
    pub rel_p: BTreeMap<usize, f64>,
}

/// A stored fact of the plan: `(fact, record, in the sample, known)`.
type PlannedFact = (usize, FactRecord, bool, bool);

/// A fact's refined `(knowledge, baseline)` neurons.
type Sets = (Vec<Neuron>, Vec<Neuron>);

/// Refine every relation of the run.
pub(super) fn refine(
    model: &Model,
    data: &ParaRel,
    plan: &Plan,
    stored: &[crate::experiment::db::StoredFact],
    settings: &Settings,
    opts: &ReportOptions,
) -> Result<Refined> {
    let mut out = Refined {
        done: Vec::new(),
        rows: Vec::new(),
        rel_shared: BTreeMap::new(),
        rel_p: BTreeMap::new(),
    };
    for (ri, rel) in data.relations.iter().enumerate() {
        let facts: Vec<PlannedFact> = stored
            .iter()
            .filter(|f| f.relation == rel.id)
            .filter_map(|f| {
                let it = Item {
                    relation: ri,
                    fact: f.fact,
                };
                let (s, k) = (plan.sample.contains(&it), plan.known.contains(&it));
                let r = f.outcome.as_ref().ok()?;
                (s || k).then(|| (f.fact, r.clone(), s, k))
            })
            .collect();
        if !facts.iter().any(|f| f.2) {
            continue;
        }
        let (sample, extra): (Vec<_>, Vec<_>) = facts.into_iter().partition(|f| f.2);
        let (sets, p) = refined_sets(&sample, &extra, opts);
        let start = out.done.len();
        for ((fact, record, in_sample, known), (knowledge, baseline)) in
            sample.into_iter().chain(extra).zip(sets)
        {
            let queries = fact_queries(model, rel, fact, settings.multi_token)?;
            if queries.len() != record.prompts.len() {
                return Err(Error::InvalidArgument(format!(
                    "{} #{fact}: the run stored {} prompts, the data gives {} now; was the data changed?",
                    rel.id,
                    record.prompts.len(),
                    queries.len()
                )));
            }
            let mut d = Done {
                rel: ri,
                fact,
                record,
                queries,
                knowledge,
                baseline,
                in_sample,
                known,
            };
            strongest_first(&mut d);
            out.done.push(d);
        }
        let (row, update_drop) = relation_row(rel, &out.done[start..], p, opts);
        out.rows.push(row);
        out.rel_shared.insert(ri, update_drop);
        out.rel_p.insert(ri, p);
    }
    Ok(out)
}

/// The refined `(knowledge, baseline)` sets of a relation's sampled facts
/// (adaptive `p` on them) and then of its other facts (at the adapted `p`),
/// with the knowledge neurons' adapted `p`.
fn refined_sets(
    sample: &[PlannedFact],
    extra: &[PlannedFact],
    opts: &ReportOptions,
) -> (Vec<Sets>, f64) {
    let coarse: Vec<_> = sample.iter().map(|f| coarse_sets(&f.1, opts)).collect();
    let ck: Vec<_> = coarse.iter().map(|c| c.0.clone()).collect();
    let cb: Vec<_> = coarse.iter().map(|c| c.1.clone()).collect();
    let ak = adaptive_refine(&ck, opts.p, opts.min_prompts, opts.max_rounds);
    let ab = adaptive_refine(&cb, opts.p, opts.min_prompts, opts.max_rounds);
    let neurons = |set: Vec<(Neuron, usize)>| set.into_iter().map(|(n, _)| n).collect();
    let mut sets: Vec<Sets> = ak
        .facts
        .into_iter()
        .zip(ab.facts)
        .map(|(k, b)| (neurons(k), neurons(b)))
        .collect();
    for f in extra {
        let (k, b) = coarse_sets(&f.1, opts);
        sets.push((
            neurons(refine_sets(&k, ak.p, opts.min_prompts)),
            neurons(refine_sets(&b, ab.p, opts.min_prompts)),
        ));
    }
    (sets, ak.p)
}

/// Order a fact's knowledge neurons strongest first (summed stored scores,
/// ties by neuron).
fn strongest_first(d: &mut Done) {
    let mut k = std::mem::take(&mut d.knowledge);
    k.sort_by(|a, b| {
        d.summed_score(*b)
            .total_cmp(&d.summed_score(*a))
            .then(a.cmp(b))
    });
    d.knowledge = k;
}

/// A relation's row of the report (its effects come later) and the neurons
/// its update leaves out: SPEC's relation-level neurons are shared by at least
/// `share` of the facts; the update drops those shared by more.
fn relation_row(
    rel: &Relation,
    done: &[Done],
    p: f64,
    opts: &ReportOptions,
) -> (RelationRow, Vec<Neuron>) {
    let mine: Vec<&Done> = done.iter().filter(|d| d.in_sample).collect();
    let kn_sets: Vec<Vec<Neuron>> = mine.iter().map(|d| d.knowledge.clone()).collect();
    let rel_n = relation_neurons(&kn_sets, opts.share);
    let update_drop: Vec<Neuron> = rel_n
        .iter()
        .filter(|&&(_, c)| c as f64 > opts.share * kn_sets.len() as f64)
        .map(|&(n, _)| n)
        .collect();
    let row = RelationRow {
        id: rel.id.clone(),
        label: rel.label.clone(),
        kind: rel.kind.clone(),
        facts: mine.len(),
        p,
        knowledge_per_fact: mean(mine.iter().map(|d| d.knowledge.len() as f64)).unwrap_or(0.0),
        baseline_per_fact: mean(mine.iter().map(|d| d.baseline.len() as f64)).unwrap_or(0.0),
        shared_neurons: rel_n.len(),
        suppress: Effects::default(),
        amplify: Effects::default(),
    };
    (row, update_drop)
}

/// A fact's coarse sets per prompt: knowledge (score above `t ×` the prompt's
/// largest) and baseline (activation above `base_t ×` its largest; runs made
/// before that was stored kept the set at a tuned threshold, used as is).
pub(super) fn coarse_sets(
    r: &FactRecord,
    opts: &ReportOptions,
) -> (Vec<Vec<Neuron>>, Vec<Vec<Neuron>>) {
    let k = r
        .prompts
        .iter()
        .map(|p| {
            p.knowledge
                .iter()
                .filter(|s| p.max_score > 0.0 && f64::from(s.2) > opts.t * p.max_score)
                .map(|s| neuron(s.0, s.1))
                .collect()
        })
        .collect();
    let b = r
        .prompts
        .iter()
        .map(|p| match p.max_activation {
            Some(m) => p
                .baseline
                .iter()
                .filter(|s| m > 0.0 && f64::from(s.2) > opts.base_t * m)
                .map(|s| neuron(s.0, s.1))
                .collect(),
            None => p.baseline.iter().map(|s| neuron(s.0, s.1)).collect(),
        })
        .collect();
    (k, b)
}
