//! Bad input: every case is a typed error with a message that says what was
//! wrong, never a panic.

use crate::common::*;
use kn::Error;
use kn_shared::PredictRequest;
use std::path::Path;

fn load_err(spec: &str) -> Error {
    match kn::load_model(spec, cpu()) {
        Ok(_) => panic!("{spec}: loaded, but should have failed"),
        Err(e) => e,
    }
}

/// Copy a fixture directory so a test can damage it.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixtures().join(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    tmp
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn missing_model() {
    let e = load_err("/nonexistent/model-dir");
    assert!(matches!(e, Error::ModelNotFound(_)), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/model-dir"));
    let e = load_err("./no-such.gguf");
    assert!(matches!(e, Error::ModelNotFound(_)), "{e:?}");
}

#[test]
fn missing_files() {
    let d = copy_fixture("tiny-bert");
    std::fs::remove_file(d.path().join("model.safetensors")).unwrap();
    let e = load_err(&path_str(d.path()));
    assert!(e.to_string().contains("no model.safetensors"), "{e}");

    let d = copy_fixture("tiny-bert");
    std::fs::remove_file(d.path().join("config.json")).unwrap();
    let e = load_err(&path_str(d.path()));
    assert!(e.to_string().contains("no config.json"), "{e}");

    let d = copy_fixture("tiny-gpt2");
    std::fs::remove_file(d.path().join("tokenizer.json")).unwrap();
    let e = load_err(&path_str(d.path()));
    assert!(e.to_string().contains("no tokenizer found"), "{e}");
}

#[test]
fn corrupt_files() {
    let d = copy_fixture("tiny-bert");
    std::fs::write(
        d.path().join("model.safetensors"),
        b"\x10\0\0\0\0\0\0\0{not json at all",
    )
    .unwrap();
    let e = load_err(&path_str(d.path()));
    assert!(matches!(e, Error::BadModel { .. }), "{e:?}");
    assert!(e.to_string().contains("safetensors"), "{e}");

    let d = copy_fixture("tiny-bert");
    std::fs::write(d.path().join("config.json"), "{ broken").unwrap();
    let e = load_err(&path_str(d.path()));
    assert!(e.to_string().contains("not valid JSON"), "{e}");

    let d = copy_fixture("tiny-gpt2");
    std::fs::write(d.path().join("tokenizer.json"), "[]").unwrap();
    let e = load_err(&path_str(d.path()));
    assert!(matches!(e, Error::Tokenizer(_)), "{e:?}");
}

#[test]
fn wrong_shapes() {
    let d = copy_fixture("tiny-bert");
    edit_config(d.path(), |c| c["intermediate_size"] = 96.into());
    let e = load_err(&path_str(d.path()));
    assert!(
        e.to_string().contains("intermediate.dense.weight") && e.to_string().contains("[64, 32]"),
        "{e}"
    );

    let d = copy_fixture("tiny-llama");
    edit_config(d.path(), |c| c["num_key_value_heads"] = 4.into());
    let e = load_err(&path_str(d.path()));
    assert!(e.to_string().contains("k_proj.weight"), "{e}");
}

#[test]
fn unknown_architecture() {
    let d = copy_fixture("tiny-bert");
    edit_config(d.path(), |c| c["model_type"] = "t5".into());
    let e = load_err(&path_str(d.path()));
    assert!(
        matches!(e, Error::UnknownArchitecture(ref a) if a == "t5"),
        "{e:?}"
    );
}

#[test]
fn truncated_and_corrupt_gguf() {
    let src = std::fs::read(fixtures().join("tiny-llama-Q4_1.gguf")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for cut in [10, 200, src.len() / 2, src.len() - 1] {
        let p = tmp.path().join(format!("cut{cut}.gguf"));
        std::fs::write(&p, &src[..cut]).unwrap();
        let e = load_err(&path_str(&p));
        assert!(matches!(e, Error::Gguf { .. }), "cut at {cut}: {e:?}");
        assert!(e.to_string().contains("truncated"), "cut at {cut}: {e}");
    }
    let p = tmp.path().join("garbage.gguf");
    std::fs::write(&p, b"this is not a model").unwrap();
    let e = load_err(&path_str(&p));
    assert!(e.to_string().contains("magic"), "{e}");
}

fn predict_err(model: &kn::Model, prompt: &str, target: Option<&str>, top_k: usize) -> Error {
    let req = PredictRequest {
        edits: Vec::new(),
        model: None,
        prompt: prompt.into(),
        target: target.map(String::from),
        top_k,
    };
    match kn::predict::predict(model, &req) {
        Ok(_) => panic!("{prompt:?}: predicted, but should have failed"),
        Err(e) => e,
    }
}

#[test]
fn bad_prompts_and_targets() {
    let bert = kn::load_model(&fixture("tiny-bert"), cpu()).unwrap();
    let gpt2 = kn::load_model(&fixture("tiny-gpt2"), cpu()).unwrap();
    for m in [&bert, &gpt2] {
        let e = predict_err(m, "The capital of France is Paris.", None, 5);
        assert!(
            matches!(e, Error::Prompt(_)) && e.to_string().contains("no [MASK]"),
            "{e}"
        );
        let e = predict_err(m, "[MASK] is the capital of [MASK].", None, 5);
        assert!(e.to_string().contains("2 [MASK]s"), "{e}");
        let e = predict_err(m, "Paris is in [MASK].", None, 0);
        assert!(
            matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("top_k"),
            "{e}"
        );
        let long = format!("{} [MASK].", "word ".repeat(200));
        let e = predict_err(m, &long, None, 5);
        assert!(matches!(e, Error::PromptTooLong { max: 64, .. }), "{e:?}");
    }
    let e = predict_err(&gpt2, "[MASK] is the capital of France.", None, 5);
    assert!(e.to_string().contains("blank must end the prompt"), "{e}");
    let e = predict_err(&gpt2, "[MASK].", None, 5);
    assert!(e.to_string().contains("no text before"), "{e}");
    // A word the fixture vocabulary splits into more pieces than an answer
    // may have.
    let e = predict_err(&bert, "Paris is in [MASK].", Some("Zyxwvutsrq"), 5);
    match e {
        Error::AnswerTooLong { pieces, max, .. } => assert!(pieces > max, "{e}"),
        other => panic!("{other:?}"),
    }
    let e = predict_err(&bert, "Paris is in [MASK].", Some("  "), 5);
    assert!(e.to_string().contains("target is empty"), "{e}");
}

#[test]
fn predict_reports_target_rank_consistently() {
    let m = kn::load_model(&fixture("tiny-llama"), cpu()).unwrap();
    let req = PredictRequest {
        edits: Vec::new(),
        model: None,
        prompt: "The capital of France is [MASK].".into(),
        target: None,
        top_k: 100,
    };
    let r = kn::predict::predict(&m, &req).unwrap();
    assert_eq!(r.top_k.len(), 100);
    assert!(r.top_k.windows(2).all(|w| w[0].prob >= w[1].prob));
    // The best-ranked whole word after a space, asked for as the target, gets
    // that rank and the same probability.
    let (i, word) = r
        .top_k
        .iter()
        .enumerate()
        .find_map(|(i, t)| {
            let w = t.token.strip_prefix(' ')?;
            (w.len() > 1 && w.chars().all(|c| c.is_ascii_alphabetic())).then(|| (i, w.to_string()))
        })
        .expect("a word among the top 100");
    let r2 = kn::predict::predict(
        &m,
        &PredictRequest {
            target: Some(word),
            ..req
        },
    )
    .unwrap();
    let t = r2.target.unwrap();
    assert_eq!(t.id, r.top_k[i].id);
    assert_eq!(t.rank, i + 1);
    assert_eq!(t.prob, r.top_k[i].prob);
}
