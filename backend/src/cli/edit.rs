//! `kn edit update|erase|apply`: reversible weight edits, in memory only.

use super::args::{queries, FactArgs, IgArgs, Place, SelectArgs};
use anyhow::Context;
use clap::Subcommand;
use kn::engine::edit::{self, EraseWith, UpdateOptions};
use kn::engine::selection::attribute_fact;
use kn::engine::Query;
use kn::source::DEFAULT_MODEL;
use kn_shared::PredictRequest;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum EditCmd {
    /// Update a fact `t → t'` through its knowledge neurons (SPEC).
    Update(UpdateArgs),
    /// Set value slots to zero (or to [UNK]'s embedding).
    Erase(EraseArgs),
    /// Load a saved edit set, apply it, and predict.
    Apply(ApplyArgs),
}

/// `kn edit update`'s settings.
#[derive(clap::Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    fact: FactArgs,
    #[command(flatten)]
    ig: IgArgs,
    #[command(flatten)]
    sel: SelectArgs,
    /// The new answer t'.
    #[arg(long)]
    new_target: String,
    /// Neurons kept, top by attribution.
    #[arg(long, default_value_t = 4)]
    k: usize,
    #[arg(long, default_value_t = 1.0)]
    lambda1: f64,
    #[arg(long, default_value_t = 8.0)]
    lambda2: f64,
    /// Rescale embeddings to the value slot's norm first (the authors' code).
    #[arg(long)]
    norm_scaled: bool,
    /// Relation-shared neurons to leave alone (LAYER:INDEX, comma-separated).
    #[arg(long, value_delimiter = ',')]
    exclude: Vec<kn_shared::Neuron>,
    #[command(flatten)]
    eval: EvalArgs,
    #[command(flatten)]
    out: Output,
}

/// `kn edit erase`'s settings.
#[derive(clap::Args)]
pub struct EraseArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: String,
    #[arg(long, value_delimiter = ',', required = true)]
    neurons: Vec<kn_shared::Neuron>,
    #[arg(long, value_enum, default_value = "zero")]
    with: EraseWith,
    #[command(flatten)]
    eval: EvalArgs,
    #[command(flatten)]
    out: Output,
}

/// `kn edit apply`'s settings.
#[derive(clap::Args)]
pub struct ApplyArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: String,
    /// Edit set JSON (from --save).
    #[arg(long)]
    edits: PathBuf,
    #[arg(long)]
    prompt: String,
    #[arg(long, default_value_t = 10)]
    top_k: usize,
}

