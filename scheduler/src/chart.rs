//! Forecast charts as SVG (plotters): a series' history, the forecast's median and interval,
//! and the actuals that landed for the forecast window. The demo writes them to files; the
//! console draws them into its forecast pages.

use plotters::coord::Shift;
use plotters::prelude::*;

/// One series' chart; times are milliseconds since the epoch (UTC).
#[derive(Debug, Clone, Default)]
pub struct Panel {
    pub title: String,
    pub y_label: String,
    /// NaN where missing: a gap in the line.
    pub history: Vec<(i64, f64)>,
    pub median: Vec<(i64, f64)>,
    /// (time, low, high).
    pub band: Vec<(i64, f64, f64)>,
    /// The legend of the band (`80 % interval`).
    pub band_label: String,
    /// NaN where nothing landed: a gap in the line.
    pub actuals: Vec<(i64, f64)>,
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// The finite runs of a series, as separate lines: a gap in the data is a gap in the chart.
fn segments(points: &[(i64, f64)]) -> Vec<Vec<(i64, f64)>> {
    let mut out: Vec<Vec<(i64, f64)>> = vec![Vec::new()];
    for (x, y) in points {
        if y.is_finite() {
            out.last_mut().expect("never empty").push((*x, *y));
        } else if out.last().is_some_and(|s| !s.is_empty()) {
            out.push(Vec::new());
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Labels of the time axis: dates alone when the points are a day or more apart.
fn time_label(ms: i64, daily: bool) -> String {
    let Some(at) = chrono::DateTime::from_timestamp_millis(ms) else {
        return String::new();
    };
    if daily {
        at.format("%Y-%m-%d").to_string()
    } else {
        at.format("%m-%d %H:%M").to_string()
    }
}

/// Round times to label the axis at: about eight, a round step apart (hours, days, weeks, ...),
/// aligned to midnight UTC.
fn key_points(first: i64, last: i64) -> Vec<i64> {
    const HOUR: i64 = 3_600_000;
    const STEPS: [i64; 14] = [
        1, 2, 3, 6, 12, 24, 48, 72, 168, 336, 720, 2_160, 4_380, 8_760,
    ];
    let wanted = (last - first) / 8;
    let step = STEPS
        .iter()
        .map(|h| h * HOUR)
        .find(|s| *s >= wanted)
        .unwrap_or(8_760 * HOUR);
    let start = first.div_euclid(step) * step + if first.rem_euclid(step) == 0 { 0 } else { step };
    (0..)
        .map(|i| start + i * step)
        .take_while(|t| *t <= last)
        .collect()
}

/// Draws the panel into an area.
pub fn draw(area: &Area<'_>, panel: &Panel) -> DrawResult {
    let times = || {
        panel
            .history
            .iter()
            .map(|p| p.0)
            .chain(panel.median.iter().map(|p| p.0))
            .chain(panel.actuals.iter().map(|p| p.0))
    };
    let (Some(first), Some(last)) = (times().min(), times().max()) else {
        return Ok(());
    };
    let last = last.max(first + 1);
    let values = panel
        .history
        .iter()
        .chain(&panel.median)
        .chain(&panel.actuals)
        .map(|p| p.1)
        .chain(panel.band.iter().flat_map(|b| [b.1, b.2]))
        .filter(|v| v.is_finite());
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    let (low, high) = if low.is_finite() {
        let pad = ((high - low) * 0.08).max(1e-6);
        (
            if low >= 0.0 {
                0.0_f64.max(low - pad)
            } else {
                low - pad
            },
            high + pad,
        )
    } else {
        (0.0, 1.0)
    };
    let step = panel
        .median
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .next()
        .unwrap_or(3_600_000);
    let daily = step >= 86_400_000;
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(52)
        .build_cartesian_2d(
            (first..last).with_key_points(key_points(first, last)),
            low..high,
        )?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_label_formatter(&|ms| time_label(*ms, daily))
        .x_desc("UTC")
        .y_desc(panel.y_label.as_str())
        .draw()?;
    let fan = RGBColor(31, 119, 180);
    if !panel.band.is_empty() {
        let polygon: Vec<(i64, f64)> = panel
            .band
            .iter()
            .map(|b| (b.0, b.2))
            .chain(panel.band.iter().rev().map(|b| (b.0, b.1)))
            .collect();
        chart
            .draw_series(std::iter::once(Polygon::new(polygon, fan.mix(0.25))))?
            .label(panel.band_label.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 16, y + 4)], fan.mix(0.25)));
    }
    for (i, run) in segments(&panel.history).into_iter().enumerate() {
        let drawn = chart.draw_series(LineSeries::new(run, BLACK.stroke_width(1)))?;
        if i == 0 {
            drawn
                .label("history")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK));
        }
    }
    if !panel.median.is_empty() {
        chart
            .draw_series(LineSeries::new(
                panel.median.iter().copied(),
                fan.stroke_width(2),
            ))?
            .label("median forecast")
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], fan));
    }
    let landed = segments(&panel.actuals);
    for (i, run) in landed.iter().enumerate() {
        let points = run.iter().map(|p| Circle::new(*p, 2, RED.filled()));
        chart.draw_series(points)?;
        let drawn = chart.draw_series(LineSeries::new(run.clone(), RED.stroke_width(2)))?;
        if i == 0 {
            drawn
                .label("actuals landed since")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}

/// The panel as an SVG document of the given size.
pub fn svg(panel: &Panel, size: (u32, u32)) -> anyhow::Result<String> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root, panel)?;
        root.present()?;
    }
    Ok(text)
}

