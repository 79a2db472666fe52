//! Reversible weight edits (SPEC: "Editing weights").
//!
//! An edit is an [`EditSet`]: for every value slot it touches (column `i` of
//! layer `l`'s `W_out`), the exact contents before and after. Applying writes
//! `after` into the live tensor; undoing writes `before` back, so the logits are
//! restored bit for bit; the files on disk are never written. Each set carries
//! the model's fingerprint, and applying one to another model is an error.

use super::{one_token, Neuron, Query};
use crate::engine::intervene::{random_like, validate};
use crate::engine::readout::probabilities;
use crate::engine::selection::{fact_neurons, FactAttribution, Thresholds};
use crate::models::{Hooks, Model};
use crate::{Error, Result};
use kn_shared::{EditSet, SlotEdit};
use tch::{Kind, Tensor};

/// The identity of the base weights, the same on every device (see
/// [`crate::models::fingerprint`]); computed once when the model was loaded.
pub fn fingerprint(model: &Model) -> String {
    model.fingerprint.clone()
}

/// The fingerprint of `kn` 0.1's first runs (a checksum computed on the
/// model's device): kept only to recognise experiment runs made with it.
pub fn legacy_fingerprint(model: &Model) -> String {
    let c = model.config();
    let net = &model.net;
    let sum = |t: &Tensor| {
        tch::no_grad(|| {
            t.to_kind(Kind::Double)
                .abs()
                .sum(Kind::Double)
                .double_value(&[])
        })
    };
    let check = sum(net.input_embeddings()) + 3.0 * sum(&net.value_slots(0));
    format!(
        "{:?}-{}x{}-d{}-v{}-{:016x}",
        c.arch,
        c.n_layers,
        c.d_ff,
        c.d_model,
        c.vocab_size,
        check.to_bits()
    )
    .to_lowercase()
}

/// Most value slots in one edit set (a bound on its size: an edit set holds
/// `2 × d_model` numbers per slot).
pub const MAX_SLOTS: usize = 512;
/// Largest magnitude of a value written by an edit.
pub const MAX_VALUE: f32 = 1.0e6;

fn slot(model: &Model, n: Neuron) -> Tensor {
    model.net.value_slots(n.layer).select(1, n.index as i64)
}

fn read_slot(model: &Model, n: Neuron) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(slot(model, n).to(tch::Device::Cpu))?)
}

fn write_slot(model: &Model, n: Neuron, values: &[f32]) {
    let src = Tensor::from_slice(values).to(model.net.device());
    tch::no_grad(|| {
        let mut s = slot(model, n);
        s.copy_(&src);
    });
}

fn check(model: &Model, edit: &EditSet, fp: &str) -> Result<()> {
    check_set(model.config(), fp, edit)
}

/// Check that `edit` fits a model with these shapes and fingerprint `fp`:
/// slot count, ranges, slot sizes, finite values of bounded magnitude.
pub fn check_set(cfg: &crate::models::ModelConfig, fp: &str, edit: &EditSet) -> Result<()> {
    if edit.model != fp {
        return Err(Error::InvalidArgument(format!(
            "this edit was made for model `{}`, not for the loaded model `{fp}`",
            edit.model
        )));
    }
    if edit.slots.len() > MAX_SLOTS {
        return Err(Error::InvalidArgument(format!(
            "an edit set changes at most {MAX_SLOTS} value slots; this one changes {}",
            edit.slots.len()
        )));
    }
    let d = cfg.d_model;
    for s in &edit.slots {
        if let Some(x) = s
            .after
            .iter()
            .chain(&s.before)
            .find(|x| !x.is_finite() || x.abs() > MAX_VALUE)
        {
            return Err(Error::InvalidArgument(format!(
                "slot L{}:{} holds {x}: edit values must be finite and at most {MAX_VALUE:e} in magnitude",
                s.layer, s.index
            )));
        }
        validate(
            cfg,
            &[Neuron {
                layer: s.layer,
                index: s.index,
            }],
        )?;
        if s.before.len() != d || s.after.len() != d {
            return Err(Error::InvalidArgument(format!(
                "slot L{}:{} has {} values, the model's are {d}",
                s.layer,
                s.index,
                s.after.len()
            )));
        }
    }
    Ok(())
}

