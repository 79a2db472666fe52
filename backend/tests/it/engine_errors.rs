//! Bad input to the engine: typed errors with clear messages.

use crate::common::*;
use kn::engine::attribution::{attribute, Options};
use kn::engine::edit::{erase, EraseWith};
use kn::engine::intervene::intervene;
use kn::engine::selection::{attribute_fact, fact_neurons, Thresholds};
use kn::engine::{Neuron, Query};
use kn::Error;

#[test]
fn bad_engine_input() {
    let m = kn::load_model(&fixture("tiny-llama"), cpu()).unwrap();
    // A target the tokenizer splits into more pieces than an answer may have.
    let e = Query::new(&m, "The capital of France is [MASK].", "Zyxwvutsrqponm").unwrap_err();
    assert!(
        matches!(
            e,
            Error::AnswerTooLong {
                pieces: 13,
                max: 8,
                ..
            }
        ),
        "{e:?}"
    );
    let q = Query::new(&m, "The capital of France is [MASK].", "Paris").unwrap();
    for steps in [0, 1_000_000] {
        let e = attribute(
            &m,
            &q,
            &Options {
                steps,
                ..Options::default()
            },
        )
        .err()
        .unwrap();
        assert!(
            matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("steps"),
            "{e}"
        );
    }
    let e = attribute(
        &m,
        &q,
        &Options {
            max_batch: 0,
            ..Options::default()
        },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("max_batch"), "{e}");
    let qs = vec![q.clone()];
    let e = intervene(&m, &qs, &[], 0.0).unwrap_err();
    assert!(e.to_string().contains("neuron set is empty"), "{e}");
    let e = intervene(&m, &qs, &[Neuron { layer: 3, index: 0 }], 0.0).unwrap_err();
    assert!(
        e.to_string().contains("out of range") && e.to_string().contains("layers 0..2"),
        "{e}"
    );
    let e = intervene(
        &m,
        &qs,
        &[Neuron {
            layer: 0,
            index: 128,
        }],
        0.0,
    )
    .unwrap_err();
    assert!(e.to_string().contains("neurons 0..127"), "{e}");
    let e = intervene(&m, &qs, &[Neuron { layer: 0, index: 1 }], f64::NAN).unwrap_err();
    assert!(e.to_string().contains("finite"), "{e}");
    let e = erase(
        &m,
        &[Neuron { layer: 9, index: 0 }],
        EraseWith::Zero,
        "x".into(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("out of range"), "{e}");
    let e = attribute_fact(&m, vec![], &Options::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("at least one prompt"), "{e}");
    let fa = attribute_fact(&m, qs, &Options::default()).unwrap();
    let e = fact_neurons(
        &m,
        &fa,
        "Paris",
        &Thresholds {
            t: 1.5,
            ..Thresholds::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("t is 1.5"), "{e}");
    assert!("L3".parse::<Neuron>().is_err());
    assert_eq!(
        "L3:7".parse::<Neuron>().unwrap(),
        Neuron { layer: 3, index: 7 }
    );
}
