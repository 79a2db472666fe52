//! The report as files: `report.md` (tables beside the paper's figures),
//! `report.json` (the API's `ExperimentReport`) and one SVG and CSV per chart.

use crate::{Error, Result};
use kn_shared::charts::report_charts;
use kn_shared::experiment::{Effects, ExperimentReport, PplAcc, PAPER};
use std::fmt::Write;
use std::path::{Path, PathBuf};

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

fn ppl(p: &PplAcc) -> String {
    if p.prompts == 0 {
        return "–".into();
    }
    format!(
        "{:.1} → {:.1} (acc {} → {}, {} prompts)",
        p.ppl_before,
        p.ppl_after,
        rate(p.acc_before),
        rate(p.acc_after),
        p.prompts
    )
}

/// Our figure for each row of SPEC's reference table.
fn ours(r: &ExperimentReport) -> Vec<(String, String)> {
    let u = r.update.as_ref();
    let erase = |id: &str| {
        r.erase
            .iter()
            .find(|e| e.relation == id)
            .map_or("–".into(), |e| {
                format!("{:.0} → {:.0}", e.intra.ppl_before, e.intra.ppl_after)
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
                    "{:.1} / {:.1}",
                    u.knowledge.intra_after - u.knowledge.intra_before,
                    u.knowledge.inter_after - u.knowledge.inter_before
                )
            }),
            u.map_or("–".into(), |u| {
                format!(
                    "random neurons: inter {:.1}",
                    u.random.inter_after - u.random.inter_before
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
        "\nAttribution took {:.0} s in all ({:.1} s per fact); this report {:.0} s.\n",
        r.attribution_seconds,
        r.attribution_seconds / c.done.max(1) as f64,
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
        r.suppress.facts,
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
            "## Updating facts\n\n{} facts, k = {}, λ1 = {}, λ2 = {}{}. Perplexities are means over the edited facts of up to 20 prompts each.\n\n| neurons | change rate | success rate | intra perplexity | inter perplexity |\n| --- | ---: | ---: | --- | --- |",
            u.facts, u.k, u.lambda1, u.lambda2,
            if u.norm_scaled { ", embeddings rescaled to the value slot's norm" } else { "" }
        );
        for (name, m) in [("knowledge", &u.knowledge), ("random", &u.random)] {
            let _ = writeln!(
                s,
                "| {name} | {} | {} | {:.1} → {:.1} | {:.1} → {:.1} |",
                rate(m.change_rate),
                rate(m.success_rate),
                m.intra_before,
                m.intra_after,
                m.inter_before,
                m.inter_after
            );
        }
        let _ = writeln!(
            s,
            "\n| k | change rate | success rate |\n| ---: | ---: | ---: |"
        );
        for k in &u.k_sweep {
            let _ = writeln!(
                s,
                "| {} | {} | {} |",
                k.k,
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
    for ch in report_charts(r) {
        let _ = writeln!(s, "![{}]({}.svg)\n", ch.title, ch.name);
    }
    s
}

/// Write `report.md`, `report.json` and the charts into `dir`.
pub fn write(r: &ExperimentReport, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut files = vec![
        (dir.join("report.md"), markdown(r)),
        (
            dir.join("report.json"),
            serde_json::to_string_pretty(r).map_err(|e| Error::Store(e.to_string()))?,
        ),
    ];
    for ch in report_charts(r) {
        files.push((dir.join(format!("{}.svg", ch.name)), ch.svg));
        files.push((dir.join(format!("{}.csv", ch.name)), ch.csv));
    }
    for (p, content) in &files {
        std::fs::write(p, content).map_err(|e| Error::io(p, e))?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}
