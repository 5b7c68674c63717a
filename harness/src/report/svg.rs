//! The latency and throughput plots as SVG (plotters), with fault periods shaded.
//!
//! Latency: every completed op is a point at (invoke time, latency) on a log scale, coloured by
//! function; `ok` filled, `fail` a cross, `info` hollow; p50/p95/p99 of ok ops per time bucket
//! as lines. Points that would land in the same 3×3-pixel cell with the same colour and mark are
//! drawn once (the marks are 4–6 px wide, so nothing visible is lost) (the file would otherwise grow by ~100 bytes per op with nothing more to see).
//! Throughput: ok completions per second per function, and all completions, per time bucket.

use super::page_data::{Outcome, PageData};
use plotters::prelude::*;
use std::collections::HashSet;

/// Colours by function index; `report.js` uses the same list.
pub const PALETTE: [(u8, u8, u8); 8] = [
    (31, 119, 180),
    (148, 103, 189),
    (23, 190, 207),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (44, 160, 44),
];

const WIDTH: u32 = 1000;
const HEIGHT: u32 = 340;

fn color(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

fn error_svg(what: &str, e: impl std::fmt::Display) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"40\"><text x=\"10\" y=\"25\">{what}: {}</text></svg>",
        e.to_string().replace('<', "&lt;").replace('&', "&amp;")
    )
}

/// The latency-over-time plot.
pub fn latency_svg(data: &PageData) -> String {
    let mut out = String::new();
    match draw_latency(data, &mut out) {
        Ok(()) => out,
        Err(e) => error_svg("latency plot failed", e),
    }
}

