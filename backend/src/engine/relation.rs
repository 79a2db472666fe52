//! Relation-level work (SPEC: "Erase a relation"): the knowledge neurons of a
//! seeded sample of a relation's facts, and the prompts to measure an erasure on.

use super::attribution::Options;
use super::neurons::{attribute_fact_with, refine, Thresholds};
use super::{Neuron, Query};
use crate::models::Model;
use crate::pararel::{fill, Relation};
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::BTreeMap;

/// The templates this model can use: all for a masked LM, those whose blank
/// ends the sentence for a causal LM.
fn usable_templates<'a>(model: &Model, rel: &'a Relation) -> Vec<&'a String> {
    if model.config().arch.is_masked() {
        rel.templates.iter().collect()
    } else {
        rel.causal_templates()
    }
}

/// A fact's queries, or `None` when its answer is not one token for this model.
fn fact_queries(model: &Model, rel: &Relation, fact: usize) -> Option<Vec<Query>> {
    let f = &rel.facts[fact];
    usable_templates(model, rel)
        .iter()
        .map(|t| Query::new(model, &fill(t, &f.subject), &f.object).ok())
        .collect::<Option<Vec<_>>>()
        .filter(|q| !q.is_empty())
}

/// Returns the `top` most frequent knowledge neurons over `n_facts` sampled
/// facts, the sampled facts' prompts, and one prompt each from up to 20 other
/// relations (for side effects). `progress(facts done, facts)`.
#[allow(clippy::too_many_arguments)]
pub fn erase_plan(
    model: &Model,
    rel: &Relation,
    others: &[Relation],
    n_facts: usize,
    seed: u64,
    top: usize,
    opts: &Options,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<(Vec<Neuron>, Vec<Query>, Vec<Query>)> {
    let mut order: Vec<usize> = (0..rel.facts.len()).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let mut sample = Vec::new();
    for i in order {
        if sample.len() == n_facts {
            break;
        }
        if let Some(q) = fact_queries(model, rel, i) {
            sample.push(q);
        }
    }
    if sample.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no fact of {} has a one-token answer for this model",
            rel.id
        )));
    }
    let th = Thresholds::default();
    let mut counts: BTreeMap<Neuron, usize> = BTreeMap::new();
    let n = sample.len();
    for (i, qs) in sample.iter().enumerate() {
        if !progress(i, n) {
            return Err(Error::Cancelled);
        }
        let fa = attribute_fact_with(model, qs.clone(), opts, &mut |_, _| true)?;
        for (neuron, _) in refine(&fa.coarse_knowledge(th.t), th.p, th.min_prompts) {
            *counts.entry(neuron).or_default() += 1;
        }
    }
    progress(n, n);
    let mut ranked: Vec<(Neuron, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let neurons: Vec<Neuron> = ranked.into_iter().take(top).map(|(n, _)| n).collect();
    if neurons.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "the sampled facts of {} have no knowledge neurons",
            rel.id
        )));
    }
    let intra: Vec<Query> = sample.into_iter().flatten().collect();
    let inter: Vec<Query> = others
        .iter()
        .filter_map(|r| {
            (0..r.facts.len().min(20))
                .find_map(|i| fact_queries(model, r, i))
                .and_then(|q| q.into_iter().next())
        })
        .take(20)
        .collect();
    Ok((neurons, intra, inter))
}
