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

use super::{
    attend, attention_mask, split_heads, Arch, Batch, Config, ModelConfig, NeuronModel, Weights,
};
use super::{with_new, At, Ctx, Kv, Linear};
use crate::gguf::GgufFile;
use crate::{Error, Result};
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

/// Positions whose rotary tables are precomputed at load.
const ROPE_CACHE: usize = 4096;

struct Layer {
    in_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

pub struct Llama {
    cfg: ModelConfig,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
    eps: f64,
    rope_theta: f64,
    /// `(cos, sin)` for the first positions, computed once at load.
    rope_cache: (Tensor, Tensor),
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
    device: Device,
}

fn rope_theta(c: &Config) -> Result<f64> {
    let params = c.json.get("rope_parameters");
    let scaling = c.json.get("rope_scaling").filter(|v| !v.is_null());
    let kind = scaling
        .or(params)
        .and_then(|s| s.get("rope_type").or_else(|| s.get("type")))
        .and_then(|t| t.as_str())
        .unwrap_or("default");
    if kind != "default" {
        return Err(Error::bad_model(
            c.path,
            format!(
                "rope scaling `{kind}` is not supported (only the default rotary embedding is)"
            ),
        ));
    }
    Ok(c.json
        .get("rope_theta")
        .or_else(|| params.and_then(|p| p.get("rope_theta")))
        .and_then(|v| v.as_f64())
        .unwrap_or(10000.0))
}

impl Llama {
    pub(crate) fn load(json: &serde_json::Value, ws: &mut Weights) -> Result<Self> {
        let path = std::path::PathBuf::from("config.json");
        let c = Config { json, path: &path };
        let d = c.usize(&["hidden_size"])? as i64;
        let n_layers = c.usize(&["num_hidden_layers"])?;
        let heads = c.usize(&["num_attention_heads"])? as i64;
        let kv_heads = c.usize_or(&["num_key_value_heads"], heads as usize) as i64;
        let head_dim = c.usize_or(&["head_dim"], (d / heads) as usize) as i64;
        let d_ff = c.usize(&["intermediate_size"])? as i64;
        let vocab = c.usize(&["vocab_size"])? as i64;
        let max_pos = c.usize_or(&["max_position_embeddings"], 2048);
        let eps = c.f64_or("rms_norm_eps", 1e-6);
        let act = c.str_or("hidden_act", "silu");
        if act != "silu" {
            return Err(Error::bad_model(
                &path,
                format!("hidden_act `{act}` is not supported (Llama uses silu)"),
            ));
        }
        if kv_heads == 0 || heads % kv_heads != 0 || head_dim % 2 != 0 {
            return Err(Error::bad_model(
                &path,
                "attention heads do not divide evenly",
            ));
        }
        let rope_theta = rope_theta(&c)?;
        let tied = c.bool_or("tie_word_embeddings", false);
        let embed = ws.take("model.embed_tokens.weight", &[vocab, d])?;
        let (qd, kvd) = (heads * head_dim, kv_heads * head_dim);
        let mut layers = Vec::with_capacity(n_layers);
        for l in 0..n_layers {
            let n = format!("model.layers.{l}");
            layers.push(Layer {
                in_norm: ws.take(&format!("{n}.input_layernorm.weight"), &[d])?,
                q: Linear::load(ws, &format!("{n}.self_attn.q_proj"), qd, d)?,
                k: Linear::load(ws, &format!("{n}.self_attn.k_proj"), kvd, d)?,
                v: Linear::load(ws, &format!("{n}.self_attn.v_proj"), kvd, d)?,
                o: Linear::load(ws, &format!("{n}.self_attn.o_proj"), d, qd)?,
                post_norm: ws.take(&format!("{n}.post_attention_layernorm.weight"), &[d])?,
                gate: Linear::load(ws, &format!("{n}.mlp.gate_proj"), d_ff, d)?,
                up: Linear::load(ws, &format!("{n}.mlp.up_proj"), d_ff, d)?,
                down: Linear::load(ws, &format!("{n}.mlp.down_proj"), d, d_ff)?,
            });
        }
        let norm = ws.take("model.norm.weight", &[d])?;
        let lm_head = match ws.take_opt("lm_head.weight", &[vocab, d])? {
            Some(w) => w,
            None if tied => embed.shallow_clone(),
            None => {
                return Err(Error::bad_model(
                    &path,
                    "`lm_head.weight` is missing and tie_word_embeddings is false",
                ));
            }
        };
        let mut llama = Llama {
            cfg: ModelConfig {
                arch: Arch::Llama,
                n_layers,
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
            eps,
            rope_theta,
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
        let half = self.head_dim / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| (1.0 / self.rope_theta.powf((2 * i) as f64 / self.head_dim as f64)) as f32)
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

fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    x * cos + rotate_half(x) * sin
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
        let h = x.rms_norm([self.cfg.d_model as i64], Some(&ly.in_norm), self.eps);
        let q = apply_rope(&split_heads(&ly.q.forward(&h), self.heads), cos, sin);
        let k = apply_rope(&split_heads(&ly.k.forward(&h), self.kv_heads), cos, sin);
        let v = split_heads(&ly.v.forward(&h), self.kv_heads);
        (q, k, v)
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
        Ctx {
            mask: attention_mask(batch, true),
            rope: Some(self.rope(batch.seq_len as i64)),
        }
    }

    fn attention(&self, layer: usize, x: &Tensor, ctx: &Ctx) -> (Tensor, Kv) {
        let (cos, sin) = ctx.rope.as_ref().expect("llama context has rotary tables");
        let (q, k, v) = self.qkv(layer, x, cos, sin);
        let h = self.layers[layer]
            .o
            .forward(&attend(&q, &k, &v, Some(&ctx.mask)))
            + x;
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
        self.layers[layer]
            .o
            .forward(&attend(&q, &k, &v, at.keys.as_ref()))
            + x
    }

    fn ffn_act(&self, layer: usize, h: &Tensor) -> Tensor {
        let ly = &self.layers[layer];
        let h = h.rms_norm([self.cfg.d_model as i64], Some(&ly.post_norm), self.eps);
        ly.gate.forward(&h).silu() * ly.up.forward(&h)
    }

    fn ffn_out(&self, layer: usize, h: &Tensor, a: &Tensor) -> Tensor {
        self.layers[layer].down.forward(a) + h
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
