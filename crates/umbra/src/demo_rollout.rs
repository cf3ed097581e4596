//! The demo's rollouts, in two acts: v2 (with its regressions) is rolled out from the config
//! and umbra rolls it back by itself at the shadow step; then a fixed v3 is rolled out and
//! goes all the way to 100 %. The summary prints both decisions with their evidence.

use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use umbra_core::config::units::format_duration;
use umbra_core::config::{RawRollout, RawShadow, RawShadows};
use umbra_core::rollout::{RolloutState, Rollouts};
use umbra_core::Runtime;

/// The `rollout` key of the demo route: v2 shadowed for `shadow`, judged once `min` comparisons
/// are in (so the shadow phase gathers a full picture first).
pub fn v2_rollout_toml(shadow: Duration, min: u64) -> String {
    format!(
        "rollout = {{ service = \"api-v2\", steps = [\"shadow {s}\", \"25% {s}\", \"100%\"], \
         min_requests = {min}, interval = \"250ms\" }}",
        s = format_duration(shadow)
    )
}

/// Polls until the rollout of `service` on `api` has ended.
async fn ended(rollouts: &Rollouts, service: &str) -> RolloutState {
    loop {
        if let Some(s) = rollouts.status("api").await {
            if s.spec.service == service && !s.status.is_active() {
                return s;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Act one waits for v2's decision; act two rolls out v3 with steps of `step` each.
pub async fn acts(
    rollouts: Arc<Rollouts>,
    runtime: Arc<Runtime>,
    step: Duration,
    bar: ProgressBar,
) -> Vec<RolloutState> {
    let v2 = ended(&rollouts, "api-v2").await;
    bar.println(format!("umbra: v2 {}", decision(&v2)));
    // v3 is shadowed like v2 was (with the second copy of v1, for noise), then rolled out.
    let shadow = RawShadow {
        service: "api-v3".into(),
        percent: Some(100.0),
        secondary: Some("api-v1-copy".into()),
        secondary_percent: Some(50.0),
        ..Default::default()
    };
    if let Err(e) = runtime.set_shadow("api", Some(RawShadows::one(shadow)), "demo") {
        bar.println(format!("umbra: could not shadow v3: {e}"));
        return vec![v2];
    }
    let s = format_duration(step);
    let spec = RawRollout {
        service: "api-v3".into(),
        steps: Some(vec![
            format!("shadow {s}"),
            format!("25% {s}"),
            "100%".into(),
        ]),
        min_requests: Some(30),
        interval: Some("250ms".into()),
        ..Default::default()
    };
    if let Err(e) = rollouts.start("api", spec, "demo").await {
        bar.println(format!("umbra: could not start v3's rollout: {e}"));
        return vec![v2];
    }
    bar.println("umbra: rolling out v3 (the fix): shadow, 25 %, 100 %");
    let v3 = ended(&rollouts, "api-v3").await;
    bar.println(format!("umbra: v3 {}", decision(&v3)));
    vec![v2, v3]
}

/// One line: what umbra decided and why.
fn decision(s: &RolloutState) -> String {
    let step = s
        .history
        .last()
        .map_or(String::new(), |d| d.step_label.clone());
    match &s.reason {
        Some(r) => format!(
            "rolled back at step `{step}` by the {} gate: {}",
            r.gate.as_str(),
            r.detail
        ),
        None => format!("{} ({})", s.status.as_str(), step),
    }
}

/// The summary's section: each rollout's decision and the evidence of its last judgement.
pub fn summary(states: &[RolloutState]) -> String {
    use std::fmt::Write;
    let mut out = String::from("\nRollouts (umbra decided by itself):\n");
    for s in states {
        let _ = writeln!(out, "  {}: {}", s.spec.service, decision(s));
        let judged = s.history.iter().rev().find_map(|d| d.judgement.as_ref());
        for g in judged.into_iter().flat_map(|j| &j.gates) {
            let _ = writeln!(
                out,
                "      {} {:<8} {}",
                if g.passed { "ok  " } else { "FAIL" },
                g.gate.as_str(),
                g.detail
            );
        }
    }
    out
}
