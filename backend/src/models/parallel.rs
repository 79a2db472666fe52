//! EleutherAI's LayerNorm blocks with rotary attention, whose FFN may read the
//! block's *input* rather than the attention's output: one runtime for
//! GPT-NeoX (Pythia; [`super::gpt_neox`]) and GPT-J ([`super::gptj`]).
//!
//! A parallel block is `x' = x + attn(LN₁ x) + fc_out(act(fc_in(LN₂ x)))`
//! (GPT-J: `LN₂ = LN₁`); GPT-NeoX's serial one (`use_parallel_residual:
//! false`) is `h = x + attn(LN₁ x)`, `x' = h + fc_out(act(fc_in(LN₂ h)))`.
//! Neurons: `act(fc_in(·))`, the input of `fc_out` (`dense_4h_to_h`); value
//! slots: columns of its weight.
//!
//! The engine sees a layer as `h = attention(x)`, `a = ffn_act(h)`, `x' =
//! ffn_out(h, a)`. A parallel block's FFN needs `x` too, so its `h` carries
//! both: `[x + attn | x]`, `2·d` wide. Nothing outside this file reads `h`'s
//! width; it only hands `h` back.

use super::layers::lookup;
use super::rope::RopeTables;
use super::{
    attend, attention_mask, split_heads, with_new, At, Batch, Ctx, Kv, LayerNorm, Linear,
    ModelConfig, NeuronModel,
};
use tch::{Device, Tensor};

pub(crate) struct Block {
    pub ln_attn: LayerNorm,
    /// The FFN's own LayerNorm; `None`: it reads `ln_attn`'s output (GPT-J).
    pub ln_ffn: Option<LayerNorm>,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub fc_in: Linear,
    pub fc_out: Linear,
}

/// The FFN's activation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Gelu {
    /// `gelu`: the exact erf form (Pythia).
    Exact,
    /// `gelu_new`: the tanh approximation (GPT-J).
    Tanh,
}

pub(crate) struct Parallel {
    pub cfg: ModelConfig,
    pub heads: i64,
    pub rope: RopeTables,
    pub embed: Tensor,
    pub blocks: Vec<Block>,
    pub ln_f: LayerNorm,
    /// `[vocab, d]`, with GPT-J's bias.
    pub lm_head: Linear,
    pub act: Gelu,
    /// The FFN reads the block's input (`h = [x + attn | x]`).
    pub parallel: bool,
    pub device: Device,
}

impl Parallel {
    fn qkv(
        &self,
        layer: usize,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
    ) -> (Tensor, Tensor, Tensor) {
        let blk = &self.blocks[layer];
        let n = blk.ln_attn.forward(x);
        let q = split_heads(&blk.q.forward(&n), self.heads);
        let k = split_heads(&blk.k.forward(&n), self.heads);
        let v = split_heads(&blk.v.forward(&n), self.heads);
        (
            self.rope.apply(&q, cos, sin),
            self.rope.apply(&k, cos, sin),
            v,
        )
    }

    /// The post-attention state the engine carries from `x` and the attention
    /// output `o` (`[.., heads·dh]`).
    fn state(&self, layer: usize, o: &Tensor, x: &Tensor) -> Tensor {
        let h = self.blocks[layer].o.forward(o) + x;
        if self.parallel {
            Tensor::cat(&[&h, x], -1)
        } else {
            h
        }
    }

    /// `(x + attn, the FFN's input)` of a state.
    fn unpack(&self, h: &Tensor) -> (Tensor, Tensor) {
        if !self.parallel {
            return (h.shallow_clone(), h.shallow_clone());
        }
        let d = self.cfg.d_model as i64;
        (h.narrow(-1, 0, d), h.narrow(-1, d, d))
    }
}

impl NeuronModel for Parallel {
    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn device(&self) -> Device {
        self.device
    }

    fn embed(&self, batch: &Batch) -> Tensor {
        lookup(&self.embed, &batch.ids, self.ln_f.kind())
    }

    fn context(&self, batch: &Batch) -> Ctx {
        let mut ctx = Ctx::plain(attention_mask(batch, true));
        ctx.rope = vec![self.rope.first(batch.seq_len as i64)];
        ctx
    }

    fn attention(&self, layer: usize, x: &Tensor, ctx: &Ctx) -> (Tensor, Kv) {
        let (cos, sin) = &ctx.rope[0];
        let (q, k, v) = self.qkv(layer, x, cos, sin);
        let h = self.state(layer, &attend(&q, &k, &v, Some(&ctx.mask)), x);
        (h, Kv { k, v, q: None })
    }

    fn attention_at(&self, layer: usize, x: &Tensor, past: &Kv, at: &At) -> Tensor {
        let (cos, sin) = self.rope.at(&at.pos, past.k.size()[2]);
        let (q, k, v) = self.qkv(layer, x, &cos, &sin);
        let (k, v) = (
            with_new(&past.k, &k, &at.pos),
            with_new(&past.v, &v, &at.pos),
        );
        self.state(layer, &attend(&q, &k, &v, at.keys.as_ref()), x)
    }

    fn ffn_act(&self, layer: usize, h: &Tensor) -> Tensor {
        let blk = &self.blocks[layer];
        let input = self.unpack(h).1;
        let n = blk.ln_ffn.as_ref().unwrap_or(&blk.ln_attn).forward(&input);
        let pre = blk.fc_in.forward(&n);
        match self.act {
            Gelu::Exact => pre.gelu("none"),
            Gelu::Tanh => pre.gelu("tanh"),
        }
    }

    fn ffn_out(&self, layer: usize, h: &Tensor, a: &Tensor) -> Tensor {
        self.blocks[layer].fc_out.forward(a) + self.unpack(h).0
    }

    fn ffn_out_plus(&self, layer: usize, h: &Tensor, a: &Tensor, change: &Tensor) -> Tensor {
        self.ffn_out(layer, h, a) + change
    }

    fn head(&self, x: &Tensor) -> Tensor {
        self.lm_head.forward(&self.ln_f.forward(x))
    }

    fn value_slots(&self, layer: usize) -> Tensor {
        self.blocks[layer].fc_out.w.shallow_clone()
    }

    fn input_embeddings(&self) -> &Tensor {
        &self.embed
    }

    fn output_embeddings(&self) -> &Tensor {
        &self.lm_head.w
    }
}
