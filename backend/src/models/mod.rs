//! Model runtimes, one file per architecture, behind one interface.
//!
//! [`NeuronModel`] is what the knowledge-neuron engine sees of a transformer:
//! a forward pass over a padded batch that returns the answer logits at each
//! row's blank, and that lets the caller act on the feed-forward *neurons*
//! (SPEC: the intermediate activation `a = f(h·W_in)` that `W_out` consumes) at
//! the blank of any layer:
//!
//! * read them ([`Hooks::capture`]),
//! * replace them with a given tensor ([`NeuronOp::Replace`]) — give it
//!   `requires_grad` and `backward` yields `∂P/∂a`, which is all integrated
//!   gradients needs,
//! * scale them ([`NeuronOp::Scale`]) — suppress (×0) and amplify (×2).
//!
//! [`NeuronModel::value_slots`] exposes `W_out` as a `[d_model, d_ff]` view that
//! shares storage with the live weights, so weight edits are in-memory and never
//! touch the files on disk.

pub mod bert;
mod decoder;
pub mod fingerprint;
mod gemma;
pub mod gpt2;
mod gpt_neox;
mod gptj;
mod layers;
pub mod llama;
mod parallel;
pub mod precision;
mod rope;
mod shards;
mod weights;

pub use layers::At;
pub(crate) use layers::{
    at_positions, attend, attend_capped, attend_scaled, attention_mask, split_heads, with_new,
    within_window, LayerNorm, Linear,
};
pub(crate) use weights::{head_dim, parse_config, read_config, Config, Weights};

use crate::gguf::GgufFile;
use crate::source::{resolve, ModelFiles};
use crate::tokenizer::KnTokenizer;
use crate::{Error, Result};
pub use precision::{Held, Precision, Storage};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// The architectures we run (the API's type: `GET /api/models` names it).
pub use kn_shared::Arch;

/// Shapes a caller needs to address neurons.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub n_layers: usize,
    pub d_model: usize,
    /// Neurons per layer (the FFN intermediate width).
    pub d_ff: usize,
    pub vocab_size: usize,
    /// Longest input in tokens.
    pub max_positions: usize,
    /// Width of the attention's query and output projections (heads × head
    /// dimension), and of its keys and values (fewer with grouped-query
    /// attention): what a count of the work's FLOPs needs.
    pub q_dim: usize,
    pub kv_dim: usize,
}

/// A right-padded batch of token sequences, each with the position of its blank.
pub struct Batch {
    /// `[b, s]` int64 token ids.
    pub ids: Tensor,
    /// `[b, s]` bool, true for real tokens.
    pub attention_mask: Tensor,
    /// `[b]` int64 index of each row's blank.
    pub blank: Tensor,
    /// `[b]` int64 `0..b`, to index `(row, blank)` pairs.
    rows: Tensor,
    pub len: usize,
    pub seq_len: usize,
}

impl Batch {
    pub fn new(seqs: &[Vec<u32>], blanks: &[usize], device: Device) -> Result<Batch> {
        if seqs.is_empty() || seqs.len() != blanks.len() {
            return Err(Error::InvalidArgument(
                "a batch needs one blank per sequence and at least one sequence".into(),
            ));
        }
        let s = seqs.iter().map(Vec::len).max().unwrap_or(0);
        if s == 0 {
            return Err(Error::InvalidArgument("empty token sequence".into()));
        }
        let mut ids = vec![0i64; seqs.len() * s];
        let mut mask = vec![false; seqs.len() * s];
        for (r, seq) in seqs.iter().enumerate() {
            if blanks[r] >= seq.len() {
                return Err(Error::InvalidArgument(format!(
                    "blank position {} is outside a sequence of {} tokens",
                    blanks[r],
                    seq.len()
                )));
            }
            for (c, &t) in seq.iter().enumerate() {
                ids[r * s + c] = t.into();
                mask[r * s + c] = true;
            }
        }
        let b = seqs.len() as i64;
        let blank: Vec<i64> = blanks.iter().map(|&x| x as i64).collect();
        Ok(Batch {
            ids: Tensor::from_slice(&ids).reshape([b, s as i64]).to(device),
            attention_mask: Tensor::from_slice(&mask).reshape([b, s as i64]).to(device),
            blank: Tensor::from_slice(&blank).to(device),
            rows: Tensor::arange(b, (Kind::Int64, device)),
            len: seqs.len(),
            seq_len: s,
        })
    }

