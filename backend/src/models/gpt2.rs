//! GPT-2 causal LM (`GPT2LMHeadModel`), Hugging Face layout.
//!
//! GPT-2 stores its projections as `Conv1D` with weights `[in, out]`, the
//! transpose of `nn.Linear`. Neurons: `a = gelu_new(c_fc(h))`, the input of
//! `mlp.c_proj` (post-activation; SPEC notes that the EleutherAI package hooks
//! the pre-activation by mistake). Value slots: rows of `c_proj.weight`, which we
//! expose transposed as `[d_model, d_ff]`. Names may carry `transformer.`.

use super::{
    attend, attention_mask, split_heads, Arch, Batch, Config, ModelConfig, NeuronModel, Weights,
};
use super::{with_new, At, Ctx, Kv, LayerNorm};
use crate::{Error, Result};
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
        x.matmul(&self.w) + &self.b
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
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    lm_head: Tensor,
    device: Device,
}

impl Gpt2 {
    pub(crate) fn load(json: &serde_json::Value, ws: &mut Weights) -> Result<Self> {
        let path = std::path::PathBuf::from("config.json");
        let c = Config { json, path: &path };
        let d = c.usize(&["n_embd", "hidden_size"])? as i64;
        let n_layers = c.usize(&["n_layer", "num_hidden_layers"])?;
        let heads = c.usize(&["n_head", "num_attention_heads"])? as i64;
        let d_ff = c.usize_or(&["n_inner"], 4 * d as usize) as i64;
        let vocab = c.usize(&["vocab_size"])? as i64;
        let max_pos = c.usize(&["n_positions", "max_position_embeddings"])? as i64;
        let eps = c.f64_or("layer_norm_epsilon", 1e-5);
        let act = c.str_or("activation_function", "gelu_new");
        if act != "gelu_new" {
            return Err(Error::bad_model(
                &path,
                format!("activation_function `{act}` is not supported (GPT-2 uses gelu_new)"),
            ));
        }
        if d % heads != 0 {
            return Err(Error::bad_model(
                &path,
                "n_embd is not a multiple of n_head",
            ));
        }
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
        Tensor::embedding(&self.wte, &batch.ids, -1, false, false)
            + Tensor::embedding(&self.wpe, &positions, -1, false, false).unsqueeze(0)
    }

    fn context(&self, batch: &Batch) -> Ctx {
        Ctx {
            mask: attention_mask(batch, true),
            rope: None,
        }
    }

    fn attention(&self, layer: usize, x: &Tensor, ctx: &Ctx) -> (Tensor, Kv) {
        let (q, k, v) = self.qkv(layer, x);
        let h = self.blocks[layer]
            .attn_proj
            .forward(&attend(&q, &k, &v, Some(&ctx.mask)))
            + x;
        (h, Kv { k, v, q: None })
    }

    fn attention_at(&self, layer: usize, x: &Tensor, past: &Kv, at: &At) -> Tensor {
        let (q, k, v) = self.qkv(layer, x);
        let (k, v) = (
            with_new(&past.k, &k, &at.pos),
            with_new(&past.v, &v, &at.pos),
        );
        self.blocks[layer]
            .attn_proj
            .forward(&attend(&q, &k, &v, at.keys.as_ref()))
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
        self.ln_f.forward(x).linear::<Tensor>(&self.lm_head, None)
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
