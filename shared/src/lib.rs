//! The JSON contract between the `kn` server (and `kn … --json`) and its
//! clients. Both the backend and the WebAssembly frontend compile these types,
//! so the API cannot drift between them.
//!
//! Stability: fields are only ever added (with `#[serde(default)]` on the reading
//! side), never renamed or removed, within a major version. Probabilities are
//! plain softmax probabilities in `[0, 1]`.

use serde::{Deserialize, Serialize};

/// A loaded model, as `GET /api/models` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// The name to pass as `model` in requests.
    pub name: String,
    /// `bert`, `gpt2` or `llama`.
    pub arch: String,
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
}

/// `POST /api/predict`, and the input of `kn predict`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// Model name from `GET /api/models`; the server's first model when absent.
    #[serde(default)]
    pub model: Option<String>,
    /// A cloze prompt with exactly one `[MASK]`, e.g. `The capital of France is [MASK].`
    pub prompt: String,
    /// Optional answer whose probability and rank to report (one token).
    #[serde(default)]
    pub target: Option<String>,
    /// How many top predictions to return (1..=1000).
    #[serde(default = "default_top_k")]
    pub top_k: usize,
}

pub fn default_top_k() -> usize {
    10
}

/// One vocabulary entry with its probability at the blank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenProb {
    pub id: u32,
    /// The token as text (` Paris` for byte-level BPE, `##ing` for WordPiece).
    pub token: String,
    pub prob: f64,
}

/// The target's probability and its rank (1 = the model's top prediction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetProb {
    pub id: u32,
    pub token: String,
    pub prob: f64,
    pub rank: usize,
}

/// The answer distribution at the blank of a cloze prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
pub struct ApiError {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