    /// The rows `rows` of this batch, in that order (repeats allowed).
    pub fn select(&self, rows: &[i64]) -> Batch {
        let device = self.ids.device();
        let idx = Tensor::from_slice(rows).to(device);
        let n = rows.len() as i64;
        Batch {
            ids: self.ids.index_select(0, &idx),
            attention_mask: self.attention_mask.index_select(0, &idx),
            blank: self.blank.index_select(0, &idx),
            rows: Tensor::arange(n, (Kind::Int64, device)),
            len: rows.len(),
            seq_len: self.seq_len,
        }
    }

    /// The first `s` positions of every row (at least each row's tokens, when
    /// rows padded to a longer batch pass without it).
    pub fn narrow_seq(&self, s: usize) -> Batch {
        if s == self.seq_len {
            return Batch {
                ids: self.ids.shallow_clone(),
                attention_mask: self.attention_mask.shallow_clone(),
                blank: self.blank.shallow_clone(),
                rows: self.rows.shallow_clone(),
                len: self.len,
                seq_len: s,
            };
        }
        Batch {
            ids: self.ids.narrow(1, 0, s as i64),
            attention_mask: self.attention_mask.narrow(1, 0, s as i64),
            blank: self.blank.shallow_clone(),
            rows: self.rows.shallow_clone(),
            len: self.len,
            seq_len: s,
        }
    }

    /// `x[r, blank_r]` for every row: `[b, s, d] -> [b, d]`.
    pub fn at_blank(&self, x: &Tensor) -> Tensor {
        x.index(&[Some(&self.rows), Some(&self.blank)])
    }

    /// `x` with `x[r, blank_r] := v[r]`, differentiable in both.
    pub fn put_at_blank(&self, x: &Tensor, v: &Tensor) -> Tensor {
        x.index_put(&[Some(&self.rows), Some(&self.blank)], v, false)
    }
}

/// What to do with one layer's neurons at the blank.
pub enum NeuronOp {
    /// Use this `[b, d_ff]` (or `[d_ff]`) tensor as the activation at the blank.
    Replace(Tensor),
    /// Multiply the activation at the blank by this `[b, d_ff]` or `[d_ff]` tensor.
    Scale(Tensor),
}

/// Interventions and captures for one forward pass.
#[derive(Default)]
pub struct Hooks {
    /// Layer index → operation at that layer's blank.
    pub ops: BTreeMap<usize, NeuronOp>,
    /// Return every layer's activation at the blank (after any op).
    pub capture: bool,
}

impl Hooks {
    pub fn capture() -> Self {
        Hooks {
            ops: BTreeMap::new(),
            capture: true,
        }
    }

