//! The ParaRel experiment report (`kn experiment report`, `GET /api/experiments/{name}`):
//! the paper's tables regenerated from a run's stored neurons.
//!
//! Relative changes are fractions (−0.29 is −29%); rates are fractions in `[0, 1]`. The
//! types and the paper's figures are here; `markdown` writes a report as text.

mod markdown;

pub use markdown::{estimate_text, markdown, ours};
use serde::{Deserialize, Serialize};

/// Attribution methods compared over a run's facts (`kn experiment report
/// --methods`): each method's refined neurons (the paper's selection, at the
/// relation's adapted `p`) and its top-`k` neurons, suppressed and amplified
/// on the fact's prompts, with intervals over facts, against its cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MethodsAtScale {
    /// Facts compared: a seeded subset of the sampled facts that have
    /// knowledge neurons, `per_relation` per relation.
    pub facts: usize,
    pub per_relation: usize,
    pub k: usize,
    pub rows: Vec<MethodScaleRow>,
    /// Of the facts compared, those whose answer is several tokens (runs that
    /// plan them: `Coverage::multi_token_included`).
    #[serde(default)]
    pub multi_token_facts: usize,
    /// The same per relation (relations in the data's order, methods in the
    /// rows' order within each).
    #[serde(default)]
    pub by_relation: Vec<MethodRelationRow>,
}

/// One method on one relation's compared facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MethodRelationRow {
    pub method: String,
    pub relation: String,
    pub facts: usize,
    /// The refined set ×0 and ×2, and the top-`k` ×0 (relative change of
    /// mean P(answer), intervals over the relation's facts).
    pub suppress: Option<Estimate>,
    pub amplify: Option<Estimate>,
    pub suppress_top_k: Option<Estimate>,
    /// Matrix-product GFLOP of the scores per fact on this relation's prompts.
    pub gflop_per_fact: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MethodScaleRow {
    pub method: String,
    /// Refined neurons per fact (empty sets count as 0).
    pub neurons_per_fact: Option<Estimate>,
    /// Facts whose refined set is empty (left out of its effects).
    pub empty: usize,
    /// The refined set, ×0 and ×2: relative change of mean P(answer).
    pub suppress: Option<Estimate>,
    pub amplify: Option<Estimate>,
    /// The top-`k` neurons by mean score, ×0 and ×2.
    pub suppress_top_k: Option<Estimate>,
    pub amplify_top_k: Option<Estimate>,
    /// The top-`k` neurons ×0 on the prompts of three facts of other relations.
    pub unrelated_top_k: Option<Estimate>,
    /// The top-`k` neurons ×0 on the multi-token facts alone.
    #[serde(default)]
    pub suppress_top_k_multi_token: Option<Estimate>,
    /// Seconds and matrix-product GFLOP of the scores, per fact (for `ig`, the
    /// run's own attribution time).
    pub seconds_per_fact: f64,
    pub gflop_per_fact: f64,
}

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
    /// The methods lab over the run's facts (`--methods`); `None` without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<MethodsAtScale>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentSettings {
    /// Integrated-gradients steps m.
    pub steps: usize,
    pub riemann: crate::Riemann,
    /// Coarse threshold t.
    pub t: f64,
    /// Starting refining share p (adapted per relation).
    pub p: f64,
    pub min_prompts: usize,
    /// The baseline's coarse threshold (a fraction of the prompt's largest
    /// activation); `p` then adapts per relation as for the knowledge neurons.
    #[serde(default)]
    pub base_t: Option<f64>,
    pub seed: u64,
    /// `None`: every fact.
    pub facts_per_relation: Option<usize>,
    /// Relations asked for (empty: all).
    pub relations: Vec<String>,
    /// Where multi-token answers' neurons were read (`all`, `first`); `None`:
    /// such facts were left out.
    #[serde(default)]
    pub multi_token: Option<crate::AnswerPositions>,
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
    /// Facts whose answer this model's tokenizer splits into several tokens
    /// (at most 8: longer ones are `too_many_pieces`).
    pub multi_token: usize,
    /// Whether those facts are planned (read as chains of one-token steps);
    /// runs made before they could be attributed left them out.
    #[serde(default)]
    pub multi_token_included: bool,
    /// Facts left out because their answer has more pieces than an answer may
    /// have (8).
    #[serde(default)]
    pub too_many_pieces: usize,
    /// Facts of relations without a usable template.
    pub no_template: usize,
    /// Facts whose prompt cannot be built (too long for the model, or the
    /// tokenizer refuses it).
    #[serde(default)]
    pub unusable: usize,
    pub eligible_facts: usize,
    pub eligible_prompts: usize,
    /// Facts chosen (all eligible, or the seeded sample, and the known facts).
    pub planned: usize,
    /// Of those, facts chosen because the model answers them correctly on at
    /// least one prompt (for the update experiment; some may also be in the
    /// sample).
    #[serde(default)]
    pub known_planned: usize,
    /// Facts the known-fact scan tried (at most 320 per relation).
    #[serde(default)]
    pub known_scanned: usize,
    /// The known facts, `(relation, fact index)`.
    #[serde(default)]
    pub known: Vec<(String, usize)>,
    pub done: usize,
    /// Facts whose attribution failed (the message is stored with the fact).
    pub failed: usize,
    /// Relations left out because the model can use fewer than 4 of their
    /// templates (SPEC's rule, applied to usable templates): their facts
    /// would have too few prompts to refine.
    #[serde(default)]
    pub unrefinable: Vec<Unrefinable>,
}

