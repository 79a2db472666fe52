//! The attribution and "knowledge vs baseline" views of one analysis.

use crate::charts;
use kn_shared::{AnalyzeResponse, InterventionReport, ScoredNeuron};
use leptos::prelude::*;

/// A `data:` URL for a download link.
fn data_url(mime: &str, content: &str) -> String {
    format!(
        "data:{mime};charset=utf-8,{}",
        String::from(js_sys::encode_uri_component(content))
    )
}

#[component]
fn Download(
    label: &'static str,
    file: String,
    mime: &'static str,
    content: String,
) -> impl IntoView {
    view! { <a class="download" download=file href=data_url(mime, &content)>{label}</a> }
}

/// A chart with its SVG and its data for download.
#[component]
pub fn Chart(
    id: &'static str,
    title: &'static str,
    svg: String,
    data_name: String,
    csv: String,
    json: String,
) -> impl IntoView {
    let (svg2, png_name) = (svg.clone(), format!("{data_name}.png"));
    let png = move |_| {
        if let Err(e) = crate::png::download_png(&svg2, &png_name) {
            web_sys::console::error_1(&e.into());
        }
    };
    view! {
        <figure class="chart" id=id>
            <div inner_html=svg.clone()></div>
            <figcaption>
                {title} " — download: "
                <Download label="SVG" file=format!("{data_name}.svg") mime="image/svg+xml" content=svg />
                " · "
                <button type="button" class="link png" on:click=png>"PNG"</button>
                " · "
                <Download label="CSV" file=format!("{data_name}.csv") mime="text/csv" content=csv />
                " · "
                <Download label="JSON" file=format!("{data_name}.json") mime="application/json" content=json />
            </figcaption>
        </figure>
    }
}

fn neuron_rows(set: &str, ns: &[ScoredNeuron]) -> String {
    ns.iter()
        .map(|n| {
            format!(
                "{set},{},{},{},{},{}\n",
                n.layer, n.index, n.prompts, n.score, n.activation
            )
        })
        .collect()
}

fn effects(r: &Option<InterventionReport>) -> Vec<(&'static str, f64)> {
    let Some(r) = r else { return vec![] };
    let mut v = vec![("knowledge", 100.0 * r.knowledge.relative_change)];
    if let Some(b) = &r.baseline {
        v.push(("baseline", 100.0 * b.relative_change));
    }
    if let Some(x) = &r.random {
        v.push(("random", 100.0 * x.relative_change));
    }
    v
}

