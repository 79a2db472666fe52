//! The attribution heatmap you can read closely: a symmetric colour bar with
//! its units, a tooltip per cell (layer, neuron range, max and mean score),
//! click to select a neuron (the tables, the layer chart and the neuron card
//! follow), and drag across it to zoom into a range of neurons down to one
//! neuron per cell. It is drawn at the width of its box.

use crate::charts::{self, Heatmap};
use crate::ui;
use kn_shared::Neuron;
use leptos::html;
use leptos::prelude::*;

/// The keyboard's way in: the neuron an arrow key moves the selection to
/// (left/right a neuron within the zoomed range `lo..hi`, up/down a layer);
/// Enter or Space selects where it is; other keys are not the heatmap's.
fn step(key: &str, at: Option<Neuron>, (lo, hi): (usize, usize), layers: usize) -> Option<Neuron> {
    let hi = hi.max(lo + 1);
    let at = at.unwrap_or(Neuron {
        layer: 0,
        index: lo,
    });
    Some(match key {
        "ArrowLeft" => Neuron {
            index: at.index.saturating_sub(1).max(lo),
            ..at
        },
        "ArrowRight" => Neuron {
            index: (at.index + 1).min(hi - 1),
            ..at
        },
        "ArrowUp" => Neuron {
            layer: (at.layer + 1).min(layers.saturating_sub(1)),
            ..at
        },
        "ArrowDown" => Neuron {
            layer: at.layer.saturating_sub(1),
            ..at
        },
        "Enter" | " " => at,
        _ => return None,
    })
}