/// Apply an edit set made for this model (with [`fingerprint`] `fp`, taken
/// before any edit). Slots must hold their `before` values.
pub fn apply(model: &Model, edit: &EditSet, fp: &str) -> Result<()> {
    check(model, edit, fp)?;
    for s in &edit.slots {
        let n = Neuron {
            layer: s.layer,
            index: s.index,
        };
        if read_slot(model, n)? != s.before {
            return Err(Error::InvalidArgument(format!(
                "value slot {n} has changed since this edit was made: undo later edits first"
            )));
        }
    }
    for s in &edit.slots {
        write_slot(
            model,
            Neuron {
                layer: s.layer,
                index: s.index,
            },
            &s.after,
        );
    }
    Ok(())
}

/// Undo an applied edit set exactly.
pub fn undo(model: &Model, edit: &EditSet, fp: &str) -> Result<()> {
    check(model, edit, fp)?;
    for s in edit.slots.iter().rev() {
        write_slot(
            model,
            Neuron {
                layer: s.layer,
                index: s.index,
            },
            &s.before,
        );
    }
    Ok(())
}

/// Edit sets applied to the live model for one computation. Dropping it writes
/// back what every touched slot held before, in reverse order, so the weights
/// return to their state bit for bit, also when the computation fails,
/// panics (the drop runs while unwinding) or is cancelled.
#[must_use = "the edits are undone when this guard is dropped"]
pub struct Applied<'a> {
    model: &'a Model,
    /// Each touched slot's contents before the first edit wrote it.
    saved: Vec<(Neuron, Tensor)>,
}

impl<'a> Applied<'a> {
    /// Apply `sets` in order; each must have been made for this model and find
    /// its slots as it expects them (`before`).
    pub fn new(model: &'a Model, sets: &[EditSet]) -> Result<Self> {
        let mut guard = Applied {
            model,
            saved: Vec::new(),
        };
        for set in sets {
            guard.push(set)?;
        }
        Ok(guard)
    }

    /// Apply one more edit set on top of those already applied.
    pub fn push(&mut self, set: &EditSet) -> Result<()> {
        let model = self.model;
        check(model, set, &model.fingerprint)?;
        for s in &set.slots {
            let n = Neuron {
                layer: s.layer,
                index: s.index,
            };
            if read_slot(model, n)? != s.before {
                return Err(Error::InvalidArgument(format!(
                    "value slot {n} does not hold what the edit set `{}` expects: it was made on top of other edit sets; name them before it, in the order they were made",
                    set.description
                )));
            }
        }
        for s in &set.slots {
            let n = Neuron {
                layer: s.layer,
                index: s.index,
            };
            if !self.saved.iter().any(|(m, _)| *m == n) {
                let copy = tch::no_grad(|| slot(model, n).copy());
                self.saved.push((n, copy));
            }
            write_slot(model, n, &s.after);
        }
        Ok(())
    }
}

impl Drop for Applied<'_> {
    fn drop(&mut self) {
        for (n, before) in self.saved.iter().rev() {
            let r = tch::no_grad(|| slot(self.model, *n).f_copy_(before));
            if let Err(e) = r {
                // Nothing sensible is left to do but say so loudly.
                tracing::error!("restoring value slot {n} failed: {e}");
            }
        }
    }
}

/// Options of SPEC's fact update.
#[derive(Debug, Clone, Copy)]
pub struct UpdateOptions {
    /// Neurons kept, top by attribution (4 in the paper).
    pub k: usize,
    pub lambda1: f64,
    pub lambda2: f64,
    /// Rescale each embedding to the norm of the value slot first (the authors' code).
    pub norm_scaled: bool,
}

impl Default for UpdateOptions {
    fn default() -> Self {
        UpdateOptions {
            k: 4,
            lambda1: 1.0,
            lambda2: 8.0,
            norm_scaled: false,
        }
    }
}