/// A relation the run leaves out: too few usable templates to refine with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Unrefinable {
    pub relation: String,
    pub usable_templates: usize,
    pub facts: usize,
}

/// A mean over facts with its 95% confidence interval: the 2.5th and 97.5th
/// percentiles of the mean over 1,000 seeded bootstrap resamples of the facts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Estimate {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
    /// Facts (or, where said, other units) the mean is over.
    pub n: usize,
}

/// Confidence intervals of a [`SetStats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetCi {
    pub per_fact: Estimate,
    pub shared_intra: Estimate,
    pub shared_inter: Estimate,
    /// Relations whose mean neurons per fact lies outside 2–5.
    pub relations_outside_2_5: usize,
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
    #[serde(default)]
    pub ci: Option<SetCi>,
}

/// Mean relative change of P(answer) over facts; `None` when no fact had a set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Effects {
    pub knowledge: Option<f64>,
    pub baseline: Option<f64>,
    /// Random neurons, as many per layer as the knowledge neurons.
    pub random: Option<f64>,
    /// The knowledge neurons applied to the prompts of facts of other
    /// relations (every prompt of three of them).
    pub unrelated: Option<f64>,
    /// Facts averaged (those with knowledge neurons).
    pub facts: usize,
    /// The same means with their confidence intervals over facts.
    #[serde(default)]
    pub ci: Option<EffectsCi>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EffectsCi {
    pub knowledge: Option<Estimate>,
    pub baseline: Option<Estimate>,
    pub random: Option<Estimate>,
    pub unrelated: Option<Estimate>,
    /// The median over the facts of the knowledge neurons' effect (a few
    /// facts with huge relative changes can move a mean).
    #[serde(default)]
    pub knowledge_median: Option<f64>,
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
    /// Sentences left out because the tail occurs more than once in them (a
    /// masked model would see the answer in the other occurrence).
    #[serde(default)]
    pub repeated_tail_sentences: usize,
    pub expressing_sentences: usize,
    pub head_only_sentences: usize,
    pub other_prompts: usize,
    pub knowledge: ActivationGroups,
    pub baseline: ActivationGroups,
    /// Confidence intervals over facts of the knowledge neurons' means:
    /// expressing, head only, other prompts.
    #[serde(default)]
    pub knowledge_ci: Option<[Estimate; 3]>,
}

