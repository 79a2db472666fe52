//! The method on the real default model: "The capital of France is" → " Paris".
//! Suppressing the fact's refined knowledge neurons must lower P(" Paris") more
//! than suppressing random neurons of the same count and more than the
//! baseline's neurons; amplifying them must raise it. The numbers are printed.

use crate::common::*;
use kn::engine::attribution::Options;
use kn::engine::intervene::{intervene, random_like};
use kn::engine::selection::{attribute_fact, fact_neurons, Thresholds};
use kn::engine::Query;

const PROMPTS: [&str; 5] = [
    "The capital of France is [MASK].",
    "The capital city of France is [MASK].",
    "France's capital is [MASK].",
    "France's capital city is [MASK].",
    "France's capital, [MASK].",
];

#[test]
fn knowledge_neurons_of_paris_carry_the_fact() {
    let m = kn::load_model("smollm2", cpu()).unwrap();
    let qs: Vec<Query> = PROMPTS
        .iter()
        .map(|p| Query::new(&m, p, "Paris").unwrap())
        .collect();
    let fa = attribute_fact(&m, qs.clone(), &Options::default()).unwrap();
    let r = fact_neurons(&m, &fa, "Paris", &Thresholds::default()).unwrap();
    let kn_set: Vec<_> = r.knowledge.iter().map(|n| n.neuron()).collect();
    let base: Vec<_> = r.baseline.iter().map(|n| n.neuron()).collect();
    println!("knowledge neurons: {kn_set:?}");
    println!("baseline neurons (t = {}): {base:?}", r.baseline_t);
    assert!(!kn_set.is_empty() && !base.is_empty());
    assert!(
        (2..=5).contains(&base.len()) || r.baseline_t >= 0.95 || r.baseline_t <= 0.05,
        "baseline tuned to 2–5"
    );

    let sup_kn = intervene(&m, &qs, &kn_set, 0.0).unwrap();
    let sup_base = intervene(&m, &qs, &base, 0.0).unwrap();
    let amp_kn = intervene(&m, &qs, &kn_set, 2.0).unwrap();
    let amp_base = intervene(&m, &qs, &base, 2.0).unwrap();
    println!(
        "suppress: knowledge {:+.2}%, baseline {:+.2}%",
        100.0 * sup_kn.relative_change,
        100.0 * sup_base.relative_change
    );
    println!(
        "amplify:  knowledge {:+.2}%, baseline {:+.2}%",
        100.0 * amp_kn.relative_change,
        100.0 * amp_base.relative_change
    );
    for seed in 0..3 {
        let rnd = random_like(m.config(), &kn_set, seed);
        let sup_rnd = intervene(&m, &qs, &rnd, 0.0).unwrap();
        println!(
            "suppress: random (seed {seed}) {:+.2}%",
            100.0 * sup_rnd.relative_change
        );
        assert!(
            sup_kn.relative_change < sup_rnd.relative_change,
            "random neurons (seed {seed}) suppressed more"
        );
    }
    assert!(
        sup_kn.relative_change < sup_base.relative_change,
        "baseline neurons suppressed more"
    );
    assert!(
        sup_kn.relative_change < -0.2,
        "suppressing knowledge neurons should clearly lower P"
    );
    assert!(
        amp_kn.relative_change > 0.0,
        "amplifying knowledge neurons should raise P"
    );
}
