//! The recommendation, computed from one run's measurements against the
//! workload's stated needs. Nothing here is pre-written: every sentence is
//! assembled from numbers in the results.

use serde::{Deserialize, Serialize};

use super::results::{MechanismResult, Status};
use super::units::{lag, ms, rate, thousands};
use super::workload::Workload;

/// A mechanism judged against the needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub id: String,
    pub label: String,
    /// Server CPU ms per 1,000 decisions at the expected rate.
    pub cpu_ms_per_1k: Option<f64>,
    /// p99 latency (ms) at the expected rate.
    pub p99_ms: Option<f64>,
    /// Closed-loop throughput (decisions/s).
    pub max_throughput: Option<f64>,
    /// Worst-case revocation (seconds): measured, or a token's lifetime.
    pub revocation_s: Option<f64>,
    pub meets_revocation: bool,
    pub meets_latency: bool,
    pub meets_rate: bool,
    pub correct: bool,
    pub measured: bool,
    pub qualifies: bool,
    /// The reason, in one sentence.
    pub sentence: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recommendation {
    /// The id of the mechanism picked, if any meets every need.
    pub pick: Option<String>,
    pub summary: String,
    /// Qualifying mechanisms first (cheapest first), then the rest.
    pub verdicts: Vec<Verdict>,
}

fn revocation_phrase(m: &MechanismResult, w: &Workload) -> Option<String> {
    let r = m.revocation.as_ref()?;
    let worst = r.worst_s?;
    Some(if r.method == "expiry" {
        format!(
            "tokens live until exp ({}) plus {} leeway",
            lag(w.population.token_ttl.get().as_secs_f64()),
            w.jwt_leeway
        )
    } else if r.timed_out > 0 {
        format!(
            "{} of {} revoked keys were still allowed somewhere after {}",
            r.timed_out,
            r.samples.len(),
            lag(r.timeout_s)
        )
    } else {
        format!("the slowest instance took {} to deny", lag(worst))
    })
}

