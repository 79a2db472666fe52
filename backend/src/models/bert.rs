//! BERT, RoBERTa and XLM-RoBERTa masked LMs (`BertForMaskedLM`,
//! `RobertaForMaskedLM`, `XLMRobertaForMaskedLM`), Hugging Face layout.
//!
//! Neurons: `a = GELU_erf(intermediate.dense(h))`, the output of
//! `BertIntermediate`; value slots: columns of `output.dense.weight`.
//! Weight names may carry the `bert.` prefix or not, and old checkpoints name
//! LayerNorm parameters `gamma`/`beta`; the decoder is tied to the word
//! embeddings when `cls.predictions.decoder.weight` is absent.
//!
//! RoBERTa is the same encoder under `roberta.` with its head in `lm_head`
//! (dense, gelu, LayerNorm, decoder + bias), one token type, and positions
//! counted from the padding index: token `i` of a row (none of them padding)
//! sits at position `padding_idx + 1 + i`, a padding token at `padding_idx`
//! (transformers' `create_position_ids_from_input_ids`).

use super::layers::{lookup, project};
use super::{
    at_positions, attend, attention_mask, head_dim, split_heads, with_new, Arch, Batch, Config,
    ModelConfig, NeuronModel, Weights,
};
use super::{At, Ctx, Kv, LayerNorm, Linear};
use crate::Result;
use tch::{Device, Tensor};

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    attn_out: Linear,
    attn_ln: LayerNorm,
    inter: Linear,
    out: Linear,
    out_ln: LayerNorm,
}

/// Where a variant's position ids start.
#[derive(Clone, Copy)]
enum Positions {
    /// BERT: `0, 1, 2, …`.
    FromZero,
    /// RoBERTa: after the padding index, padding tokens at it.
    AfterPadding(i64),
}

pub struct Bert {
    cfg: ModelConfig,
    positions: Positions,
    heads: i64,
    word: Tensor,
    pos: Tensor,
    token_type: Tensor,
    emb_ln: LayerNorm,
    layers: Vec<Layer>,
    head_dense: Linear,
    head_ln: LayerNorm,
    decoder: Tensor,
    decoder_bias: Tensor,
    device: Device,
}

