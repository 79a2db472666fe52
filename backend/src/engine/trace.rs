//! The passes attribution and interventions are made of: the unscaled pass of
//! a group of prompts, traced once ([`Trace`]), and copies of it with the
//! blank's neurons changed at some layer, resumed from the trace at that layer
//! rather than run from the embeddings ([`scaled_logits`]).
//!
//! What makes a resumed copy cheap is what stays as the trace had it: every
//! layer before the changed one; at the changed layer every position but the
//! blank; in a causal model every position before the blank at every layer
//! (their keys and values come from the trace); and at the top layer, whose
//! output is read at the blank alone, everything but the blank's row and the
//! keys and values it attends to.

use super::Query;
use crate::models::{At, Batch, Ctx, Hooks, Kv, Model, NeuronOp};
use crate::Result;
use tch::Tensor;

/// How scaled passes are computed (all give the same numbers).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A full forward and backward per layer (the public implementations).
    Naive,
    /// Start each layer's scaled copies at that layer.
    Resume,
    /// `Resume`, plus reuse of earlier positions' keys/values in causal models.
    #[default]
    Fast,
}

/// The unscaled pass of a group of prompts (right-padded into one batch), kept
/// so scaled passes can resume from it.
pub(crate) struct Trace {
    pub batch: Batch,
    /// Each prompt's blank, as `batch` holds it (kept on the host so scaled
    /// passes need no read-back).
    pub blanks: Vec<i64>,
    /// Each prompt's length in tokens (`batch` pads them to the longest).
    pub lens: Vec<usize>,
    /// Per layer: the post-attention residual `h`, `[p, s, d]`.
    pub h: Vec<Tensor>,
    /// Per layer: the neurons `a` at every position, `[p, s, d_ff]`.
    pub a: Vec<Tensor>,
    /// Per layer: keys and values (and BERT's queries): causal `Fast` passes
    /// attend to them, and the layer after a change takes them but at the blank.
    pub kv: Vec<Kv>,
    /// Per layer: its output `x'` (the next layer's input), `[p, s, d]`: a
    /// scaled copy changes only the blank's row of it.
    pub out: Vec<Tensor>,
    /// `[p, vocab]` logits at the blanks.
    pub logits: Tensor,
}

pub(crate) fn trace(model: &Model, qs: &[Query]) -> Result<Trace> {
    let net = &model.net;
    let ids: Vec<Vec<u32>> = qs.iter().map(|q| q.cloze.ids.clone()).collect();
    let blanks: Vec<usize> = qs.iter().map(|q| q.cloze.blank).collect();
    let batch = Batch::new(&ids, &blanks, net.device())?;
    tch::no_grad(|| {
        let ctx = net.context(&batch);
        let mut x = net.embed(&batch);
        let (mut hs, mut acts, mut kvs, mut outs) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for l in 0..net.config().n_layers {
            let (h, kv) = net.attention(l, &x, &ctx);
            let a = net.ffn_act(l, &h);
            x = net.ffn_out(l, &h, &a);
            hs.push(h);
            acts.push(a);
            kvs.push(kv);
            outs.push(x.shallow_clone());
        }
        let logits = net.head(&batch.at_blank(&x));
        Ok(Trace {
            batch,
            blanks: blanks.iter().map(|&b| b as i64).collect(),
            lens: ids.iter().map(Vec::len).collect(),
            h: hs,
            a: acts,
            kv: kvs,
            out: outs,
            logits,
        })
    })
}

impl Trace {
    /// The rows of `x` (`[p, …]`, one per prompt) for scaled rows whose prompts
    /// are `who`: a free broadcast when they are all one prompt's, a gather
    /// otherwise.
    pub(crate) fn rows(&self, x: &Tensor, who: &[i64]) -> Tensor {
        match who.first() {
            Some(&p) if who.iter().all(|&q| q == p) => {
                let mut size = x.size();
                size[0] = who.len() as i64;
                x.narrow(0, p, 1).expand(size.as_slice(), false)
            }
            _ => x.index_select(0, &Tensor::from_slice(who).to(x.device())),
        }
    }