    /// These hooks for a batch of which only the rows marked in `acted` are
    /// acted on (the steps of multi-token answers that a query's answer
    /// positions name): a `[d_ff]` scale becomes `[rows, d_ff]`, 1 elsewhere.
    /// Replacements and per-row tensors are refused: they name rows already.
    pub fn for_rows(&self, acted: &[bool], cfg: &ModelConfig) -> Result<Hooks> {
        let mut out = Hooks {
            ops: BTreeMap::new(),
            capture: self.capture,
        };
        let mask: Vec<f32> = acted.iter().map(|&a| if a { 1.0 } else { 0.0 }).collect();
        for (&layer, op) in &self.ops {
            let f = match op {
                NeuronOp::Scale(f) if f.size() == [cfg.d_ff as i64] => f,
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "layer {layer}: only a scale of every row can act on the steps of a multi-token answer"
                    )))
                }
            };
            let f = if acted.iter().all(|&a| a) {
                f.shallow_clone()
            } else {
                let m = Tensor::from_slice(&mask).to(f.device()).unsqueeze(1);
                // Acted rows: f; the others: 1.
                &m * f.unsqueeze(0) + (m.neg() + 1.0)
            };
            out.ops.insert(layer, NeuronOp::Scale(f));
        }
        Ok(out)
    }

    /// Check layers and shapes before running, so a bad request is an error, not
    /// a libtorch exception.
    pub fn validate(&self, cfg: &ModelConfig, batch: usize) -> Result<()> {
        for (&layer, op) in &self.ops {
            if layer >= cfg.n_layers {
                return Err(Error::InvalidArgument(format!(
                    "layer {layer} is out of range: the model has layers 0..{}",
                    cfg.n_layers - 1
                )));
            }
            let t = match op {
                NeuronOp::Replace(t) | NeuronOp::Scale(t) => t,
            };
            let size = t.size();
            let ok = match size.as_slice() {
                [n] => *n as usize == cfg.d_ff,
                [b, n] => (*b as usize == batch || *b == 1) && *n as usize == cfg.d_ff,
                _ => false,
            };
            if !ok {
                return Err(Error::InvalidArgument(format!(
                    "layer {layer}: neuron tensor has shape {size:?}, expected [{batch}, {}] or [{}]",
                    cfg.d_ff, cfg.d_ff
                )));
            }
        }
        Ok(())
    }

    /// Apply this layer's op to the `[b, s, d_ff]` activation and capture it.
    pub(crate) fn apply(
        &self,
        layer: usize,
        act: Tensor,
        batch: &Batch,
        captured: &mut Vec<Tensor>,
    ) -> Tensor {
        let act = match self.ops.get(&layer) {
            None => act,
            // Ops are built in f32; a model in another dtype takes them in its own.
            Some(NeuronOp::Replace(v)) => {
                let v = v
                    .to_kind(act.kind())
                    .expand([batch.len as i64, act.size()[2]], false);
                batch.put_at_blank(&act, &v)
            }
            Some(NeuronOp::Scale(f)) => {
                let scaled = batch.at_blank(&act) * f.to_kind(act.kind());
                batch.put_at_blank(&act, &scaled)
            }
        };
        if self.capture {
            captured.push(batch.at_blank(&act));
        }
        act
    }
}

/// The result of a forward pass.
pub struct Forward {
    /// `[b, vocab]` logits at each row's blank.
    pub logits: Tensor,
    /// With [`Hooks::capture`]: per layer, the `[b, d_ff]` activations at the blank.
    pub activations: Vec<Tensor>,
}

/// Per-batch tensors that every layer's attention needs (mask, rotary tables),
/// built once by [`NeuronModel::context`].
pub struct Ctx {
    /// `[b, 1, s, s]` bool, true where a query may attend to a key.
    pub mask: Tensor,
    /// `mask` within the sliding window of the layers that have one (Mistral,
    /// Qwen2 with `use_sliding_window`, Gemma 2/3); `None` when no layer has one.
    pub sliding: Option<Tensor>,
    /// The rotary `(cos, sin)` tables, each `[s, rot]`: one per distinct
    /// rotary embedding (Gemma 3's local and global layers have two), none
    /// for models with learned positions.
    pub rope: Vec<(Tensor, Tensor)>,
}

impl Ctx {
    /// A context without a sliding window or rotary tables.
    pub fn plain(mask: Tensor) -> Ctx {
        Ctx {
            mask,
            sliding: None,
            rope: Vec::new(),
        }
    }

    /// The context of rows `start..start + len` of the batch.
    pub fn rows(&self, start: i64, len: i64) -> Ctx {
        Ctx {
            mask: self.mask.narrow(0, start, len),
            sliding: self.sliding.as_ref().map(|m| m.narrow(0, start, len)),
            rope: self
                .rope
                .iter()
                .map(|(c, s)| (c.shallow_clone(), s.shallow_clone()))
                .collect(),
        }
    }
}

/// One layer's keys and values, `[b, kv_heads, s, head_dim]` (after rotary).
pub struct Kv {
    pub k: Tensor,
    pub v: Tensor,
    /// The queries, `[b, heads, s, head_dim]`, where the model can use them
    /// again ([`NeuronModel::attention_changed`]; BERT); `None` otherwise.
    pub q: Option<Tensor>,
}

