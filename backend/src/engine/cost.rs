//! What attribution costs, counted from the shapes, and what the machine can do:
//! `kn bench` divides one by the other and by the time taken, so "close to the
//! limit" is a number on every machine.
//!
//! The count is of the multiply-adds of the matrix products (2 FLOPs each), which
//! are nearly all of the work: per token and layer, the attention's projections
//! (`2·d·(2·q_dim + 2·kv_dim)`), its scores and mix over `ctx` positions
//! (`4·q_dim·ctx`), and the FFN (`2·d·d_ff`, ×1.5 for Llama's gated up/gate
//! pair); the head at the blank (`2·d·vocab`, plus BERT's `2·d²` transform). A
//! backward pass that computes gradients for activations only (no weight
//! gradients) costs one more forward pass's products.

use super::attribution::Mode;
use crate::models::{Arch, ModelConfig};

/// FLOPs of one token through one layer, attending to `ctx` positions.
pub fn layer_token(cfg: &ModelConfig, ctx: usize) -> f64 {
    let (d, ff) = (cfg.d_model as f64, cfg.d_ff as f64);
    let (q, kv) = (cfg.q_dim as f64, cfg.kv_dim as f64);
    let ffn = match cfg.arch {
        Arch::Llama => 3.0 * d * ff,
        _ => 2.0 * d * ff,
    };
    2.0 * (d * (2.0 * q + 2.0 * kv) + ffn) + 4.0 * q * ctx as f64
}

/// FLOPs of one token through a layer's FFN output alone (`a · W_out`): where a
/// scaled copy enters the resuming modes.
pub fn ffn_out_token(cfg: &ModelConfig) -> f64 {
    2.0 * cfg.d_model as f64 * cfg.d_ff as f64
}

/// FLOPs of the LM head at one position.
pub fn head(cfg: &ModelConfig) -> f64 {
    let (d, v) = (cfg.d_model as f64, cfg.vocab_size as f64);
    2.0 * d * v
        + match cfg.arch {
            Arch::Bert => 2.0 * d * d,
            _ => 0.0,
        }
}

/// FLOPs of one forward pass over a prompt of `seq` tokens (the head at the
/// blank only).
pub fn forward(cfg: &ModelConfig, seq: usize) -> f64 {
    cfg.n_layers as f64 * seq as f64 * layer_token(cfg, seq) + head(cfg)
}

/// FLOPs of the log-probability increase of every neuron of one prompt: a
/// forward pass, then per layer and neuron its value vector through the FFN
/// output (as a one-hot activation row) and the head.
pub fn logprob_increase(cfg: &ModelConfig, seq: usize) -> f64 {
    let rows = (cfg.n_layers * cfg.d_ff) as f64;
    forward(cfg, seq) + rows * (ffn_out_token(cfg) + head(cfg))
}

/// FLOPs of attributing one prompt of `seq` tokens with `steps` Riemann steps
/// in `mode`: the traced pass, then for every layer `l` its `steps + 1`
/// scaled copies, forward and backward. `naive` runs each copy forward through
/// every layer and position; `resume` enters at layer `l`'s FFN output (only
/// `a · W_out` there) and runs the later layers on every position; `fast`
/// (causal models) does the same for the last position only. The backward pass
/// goes from the head back to layer `l`'s activation, whatever the mode.
pub fn attribution(cfg: &ModelConfig, mode: Mode, seq: usize, steps: usize) -> f64 {
    let layers = cfg.n_layers;
    let causal = !cfg.arch.is_masked();
    let positions = match mode {
        Mode::Fast if causal => 1.0,
        _ => seq as f64,
    };
    let full = positions * layer_token(cfg, seq);
    let enter = positions * ffn_out_token(cfg);
    let trace = forward(cfg, seq);
    let rows = (steps + 1) as f64;
    let copies: f64 = (0..layers)
        .map(|l| {
            let later = (layers - l - 1) as f64 * full;
            let forward = match mode {
                Mode::Naive => layers as f64 * seq as f64 * layer_token(cfg, seq),
                _ => enter + later,
            };
            let backward = enter + later;
            rows * (forward + backward + 2.0 * head(cfg))
        })
        .sum();
    trace + copies
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(arch: Arch) -> ModelConfig {
        ModelConfig {
            arch,
            n_layers: 12,
            d_model: 768,
            d_ff: 3072,
            vocab_size: 28996,
            max_positions: 512,
            q_dim: 768,
            kv_dim: 768,
        }
    }

    #[test]
    fn counts_follow_the_shapes() {
        let c = cfg(Arch::Bert);
        // One token, one layer: projections 4·d², FFN 2·d·ff (×2 FLOPs), scores 4·d·ctx.
        assert_eq!(
            layer_token(&c, 10),
            2.0 * (4.0 * 768.0 * 768.0 + 2.0 * 768.0 * 3072.0) + 4.0 * 768.0 * 10.0
        );
        // bert-base, 12 tokens, m = 20: naive runs every layer forward for
        // every copy, resume about half of them; both go back the same way.
        let naive = attribution(&c, Mode::Naive, 12, 20);
        let resume = attribution(&c, Mode::Resume, 12, 20);
        assert!(
            resume < 0.8 * naive && resume > 0.5 * naive,
            "{resume:e} vs {naive:e}"
        );
        // A causal model's fast mode recomputes one position of `seq`.
        let g = cfg(Arch::Gpt2);
        assert!(attribution(&g, Mode::Fast, 12, 20) < attribution(&g, Mode::Resume, 12, 20) / 3.0);
    }
}