    /// The longest of the prompts `who` in tokens: what their rows need of
    /// the trace's padded length.
    pub(crate) fn longest(&self, who: &[Vec<i64>]) -> usize {
        who.iter()
            .flatten()
            .map(|&p| self.lens[p as usize])
            .max()
            .unwrap_or(1)
    }

    /// [`Trace::rows`] of a tensor whose dimension `dim` is the positions,
    /// cut to the first `s`.
    pub(crate) fn rows_to(&self, x: &Tensor, who: &[i64], dim: usize, s: usize) -> Tensor {
        if x.size()[dim] == s as i64 {
            self.rows(x, who)
        } else {
            self.rows(&x.narrow(dim as i64, 0, s as i64), who)
        }
    }

    /// The trace's batch for rows whose prompts are `who`, cut to `s` positions.
    pub(crate) fn batch_of(&self, who: &[i64], s: usize) -> Batch {
        self.batch.select(who).narrow_seq(s)
    }
}

/// Logits at the blank for scaled rows of the traced prompts.
///
/// `acts[g]` (`[r_g, d_ff]`) replaces the blank activation of layer `first + g`
/// in rows whose prompts are `who[g]` (indices into the trace). In the resuming
/// modes the rows form a staircase: the rows of layer `first` start at its FFN
/// output, and at every later layer `j` the rows of layer `j` join the batch,
/// so one pass (and one backward) serves the whole group with larger matrix
/// products. Rows come back in the order of `acts`.
pub(crate) fn scaled_logits(
    model: &Model,
    t: &Trace,
    first: usize,
    acts: &[Tensor],
    who: &[Vec<i64>],
    mode: Mode,
) -> Result<Tensor> {
    let rows = Scaled {
        model,
        t,
        first,
        acts,
        who,
    };
    let causal = !model.net.config().arch.is_masked();
    Ok(match mode {
        Mode::Naive => rows.naive(),
        Mode::Fast if causal => rows.at_the_blank(),
        Mode::Fast | Mode::Resume => rows.staircase(),
    })
}

/// Scaled rows of a trace: `acts[g]` replaces the blank activation of layer
/// `first + g` in the rows of prompts `who[g]`.
struct Scaled<'a> {
    model: &'a Model,
    t: &'a Trace,
    first: usize,
    acts: &'a [Tensor],
    who: &'a [Vec<i64>],
}

