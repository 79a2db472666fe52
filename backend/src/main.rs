//! `kn`: the Knowledge Neuron Studio command line and server.

use anyhow::Context;
use clap::{Parser, Subcommand};
use kn::device::DeviceChoice;
use kn::server::{AppState, ModelWorker};
use kn::source::DEFAULT_MODEL;
use kn_shared::{ApiError, PredictRequest};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

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
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The answer distribution at the blank of a cloze prompt.
    Predict {
        /// `smollm2`, a model directory, a .gguf file, or a hub id.
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: String,
        /// A prompt with one [MASK], e.g. "The capital of France is [MASK]."
        #[arg(long)]
        prompt: String,
        /// An answer whose probability and rank to report.
        #[arg(long)]
        target: Option<String>,
        #[arg(long, default_value_t = 10)]
        top_k: usize,
        /// Print JSON (the API's PredictResponse) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// A model's shapes.
    Info {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: String,
    },
    /// Run the web app and its JSON API.
    Serve {
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Models to load (repeat the flag for several); the first is the default.
        #[arg(long = "model", default_value = DEFAULT_MODEL)]
        models: Vec<String>,
        /// Where results are kept.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// The built web client (scripts/build-frontend.sh writes dist/).
        #[arg(long, env = "KN_STATIC_DIR")]
        static_dir: Option<PathBuf>,
    },
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
    let json_errors = matches!(cli.cmd, Cmd::Predict { json: true, .. });
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
    let device = cli.device.resolve()?;
    match cli.cmd {
        Cmd::Predict {
            model,
            prompt,
            target,
            top_k,
            json,
        } => {
            let m = kn::load_model(&model, device)?;
            let resp = kn::predict::predict(
                &m,
                &PredictRequest {
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
                    "\ntarget  {:?}  p = {:.6}  rank {}",
                    t.token, t.prob, t.rank
                );
            }
        }
        Cmd::Info { model } => {
            let m = kn::load_model(&model, device)?;
            println!("{}", serde_json::to_string_pretty(m.config())?);
        }
        Cmd::Serve {
            host,
            port,
            models,
            data_dir,
            static_dir,
        } => {
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating data dir {}", data_dir.display()))?;
            let mut workers = Vec::new();
            for name in &models {
                let m = kn::load_model(name, device)
                    .with_context(|| format!("loading model `{name}`"))?;
                workers.push(ModelWorker::spawn(m));
            }
            let static_dir = static_dir.or_else(default_static_dir);
            if static_dir.is_none() {
                tracing::warn!("no built web client found (run scripts/build-frontend.sh); serving the API only");
            }
            let addr: SocketAddr = format!("{host}:{port}")
                .parse()
                .with_context(|| format!("bad address {host}:{port}"))?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(kn::server::serve(
                Arc::new(AppState { models: workers }),
                addr,
                static_dir,
            ))?;
        }
    }
    Ok(())
}

/// `dist/` beside the working directory or the repository the binary was built in.
fn default_static_dir() -> Option<PathBuf> {
    [
        PathBuf::from("dist"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist"),
    ]
    .into_iter()
    .find(|d| d.join("index.html").exists())
}
