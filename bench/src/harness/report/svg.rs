//! Inline SVG charts drawn by hand: the report must be one self-contained
//! file that opens anywhere, so no plotting library or script is used.

use std::fmt::Write as _;

/// Escapes text for SVG and HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Distinct colours for up to a dozen series, then evenly spread hues.
pub fn color(i: usize) -> String {
    const P: [&str; 12] = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
        "#7f7f7f", "#bcbd22", "#393b79", "#ad494a",
    ];
    match P.get(i) {
        Some(c) => (*c).to_string(),
        None => format!("hsl({}, 60%, 45%)", (i * 47) % 360),
    }
}

/// A linear or logarithmic axis.
#[derive(Debug, Clone, Copy)]
pub enum Scale {
    Linear { min: f64, max: f64 },
    Log { min: f64, max: f64 },
}

impl Scale {
    /// Position of `v` in 0..=1 along the axis (clamped).
    pub fn frac(&self, v: f64) -> f64 {
        let f = match *self {
            Scale::Linear { min, max } => {
                if max > min {
                    (v - min) / (max - min)
                } else {
                    0.5
                }
            }
            Scale::Log { min, max } => {
                let (lo, hi) = (min.max(1e-12).log10(), max.max(1e-12).log10());
                if hi > lo {
                    (v.max(1e-12).log10() - lo) / (hi - lo)
                } else {
                    0.5
                }
            }
        };
        f.clamp(0.0, 1.0)
    }

    /// A log scale spanning whole decades around the data.
    pub fn log_around(lo: f64, hi: f64) -> Scale {
        let lo = lo.max(1e-6);
        let hi = hi.max(lo * 1.0001);
        Scale::Log {
            min: 10f64.powf(lo.log10().floor()),
            max: 10f64.powf(hi.log10().ceil()),
        }
    }

    /// A linear scale from zero to a round number above `hi`.
    pub fn linear_to(hi: f64) -> Scale {
        Scale::Linear {
            min: 0.0,
            max: nice_ceiling(hi.max(1e-9)),
        }
    }

    /// Tick values and labels made by `fmt`.
    pub fn ticks(&self, fmt: &dyn Fn(f64) -> String) -> Vec<(f64, String)> {
        match *self {
            Scale::Linear { min, max } => {
                let step = nice_step((max - min) / 5.0);
                let mut v = (min / step).ceil() * step;
                let mut out = Vec::new();
                while v <= max + step * 1e-6 && out.len() < 20 {
                    out.push((v, fmt(v)));
                    v += step;
                }
                out
            }
            Scale::Log { min, max } => {
                let mut out = Vec::new();
                let mut d = 10f64.powf(min.max(1e-12).log10().floor());
                let decades = (max / min).log10();
                while d <= max * 1.0001 && out.len() < 40 {
                    for m in [1.0, 2.0, 5.0] {
                        let v = d * m;
                        if v >= min * 0.9999 && v <= max * 1.0001 && (m == 1.0 || decades <= 3.0) {
                            out.push((v, fmt(v)));
                        }
                    }
                    d *= 10.0;
                }
                out
            }
        }
    }
}

fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1e-12);
    let p = 10f64.powf(raw.log10().floor());
    let m = raw / p;
    let n = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    n * p
}

fn nice_ceiling(v: f64) -> f64 {
    let step = nice_step(v / 5.0);
    (v / step).ceil() * step
}

/// A named line.
pub struct Series {
    pub name: String,
    pub color: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
}

/// Labels and axes of a line chart.
pub struct LineChart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x: Scale,
    pub y: Scale,
    pub x_ticks: Vec<(f64, String)>,
    pub y_ticks: Vec<(f64, String)>,
    /// A horizontal reference line (value, label), e.g. a latency budget.
    pub y_marker: Option<(f64, String)>,
    /// Draw the y = x diagonal (throughput against offered rate).
    pub diagonal: bool,
}

const W: f64 = 860.0;
const ML: f64 = 70.0;
const MR: f64 = 20.0;
const MT: f64 = 40.0;
const PH: f64 = 300.0;
const MB: f64 = 50.0;
const LEGEND_COLS: usize = 3;
const LEGEND_ROW: f64 = 18.0;

