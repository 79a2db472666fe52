//! Rotary position embeddings as `config.json` states them: the base, and the
//! scalings of long-context checkpoints (`linear`, Llama 3's `llama3`).
//!
//! Hugging Face writes the parameters two ways: the older `rope_theta` beside a
//! `rope_scaling` object, and transformers 5's `rope_parameters` (which holds
//! `rope_theta` too). Both are read; when both are present `rope_scaling` wins,
//! as in transformers. A rope type not implemented here is refused by name:
//! NTK-dynamic, YaRN and LongRoPE change the angles, and running them as the
//! default would give other numbers without a word.

use crate::{Error, Result};
use serde::Deserialize;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Positions whose rotary tables are precomputed at load.
const CACHED_POSITIONS: i64 = 4096;

/// The rotary keys of a config (flattened into each architecture's config).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RopeConfig {
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<RopeParams>,
    pub rope_parameters: Option<RopeParams>,
    /// Phi-3 and others keep it outside the rope parameters; it wins there.
    pub original_max_position_embeddings: Option<f64>,
    pub partial_rotary_factor: Option<f64>,
}

/// One rope parameter object (`rope_scaling`, `rope_parameters`, or one
/// layer type's entry of Gemma 3's `rope_parameters`).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct RopeParams {
    rope_type: Option<String>,
    /// The older name of `rope_type`.
    #[serde(rename = "type")]
    kind: Option<String>,
    rope_theta: Option<f64>,
    factor: Option<f64>,
    low_freq_factor: Option<f64>,
    high_freq_factor: Option<f64>,
    original_max_position_embeddings: Option<f64>,
    partial_rotary_factor: Option<f64>,
}

/// How the inverse frequencies are derived from the default ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scaling {
    Default,
    /// Every frequency divided by `factor` (position interpolation).
    Linear {
        factor: f64,
    },
    /// Llama 3.x: low frequencies divided by `factor`, high ones kept, a smooth
    /// ramp between, by wavelength against the original context.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_context: f64,
    },
}

/// The resolved rotary embedding of one model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rope {
    pub theta: f64,
    /// The fraction of each head's dimensions that rotate.
    pub partial: f64,
    pub scaling: Scaling,
}

impl RopeConfig {
    /// Resolve the keys; `default_theta` is the architecture's default base and
    /// `max_positions` the `max_position_embeddings` that `llama3` falls back on.
    pub fn resolve(&self, path: &Path, default_theta: f64, max_positions: f64) -> Result<Rope> {
        self.resolve_with(path, (default_theta, 1.0), max_positions)
    }

    /// [`RopeConfig::resolve`] with the architecture's default base and
    /// rotating fraction (GPT-NeoX: `rotary_emb_base`, `rotary_pct` 0.25).
    pub fn resolve_with(
        &self,
        path: &Path,
        (default_theta, default_partial): (f64, f64),
        max_positions: f64,
    ) -> Result<Rope> {
        let none = RopeParams::default();
        let p = self
            .rope_scaling
            .as_ref()
            .or(self.rope_parameters.as_ref())
            .unwrap_or(&none);
        let kind = p
            .rope_type
            .as_deref()
            .or(p.kind.as_deref())
            .unwrap_or("default");
        let theta = p.rope_theta.or(self.rope_theta).unwrap_or(default_theta);
        let partial = p
            .partial_rotary_factor
            .or(self.partial_rotary_factor)
            .unwrap_or(default_partial);
        let need = |v: Option<f64>, key: &str| {
            v.ok_or_else(|| {
                Error::bad_model(
                    path,
                    format!("rope type `{kind}` needs `{key}` in its parameters"),
                )
            })
        };
        let scaling = match kind {
            "default" => Scaling::Default,
            "linear" => Scaling::Linear {
                factor: need(p.factor, "factor")?,
            },
            "llama3" => Scaling::Llama3 {
                factor: need(p.factor, "factor")?,
                low_freq_factor: need(p.low_freq_factor, "low_freq_factor")?,
                high_freq_factor: need(p.high_freq_factor, "high_freq_factor")?,
                original_context: self
                    .original_max_position_embeddings
                    .or(p.original_max_position_embeddings)
                    .unwrap_or(max_positions),
            },
            other => {
                return Err(Error::bad_model(
                    path,
                    format!(
                    "config.json: rope type `{other}` (`rope_scaling`/`rope_parameters`) is not \
                         supported; supported are default, linear and llama3"
                ),
                ))
            }
        };
        if !(theta > 0.0 && partial > 0.0 && partial <= 1.0) {
            return Err(Error::bad_model(
                path,
                format!("config.json: rope_theta {theta} or partial_rotary_factor {partial} is out of range"),
            ));
        }
        Ok(Rope {
            theta,
            partial,
            scaling,
        })
    }
}

