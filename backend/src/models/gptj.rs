//! GPT-J (`gptj`: EleutherAI's GPT-J-6B, ROME's model), read into the
//! [`Parallel`] runtime.
//!
//! Neurons: `gelu_new(fc_in(LN₁ x))`, the input of `mlp.fc_out`; value
//! slots: columns of `fc_out.weight`.
//!
//! Attention and FFN read the same LayerNorm of the block's input and are
//! added to it together. Rotary turns the first `rotary_dim` dimensions of
//! each head in interleaved pairs (`rotate_every_two`), with base 10000; the
//! LM head has a bias.

use super::parallel::{Block, Gelu, Parallel};
use super::rope::{Layout, Rope, RopeTables, Scaling};
use super::{head_dim, parse_config, Arch, LayerNorm, Linear, ModelConfig, Weights};
use crate::{Error, Result};
use serde::Deserialize;

/// `config.json` of GPT-J, as far as the computation depends on it.
#[derive(Debug, Deserialize)]
struct GptjConfig {
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    n_inner: Option<usize>,
    vocab_size: usize,
    n_positions: Option<usize>,
    layer_norm_epsilon: Option<f64>,
    activation_function: Option<String>,
    rotary_dim: Option<usize>,
    #[serde(default)]
    tie_word_embeddings: bool,
}

/// A GPT-J checkpoint's config and tensors as a [`Parallel`] model.
pub(crate) fn load(json: &serde_json::Value, ws: &mut Weights) -> Result<Parallel> {
    let path = std::path::PathBuf::from("config.json");
    let c: GptjConfig = parse_config(json, &path)?;
    let act = match c.activation_function.as_deref().unwrap_or("gelu_new") {
        "gelu_new" | "gelu_pytorch_tanh" => Gelu::Tanh,
        "gelu" => Gelu::Exact,
        other => {
            return Err(Error::bad_model(
                &path,
                format!(
                "config.json: activation_function `{other}` is not supported (GPT-J uses gelu_new)"
            ),
            ))
        }
    };
    let (d, heads) = (c.n_embd as i64, c.n_head as i64);
    let head_dim = head_dim(&path, (d, "n_embd"), (heads, "n_head"))?;
    let rot = c.rotary_dim.ok_or_else(|| {
        Error::bad_model(
            &path,
            "config.json: `rotary_dim` is null; GPT-J here needs it set",
        )
    })? as i64;
    let rope = Rope {
        theta: 10_000.0,
        partial: rot as f64 / head_dim as f64,
        scaling: Scaling::Default,
    };
    if rot == 0 || rot % 2 != 0 || rot > head_dim || rope.dims(head_dim) != rot {
        return Err(Error::bad_model(
            &path,
            format!("config.json: `rotary_dim` {rot} does not fit heads of {head_dim}"),
        ));
    }
    let d_ff = c.n_inner.unwrap_or(4 * c.n_embd) as i64;
    let vocab = c.vocab_size as i64;
    let max_pos = c.n_positions.unwrap_or(2048);
    let eps = c.layer_norm_epsilon.unwrap_or(1e-5);
    let embed = ws.take("transformer.wte.weight", &[vocab, d])?;
    let mut blocks = Vec::with_capacity(c.n_layer);
    for l in 0..c.n_layer {
        let n = format!("transformer.h.{l}");
        let attn = |ws: &mut Weights, p: &str| Linear::load(ws, &format!("{n}.attn.{p}"), d, d);
        blocks.push(Block {
            ln_attn: LayerNorm::load(ws, &format!("{n}.ln_1"), d, eps)?,
            ln_ffn: None,
            q: attn(ws, "q_proj")?,
            k: attn(ws, "k_proj")?,
            v: attn(ws, "v_proj")?,
            o: attn(ws, "out_proj")?,
            fc_in: Linear::load(ws, &format!("{n}.mlp.fc_in"), d_ff, d)?,
            fc_out: Linear::load(ws, &format!("{n}.mlp.fc_out"), d, d_ff)?,
        });
    }
    let ln_f = LayerNorm::load(ws, "transformer.ln_f", d, eps)?;
    let lm_head = ws.head_or_tied("lm_head.weight", &[vocab, d], c.tie_word_embeddings, &embed)?;
    let lm_bias = ws.take_opt("lm_head.bias", &[vocab])?;
    ws.finish(|n| n.ends_with(".attn.bias") || n.ends_with(".attn.masked_bias"))?;
    let (device, kind) = (ws.device(), ws.kind());
    Ok(Parallel {
        cfg: ModelConfig {
            arch: Arch::Gptj,
            n_layers: c.n_layer,
            d_model: d as usize,
            d_ff: d_ff as usize,
            vocab_size: vocab as usize,
            max_positions: max_pos,
            q_dim: d as usize,
            kv_dim: d as usize,
        },
        heads,
        rope: RopeTables::new(
            rope,
            head_dim,
            Layout::Interleaved,
            max_pos as i64,
            device,
            kind,
        ),
        embed,
        blocks,
        ln_f,
        lm_head: Linear {
            w: lm_head,
            b: lm_bias,
        },
        act,
        parallel: true,
        device,
    })
}