#[component]
pub fn HeatmapView(
    /// `[layers][d_ff]` mean scores.
    map: Vec<Vec<f32>>,
    /// Knowledge neurons, circled.
    marks: Vec<(usize, usize)>,
    selected: RwSignal<Option<Neuron>>,
    data_name: String,
    #[prop(into)] stale: Signal<bool>,
) -> impl IntoView {
    let d_ff = map.first().map_or(0, Vec::len);
    let map = StoredValue::new(map);
    let zoom = RwSignal::new((0usize, d_ff));
    let node = NodeRef::<html::Div>::new();
    let width = ui::width_of(node, 900);
    let drawn = Memo::new(move |_| {
        let w = width.get();
        map.with_value(|m| charts::heatmap(m, &marks, zoom.get(), w, "IG score (probability)"))
    });
    let tooltip = RwSignal::new(None::<(f64, f64, String)>);
    // A new range redraws every cell: a tooltip of the old one would name
    // neurons no longer under the pointer.
    Effect::new(move |_| {
        zoom.track();
        tooltip.set(None);
    });
    let brush = RwSignal::new(None::<(f64, f64)>);
    // Event position → (SVG px, data coordinates).
    let locate = move |ev: &leptos::ev::MouseEvent| -> Option<((f64, f64), (f64, f64))> {
        let el = node.get()?;
        let rect = el.get_bounding_client_rect();
        let h: Heatmap = drawn.get_untracked();
        if rect.width() <= 0.0 || h.plot.width == 0 {
            return None;
        }
        let scale = h.plot.width as f64 / rect.width();
        let (px, py) = (
            (ev.client_x() as f64 - rect.left()) * scale,
            (ev.client_y() as f64 - rect.top()) * scale,
        );
        Some(((px / scale, py / scale), h.plot.to_data(px, py)))
    };
    let on_move = move |ev: leptos::ev::MouseEvent| {
        let Some(((ox, oy), (x, y))) = locate(&ev) else {
            return;
        };
        let h = drawn.get_untracked();
        if let Some((start, _)) = brush.get_untracked() {
            brush.set(Some((start, x)));
        }
        let text = map.with_value(|m| h.cell(m, x, y)).map(|c| describe(&c));
        tooltip.set(text.map(|t| (ox + 14.0, oy + 14.0, t)));
    };
    let on_down = move |ev: leptos::ev::MouseEvent| {
        if let Some((_, (x, _))) = locate(&ev) {
            ev.prevent_default();
            brush.set(Some((x, x)));
        }
    };
    let on_up = move |ev: leptos::ev::MouseEvent| {
        let Some((_, (x, y))) = locate(&ev) else {
            brush.set(None);
            return;
        };
        let h = drawn.get_untracked();
        match brush.get_untracked() {
            // A drag across at least two neurons zooms in.
            Some((start, _)) if (x - start).abs() >= 2.0 => {
                let lo = start.min(x).floor().max(h.lo as f64) as usize;
                let hi = (start.max(x).ceil() as usize).min(h.hi).max(lo + 1);
                zoom.set((lo, hi));
            }
            // A click selects the cell's strongest neuron.
            _ => {
                if let Some(c) = map.with_value(|m| h.cell(m, x, y)) {
                    selected.set(Some(Neuron {
                        layer: c.layer,
                        index: c.argmax,
                    }));
                }
            }
        }
        brush.set(None);
    };
    let on_key = move |ev: leptos::ev::KeyboardEvent| {
        let h = drawn.get_untracked();
        let layers = map.with_value(|m| m.len());
        if let Some(n) = step(&ev.key(), selected.get_untracked(), (h.lo, h.hi), layers) {
            ev.prevent_default();
            selected.set(Some(n));
        }
    };
    let label = move || {
        let h = drawn.get();
        format!(
            "Attribution heatmap: mean integrated-gradients score per layer and neuron, neurons {} to {}, knowledge neurons marked. Arrow keys move the selected neuron; its card opens below.",
            h.lo,
            h.hi.saturating_sub(1)
        )
    };
    let csv: String = map.with_value(|m| map_csv(m));
    let json = map.with_value(|m| serde_json::to_string(m).unwrap_or_default());
    // Where the selected neuron is drawn, in px of the displayed SVG.
    let selection = move || {
        let n = selected.get()?;
        selection_box(&drawn.get(), n, width.get()).map(|b| (n, b))
    };
    view! {
        <figure class="chart heatmap" id="heatmap" class:stale=move || stale.get()>
            <ZoomBar drawn=drawn zoom=zoom selected=selected d_ff=d_ff />
            <div class="plotbox">
            <div class="svg interactive" node_ref=node inner_html=move || drawn.get().plot.svg
                tabindex="0" role="img" aria-label=label on:keydown=on_key
                on:mousemove=on_move on:mouseleave=move |_| { tooltip.set(None); brush.set(None); }
                on:mousedown=on_down on:mouseup=on_up></div>
            {move || tooltip.get().map(|(x, y, t)| view! {
                <div id="heatmap-tooltip" class="tooltip" style=format!("left:{x:.0}px;top:{y:.0}px")>{t}</div>
            })}
            {move || brush.get().filter(|(a, b)| (a - b).abs() >= 1.0).map(|(a, b)| {
                let (x, y, w, h) = brush_box(&drawn.get_untracked(), (a, b), width.get_untracked());
                view! { <div id="heatmap-brush" class="brush" style=format!("left:{x:.0}px;top:{y:.0}px;width:{w:.0}px;height:{h:.0}px")></div> }
            })}
            {move || selection().map(|(n, (x, y, w, h))| view! {
                <div id="heatmap-selection" class="selection" data-layer=n.layer data-index=n.index
                    style=format!("left:{x:.0}px;top:{y:.0}px;width:{w:.0}px;height:{h:.0}px")></div>
            })}
            </div>
            <figcaption>"Attribution heatmap (circles: knowledge neurons)"
                {move || view! { <ui::Exports svg=drawn.get().plot.svg data_name=data_name.clone() csv=csv.clone() json=json.clone() /> }}
            </figcaption>
        </figure>
    }
}

