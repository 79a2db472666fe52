//! Report charts drawn with plotters into SVG strings. They live here, behind
//! the `charts` feature, so that `kn experiment report` writes exactly the SVG
//! the web client's Experiments page shows and exports.

use crate::experiment::CHARTS;
use plotters::prelude::*;

/// Series colours, in order: knowledge (red), baseline (grey), random (blue), more.
const COLORS: [RGBColor; 5] = [
    RGBColor(178, 24, 43),
    RGBColor(120, 120, 120),
    RGBColor(33, 102, 172),
    RGBColor(230, 145, 56),
    RGBColor(77, 146, 33),
];

/// One series of a grouped bar chart; `None` values are not drawn.
pub struct Series<'a> {
    pub name: &'a str,
    pub values: Vec<Option<f64>>,
}

/// Vertical bars, one group per category and one bar per series in a group.
pub fn grouped_bars(title: &str, y_desc: &str, categories: &[String], series: &[Series]) -> String {
    let n = categories.len().max(1);
    let w = (120 + 34 * n * series.len().max(1)).clamp(640, 1400) as u32;
    let h = 340u32;
    let values = || {
        series
            .iter()
            .flat_map(|s| s.values.iter().flatten().copied())
    };
    let lo = values().fold(0.0, f64::min);
    let hi = values().fold(0.0, f64::max);
    let pad = ((hi - lo) * 0.12).max(1e-9);
    let (lo, hi) = (if lo < 0.0 { lo - pad } else { 0.0 }, hi + pad);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .margin_top(40)
            .x_label_area_size(if n > 8 { 50 } else { 30 })
            .y_label_area_size(64)
            // `a..b` has b − a + 1 segments in plotters: one per category
            // (a single category gets an empty second one).
            .build_cartesian_2d((0..(n - 1).max(1)).into_segmented(), lo..hi)
        else {
            return String::new();
        };
        let _ = chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc(y_desc)
            .x_labels(n)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => categories.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_style(("sans-serif", if n > 8 { 10 } else { 13 }))
            .draw();
        let k = series.len().max(1);
        // Bar positions inside a group, in pixels of the group's width.
        let px = |i: usize| chart.backend_coord(&(SegmentValue::Exact(i), 0.0)).0 as f64;
        let group_px = px(1) - px(0);
        let bar_px = (group_px * 0.8 / k as f64).max(1.0);
        for (s_i, s) in series.iter().enumerate() {
            let color = COLORS[s_i % COLORS.len()];
            for (c, v) in s.values.iter().enumerate() {
                let Some(v) = *v else { continue };
                let left = (group_px * 0.1 + bar_px * s_i as f64) as i32;
                let right = (group_px - group_px * 0.1 - bar_px * (s_i + 1) as f64) as i32;
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(c), 0.0),
                        (SegmentValue::Exact(c + 1), v),
                    ],
                    color.filled(),
                );
                bar.set_margin(0, 0, left.max(0) as u32, right.max(0) as u32);
                let _ = chart.draw_series(std::iter::once(bar));
            }
        }
        let _ = chart.draw_series(std::iter::once(PathElement::new(
            vec![
                (SegmentValue::Exact(0), 0.0),
                (SegmentValue::Exact(n.max(2)), 0.0),
            ],
            BLACK,
        )));
        let mut x = 80;
        for (s_i, s) in series.iter().enumerate() {
            let color = COLORS[s_i % COLORS.len()];
            let _ = root.draw(&Text::new(
                format!("■ {}", s.name),
                (x, 24),
                ("sans-serif", 13).into_font().color(&color),
            ));
            x += 30 + 8 * s.name.chars().count() as i32;
        }
        let _ = root.present();
    }
    svg
}

/// One chart of the experiment report, with its data as CSV.
pub struct ReportChart {
    /// File stem: `suppress` → `suppress.svg`, `suppress.csv`.
    pub name: &'static str,
    pub title: &'static str,
    pub svg: String,
    pub csv: String,
}

fn chart(
    name: &'static str,
    y_desc: &str,
    categories: Vec<String>,
    series: Vec<Series>,
) -> ReportChart {
    let mut csv = String::from("category");
    for s in &series {
        csv.push(',');
        csv.push_str(s.name);
    }
    csv.push('\n');
    for (i, c) in categories.iter().enumerate() {
        csv.push_str(c);
        for s in &series {
            csv.push(',');
            if let Some(v) = s.values.get(i).copied().flatten() {
                csv.push_str(&format!("{v}"));
            }
        }
        csv.push('\n');
    }
    let title = CHARTS.iter().find(|c| c.0 == name).map_or(name, |c| c.1);
    ReportChart {
        name,
        title,
        svg: grouped_bars(title, y_desc, &categories, &series),
        csv,
    }
}

/// The report's charts, in the order the report shows them.
pub fn report_charts(r: &crate::experiment::ExperimentReport) -> Vec<ReportChart> {
    let mut out = vec![
        effect_chart(r, "suppress", |x| &x.suppress),
        effect_chart(r, "amplify", |x| &x.amplify),
        layers_chart(r),
    ];
    out.extend(bingrel_chart(r));
    out.extend(update_charts(r));
    out.extend(erase_chart(r));
    out
}

