//! The pre-norm RMSNorm decoder that the Llama family and Gemma share: one
//! runtime, read from each family's own config and tensor names
//! ([`super::llama`], [`super::gemma`]).
//!
//! A layer is `h = x + N₂(o(attend(rope(q(N₁ x)), rope(k(N₁ x)), v(N₁ x))))`,
//! then `x' = h + N₄(down(act(gate(N₃ h)) · up(N₃ h)))`, where each `Nᵢ` is an
//! RMSNorm or nothing: Llama has `N₁`, `N₃`; OLMo 2 `N₂`, `N₄`; Gemma 2/3 all
//! four. Neurons: `act(gate(·)) · up(·)`, the input of `down_proj`; value
//! slots: columns of `down_proj.weight`.
//!
//! What differs by family is data, not code: the activation (silu, Gemma's
//! gelu-tanh), q/k norms (Qwen3 per head, OLMo 2 over the projection), the
//! attention scale and soft-cap (Gemma 2), each layer's sliding window and
//! rotary table (Gemma 3's local and global bases), the embedding scale
//! (Gemma's `√d`) and the final logit soft-cap.

use super::layers::{lookup, project};
use super::rope::RopeTables;
use super::{
    attend_capped, attend_scaled, attention_mask, split_heads, with_new, within_window, At, Batch,
    Ctx, Kv, Linear, ModelConfig, NeuronModel,
};
use tch::{Device, Tensor};

/// One decoder layer's weights and attention shape.
pub(crate) struct Layer {
    pub norms: Norms,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub qk_norm: Option<QkNorm>,
    /// The sliding window of this layer's attention, in positions.
    pub window: Option<i64>,
    /// Which of the model's rotary tables this layer turns its heads by.
    pub rope: usize,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

/// Where a layer normalises (RMSNorm weights, `[d]`): Llama the inputs of its
/// attention and FFN (`input_layernorm`, `post_attention_layernorm`), OLMo 2
/// their outputs (`post_attention_layernorm`, `post_feedforward_layernorm`),
/// Gemma 2/3 both, each output before the residual is added.
pub(crate) struct Norms {
    pub attn_in: Option<Tensor>,
    pub attn_out: Option<Tensor>,
    pub ffn_in: Option<Tensor>,
    pub ffn_out: Option<Tensor>,
}

/// RMSNorm of the queries and keys, before the rotary embedding.
pub(crate) enum QkNorm {
    /// Qwen3, Gemma 3: over each head (`[head_dim]` weights).
    PerHead(Tensor, Tensor),
    /// OLMo 2: over the whole projection (`[heads × head_dim]`, `[kv_heads ×
    /// head_dim]`), before it is cut into heads.
    Whole(Tensor, Tensor),
}

/// The FFN's activation of `gate(h)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Act {
    Silu,
    /// GELU with the tanh approximation (`gelu_pytorch_tanh`: Gemma).
    GeluTanh,
}

/// How attention scores are formed from `q·k`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scores {
    /// The multiplier of `q·k`; `None` is `1/√head_dim`.
    pub scale: Option<f64>,
    /// `cap · tanh(s / cap)` before the mask (Gemma 2's `attn_logit_softcapping`).
    pub softcap: Option<f64>,
}

pub(crate) struct Decoder {
    pub cfg: ModelConfig,
    pub heads: i64,
    pub kv_heads: i64,
    pub eps: f64,
    pub ropes: Vec<RopeTables>,
    pub embed: Tensor,
    /// A 0-d multiplier of the token embeddings, in their dtype (Gemma: `√d`).
    pub embed_scale: Option<Tensor>,
    pub layers: Vec<Layer>,
    pub norm: Tensor,
    pub lm_head: Tensor,
    pub act: Act,
    pub scores: Scores,
    /// `cap · tanh(logit / cap)` of the output logits (Gemma 2).
    pub final_softcap: Option<f64>,
    pub device: Device,
}

