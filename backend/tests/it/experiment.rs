//! `kn experiment` end to end on a tiny fixture model and a small slice of the
//! real ParaRel: counts, a report, a killed-and-resumed run, shards merged.

use crate::common::{cpu, fixture};
use kn::engine::attribution::Options;
use kn::engine::edit::fingerprint;
use kn::experiment::db::{merge, RunDb, StoredFact};
use kn::experiment::report::{report, ReportOptions};
use kn::experiment::run::{run, RunOptions};
use kn::experiment::{markdown, plan, Settings, Shard};
use kn::pararel::ParaRel;
use std::path::Path;
use std::process::Command;

fn data() -> ParaRel {
    ParaRel::load(&ParaRel::default_dir()).unwrap_or_else(|e| panic!("{e}"))
}

fn settings(m: &kn::Model, name: &str, relations: &[&str], per_relation: usize) -> Settings {
    Settings {
        model: name.into(),
        fingerprint: fingerprint(m),
        steps: 20,
        riemann: Default::default(),
        seed: 7,
        facts_per_relation: Some(per_relation),
        relations: relations.iter().map(|s| s.to_string()).collect(),
        known_facts_per_relation: 0,
        multi_token: None,
    }
}

fn opts() -> RunOptions {
    RunOptions {
        ig: Options::default(),
        progress: false,
        max_facts: None,
        batch_facts: 1,
    }
}

/// The stored facts without their timings, which differ between runs.
fn facts(path: &Path) -> Vec<StoredFact> {
    let mut v = RunDb::open_existing(path).unwrap().facts().unwrap();
    for f in &mut v {
        f.seconds = 0.0;
    }
    v
}

#[test]
fn counts_for_masked_and_causal_models() {
    let d = data();
    for (name, usable) in [("tiny-bert", 253_448), ("tiny-gpt2", 160_934)] {
        let m = kn::load_model(&fixture(name), cpu()).unwrap();
        let mut s = settings(&m, name, &[], 1);
        s.facts_per_relation = None;
        let c = plan(&m, &d, &s).unwrap().coverage;
        assert_eq!(
            (c.relations, c.facts, c.prompts),
            (34, 27_738, 253_448),
            "{name}"
        );
        assert_eq!(c.usable_prompts, usable, "{name}");
        // Every fact is either eligible or skipped for a reason, and counted.
        let unrefinable: usize = c.unrefinable.iter().map(|u| u.facts).sum();
        assert_eq!(
            c.eligible_facts
                + c.multi_token
                + c.too_many_pieces
                + c.no_template
                + unrefinable
                + c.unusable,
            c.facts,
            "{name}"
        );
        assert_eq!(c.unusable, 0, "{name}");
        assert!(!c.multi_token_included);
        // With multi-token answers: those up to 8 pieces are planned.
        let mut with = s.clone();
        with.multi_token = Some(Default::default());
        let w = plan(&m, &d, &with).unwrap().coverage;
        assert!(w.multi_token_included);
        assert_eq!(w.multi_token, c.multi_token);
        assert_eq!(w.eligible_facts, c.eligible_facts + c.multi_token, "{name}");
        assert_eq!(w.too_many_pieces, c.too_many_pieces, "{name}");
        // SPEC's "at least 4 templates", applied to the templates the model
        // can use: a masked model uses them all; a causal one loses the
        // relations whose blank ends fewer than 4 of them.
        if name == "tiny-bert" {
            assert!(c.unrefinable.is_empty(), "{:?}", c.unrefinable);
        } else {
            let ids: Vec<&str> = c.unrefinable.iter().map(|u| u.relation.as_str()).collect();
            for id in ["P37", "P140", "P190"] {
                assert!(ids.contains(&id), "{id} has one causal template: {ids:?}");
            }
            assert!(c.unrefinable.iter().all(|u| u.usable_templates < 4));
        }
        assert!(c.multi_token > 0 && c.eligible_facts > 0, "{name}: {c:?}");
        assert_eq!(c.planned, c.eligible_facts);
    }
}

