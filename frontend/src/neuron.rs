//! The neuron card (Neuronpedia's idea, for knowledge neurons): a selected
//! neuron's attribution and activation on each prompt of the fact, whether it
//! passed the coarse threshold on each, the tokens it raises and lowers at the
//! sign and size it fires at (and its value slot's own projection), and a link
//! that reopens the analysis with the card open.

use crate::api::{self, Failure};
use crate::ui::{self, Cell, SortTable};
use kn_shared::{Neuron, NeuronCard, NeuronRequest, TokenScore};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// One sentence on the direction the neuron takes, and where the answer is.
fn direction(c: &NeuronCard) -> String {
    let a = c.mean_activation;
    let sign = if a < 0.0 {
        "negative, so it raises the tokens its slot points away from"
    } else if a > 0.0 {
        "positive, so it raises the tokens its slot points towards"
    } else {
        "zero: it writes nothing, and the lists are the slot's own"
    };
    let rank = c.answer_rank.map_or(String::new(), |r| {
        format!(
            " The answer {:?} is number {r} of the tokens it raises.",
            c.target
        )
    });
    format!(
        "Its mean activation here is {}: {sign}.{rank}",
        ui::value(a)
    )
}

#[component]
pub fn NeuronCardView(
    analysis: String,
    selected: RwSignal<Option<Neuron>>,
    /// The dataset browser's relation: the card reads the neuron across its facts.
    relation: RwSignal<String>,
) -> impl IntoView {
    let card = RwSignal::new(None::<(Neuron, Result<NeuronCard, Failure>)>);
    let analysis = StoredValue::new(analysis);
    Effect::new(move |_| {
        let Some(n) = selected.get() else {
            card.set(None);
            return;
        };
        if card.get_untracked().is_some_and(|(m, _)| m == n) {
            return;
        }
        card.set(None);
        let req = NeuronRequest {
            analysis: analysis.get_value(),
            layer: n.layer,
            index: n.index,
            text: None,
            relation: Some(relation.get_untracked()).filter(|r| !r.trim().is_empty()),
        };
        spawn_local(async move {
            let r = api::neuron(&req).await;
            // Only if it is still the one asked for.
            if selected.get_untracked() == Some(n) {
                card.set(Some((n, r)));
            }
        });
    });
    let tokens = |list: Vec<TokenScore>| {
        list.into_iter()
            .map(|t| view! { <li><code>{format!("{:?}", t.token)}</code>" " <span class="muted">{ui::value(t.value)}</span></li> })
            .collect_view()
    };
    move || {
        let n = selected.get()?;
        let link = format!("/r/{}?neuron={n}", analysis.get_value());
        Some(view! {
            <section class="card" id="neuron-card" aria-labelledby="neuron-title">
                <header>
                    <h3 id="neuron-title">{format!("Neuron {n}")}</h3>
                    <button type="button" class="small" id="neuron-close" on:click=move |_| selected.set(None)>"Close"</button>
                </header>
                {move || match card.get() {
                    None => view! { <p class="muted">"Attributing this neuron's layer on each prompt…"</p> }.into_any(),
                    Some((_, Err(e))) => view! { <p class="error" role="alert" id="neuron-error">{e.message}</p> }.into_any(),
                    Some((_, Ok(c))) => {
                        let rows = c.prompts.iter().map(|p| (None, vec![
                            Cell::text(p.prompt.clone()),
                            Cell::num(ui::value(p.score), p.score),
                            Cell::num(ui::value(p.activation), p.activation),
                            Cell::text(match p.passed { Some(true) => "yes", Some(false) => "no", None => "unknown" }),
                        ])).collect::<Vec<_>>();
                        let sets = match (c.knowledge, c.baseline) {
                            (true, true) => "a knowledge neuron and a baseline neuron",
                            (true, false) => "a knowledge neuron",
                            (false, true) => "a baseline neuron (not a knowledge neuron)",
                            (false, false) => "in neither refined set",
                        };
                        view! {
                            <p>
                                <span id="neuron-summary">{format!("For {:?}: {sets}; its score passes the coarse threshold (t = {} × the prompt's largest score) in {} of {} prompts.",
                                    c.target, c.t, c.passed, c.known)}</span>
                                " " <ui::Help id="neuron-threshold" text="A neuron is in a prompt's coarse set when its integrated-gradients score exceeds t times the largest score of any neuron on that prompt; it is a knowledge neuron when it is in the coarse sets of more than p × the prompts." />
                            </p>
                            <SortTable id="neuron-prompts" headers=vec!["prompt", "IG score", "activation", "passes t"] rows=rows />
                            <p id="neuron-direction">{direction(&c)}</p>
                            {(!c.relation_activations.is_empty()).then(|| view! {
                                <Histogram across=c.relation_activations.clone() mean=c.mean_activation relation=relation.get_untracked() />
                            })}
                            <div class="compare">
                                <div>
                                    <h4>"On these prompts it raises"</h4>
                                    <ol id="neuron-promotes">{tokens(c.promotes.clone())}</ol>
                                </div>
                                <div>
                                    <h4>"…and lowers"</h4>
                                    <ol id="neuron-suppresses">{tokens(c.suppresses.clone())}</ol>
                                </div>
                            </div>
                            <p class="hint">"What the neuron adds to the logits at its mean activation a on these prompts: a times its value slot (its column of the FFN output weights) projected on the output embeddings (Geva et al., 2022). The values are those logit changes."</p>
                            <details id="neuron-slot">
                                <summary>"The value slot itself (as if the neuron fired at +1)"</summary>
                                <div class="compare">
                                    <div>
                                        <h4>"The slot points towards"</h4>
                                        <ol id="neuron-slot-promotes">{tokens(c.slot_promotes.clone())}</ol>
                                    </div>
                                    <div>
                                        <h4>"…and away from"</h4>
                                        <ol id="neuron-slot-suppresses">{tokens(c.slot_suppresses.clone())}</ol>
                                    </div>
                                </div>
                            </details>
                        }.into_any()
                    }
                }}
                <OnText analysis=analysis.get_value() neuron=n />
                <p>"Link to this card: " <a id="neuron-link" href=link.clone()>{link.clone()}</a></p>
            </section>
        })
    }
}

