//! The integral of integrated gradients over one chunk of prompts: the stages
//! [`super`] runs for prompts that share every pass.
//!
//! 1. [`Chunk::new`]: trace the prompts once, read each layer's activation
//!    `w̄` at the blanks and, for a masked baseline, where each path starts.
//! 2. [`Chunk::scaled`]: the path's scaled copies in passes ([`Pass`]), each
//!    pass's gradients and P kept on the device ([`Samples`]).
//! 3. [`Chunk::ends`]: the ends of the path that the scaled copies leave out
//!    (`Options::scaled_steps`): P at α = 0 without gradients, and at α = 1 the
//!    traced pass itself, with every layer's gradient from one backward.
//! 4. [`Chunk::pack`]: the Riemann sum per layer and group of rows (a chain's
//!    steps weighted by each other), laid out as [`Packed`] rows.
//! 5. [`Packed::read`]: one device read, unpacked into [`Attribution`]s.

use super::{Attribution, Baseline, Options, Plan, Riemann};
use crate::engine::trace::{plain_logits, scaled_logits, trace, Trace};
use crate::engine::Query;
use crate::models::Model;
use crate::{Error, Result};
use std::ops::Range;
use tch::{Kind, Tensor};

/// The acted steps of one query, as rows of a chunk, and the product `c` of
/// its other steps' probabilities (held as they are).
pub(super) struct Group {
    pub rows: Range<usize>,
    pub c: f64,
}

impl Group {
    pub fn one(row: usize) -> Group {
        Group {
            rows: row..row + 1,
            c: 1.0,
        }
    }
}

/// Prompts traced together, with what every pass over them reads.
pub(super) struct Chunk<'a> {
    model: &'a Model,
    opts: &'a Options,
    groups: &'a [Group],
    /// The layers attributed.
    layers: Range<usize>,
    t: Trace,
    /// `[p]` each row's answer token, and its P on the traced pass.
    targets: Tensor,
    p_target: Tensor,
    /// `[m + 1]` the path's `α_k = k/m`, in the model's dtype (the scaled
    /// activations replace its own).
    alphas: Tensor,
    /// Per layer, `[p, d_ff]` activations at the blanks.
    w: Vec<Tensor>,
    /// Per layer, `[p, d_ff]` where the path starts (`None`: at zero).
    origin: Option<Vec<Tensor>>,
}

/// One pass of scaled copies: `layers` layers from `first`, steps
/// `start..start + steps` of the path.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pass {
    first: usize,
    layers: usize,
    start: i64,
    steps: i64,
}

/// Per layer, the path's samples on the device: gradients `[p, steps, d_ff]`
/// and P `[p, steps]`, in pieces along the steps (α ascending once complete).
pub(super) struct Samples {
    grads: Vec<Vec<Tensor>>,
    probs: Vec<Vec<Tensor>>,
}

impl Samples {
    fn new(n_layers: usize) -> Samples {
        Samples {
            grads: (0..n_layers).map(|_| Vec::new()).collect(),
            probs: (0..n_layers).map(|_| Vec::new()).collect(),
        }
    }
}