#[test]
fn a_sample_is_seeded_and_per_relation() {
    let d = data();
    let m = kn::load_model(&fixture("tiny-gpt2"), cpu()).unwrap();
    let s = settings(&m, "tiny-gpt2", &["P36", "P19"], 4);
    let a = plan(&m, &d, &s).unwrap();
    assert_eq!(a.items.len(), 8);
    assert_eq!(
        a.items,
        plan(&m, &d, &s).unwrap().items,
        "same seed, same sample"
    );
    let other = plan(
        &m,
        &d,
        &Settings {
            seed: 8,
            ..s.clone()
        },
    )
    .unwrap();
    assert_ne!(a.items, other.items, "another seed, another sample");
    let e = plan(&m, &d, &settings(&m, "x", &["P9999"], 1))
        .err()
        .unwrap();
    assert!(e.to_string().contains("unknown relation `P9999`"), "{e}");
}

#[test]
fn run_then_report_end_to_end() {
    let d = data();
    let m = kn::load_model(&fixture("tiny-gpt2"), cpu()).unwrap();
    let s = settings(&m, &fixture("tiny-gpt2"), &["P36", "P19", "P101"], 4);
    let dir = tempfile::tempdir().unwrap();
    let o = run(&m, &d, &s, Shard::ALL, dir.path(), &opts()).unwrap();
    assert_eq!((o.planned, o.stored, o.already), (12, 12, 0));
    // Running again stores nothing new.
    let again = run(&m, &d, &s, Shard::ALL, dir.path(), &opts()).unwrap();
    assert_eq!((again.stored, again.already), (0, 12));
    let db = RunDb::open_existing(&dir.path().join("run.sqlite")).unwrap();
    let opts = ReportOptions {
        bingrel: Some(d.dir.join("bingrel")),
        ..ReportOptions::default()
    };
    let r = report(&m, &d, &db, "e2e", &opts, &mut |_| {}).unwrap();
    assert_eq!((r.coverage.planned, r.coverage.done), (12, 12));
    assert_eq!(r.relations.len(), 3);
    assert!(r.knowledge.per_fact > 0.0 && r.baseline.per_fact > 0.0);
    assert_eq!(
        r.knowledge.per_layer.iter().sum::<usize>() as f64,
        r.knowledge.per_fact * 12.0
    );
    // Suppressing knowledge neurons lowers P(answer) even in a random model:
    // they are, by construction, the neurons the answer depends on.
    assert!(r.suppress.knowledge.unwrap() < 0.0, "{:?}", r.suppress);
    assert!(r.amplify.knowledge.unwrap() > 0.0, "{:?}", r.amplify);
    let b = r.bingrel.as_ref().unwrap();
    assert!(b.expressing_sentences > 0 && b.head_only_sentences > 0 && b.other_prompts > 0);
    // Every headline figure carries its interval, around its mean.
    let kc = r.knowledge.ci.as_ref().unwrap();
    assert!(kc.per_fact.lo <= kc.per_fact.mean && kc.per_fact.mean <= kc.per_fact.hi);
    assert_eq!(kc.per_fact.n, 12);
    let sc = r.suppress.ci.as_ref().unwrap().knowledge.unwrap();
    assert!(sc.lo <= sc.mean && sc.mean <= sc.hi && sc.n == r.suppress.facts);
    assert!(
        r.suppress.unrelated.is_some(),
        "the specificity control ran"
    );
    assert_eq!(r.settings.base_t, Some(0.5));
    assert_eq!(r.settings.min_prompts, 3);
    let u = r.update.as_ref().unwrap();
    assert!(u.facts > 0 && !u.k_sweep.is_empty());
    assert!(u.known_prompts <= u.prompts && u.prompts > 0);
    // k means k: the k each fact really used, and one fixed set for the sweep.
    assert_eq!(u.k_used.iter().map(|(_, n)| n).sum::<usize>(), u.facts);
    assert!(u.k_used.iter().all(|(k, _)| *k >= 1 && *k <= u.k));
    let sweep_facts = u.k_sweep[0].facts;
    assert!(
        u.k_sweep.iter().all(|k| k.facts == sweep_facts),
        "{:?}",
        u.k_sweep
    );
    let uc = u.knowledge.ci.as_ref().unwrap();
    assert!(
        uc.change_rate.lo <= u.knowledge.change_rate
            && u.knowledge.change_rate <= uc.change_rate.hi
    );
    assert!(u.knowledge.geometric.is_some());
    assert!(!r.erase.is_empty());
    for e in &r.erase {
        assert!(e.neurons > 0 && e.neurons <= 20 && e.intra.prompts > 0);
        assert!(e.neurons <= e.candidates && e.tie_decided <= e.neurons);
        assert!(e.intra.ci.is_some());
    }
    // The same report twice: everything is seeded.
    let r2 = report(&m, &d, &db, "e2e", &opts, &mut |_| {}).unwrap();
    assert_eq!(
        serde_json::to_value(ExperimentNoTime(&r)).unwrap(),
        serde_json::to_value(ExperimentNoTime(&r2)).unwrap()
    );
    db.put_report(&r).unwrap();
    assert_eq!(db.report().unwrap().unwrap(), r);
    let files = markdown::write(&r, &dir.path().join("report")).unwrap();
    let md = std::fs::read_to_string(dir.path().join("report/report.md")).unwrap();
    assert!(md.contains("| neurons per fact | 4.13 |") && md.contains("P36 capital"));
    for name in [
        "suppress", "amplify", "layers", "bingrel", "update", "update_k", "erase",
    ] {
        let svg = std::fs::read_to_string(dir.path().join(format!("report/{name}.svg"))).unwrap();
        assert!(svg.starts_with("<svg"), "{name}");
        assert!(md.contains(&format!("({name}.svg)")), "{name}");
    }
    assert!(files.len() >= 16);
    // A fact stored after the report makes it stale: it is dropped.
    let extra = StoredFact {
        relation: "P36".into(),
        fact: 9999,
        outcome: Err("test".into()),
        seconds: 0.0,
    };
    assert!(db.put(&extra).unwrap());
    assert!(db.report().unwrap().is_none());
}

