//! A rollout as validated: its steps (`shadow 5m`, `10% 5m`, `100%`), gate thresholds, timing
//! and hooks. The same validation serves the config file and the admin API's JSON, so both
//! name the offending key the same way. Control plane; pure.

use std::time::Duration;

use serde::Serialize;

use crate::config::units::{format_duration, parse_duration};
use crate::config::{ConfigError, RawRollout};

/// The steps a rollout walks when none are given.
pub const DEFAULT_STEPS: [&str; 4] = ["shadow 5m", "10% 5m", "50% 10m", "100%"];

/// One step of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// Mirror only: the candidate is the route's shadow.
    Shadow {
        #[serde(serialize_with = "ser_duration")]
        duration: Duration,
    },
    /// A sticky canary at `percent` % of the traffic.
    Canary {
        percent: f64,
        #[serde(serialize_with = "ser_duration")]
        duration: Duration,
    },
    /// The candidate becomes the route's service.
    Promote,
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

impl Step {
    /// Parses `shadow 5m`, `10% 5m`, `100%`.
    pub fn parse(text: &str) -> Result<Step, String> {
        let expected = "expected `shadow DURATION`, `N% DURATION` or `100%`";
        let mut words = text.split_whitespace();
        let (Some(head), tail, None) = (words.next(), words.next(), words.next()) else {
            return Err(format!("`{text}` is not a step; {expected}"));
        };
        if head.eq_ignore_ascii_case("shadow") {
            let d = tail.ok_or_else(|| format!("`{text}`: a shadow step needs a duration"))?;
            let duration = parse_duration(d).map_err(|e| format!("`{text}`: {e}"))?;
            return Ok(Step::Shadow { duration });
        }
        let Some(num) = head.strip_suffix('%') else {
            return Err(format!("`{text}` is not a step; {expected}"));
        };
        let percent: f64 = num
            .parse()
            .map_err(|_| format!("`{text}`: `{head}` is not a percentage; {expected}"))?;
        if !(percent > 0.0 && percent <= 100.0) {
            return Err(format!(
                "`{text}`: {percent}% is not a percentage above 0 and at most 100"
            ));
        }
        match (percent == 100.0, tail) {
            (true, None) => Ok(Step::Promote),
            (true, Some(_)) => Err(format!(
                "`{text}`: `100%` promotes at once and takes no duration"
            )),
            (false, None) => Err(format!("`{text}`: a canary step needs a duration")),
            (false, Some(d)) => {
                let duration = parse_duration(d).map_err(|e| format!("`{text}`: {e}"))?;
                Ok(Step::Canary { percent, duration })
            }
        }
    }

    /// The step's length (zero for the promotion).
    pub fn duration(&self) -> Duration {
        match self {
            Step::Shadow { duration } | Step::Canary { duration, .. } => *duration,
            Step::Promote => Duration::ZERO,
        }
    }

    /// The share of traffic the candidate serves during the step.
    pub fn weight(&self) -> f64 {
        match self {
            Step::Shadow { .. } => 0.0,
            Step::Canary { percent, .. } => *percent,
            Step::Promote => 100.0,
        }
    }

    /// The step as written.
    pub fn label(&self) -> String {
        match self {
            Step::Shadow { duration } => format!("shadow {}", format_duration(*duration)),
            Step::Canary { percent, duration } => {
                format!("{percent}% {}", format_duration(*duration))
            }
            Step::Promote => "100%".into(),
        }
    }
}

/// The gates' thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    pub max_diff_rate: f64,
    pub max_error_rate: f64,
    pub max_latency_ratio: f64,
    pub min_requests: u64,
}

/// A validated rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RolloutSpec {
    pub service: String,
    pub steps: Vec<Step>,
    pub thresholds: Thresholds,
    #[serde(serialize_with = "ser_duration")]
    pub max_wait: Duration,
    pub failure_limit: u32,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    pub before_step: Option<String>,
    pub on_finish: Option<String>,
}

