//! Application log setup: JSON lines when stdout is not a terminal, readable text when it is.

use std::io::IsTerminal;

use umbra_core::config::{LogConfig, LogFormat};

pub fn init(cfg: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("UMBRA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.level));
    let json = match cfg.format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Pretty) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