/// A report without its timing, for comparisons.
struct ExperimentNoTime<'a>(&'a kn_shared::experiment::ExperimentReport);

impl serde::Serialize for ExperimentNoTime<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut r = self.0.clone();
        r.report_seconds = 0.0;
        r.attribution_seconds = 0.0;
        r.serialize(s)
    }
}

#[test]
fn two_shards_merged_equal_one_run() {
    let d = data();
    let m = kn::load_model(&fixture("tiny-gpt2"), cpu()).unwrap();
    let s = settings(&m, "tiny-gpt2", &["P36", "P101"], 3);
    let whole = tempfile::tempdir().unwrap();
    run(&m, &d, &s, Shard::ALL, whole.path(), &opts()).unwrap();
    let parts = tempfile::tempdir().unwrap();
    let mut sizes = vec![];
    for i in 0..2 {
        let o = run(
            &m,
            &d,
            &s,
            Shard { index: i, count: 2 },
            parts.path(),
            &opts(),
        )
        .unwrap();
        sizes.push(o.stored);
    }
    assert_eq!(sizes.iter().sum::<usize>(), 6);
    assert!(sizes.iter().all(|&n| n > 0), "{sizes:?}");
    let shards: Vec<_> = (0..2)
        .map(|i| parts.path().join(format!("shard-{i}-of-2.sqlite")))
        .collect();
    let merged = parts.path().join("run.sqlite");
    merge(&merged, &shards).unwrap();
    merge(&merged, &shards).unwrap(); // idempotent
    assert_eq!(facts(&merged), facts(&whole.path().join("run.sqlite")));
    // Not shards of one run: refused, naming the file.
    let other = tempfile::tempdir().unwrap();
    let s2 = Settings {
        seed: 99,
        ..s.clone()
    };
    run(
        &m,
        &d,
        &s2,
        Shard { index: 1, count: 2 },
        other.path(),
        &RunOptions {
            max_facts: Some(1),
            ..opts()
        },
    )
    .unwrap();
    let odd = other.path().join("shard-1-of-2.sqlite");
    let e = merge(
        &other.path().join("run.sqlite"),
        &[shards[0].clone(), odd.clone()],
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("shard-1-of-2.sqlite") && e.contains("settings differ"),
        "{e}"
    );
    let e = merge(
        &other.path().join("x.sqlite"),
        &[shards[0].clone(), shards[0].clone()],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("shard 0 again"), "{e}");
    // A restart with other settings into the same folder is refused.
    let e = run(&m, &d, &s2, Shard::ALL, whole.path(), &opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("other settings"), "{e}");
}