#[component]
pub fn AnalysisView(r: AnalyzeResponse) -> impl IntoView {
    let res = r.result.clone();
    let name = format!("kn-{}", r.id);
    let kn_marks: Vec<(usize, usize)> = res
        .neurons
        .knowledge
        .iter()
        .map(|n| (n.layer, n.index))
        .collect();
    let heat = charts::heatmap(
        &res.mean_scores,
        &kn_marks,
        "Integrated-gradients attribution (mean over prompts)",
    );
    let heat_csv: String = std::iter::once("layer,neuron,score\n".to_string())
        .chain(res.mean_scores.iter().enumerate().flat_map(|(l, row)| {
            row.iter()
                .enumerate()
                .map(move |(i, v)| format!("{l},{i},{v}\n"))
        }))
        .collect();
    let sup = effects(&res.suppress);
    let amp = effects(&res.amplify);
    let groups: Vec<(String, f64, f64)> = sup
        .iter()
        .zip(&amp)
        .map(|((n, s), (_, a))| (n.to_string(), *s, *a))
        .collect();
    let effect_csv: String = std::iter::once("set,suppress_percent,amplify_percent\n".to_string())
        .chain(groups.iter().map(|(n, s, a)| format!("{n},{s},{a}\n")))
        .collect();
    let effect_svg = if groups.is_empty() {
        String::new()
    } else {
        charts::effect_bars(&groups)
    };
    let k_layers: Vec<usize> = res.neurons.knowledge.iter().map(|n| n.layer).collect();
    let b_layers: Vec<usize> = res.neurons.baseline.iter().map(|n| n.layer).collect();
    let counts = charts::layer_counts(res.model.n_layers, &k_layers, &b_layers);
    let neurons_csv = format!(
        "set,layer,index,prompts,score,activation\n{}{}",
        neuron_rows("knowledge", &res.neurons.knowledge),
        neuron_rows("baseline", &res.neurons.baseline)
    );
    let json = serde_json::to_string_pretty(&r).unwrap_or_default();
    let overlap = res.neurons.overlap.len();
    let table = |ns: Vec<ScoredNeuron>, id: &'static str| {
        view! {
            <table id=id>
                <thead><tr><th>"layer"</th><th>"neuron"</th><th>"prompts"</th><th>"score"</th><th>"activation"</th></tr></thead>
                <tbody>
                    {ns.into_iter().map(|n| view! {
                        <tr><td>{n.layer}</td><td>{n.index}</td><td>{n.prompts}</td>
                            <td>{format!("{:.4e}", n.score)}</td><td>{format!("{:.3}", n.activation)}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
        }
    };
    let permalink = format!("/r/{}", r.id);
    // The 15 strongest neurons by mean attribution, whatever the thresholds.
    let mut top: Vec<(usize, usize, f32, f32)> = res
        .mean_scores
        .iter()
        .enumerate()
        .flat_map(|(l, row)| row.iter().enumerate().map(move |(i, &v)| (l, i, v)))
        .map(|(l, i, v)| (l, i, v, res.mean_activations[l][i]))
        .collect();
    top.sort_by(|a, b| b.2.total_cmp(&a.2));
    top.truncate(15);
    view! {
        <section class="panel wide" id="analysis">
            <h2>"Knowledge neurons of " <code>{format!("{:?}", res.request.target)}</code></h2>
            <p class="meta">
                {format!("{} · {} prompts · m = {} ({}) · t = {} · p = {} · {:.1} s{}",
                    res.model.name, res.prompts.len(), res.request.steps, res.request.riemann,
                    res.neurons.t, res.neurons.p, res.seconds, if r.cached { " · from the store" } else { "" })}
                <span id="analysis-model-state">{if res.request.edits.is_empty() {
                    " · the model as loaded".to_string()
                } else {
                    format!(" · edited by {} edit set{}: {}", res.request.edits.len(),
                        if res.request.edits.len() == 1 { "" } else { "s" }, res.request.edits.join(", "))
                }}</span>
                " · permalink: " <a id="permalink" href=permalink.clone()>{permalink.clone()}</a>
                " · " <Download label="all data (JSON)" file=format!("{name}.json") mime="application/json" content=json />
            </p>
            <table class="prompts" id="prompt-table">
                <thead><tr><th>"prompt"</th><th>"P(answer)"</th><th>"completeness residual"</th></tr></thead>
                <tbody>
                    {res.prompts.iter().map(|p| view! {
                        <tr><td>{p.prompt.clone()}</td><td class="num">{format!("{:.4}", p.p_target)}</td>
                            <td class="num">{format!("{:.2e}", p.max_abs_residual)}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
            <Chart id="heatmap" title="Attribution heatmap (circles: knowledge neurons)" svg=heat data_name=format!("{name}-heatmap") csv=heat_csv json=serde_json::to_string(&res.mean_scores).unwrap_or_default() />
            <details>
                <summary>"Top 15 neurons by mean attribution"</summary>
                <table id="top-neurons">
                    <thead><tr><th>"layer"</th><th>"neuron"</th><th>"mean score"</th><th>"mean activation"</th></tr></thead>
                    <tbody>{top.into_iter().map(|(l, i, v, a)| view! {
                        <tr><td>{l}</td><td>{i}</td><td>{format!("{v:.4e}")}</td><td>{format!("{a:.3}")}</td></tr>
                    }).collect_view()}</tbody>
                </table>
            </details>
            <div class="compare">
                <div>
                    <h3>{format!("Knowledge neurons ({})", res.neurons.knowledge.len())}</h3>
                    {table(res.neurons.knowledge.clone(), "knowledge-table")}
                </div>
                <div>
                    <h3>{format!("Activation baseline ({}, t = {})", res.neurons.baseline.len(), res.neurons.baseline_t)}</h3>
                    {table(res.neurons.baseline.clone(), "baseline-table")}
                </div>
            </div>
            <p id="overlap">{format!("Overlap: {overlap} neuron(s) in both sets.")}</p>
            <div class="compare">
                <Chart id="effects" title="Suppress and amplify, knowledge vs baseline vs random" svg=effect_svg data_name=format!("{name}-effects") csv=effect_csv json=serde_json::to_string(&(&res.suppress, &res.amplify)).unwrap_or_default() />
                <Chart id="layers" title="Distribution over layers" svg=counts data_name=format!("{name}-layers") csv=neurons_csv json=serde_json::to_string(&res.neurons).unwrap_or_default() />
            </div>
            <p id="effect-numbers">
                {groups.iter().map(|(n, s, a)| format!("{n}: suppress {s:+.2}%, amplify {a:+.2}%")).collect::<Vec<_>>().join(" · ")}
            </p>
        </section>
    }
}