/// A cell's tooltip: its layer and neurons, its largest score (and where) and
/// its mean.
fn describe(c: &charts::Cell) -> String {
    if c.hi - c.lo == 1 {
        format!(
            "layer {} · neuron {} · score {}",
            c.layer,
            c.lo,
            ui::value(c.max as f64)
        )
    } else {
        format!(
            "layer {} · neurons {}–{} · max {} (neuron {}) · mean {}",
            c.layer,
            c.lo,
            c.hi - 1,
            ui::value(c.max as f64),
            c.argmax,
            ui::value(c.mean as f64)
        )
    }
}

/// The map as `layer,neuron,score` rows.
fn map_csv(m: &[Vec<f32>]) -> String {
    std::iter::once("layer,neuron,score\n".to_string())
        .chain(m.iter().enumerate().flat_map(|(l, row)| {
            row.iter()
                .enumerate()
                .map(move |(i, v)| format!("{l},{i},{v}\n"))
        }))
        .collect()
}

/// Where neuron `n` is drawn (left, top, width, height in px of the
/// displayed SVG, `width` px wide), when it is in view.
fn selection_box(h: &Heatmap, n: Neuron, width: u32) -> Option<(f64, f64, f64, f64)> {
    if n.index < h.lo || n.index >= h.hi || n.layer >= h.layers {
        return None;
    }
    let b = h.lo + (n.index - h.lo) / h.per_bin * h.per_bin;
    let (x0, y0) = h.plot.to_px(b as f64, n.layer as f64 + 0.5);
    let (x1, y1) = h
        .plot
        .to_px((b + h.per_bin).min(h.hi) as f64, n.layer as f64 - 0.5);
    let k = width as f64 / h.plot.width.max(1) as f64;
    Some((
        x0 * k,
        y0 * k,
        (x1 - x0).max(2.0) * k,
        (y1 - y0).max(2.0) * k,
    ))
}

/// The neuron range shown, and the buttons that change it.
#[component]
fn ZoomBar(
    drawn: Memo<Heatmap>,
    zoom: RwSignal<(usize, usize)>,
    selected: RwSignal<Option<Neuron>>,
    d_ff: usize,
) -> impl IntoView {
    let zoom_selected = move |_| {
        if let Some(n) = selected.get_untracked() {
            let lo = n.index.saturating_sub(32);
            zoom.set((lo, (lo + 64).min(d_ff)));
        }
    };
    view! {
        <div class="zoombar">
            <span id="heatmap-range">{move || {
                let h = drawn.get();
                format!("neurons {}–{} of {d_ff}{}", h.lo, h.hi.saturating_sub(1),
                    if h.per_bin > 1 { format!(", {} per cell", h.per_bin) } else { ", one per cell".into() })
            }}</span>
            " "
            <ui::Help id="heatmap" text="Each cell shows the largest-magnitude integrated-gradients score (averaged over the prompts) among the neurons it covers; red raises P(answer), blue lowers it. Hover a cell for its layer, neurons, max and mean; click to select its strongest neuron; drag across to zoom in." />
            {move || (zoom.get() != (0, d_ff)).then(|| view! {
                <button type="button" class="small" id="heatmap-reset" on:click=move |_| zoom.set((0, d_ff))>"Show all neurons"</button>
            })}
            {move || selected.get().map(|_| view! {
                <button type="button" class="small" id="heatmap-zoom-selected" on:click=zoom_selected>"Zoom to the selected neuron"</button>
            })}
        </div>
    }
}

/// The box a drag from `a` to `b` (neuron coordinates) covers, in px of the
/// displayed SVG.
fn brush_box(h: &Heatmap, (a, b): (f64, f64), width: u32) -> (f64, f64, f64, f64) {
    let k = width as f64 / h.plot.width.max(1) as f64;
    let (x0, y0) = h.plot.to_px(a.min(b), h.layers as f64 - 0.5);
    let (x1, y1) = h.plot.to_px(a.max(b), -0.5);
    (x0 * k, y0 * k, (x1 - x0) * k, (y1 - y0) * k)
}
