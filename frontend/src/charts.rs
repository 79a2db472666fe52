//! Charts, drawn with plotters into SVG strings: the page shows the same SVG
//! that the export buttons download.
//!
//! Every chart is drawn at the width of the box it sits in (so its text stays
//! at 13 px on a phone and on a wide screen alike) and returns its geometry
//! ([`Plot`]): where its data coordinates land in the SVG's pixels, which is
//! what the page needs to put tooltips, selections and brushes over it.

use kn_shared::PredictResponse;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The size of chart text as plotters takes it; its SVG backend writes
/// `size / 1.24` px, so 16 is 12.9 px on screen and the smallest text used
/// (`TEXT - 1`) is 12.1 px.
pub const TEXT: u32 = 16;
const FONT: &str = "sans-serif";
pub const BLUE: RGBColor = RGBColor(52, 101, 164);
pub const WARM: RGBColor = RGBColor(214, 96, 40);
pub const RED: RGBColor = RGBColor(178, 24, 43);
pub const GREY: RGBColor = RGBColor(120, 120, 120);

/// A drawn chart and its geometry: data `x` in `x.2..x.3` maps linearly to
/// pixels `x.0..x.1` (same for `y`; pixel `y` grows downwards).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plot {
    pub svg: String,
    pub width: u32,
    pub height: u32,
    pub x: Axis,
    pub y: Axis,
}

/// `(first pixel, last pixel, data at the first, data at the last)`.
pub type Axis = (f64, f64, f64, f64);

impl Plot {
    /// Data coordinates of a pixel of the SVG.
    pub fn to_data(&self, px: f64, py: f64) -> (f64, f64) {
        let (a, b, u, v) = self.x;
        let (c, d, s, t) = self.y;
        (
            u + (px - a) / (b - a) * (v - u),
            s + (py - c) / (d - c) * (t - s),
        )
    }

    /// The pixel of data coordinates.
    pub fn to_px(&self, x: f64, y: f64) -> (f64, f64) {
        let (a, b, u, v) = self.x;
        let (c, d, s, t) = self.y;
        (
            a + (x - u) / (v - u) * (b - a),
            c + (y - s) / (t - s) * (d - c),
        )
    }
}

fn geometry<X, Y>(
    chart: &ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, Y>>,
    x: (f64, f64),
    y: (f64, f64),
) -> (Axis, Axis)
where
    X: Ranged,
    Y: Ranged,
{
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    // Pixel y grows downwards: data y.1 (top) is at yr.start.
    (
        (xr.start as f64, xr.end as f64, x.0, x.1),
        (yr.start as f64, yr.end as f64, y.1, y.0),
    )
}

fn text(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

/// Text at `(x, y)` px, anchored by `pos`.
fn label(root: &DrawingArea<SVGBackend<'_>, Shift>, s: &str, at: (i32, i32), pos: Pos, size: u32) {
    let _ = root.draw(&Text::new(s.to_string(), at, text(size).pos(pos)));
}

/// A chart's title at the top left and its legend at the top right (on a line
/// of its own when the chart is narrow); returns the top margin the plot needs.
fn heading(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    legend: &[(&str, RGBColor)],
    w: u32,
) -> u32 {
    label(
        root,
        title,
        (12, 16),
        Pos::new(HPos::Left, VPos::Center),
        TEXT + 1,
    );
    let narrow = w < 600;
    let y = if narrow { 40 } else { 16 };
    let mut x = w as i32 - 12;
    for (text, color) in legend.iter().rev() {
        let _ = root.draw(&Text::new(
            text.to_string(),
            (x, y),
            (FONT, TEXT)
                .into_font()
                .color(color)
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ));
        x -= text.chars().count() as i32 * 8 + 16;
    }
    if narrow {
        62
    } else {
        38
    }
}

/// Horizontal bars of the top-k probabilities at the blank, the best on top,
/// each labelled with its token (and the target in orange).
pub fn top_k_bars(r: &PredictResponse, width: u32) -> Plot {
    let n = r.top_k.len().max(1);
    let w = width.clamp(280, 1400);
    let h = 70 + 30 * n as u32;
    let labels: Vec<String> = r.top_k.iter().map(|t| format!("{:?}", t.token)).collect();
    let label_w = labels
        .iter()
        .map(|l| l.chars().count() as u32 * 8 + 16)
        .max()
        .unwrap_or(60)
        .clamp(60, w / 3);
    let max = r.top_k.iter().map(|t| t.prob).fold(0.0, f64::max).max(1e-9) * 1.15;
    let mut svg = String::new();
    let mut plot = Plot {
        width: w,
        height: h,
        ..Default::default()
    };
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(label_w)
            .build_cartesian_2d(0.0..max, 0.0..n as f64)
        else {
            return plot;
        };
        let _ = chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(5)
            .x_label_formatter(&|v| format_value(*v))
            .label_style(text(TEXT))
            .axis_desc_style(text(TEXT + 1))
            .x_desc("probability at the blank")
            .draw();
        (plot.x, plot.y) = geometry(&chart, (0.0, max), (0.0, n as f64));
        for (i, t) in r.top_k.iter().enumerate() {
            // Rank 1 on the top row.
            let row = (n - 1 - i) as f64;
            let color = if r.target.as_ref().is_some_and(|x| x.id == t.id) {
                WARM
            } else {
                BLUE
            };
            let _ = chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, row + 0.15), (t.prob, row + 0.85)],
                color.filled(),
            )));
            let (x0, y) = plot.to_px(0.0, row + 0.5);
            label(
                &root,
                &labels[i],
                (x0 as i32 - 8, y as i32),
                Pos::new(HPos::Right, VPos::Center),
                TEXT,
            );
            let (x1, _) = plot.to_px(t.prob, row + 0.5);
            label(
                &root,
                &format!("{:.3}", t.prob),
                (x1 as i32 + 6, y as i32),
                Pos::new(HPos::Left, VPos::Center),
                TEXT,
            );
        }
        let _ = root.present();
    }
    plot.svg = svg;
    plot
}

