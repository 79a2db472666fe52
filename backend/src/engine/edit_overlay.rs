//! Passes of a model under weight edits that are not written into its weights.
//!
//! An edit set changes value slots: column `i` of layer `l`'s `W_out` goes from
//! `before` to `after`, so at every position the FFN's output gains
//! `a_i · (after − before)`. Each architecture adds that term where its weights
//! would ([`NeuronModel::ffn_out_plus`](crate::models::NeuronModel::ffn_out_plus)),
//! which gives the edited model's numbers exactly, on the rows that carry the
//! edit and on no other.
//! Many edits are then measured in the same passes, each on its own rows, and no
//! weight is touched: nothing to restore, no [`Applied`](super::edit::Applied)
//! guard, and the unedited model answers other work meanwhile.
//!
//! Below an edit's lowest layer its rows are the unedited pass, so they start
//! there, from that pass's layer inputs kept once for all edits (a staircase
//! over the edits' lowest layers, as in attribution); and only the blank is
//! read at the top layer. The experiment report's updates and erasures use it
//! for their perplexities; tests/edited.rs holds it to writing each edit into
//! the weights, one at a time, on every architecture.

use super::batching::{by_query, runs};
use super::readout::{targets_and_top, Answer};
use super::{Chains, Query};
use crate::models::{Batch, Model};
use crate::{Error, Result};
use kn_shared::{EditSet, SlotEdit};
use std::collections::{BTreeMap, BTreeSet};
use tch::{Kind, Tensor};

/// One edit, measured on some of the prompts.
pub struct Job<'a> {
    pub edit: &'a EditSet,
    /// Indices into the prompt list, in the order the answers come back.
    pub prompts: Vec<usize>,
}

/// What [`answers_under`] measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Every prompt's answer on the model as it is (unedited).
    pub before: Vec<Answer>,
    /// Per job, its prompts' answers under its edit, in the job's order.
    pub after: Vec<Vec<Answer>>,
}

/// How much one pass may hold, in rows × tokens (rows padded to the longest).
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    /// Prompts traced at a time (their unedited pass, whose layer inputs are
    /// kept where some edit starts: at most `n_layers × d_model × 4` bytes per
    /// row-token, about 70 KB on SmolLM2, so under 300 MB at 4,096).
    pub trace: usize,
    /// Edited copies run at a time.
    pub pass: usize,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            trace: 4_096,
            pass: super::batching::MAX_ROW_TOKENS,
        }
    }
}

/// The answers of `queries` on the model as it is, and under each job's edit
/// on that job's prompts, as if the edit were applied ([`super::edit::apply`])
/// for those prompts alone: same P(answer), top-1 and greedy answer (a
/// multi-token answer's steps all run under the edit). Every edit must fit the
/// model and its slots hold their `before` values now, as applying requires.
/// Results are read from the device once.
pub fn answers_under(model: &Model, queries: &[Query], jobs: &[Job]) -> Result<Measured> {
    answers_under_with(model, queries, jobs, Budgets::default())
}

