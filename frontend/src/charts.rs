//! Charts, drawn with plotters into SVG strings (the same SVG is what the
//! export buttons will download).

use kn_shared::PredictResponse;
use plotters::prelude::*;

/// Horizontal bars of the top-k probabilities at the blank.
pub fn top_k_bars(r: &PredictResponse) -> String {
    let n = r.top_k.len().max(1);
    let (w, h) = (640u32, 60 + 26 * n as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let max = r.top_k.iter().map(|t| t.prob).fold(0.0, f64::max).max(1e-9) * 1.1;
        let chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(110)
            .build_cartesian_2d(0.0..max, (0..n).into_segmented());
        let Ok(mut chart) = chart else {
            return String::new();
        };
        let labels: Vec<String> = r.top_k.iter().map(|t| format!("{:?}", t.token)).collect();
        let _ = chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("probability at the blank")
            .y_label_formatter(&|v| match v {
                // Row 0 is drawn at the bottom: put the best token on top.
                SegmentValue::CenterOf(i) if *i < n => {
                    labels.get(n - 1 - *i).cloned().unwrap_or_default()
                }
                _ => String::new(),
            })
            .y_labels(n)
            .draw();
        let _ = chart.draw_series(r.top_k.iter().enumerate().map(|(i, t)| {
            let color = if r.target.as_ref().is_some_and(|x| x.id == t.id) {
                RGBColor(214, 96, 40)
            } else {
                RGBColor(52, 101, 164)
            };
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (t.prob, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(3, 3, 0, 0);
            bar
        }));
        let _ = root.present();
    }
    svg
}

/// Diverging colour for `v` in `[-1, 1]`: blue below zero, red above, white at zero.
fn diverging(v: f64) -> RGBColor {
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

/// Heatmap of a `[layers][d_ff]` score map. Wide layers are binned (each cell
/// is the bin's value of largest magnitude); `marks` (layer, index) are circled.
pub fn heatmap(map: &[Vec<f32>], marks: &[(usize, usize)], title: &str) -> String {
    let layers = map.len();
    let d_ff = map.first().map_or(0, Vec::len);
    if layers == 0 || d_ff == 0 {
        return String::new();
    }
    let bins = d_ff.min(128);
    let per_bin = d_ff.div_ceil(bins);
    let max = map
        .iter()
        .flatten()
        .fold(0f32, |m, &v| m.max(v.abs()))
        .max(1e-12) as f64;
    let (w, h) = (900u32, 80 + 18 * layers.max(6) as u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(0usize..d_ff, 0usize..layers)
        else {
            return String::new();
        };
        let _ = chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(format!("neuron index ({per_bin} per cell)"))
            .y_desc("layer")
            .y_labels(layers.min(16))
            .draw();
        let cells = (0..layers).flat_map(|l| {
            (0..bins).map(move |b| {
                let lo = b * per_bin;
                let hi = ((b + 1) * per_bin).min(d_ff);
                let v = map[l][lo..hi]
                    .iter()
                    .fold(0f32, |m, &x| if x.abs() > m.abs() { x } else { m });
                Rectangle::new([(lo, l), (hi, l + 1)], diverging(v as f64 / max).filled())
            })
        });
        let _ = chart.draw_series(cells);
        let _ = chart.draw_series(
            marks
                .iter()
                .map(|&(l, i)| Circle::new((i, l), 6, ShapeStyle::from(&BLACK).stroke_width(2))),
        );
        let _ = root.present();
    }
    svg
}

/// Grouped bars: relative change of P(answer) when suppressing and amplifying
/// each neuron set. `groups`: (set name, suppress %, amplify %).
pub fn effect_bars(groups: &[(String, f64, f64)]) -> String {
    let (w, h) = (640u32, 320u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let lo = groups
            .iter()
            .map(|g| g.1.min(g.2))
            .fold(0.0, f64::min)
            .min(-5.0)
            * 1.15;
        let hi = groups
            .iter()
            .map(|g| g.1.max(g.2))
            .fold(0.0, f64::max)
            .max(5.0)
            * 1.15;
        let n = groups.len().max(1);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption("Change of P(answer) at the blank", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .build_cartesian_2d((0..n).into_segmented(), lo..hi)
        else {
            return String::new();
        };
        let names: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
        let _ = chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc("relative change (%)")
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .draw();
        let sup = RGBColor(33, 102, 172);
        let amp = RGBColor(214, 96, 40);
        for (i, g) in groups.iter().enumerate() {
            for (k, (v, color)) in [(g.1, sup), (g.2, amp)].into_iter().enumerate() {
                let x0 = SegmentValue::Exact(i);
                let mut bar =
                    Rectangle::new([(x0, 0.0), (SegmentValue::Exact(i + 1), v)], color.filled());
                // Two bars per group: suppress left, amplify right.
                bar.set_margin(
                    0,
                    0,
                    if k == 0 { 12 } else { 70 },
                    if k == 0 { 70 } else { 12 },
                );
                let _ = chart.draw_series(std::iter::once(bar));
            }
        }
        let _ = chart.draw_series(std::iter::once(PathElement::new(
            vec![(SegmentValue::Exact(0), 0.0), (SegmentValue::Exact(n), 0.0)],
            BLACK,
        )));
        let _ = root.draw(&Text::new(
            "■ suppress (×0)",
            (w as i32 - 260, 30),
            ("sans-serif", 13).into_font().color(&sup),
        ));
        let _ = root.draw(&Text::new(
            "■ amplify (×2)",
            (w as i32 - 140, 30),
            ("sans-serif", 13).into_font().color(&amp),
        ));
        let _ = root.present();
    }
    svg
}

/// Neurons per layer for two sets (knowledge, baseline).
pub fn layer_counts(layers: usize, a: &[usize], b: &[usize]) -> String {
    let (w, h) = (640u32, 260u32);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let count = |set: &[usize], l: usize| set.iter().filter(|&&x| x == l).count();
        let max = (0..layers)
            .map(|l| count(a, l).max(count(b, l)))
            .max()
            .unwrap_or(1)
            .max(1);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption("Neurons per layer", ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(0f64..layers as f64, 0usize..max + 1)
        else {
            return String::new();
        };
        let _ = chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("layer")
            .y_desc("neurons")
            .draw();
        let kn = RGBColor(178, 24, 43);
        let base = RGBColor(120, 120, 120);
        for l in 0..layers {
            let x = l as f64;
            let _ = chart.draw_series([
                Rectangle::new([(x + 0.1, 0), (x + 0.5, count(a, l))], kn.filled()),
                Rectangle::new([(x + 0.5, 0), (x + 0.9, count(b, l))], base.filled()),
            ]);
        }
        let _ = root.draw(&Text::new(
            "■ knowledge",
            (w as i32 - 220, 30),
            ("sans-serif", 13).into_font().color(&kn),
        ));
        let _ = root.draw(&Text::new(
            "■ baseline",
            (w as i32 - 110, 30),
            ("sans-serif", 13).into_font().color(&base),
        ));
        let _ = root.present();
    }
    svg
}
