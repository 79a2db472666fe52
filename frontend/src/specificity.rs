//! Specificity beside every effect: a neuron set suppressed on its fact and on
//! control facts (one of the same relation, one of another), a dot per prompt
//! and a 95% interval each, and the verdict "not fact-specific" when the
//! intervals overlap. The analysis shows it for its knowledge neurons, the
//! methods lab for each method's top k.

use crate::ui::{self, Cell, SortTable};
use kn_shared::methods::MethodsReport;
use kn_shared::Specificity;
use leptos::prelude::*;

/// Suppressing the knowledge neurons on the fact and on its controls: a dot
/// per prompt, the 95% interval of the mean's change as a bar, and the verdict.
#[component]
pub fn SpecificityView(
    s: Specificity,
    id: &'static str,
    #[prop(into)] title: String,
) -> impl IntoView {
    const W: f64 = 640.0;
    const LEFT: f64 = 210.0;
    const ROW: f64 = 34.0;
    let values = s
        .rows
        .iter()
        .flat_map(|r| r.per_prompt.iter().copied().chain([r.lo, r.hi]));
    let top = values.fold(0.1f64, f64::max).min(3.0);
    let (x0, x1) = (-1.0, top);
    let x = move |v: f64| LEFT + (v.clamp(x0, x1) - x0) / (x1 - x0) * (W - LEFT - 20.0);
    let h = 30.0 + ROW * s.rows.len() as f64;
    let pct = |v: f64| ui::percent_change(v);
    let ticks: Vec<f64> = [-1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0]
        .into_iter()
        .filter(|t| *t <= x1)
        .collect();
    let verdict = if s.fact_specific {
        "Fact-specific: suppressing these neurons changes this fact apart from the controls (the 95% intervals do not overlap).".to_string()
    } else {
        let with: Vec<&str> = s.rows[1..]
            .iter()
            .filter(|r| !(r.hi < s.rows[0].lo || r.lo > s.rows[0].hi))
            .map(|r| r.set.as_str())
            .collect();
        format!(
            "Not fact-specific: these neurons cut the {} control as much as this fact (the 95% intervals overlap); they carry more than this fact.",
            with.join(" and the ")
        )
    };
    let label = s
        .rows
        .iter()
        .map(|r| format!("{}: {}", r.set, with_interval(r)))
        .collect::<Vec<_>>()
        .join("; ");
    let rows = s.rows.clone();
    view! {
        <figure class="chart dotplot" id=id aria-labelledby=format!("{id}-title")>
            <figcaption id=format!("{id}-title")>{title}
                {(!s.fact_specific).then(|| view! { " " <span class="badge" id=format!("{id}-not-specific")>"not fact-specific"</span> })}</figcaption>
            <svg viewBox=format!("0 0 {W} {h}") role="img" aria-label=format!("Relative change of P(answer) per prompt, with 95% intervals. {label}")>
                {ticks.into_iter().map(|t| view! {
                    <line x1=x(t) x2=x(t) y1="18" y2=h - 4.0 class=if t == 0.0 { "axis zero" } else { "axis" } />
                    <text x=x(t) y="12" text-anchor="middle" class="tick">{format!("{:+.0}%", 100.0 * t)}</text>
                }).collect_view()}
                {rows.into_iter().enumerate().map(|(i, r)| {
                    let y = 30.0 + ROW * i as f64 + ROW / 2.0 - 6.0;
                    view! {
                        <text x="4" y=y + 4.0 class="row-label">{format!("{} ({})", r.set, r.target)}</text>
                        <line x1=x(r.lo) x2=x(r.hi) y1=y y2=y class=if i == 0 { "ci fact" } else { "ci" } />
                        <line x1=x(r.change) x2=x(r.change) y1=y - 8.0 y2=y + 8.0 class="mean" />
                        {r.per_prompt.iter().map(|v| view! { <circle cx=x(*v) cy=y + 10.0 r="3" class="dot" /> }).collect_view()}
                    }
                }).collect_view()}
            </svg>
            <p id=format!("{id}-verdict") class=if s.fact_specific { "ok" } else { "warning" }>{verdict}</p>
            <SortTable id=format!("{id}-table") headers=vec!["set", "answer", "P(answer) change", "95% interval", "prompts"]
                rows=s.rows.iter().map(|r| (None, vec![
                    Cell::text(r.set.clone()),
                    Cell::text(r.target.clone()),
                    Cell::num(pct(r.change), r.change),
                    Cell::text(format!("{} to {}", pct(r.lo), pct(r.hi))),
                    Cell::num(r.per_prompt.len().to_string(), r.per_prompt.len() as f64),
                ])).collect() />
        </figure>
    }
}

