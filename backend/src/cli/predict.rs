//! `kn predict` and `kn info`: the answer distribution at the blank, and what
//! runs where.

use super::args::Place;
use kn::source::DEFAULT_MODEL;
use kn_shared::PredictRequest;

#[derive(clap::Args)]
pub struct PredictArgs {
    /// `smollm2`, a model directory, a .gguf file, or a hub id.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
    /// A prompt with one [MASK], e.g. "The capital of France is [MASK]."
    #[arg(long)]
    pub prompt: String,
    /// An answer whose probability and rank to report.
    #[arg(long)]
    pub target: Option<String>,
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// Print JSON (the API's PredictResponse) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: PredictArgs, at: Place) -> anyhow::Result<()> {
    let PredictArgs {
        model,
        prompt,
        target,
        top_k,
        json,
    } = a;
    let m = at.load(&model)?;
    let resp = kn::predict::predict(
        &m,
        &PredictRequest {
            edits: Vec::new(),
            model: Some(model),
            prompt,
            target,
            top_k,
        },
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&resp)?);
        return Ok(());
    }
    println!("model   {}", resp.model);
    println!(
        "tokens  {}",
        resp.tokens
            .iter()
            .map(|t| format!("{t:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "blank   position {} ({:?})",
        resp.blank_index, resp.tokens[resp.blank_index]
    );
    println!("\n rank  prob      token");
    for (i, t) in resp.top_k.iter().enumerate() {
        println!("{:>5}  {:<8.5}  {:?}", i + 1, t.prob, t.token);
    }
    if let Some(t) = resp.target {
        println!(
            "\ntarget  {:?}  p = {}  rank {}",
            t.token,
            prob(t.prob),
            t.rank
        );
        // A multi-token answer: each piece given the ones before it.
        for (j, piece) in t.pieces.iter().enumerate() {
            println!(
                "  piece {}  {:?}  p = {:.6}",
                j + 1,
                piece.token,
                piece.prob
            );
        }
    }
    Ok(())
}

/// A probability in a fixed form: six decimals, or four significant digits
/// in scientific notation when that would read 0.000000.
fn prob(p: f64) -> String {
    if p != 0.0 && p.abs() < 1e-4 {
        format!("{p:.4e}")
    } else {
        format!("{p:.6}")
    }
}

#[derive(clap::Args)]
pub struct InfoArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub model: String,
}

pub fn info(a: InfoArgs, at: Place) -> anyhow::Result<()> {
    let device = at.device;
    let InfoArgs { model } = a;
    let m = at.load(&model)?;
    let mut info = serde_json::to_value(m.config())?;
    if let Some(o) = info.as_object_mut() {
        o.insert("model".into(), model.into());
        o.insert("fingerprint".into(), m.fingerprint.clone().into());
        o.insert("device".into(), kn::device::describe(device).into());
        o.insert("cuda_available".into(), tch::Cuda::is_available().into());
        o.insert("cuda_devices".into(), tch::Cuda::device_count().into());
        o.insert("dtype".into(), kn::models::precision::name(m.dtype).into());
        o.insert(
            "storage".into(),
            kn::models::precision::name(m.held.storage).into(),
        );
        o.insert(
            "weights_mib".into(),
            (m.held.bytes as f64 / f64::from(1 << 20)).into(),
        );
        o.insert("tf32".into(), kn::device::tf32().into());
        o.insert("threads".into(), tch::get_num_threads().into());
    }
    println!("{}", serde_json::to_string_pretty(&info)?);
    Ok(())
}