fn legend(out: &mut String, series: &[(String, String, bool)], top: f64) {
    let col_w = (W - ML - MR) / LEGEND_COLS as f64;
    for (i, (name, color, dashed)) in series.iter().enumerate() {
        let x = ML + (i % LEGEND_COLS) as f64 * col_w;
        let y = top + (i / LEGEND_COLS) as f64 * LEGEND_ROW;
        let dash = if *dashed {
            " stroke-dasharray=\"5 3\""
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{color}" stroke-width="3"{dash}/><text x="{:.1}" y="{:.1}" class="lg">{}</text>"#,
            x + 22.0,
            x + 28.0,
            y + 4.0,
            esc(name)
        );
    }
}

/// A line chart with a legend below it.
pub fn line_chart(c: &LineChart<'_>, series: &[Series]) -> String {
    let rows = series.len().div_ceil(LEGEND_COLS);
    let h = MT + PH + MB + rows as f64 * LEGEND_ROW + 10.0;
    let pw = W - ML - MR;
    let px = |v: f64| ML + c.x.frac(v) * pw;
    let py = |v: f64| MT + (1.0 - c.y.frac(v)) * PH;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h:.0}" width="100%" role="img" aria-label="{t}"><title>{t}</title><text x="{ML}" y="22" class="ti">{t}</text>"#,
        t = esc(c.title)
    );
    let _ = write!(
        o,
        r##"<rect x="{ML}" y="{MT}" width="{pw:.1}" height="{PH}" fill="#fff" stroke="#bbb"/>"##
    );
    for (v, label) in &c.y_ticks {
        let y = py(*v);
        let _ = write!(
            o,
            r##"<line x1="{ML}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#e6e6e6"/><text x="{:.1}" y="{:.1}" class="tk" text-anchor="end">{}</text>"##,
            ML + pw,
            ML - 6.0,
            y + 4.0,
            esc(label)
        );
    }
    for (v, label) in &c.x_ticks {
        let x = px(*v);
        let _ = write!(
            o,
            r##"<line x1="{x:.1}" y1="{MT}" x2="{x:.1}" y2="{:.1}" stroke="#e6e6e6"/><text x="{x:.1}" y="{:.1}" class="tk" text-anchor="middle">{}</text>"##,
            MT + PH,
            MT + PH + 16.0,
            esc(label)
        );
    }
    let _ = write!(
        o,
        r#"<text x="{:.1}" y="{:.1}" class="ax" text-anchor="middle">{}</text><text x="16" y="{:.1}" class="ax" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
        ML + pw / 2.0,
        MT + PH + 36.0,
        esc(c.x_label),
        MT + PH / 2.0,
        MT + PH / 2.0,
        esc(c.y_label)
    );
    if c.diagonal {
        // y = x across the visible range.
        let (lo, hi) = match c.x {
            Scale::Linear { min, max } | Scale::Log { min, max } => (min, max),
        };
        let pts: Vec<String> = (0..=50)
            .map(|i| {
                let v = lo + (hi - lo) * i as f64 / 50.0;
                format!("{:.1},{:.1}", px(v), py(v))
            })
            .collect();
        let _ = write!(
            o,
            r##"<polyline points="{}" fill="none" stroke="#999" stroke-dasharray="2 4"/>"##,
            pts.join(" ")
        );
    }
    if let Some((v, label)) = &c.y_marker {
        let y = py(*v);
        let _ = write!(
            o,
            r##"<line x1="{ML}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#c00" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" class="mk">{}</text>"##,
            ML + pw,
            ML + 6.0,
            y - 4.0,
            esc(label)
        );
    }
    for s in series {
        if s.points.is_empty() {
            continue;
        }
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let dash = if s.dashed {
            r#" stroke-dasharray="6 3""#
        } else {
            ""
        };
        let _ = write!(
            o,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}><title>{}</title></polyline>"#,
            pts.join(" "),
            s.color,
            esc(&s.name)
        );
        if s.points.len() <= 12 {
            for (x, y) in &s.points {
                let _ = write!(
                    o,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#,
                    px(*x),
                    py(*y),
                    s.color
                );
            }
        }
    }
    let items: Vec<(String, String, bool)> = series
        .iter()
        .map(|s| (s.name.clone(), s.color.clone(), s.dashed))
        .collect();
    legend(&mut o, &items, MT + PH + MB + 6.0);
    o.push_str("</svg>");
    o
}

/// One bar of a horizontal bar chart.
pub struct Bar {
    pub label: String,
    pub value: Option<f64>,
    pub color: String,
    /// Text after the bar (the value, formatted).
    pub note: String,
}

