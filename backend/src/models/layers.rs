//! The pieces every architecture is built of: attention masks, heads, attention
//! over all positions or at given ones against cached keys and values, and the
//! linear and normalisation layers.

use super::{Batch, Weights};
use crate::Result;
use tch::{Device, Kind, Tensor};

/// Bidirectional (`causal = false`) or causal attention mask, `[b, 1, s, s]`
/// bool (true = may attend), from the `[b, s]` padding mask.
pub(crate) fn attention_mask(batch: &Batch, causal: bool) -> Tensor {
    let s = batch.seq_len as i64;
    let keys = batch.attention_mask.view([batch.len as i64, 1, 1, s]);
    if causal {
        let tri = Tensor::ones([s, s], (Kind::Bool, batch.ids.device())).tril(0);
        keys.logical_and(&tri.view([1, 1, s, s]))
    } else {
        keys.expand([batch.len as i64, 1, s, s], false)
    }
}

/// `mask` (`[b, 1, s, s]`, query × key) narrowed to keys less than `window`
/// positions before the query (`j > i − window`, as transformers' sliding
/// window).
pub(crate) fn within_window(mask: &Tensor, window: i64) -> Tensor {
    let s = mask.size()[3];
    let i = Tensor::arange(s, (Kind::Int64, mask.device()));
    let near = i
        .view([1, s])
        .gt_tensor(&(i.view([s, 1]) - window))
        .view([1, 1, s, s]);
    mask.logical_and(&near)
}

/// `[b, s, n*dh] -> [b, n, s, dh]`.
pub(crate) fn split_heads(x: &Tensor, n: i64) -> Tensor {
    let (b, s, d) = x.size3().expect("[b, s, d] projection");
    x.view([b, s, n, d / n]).transpose(1, 2)
}

/// Scaled dot-product attention on split heads; `k` and `v` may have fewer heads
/// than `q` (grouped-query attention). Returns `[b, s, heads*dh]`.
pub(crate) fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Tensor {
    attend_scaled(q, k, v, mask, None)
}

/// [`attend`] with the scores multiplied by `scale` instead of `1/√dh`.
pub(crate) fn attend_scaled(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: Option<f64>,
) -> Tensor {
    let (k, v) = repeat_kv(q, k, v);
    merge_heads(&Tensor::scaled_dot_product_attention(
        q, &k, &v, mask, 0.0, false, scale, false,
    ))
}

/// [`attend_scaled`] with the scores soft-capped before the mask, `cap ·
/// tanh(score / cap)` (Gemma 2), and the softmax in f32, as transformers'
/// eager attention: the fused kernel has no cap.
pub(crate) fn attend_capped(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    scale: f64,
    cap: f64,
) -> Tensor {
    let (k, v) = repeat_kv(q, k, v);
    let scores = q.matmul(&k.transpose(2, 3)) * scale;
    let scores = (scores / cap).tanh() * cap;
    // The dtype's lowest value rather than −∞, as transformers' additive
    // mask: a padding query whose window holds no real key then averages
    // finite values instead of making NaNs that `0 · NaN` would carry into
    // the real rows.
    let lowest = match q.kind() {
        Kind::BFloat16 => -3.389_531_4e38,
        Kind::Half => -65504.0,
        _ => f64::from(f32::MIN),
    };
    let scores = match mask {
        Some(m) => scores.masked_fill(&m.logical_not(), lowest),
        None => scores,
    };
    let p = scores.softmax(-1, Kind::Float).to_kind(q.kind());
    merge_heads(&p.matmul(&v))
}

/// Keys and values with as many heads as the queries (grouped-query
/// attention repeats each of them).
fn repeat_kv(q: &Tensor, k: &Tensor, v: &Tensor) -> (Tensor, Tensor) {
    let (heads, kv_heads) = (q.size()[1], k.size()[1]);
    if kv_heads == heads {
        return (k.shallow_clone(), v.shallow_clone());
    }
    let r = heads / kv_heads;
    (
        k.repeat_interleave_self_int(r, 1, None),
        v.repeat_interleave_self_int(r, 1, None),
    )
}

/// `[b, heads, s, dh] -> [b, s, heads*dh]`.
fn merge_heads(x: &Tensor) -> Tensor {
    let (b, heads, s, dh) = x.size4().expect("[b, h, s, dh] attention output");
    x.transpose(1, 2).contiguous().view([b, s, heads * dh])
}

/// Where each row's one new position sits, for [`NeuronModel::attention_at`].
pub struct At {
    /// `[r]` int64: the position of each row's new entry.
    pub pos: Tensor,
    /// `[r, 1, 1, s]` bool: the keys each row may see (positions `0..=pos`);
    /// `None` when every row's new entry is the last of the `s` positions.
    pub keys: Option<Tensor>,
}

