//! Llama-family causal LM (Llama, Mistral, Qwen2-style, SmolLM2): from Hugging
//! Face safetensors or from a GGUF file.
//!
//! Neurons: `a = silu(gate_proj(h)) * up_proj(h)`, the input of `down_proj`;
//! value slots: columns of `down_proj.weight`.
//!
//! GGUF files store the same tensors under llama.cpp's names, with the rows of
//! the Q and K projections permuted from Hugging Face's half-split rotary layout
//! to interleaved pairs; [`Llama::from_gguf`] renames and un-permutes them so that
//! one forward pass serves both sources.

use super::rope::{Rope, RopeConfig};
use super::{
    attend, attention_mask, parse_config, split_heads, within_window, Arch, Batch, ModelConfig,
    NeuronModel, Weights,
};
use super::{with_new, At, Ctx, Kv, Linear};
use crate::gguf::GgufFile;
use crate::{Error, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Positions whose rotary tables are precomputed at load.
const ROPE_CACHE: usize = 4096;

struct Layer {
    norms: Norms,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    qk_norm: Option<QkNorm>,
    /// The sliding window of this layer's attention, in positions.
    window: Option<i64>,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// Where a layer normalises (RMSNorm weights, `[d]`): Llama the inputs of its
/// attention and FFN (`input_layernorm`, `post_attention_layernorm`), OLMo 2
/// their outputs (`post_attention_layernorm`, `post_feedforward_layernorm`),
/// each before the residual is added.
struct Norms {
    attn_in: Option<Tensor>,
    attn_out: Option<Tensor>,
    ffn_in: Option<Tensor>,
    ffn_out: Option<Tensor>,
}

/// RMSNorm of the queries and keys, before the rotary embedding.
enum QkNorm {
    /// Qwen3: over each head (`[head_dim]` weights).
    PerHead(Tensor, Tensor),
    /// OLMo 2: over the whole projection (`[heads × head_dim]`, `[kv_heads ×
    /// head_dim]`), before it is cut into heads.
    Whole(Tensor, Tensor),
}

pub struct Llama {
    cfg: ModelConfig,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
    eps: f64,
    rope: Rope,
    /// `(cos, sin)` for the first positions, computed once at load.
    rope_cache: (Tensor, Tensor),
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
    device: Device,
}

/// `config.json` of the family, as far as the computation depends on it.
/// Keys the family's transformers classes do not read are not read here
/// either; a key they read that changes the numbers is implemented or
/// refused by name.
#[derive(Debug, Deserialize)]
struct LlamaConfig {
    #[serde(default)]
    model_type: String,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    intermediate_size: usize,
    vocab_size: usize,
    max_position_embeddings: Option<usize>,
    rms_norm_eps: Option<f64>,
    hidden_act: Option<String>,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(flatten)]
    rope: RopeConfig,
    /// Mistral: every layer's window when set. Qwen2/Qwen3: the window of
    /// the layers `layer_types` names `sliding_attention`, when
    /// `use_sliding_window`.
    sliding_window: Option<usize>,
    #[serde(default)]
    use_sliding_window: bool,
    max_window_layers: Option<usize>,
    layer_types: Option<Vec<String>>,
}

impl LlamaConfig {
    fn check(&self, path: &Path) -> Result<()> {
        let act = self.hidden_act.as_deref().unwrap_or("silu");
        if act != "silu" {
            return Err(Error::bad_model(
                path,
                format!(
                    "config.json: hidden_act `{act}` is not supported (the Llama family uses silu)"
                ),
            ));
        }
        let heads = self.num_attention_heads;
        let kv_heads = self.num_key_value_heads.unwrap_or(heads);
        if kv_heads == 0 || !heads.is_multiple_of(kv_heads) || !self.head_dim().is_multiple_of(2) {
            return Err(Error::bad_model(
                path,
                "attention heads do not divide evenly",
            ));
        }
        Ok(())
    }

    fn head_dim(&self) -> usize {
        let default = match self.model_type.as_str() {
            "qwen3" => 128, // Qwen3Config's default, not hidden_size / heads
            _ => self.hidden_size / self.num_attention_heads.max(1),
        };
        self.head_dim.unwrap_or(default)
    }

    /// Each layer's sliding window, as the model type's transformers class
    /// reads it: Mistral's applies to every layer; Qwen2's and Qwen3's only
    /// with `use_sliding_window`, to the layers `layer_types` (or, in older
    /// configs, `max_window_layers`) names; Llama has none.
    fn windows(&self, path: &Path) -> Result<Vec<Option<i64>>> {
        let n = self.num_hidden_layers;
        let windows = match self.model_type.as_str() {
            "mistral" | "phi3" => vec![self.sliding_window; n],
            "qwen2" | "qwen3" if self.use_sliding_window => self.qwen_windows(path)?,
            _ => vec![None; n],
        };
        if windows.contains(&Some(0)) {
            return Err(Error::bad_model(path, "config.json: `sliding_window` is 0"));
        }
        Ok(windows.into_iter().map(|w| w.map(|w| w as i64)).collect())
    }

    fn qwen_windows(&self, path: &Path) -> Result<Vec<Option<usize>>> {
        let n = self.num_hidden_layers;
        let w = self.sliding_window.unwrap_or(4096);
        let from = self.max_window_layers.unwrap_or(28);
        let types: Vec<String> = self.layer_types.clone().unwrap_or_else(|| {
            (0..n)
                .map(|i| {
                    if i >= from {
                        "sliding_attention"
                    } else {
                        "full_attention"
                    }
                    .into()
                })
                .collect()
        });
        if types.len() != n {
            return Err(Error::bad_model(
                path,
                format!(
                    "config.json: `layer_types` names {} layers, the model has {n}",
                    types.len()
                ),
            ));
        }
        types
            .iter()
            .map(|t| match t.as_str() {
                "full_attention" => Ok(None),
                "sliding_attention" => Ok(Some(w)),
                other => Err(Error::bad_model(
                    path,
                    format!("config.json: layer type `{other}` in `layer_types` is not supported"),
                )),
            })
            .collect()
    }
}

impl Llama {
    pub(crate) fn load(json: &serde_json::Value, ws: &mut Weights) -> Result<Self> {
        let path = std::path::PathBuf::from("config.json");
        let c: LlamaConfig = parse_config(json, &path)?;
        c.check(&path)?;
        let d = c.hidden_size as i64;
        let heads = c.num_attention_heads as i64;
        let kv_heads = c.num_key_value_heads.unwrap_or(c.num_attention_heads) as i64;
        let head_dim = c.head_dim() as i64;
        let (d_ff, vocab) = (c.intermediate_size as i64, c.vocab_size as i64);
        let max_pos = c.max_position_embeddings.unwrap_or(2048);
        let rope = c.rope.resolve(&path, 10000.0, max_pos as f64)?;
        if rope.partial != 1.0 && c.model_type != "phi3" {
            // Llama's, Mistral's and Qwen's rotary embedding in transformers
            // turns the whole head; only Phi-3's turns a part.
            return Err(Error::bad_model(
                &path,
                format!(
                    "config.json: `partial_rotary_factor` below 1 is not supported for `{}`",
                    c.model_type
                ),
            ));
        }
        let windows = c.windows(&path)?;
        let embed = ws.take("model.embed_tokens.weight", &[vocab, d])?;
        let (qd, kvd) = (heads * head_dim, kv_heads * head_dim);
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for (l, &window) in windows.iter().enumerate() {
            layers.push(load_layer(
                ws,
                &c,
                l,
                window,
                Dims {
                    d,
                    qd,
                    kvd,
                    head_dim,
                    d_ff,
                },
            )?);
        }
        let norm = ws.take("model.norm.weight", &[d])?;
        let lm_head = match ws.take_opt("lm_head.weight", &[vocab, d])? {
            Some(w) => w,
            None if c.tie_word_embeddings => embed.shallow_clone(),
            None => {
                return Err(Error::bad_model(
                    &path,
                    "`lm_head.weight` is missing and tie_word_embeddings is false",
                ));
            }
        };
        // Older checkpoints saved the rotary tables' frequencies.
        ws.finish(|n| n.ends_with("rotary_emb.inv_freq"))?;
        let mut llama = Llama {
            cfg: ModelConfig {
                arch: Arch::Llama,
                n_layers: c.num_hidden_layers,
                d_model: d as usize,
                d_ff: d_ff as usize,
                vocab_size: vocab as usize,
                max_positions: max_pos,
                q_dim: qd as usize,
                kv_dim: kvd as usize,
            },
            heads,
            kv_heads,
            head_dim,
            eps: c.rms_norm_eps.unwrap_or(1e-6),
            rope,
            rope_cache: (Tensor::new(), Tensor::new()),
            embed,
            layers,
            norm,
            lm_head,
            device: ws.device(),
        };
        llama.rope_cache = llama.rope_tables(max_pos.min(ROPE_CACHE) as i64);
        Ok(llama)
    }

    /// Load from a GGUF file: map llama.cpp's names and metadata onto the
    /// Hugging Face ones, dequantise, and undo the Q/K row permutation.
    pub fn from_gguf(g: &GgufFile, device: Device, kind: Kind) -> Result<Self> {
        let arch = g.require_str("general.architecture")?.to_string();
        let key = |k: &str| format!("{arch}.{k}");
        let n_layers = g.require_u64(&key("block_count"))? as usize;
        let d = g.require_u64(&key("embedding_length"))?;
        let heads = g.require_u64(&key("attention.head_count"))?;
        let kv_heads = g
            .get(&key("attention.head_count_kv"))
            .and_then(|v| v.as_u64())
            .unwrap_or(heads);
        let embd = g
            .tensor_info("token_embd.weight")
            .ok_or_else(|| Error::Gguf {
                path: g.path.clone(),
                message: "tensor `token_embd.weight` is missing".into(),
            })?;
        let vocab = embd.dims.get(1).copied().unwrap_or(0);
        refuse_gguf_rope_scaling(g, &arch)?;
        let config = serde_json::json!({
            "model_type": "llama",
            "hidden_size": d,
            "num_hidden_layers": n_layers,
            "num_attention_heads": heads,
            "num_key_value_heads": kv_heads,
            "head_dim": g.get(&key("rope.dimension_count")).and_then(|v| v.as_u64()).unwrap_or(d / heads.max(1)),
            "intermediate_size": g.require_u64(&key("feed_forward_length"))?,
            "vocab_size": vocab,
            "max_position_embeddings": g.get(&key("context_length")).and_then(|v| v.as_u64()).unwrap_or(2048),
            "rms_norm_eps": g.f64_or(&key("attention.layer_norm_rms_epsilon"), 1e-5),
            "rope_theta": g.f64_or(&key("rope.freq_base"), 10000.0),
            "tie_word_embeddings": g.tensor_info("output.weight").is_none(),
            "hidden_act": "silu",
        });
        let mut names: Vec<(String, String)> = vec![
            (
                "token_embd.weight".into(),
                "model.embed_tokens.weight".into(),
            ),
            ("output_norm.weight".into(), "model.norm.weight".into()),
            ("output.weight".into(), "lm_head.weight".into()),
        ];
        let per_layer = [
            ("attn_norm.weight", "input_layernorm.weight"),
            ("attn_q.weight", "self_attn.q_proj.weight"),
            ("attn_q.bias", "self_attn.q_proj.bias"),
            ("attn_k.weight", "self_attn.k_proj.weight"),
            ("attn_k.bias", "self_attn.k_proj.bias"),
            ("attn_v.weight", "self_attn.v_proj.weight"),
            ("attn_v.bias", "self_attn.v_proj.bias"),
            ("attn_output.weight", "self_attn.o_proj.weight"),
            ("ffn_norm.weight", "post_attention_layernorm.weight"),
            ("ffn_gate.weight", "mlp.gate_proj.weight"),
            ("ffn_up.weight", "mlp.up_proj.weight"),
            ("ffn_down.weight", "mlp.down_proj.weight"),
        ];
        for l in 0..n_layers {
            for (gg, hf) in per_layer {
                names.push((format!("blk.{l}.{gg}"), format!("model.layers.{l}.{hf}")));
            }
        }
        // Only Llama's converter permutes Q/K; Qwen2's keeps Hugging Face order.
        let permuted = matches!(arch.as_str(), "llama" | "mistral" | "smollm");
        let mut map = HashMap::new();
        for (gg, hf) in names {
            if g.tensor_info(&gg).is_none() {
                continue; // absent optional tensors; required ones are caught by `load`
            }
            let mut t = g.tensor(&gg)?;
            if permuted && gg.ends_with("attn_q.weight") {
                t = unpermute(&t, heads as i64);
            } else if permuted && gg.ends_with("attn_k.weight") {
                t = unpermute(&t, kv_heads as i64);
            }
            map.insert(hf, t);
        }
        let mut ws = Weights::from_map(map, g.path.clone(), device).with_kind(kind);
        Self::load(&config, &mut ws).map_err(|e| match e {
            Error::BadModel { message, .. } => Error::Gguf {
                path: g.path.clone(),
                message,
            },
            other => other,
        })
    }

    /// `(cos, sin)`, each `[s, head_dim]`, for positions `0..s` (Hugging Face's
    /// default rotary embedding).
    fn rope(&self, s: i64) -> (Tensor, Tensor) {
        let (cos, sin) = &self.rope_cache;
        if s <= cos.size()[0] {
            return (cos.narrow(0, 0, s), sin.narrow(0, 0, s));
        }
        self.rope_tables(s)
    }

    fn rope_tables(&self, s: i64) -> (Tensor, Tensor) {
        let inv: Vec<f32> = self
            .rope
            .inv_freq(self.head_dim)
            .into_iter()
            .map(|f| f as f32)
            .collect();
        let inv = Tensor::from_slice(&inv).to(self.device);
        let pos = Tensor::arange(s, (Kind::Float, self.device));
        let freqs = pos.unsqueeze(1) * inv.unsqueeze(0);
        let emb = Tensor::cat(&[&freqs, &freqs], -1);
        // Computed in f32, used in the weights' dtype.
        let kind = self.embed.kind();
        (emb.cos().to_kind(kind), emb.sin().to_kind(kind))
    }
}

/// The widths a layer's tensors are checked against.
#[derive(Clone, Copy)]
struct Dims {
    d: i64,
    qd: i64,
    kvd: i64,
    head_dim: i64,
    d_ff: i64,
}

/// Layer `l`'s tensors, named and shaped as the config's model type has them.
fn load_layer(
    ws: &mut Weights,
    c: &LlamaConfig,
    l: usize,
    window: Option<i64>,
    dims: Dims,
) -> Result<Layer> {
    let Dims {
        d,
        qd,
        kvd,
        head_dim,
        d_ff,
    } = dims;
    let n = format!("model.layers.{l}");
    let qk = |ws: &mut Weights, q: i64, k: i64| -> Result<(Tensor, Tensor)> {
        Ok((
            ws.take(&format!("{n}.self_attn.q_norm.weight"), &[q])?,
            ws.take(&format!("{n}.self_attn.k_norm.weight"), &[k])?,
        ))
    };
    let qk_norm = match c.model_type.as_str() {
        "qwen3" => Some(qk(ws, head_dim, head_dim).map(|(q, k)| QkNorm::PerHead(q, k))?),
        "olmo2" => Some(qk(ws, qd, kvd).map(|(q, k)| QkNorm::Whole(q, k))?),
        _ => None,
    };
    let norm = |ws: &mut Weights, name: &str| ws.take(&format!("{n}.{name}.weight"), &[d]);
    let norms = if c.model_type == "olmo2" {
        Norms {
            attn_in: None,
            attn_out: Some(norm(ws, "post_attention_layernorm")?),
            ffn_in: None,
            ffn_out: Some(norm(ws, "post_feedforward_layernorm")?),
        }
    } else {
        Norms {
            attn_in: Some(norm(ws, "input_layernorm")?),
            attn_out: None,
            ffn_in: Some(norm(ws, "post_attention_layernorm")?),
            ffn_out: None,
        }
    };
    let fused = c.model_type == "phi3";
    let [q, k, v] = if fused {
        split(ws, &format!("{n}.self_attn.qkv_proj"), [qd, kvd, kvd], d)?
    } else {
        [
            Linear::load(ws, &format!("{n}.self_attn.q_proj"), qd, d)?,
            Linear::load(ws, &format!("{n}.self_attn.k_proj"), kvd, d)?,
            Linear::load(ws, &format!("{n}.self_attn.v_proj"), kvd, d)?,
        ]
    };
    let [gate, up] = if fused {
        split(ws, &format!("{n}.mlp.gate_up_proj"), [d_ff, d_ff], d)?
    } else {
        [
            Linear::load(ws, &format!("{n}.mlp.gate_proj"), d_ff, d)?,
            Linear::load(ws, &format!("{n}.mlp.up_proj"), d_ff, d)?,
        ]
    };
    Ok(Layer {
        norms,
        q,
        k,
        v,
        o: Linear::load(ws, &format!("{n}.self_attn.o_proj"), d, qd)?,
        qk_norm,
        window,
        gate,
        up,
        down: Linear::load(ws, &format!("{n}.mlp.down_proj"), d, d_ff)?,
    })
}

/// A fused projection (Phi-3's `qkv_proj`, `gate_up_proj`) cut by rows into
/// the projections it stacks, `outs` rows each.
fn split<const N: usize>(
    ws: &mut Weights,
    name: &str,
    outs: [i64; N],
    inp: i64,
) -> Result<[Linear; N]> {
    let fused = Linear::load(ws, name, outs.iter().sum(), inp)?;
    let mut start = 0;
    Ok(outs.map(|out| {
        let part = Linear {
            w: fused.w.narrow(0, start, out),
            b: fused.b.as_ref().map(|b| b.narrow(0, start, out)),
        };
        start += out;
        part
    }))
}

/// llama.cpp writes Llama 3's rope scaling as a `rope_freqs.weight` tensor
/// and other scalings as `{arch}.rope.scaling.*` keys; the GGUF path runs the
/// default rotary embedding only, so either is refused rather than ignored.
fn refuse_gguf_rope_scaling(g: &GgufFile, arch: &str) -> Result<()> {
    let scaled = g
        .get(&format!("{arch}.rope.scaling.type"))
        .and_then(|v| v.as_str())
        .is_some_and(|t| t != "none");
    if scaled || g.tensor_info("rope_freqs.weight").is_some() {
        return Err(Error::Gguf {
            path: g.path.clone(),
            message: "rope scaling (`rope_freqs.weight` or `rope.scaling.type`) is not supported \
                      in GGUF files; load the Hugging Face checkpoint instead"
                .into(),
        });
    }
    Ok(())
}

/// Undo llama.cpp's `permute`: `[n_head, dh/2, 2, in] -> [n_head, 2, dh/2, in]`.
fn unpermute(w: &Tensor, n_head: i64) -> Tensor {
    let (out, inp) = w.size2().expect("2-D projection");
    w.reshape([n_head, out / n_head / 2, 2, inp])
        .transpose(1, 2)
        .reshape([out, inp])
}

fn rotate_half(x: &Tensor) -> Tensor {
    let h = x.size()[3] / 2;
    Tensor::cat(&[x.narrow(3, h, h).neg(), x.narrow(3, 0, h)], 3)
}

/// Rotary embedding of `x` (`[b, h, s, dh]`); with partial rotary (Phi-3)
/// the tables are narrower than the head and only its first dimensions turn.
fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let (dh, rot) = (x.size()[3], *cos.size().last().expect("rotary table"));
    if rot == dh {
        return x * cos + rotate_half(x) * sin;
    }
    let turned = x.narrow(3, 0, rot);
    Tensor::cat(
        &[
            &turned * cos + rotate_half(&turned) * sin,
            x.narrow(3, rot, dh - rot),
        ],
        3,
    )
}