/// Suppress or amplify per relation: knowledge, baseline and random neurons.
fn effect_chart(
    r: &crate::experiment::ExperimentReport,
    name: &'static str,
    pick: fn(&crate::experiment::RelationRow) -> &crate::experiment::Effects,
) -> ReportChart {
    let pct = |v: Option<f64>| v.map(|x| 100.0 * x);
    let rel_names: Vec<String> = r.relations.iter().map(|x| x.id.clone()).collect();
    chart(
        name,
        "change of P(answer) (%)",
        rel_names,
        vec![
            Series {
                name: "knowledge",
                values: r.relations.iter().map(|x| pct(pick(x).knowledge)).collect(),
            },
            Series {
                name: "baseline",
                values: r.relations.iter().map(|x| pct(pick(x).baseline)).collect(),
            },
            Series {
                name: "random",
                values: r.relations.iter().map(|x| pct(pick(x).random)).collect(),
            },
        ],
    )
}

/// Each layer's share of the knowledge and baseline neurons.
fn layers_chart(r: &crate::experiment::ExperimentReport) -> ReportChart {
    let share = |v: &[usize]| {
        let total = v.iter().sum::<usize>().max(1) as f64;
        v.iter()
            .map(|&c| Some(100.0 * c as f64 / total))
            .collect::<Vec<_>>()
    };
    chart(
        "layers",
        "share of neurons (%)",
        (0..r.layers).map(|l| l.to_string()).collect(),
        vec![
            Series {
                name: "knowledge",
                values: share(&r.knowledge.per_layer),
            },
            Series {
                name: "baseline",
                values: share(&r.baseline.per_layer),
            },
        ],
    )
}

fn bingrel_chart(r: &crate::experiment::ExperimentReport) -> Option<ReportChart> {
    let b = r.bingrel.as_ref()?;
    let g = |a: &crate::experiment::ActivationGroups| {
        vec![Some(a.expressing), Some(a.head_only), Some(a.other_prompts)]
    };
    Some(chart(
        "bingrel",
        "activation",
        vec![
            "knowledge-expressing".into(),
            "head only".into(),
            "other prompts".into(),
        ],
        vec![
            Series {
                name: "knowledge",
                values: g(&b.knowledge),
            },
            Series {
                name: "baseline",
                values: g(&b.baseline),
            },
        ],
    ))
}

/// The updates' rates, and their sweep over k.
fn update_charts(r: &crate::experiment::ExperimentReport) -> Vec<ReportChart> {
    let Some(u) = &r.update else {
        return Vec::new();
    };
    let rates = |m: &crate::experiment::UpdateMetrics| {
        vec![Some(100.0 * m.change_rate), Some(100.0 * m.success_rate)]
    };
    let sweep = |f: fn(&crate::experiment::KRates) -> f64| {
        u.k_sweep.iter().map(|k| Some(100.0 * f(k))).collect()
    };
    vec![
        chart(
            "update",
            "rate (%)",
            vec!["change rate".into(), "success rate".into()],
            vec![
                Series {
                    name: "knowledge",
                    values: rates(&u.knowledge),
                },
                Series {
                    name: "random",
                    values: rates(&u.random),
                },
            ],
        ),
        chart(
            "update_k",
            "rate (%)",
            u.k_sweep.iter().map(|k| format!("k = {}", k.k)).collect(),
            vec![
                Series {
                    name: "change",
                    values: sweep(|k| k.change_rate),
                },
                Series {
                    name: "success",
                    values: sweep(|k| k.success_rate),
                },
            ],
        ),
    ]
}

/// Each erasure's perplexity ratio on its relation and on the others.
fn erase_chart(r: &crate::experiment::ExperimentReport) -> Option<ReportChart> {
    if r.erase.is_empty() {
        return None;
    }
    let ratio = |p: &crate::experiment::PplAcc| {
        (p.prompts > 0 && p.ppl_before > 0.0).then(|| p.ppl_after / p.ppl_before)
    };
    Some(chart(
        "erase",
        "perplexity ratio",
        r.erase.iter().map(|e| e.relation.clone()).collect(),
        vec![
            Series {
                name: "erased relation",
                values: r.erase.iter().map(|e| ratio(&e.intra)).collect(),
            },
            Series {
                name: "other relations",
                values: r.erase.iter().map(|e| ratio(&e.inter)).collect(),
            },
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_drawn_per_value() {
        let svg = grouped_bars(
            "t",
            "y",
            &["a".into(), "b".into()],
            &[
                Series {
                    name: "knowledge",
                    values: vec![Some(-0.3), Some(0.2)],
                },
                Series {
                    name: "baseline",
                    values: vec![None, Some(0.1)],
                },
            ],
        );
        assert!(svg.starts_with("<svg"));
        // 3 bars + the background rectangle (plotters draws both as <rect>).
        assert_eq!(svg.matches("<rect").count(), 4, "{svg}");
        assert!(svg.contains("knowledge") && svg.contains("baseline"));
    }
}