impl Bert {
    pub(crate) fn load(json: &serde_json::Value, ws: &mut Weights) -> Result<Self> {
        let path = std::path::PathBuf::from("config.json");
        let c = Config { json, path: &path };
        let d = c.usize(&["hidden_size"])? as i64;
        let n_layers = c.usize(&["num_hidden_layers"])?;
        let heads = c.usize(&["num_attention_heads"])? as i64;
        let d_ff = c.usize(&["intermediate_size"])? as i64;
        let vocab = c.usize(&["vocab_size"])? as i64;
        let max_pos = c.usize_or(&["max_position_embeddings"], 512) as i64;
        let types = c.usize_or(&["type_vocab_size"], 2) as i64;
        let eps = c.f64_or("layer_norm_eps", 1e-12);
        let act = c.str_or("hidden_act", "gelu");
        if act != "gelu" {
            return Err(crate::Error::bad_model(
                &path,
                format!("hidden_act `{act}` is not supported (BERT uses erf `gelu`)"),
            ));
        }
        head_dim(&path, (d, "hidden_size"), (heads, "num_attention_heads"))?;
        let roberta = matches!(c.str_or("model_type", "bert"), "roberta" | "xlm-roberta");
        let embedding_type = c.str_or("position_embedding_type", "absolute");
        if embedding_type != "absolute" {
            return Err(crate::Error::bad_model(
                &path,
                format!(
                    "position_embedding_type `{embedding_type}` is not supported (only `absolute`)"
                ),
            ));
        }
        let positions = if roberta {
            Positions::AfterPadding(c.usize_or(&["pad_token_id"], 1) as i64)
        } else {
            Positions::FromZero
        };
        let p = if roberta {
            "roberta."
        } else if ws.contains("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let word = ws.take(
            &format!("{p}embeddings.word_embeddings.weight"),
            &[vocab, d],
        )?;
        let pos = ws.take(
            &format!("{p}embeddings.position_embeddings.weight"),
            &[max_pos, d],
        )?;
        let token_type = ws.take(
            &format!("{p}embeddings.token_type_embeddings.weight"),
            &[types, d],
        )?;
        let emb_ln = LayerNorm::load(ws, &format!("{p}embeddings.LayerNorm"), d, eps)?;
        let mut layers = Vec::with_capacity(n_layers);
        for l in 0..n_layers {
            let n = format!("{p}encoder.layer.{l}");
            layers.push(Layer {
                q: Linear::load(ws, &format!("{n}.attention.self.query"), d, d)?,
                k: Linear::load(ws, &format!("{n}.attention.self.key"), d, d)?,
                v: Linear::load(ws, &format!("{n}.attention.self.value"), d, d)?,
                attn_out: Linear::load(ws, &format!("{n}.attention.output.dense"), d, d)?,
                attn_ln: LayerNorm::load(ws, &format!("{n}.attention.output.LayerNorm"), d, eps)?,
                inter: Linear::load(ws, &format!("{n}.intermediate.dense"), d_ff, d)?,
                out: Linear::load(ws, &format!("{n}.output.dense"), d, d_ff)?,
                out_ln: LayerNorm::load(ws, &format!("{n}.output.LayerNorm"), d, eps)?,
            });
        }
        let names = if roberta { &ROBERTA_HEAD } else { &BERT_HEAD };
        let head = load_head(ws, names, &word, (vocab, d, eps))?;
        // The pooler and next-sentence head serve pre-training only; old
        // checkpoints keep the position ids and a copy of the decoder's bias.
        ws.finish(|n| {
            n.contains("pooler.")
                || n.starts_with("cls.seq_relationship.")
                || n.ends_with("position_ids")
                || n == names.decoder_bias
        })?;
        let usable = match positions {
            Positions::FromZero => max_pos,
            Positions::AfterPadding(pad) => max_pos - pad - 1,
        };
        Ok(Bert {
            cfg: ModelConfig {
                arch: if roberta { Arch::Roberta } else { Arch::Bert },
                n_layers,
                d_model: d as usize,
                d_ff: d_ff as usize,
                vocab_size: vocab as usize,
                max_positions: usable.max(1) as usize,
                q_dim: d as usize,
                kv_dim: d as usize,
            },
            positions,
            heads,
            word,
            pos,
            token_type,
            emb_ln,
            layers,
            head_dense: head.dense,
            head_ln: head.ln,
            decoder: head.decoder,
            decoder_bias: head.bias,
            device: ws.device(),
        })
    }
}

/// The masked-LM head: a transform (dense, gelu, LayerNorm), then the decoder.
struct Head {
    dense: Linear,
    ln: LayerNorm,
    decoder: Tensor,
    bias: Tensor,
}

/// Where a variant keeps its head: the transform's dense and LayerNorm, the
/// decoder, its bias, and the bias's older copy.
struct HeadNames {
    dense: &'static str,
    ln: &'static str,
    decoder: &'static str,
    bias: &'static str,
    decoder_bias: &'static str,
}

const BERT_HEAD: HeadNames = HeadNames {
    dense: "cls.predictions.transform.dense",
    ln: "cls.predictions.transform.LayerNorm",
    decoder: "cls.predictions.decoder.weight",
    bias: "cls.predictions.bias",
    decoder_bias: "cls.predictions.decoder.bias",
};

const ROBERTA_HEAD: HeadNames = HeadNames {
    dense: "lm_head.dense",
    ln: "lm_head.layer_norm",
    decoder: "lm_head.decoder.weight",
    bias: "lm_head.bias",
    decoder_bias: "lm_head.decoder.bias",
};

fn load_head(
    ws: &mut Weights,
    names: &HeadNames,
    word: &Tensor,
    (vocab, d, eps): (i64, i64, f64),
) -> Result<Head> {
    let dense = Linear::load(ws, names.dense, d, d)?;
    let ln = LayerNorm::load(ws, names.ln, d, eps)?;
    let decoder = match ws.take_opt(names.decoder, &[vocab, d])? {
        Some(w) => w,
        None => word.shallow_clone(), // tied
    };
    let bias = match ws.take_opt(names.bias, &[vocab])? {
        Some(b) => b,
        None => ws.take(names.decoder_bias, &[vocab])?,
    };
    Ok(Head {
        dense,
        ln,
        decoder,
        bias,
    })
}

