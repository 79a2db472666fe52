//! Hub ids: a model in the standard Hugging Face cache loads without a network;
//! one that is not cached, offline, is a clear error that names the fix.
//! (It sets HF_HOME for the process, so it runs apart from the others.)

use crate::common::*;

#[test]
#[ignore = "sets HF_HOME for the process: runs alone, as scripts/test.sh does (cargo test -- --ignored --test-threads=1)"]
fn hub_ids_from_cache_and_offline_error() {
    let home = tempfile::tempdir().unwrap();
    let repo = home.path().join("hub/models--test-org--tiny-bert");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
    ] {
        std::fs::copy(fixtures().join("tiny-bert").join(f), snap.join(f)).unwrap();
    }
    std::env::set_var("HF_HOME", home.path());
    std::env::set_var("HF_HUB_OFFLINE", "1");

    let m = kn::load_model("test-org/tiny-bert", cpu()).unwrap();
    assert_eq!(m.config().n_layers, 3);
    assert!(m.source.starts_with(home.path()));

    let e = kn::load_model("bert-base-cased", cpu()).err().unwrap();
    assert!(matches!(e, kn::Error::Hub { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("bert-base-cased") && msg.contains("--model DIR"),
        "{msg}"
    );
}
