//! Reversible edits: undo restores the logits exactly, a saved and reloaded edit
//! set reproduces the edited logits, an edit refuses another model, and the files
//! on disk never change.

use crate::common::*;
use kn::engine::edit::{apply, erase, fingerprint, undo, update_fact, EraseWith, UpdateOptions};
use kn::engine::{Neuron, Query};
use kn::models::{Batch, Hooks};
use kn_shared::EditSet;

fn logits(m: &kn::Model, q: &Query) -> Vec<f32> {
    let b = Batch::new(std::slice::from_ref(&q.cloze.ids), &[q.cloze.blank], cpu()).unwrap();
    Vec::try_from(tch::no_grad(|| {
        m.net.forward(&b, &Hooks::default()).logits.get(0)
    }))
    .unwrap()
}

fn file_bytes(dir: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(dir).join("model.safetensors")).unwrap()
}

/// A query whose target is the model's current top-1, so the update has something to change.
fn top1_query(m: &kn::Model, prompt: &str) -> Query {
    let q = Query::with_token(m, prompt, 0).unwrap();
    let l = logits(m, &q);
    let top = l
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0 as u32;
    Query::with_token(m, prompt, top).unwrap()
}

#[test]
fn undo_is_exact_and_saved_edits_reproduce() {
    for dir in ["tiny-bert", "tiny-gpt2", "tiny-llama"] {
        undo_is_exact(dir);
    }
}

/// Undo restores the logits exactly, a saved edit reproduces them on a fresh
/// copy, erasing undoes too, and the file on disk never changes.
pub(crate) fn undo_is_exact(dir: &str) {
    undo_is_exact_at(dir, kn::Precision::default());
}

/// [`undo_is_exact`] with the model at `precision`.
pub(crate) fn undo_is_exact_at(dir: &str, precision: kn::Precision) {
    let on_disk = file_bytes(dir);
    let m = kn::load_model_with(&fixture(dir), cpu(), precision).unwrap();
    let fp = fingerprint(&m);
    let q = top1_query(&m, "The capital of France is [MASK].");
    let before = logits(&m, &q);
    let neurons = [
        Neuron { layer: 0, index: 3 },
        Neuron { layer: 2, index: 5 },
        Neuron { layer: 1, index: 7 },
    ];
    let new = (q.target + 1) % m.config().vocab_size as u32;
    let edit = update_fact(
        &m,
        &neurons,
        q.target,
        new,
        &UpdateOptions::default(),
        "test".into(),
    )
    .unwrap();
    assert_eq!(edit.slots.len(), 3);
    apply(&m, &edit, &fp).unwrap();
    let edited = logits(&m, &q);
    assert_ne!(edited, before, "{dir}: the edit changed nothing");
    undo(&m, &edit, &fp).unwrap();
    assert_eq!(
        logits(&m, &q),
        before,
        "{dir}: undo must restore the logits exactly"
    );

    // Save, load into a fresh copy of the model, apply: the same edited logits.
    let json = serde_json::to_string(&edit).unwrap();
    let loaded: EditSet = serde_json::from_str(&json).unwrap();
    let m2 = kn::load_model_with(&fixture(dir), cpu(), precision).unwrap();
    apply(&m2, &loaded, &fingerprint(&m2)).unwrap();
    assert_eq!(
        logits(&m2, &q),
        edited,
        "{dir}: a reloaded edit reproduces the logits"
    );
    // Applying twice is refused: the slots no longer hold their `before`.
    let e = apply(&m2, &loaded, &fingerprint(&m)).unwrap_err();
    assert!(e.to_string().contains("has changed"), "{e}");

    // Erase, then undo.
    let er = erase(&m, &neurons, EraseWith::Zero, "erase".into()).unwrap();
    apply(&m, &er, &fp).unwrap();
    assert_ne!(logits(&m, &q), before);
    undo(&m, &er, &fp).unwrap();
    assert_eq!(logits(&m, &q), before);
    assert_eq!(
        file_bytes(dir),
        on_disk,
        "{dir}: the weights on disk changed"
    );
}