/// A transformer as the knowledge-neuron engine sees it.
///
/// Every architecture implements the same per-layer steps; the default
/// [`NeuronModel::forward`] strings them together, and the attribution engine
/// strings them together differently (resuming a pass at layer `l`, or at the
/// last position only) without knowing the architecture. A layer is
/// `h = attention(x)` (post-attention residual), `a = ffn_act(h)` (the neurons),
/// `x' = ffn_out(h, a)`.
pub trait NeuronModel: Send {
    fn config(&self) -> &ModelConfig;

    fn device(&self) -> Device;

    /// Token (and position) embeddings, `[b, s] -> [b, s, d]`.
    fn embed(&self, batch: &Batch) -> Tensor;

    /// The attention mask and position tables for `batch`.
    fn context(&self, batch: &Batch) -> Ctx;

    /// Layer `layer`'s attention sub-block on the whole sequence: returns the
    /// post-attention residual `h` and the layer's keys and values.
    fn attention(&self, layer: usize, x: &Tensor, ctx: &Ctx) -> (Tensor, Kv);

    /// Causal models only: the attention sub-block for one new position per row
    /// (`x: [r, 1, d]`, at `at.pos[row]`), attending to the row's `past`
    /// keys/values (`[r, …, s, …]`, row-aligned with `x`; the entry at `pos` is
    /// replaced by the row's own) up to and including `pos`.
    fn attention_at(&self, layer: usize, x: &Tensor, past: &Kv, at: &At) -> Tensor;

    /// [`NeuronModel::attention`] at one position per row (`pos`, `[b]`):
    /// `[b, 1, d]`, the post-attention residual there, attending to the whole
    /// sequence. What the last layer of a pass needs when only the blank's
    /// output is read. The default runs every position and keeps one; a model
    /// whose queries can be computed alone overrides it (BERT: the keys and
    /// values of every position, the query of one).
    fn attention_one(&self, layer: usize, x: &Tensor, ctx: &Ctx, pos: &Tensor) -> Tensor {
        at_positions(&self.attention(layer, x, ctx).0, pos)
    }

    /// [`NeuronModel::attention`] of rows that equal a traced pass's input
    /// but at one position per row (`pos`, `[b]`): `traced` holds that pass's
    /// keys and values (and queries), row-aligned with `x`, which a model may
    /// take for every other position, computing the changed one's alone. The
    /// default computes them all again.
    fn attention_changed(
        &self,
        layer: usize,
        x: &Tensor,
        ctx: &Ctx,
        traced: &Kv,
        pos: &Tensor,
    ) -> Tensor {
        let _ = (traced, pos);
        self.attention(layer, x, ctx).0
    }

    /// The neurons: `a = f(h·W_in)`, `[.., d] -> [.., d_ff]`.
    fn ffn_act(&self, layer: usize, h: &Tensor) -> Tensor;

    /// The FFN output and residual: `x' = h + a·W_out` (BERT then applies
    /// LayerNorm; OLMo 2 normalises `a·W_out` before adding it).
    fn ffn_out(&self, layer: usize, h: &Tensor, a: &Tensor) -> Tensor;

    /// [`NeuronModel::ffn_out`] with `change` (`[.., d]`) added to `a·W_out`:
    /// what a value-slot edit changes, without writing it into the weights
    /// (`engine::edit_overlay`). The default adds it to `h`, which is the
    /// same wherever `a·W_out` joins `h` unnormalised.
    fn ffn_out_plus(&self, layer: usize, h: &Tensor, a: &Tensor, change: &Tensor) -> Tensor {
        self.ffn_out(layer, &(h + change), a)
    }

    /// Logits from the final hidden state at the blank, `[b, d] -> [b, vocab]`.
    fn head(&self, x: &Tensor) -> Tensor;

    /// `W_out` of `layer` as a `[d_model, d_ff]` view of the live weights: column
    /// `i` is neuron `i`'s value slot (SPEC).
    fn value_slots(&self, layer: usize) -> Tensor;