/// SPEC's update `<h, r, t> → <h, r, t'>`: for each neuron (already filtered
/// and ordered by the caller; the first `k` are used),
/// `v_i := v_i − λ1·e(t) + λ2·e(t')`.
pub fn update_fact(
    model: &Model,
    neurons: &[Neuron],
    old: u32,
    new: u32,
    opts: &UpdateOptions,
    description: String,
) -> Result<EditSet> {
    // k first: with k = 0 the set below would be empty, and "the neuron set
    // is empty" would blame the wrong thing.
    if opts.k == 0 {
        return Err(Error::InvalidArgument("k must be at least 1".into()));
    }
    let neurons: Vec<Neuron> = neurons.iter().copied().take(opts.k).collect();
    validate(model.config(), &neurons)?;
    let vocab = model.config().vocab_size as u32;
    if old >= vocab || new >= vocab {
        return Err(Error::InvalidArgument(
            "answer token outside the vocabulary".into(),
        ));
    }
    let emb = model.net.input_embeddings();
    let row = |t: u32| emb.get(t as i64).to_kind(model.dtype);
    let (e_old, e_new) = (row(old), row(new));
    let slots = tch::no_grad(|| -> Result<Vec<SlotEdit>> {
        neurons
            .iter()
            .map(|&n| {
                let held = slot(model, n);
                let v = held.to_kind(model.dtype);
                let (mut a, mut b) = (e_old.shallow_clone(), e_new.shallow_clone());
                if opts.norm_scaled {
                    let norm = v.norm();
                    a = &a * &norm / a.norm();
                    b = &b * &norm / b.norm();
                }
                // Recorded as the slot will hold it (a bf16 slot rounds it).
                let after = (&v - a * opts.lambda1 + b * opts.lambda2).to_kind(held.kind());
                Ok(SlotEdit {
                    layer: n.layer,
                    index: n.index,
                    before: Vec::<f32>::try_from(v.to(tch::Device::Cpu))?,
                    after: Vec::<f32>::try_from(after.to(tch::Device::Cpu))?,
                })
            })
            .collect()
    })?;
    Ok(EditSet {
        model: fingerprint(model),
        description,
        slots,
    })
}

/// What erased value slots become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EraseWith {
    /// Zero (the paper).
    #[default]
    Zero,
    /// The `[UNK]` token's embedding (an option of the authors' code).
    Unk,
}

impl std::str::FromStr for EraseWith {
    type Err = Error;

    /// `zero` or `unk`, as the API spells them.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "zero" => Ok(EraseWith::Zero),
            "unk" => Ok(EraseWith::Unk),
            other => Err(Error::InvalidArgument(format!(
                "`with` is `{other}`; use `zero` or `unk`"
            ))),
        }
    }
}