impl NeuronModel for Bert {
    fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn device(&self) -> Device {
        self.device
    }

    fn embed(&self, batch: &Batch) -> Tensor {
        let positions = match self.positions {
            Positions::FromZero => {
                Tensor::arange(batch.seq_len as i64, (tch::Kind::Int64, self.device)).unsqueeze(0)
            }
            Positions::AfterPadding(pad) => {
                let real = batch.ids.ne(pad).to_kind(tch::Kind::Int64);
                real.cumsum(1, tch::Kind::Int64) * &real + pad
            }
        };
        let kind = self.emb_ln.kind();
        let x = lookup(&self.word, &batch.ids, kind)
            + lookup(&self.pos, &positions, kind)
            + self.token_type.get(0).to_kind(kind);
        self.emb_ln.forward(&x)
    }

    fn context(&self, batch: &Batch) -> Ctx {
        Ctx::plain(attention_mask(batch, false))
    }

    fn attention(&self, layer: usize, x: &Tensor, ctx: &Ctx) -> (Tensor, Kv) {
        let ly = &self.layers[layer];
        let q = split_heads(&ly.q.forward(x), self.heads);
        let k = split_heads(&ly.k.forward(x), self.heads);
        let v = split_heads(&ly.v.forward(x), self.heads);
        let c = attend(&q, &k, &v, Some(&ctx.mask));
        (
            ly.attn_ln.forward(&(ly.attn_out.forward(&c) + x)),
            Kv { k, v, q: Some(q) },
        )
    }

    fn attention_changed(
        &self,
        layer: usize,
        x: &Tensor,
        ctx: &Ctx,
        traced: &Kv,
        pos: &Tensor,
    ) -> Tensor {
        let Some(q) = &traced.q else {
            return self.attention(layer, x, ctx).0;
        };
        let ly = &self.layers[layer];
        let here = at_positions(x, pos); // [b, 1, d]
        let new = |w: &Linear, old: &Tensor| {
            with_new(old, &split_heads(&w.forward(&here), self.heads), pos)
        };
        let c = attend(
            &new(&ly.q, q),
            &new(&ly.k, &traced.k),
            &new(&ly.v, &traced.v),
            Some(&ctx.mask),
        );
        ly.attn_ln.forward(&(ly.attn_out.forward(&c) + x))
    }

    fn attention_one(&self, layer: usize, x: &Tensor, ctx: &Ctx, pos: &Tensor) -> Tensor {
        let ly = &self.layers[layer];
        let here = at_positions(x, pos); // [b, 1, d]
        let q = split_heads(&ly.q.forward(&here), self.heads);
        let k = split_heads(&ly.k.forward(x), self.heads);
        let v = split_heads(&ly.v.forward(x), self.heads);
        // The mask is bidirectional: every query row of it names the same keys.
        let c = attend(&q, &k, &v, Some(&ctx.mask.narrow(2, 0, 1)));
        ly.attn_ln.forward(&(ly.attn_out.forward(&c) + here))
    }

    fn attention_at(&self, _layer: usize, _x: &Tensor, _past: &Kv, _at: &At) -> Tensor {
        unreachable!("BERT attends in both directions; there is no incremental attention")
    }

    fn ffn_act(&self, layer: usize, h: &Tensor) -> Tensor {
        self.layers[layer].inter.forward(h).gelu("none")
    }

    fn ffn_out(&self, layer: usize, h: &Tensor, a: &Tensor) -> Tensor {
        let ly = &self.layers[layer];
        ly.out_ln.forward(&(ly.out.forward(a) + h))
    }

    fn head(&self, x: &Tensor) -> Tensor {
        let h = self
            .head_ln
            .forward(&self.head_dense.forward(x).gelu("none"));
        project(&h, &self.decoder) + &self.decoder_bias
    }

    fn value_slots(&self, layer: usize) -> Tensor {
        self.layers[layer].out.w.shallow_clone()
    }

    fn input_embeddings(&self) -> &Tensor {
        &self.word
    }

    fn output_embeddings(&self) -> &Tensor {
        &self.decoder
    }
}
