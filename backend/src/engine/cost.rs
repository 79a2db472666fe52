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

use super::attribution::{Mode, Options, Riemann};
use crate::models::ModelConfig;

/// FLOPs of one token through one layer, attending to `ctx` positions.
pub fn layer_token(cfg: &ModelConfig, ctx: usize) -> f64 {
    projections(cfg) + scores(cfg, ctx) + ffn(cfg)
}

/// The attention's projections of one token (queries, keys, values, output).
fn projections(cfg: &ModelConfig) -> f64 {
    let (d, q, kv) = (cfg.d_model as f64, cfg.q_dim as f64, cfg.kv_dim as f64);
    2.0 * d * (2.0 * q + 2.0 * kv)
}

/// One query's scores and mix over `ctx` positions.
fn scores(cfg: &ModelConfig, ctx: usize) -> f64 {
    4.0 * cfg.q_dim as f64 * ctx as f64
}

/// One token through the FFN.
fn ffn(cfg: &ModelConfig) -> f64 {
    let (d, ff) = (cfg.d_model as f64, cfg.d_ff as f64);
    2.0 * if cfg.arch.gated_ffn() { 3.0 } else { 2.0 } * d * ff
}

/// FLOPs of the top layer of a pass of `seq` tokens of which only the blank
/// is read ([`crate::models::NeuronModel::attention_one`]): BERT computes
/// keys and values everywhere and the rest at the blank; the causal models
/// run the attention everywhere and the FFN at the blank.
pub fn top_layer(cfg: &ModelConfig, seq: usize) -> f64 {
    let s = seq as f64;
    let (d, kv) = (cfg.d_model as f64, cfg.kv_dim as f64);
    let attention = if cfg.arch.is_masked() {
        s * 4.0 * d * kv + (projections(cfg) - 4.0 * d * kv) + scores(cfg, seq)
    } else {
        s * (projections(cfg) + scores(cfg, seq))
    };
    attention + ffn(cfg)
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
        + if cfg.arch.head_transform() {
            2.0 * d * d
        } else {
            0.0
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

/// FLOPs of the layer after a change at the blank alone, on `seq` tokens
/// ([`crate::models::NeuronModel::attention_changed`]): BERT takes the other
/// positions' queries, keys and values from the trace; the causal models
/// compute the whole layer.
pub fn changed_layer(cfg: &ModelConfig, seq: usize) -> f64 {
    let full = seq as f64 * layer_token(cfg, seq);
    if cfg.arch.is_masked() {
        let (d, q, kv) = (cfg.d_model as f64, cfg.q_dim as f64, cfg.kv_dim as f64);
        full - (seq as f64 - 1.0) * 2.0 * d * (q + 2.0 * kv)
    } else {
        full
    }
}

/// FLOPs of attributing one prompt of `seq` tokens as `opts` says (its mode,
/// steps and Riemann sum): the traced pass, then for every layer `l` the
/// scaled copies of [`Options::scaled_steps`], forward and backward. `naive`
/// runs each copy forward through every layer and position, and back from the
/// head to layer `l`'s neurons through every position (all `m + 1` steps).
/// `resume` enters at layer `l`'s FFN output at the blank alone (`a · W_out`;
/// the other positions are the trace's), runs the later layers on every
/// position (the first of them with the trace's projections but at the
/// blank: [`changed_layer`]) but the top one at the blank only
/// ([`top_layer`]), and goes back the same way; `fast` (causal models) runs every later layer at the last
/// position alone. Both resuming modes take the path's ends from the trace:
/// α = 0 forward only (the right sum), α = 1 from one pass entering at layer
/// 0 with its backward.
pub fn attribution(cfg: &ModelConfig, opts: &Options, seq: usize) -> f64 {
    let layers = cfg.n_layers;
    let causal = !cfg.arch.is_masked();
    let full = seq as f64 * layer_token(cfg, seq);
    // A resumed copy entering at layer `l`, one way.
    let pass = |l: usize| {
        let later = (layers - l - 1) as f64;
        ffn_out_token(cfg)
            + match opts.mode {
                Mode::Fast if causal => later * layer_token(cfg, seq),
                _ if later >= 2.0 => {
                    changed_layer(cfg, seq) + (later - 2.0) * full + top_layer(cfg, seq)
                }
                _ if later == 1.0 => top_layer(cfg, seq),
                _ => 0.0,
            }
    };
    let rows = opts.scaled_steps().len() as f64;
    let copies: f64 = (0..layers)
        .map(|l| match opts.mode {
            Mode::Naive => {
                let forward = layers as f64 * full;
                let backward = seq as f64 * ffn_out_token(cfg) + (layers - l - 1) as f64 * full;
                rows * (forward + backward + 2.0 * head(cfg))
            }
            _ => rows * (2.0 * pass(l) + 2.0 * head(cfg)),
        })
        .sum();
    let ends = match (opts.mode, opts.riemann) {
        (Mode::Naive, _) => 0.0,
        (_, Riemann::Left) => 0.0,
        (_, Riemann::Right) => {
            let at_zero: f64 = (0..layers).map(|l| pass(l) + head(cfg)).sum();
            at_zero + 2.0 * (pass(0) + head(cfg))
        }
    };
    forward(cfg, seq) + copies + ends
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Arch;

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
        // every copy, resume about half of them, and less of the top layer
        // and of the entering one.
        let opts = |mode| Options {
            mode,
            ..Options::default()
        };
        let naive = attribution(&c, &opts(Mode::Naive), 12);
        let resume = attribution(&c, &opts(Mode::Resume), 12);
        assert!(
            resume < 0.6 * naive && resume > 0.4 * naive,
            "{resume:e} vs {naive:e}"
        );
        // The top layer at the blank alone: keys and values of every position,
        // the rest of one.
        assert!(top_layer(&c, 12) < 0.3 * 12.0 * layer_token(&c, 12));
        assert!(top_layer(&c, 12) > layer_token(&c, 12));
        // A causal model's fast mode recomputes one position of `seq`.
        let g = cfg(Arch::Gpt2);
        assert!(
            attribution(&g, &opts(Mode::Fast), 12) < attribution(&g, &opts(Mode::Resume), 12) / 3.0
        );
    }
}