/// Validates a rollout; `key` prefixes error keys (`routes[0].rollout`, or `` for the API).
/// `primary` is the route's service; `service_exists` checks the candidate when given.
pub fn validate_rollout(
    raw: &RawRollout,
    key: &str,
    primary: Option<&str>,
    service_exists: Option<&dyn Fn(&str) -> bool>,
) -> Result<RolloutSpec, Vec<ConfigError>> {
    let k = |field: &str| {
        if key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        }
    };
    let mut errs = Vec::new();
    let mut err = |field: String, msg: String| errs.push(ConfigError::new(field, msg));
    if raw.service.is_empty() {
        err(k("service"), "is required".into());
    } else if primary == Some(raw.service.as_str()) {
        err(
            k("service"),
            format!(
                "`{}` is already the route's service; a rollout needs a different candidate",
                raw.service
            ),
        );
    } else if service_exists.is_some_and(|f| !f(&raw.service)) {
        err(k("service"), format!("unknown service `{}`", raw.service));
    }
    let steps = steps(raw, &k, &mut err);
    let rate = |err: &mut dyn FnMut(String, String), field: &str, v: Option<f64>, d: f64| {
        let v = v.unwrap_or(d);
        if !(0.0..=1.0).contains(&v) {
            err(k(field), format!("{v} is not a share between 0 and 1"));
        }
        v
    };
    let max_diff_rate = rate(&mut err, "max_diff_rate", raw.max_diff_rate, 0.01);
    let max_error_rate = rate(&mut err, "max_error_rate", raw.max_error_rate, 0.01);
    let max_latency_ratio = raw.max_latency_ratio.unwrap_or(1.25);
    if !(max_latency_ratio.is_finite() && max_latency_ratio >= 1.0) {
        err(
            k("max_latency_ratio"),
            format!("{max_latency_ratio} is not a ratio of at least 1 (1.25 = 25 % slower)"),
        );
    }
    let count = |err: &mut dyn FnMut(String, String), field: &str, v: Option<i64>, d: i64| {
        let v = v.unwrap_or(d);
        if v < 1 {
            err(k(field), format!("{v} must be at least 1"));
        }
        v.max(1) as u64
    };
    let min_requests = count(&mut err, "min_requests", raw.min_requests, 100);
    let failure_limit = count(&mut err, "failure_limit", raw.failure_limit, 2) as u32;
    let mut dur = |field: &str, v: Option<&str>, d: &str| {
        parse_duration(v.unwrap_or(d)).unwrap_or_else(|e| {
            err(k(field), e);
            parse_duration(d).expect("default duration parses")
        })
    };
    let max_wait = dur("max_wait", raw.max_wait.as_deref(), "30m");
    let interval = dur("interval", raw.interval.as_deref(), "10s");
    if interval < Duration::from_millis(50) {
        err(k("interval"), "must be at least 50ms".into());
    }
    let hooks = raw.hooks.clone().unwrap_or_default();
    for (field, url) in [
        ("hooks.before_step", &hooks.before_step),
        ("hooks.on_finish", &hooks.on_finish),
    ] {
        if let Some(u) = url {
            if !(u.starts_with("http://") && u.len() > 7) {
                err(
                    k(field),
                    format!("`{u}` is not an http:// URL (e.g. `http://ci.internal/approve`)"),
                );
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    Ok(RolloutSpec {
        service: raw.service.clone(),
        steps,
        thresholds: Thresholds {
            max_diff_rate,
            max_error_rate,
            max_latency_ratio,
            min_requests,
        },
        max_wait,
        failure_limit,
        interval,
        before_step: hooks.before_step,
        on_finish: hooks.on_finish,
    })
}

/// The steps, each checked; the last must be `100%`, and only the last.
fn steps(
    raw: &RawRollout,
    k: &dyn Fn(&str) -> String,
    err: &mut dyn FnMut(String, String),
) -> Vec<Step> {
    let texts: Vec<String> = match &raw.steps {
        Some(s) => s.clone(),
        None => DEFAULT_STEPS.iter().map(|s| s.to_string()).collect(),
    };
    if texts.is_empty() {
        err(
            k("steps"),
            "needs at least one step (the last is `100%`)".into(),
        );
    }
    let mut out = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        match Step::parse(t) {
            Ok(s) => {
                let last = i + 1 == texts.len();
                if last && s != Step::Promote {
                    err(
                        format!("{}[{i}]", k("steps")),
                        format!("`{t}`: the last step is `100%` (the promotion)"),
                    );
                } else if !last && s == Step::Promote {
                    err(
                        format!("{}[{i}]", k("steps")),
                        "`100%` promotes and ends the rollout, so it is the last step".into(),
                    );
                }
                out.push(s);
            }
            Err(e) => err(format!("{}[{i}]", k("steps")), e),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(steps: &[&str]) -> RawRollout {
        RawRollout {
            service: "v2".into(),
            steps: Some(steps.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    fn keys(r: Result<RolloutSpec, Vec<ConfigError>>) -> Vec<String> {
        r.expect_err("invalid")
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn steps_parse() {
        assert_eq!(
            Step::parse("shadow 5m"),
            Ok(Step::Shadow {
                duration: Duration::from_secs(300)
            })
        );
        assert_eq!(
            Step::parse("12.5%  1s"),
            Ok(Step::Canary {
                percent: 12.5,
                duration: Duration::from_secs(1)
            })
        );
        assert_eq!(Step::parse("100%"), Ok(Step::Promote));
        assert_eq!(Step::parse("10% 5m").unwrap().label(), "10% 5m");
    }

    #[test]
    fn defaults_fill_in() {
        let spec = validate_rollout(&raw(&DEFAULT_STEPS), "", Some("v1"), None).unwrap();
        assert_eq!(spec.steps.len(), 4);
        assert_eq!(spec.thresholds.min_requests, 100);
        assert_eq!(spec.failure_limit, 2);
        assert_eq!(spec.interval, Duration::from_secs(10));
    }

    #[test]
    fn bad_steps_are_named() {
        let e = keys(validate_rollout(
            &raw(&["canary 5m", "100%"]),
            "",
            None,
            None,
        ));
        assert!(
            e[0].starts_with("steps[0]: `canary 5m` is not a step"),
            "{e:?}"
        );
        let e = keys(validate_rollout(
            &raw(&["150% 1m", "100%"]),
            "r",
            None,
            None,
        ));
        assert!(
            e[0].starts_with("r.steps[0]:") && e[0].contains("at most 100"),
            "{e:?}"
        );
        let e = keys(validate_rollout(&raw(&["10% 1m"]), "", None, None));
        assert!(e[0].contains("the last step is `100%`"), "{e:?}");
        let e = keys(validate_rollout(&raw(&["10%", "100%"]), "", None, None));
        assert!(e[0].contains("needs a duration"), "{e:?}");
        let e = keys(validate_rollout(
            &raw(&["shadow 5x", "100%"]),
            "",
            None,
            None,
        ));
        assert!(e[0].contains("unknown unit"), "{e:?}");
    }

    #[test]
    fn bad_thresholds_and_candidate_are_named() {
        let mut r = raw(&["100%"]);
        r.max_error_rate = Some(-0.1);
        r.min_requests = Some(-5);
        r.max_latency_ratio = Some(0.5);
        let e = keys(validate_rollout(&r, "", None, None));
        assert!(
            e.iter().any(|m| m.starts_with("max_error_rate: -0.1")),
            "{e:?}"
        );
        assert!(e.iter().any(|m| m.starts_with("min_requests: -5")), "{e:?}");
        assert!(
            e.iter().any(|m| m.starts_with("max_latency_ratio:")),
            "{e:?}"
        );
        let e = keys(validate_rollout(&raw(&["100%"]), "", Some("v2"), None));
        assert!(
            e[0].starts_with("service: `v2` is already the route's service"),
            "{e:?}"
        );
        let none = |_: &str| false;
        let e = keys(validate_rollout(
            &raw(&["100%"]),
            "",
            Some("v1"),
            Some(&none),
        ));
        assert_eq!(e, vec!["service: unknown service `v2`".to_string()]);
    }
}