/// One update variant's means over the edited facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateMetrics {
    /// SPEC's definition: the share of the fact's prompts whose top-1 is no
    /// longer the old answer (prompts the model got wrong before count as
    /// changed).
    pub change_rate: f64,
    pub success_rate: f64,
    /// Perplexities, arithmetic means over the edited facts.
    pub intra_before: f64,
    pub intra_after: f64,
    pub inter_before: f64,
    pub inter_after: f64,
    /// The other reading: the share of the prompts answered correctly before
    /// the edit that are no longer after it.
    #[serde(default)]
    pub change_rate_known: Option<f64>,
    /// Geometric means of the same perplexities.
    #[serde(default)]
    pub geometric: Option<[f64; 4]>,
    #[serde(default)]
    pub ci: Option<UpdateCi>,
}

/// Confidence intervals over the edited facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateCi {
    pub change_rate: Estimate,
    /// Over the facts with at least one prompt answered correctly before.
    pub change_rate_known: Option<Estimate>,
    pub success_rate: Estimate,
    /// Perplexity after − before.
    pub intra_increase: Estimate,
    pub inter_increase: Estimate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KRates {
    pub k: usize,
    /// The facts of the sweep: one fixed set, the edited facts with at least
    /// the sweep's largest `k` neurons.
    #[serde(default)]
    pub facts: usize,
    pub change_rate: f64,
    pub success_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateSummary {
    pub facts: usize,
    /// Prompts of the edited facts.
    #[serde(default)]
    pub prompts: usize,
    /// Of those, the prompts whose top-1 was the old answer before the edit:
    /// the change rate counts only these (a prompt the model already got
    /// wrong cannot be "changed" by the edit).
    #[serde(default)]
    pub known_prompts: usize,
    pub k: usize,
    pub lambda1: f64,
    pub lambda2: f64,
    pub norm_scaled: bool,
    pub knowledge: UpdateMetrics,
    pub random: UpdateMetrics,
    /// Change and success rates as `k` grows (knowledge neurons).
    pub k_sweep: Vec<KRates>,
    /// Whether the edited facts were sampled among facts the model answers
    /// correctly on at least one prompt.
    #[serde(default)]
    pub known_facts: bool,
    /// `(k actually used, facts)`: a fact with fewer than `k` neurons edits
    /// all it has.
    #[serde(default)]
    pub k_used: Vec<(usize, usize)>,
    /// Prompts per perplexity set (intra: all prompts of the relation's other
    /// sampled facts, on average per edited fact; inter: a fixed seeded sample).
    #[serde(default)]
    pub intra_prompts: f64,
    #[serde(default)]
    pub inter_prompts: usize,
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
    /// Confidence intervals of the perplexities before and after, resampling
    /// the facts the prompts belong to.
    #[serde(default)]
    pub ci: Option<[Estimate; 2]>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EraseRow {
    pub relation: String,
    pub neurons: usize,
    /// Distinct knowledge neurons of the relation's facts (the candidates).
    #[serde(default)]
    pub candidates: usize,
    /// Of the erased neurons, those chosen among neurons of equal count (ties
    /// broken by summed attribution).
    #[serde(default)]
    pub tie_decided: usize,
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

/// The report's charts: file stem and title, in order.
pub const CHARTS: &[(&str, &str)] = &[
    ("suppress", "Suppressing neurons (×0), per relation"),
    ("amplify", "Amplifying neurons (×2), per relation"),
    ("layers", "Where the neurons are: share per layer"),
    ("bingrel", "BingRel: mean activation at the blank"),
    ("update", "Updating facts: change and success rates"),
    ("update_k", "Updating facts: rates as k grows"),
    ("erase", "Erasing a relation: perplexity after / before"),
];

impl ExperimentReport {
    /// Whether the report has the data for chart `name` (see [`CHARTS`]).
    pub fn has_chart(&self, name: &str) -> bool {
        match name {
            "bingrel" => self.bingrel.is_some(),
            "update" | "update_k" => self.update.is_some(),
            "erase" => !self.erase.is_empty(),
            _ => true,
        }
    }
}
