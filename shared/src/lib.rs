//! The JSON contract between the `kn` server (and `kn … --json`) and its
//! clients. Both the backend and the WebAssembly frontend compile these types,
//! so the API cannot drift between them.
//!
//! Stability: fields are only ever added (with `#[serde(default)]` on the reading
//! side), never renamed or removed, within a major version. Probabilities are
//! plain softmax probabilities in `[0, 1]`.

use serde::{Deserialize, Serialize};

#[cfg(feature = "charts")]
pub mod charts;
pub mod experiment;
pub mod methods;
pub mod stored;

pub use stored::{
    ComputeOutput, ComputeRequest, KindMismatch, ResultKind, StoredResult, StoredResultJson,
};

/// The architectures `kn` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// BERT masked LM: the blank is the `[MASK]` token.
    Bert,
    /// GPT-2 causal LM: the blank is the next token after the prompt.
    Gpt2,
    /// Llama family causal LM (Llama 2/3, Mistral, Qwen2, Qwen3, Phi-3,
    /// OLMo 2, SmolLM).
    Llama,
    /// Gemma, Gemma 2, Gemma 3 (text) causal LMs.
    Gemma,
    /// GPT-NeoX causal LM (Pythia).
    #[serde(rename = "gpt_neox")]
    GptNeox,
    /// GPT-J causal LM.
    Gptj,
    /// RoBERTa and XLM-RoBERTa masked LMs: the blank is the `<mask>` token.
    Roberta,
}

impl Arch {
    /// Masked LMs read the blank at the mask token; causal LMs after the last token.
    pub fn is_masked(self) -> bool {
        match self {
            Arch::Bert | Arch::Roberta => true,
            Arch::Gpt2 | Arch::Llama | Arch::Gemma | Arch::GptNeox | Arch::Gptj => false,
        }
    }

    /// The name in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Bert => "bert",
            Arch::Gpt2 => "gpt2",
            Arch::Llama => "llama",
            Arch::Gemma => "gemma",
            Arch::GptNeox => "gpt_neox",
            Arch::Gptj => "gptj",
            Arch::Roberta => "roberta",
        }
    }
}

impl Arch {
    /// Whether the FFN is gated (`act(gate·h) ⊙ up·h`: three matrices, not two).
    pub fn gated_ffn(self) -> bool {
        match self {
            Arch::Llama | Arch::Gemma => true,
            Arch::Bert | Arch::Gpt2 | Arch::GptNeox | Arch::Gptj | Arch::Roberta => false,
        }
    }

    /// Whether the LM head transforms the final state (dense, activation,
    /// LayerNorm) before the unembedding, as BERT's and RoBERTa's do.
    pub fn head_transform(self) -> bool {
        self.is_masked()
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which end of each step's interval the Riemann sum of integrated gradients
/// evaluates: SPEC's `k = 1..m` (`right`, the paper) or `k = 0..m−1` (`left`,
/// the authors' code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Riemann {
    /// `k = 1..m`, the paper's.
    #[default]
    Right,
    /// `k = 0..m−1`, the authors' code.
    Left,
}

impl Riemann {
    pub fn name(self) -> &'static str {
        match self {
            Riemann::Right => "right",
            Riemann::Left => "left",
        }
    }
}

impl std::fmt::Display for Riemann {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Riemann {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "right" => Ok(Riemann::Right),
            "left" => Ok(Riemann::Left),
            _ => Err(format!("riemann is `{}`; use `right` or `left`", clip(s))),
        }
    }
}

/// Read from its name, with an error that names the field (serde's own says
/// only "unknown variant").
impl<'de> Deserialize<'de> for Riemann {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// At most 40 characters of user input, for error messages.
pub fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// A loaded model, as `GET /api/models` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelSummary {
    /// The name to pass as `model` in requests.
    pub name: String,
    pub arch: Arch,
    /// True for masked LMs (the blank is `[MASK]` anywhere); false for causal LMs
    /// (the blank must end the prompt).
    pub masked: bool,
    pub n_layers: usize,
    pub d_model: usize,
    /// Neurons per layer.
    pub d_ff: usize,
    pub vocab_size: usize,
    pub max_positions: usize,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// What the weight matrices are held in: `f32`, `bf16` or `f16` (a
    /// checkpoint distributed in bf16 stays bf16 unless `--storage` says).
    /// Results saved before precisions existed say neither: they were f32.
    #[serde(default = "f32_name")]
    pub storage: String,
    /// What activations, probabilities and IG sums are computed in (`f32`
    /// unless `--dtype` says).
    #[serde(default = "f32_name")]
    pub compute: String,
}

