//! `kn`: the Knowledge Neuron Studio command line and server.

use anyhow::Context;
use clap::{Parser, Subcommand};
use kn::device::DeviceChoice;
use kn::engine::attribution::{attribute, Mode};
use kn::engine::edit::{self, EraseWith, UpdateOptions};
use kn::engine::intervene::{intervene, random_like};
use kn::engine::neurons::{attribute_fact, fact_neurons};
use kn::engine::Query;
use kn::server::{AppState, ModelWorker};
use kn::source::DEFAULT_MODEL;
use kn_shared::{ApiError, PredictRequest};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

mod cli;

use cli::args::{queries, FactArgs, IgArgs, SelectArgs};
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
    /// Integrated-gradients attribution of every neuron at the blank (SPEC).
    Attribute {
        #[command(flatten)]
        fact: FactArgs,
        #[command(flatten)]
        ig: IgArgs,
        /// How many top neurons to list per prompt (text output).
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[arg(long)]
        json: bool,
    },
    /// Knowledge neurons of a fact, refined across its paraphrases, and the
    /// activation baseline's neurons.
    Neurons {
        #[command(flatten)]
        fact: FactArgs,
        #[command(flatten)]
        ig: IgArgs,
        #[command(flatten)]
        sel: SelectArgs,
        #[arg(long)]
        json: bool,
    },
    /// Suppress (×0) or amplify (×2) neurons at the blank and measure the answer's
    /// probability, against baseline and random neurons.
    Intervene {
        #[command(flatten)]
        fact: FactArgs,
        #[command(flatten)]
        ig: IgArgs,
        #[command(flatten)]
        sel: SelectArgs,
        /// Neurons to scale (LAYER:INDEX, comma-separated); default: the fact's
        /// refined knowledge neurons, with baseline and random controls.
        #[arg(long, value_delimiter = ',')]
        neurons: Vec<kn_shared::Neuron>,
        /// Scale factor; default: both 0 (suppress) and 2 (amplify).
        #[arg(long)]
        factor: Option<f64>,
        /// Seed of the random-neuron control.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A prompt of an unrelated fact (repeatable), for the unrelated control.
        #[arg(long = "unrelated-prompt")]
        unrelated_prompts: Vec<String>,
        #[arg(long)]
        unrelated_target: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Several attribution methods on one fact (ig, ig-masked-baseline,
    /// activation, grad-x-act, logprob-increase, random), judged by suppressing and amplifying each
    /// one's top-k neurons; their overlaps and costs (docs/methods.md).
    Methods(cli::methods::MethodsArgs),
    /// Reversible weight edits: update a fact, erase neurons, apply a saved edit.
    Edit {
        #[command(subcommand)]
        cmd: EditCmd,
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
        /// Timed repetitions per mode (the best is reported).
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
    Info {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: String,
    },
    /// Run the web app and its JSON API.
    Serve(Serve),
}

/// `kn serve`'s settings.
#[derive(clap::Args)]
struct Serve {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Models to load (repeat the flag for several); the first is the default.
    #[arg(long = "model", default_value = DEFAULT_MODEL)]
    models: Vec<String>,
    /// Where results and edit sets are kept (`results.sqlite`).
    #[arg(long, default_value = "store")]
    data_dir: PathBuf,
    /// ParaRel's data folder (default: $KN_DATA, else the repository's data/).
    #[arg(long)]
    data: Option<PathBuf>,
    /// The folder of `kn experiment` runs shown on the Experiments page.
    #[arg(long, default_value = "runs")]
    experiments: PathBuf,
    /// The built web client (scripts/app.sh builds dist/).
    #[arg(long, env = "KN_STATIC_DIR")]
    static_dir: Option<PathBuf>,
    /// Required for any --host other than loopback: every API route but
    /// /api/health then needs `Authorization: Bearer TOKEN` (or the cookie
    /// that opening /?token=TOKEN sets). At least 16 characters.
    #[arg(long, env = "KN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The address users reach the server at, when it is not the bound
    /// one (a reverse proxy, a DNS name): its host is accepted in `Host`.
    #[arg(long)]
    public_url: Option<String>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// The server's budgets (GET /api/limits); every request is checked against
/// them before any work starts.
#[derive(clap::Args)]
struct LimitArgs {
    /// Tokens per prompt.
    #[arg(long, default_value_t = 128)]
    max_tokens: usize,
    /// Integration steps m per request.
    #[arg(long, default_value_t = 200)]
    max_steps: usize,
    /// Work units per request: Σ over its prompts of (steps + 1) × tokens × layers.
    #[arg(long, default_value_t = 600_000)]
    max_work: u64,
    /// Megabytes of stored results kept before the least recently used are
    /// evicted (their permalinks then recompute them).
    #[arg(long, default_value_t = 1024)]
    store_max_mb: u64,
}

#[derive(Subcommand)]
enum EditCmd {
    /// Update a fact `t → t'` through its knowledge neurons (SPEC).
    Update {
        #[command(flatten)]
        fact: FactArgs,
        #[command(flatten)]
        ig: IgArgs,
        #[command(flatten)]
        sel: SelectArgs,
        /// The new answer t'.
        #[arg(long)]
        new_target: String,
        /// Neurons kept, top by attribution.
        #[arg(long, default_value_t = 4)]
        k: usize,
        #[arg(long, default_value_t = 1.0)]
        lambda1: f64,
        #[arg(long, default_value_t = 8.0)]
        lambda2: f64,
        /// Rescale embeddings to the value slot's norm first (the authors' code).
        #[arg(long)]
        norm_scaled: bool,
        /// Relation-shared neurons to leave alone (LAYER:INDEX, comma-separated).
        #[arg(long, value_delimiter = ',')]
        exclude: Vec<kn_shared::Neuron>,
        #[command(flatten)]
        eval: EvalArgs,
        /// Write the edit set to this JSON file.
        #[arg(long)]
        save: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Set value slots to zero (or to [UNK]'s embedding).
    Erase {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: String,
        #[arg(long, value_delimiter = ',', required = true)]
        neurons: Vec<kn_shared::Neuron>,
        #[arg(long, value_enum, default_value = "zero")]
        with: EraseWith,
        #[command(flatten)]
        eval: EvalArgs,
        #[arg(long)]
        save: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Load a saved edit set, apply it, and predict.
    Apply {
        #[arg(long, default_value = DEFAULT_MODEL)]
        model: String,
        /// Edit set JSON (from --save).
        #[arg(long)]
        edits: PathBuf,
        #[arg(long)]
        prompt: String,
        #[arg(long, default_value_t = 10)]
        top_k: usize,
    },
}

/// Prompts on which to measure an edit's side effects (perplexity).
#[derive(clap::Args)]
struct EvalArgs {
    /// An evaluation prompt (repeatable); its gold answer is the matching --eval-target.
    #[arg(long = "eval-prompt")]
    eval_prompts: Vec<String>,
    #[arg(long = "eval-target")]
    eval_targets: Vec<String>,
}

impl EvalArgs {
    fn queries(&self, m: &kn::Model) -> anyhow::Result<Vec<Query>> {
        if self.eval_prompts.len() != self.eval_targets.len() {
            anyhow::bail!("give one --eval-target per --eval-prompt");
        }
        self.eval_prompts
            .iter()
            .zip(&self.eval_targets)
            .map(|(p, t)| Ok(Query::new(m, p, t)?))
            .collect()
    }
}

fn print_metrics(label: &str, x: &kn_shared::EditMetrics) {
    print!(
        "  {label:<16} change rate {:>5.1}%   success rate {:>5.1}%",
        100.0 * x.change_rate,
        100.0 * x.success_rate
    );
    for p in &x.perplexity {
        print!(
            "   perplexity ({} prompts) {:.2} -> {:.2}",
            p.prompts, p.before, p.after
        );
    }
    println!();
}

fn table(
    m: &kn::Model,
    a: &kn::engine::attribution::Attribution,
    top: usize,
) -> Vec<(kn_shared::Neuron, f64, f64)> {
    let d_ff = m.config().d_ff as i64;
    let (vals, idx) = a.scores.flatten(0, 1).topk(top as i64, 0, true, true);
    let vals: Vec<f32> = Vec::try_from(&vals).unwrap_or_default();
    let idx: Vec<i64> = Vec::try_from(&idx).unwrap_or_default();
    idx.iter()
        .zip(vals)
        .map(|(&f, v)| {
            let n = kn_shared::Neuron {
                layer: (f / d_ff) as usize,
                index: (f % d_ff) as usize,
            };
            (
                n,
                v as f64,
                a.activations
                    .double_value(&[n.layer as i64, n.index as i64]),
            )
        })
        .collect()
}

fn print_neurons(ns: &[kn_shared::ScoredNeuron]) {
    for n in ns {
        println!(
            "  {:<10} in {:>2} prompts   score {:.4e}   activation {:.4}",
            n.neuron().to_string(),
            n.prompts,
            n.score,
            n.activation
        );
    }
}

fn print_effect(label: &str, e: &kn_shared::InterventionEffect) {
    println!(
        "  {label:<28} {:>3} neurons   mean P {:.5} -> {:.5}   change {:+.2}%",
        e.neurons.len(),
        e.mean_before,
        e.mean_after,
        100.0 * e.relative_change
    );
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
    if cli.tf32 {
        // libtorch reads this once, at the first CUDA matrix product; nothing
        // has touched libtorch yet and no other thread runs.
        std::env::set_var("TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "1");
    }
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
                    "\ntarget  {:?}  p = {:.6}  rank {}",
                    t.token, t.prob, t.rank
                );
            }
        }
        Cmd::Attribute {
            fact,
            ig,
            top,
            json,
        } => {
            let m = kn::load_model(&fact.model, device)?;
            let qs = queries(&m, &fact)?;
            let mut out = Vec::new();
            for q in &qs {
                let a = attribute(&m, q, &ig.options(device))?;
                if json {
                    out.push(kn::engine::attribution::to_shared(&m, q, &a)?);
                    continue;
                }
                println!(
                    "prompt  {:?}   P({:?}) = {:.5}",
                    q.prompt,
                    m.tokenizer.token_text(q.target),
                    a.p_target
                );
                println!("  top neurons (layer:index  score  activation)");
                for (n, s, act) in table(&m, &a, top) {
                    println!("    {n:<10} {s:>12.6e} {act:>10.4}");
                }
                let worst = a.residual.iter().map(|r| r.abs()).fold(0.0, f64::max);
                println!(
                    "  completeness: max |Σ Attr − (P(w̄) − P(0))| over layers = {worst:.3e}\n"
                );
            }
            if json {
                println!("{}", serde_json::to_string(&out)?);
            }
        }
        Cmd::Neurons {
            fact,
            ig,
            sel,
            json,
        } => {
            let m = kn::load_model(&fact.model, device)?;
            let fa = attribute_fact(&m, queries(&m, &fact)?, &ig.options(device))?;
            let r = fact_neurons(&m, &fa, &fact.target, &sel.thresholds())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(());
            }
            for p in &r.prompts {
                println!(
                    "P = {:.5}  coarse {:>3} knowledge / {:>3} baseline   {:?}",
                    p.p_target, p.coarse_knowledge, p.coarse_baseline, p.prompt
                );
            }
            println!(
                "\nknowledge neurons (t = {}, p = {}, {} prompts):",
                r.t,
                r.p,
                r.prompts.len()
            );
            print_neurons(&r.knowledge);
            println!(
                "baseline neurons (activation, t tuned to {}):",
                r.baseline_t
            );
            print_neurons(&r.baseline);
            println!(
                "overlap: {:?}",
                r.overlap
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            );
        }
        Cmd::Intervene {
            fact,
            ig,
            sel,
            neurons,
            factor,
            seed,
            unrelated_prompts,
            unrelated_target,
            json,
        } => {
            let m = kn::load_model(&fact.model, device)?;
            let qs = queries(&m, &fact)?;
            let unrelated: Vec<Query> = match (&unrelated_target, unrelated_prompts.is_empty()) {
                (Some(t), false) => unrelated_prompts
                    .iter()
                    .map(|p| Query::new(&m, p, t))
                    .collect::<Result<_, _>>()?,
                (None, false) => anyhow::bail!("--unrelated-prompt needs --unrelated-target"),
                _ => Vec::new(),
            };
            let (kn_set, base_set) = if neurons.is_empty() {
                let fa = attribute_fact(&m, qs.clone(), &ig.options(device))?;
                let r = fact_neurons(&m, &fa, &fact.target, &sel.thresholds())?;
                let k: Vec<_> = r.knowledge.iter().map(|n| n.neuron()).collect();
                let b: Vec<_> = r.baseline.iter().map(|n| n.neuron()).collect();
                if k.is_empty() {
                    anyhow::bail!("the fact has no refined knowledge neurons at t = {}, p = {}; lower --p or --t", sel.t, sel.p);
                }
                (k, Some(b).filter(|b| !b.is_empty()))
            } else {
                (neurons, None)
            };
            let factors = factor.map_or(vec![0.0, 2.0], |f| vec![f]);
            let mut reports = Vec::new();
            for f in factors {
                let random = random_like(m.config(), &kn_set, seed);
                reports.push(kn_shared::InterventionReport {
                    factor: f,
                    knowledge: intervene(&m, &qs, &kn_set, f)?,
                    baseline: base_set
                        .as_ref()
                        .map(|b| intervene(&m, &qs, b, f))
                        .transpose()?,
                    random: Some(intervene(&m, &qs, &random, f)?),
                    unrelated: (!unrelated.is_empty())
                        .then(|| intervene(&m, &unrelated, &kn_set, f))
                        .transpose()?,
                });
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&reports)?);
                return Ok(());
            }
            println!(
                "knowledge neurons: {}",
                kn_set
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            for r in &reports {
                println!(
                    "\nfactor {} ({})",
                    r.factor,
                    if r.factor == 0.0 {
                        "suppress"
                    } else if r.factor > 1.0 {
                        "amplify"
                    } else {
                        "scale"
                    }
                );
                print_effect("knowledge neurons", &r.knowledge);
                if let Some(e) = &r.baseline {
                    print_effect("baseline neurons", e);
                }
                if let Some(e) = &r.random {
                    print_effect("random neurons", e);
                }
                if let Some(e) = &r.unrelated {
                    print_effect("knowledge, unrelated prompts", e);
                }
            }
        }
        Cmd::Methods(args) => cli::methods::run(args, device)?,
        Cmd::Edit { cmd } => run_edit(cmd, device)?,
        Cmd::Bench {
            fact,
            ig,
            modes,
            repeat,
            json,
        } => bench::run(device, &fact, &ig, &modes, repeat, json)?,
        Cmd::Experiment { cmd } => experiment_cli::run_experiment(cmd, device)?,
        Cmd::Info { model } => {
            let m = kn::load_model(&model, device)?;
            let mut info = serde_json::to_value(m.config())?;
            if let Some(o) = info.as_object_mut() {
                o.insert("model".into(), model.into());
                o.insert("fingerprint".into(), m.fingerprint.clone().into());
                o.insert("device".into(), kn::device::describe(device).into());
                o.insert("cuda_available".into(), tch::Cuda::is_available().into());
                o.insert("cuda_devices".into(), tch::Cuda::device_count().into());
                o.insert("dtype".into(), "f32".into());
                o.insert("tf32".into(), kn::device::tf32().into());
                o.insert("threads".into(), tch::get_num_threads().into());
            }
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
        Cmd::Serve(args) => serve(args, device)?,
    }
    Ok(())
}

fn serve(s: Serve, device: tch::Device) -> anyhow::Result<()> {
    let addr: SocketAddr = format!("{}:{}", s.host, s.port)
        .parse()
        .or_else(|_| {
            std::net::ToSocketAddrs::to_socket_addrs(&(s.host.as_str(), s.port))
                .map_err(anyhow::Error::from)
                .and_then(|mut a| a.next().ok_or_else(|| anyhow::anyhow!("no address")))
        })
        .with_context(|| format!("bad address {}:{}", s.host, s.port))?;
    if !addr.ip().is_loopback() && s.token.is_none() {
        anyhow::bail!(
            "--host {} makes the server reachable from the network, where anyone could run jobs on it: \
             give it a token (--token $(openssl rand -hex 16), or KN_TOKEN) and share the address it prints",
            s.host
        );
    }
    std::fs::create_dir_all(&s.data_dir)
        .with_context(|| format!("creating data dir {}", s.data_dir.display()))?;
    let mut workers = Vec::new();
    for name in &s.models {
        let m = kn::load_model(name, device).with_context(|| format!("loading model `{name}`"))?;
        tracing::info!(model = %name, fingerprint = %m.fingerprint, "loaded");
        workers.push(ModelWorker::spawn(m));
    }
    let static_dir = s.static_dir.or_else(default_static_dir);
    if static_dir.is_none() {
        tracing::warn!(
            "no built web client found (scripts/app.sh builds it into dist/); serving the API only"
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let caps = kn::store::Caps {
        result_bytes: s.limits.store_max_mb << 20,
        ..Default::default()
    };
    let store = Arc::new(kn::store::Store::open_with(&s.data_dir, caps)?);
    let data = s.data.unwrap_or_else(kn::pararel::ParaRel::default_dir);
    let dataset = match kn::pararel::ParaRel::load(&data) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!("no dataset browser: {e}");
            None
        }
    };
    let mut state = AppState::new(workers, store);
    state.dataset = dataset;
    state.experiments = Some(s.experiments);
    state.limits.max_tokens = s.limits.max_tokens;
    state.limits.max_steps = s.limits.max_steps;
    state.limits.max_work = s.limits.max_work;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        state.access =
            kn::server::Access::for_address(local, s.public_url.as_deref(), s.token.clone())
                .map_err(anyhow::Error::msg)?;
        let shown = s.public_url.clone().unwrap_or_else(|| {
            let host = if local.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                local.ip().to_string()
            };
            format!(
                "http://{}/",
                kn::server::access::authority(&host, local.port())
            )
        });
        match &s.token {
            Some(t) => println!(
                "Knowledge Neuron Studio is running at {}?token={t}",
                shown.trim_end_matches('/').to_string() + "/"
            ),
            None => println!("Knowledge Neuron Studio is running at {shown}"),
        }
        kn::server::serve(Arc::new(state), listener, static_dir).await
    })
}

