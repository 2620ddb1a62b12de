//! `/metrics` parsed line by line against the OpenMetrics 1.0 text grammar
//! (the endpoint's content type is `application/openmetrics-text`), then
//! checked for the metric families the spec names.
//!
//! Why a grammar check written here rather than the `prometheus-parse` crate:
//! that crate reads the Prometheus 0.0.4 text format, where a counter family
//! is named with its `_total` suffix and `# UNIT` / `# EOF` do not exist, so
//! it would mis-group OpenMetrics counters; and it is not in the offline
//! registry cache of the build machine.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::support::*;

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: bool,
    samples: Vec<Sample>,
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn is_label_name(s: &str) -> bool {
    is_name(s) && !s.contains(':')
}

/// `+Inf`, `-Inf`, `NaN` or a decimal float; nothing else.
fn value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) => s
            .parse::<f64>()
            .map_err(|e| format!("bad value `{s}`: {e}")),
        _ => Err(format!("bad value `{s}`")),
    }
}

/// `{a="x",b="y"}` (the braces already removed): escapes `\\`, `\"`, `\n` only.
fn labels(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("label without =\" in `{s}`"))?;
        if !is_label_name(name) {
            return Err(format!("bad label name `{name}`"));
        }
        let mut v = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => v.push('\\'),
                    Some((_, '"')) => v.push('"'),
                    Some((_, 'n')) => v.push('\n'),
                    other => return Err(format!("bad escape {other:?} in `{s}`")),
                },
                Some((_, '\n')) => return Err("newline in a label value".into()),
                Some((_, c)) => v.push(c),
                None => return Err(format!("unterminated label value in `{s}`")),
            }
        };
        if out.insert(name.to_string(), v).is_some() {
            return Err(format!("label `{name}` repeated"));
        }
        rest = &after[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
            if rest.is_empty() {
                return Err("trailing comma".into());
            }
        } else if !rest.is_empty() {
            return Err(format!("junk after a label value: `{rest}`"));
        }
    }
    Ok(out)
}

/// The sample suffixes each family type allows (OpenMetrics 1.0 section 4).
fn suffixes(kind: &str) -> &'static [&'static str] {
    match kind {
        "counter" => &["_total", "_created"],
        "histogram" => &["_bucket", "_sum", "_count", "_created"],
        "gaugehistogram" => &["_bucket", "_gsum", "_gcount"],
        "summary" => &["", "_sum", "_count", "_created"],
        "info" => &["_info"],
        "gauge" | "stateset" | "unknown" => &[""],
        _ => &[],
    }
}