fn f32_name() -> String {
    "f32".into()
}

/// `POST /api/predict`, and the input of `kn predict`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// Model name from `GET /api/models`; the server's first model when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// A cloze prompt with exactly one `[MASK]`, e.g. `The capital of France is [MASK].`
    pub prompt: String,
    /// Optional answer whose probability and rank to report (one token or several).
    #[serde(default)]
    pub target: Option<String>,
    /// How many top predictions to return (1..=1000).
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Edit sets (ids from `POST /api/edit-sets` or an edit's outcome) to apply,
    /// in order, for this request only; empty = the model as loaded.
    #[serde(default)]
    pub edits: Vec<String>,
}

pub fn default_top_k() -> usize {
    10
}

/// One vocabulary entry with its probability at the blank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenProb {
    pub id: u32,
    /// The token as text (` Paris` for byte-level BPE, `##ing` for WordPiece).
    pub token: String,
    pub prob: f64,
}

/// The target's probability and its rank (1 = the model's top prediction).
///
/// A multi-token answer is a chain of one-token steps, each piece predicted
/// from the prompt and the answer's earlier pieces: `prob` is the product of
/// the pieces' probabilities (P(answer)), `id`, `token` and `rank` are the
/// first piece's at the blank, and `pieces` lists every piece with its own
/// probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TargetProb {
    pub id: u32,
    pub token: String,
    pub prob: f64,
    pub rank: usize,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pieces: Vec<TokenProb>,
}

/// Where the neurons of a multi-token answer are read and acted on (one-token
/// answers have one position, and this changes nothing). The answer is a chain
/// of one-token steps, each read at its own blank; see docs/method.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AnswerPositions {
    /// At every step's blank: integrated gradients of P(answer) along one path
    /// that scales them all, and interventions that scale them all.
    #[default]
    All,
    /// At the first step's blank only (the position predicting the first
    /// piece); the later steps are read as they are.
    First,
}

impl AnswerPositions {
    /// For `skip_serializing_if`: the default is left out of stored requests,
    /// so the ids of results made before the option existed stay the same.
    pub fn is_default(&self) -> bool {
        *self == AnswerPositions::All
    }

    pub fn name(self) -> &'static str {
        match self {
            AnswerPositions::All => "all",
            AnswerPositions::First => "first",
        }
    }
}

impl std::str::FromStr for AnswerPositions {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => Ok(AnswerPositions::All),
            "first" => Ok(AnswerPositions::First),
            _ => Err(format!("`{s}`: the answer positions are `all` or `first`")),
        }
    }
}

/// The answer distribution at the blank of a cloze prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PredictResponse {
    pub model: String,
    pub prompt: String,
    /// The model's input tokens, as text.
    pub tokens: Vec<String>,
    pub input_ids: Vec<u32>,
    /// Index into `tokens` where the answer is read (the mask token, or the last
    /// token of a causal prompt).
    pub blank_index: usize,
    pub top_k: Vec<TokenProb>,
    #[serde(default)]
    pub target: Option<TargetProb>,
}

/// Every API error: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Stable machine-readable code (`bad_prompt`, `model_not_found`, …).
    pub code: String,
    /// What was wrong, in words a user can act on.
    pub message: String,
}

