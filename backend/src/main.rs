//! `kn`: the Knowledge Neuron Studio command line and server.

//! It parses the command line and dispatches; each subcommand lives in `cli/`.

use clap::{Parser, Subcommand};
use kn::device::DeviceChoice;
use kn::engine::attribution::Mode;
use kn_shared::ApiError;

mod cli;

use cli::args::{FactArgs, IgArgs, Place};
use cli::{bench, experiment as experiment_cli};

#[derive(Parser)]
#[command(
    name = "kn",
    version,
    about = "Find and edit the neurons where a transformer stores facts"
)]
struct Cli {
    /// Where models run.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    device: DeviceChoice,
    /// On CUDA, let f32 matrix products use TF32 tensor cores (about 10 bits
    /// of mantissa in the products; see BENCHMARKS.md for what it moves).
    /// The same as TORCH_ALLOW_TF32_CUBLAS_OVERRIDE=1. No effect on the CPU.
    #[arg(long, global = true)]
    tf32: bool,
    /// The dtype activations, attention, probabilities and IG sums are
    /// computed in. f32 is the method's; bf16 and f16 are faster on a GPU and
    /// move the scores (BENCHMARKS.md says how far).
    #[arg(long, global = true, value_enum, default_value = "f32")]
    dtype: cli::args::Dtype,
    /// What the weight matrices are held in: `auto` keeps the checkpoint's
    /// own dtype (a bf16 model takes its file size in memory) when computing
    /// in f32. A narrower storage than the file's rounds the weights, and
    /// result ids then name the precision.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    storage: cli::args::StorageArg,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The answer distribution at the blank of a cloze prompt.
    Predict(cli::predict::PredictArgs),
    /// Integrated-gradients attribution of every neuron at the blank (SPEC).
    Attribute(cli::fact::AttributeArgs),
    /// Knowledge neurons of a fact, refined across its paraphrases, and the
    /// activation baseline's neurons.
    Neurons(cli::fact::NeuronsArgs),
    /// Suppress (×0) or amplify (×2) neurons at the blank and measure the answer's
    /// probability, against baseline and random neurons.
    Intervene(cli::fact::InterveneArgs),
    /// Several attribution methods on one fact (ig, ig-masked-baseline,
    /// activation, grad-x-act, logprob-increase, random), judged by suppressing and amplifying each
    /// one's top-k neurons; their overlaps and costs (docs/methods.md).
    Methods(cli::methods_cmd::MethodsArgs),
    /// Reversible weight edits: update a fact, erase neurons, apply a saved edit.
    Edit {
        #[command(subcommand)]
        cmd: cli::edit::EditCmd,
    },
    /// Time finding one fact's neurons (attribution of every prompt, then
    /// refining) in each execution mode; seconds per fact and per prompt, and
    /// peak memory. A harness, not a test: scripts/bench.sh runs it beside the
    /// peer implementation.
    Bench {
        #[command(flatten)]
        fact: FactArgs,
        #[command(flatten)]
        ig: IgArgs,
        /// Modes to time, in order (`naive` is the public implementations' method).
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "naive,resume,fast"
        )]
        modes: Vec<Mode>,
        /// Timed repetitions per mode (the best is reported). With another
        /// `--dtype` or `--storage` than the default, the fact is also
        /// attributed by the checkpoint in f32 and the fidelity reported.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        #[arg(long)]
        json: bool,
    },
    /// The paper's experiments over ParaRel: plan, run (resumable, sharded),
    /// merge shards, report.
    Experiment {
        #[command(subcommand)]
        cmd: experiment_cli::ExperimentCmd,
    },
    /// A model's shapes, its weights' fingerprint, and where it runs (the
    /// device, how many CUDA devices libtorch sees, the dtype, the threads).
    Info(cli::predict::InfoArgs),
    /// Run the web app and its JSON API.
    Serve(cli::serve::Serve),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KN_LOG")
                .unwrap_or_else(|_| "warn,kn=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if !matches!(cli.cmd, Cmd::Serve(_)) {
        default_sigpipe();
    }
    if cli.tf32 {
        // libtorch reads this once, at the first CUDA matrix product; nothing
        // has touched libtorch yet and no other thread runs.
        std::env::set_var("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "1");
    }
    let json_errors = matches!(&cli.cmd, Cmd::Predict(a) if a.json);
    if let Err(e) = run(cli) {
        if json_errors {
            let code = e
                .downcast_ref::<kn::Error>()
                .map_or("error", kn::Error::code);
            println!(
                "{}",
                serde_json::to_string(&ApiError::new(code, format!("{e:#}"))).unwrap()
            );
        }
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let at = Place {
        device: cli.device.resolve()?,
        precision: kn::Precision {
            storage: cli.storage.storage(),
            compute: cli.dtype.kind(),
        },
    };
    match cli.cmd {
        Cmd::Predict(a) => cli::predict::run(a, at)?,
        Cmd::Attribute(a) => cli::fact::attribute(a, at)?,
        Cmd::Neurons(a) => cli::fact::neurons(a, at)?,
        Cmd::Intervene(a) => cli::fact::intervene(a, at)?,
        Cmd::Methods(args) => cli::methods_cmd::run(args, at)?,
        Cmd::Edit { cmd } => cli::edit::run(cmd, at)?,
        Cmd::Bench {
            fact,
            ig,
            modes,
            repeat,
            json,
        } => bench::run(at, &fact, &ig, &modes, repeat, json)?,
        Cmd::Experiment { cmd } => experiment_cli::run_experiment(cmd, at)?,
        Cmd::Info(a) => cli::predict::info(a, at)?,
        Cmd::Serve(args) => cli::serve::run(args, at)?,
    }
    Ok(())
}

/// A command whose output is piped into `head` or `grep -q` ends quietly when
/// the reader goes away, as Unix tools do. Rust ignores SIGPIPE, so `println!`
/// would panic on the closed pipe instead (seen in CI: `kn info | grep -q`).
/// The server keeps Rust's default: a client that hangs up must never end it.
#[allow(
    unsafe_code,
    reason = "libc::signal, the one call Rust's std has no wrapper for"
)]
fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called at the start of main, before any other thread exists;
    // SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