impl Decoder {
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
        let rope = &self.ropes[ly.rope];
        (rope.apply(&q, cos, sin), rope.apply(&k, cos, sin), v)
    }

    /// RMSNorm over the last dimension with weight `w`; `x` itself without one.
    fn rms(&self, x: &Tensor, w: Option<&Tensor>) -> Tensor {
        match w {
            Some(w) => x.rms_norm([w.size()[0]], Some(w), self.eps),
            None => x.shallow_clone(),
        }
    }

    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Tensor {
        match self.scores.softcap {
            None => attend_scaled(q, k, v, mask, self.scores.scale),
            Some(cap) => {
                let dh = q.size()[3] as f64;
                let scale = self.scores.scale.unwrap_or(dh.powf(-0.5));
                attend_capped(q, k, v, mask, scale, cap)
            }
        }
    }

    /// The attention output `o` joining the residual `x`.
    fn attn_residual(&self, layer: usize, o: &Tensor, x: &Tensor) -> Tensor {
        let ly = &self.layers[layer];
        self.rms(&ly.o.forward(o), ly.norms.attn_out.as_ref()) + x
    }

    /// The sliding window shared by the layers that have one (every family's
    /// config gives one size).
    fn window(&self) -> Option<i64> {
        self.layers.iter().find_map(|l| l.window)
    }
}

impl NeuronModel for Decoder {
    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn device(&self) -> Device {
        self.device
    }

    fn embed(&self, batch: &Batch) -> Tensor {
        let x = lookup(&self.embed, &batch.ids, self.norm.kind());
        match &self.embed_scale {
            Some(s) => x * s,
            None => x,
        }
    }

    fn context(&self, batch: &Batch) -> Ctx {
        let mask = attention_mask(batch, true);
        let s = batch.seq_len as i64;
        Ctx {
            sliding: self.window().map(|w| within_window(&mask, w)),
            mask,
            rope: self.ropes.iter().map(|r| r.first(s)).collect(),
        }
    }

    fn attention(&self, layer: usize, x: &Tensor, ctx: &Ctx) -> (Tensor, Kv) {
        let ly = &self.layers[layer];
        let (cos, sin) = &ctx.rope[ly.rope];
        let (q, k, v) = self.qkv(layer, x, cos, sin);
        let mask = match (ly.window, &ctx.sliding) {
            (Some(_), Some(sliding)) => sliding,
            _ => &ctx.mask,
        };
        let h = self.attn_residual(layer, &self.attend(&q, &k, &v, Some(mask)), x);
        (h, Kv { k, v, q: None })
    }

    fn attention_at(&self, layer: usize, x: &Tensor, past: &Kv, at: &At) -> Tensor {
        let ly = &self.layers[layer];
        let (cos, sin) = self.ropes[ly.rope].at(&at.pos, past.k.size()[2]);
        let (q, k, v) = self.qkv(layer, x, &cos, &sin);
        let (k, v) = (
            with_new(&past.k, &k, &at.pos),
            with_new(&past.v, &v, &at.pos),
        );
        let within = ly.window.map(|w| at.keys_within(w, k.size()[2]));
        let keys = within.as_ref().or(at.keys.as_ref());
        self.attn_residual(layer, &self.attend(&q, &k, &v, keys), x)
    }