impl ApiError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            error: ErrorBody {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// `GET /api/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    pub status: String,
    pub version: String,
    pub models: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predict_request_defaults_and_rejects_unknown_fields() {
        let r: PredictRequest = serde_json::from_str(r#"{"prompt":"a [MASK]."}"#).unwrap();
        assert_eq!(r.top_k, 10);
        assert_eq!(r.model, None);
        let e = serde_json::from_str::<PredictRequest>(r#"{"prompt":"x","topk":3}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `topk`"), "{e}");
    }

    #[test]
    fn error_shape() {
        let j = serde_json::to_value(ApiError::new("bad_prompt", "no [MASK]")).unwrap();
        assert_eq!(j["error"]["code"], "bad_prompt");
        assert_eq!(j["error"]["message"], "no [MASK]");
    }
}

// ---------------------------------------------------------------------------
// The knowledge-neuron engine's results (SPEC), shared by `kn … --json` and the API.

/// A neuron: a layer and an index into that layer's FFN intermediate activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Neuron {
    pub layer: usize,
    pub index: usize,
}

impl std::fmt::Display for Neuron {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "L{}:{}", self.layer, self.index)
    }
}

impl std::str::FromStr for Neuron {
    type Err = String;

    /// `L3:1021` or `3:1021`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().trim_start_matches(['L', 'l']);
        let (l, i) = t
            .split_once(':')
            .ok_or_else(|| format!("neuron `{s}`: expected LAYER:INDEX, e.g. L9:1021"))?;
        let parse = |x: &str| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("neuron `{s}`: `{x}` is not a number"))
        };
        Ok(Neuron {
            layer: parse(l)?,
            index: parse(i)?,
        })
    }
}

/// One prompt's integrated-gradients attribution over every layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PromptAttribution {
    pub prompt: String,
    pub tokens: Vec<String>,
    pub blank_index: usize,
    /// `P(target)` of the unmodified model.
    pub p_target: f64,
    /// Per layer: `P(target)` with that layer's blank activation set to zero.
    pub p_zero: Vec<f64>,
    /// Per layer: `Σ_i Attr(w_i) − (P(w̄) − P(0))`, SPEC's completeness residual.
    pub residual: Vec<f64>,
    /// `[layers][d_ff]` attribution scores.
    pub scores: Vec<Vec<f32>>,
    /// `[layers][d_ff]` activations at the blank (the baseline's scores).
    pub activations: Vec<Vec<f32>>,
}

/// A selected neuron with the evidence for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoredNeuron {
    pub layer: usize,
    pub index: usize,
    /// In how many prompts' coarse sets it was.
    pub prompts: usize,
    /// Mean attribution score over the prompts.
    pub score: f64,
    /// Mean activation at the blank over the prompts.
    pub activation: f64,
}

impl ScoredNeuron {
    pub fn neuron(&self) -> Neuron {
        Neuron {
            layer: self.layer,
            index: self.index,
        }
    }
}

/// The knowledge neurons of one fact and the activation baseline's neurons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FactNeurons {
    pub target: String,
    /// Coarse threshold `t` (fraction of the prompt's maximum score).
    pub t: f64,
    /// The baseline's coarse threshold, tuned so it yields 2–5 neurons (SPEC).
    pub baseline_t: f64,
    /// Refining share `p` used (after adaptation, if any).
    pub p: f64,
    pub min_prompts: usize,
    /// Per prompt: `P(target)` and the sizes of the coarse sets.
    pub prompts: Vec<PromptSummary>,
    /// Refined knowledge neurons, strongest first.
    pub knowledge: Vec<ScoredNeuron>,
    /// Refined activation-baseline neurons, strongest first.
    pub baseline: Vec<ScoredNeuron>,
    /// Neurons in both sets.
    pub overlap: Vec<Neuron>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PromptSummary {
    pub prompt: String,
    pub p_target: f64,
    pub coarse_knowledge: usize,
    pub coarse_baseline: usize,
}

/// One prompt before and after an intervention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PromptEffect {
    pub prompt: String,
    pub p_before: f64,
    pub p_after: f64,
    pub top1_before: String,
    pub top1_after: String,
    /// Rank of the answer (1 = top) before and after, where measured.
    #[serde(default)]
    pub rank_before: Option<usize>,
    #[serde(default)]
    pub rank_after: Option<usize>,
    /// A fact update's new answer t′: its probability and rank before and after.
    #[serde(default)]
    pub new_answer: Option<AnswerChange>,
}