impl Llama {
    /// Queries, keys and values of `x` (`[b, s', d]`) with rotary applied for `cos`/`sin` rows.
    fn qkv(
        &self,
        layer: usize,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
    ) -> (Tensor, Tensor, Tensor) {
        let ly = &self.layers[layer];
        let h = self.rms(x, ly.norms.attn_in.as_ref());
        let (mut q, mut k) = (ly.q.forward(&h), ly.k.forward(&h));
        if let Some(QkNorm::Whole(qn, kn)) = &ly.qk_norm {
            (q, k) = (self.rms(&q, Some(qn)), self.rms(&k, Some(kn)));
        }
        let (mut q, mut k) = (split_heads(&q, self.heads), split_heads(&k, self.kv_heads));
        if let Some(QkNorm::PerHead(qn, kn)) = &ly.qk_norm {
            (q, k) = (self.rms(&q, Some(qn)), self.rms(&k, Some(kn)));
        }
        let v = split_heads(&ly.v.forward(&h), self.kv_heads);
        (apply_rope(&q, cos, sin), apply_rope(&k, cos, sin), v)
    }

    /// RMSNorm over the last dimension with weight `w`; `x` itself without one.
    fn rms(&self, x: &Tensor, w: Option<&Tensor>) -> Tensor {
        match w {
            Some(w) => x.rms_norm([w.size()[0]], Some(w), self.eps),
            None => x.shallow_clone(),
        }
    }