/// Horizontal bars, one row per mechanism, with an optional vertical
/// marker (a deadline).
pub fn bar_chart(
    title: &str,
    x_label: &str,
    x: Scale,
    ticks: &[(f64, String)],
    bars: &[Bar],
    marker: Option<(f64, String)>,
) -> String {
    // Room above the bars for the title and the marker's label.
    const BT: f64 = 62.0;
    const LABEL_W: f64 = 230.0;
    const ROW: f64 = 22.0;
    const NOTE_W: f64 = 150.0;
    let pl = LABEL_W + 10.0;
    let pw = W - pl - NOTE_W;
    let ph = bars.len() as f64 * ROW + 6.0;
    let h = BT + ph + 48.0;
    let px = |v: f64| pl + x.frac(v) * pw;
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h:.0}" width="100%" role="img" aria-label="{t}"><title>{t}</title><text x="10" y="22" class="ti">{t}</text>"#,
        t = esc(title)
    );
    for (v, label) in ticks {
        let xx = px(*v);
        let _ = write!(
            o,
            r##"<line x1="{xx:.1}" y1="{BT}" x2="{xx:.1}" y2="{:.1}" stroke="#e6e6e6"/><text x="{xx:.1}" y="{:.1}" class="tk" text-anchor="middle">{}</text>"##,
            BT + ph,
            BT + ph + 16.0,
            esc(label)
        );
    }
    let _ = write!(
        o,
        r#"<text x="{:.1}" y="{:.1}" class="ax" text-anchor="middle">{}</text>"#,
        pl + pw / 2.0,
        BT + ph + 36.0,
        esc(x_label)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = BT + 3.0 + i as f64 * ROW;
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{:.1}" class="lb" text-anchor="end">{}</text>"#,
            LABEL_W,
            y + ROW * 0.65,
            esc(&b.label)
        );
        let end = match b.value {
            Some(v) => {
                let w = (px(v) - pl).max(1.5);
                let _ = write!(
                    o,
                    r#"<rect x="{pl:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                    y + 3.0,
                    ROW - 6.0,
                    b.color,
                    esc(&b.label),
                    esc(&b.note)
                );
                pl + w
            }
            None => pl,
        };
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{:.1}" class="nt">{}</text>"#,
            end + 6.0,
            y + ROW * 0.65,
            esc(&b.note)
        );
    }
    if let Some((v, label)) = marker {
        let xx = px(v);
        let _ = write!(
            o,
            r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#c00" stroke-width="2" stroke-dasharray="6 4"/><text x="{xx:.1}" y="{:.1}" class="mk" text-anchor="middle">{}</text>"##,
            BT - 6.0,
            BT + ph,
            BT - 10.0,
            esc(&label)
        );
    }
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_map_and_tick() {
        let s = Scale::Log {
            min: 0.01,
            max: 100.0,
        };
        assert!((s.frac(1.0) - 0.5).abs() < 1e-9);
        assert_eq!(s.frac(1e9), 1.0);
        let t = s.ticks(&|v| format!("{v}"));
        assert_eq!(t.len(), 5, "{t:?}");
        let l = Scale::linear_to(4321.0);
        let Scale::Linear { max, .. } = l else {
            panic!("linear")
        };
        assert_eq!(max, 5000.0);
        assert_eq!(l.ticks(&|v| format!("{v}")).len(), 6);
        let a = Scale::log_around(0.03, 7.0);
        assert!(
            matches!(a, Scale::Log { min, max } if (min - 0.01).abs() < 1e-12 && (max - 10.0).abs() < 1e-9)
        );
    }

    #[test]
    fn charts_are_svg_and_escape_text() {
        let c = LineChart {
            title: "a <b> & c",
            x_label: "x",
            y_label: "y",
            x: Scale::linear_to(10.0),
            y: Scale::linear_to(10.0),
            x_ticks: vec![(0.0, "0".into())],
            y_ticks: vec![(0.0, "0".into())],
            y_marker: Some((5.0, "budget".into())),
            diagonal: true,
        };
        let s = line_chart(
            &c,
            &[Series {
                name: "m1".into(),
                color: color(0),
                points: vec![(1.0, 1.0), (2.0, 3.0)],
                dashed: false,
            }],
        );
        assert!(s.starts_with("<svg"));
        assert!(s.ends_with("</svg>"));
        assert!(s.contains("a &lt;b&gt; &amp; c"));
        assert!(s.contains("<polyline"));
        let b = bar_chart(
            "lag",
            "s",
            Scale::log_around(0.001, 900.0),
            &[],
            &[Bar {
                label: "k".into(),
                value: Some(0.05),
                color: color(13),
                note: "50 ms".into(),
            }],
            Some((1.0, "deadline".into())),
        );
        assert!(b.contains("<rect") && b.contains("deadline"));
    }
}