/// One answer's probability and rank before and after an edit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnswerChange {
    pub token: String,
    pub p_before: f64,
    pub p_after: f64,
    pub rank_before: usize,
    pub rank_after: usize,
}

/// The effect of scaling a neuron set at the blank on a set of prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InterventionEffect {
    pub neurons: Vec<Neuron>,
    pub factor: f64,
    pub prompts: Vec<PromptEffect>,
    pub mean_before: f64,
    pub mean_after: f64,
    /// `(mean_after − mean_before) / mean_before` (SPEC).
    pub relative_change: f64,
}

/// Suppress or amplify a fact's knowledge neurons, with SPEC's controls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InterventionReport {
    pub factor: f64,
    /// The knowledge neurons on the fact's own prompts.
    pub knowledge: InterventionEffect,
    /// The activation baseline's neurons on the same prompts.
    #[serde(default)]
    pub baseline: Option<InterventionEffect>,
    /// Random neurons, same count per layer, on the same prompts.
    #[serde(default)]
    pub random: Option<InterventionEffect>,
    /// The knowledge neurons on prompts of an unrelated fact.
    #[serde(default)]
    pub unrelated: Option<InterventionEffect>,
}

/// One value slot changed by an edit: its exact contents before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SlotEdit {
    pub layer: usize,
    pub index: usize,
    pub before: Vec<f32>,
    pub after: Vec<f32>,
}

/// A reversible weight edit: the base weights on disk are never changed; an edit
/// set is applied to the model in memory, undone exactly, saved and loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EditSet {
    /// Fingerprint of the model the edit was made for.
    pub model: String,
    /// What the edit does, in words (`update Paris -> London`, `erase P19`).
    pub description: String,
    pub slots: Vec<SlotEdit>,
}

/// Success of an edit on a fact's prompts and its side effects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EditMetrics {
    /// SPEC's change rate: the share of the fact's prompts whose top-1 is no
    /// longer the old answer (a prompt the model got wrong before counts as
    /// changed).
    pub change_rate: f64,
    /// Share whose top-1 is the new answer.
    pub success_rate: f64,
    /// Perplexity `exp(mean −log P(gold))` over other prompts, before and after.
    pub perplexity: Vec<PerplexityChange>,
    /// The other reading of the change rate: among the prompts whose top-1 was
    /// the old answer before the edit, the share where it no longer is
    /// (`None` when the model got none of them right).
    #[serde(default)]
    pub change_rate_known: Option<f64>,
    /// The fact's prompts, and how many of them the model answered correctly
    /// before the edit (what each rate rests on).
    #[serde(default)]
    pub prompts: usize,
    #[serde(default)]
    pub known_prompts: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PerplexityChange {
    /// `intra` (same relation), `inter` (other relations), or a name.
    pub set: String,
    pub prompts: usize,
    pub before: f64,
    pub after: f64,
}

/// An edit with its measured effect and the random-neuron control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EditReport {
    pub edit: EditSet,
    pub metrics: EditMetrics,
    /// The same edit on random neurons of the same count.
    #[serde(default)]
    pub random: Option<EditMetrics>,
}

/// `POST /api/analyze`: find a fact's knowledge neurons, compare them with the
/// baseline's, and measure suppressing and amplifying both (and random neurons).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRequest {
    #[serde(default)]
    pub model: Option<String>,
    /// The answer (one or several tokens for the model).
    pub target: String,
    /// Paraphrased prompts of the fact, each with one `[MASK]`.
    pub prompts: Vec<String>,
    /// Where a multi-token answer's neurons are read (`all` or `first`).
    #[serde(default, skip_serializing_if = "AnswerPositions::is_default")]
    pub answer_positions: AnswerPositions,
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// `right` (the paper) or `left` (the authors' code).
    #[serde(default)]
    pub riemann: Riemann,
    #[serde(default = "default_t")]
    pub t: f64,
    #[serde(default = "default_p")]
    pub p: f64,
    #[serde(default = "default_min_prompts")]
    pub min_prompts: usize,
    /// Edit sets (ids from `POST /api/edit-sets` or an edit's outcome) to apply,
    /// in order, for this request only; empty = the model as loaded.
    #[serde(default)]
    pub edits: Vec<String>,
    /// Other facts the knowledge neurons are also suppressed on, to show
    /// whether they carry this fact or something broader (specificity). Never
    /// the fact itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controls: Vec<ControlFact>,
}