/// Grouped bars: relative change of P(answer) when suppressing (×0) and
/// amplifying (×2) each neuron set. `groups`: (set name, suppress %, amplify %).
pub fn effect_bars(groups: &[(String, f64, f64)], width: u32) -> Plot {
    let (w, h) = (width.clamp(280, 1000), 340u32);
    let lo = groups
        .iter()
        .map(|g| g.1.min(g.2))
        .fold(0.0, f64::min)
        .min(-5.0)
        * 1.2;
    let hi = groups
        .iter()
        .map(|g| g.1.max(g.2))
        .fold(0.0, f64::max)
        .max(5.0)
        * 1.2;
    let n = groups.len().max(1) as f64;
    let mut svg = String::new();
    let mut plot = Plot {
        width: w,
        height: h,
        ..Default::default()
    };
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let top = heading(
            &root,
            "Change of P(answer) at the blank",
            &[("■ suppress (×0)", BLUE), ("■ amplify (×2)", WARM)],
            w,
        );
        let Ok(mut chart) = ChartBuilder::on(&root)
            .margin(12)
            .margin_top(top)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..n, lo..hi)
        else {
            return plot;
        };
        let _ = chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .label_style(text(TEXT))
            .axis_desc_style(text(TEXT + 1))
            .y_desc("relative change (%)")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw();
        (plot.x, plot.y) = geometry(&chart, (0.0, n), (lo, hi));
        for (i, g) in groups.iter().enumerate() {
            let x = i as f64;
            for (v, a, b, color) in [(g.1, 0.12, 0.48, BLUE), (g.2, 0.52, 0.88, WARM)] {
                let _ = chart.draw_series(std::iter::once(Rectangle::new(
                    [(x + a, 0.0), (x + b, v)],
                    color.filled(),
                )));
                let (px, py) = plot.to_px(x + (a + b) / 2.0, v);
                let pos = if v >= 0.0 { VPos::Bottom } else { VPos::Top };
                let dy = if v >= 0.0 { -3 } else { 3 };
                label(
                    &root,
                    &format!("{v:+.1}%"),
                    (px as i32, py as i32 + dy),
                    Pos::new(HPos::Center, pos),
                    TEXT - 1,
                );
            }
            let (px, _) = plot.to_px(x + 0.5, lo);
            label(
                &root,
                &g.0,
                (px as i32, plot.y.1 as i32 + 8),
                Pos::new(HPos::Center, VPos::Top),
                TEXT,
            );
        }
        let _ = chart.draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 0.0), (n, 0.0)],
            BLACK,
        )));
        let _ = root.present();
    }
    plot.svg = svg;
    plot
}

/// Colours of the methods lab's series, in order.
pub const SERIES: [RGBColor; 6] = [
    RED,
    GREY,
    BLUE,
    RGBColor(46, 139, 87),
    WARM,
    RGBColor(117, 80, 160),
];

