//! The Llama family's configs and tensor names (Llama 2/3, Mistral, Qwen2,
//! Qwen3, Phi-3, OLMo 2, SmolLM2), from Hugging Face safetensors or from a
//! GGUF file, read into the shared [`Decoder`] runtime.
//!
//! Neurons: `a = silu(gate_proj(h)) * up_proj(h)`, the input of `down_proj`;
//! value slots: columns of `down_proj.weight` (Phi-3 fuses `gate_up_proj`, cut
//! here into the two).
//!
//! GGUF files store the same tensors under llama.cpp's names, with the rows of
//! the Q and K projections permuted from Hugging Face's half-split rotary layout
//! to interleaved pairs; [`from_gguf`] renames and un-permutes them so that
//! one forward pass serves both sources.

use super::decoder::{layer_windows, load_layer, Act, Decoder, Dims, Names, QkKind, Scores};
use super::rope::{Layout, RopeConfig, RopeTables};
use super::{parse_config, Arch, Held, ModelConfig, Precision, Weights};
use crate::gguf::GgufFile;
use crate::{Error, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Tensor};

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
        let from = self.max_window_layers.unwrap_or(28);
        layer_windows(
            path,
            self.layer_types.as_deref(),
            self.num_hidden_layers,
            self.sliding_window.unwrap_or(4096),
            |i| i >= from,
        )
    }
}

/// A Llama-family checkpoint's config and tensors as a [`Decoder`].
pub(crate) fn load(json: &serde_json::Value, ws: &mut Weights) -> Result<Decoder> {
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
    let dims = Dims {
        d,
        qd,
        kvd,
        head_dim,
        d_ff,
    };
    let names = layout(&c.model_type);
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    for (l, &window) in windows.iter().enumerate() {
        layers.push(load_layer(ws, l, (window, 0), dims, &names)?);
    }
    let norm = ws.take("model.norm.weight", &[d])?;
    let lm_head = ws.head_or_tied("lm_head.weight", &[vocab, d], c.tie_word_embeddings, &embed)?;
    // Older checkpoints saved the rotary tables' frequencies.
    ws.finish(|n| n.ends_with("rotary_emb.inv_freq"))?;
    let kind = ws.kind();
    Ok(Decoder {
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
        eps: c.rms_norm_eps.unwrap_or(1e-6),
        ropes: vec![RopeTables::new(
            rope,
            head_dim,
            Layout::Half,
            max_pos as i64,
            ws.device(),
            kind,
        )],
        embed,
        embed_scale: None,
        layers,
        norm,
        lm_head,
        act: Act::Silu,
        scores: Scores {
            scale: None,
            softcap: None,
        },
        final_softcap: None,
        device: ws.device(),
    })
}

/// Load from a GGUF file: map llama.cpp's names and metadata onto the
/// Hugging Face ones, dequantise, and undo the Q/K row permutation.
pub(crate) fn from_gguf(
    g: &GgufFile,
    device: Device,
    precision: Precision,
) -> Result<(Decoder, Held)> {
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
    let mut ws = Weights::from_map(map, g.path.clone(), device, precision);
    let net = load(&config, &mut ws).map_err(|e| match e {
        Error::BadModel { message, .. } => Error::Gguf {
            path: g.path.clone(),
            message,
        },
        other => other,
    })?;
    Ok((net, ws.held()))
}

/// Where the family's model types keep their norms and which fuse their
/// projections.
fn layout(model_type: &str) -> Names {
    match model_type {
        "olmo2" => Names {
            attn_in: None,
            ffn_in: None,
            attn_out: Some("post_attention_layernorm"),
            ffn_out: Some("post_feedforward_layernorm"),
            qk: Some(QkKind::Whole),
            ..Names::LLAMA
        },
        "qwen3" => Names {
            qk: Some(QkKind::PerHead),
            ..Names::LLAMA
        },
        "phi3" => Names {
            fused: true,
            ..Names::LLAMA
        },
        _ => Names::LLAMA,
    }
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