impl Scaled<'_> {
    fn last(&self) -> usize {
        self.first + self.acts.len() - 1
    }

    /// One full forward pass per layer, as the public implementations do.
    fn naive(&self) -> Tensor {
        let (net, t) = (&self.model.net, self.t);
        let mut out = Vec::new();
        for (g, act) in self.acts.iter().enumerate() {
            let b = t.batch_of(&self.who[g], t.longest(&self.who[g..=g]));
            let mut hooks = Hooks::default();
            hooks
                .ops
                .insert(self.first + g, NeuronOp::Replace(act.shallow_clone()));
            out.push(net.forward(&b, &hooks).logits);
        }
        Tensor::cat(&out, 0)
    }

    /// Causal blank = the last real position: only that position is
    /// recomputed; the earlier positions' keys and values come from the trace.
    fn at_the_blank(&self) -> Tensor {
        let (net, t, who) = (&self.model.net, self.t, self.who);
        let s = t.longest(who);
        let mut x: Option<Tensor> = None;
        // The prompt of each row of `x`, in its order.
        let mut x_who: Vec<i64> = Vec::new();
        for j in self.first..net.config().n_layers {
            if let Some(prev) = &x {
                let pos: Vec<i64> = x_who.iter().map(|&p| t.blanks[p as usize]).collect();
                let at = At::new(&pos, s as i64, net.device());
                let past = Kv {
                    k: t.rows_to(&t.kv[j].k, &x_who, 2, s),
                    v: t.rows_to(&t.kv[j].v, &x_who, 2, s),
                    q: None,
                };
                let h = net.attention_at(j, prev, &past, &at);
                x = Some(net.ffn_out(j, &h, &net.ffn_act(j, &h)));
            }
            if j <= self.last() {
                let g = j - self.first;
                let h = t.rows(&t.batch.at_blank(&t.h[j]), &who[g]).unsqueeze(1);
                let entering = net.ffn_out(j, &h, &self.acts[g].unsqueeze(1));
                // New rows go first, so that the final order is last..first; reversed below.
                x = Some(match x {
                    None => entering,
                    Some(prev) => Tensor::cat(&[entering, prev], 0),
                });
                x_who.splice(0..0, who[g].iter().copied());
            }
        }
        let logits = net.head(&x.expect("at least one layer").squeeze_dim(1));
        reorder(&logits, self.acts)
    }

    /// Whole-sequence staircase (masked models, or `Resume`). The context is
    /// built once for the final row order (layers last..first); at layer `j` the
    /// batch holds the rows of layers first..=j, which are its tail. A row
    /// entering at layer `j` differs from the trace only at the blank, so it is
    /// the trace's output of layer `j` with the blank's row recomputed; at
    /// layer `j + 1` its queries, keys and values are the trace's but at the
    /// blank (`attention_changed`); and since only the blank is read at the
    /// end, the top layer computes keys and values everywhere, the rest at the
    /// blank alone.
    fn staircase(&self) -> Tensor {
        let (net, t, who) = (&self.model.net, self.t, self.who);
        let n_layers = net.config().n_layers;
        let s = t.longest(who);
        let order: Vec<i64> = (0..self.acts.len())
            .rev()
            .flat_map(|g| who[g].iter().copied())
            .collect();
        let b = t.batch_of(&order, s);
        let stair = Stair {
            ctx: net.context(&b),
            blank: b.blank.shallow_clone(),
            total: order.len() as i64,
            s,
        };
        let top = n_layers - 1;
        let mut x: Option<Tensor> = None;
        // At the top: `[rows, d]`, each row's output at its blank.
        let mut at_top: Option<Tensor> = None;
        let mut rows = 0i64;
        for j in self.first..n_layers {
            if let Some(prev) = x.take() {
                let ctx_all = stair.ctx.rows(stair.total - rows, rows);
                let blank = stair.blank.narrow(0, stair.total - rows, rows);
                if j == top {
                    let h = net.attention_one(j, &prev, &ctx_all, &blank);
                    at_top = Some(net.ffn_out(j, &h, &net.ffn_act(j, &h)).squeeze_dim(1));
                } else {
                    let h = self.stair_attention(&stair, j, &prev, rows);
                    x = Some(net.ffn_out(j, &h, &net.ffn_act(j, &h)));
                }
            }
            if j <= self.last() {
                let g = j - self.first;
                let h = t.rows(&t.batch.at_blank(&t.h[j]), &who[g]);
                let blank_out = net.ffn_out(j, &h, &self.acts[g]); // [r, d]
                if j == top {
                    at_top = Some(match at_top {
                        None => blank_out,
                        Some(prev) => Tensor::cat(&[blank_out, prev], 0),
                    });
                } else {
                    let sub = t.batch_of(&who[g], s);
                    let entering =
                        sub.put_at_blank(&t.rows_to(&t.out[j], &who[g], 1, s), &blank_out);
                    x = Some(match x {
                        None => entering,
                        Some(prev) => Tensor::cat(&[entering, prev], 0),
                    });
                }
                rows += who[g].len() as i64;
            }
        }
        let logits = net.head(&at_top.expect("every row reaches the top layer"));
        reorder(&logits, self.acts)
    }

    /// The attention of layer `j` (below the top) over the staircase's `rows`
    /// rows `prev`: the rows that entered at `j − 1` lead the batch and differ
    /// from the trace only at the blank (`attention_changed`); the others are
    /// computed whole.
    fn stair_attention(&self, stair: &Stair, j: usize, prev: &Tensor, rows: i64) -> Tensor {
        let (net, t) = (&self.model.net, self.t);
        let (s, total) = (stair.s, stair.total);
        let ctx_all = stair.ctx.rows(total - rows, rows);
        let blank = stair.blank.narrow(0, total - rows, rows);
        let g = j - 1 - self.first;
        let fresh = if g < self.acts.len() {
            self.who[g].len() as i64
        } else {
            0
        };
        let changed = (fresh > 0).then(|| {
            let who = &self.who[g];
            let traced = Kv {
                k: t.rows_to(&t.kv[j].k, who, 2, s),
                v: t.rows_to(&t.kv[j].v, who, 2, s),
                q: t.kv[j].q.as_ref().map(|q| t.rows_to(q, who, 2, s)),
            };
            net.attention_changed(
                j,
                &prev.narrow(0, 0, fresh),
                &stair.ctx.rows(total - rows, fresh),
                &traced,
                &blank.narrow(0, 0, fresh),
            )
        });
        match changed {
            Some(h) if fresh == rows => h,
            Some(h) => {
                let rest = rows - fresh;
                let ctx_rest = stair.ctx.rows(total - rest, rest);
                let (old, _) = net.attention(j, &prev.narrow(0, fresh, rest), &ctx_rest);
                Tensor::cat(&[h, old], 0)
            }
            None => net.attention(j, prev, &ctx_all).0,
        }
    }
}

