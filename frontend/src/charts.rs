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
