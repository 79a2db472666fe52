//! The ParaRel experiment report (`kn experiment report`, `GET /api/experiments/{name}`):
//! the paper's tables regenerated from a run's stored neurons.
//!
//! Relative changes are fractions (−0.29 is −29%); rates are fractions in `[0, 1]`.

use serde::{Deserialize, Serialize};

/// A stored experiment run, as `GET /api/experiments` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentSummary {
    /// The run's folder name; the permalink is `/?view=experiments&run=<name>`.
    pub name: String,
    pub model: String,
    pub facts_done: usize,
    pub relations: usize,
    /// Whether `kn experiment report` has been run on it.
    pub has_report: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentReport {
    pub name: String,
    pub model: String,
    /// Fingerprint of the model's weights the run used.
    pub fingerprint: String,
    /// A masked LM (all templates) or a causal LM (templates ending in the blank).
    pub masked: bool,
    pub settings: ExperimentSettings,
    pub coverage: Coverage,
    pub knowledge: SetStats,
    pub baseline: SetStats,
    /// Model layers (the length of the layer histograms).
    pub layers: usize,
    pub relations: Vec<RelationRow>,
    /// Means over all facts.
    pub suppress: Effects,
    pub amplify: Effects,
    pub bingrel: Option<BingRel>,
    pub update: Option<UpdateSummary>,
    pub erase: Vec<EraseRow>,
    /// Seconds of attribution summed over facts, and seconds the report took.
    pub attribution_seconds: f64,
    pub report_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentSettings {
    /// Integrated-gradients steps m.
    pub steps: usize,
    pub riemann: String,
    /// Coarse threshold t.
    pub t: f64,
    /// Starting refining share p (adapted per relation).
    pub p: f64,
    pub min_prompts: usize,
    pub seed: u64,
    /// `None`: every fact.
    pub facts_per_relation: Option<usize>,
    /// Relations asked for (empty: all).
    pub relations: Vec<String>,
}

/// How much of ParaRel the run covers, and why facts were left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Coverage {
    pub relations: usize,
    pub facts: usize,
    /// Prompts from every template.
    pub prompts: usize,
    /// Prompts this model can use (a causal model: the blank ends the template).
    pub usable_prompts: usize,
    /// Facts whose answer this model's tokenizer splits into several tokens.
    pub multi_token: usize,
    /// Facts of relations without a usable template.
    pub no_template: usize,
    pub eligible_facts: usize,
    pub eligible_prompts: usize,
    /// Facts chosen (all eligible, or the seeded sample).
    pub planned: usize,
    pub done: usize,
    /// Facts whose attribution failed (the message is stored with the fact).
    pub failed: usize,
}

/// Statistics of one neuron kind (knowledge or baseline).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetStats {
    pub per_fact: f64,
    /// Facts with no neuron at all.
    pub empty_facts: usize,
    /// Mean |A ∩ B| over pairs of facts of one relation, and of two relations.
    pub shared_intra: f64,
    pub shared_inter: f64,
    /// Neurons per layer, summed over facts.
    pub per_layer: Vec<usize>,
}

/// Mean relative change of P(answer) over facts; `None` when no fact had a set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Effects {
    pub knowledge: Option<f64>,
    pub baseline: Option<f64>,
    /// Random neurons, as many per layer as the knowledge neurons.
    pub random: Option<f64>,
    /// The knowledge neurons applied to a prompt of another relation's fact.
    pub unrelated: Option<f64>,
    /// Facts averaged (those with knowledge neurons).
    pub facts: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RelationRow {
    pub id: String,
    pub label: String,
    pub kind: String,
    pub facts: usize,
    /// The adapted refining share.
    pub p: f64,
    pub knowledge_per_fact: f64,
    pub baseline_per_fact: f64,
    /// Neurons shared by at least 10% of the relation's facts.
    pub shared_neurons: usize,
    pub suppress: Effects,
    pub amplify: Effects,
}

/// Mean activation of a neuron set at the blank, per sentence group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivationGroups {
    /// Web sentences with head and tail, the tail blanked.
    pub expressing: f64,
    /// Sentences with the head only, a random word blanked.
    pub head_only: f64,
    /// Prompts of other facts.
    pub other_prompts: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BingRel {
    pub facts: usize,
    pub expressing_sentences: usize,
    pub head_only_sentences: usize,
    pub other_prompts: usize,
    pub knowledge: ActivationGroups,
    pub baseline: ActivationGroups,
}

/// One update variant's means over the edited facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateMetrics {
    pub change_rate: f64,
    pub success_rate: f64,
    pub intra_before: f64,
    pub intra_after: f64,
    pub inter_before: f64,
    pub inter_after: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KRates {
    pub k: usize,
    pub change_rate: f64,
    pub success_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateSummary {
    pub facts: usize,
    pub k: usize,
    pub lambda1: f64,
    pub lambda2: f64,
    pub norm_scaled: bool,
    pub knowledge: UpdateMetrics,
    pub random: UpdateMetrics,
    /// Change and success rates as `k` grows (knowledge neurons).
    pub k_sweep: Vec<KRates>,
}

/// Perplexity and top-1 accuracy on a prompt set, before and after an erasure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PplAcc {
    pub prompts: usize,
    pub ppl_before: f64,
    pub ppl_after: f64,
    pub acc_before: f64,
    pub acc_after: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EraseRow {
    pub relation: String,
    pub neurons: usize,
    /// The erased relation's prompts.
    pub intra: PplAcc,
    /// Prompts of the other relations.
    pub inter: PplAcc,
}

/// The paper's figures for BERT-base-cased (SPEC's table), to print beside ours.
pub const PAPER: &[(&str, &str, &str)] = &[
    ("neurons per fact", "4.13", "tuned to 2–5"),
    (
        "shared neurons, fact pairs of one relation / of two relations",
        "1.23 / 0.09",
        "",
    ),
    (
        "suppress: change of the answer's probability",
        "−29.03%",
        "−1.47%",
    ),
    ("amplify", "+31.17%", "−1.27%"),
    (
        "update facts: change rate / success rate",
        "48.5% / 34.4%",
        "random neurons 4.7% / 0.0%",
    ),
    (
        "update facts: perplexity increase intra / inter",
        "8.4 / 7.2",
        "random neurons: inter 4.3",
    ),
    (
        "erase P19 / P106: perplexity before → after",
        "1450 → 2996 / 2279 → 5202",
        "",
    ),
    (
        "BingRel mean activation: expressing / head only / random",
        "0.485 / 0.019 / −0.018",
        "",
    ),
];
