//! Fuzzes the config loader (`Config::parse`: TOML, `${VAR}` expansion, validation, error
//! positions) on arbitrary text, with a fixed environment.
//!
//! Invariants: a refused config names at least one problem, and every position it gives is
//! in the text (a line of it, a column of that line or just past its end); a loaded config
//! refers only to services it has (Docker discovery off), its rules parse again from their
//! text, and loading is deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use umbra_core::config::{Config, ConfigErrors};
use umbra_core::rules::Rule;

fn env(name: &str) -> Option<String> {
    match name {
        "HOST" => Some("127.0.0.1".to_owned()),
        "PORT" => Some("9000".to_owned()),
        "EMPTY" => Some(String::new()),
        "TOKEN" => Some("s3cret-token-of-some-length".to_owned()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, "fuzz.toml", &env) {
        Err(errors) => check_errors(text, &errors),
        Ok(config) => {
            check_config(&config);
            let again = Config::parse(text, "fuzz.toml", &env).expect("loads again");
            assert_eq!(summary(&again), summary(&config), "deterministic");
        }
    }
});

fn check_errors(text: &str, errors: &ConfigErrors) {
    assert!(!errors.errors.is_empty(), "a refusal names a problem");
    let lines: Vec<&str> = text.split('\n').collect();
    for e in &errors.errors {
        let Some((line, col)) = e.position else {
            continue;
        };
        assert!(
            (1..=lines.len()).contains(&line),
            "line {line} of {}: {e}",
            lines.len()
        );
        let width = lines[line - 1].chars().count();
        assert!(
            (1..=width + 1).contains(&col),
            "column {col} of a line {width} wide: {e}"
        );
    }
    let shown = errors.to_string();
    assert!(shown.starts_with("fuzz.toml"), "{shown}");
}

fn check_config(config: &Config) {
    let docker = config.docker.as_ref().is_some_and(|d| d.enabled);
    for route in &config.routes {
        let reparsed = Rule::parse(route.rule.source()).expect("a loaded rule parses again");
        assert_eq!(reparsed.source(), route.rule.source());
        if docker {
            continue;
        }
        let known = |s: &str| config.services.contains_key(s);
        assert!(
            known(&route.service),
            "route {} → {}",
            route.name,
            route.service
        );
        for shadow in &route.shadows {
            assert!(known(&shadow.service), "shadow {}", shadow.service);
            assert!(shadow.secondary.as_deref().is_none_or(known));
        }
        if let Some(canary) = &route.canary {
            assert!(known(&canary.service), "canary {}", canary.service);
        }
    }
}

/// What a loaded config is made of, to compare two loads.
fn summary(config: &Config) -> String {
    let routes: Vec<_> = config
        .routes
        .iter()
        .map(|r| (&r.name, r.rule.source(), r.priority, &r.service))
        .collect();
    let services: Vec<_> = config.services.values().collect();
    format!(
        "{:?} {:?} {:?} {:?}",
        config.proxy, config.admin, routes, services
    )
}