/// The staircase's batch: the context and blanks of its rows in their final
/// order (`total` rows, `s` positions), each layer's rows its tail.
struct Stair {
    ctx: Ctx,
    blank: Tensor,
    total: i64,
    s: usize,
}

/// Logits at the blank of the traced pass itself, with a leaf added to the
/// blank's neurons of layers `first..first + leaves.len()` (`[p, d_ff]` each,
/// zeros: the numbers are the trace's). One backward from these logits gives
/// the gradient of every one of those layers at the end of the integration
/// path (`α = 1`), where IG would otherwise run a copy per layer. Resumed from
/// the trace at `first` like [`scaled_logits`], one row per prompt.
pub(crate) fn plain_logits(
    model: &Model,
    t: &Trace,
    first: usize,
    leaves: &[Tensor],
    mode: Mode,
) -> Result<Tensor> {
    let net = &model.net;
    let n_layers = net.config().n_layers;
    let top = n_layers - 1;
    let leaf = |j: usize| j.checked_sub(first).and_then(|g| leaves.get(g));
    let h = t.batch.at_blank(&t.h[first]);
    let a = t.batch.at_blank(&t.a[first]);
    let a = match leaf(first) {
        Some(e) => a + e,
        None => a,
    };
    let blank_out = net.ffn_out(first, &h, &a); // [p, d]
    if mode == Mode::Fast && !net.config().arch.is_masked() {
        // The blank is the last position: recompute it alone, attending to
        // the trace's keys and values of the earlier ones.
        let at = At::new(&t.blanks, t.batch.seq_len as i64, net.device());
        let mut x = blank_out.unsqueeze(1);
        for j in first + 1..n_layers {
            let h = net.attention_at(j, &x, &t.kv[j], &at);
            let a = net.ffn_act(j, &h);
            let a = match leaf(j) {
                Some(e) => a + e.unsqueeze(1),
                None => a,
            };
            x = net.ffn_out(j, &h, &a);
        }
        return Ok(net.head(&x.squeeze_dim(1)));
    }
    if first == top {
        return Ok(net.head(&blank_out));
    }
    let ctx = net.context(&t.batch);
    let mut x = t.batch.put_at_blank(&t.out[first], &blank_out);
    for j in first + 1..top {
        let h = if j == first + 1 {
            net.attention_changed(j, &x, &ctx, &t.kv[j], &t.batch.blank)
        } else {
            net.attention(j, &x, &ctx).0
        };
        let mut a = net.ffn_act(j, &h);
        if let Some(e) = leaf(j) {
            a = t.batch.put_at_blank(&a, &(t.batch.at_blank(&a) + e));
        }
        x = net.ffn_out(j, &h, &a);
    }
    let h = net.attention_one(top, &x, &ctx, &t.batch.blank);
    let a = net.ffn_act(top, &h);
    let a = match leaf(top) {
        Some(e) => a + e.unsqueeze(1),
        None => a,
    };
    Ok(net.head(&net.ffn_out(top, &h, &a).squeeze_dim(1)))
}

/// Rows `start..start + len` of a context built for a whole staircase.
/// The staircase stacks later layers' rows first; put them back in `acts` order.
fn reorder(logits: &Tensor, acts: &[Tensor]) -> Tensor {
    let mut parts = Vec::with_capacity(acts.len());
    let mut end = logits.size()[0];
    for a in acts {
        let r = a.size()[0];
        parts.push(logits.narrow(0, end - r, r));
        end -= r;
    }
    Tensor::cat(&parts, 0)
}
