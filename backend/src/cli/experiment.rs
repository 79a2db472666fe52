//! `kn experiment …`: the command-line face of [`kn::experiment`].

use super::args::{IgArgs, Place};
use anyhow::Context;
use clap::Subcommand;
use kn::engine::attribution::Riemann;
use kn::engine::edit::UpdateOptions;
use kn::experiment::db::{merge, RunDb};
use kn::experiment::report::ReportOptions;
use kn::experiment::run::{run, RunOptions};
use kn::experiment::{markdown, plan, Settings, Shard};
use kn::pararel::ParaRel;
use kn::source::DEFAULT_MODEL;
use std::path::{Path, PathBuf};

/// Which facts: the data, the relations and the sample.
#[derive(clap::Args)]
pub struct PlanArgs {
    /// `smollm2`, a model directory, a .gguf file, or a hub id.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: String,
    /// ParaRel's data folder (default: $KN_DATA, else the repository's data/).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Only these relations (comma-separated, e.g. P19,P36); default all 34.
    #[arg(long, value_delimiter = ',')]
    relations: Vec<String>,
    /// A seeded sample of this many facts per relation; default every fact.
    #[arg(long)]
    facts_per_relation: Option<usize>,
    /// Also attribute up to this many facts per relation that the model answers
    /// correctly on at least one prompt (found by a seeded scan): the update
    /// experiment edits those. 0 leaves them out.
    #[arg(long, default_value_t = 0)]
    known_facts_per_relation: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Leave out the facts whose answer is several tokens (the plan of runs
    /// made before they could be attributed; resume those with this flag).
    #[arg(long)]
    one_token_answers: bool,
    /// Where a multi-token answer's neurons are read: `all` (every piece's
    /// position, one path) or `first` (the position predicting the first piece).
    #[arg(long, default_value = "all")]
    answer_positions: kn_shared::AnswerPositions,
}

#[derive(Subcommand)]
pub enum ExperimentCmd {
    /// Count the facts and prompts a run would cover, and what it skips.
    Plan {
        #[command(flatten)]
        plan: PlanArgs,
        #[arg(long)]
        json: bool,
    },
    /// Attribute every planned fact of this shard into OUT/<shard>.sqlite,
    /// committing each fact as it finishes; run it again to resume.
    Run(RunArgs),
    /// Join OUT/shard-*-of-*.sqlite into OUT/run.sqlite.
    Merge {
        /// The run's folder.
        out: PathBuf,
    },
    /// Write OUT/report/{report.md, report.json, *.svg, *.csv} from OUT/run.sqlite
    /// and keep the report in the store for the web app.
    Report(ReportArgs),
}

/// `kn experiment run`'s settings.
#[derive(clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    plan: PlanArgs,
    #[command(flatten)]
    ig: IgArgs,
    /// The run's folder (its SQLite files, later the report).
    #[arg(long)]
    out: PathBuf,
    /// This process's shard, `i/n` with 0 ≤ i < n. Default: from
    /// SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or JOB_COMPLETION_INDEX, else all.
    #[arg(long)]
    shard: Option<String>,
    /// The shard count when the index comes from JOB_COMPLETION_INDEX (Kubernetes).
    #[arg(long)]
    shards: Option<usize>,
    /// Stop after this many facts (for time-boxed jobs; run again to go on).
    #[arg(long)]
    max_facts: Option<usize>,
    /// Facts whose prompts are attributed together (default 1 on the CPU,
    /// 8 on CUDA; passes stay within --max-batch and --max-row-tokens).
    #[arg(long)]
    batch_facts: Option<usize>,
    /// No progress bar or progress lines.
    #[arg(long)]
    quiet: bool,
}

