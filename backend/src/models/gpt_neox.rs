//! GPT-NeoX (`gpt_neox`: Pythia, GPT-NeoX-20B), read into the [`Parallel`]
//! runtime.
//!
//! Neurons: `gelu(dense_h_to_4h(LN₂ ·))`, the input of `mlp.dense_4h_to_h`;
//! value slots: columns of `dense_4h_to_h.weight`.
//!
//! The fused `query_key_value` projection stacks each head's query, key and
//! value rows together (`[heads, 3, head_dim]` rows, not `[3, heads,
//! head_dim]`); it is cut here into three projections. Rotary turns the first
//! `rotary_pct` (0.25 by default) of each head, half-split; the block is
//! parallel unless `use_parallel_residual` is false. Pythia's checkpoints name
//! the unembedding `embed_out`, transformers 5 writes `lm_head`.

use super::parallel::{Block, Gelu, Parallel};
use super::rope::{Layout, RopeConfig, RopeTables};
use super::{head_dim, parse_config, Arch, LayerNorm, Linear, ModelConfig, Weights};
use crate::{Error, Result};
use serde::Deserialize;
use std::path::Path;

/// `config.json` of GPT-NeoX, as far as the computation depends on it.
#[derive(Debug, Deserialize)]
struct NeoxConfig {
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    vocab_size: usize,
    max_position_embeddings: Option<usize>,
    layer_norm_eps: Option<f64>,
    hidden_act: Option<String>,
    #[serde(default)]
    tie_word_embeddings: bool,
    use_parallel_residual: Option<bool>,
    /// The older names of the rotary fraction and base.
    rotary_pct: Option<f64>,
    rotary_emb_base: Option<f64>,
    #[serde(flatten)]
    rope: RopeConfig,
}

impl NeoxConfig {
    fn act(&self, path: &Path) -> Result<Gelu> {
        match self.hidden_act.as_deref().unwrap_or("gelu") {
            "gelu" => Ok(Gelu::Exact),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Gelu::Tanh),
            other => Err(Error::bad_model(
                path,
                format!("config.json: hidden_act `{other}` is not supported (GPT-NeoX uses gelu)"),
            )),
        }
    }
}

/// A GPT-NeoX checkpoint's config and tensors as a [`Parallel`] model.
pub(crate) fn load(json: &serde_json::Value, ws: &mut Weights) -> Result<Parallel> {
    let path = std::path::PathBuf::from("config.json");
    let c: NeoxConfig = parse_config(json, &path)?;
    let act = c.act(&path)?;
    let (d, heads) = (c.hidden_size as i64, c.num_attention_heads as i64);
    let head_dim = head_dim(&path, (d, "hidden_size"), (heads, "num_attention_heads"))?;
    let (d_ff, vocab) = (c.intermediate_size as i64, c.vocab_size as i64);
    let max_pos = c.max_position_embeddings.unwrap_or(2048);
    let eps = c.layer_norm_eps.unwrap_or(1e-5);
    let defaults = (
        c.rotary_emb_base.unwrap_or(10_000.0),
        c.rotary_pct.unwrap_or(0.25),
    );
    let rope = c.rope.resolve_with(&path, defaults, max_pos as f64)?;
    let embed = ws.take("gpt_neox.embed_in.weight", &[vocab, d])?;
    let mut blocks = Vec::with_capacity(c.num_hidden_layers);
    for l in 0..c.num_hidden_layers {
        let n = format!("gpt_neox.layers.{l}");
        let [q, k, v] = per_head_qkv(
            ws,
            &format!("{n}.attention.query_key_value"),
            heads,
            head_dim,
        )?;
        blocks.push(Block {
            ln_attn: LayerNorm::load(ws, &format!("{n}.input_layernorm"), d, eps)?,
            ln_ffn: Some(LayerNorm::load(
                ws,
                &format!("{n}.post_attention_layernorm"),
                d,
                eps,
            )?),
            q,
            k,
            v,
            o: Linear::load(ws, &format!("{n}.attention.dense"), d, d)?,
            fc_in: Linear::load(ws, &format!("{n}.mlp.dense_h_to_4h"), d_ff, d)?,
            fc_out: Linear::load(ws, &format!("{n}.mlp.dense_4h_to_h"), d, d_ff)?,
        });
    }
    let ln_f = LayerNorm::load(ws, "gpt_neox.final_layer_norm", d, eps)?;
    let head = match ws.take_opt("embed_out.weight", &[vocab, d])? {
        Some(w) => Some(w),
        None => ws.take_opt("lm_head.weight", &[vocab, d])?,
    };
    let lm_head = match head {
        Some(w) => w,
        None if c.tie_word_embeddings => embed.shallow_clone(),
        None => return Err(Error::bad_model(
            &path,
            "`embed_out.weight` (or `lm_head.weight`) is missing and tie_word_embeddings is false",
        )),
    };
    // The causal-mask buffers and rotary frequencies older checkpoints saved.
    ws.finish(|n| {
        n.ends_with("attention.bias")
            || n.ends_with("attention.masked_bias")
            || n.ends_with("rotary_emb.inv_freq")
    })?;
    let (device, kind) = (ws.device(), ws.kind());
    Ok(Parallel {
        cfg: ModelConfig {
            arch: Arch::GptNeox,
            n_layers: c.num_hidden_layers,
            d_model: d as usize,
            d_ff: d_ff as usize,
            vocab_size: vocab as usize,
            max_positions: max_pos,
            q_dim: d as usize,
            kv_dim: d as usize,
        },
        heads,
        rope: RopeTables::new(rope, head_dim, Layout::Half, max_pos as i64, device, kind),
        embed,
        blocks,
        ln_f,
        lm_head: Linear {
            w: lm_head,
            b: None,
        },
        act,
        parallel: c.use_parallel_residual.unwrap_or(true),
        device,
    })
}

/// GPT-NeoX's fused projection, `[heads · 3 · head_dim, d]` rows in head
/// order, as separate query, key and value projections (copies: the fused
/// rows of one kind are not contiguous).
fn per_head_qkv(ws: &mut Weights, name: &str, heads: i64, head_dim: i64) -> Result<[Linear; 3]> {
    let d = heads * head_dim;
    let fused = Linear::load(ws, name, 3 * d, d)?;
    let w = fused.w.view([heads, 3, head_dim, d]);
    let b = fused.b.as_ref().map(|b| b.view([heads, 3, head_dim]));
    Ok([0, 1, 2].map(|i| Linear {
        w: w.select(1, i).reshape([d, d]),
        b: b.as_ref().map(|b| b.select(1, i).reshape([d])),
    }))
}
