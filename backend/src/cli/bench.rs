//! `kn bench`: the time to find one fact's neurons (attribution of every prompt,
//! then refining) in each execution mode, beside the work it did (FLOPs counted
//! from the shapes, [`kn::engine::cost`]), the machine's own matmul peak, the
//! device-to-host reads ([`kn::engine::host`]) and the peak memory. A harness,
//! not a test: scripts/bench.sh runs it beside the peer implementation.

use super::args::{queries, FactArgs, IgArgs, Place};
use kn::engine::attribution::{attribute, Mode, Options};
use kn::engine::selection::{attribute_fact, fact_neurons, Thresholds};

pub fn run(
    at: Place,
    fact: &FactArgs,
    ig: &IgArgs,
    modes: &[Mode],
    repeat: usize,
    json: bool,
) -> anyhow::Result<()> {
    let device = at.device;
    let before = kn::device::memory_mib();
    kn::device::reset_peak_memory();
    let loading = std::time::Instant::now();
    let m = at.load(&fact.model)?;
    let load = serde_json::json!({
        "seconds": loading.elapsed().as_secs_f64(),
        "rss_before_mib": before,
        "peak_rss_mib": kn::device::peak_memory_mib(),
        "rss_after_mib": kn::device::memory_mib(),
        "weights_mib": m.held.bytes as f64 / f64::from(1 << 20),
    });
    let qs = queries(&m, fact)?;
    // Another precision than the default: what it costs in fidelity, on
    // this fact, against the checkpoint's own numbers in f32.
    let fidelity = if at.precision == kn::Precision::default() {
        None
    } else {
        let reference = kn::load_model(&fact.model, device)?;
        Some(kn::engine::precision::compare(
            &reference,
            &m,
            &qs,
            &fact.target,
            &ig.options(device),
            &Thresholds::default(),
        )?)
    };
    let mut rows = Vec::new();
    // Warm-up: first-call allocations and thread pools are not the method's cost.
    attribute(
        &m,
        &qs[0],
        &Options {
            steps: 2,
            ..ig.options(device)
        },
    )?;
    // The peak is measured before and after the modes and the larger kept: a
    // shared machine's speed moves, and a peak measured in a slow second would
    // put the work above it.
    let peak_before = kn::device::matmul_peak_of(device, m.dtype);
    for &mode in modes {
        let opts = Options {
            mode,
            ..ig.options(device)
        };
        rows.push(time_mode(&m, &qs, &fact.target, &opts, repeat)?);
    }
    let peak_after = kn::device::matmul_peak_of(device, m.dtype);
    let peak = peak_before.max(peak_after);
    for r in &mut rows {
        let f = r["gflops"].as_f64().unwrap_or(0.0) * 1e9 / peak;
        r["fraction_of_peak"] = serde_json::json!(f);
    }
    let out = serde_json::json!({
        "model": fact.model,
        "device": kn::device::describe(device),
        "threads": tch::get_num_threads(),
        "prompts": qs.len(),
        "steps": ig.steps,
        "max_batch": ig.options(device).max_batch,
        "max_row_tokens": ig.options(device).max_row_tokens,
        "layers": m.config().n_layers,
        "d_ff": m.config().d_ff,
        "dtype": kn::models::precision::name(m.dtype),
        "storage": kn::models::precision::name(m.held.storage),
        "load": load,
        "fidelity_vs_f32": fidelity,
        "tf32": kn::device::tf32(),
        "matmul_peak_gflops": peak / 1e9,
        "matmul_peak_runs_gflops": [peak_before / 1e9, peak_after / 1e9],
        "results": rows,
    });
    if json {
        println!("{out}");
    } else {
        let shape = Shape {
            model: &fact.model,
            layers: m.config().n_layers,
            d_ff: m.config().d_ff,
            prompts: qs.len(),
            steps: ig.steps,
            device,
        };
        println!(
            "  held in {}, computed in {}: {:.0} MiB of weights, loaded in {:.2} s; RSS {:.0} MiB before, {:.0} MiB after, peak {:.0} MiB",
            out["storage"].as_str().unwrap_or(""),
            out["dtype"].as_str().unwrap_or(""),
            load["weights_mib"].as_f64().unwrap_or(0.0),
            load["seconds"].as_f64().unwrap_or(0.0),
            load["rss_before_mib"].as_f64().unwrap_or(0.0),
            load["rss_after_mib"].as_f64().unwrap_or(0.0),
            load["peak_rss_mib"].as_f64().unwrap_or(0.0),
        );
        print_table(&shape, &rows, peak);
        if let Some(f) = &fidelity {
            print_fidelity(&out, f);
        }
    }
    Ok(())
}