#[test]
fn an_edit_for_another_model_is_refused() {
    let bert = kn::load_model(&fixture("tiny-bert"), cpu()).unwrap();
    let gpt2 = kn::load_model(&fixture("tiny-gpt2"), cpu()).unwrap();
    let edit = erase(
        &bert,
        &[Neuron { layer: 0, index: 1 }],
        EraseWith::Zero,
        "x".into(),
    )
    .unwrap();
    let e = apply(&gpt2, &edit, &fingerprint(&gpt2)).unwrap_err();
    assert!(e.to_string().contains("was made for model"), "{e}");
    let e = undo(&gpt2, &edit, &fingerprint(&gpt2)).unwrap_err();
    assert!(e.to_string().contains("was made for model"), "{e}");
    // Same architecture and shapes, different weights: the checksum tells them apart.
    let llama = kn::load_model(&fixture("tiny-llama"), cpu()).unwrap();
    let q4 = kn::load_model(&fixture("tiny-llama-Q4_1.gguf"), cpu()).unwrap();
    assert_ne!(fingerprint(&llama), fingerprint(&q4));
}

/// The fingerprint is the same for any thread count (libtorch's count is the
/// process's, so this test runs alone).
#[test]
#[ignore = "sets libtorch's process-wide thread count: runs alone, as scripts/test.sh does (cargo test -- --ignored --test-threads=1)"]
fn the_fingerprint_is_the_same_for_any_thread_count() {
    let dir = fixture("tiny-llama");
    let threads = tch::get_num_threads();
    tch::set_num_threads(1);
    let one = fingerprint(&kn::load_model(&dir, cpu()).unwrap());
    tch::set_num_threads(2);
    let two = fingerprint(&kn::load_model(&dir, cpu()).unwrap());
    tch::set_num_threads(threads);
    assert_eq!(one, two);
}

/// The fingerprint is a hash of the checkpoint's bytes: the same for a copy
/// elsewhere, different for other weights.
#[test]
fn the_fingerprint_is_the_same_everywhere() {
    let dir = fixture("tiny-llama");
    let one = fingerprint(&kn::load_model(&dir, cpu()).unwrap());
    assert!(
        one.starts_with("llama-") && one.contains("-sha256:"),
        "{one}"
    );

    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
        }
    }
    let moved = fingerprint(&kn::load_model(copy.path().to_str().unwrap(), cpu()).unwrap());
    assert_eq!(moved, one, "a moved copy is the same model");

    // One weight changed: another model.
    let path = copy.path().join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let changed = fingerprint(&kn::load_model(copy.path().to_str().unwrap(), cpu()).unwrap());
    assert_ne!(changed, one);
}

/// One definition of the update's rates for the web app and the experiments:
/// SPEC's change rate counts every prompt whose top-1 is not the old answer;
/// the other reading counts only prompts answered correctly before.
#[test]
fn rates_read_the_change_both_ways() {
    use kn::engine::edit::{known_before, rates};
    let m = kn::load_model(&fixture("tiny-llama"), cpu()).unwrap();
    let right = top1_query(&m, "The capital of France is [MASK].");
    let wrong = top1_query(&m, "France's capital is [MASK].");
    let wrong = Query::with_token(
        &m,
        &wrong.prompt,
        (wrong.target + 1) % m.config().vocab_size as u32,
    )
    .unwrap();
    let qs = [right.clone(), wrong];
    let known = known_before(&m, &qs).unwrap();
    assert_eq!(known, vec![true, false]);
    // No edit at all: the prompt wrong before counts as "changed" under
    // SPEC's reading, and nothing changed among the known prompts.
    let r = rates(&m, &qs, right.target, &known).unwrap();
    assert_eq!(
        (r.change, r.change_known, r.prompts, r.known),
        (0.5, Some(0.0), 2, 1)
    );
    assert_eq!(r.success, 0.5);
    let none = rates(&m, &qs[1..], 0, &known[1..]).unwrap();
    assert_eq!(
        none.change_known, None,
        "no known prompt: no second reading"
    );
}
