//! `kn info` and `kn bench` as a user runs them: what they report about the
//! machine and the model, and that the bench's FLOP accounting is consistent.

use crate::common::*;
use serde_json::Value;
use std::process::Command;

fn kn(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_kn"))
        .args(args)
        .env("KN_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kn {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn info_says_what_runs_where() {
    let llama = fixture("tiny-llama");
    let v = kn(&["info", "--device", "auto", "--model", &llama]);
    let fp = v["fingerprint"].as_str().unwrap();
    assert!(fp.contains("sha256:"), "{fp}");
    assert!(v["cuda_available"].is_boolean());
    let cuda = v["cuda_available"].as_bool().unwrap();
    assert_eq!(v["device"] == "cpu", !cuda, "{v}");
    assert_eq!(v["dtype"], "f32");
    assert!(v["threads"].as_u64().unwrap() >= 1);
    // Attention projections: grouped-query attention reads fewer key/value
    // columns than query columns, never more.
    let (q, kv) = (v["q_dim"].as_u64().unwrap(), v["kv_dim"].as_u64().unwrap());
    assert!(kv <= q && q > 0, "{v}");

    // The same weights on another device: the same fingerprint.
    let cpu = kn(&["info", "--device", "cpu", "--model", &llama]);
    assert_eq!(cpu["fingerprint"], v["fingerprint"]);
}

/// `--storage` and `--dtype` reach every command (they are global) and `kn
/// info` says both; a bf16 checkpoint is held in bf16 by default under its own
/// id, and a precision that changes the numbers puts itself on the id.
#[test]
fn info_says_the_precision_and_ids_keep_precisions_apart() {
    let bf16 = fixture("tiny-gemma2-bf16");
    let own = kn(&["info", "--model", &bf16]);
    assert_eq!(
        (&own["storage"], &own["dtype"]),
        (&"bf16".into(), &"f32".into())
    );
    let upcast = kn(&["--storage", "f32", "info", "--model", &bf16]);
    assert_eq!(upcast["storage"], "f32");
    assert_eq!(
        upcast["fingerprint"], own["fingerprint"],
        "same numbers, same id"
    );
    let llama = fixture("tiny-llama");
    let f32 = kn(&["info", "--model", &llama])["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    for (args, tag) in [
        (["--storage", "bf16"], "@bf16-f32"),
        (["--dtype", "bf16"], "@bf16-bf16"),
    ] {
        let v = kn(&[args[0], args[1], "info", "--model", &llama]);
        assert_eq!(v["fingerprint"], format!("{f32}{tag}"), "{args:?}");
        assert!(v["weights_mib"].as_f64().unwrap() > 0.0);
    }
    // After the subcommand too, as users write options.
    let v = kn(&["info", "--model", &llama, "--storage", "bf16"]);
    assert_eq!(v["storage"], "bf16");
}

#[test]
fn bench_reports_work_and_rate_consistently() {
    let llama = fixture("tiny-llama");
    let v = kn(&[
        "bench",
        "--device",
        "cpu",
        "--model",
        &llama,
        "--target",
        "Paris",
        "--prompt",
        "The capital of France is [MASK].",
        "--prompt",
        "France's capital is [MASK].",
        "--modes",
        "resume,fast",
        "--json",
    ]);
    let peak = v["matmul_peak_gflops"].as_f64().unwrap();
    assert!(peak > 0.0, "{v}");
    // Measured before and after the modes; the larger is the peak.
    let runs: Vec<f64> = v["matmul_peak_runs_gflops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(runs.len(), 2);
    assert_eq!(peak, runs[0].max(runs[1]));
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        let (gflop, rate, secs) = (
            r["gflop"].as_f64().unwrap(),
            r["gflops"].as_f64().unwrap(),
            r["seconds_per_fact"].as_f64().unwrap(),
        );
        assert!(gflop > 0.0 && rate > 0.0 && secs > 0.0, "{r}");
        assert!(
            (rate * secs / gflop - 1.0).abs() < 1e-6,
            "rate × time ≠ work: {r}"
        );
        assert!((r["fraction_of_peak"].as_f64().unwrap() * peak / rate - 1.0).abs() < 1e-6);
        // Results stay on the device until the fact's prompts (traced
        // together) are done: one read, however many layers and steps.
        let reads = r["device_reads_per_fact"].as_u64().unwrap();
        assert_eq!(reads, 1, "{r}");
    }
    // On a causal model fast mode reuses the earlier positions' keys and values
    // instead of recomputing them for every scaled copy: strictly less arithmetic
    // for the same attribution.
    assert!(rows[1]["gflop"].as_f64().unwrap() < rows[0]["gflop"].as_f64().unwrap());
}

#[test]
fn methods_compares_every_method_on_one_fact() {
    let gpt2 = fixture("tiny-gpt2");
    let v = kn(&[
        "methods",
        "--device",
        "cpu",
        "--model",
        &gpt2,
        "--target",
        "Paris",
        "--prompt",
        "The capital of France is [MASK].",
        "--prompt",
        "France's capital is [MASK].",
        "--unrelated-target",
        "Berlin",
        "--unrelated-prompt",
        "The capital of Germany is [MASK].",
        "--k",
        "1,3",
        "--json",
    ]);
    let r: kn_shared::methods::MethodsReport = serde_json::from_value(v).unwrap();
    let names: Vec<&str> = r.methods.iter().map(|m| m.method.as_str()).collect();
    assert_eq!(
        names,
        [
            "ig",
            "ig-masked-baseline",
            "activation",
            "grad-x-act",
            "logprob-increase",
            "random"
        ]
    );
    assert_eq!((r.prompts.len(), r.unrelated_prompts.len()), (2, 1));
    for m in &r.methods {
        assert_eq!(m.by_k.iter().map(|e| e.k).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(m.top.len(), 3);
        assert!(m.by_k.iter().all(|e| e.suppress_unrelated.is_some()));
    }
    assert_eq!(r.spearman.len(), 6);
    // An unknown method is refused with the list of the known ones.
    let out = Command::new(env!("CARGO_BIN_EXE_kn"))
        .args(["methods", "--model", &gpt2, "--target", "Paris"])
        .args([
            "--prompt",
            "The capital of France is [MASK].",
            "--methods",
            "saliency",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown method `saliency`") && err.contains("grad-x-act"),
        "{err}"
    );
}

/// `kn info | grep -q …` closes the pipe while kn still prints: kn must end
/// as Unix tools do (by SIGPIPE), not with a panic and exit code 101 (a CI run
/// failed that way). Here the reader is gone before kn starts, so every run
/// hits the closed pipe.
#[cfg(unix)]
#[test]
fn a_closed_pipe_ends_kn_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_kn"))
        .args(["info", "--model", &fixture("tiny-bert")])
        .env("KN_LOG", "warn")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        out.status.signal(),
        Some(libc_sigpipe()),
        "{:?}",
        out.status
    );
}

#[cfg(unix)]
fn libc_sigpipe() -> i32 {
    13 // SIGPIPE on Linux and the BSDs
}
