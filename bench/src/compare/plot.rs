//! SVG plots of a comparison (plotters, SVG backend only: no font or bitmap libraries).
//!
//! The latency plot puts percentiles on a log axis of `1 / (1 - p)`, the usual way to show a
//! latency distribution's tail: 50 %, 90 %, 99 %, 99.9 % … are evenly spaced.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use super::ScenarioResult;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The x position of percentile `p` (0–100): `log10(1 / (1 - p/100))`, capped at 99.999.
fn x_of(p: f64) -> f64 {
    let p = p.min(99.999) / 100.0;
    (1.0 / (1.0 - p)).log10()
}

/// Latency (ms) by percentile, one line per target.
pub fn latency(path: &Path, result: &ScenarioResult) -> Result<()> {
    let series: Vec<(&str, Vec<(f64, f64)>)> = result
        .targets
        .iter()
        .filter(|t| !t.percentiles.is_empty())
        .map(|t| {
            let points = t
                .percentiles
                .iter()
                .filter(|(p, _)| *p < 100.0)
                .map(|&(p, us)| (x_of(p), us as f64 / 1000.0))
                .collect();
            (t.name.as_str(), points)
        })
        .collect();
    let y_max = series
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .fold(0.0f64, f64::max)
        .max(0.01)
        * 1.1;
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: latency by percentile", result.scenario.name),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..x_of(99.999), 0f64..y_max)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(6)
        .x_label_formatter(&|x| percent_label(100.0 * (1.0 - 10f64.powf(-x))))
        .draw()
        .map_err(plot_error)?;
    for (i, (name, points)) in series.into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(plot_error)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Mean req/s per target, with the lowest and highest round as a whisker.
pub fn throughput(path: &Path, result: &ScenarioResult) -> Result<()> {
    let bars: Vec<(&str, f64, f64, f64)> = result
        .targets
        .iter()
        .filter(|t| t.failure.is_none())
        .map(|t| {
            let rounds = t.round_results.iter().map(|r| r.summary.rps);
            let lo = rounds.clone().fold(f64::INFINITY, f64::min);
            let hi = rounds.fold(0.0f64, f64::max);
            (
                t.name.as_str(),
                t.rps,
                if lo.is_finite() { lo } else { t.rps },
                hi.max(t.rps),
            )
        })
        .collect();
    let y_max = bars.iter().map(|b| b.3).fold(1.0f64, f64::max) * 1.15;
    let n = bars.len().max(1);
    let root = SVGBackend::new(path, (700, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: throughput", result.scenario.name),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n as f64, 0f64..y_max)
        .map_err(plot_error)?;
    let names: Vec<String> = bars.iter().map(|b| b.0.to_string()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.01 {
                names.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("requests per second")
        .draw()
        .map_err(plot_error)?;
    for (i, &(_, mean, lo, hi)) in bars.iter().enumerate() {
        let x = i as f64;
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series([Rectangle::new(
                [(x + 0.15, 0.0), (x + 0.85, mean)],
                color.filled(),
            )])
            .map_err(plot_error)?;
        chart
            .draw_series([PathElement::new(
                vec![(x + 0.5, lo), (x + 0.5, hi)],
                BLACK.stroke_width(2),
            )])
            .map_err(plot_error)?;
        chart
            .draw_series([Text::new(
                format!("{mean:.0}"),
                (x + 0.18, mean + y_max * 0.03),
                ("sans-serif", 14),
            )])
            .map_err(plot_error)?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

/// `99.900` as `99.9%`, `90.0` as `90%`.
fn percent_label(p: f64) -> String {
    let text = format!("{p:.3}");
    format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot failed: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::{percent_label, x_of};

    #[test]
    fn axis_labels_read_as_percentiles() {
        assert_eq!(percent_label(99.9), "99.9%");
        assert_eq!(percent_label(90.0), "90%");
        assert_eq!(percent_label(99.99), "99.99%");
    }

    #[test]
    fn nines_are_evenly_spaced() {
        assert!((x_of(90.0) - 1.0).abs() < 1e-9);
        assert!((x_of(99.0) - 2.0).abs() < 1e-9);
        assert!((x_of(99.9) - 3.0).abs() < 1e-6);
        assert!(x_of(100.0).is_finite());
    }
}