/// Judges one mechanism.
pub fn judge(m: &MechanismResult, w: &Workload) -> Verdict {
    let expected = w.needs.expected_rate;
    let at = m.open_at(expected);
    let closed = m.closed();
    let mut v = Verdict {
        id: m.id.clone(),
        label: m.label.clone(),
        cpu_ms_per_1k: at.and_then(|p| p.cpu_ms_per_1k),
        p99_ms: at.map(|p| p.latency_ms.p99),
        max_throughput: closed.map(|p| p.throughput),
        revocation_s: m.revocation.as_ref().and_then(|r| r.worst_s),
        meets_revocation: false,
        meets_latency: false,
        meets_rate: false,
        correct: m.wrong_total() == 0,
        measured: m.measured(),
        qualifies: false,
        sentence: String::new(),
    };
    match &m.status {
        Status::Skipped(why) => {
            v.sentence = format!("{} was not measured ({why}).", m.label);
            return v;
        }
        Status::Failed(why) => {
            v.sentence = format!("{} could not be measured: {why}.", m.label);
            return v;
        }
        Status::Measured => {}
    }
    let budget_ms = w.needs.latency_p99.get().as_secs_f64() * 1e3;
    let deadline_s = w.needs.revocation_deadline.get().as_secs_f64();
    v.meets_revocation = v.revocation_s.is_some_and(|s| s <= deadline_s);
    v.meets_latency = v.p99_ms.is_some_and(|p| p <= budget_ms);
    // Carrying the rate: the open-loop phase at that rate kept up (every
    // request sent, 95% answered per second), and the closed-loop peak is above it.
    let kept_up = at
        .is_some_and(|p| p.unsent == 0 && p.throughput >= 0.95 * expected as f64 && p.errors == 0);
    v.meets_rate = kept_up && v.max_throughput.is_some_and(|t| t >= expected as f64);
    v.qualifies = v.correct && v.meets_revocation && v.meets_latency && v.meets_rate;

    if !v.correct {
        let wrong: [u64; 3] = m.phases.iter().fold([0; 3], |mut a, p| {
            for (x, y) in a.iter_mut().zip(p.wrong) {
                *x += y;
            }
            a
        });
        v.sentence = format!(
            "{} is disqualified: it gave {} wrong answers ({} valid credentials denied, {} invalid and {} missing allowed).",
            m.label,
            thousands(wrong.iter().sum()),
            thousands(wrong[0]),
            thousands(wrong[1]),
            thousands(wrong[2])
        );
        return v;
    }
    let mut misses = Vec::new();
    if !v.meets_revocation {
        misses.push(format!(
            "the {} revocation deadline ({})",
            w.needs.revocation_deadline,
            revocation_phrase(m, w).unwrap_or_else(|| "revocation was not measured".into())
        ));
    }
    if !v.meets_latency {
        misses.push(format!(
            "the {} p99 budget ({} at {})",
            ms(budget_ms),
            v.p99_ms.map(ms).unwrap_or_else(|| "no answers".into()),
            rate(expected as f64)
        ));
    }
    if !v.meets_rate {
        let got = at.map(|p| p.throughput).unwrap_or(0.0);
        let unsent = at.map(|p| p.unsent).unwrap_or(0);
        let errors = at.map(|p| p.errors).unwrap_or(0);
        let detail = if errors > 0 {
            format!("{} errors at {}", thousands(errors), rate(expected as f64))
        } else if unsent > 0 || got < 0.95 * expected as f64 {
            format!(
                "{} answered of {} offered",
                rate(got),
                rate(expected as f64)
            )
        } else {
            format!(
                "peaked at {} with {} connections",
                v.max_throughput.map(rate).unwrap_or_else(|| "n/a".into()),
                w.closed_connections
            )
        };
        misses.push(format!("the expected {} ({detail})", rate(expected as f64)));
    }
    v.sentence = if misses.is_empty() {
        let revokes = match m.revocation.as_ref().map(|r| r.method.as_str()) {
            Some("expiry") => format!(
                "revoked tokens die within {} (their lifetime plus leeway)",
                lag(v.revocation_s.unwrap_or(f64::NAN))
            ),
            _ => format!(
                "revoked everywhere within {}",
                lag(v.revocation_s.unwrap_or(f64::NAN))
            ),
        };
        format!(
            "{} meets every need: {} of CPU per 1,000 decisions, p99 {} at {}, {}.",
            m.label,
            v.cpu_ms_per_1k.map(ms).unwrap_or_else(|| "n/a".into()),
            v.p99_ms.map(ms).unwrap_or_else(|| "n/a".into()),
            rate(expected as f64),
            revokes
        )
    } else {
        let last = misses.pop().unwrap_or_default();
        if misses.is_empty() {
            format!("{} misses {last}.", m.label)
        } else {
            format!("{} misses {} and {last}.", m.label, misses.join(", "))
        }
    };
    v
}

fn cost_key(v: &Verdict) -> (f64, f64) {
    (
        v.cpu_ms_per_1k.unwrap_or(f64::INFINITY),
        v.p99_ms.unwrap_or(f64::INFINITY),
    )
}

fn misses(v: &Verdict) -> usize {
    [v.meets_revocation, v.meets_latency, v.meets_rate]
        .iter()
        .filter(|b| !**b)
        .count()
}