/// [`answers_under`] within these budgets (the tests take small ones to
/// exercise several traces and passes on small models).
pub fn answers_under_with(
    model: &Model,
    queries: &[Query],
    jobs: &[Job],
    budgets: Budgets,
) -> Result<Measured> {
    if queries.is_empty() {
        return Err(Error::InvalidArgument("no prompts".into()));
    }
    let deltas: Vec<Delta> = jobs
        .iter()
        .map(|j| Delta::new(model, j.edit))
        .collect::<Result<_>>()?;
    for j in jobs {
        if let Some(&i) = j.prompts.iter().find(|&&i| i >= queries.len()) {
            return Err(Error::InvalidArgument(format!(
                "prompt {i} of an edit's list: there are {} prompts",
                queries.len()
            )));
        }
    }
    // Per query: the jobs that want it (each job at most once per query).
    let mut wanted: Vec<Vec<usize>> = vec![Vec::new(); queries.len()];
    for (k, j) in jobs.iter().enumerate() {
        for &i in &j.prompts {
            if wanted[i].last() != Some(&k) {
                wanted[i].push(k);
            }
        }
    }
    let chains = Chains::new(queries);
    // Per step of each pass, in order: P(target) and top-1 (on the device).
    let mut read: Vec<Tensor> = Vec::new();
    // Where each (job, step) landed in `read`'s rows after the unedited ones.
    let mut before_at: Vec<i64> = vec![0; chains.steps.len()];
    let mut after_at: BTreeMap<(usize, usize), i64> = BTreeMap::new();
    let mut offset = 0i64;
    for group in by_query(queries, budgets.trace) {
        let first_step = chains.of[group.start].start;
        let steps = &chains.steps[first_step..chains.of[group.end - 1].end];
        // (job, step within the group): the rows of this group's copies, by
        // the job's first edited layer so that a pass's rows form a staircase.
        let mut rows: Vec<(usize, usize)> = Vec::new();
        for qi in group.clone() {
            for &k in &wanted[qi] {
                rows.extend(chains.of[qi].clone().map(|s| (k, s - first_step)));
            }
        }
        rows.sort_by_key(|&(k, s)| (deltas[k].first, k, s));
        let keep: BTreeSet<usize> = rows.iter().map(|&(k, _)| deltas[k].first).collect();
        let t = Inputs::trace(model, steps, &keep)?;
        read.push(targets_and_top(&t.logits, steps.iter().map(|q| q.target)));
        for (s, at) in before_at[first_step..first_step + steps.len()]
            .iter_mut()
            .enumerate()
        {
            *at = offset + s as i64;
        }
        offset += steps.len() as i64;
        for run in runs(rows.iter().map(|&(_, s)| (1, t.lens[s])), budgets.pass) {
            let pass = &rows[run];
            let logits = t.edited(model, pass, &deltas)?;
            read.push(targets_and_top(
                &logits,
                pass.iter().map(|&(_, s)| steps[s].target),
            ));
            for (r, &(k, s)) in pass.iter().enumerate() {
                after_at.insert((k, first_step + s), offset + r as i64);
            }
            offset += pass.len() as i64;
        }
    }
    let all = super::host::to_host(&Tensor::cat(&read, 0));
    let all: Vec<f64> = Vec::try_from(all.view(-1))?;
    let row = |r: i64| (all[2 * r as usize], all[2 * r as usize + 1] as u32);
    let answer = |qi: usize, at: &dyn Fn(usize) -> i64| -> Answer {
        let range = chains.of[qi].clone();
        let first = row(at(range.start));
        Answer {
            p: range.clone().map(|s| row(at(s)).0).product(),
            top1: first.1,
            greedy: range
                .clone()
                .all(|s| row(at(s)).1 == chains.steps[s].target),
        }
    };
    let before = (0..queries.len())
        .map(|qi| answer(qi, &|s| before_at[s]))
        .collect();
    let after = jobs
        .iter()
        .enumerate()
        .map(|(k, j)| {
            j.prompts
                .iter()
                .map(|&qi| answer(qi, &|s| after_at[&(k, s)]))
                .collect()
        })
        .collect();
    Ok(Measured { before, after })
}

/// An edit as the passes add it: per layer, the slots' indices and
/// `after − before`.
struct Delta {
    /// The lowest layer it changes.
    first: usize,
    /// Layer → (`[n]` neuron indices, `[n, d_model]` changes).
    layers: BTreeMap<usize, (Tensor, Tensor)>,
}

impl Delta {
    fn new(model: &Model, edit: &EditSet) -> Result<Delta> {
        super::edit::check_set(model.config(), &model.fingerprint, edit)?;
        if edit.slots.is_empty() {
            return Err(Error::InvalidArgument(
                "the edit changes no value slot".into(),
            ));
        }
        let device = model.net.device();
        // A slot named twice ends as its last `after`, as applying in order:
        // its first entry's `before`, its last entry's `after`.
        let mut named: BTreeMap<(usize, usize), [&SlotEdit; 2]> = BTreeMap::new();
        for s in &edit.slots {
            named
                .entry((s.layer, s.index))
                .and_modify(|e| e[1] = s)
                .or_insert([s, s]);
        }
        let mut by_layer: BTreeMap<usize, Slots> = BTreeMap::new();
        for (&(layer, index), [first, last]) in &named {
            let e = by_layer.entry(layer).or_default();
            e.index.push(index as i64);
            e.before.extend_from_slice(&first.before);
            e.after.extend_from_slice(&last.after);
        }
        let d = model.config().d_model as i64;
        let mut layers = BTreeMap::new();
        tch::no_grad(|| -> Result<()> {
            for (
                layer,
                Slots {
                    index,
                    before,
                    after,
                },
            ) in by_layer
            {
                let n = index.len() as i64;
                let idx = Tensor::from_slice(&index).to(device);
                let now = model
                    .net
                    .value_slots(layer)
                    .index_select(1, &idx)
                    .transpose(0, 1)
                    .to_kind(Kind::Float);
                let before = Tensor::from_slice(&before).to(device).view([n, d]);
                if !now.equal(&before) {
                    return Err(Error::InvalidArgument(format!(
                        "a value slot of layer {layer} has changed since this edit was made"
                    )));
                }
                let after = Tensor::from_slice(&after).to(device).view([n, d]);
                layers.insert(layer, (idx, after - before));
            }
            Ok(())
        })?;
        Ok(Delta {
            first: *layers.keys().next().expect("at least one slot"),
            layers,
        })
    }
}

/// One layer's slots of an edit, flattened.
#[derive(Default)]
struct Slots {
    index: Vec<i64>,
    before: Vec<f32>,
    after: Vec<f32>,
}