/// Panels stacked in one SVG file under a title.
pub fn write_panels(path: &std::path::Path, panels: &[Panel], title: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let height = 260 * panels.len().max(1) as u32 + 40;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    for (area, panel) in root
        .split_evenly((panels.len().max(1), 1))
        .iter()
        .zip(panels)
    {
        draw(area, panel)?;
    }
    root.present()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_panel_draws_history_band_median_and_actuals_with_gaps() {
        let panel = Panel {
            title: "d1".into(),
            y_label: "pm25".into(),
            history: (0..24)
                .map(|h| (h * HOUR, if h == 5 { f64::NAN } else { 10.0 + h as f64 }))
                .collect(),
            median: (24..36).map(|h| (h * HOUR, 30.0)).collect(),
            band: (24..36).map(|h| (h * HOUR, 25.0, 35.0)).collect(),
            band_label: "80 % interval".into(),
            actuals: (24..30).map(|h| (h * HOUR, 31.0)).collect(),
        };
        let svg = svg(&panel, (600, 300)).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        for legend in [
            "history",
            "median forecast",
            "80 % interval",
            "actuals landed since",
        ] {
            assert!(svg.contains(legend), "{legend} missing");
        }
        // The gap at hour 5 splits the history into two lines.
        assert_eq!(segments(&panel.history).len(), 2);
        assert!(
            svg.contains("01-01 00:00") || svg.contains("01-01"),
            "time labels: {svg}"
        );
    }

    #[test]
    fn the_time_axis_is_labelled_at_round_times() {
        // Three and a half days of hours: every twelve hours, from the first midnight or noon.
        let keys = key_points(HOUR * 5, HOUR * 89);
        assert_eq!(keys.first(), Some(&(HOUR * 12)));
        assert!(
            keys.windows(2).all(|w| w[1] - w[0] == 12 * HOUR),
            "{keys:?}"
        );
        assert_eq!(
            key_points(0, 6 * HOUR),
            (0..=6).map(|h| h * HOUR).collect::<Vec<_>>()
        );
    }

    #[test]
    fn daily_points_are_labelled_by_date() {
        assert_eq!(time_label(0, true), "1970-01-01");
        assert_eq!(time_label(HOUR, false), "01-01 01:00");
    }
}
