//! Gemma (`gemma`), Gemma 2 (`gemma2`) and Gemma 3's text model
//! (`gemma3_text`, `Gemma3ForCausalLM`), read into the shared [`Decoder`].
//!
//! Neurons: `gelu_tanh(gate_proj(h)) · up_proj(h)`, the input of `down_proj`;
//! value slots: columns of `down_proj.weight`.
//!
//! What makes the family differ from Llama, all held to transformers by the
//! fixtures: RMSNorm multiplies by `1 + w`; the token embeddings are scaled by
//! `√d` (rounded to the weights' dtype, as transformers does); Gemma 2 and 3
//! normalise the outputs of attention and FFN too ("sandwich" norms), scale
//! scores by `query_pre_attn_scalar^-½`, and alternate sliding-window and
//! global layers (`layer_types`); Gemma 2 soft-caps the attention scores and
//! the final logits; Gemma 3 normalises q and k per head and turns local
//! layers by `rope_local_base_freq` and global ones by `rope_theta` (with its
//! scaling).

use super::decoder::{gain, layer_windows, load_layer, Act, Decoder, Dims, Names, QkKind, Scores};
use super::rope::{Layout, Rope, RopeConfig, RopeParams, RopeTables};
use super::{parse_config, Arch, ModelConfig, Weights};
use crate::{Error, Result};
use serde::{Deserialize, Deserializer};
use std::path::Path;
use tch::Tensor;

/// `config.json` of the family, as far as the computation depends on it.
#[derive(Debug, Deserialize)]
struct GemmaConfig {
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
    /// Gemma's activation; Gemma 2 and 3 read `hidden_activation`.
    hidden_act: Option<String>,
    hidden_activation: Option<String>,
    tie_word_embeddings: Option<bool>,
    query_pre_attn_scalar: Option<f64>,
    sliding_window: Option<usize>,
    layer_types: Option<Vec<String>>,
    /// Gemma 3's older spelling of `layer_types`: every n-th layer global.
    sliding_window_pattern: Option<usize>,
    /// Absent: the model type's default (Gemma 2: 30 and 50); `null`: none.
    #[serde(default, deserialize_with = "present")]
    final_logit_softcapping: Option<Option<f64>>,
    #[serde(default, deserialize_with = "present")]
    attn_logit_softcapping: Option<Option<f64>>,
    #[serde(default)]
    use_bidirectional_attention: Option<bool>,
    rope_theta: Option<f64>,
    rope_scaling: Option<RopeParams>,
    rope_parameters: Option<GemmaRope>,
    rope_local_base_freq: Option<f64>,
    partial_rotary_factor: Option<f64>,
}

/// A key that is present, `null` or not: `Some(None)` for `null`.
fn present<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

/// `rope_parameters`: one object (Gemma, Gemma 2), or one per layer type
/// (Gemma 3, as transformers 5 writes it).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum GemmaRope {
    PerType(PerType),
    One(RopeParams),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PerType {
    full_attention: Option<RopeParams>,
    sliding_attention: Option<RopeParams>,
}

/// The model types, in the order they add features.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Gen {
    Gemma1,
    Gemma2,
    Gemma3,
}

impl GemmaConfig {
    fn generation(&self, path: &Path) -> Result<Gen> {
        Ok(match self.model_type.as_str() {
            "gemma" => Gen::Gemma1,
            "gemma2" => Gen::Gemma2,
            "gemma3_text" => Gen::Gemma3,
            other => {
                return Err(Error::bad_model(
                    path,
                    format!("model type `{other}` is not a Gemma text model"),
                ))
            }
        })
    }

    fn check(&self, path: &Path, g: Gen) -> Result<()> {
        let (key, act) = match g {
            Gen::Gemma1 => ("hidden_act", self.hidden_act.as_deref()),
            Gen::Gemma2 | Gen::Gemma3 => ("hidden_activation", self.hidden_activation.as_deref()),
        };
        let act = act.unwrap_or("gelu_pytorch_tanh");
        // Gemma's `gelu` is a legacy spelling that transformers runs as tanh.
        if !(act == "gelu_pytorch_tanh" || (g == Gen::Gemma1 && act == "gelu")) {
            return Err(Error::bad_model(
                path,
                format!(
                    "config.json: {key} `{act}` is not supported (Gemma uses gelu_pytorch_tanh)"
                ),
            ));
        }
        if self.use_bidirectional_attention == Some(true) {
            return Err(Error::bad_model(
                path,
                "config.json: `use_bidirectional_attention` (an encoder Gemma) is not supported",
            ));
        }
        if self.partial_rotary_factor.is_some_and(|p| p != 1.0) {
            return Err(Error::bad_model(
                path,
                "config.json: `partial_rotary_factor` is not supported for Gemma",
            ));
        }
        let kv = self.num_key_value_heads.unwrap_or(self.num_attention_heads);
        if kv == 0 || !self.num_attention_heads.is_multiple_of(kv) {
            return Err(Error::bad_model(
                path,
                "attention heads do not divide evenly",
            ));
        }
        Ok(())
    }

    /// Each layer's sliding window and rotary table (0: global, 1: local).
    fn layers(&self, path: &Path, g: Gen) -> Result<Vec<(Option<i64>, usize)>> {
        let n = self.num_hidden_layers;
        if g == Gen::Gemma1 {
            return Ok(vec![(None, 0); n]);
        }
        let every = match g {
            Gen::Gemma2 => 2,
            _ => self.sliding_window_pattern.unwrap_or(6),
        };
        let w = self.sliding_window.unwrap_or(4096);
        if w == 0 {
            return Err(Error::bad_model(path, "config.json: `sliding_window` is 0"));
        }
        let local = usize::from(g == Gen::Gemma3);
        let windows = layer_windows(path, self.layer_types.as_deref(), n, w, |i| {
            !(i + 1).is_multiple_of(every)
        })?;
        Ok(windows
            .into_iter()
            .map(|w| (w.map(|w| w as i64), if w.is_some() { local } else { 0 }))
            .collect())
    }

