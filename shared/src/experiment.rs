//! The ParaRel experiment report (`kn experiment report`, `GET /api/experiments/{name}`):
//! the paper's tables regenerated from a run's stored neurons.
//!
//! Relative changes are fractions (−0.29 is −29%); rates are fractions in `[0, 1]`.

use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// A stored experiment run, as `GET /api/experiments` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentSummary {
    /// The run's folder name; the permalink is `/?view=experiments&run=<name>`.
    pub name: String,
    pub model: String,
    pub facts_done: usize,
    pub relations: usize,
    /// Whether `kn experiment report` has been run on it.
    pub has_report: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentReport {
    pub name: String,
    pub model: String,
    /// Fingerprint of the model's weights the run used.
    pub fingerprint: String,
    /// A masked LM (all templates) or a causal LM (templates ending in the blank).
    pub masked: bool,
    pub settings: ExperimentSettings,
    pub coverage: Coverage,
    pub knowledge: SetStats,
    pub baseline: SetStats,
    /// Model layers (the length of the layer histograms).
    pub layers: usize,
    pub relations: Vec<RelationRow>,
    /// Means over all facts.
    pub suppress: Effects,
    pub amplify: Effects,
    pub bingrel: Option<BingRel>,
    pub update: Option<UpdateSummary>,
    pub erase: Vec<EraseRow>,
    /// Seconds of attribution summed over facts, and seconds the report took.
    pub attribution_seconds: f64,
    pub report_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExperimentSettings {
    /// Integrated-gradients steps m.
    pub steps: usize,
    pub riemann: String,
    /// Coarse threshold t.
    pub t: f64,
    /// Starting refining share p (adapted per relation).
    pub p: f64,
    pub min_prompts: usize,
    pub seed: u64,
    /// `None`: every fact.
    pub facts_per_relation: Option<usize>,
    /// Relations asked for (empty: all).
    pub relations: Vec<String>,
}

/// How much of ParaRel the run covers, and why facts were left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Coverage {
    pub relations: usize,
    pub facts: usize,
    /// Prompts from every template.
    pub prompts: usize,
    /// Prompts this model can use (a causal model: the blank ends the template).
    pub usable_prompts: usize,
    /// Facts whose answer this model's tokenizer splits into several tokens.
    pub multi_token: usize,
    /// Facts of relations without a usable template.
    pub no_template: usize,
    /// Facts whose prompt cannot be built (too long for the model, or the
    /// tokenizer refuses it).
    #[serde(default)]
    pub unusable: usize,
    pub eligible_facts: usize,
    pub eligible_prompts: usize,
    /// Facts chosen (all eligible, or the seeded sample, and the known facts).
    pub planned: usize,
    /// Of those, facts chosen because the model answers them correctly on at
    /// least one prompt (for the update experiment; some may also be in the
    /// sample).
    #[serde(default)]
    pub known_planned: usize,
    pub done: usize,
    /// Facts whose attribution failed (the message is stored with the fact).
    pub failed: usize,
    /// Relations left out because the model can use fewer than 4 of their
    /// templates (SPEC's rule, applied to usable templates): their facts
    /// would have too few prompts to refine.
    #[serde(default)]
    pub unrefinable: Vec<Unrefinable>,
}

/// A relation the run leaves out: too few usable templates to refine with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Unrefinable {
    pub relation: String,
    pub usable_templates: usize,
    pub facts: usize,
}

/// Statistics of one neuron kind (knowledge or baseline).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetStats {
    pub per_fact: f64,
    /// Facts with no neuron at all.
    pub empty_facts: usize,
    /// Mean |A ∩ B| over pairs of facts of one relation, and of two relations.
    pub shared_intra: f64,
    pub shared_inter: f64,
    /// Neurons per layer, summed over facts.
    pub per_layer: Vec<usize>,
}

/// Mean relative change of P(answer) over facts; `None` when no fact had a set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Effects {
    pub knowledge: Option<f64>,
    pub baseline: Option<f64>,
    /// Random neurons, as many per layer as the knowledge neurons.
    pub random: Option<f64>,
    /// The knowledge neurons applied to a prompt of another relation's fact.
    pub unrelated: Option<f64>,
    /// Facts averaged (those with knowledge neurons).
    pub facts: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RelationRow {
    pub id: String,
    pub label: String,
    pub kind: String,
    pub facts: usize,
    /// The adapted refining share.
    pub p: f64,
    pub knowledge_per_fact: f64,
    pub baseline_per_fact: f64,
    /// Neurons shared by at least 10% of the relation's facts.
    pub shared_neurons: usize,
    pub suppress: Effects,
    pub amplify: Effects,
}

