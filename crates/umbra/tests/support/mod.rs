//! The `umbra` binary for the end-to-end tests: a command for it, a fresh temp dir, `umbra run`
//! with a config (its output dropped, shown or in a log file), waits until it is ready, and a
//! SIGTERM stop that must exit cleanly.

// Each test binary compiles this module on its own and uses a different part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use umbra_testkit::{assert_eventually, TestResponse};

/// How long a started umbra may take to be ready.
pub const READY_WITHIN: Duration = Duration::from_secs(20);

/// The binary under test.
pub fn umbra() -> Command {
    Command::new(env!("CARGO_BIN_EXE_umbra"))
}

/// An empty directory `umbra-{suite}-{name}-{pid}` in the temp dir (one left over is removed).
pub fn tempdir(suite: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("umbra-{suite}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Where a started umbra's output goes.
#[derive(Clone, Copy)]
pub enum Log<'a> {
    /// Nowhere.
    Quiet,
    /// Its stderr into the test's (stdout dropped).
    Stderr,
    /// Both into this file (created anew), to read or name when a test fails.
    File(&'a Path),
}

/// The stdout of a command that must have succeeded (else a panic showing its output).
pub fn succeeded(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Spawns `umbra run -c cfg` without waiting for it.
pub fn spawn_run(cfg: &Path, log: Log<'_>) -> Child {
    let (stdout, stderr) = match log {
        Log::Quiet => (Stdio::null(), Stdio::null()),
        Log::Stderr => (Stdio::null(), Stdio::inherit()),
        Log::File(path) => {
            let file = std::fs::File::create(path).unwrap();
            (file.try_clone().unwrap().into(), file.into())
        }
    };
    umbra()
        .args(["run", "-c"])
        .arg(cfg)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Polls `url` until its answer satisfies `ok`, for up to `within`.
pub async fn wait_for(url: &str, within: Duration, ok: impl Fn(&TestResponse) -> bool) {
    assert_eventually!(
        umbra_testkit::try_get(url).await.is_ok_and(|r| ok(&r)),
        timeout = within,
        "{url} never answered as awaited"
    );
}

/// Polls the admin API at `admin_url` until `/health/ready` answers 200.
pub async fn wait_ready(admin_url: &str) {
    let ready = format!("{admin_url}/health/ready");
    wait_for(&ready, READY_WITHIN, |r| r.status == 200).await;
}

/// Starts `umbra run -c cfg` (output dropped) and waits until its admin listener says ready.
pub async fn start_umbra(cfg: &Path, admin_url: &str) -> Child {
    let child = spawn_run(cfg, Log::Quiet);
    wait_ready(admin_url).await;
    child
}

/// Sends SIGTERM and waits for the exit.
pub async fn sigterm(mut child: Child) -> ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap()
}

/// Sends SIGTERM and asserts a clean exit (0).
pub async fn stop_umbra(child: Child) {
    let status = sigterm(child).await;
    assert!(status.success(), "{status:?}");
}

/// The first event of `kind` in an `/api/events` answer (a panic showing them when none is).
pub fn event(events: &Value, kind: &str) -> Value {
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == kind)
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} event: {events}"))
}