    /// The input word embeddings, `[vocab, d_model]`.
    fn input_embeddings(&self) -> &Tensor;

    /// The output (unembedding) matrix of the LM head, `[vocab, d_model]`: a
    /// value slot projected on it says which tokens the neuron promotes
    /// (Geva et al., 2022).
    fn output_embeddings(&self) -> &Tensor;

    /// Run the batch; `hooks` act on the neurons at each row's blank.
    fn forward(&self, batch: &Batch, hooks: &Hooks) -> Forward {
        let ctx = self.context(batch);
        let mut x = self.embed(batch);
        let mut captured = Vec::new();
        for l in 0..self.config().n_layers {
            let (h, _) = self.attention(l, &x, &ctx);
            let a = hooks.apply(l, self.ffn_act(l, &h), batch, &mut captured);
            x = self.ffn_out(l, &h, &a);
        }
        Forward {
            logits: self.head(&batch.at_blank(&x)),
            activations: captured,
        }
    }
}

/// A loaded model: its runtime, its tokeniser and where it came from.
pub struct Model {
    /// The name it was asked for (`smollm2`, a path, a hub id).
    pub name: String,
    /// Where the weights were read from.
    pub source: PathBuf,
    pub net: Box<dyn NeuronModel>,
    /// Shared with the server's request handlers, which check prompts
    /// (tokens, the blank, one-token answers) before queueing any work.
    pub tokenizer: Arc<KnTokenizer>,
    /// The weights' identity, the same on every device ([`fingerprint`]);
    /// computed once at load. Edits never change it: results name their
    /// edit sets beside it.
    pub fingerprint: String,
    /// The activations' dtype (f32 unless asked otherwise; [`Precision`]).
    pub dtype: Kind,
    /// What the weights are held in, and how many bytes.
    pub held: Held,
}

impl Model {
    pub fn config(&self) -> &ModelConfig {
        self.net.config()
    }

    /// The tokenizer and shapes alone, which can travel to other threads.
    pub fn vocab(&self) -> TextSide {
        TextSide {
            tokenizer: self.tokenizer.clone(),
            config: self.config().clone(),
        }
    }
}

/// What turns text into a model's inputs: enough to build and check prompts
/// without the weights.
pub trait Vocab {
    fn tokenizer(&self) -> &KnTokenizer;
    fn config(&self) -> &ModelConfig;
}

impl Vocab for Model {
    fn tokenizer(&self) -> &KnTokenizer {
        &self.tokenizer
    }
    fn config(&self) -> &ModelConfig {
        self.net.config()
    }
}

/// A model's tokenizer and shapes, without its weights ([`Model::vocab`]).
#[derive(Clone)]
pub struct TextSide {
    pub tokenizer: Arc<KnTokenizer>,
    pub config: ModelConfig,
}

impl Vocab for TextSide {
    fn tokenizer(&self) -> &KnTokenizer {
        &self.tokenizer
    }
    fn config(&self) -> &ModelConfig {
        &self.config
    }
}

/// Resolve `spec` (see [`crate::source`]) and load the model onto `device`:
/// held as distributed, computed in f32 ([`Precision::default`]).
pub fn load_model(spec: &str, device: Device) -> Result<Model> {
    load_model_with(spec, device, Precision::default())
}

/// [`load_model`] with weights and activations in `kind` (f32, bf16 or f16:
/// `kn bench --dtype` measures what a cheaper precision costs in fidelity).
pub fn load_model_as(spec: &str, device: Device, kind: Kind) -> Result<Model> {
    load_model_with(spec, device, Precision::uniform(kind))
}