/// Lines of a relative change (%) against `k` (the same `ks` for every series),
/// one per named series, on a categorical `k` axis.
pub fn k_curves(title: &str, ks: &[usize], series: &[(String, Vec<f64>)], width: u32) -> Plot {
    let (w, h) = (width.clamp(280, 1000), 320u32);
    let values = series.iter().flat_map(|s| s.1.iter().copied());
    let lo = values.clone().fold(0.0, f64::min).min(-5.0) * 1.15;
    let hi = values.fold(0.0, f64::max).max(5.0) * 1.15;
    let n = ks.len().max(1) as f64;
    let mut svg = String::new();
    let mut plot = Plot {
        width: w,
        height: h,
        ..Default::default()
    };
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let names: Vec<String> = series.iter().map(|s| format!("● {}", s.0)).collect();
        let legend: Vec<(&str, RGBColor)> = names
            .iter()
            .zip(SERIES.iter().cycle())
            .map(|(n, c)| (n.as_str(), *c))
            .collect();
        let top = heading(&root, title, &legend, w);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .margin(12)
            .margin_top(top)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5..n - 0.5, lo..hi)
        else {
            return plot;
        };
        let _ = chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .label_style(text(TEXT))
            .axis_desc_style(text(TEXT + 1))
            .y_desc("relative change (%)")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .draw();
        (plot.x, plot.y) = geometry(&chart, (-0.5, n - 0.5), (lo, hi));
        for (i, k) in ks.iter().enumerate() {
            let (px, _) = plot.to_px(i as f64, lo);
            label(
                &root,
                &format!("k = {k}"),
                (px as i32, plot.y.1 as i32 + 8),
                Pos::new(HPos::Center, VPos::Top),
                TEXT,
            );
        }
        let _ = chart.draw_series(std::iter::once(PathElement::new(
            vec![(-0.5, 0.0), (n - 0.5, 0.0)],
            BLACK,
        )));
        for ((_, v), color) in series.iter().zip(SERIES.iter().cycle()) {
            let pts: Vec<(f64, f64)> = v.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect();
            let _ = chart.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)));
            let _ = chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())));
        }
        let _ = root.present();
    }
    plot.svg = svg;
    plot
}

/// Neurons per layer for the knowledge (red) and baseline (grey) sets; layers
/// are whole numbers centred under their bars.
pub fn layer_counts(layers: usize, a: &[usize], b: &[usize], width: u32) -> Plot {
    let (w, h) = (width.clamp(280, 1000), 280u32);
    let count = |set: &[usize], l: usize| set.iter().filter(|&&x| x == l).count();
    let max = (0..layers)
        .map(|l| count(a, l).max(count(b, l)))
        .max()
        .unwrap_or(1)
        .max(1) as f64
        + 0.5;
    let x = (-0.5, layers.max(1) as f64 - 0.5);
    let mut svg = String::new();
    let mut plot = Plot {
        width: w,
        height: h,
        ..Default::default()
    };
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let top = heading(
            &root,
            "Neurons per layer",
            &[("■ knowledge", RED), ("■ baseline", GREY)],
            w,
        );
        let Ok(mut chart) = ChartBuilder::on(&root)
            .margin(12)
            .margin_top(top)
            .x_label_area_size(40)
            .y_label_area_size(44)
            .build_cartesian_2d(x.0..x.1, 0.0..max)
        else {
            return plot;
        };
        let step = layers.div_ceil(12).max(1);
        let _ = chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_labels((max as usize).min(8) + 1)
            .y_label_formatter(&|v| {
                if v.fract().abs() < 1e-9 {
                    format!("{v:.0}")
                } else {
                    String::new()
                }
            })
            .label_style(text(TEXT))
            .axis_desc_style(text(TEXT + 1))
            .x_desc("layer")
            .y_desc("neurons")
            .draw();
        (plot.x, plot.y) = geometry(&chart, x, (0.0, max));
        for l in 0..layers {
            let c = l as f64;
            let _ = chart.draw_series([
                Rectangle::new([(c - 0.4, 0.0), (c, count(a, l) as f64)], RED.filled()),
                Rectangle::new([(c, 0.0), (c + 0.4, count(b, l) as f64)], GREY.filled()),
            ]);
            if l % step == 0 || l + 1 == layers {
                let (px, _) = plot.to_px(c, 0.0);
                label(
                    &root,
                    &l.to_string(),
                    (px as i32, plot.y.1 as i32 + 6),
                    Pos::new(HPos::Center, VPos::Top),
                    TEXT,
                );
            }
        }
        let _ = root.present();
    }
    plot.svg = svg;
    plot
}