    /// The attention output `o` joining the residual `x`.
    fn attn_residual(&self, layer: usize, o: &Tensor, x: &Tensor) -> Tensor {
        let ly = &self.layers[layer];
        self.rms(&ly.o.forward(o), ly.norms.attn_out.as_ref()) + x
    }

    /// The sliding window shared by the layers that have one (the family's
    /// configs give one size).
    fn window(&self) -> Option<i64> {
        self.layers.iter().find_map(|l| l.window)
    }
}

impl NeuronModel for Llama {
    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn device(&self) -> Device {
        self.device
    }

    fn embed(&self, batch: &Batch) -> Tensor {
        Tensor::embedding(&self.embed, &batch.ids, -1, false, false)
    }

    fn context(&self, batch: &Batch) -> Ctx {
        let mask = attention_mask(batch, true);
        Ctx {
            sliding: self.window().map(|w| within_window(&mask, w)),
            mask,
            rope: Some(self.rope(batch.seq_len as i64)),
        }
    }

    fn attention(&self, layer: usize, x: &Tensor, ctx: &Ctx) -> (Tensor, Kv) {
        let (cos, sin) = ctx.rope.as_ref().expect("llama context has rotary tables");
        let (q, k, v) = self.qkv(layer, x, cos, sin);
        let ly = &self.layers[layer];
        let mask = match (ly.window, &ctx.sliding) {
            (Some(_), Some(sliding)) => sliding,
            _ => &ctx.mask,
        };
        let h = self.attn_residual(layer, &attend(&q, &k, &v, Some(mask)), x);
        (h, Kv { k, v, q: None })
    }

