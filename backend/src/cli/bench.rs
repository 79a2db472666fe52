//! `kn bench`: the time to find one fact's neurons (attribution of every prompt,
//! then refining) in each execution mode, beside the work it did (FLOPs counted
//! from the shapes, [`kn::engine::cost`]), the machine's own matmul peak, the
//! device-to-host reads ([`kn::engine::host`]) and the peak memory. A harness,
//! not a test: scripts/bench.sh runs it beside the peer implementation.

use super::args::{queries, FactArgs, IgArgs};
use kn::engine::attribution::{attribute, Mode, Options};
use kn::engine::neurons::{attribute_fact, fact_neurons, Thresholds};

pub fn run(
    device: tch::Device,
    fact: &FactArgs,
    ig: &IgArgs,
    modes: &[Mode],
    repeat: usize,
    json: bool,
) -> anyhow::Result<()> {
    let m = kn::load_model(&fact.model, device)?;
    let qs = queries(&m, fact)?;
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
    let peak = kn::device::matmul_peak(device);
    for &mode in modes {
        kn::device::reset_peak_memory();
        let flop: f64 = qs
            .iter()
            .map(|q| kn::engine::cost::attribution(m.config(), mode, q.cloze.ids.len(), ig.steps))
            .sum();
        let mut best = f64::INFINITY;
        let mut reads = 0;
        for _ in 0..repeat.max(1) {
            let (t0, r0) = (std::time::Instant::now(), kn::engine::host::reads());
            let fa = attribute_fact(
                &m,
                qs.clone(),
                &Options {
                    mode,
                    ..ig.options(device)
                },
            )?;
            let _ = fact_neurons(&m, &fa, &fact.target, &Thresholds::default())?;
            best = best.min(t0.elapsed().as_secs_f64());
            reads = kn::engine::host::reads() - r0;
        }
        rows.push(serde_json::json!({
            "mode": format!("{mode:?}").to_lowercase(),
            "seconds_per_fact": best,
            "seconds_per_prompt": best / qs.len() as f64,
            "peak_rss_mib": kn::device::peak_memory_mib(),
            "gflop": flop / 1e9,
            "gflops": flop / best / 1e9,
            "fraction_of_peak": flop / best / peak,
            "device_reads_per_fact": reads,
        }));
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
        "dtype": "f32",
        "tf32": kn::device::tf32(),
        "matmul_peak_gflops": peak / 1e9,
        "results": rows,
    });
    if json {
        println!("{out}");
    } else {
        println!(
            "{} ({} layers x {} neurons), {} prompts, m = {}, {} threads on {}",
            fact.model,
            m.config().n_layers,
            m.config().d_ff,
            qs.len(),
            ig.steps,
            tch::get_num_threads(),
            kn::device::describe(device)
        );
        let first = rows
            .first()
            .and_then(|r| r["seconds_per_fact"].as_f64())
            .unwrap_or(1.0);
        for r in &rows {
            let s = r["seconds_per_fact"].as_f64().unwrap_or(0.0);
            println!("  {:<7} {:>9.2} s/fact  {:>8.3} s/prompt  peak RSS {:>6.0} MiB  {:>5.2}x vs first  {:>7.1} GFLOP/s = {:>5.1}% of the {:.0} GFLOP/s matmul peak  {} device reads", r["mode"].as_str().unwrap_or(""), s, r["seconds_per_prompt"].as_f64().unwrap_or(0.0), r["peak_rss_mib"].as_f64().unwrap_or(0.0), first / s, r["gflops"].as_f64().unwrap_or(0.0), 100.0 * r["fraction_of_peak"].as_f64().unwrap_or(0.0), peak / 1e9, r["device_reads_per_fact"]);
        }
    }
    Ok(())
}