impl<'a> Chunk<'a> {
    /// Trace `qs` and read what the passes need.
    pub fn new(
        model: &'a Model,
        qs: &[Query],
        groups: &'a [Group],
        opts: &'a Options,
        layers: Range<usize>,
        baseline: Baseline,
    ) -> Result<Chunk<'a>> {
        let n_layers = model.config().n_layers;
        let t = trace(model, qs)?;
        let origin = match baseline {
            Baseline::Zero => None,
            Baseline::Masked => {
                let masked = qs
                    .iter()
                    .map(|q| q.masked(model))
                    .collect::<Result<Vec<_>>>()?;
                let t0 = trace(model, &masked)?;
                Some(tch::no_grad(|| {
                    (0..n_layers).map(|l| t0.batch.at_blank(&t0.a[l])).collect()
                }))
            }
        };
        let device = model.net.device();
        let m = opts.steps as i64;
        let targets =
            Tensor::from_slice(&qs.iter().map(|q| q.target as i64).collect::<Vec<_>>()).to(device);
        let p_target = t
            .logits
            .softmax(-1, Kind::Float)
            .gather(1, &targets.unsqueeze(1), false)
            .squeeze_dim(1);
        let alphas = (Tensor::arange(m + 1, (Kind::Float, device)) / m as f64).to_kind(model.dtype);
        let w = tch::no_grad(|| (0..n_layers).map(|l| t.batch.at_blank(&t.a[l])).collect());
        Ok(Chunk {
            model,
            opts,
            groups,
            layers,
            t,
            targets,
            p_target,
            alphas,
            w,
            origin,
        })
    }

    fn prompts(&self) -> i64 {
        self.targets.size()[0]
    }

    fn d_ff(&self) -> i64 {
        self.model.config().d_ff as i64
    }

    /// The passes of scaled copies: `plan.layers` layers at a time, each
    /// layer's scaled steps `plan.steps` at a time.
    pub fn passes(&self, plan: &Plan) -> Vec<Pass> {
        let scaled = self.opts.scaled_steps();
        let (s0, s1) = (scaled.start as i64, scaled.end as i64);
        let mut out = Vec::new();
        let mut l = self.layers.start;
        while l < self.layers.end {
            let n = plan.layers.min(self.layers.end - l);
            let mut start = s0;
            while start < s1 {
                let steps = (plan.steps as i64).min(s1 - start);
                out.push(Pass {
                    first: l,
                    layers: n,
                    start,
                    steps,
                });
                start += steps;
            }
            l += n;
        }
        out
    }

    /// P of each row's answer, for rows `rows_per_prompt` per prompt of
    /// `prompts`, repeated for `layers` layers.
    fn row_p(
        &self,
        logits: &Tensor,
        prompts: &Range<i64>,
        rows_per_prompt: i64,
        layers: i64,
    ) -> Tensor {
        let row_targets = self
            .targets
            .narrow(0, prompts.start, prompts.end - prompts.start)
            .repeat_interleave_self_int(rows_per_prompt, Some(0), None)
            .repeat([layers]);
        logits
            .softmax(-1, Kind::Float)
            .gather(1, &row_targets.unsqueeze(1), false)
            .squeeze_dim(1)
    }

    /// Layer `l`'s path at `alpha` (`[1, steps, 1]`) for the prompts
    /// `prompts`, as `[prompts × steps, d_ff]` leaves with gradients.
    fn scaled_acts(&self, l: usize, prompts: &Range<i64>, alpha: &Tensor, steps: i64) -> Tensor {
        let np = prompts.end - prompts.start;
        let w = self.w[l].narrow(0, prompts.start, np).unsqueeze(1);
        match &self.origin {
            None => alpha * w,
            Some(b) => {
                let b = b[l].narrow(0, prompts.start, np).unsqueeze(1);
                &b + alpha * (w - &b)
            }
        }
        .reshape([np * steps, self.d_ff()])
        .detach()
        .set_requires_grad(true)
    }

    /// Every pass of scaled copies, `plan.prompts` traced prompts at a time;
    /// `keep_going(prompts done)` is asked before each pass.
    pub fn scaled(
        &self,
        passes: &[Pass],
        plan: &Plan,
        keep_going: &mut dyn FnMut(usize) -> bool,
    ) -> Result<Samples> {
        let n_layers = self.model.config().n_layers;
        let (pn, d_ff) = (self.prompts(), self.d_ff());
        let mut all = Samples::new(n_layers);
        let mut start_p = 0i64;
        while start_p < pn {
            let prompts = start_p..(start_p + plan.prompts as i64).min(pn);
            let np = prompts.end - prompts.start;
            let mut part = Samples::new(n_layers);
            for pass in passes {
                if !keep_going(start_p as usize) {
                    return Err(Error::Cancelled);
                }
                let Pass {
                    first,
                    layers: n,
                    start,
                    steps,
                } = *pass;
                let alpha = self.alphas.narrow(0, start, steps).view([1, steps, 1]);
                // Rows prompt-major within each layer: prompt p's `steps` scaled copies.
                let who: Vec<i64> = prompts
                    .clone()
                    .flat_map(|p| std::iter::repeat_n(p, steps as usize))
                    .collect();
                let acts: Vec<Tensor> = (first..first + n)
                    .map(|l| self.scaled_acts(l, &prompts, &alpha, steps))
                    .collect();
                let logits = scaled_logits(
                    self.model,
                    &self.t,
                    first,
                    &acts,
                    &vec![who; n],
                    self.opts.mode,
                )?;
                let p = self.row_p(&logits, &prompts, steps, n as i64);
                let leaves: Vec<&Tensor> = acts.iter().collect();
                let g = Tensor::run_backward(&[p.sum(Kind::Float)], &leaves, false, false);
                let p = p.detach();
                let rows = np * steps;
                for (k, l) in (first..first + n).enumerate() {
                    part.grads[l].push(g[k].detach().view([np, steps, d_ff]));
                    part.probs[l].push(p.narrow(0, k as i64 * rows, rows).view([np, steps]));
                }
            }
            // Each group of prompts' pieces joined along the steps.
            for l in self.layers.clone().filter(|&l| !part.grads[l].is_empty()) {
                all.grads[l].push(Tensor::cat(&part.grads[l], 1));
                all.probs[l].push(Tensor::cat(&part.probs[l], 1));
            }
            start_p = prompts.end;
        }
        // Then the groups of prompts along the prompts.
        for l in self.layers.clone() {
            if all.grads[l].len() > 1 {
                all.grads[l] = vec![Tensor::cat(&all.grads[l], 0)];
                all.probs[l] = vec![Tensor::cat(&all.probs[l], 0)];
            }
        }
        Ok(all)
    }

    /// The ends of the path that the scaled steps leave out (see
    /// `Options::scaled_steps`): at α = 0, P alone, from copies without
    /// gradients; at α = 1, the traced pass itself: its P, and the gradient of
    /// every layer from one backward pass.
    pub fn ends(&self, samples: &mut Samples) -> Result<()> {
        let scaled = self.opts.scaled_steps();
        if scaled.start > 0 {
            self.p_at_zero(samples)?;
        }
        if scaled.end <= self.opts.steps {
            self.at_one(samples)?;
        }
        Ok(())
    }

    fn p_at_zero(&self, samples: &mut Samples) -> Result<()> {
        let pn = self.prompts();
        let all = 0..pn;
        let who: Vec<i64> = all.clone().collect();
        // Every traced prompt at once, as many layers per pass as the
        // rows × tokens budget allows (no gradients are kept).
        let per_pass =
            (self.opts.max_row_tokens / (pn as usize * self.t.batch.seq_len).max(1)).max(1);
        tch::no_grad(|| -> Result<()> {
            let mut l = self.layers.start;
            while l < self.layers.end {
                let n = per_pass.min(self.layers.end - l);
                let acts: Vec<Tensor> = (l..l + n)
                    .map(|l| match &self.origin {
                        None => self.w[l].zeros_like(),
                        Some(b) => b[l].shallow_clone(),
                    })
                    .collect();
                let logits = scaled_logits(
                    self.model,
                    &self.t,
                    l,
                    &acts,
                    &vec![who.clone(); n],
                    self.opts.mode,
                )?;
                let p = self.row_p(&logits, &all, 1, n as i64);
                for (k, l) in (l..l + n).enumerate() {
                    samples.probs[l].insert(0, p.narrow(0, k as i64 * pn, pn).view([pn, 1]));
                }
                l += n;
            }
            Ok(())
        })
    }

    fn at_one(&self, samples: &mut Samples) -> Result<()> {
        let pn = self.prompts();
        for l in self.layers.clone() {
            samples.probs[l].push(self.p_target.view([pn, 1]));
        }
        if self.opts.riemann != Riemann::Right {
            return Ok(());
        }
        let leaves: Vec<Tensor> = self
            .layers
            .clone()
            .map(|l| self.w[l].zeros_like().set_requires_grad(true))
            .collect();
        let logits = plain_logits(
            self.model,
            &self.t,
            self.layers.start,
            &leaves,
            self.opts.mode,
        )?;
        let p = self.row_p(&logits, &(0..pn), 1, 1);
        let refs: Vec<&Tensor> = leaves.iter().collect();
        let g = Tensor::run_backward(&[p.sum(Kind::Float)], &refs, false, false);
        for (k, l) in self.layers.clone().enumerate() {
            samples.grads[l].push(g[k].detach().view([pn, 1, self.d_ff()]));
        }
        Ok(())
    }

    /// Whether some group is a chain (several rows, or held factors).
    fn chained(&self) -> bool {
        self.groups.len() < self.prompts() as usize || self.groups.iter().any(|g| g.c != 1.0)
    }

    /// The sum's `m` steps (from 1 or from 0) of a `[p, steps, …]` tensor
    /// whose steps start at `from`: the gradients held start at the first
    /// scaled step (with α = 1's at the end when it came from the traced
    /// pass), the P at 0.
    fn window(&self, x: &Tensor, from: i64) -> Tensor {
        let m = self.opts.steps as i64;
        match self.opts.riemann {
            Riemann::Right => x.narrow(1, 1 - from, m),
            Riemann::Left => x.narrow(1, -from, m),
        }
    }

    /// The Riemann sums of every layer and group, still on the device.
    pub fn pack(&self, samples: &Samples) -> Packed {
        let chained = self.chained();
        let rows: Vec<Tensor> = self
            .layers
            .clone()
            .map(|l| {
                let grads = Tensor::cat(&samples.grads[l], 1); // [p, ≥ m, d_ff]
                let probs = Tensor::cat(&samples.probs[l], 1); // [p, m+1]
                let span = match &self.origin {
                    None => self.w[l].shallow_clone(),
                    Some(b) => &self.w[l] - &b[l],
                };
                if chained {
                    self.chained_layer(l, &grads, &probs, &span)
                } else {
                    self.plain_layer(l, &grads, &probs, &span)
                }
            })
            .collect();
        let p_target = if chained {
            Tensor::stack(
                &self
                    .groups
                    .iter()
                    .map(|g| {
                        self.p_target
                            .narrow(0, g.rows.start as i64, g.rows.len() as i64)
                            .prod(Kind::Float)
                            * g.c
                    })
                    .collect::<Vec<_>>(),
                0,
            )
        } else {
            self.p_target.shallow_clone()
        };
        Packed {
            rows: Tensor::stack(&rows, 0),
            p_target,
            layers: self.layers.len() as i64,
            groups: self.groups.len() as i64,
            d_ff: self.d_ff(),
        }
    }

    /// One row per prompt: `span/m · Σ_k ∂P/∂a`.
    fn plain_layer(&self, l: usize, grads: &Tensor, probs: &Tensor, span: &Tensor) -> Tensor {
        let m = self.opts.steps as i64;
        let s0 = self.opts.scaled_steps().start as i64;
        let summed = self
            .window(grads, s0)
            .sum_dim_intlist(1, false, Kind::Float);
        let s = span * summed / m as f64;
        let ends = Tensor::stack(&[probs.select(1, 0), probs.select(1, m)], 1);
        Packed::row(&s, &self.w[l].to_kind(Kind::Float), &ends)
    }

    /// One row per group: a group's `F(α_k) = c · ∏_rows P_r(α_k)`; row r's
    /// gradient is weighted by the factors other than its own, and the rows'
    /// scores add up.
    fn chained_layer(&self, l: usize, grads: &Tensor, probs: &Tensor, span: &Tensor) -> Tensor {
        let m = self.opts.steps as i64;
        let s0 = self.opts.scaled_steps().start as i64;
        let (mut s, mut act, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        for g in self.groups {
            let (r0, n) = (g.rows.start as i64, g.rows.len() as i64);
            let p = probs.narrow(0, r0, n); // [n, m+1]
            let weights = Tensor::stack(
                &(0..n)
                    .map(|r| {
                        let others: Vec<Tensor> =
                            (0..n).filter(|&o| o != r).map(|o| p.get(o)).collect();
                        if others.is_empty() {
                            p.get(r).ones_like() * g.c
                        } else {
                            Tensor::stack(&others, 0).prod_dim_int(0, false, Kind::Float) * g.c
                        }
                    })
                    .collect::<Vec<_>>(),
                0,
            ); // [n, m+1]
            let weighted = (self.window(&grads.narrow(0, r0, n), s0)
                * self.window(&weights, 0).unsqueeze(2))
            .sum_dim_intlist(1, false, Kind::Float); // [n, d_ff]
            s.push(
                (span.narrow(0, r0, n) * weighted / m as f64).sum_dim_intlist(
                    0,
                    false,
                    Kind::Float,
                ),
            );
            act.push(self.w[l].narrow(0, r0, n).mean_dim(0, false, Kind::Float));
            let f = p.prod_dim_int(0, false, Kind::Float) * g.c; // [m+1]
            ends.push(Tensor::stack(&[f.get(0), f.get(m)], 0));
        }
        Packed::row(
            &Tensor::stack(&s, 0),
            &Tensor::stack(&act, 0),
            &Tensor::stack(&ends, 0),
        )
    }
}

