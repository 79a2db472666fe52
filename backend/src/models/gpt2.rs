//! GPT-2 causal LM (`GPT2LMHeadModel`), Hugging Face layout.
//!
//! GPT-2 stores its projections as `Conv1D` with weights `[in, out]`, the
//! transpose of `nn.Linear`. Neurons: `a = gelu_new(c_fc(h))`, the input of
//! `mlp.c_proj` (post-activation; SPEC notes that the EleutherAI package hooks
//! the pre-activation by mistake). Value slots: rows of `c_proj.weight`, which we
//! expose transposed as `[d_model, d_ff]`. Names may carry `transformer.`.

use super::layers::{lookup, project};
use super::{
    attend_scaled, attention_mask, head_dim, parse_config, split_heads, Arch, Batch, ModelConfig,
    NeuronModel, Weights,
};
use super::{with_new, At, Ctx, Kv, LayerNorm};
use crate::{Error, Result};
use serde::Deserialize;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// `y = x·W + b` with `W: [in, out]`.
struct Conv1D {
    w: Tensor,
    b: Tensor,
}

impl Conv1D {
    fn load(ws: &mut Weights, name: &str, inp: i64, out: i64) -> Result<Self> {
        Ok(Conv1D {
            w: ws.take(&format!("{name}.weight"), &[inp, out])?,
            b: ws.take(&format!("{name}.bias"), &[out])?,
        })
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.matmul(&self.w.to_kind(x.kind())) + &self.b
    }
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Conv1D,
    attn_proj: Conv1D,
    ln_2: LayerNorm,
    c_fc: Conv1D,
    c_proj: Conv1D,
}

pub struct Gpt2 {
    cfg: ModelConfig,
    heads: i64,
    /// Each layer's multiplier of the attention scores.
    scales: Vec<f64>,
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    lm_head: Tensor,
    device: Device,
}

/// `config.json` of GPT-2, as far as the computation depends on it.
#[derive(Debug, Deserialize)]
struct Gpt2Config {
    #[serde(alias = "hidden_size")]
    n_embd: usize,
    #[serde(alias = "num_hidden_layers")]
    n_layer: usize,
    #[serde(alias = "num_attention_heads")]
    n_head: usize,
    n_inner: Option<usize>,
    vocab_size: usize,
    #[serde(alias = "max_position_embeddings")]
    n_positions: usize,
    layer_norm_epsilon: Option<f64>,
    activation_function: Option<String>,
    /// Scores divided by `√head_dim` (true in every released GPT-2).
    scale_attn_weights: Option<bool>,
    /// Scores divided by the layer's index + 1 as well (Stanford CRFM's
    /// Mistral GPT-2s set it).
    #[serde(default)]
    scale_attn_by_inverse_layer_idx: bool,
    /// Scores in f32 whatever the dtype: they are f32 here unless a cheaper
    /// compute dtype is asked for, where the flag is refused.
    #[serde(default)]
    reorder_and_upcast_attn: bool,
    #[serde(default)]
    add_cross_attention: bool,
}

impl Gpt2Config {
    fn check(&self, path: &Path) -> Result<()> {
        let act = self.activation_function.as_deref().unwrap_or("gelu_new");
        if act != "gelu_new" {
            return Err(Error::bad_model(
                path,
                format!("config.json: activation_function `{act}` is not supported (GPT-2 uses gelu_new)"),
            ));
        }
        if self.add_cross_attention {
            return Err(Error::bad_model(
                path,
                "config.json: `add_cross_attention` (an encoder-decoder GPT-2) is not supported",
            ));
        }
        head_dim(
            path,
            (self.n_embd as i64, "n_embd"),
            (self.n_head as i64, "n_head"),
        )
        .map(|_| ())
    }

    /// Layer `l`'s multiplier of `q·k`, as transformers' `GPT2Attention`.
    fn scale(&self, l: usize) -> f64 {
        let dh = (self.n_embd / self.n_head) as f64;
        let mut scale = if self.scale_attn_weights.unwrap_or(true) {
            dh.powf(-0.5)
        } else {
            1.0
        };
        if self.scale_attn_by_inverse_layer_idx {
            scale /= (l + 1) as f64;
        }
        scale
    }
}

