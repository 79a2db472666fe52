//! Small pieces every view uses: charts with their downloads, help popovers,
//! sortable tables, number formats, scrolling to a result, the width of a box,
//! a job's progress.

use leptos::html;
use leptos::prelude::*;
use send_wrapper::SendWrapper;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;

/// A `data:` URL for a download link.
pub fn data_url(mime: &str, content: &str) -> String {
    format!(
        "data:{mime};charset=utf-8,{}",
        String::from(js_sys::encode_uri_component(content))
    )
}

#[component]
pub fn Download(
    label: &'static str,
    file: String,
    mime: &'static str,
    content: String,
) -> impl IntoView {
    view! { <a class="download" download=file href=data_url(mime, &content)>{label}</a> }
}

/// The export line of a chart: SVG, PNG (rendered in the browser), CSV, JSON.
#[component]
pub fn Exports(svg: String, data_name: String, csv: String, json: String) -> impl IntoView {
    let (svg2, png_name) = (svg.clone(), format!("{data_name}.png"));
    let png = move |_| {
        if let Err(e) = crate::png::download_png(&svg2, &png_name) {
            web_sys::console::error_1(&e.into());
        }
    };
    view! {
        " — download: "
        <Download label="SVG" file=format!("{data_name}.svg") mime="image/svg+xml" content=svg />
        " · "
        <button type="button" class="link png" on:click=png>"PNG"</button>
        " · "
        <Download label="CSV" file=format!("{data_name}.csv") mime="text/csv" content=csv />
        " · "
        <Download label="JSON" file=format!("{data_name}.json") mime="application/json" content=json />
    }
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
    view! {
        <figure class="chart" id=id>
            <div class="svg" role="img" aria-label=title inner_html=svg.clone()></div>
            <figcaption>{title}<Exports svg=svg data_name=data_name csv=csv json=json /></figcaption>
        </figure>
    }
}

/// A "?" button that opens a short explanation (the browser's popover).
#[component]
pub fn Help(id: &'static str, text: &'static str) -> impl IntoView {
    let target = format!("help-{id}");
    view! {
        <button type="button" class="help" aria-label=format!("help: {}", id.replace('-', " ")) popovertarget=target.clone()>"?"</button>
        <div class="popover" id=target popover="auto" role="note">{text}</div>
    }
}

/// A probability with four decimals.
pub fn prob(p: f64) -> String {
    format!("{p:.4}")
}

/// A ratio for a sentence: `×1.35`, `×47`, `×4.8e10` (no `×47642341520.8`).
pub fn ratio(r: f64) -> String {
    if !r.is_finite() {
        "×∞".into()
    } else if r < 10.0 {
        format!("×{r:.2}")
    } else if r < 1e4 {
        format!("×{r:.0}")
    } else {
        format!("×{r:.1e}")
    }
}

/// A relative change for a sentence: `−85.9%`, `+12.0%`.
pub fn percent_change(x: f64) -> String {
    let sign = if x < 0.0 { "−" } else { "+" };
    format!("{sign}{:.1}%", 100.0 * x.abs())
}

/// A setting as it was typed: `0.2`, not `0.2000`.
pub fn setting(v: f64) -> String {
    format!("{v}")
}

/// A score or activation in a fixed, readable form.
pub fn value(v: f64) -> String {
    crate::charts::format_value(v)
}

/// Scroll the element `id` into view (smoothly, to the top of the screen).
pub fn scroll_to(id: &str) {
    let id = id.to_string();
    // After the view has rendered it.
    let cb = wasm_bindgen::closure::Closure::once_into_js(move || {
        if let Some(el) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id(&id))
        {
            let opts = web_sys::ScrollIntoViewOptions::new();
            // Smoothly, unless the user asked for less motion.
            let reduced = web_sys::window()
                .and_then(|w| {
                    w.match_media("(prefers-reduced-motion: reduce)")
                        .ok()
                        .flatten()
                })
                .is_some_and(|m| m.matches());
            opts.set_behavior(if reduced {
                web_sys::ScrollBehavior::Instant
            } else {
                web_sys::ScrollBehavior::Smooth
            });
            opts.set_block(web_sys::ScrollLogicalPosition::Start);
            el.scroll_into_view_with_scroll_into_view_options(&opts);
        }
    });
    if let Some(w) = web_sys::window() {
        let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), 30);
    }
}