/// A control fact of an analysis: another fact, of the same relation or of
/// another one, with its own answer and prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ControlFact {
    /// `same relation` or `other relation` (or a name of the caller's).
    pub kind: String,
    pub target: String,
    pub prompts: Vec<String>,
}

/// Suppressing (×0) a fact's knowledge neurons on one set of prompts: each
/// prompt's relative change of P(answer), and the relative change of the
/// mean with its 95% bootstrap interval over the prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SpecificityRow {
    /// `this fact`, or the control's kind.
    pub set: String,
    pub target: String,
    pub per_prompt: Vec<f64>,
    pub change: f64,
    pub lo: f64,
    pub hi: f64,
}

/// The knowledge neurons' specificity: their effect on the fact beside their
/// effect on the controls. `fact_specific` is false when the fact's interval
/// overlaps a control's: the neurons then carry more than this fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Specificity {
    pub rows: Vec<SpecificityRow>,
    pub fact_specific: bool,
}

pub fn default_steps() -> usize {
    20
}
pub fn default_t() -> f64 {
    0.2
}
pub fn default_p() -> f64 {
    0.7
}
pub fn default_min_prompts() -> usize {
    1
}

/// A stored analysis: everything the attribution and comparison views show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnalysisResult {
    pub request: AnalyzeRequest,
    pub model: ModelSummary,
    /// `[layers][d_ff]` attribution scores averaged over the prompts.
    pub mean_scores: Vec<Vec<f32>>,
    /// `[layers][d_ff]` activations at the blank averaged over the prompts.
    pub mean_activations: Vec<Vec<f32>>,
    /// Per prompt: tokens, `P(target)`, completeness residuals.
    pub prompts: Vec<PromptOverview>,
    pub neurons: FactNeurons,
    /// Absent when the fact has no refined knowledge neurons at these thresholds.
    #[serde(default)]
    pub suppress: Option<InterventionReport>,
    #[serde(default)]
    pub amplify: Option<InterventionReport>,
    /// The knowledge neurons suppressed on the request's control facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specificity: Option<Specificity>,
    /// Seconds the computation took.
    pub seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PromptOverview {
    pub prompt: String,
    pub tokens: Vec<String>,
    pub blank_index: usize,
    pub p_target: f64,
    pub max_abs_residual: f64,
    /// The prompt's largest attribution score over every neuron: a neuron is in
    /// its coarse set when its score exceeds `t ×` this. (Absent in results
    /// stored before it was kept.)
    #[serde(default)]
    pub max_score: Option<f64>,
}

/// The answer of `POST /api/analyze` and `GET /api/results/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnalyzeResponse {
    /// The result's permalink id (a content hash of the model and the request).
    pub id: String,
    /// Whether it came from the store rather than a new computation.
    pub cached: bool,
    pub result: AnalysisResult,
}

/// `GET /api/dataset`: a ParaRel relation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RelationSummary {
    pub id: String,
    pub label: String,
    /// `1-1`, `N-1` or `N-M`.
    pub kind: String,
    pub templates: usize,
    /// Templates whose blank ends the sentence (usable by causal models).
    pub causal_templates: usize,
    pub facts: usize,
}

/// `GET /api/dataset/{relation}?q=&offset=&limit=`: templates and a page of facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RelationPage {
    pub relation: RelationSummary,
    pub templates: Vec<String>,
    /// Facts matching `q` (subject or object, case-insensitive), this page.
    pub facts: Vec<FactEntry>,
    /// How many facts match `q` in all.
    pub matching: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FactEntry {
    /// Index of the fact in its relation.
    pub index: usize,
    pub subject: String,
    pub object: String,
}

