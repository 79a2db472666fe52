//! Ask: a cloze question, and the model's top predictions beside it.

use crate::api::{self, Failure};
use crate::state::Page;
use crate::ui::{self, FieldError};
use crate::{charts, Workbench};
use kn_shared::{PredictRequest, PredictResponse};
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// A prediction and the edit sets it was made on.
type Answer = (PredictResponse, Vec<String>);

#[component]
pub fn Ask(page: Page, bench: Workbench) -> impl IntoView {
    let result = RwSignal::new(None::<Answer>);
    let error = RwSignal::new(None::<Failure>);
    let pending = RwSignal::new(false);
    // `shown`: scroll to the answer (not for the one asked on load).
    let predict = move |shown: bool| {
        let t = page.target.get_untracked().trim().to_string();
        let model = page.model.get_untracked();
        let edits = page.edit_ids();
        let req = PredictRequest {
            model: (!model.is_empty()).then_some(model),
            prompt: page.prompt.get_untracked(),
            target: (!t.is_empty()).then_some(t),
            top_k: page.top_k.get_untracked().trim().parse().unwrap_or(0),
            edits: edits.clone(),
        };
        pending.set(true);
        error.set(None);
        bench.target_error.set(None);
        spawn_local(async move {
            match api::predict(&req).await {
                Ok(r) => {
                    result.set(Some((r, edits)));
                    if shown {
                        ui::scroll_to("ask");
                    }
                }
                // A bad answer is the answer field's error; the rest are the prompt's.
                Err(e) if e.code == "multi_token_target" => bench.target_error.set(Some(e.message)),
                Err(e) => error.set(Some(e)),
            }
            pending.set(false);
        });
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        predict(true);
    };
    // The default question is answered as soon as the models are listed (one
    // forward pass), so the first screen shows what the tool does; a
    // permalink's page shows its stored result instead.
    let permalink = web_sys::window()
        .and_then(|w| w.location().pathname().ok())
        .is_some_and(|p| p.starts_with("/r/"));
    let asked = StoredValue::new(permalink);
    Effect::new(move |_| {
        if !bench.models.get().is_empty() && !asked.get_value() {
            asked.set_value(true);
            predict(false);
        }
    });
    let field = move |which: &'static str| {
        Signal::derive(move || {
            error.get().and_then(|e| {
                let top_k = e.message.contains("top_k");
                ((which == "top_k") == top_k).then_some(e.message)
            })
        })
    };
    let causal = move || bench.selected().is_some_and(|m| !m.masked);
    view! {
        <section class="panel pair" id="ask" aria-labelledby="ask-title">
            <form id="ask-form" novalidate on:submit=submit>
                <h2 id="ask-title">"Ask"</h2>
                <label for="prompt">"Prompt (mark the blank with [MASK])"</label>
                <input id="prompt" type="text" prop:value=move || page.prompt.get() on:input=move |ev| page.prompt.set(event_target_value(&ev)) />
                <FieldError id="predict-error" error=field("prompt") />
                {move || causal().then(|| view! {
                    <p class="hint">"A causal model predicts the next token: the blank must end the prompt."</p>
                })}
                <label for="top-k">"Top k"</label>
                <input id="top-k" type="number" min="1" max="1000" prop:value=move || page.top_k.get() on:input=move |ev| page.top_k.set(event_target_value(&ev)) />
                <FieldError id="top-k-error" error=field("top_k") />
                <button id="predict" type="submit" disabled=move || pending.get()>
                    {move || if pending.get() { "Predicting…" } else { "Predict" }}
                </button>
            </form>
            <div class="result" aria-live="polite">
                {move || match result.get() {
                    None => view! { <p class="muted">"Predictions appear here."</p> }.into_any(),
                    Some((r, edits)) => view! { <Prediction r=r edits=edits page=page /> }.into_any(),
                }}
            </div>
        </section>
    }
}

#[component]
fn Prediction(r: PredictResponse, edits: Vec<String>, page: Page) -> impl IntoView {
    let node = NodeRef::<html::Div>::new();
    let width = ui::width_of(node, 560);
    let r2 = r.clone();
    let plot = Memo::new(move |_| charts::top_k_bars(&r2, width.get()));
    let label = format!(
        "Top predictions at the blank: {}",
        r.top_k
            .iter()
            .take(5)
            .map(|t| format!("{:?} {}", t.token, ui::prob(t.prob)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let csv: String = std::iter::once("rank,id,token,probability\n".to_string())
        .chain(
            r.top_k
                .iter()
                .enumerate()
                .map(|(i, t)| format!("{},{},{:?},{}\n", i + 1, t.id, t.token, t.prob)),
        )
        .collect();
    let blank = r.blank_index;
    let masked = r
        .tokens
        .get(blank)
        .is_some_and(|t| t.contains("MASK") || t.contains("mask"));
    // A masked model reads the answer at its mask token; a causal one at the
    // position after the last token, which is not a token of the prompt.
    let tokens = r
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let class = if masked && i == blank {
                "tok blank"
            } else {
                "tok"
            };
            view! { <span class=class title=format!("position {i}")>{t.clone()}</span> }
        })
        .collect_view();
    let next = (!masked).then(|| view! { <span class="tok blank" id="next-token" title="the answer is read here: the next position">"___"</span> });
    let target = r.target.clone().map(|t| {
        let several = t.pieces.len() > 1;
        let pieces = several.then(|| {
            let items = t
                .pieces
                .iter()
                .enumerate()
                .map(|(j, piece)| {
                    view! {
                        <li>
                            <code>{format!("{:?}", piece.token)}</code>
                            {format!(" P = {}{}", ui::prob(piece.prob), if j == 0 { String::new() } else { " given the pieces before it".into() })}
                        </li>
                    }
                })
                .collect_view();
            view! { <ol id="target-pieces" aria-label="the answer's pieces">{items}</ol> }
        });
        view! {
            <p id="target-prob">
                "Answer " <code>{format!("{:?}", t.token)}</code>
                {format!(": P = {} ({:.2}%), rank {}{}", ui::prob(t.prob), 100.0 * t.prob, t.rank,
                    if several { format!(" (of its first piece); {} pieces, P(answer) is their product", t.pieces.len()) } else { String::new() })}
            </p>
            {pieces}
        }
    });
    let stale = move || {
        page.edits
            .get()
            .iter()
            .map(|e| e.id.clone())
            .collect::<Vec<_>>()
            != edits
    };
    let json = serde_json::to_string(&r).unwrap_or_default();
    view! {
        <h2>"Top predictions"</h2>
        <div class="tokens" aria-label="input tokens">{tokens}{next}</div>
        <p class="hint">{if masked {
            "The highlighted token is the blank, where the answer is read."
        } else {
            "A causal model predicts the next token: the highlighted blank after the prompt is where the answer is read."
        }}</p>
        {move || stale().then(|| view! {
            <p class="stale" id="predict-stale">"Made before this page's edits changed: predict again to see the current model."</p>
        })}
        {target}
        <figure class="chart" id="topk-chart">
            <div class="svg" role="img" aria-label=label node_ref=node inner_html=move || plot.get().svg></div>
            <figcaption>"Top predictions at the blank"
                {move || view! { <ui::Exports svg=plot.get().svg data_name="kn-predictions".to_string() csv=csv.clone() json=json.clone() /> }}
            </figcaption>
        </figure>
    }
}