fn kn_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kn"));
    c.args(args).env("KN_LOG", "warn");
    c
}

#[test]
fn killed_run_resumes_to_the_same_result() {
    let model = fixture("tiny-gpt2");
    let common = [
        "experiment",
        "run",
        "--model",
        &model,
        "--relations",
        "P36,P19,P101,P1376",
        "--facts-per-relation",
        "6",
        "--steps",
        "60",
        "--quiet",
        "--device",
        "cpu",
    ];
    let whole = tempfile::tempdir().unwrap();
    let out = whole.path().to_str().unwrap();
    let st = kn_cmd(&common).args(["--out", out]).status().unwrap();
    assert!(st.success());
    let want = facts(&whole.path().join("run.sqlite"));
    assert_eq!(want.len(), 24);

    let killed = tempfile::tempdir().unwrap();
    let out = killed.path().to_str().unwrap();
    let db = killed.path().join("run.sqlite");
    let count = || {
        RunDb::open_existing(&db)
            .and_then(|d| d.count())
            .unwrap_or(0)
    };
    let mut child = kn_cmd(&common).args(["--out", out]).spawn().unwrap();
    let t0 = std::time::Instant::now();
    while count() < 3 && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let at_kill = count();
    assert!(
        at_kill >= 3,
        "the run stored {at_kill} facts before the kill"
    );
    println!("killed after {at_kill} of 24 facts");
    let st = kn_cmd(&common).args(["--out", out]).status().unwrap();
    assert!(st.success());
    assert_eq!(
        facts(&db),
        want,
        "resumed run differs from an uninterrupted one"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let model = fixture("tiny-gpt2");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    let o = kn_cmd(&[
        "experiment",
        "run",
        "--model",
        &model,
        "--out",
        out,
        "--data",
        "/nonexistent",
    ])
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("/nonexistent") && err.contains("--data DIR"),
        "{err}"
    );
    let o = kn_cmd(&[
        "experiment",
        "run",
        "--model",
        &model,
        "--out",
        out,
        "--relations",
        "P36,P9999",
    ])
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("unknown relation `P9999`"),
        "{err}"
    );
    let o = kn_cmd(&[
        "experiment",
        "run",
        "--model",
        &model,
        "--out",
        out,
        "--shard",
        "2/2",
    ])
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("shard 2/2"), "{err}");
    let o = kn_cmd(&["experiment", "report", out]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("no such run file"),
        "{err}"
    );
}

#[test]
fn a_sample_grows_without_redoing_facts() {
    let d = data();
    let m = kn::load_model(&fixture("tiny-gpt2"), cpu()).unwrap();
    let small = settings(&m, "tiny-gpt2", &["P36", "P19"], 2);
    let big = Settings {
        facts_per_relation: Some(3),
        ..small.clone()
    };
    let grown = tempfile::tempdir().unwrap();
    run(&m, &d, &small, Shard::ALL, grown.path(), &opts()).unwrap();
    let o = run(&m, &d, &big, Shard::ALL, grown.path(), &opts()).unwrap();
    assert_eq!(
        (o.already, o.stored),
        (4, 2),
        "the 4 facts of the smaller sample are kept"
    );
    let fresh = tempfile::tempdir().unwrap();
    run(&m, &d, &big, Shard::ALL, fresh.path(), &opts()).unwrap();
    assert_eq!(
        facts(&grown.path().join("run.sqlite")),
        facts(&fresh.path().join("run.sqlite"))
    );
    // Shrinking is another run.
    let e = run(&m, &d, &small, Shard::ALL, grown.path(), &opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("other settings"), "{e}");
}