/// The throughput-over-time plot.
pub fn rate_svg(data: &PageData) -> String {
    let mut out = String::new();
    match draw_rate(data, &mut out) {
        Ok(()) => out,
        Err(e) => error_svg("throughput plot failed", e),
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn shade_faults<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, impl Ranged<ValueType = f64>>,
    >,
    data: &PageData,
    y0: f64,
    y1: f64,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let shade = RGBColor(255, 140, 0).mix(0.13).filled();
    chart.draw_series(data.faults.iter().map(|f| {
        // An instant event still gets a visible sliver.
        let x1 = secs(f.end).max(secs(f.start) + secs(data.end_time) / 800.0);
        Rectangle::new([(secs(f.start), y0), (x1, y1)], shade)
    }))?;
    Ok(())
}

fn draw_latency(data: &PageData, out: &mut String) -> DrawResult {
    let xmax = secs(data.end_time).max(1e-3);
    let lats: Vec<f64> = data
        .ops
        .iter()
        .filter_map(|o| o.latency())
        .map(|l| l as f64 / 1e6)
        .collect();
    let ymin = lats.iter().copied().fold(f64::INFINITY, f64::min).max(1e-3);
    let ymax = lats.iter().copied().fold(0.0, f64::max);
    let (ymin, ymax) = if lats.is_empty() {
        (0.01, 1000.0)
    } else {
        (ymin * 0.8, (ymax * 1.25).max(ymin * 10.0))
    };
    {
        let root = SVGBackend::with_string(out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Latency (each op at its invoke time; shaded: faults)",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax, (ymin..ymax).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("latency (ms)")
            .draw()?;
        shade_faults(&mut chart, data, ymin, ymax)?;
        let mut seen: HashSet<(usize, u8, u32, u32)> = HashSet::new();
        let log_span = (ymax / ymin).ln();
        for (fi, f) in data.fs.iter().enumerate() {
            let c = color(fi);
            let mut pts: Vec<(f64, f64, Outcome)> = Vec::new();
            for op in data.ops.iter().filter(|o| &o.f == f) {
                let Some(l) = op.latency() else { continue };
                let (x, y) = (secs(op.start), (l as f64 / 1e6).max(ymin));
                let px = (x / xmax * WIDTH as f64 / 3.0) as u32;
                let py = ((y / ymin).ln() / log_span * HEIGHT as f64 / 3.0) as u32;
                if seen.insert((fi, op.outcome.code(), px, py)) {
                    pts.push((x, y, op.outcome));
                }
            }
            chart
                .draw_series(
                    pts.iter()
                        .filter(|p| p.2 == Outcome::Ok)
                        .map(|&(x, y, _)| Circle::new((x, y), 2, c.filled())),
                )?
                .label(format!("{f} ok"))
                .legend(move |(x, y)| Circle::new((x, y), 3, c.filled()));
            chart.draw_series(
                pts.iter()
                    .filter(|p| p.2 == Outcome::Fail)
                    .map(|&(x, y, _)| Cross::new((x, y), 3, c.stroke_width(1))),
            )?;
            chart.draw_series(
                pts.iter()
                    .filter(|p| p.2 == Outcome::Info)
                    .map(|&(x, y, _)| Circle::new((x, y), 3, c.stroke_width(1))),
            )?;
        }
        let w = secs(data.rate_bucket_ns);
        for (name, pick, col) in [
            ("p50", 0usize, RGBColor(0, 0, 0)),
            ("p95", 1, RGBColor(214, 39, 40)),
            ("p99", 2, RGBColor(255, 127, 14)),
        ] {
            let line: Vec<(f64, f64)> = data
                .latency
                .iter()
                .filter(|b| b.count > 0)
                .map(|b| {
                    let v = [b.p50, b.p95, b.p99][pick] as f64 / 1e6;
                    (secs(b.start) + w / 2.0, v.max(ymin))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(line, col.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], col.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        root.present()?;
    }
    Ok(())
}

fn draw_rate(data: &PageData, out: &mut String) -> DrawResult {
    let xmax = secs(data.end_time).max(1e-3);
    let ymax = data.rate.iter().map(|b| b.all_per_s).fold(1.0, f64::max) * 1.15;
    {
        let root = SVGBackend::with_string(out, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Throughput (completions per second; shaded: faults)",
                ("sans-serif", 16),
            )
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("ops/s")
            .draw()?;
        shade_faults(&mut chart, data, 0.0, ymax)?;
        let w = secs(data.rate_bucket_ns);
        for (fi, f) in data.fs.iter().enumerate() {
            let c = color(fi);
            let line: Vec<(f64, f64)> = data
                .rate
                .iter()
                .map(|b| {
                    (
                        secs(b.start) + w / 2.0,
                        b.ok_per_s.get(f).copied().unwrap_or(0.0),
                    )
                })
                .collect();
            chart
                .draw_series(LineSeries::new(line, c.stroke_width(2)))?
                .label(format!("{f} ok"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
        }
        let all: Vec<(f64, f64)> = data
            .rate
            .iter()
            .map(|b| (secs(b.start) + w / 2.0, b.all_per_s))
            .collect();
        chart
            .draw_series(LineSeries::new(all, BLACK.stroke_width(1)))?
            .label("all completions")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK.stroke_width(1)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        root.present()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn small_page() -> PageData {
        let mut events =
            vec![json!({"time": 0, "process": "nemesis", "type": "info", "f": "start-partition"})];
        for i in 0..50u64 {
            let f = if i % 2 == 0 { "read" } else { "write" };
            events.push(
                json!({"time": i * 1_000_000 + 1, "process": i % 3, "type": "invoke", "f": f}),
            );
            events.push(
                json!({"time": i * 1_000_000 + 500_000, "process": i % 3, "type": "ok", "f": f}),
            );
        }
        events.push(json!({"time": 30_000_000u64, "process": "nemesis", "type": "info", "f": "stop-partition"}));
        PageData::from_events(&events, vec![])
    }

    #[test]
    fn latency_svg_draws_points_quantiles_and_fault_shading() {
        let svg = latency_svg(&small_page());
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        assert!(svg.matches("<circle").count() >= 50, "one point per op");
        assert!(svg.contains("p99"));
        assert!(
            svg.contains("fill-opacity=\"0.13") || svg.contains("opacity=\"0.13"),
            "fault shading"
        );
    }

    #[test]
    fn rate_svg_has_a_line_per_function() {
        let svg = rate_svg(&small_page());
        assert!(
            svg.contains("read ok") && svg.contains("write ok") && svg.contains("all completions")
        );
        assert!(svg.matches("<polyline").count() >= 3);
    }
}
