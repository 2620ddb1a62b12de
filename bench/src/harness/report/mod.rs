//! `report.md` and `report.html` from a [`Report`]: the same tables, and in
//! HTML the charts. Both open with the computed recommendation.

pub mod svg;

use std::fmt::Write as _;

use super::results::{MechanismResult, PhaseKind, Report, Status};
use super::units::{lag, mib, ms, rate, thousands};
use svg::{esc, Bar, LineChart, Scale, Series};

fn opt_ms(v: Option<f64>) -> String {
    v.map(ms).unwrap_or_else(|| "–".into())
}

fn opt_lag(v: Option<f64>) -> String {
    v.map(lag).unwrap_or_else(|| "–".into())
}

fn status_word(m: &MechanismResult) -> String {
    match &m.status {
        Status::Measured => "measured".into(),
        Status::Skipped(_) => "skipped".into(),
        Status::Failed(_) => "failed".into(),
    }
}

/// A table as rows of cells; rendered as Markdown or HTML.
struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str]) -> Self {
        Table {
            head: head.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn markdown(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|").replace('\n', " ");
        let mut o = format!(
            "| {} |\n|{}\n",
            self.head
                .iter()
                .map(|h| cell(h))
                .collect::<Vec<_>>()
                .join(" | "),
            "---|".repeat(self.head.len())
        );
        for r in &self.rows {
            let _ = writeln!(
                o,
                "| {} |",
                r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
            );
        }
        o
    }

    fn html(&self) -> String {
        let mut o = String::from("<table><thead><tr>");
        for h in &self.head {
            let _ = write!(o, "<th>{}</th>", esc(h));
        }
        o.push_str("</tr></thead><tbody>");
        for r in &self.rows {
            o.push_str("<tr>");
            for c in r {
                let _ = write!(o, "<td>{}</td>", esc(c));
            }
            o.push_str("</tr>");
        }
        o.push_str("</tbody></table>");
        o
    }
}

fn environment_line(r: &Report) -> String {
    let e = &r.environment;
    format!(
        "Measured {} on {} ({} cores, {:.1} GiB), Linux {}, load average {:.2} at start. Server: `{}` ({}){}. Load generator: {} thread(s) on the same machine, over loopback. Run time {:.0} s{}.",
        e.date,
        e.cpu_model,
        e.cores,
        e.memory_bytes as f64 / (1u64 << 30) as f64,
        e.kernel,
        e.load_average,
        e.portcullis,
        if e.portcullis_version.is_empty() { "version unknown" } else { &e.portcullis_version },
        e.git_commit.as_ref().map(|c| format!(", harness at git {c}")).unwrap_or_default(),
        e.client_threads,
        r.run_seconds,
        if r.workload.quick { ", QUICK mode" } else { "" }
    )
}

fn needs_table(r: &Report) -> Table {
    let w = &r.workload;
    let mut t = Table::new(&["need", "value"]);
    t.row(vec![
        "revocation deadline (every instance denies within)".into(),
        w.needs.revocation_deadline.to_string(),
    ]);
    t.row(vec![
        "latency budget (p99 at the expected rate)".into(),
        ms(w.needs.latency_p99.get().as_secs_f64() * 1e3),
    ]);
    t.row(vec![
        "expected rate (one instance)".into(),
        rate(w.needs.expected_rate as f64),
    ]);
    t
}

fn workload_table(r: &Report) -> Table {
    let w = &r.workload;
    let mut t = Table::new(&["setting", "value"]);
    t.row(vec![
        "endpoint".into(),
        match w.endpoint {
            super::workload::Endpoint::Decide => "POST /v1/decide".into(),
            super::workload::Endpoint::ForwardAuth => "GET /v1/forward-auth".into(),
        },
    ]);
    t.row(vec![
        "population".into(),
        format!(
            "{} API keys per store, {} JWTs living {}",
            thousands(w.population.keys as u64),
            thousands(w.population.tokens as u64),
            w.population.token_ttl
        ),
    ]);
    t.row(vec![
        "request mix".into(),
        format!(
            "{:.0}% valid, {:.0}% invalid, {:.0}% missing",
            w.mix.valid * 100.0,
            w.mix.invalid * 100.0,
            w.mix.missing * 100.0
        ),
    ]);
    t.row(vec![
        "open loop".into(),
        format!(
            "{} for {} each, {} connections, after {} warm-up",
            w.rates
                .iter()
                .map(|r| rate(*r as f64))
                .collect::<Vec<_>>()
                .join(", "),
            w.phase_duration,
            w.open_connections,
            w.warmup
        ),
    ]);
    t.row(vec![
        "closed loop".into(),
        format!(
            "{} connections for {}",
            w.closed_connections, w.closed_duration
        ),
    ]);
    t.row(vec![
        "revocations".into(),
        format!(
            "{} per API-key mechanism, under background load, timeout {}",
            w.revocations, w.revocation_timeout
        ),
    ]);
    t
}

fn verdict_table(r: &Report) -> Table {
    let mut t = Table::new(&[
        "mechanism",
        "meets needs",
        "CPU / 1k decisions",
        "p99 @ expected",
        "max throughput",
        "revocation (worst)",
    ]);
    for v in &r.recommendation.verdicts {
        let meets = if !v.measured {
            "not measured".to_string()
        } else if v.qualifies {
            "yes".into()
        } else {
            let mut m = Vec::new();
            if !v.correct {
                m.push("wrong answers");
            }
            if !v.meets_revocation {
                m.push("revocation");
            }
            if !v.meets_latency {
                m.push("latency");
            }
            if !v.meets_rate {
                m.push("rate");
            }
            format!("no: {}", m.join(", "))
        };
        let pick = if r.recommendation.pick.as_deref() == Some(v.id.as_str()) {
            " (pick)"
        } else {
            ""
        };
        t.row(vec![
            format!("{}{pick}", v.label),
            meets,
            opt_ms(v.cpu_ms_per_1k),
            opt_ms(v.p99_ms),
            v.max_throughput.map(rate).unwrap_or_else(|| "–".into()),
            opt_lag(v.revocation_s),
        ]);
    }
    t
}

fn open_table(r: &Report) -> Table {
    let mut t = Table::new(&[
        "mechanism",
        "offered",
        "answered",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "CPU/1k",
        "machine busy",
        "errors",
        "wrong",
        "unsent",
    ]);
    for m in r.mechanisms.iter().filter(|m| m.measured()) {
        for p in m.phases.iter().filter(|p| p.kind == PhaseKind::Open) {
            t.row(vec![
                m.label.clone(),
                p.offered_rate.map(rate).unwrap_or_default(),
                rate(p.throughput),
                ms(p.latency_ms.p50),
                ms(p.latency_ms.p90),
                ms(p.latency_ms.p99),
                ms(p.latency_ms.p999),
                ms(p.latency_ms.max),
                opt_ms(p.cpu_ms_per_1k),
                format!("{:.0}%", p.machine_busy * 100.0),
                thousands(p.errors),
                thousands(p.wrong.iter().sum()),
                thousands(p.unsent),
            ]);
        }
    }
    t
}

fn closed_table(r: &Report) -> Table {
    let mut t = Table::new(&[
        "mechanism",
        "connections",
        "throughput",
        "p50",
        "p99",
        "p99.9",
        "CPU/1k",
        "client CPU",
        "machine busy",
        "errors",
        "wrong",
    ]);
    for m in r.mechanisms.iter().filter(|m| m.measured()) {
        if let Some(p) = m.closed() {
            t.row(vec![
                m.label.clone(),
                p.connections.to_string(),
                rate(p.throughput),
                ms(p.latency_ms.p50),
                ms(p.latency_ms.p99),
                ms(p.latency_ms.p999),
                opt_ms(p.cpu_ms_per_1k),
                format!("{:.2} s", p.client_cpu_s),
                format!("{:.0}%", p.machine_busy * 100.0),
                thousands(p.errors),
                thousands(p.wrong.iter().sum()),
            ]);
        }
    }
    t
}

fn revocation_table(r: &Report) -> Table {
    let mut t = Table::new(&[
        "mechanism",
        "instances",
        "how",
        "revocations",
        "median",
        "worst",
        "timed out",
        "new key visible (worst)",
        "failures",
    ]);
    for m in r.mechanisms.iter().filter(|m| m.measured()) {
        let Some(rv) = &m.revocation else { continue };
        let visible = rv
            .samples
            .iter()
            .filter_map(|s| s.visible_s)
            .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))));
        t.row(vec![
            m.label.clone(),
            m.instances.to_string(),
            if rv.method == "expiry" {
                "by expiry (exp + leeway)".into()
            } else {
                "measured: revoke call returned → every instance denies".into()
            },
            if rv.method == "expiry" {
                "–".into()
            } else {
                rv.samples.len().to_string()
            },
            opt_lag(rv.p50_s),
            opt_lag(rv.worst_s),
            rv.timed_out.to_string(),
            opt_lag(visible),
            rv.failures.join("; "),
        ]);
    }
    t
}