/// Facts attributed together (`batch_facts`, as on a GPU) store what one fact
/// at a time stores: the same facts, errors, neurons and probabilities (scores
/// to float rounding: padding changes the shapes of the sums).
#[test]
fn facts_in_batches_store_the_same_records() {
    let d = data();
    for dir in ["tiny-bert", "tiny-llama"] {
        let m = kn::load_model(&fixture(dir), cpu()).unwrap();
        let s = settings(&m, dir, &["P36", "P101"], 3);
        let one = tempfile::tempdir().unwrap();
        run(&m, &d, &s, Shard::ALL, one.path(), &opts()).unwrap();
        let many = tempfile::tempdir().unwrap();
        let batched = RunOptions {
            batch_facts: 4,
            ig: Options {
                max_batch: 100_000,
                max_row_tokens: 10_000_000,
                ..Options::default()
            },
            ..opts()
        };
        run(&m, &d, &s, Shard::ALL, many.path(), &batched).unwrap();
        let (a, b) = (
            facts(&one.path().join("run.sqlite")),
            facts(&many.path().join("run.sqlite")),
        );
        assert_eq!(a.len(), b.len());
        assert!(
            a.iter().filter(|f| f.outcome.is_ok()).count() >= 2,
            "{dir}: too few facts ran"
        );
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((&x.relation, x.fact), (&y.relation, y.fact));
            match (&x.outcome, &y.outcome) {
                (Err(e), Err(f)) => assert_eq!(e, f),
                (Ok(r), Ok(q)) => {
                    assert_eq!(r.prompts.len(), q.prompts.len());
                    for (p, o) in r.prompts.iter().zip(&q.prompts) {
                        assert_eq!(p.prompt, o.prompt);
                        assert!((p.p_target - o.p_target).abs() < 1e-6, "{dir} {}", p.prompt);
                        assert!((p.max_score - o.max_score).abs() <= 1e-5 * p.max_score.abs());
                        let ids = |v: &[kn::experiment::db::Scored]| {
                            v.iter().map(|n| (n.0, n.1)).collect::<Vec<_>>()
                        };
                        assert_eq!(ids(&p.knowledge), ids(&o.knowledge), "{dir} {}", p.prompt);
                        assert_eq!(ids(&p.baseline), ids(&o.baseline), "{dir} {}", p.prompt);
                    }
                }
                _ => panic!(
                    "{dir} {} #{}: {:?} vs {:?}",
                    x.relation,
                    x.fact,
                    x.outcome.is_ok(),
                    y.outcome.is_ok()
                ),
            }
        }
    }
}