/// SPEC's erase: set the value slots of `neurons` to zero (or `[UNK]`'s embedding).
pub fn erase(
    model: &Model,
    neurons: &[Neuron],
    with: EraseWith,
    description: String,
) -> Result<EditSet> {
    validate(model.config(), neurons)?;
    let fill = match with {
        EraseWith::Zero => Tensor::zeros(
            [model.config().d_model as i64],
            (Kind::Float, tch::Device::Cpu),
        ),
        EraseWith::Unk => {
            let unk = ["[UNK]", "<unk>", "<|endoftext|>"]
                .iter()
                .find_map(|t| model.tokenizer.token_to_id(t))
                .ok_or_else(|| {
                    Error::InvalidArgument(
                        "this tokenizer has no unknown token; erase with zero".into(),
                    )
                })?;
            model
                .net
                .input_embeddings()
                .get(unk as i64)
                .to(tch::Device::Cpu)
        }
    };
    let after = Vec::<f32>::try_from(&fill)?;
    let slots = neurons
        .iter()
        .map(|&n| {
            Ok(SlotEdit {
                layer: n.layer,
                index: n.index,
                before: read_slot(model, n)?,
                after: after.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(EditSet {
        model: fingerprint(model),
        description,
        slots,
    })
}

/// `exp(mean −log P(gold))` over `queries` (each query's target is its gold
/// answer; a multi-token answer's P is the product of its pieces').
pub fn perplexity(model: &Model, queries: &[Query]) -> Result<f64> {
    let (p, _) = probabilities(model, queries, &Hooks::default())?;
    Ok(perplexity_of(&p))
}

/// The perplexity of answers with these probabilities: `exp` of their mean
/// negative log (NaN for none).
pub fn perplexity_of(p: &[f64]) -> f64 {
    let nll: f64 = p
        .iter()
        .map(|&x| -(x.max(f64::MIN_POSITIVE)).ln())
        .sum::<f64>()
        / p.len() as f64;
    nll.exp()
}

/// An edit's success on a fact's prompts, both readings of "changed".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    /// SPEC: the share of prompts whose top-1 is no longer the old answer.
    pub change: f64,
    /// Among the prompts answered correctly before (`known`), the share that
    /// no longer are; `None` when there is none.
    pub change_known: Option<f64>,
    /// The share whose top-1 is the new answer.
    pub success: f64,
    pub prompts: usize,
    pub known: usize,
}

/// Which of `queries` the model answers with their target now (before an
/// edit): its greedy answer is the whole answer.
pub fn known_before(model: &Model, queries: &[Query]) -> Result<Vec<bool>> {
    Ok(super::readout::answers(model, queries, &Hooks::default())?
        .iter()
        .map(|a| a.greedy)
        .collect())
}

/// Rates of the model as it is now (after an edit) on a fact's prompts, whose
/// old answer is each query's target; `known` from [`known_before`]. The one
/// definition the web app and the experiments share.
pub fn rates(model: &Model, queries: &[Query], new: u32, known: &[bool]) -> Result<Rates> {
    let (_, top) = probabilities(model, queries, &Hooks::default())?;
    Ok(rates_of(&top, queries, new, known))
}

/// [`rates`] from the top-1 token of each of `queries` after the edit.
pub fn rates_of(top: &[u32], queries: &[Query], new: u32, known: &[bool]) -> Rates {
    let n = top.len();
    let changed = |i: usize| top[i] != queries[i].target;
    let k = known.iter().filter(|&&x| x).count();
    Rates {
        change: (0..n).filter(|&i| changed(i)).count() as f64 / n as f64,
        change_known: (k > 0)
            .then(|| (0..n).filter(|&i| known[i] && changed(i)).count() as f64 / k as f64),
        success: top.iter().filter(|&&t| t == new).count() as f64 / n as f64,
        prompts: n,
        known: k,
    }
}

/// An edit's effect: apply it, measure rates on `own` (old → new answers) and
/// perplexity on `eval`, then undo it. The model is left as it was.
pub fn measure(
    model: &Model,
    edit: &EditSet,
    fp: &str,
    own: &[Query],
    new: Option<u32>,
    eval: &[Query],
) -> Result<kn_shared::EditMetrics> {
    let ppl_before = if eval.is_empty() {
        None
    } else {
        Some(perplexity(model, eval)?)
    };
    let known = if own.is_empty() {
        Vec::new()
    } else {
        known_before(model, own)?
    };
    if edit.model != fp {
        return Err(Error::InvalidArgument(format!(
            "this edit was made for model `{}`, not for the loaded model `{fp}`",
            edit.model
        )));
    }
    let applied = Applied::new(model, std::slice::from_ref(edit))?;
    let r = if own.is_empty() {
        None
    } else {
        Some(rates(model, own, new.unwrap_or(u32::MAX), &known)?)
    };
    let perplexity = match ppl_before {
        Some(before) => vec![kn_shared::PerplexityChange {
            set: "eval".into(),
            prompts: eval.len(),
            before,
            after: perplexity(model, eval)?,
        }],
        None => vec![],
    };
    drop(applied);
    Ok(kn_shared::EditMetrics {
        change_rate: r.map_or(0.0, |r| r.change),
        success_rate: r.map_or(0.0, |r| r.success),
        perplexity,
        change_rate_known: r.and_then(|r| r.change_known),
        prompts: r.map_or(0, |r| r.prompts),
        known_prompts: r.map_or(0, |r| r.known),
    })
}

/// Undo `edit` only if its slots still hold what it wrote (so a later edit of
/// the same slots is not silently clobbered).
pub fn undo_checked(model: &Model, edit: &EditSet, fp: &str) -> Result<()> {
    for s in &edit.slots {
        let n = Neuron {
            layer: s.layer,
            index: s.index,
        };
        if read_slot(model, n)? != s.after {
            return Err(Error::InvalidArgument(format!(
                "value slot {n} was changed by a later edit: undo that one first"
            )));
        }
    }
    undo(model, edit, fp)
}

/// A fact update, planned and measured but not applied.
pub struct PlannedUpdate {
    pub edit: EditSet,
    /// Its effect on the fact's prompts and on `eval`.
    pub metrics: kn_shared::EditMetrics,
    /// The same update on random neurons of the same count (seed 0), as a control.
    pub random: kn_shared::EditMetrics,
}

/// What a fact update asks for.
pub struct FactUpdate<'a> {
    /// The current answer t and the new one t′ (one token each).
    pub target: &'a str,
    pub new_target: &'a str,
    /// How the fact's knowledge neurons are selected.
    pub thresholds: Thresholds,
    /// Neurons never edited (e.g. those its relation's facts share).
    pub exclude: &'a [Neuron],
    pub opts: UpdateOptions,
    /// Prompts of other facts, for the perplexity side effect.
    pub eval: &'a [Query],
    /// What the edit set says it does.
    pub description: String,
}

/// The neurons a fact update edits: the fact's refined knowledge neurons
/// without `exclude`, strongest first (the update takes the first `k`).
pub fn update_neurons(
    model: &Model,
    fact: &FactAttribution,
    target: &str,
    th: &Thresholds,
    exclude: &[Neuron],
) -> Result<Vec<Neuron>> {
    let mut chosen = fact_neurons(model, fact, target, th)?.knowledge;
    chosen.retain(|n| !exclude.contains(&n.neuron()));
    chosen.sort_by(|a, b| b.score.total_cmp(&a.score));
    if chosen.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "`{target}` has no knowledge neurons to edit at t = {}, p = {} on these prompts: add paraphrases or lower t or p",
            th.t, th.p
        )));
    }
    Ok(chosen.iter().map(|n| n.neuron()).collect())
}