fn resources_table(r: &Report) -> Table {
    let mut t = Table::new(&[
        "mechanism",
        "status",
        "instances",
        "store options",
        "startup",
        "peak RSS",
    ]);
    for m in &r.mechanisms {
        t.row(vec![
            m.label.clone(),
            match &m.status {
                Status::Measured => "measured".into(),
                Status::Skipped(w) | Status::Failed(w) => {
                    format!("{}: {}", status_word(m), w.lines().next().unwrap_or(""))
                }
            },
            m.instances.to_string(),
            if m.store_options.is_empty() {
                "–".into()
            } else {
                m.store_options.clone()
            },
            m.startup_s
                .map(|s| format!("{s:.2} s"))
                .unwrap_or_else(|| "–".into()),
            m.peak_rss_bytes.map(mib).unwrap_or_else(|| "–".into()),
        ]);
    }
    t
}

/// The Markdown report.
pub fn markdown(r: &Report) -> String {
    let w = &r.workload;
    let mut o = format!("# Portcullis benchmark: {}\n\n", w.name);
    if !w.description.is_empty() {
        let _ = writeln!(o, "{}\n", w.description);
    }
    let _ = writeln!(o, "{}\n", environment_line(r));
    o.push_str("## Recommendation\n\n");
    let _ = writeln!(o, "**{}**\n", r.recommendation.summary);
    for v in &r.recommendation.verdicts {
        let _ = writeln!(o, "- {}", v.sentence);
    }
    o.push('\n');
    o.push_str(&verdict_table(r).markdown());
    o.push_str("\nCPU is the server process's user + system time per 1,000 answered decisions at the expected rate; p99 is measured from each request's intended send time (open loop).\n\n");
    o.push_str("## Stated needs\n\n");
    o.push_str(&needs_table(r).markdown());
    o.push_str("\n## Workload\n\n");
    o.push_str(&workload_table(r).markdown());
    o.push_str("\n## Latency at each offered rate (open loop)\n\n");
    o.push_str(&open_table(r).markdown());
    o.push_str("\n## Maximum throughput (closed loop)\n\n");
    o.push_str(&closed_table(r).markdown());
    o.push_str("\n## Revocation\n\n");
    o.push_str(&revocation_table(r).markdown());
    o.push_str("\n## Processes\n\n");
    o.push_str(&resources_table(r).markdown());
    if !r.notes.is_empty() {
        o.push_str("\n## Notes\n\n");
        for n in &r.notes {
            let _ = writeln!(o, "- {n}");
        }
    }
    o.push_str("\nCharts: `report.html`. Raw data: `report.json`. How to read this: `docs/benchmarking.md`.\n");
    o
}

