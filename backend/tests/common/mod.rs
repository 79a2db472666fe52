//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The fixture models written by `scripts/make_fixtures.py`.
pub fn fixtures() -> PathBuf {
    let dir = std::env::var("KN_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/models"));
    assert!(
        dir.join("STAMP").exists(),
        "fixtures missing in {}: run `.venv/bin/python scripts/make_fixtures.py` (the test command does)",
        dir.display()
    );
    dir
}

pub fn fixture(name: &str) -> String {
    fixtures().join(name).to_string_lossy().into_owned()
}

pub fn golden(dir: &str) -> serde_json::Value {
    let p = fixtures().join(dir).join("golden.json");
    serde_json::from_str(
        &std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
    )
    .unwrap()
}

pub fn cpu() -> tch::Device {
    tch::Device::Cpu
}

/// The model's token ids equal the goldens' for every `{text, ids}` case (a few
/// hundred of them).
pub fn assert_token_parity(model: &kn::Model, label: &str, cases: &serde_json::Value) {
    let cases = cases.as_array().unwrap();
    assert!(cases.len() >= 200, "parity needs a few hundred strings");
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want: Vec<u32> = c["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            model.tokenizer.encode(text).unwrap(),
            want,
            "{label}: tokens of {text:?}"
        );
    }
}