/// A long computation's state: `GET /api/jobs/{id}` and each server-sent event
/// of `GET /api/jobs/{id}/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobStatus {
    /// Also the id of the result it produces.
    pub id: String,
    pub state: JobState,
    /// Prompts attributed so far, of `total`.
    pub done: usize,
    pub total: usize,
    /// When `failed`: what went wrong.
    #[serde(default)]
    pub error: Option<ErrorBody>,
    /// When an edit job is `done`: the edit and its effect.
    #[serde(default)]
    pub edit: Option<EditResponse>,
}

impl JobStatus {
    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }
}

/// `POST /api/estimate/analyze`: a request's cost before it is run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CostEstimate {
    /// Work units, as the budget counts them (`GET /api/limits`' `max_work`).
    pub units: u64,
    /// Seconds at the pace of this server's timed jobs; `None` before one.
    pub seconds: Option<f64>,
    /// Jobs the pace is measured over.
    pub timed_jobs: usize,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    /// Whether the job has ended (its status no longer changes).
    pub fn is_terminal(self) -> bool {
        match self {
            JobState::Queued | JobState::Running => false,
            JobState::Done | JobState::Failed | JobState::Cancelled => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `POST /api/edits/update`: update a fact `t → t'` through its knowledge neurons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateFactRequest {
    #[serde(default)]
    pub model: Option<String>,
    /// The current answer t.
    pub target: String,
    /// The new answer t'.
    pub new_target: String,
    pub prompts: Vec<String>,
    #[serde(default = "default_k")]
    pub k: usize,
    #[serde(default = "default_lambda1")]
    pub lambda1: f64,
    #[serde(default = "default_lambda2")]
    pub lambda2: f64,
    /// Rescale embeddings to the value slot's norm (the authors' code).
    #[serde(default)]
    pub norm_scaled: bool,
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// Prompts of other facts with their answers, for the perplexity side effect.
    #[serde(default)]
    pub eval: Vec<EvalPrompt>,
    /// Edit sets (ids from `POST /api/edit-sets` or an edit's outcome) to apply,
    /// in order, for this request only; empty = the model as loaded.
    #[serde(default)]
    pub edits: Vec<String>,
    /// Search [`STRENGTH_GRID`] for the smallest `λ2` that works (see
    /// [`StrengthSearch`]); the outcome's edit is that one, or the one at
    /// `lambda2` when none works. The page adds a searched edit only when asked.
    #[serde(default, skip_serializing_if = "is_false")]
    pub search: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The `λ2` values an edit-strength search tries, smallest first (8 is the paper's).
pub const STRENGTH_GRID: [f64; 9] = [0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0];

/// An edit-strength search: every `λ2` of the grid tried on the fact, and the
/// smallest that works. A setting *works* when the new answer becomes the
/// top-1 on the edit prompt (the fact's first) while the perplexity of the
/// side-effect prompts at most doubles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StrengthSearch {
    pub tried: Vec<StrengthTry>,
    /// The smallest `λ2` that works; `None` when none on the grid does.
    pub chosen: Option<f64>,
    /// The edit prompt.
    pub prompt: String,
    /// What perplexity was measured on: `eval` (the request's), or one ParaRel
    /// prompt from each of up to 20 relations.
    pub side: String,
    pub side_prompts: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StrengthTry {
    pub lambda2: f64,
    /// The edit prompt's top-1 after the edit, and P(new answer) there.
    pub top1: String,
    pub p_new: f64,
    /// Share of the fact's prompts whose top-1 is the new answer.
    pub success_rate: f64,
    pub perplexity_before: f64,
    pub perplexity_after: f64,
    pub works: bool,
}

pub fn default_k() -> usize {
    4
}
pub fn default_lambda1() -> f64 {
    1.0
}
pub fn default_lambda2() -> f64 {
    8.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvalPrompt {
    pub prompt: String,
    pub target: String,
}

/// `POST /api/edits/erase`: zero (or `[UNK]`) the value slots of given neurons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    #[serde(default)]
    pub model: Option<String>,
    pub neurons: Vec<Neuron>,
    /// `zero` or `unk`.
    #[serde(default = "default_erase_with")]
    pub with: String,
    /// The fact the neurons are erased for: its answer and prompts, measured
    /// first (is it forgotten?). Both or neither; an erase without them
    /// measures only the side effects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    /// Side-effect prompts: perplexity and top-1 before and after.
    #[serde(default)]
    pub eval: Vec<EvalPrompt>,
    /// Edit sets (ids from `POST /api/edit-sets` or an edit's outcome) to apply,
    /// in order, for this request only; empty = the model as loaded.
    #[serde(default)]
    pub edits: Vec<String>,
}

pub fn default_erase_with() -> String {
    "zero".into()
}

/// A stored edit set, as requests name it: its id and what it does. The set
/// itself (every slot's values) is `GET /api/edit-sets/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActiveEdit {
    /// Content hash of the edit set (20 hex digits): put it in a request's `edits`.
    pub id: String,
    /// The fingerprint of the model it was made for.
    pub model: String,
    pub description: String,
    pub neurons: Vec<Neuron>,
}

/// The answer of an edit request: the new edit set (stored, not applied to
/// anything: name it in later requests' `edits`) and its measured effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EditResponse {
    /// This outcome's permalink id (`/r/<id>`), a hash of the request.
    #[serde(default)]
    pub id: String,
    pub edit: ActiveEdit,
    pub metrics: EditMetrics,
    /// The same edit on random neurons (not applied), as a control.
    #[serde(default)]
    pub random: Option<EditMetrics>,
    /// The fact's prompts: top-1 before and after. (An erase that names no
    /// fact has its side-effect prompts here, as erases always had.)
    pub predictions: Vec<PromptEffect>,
    /// The side-effect prompts of an erase, before and after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub side_effects: Vec<PromptEffect>,
    /// What an erase did, in an erase's own terms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erase: Option<EraseOutcome>,
    /// A fact update's edit-strength search, when it asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strength: Option<StrengthSearch>,
}

/// An erase's outcome: is the erased fact forgotten, and what else moved. (An
/// update's change and success rates do not apply: an erase has no new answer.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EraseOutcome {
    /// What was erased, in words: `the fact "Paris"`, `relation P36 (capital)`.
    #[serde(default)]
    pub erased: String,
    /// The erased fact's prompts, and how many of them the model answered
    /// (its greedy answer was the answer) before the erase.
    pub prompts: usize,
    pub known: usize,
    /// Of those known prompts, how many no longer are.
    pub forgotten: usize,
    /// Relative change of the mean P(answer) over the fact's prompts (the rule
    /// every intervention here reports), `None` without a fact.
    pub p_change: Option<f64>,
    /// Side-effect prompts, and how many of them changed their top-1.
    pub side_prompts: usize,
    pub side_changed: usize,
}

/// `POST /api/jobs/erase-relation`: find the knowledge neurons of a sample of a
/// relation's facts, erase the most frequent ones, and measure the damage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EraseRelationRequest {
    #[serde(default)]
    pub model: Option<String>,
    /// ParaRel relation id, e.g. `P36`.
    pub relation: String,
    /// Facts sampled (seeded) from the relation.
    #[serde(default = "default_sample")]
    pub facts: usize,
    #[serde(default)]
    pub seed: u64,
    /// Neurons erased: the most frequent among the facts' knowledge neurons (20 in the paper).
    #[serde(default = "default_erase_top")]
    pub top: usize,
    #[serde(default = "default_steps")]
    pub steps: usize,
    /// `zero` or `unk`.
    #[serde(default = "default_erase_with")]
    pub with: String,
    /// Edit sets (ids from `POST /api/edit-sets` or an edit's outcome) to apply,
    /// in order, for this request only; empty = the model as loaded.
    #[serde(default)]
    pub edits: Vec<String>,
}

