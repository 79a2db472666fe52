//! What a cheaper dtype costs in fidelity: the same fact attributed by a model
//! loaded in f32 and by the same checkpoint in bf16 or f16
//! ([`crate::load_model_as`]), compared as the method uses the scores: how far
//! each prompt's map moves against its largest score, whether the top
//! neurons stay, and whether the refined knowledge neurons are the same set.
//! f32 stays the default until a cheaper dtype keeps the sets.

use super::attribution::Options;
use super::methods_lab::top_k;
use super::selection::{attribute_fact, fact_neurons, Thresholds};
use super::{Neuron, Query};
use crate::models::Model;
use crate::Result;
use std::collections::BTreeSet;
use tch::Kind;

/// One fact under a reference model and another dtype of the same weights.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fidelity {
    /// The largest `max_i |s_i − s_ref,i| / max_i |s_ref,i|` over the prompts.
    pub worst_deviation: f64,
    /// The mean over prompts of the share of the reference's top-10 neurons
    /// that are also the other's top 10.
    pub top10_overlap: f64,
    /// Whether the refined knowledge neurons are the same set.
    pub same_knowledge: bool,
    /// The two sets' sizes.
    pub knowledge: (usize, usize),
}

/// Attribute `queries` (answer `target`) with both models and compare.
pub fn compare(
    reference: &Model,
    other: &Model,
    queries: &[Query],
    target: &str,
    opts: &Options,
    th: &Thresholds,
) -> Result<Fidelity> {
    let a = attribute_fact(reference, queries.to_vec(), opts)?;
    let b = attribute_fact(other, queries.to_vec(), opts)?;
    let mut worst = 0f64;
    let mut overlap = 0f64;
    for (x, y) in a.attributions.iter().zip(&b.attributions) {
        let (x, y) = (x.scores.to_kind(Kind::Float), y.scores.to_kind(Kind::Float));
        let scale = f64::try_from(x.abs().max())?;
        let d = f64::try_from((&y - &x).abs().max())?;
        worst = worst.max(if scale > 0.0 { d / scale } else { d });
        let (tx, ty): (BTreeSet<Neuron>, BTreeSet<Neuron>) = (
            top_k(&x, 10)?.into_iter().collect(),
            top_k(&y, 10)?.into_iter().collect(),
        );
        overlap += tx.intersection(&ty).count() as f64 / tx.len().max(1) as f64;
    }
    let set = |m: &Model, f| -> Result<BTreeSet<Neuron>> {
        Ok(fact_neurons(m, f, target, th)?
            .knowledge
            .iter()
            .map(|n| n.neuron())
            .collect())
    };
    let (ka, kb) = (set(reference, &a)?, set(other, &b)?);
    Ok(Fidelity {
        worst_deviation: worst,
        top10_overlap: overlap / a.attributions.len().max(1) as f64,
        same_knowledge: ka == kb,
        knowledge: (ka.len(), kb.len()),
    })
}