    fn attention_at(&self, layer: usize, x: &Tensor, past: &Kv, at: &At) -> Tensor {
        // Each row's rotary angles at its own position: `[r, 1, 1, dh]`.
        let (cos, sin) = self.rope(past.k.size()[2]);
        let dh = cos.size()[1];
        let row = |t: &Tensor| t.index_select(0, &at.pos).view([-1, 1, 1, dh]);
        let (q, k, v) = self.qkv(layer, x, &row(&cos), &row(&sin));
        let (k, v) = (
            with_new(&past.k, &k, &at.pos),
            with_new(&past.v, &v, &at.pos),
        );
        let ly = &self.layers[layer];
        let within = ly.window.map(|w| at.keys_within(w, k.size()[2]));
        let keys = within.as_ref().or(at.keys.as_ref());
        self.attn_residual(layer, &attend(&q, &k, &v, keys), x)
    }

    fn ffn_act(&self, layer: usize, h: &Tensor) -> Tensor {
        let ly = &self.layers[layer];
        let h = self.rms(h, ly.norms.ffn_in.as_ref());
        ly.gate.forward(&h).silu() * ly.up.forward(&h)
    }

    fn ffn_out(&self, layer: usize, h: &Tensor, a: &Tensor) -> Tensor {
        let ly = &self.layers[layer];
        self.rms(&ly.down.forward(a), ly.norms.ffn_out.as_ref()) + h
    }

    fn ffn_out_plus(&self, layer: usize, h: &Tensor, a: &Tensor, change: &Tensor) -> Tensor {
        let ly = &self.layers[layer];
        match &ly.norms.ffn_out {
            None => self.ffn_out(layer, &(h + change), a),
            Some(w) => self.rms(&(ly.down.forward(a) + change), Some(w)) + h,
        }
    }

    fn head(&self, x: &Tensor) -> Tensor {
        x.rms_norm([self.cfg.d_model as i64], Some(&self.norm), self.eps)
            .linear::<Tensor>(&self.lm_head, None)
    }

    fn value_slots(&self, layer: usize) -> Tensor {
        self.layers[layer].down.w.shallow_clone()
    }

    fn input_embeddings(&self) -> &Tensor {
        &self.embed
    }

    fn output_embeddings(&self) -> &Tensor {
        &self.lm_head
    }
}