/// A chunk's results on the device, laid out for one read: per layer and
/// group a row `[scores (d_ff) | activations (d_ff) | P(0), P(w̄)]`, and each
/// group's P(y*). [`Packed::row`] writes the layout, [`Packed::read`] reads it.
pub(super) struct Packed {
    /// `[layers, groups, 2·d_ff + 2]`.
    rows: Tensor,
    /// `[groups]`.
    p_target: Tensor,
    layers: i64,
    groups: i64,
    d_ff: i64,
}

impl Packed {
    /// One layer's `[groups, 2·d_ff + 2]` rows from its `[groups, d_ff]`
    /// scores and activations and `[groups, 2]` P(0), P(w̄).
    fn row(scores: &Tensor, activations: &Tensor, ends: &Tensor) -> Tensor {
        Tensor::cat(&[scores, activations, ends], 1)
    }

    /// Read it back (one device read) as one attribution per group.
    pub fn read(self) -> Result<Vec<Attribution>> {
        let Packed {
            rows,
            p_target,
            layers: nl,
            groups: pn,
            d_ff,
        } = self;
        let all = Tensor::cat(&[rows.view(-1), p_target.view(-1)], 0);
        let host = crate::engine::host::to_host(&all.to_kind(Kind::Float));
        let per = 2 * d_ff + 2;
        let table = host.narrow(0, 0, nl * pn * per).view([nl, pn, per]);
        (0..pn)
            .map(|p| {
                let mine = table.select(1, p);
                let scores = mine.narrow(1, 0, d_ff).contiguous();
                let activations = mine.narrow(1, d_ff, d_ff).contiguous();
                let ends: Vec<f32> =
                    Vec::try_from(mine.narrow(1, 2 * d_ff, 2).contiguous().view(-1))?;
                let sums: Vec<f64> = Vec::try_from(scores.sum_dim_intlist(1, false, Kind::Double))?;
                Ok(Attribution {
                    scores,
                    activations,
                    p_target: host.double_value(&[nl * pn * per + p]),
                    p_zero: ends.iter().step_by(2).map(|&x| x as f64).collect(),
                    residual: (0..nl as usize)
                        .map(|i| sums[i] - (ends[2 * i + 1] as f64 - ends[2 * i] as f64))
                        .collect(),
                })
            })
            .collect()
    }
}

/// Integrated gradients of prompts that share every pass: one result per
/// group of rows (one row each, unless they are the steps of a multi-token
/// answer).
pub(super) fn attribute_chunk(
    chunk: &Chunk,
    plan: &Plan,
    keep_going: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<Attribution>> {
    let passes = chunk.passes(plan);
    let mut samples = chunk.scaled(&passes, plan, keep_going)?;
    chunk.ends(&mut samples)?;
    chunk.pack(&samples).read()
}