impl Rope {
    /// The dimensions of a head that rotate (`head_dim × partial`, as
    /// transformers truncates it).
    pub fn dims(&self, head_dim: i64) -> i64 {
        (head_dim as f64 * self.partial) as i64
    }

    /// The inverse frequencies of the rotating dimensions' pairs (in f64;
    /// transformers' f32 ones differ by an ulp).
    pub fn inv_freq(&self, head_dim: i64) -> Vec<f64> {
        let dim = self.dims(head_dim);
        let base: Vec<f64> = (0..dim / 2)
            .map(|i| 1.0 / self.theta.powf((2 * i) as f64 / dim as f64))
            .collect();
        match self.scaling {
            Scaling::Default => base,
            Scaling::Linear { factor } => base.iter().map(|f| f / factor).collect(),
            Scaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_context,
            } => base
                .iter()
                .map(|&f| {
                    llama3(
                        f,
                        factor,
                        low_freq_factor,
                        high_freq_factor,
                        original_context,
                    )
                })
                .collect(),
        }
    }
}

/// How a head's rotating dimensions pair up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Layout {
    /// Dimension `i` with `i + rot/2` (transformers' `rotate_half`: Llama,
    /// GPT-NeoX, Gemma).
    Half,
    /// Dimension `2i` with `2i + 1` (GPT-J's `rotate_every_two`).
    Interleaved,
}

/// A model's rotary `(cos, sin)` tables, `[s, rot]` with `rot` the rotating
/// dimensions of a head, cached for the first positions at load.
pub(crate) struct RopeTables {
    rope: Rope,
    head_dim: i64,
    layout: Layout,
    cos: Tensor,
    sin: Tensor,
}

impl RopeTables {
    /// Tables for `rope` on heads of `head_dim`, in `kind` (computed in f32,
    /// as transformers computes them, then cast).
    pub fn new(
        rope: Rope,
        head_dim: i64,
        layout: Layout,
        max_positions: i64,
        device: Device,
        kind: Kind,
    ) -> Self {
        let mut t = RopeTables {
            rope,
            head_dim,
            layout,
            cos: Tensor::zeros([0], (kind, device)),
            sin: Tensor::zeros([0], (kind, device)),
        };
        (t.cos, t.sin) = t.compute(max_positions.min(CACHED_POSITIONS));
        t
    }

    fn compute(&self, s: i64) -> (Tensor, Tensor) {
        let (device, kind) = (self.cos.device(), self.cos.kind());
        let inv: Vec<f32> = self
            .rope
            .inv_freq(self.head_dim)
            .into_iter()
            .map(|f| f as f32)
            .collect();
        let inv = Tensor::from_slice(&inv).to(device);
        let pos = Tensor::arange(s, (Kind::Float, device));
        let freqs = pos.unsqueeze(1) * inv.unsqueeze(0);
        let emb = match self.layout {
            Layout::Half => Tensor::cat(&[&freqs, &freqs], -1),
            Layout::Interleaved => freqs.repeat_interleave_self_int(2, 1, None),
        };
        (emb.cos().to_kind(kind), emb.sin().to_kind(kind))
    }

    /// `(cos, sin)` for positions `0..s`.
    pub fn first(&self, s: i64) -> (Tensor, Tensor) {
        if s <= self.cos.size()[0] {
            return (self.cos.narrow(0, 0, s), self.sin.narrow(0, 0, s));
        }
        self.compute(s)
    }