    fn ffn_act(&self, layer: usize, h: &Tensor) -> Tensor {
        let ly = &self.layers[layer];
        let h = self.rms(h, ly.norms.ffn_in.as_ref());
        let gate = ly.gate.forward(&h);
        let gate = match self.act {
            Act::Silu => gate.silu(),
            Act::GeluTanh => gate.gelu("tanh"),
        };
        gate * ly.up.forward(&h)
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
        let logits = x.rms_norm([self.cfg.d_model as i64], Some(&self.norm), self.eps);
        let logits = project(&logits, &self.lm_head);
        match self.final_softcap {
            Some(cap) => (logits / cap).tanh() * cap,
            None => logits,
        }
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

/// The widths a layer's tensors are checked against.
#[derive(Clone, Copy)]
pub(crate) struct Dims {
    pub d: i64,
    pub qd: i64,
    pub kvd: i64,
    pub head_dim: i64,
    pub d_ff: i64,
}

/// Which q/k norm a family has.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum QkKind {
    PerHead,
    Whole,
}

/// A family's names for a layer's norms (`None`: it has none there), its q/k
/// norm, whether it fuses `qkv_proj` and `gate_up_proj` (Phi-3), and what its
/// RMSNorm multiplies by: `offset + w` (Gemma stores `w` around 0 and
/// multiplies by `1 + w`).
#[derive(Clone, Copy)]
pub(crate) struct Names {
    pub attn_in: Option<&'static str>,
    pub attn_out: Option<&'static str>,
    pub ffn_in: Option<&'static str>,
    pub ffn_out: Option<&'static str>,
    pub qk: Option<QkKind>,
    pub fused: bool,
    pub gain_offset: f64,
}

impl Names {
    pub const LLAMA: Names = Names {
        attn_in: Some("input_layernorm"),
        attn_out: None,
        ffn_in: Some("post_attention_layernorm"),
        ffn_out: None,
        qk: None,
        fused: false,
        gain_offset: 0.0,
    };
}

/// An RMSNorm gain as the runtime multiplies by it: `offset + w`, formed in
/// f32 before the weights' dtype.
pub(crate) fn gain(w: Tensor, offset: f64) -> Tensor {
    if offset == 0.0 {
        return w;
    }
    (w.to_kind(tch::Kind::Float) + offset).to_kind(w.kind())
}

/// Layer `l`'s tensors under `model.layers.{l}`, named as `names` says.
pub(crate) fn load_layer(
    ws: &mut super::Weights,
    l: usize,
    (window, rope): (Option<i64>, usize),
    dims: Dims,
    names: &Names,
) -> crate::Result<Layer> {
    let Dims {
        d,
        qd,
        kvd,
        head_dim,
        d_ff,
    } = dims;
    let n = format!("model.layers.{l}");
    let off = names.gain_offset;
    let norm = |ws: &mut super::Weights, name: Option<&str>, width: i64| {
        name.map(|name| {
            ws.take(&format!("{n}.{name}.weight"), &[width])
                .map(|w| gain(w, off))
        })
        .transpose()
    };
    let qk_norm = match names.qk {
        Some(kind) => {
            let (qw, kw) = match kind {
                QkKind::PerHead => (head_dim, head_dim),
                QkKind::Whole => (qd, kvd),
            };
            let q = norm(ws, Some("self_attn.q_norm"), qw)?.expect("named");
            let k = norm(ws, Some("self_attn.k_norm"), kw)?.expect("named");
            Some(match kind {
                QkKind::PerHead => QkNorm::PerHead(q, k),
                QkKind::Whole => QkNorm::Whole(q, k),
            })
        }
        None => None,
    };
    let norms = Norms {
        attn_in: norm(ws, names.attn_in, d)?,
        attn_out: norm(ws, names.attn_out, d)?,
        ffn_in: norm(ws, names.ffn_in, d)?,
        ffn_out: norm(ws, names.ffn_out, d)?,
    };
    let [q, k, v] = if names.fused {
        split(ws, &format!("{n}.self_attn.qkv_proj"), [qd, kvd, kvd], d)?
    } else {
        [
            Linear::load(ws, &format!("{n}.self_attn.q_proj"), qd, d)?,
            Linear::load(ws, &format!("{n}.self_attn.k_proj"), kvd, d)?,
            Linear::load(ws, &format!("{n}.self_attn.v_proj"), kvd, d)?,
        ]
    };
    let [gate, up] = if names.fused {
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
        rope,
        gate,
        up,
        down: Linear::load(ws, &format!("{n}.mlp.down_proj"), d, d_ff)?,
    })
}

/// A fused projection (Phi-3's `qkv_proj`, `gate_up_proj`) cut by rows into
/// the projections it stacks, `outs` rows each.
fn split<const N: usize>(
    ws: &mut super::Weights,
    name: &str,
    outs: [i64; N],
    inp: i64,
) -> crate::Result<[Linear; N]> {
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

/// Each layer's sliding window as `layer_types` names it (`window` for
/// `sliding_attention`, none for `full_attention`), or, when the config has
/// no `layer_types`, as the family's default `sliding(layer)` says. Another
/// type is refused by name, and so is a list of the wrong length.
pub(crate) fn layer_windows(
    path: &std::path::Path,
    types: Option<&[String]>,
    n: usize,
    window: usize,
    sliding: impl Fn(usize) -> bool,
) -> crate::Result<Vec<Option<usize>>> {
    let bad = |m: String| crate::Error::bad_model(path, format!("config.json: {m}"));
    let Some(types) = types else {
        return Ok((0..n).map(|i| sliding(i).then_some(window)).collect());
    };
    if types.len() != n {
        return Err(bad(format!(
            "`layer_types` names {} layers, the model has {n}",
            types.len()
        )));
    }
    types
        .iter()
        .map(|t| match t.as_str() {
            "full_attention" => Ok(None),
            "sliding_attention" => Ok(Some(window)),
            other => Err(bad(format!(
                "layer type `{other}` in `layer_types` is not supported"
            ))),
        })
        .collect()
}