/// Mean activation of a neuron set at the blank, per sentence group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivationGroups {
    /// Web sentences with head and tail, the tail blanked.
    pub expressing: f64,
    /// Sentences with the head only, a random word blanked.
    pub head_only: f64,
    /// Prompts of other facts.
    pub other_prompts: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BingRel {
    pub facts: usize,
    pub expressing_sentences: usize,
    pub head_only_sentences: usize,
    pub other_prompts: usize,
    pub knowledge: ActivationGroups,
    pub baseline: ActivationGroups,
}

/// One update variant's means over the edited facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateMetrics {
    pub change_rate: f64,
    pub success_rate: f64,
    pub intra_before: f64,
    pub intra_after: f64,
    pub inter_before: f64,
    pub inter_after: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KRates {
    pub k: usize,
    /// Edited facts with at least `k` knowledge neurons (the others are left out).
    #[serde(default)]
    pub facts: usize,
    pub change_rate: f64,
    pub success_rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateSummary {
    pub facts: usize,
    /// Prompts of the edited facts.
    #[serde(default)]
    pub prompts: usize,
    /// Of those, the prompts whose top-1 was the old answer before the edit:
    /// the change rate counts only these (a prompt the model already got
    /// wrong cannot be "changed" by the edit).
    #[serde(default)]
    pub known_prompts: usize,
    pub k: usize,
    pub lambda1: f64,
    pub lambda2: f64,
    pub norm_scaled: bool,
    pub knowledge: UpdateMetrics,
    pub random: UpdateMetrics,
    /// Change and success rates as `k` grows (knowledge neurons).
    pub k_sweep: Vec<KRates>,
}

/// Perplexity and top-1 accuracy on a prompt set, before and after an erasure.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PplAcc {
    pub prompts: usize,
    pub ppl_before: f64,
    pub ppl_after: f64,
    pub acc_before: f64,
    pub acc_after: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EraseRow {
    pub relation: String,
    pub neurons: usize,
    /// The erased relation's prompts.
    pub intra: PplAcc,
    /// Prompts of the other relations.
    pub inter: PplAcc,
}

/// The paper's figures for BERT-base-cased (SPEC's table), to print beside ours.
pub const PAPER: &[(&str, &str, &str)] = &[
    ("neurons per fact", "4.13", "tuned to 2–5"),
    (
        "shared neurons, fact pairs of one relation / of two relations",
        "1.23 / 0.09",
        "",
    ),
    (
        "suppress: change of the answer's probability",
        "−29.03%",
        "−1.47%",
    ),
    ("amplify", "+31.17%", "−1.27%"),
    (
        "update facts: change rate / success rate",
        "48.5% / 34.4%",
        "random neurons 4.7% / 0.0%",
    ),
    (
        "update facts: perplexity increase intra / inter",
        "8.4 / 7.2",
        "random neurons: inter 4.3",
    ),
    (
        "erase P19 / P106: perplexity before → after",
        "1450 → 2996 / 2279 → 5202",
        "",
    ),
    (
        "BingRel mean activation: expressing / head only / random",
        "0.485 / 0.019 / −0.018",
        "",
    ),
];

/// The report's charts: file stem and title, in order.
pub const CHARTS: &[(&str, &str)] = &[
    ("suppress", "Suppressing neurons (×0), per relation"),
    ("amplify", "Amplifying neurons (×2), per relation"),
    ("layers", "Where the neurons are: share per layer"),
    ("bingrel", "BingRel: mean activation at the blank"),
    ("update", "Updating facts: change and success rates"),
    ("update_k", "Updating facts: rates as k grows"),
    ("erase", "Erasing a relation: perplexity after / before"),
];

impl ExperimentReport {
    /// Whether the report has the data for chart `name` (see [`CHARTS`]).
    pub fn has_chart(&self, name: &str) -> bool {
        match name {
            "bingrel" => self.bingrel.is_some(),
            "update" | "update_k" => self.update.is_some(),
            "erase" => !self.erase.is_empty(),
            _ => true,
        }
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{:+.2}%", 100.0 * x))
}

fn rate(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn effects_cells(e: &Effects) -> String {
    format!(
        "{} | {} | {} | {}",
        pct(e.knowledge),
        pct(e.baseline),
        pct(e.random),
        pct(e.unrelated)
    )
}

/// A perplexity: one decimal, or scientific notation once it is huge (an edit
/// can wreck a model).
fn num(x: f64) -> String {
    if x.abs() >= 1e5 {
        format!("{x:.2e}")
    } else {
        format!("{x:.1}")
    }
}

fn ppl(p: &PplAcc) -> String {
    if p.prompts == 0 {
        return "–".into();
    }
    format!(
        "{} → {} (acc {} → {}, {} prompts)",
        num(p.ppl_before),
        num(p.ppl_after),
        rate(p.acc_before),
        rate(p.acc_after),
        p.prompts
    )
}

/// Our figure for each row of SPEC's reference table ([`PAPER`]): knowledge
/// neurons, and baseline or control.
pub fn ours(r: &ExperimentReport) -> Vec<(String, String)> {
    let u = r.update.as_ref();
    let erase = |id: &str| {
        r.erase
            .iter()
            .find(|e| e.relation == id)
            .map_or("–".into(), |e| {
                format!("{} → {}", num(e.intra.ppl_before), num(e.intra.ppl_after))
            })
    };
    vec![
        (
            format!("{:.2}", r.knowledge.per_fact),
            format!("{:.2}", r.baseline.per_fact),
        ),
        (
            format!(
                "{:.2} / {:.2}",
                r.knowledge.shared_intra, r.knowledge.shared_inter
            ),
            format!(
                "{:.2} / {:.2}",
                r.baseline.shared_intra, r.baseline.shared_inter
            ),
        ),
        (pct(r.suppress.knowledge), pct(r.suppress.baseline)),
        (pct(r.amplify.knowledge), pct(r.amplify.baseline)),
        (
            u.map_or("–".into(), |u| {
                format!(
                    "{} / {}",
                    rate(u.knowledge.change_rate),
                    rate(u.knowledge.success_rate)
                )
            }),
            u.map_or("–".into(), |u| {
                format!(
                    "random neurons {} / {}",
                    rate(u.random.change_rate),
                    rate(u.random.success_rate)
                )
            }),
        ),
        (
            u.map_or("–".into(), |u| {
                format!(
                    "{} / {}",
                    num(u.knowledge.intra_after - u.knowledge.intra_before),
                    num(u.knowledge.inter_after - u.knowledge.inter_before)
                )
            }),
            u.map_or("–".into(), |u| {
                format!(
                    "random neurons: inter {}",
                    num(u.random.inter_after - u.random.inter_before)
                )
            }),
        ),
        (
            format!("{} / {}", erase("P19"), erase("P106")),
            String::new(),
        ),
        (
            r.bingrel.as_ref().map_or("–".into(), |b| {
                format!(
                    "{:.3} / {:.3} / {:.3}",
                    b.knowledge.expressing, b.knowledge.head_only, b.knowledge.other_prompts
                )
            }),
            r.bingrel.as_ref().map_or(String::new(), |b| {
                format!(
                    "baseline neurons {:.3} / {:.3} / {:.3}",
                    b.baseline.expressing, b.baseline.head_only, b.baseline.other_prompts
                )
            }),
        ),
    ]
}

/// The report as Markdown: coverage, the paper's table beside ours, per-relation
/// effects, BingRel, updates, erasure, and links to the charts' SVG files.
pub fn markdown(r: &ExperimentReport) -> String {
    let mut s = String::new();
    let c = &r.coverage;
    let _ = writeln!(s, "# Knowledge neurons on ParaRel: `{}`\n", r.name);
    let _ = writeln!(
        s,
        "Model `{}` (weights fingerprint `{}`), a {} model. Integrated gradients with m = {} ({} Riemann sum); t = {}, p starts at {} and adapts per relation; seed {}; {}.\n",
        r.model,
        r.fingerprint,
        if r.masked { "masked" } else { "causal" },
        r.settings.steps,
        r.settings.riemann,
        r.settings.t,
        r.settings.p,
        r.settings.seed,
        match r.settings.facts_per_relation {
            Some(n) => format!("a seeded sample of {n} facts per relation"),
            None => "every fact".into(),
        }
    );
    let _ = writeln!(s, "## Coverage\n\n| | count |\n| --- | ---: |");
    for (k, v) in [
        ("relations", c.relations),
        ("facts", c.facts),
        ("prompts (all templates)", c.prompts),
        ("prompts this model can use", c.usable_prompts),
        ("facts skipped: answer is several tokens", c.multi_token),
        ("facts skipped: no usable template", c.no_template),
        ("facts skipped: prompt unusable", c.unusable),
        ("eligible facts", c.eligible_facts),
        ("eligible prompts", c.eligible_prompts),
        ("facts planned", c.planned),
        ("facts done", c.done),
        ("facts failed", c.failed),
    ] {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(
        s,
        "\nAttribution took {:.0} s in all ({:.1} s per stored fact, failed ones included); this report {:.0} s.\n",
        r.attribution_seconds,
        r.attribution_seconds / (c.done + c.failed).max(1) as f64,
        r.report_seconds
    );
    let _ = writeln!(
        s,
        "## Beside the paper (BERT-base-cased, SPEC's table)\n\n| what | paper: knowledge neurons | paper: baseline | ours: knowledge neurons | ours: baseline / control |\n| --- | --- | --- | --- | --- |"
    );
    for ((what, pk, pb), (ok, ob)) in PAPER.iter().zip(ours(r)) {
        let _ = writeln!(s, "| {what} | {pk} | {pb} | {ok} | {ob} |");
    }
    let _ = writeln!(
        s,
        "\nKnowledge neurons in an empty set: {} facts; baseline: {} facts.\n",
        r.knowledge.empty_facts, r.baseline.empty_facts
    );
    let _ = writeln!(
        s,
        "## Per relation\n\nSuppress and amplify: mean relative change of P(answer) over the relation's facts; columns are knowledge neurons | baseline | random | knowledge neurons on another relation's prompt.\n\n| relation | type | facts | p | neurons/fact (KN / base) | shared ≥10% | suppress: KN | base | random | unrelated | amplify: KN | base | random | unrelated |\n| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for x in &r.relations {
        let _ = writeln!(
            s,
            "| {} {} | {} | {} | {:.2} | {:.2} / {:.2} | {} | {} | {} |",
            x.id,
            x.label,
            x.kind,
            x.facts,
            x.p,
            x.knowledge_per_fact,
            x.baseline_per_fact,
            x.shared_neurons,
            effects_cells(&x.suppress),
            effects_cells(&x.amplify)
        );
    }
    let _ = writeln!(
        s,
        "| **all** | | {} | | {:.2} / {:.2} | | {} | {} |\n",
        r.relations.iter().map(|x| x.facts).sum::<usize>(),
        r.knowledge.per_fact,
        r.baseline.per_fact,
        effects_cells(&r.suppress),
        effects_cells(&r.amplify)
    );
    if let Some(b) = &r.bingrel {
        let _ = writeln!(
            s,
            "## BingRel\n\n{} facts; {} knowledge-expressing sentences, {} head-only sentences, {} prompts of other facts.\n\n| neurons | expressing | head only | other prompts |\n| --- | ---: | ---: | ---: |\n| knowledge | {:.4} | {:.4} | {:.4} |\n| baseline | {:.4} | {:.4} | {:.4} |\n",
            b.facts, b.expressing_sentences, b.head_only_sentences, b.other_prompts,
            b.knowledge.expressing, b.knowledge.head_only, b.knowledge.other_prompts,
            b.baseline.expressing, b.baseline.head_only, b.baseline.other_prompts
        );
    }
    if let Some(u) = &r.update {
        let _ = writeln!(
            s,
            "## Updating facts\n\n{} facts, k = {}, λ1 = {}, λ2 = {}{}. The change rate counts the {} of their {} prompts whose top-1 was the old answer before the edit; the success rate counts all of them. Perplexities are on up to 20 prompts per edited fact (other facts of its relation: intra; of other relations: inter), geometric means over the edited facts (one wrecked fact would dominate an arithmetic mean).\n\n| neurons | change rate | success rate | intra perplexity | inter perplexity |\n| --- | ---: | ---: | --- | --- |",
            u.facts, u.k, u.lambda1, u.lambda2,
            if u.norm_scaled { ", embeddings rescaled to the value slot's norm" } else { "" },
            u.known_prompts, u.prompts
        );
        for (name, m) in [("knowledge", &u.knowledge), ("random", &u.random)] {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {} → {} | {} → {} |",
                rate(m.change_rate),
                rate(m.success_rate),
                num(m.intra_before),
                num(m.intra_after),
                num(m.inter_before),
                num(m.inter_after)
            );
        }
        let _ = writeln!(
            s,
            "\n| k | facts with ≥ k neurons | change rate | success rate |\n| ---: | ---: | ---: | ---: |"
        );
        for k in &u.k_sweep {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                k.k,
                k.facts,
                rate(k.change_rate),
                rate(k.success_rate)
            );
        }
        s.push('\n');
    }
    if !r.erase.is_empty() {
        let _ = writeln!(
            s,
            "## Erasing relations\n\nThe relation's most frequent knowledge neurons set to zero.\n\n| relation | neurons | erased relation: perplexity (accuracy) | other relations |\n| --- | ---: | --- | --- |"
        );
        for e in &r.erase {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                e.relation,
                e.neurons,
                ppl(&e.intra),
                ppl(&e.inter)
            );
        }
        s.push('\n');
    }
    let _ = writeln!(s, "## Charts\n");
    for (name, title) in CHARTS {
        if r.has_chart(name) {
            let _ = writeln!(s, "![{title}]({name}.svg)\n");
        }
    }
    s
}