/// Scroll to `section` and put the keyboard focus on `control` (without a
/// second jump): where a button sends the user to another form.
pub fn go_to(section: &str, control: &str) {
    scroll_to(section);
    let id = control.to_string();
    let cb = wasm_bindgen::closure::Closure::once_into_js(move || {
        let el = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id(&id))
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
        if let Some(el) = el {
            let opts = web_sys::FocusOptions::new();
            opts.set_prevent_scroll(true);
            let _ = el.focus_with_options(&opts);
        }
    });
    if let Some(w) = web_sys::window() {
        let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(cb.unchecked_ref(), 30);
    }
}

/// The content width of a box, in px, kept up to date as the box resizes (a
/// `ResizeObserver`): charts redraw at their box's width, so their text stays
/// at its size on a phone and on a wide screen. `fallback` until it is laid out.
/// The observer is disconnected when the component that asked goes away: left
/// observing, it fired into the disposed signal of a replaced chart (a panic in
/// the console at every prediction after the first).
pub fn width_of(node: NodeRef<html::Div>, fallback: u32) -> ReadSignal<u32> {
    type Observing = Option<(web_sys::ResizeObserver, Closure<dyn Fn(js_sys::Array)>)>;
    let (width, set_width) = signal(fallback);
    let held: SendWrapper<Rc<RefCell<Observing>>> = SendWrapper::new(Rc::new(RefCell::new(None)));
    let for_cleanup = held.clone();
    on_cleanup(move || {
        if let Some((observer, _callback)) = for_cleanup.borrow_mut().take() {
            observer.disconnect();
        }
    });
    Effect::new(move |observed: Option<bool>| {
        if observed == Some(true) {
            return true;
        }
        let Some(el) = node.get() else {
            return false;
        };
        let on_resize = Closure::<dyn Fn(js_sys::Array)>::new(move |entries: js_sys::Array| {
            let w = entries
                .get(0)
                .dyn_into::<web_sys::ResizeObserverEntry>()
                .map(|e| e.content_rect().width())
                .unwrap_or(0.0);
            if w >= 1.0 {
                let w = (w.round() as u32).max(280);
                if width.try_get_untracked().is_some_and(|now| now != w) {
                    set_width.try_set(w);
                }
            }
        });
        match web_sys::ResizeObserver::new(on_resize.as_ref().unchecked_ref()) {
            Ok(observer) => {
                observer.observe(&el);
                *held.borrow_mut() = Some((observer, on_resize));
                true
            }
            Err(_) => false,
        }
    });
    width
}

/// One cell of a sortable table: what it shows, and what it sorts by.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub text: String,
    pub key: f64,
}

impl Cell {
    pub fn num(text: String, key: f64) -> Self {
        Cell { text, key }
    }
    pub fn text(text: impl Into<String>) -> Self {
        Cell {
            text: text.into(),
            key: f64::NAN,
        }
    }
}

/// A table whose columns sort on a click of their heading (numbers by value,
/// largest first on the first click). Rows may carry a neuron: clicking the row
/// selects it, and the selected neuron's row is highlighted.
#[component]
pub fn SortTable(
    #[prop(into)] id: String,
    headers: Vec<&'static str>,
    rows: Vec<(Option<kn_shared::Neuron>, Vec<Cell>)>,
    #[prop(optional)] selected: Option<RwSignal<Option<kn_shared::Neuron>>>,
) -> impl IntoView {
    let sort = RwSignal::new(None::<(usize, bool)>);
    let rows = StoredValue::new(rows);
    let sorted = move || {
        let mut r = rows.get_value();
        if let Some((col, desc)) = sort.get() {
            r.sort_by(|a, b| {
                let (x, y) = (&a.1[col], &b.1[col]);
                let o = if x.key.is_nan() || y.key.is_nan() {
                    x.text.cmp(&y.text)
                } else {
                    x.key.total_cmp(&y.key)
                };
                if desc {
                    o.reverse()
                } else {
                    o
                }
            });
        }
        r
    };
    view! {
        <div class="scroll">
            <table id=id class="sortable">
                <thead><tr>{headers.into_iter().enumerate().map(|(i, h)| {
                    let mark = move || match sort.get() {
                        Some((c, true)) if c == i => " ▼",
                        Some((c, false)) if c == i => " ▲",
                        _ => "",
                    };
                    let aria = move || match sort.get() {
                        Some((c, true)) if c == i => "descending",
                        Some((c, false)) if c == i => "ascending",
                        _ => "none",
                    };
                    view! {
                        <th aria-sort=aria>
                            <button type="button" class="sort" on:click=move |_| sort.update(|s| {
                                *s = match *s {
                                    Some((c, d)) if c == i => Some((i, !d)),
                                    _ => Some((i, true)),
                                }
                            })>{h}{mark}</button>
                        </th>
                    }
                }).collect_view()}</tr></thead>
                <tbody>{move || sorted().into_iter().map(|(n, cells)| {
                    let is_sel = move || n.is_some() && selected.is_some_and(|s| s.get() == n);
                    let pick = move || {
                        if let (Some(s), Some(n)) = (selected, n) {
                            s.set(Some(n));
                        }
                    };
                    // A neuron's row is reached with Tab and opened with Enter or Space.
                    let key = move |ev: leptos::ev::KeyboardEvent| {
                        if ev.key() == "Enter" || ev.key() == " " {
                            ev.prevent_default();
                            pick();
                        }
                    };
                    let focusable = (n.is_some() && selected.is_some()).then_some("0");
                    view! {
                        <tr class:selected=is_sel class:clickable=n.is_some() on:click=move |_| pick() on:keydown=key
                            tabindex=focusable aria-selected=move || focusable.map(|_| is_sel().to_string())
                            data-neuron=n.map(|n| n.to_string())>
                            {cells.into_iter().map(|c| {
                                let num = !c.key.is_nan();
                                view! { <td class:num=num>{c.text}</td> }
                            }).collect_view()}
                        </tr>
                    }
                }).collect_view()}</tbody>
            </table>
        </div>
    }
}

