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