/// Diverging colour for `v` in `[-1, 1]`: blue below zero, red above, white at zero.
pub fn diverging(v: f64) -> RGBColor {
    let v = v.clamp(-1.0, 1.0);
    let (r, g, b) = if v >= 0.0 {
        (178.0, 24.0, 43.0)
    } else {
        (33.0, 102.0, 172.0)
    };
    let t = v.abs().sqrt();
    let mix = |c: f64| (255.0 + (c - 255.0) * t) as u8;
    RGBColor(mix(r), mix(g), mix(b))
}

/// What one heatmap cell holds: the neurons `lo..hi` of a layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    pub layer: usize,
    pub lo: usize,
    pub hi: usize,
    /// The value of largest magnitude in the cell (what its colour shows).
    pub max: f32,
    /// The mean value of the cell.
    pub mean: f32,
    /// The neuron holding `max`.
    pub argmax: usize,
}

/// A heatmap and how its neurons are binned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Heatmap {
    pub plot: Plot,
    /// Neurons `lo..hi` are shown, `per_bin` to a cell.
    pub lo: usize,
    pub hi: usize,
    pub per_bin: usize,
    pub layers: usize,
    /// The colour scale runs from `-scale` to `+scale`.
    pub scale: f64,
}

impl Heatmap {
    /// The cell under data coordinates, if any.
    pub fn cell(&self, map: &[Vec<f32>], x: f64, y: f64) -> Option<Cell> {
        if x < self.lo as f64 || x >= self.hi as f64 || y < -0.5 || y >= self.layers as f64 - 0.5 {
            return None;
        }
        let layer = (y + 0.5).floor() as usize;
        let b = (x as usize - self.lo) / self.per_bin;
        let lo = self.lo + b * self.per_bin;
        let hi = (lo + self.per_bin).min(self.hi);
        cell(map, layer, lo, hi)
    }
}

fn cell(map: &[Vec<f32>], layer: usize, lo: usize, hi: usize) -> Option<Cell> {
    let row = map.get(layer)?.get(lo..hi)?;
    let (argmax, max) =
        row.iter().enumerate().fold(
            (0, 0f32),
            |(i, m), (j, &x)| if x.abs() > m.abs() { (j, x) } else { (i, m) },
        );
    let mean = row.iter().sum::<f32>() / row.len().max(1) as f32;
    Some(Cell {
        layer,
        lo,
        hi,
        max,
        mean,
        argmax: lo + argmax,
    })
}

/// Heatmap of a `[layers][d_ff]` score map over neurons `range`, rows centred
/// on layers `0..L−1`, with a symmetric colour bar. Wide ranges are binned
/// (a cell shows its value of largest magnitude); `marks` (layer, index) are
/// circled.
pub fn heatmap(
    map: &[Vec<f32>],
    marks: &[(usize, usize)],
    range: (usize, usize),
    width: u32,
    units: &str,
) -> Heatmap {
    let layers = map.len();
    let d_ff = map.first().map_or(0, Vec::len);
    let (lo, hi) = (range.0.min(d_ff), range.1.min(d_ff));
    if layers == 0 || hi <= lo {
        return Heatmap::default();
    }
    let w = width.clamp(300, 2000);
    let bar_w = 140u32;
    // About 4 px per cell at least: bin to fit.
    let cells_fit = ((w.saturating_sub(bar_w + 80)) / 4).max(16) as usize;
    let per_bin = (hi - lo).div_ceil(cells_fit).max(1);
    let scale = map
        .iter()
        .flat_map(|row| row[lo..hi].iter())
        .fold(0f32, |m, &v| m.max(v.abs()))
        .max(1e-12) as f64;
    let row_h = if layers > 24 { 16 } else { 22 };
    let h = 90 + row_h * layers.max(6) as u32;
    let mut svg = String::new();
    let mut out = Heatmap {
        lo,
        hi,
        per_bin,
        layers,
        scale,
        plot: Plot {
            width: w,
            height: h,
            ..Default::default()
        },
    };
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let (left, right) = root.split_horizontally(w - bar_w);
        let y = (-0.5, layers as f64 - 0.5);
        let Ok(mut chart) = ChartBuilder::on(&left)
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(52)
            .build_cartesian_2d(lo as f64..hi as f64, y.0..y.1)
        else {
            return out;
        };
        let desc = axis_title(per_bin, w - bar_w);
        let ystep = layers.div_ceil(15).max(1);
        let _ = chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(6)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_labels(0)
            .label_style(text(TEXT))
            .axis_desc_style(text(TEXT))
            .x_desc(desc)
            .y_desc("layer")
            .draw();
        (out.plot.x, out.plot.y) = geometry(&chart, (lo as f64, hi as f64), y);
        let _ = chart.draw_series(heat_cells(map, (lo, hi), per_bin, scale));
        for l in (0..layers).filter(|l| l % ystep == 0 || l + 1 == layers) {
            let (px, py) = out.plot.to_px(lo as f64, l as f64);
            label(
                &left,
                &l.to_string(),
                (px as i32 - 8, py as i32),
                Pos::new(HPos::Right, VPos::Center),
                TEXT,
            );
        }
        let _ = chart.draw_series(marks.iter().filter(|&&(_, i)| i >= lo && i < hi).map(
            |&(l, i)| {
                let x =
                    lo as f64 + ((i - lo) / per_bin) as f64 * per_bin as f64 + per_bin as f64 / 2.0;
                Circle::new((x, l as f64), 6, ShapeStyle::from(&BLACK).stroke_width(2))
            },
        ));
        colour_bar(
            &right,
            (out.plot.y.0 as i32, out.plot.y.1 as i32),
            scale,
            units,
        );
        let _ = root.present();
    }
    out.plot.svg = svg;
    out
}

