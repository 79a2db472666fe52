//! Arguments several subcommands share: where and how models run, a fact,
//! IG's settings, SPEC's selection thresholds.

use anyhow::Context;
use kn::engine::attribution::{Mode, Options, Riemann};
use kn::engine::selection::Thresholds;
use kn::engine::Query;
use kn::source::DEFAULT_MODEL;

/// A compute dtype, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dtype {
    F32,
    Bf16,
    F16,
}

impl Dtype {
    pub fn kind(self) -> tch::Kind {
        match self {
            Dtype::F32 => tch::Kind::Float,
            Dtype::Bf16 => tch::Kind::BFloat16,
            Dtype::F16 => tch::Kind::Half,
        }
    }
}

/// What a model's matrices are held in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageArg {
    /// As the checkpoint is distributed (bf16 stays bf16) when computing in
    /// f32; the compute dtype otherwise.
    Auto,
    F32,
    Bf16,
    F16,
}

impl StorageArg {
    pub fn storage(self) -> kn::Storage {
        match self {
            StorageArg::Auto => kn::Storage::AsDistributed,
            StorageArg::F32 => kn::Storage::Held(tch::Kind::Float),
            StorageArg::Bf16 => kn::Storage::Held(tch::Kind::BFloat16),
            StorageArg::F16 => kn::Storage::Held(tch::Kind::Half),
        }
    }
}

/// Where models run and at what precision: every command loads through it.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    pub device: tch::Device,
    pub precision: kn::Precision,
}

impl Place {
    pub fn load(&self, spec: &str) -> kn::Result<kn::Model> {
        kn::load_model_with(spec, self.device, self.precision)
    }
}

/// A fact: its answer and its prompts.
#[derive(clap::Args)]
pub struct FactArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
    /// The answer at the blank (one token or several for this model).
    #[arg(long)]
    pub target: String,
    /// A prompt with one [MASK] (repeat for paraphrases).
    #[arg(long = "prompt", required = true)]
    pub prompts: Vec<String>,
    /// Where a multi-token answer's neurons are read and acted on: `all`
    /// (every piece's position, scaled along one path) or `first` (the
    /// position predicting the first piece). One-token answers: no change.
    #[arg(long, default_value = "all")]
    pub answer_positions: kn_shared::AnswerPositions,
}

/// An unrelated fact, for the specificity controls.
#[derive(clap::Args)]
pub struct UnrelatedArgs {
    /// A prompt of an unrelated fact (repeatable).
    #[arg(long = "unrelated-prompt")]
    pub unrelated_prompts: Vec<String>,
    /// The unrelated fact's answer.
    #[arg(long)]
    pub unrelated_target: Option<String>,
}

impl UnrelatedArgs {
    /// The unrelated fact's queries (none when no prompt is given), read at
    /// the fact's answer positions.
    pub fn queries(&self, m: &kn::Model, fact: &FactArgs) -> anyhow::Result<Vec<Query>> {
        match (&self.unrelated_target, self.unrelated_prompts.is_empty()) {
            (Some(t), false) => self
                .unrelated_prompts
                .iter()
                .map(|p| {
                    Ok(Query::new(m, p, t)
                        .with_context(|| format!("unrelated prompt {p:?}"))?
                        .with_positions(fact.answer_positions))
                })
                .collect(),
            (None, true) => Ok(Vec::new()),
            _ => anyhow::bail!("--unrelated-prompt and --unrelated-target go together"),
        }
    }
}

/// Integrated-gradients settings.
#[derive(clap::Args)]
pub struct IgArgs {
    /// Riemann steps m.
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// right (k = 1..m, the paper) or left (k = 0..m−1, the authors' code).
    #[arg(long, default_value = "right")]
    pub riemann: Riemann,
    /// naive = one full pass per layer (the public implementations).
    #[arg(long, value_enum, default_value = "fast")]
    pub mode: Mode,
    /// Most scaled rows per pass, of one prompt or several (bounds memory;
    /// default 256 on the CPU, 2048 on CUDA).
    #[arg(long)]
    pub max_batch: Option<usize>,
    /// Most rows × tokens per pass (bounds memory for long prompts; default
    /// 8192 on the CPU, 32768 on CUDA).
    #[arg(long)]
    pub max_row_tokens: Option<usize>,
}

impl IgArgs {
    pub fn options(&self, device: tch::Device) -> Options {
        let d = Options::for_device(device);
        Options {
            steps: self.steps,
            riemann: self.riemann,
            mode: self.mode,
            max_batch: self.max_batch.unwrap_or(d.max_batch),
            max_row_tokens: self.max_row_tokens.unwrap_or(d.max_row_tokens),
        }
    }
}

/// Selection thresholds (SPEC).
#[derive(clap::Args)]
pub struct SelectArgs {
    /// Coarse threshold: fraction of the prompt's maximum score.
    #[arg(long, default_value_t = 0.2)]
    pub t: f64,
    /// Refining: in the coarse sets of more than this share of prompts.
    #[arg(long, default_value_t = 0.7)]
    pub p: f64,
    /// ... and of at least this many prompts (the authors' code: 3).
    #[arg(long, default_value_t = 1)]
    pub min_prompts: usize,
}

impl SelectArgs {
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            t: self.t,
            p: self.p,
            min_prompts: self.min_prompts,
        }
    }
}

pub fn queries(m: &kn::Model, fact: &FactArgs) -> anyhow::Result<Vec<Query>> {
    fact.prompts
        .iter()
        .map(|p| {
            Ok(Query::new(m, p, &fact.target)
                .with_context(|| format!("prompt {p:?}"))?
                .with_positions(fact.answer_positions))
        })
        .collect()
}