/// `kn experiment report`'s settings.
#[derive(clap::Args)]
pub struct ReportArgs {
    /// The run's folder.
    out: PathBuf,
    /// Default: the model the run used.
    #[arg(long)]
    model: Option<String>,
    #[arg(long)]
    data: Option<PathBuf>,
    /// Coarse threshold (≥ 0.1, the stored one).
    #[arg(long, default_value_t = 0.2)]
    t: f64,
    /// The baseline's coarse threshold, a fraction of the prompt's largest
    /// activation (≥ 0.3, the stored one; the official code: 0.5).
    #[arg(long, default_value_t = 0.5)]
    base_t: f64,
    /// Starting refining share, adapted per relation (both kinds).
    #[arg(long, default_value_t = 0.7)]
    p: f64,
    /// A knowledge neuron must be in at least this many prompts' coarse
    /// sets, besides more than p·n (the official code: 3).
    #[arg(long, default_value_t = 3)]
    min_prompts: usize,
    /// Facts updated per relation.
    #[arg(long, default_value_t = 10)]
    update_facts: usize,
    #[arg(long, default_value_t = 4)]
    k: usize,
    #[arg(long, default_value_t = 1.0)]
    lambda1: f64,
    #[arg(long, default_value_t = 8.0)]
    lambda2: f64,
    /// Rescale embeddings to the value slot's norm (the authors' code).
    #[arg(long)]
    norm_scaled: bool,
    /// Neurons erased per relation.
    #[arg(long, default_value_t = 20)]
    erase_top: usize,
    /// Leave out the BingRel measurement.
    #[arg(long)]
    no_bingrel: bool,
    /// Leave out the fact updates and the relation erasures.
    #[arg(long)]
    no_edits: bool,
    /// Compare these attribution methods over the run's facts
    /// (comma-separated; see `kn methods` and docs/methods.md).
    #[arg(long, value_delimiter = ',')]
    methods: Vec<String>,
    /// Facts per relation the methods are compared on (seeded).
    #[arg(long, default_value_t = 3)]
    methods_facts: usize,
    /// Top-k neurons of each method suppressed and amplified.
    #[arg(long, default_value_t = 5)]
    methods_k: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the files here instead of OUT/report; the store (and the web
    /// app) keeps only reports written to OUT/report.
    #[arg(long)]
    report_out: Option<PathBuf>,
    /// Print the report JSON instead of the file list.
    #[arg(long)]
    json: bool,
}

fn load_data(dir: &Option<PathBuf>) -> anyhow::Result<ParaRel> {
    let dir = dir.clone().unwrap_or_else(ParaRel::default_dir);
    Ok(ParaRel::load(&dir)?)
}

fn settings(p: &PlanArgs, m: &kn::Model, ig: Option<&IgArgs>) -> Settings {
    let mut relations = p.relations.clone();
    relations.sort();
    relations.dedup();
    Settings {
        model: p.model.clone(),
        fingerprint: kn::engine::edit::fingerprint(m),
        steps: ig.map_or(20, |g| g.steps),
        riemann: ig.map_or(Riemann::Right, |g| g.riemann),
        seed: p.seed,
        facts_per_relation: p.facts_per_relation,
        relations,
        known_facts_per_relation: p.known_facts_per_relation,
        multi_token: (!p.one_token_answers).then_some(p.answer_positions),
    }
}

/// The shard files of a run folder.
fn shard_files(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(out)
        .with_context(|| format!("reading {}", out.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("shard-") && n.ends_with(".sqlite"))
        })
        .collect();
    v.sort();
    Ok(v)
}

pub fn run_experiment(cmd: ExperimentCmd, at: Place) -> anyhow::Result<()> {
    match cmd {
        ExperimentCmd::Plan { plan: p, json } => plan_cmd(&p, json, at),
        ExperimentCmd::Run(a) => run_cmd(a, at),
        ExperimentCmd::Merge { out } => merge_cmd(&out),
        ExperimentCmd::Report(a) => report_cmd(a, at),
    }
}

/// `kn experiment plan`: what a run would cover.
fn plan_cmd(p: &PlanArgs, json: bool, at: Place) -> anyhow::Result<()> {
    let data = load_data(&p.data)?;
    let m = at.load(&p.model)?;
    let pl = plan(&m, &data, &settings(p, &m, None))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&pl.coverage)?);
        return Ok(());
    }
    let c = &pl.coverage;
    println!(
        "{} relations, {} facts, {} prompts; {} prompts usable by this {} model\n\
         {} facts whose answer is several tokens ({}); skipped: {} without a usable template\n\
         eligible: {} facts, {} prompts; planned: {} facts",
        c.relations,
        c.facts,
        c.prompts,
        c.usable_prompts,
        if m.config().arch.is_masked() {
            "masked"
        } else {
            "causal"
        },
        c.multi_token,
        if c.multi_token_included {
            "included"
        } else {
            "skipped"
        },
        c.no_template,
        c.eligible_facts,
        c.eligible_prompts,
        c.planned
    );
    Ok(())
}