/// The unedited pass of a group of steps, keeping the input of the layers
/// where copies start.
struct Inputs {
    batch: Batch,
    lens: Vec<usize>,
    /// Layer → its input `[p, s, d]` (layer 0's: the embeddings).
    x: BTreeMap<usize, Tensor>,
    /// `[p, vocab]` at the blanks.
    logits: Tensor,
}

impl Inputs {
    fn trace(model: &Model, steps: &[Query], keep: &BTreeSet<usize>) -> Result<Inputs> {
        let net = &model.net;
        let ids: Vec<Vec<u32>> = steps.iter().map(|q| q.cloze.ids.clone()).collect();
        let blanks: Vec<usize> = steps.iter().map(|q| q.cloze.blank).collect();
        let batch = Batch::new(&ids, &blanks, net.device())?;
        tch::no_grad(|| {
            let ctx = net.context(&batch);
            let mut x = net.embed(&batch);
            let mut kept = BTreeMap::new();
            for l in 0..net.config().n_layers {
                if keep.contains(&l) {
                    kept.insert(l, x.shallow_clone());
                }
                let (h, _) = net.attention(l, &x, &ctx);
                x = net.ffn_out(l, &h, &net.ffn_act(l, &h));
            }
            Ok(Inputs {
                logits: net.head(&batch.at_blank(&x)),
                batch,
                lens: ids.iter().map(Vec::len).collect(),
                x: kept,
            })
        })
    }

    /// Logits at the blank of copies of the traced steps, row `r` being step
    /// `rows[r].1` under edit `deltas[rows[r].0]`; rows sorted by their edit's
    /// first layer, an edit's rows together. Each row joins at its edit's
    /// first layer from the trace; at the top layer only the blank runs.
    fn edited(&self, model: &Model, rows: &[(usize, usize)], deltas: &[Delta]) -> Result<Tensor> {
        let net = &model.net;
        let top = net.config().n_layers - 1;
        let who: Vec<i64> = rows.iter().map(|&(_, s)| s as i64).collect();
        let s = rows.iter().map(|&(_, st)| self.lens[st]).max().unwrap_or(1);
        let b = self.batch.select(&who).narrow_seq(s);
        // Each edit's rows: (edit, start, len).
        let mut spans: Vec<(usize, i64, i64)> = Vec::new();
        for (r, &(k, _)) in rows.iter().enumerate() {
            match spans.last_mut() {
                Some(sp) if sp.0 == k => sp.2 += 1,
                _ => spans.push((k, r as i64, 1)),
            }
        }
        tch::no_grad(|| -> Result<Tensor> {
            let ctx = net.context(&b);
            let mut x: Option<Tensor> = None;
            let mut running = 0i64;
            for l in deltas[rows[0].0].first..=top {
                let joining: Vec<i64> = spans
                    .iter()
                    .filter(|sp| deltas[sp.0].first == l)
                    .flat_map(|sp| who[sp.1 as usize..(sp.1 + sp.2) as usize].to_vec())
                    .collect();
                if !joining.is_empty() {
                    let traced = &self.x[&l];
                    let idx = Tensor::from_slice(&joining).to(traced.device());
                    let enter = traced.narrow(1, 0, s as i64).index_select(0, &idx);
                    running += joining.len() as i64;
                    x = Some(match x.take() {
                        None => enter,
                        Some(prev) => Tensor::cat(&[prev, enter], 0),
                    });
                }
                let Some(prev) = x.take() else { continue };
                let ctx_l = ctx.rows(0, running);
                let h = if l == top {
                    net.attention_one(l, &prev, &ctx_l, &b.blank.narrow(0, 0, running))
                } else {
                    net.attention(l, &prev, &ctx_l).0
                };
                let a = net.ffn_act(l, &h);
                // `[rows, s, d]`: the width of `a·W_out`, not of `h` (which
                // a parallel block makes wider).
                let (rows, at) = (h.size()[0], h.size()[1]);
                let d = net.config().d_model as i64;
                let change = Tensor::zeros([rows, at, d], (a.kind(), a.device()));
                for &(k, start, len) in spans.iter().filter(|sp| sp.1 < running) {
                    if let Some((idx, delta)) = deltas[k].layers.get(&l) {
                        let extra = a
                            .narrow(0, start, len)
                            .index_select(2, idx)
                            .matmul(&delta.to_kind(a.kind()));
                        let mut mine = change.narrow(0, start, len);
                        let _ = mine.g_add_(&extra);
                    }
                }
                let out = net.ffn_out_plus(l, &h, &a, &change);
                if l == top {
                    // `[rows, 1, d]`: the blank alone ran.
                    return Ok(net.head(&out.squeeze_dim(1)));
                }
                x = Some(out);
            }
            unreachable!("the loop returns at the top layer")
        })
    }
}