/// Parses the whole exposition strictly; every error names its line.
fn parse(text: &str) -> Result<BTreeMap<String, Family>, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("the exposition must end with `# EOF` and a newline")?;
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (n, line) in body.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: `{line}`", n + 1);
        if let Some(meta) = line.strip_prefix("# ") {
            let mut it = meta.splitn(3, ' ');
            let (kw, name, rest) = (it.next(), it.next(), it.next());
            let name = name
                .filter(|n| is_name(n))
                .ok_or_else(|| err("bad name".into()))?;
            match (kw, rest) {
                (Some("TYPE"), Some(kind)) => {
                    if suffixes(kind).is_empty() {
                        return Err(err(format!("unknown type `{kind}`")));
                    }
                    let f = families.entry(name.to_string()).or_default();
                    if !f.kind.is_empty() || !f.samples.is_empty() {
                        return Err(err("family declared twice".into()));
                    }
                    f.kind = kind.to_string();
                    current = Some(name.to_string());
                }
                (Some("HELP"), Some(_)) => {
                    let f = families.entry(name.to_string()).or_default();
                    if f.help {
                        return Err(err("HELP twice".into()));
                    }
                    f.help = true;
                    current = Some(name.to_string());
                }
                (Some("UNIT"), Some(unit)) => {
                    if !name.ends_with(&format!("_{unit}")) {
                        return Err(err("a family with a unit must end with it".into()));
                    }
                }
                _ => return Err(err("unknown or incomplete metadata".into())),
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            return Err(err(
                "empty line or comment (not allowed in OpenMetrics)".into()
            ));
        }
        // name[{labels}] value [timestamp]; no exemplars expected.
        let (series, rest) = match line.find('{') {
            Some(i) => {
                let close = line.rfind("} ").ok_or_else(|| err("no `} `".into()))?;
                (&line[..i], (Some(&line[i + 1..close]), &line[close + 2..]))
            }
            None => {
                let (s, r) = line.split_once(' ').ok_or_else(|| err("no value".into()))?;
                (s, (None, r))
            }
        };
        let (label_text, values) = rest;
        if !is_name(series) {
            return Err(err("bad metric name".into()));
        }
        let labels = labels(label_text.unwrap_or("")).map_err(err)?;
        let mut vs = values.split(' ');
        let v = value(vs.next().unwrap_or("")).map_err(err)?;
        if let Some(ts) = vs.next() {
            value(ts).map_err(err)?;
        }
        if vs.next().is_some() {
            return Err(err("more than a value and a timestamp".into()));
        }
        let fam = current
            .clone()
            .ok_or_else(|| err("sample before any family".into()))?;
        let f = families.get_mut(&fam).unwrap();
        let ok = suffixes(&f.kind)
            .iter()
            .any(|s| series == format!("{fam}{s}"));
        if !ok {
            return Err(err(format!(
                "sample does not belong to {} family `{fam}`",
                f.kind
            )));
        }
        f.samples.push(Sample {
            name: series.to_string(),
            labels,
            value: v,
        });
    }
    for (name, f) in &families {
        if f.kind.is_empty() || !f.help {
            return Err(format!("family `{name}` lacks TYPE or HELP"));
        }
    }
    Ok(families)
}

/// Every histogram: per label set, cumulative buckets ending at `+Inf` = `_count`.
fn check_histogram(name: &str, f: &Family) {
    let mut series: BTreeMap<BTreeMap<String, String>, Vec<&Sample>> = BTreeMap::new();
    for s in &f.samples {
        let mut key = s.labels.clone();
        key.remove("le");
        series.entry(key).or_default().push(s);
    }
    for (key, samples) in series {
        let buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| s.name.ends_with("_bucket"))
            .map(|s| (value(&s.labels["le"]).unwrap(), s.value))
            .collect();
        assert!(!buckets.is_empty(), "{name}{key:?}: no buckets");
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{name}{key:?}: buckets not increasing and cumulative: {buckets:?}"
        );
        let last = buckets[buckets.len() - 1];
        assert_eq!(last.0, f64::INFINITY, "{name}{key:?}: no +Inf bucket");
        let one = |suffix: &str| {
            let v: Vec<f64> = samples
                .iter()
                .filter(|s| s.name.ends_with(suffix))
                .map(|s| s.value)
                .collect();
            assert_eq!(v.len(), 1, "{name}{key:?}: one {suffix}");
            v[0]
        };
        assert_eq!(one("_count"), last.1, "{name}{key:?}: +Inf bucket != count");
        assert!(one("_sum") >= 0.0);
    }
}

