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
    /// `ig`, `ig-masked-baseline`, `activation`, `grad-x-act`,
    /// `logprob-increase` or `random`.
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
    /// The top-`k` suppressed (×0) on the fact's prompts and on each control
    /// (the unrelated fact, then `controls`), each prompt's change and a 95%
    /// bootstrap interval; `None` without controls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specificity: Option<crate::Specificity>,
}

/// `kn methods`' answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MethodsReport {
    /// The request, canonical (model name as loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<MethodsRequest>,
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

/// `POST /api/jobs/methods`: compare attribution methods on one fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MethodsRequest {
    #[serde(default)]
    pub model: Option<String>,
    /// The fact's answer (one or several tokens for the model).
    pub target: String,
    /// The fact's prompts, each with one `[MASK]`.
    pub prompts: Vec<String>,
    /// Where a multi-token answer's neurons are read (`all` or `first`).
    #[serde(default, skip_serializing_if = "crate::AnswerPositions::is_default")]
    pub answer_positions: crate::AnswerPositions,
    /// Methods to run, in order: `ig`, `ig-masked-baseline`, `activation`,
    /// `grad-x-act`, `logprob-increase`, `random`.
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// How many top neurons to suppress and amplify.
    #[serde(default = "default_ks")]
    pub ks: Vec<usize>,
    /// Prompts of an unrelated fact (specificity), with its answer.
    #[serde(default)]
    pub unrelated_prompts: Vec<String>,
    #[serde(default)]
    pub unrelated_target: Option<String>,
    /// More control facts (a fact of the same relation, …) on which each
    /// method's top-k is suppressed beside the fact, for specificity; at most
    /// 4, never the fact itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<crate::ControlFact>,
    /// IG's Riemann steps `m` (also used by nothing else).
    #[serde(default = "crate::default_steps")]
    pub steps: usize,
    #[serde(default = "crate::default_t")]
    pub t: f64,
    #[serde(default = "crate::default_p")]
    pub p: f64,
    #[serde(default = "crate::default_min_prompts")]
    pub min_prompts: usize,
    /// Seed of the `random` method.
    #[serde(default)]
    pub seed: u64,
    /// Edit sets to run on (ids), in order; empty = the model as loaded.
    #[serde(default)]
    pub edits: Vec<String>,
}

pub fn default_methods() -> Vec<String> {
    [
        "ig",
        "ig-masked-baseline",
        "activation",
        "grad-x-act",
        "logprob-increase",
        "random",
    ]
    .map(String::from)
    .to_vec()
}

pub fn default_ks() -> Vec<usize> {
    vec![1, 2, 5, 10, 20]
}