/// [`load_model`] at `precision`. The fingerprint names the precision
/// whenever the numbers are not the checkpoint's own computed in f32 (a
/// rounded tensor, or another compute dtype), so results and run files of two
/// precisions never share an id.
pub fn load_model_with(spec: &str, device: Device, precision: Precision) -> Result<Model> {
    precision.check()?;
    let kind = precision.compute;
    let files = resolve(spec)?;
    tracing::info!(model = spec, ?files, ?precision, "loading");
    let Loaded {
        net,
        tokenizer,
        source,
        parts,
        held,
    } = match files {
        ModelFiles::Gguf(path) => load_gguf(path, device, precision)?,
        ModelFiles::HfDir(dir) => load_hf_dir(dir, device, precision)?,
    };
    let cfg = net.config();
    if cfg.arch.is_masked() && tokenizer.mask().is_none() {
        return Err(Error::bad_model(
            &source,
            "a masked LM, but its tokenizer has no mask token",
        ));
    }
    if tokenizer.vocab_size() > cfg.vocab_size {
        return Err(Error::bad_model(
            &source,
            format!(
                "the tokenizer has {} tokens but the model's embedding only {}",
                tokenizer.vocab_size(),
                cfg.vocab_size
            ),
        ));
    }
    let digest = fingerprint::digest(&parts)?;
    let mut fingerprint = fingerprint::format(net.config(), &digest);
    if held.rounded || kind != Kind::Float {
        fingerprint += &format!(
            "@{}-{}",
            precision::name(held.storage),
            precision::name(kind)
        );
    }
    tracing::info!(
        storage = precision::name(held.storage),
        compute = precision::name(kind),
        mib = held.bytes >> 20,
        "weights held"
    );
    Ok(Model {
        name: spec.to_string(),
        source,
        net,
        tokenizer: Arc::new(tokenizer),
        fingerprint,
        dtype: kind,
        held,
    })
}

/// What a loader hands back.
struct Loaded {
    net: Box<dyn NeuronModel>,
    tokenizer: KnTokenizer,
    source: PathBuf,
    parts: Vec<(String, PathBuf)>,
    held: Held,
}

fn load_gguf(path: PathBuf, device: Device, precision: Precision) -> Result<Loaded> {
    let g = GgufFile::open(&path)?;
    let arch = g.require_str("general.architecture")?;
    if !matches!(arch, "llama" | "mistral" | "qwen2" | "smollm") {
        return Err(Error::UnknownArchitecture(arch.to_string()));
    }
    let (net, held) = llama::from_gguf(&g, device, precision)?;
    Ok(Loaded {
        net: Box::new(net),
        tokenizer: KnTokenizer::from_gguf(&g)?,
        parts: fingerprint::parts(std::slice::from_ref(&path), None),
        source: path,
        held,
    })
}

fn load_hf_dir(dir: PathBuf, device: Device, precision: Precision) -> Result<Loaded> {
    let config = read_config(&dir)?;
    let model_type = config
        .get("model_type")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let files = Weights::files(&dir)?;
    let mut ws = Weights::from_files(&files, device, precision)?;
    let net: Box<dyn NeuronModel> = match model_type.as_str() {
        "bert" | "roberta" | "xlm-roberta" => Box::new(bert::Bert::load(&config, &mut ws)?),
        "gpt2" => Box::new(gpt2::Gpt2::load(&config, &mut ws)?),
        "llama" | "mistral" | "qwen2" | "qwen3" | "phi3" | "olmo2" | "smollm" => {
            Box::new(llama::load(&config, &mut ws)?)
        }
        "gpt_neox" => Box::new(gpt_neox::load(&config, &mut ws)?),
        "gptj" => Box::new(gptj::load(&config, &mut ws)?),
        "gemma" | "gemma2" | "gemma3_text" => Box::new(gemma::load(&config, &mut ws)?),
        "gemma3" => {
            return Err(Error::bad_model(
                dir.join("config.json"),
                "`gemma3` is Gemma 3's image-text model; load a text checkpoint \
                 (`gemma3_text`, Gemma3ForCausalLM: google/gemma-3-1b-pt, or the \
                 text model saved on its own)",
            ))
        }
        "" => {
            return Err(Error::bad_model(
                dir.join("config.json"),
                "has no `model_type`",
            ))
        }
        other => return Err(Error::UnknownArchitecture(other.to_string())),
    };
    Ok(Loaded {
        net,
        tokenizer: KnTokenizer::from_hf_dir(&dir)?,
        parts: fingerprint::parts(&files, Some(&dir)),
        held: ws.held(),
        source: dir,
    })
}