#[test]
fn grammar_check_refuses_bad_lines() {
    let ok = "# HELP a_x A.\n# TYPE a_x counter\na_x_total{k=\"v\\\"\"} 1\n# EOF\n";
    assert!(parse(ok).is_ok(), "{:?}", parse(ok));
    for bad in [
        "# HELP a_x A.\n# TYPE a_x counter\na_x_total 1\n",
        "# HELP a_x A.\n# TYPE a_x counter\na_x 1\n# EOF\n",
        "# HELP a_x A.\n# TYPE a_x counter\na_x_total{k=\"v} 1\n# EOF\n",
        "# HELP a_x A.\n# TYPE a_x counter\na_x_total{k=v} 1\n# EOF\n",
        "# HELP a_x A.\n# TYPE a_x counter\na_x_total one\n# EOF\n",
        "# HELP a_x A.\n# TYPE a_x countr\na_x_total 1\n# EOF\n",
        "# HELP a_x A.\n# TYPE a_x counter\n\na_x_total 1\n# EOF\n",
        "# TYPE a_x counter\na_x_total 1\n# EOF\n",
    ] {
        assert!(parse(bad).is_err(), "accepted:\n{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_openmetrics_and_name_every_family() {
    let fx = Fixture::new();
    let p = Portcullis::start_with(
        &fx,
        ServeOptions {
            admin_token: Some(ADMIN_TOKEN),
            ..ServeOptions::default()
        },
    );
    // One allow, one deny, one bad request and one reload, so each family has samples.
    decide(
        p.addr,
        &json!({"method": "GET", "path": "/v1/charges/ch_1", "host": "api.example.com",
                "headers": {"x-api-key": fx.keys.read}}),
    )
    .await;
    decide(
        p.addr,
        &json!({"method": "GET", "path": "/v1/charges/ch_1", "host": "api.example.com",
                "headers": {}}),
    )
    .await;
    send(p.addr, "POST", "/v1/decide", &[], "{").await;
    assert_eq!(admin_reload(&p).await.status, 200);

    let m = send(p.addr, "GET", "/metrics", &[], "").await;
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = m.text();
    let families = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    let family = |name: &str, kind: &str| {
        let f = families
            .get(name)
            .unwrap_or_else(|| panic!("no family {name} in:\n{text}"));
        assert_eq!(f.kind, kind, "{name}");
        f
    };

    // Every family docs/api.md lists, with its type.
    for (name, kind) in [
        ("portcullis_decisions", "counter"),
        ("portcullis_decision_duration_seconds", "histogram"),
        ("portcullis_bad_requests", "counter"),
        ("portcullis_policy_reloads", "counter"),
        ("portcullis_policy_generation", "gauge"),
        ("portcullis_policy_last_reload_success", "gauge"),
        ("portcullis_policy_last_reload_timestamp_seconds", "gauge"),
        ("portcullis_open_connections", "gauge"),
        ("portcullis_connections", "counter"),
        ("portcullis_ratelimit_fallbacks", "counter"),
    ] {
        family(name, kind);
    }

    // Decisions by verdict, reason, route and credential.
    let decisions = family("portcullis_decisions", "counter");
    for s in &decisions.samples {
        for l in ["verdict", "reason", "route", "credential"] {
            assert!(s.labels.contains_key(l), "{s:?} lacks {l}");
        }
    }
    let verdicts: BTreeSet<&str> = decisions
        .samples
        .iter()
        .map(|s| s.labels["verdict"].as_str())
        .collect();
    assert_eq!(verdicts, BTreeSet::from(["allow", "deny"]));
    assert!(decisions
        .samples
        .iter()
        .any(|s| s.labels["reason"] == "allowed"
            && s.labels["route"] == "charges.read"
            && s.labels["credential"] == "partner_key"
            && s.value == 1.0));
    assert!(decisions
        .samples
        .iter()
        .any(|s| s.labels["reason"] == "credential_missing" && s.value == 1.0));

    // Decision latency: a histogram with buckets, sum and count.
    let latency = family("portcullis_decision_duration_seconds", "histogram");
    for suffix in ["_bucket", "_sum", "_count"] {
        assert!(
            latency.samples.iter().any(|s| s.name.ends_with(suffix)),
            "no {suffix}"
        );
    }
    for (name, f) in &families {
        if f.kind == "histogram" {
            check_histogram(name, f);
        }
    }
    let count: f64 = latency
        .samples
        .iter()
        .filter(|s| s.name.ends_with("_count"))
        .map(|s| s.value)
        .sum();
    assert_eq!(count, 2.0);

    // Reloads by result.
    let reloads = family("portcullis_policy_reloads", "counter");
    assert!(reloads
        .samples
        .iter()
        .any(|s| s.labels.get("result").map(String::as_str) == Some("ok") && s.value == 1.0));

    // Open connections by listener.
    let open = family("portcullis_open_connections", "gauge");
    assert!(open
        .samples
        .iter()
        .any(
            |s| s.labels.get("listener").map(String::as_str) == Some("decision") && s.value >= 1.0
        ));
}