/// Judges every mechanism and picks the cheapest that meets every need.
pub fn recommend(results: &[MechanismResult], w: &Workload) -> Recommendation {
    let mut verdicts: Vec<Verdict> = results.iter().map(|m| judge(m, w)).collect();
    verdicts.sort_by(|a, b| {
        b.qualifies
            .cmp(&a.qualifies)
            .then(b.measured.cmp(&a.measured))
            .then(b.correct.cmp(&a.correct))
            .then(misses(a).cmp(&misses(b)))
            .then(cost_key(a).0.total_cmp(&cost_key(b).0))
            .then(cost_key(a).1.total_cmp(&cost_key(b).1))
    });
    let needs = format!(
        "revocation within {}, p99 at most {} at {}",
        w.needs.revocation_deadline,
        ms(w.needs.latency_p99.get().as_secs_f64() * 1e3),
        rate(w.needs.expected_rate as f64)
    );
    let qualifying: Vec<&Verdict> = verdicts.iter().filter(|v| v.qualifies).collect();
    let (pick, summary) = match qualifying.as_slice() {
        [] => {
            let closest = verdicts.iter().find(|v| v.measured && v.correct);
            let s = match closest {
                Some(c) => format!(
                    "No measured mechanism meets every need ({needs}). Closest: {}",
                    c.sentence
                ),
                None => format!("No mechanism was measured successfully, so none can be recommended for {needs}."),
            };
            (None, s)
        }
        [only] => (
            Some(only.id.clone()),
            format!(
                "Pick {}: the only mechanism measured that meets every need ({needs}), at {} of CPU per 1,000 decisions.",
                only.label,
                only.cpu_ms_per_1k.map(ms).unwrap_or_else(|| "n/a".into())
            ),
        ),
        [best, next, ..] => {
            let ratio = match (best.cpu_ms_per_1k, next.cpu_ms_per_1k) {
                (Some(a), Some(b)) if a > 0.0 && b / a < 1.05 => format!(
                    "; the next, {}, costs about the same ({})",
                    next.label,
                    ms(b)
                ),
                (Some(a), Some(b)) if a > 0.0 => format!(
                    "; the next, {}, costs {:.1}x as much",
                    next.label,
                    b / a
                ),
                _ => String::new(),
            };
            (
                Some(best.id.clone()),
                format!(
                    "Pick {}: the cheapest of {} mechanisms that meet every need ({needs}), at {} of CPU per 1,000 decisions{ratio}.",
                    best.label,
                    qualifying.len(),
                    best.cpu_ms_per_1k.map(ms).unwrap_or_else(|| "n/a".into())
                ),
            )
        }
    };
    Recommendation {
        pick,
        summary,
        verdicts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harness::mechanism::{Alg, Backend, Mechanism, Mode};
    use crate::harness::results::{Percentiles, PhaseKind, PhaseResult, RevocationResult};
    use crate::harness::revoke::Revocation;
    use portcullis_engine::policy::JwtAlgorithm;

    const W: &str = r#"
name: t
needs: {revocation_deadline: 1s, latency_p99: 5ms, expected_rate: 1000}
mechanisms:
  - api_key: {backends: sqlite, modes: replica}
  - jwt: {algorithms: ES256}
population: {keys: 10, tokens: 10, token_ttl: 15m}
mix: {valid: 0.9, invalid: 0.05, missing: 0.05}
open_loop: {rates: [1000], duration: 1s}
closed_loop: {connections: 4, duration: 1s}
"#;

    fn phase(kind: PhaseKind, rate: Option<f64>, tput: f64, p99: f64, cpu: f64) -> PhaseResult {
        PhaseResult {
            kind,
            offered_rate: rate,
            connections: 4,
            seconds: 1.0,
            completed: tput as u64,
            errors: 0,
            wrong: [0; 3],
            unsent: 0,
            throughput: tput,
            latency_ms: Percentiles {
                p99,
                ..Default::default()
            },
            curve: vec![],
            server_cpu_s: 0.0,
            client_cpu_s: 0.0,
            machine_busy: 0.0,
            cpu_ms_per_1k: Some(cpu),
        }
    }

    fn result(
        m: Mechanism,
        p99: f64,
        cpu: f64,
        max: f64,
        revocation: RevocationResult,
    ) -> MechanismResult {
        let mut r = MechanismResult::new(&m, Status::Measured);
        r.phases
            .push(phase(PhaseKind::Open, Some(1000.0), 1000.0, p99, cpu));
        r.phases
            .push(phase(PhaseKind::Closed, None, max, p99 * 3.0, cpu));
        r.revocation = Some(revocation);
        r
    }

    fn measured(lag: f64) -> RevocationResult {
        RevocationResult::measured(
            vec![Revocation {
                lag_s: Some(lag),
                per_instance_s: vec![Some(lag)],
                visible_s: Some(0.01),
            }],
            vec![],
            60.0,
        )
    }

    fn key() -> Mechanism {
        Mechanism::ApiKey {
            backend: Backend::Sqlite,
            mode: Mode::Replica,
            cache_ttl: None,
        }
    }

    fn jwt() -> Mechanism {
        Mechanism::Jwt {
            alg: Alg(JwtAlgorithm::ES256),
            cache: true,
        }
    }

    #[test]
    fn the_deadline_rules_out_long_lived_tokens() {
        let w = Workload::parse(W, false).unwrap();
        let rs = vec![
            result(key(), 0.4, 30.0, 20_000.0, measured(0.03)),
            result(jwt(), 0.3, 20.0, 30_000.0, RevocationResult::expiry(905.0)),
        ];
        let rec = recommend(&rs, &w);
        assert_eq!(rec.pick.as_deref(), Some("apikey-sqlite-replica"));
        let j = rec
            .verdicts
            .iter()
            .find(|v| v.id == "jwt-es256-cache")
            .unwrap();
        assert!(!j.qualifies);
        assert_eq!(
            j.sentence,
            "JWT ES256 misses the 1s revocation deadline (tokens live until exp (15 min) plus 5s leeway)."
        );
        assert!(
            rec.summary.starts_with("Pick API key sqlite replica"),
            "{}",
            rec.summary
        );
    }

    #[test]
    fn without_a_deadline_the_cheapest_wins() {
        let w = Workload::parse(
            &W.replace("revocation_deadline: 1s", "revocation_deadline: 1h"),
            false,
        )
        .unwrap();
        let rs = vec![
            result(key(), 0.4, 30.0, 20_000.0, measured(0.03)),
            result(jwt(), 0.3, 20.0, 30_000.0, RevocationResult::expiry(905.0)),
        ];
        let rec = recommend(&rs, &w);
        assert_eq!(rec.pick.as_deref(), Some("jwt-es256-cache"));
        assert!(rec.summary.contains("1.5x"), "{}", rec.summary);
    }

    #[test]
    fn budget_rate_and_wrong_answers() {
        let w = Workload::parse(W, false).unwrap();
        let slow = result(key(), 7.2, 30.0, 800.0, measured(0.03));
        let v = judge(&slow, &w);
        assert!(!v.meets_latency && !v.meets_rate && v.meets_revocation);
        assert!(
            v.sentence
                .contains("5.00 ms p99 budget (7.20 ms at 1,000/s)"),
            "{}",
            v.sentence
        );
        assert!(v.sentence.contains("peaked at 800/s"), "{}", v.sentence);
        let mut wrong = result(key(), 0.4, 30.0, 20_000.0, measured(0.03));
        wrong.phases[0].wrong = [2, 1, 0];
        let v = judge(&wrong, &w);
        assert!(!v.qualifies);
        assert!(v.sentence.contains("3 wrong answers"), "{}", v.sentence);
        let rec = recommend(&[slow, wrong], &w);
        assert_eq!(rec.pick, None);
        assert!(rec
            .summary
            .starts_with("No measured mechanism meets every need"));
    }

    #[test]
    fn skipped_mechanisms_say_why() {
        let w = Workload::parse(W, false).unwrap();
        let m = MechanismResult::new(
            &key(),
            Status::Skipped("set PORTCULLIS_BENCH_POSTGRES".into()),
        );
        let v = judge(&m, &w);
        assert!(!v.qualifies && !v.measured);
        assert!(v.sentence.contains("not measured"));
    }
}