/// A row's change with its interval, as the tables show it.
fn with_interval(r: &kn_shared::SpecificityRow) -> String {
    format!(
        "{} [{}, {}]",
        ui::percent_change(r.change),
        ui::percent_change(r.lo),
        ui::percent_change(r.hi)
    )
}

/// The methods lab's specificity: at a chosen k, every method's top k
/// suppressed on the fact and on the controls (a table of verdicts), and one
/// method's dots and intervals.
#[component]
pub fn MethodsSpecificity(r: MethodsReport) -> impl IntoView {
    let ks: Vec<usize> =
        r.ks.iter()
            .copied()
            .filter(|k| {
                r.methods
                    .iter()
                    .any(|m| m.by_k.iter().any(|e| e.k == *k && e.specificity.is_some()))
            })
            .collect();
    let first_k = if ks.contains(&5) {
        Some(5)
    } else {
        ks.first().copied()
    };
    let first_k = first_k?;
    let k = RwSignal::new(first_k);
    let method = RwSignal::new(
        r.methods
            .first()
            .map(|m| m.method.clone())
            .unwrap_or_default(),
    );
    let report = StoredValue::new(r);
    let at = move |name: &str, k: usize| -> Option<Specificity> {
        report.with_value(|r| {
            r.methods
                .iter()
                .find(|m| m.method == name)
                .and_then(|m| m.by_k.iter().find(|e| e.k == k))
                .and_then(|e| e.specificity.clone())
        })
    };
    let table = move || {
        let k = k.get();
        let rows = report.with_value(|r| {
            r.methods
                .iter()
                .filter_map(|m| {
                    let s = at(&m.method, k)?;
                    let controls = s.rows[1..]
                        .iter()
                        .map(|c| format!("{} ({}): {}", c.set, c.target, with_interval(c)))
                        .collect::<Vec<_>>()
                        .join("; ");
                    let verdict = if s.fact_specific {
                        "fact-specific"
                    } else {
                        "not fact-specific"
                    };
                    Some((
                        None,
                        vec![
                            Cell::text(m.method.clone()),
                            Cell::num(with_interval(&s.rows[0]), s.rows[0].change),
                            Cell::text(controls),
                            Cell::text(verdict),
                        ],
                    ))
                })
                .collect::<Vec<_>>()
        });
        view! { <SortTable id="methods-specificity" headers=vec!["method", "this fact", "controls", "verdict"] rows=rows /> }
    };
    let names: Vec<String> =
        report.with_value(|r| r.methods.iter().map(|m| m.method.clone()).collect());
    let chart = move || {
        let (name, k) = (method.get(), k.get());
        at(&name, k).map(|s| {
            let title =
                format!("{name}'s top {k} suppressed (×0) on this fact and on control facts");
            view! { <SpecificityView s=s id="methods-specificity-chart" title=title /> }
        })
    };
    Some(view! {
        <section id="methods-specificity-box">
            <h3>"Specificity: do a method's top neurons carry this fact, or more?"</h3>
            <div class="pick">
                <label for="methods-specificity-k">"top k"</label>
                <select id="methods-specificity-k" on:change=move |ev| {
                    if let Ok(v) = event_target_value(&ev).parse() { k.set(v) }
                }>
                    {ks.into_iter().map(|x| view! { <option value=x.to_string() selected={x == first_k}>{x.to_string()}</option> }).collect_view()}
                </select>
                <label for="methods-specificity-method">"method"</label>
                <select id="methods-specificity-method" on:change=move |ev| method.set(event_target_value(&ev))>
                    {names.into_iter().enumerate().map(|(i, n)| view! { <option value=n.clone() selected={i == 0}>{n.clone()}</option> }).collect_view()}
                </select>
            </div>
            {table}
            {chart}
        </section>
    })
}