fn measured(r: &Report) -> Vec<(usize, &MechanismResult)> {
    r.mechanisms
        .iter()
        .enumerate()
        .filter(|(_, m)| m.measured())
        .collect()
}

/// Percentile axis: x = -log10(1 - q), so 90%, 99%, 99.9% are evenly spaced.
fn q_axis(q: f64) -> f64 {
    if q >= 1.0 {
        4.3
    } else {
        -(1.0 - q).log10()
    }
}

fn latency_chart(
    r: &Report,
    title: &str,
    pick: &dyn Fn(&MechanismResult) -> Option<&super::results::PhaseResult>,
) -> String {
    let mut series = Vec::new();
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for (i, m) in measured(r) {
        let Some(p) = pick(m) else { continue };
        let pts: Vec<(f64, f64)> = p
            .curve
            .iter()
            .map(|[q, v]| (q_axis(*q), v.max(0.001)))
            .collect();
        for (_, v) in &pts {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
        series.push(Series {
            name: m.label.clone(),
            color: svg::color(i),
            points: pts,
            dashed: m.mechanism.is_jwt(),
        });
    }
    if series.is_empty() {
        return String::new();
    }
    let budget = r.workload.needs.latency_p99.get().as_secs_f64() * 1e3;
    let y = Scale::log_around(lo.min(budget), hi.max(budget));
    let labels = [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (4.3, "max"),
    ];
    line_chart_html(
        &LineChart {
            title,
            x_label: "percentile",
            y_label: "latency (ms, log)",
            x: Scale::Linear { min: 0.0, max: 4.3 },
            y,
            x_ticks: labels.iter().map(|(v, l)| (*v, l.to_string())).collect(),
            y_ticks: y.ticks(&|v| trim_num(v)),
            y_marker: Some((budget, format!("p99 budget {}", ms(budget)))),
            diagonal: false,
        },
        &series,
    )
}

fn line_chart_html(c: &LineChart<'_>, series: &[Series]) -> String {
    format!("<figure>{}</figure>", svg::line_chart(c, series))
}

/// `0.05`, `2`, `1000` without trailing zeros.
fn trim_num(v: f64) -> String {
    if v >= 1000.0 {
        thousands(v.round() as u64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Axis labels for durations: `10 ms`, `2 s`, `15 min`.
fn short_lag(s: f64) -> String {
    if s < 1.0 {
        format!("{} ms", trim_num(s * 1e3))
    } else if s < 120.0 {
        format!("{} s", trim_num(s))
    } else if s < 7200.0 {
        format!("{} min", trim_num((s / 60.0).round()))
    } else {
        format!("{} h", trim_num((s / 3600.0).round()))
    }
}

fn throughput_chart(r: &Report) -> String {
    let mut series = Vec::new();
    let mut hi = 0.0f64;
    for (i, m) in measured(r) {
        let pts: Vec<(f64, f64)> = m
            .phases
            .iter()
            .filter(|p| p.kind == PhaseKind::Open)
            .filter_map(|p| Some((p.offered_rate?, p.throughput)))
            .collect();
        for (x, y) in &pts {
            hi = hi.max(*x).max(*y);
        }
        series.push(Series {
            name: m.label.clone(),
            color: svg::color(i),
            points: pts,
            dashed: m.mechanism.is_jwt(),
        });
    }
    if series.is_empty() || hi <= 0.0 {
        return String::new();
    }
    let s = Scale::linear_to(hi * 1.05);
    line_chart_html(
        &LineChart {
            title: "Throughput against offered rate (open loop; dotted: answered = offered)",
            x_label: "offered rate (decisions/s)",
            y_label: "answered (decisions/s)",
            x: s,
            y: s,
            x_ticks: s.ticks(&|v| trim_num(v)),
            y_ticks: s.ticks(&|v| trim_num(v)),
            y_marker: None,
            diagonal: true,
        },
        &series,
    )
}

fn p99_chart(r: &Report) -> String {
    let mut series = Vec::new();
    let (mut lo, mut hi, mut xmax) = (f64::INFINITY, 0.0f64, 0.0f64);
    for (i, m) in measured(r) {
        let pts: Vec<(f64, f64)> = m
            .phases
            .iter()
            .filter(|p| p.kind == PhaseKind::Open)
            .filter_map(|p| Some((p.offered_rate?, p.latency_ms.p99.max(0.001))))
            .collect();
        for (x, y) in &pts {
            lo = lo.min(*y);
            hi = hi.max(*y);
            xmax = xmax.max(*x);
        }
        series.push(Series {
            name: m.label.clone(),
            color: svg::color(i),
            points: pts,
            dashed: m.mechanism.is_jwt(),
        });
    }
    if series.is_empty() || xmax <= 0.0 {
        return String::new();
    }
    let budget = r.workload.needs.latency_p99.get().as_secs_f64() * 1e3;
    let x = Scale::linear_to(xmax * 1.05);
    let y = Scale::log_around(lo.min(budget), hi.max(budget));
    line_chart_html(
        &LineChart {
            title: "p99 latency against offered rate",
            x_label: "offered rate (decisions/s)",
            y_label: "p99 (ms, log)",
            x,
            y,
            x_ticks: x.ticks(&|v| trim_num(v)),
            y_ticks: y.ticks(&|v| trim_num(v)),
            y_marker: Some((budget, format!("budget {}", ms(budget)))),
            diagonal: false,
        },
        &series,
    )
}

fn revocation_chart(r: &Report) -> String {
    let deadline = r.workload.needs.revocation_deadline.get().as_secs_f64();
    let mut bars = Vec::new();
    let (mut lo, mut hi) = (deadline, deadline);
    for (i, m) in measured(r) {
        let Some(rv) = &m.revocation else { continue };
        if let Some(v) = rv.worst_s {
            lo = lo.min(v.max(1e-4));
            hi = hi.max(v);
        }
        let note = match (rv.worst_s, rv.method.as_str()) {
            (Some(v), "expiry") => format!("{} (until exp)", lag(v)),
            (Some(v), _) if rv.timed_out > 0 => format!("> {}", lag(v)),
            (Some(v), _) => lag(v),
            (None, _) => "not measured".into(),
        };
        bars.push(Bar {
            label: m.label.clone(),
            value: rv.worst_s.map(|v| v.max(1e-4)),
            color: svg::color(i),
            note,
        });
    }
    if bars.is_empty() {
        return String::new();
    }
    let x = Scale::log_around(lo, hi);
    // Ticks at durations people think in, not at 2x and 5x of seconds.
    let (lo_s, hi_s) = match x {
        Scale::Log { min, max } | Scale::Linear { min, max } => (min, max),
    };
    let ticks: Vec<(f64, String)> = [
        1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 60.0, 600.0, 3600.0, 36_000.0, 86_400.0,
    ]
    .into_iter()
    .filter(|v| *v >= lo_s * 0.999 && *v <= hi_s * 1.001)
    .map(|v| (v, short_lag(v)))
    .collect();
    format!(
        "<figure>{}</figure>",
        svg::bar_chart(
            "Revocation lag, worst case per mechanism (log scale)",
            "time until every instance denies a revoked credential",
            x,
            &ticks,
            &bars,
            Some((deadline, format!("deadline {}", lag(deadline)))),
        )
    )
}

fn cpu_chart(r: &Report) -> String {
    let expected = r.workload.needs.expected_rate;
    let mut bars = Vec::new();
    let mut hi = 0.0f64;
    for (i, m) in measured(r) {
        let v = m.open_at(expected).and_then(|p| p.cpu_ms_per_1k);
        if let Some(v) = v {
            hi = hi.max(v);
        }
        bars.push(Bar {
            label: m.label.clone(),
            value: v,
            color: svg::color(i),
            note: v.map(ms).unwrap_or_else(|| "–".into()),
        });
    }
    if bars.is_empty() || hi <= 0.0 {
        return String::new();
    }
    let x = Scale::linear_to(hi * 1.1);
    let ticks = x.ticks(&|v| trim_num(v));
    format!(
        "<figure>{}</figure>",
        svg::bar_chart(
            &format!(
                "Server CPU per 1,000 decisions at {} (ms)",
                rate(expected as f64)
            ),
            "CPU milliseconds (user + system) per 1,000 answered decisions",
            x,
            &ticks,
            &bars,
            None,
        )
    )
}

const CSS: &str = r#"
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#222;line-height:1.45;padding:0 16px}
h1{font-size:26px;margin-bottom:4px}h2{font-size:20px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.env{color:#555;font-size:13px}
.pick{background:#eef7ee;border-left:5px solid #2a8a2a;padding:10px 14px;font-size:16px}
.none{background:#fdf1e7;border-left:5px solid #c96;padding:10px 14px;font-size:16px}
ul.verdicts li{margin:3px 0}
table{border-collapse:collapse;font-size:12.5px;margin:8px 0 4px;width:100%}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}tr:nth-child(even) td{background:#fafafa}
figure{margin:18px 0;border:1px solid #eee;padding:6px}
svg text{font-family:inherit}
.ti{font-size:15px;font-weight:600}.tk{font-size:11px;fill:#555}.ax{font-size:12px;fill:#333}
.lg{font-size:11.5px;fill:#222}.lb{font-size:12px;fill:#222}.nt{font-size:11.5px;fill:#333}.mk{font-size:11.5px;fill:#c00}
.note{color:#555;font-size:13px}
"#;

/// The self-contained HTML report.
pub fn html(r: &Report) -> String {
    let w = &r.workload;
    let expected = w.needs.expected_rate;
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Portcullis benchmark: {n}</title><style>{CSS}</style></head><body><h1>Portcullis benchmark: {n}</h1>",
        n = esc(&w.name)
    );
    if !w.description.is_empty() {
        let _ = write!(o, "<p>{}</p>", esc(&w.description));
    }
    let _ = write!(o, "<p class=\"env\">{}</p>", esc(&environment_line(r)));
    o.push_str("<h2 id=\"recommendation\">Recommendation</h2>");
    let _ = write!(
        o,
        "<p class=\"{}\"><strong>{}</strong></p><ul class=\"verdicts\">",
        if r.recommendation.pick.is_some() {
            "pick"
        } else {
            "none"
        },
        esc(&r.recommendation.summary)
    );
    for v in &r.recommendation.verdicts {
        let _ = write!(o, "<li>{}</li>", esc(&v.sentence));
    }
    o.push_str("</ul>");
    o.push_str(&verdict_table(r).html());
    o.push_str("<p class=\"note\">CPU is the server process's user + system time per 1,000 answered decisions at the expected rate; p99 is measured from each request's intended send time (open loop, no coordinated omission). Dashed lines are JWT mechanisms.</p>");
    o.push_str("<h2>Charts</h2>");
    o.push_str(&latency_chart(
        r,
        &format!(
            "Latency by percentile at the expected rate ({})",
            rate(expected as f64)
        ),
        &|m| m.open_at(expected),
    ));
    o.push_str(&throughput_chart(r));
    o.push_str(&p99_chart(r));
    o.push_str(&revocation_chart(r));
    o.push_str(&cpu_chart(r));
    o.push_str(&latency_chart(
        r,
        &format!(
            "Latency by percentile at maximum throughput (closed loop, {} connections)",
            w.closed_connections
        ),
        &|m| m.closed(),
    ));
    o.push_str("<h2>Stated needs</h2>");
    o.push_str(&needs_table(r).html());
    o.push_str("<h2>Workload</h2>");
    o.push_str(&workload_table(r).html());
    o.push_str("<h2>Latency at each offered rate (open loop)</h2>");
    o.push_str(&open_table(r).html());
    o.push_str("<h2>Maximum throughput (closed loop)</h2>");
    o.push_str(&closed_table(r).html());
    o.push_str("<h2>Revocation</h2>");
    o.push_str(&revocation_table(r).html());
    o.push_str("<h2>Processes</h2>");
    o.push_str(&resources_table(r).html());
    if !r.notes.is_empty() {
        o.push_str("<h2>Notes</h2><ul>");
        for n in &r.notes {
            let _ = write!(o, "<li>{}</li>", esc(n));
        }
        o.push_str("</ul>");
    }
    o.push_str("<p class=\"note\">Raw data: report.json. How to read this report: docs/benchmarking.md.</p></body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::procfs::Environment;
    use crate::harness::recommend::recommend;
    use crate::harness::results::{Percentiles, PhaseResult, RevocationResult};
    use crate::harness::revoke::Revocation;
    use crate::harness::workload::Workload;

    const W: &str = r#"
name: synthetic
description: A synthetic run, to check the renderers.
needs: {revocation_deadline: 5s, latency_p99: 5ms, expected_rate: 2000}
mechanisms:
  - api_key: {backends: [sqlite, postgres], modes: [replica, lookup+cache]}
  - jwt: {algorithms: [ES256, RS256], cache: true}
population: {keys: 10000, tokens: 1000, token_ttl: 15m}
mix: {valid: 0.7, invalid: 0.2, missing: 0.1}
open_loop: {rates: [1000, 2000, 5000], duration: 8s}
closed_loop: {connections: 32, duration: 8s}
"#;

    fn phase(kind: PhaseKind, rate: Option<f64>, tput: f64, base: f64, cpu: f64) -> PhaseResult {
        let curve = crate::harness::results::curve_quantiles()
            .into_iter()
            .map(|q| {
                [
                    q,
                    base * (1.0 + 8.0 * q.powi(8)) + if q >= 1.0 { base * 20.0 } else { 0.0 },
                ]
            })
            .collect();
        PhaseResult {
            kind,
            offered_rate: rate,
            connections: 64,
            seconds: 8.0,
            completed: (tput * 8.0) as u64,
            errors: 0,
            wrong: [0; 3],
            unsent: 0,
            throughput: tput,
            latency_ms: Percentiles {
                p50: base,
                p90: base * 1.5,
                p99: base * 4.0,
                p999: base * 8.0,
                max: base * 20.0,
                mean: base * 1.1,
            },
            curve,
            server_cpu_s: cpu * tput * 8.0 / 1e6,
            client_cpu_s: 1.0,
            machine_busy: 0.6,
            cpu_ms_per_1k: Some(cpu),
        }
    }

    /// A plausible report: four mechanisms measured, one skipped.
    pub fn synthetic() -> Report {
        let w = Workload::parse(W, false).unwrap();
        let mut ms = Vec::new();
        for (i, m) in w.mechanisms.iter().enumerate() {
            let mut r = MechanismResult::new(m, Status::Measured);
            if i == 2 {
                r.status = Status::Skipped("set PORTCULLIS_BENCH_POSTGRES".into());
                ms.push(r);
                continue;
            }
            let base = 0.2 + i as f64 * 0.15;
            let cpu = 20.0 + i as f64 * 12.0;
            let max = 9000.0 - i as f64 * 1500.0;
            for rate in &w.rates {
                let rate = *rate as f64;
                let tput = rate.min(max);
                let b = if rate > max { base * 200.0 } else { base };
                r.phases
                    .push(phase(PhaseKind::Open, Some(rate), tput, b, cpu));
            }
            r.phases
                .push(phase(PhaseKind::Closed, None, max, base * 3.0, cpu * 0.9));
            r.instances = if i == 3 { 2 } else { 1 };
            r.startup_s = Some(0.05);
            r.peak_rss_bytes = Some(30 << 20);
            r.revocation = Some(if m.is_jwt() {
                RevocationResult::expiry(905.0)
            } else {
                let lag = if i == 1 { 2.1 } else { 0.02 };
                RevocationResult::measured(
                    vec![Revocation {
                        lag_s: Some(lag),
                        per_instance_s: vec![Some(lag)],
                        visible_s: Some(0.03),
                    }],
                    vec![],
                    30.0,
                )
            });
            ms.push(r);
        }
        let rec = recommend(&ms, &w);
        Report {
            harness_version: "0".into(),
            workload: w,
            environment: Environment {
                cpu_model: "Test CPU".into(),
                cores: 2,
                memory_bytes: 24 << 30,
                kernel: "6.0".into(),
                date: "2026-01-01T00:00:00Z".into(),
                load_average: 0.1,
                portcullis: "/x/portcullis".into(),
                portcullis_version: "portcullis 0.1.0".into(),
                git_commit: Some("abc123".into()),
                client_threads: 1,
            },
            mechanisms: ms,
            recommendation: rec,
            notes: vec!["a note".into()],
            run_seconds: 100.0,
        }
    }

    #[test]
    fn markdown_and_html_carry_the_recommendation_and_charts() {
        let r = synthetic();
        let md = markdown(&r);
        assert!(md.starts_with("# Portcullis benchmark: synthetic"));
        assert!(md.contains("## Recommendation"));
        assert!(md.contains(&r.recommendation.summary));
        for v in &r.recommendation.verdicts {
            assert!(md.contains(&v.sentence));
        }
        assert!(md.contains("skipped: set PORTCULLIS_BENCH_POSTGRES"));
        let html = html(&r);
        assert_eq!(html.matches("<svg").count(), 6);
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
        assert!(html.contains(&esc(&r.recommendation.summary)));
        assert!(!html.contains("<script"));
        // The JSON round-trips into the same report.
        let json = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(markdown(&back), md);
        if let Some(dir) = std::env::var_os("PORTCULLIS_BENCH_RENDER_DIR") {
            let dir = std::path::PathBuf::from(dir);
            std::fs::write(dir.join("synthetic.html"), &html).unwrap();
            std::fs::write(dir.join("synthetic.md"), &md).unwrap();
        }
    }
}
