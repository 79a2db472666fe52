//! `kn edit update|erase|apply`: reversible weight edits, in memory only.

use super::args::{queries, FactArgs, IgArgs, SelectArgs};
use anyhow::Context;
use clap::Subcommand;
use kn::engine::edit::{self, EraseWith, UpdateOptions};
use kn::engine::neurons::attribute_fact;
use kn::engine::Query;
use kn::source::DEFAULT_MODEL;
use kn_shared::PredictRequest;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum EditCmd {
    /// Update a fact `t → t'` through its knowledge neurons (SPEC).
    Update {
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
        /// Write the edit set to this JSON file.
        #[arg(long)]
        save: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Set value slots to zero (or to [UNK]'s embedding).
    Erase {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: String,
        #[arg(long, value_delimiter = ',', required = true)]
        neurons: Vec<kn_shared::Neuron>,
        #[arg(long, value_enum, default_value = "zero")]
        with: EraseWith,
        #[command(flatten)]
        eval: EvalArgs,
        #[arg(long)]
        save: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Load a saved edit set, apply it, and predict.
    Apply {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: String,
        /// Edit set JSON (from --save).
        #[arg(long)]
        edits: PathBuf,
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 10)]
        top_k: usize,
    },
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

pub fn run(cmd: EditCmd, device: tch::Device) -> anyhow::Result<()> {
    match cmd {
        EditCmd::Update {
            fact,
            ig,
            sel,
            new_target,
            k,
            lambda1,
            lambda2,
            norm_scaled,
            exclude,
            eval,
            save,
            json,
        } => {
            let m = kn::load_model(&fact.model, device)?;
            let eval = eval.queries(&m)?;
            let qs = queries(&m, &fact)?;
            // An update is defined on one-token answers: say so before the work.
            kn::engine::edit::one_token(&m, &qs)?;
            let fa = attribute_fact(&m, qs, &ig.options(device))?;
            let opts = UpdateOptions {
                k,
                lambda1,
                lambda2,
                norm_scaled,
            };
            let desc = format!(
                "update {:?} -> {:?} ({})",
                fact.target, new_target, fact.model
            );
            let plan = edit::plan_update(
                &m,
                &fa,
                &fact.target,
                &new_target,
                &sel.thresholds(),
                &exclude,
                &opts,
                &eval,
                desc.clone(),
            )?;
            let (e, metrics, random) = (plan.edit, plan.metrics, Some(plan.random));
            if let Some(path) = &save {
                std::fs::write(path, serde_json::to_string_pretty(&e)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let report = kn_shared::EditReport {
                edit: e,
                metrics,
                random,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(());
            }
            println!(
                "{desc}: edited {}",
                report
                    .edit
                    .slots
                    .iter()
                    .map(|s| format!("L{}:{}", s.layer, s.index))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            print_metrics("knowledge", &report.metrics);
            if let Some(r) = &report.random {
                print_metrics("random neurons", r);
            }
            if let Some(path) = save {
                println!("saved to {}", path.display());
            }
        }
        EditCmd::Erase {
            model,
            neurons,
            with,
            eval,
            save,
            json,
        } => {
            let m = kn::load_model(&model, device)?;
            let fp = edit::fingerprint(&m);
            let eval = eval.queries(&m)?;
            let e = edit::erase(
                &m,
                &neurons,
                with,
                format!("erase {} neurons ({model})", neurons.len()),
            )?;
            let metrics = edit::measure(&m, &e, &fp, &[], None, &eval)?;
            if let Some(path) = &save {
                std::fs::write(path, serde_json::to_string_pretty(&e)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let report = kn_shared::EditReport {
                edit: e,
                metrics,
                random: None,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", report.edit.description);
                print_metrics("erased", &report.metrics);
            }
        }
        EditCmd::Apply {
            model,
            edits,
            prompt,
            top_k,
        } => {
            let m = kn::load_model(&model, device)?;
            let fp = edit::fingerprint(&m);
            let text = std::fs::read_to_string(&edits)
                .with_context(|| format!("reading {}", edits.display()))?;
            let e: kn_shared::EditSet = serde_json::from_str(&text)
                .with_context(|| format!("{} is not an edit set", edits.display()))?;
            edit::apply(&m, &e, &fp)?;
            let r = kn::predict::predict(
                &m,
                &PredictRequest {
                    edits: Vec::new(),
                    model: Some(model),
                    prompt,
                    target: None,
                    top_k,
                },
            )?;
            println!("with edit: {}", e.description);
            for (i, t) in r.top_k.iter().enumerate() {
                println!("{:>5}  {:<8.5}  {:?}", i + 1, t.prob, t.token);
            }
        }
    }
    Ok(())
}
