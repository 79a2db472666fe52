//! bf16 and f16 against f32 (`kn bench --dtype`, engine::precision): the
//! dtype really reaches the weights and activations, the fidelity measure
//! sees no difference where there is none, and f16 (10 mantissa bits) stays
//! closer to f32 than bf16 (7) on every fixture architecture.

use crate::common::*;
use kn::engine::attribution::Options;
use kn::engine::precision::compare;
use kn::engine::selection::Thresholds;
use kn::{Precision, Storage};
use tch::Kind;

/// IG at m = 8 and SPEC's thresholds with one prompt enough: what both
/// tests compare at.
fn settings() -> (Options, Thresholds) {
    let opts = Options {
        steps: 8,
        ..Options::default()
    };
    let th = Thresholds {
        min_prompts: 1,
        ..Thresholds::default()
    };
    (opts, th)
}

/// Every fixture's runtime.
const RUNTIMES: [&str; 17] = [
    "tiny-bert",
    "tiny-roberta",
    "tiny-gpt2",
    "tiny-llama",
    "tiny-mistral",
    "tiny-qwen2-sliding",
    "tiny-qwen3",
    "tiny-llama3",
    "tiny-phi3",
    "tiny-olmo2",
    "tiny-gpt2-crfm",
    "tiny-gemma",
    "tiny-gemma2",
    "tiny-gemma3",
    "tiny-pythia",
    "tiny-neox-serial",
    "tiny-gptj",
];

/// Matrices held in bf16 and computed in f32, on every runtime: each use of a
/// held matrix meets the activations in f32 (a missed one is a dtype error),
/// the scores move by what rounding the weights allows, the id names the
/// precision, the bytes halve, and an edit's undo is still exact.
#[test]
fn every_runtime_runs_with_its_matrices_held_in_bf16() {
    let held = Precision {
        storage: Storage::Held(Kind::BFloat16),
        compute: Kind::Float,
    };
    let (opts, th) = settings();
    for dir in RUNTIMES {
        let f32m = kn::load_model(&fixture(dir), cpu()).unwrap();
        let m = kn::load_model_with(&fixture(dir), cpu(), held).unwrap();
        assert_eq!(m.held.storage, Kind::BFloat16, "{dir}");
        assert_eq!(m.net.value_slots(0).kind(), Kind::BFloat16, "{dir}");
        assert!(m.held.rounded, "{dir}");
        assert_eq!(m.fingerprint, format!("{}@bf16-f32", f32m.fingerprint));
        assert!(
            m.held.bytes * 10 < f32m.held.bytes * 6,
            "{dir}: {} of {} bytes",
            m.held.bytes,
            f32m.held.bytes
        );
        let qs: Vec<_> = golden(dir)["attribution"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| query(&f32m, c))
            .collect();
        let target = f32m.tokenizer.token_text(qs[0].target);
        let f = compare(&f32m, &m, &qs, &target, &opts, &th).unwrap();
        assert!(
            f.worst_deviation > 0.0 && f.worst_deviation < 0.1,
            "{dir}: {f:?}"
        );
        assert!(f.top10_overlap >= 0.7, "{dir}: {f:?}");
        crate::edit::undo_is_exact_at(dir, held);
    }
}

#[test]
fn cheaper_dtypes_move_the_scores_by_what_their_precision_allows() {
    for dir in ["tiny-bert", "tiny-gpt2", "tiny-llama"] {
        let f32m = kn::load_model(&fixture(dir), cpu()).unwrap();
        let qs: Vec<_> = golden(dir)["attribution"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| query(&f32m, c))
            .collect();
        let target = f32m.tokenizer.token_text(qs[0].target);
        let (opts, th) = settings();
        let same = compare(&f32m, &f32m, &qs, &target, &opts, &th).unwrap();
        assert_eq!(same.worst_deviation, 0.0, "{dir}");
        assert!(same.same_knowledge && same.top10_overlap == 1.0, "{dir}");
        let mut dev = Vec::new();
        for kind in [Kind::BFloat16, Kind::Half] {
            let m = kn::load_model_as(&fixture(dir), cpu(), kind).unwrap();
            assert_eq!(m.dtype, kind);
            assert_eq!(m.net.value_slots(0).kind(), kind, "{dir}: the weights");
            let f = compare(&f32m, &m, &qs, &target, &opts, &th).unwrap();
            assert!(
                f.worst_deviation > 0.0 && f.worst_deviation < 0.1,
                "{dir} {kind:?}: {f:?}"
            );
            assert!(f.top10_overlap >= 0.7, "{dir} {kind:?}: {f:?}");
            dev.push(f.worst_deviation);
        }
        assert!(dev[1] < dev[0], "{dir}: f16 {} vs bf16 {}", dev[1], dev[0]);
    }
    let e = kn::load_model_as(&fixture("tiny-gpt2"), cpu(), Kind::Int64)
        .err()
        .unwrap();
    assert!(e.to_string().contains("bf16"), "{e}");
}