#[test]
fn methods_compared_over_a_run() {
    use kn::engine::methods_lab::Method;
    use kn::experiment::report::methods_at_scale::MethodsOptions;
    let d = data();
    let m = kn::load_model(&fixture("tiny-gpt2"), cpu()).unwrap();
    let s = settings(&m, &fixture("tiny-gpt2"), &["P36", "P19", "P101"], 4);
    let dir = tempfile::tempdir().unwrap();
    run(&m, &d, &s, Shard::ALL, dir.path(), &opts()).unwrap();
    let db = RunDb::open_existing(&dir.path().join("run.sqlite")).unwrap();
    let opts = ReportOptions {
        no_edits: true,
        methods: MethodsOptions {
            methods: Method::ALL.to_vec(),
            per_relation: 2,
            k: 3,
            ig: Options::default(),
        },
        ..ReportOptions::default()
    };
    let r = report(&m, &d, &db, "methods", &opts, &mut |_| {}).unwrap();
    assert!(r.update.is_none() && r.erase.is_empty(), "--no-edits");
    let ms = r.methods.as_ref().unwrap();
    assert!(ms.facts >= 1 && ms.facts <= 6, "{}", ms.facts);
    assert_eq!((ms.per_relation, ms.k), (2, 3));
    let names: Vec<&str> = ms.rows.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(names, Method::ALL.map(Method::name));
    let row = |m: Method| ms.rows.iter().find(|r| r.method == m.name()).unwrap();
    for r in &ms.rows {
        for e in [&r.suppress_top_k, &r.amplify_top_k, &r.unrelated_top_k] {
            let e = e
                .as_ref()
                .unwrap_or_else(|| panic!("{}: every fact has a top k", r.method));
            assert!(
                e.lo <= e.mean && e.mean <= e.hi && e.n == ms.facts,
                "{}: {e:?}",
                r.method
            );
        }
        assert!(r.seconds_per_fact >= 0.0);
    }
    // IG's refined sets are the report's knowledge neurons: never empty here.
    assert_eq!(row(Method::Ig).empty, 0);
    assert!(row(Method::Ig).suppress.is_some());
    // Random scores have no refined set to judge.
    assert!(
        row(Method::Random).neurons_per_fact.is_none() && row(Method::Random).suppress.is_none()
    );
    let g = |m: Method| row(m).gflop_per_fact;
    assert!(g(Method::IgMasked) > g(Method::Ig) && g(Method::Ig) > g(Method::GradXAct));
    assert!(g(Method::GradXAct) > g(Method::Activation) && g(Method::Random) == 0.0);
    // Per relation: every method on every relation compared, the facts adding
    // up to the whole, and a relation's top-k effect over its own facts.
    let mut rels: Vec<&str> = ms.by_relation.iter().map(|r| r.relation.as_str()).collect();
    rels.dedup();
    assert!(rels.iter().all(|r| ["P36", "P19", "P101"].contains(r)));
    assert_eq!(ms.by_relation.len(), rels.len() * Method::ALL.len());
    for (chunk, rel) in ms.by_relation.chunks(Method::ALL.len()).zip(&rels) {
        let names: Vec<&str> = chunk.iter().map(|r| r.method.as_str()).collect();
        assert_eq!(names, Method::ALL.map(Method::name), "{rel}");
        assert!(chunk
            .iter()
            .all(|r| r.relation == *rel && r.facts == chunk[0].facts));
        let e = chunk[0].suppress_top_k.as_ref().unwrap();
        assert_eq!(e.n, chunk[0].facts);
    }
    let per_rel: usize = ms
        .by_relation
        .iter()
        .step_by(Method::ALL.len())
        .map(|r| r.facts)
        .sum();
    assert_eq!(per_rel, ms.facts);
    // Seeded: the same comparison twice (timings aside).
    let r2 = report(&m, &d, &db, "methods", &opts, &mut |_| {}).unwrap();
    let strip = |r: &kn_shared::experiment::ExperimentReport| {
        let mut m = r.methods.clone().unwrap();
        for row in &mut m.rows {
            row.seconds_per_fact = 0.0;
        }
        m
    };
    assert_eq!(strip(&r), strip(&r2));
    // Each fact's outcomes went to the run file's cache as they were computed,
    // and the second report read them back: even the timings are the first's.
    assert_eq!(db.cached_count().unwrap(), ms.facts);
    assert_eq!(r.methods, r2.methods);
    // Other settings are other pieces.
    let k2 = ReportOptions {
        methods: MethodsOptions {
            k: 2,
            ..opts.methods.clone()
        },
        ..opts.clone()
    };
    let r3 = report(&m, &d, &db, "methods", &k2, &mut |_| {}).unwrap();
    assert_eq!(r3.methods.as_ref().unwrap().k, 2);
    assert_eq!(db.cached_count().unwrap(), 2 * ms.facts);
    markdown::write(&r, &dir.path().join("report")).unwrap();
    let md = std::fs::read_to_string(dir.path().join("report/report.md")).unwrap();
    assert!(md.contains("## Attribution methods compared") && md.contains("| grad-x-act |"));
    assert!(md.contains("Per relation, suppressing the refined set") && md.contains("| P36 |"));
    // Unknown methods are refused by the command line before any work.
    let out = kn_cmd(&[
        "experiment",
        "report",
        dir.path().to_str().unwrap(),
        "--methods",
        "saliency",
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown method `saliency`"));
}
