//! `kn methods`: several attribution methods on one fact, judged by what their
//! top neurons do (engine::methods_lab, docs/methods.md).

use super::args::{queries, FactArgs, IgArgs, Place, SelectArgs, UnrelatedArgs};
use kn::engine::methods_lab::{compare, Comparison, Method};
use kn_shared::methods::MethodsReport;

#[derive(clap::Args)]
pub struct MethodsArgs {
    #[command(flatten)]
    pub fact: FactArgs,
    #[command(flatten)]
    pub ig: IgArgs,
    #[command(flatten)]
    pub sel: SelectArgs,
    /// Methods to run (comma-separated): ig, ig-masked-baseline, activation,
    /// grad-x-act, logprob-increase, random.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ig,ig-masked-baseline,activation,grad-x-act,logprob-increase,random"
    )]
    pub methods: Vec<String>,
    /// How many top neurons to suppress and amplify (comma-separated).
    #[arg(long = "k", value_delimiter = ',', default_value = "1,2,5,10,20")]
    pub ks: Vec<usize>,
    /// An unrelated fact, for specificity.
    #[command(flatten)]
    pub unrelated: UnrelatedArgs,
    /// Seed of the `random` method.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print JSON (MethodsReport) instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: MethodsArgs, at: Place) -> anyhow::Result<()> {
    let device = at.device;
    let methods = a
        .methods
        .iter()
        .map(|s| s.parse::<Method>())
        .collect::<Result<Vec<_>, _>>()?;
    let m = at.load(&a.fact.model)?;
    let qs = queries(&m, &a.fact)?;
    let unrelated = a.unrelated.queries(&m, &a.fact)?;
    let opts = a.ig.options(device);
    let c = Comparison {
        methods: &methods,
        target: &a.fact.target,
        queries: &qs,
        unrelated: &unrelated,
        unrelated_target: a.unrelated.unrelated_target.as_deref().unwrap_or_default(),
        controls: &[],
        ks: &a.ks,
        opts: &opts,
        thresholds: a.sel.thresholds(),
        seed: a.seed,
    };
    let r = compare(&m, &c, &mut |i| {
        tracing::info!("method {} of {}: {}", i + 1, methods.len(), methods[i]);
        true
    })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_report(&r);
    }
    Ok(())
}

fn print_report(r: &MethodsReport) {
    println!(
        "{}: {:?} on {} prompts (mean P {:.5}){}",
        r.model,
        r.target,
        r.prompts.len(),
        r.p_target.iter().sum::<f64>() / r.p_target.len().max(1) as f64,
        if r.unrelated_prompts.is_empty() {
            String::new()
        } else {
            format!(", {} unrelated prompts", r.unrelated_prompts.len())
        }
    );
    println!(
        "\n{:<18} {:>9} {:>10} {:>8}",
        "method", "seconds", "GFLOP", "refined"
    );
    for m in &r.methods {
        println!(
            "{:<18} {:>9.2} {:>10.1} {:>8}",
            m.method,
            m.seconds,
            m.gflop,
            m.refined
                .as_ref()
                .map_or("-".to_string(), |s| s.len().to_string())
        );
    }
    type Pick = fn(&kn_shared::methods::KEffect) -> Option<f64>;
    let tables: [(&str, Pick); 4] = [
        ("suppress (x0): change of P(answer)", |e| Some(e.suppress)),
        ("amplify (x2): change of P(answer)", |e| Some(e.amplify)),
        ("suppress, unrelated prompts", |e| e.suppress_unrelated),
        ("amplify, unrelated prompts", |e| e.amplify_unrelated),
    ];
    for (title, pick) in tables {
        if r.methods
            .iter()
            .all(|m| m.by_k.iter().all(|e| pick(e).is_none()))
        {
            continue;
        }
        print!("\n{title}\n{:<18}", "method \\ k");
        for k in &r.ks {
            print!(" {k:>9}");
        }
        println!();
        for m in &r.methods {
            print!("{:<18}", m.method);
            for e in &m.by_k {
                match pick(e) {
                    Some(x) => print!(" {:>+8.1}%", 100.0 * x),
                    None => print!(" {:>9}", "-"),
                }
            }
            println!();
        }
    }
    let matrix = |title: &str, cell: &dyn Fn(usize, usize) -> String| {
        print!("\n{title}\n{:<18}", "");
        for m in &r.methods {
            print!(" {:>8.8}", m.method);
        }
        println!();
        for (i, m) in r.methods.iter().enumerate() {
            print!("{:<18}", m.method);
            for j in 0..r.methods.len() {
                print!(" {:>8}", cell(i, j));
            }
            println!();
        }
    };
    matrix("Jaccard of refined sets", &|i, j| {
        r.jaccard[i][j].map_or("-".into(), |x| format!("{x:.2}"))
    });
    matrix("Spearman of mean scores", &|i, j| {
        format!("{:.2}", r.spearman[i][j])
    });
}