impl Gpt2 {
    pub(crate) fn load(json: &serde_json::Value, ws: &mut Weights) -> Result<Self> {
        let path = std::path::PathBuf::from("config.json");
        let c: Gpt2Config = parse_config(json, &path)?;
        c.check(&path)?;
        if c.reorder_and_upcast_attn && ws.kind() != Kind::Float {
            return Err(Error::bad_model(
                &path,
                "config.json: `reorder_and_upcast_attn` asks for f32 attention scores; load this \
                 model in f32",
            ));
        }
        let d = c.n_embd as i64;
        let n_layers = c.n_layer;
        let heads = c.n_head as i64;
        let d_ff = c.n_inner.unwrap_or(4 * c.n_embd) as i64;
        let vocab = c.vocab_size as i64;
        let max_pos = c.n_positions as i64;
        let eps = c.layer_norm_epsilon.unwrap_or(1e-5);
        let scales = (0..n_layers).map(|l| c.scale(l)).collect();
        let p = if ws.contains("transformer.wte.weight") {
            "transformer."
        } else {
            ""
        };
        let wte = ws.take(&format!("{p}wte.weight"), &[vocab, d])?;
        let wpe = ws.take(&format!("{p}wpe.weight"), &[max_pos, d])?;
        let mut blocks = Vec::with_capacity(n_layers);
        for l in 0..n_layers {
            let n = format!("{p}h.{l}");
            blocks.push(Block {
                ln_1: LayerNorm::load(ws, &format!("{n}.ln_1"), d, eps)?,
                c_attn: Conv1D::load(ws, &format!("{n}.attn.c_attn"), d, 3 * d)?,
                attn_proj: Conv1D::load(ws, &format!("{n}.attn.c_proj"), d, d)?,
                ln_2: LayerNorm::load(ws, &format!("{n}.ln_2"), d, eps)?,
                c_fc: Conv1D::load(ws, &format!("{n}.mlp.c_fc"), d, d_ff)?,
                c_proj: Conv1D::load(ws, &format!("{n}.mlp.c_proj"), d_ff, d)?,
            });
        }
        let ln_f = LayerNorm::load(ws, &format!("{p}ln_f"), d, eps)?;
        let lm_head = ws
            .take_opt("lm_head.weight", &[vocab, d])?
            .unwrap_or_else(|| wte.shallow_clone());
        // The causal-mask buffers older checkpoints saved.
        ws.finish(|n| n.ends_with(".attn.bias") || n.ends_with(".attn.masked_bias"))?;
        Ok(Gpt2 {
            cfg: ModelConfig {
                arch: Arch::Gpt2,
                n_layers,
                d_model: d as usize,
                d_ff: d_ff as usize,
                vocab_size: vocab as usize,
                max_positions: max_pos as usize,
                q_dim: d as usize,
                kv_dim: d as usize,
            },
            heads,
            scales,
            wte,
            wpe,
            blocks,
            ln_f,
            lm_head,
            device: ws.device(),
        })
    }
}

impl Gpt2 {
    fn qkv(&self, layer: usize, x: &Tensor) -> (Tensor, Tensor, Tensor) {
        let blk = &self.blocks[layer];
        let qkv = blk.c_attn.forward(&blk.ln_1.forward(x)).chunk(3, -1);
        (
            split_heads(&qkv[0], self.heads),
            split_heads(&qkv[1], self.heads),
            split_heads(&qkv[2], self.heads),
        )
    }
}

impl NeuronModel for Gpt2 {
    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn device(&self) -> Device {
        self.device
    }

    fn embed(&self, batch: &Batch) -> Tensor {
        let positions = Tensor::arange(batch.seq_len as i64, (Kind::Int64, self.device));
        let kind = self.ln_f.kind();
        lookup(&self.wte, &batch.ids, kind) + lookup(&self.wpe, &positions, kind).unsqueeze(0)
    }

    fn context(&self, batch: &Batch) -> Ctx {
        Ctx::plain(attention_mask(batch, true))
    }

    fn attention(&self, layer: usize, x: &Tensor, ctx: &Ctx) -> (Tensor, Kv) {
        let (q, k, v) = self.qkv(layer, x);
        let scale = Some(self.scales[layer]);
        let h = self.blocks[layer].attn_proj.forward(&attend_scaled(
            &q,
            &k,
            &v,
            Some(&ctx.mask),
            scale,
        )) + x;
        (h, Kv { k, v, q: None })
    }

    fn attention_at(&self, layer: usize, x: &Tensor, past: &Kv, at: &At) -> Tensor {
        let (q, k, v) = self.qkv(layer, x);
        let (k, v) = (
            with_new(&past.k, &k, &at.pos),
            with_new(&past.v, &v, &at.pos),
        );
        let scale = Some(self.scales[layer]);
        self.blocks[layer]
            .attn_proj
            .forward(&attend_scaled(&q, &k, &v, at.keys.as_ref(), scale))
            + x
    }

    fn ffn_act(&self, layer: usize, h: &Tensor) -> Tensor {
        let blk = &self.blocks[layer];
        blk.c_fc.forward(&blk.ln_2.forward(h)).gelu("tanh")
    }

    fn ffn_out(&self, layer: usize, h: &Tensor, a: &Tensor) -> Tensor {
        self.blocks[layer].c_proj.forward(a) + h
    }

    fn head(&self, x: &Tensor) -> Tensor {
        project(&self.ln_f.forward(x), &self.lm_head)
    }

    fn value_slots(&self, layer: usize) -> Tensor {
        self.blocks[layer].c_proj.w.transpose(0, 1)
    }

    fn input_embeddings(&self) -> &Tensor {
        &self.wte
    }

    fn output_embeddings(&self) -> &Tensor {
        &self.lm_head
    }
}