/// The neuron on a text the user types: its activation at every token, each
/// token shaded by it (orange positive, blue negative, against the text's
/// largest magnitude) with the number on hover and in words for screen readers.
#[component]
fn OnText(analysis: String, neuron: Neuron) -> impl IntoView {
    let text = RwSignal::new(String::new());
    let read = RwSignal::new(None::<Result<Vec<kn_shared::TokenActivation>, Failure>>);
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let req = NeuronRequest {
            analysis: analysis.clone(),
            layer: neuron.layer,
            index: neuron.index,
            text: Some(text.get_untracked()),
            relation: None,
        };
        busy.set(true);
        spawn_local(async move {
            let r = api::neuron(&req).await.map(|c| c.text_activations);
            read.set(Some(r));
            busy.set(false);
        });
    };
    let shade = |a: f64, top: f64| {
        let x = if top > 0.0 {
            (a / top).clamp(-1.0, 1.0)
        } else {
            0.0
        };
        let (r, g, b) = if x >= 0.0 {
            (214, 96, 40)
        } else {
            (52, 101, 164)
        };
        format!(
            "background: rgba({r}, {g}, {b}, {:.2})",
            0.15 + 0.7 * x.abs()
        )
    };
    view! {
        <form id="neuron-text-form" class="on-text" novalidate on:submit=submit>
            <label for="neuron-text">"Its activation on a text of yours"</label>
            <div class="row">
                <input id="neuron-text" type="text" placeholder="e.g. The capital of Italy is" prop:value=move || text.get() on:input=move |ev| text.set(event_target_value(&ev)) />
                <button id="neuron-text-read" type="submit" class="secondary" disabled=move || busy.get()>"Read"</button>
            </div>
        </form>
        {move || read.get().map(|r| match r {
            Err(e) => view! { <p class="error" role="alert" id="neuron-text-error">{e.message}</p> }.into_any(),
            Ok(list) => {
                let top = list.iter().fold(0.0f64, |m, t| m.max(t.activation.abs()));
                view! {
                    <p id="neuron-text-tokens" class="tokens">{list.into_iter().map(|t| {
                        let label = format!("{:?}: {}", t.token, ui::value(t.activation));
                        view! { <span class="tok" style=shade(t.activation, top) title=label.clone() aria-label=label data-activation=t.activation.to_string()>{t.token}</span> }
                    }).collect_view()}</p>
                }.into_any()
            }
        })}
    }
}

/// The neuron's activation at the blank across a relation's facts, as a
/// histogram of 20 bins, with this fact's mean activation marked.
#[component]
fn Histogram(
    across: Vec<kn_shared::PromptActivation>,
    mean: f64,
    relation: String,
) -> impl IntoView {
    const BINS: usize = 20;
    const W: f64 = 520.0;
    const H: f64 = 120.0;
    let values: Vec<f64> = across.iter().map(|p| p.activation).collect();
    let lo = values
        .iter()
        .copied()
        .chain([mean])
        .fold(f64::INFINITY, f64::min);
    let hi = values
        .iter()
        .copied()
        .chain([mean])
        .fold(f64::NEG_INFINITY, f64::max);
    let span = (hi - lo).max(1e-12);
    let bin = |v: f64| (((v - lo) / span * BINS as f64) as usize).min(BINS - 1);
    let mut counts = [0usize; BINS];
    for &v in &values {
        counts[bin(v)] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let x = move |v: f64| 10.0 + (v - lo) / span * (W - 20.0);
    let above = values.iter().filter(|&&v| v.abs() >= mean.abs()).count();
    let label = format!(
        "Activation at the blank across {} facts of {relation}: from {} to {}; this fact's mean {}, reached in magnitude by {above} of them.",
        values.len(),
        ui::value(lo),
        ui::value(hi),
        ui::value(mean)
    );
    view! {
        <figure class="chart" id="neuron-histogram">
            <svg viewBox=format!("0 0 {W} {}", H + 24.0) role="img" aria-label=label.clone()>
                {counts.iter().enumerate().map(|(i, &c)| {
                    let (x0, w) = (10.0 + i as f64 * (W - 20.0) / BINS as f64, (W - 20.0) / BINS as f64 - 1.0);
                    let h = c as f64 / top * (H - 10.0);
                    view! { <rect class="bar" x=x0 y=H - h width=w height=h data-count=c><title>{c.to_string()}</title></rect> }
                }).collect_view()}
                <line class="mean" x1=x(mean) x2=x(mean) y1="0" y2=H />
                <text class="tick" x="10" y=H + 16.0>{ui::value(lo)}</text>
                <text class="tick" x=W - 10.0 y=H + 16.0 text-anchor="end">{ui::value(hi)}</text>
            </svg>
            <figcaption id="neuron-histogram-caption">{label}</figcaption>
        </figure>
    }
}