impl At {
    /// The keys each row may see within a sliding `window` (`pos − window <
    /// j ≤ pos`), `[r, 1, 1, s]`.
    pub fn keys_within(&self, window: i64, s: i64) -> Tensor {
        let j = Tensor::arange(s, (Kind::Int64, self.pos.device())).view([1, s]);
        let pos = self.pos.view([-1, 1]);
        j.le_tensor(&pos)
            .logical_and(&j.gt_tensor(&(&pos - window)))
            .view([-1, 1, 1, s])
    }

    /// Rows at positions `pos` among `s` past positions (on `device`).
    pub fn new(pos: &[i64], s: i64, device: Device) -> At {
        let t = Tensor::from_slice(pos).to(device);
        let keys = (!pos.iter().all(|&p| p == s - 1)).then(|| {
            Tensor::arange(s, (Kind::Int64, device))
                .view([1, s])
                .le_tensor(&t.view([-1, 1]))
                .view([-1, 1, 1, s])
        });
        At { pos: t, keys }
    }
}

/// `x[r, pos[r]]` of every row of `x` (`[b, s, d]`), as `[b, 1, d]`.
pub(crate) fn at_positions(x: &Tensor, pos: &Tensor) -> Tensor {
    let rows = Tensor::arange(x.size()[0], (Kind::Int64, x.device()));
    x.index(&[Some(&rows), Some(pos)]).unsqueeze(1)
}

/// Row-aligned keys/values `past` (`[r, heads, s, dh]`) with each row's entry at
/// `pos` replaced by its `new` one (`[r, heads, 1, dh]`); differentiable in `new`.
pub(crate) fn with_new(past: &Tensor, new: &Tensor, pos: &Tensor) -> Tensor {
    let s = past.size()[2];
    let here = Tensor::arange(s, (Kind::Int64, past.device()))
        .view([1, 1, s, 1])
        .eq_tensor(&pos.view([-1, 1, 1, 1]));
    new.where_self(&here, past)
}

/// `y = x·Wᵀ + b` with a PyTorch `Linear` weight `[out, in]` and optional bias.
pub(crate) struct Linear {
    pub w: Tensor,
    pub b: Option<Tensor>,
}

impl Linear {
    pub fn load(ws: &mut Weights, name: &str, out: i64, inp: i64) -> Result<Self> {
        Ok(Linear {
            w: ws.take(&format!("{name}.weight"), &[out, inp])?,
            b: ws.take_opt(&format!("{name}.bias"), &[out])?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.w.to_kind(x.kind()), self.b.as_ref())
    }
}

/// Rows `ids` of the embedding table `table`, in `kind`: a table held in
/// bf16 or f16 gives activations in the compute dtype
/// ([`super::precision`]).
pub(crate) fn lookup(table: &Tensor, ids: &Tensor, kind: Kind) -> Tensor {
    Tensor::embedding(table, ids, -1, false, false).to_kind(kind)
}

/// `y = x·Wᵀ` with `w` (a head, held in any dtype) in `x`'s dtype. A head
/// held in another dtype is converted a block of rows at a time: a whole f32
/// copy of a 128k-token vocabulary's head is 1–2 GB.
pub(crate) fn project(x: &Tensor, w: &Tensor) -> Tensor {
    const ROWS: i64 = 16_384;
    if w.kind() == x.kind() {
        return x.linear::<Tensor>(w, None);
    }
    let n = w.size()[0];
    let parts: Vec<Tensor> = (0..n)
        .step_by(ROWS as usize)
        .map(|s| x.linear::<Tensor>(&w.narrow(0, s, ROWS.min(n - s)).to_kind(x.kind()), None))
        .collect();
    Tensor::cat(&parts, -1)
}

/// LayerNorm; old checkpoints name its parameters `gamma`/`beta`.
pub(crate) struct LayerNorm {
    w: Tensor,
    b: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn load(ws: &mut Weights, name: &str, d: i64, eps: f64) -> Result<Self> {
        let w = ws.take_any(&[format!("{name}.weight"), format!("{name}.gamma")], &[d])?;
        let b = ws.take_any(&[format!("{name}.bias"), format!("{name}.beta")], &[d])?;
        Ok(LayerNorm { w, b, eps })
    }

    /// The compute dtype (its parameters are held in it).
    pub fn kind(&self) -> Kind {
        self.w.kind()
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm(
            [self.w.size()[0]],
            Some(&self.w),
            Some(&self.b),
            self.eps,
            true,
        )
    }
}