/// `kn experiment run`: attribute this shard's facts.
fn run_cmd(a: RunArgs, at: Place) -> anyhow::Result<()> {
    let device = at.device;
    let shard = Shard::resolve(a.shard.as_deref(), a.shards, &|k| std::env::var(k).ok())?;
    let data = load_data(&a.plan.data)?;
    let m = at
        .load(&a.plan.model)
        .with_context(|| format!("loading model `{}`", a.plan.model))?;
    let s = settings(&a.plan, &m, Some(&a.ig));
    let opts = RunOptions {
        ig: a.ig.options(device),
        progress: !a.quiet,
        max_facts: a.max_facts,
        batch_facts: a.batch_facts.unwrap_or(RunOptions::batch_facts_for(device)),
    };
    let o = run(&m, &data, &s, shard, &a.out, &opts)?;
    println!(
        "{}: shard {}/{} holds {} of {} planned facts; {} were stored before, {} now ({} failed)",
        o.path.display(),
        shard.index,
        shard.count,
        o.shard_facts,
        o.planned,
        o.already,
        o.stored,
        o.failed
    );
    Ok(())
}

/// `kn experiment merge`: join the shard files.
fn merge_cmd(out: &Path) -> anyhow::Result<()> {
    let files = shard_files(out)?;
    let target = out.join(Shard::ALL.file_name());
    let found = merge(&target, &files)?;
    for (p, n) in &found {
        println!("{}: {n} facts", p.display());
    }
    let db = RunDb::open_existing(&target)?;
    let planned = db.coverage()?.map_or(0, |c| c.planned);
    println!(
        "{}: {} of {planned} planned facts",
        target.display(),
        db.count()?
    );
    Ok(())
}

impl ReportArgs {
    /// The report's options (`bingrel`: the data's BingRel folder).
    fn options(&self, bingrel: PathBuf, device: tch::Device) -> anyhow::Result<ReportOptions> {
        let methods = self
            .methods
            .iter()
            .map(|m| m.parse::<kn::engine::methods_lab::Method>())
            .collect::<Result<Vec<_>, _>>()?;
        let opts = ReportOptions {
            t: self.t,
            base_t: self.base_t,
            p: self.p,
            min_prompts: self.min_prompts,
            update_facts: self.update_facts,
            update: UpdateOptions {
                k: self.k,
                lambda1: self.lambda1,
                lambda2: self.lambda2,
                norm_scaled: self.norm_scaled,
            },
            erase_top: self.erase_top,
            bingrel: (!self.no_bingrel).then_some(bingrel),
            no_edits: self.no_edits,
            methods: kn::experiment::report::methods_at_scale::MethodsOptions {
                methods,
                per_relation: self.methods_facts,
                k: self.methods_k,
                ig: kn::engine::attribution::Options::for_device(device),
            },
            seed: self.seed,
            ..ReportOptions::default()
        };
        opts.validate()?;
        Ok(opts)
    }
}

/// The run file of a run's folder, refused with what to do when only its
/// shards are there.
fn run_file(out: &Path) -> anyhow::Result<RunDb> {
    let path = out.join(Shard::ALL.file_name());
    if !path.is_file() && !shard_files(out).unwrap_or_default().is_empty() {
        anyhow::bail!(
            "{} holds shard files but no run.sqlite: run `kn experiment merge {}` first",
            out.display(),
            out.display()
        );
    }
    Ok(RunDb::open_existing(&path)?)
}

/// `kn experiment report`: the paper's figures from a run.
fn report_cmd(a: ReportArgs, at: Place) -> anyhow::Result<()> {
    let device = at.device;
    let db = run_file(&a.out)?;
    let s = db
        .settings()?
        .with_context(|| format!("{}: not a run file", db.path.display()))?;
    let data = load_data(&a.data)?;
    let opts = a.options(data.dir.join("bingrel"), device)?;
    let model = a.model.clone().unwrap_or(s.model.clone());
    let m = at
        .load(&model)
        .with_context(|| format!("loading model `{model}`"))?;
    let name = a
        .out
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "run".into());
    let r = kn::experiment::report::report(&m, &data, &db, &name, &opts, &mut |stage| {
        tracing::info!("report: {stage}")
    })?;
    if a.report_out.is_none() {
        db.put_report(&r)?;
    }
    let files = markdown::write(&r, &a.report_out.unwrap_or_else(|| a.out.join("report")))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        for f in files {
            println!("{}", f.display());
        }
    }
    Ok(())
}