fn run_edit(cmd: EditCmd, device: tch::Device) -> anyhow::Result<()> {
    match cmd {
        EditCmd::Update {
            fact,
            ig,
            sel,
            new_target,
            k,
            lambda1,
            lambda2,
            norm_scaled,
            exclude,
            eval,
            save,
            json,
        } => {
            let m = kn::load_model(&fact.model, device)?;
            let eval = eval.queries(&m)?;
            let fa = attribute_fact(&m, queries(&m, &fact)?, &ig.options(device))?;
            let opts = UpdateOptions {
                k,
                lambda1,
                lambda2,
                norm_scaled,
            };
            let desc = format!(
                "update {:?} -> {:?} ({})",
                fact.target, new_target, fact.model
            );
            let plan = edit::plan_update(
                &m,
                &fa,
                &fact.target,
                &new_target,
                &sel.thresholds(),
                &exclude,
                &opts,
                &eval,
                desc.clone(),
            )?;
            let (e, metrics, random) = (plan.edit, plan.metrics, Some(plan.random));
            if let Some(path) = &save {
                std::fs::write(path, serde_json::to_string_pretty(&e)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let report = kn_shared::EditReport {
                edit: e,
                metrics,
                random,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(());
            }
            println!(
                "{desc}: edited {}",
                report
                    .edit
                    .slots
                    .iter()
                    .map(|s| format!("L{}:{}", s.layer, s.index))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            print_metrics("knowledge", &report.metrics);
            if let Some(r) = &report.random {
                print_metrics("random neurons", r);
            }
            if let Some(path) = save {
                println!("saved to {}", path.display());
            }
        }
        EditCmd::Erase {
            model,
            neurons,
            with,
            eval,
            save,
            json,
        } => {
            let m = kn::load_model(&model, device)?;
            let fp = edit::fingerprint(&m);
            let eval = eval.queries(&m)?;
            let e = edit::erase(
                &m,
                &neurons,
                with,
                format!("erase {} neurons ({model})", neurons.len()),
            )?;
            let metrics = edit::measure(&m, &e, &fp, &[], None, &eval)?;
            if let Some(path) = &save {
                std::fs::write(path, serde_json::to_string_pretty(&e)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            let report = kn_shared::EditReport {
                edit: e,
                metrics,
                random: None,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", report.edit.description);
                print_metrics("erased", &report.metrics);
            }
        }
        EditCmd::Apply {
            model,
            edits,
            prompt,
            top_k,
        } => {
            let m = kn::load_model(&model, device)?;
            let fp = edit::fingerprint(&m);
            let text = std::fs::read_to_string(&edits)
                .with_context(|| format!("reading {}", edits.display()))?;
            let e: kn_shared::EditSet = serde_json::from_str(&text)
                .with_context(|| format!("{} is not an edit set", edits.display()))?;
            edit::apply(&m, &e, &fp)?;
            let r = kn::predict::predict(
                &m,
                &PredictRequest {
                    edits: Vec::new(),
                    model: Some(model),
                    prompt,
                    target: None,
                    top_k,
                },
            )?;
            println!("with edit: {}", e.description);
            for (i, t) in r.top_k.iter().enumerate() {
                println!("{:>5}  {:<8.5}  {:?}", i + 1, t.prob, t.token);
            }
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
