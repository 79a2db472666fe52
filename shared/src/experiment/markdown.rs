//! A report as text: its Markdown (`report.md`, the Experiments page's download)
//! and the "ours" column printed beside the paper's figures.

use super::{
    Effects, Estimate, ExperimentReport, MethodRelationRow, PplAcc, SetStats, UpdateMetrics,
    CHARTS, PAPER,
};
use std::fmt::Write;

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{:+.2}%", 100.0 * x))
}

fn rate(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

/// An estimate with its interval, as the methods table writes it: a relative
/// change in percent (`pct`) or a plain number to two decimals; `–` if none.
pub fn estimate_text(e: &Option<Estimate>, pct: bool) -> String {
    match e {
        Some(e) if pct => format!(
            "{:+.1}% [{:+.1}, {:+.1}]",
            100.0 * e.mean,
            100.0 * e.lo,
            100.0 * e.hi
        ),
        Some(e) => format!("{:.2} [{:.2}, {:.2}]", e.mean, e.lo, e.hi),
        None => "–".into(),
    }
}

/// `mean [lo, hi]` with `f` for each number.
fn ci(e: &Estimate, f: impl Fn(f64) -> String) -> String {
    format!("{} [{}, {}]", f(e.mean), f(e.lo), f(e.hi))
}

fn pct_ci(e: &Option<Estimate>) -> String {
    e.as_ref()
        .map_or("–".into(), |e| ci(e, |x| format!("{:+.1}%", 100.0 * x)))
}

fn effects_cells(e: &Effects) -> String {
    match &e.ci {
        Some(c) => format!(
            "{} | {} | {} | {}",
            pct_ci(&c.knowledge),
            pct_ci(&c.baseline),
            pct_ci(&c.random),
            pct_ci(&c.unrelated)
        ),
        None => format!(
            "{} | {} | {} | {}",
            pct(e.knowledge),
            pct(e.baseline),
            pct(e.random),
            pct(e.unrelated)
        ),
    }
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
    let after = match &p.ci {
        Some([_, a]) => format!("{} [{}, {}]", num(p.ppl_after), num(a.lo), num(a.hi)),
        None => num(p.ppl_after),
    };
    format!(
        "{} → {} (acc {} → {}, {} prompts)",
        num(p.ppl_before),
        after,
        rate(p.acc_before),
        rate(p.acc_after),
        p.prompts
    )
}

fn two(a: String, b: String) -> String {
    format!("{a} / {b}")
}

/// Our figure for each row of SPEC's reference table ([`PAPER`]): knowledge
/// neurons, and baseline or control; each with its 95% interval over facts
/// where the report has one.
pub fn ours(r: &ExperimentReport) -> Vec<(String, String)> {
    let u = r.update.as_ref();
    let erase = |id: &str| {
        r.erase
            .iter()
            .find(|e| e.relation == id)
            .map_or("–".into(), |e| match &e.intra.ci {
                Some([b, a]) => format!(
                    "{} [{}, {}] → {} [{}, {}]",
                    num(b.mean),
                    num(b.lo),
                    num(b.hi),
                    num(a.mean),
                    num(a.lo),
                    num(a.hi)
                ),
                None => format!("{} → {}", num(e.intra.ppl_before), num(e.intra.ppl_after)),
            })
    };
    let dec = |x: f64| format!("{x:.2}");
    let sets = |s: &SetStats| match &s.ci {
        Some(c) => (
            ci(&c.per_fact, dec),
            two(ci(&c.shared_intra, dec), ci(&c.shared_inter, dec)),
        ),
        None => (
            dec(s.per_fact),
            two(dec(s.shared_intra), dec(s.shared_inter)),
        ),
    };
    let (kn_n, kn_shared) = sets(&r.knowledge);
    let (b_n, b_shared) = sets(&r.baseline);
    let effect = |e: &Effects, knowledge: bool| match &e.ci {
        Some(c) => pct_ci(if knowledge { &c.knowledge } else { &c.baseline }),
        None => pct(if knowledge { e.knowledge } else { e.baseline }),
    };
    let rates = |m: &UpdateMetrics| match &m.ci {
        Some(c) => two(ci(&c.change_rate, rate), ci(&c.success_rate, rate)),
        None => two(rate(m.change_rate), rate(m.success_rate)),
    };
    let increases = |m: &UpdateMetrics| match &m.ci {
        Some(c) => two(ci(&c.intra_increase, num), ci(&c.inter_increase, num)),
        None => two(
            num(m.intra_after - m.intra_before),
            num(m.inter_after - m.inter_before),
        ),
    };
    vec![
        (kn_n, b_n),
        (kn_shared, b_shared),
        (effect(&r.suppress, true), effect(&r.suppress, false)),
        (effect(&r.amplify, true), effect(&r.amplify, false)),
        (
            u.map_or("–".into(), |u| rates(&u.knowledge)),
            u.map_or("–".into(), |u| {
                format!("random neurons {}", rates(&u.random))
            }),
        ),
        (
            u.map_or("–".into(), |u| increases(&u.knowledge)),
            u.map_or("–".into(), |u| match &u.random.ci {
                Some(c) => format!("random neurons: inter {}", ci(&c.inter_increase, num)),
                None => format!(
                    "random neurons: inter {}",
                    num(u.random.inter_after - u.random.inter_before)
                ),
            }),
        ),
        (two(erase("P19"), erase("P106")), String::new()),
        (
            r.bingrel
                .as_ref()
                .map_or("–".into(), |b| match &b.knowledge_ci {
                    Some([e, h, o]) => {
                        let f = |x: f64| format!("{x:.3}");
                        format!("{} / {} / {}", ci(e, f), ci(h, f), ci(o, f))
                    }
                    None => format!(
                        "{:.3} / {:.3} / {:.3}",
                        b.knowledge.expressing, b.knowledge.head_only, b.knowledge.other_prompts
                    ),
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

/// The report as Markdown: coverage, the paper's table beside ours (with
/// intervals), per-relation effects, BingRel, updates, erasure, the methods,
/// and links to the charts' SVG files.
pub fn markdown(r: &ExperimentReport) -> String {
    let sections: [fn(&mut String, &ExperimentReport); 9] = [
        header,
        coverage,
        beside_the_paper,
        per_relation,
        bingrel,
        updates,
        erasures,
        methods,
        charts,
    ];
    let mut s = String::new();
    for section in sections {
        section(&mut s, r);
    }
    s
}

/// The title and the settings the figures rest on.
fn header(s: &mut String, r: &ExperimentReport) {
    let _ = writeln!(s, "# Knowledge neurons on ParaRel: `{}`\n", r.name);
    let _ = writeln!(
        s,
        "Model `{}` (weights fingerprint `{}`), a {} model. Integrated gradients with m = {} ({} Riemann sum). Knowledge neurons: coarse t = {}, refined in more than p·n prompts and at least {} (p starts at {} and adapts per relation toward 2–5 neurons per fact). Baseline: activations above {} of the prompt's largest, refined the same way. Seed {}; {}. {}. Figures in brackets are 95% bootstrap intervals over facts (1,000 seeded resamples).\n",
        r.model,
        r.fingerprint,
        if r.masked { "masked" } else { "causal" },
        r.settings.steps,
        r.settings.riemann,
        r.settings.t,
        r.settings.min_prompts,
        r.settings.p,
        r.settings.base_t.map_or("a tuned fraction".into(), |b| format!("{b}×")),
        r.settings.seed,
        match r.settings.facts_per_relation {
            Some(n) => format!("a seeded sample of {n} facts per relation"),
            None => "every fact".into(),
        },
        match r.settings.multi_token {
            None => "Answers of several tokens left out".to_string(),
            Some(p) => format!(
                "Answers of several tokens read piece by piece, their neurons at {} (docs/method.md §1a)",
                match p {
                    crate::AnswerPositions::All => "every piece's position",
                    crate::AnswerPositions::First => "the first piece's position",
                }
            ),
        }
    );
}

/// What the run covers and skips, and what it cost.
fn coverage(s: &mut String, r: &ExperimentReport) {
    let c = &r.coverage;
    let _ = writeln!(s, "## Coverage\n\n| | count |\n| --- | ---: |");
    for (k, v) in [
        ("relations", c.relations),
        ("facts", c.facts),
        ("prompts (all templates)", c.prompts),
        ("prompts this model can use", c.usable_prompts),
        (
            if c.multi_token_included {
                "facts whose answer is several tokens (included)"
            } else {
                "facts skipped: answer is several tokens"
            },
            c.multi_token,
        ),
        (
            "facts skipped: answer of more than 8 tokens",
            c.too_many_pieces,
        ),
        ("facts skipped: no usable template", c.no_template),
        ("facts skipped: prompt unusable", c.unusable),
        (
            "facts skipped: relation has fewer than 4 usable templates",
            c.unrefinable.iter().map(|u| u.facts).sum(),
        ),
        ("eligible facts", c.eligible_facts),
        ("eligible prompts", c.eligible_prompts),
        ("facts planned (sample and known facts)", c.planned),
        ("of which known facts (for updates)", c.known_planned),
        ("facts scanned to find the known ones", c.known_scanned),
        ("facts done", c.done),
        ("facts failed", c.failed),
    ] {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    if !c.unrefinable.is_empty() {
        let _ = writeln!(
            s,
            "\n**Relations that cannot be refined** (left out of every figure below): {}. SPEC keeps relations with at least 4 templates; a {} model can use only the templates listed, and one, two or three prompts per fact refine nothing.",
            c.unrefinable
                .iter()
                .map(|u| format!("{} ({} usable template{}, {} facts)", u.relation, u.usable_templates, if u.usable_templates == 1 { "" } else { "s" }, u.facts))
                .collect::<Vec<_>>()
                .join(", "),
            if r.masked { "masked" } else { "causal" }
        );
    }
    let _ = writeln!(
        s,
        "\nAttribution took {:.0} s in all ({:.1} s per stored fact, failed ones included); this report {:.0} s.\n",
        r.attribution_seconds,
        r.attribution_seconds / (c.done + c.failed).max(1) as f64,
        r.report_seconds
    );
}

/// SPEC's table of the paper's figures beside ours.
fn beside_the_paper(s: &mut String, r: &ExperimentReport) {
    let _ = writeln!(
        s,
        "## Beside the paper (BERT-base-cased, SPEC's table)\n\n| what | paper: knowledge neurons | paper: baseline | ours: knowledge neurons | ours: baseline / control |\n| --- | --- | --- | --- | --- |"
    );
    for ((what, pk, pb), (ok, ob)) in PAPER.iter().zip(ours(r)) {
        let _ = writeln!(s, "| {what} | {pk} | {pb} | {ok} | {ob} |");
    }
    let outside = |x: &SetStats| x.ci.as_ref().map_or(0, |c| c.relations_outside_2_5);
    let _ = writeln!(
        s,
        "\nFacts with no knowledge neuron: {}; with no baseline neuron: {}. Relations whose mean neurons per fact lies outside 2–5 after adapting p: {} (knowledge), {} (baseline). Suppressing: the median over facts of the knowledge neurons' effect is {}; amplifying: {}.\n",
        r.knowledge.empty_facts,
        r.baseline.empty_facts,
        outside(&r.knowledge),
        outside(&r.baseline),
        pct(r.suppress.ci.as_ref().and_then(|c| c.knowledge_median)),
        pct(r.amplify.ci.as_ref().and_then(|c| c.knowledge_median)),
    );
}

/// Suppress and amplify per relation, with the overall row.
fn per_relation(s: &mut String, r: &ExperimentReport) {
    let _ = writeln!(
        s,
        "## Per relation\n\nSuppress and amplify: mean relative change of P(answer) over the relation's facts, with its interval; columns are knowledge neurons | baseline | random | knowledge neurons on the prompts of three facts of other relations.\n\n| relation | type | facts | p | neurons/fact (KN / base) | shared ≥10% | suppress: KN | base | random | unrelated | amplify: KN | base | random | unrelated |\n| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
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
}

/// BingRel: the neurons' activation on knowledge-expressing text.
fn bingrel(s: &mut String, r: &ExperimentReport) {
    if let Some(b) = &r.bingrel {
        let _ = writeln!(
            s,
            "## BingRel\n\n{} facts; {} knowledge-expressing sentences ({} more left out: the tail occurs in them twice or more, so a masked model would see it), {} head-only sentences, {} prompts of other facts.\n\n| neurons | expressing | head only | other prompts |\n| --- | ---: | ---: | ---: |\n| knowledge | {:.4} | {:.4} | {:.4} |\n| baseline | {:.4} | {:.4} | {:.4} |\n",
            b.facts, b.expressing_sentences, b.repeated_tail_sentences, b.head_only_sentences, b.other_prompts,
            b.knowledge.expressing, b.knowledge.head_only, b.knowledge.other_prompts,
            b.baseline.expressing, b.baseline.head_only, b.baseline.other_prompts
        );
    }
}

/// The fact updates and their sweep over k.
fn updates(s: &mut String, r: &ExperimentReport) {
    if let Some(u) = &r.update {
        let ks = u
            .k_used
            .iter()
            .map(|(k, n)| format!("k = {k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            s,
            "## Updating facts\n\n{} facts{}, k = {} ({}), λ1 = {}, λ2 = {}{}. Their {} prompts; {} of them answered correctly before the edit. Change rate, SPEC's reading: the share of all prompts whose top-1 is no longer the old answer (a prompt wrong before counts as changed); the other reading counts only the prompts answered correctly before. Perplexities: every prompt of the relation's other sampled facts (intra, {:.0} on average) and {} prompts of other relations (inter); arithmetic means over the edited facts, geometric means beside them.\n\n| neurons | change rate (SPEC) | change rate (known prompts) | success rate | intra perplexity | inter perplexity | geometric: intra / inter |\n| --- | ---: | ---: | ---: | --- | --- | --- |",
            u.facts,
            if u.known_facts { ", sampled among the facts the model answers correctly on at least one prompt" } else { "" },
            u.k,
            if ks.is_empty() { "–".into() } else { format!("used: {ks}") },
            u.lambda1,
            u.lambda2,
            if u.norm_scaled { ", embeddings rescaled to the value slot's norm" } else { "" },
            u.prompts,
            u.known_prompts,
            u.intra_prompts,
            u.inter_prompts
        );
        for (name, m) in [("knowledge", &u.knowledge), ("random", &u.random)] {
            let (change, known, success) = match &m.ci {
                Some(c) => (
                    ci(&c.change_rate, rate),
                    c.change_rate_known
                        .as_ref()
                        .map_or("–".into(), |e| ci(e, rate)),
                    ci(&c.success_rate, rate),
                ),
                None => (
                    rate(m.change_rate),
                    m.change_rate_known.map_or("–".into(), rate),
                    rate(m.success_rate),
                ),
            };
            let geo = m.geometric.map_or("–".into(), |g| {
                format!(
                    "{} → {} / {} → {}",
                    num(g[0]),
                    num(g[1]),
                    num(g[2]),
                    num(g[3])
                )
            });
            let _ = writeln!(
                s,
                "| {name} | {change} | {known} | {success} | {} → {} | {} → {} | {geo} |",
                num(m.intra_before),
                num(m.intra_after),
                num(m.inter_before),
                num(m.inter_after)
            );
        }
        let facts = u.k_sweep.first().map_or(0, |k| k.facts);
        let _ = writeln!(
            s,
            "\nAs k grows, on one fixed set of {facts} edited facts (those with at least {} knowledge neurons after dropping the relation-shared ones):\n\n| k | change rate (SPEC) | success rate |\n| ---: | ---: | ---: |",
            u.k_sweep.iter().map(|k| k.k).max().unwrap_or(0)
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
}

/// The relation erasures.
fn erasures(s: &mut String, r: &ExperimentReport) {
    if !r.erase.is_empty() {
        let short = r.erase.iter().filter(|e| e.candidates < 20).count();
        let tied: usize = r.erase.iter().map(|e| e.tie_decided).sum();
        let _ = writeln!(
            s,
            "## Erasing relations\n\nThe relation's most frequent knowledge neurons (over its sampled facts) set to zero; ties in frequency broken by summed attribution. {short} relation(s) have fewer than 20 candidate neurons; over all relations {tied} erased neurons were chosen among neurons of equal frequency. Perplexity after the edit with its interval (resampling the relation's facts).\n\n| relation | neurons (candidates, by tie-break) | erased relation: perplexity (accuracy) | other relations |\n| --- | ---: | --- | --- |"
        );
        for e in &r.erase {
            let _ = writeln!(
                s,
                "| {} | {} ({}, {}) | {} | {} |",
                e.relation,
                e.neurons,
                e.candidates,
                e.tie_decided,
                ppl(&e.intra),
                ppl(&e.inter)
            );
        }
        s.push('\n');
    }
}

/// The attribution methods compared over the run's facts.
fn methods(s: &mut String, r: &ExperimentReport) {
    if let Some(m) = &r.methods {
        let _ = writeln!(
            s,
            "## Attribution methods compared\n\n{} facts ({} per relation, seeded, among the sampled facts with knowledge neurons). Each method's refined set is the paper's selection applied to its scores (coarse t per prompt, refined at the relation's adapted p); its top {} neurons are those with the highest mean score. Relative change of mean P(answer) with 95% intervals over facts; `ig` is the run's own attribution (its cost is the run's time). Definitions: docs/methods.md.\n\n| method | refined neurons/fact (empty) | suppress refined | amplify refined | suppress top {} | amplify top {} | top {} on unrelated prompts | s/fact | GFLOP/fact |\n| --- | --- | --- | --- | --- | --- | --- | ---: | ---: |",
            m.facts, m.per_relation, m.k, m.k, m.k, m.k
        );
        let est = estimate_text;
        for row in &m.rows {
            let _ = writeln!(
                s,
                "| {} | {} ({}) | {} | {} | {} | {} | {} | {:.2} | {:.1} |",
                row.method,
                est(&row.neurons_per_fact, false),
                row.empty,
                est(&row.suppress, true),
                est(&row.amplify, true),
                est(&row.suppress_top_k, true),
                est(&row.amplify_top_k, true),
                est(&row.unrelated_top_k, true),
                row.seconds_per_fact,
                row.gflop_per_fact
            );
        }
        let _ = writeln!(s);
        if m.multi_token_facts > 0 {
            let per: Vec<String> = m
                .rows
                .iter()
                .map(|row| {
                    format!(
                        "{} {}",
                        row.method,
                        est(&row.suppress_top_k_multi_token, true)
                    )
                })
                .collect();
            let _ = writeln!(
                s,
                "{} of the {} facts have answers of several tokens (read as chains of one-token steps; docs/method.md §1a). Suppressing the top {} on those facts alone: {}.\n",
                m.multi_token_facts,
                m.facts,
                m.k,
                per.join(", ")
            );
        }
        if !m.by_relation.is_empty() {
            let methods: Vec<&str> = m.rows.iter().map(|r| r.method.as_str()).collect();
            let head = methods.join(" | ");
            let rule = vec!["---"; methods.len()].join(" | ");
            for (title, get) in [
                (
                    "suppressing the refined set",
                    (|r: &MethodRelationRow| &r.suppress)
                        as fn(&MethodRelationRow) -> &Option<Estimate>,
                ),
                ("amplifying the refined set", |r| &r.amplify),
                ("suppressing the top k", |r| &r.suppress_top_k),
            ] {
                let _ = writeln!(
                    s,
                    "Per relation, {title} (relative change of mean P(answer), 95% intervals over the relation's facts; GFLOP per fact in the last column, in the methods' order):\n\n| relation | facts | {head} | GFLOP/fact |\n| --- | ---: | {rule} | --- |"
                );
                for chunk in m.by_relation.chunks(methods.len().max(1)) {
                    let cells: Vec<String> = chunk.iter().map(|r| est(get(r), true)).collect();
                    let gflop: Vec<String> = chunk
                        .iter()
                        .map(|r| format!("{:.0}", r.gflop_per_fact))
                        .collect();
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} |",
                        chunk[0].relation,
                        chunk[0].facts,
                        cells.join(" | "),
                        gflop.join(" / ")
                    );
                }
                s.push('\n');
            }
        }
    }
}

/// Links to the charts' SVG files.
fn charts(s: &mut String, r: &ExperimentReport) {
    let _ = writeln!(s, "## Charts\n");
    for (name, title) in CHARTS {
        if r.has_chart(name) {
            let _ = writeln!(s, "![{title}]({name}.svg)\n");
        }
    }
}
