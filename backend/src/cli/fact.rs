//! `kn attribute`, `kn neurons`, `kn intervene`: one fact's attribution, its
//! knowledge neurons, and what suppressing or amplifying them does.

use super::args::{queries, FactArgs, IgArgs, Place, SelectArgs, UnrelatedArgs};
use kn::engine::attribution;
use kn::engine::intervene::{self as iv, random_like};
use kn::engine::selection::{attribute_fact, fact_neurons};

#[derive(clap::Args)]
pub struct AttributeArgs {
    #[command(flatten)]
    pub fact: FactArgs,
    #[command(flatten)]
    pub ig: IgArgs,
    /// How many top neurons to list per prompt (text output).
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    #[arg(long)]
    pub json: bool,
}

pub fn attribute(a: AttributeArgs, at: Place) -> anyhow::Result<()> {
    let device = at.device;
    let AttributeArgs {
        fact,
        ig,
        top,
        json,
    } = a;
    let m = at.load(&fact.model)?;
    let qs = queries(&m, &fact)?;
    let mut out = Vec::new();
    for q in &qs {
        let a = attribution::attribute(&m, q, &ig.options(device))?;
        if json {
            out.push(kn::engine::attribution::to_shared(&m, q, &a)?);
            continue;
        }
        println!(
            "prompt  {:?}   P({:?}) = {:.5}",
            q.prompt,
            q.answer
                .iter()
                .map(|&t| m.tokenizer.token_text(t))
                .collect::<String>(),
            a.p_target
        );
        println!("  top neurons (layer:index  score  activation)");
        for (n, s, act) in table(&m, &a, top) {
            println!("    {n:<10} {s:>12.6e} {act:>10.4}");
        }
        let worst = a.residual.iter().map(|r| r.abs()).fold(0.0, f64::max);
        println!("  completeness: max |Σ Attr − (P(w̄) − P(0))| over layers = {worst:.3e}\n");
    }
    if json {
        println!("{}", serde_json::to_string(&out)?);
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct NeuronsArgs {
    #[command(flatten)]
    pub fact: FactArgs,
    #[command(flatten)]
    pub ig: IgArgs,
    #[command(flatten)]
    pub sel: SelectArgs,
    #[arg(long)]
    pub json: bool,
}

pub fn neurons(a: NeuronsArgs, at: Place) -> anyhow::Result<()> {
    let device = at.device;
    let NeuronsArgs {
        fact,
        ig,
        sel,
        json,
    } = a;
    let m = at.load(&fact.model)?;
    let fa = attribute_fact(&m, queries(&m, &fact)?, &ig.options(device))?;
    let r = fact_neurons(&m, &fa, &fact.target, &sel.thresholds())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    for p in &r.prompts {
        println!(
            "P = {:.5}  coarse {:>3} knowledge / {:>3} baseline   {:?}",
            p.p_target, p.coarse_knowledge, p.coarse_baseline, p.prompt
        );
    }
    println!(
        "\nknowledge neurons (t = {}, p = {}, {} prompts):",
        r.t,
        r.p,
        r.prompts.len()
    );
    print_neurons(&r.knowledge);
    println!(
        "baseline neurons (activation, t tuned to {}):",
        r.baseline_t
    );
    print_neurons(&r.baseline);
    println!(
        "overlap: {:?}",
        r.overlap
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct InterveneArgs {
    #[command(flatten)]
    pub fact: FactArgs,
    #[command(flatten)]
    pub ig: IgArgs,
    #[command(flatten)]
    pub sel: SelectArgs,
    /// Neurons to scale (LAYER:INDEX, comma-separated); default: the fact's
    /// refined knowledge neurons, with baseline and random controls.
    #[arg(long, value_delimiter = ',')]
    pub neurons: Vec<kn_shared::Neuron>,
    /// Scale factor; default: both 0 (suppress) and 2 (amplify).
    #[arg(long)]
    pub factor: Option<f64>,
    /// Seed of the random-neuron control.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub unrelated: UnrelatedArgs,
    #[arg(long)]
    pub json: bool,
}

pub fn intervene(a: InterveneArgs, at: Place) -> anyhow::Result<()> {
    let device = at.device;
    let InterveneArgs {
        fact,
        ig,
        sel,
        neurons,
        factor,
        seed,
        unrelated,
        json,
    } = a;
    let m = at.load(&fact.model)?;
    let qs = queries(&m, &fact)?;
    let unrelated = unrelated.queries(&m, &fact)?;
    let (kn_set, base_set) = if neurons.is_empty() {
        let fa = attribute_fact(&m, qs.clone(), &ig.options(device))?;
        let r = fact_neurons(&m, &fa, &fact.target, &sel.thresholds())?;
        let k: Vec<_> = r.knowledge.iter().map(|n| n.neuron()).collect();
        let b: Vec<_> = r.baseline.iter().map(|n| n.neuron()).collect();
        if k.is_empty() {
            anyhow::bail!(
                "the fact has no refined knowledge neurons at t = {}, p = {}; lower --p or --t",
                sel.t,
                sel.p
            );
        }
        (k, Some(b).filter(|b| !b.is_empty()))
    } else {
        (neurons, None)
    };
    let factors = factor.map_or(vec![0.0, 2.0], |f| vec![f]);
    let mut reports = Vec::new();
    for f in factors {
        let random = random_like(m.config(), &kn_set, seed);
        reports.push(kn_shared::InterventionReport {
            factor: f,
            knowledge: iv::intervene(&m, &qs, &kn_set, f)?,
            baseline: base_set
                .as_ref()
                .map(|b| iv::intervene(&m, &qs, b, f))
                .transpose()?,
            random: Some(iv::intervene(&m, &qs, &random, f)?),
            unrelated: (!unrelated.is_empty())
                .then(|| iv::intervene(&m, &unrelated, &kn_set, f))
                .transpose()?,
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
        return Ok(());
    }
    println!(
        "knowledge neurons: {}",
        kn_set
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for r in &reports {
        println!(
            "\nfactor {} ({})",
            r.factor,
            if r.factor == 0.0 {
                "suppress"
            } else if r.factor > 1.0 {
                "amplify"
            } else {
                "scale"
            }
        );
        print_effect("knowledge neurons", &r.knowledge);
        if let Some(e) = &r.baseline {
            print_effect("baseline neurons", e);
        }
        if let Some(e) = &r.random {
            print_effect("random neurons", e);
        }
        if let Some(e) = &r.unrelated {
            print_effect("knowledge, unrelated prompts", e);
        }
    }
    Ok(())
}

fn table(
    m: &kn::Model,
    a: &kn::engine::attribution::Attribution,
    top: usize,
) -> Vec<(kn_shared::Neuron, f64, f64)> {
    let d_ff = m.config().d_ff as i64;
    let (vals, idx) = a.scores.flatten(0, 1).topk(top as i64, 0, true, true);
    let vals: Vec<f32> = Vec::try_from(&vals).unwrap_or_default();
    let idx: Vec<i64> = Vec::try_from(&idx).unwrap_or_default();
    idx.iter()
        .zip(vals)
        .map(|(&f, v)| {
            let n = kn_shared::Neuron {
                layer: (f / d_ff) as usize,
                index: (f % d_ff) as usize,
            };
            (
                n,
                v as f64,
                a.activations
                    .double_value(&[n.layer as i64, n.index as i64]),
            )
        })
        .collect()
}

fn print_neurons(ns: &[kn_shared::ScoredNeuron]) {
    for n in ns {
        println!(
            "  {:<10} in {:>2} prompts   score {:.4e}   activation {:.4}",
            n.neuron().to_string(),
            n.prompts,
            n.score,
            n.activation
        );
    }
}

fn print_effect(label: &str, e: &kn_shared::InterventionEffect) {
    println!(
        "  {label:<28} {:>3} neurons   mean P {:.5} -> {:.5}   change {:+.2}%",
        e.neurons.len(),
        e.mean_before,
        e.mean_after,
        100.0 * e.relative_change
    );
}
