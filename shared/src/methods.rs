//! The methods lab (`kn methods`): several neuron-attribution methods run on one
//! fact and judged by what their neurons do when suppressed or amplified.
//! `docs/methods.md` defines every method.
//!
//! Relative changes are fractions (−0.29 is −29%).

use crate::Neuron;
use serde::{Deserialize, Serialize};

/// What one method found on a fact, and what its neurons do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MethodResult {
    /// `ig`, `activation`, `grad-x-act`, `logprob-increase` or `random`.
    pub method: String,
    /// Wall-clock seconds of computing the scores (all prompts).
    pub seconds: f64,
    /// Matrix-product work of computing the scores, counted from the shapes.
    pub gflop: f64,
    /// The neurons with the highest mean score over the prompts, best first
    /// (as many as the largest `k`).
    pub top: Vec<Neuron>,
    /// The refined set (SPEC's coarse threshold `t` and share `p`, applied to
    /// this method's scores); `None` for `random`, whose refined set means nothing.
    pub refined: Option<Vec<Neuron>>,
    /// One row per `k`: the effect of this method's top-`k` neurons.
    pub by_k: Vec<KEffect>,
}

/// Suppressing (×0) and amplifying (×2) a method's top-`k` neurons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KEffect {
    pub k: usize,
    /// Relative change of the mean P(answer) over the fact's prompts.
    pub suppress: f64,
    pub amplify: f64,
    /// The same on the unrelated prompts (specificity); `None` without them.
    pub suppress_unrelated: Option<f64>,
    pub amplify_unrelated: Option<f64>,
}

/// `kn methods`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MethodsReport {
    pub model: String,
    pub fingerprint: String,
    pub target: String,
    pub prompts: Vec<String>,
    /// P(answer) on each prompt, unmodified.
    pub p_target: Vec<f64>,
    pub unrelated_prompts: Vec<String>,
    pub ks: Vec<usize>,
    pub methods: Vec<MethodResult>,
    /// `jaccard[i][j]`: Jaccard index of methods `i` and `j`'s refined sets
    /// (`None` where one has none, or both are empty).
    pub jaccard: Vec<Vec<Option<f64>>>,
    /// `spearman[i][j]`: Spearman rank correlation of their mean scores over
    /// every neuron.
    pub spearman: Vec<Vec<f64>>,
}
