//! Relation-level work (SPEC: "Erase a relation"): the knowledge neurons of a
//! seeded sample of a relation's facts, and the prompts to measure an erasure on.
//!
//! Building the prompts needs only the tokenizer ([`Vocab`]), so the server
//! does it in the request handler, where it checks the request's cost before
//! queueing any work; the attribution then runs on the model's thread.

use super::attribution::Options;
use super::selection::{attribute_fact_with, refine, Thresholds};
use super::{Neuron, Query};
use crate::experiment::fact_queries;
use crate::models::{Model, Vocab};
use crate::pararel::Relation;
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::BTreeMap;

/// Usable prompts of fact `i`, or `None` when it has none or its answer is not
/// one token for this model (the erasure's sample stays the one it was before
/// multi-token answers could be attributed, so its stored results keep their
/// meaning).
fn usable(model: &impl Vocab, rel: &Relation, i: usize) -> Option<Vec<Query>> {
    fact_queries(model, rel, i, None)
        .ok()
        .filter(|q| !q.is_empty())
}

/// A seeded sample of up to `n_facts` facts of `rel` whose answer is one token,
/// each as its prompts.
pub fn sample(
    model: &impl Vocab,
    rel: &Relation,
    n_facts: usize,
    seed: u64,
) -> Result<Vec<Vec<Query>>> {
    let mut order: Vec<usize> = (0..rel.facts.len()).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    let sample: Vec<Vec<Query>> = order
        .into_iter()
        .filter_map(|i| usable(model, rel, i))
        .take(n_facts)
        .collect();
    if sample.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no fact of {} has a one-token answer for this model",
            rel.id
        )));
    }
    Ok(sample)
}

/// One prompt each from up to 20 other relations, to measure side effects on.
pub fn side_prompts<'a>(
    model: &impl Vocab,
    others: impl IntoIterator<Item = &'a Relation>,
) -> Vec<Query> {
    others
        .into_iter()
        .filter_map(|r| {
            (0..r.facts.len().min(20))
                .find_map(|i| usable(model, r, i))
                .and_then(|q| q.into_iter().next())
        })
        .take(20)
        .collect()
}

/// The `top` most frequent knowledge neurons over the sampled facts.
/// `progress(facts done, facts)`; it is also asked between attribution
/// batches, and returning `false` cancels.
pub fn erase_neurons(
    model: &Model,
    sample: &[Vec<Query>],
    top: usize,
    opts: &Options,
    progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Vec<Neuron>> {
    let th = Thresholds::default();
    let mut counts: BTreeMap<Neuron, usize> = BTreeMap::new();
    let n = sample.len();
    for (i, qs) in sample.iter().enumerate() {
        if !progress(i, n) {
            return Err(Error::Cancelled);
        }
        let fa = attribute_fact_with(model, qs.clone(), opts, &mut |_, _| progress(i, n))?;
        for (neuron, _) in refine(&fa.coarse_knowledge(th.t), th.p, th.min_prompts) {
            *counts.entry(neuron).or_default() += 1;
        }
    }
    progress(n, n);
    let mut ranked: Vec<(Neuron, usize)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let neurons: Vec<Neuron> = ranked.into_iter().take(top).map(|(n, _)| n).collect();
    if neurons.is_empty() {
        return Err(Error::InvalidArgument(
            "the sampled facts have no knowledge neurons".into(),
        ));
    }
    Ok(neurons)
}