/// SPEC's fact update from an attributed fact: its refined knowledge neurons
/// (without `exclude`, e.g. relation-shared ones), strongest first, the top `k`
/// edited towards `new_target`; measured on the fact's prompts and `eval`, with
/// the random-neuron control. The model is left as it was.
pub fn plan_update(
    model: &Model,
    fact: &FactAttribution,
    update: &FactUpdate,
) -> Result<PlannedUpdate> {
    let FactUpdate {
        target,
        new_target,
        thresholds: ref th,
        exclude,
        ref opts,
        eval,
        ref description,
    } = *update;
    let qs = &fact.queries;
    let first = qs
        .first()
        .ok_or_else(|| Error::InvalidArgument("a fact needs at least one prompt".into()))?;
    one_token(model, qs)?;
    let (old, new) = (
        first.target,
        crate::cloze::target_id(model, &first.cloze, new_target)?,
    );
    let neurons = update_neurons(model, fact, target, th, exclude)?;
    let fp = fingerprint(model);
    let edit = update_fact(model, &neurons, old, new, opts, description.clone())?;
    let metrics = measure(model, &edit, &fp, qs, Some(new), eval)?;
    let rnd = random_like(model.config(), &neurons[..neurons.len().min(opts.k)], 0);
    let control = update_fact(
        model,
        &rnd,
        old,
        new,
        opts,
        format!("{description}, random neurons"),
    )?;
    let random = measure(model, &control, &fp, qs, Some(new), eval)?;
    Ok(PlannedUpdate {
        edit,
        metrics,
        random,
    })
}