/// Where an edit goes: a file, and JSON or text on stdout.
#[derive(clap::Args)]
pub struct Output {
    /// Write the edit set to this JSON file.
    #[arg(long)]
    save: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

impl Output {
    /// Save the edit set if asked; print the report as JSON and say `true`
    /// when asked, else leave the text to the caller.
    fn write(&self, report: &kn_shared::EditReport) -> anyhow::Result<bool> {
        if let Some(path) = &self.save {
            std::fs::write(path, serde_json::to_string_pretty(&report.edit)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if self.json {
            println!("{}", serde_json::to_string_pretty(report)?);
        }
        Ok(self.json)
    }
}

/// Prompts on which to measure an edit's side effects (perplexity).
#[derive(clap::Args)]
pub struct EvalArgs {
    /// An evaluation prompt (repeatable); its gold answer is the matching --eval-target.
    #[arg(long = "eval-prompt")]
    eval_prompts: Vec<String>,
    #[arg(long = "eval-target")]
    eval_targets: Vec<String>,
}

impl EvalArgs {
    fn queries(&self, m: &kn::Model) -> anyhow::Result<Vec<Query>> {
        if self.eval_prompts.len() != self.eval_targets.len() {
            anyhow::bail!("give one --eval-target per --eval-prompt");
        }
        self.eval_prompts
            .iter()
            .zip(&self.eval_targets)
            .map(|(p, t)| Ok(Query::new(m, p, t)?))
            .collect()
    }
}

fn print_metrics(label: &str, x: &kn_shared::EditMetrics) {
    print!(
        "  {label:<16} change rate {:>5.1}%   success rate {:>5.1}%",
        100.0 * x.change_rate,
        100.0 * x.success_rate
    );
    for p in &x.perplexity {
        print!(
            "   perplexity ({} prompts) {:.2} -> {:.2}",
            p.prompts, p.before, p.after
        );
    }
    println!();
}

pub fn run(cmd: EditCmd, at: Place) -> anyhow::Result<()> {
    match cmd {
        EditCmd::Update(a) => update(a, at),
        EditCmd::Erase(a) => erase(a, at),
        EditCmd::Apply(a) => apply(a, at),
    }
}

/// `kn edit update`: attribute the fact, edit its top knowledge neurons and
/// measure the edit against the same edit on random neurons.
fn update(a: UpdateArgs, at: Place) -> anyhow::Result<()> {
    let device = at.device;
    let m = at.load(&a.fact.model)?;
    let eval = a.eval.queries(&m)?;
    let qs = queries(&m, &a.fact)?;
    // An update is defined on one-token answers: say so before the work.
    kn::engine::one_token(&m, &qs)?;
    let fa = attribute_fact(&m, qs, &a.ig.options(device))?;
    let desc = format!(
        "update {:?} -> {:?} ({})",
        a.fact.target, a.new_target, a.fact.model
    );
    let update = edit::FactUpdate {
        target: &a.fact.target,
        new_target: &a.new_target,
        thresholds: a.sel.thresholds(),
        exclude: &a.exclude,
        opts: UpdateOptions {
            k: a.k,
            lambda1: a.lambda1,
            lambda2: a.lambda2,
            norm_scaled: a.norm_scaled,
        },
        eval: &eval,
        description: desc.clone(),
    };
    let plan = edit::plan_update(&m, &fa, &update)?;
    let report = kn_shared::EditReport {
        edit: plan.edit,
        metrics: plan.metrics,
        random: Some(plan.random),
    };
    if a.out.write(&report)? {
        return Ok(());
    }
    let slots: Vec<String> = report
        .edit
        .slots
        .iter()
        .map(|s| format!("L{}:{}", s.layer, s.index))
        .collect();
    println!("{desc}: edited {}", slots.join(" "));
    print_metrics("knowledge", &report.metrics);
    if let Some(r) = &report.random {
        print_metrics("random neurons", r);
    }
    if let Some(path) = &a.out.save {
        println!("saved to {}", path.display());
    }
    Ok(())
}

/// `kn edit erase`: erase value slots and measure the side effects.
fn erase(a: EraseArgs, at: Place) -> anyhow::Result<()> {
    let m = at.load(&a.model)?;
    let fp = edit::fingerprint(&m);
    let eval = a.eval.queries(&m)?;
    let e = edit::erase(
        &m,
        &a.neurons,
        a.with,
        format!("erase {} neurons ({})", a.neurons.len(), a.model),
    )?;
    let metrics = edit::measure(&m, &e, &fp, &[], None, &eval)?;
    let report = kn_shared::EditReport {
        edit: e,
        metrics,
        random: None,
    };
    if !a.out.write(&report)? {
        println!("{}", report.edit.description);
        print_metrics("erased", &report.metrics);
    }
    Ok(())
}

/// `kn edit apply`: a saved edit set applied, then a prediction.
fn apply(a: ApplyArgs, at: Place) -> anyhow::Result<()> {
    let m = at.load(&a.model)?;
    let fp = edit::fingerprint(&m);
    let text = std::fs::read_to_string(&a.edits)
        .with_context(|| format!("reading {}", a.edits.display()))?;
    let e: kn_shared::EditSet = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an edit set", a.edits.display()))?;
    edit::apply(&m, &e, &fp)?;
    let r = kn::predict::predict(
        &m,
        &PredictRequest {
            edits: Vec::new(),
            model: Some(a.model),
            prompt: a.prompt,
            target: None,
            top_k: a.top_k,
        },
    )?;
    println!("with edit: {}", e.description);
    for (i, t) in r.top_k.iter().enumerate() {
        println!("{:>5}  {:<8.5}  {:?}", i + 1, t.prob, t.token);
    }
    Ok(())
}