/// Attribute the fact `repeat` times in one mode and keep the fastest: s/fact,
/// s/prompt, peak RSS, the work counted from the shapes and its rate, and the
/// device reads.
fn time_mode(
    m: &kn::Model,
    qs: &[kn::engine::Query],
    target: &str,
    opts: &Options,
    repeat: usize,
) -> anyhow::Result<serde_json::Value> {
    kn::device::reset_peak_memory();
    let flop: f64 = qs
        .iter()
        .map(|q| kn::engine::cost::attribution(m.config(), opts, q.cloze.ids.len()))
        .sum();
    let mut best = f64::INFINITY;
    let mut reads = 0;
    for _ in 0..repeat.max(1) {
        let (t0, r0) = (std::time::Instant::now(), kn::engine::host::reads());
        let fa = attribute_fact(m, qs.to_vec(), opts)?;
        let _ = fact_neurons(m, &fa, target, &Thresholds::default())?;
        best = best.min(t0.elapsed().as_secs_f64());
        reads = kn::engine::host::reads() - r0;
    }
    Ok(serde_json::json!({
        "mode": format!("{:?}", opts.mode).to_lowercase(),
        "seconds_per_fact": best,
        "seconds_per_prompt": best / qs.len() as f64,
        "peak_rss_mib": kn::device::peak_memory_mib(),
        "gflop": flop / 1e9,
        "gflops": flop / best / 1e9,
        "device_reads_per_fact": reads,
    }))
}

/// What was benchmarked, for the text table's header.
struct Shape<'a> {
    model: &'a str,
    layers: usize,
    d_ff: usize,
    prompts: usize,
    steps: usize,
    device: tch::Device,
}

fn print_table(shape: &Shape, rows: &[serde_json::Value], peak: f64) {
    println!(
        "{} ({} layers x {} neurons), {} prompts, m = {}, {} threads on {}",
        shape.model,
        shape.layers,
        shape.d_ff,
        shape.prompts,
        shape.steps,
        tch::get_num_threads(),
        kn::device::describe(shape.device)
    );
    let first = rows
        .first()
        .and_then(|r| r["seconds_per_fact"].as_f64())
        .unwrap_or(1.0);
    for r in rows {
        let s = r["seconds_per_fact"].as_f64().unwrap_or(0.0);
        println!("  {:<7} {:>9.2} s/fact  {:>8.3} s/prompt  peak RSS {:>6.0} MiB  {:>5.2}x vs first  {:>7.1} GFLOP/s = {:>5.1}% of the {:.0} GFLOP/s matmul peak  {} device reads", r["mode"].as_str().unwrap_or(""), s, r["seconds_per_prompt"].as_f64().unwrap_or(0.0), r["peak_rss_mib"].as_f64().unwrap_or(0.0), first / s, r["gflops"].as_f64().unwrap_or(0.0), 100.0 * r["fraction_of_peak"].as_f64().unwrap_or(0.0), peak / 1e9, r["device_reads_per_fact"]);
    }
}

fn print_fidelity(out: &serde_json::Value, f: &kn::engine::precision::Fidelity) {
    println!(
        "  {} storage, {} compute against the checkpoint in f32: scores move by at most {:.2}% of a prompt's largest, top-10 overlap {:.0}%, refined knowledge neurons {} ({} vs {})",
        out["storage"].as_str().unwrap_or(""),
        out["dtype"].as_str().unwrap_or(""),
        100.0 * f.worst_deviation,
        100.0 * f.top10_overlap,
        if f.same_knowledge { "the same" } else { "differ" },
        f.knowledge.0,
        f.knowledge.1
    );
}