    /// Each row's `(cos, sin)` at its own position `pos[r]` (`pos < s`),
    /// `[r, 1, 1, rot]`: what one new position per row needs.
    pub fn at(&self, pos: &Tensor, s: i64) -> (Tensor, Tensor) {
        let (cos, sin) = self.first(s);
        let rot = cos.size()[1];
        let row = |t: &Tensor| t.index_select(0, pos).view([-1, 1, 1, rot]);
        (row(&cos), row(&sin))
    }

    /// `x` (`[b, h, s, dh]`) turned by `(cos, sin)`; with partial rotary the
    /// tables are narrower than the head and only its first dimensions turn.
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
        let (dh, rot) = (x.size()[3], *cos.size().last().expect("rotary table"));
        let turn = |x: &Tensor| x * cos + self.rotate(x) * sin;
        if rot == dh {
            return turn(x);
        }
        Tensor::cat(&[turn(&x.narrow(3, 0, rot)), x.narrow(3, rot, dh - rot)], 3)
    }

    /// The pair partner of each dimension, the first of a pair negated.
    fn rotate(&self, x: &Tensor) -> Tensor {
        let n = x.size()[3];
        match self.layout {
            Layout::Half => {
                let h = n / 2;
                Tensor::cat(&[x.narrow(3, h, h).neg(), x.narrow(3, 0, h)], 3)
            }
            Layout::Interleaved => {
                let pairs = x.unflatten(3, [n / 2, 2]);
                let (even, odd) = (pairs.select(4, 0), pairs.select(4, 1));
                Tensor::stack(&[odd.neg(), even], 4).flatten(3, 4)
            }
        }
    }
}

/// One inverse frequency under Llama 3's scaling.
fn llama3(f: f64, factor: f64, low: f64, high: f64, context: f64) -> f64 {
    let wavelen = 2.0 * std::f64::consts::PI / f;
    let (low_wavelen, high_wavelen) = (context / low, context / high);
    if wavelen < high_wavelen {
        f
    } else if wavelen > low_wavelen {
        f / factor
    } else {
        let smooth = (context / wavelen - low) / (high - low);
        (1.0 - smooth) * f / factor + smooth * f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rope(json: serde_json::Value) -> Result<Rope> {
        let c: RopeConfig = serde_json::from_value(json).unwrap();
        c.resolve(Path::new("config.json"), 10_000.0, 2048.0)
    }

    #[test]
    fn both_spellings_and_the_precedence_of_rope_scaling() {
        let old = rope(serde_json::json!({"rope_theta": 500.0})).unwrap();
        let new = rope(
            serde_json::json!({"rope_parameters": {"rope_type": "default", "rope_theta": 500.0}}),
        )
        .unwrap();
        assert_eq!(old, new);
        let both = rope(serde_json::json!({
            "rope_theta": 500.0,
            "rope_parameters": {"rope_type": "default", "rope_theta": 500.0},
            "rope_scaling": {"type": "linear", "factor": 4.0},
        }))
        .unwrap();
        assert_eq!(both.scaling, Scaling::Linear { factor: 4.0 });
        assert_eq!(both.theta, 500.0);
    }

    #[test]
    fn other_rope_types_are_refused_by_name() {
        for kind in ["dynamic", "yarn", "longrope", "su"] {
            let e = rope(serde_json::json!({"rope_scaling": {"rope_type": kind, "factor": 2.0}}))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("`{kind}`")), "{e}");
        }
        let e = rope(serde_json::json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("low_freq_factor"), "{e}");
    }

    #[test]
    fn llama3_keeps_high_frequencies_and_divides_low_ones() {
        let r = rope(serde_json::json!({"rope_scaling": {
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64
        }}))
        .unwrap();
        let plain = Rope {
            scaling: Scaling::Default,
            ..r
        };
        let (f, p) = (r.inv_freq(16), plain.inv_freq(16));
        assert_eq!(f[0], p[0]); // wavelength 2π < 16: kept
        assert!((f[7] - p[7] / 8.0).abs() < 1e-12); // longest wavelength: divided
    }
}