/// Ctrl+Enter (or ⌘+Enter) in a text area submits its form.
pub fn submit_on_ctrl_enter(ev: leptos::ev::KeyboardEvent) {
    if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
        ev.prevent_default();
        if let Some(form) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok())
            .and_then(|el| el.closest("form").ok().flatten())
            .and_then(|f| f.dyn_into::<web_sys::HtmlFormElement>().ok())
        {
            let _ = form.request_submit();
        }
    }
}

/// A field's error, under the field (empty when none).
#[component]
pub fn FieldError(id: &'static str, error: Signal<Option<String>>) -> impl IntoView {
    move || {
        error
            .get()
            .map(|e| view! { <p class="error field-error" role="alert" id=id>{e}</p> })
    }
}

/// A job's time left, from its pace so far: the time since its first status
/// over the units done, times the units left (`""` until one is done).
#[derive(Clone, Copy)]
pub struct Eta {
    started: StoredValue<Option<(String, f64)>>,
}

impl Eta {
    pub fn new() -> Self {
        Eta {
            started: StoredValue::new(None),
        }
    }

    /// `", about 12 s left"` for the job `id` at `done` of `total`.
    pub fn left(self, id: &str, done: usize, total: usize) -> String {
        let now = js_sys::Date::now();
        if id.is_empty() {
            return String::new();
        }
        if self
            .started
            .with_value(|s| s.as_ref().is_none_or(|(at, _)| at != id))
        {
            self.started.set_value(Some((id.to_string(), now)));
        }
        let t0 = self
            .started
            .with_value(|s| s.as_ref().map_or(now, |(_, t)| *t));
        if done == 0 || done >= total {
            return String::new();
        }
        let secs = (now - t0) / 1000.0 / done as f64 * (total - done) as f64;
        format!(", {} left", about(secs))
    }
}

/// A count with thousands separated: `12,480`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A time to come in words: `about 4 s`, `under a second`.
pub fn about(secs: f64) -> String {
    if secs < 1.0 {
        "under a second".into()
    } else {
        format!("about {}", duration(secs))
    }
}

/// Seconds in words: `4 s`, `2 min 5 s`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// A running job's progress: the bar, "n of m <what>", and Cancel (which asks
/// the server to cancel the job; the view learns the outcome from its stream).
#[component]
pub fn JobProgress(
    job: RwSignal<Option<kn_shared::JobStatus>>,
    bar_id: &'static str,
    cancel_id: &'static str,
    /// What the count counts, e.g. "prompts attributed".
    what: &'static str,
) -> impl IntoView {
    let clock = Eta::new();
    move || {
        let (done, total, id) = job
            .get()
            .map_or((0, 0, String::new()), |s| (s.done, s.total, s.id));
        let left = clock.left(&id, done, total);
        let cancel = move |_| {
            let id = id.clone();
            leptos::task::spawn_local(async move {
                let _ = crate::api::cancel_job(&id).await;
            });
        };
        view! {
            <div class="progress">
                <progress id=bar_id max=total.max(1) value=done aria-label=what></progress>
                <span>{format!("{done} of {total} {what}{left}")}</span>
                <button id=cancel_id type="button" on:click=cancel>"Cancel"</button>
            </div>
        }
    }
}