pub fn default_sample() -> usize {
    10
}
pub fn default_erase_top() -> usize {
    20
}

/// `POST /api/neuron`: one neuron of a stored analysis, looked at closely.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NeuronRequest {
    /// The analysis's result id (its prompts, answer, settings and edit sets are used).
    pub analysis: String,
    pub layer: usize,
    pub index: usize,
    /// A text of the user's: the card then has the neuron's activation at each
    /// of its tokens (`text_activations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// A ParaRel relation (`P36`): the card then has the neuron's activation
    /// at the blank of the first prompt of up to 50 of its facts (seeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
}

/// A neuron's card: what it does on each prompt of a fact, and which tokens its
/// value slot writes towards (Neuronpedia's idea, for knowledge neurons).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NeuronCard {
    pub analysis: String,
    pub layer: usize,
    pub index: usize,
    pub target: String,
    /// The coarse threshold `t` of the analysis.
    pub t: f64,
    pub prompts: Vec<NeuronOnPrompt>,
    /// Prompts whose coarse set holds the neuron, of those where it is known.
    pub passed: usize,
    pub known: usize,
    pub knowledge: bool,
    pub baseline: bool,
    /// The neuron's mean activation over the prompts: the sign and size at
    /// which its value slot is read below.
    #[serde(default)]
    pub mean_activation: f64,
    /// The tokens whose logits the neuron raises most, and lowers most, at
    /// its mean activation `a` (`a · E_out v`): the direction it takes on
    /// these prompts. A neuron firing negative raises what its slot points
    /// away from.
    pub promotes: Vec<TokenScore>,
    pub suppresses: Vec<TokenScore>,
    /// The value slot itself projected on the output embeddings (`E_out v`,
    /// as if the neuron fired at +1; Geva et al., 2022).
    #[serde(default)]
    pub slot_promotes: Vec<TokenScore>,
    #[serde(default)]
    pub slot_suppresses: Vec<TokenScore>,
    /// The answer's (first piece's) rank among the tokens the neuron raises at
    /// its mean activation: 1 = the token it pushes up most.
    #[serde(default)]
    pub answer_rank: Option<usize>,
    /// The request's text, token by token, with the neuron's activation at each
    /// (with the analysis's edit sets applied).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub text_activations: Vec<TokenActivation>,
    /// The request's relation's facts: each one's first prompt and the
    /// neuron's activation at its blank (Neuronpedia's activation histogram).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relation_activations: Vec<PromptActivation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PromptActivation {
    pub prompt: String,
    pub activation: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenActivation {
    pub token: String,
    pub activation: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NeuronOnPrompt {
    pub prompt: String,
    /// Its integrated-gradients score on this prompt.
    pub score: f64,
    /// Its activation at the blank.
    pub activation: f64,
    /// Whether the score passes `t ×` the prompt's largest score (unknown for
    /// analyses stored before that maximum was kept).
    #[serde(default)]
    pub passed: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenScore {
    pub id: u32,
    pub token: String,
    pub value: f64,
}

/// `GET /api/limits`: the server's budgets. Every request is checked against
/// them before any work starts; one over a limit gets a 4xx naming it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limits {
    /// Tokens per prompt (`kn serve --max-tokens`).
    pub max_tokens: usize,
    /// Integration steps `m` (`--max-steps`).
    pub max_steps: usize,
    /// Prompts of one fact.
    pub max_prompts: usize,
    /// Work units of one request: Σ over its prompts of `(steps + 1) × tokens ×
    /// layers` (`--max-work`).
    pub max_work: u64,
    /// Side-effect (`eval`) prompts of an edit.
    pub max_eval: usize,
    /// Neurons of an erase, and value slots of an edit set.
    pub max_neurons: usize,
    /// `k` of a fact update.
    pub max_k: usize,
    /// Facts sampled by an erase-relation.
    pub max_facts: usize,
    /// Largest `|λ1|`, `|λ2|`.
    pub max_lambda: f64,
    /// Edit sets named by one request.
    pub max_edit_sets: usize,
    /// `top_k` of a prediction.
    pub max_top_k: usize,
    /// Bytes of a request body (edit-set uploads: `max_upload_bytes`).
    pub max_body_bytes: usize,
    pub max_upload_bytes: usize,
}
