//! The Experiments page (`/?view=experiments&run=<name>`): the stored runs of
//! `kn experiment`, and a run's report with the same tables, charts and
//! downloads as the files `kn experiment report` writes.

use crate::api;
use crate::ui::Chart;
use kn_shared::charts::report_charts;
use kn_shared::experiment::{markdown, ours, Effects, ExperimentReport, PAPER};
use leptos::prelude::*;
use leptos::task::spawn_local;

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{:+.1}%", 100.0 * x))
}

fn effect_cells(e: &Effects) -> impl IntoView {
    view! {
        <td class="num">{pct(e.knowledge)}</td>
        <td class="num">{pct(e.baseline)}</td>
        <td class="num">{pct(e.random)}</td>
    }
}

fn data_url(mime: &str, content: &str) -> String {
    format!(
        "data:{mime};charset=utf-8,{}",
        String::from(js_sys::encode_uri_component(content))
    )
}

#[component]
pub fn Experiments(run: Option<String>) -> impl IntoView {
    let list =
        RwSignal::new(None::<Result<Vec<kn_shared::experiment::ExperimentSummary>, api::Failure>>);
    let report = RwSignal::new(None::<Result<ExperimentReport, api::Failure>>);
    spawn_local(async move { list.set(Some(api::experiments().await)) });
    if let Some(name) = run.clone() {
        spawn_local(async move { report.set(Some(api::experiment(&name).await)) });
    }
    view! {
        <main>
            <section class="panel wide" aria-labelledby="runs-title">
                <h2 id="runs-title">"Experiment runs"</h2>
                <p class="muted">"Runs of " <code>"kn experiment run"</code> " kept by this server; " <code>"kn experiment report"</code> " makes their reports."</p>
                {move || match list.get() {
                    None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                    Some(Err(e)) => view! { <p class="error" role="alert">{e.message}</p> }.into_any(),
                    Some(Ok(v)) if v.is_empty() => view! {
                        <div id="no-runs">
                            <p class="muted">"No runs yet. Make one from the repository's folder (about 15 s per fact on a 2-core CPU with SmolLM2; 3 facts of each of the 34 relations take about 25 minutes), then reload this page:"</p>
                            <pre><code>"target/release/kn experiment run --facts-per-relation 3 --out runs/sample
    target/release/kn experiment report runs/sample"</code></pre>
                            <p class="muted">"This server lists the runs in its " <code>"--experiments"</code> " folder (default " <code>"runs"</code> ")."</p>
                        </div>
                    }.into_any(),
                    Some(Ok(v)) => view! {
                        <div class="scroll"><table id="runs">
                            <thead><tr><th>"run"</th><th>"model"</th><th class="num">"facts"</th><th class="num">"relations"</th><th>"report"</th></tr></thead>
                            <tbody>
                                {v.into_iter().map(|x| view! {
                                    <tr>
                                        <td><a href=format!("/?view=experiments&run={}", x.name)>{x.name.clone()}</a></td>
                                        <td>{x.model}</td>
                                        <td class="num">{x.facts_done}</td>
                                        <td class="num">{x.relations}</td>
                                        <td>{if x.has_report { "yes" } else { "not yet" }}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table></div>
                    }.into_any(),
                }}
            </section>
            {move || match report.get() {
                None => ().into_any(),
                Some(Err(e)) => view! { <section class="panel wide"><p class="error" role="alert" id="report-error">{e.message}</p></section> }.into_any(),
                Some(Ok(r)) => view! { <Report r=r /> }.into_any(),
            }}
        </main>
    }
}

#[component]
fn Report(r: ExperimentReport) -> impl IntoView {
    let c = r.coverage.clone();
    let share = format!("/?view=experiments&run={}", r.name);
    let md = markdown(&r);
    let json = serde_json::to_string_pretty(&r).unwrap_or_default();
    let beside = PAPER
        .iter()
        .zip(ours(&r))
        .map(|((what, pk, pb), (ok, ob))| {
            view! { <tr><td>{*what}</td><td>{*pk}</td><td>{*pb}</td><td class="ours">{ok}</td><td>{ob}</td></tr> }
        })
        .collect_view();
    let rows = r
        .relations
        .iter()
        .map(|x| {
            view! {
                <tr>
                    <td>{format!("{} {}", x.id, x.label)}</td>
                    <td>{x.kind.clone()}</td>
                    <td class="num">{x.facts}</td>
                    <td class="num">{format!("{:.2}", x.p)}</td>
                    <td class="num">{format!("{:.2} / {:.2}", x.knowledge_per_fact, x.baseline_per_fact)}</td>
                    {effect_cells(&x.suppress)}
                    {effect_cells(&x.amplify)}
                </tr>
            }
        })
        .collect_view();
    let methods = r
        .methods
        .clone()
        .map(|m| view! { <MethodsAtScaleView m=m /> });
    let charts = report_charts(&r)
        .into_iter()
        .map(|ch| {
            let data = format!("kn-{}-{}", r.name, ch.name);
            view! { <Chart id=ch.name title=ch.title svg=ch.svg data_name=data csv=ch.csv json=json.clone() /> }
        })
        .collect_view();
    view! {
        <section class="panel wide" id="report" aria-labelledby="report-title">
            <h2 id="report-title">{format!("Report: {}", r.name)}</h2>
            <p>
                {format!(
                    "Model {} ({} LM), m = {}, t = {}, p from {}; {} of {} planned facts done, {} failed.",
                    r.model,
                    if r.masked { "masked" } else { "causal" },
                    r.settings.steps,
                    r.settings.t,
                    r.settings.p,
                    c.done,
                    c.planned,
                    c.failed
                )}
            </p>
            <p>
                "Share: " <a id="share-link" href=share.clone()>{share.clone()}</a>
                " · download: "
                <a class="download" download="report.md" href=data_url("text/markdown", &md)>"Markdown"</a>
                " · "
                <a class="download" download="report.json" href=data_url("application/json", &json)>"JSON"</a>
            </p>
            <h3>"Beside the paper (BERT-base-cased)"</h3>
            <div class="scroll"><table id="beside-paper">
                <thead><tr><th>"what"</th><th>"paper: knowledge neurons"</th><th>"paper: baseline"</th><th>"ours: knowledge neurons"</th><th>"ours: baseline / control"</th></tr></thead>
                <tbody>{beside}</tbody>
            </table></div>
            <h3>"Per relation"</h3>
            <div class="scroll"><table id="relations">
                <thead>
                    <tr><th>"relation"</th><th>"type"</th><th class="num">"facts"</th><th class="num">"p"</th><th class="num">"neurons/fact (KN / base)"</th>
                    <th class="num">"suppress KN"</th><th class="num">"base"</th><th class="num">"random"</th>
                    <th class="num">"amplify KN"</th><th class="num">"base"</th><th class="num">"random"</th></tr>
                </thead>
                <tbody>{rows}</tbody>
            </table></div>
            {methods}
            <h3>"Charts"</h3>
            {charts}
        </section>
    }
}

/// The methods lab over the run's facts: one row per method.
#[component]
fn MethodsAtScaleView(m: kn_shared::experiment::MethodsAtScale) -> impl IntoView {
    let est = kn_shared::experiment::estimate_text;

    let rows = m
        .rows
        .iter()
        .map(|x| {
            view! {
                <tr>
                    <td>{x.method.clone()}</td>
                    <td class="num">{format!("{} ({})", est(&x.neurons_per_fact, false), x.empty)}</td>
                    <td class="num">{est(&x.suppress, true)}</td>
                    <td class="num">{est(&x.amplify, true)}</td>
                    <td class="num">{est(&x.suppress_top_k, true)}</td>
                    <td class="num">{est(&x.amplify_top_k, true)}</td>
                    <td class="num">{est(&x.unrelated_top_k, true)}</td>
                    <td class="num">{format!("{:.2}", x.seconds_per_fact)}</td>
                    <td class="num">{format!("{:.1}", x.gflop_per_fact)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <h3>"Attribution methods compared"</h3>
        <p>{format!("{} facts ({} per relation); top {} neurons by mean score; 95% intervals over facts.", m.facts, m.per_relation, m.k)}</p>
        <div class="scroll"><table id="methods-at-scale">
            <thead><tr><th>"method"</th><th class="num">"refined neurons/fact (empty)"</th><th class="num">"suppress refined"</th><th class="num">"amplify refined"</th>
                <th class="num">"suppress top k"</th><th class="num">"amplify top k"</th><th class="num">"top k, unrelated"</th><th class="num">"s/fact"</th><th class="num">"GFLOP/fact"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table></div>
        {(!m.by_relation.is_empty()).then(|| view! { <MethodsByRelation m=m.clone() /> })}
        {(m.multi_token_facts > 0).then(|| view! {
            <p id="methods-multi-token">{format!(
                "{} of the {} facts have answers of several tokens (read piece by piece). Suppressing the top {} on those alone: {}.",
                m.multi_token_facts, m.facts, m.k,
                m.rows.iter().map(|x| format!("{} {}", x.method, est(&x.suppress_top_k_multi_token, true))).collect::<Vec<_>>().join(", "))}</p>
        })}
    }
}

/// The methods' effects per relation, in a fold-out.
#[component]
fn MethodsByRelation(m: kn_shared::experiment::MethodsAtScale) -> impl IntoView {
    let est = kn_shared::experiment::estimate_text;

    let names: Vec<String> = m.rows.iter().map(|x| x.method.clone()).collect();
    let head = names
        .iter()
        .map(|n| view! { <th class="num">{format!("{n}: suppress / amplify refined")}</th> })
        .collect_view();
    let per = names.len().max(1);
    let body = m
        .by_relation
        .chunks(per)
        .map(|chunk| {
            let cells = chunk
                .iter()
                .map(|x| view! {
                    <td class="num">{format!("{} / {}", est(&x.suppress, true), est(&x.amplify, true))}</td>
                })
                .collect_view();
            view! {
                <tr><td>{chunk[0].relation.clone()}</td><td class="num">{chunk[0].facts}</td>{cells}</tr>
            }
        })
        .collect_view();
    view! {
        <details id="methods-by-relation">
            <summary>"Per relation (95% intervals over the relation's facts)"</summary>
            <div class="scroll"><table>
                <thead><tr><th>"relation"</th><th class="num">"facts"</th>{head}</tr></thead>
                <tbody>{body}</tbody>
            </table></div>
        </details>
    }
}