/// The neuron axis's title, as long as fits under a plot `width` px wide (on a
/// phone the long one ran into the colour bar; the range line above the
/// heatmap says the binning too).
fn axis_title(per_bin: usize, width: u32) -> String {
    let long = if per_bin == 1 {
        "neuron index (one neuron per cell)".to_string()
    } else {
        format!("neuron index (each cell: the largest-magnitude score of {per_bin} neurons)")
    };
    let medium = if per_bin == 1 {
        "neuron index".to_string()
    } else {
        format!("neuron (max of {per_bin} per cell)")
    };
    // About 7 px a character at the axis's text size, less the axis labels.
    let room = width.saturating_sub(52 + 24) as usize / 7;
    [long, medium]
        .into_iter()
        .find(|t| t.chars().count() <= room)
        .unwrap_or_else(|| "neuron".into())
}

/// Every layer's cells over neurons `lo..hi`, `per_bin` neurons to a cell,
/// coloured by the cell's value of largest magnitude against `scale`.
fn heat_cells(
    map: &[Vec<f32>],
    (lo, hi): (usize, usize),
    per_bin: usize,
    scale: f64,
) -> Vec<Rectangle<(f64, f64)>> {
    let mut out = Vec::new();
    for l in 0..map.len() {
        let mut b = lo;
        while b < hi {
            let e = (b + per_bin).min(hi);
            if let Some(c) = cell(map, l, b, e) {
                out.push(Rectangle::new(
                    [(b as f64, l as f64 - 0.5), (e as f64, l as f64 + 0.5)],
                    diverging(c.max as f64 / scale).filled(),
                ));
            }
            b = e;
        }
    }
    out
}

/// The colour bar from the plot's top `y0` to its bottom `y1`: +scale (red)
/// … 0 (white) … −scale (blue), its three values and its units.
fn colour_bar(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    (y0, y1): (i32, i32),
    scale: f64,
    units: &str,
) {
    let steps = 48;
    for k in 0..steps {
        let v = 1.0 - 2.0 * (k as f64 + 0.5) / steps as f64;
        let a = y0 + (y1 - y0) * k / steps;
        let b = y0 + (y1 - y0) * (k + 1) / steps;
        let _ = area.draw(&Rectangle::new(
            [(8, a), (24, b + 1)],
            diverging(v).filled(),
        ));
    }
    let _ = area.draw(&Rectangle::new([(8, y0), (24, y1)], BLACK.stroke_width(1)));
    for (v, at) in [(scale, y0), (0.0, (y0 + y1) / 2), (-scale, y1)] {
        label(
            area,
            &format_value(v),
            (28, at),
            Pos::new(HPos::Left, VPos::Center),
            TEXT - 1,
        );
    }
    label(
        area,
        units,
        (4, y1 + 20),
        Pos::new(HPos::Left, VPos::Top),
        TEXT - 1,
    );
}

/// A number in a fixed, readable form: 4 significant digits, without an
/// exponent down to 1e-4.
pub fn format_value(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{v:.3e}")
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.3}")
    } else if a >= 1e-4 {
        let digits = (4 - (a.log10().floor() as i32 + 1)).clamp(0, 8) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.2e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_decimals() {
        assert_eq!(format_value(0.068302), "0.06830");
        assert_eq!(format_value(0.7725), "0.7725");
        assert_eq!(format_value(-12.5), "-12.500");
        assert_eq!(format_value(3.2e-6), "3.20e-6");
        assert_eq!(format_value(8.1e10), "8.100e10");
        assert_eq!(format_value(4321.7), "4322");
    }
}