    /// The rotary embeddings: the global one, and Gemma 3's local one.
    fn ropes(&self, path: &Path, g: Gen, max_pos: f64) -> Result<Vec<Rope>> {
        let (one, full, sliding) = match &self.rope_parameters {
            None => (None, None, None),
            Some(GemmaRope::One(p)) => (Some(p.clone()), None, None),
            Some(GemmaRope::PerType(t)) => {
                (None, t.full_attention.clone(), t.sliding_attention.clone())
            }
        };
        if g != Gen::Gemma3 {
            let c = RopeConfig {
                rope_theta: self.rope_theta,
                rope_scaling: self.rope_scaling.clone(),
                rope_parameters: one.or(full),
                ..RopeConfig::default()
            };
            return Ok(vec![c.resolve(path, 10_000.0, max_pos)?]);
        }
        let global = RopeConfig {
            rope_theta: self.rope_theta,
            rope_scaling: self.rope_scaling.clone(),
            rope_parameters: full.or(one),
            ..RopeConfig::default()
        };
        let local = RopeConfig {
            rope_theta: self.rope_local_base_freq,
            rope_parameters: sliding,
            ..RopeConfig::default()
        };
        Ok(vec![
            global.resolve(path, 1_000_000.0, max_pos)?,
            local.resolve(path, 10_000.0, max_pos)?,
        ])
    }

    fn names(g: Gen) -> Names {
        match g {
            Gen::Gemma1 => Names {
                gain_offset: 1.0,
                ..Names::LLAMA
            },
            Gen::Gemma2 | Gen::Gemma3 => Names {
                attn_in: Some("input_layernorm"),
                attn_out: Some("post_attention_layernorm"),
                ffn_in: Some("pre_feedforward_layernorm"),
                ffn_out: Some("post_feedforward_layernorm"),
                qk: (g == Gen::Gemma3).then_some(QkKind::PerHead),
                fused: false,
                gain_offset: 1.0,
            },
        }
    }

    /// The attention scores' scale and soft-cap, and the final logits' cap.
    fn scores(&self, g: Gen) -> (Scores, Option<f64>) {
        let (attn_cap, final_cap) = match g {
            Gen::Gemma1 => (None, None),
            Gen::Gemma2 => (Some(50.0), Some(30.0)),
            Gen::Gemma3 => (None, None),
        };
        let scale = match g {
            Gen::Gemma1 => None,
            _ => Some(self.query_pre_attn_scalar.unwrap_or(256.0).powf(-0.5)),
        };
        let scores = Scores {
            scale,
            softcap: self.attn_logit_softcapping.unwrap_or(attn_cap),
        };
        (scores, self.final_logit_softcapping.unwrap_or(final_cap))
    }
}

/// A Gemma checkpoint's config and tensors as a [`Decoder`].
pub(crate) fn load(json: &serde_json::Value, ws: &mut Weights) -> Result<Decoder> {
    let path = std::path::PathBuf::from("config.json");
    let c: GemmaConfig = parse_config(json, &path)?;
    let g = c.generation(&path)?;
    c.check(&path, g)?;
    let d = c.hidden_size as i64;
    let heads = c.num_attention_heads as i64;
    let kv_heads = c.num_key_value_heads.unwrap_or(c.num_attention_heads) as i64;
    let head_dim = c.head_dim.unwrap_or(256) as i64;
    let (d_ff, vocab) = (c.intermediate_size as i64, c.vocab_size as i64);
    let max_pos = c.max_position_embeddings.unwrap_or(8192);
    let (qd, kvd) = (heads * head_dim, kv_heads * head_dim);
    let dims = Dims {
        d,
        qd,
        kvd,
        head_dim,
        d_ff,
    };
    let names = GemmaConfig::names(g);
    let embed = ws.take("model.embed_tokens.weight", &[vocab, d])?;
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    for (l, &at) in c.layers(&path, g)?.iter().enumerate() {
        layers.push(load_layer(ws, l, at, dims, &names)?);
    }
    let norm = gain(ws.take("model.norm.weight", &[d])?, 1.0);
    let lm_head = ws.head_or_tied(
        "lm_head.weight",
        &[vocab, d],
        c.tie_word_embeddings.unwrap_or(true),
        &embed,
    )?;
    ws.finish(|n| n.ends_with("rotary_emb.inv_freq"))?;
    let (device, kind) = (ws.device(), ws.kind());
    let ropes = c
        .ropes(&path, g, max_pos as f64)?
        .into_iter()
        .map(|r| RopeTables::new(r, head_dim, Layout::Half, max_pos as i64, device, kind))
        .collect();
    let (scores, final_softcap) = c.scores(g);
    // transformers: `torch.tensor(√d)` in f32, then in the weights' dtype.
    let scale = Tensor::from((c.hidden_size as f64).sqrt() as f32);
    Ok(Decoder {
        cfg: ModelConfig {
            arch: Arch::Gemma,
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
        ropes,
        embed_scale: Some(scale.to_kind(kind).to(device)),
        embed,
        layers,
        norm,
        lm_head,
        act: Act::GeluTanh,
        scores,
        final_softcap,
        device,
    })
}
