//! `umbra demo`: a self-contained tour. Starts demo API v1 (primary), a second v1 (secondary,
//! for noise), v2 (candidate, with regressions) and v3 (the fix) in-process, runs umbra in front
//! of them with an embedded SQLite store, drives traffic with a progress bar. v2 is rolled out
//! from the config: its shadow phase finds the regressions and umbra rolls it back by itself;
//! then v3 is rolled out and goes to 100 % ([`crate::demo_rollout`]). At the end it prints the
//! findings (v2's regressions in a few lines, most severe first, not the noise) and both
//! decisions.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use umbra_core::config::Config;

pub fn demo(duration: Duration, rps: u32, stay: bool) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(duration, rps.max(1), stay))
}

async fn app(version: &str, sd: &CancellationToken) -> anyhow::Result<std::net::SocketAddr> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = l.local_addr()?;
    tokio::spawn(crate::demo_app::serve(l, version.to_string(), sd.clone()));
    Ok(addr)
}

async fn run(duration: Duration, rps: u32, stay: bool) -> anyhow::Result<()> {
    let apps = CancellationToken::new();
    let v1 = app("v1", &apps).await?;
    let v1b = app("v1", &apps).await?;
    let v2 = app("v2", &apps).await?;
    let v3 = app("v3", &apps).await?;
    // The shadow phase takes half the tour; v2 is judged once most of it is in.
    let half = (duration / 2).max(Duration::from_secs(2));
    let min = ((rps as f64 * half.as_secs_f64() * 0.8) as u64).max(30);
    let v2_rollout = crate::demo_rollout::v2_rollout_toml(half, min);
    let v3_step = (duration / 8).max(Duration::from_secs(1));
    let dir = std::env::temp_dir().join(format!("umbra-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("umbra-demo.db");
    let admin = if std::net::TcpListener::bind("127.0.0.1:8081").is_ok() {
        "127.0.0.1:8081"
    } else {
        "127.0.0.1:0"
    };
    let text = format!(
        r#"
[proxy]
listen = "127.0.0.1:0"
workers = 1
[admin]
listen = "{admin}"
[store]
url = "sqlite://{db}"
keep_same = 0.2
[log]
access = false
level = "warn"
[services.api-v1]
servers = ["http://{v1}"]
health = {{ path = "/health", interval = "1s" }}
[services.api-v1-copy]
servers = ["http://{v1b}"]
[services.api-v2]
servers = ["http://{v2}"]
[services.api-v3]
servers = ["http://{v3}"]
[[routes]]
name = "api"
rule = "PathPrefix(`/`)"
service = "api-v1"
shadow = {{ service = "api-v2", percent = 100, secondary = "api-v1-copy", secondary_percent = 50 }}
compare = {{ ignore_headers = ["x-app-version"] }}
{v2_rollout}
"#,
        db = db.display()
    );
    let config = Config::parse(&text, "<demo>", &|_| None).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::logging::init(&config.log);
    let running = crate::run::start(config, None).await?;
    let proxy = running.proxy_addr;
    println!("umbra demo");
    println!("  v1 (primary)   http://{v1}");
    println!("  v1 (secondary) http://{v1b}   <- a second copy of v1, to learn what is noise");
    println!("  v2 (candidate) http://{v2}   <- rolled out: shadowed first (a copy of every GET)");
    println!("  v3 (the fix)   http://{v3}   <- rolled out once umbra has judged v2");
    println!("  proxy          http://{proxy}    try: curl http://{proxy}/users/7");
    println!("  admin UI       http://{}/", running.admin_addr);
    println!("  store          {}", db.display());
    println!();

    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let total = (duration.as_secs_f64() * rps as f64).ceil() as u64;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} requests {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let director = tokio::spawn(crate::demo_rollout::acts(
        running.rollouts.clone(),
        running.runtime.clone(),
        v3_step,
        bar.clone(),
    ));
    let start = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / rps as f64);
    let mut errors = 0u64;
    let mut inflight = tokio::task::JoinSet::new();
    // The tour runs `duration`, and a little longer while v3's rollout still needs traffic.
    let overtime = duration + duration / 2 + Duration::from_secs(5);
    for i in 0.. {
        if i >= total && (director.is_finished() || start.elapsed() > overtime) {
            break;
        }
        bar.set_length(total.max(i + 1));
        let due = start + gap * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let path = match i % 4 {
            0 | 1 => format!("/users/{}", i % 50),
            2 => format!("/orders/{}", i % 30),
            _ => "/products".to_string(),
        };
        let c = client.clone();
        let uri: http::Uri = format!("http://{proxy}{path}").parse()?;
        inflight.spawn(async move {
            match c.get(uri).await {
                Ok(r) => {
                    let ok = r.status().is_success();
                    let _ = r.into_body().collect().await;
                    ok
                }
                Err(_) => false,
            }
        });
        while let Some(r) = inflight.try_join_next() {
            if !matches!(r, Ok(true)) {
                errors += 1;
            }
        }
        bar.inc(1);
    }
    while let Some(r) = inflight.join_next().await {
        if !matches!(r, Ok(true)) {
            errors += 1;
        }
    }
    bar.finish_with_message(format!("({errors} client-visible errors)"));
    // Let the last comparisons reach the store.
    tokio::time::sleep(Duration::from_millis(800)).await;

    if running.store.is_some() {
        print_findings(&running.findings, running.admin_addr);
    }
    let states = if director.is_finished() {
        director.await.unwrap_or_default()
    } else {
        director.abort();
        running.rollouts.status("api").await.into_iter().collect()
    };
    print!("{}", crate::demo_rollout::summary(&states));
    println!(
        "The timeline with the evidence: http://{}/ui/routes/api  (umbra rollout status api)",
        running.admin_addr
    );
    if stay {
        println!(
            "\nServing the admin UI at http://{}/ — Ctrl-C to stop.",
            running.admin_addr
        );
        crate::run::wait_for_signal().await;
    }
    running.stop().await;
    apps.cancel();
    Ok(())
}

/// The closing summary: v2's findings, one line each, most severe first, then v3's (each
/// candidate's findings are its own).
fn print_findings(models: &umbra_proxy::FindingsModels, admin: std::net::SocketAddr) {
    let all = models.findings("api", true);
    let of = |c: &str| all.iter().filter(|f| f.candidate == c).collect::<Vec<_>>();
    let (found, noise): (Vec<_>, Vec<_>) = of("api-v2").into_iter().partition(|f| f.significant);
    println!("\nWhat changed in v2 (findings, most severe first; noise filtered):");
    if found.is_empty() {
        println!("  (none yet — run longer with --duration)");
    }
    finding_lines(&found, admin);
    println!(
        "\n{} other differences were recognised as noise (the secondary v1 shows them too).",
        noise.len()
    );
    let v3: Vec<_> = of("api-v3").into_iter().filter(|f| f.significant).collect();
    if !v3.is_empty() {
        println!("\nWhat changed in v3, the fix (shadowed for one short step):");
        finding_lines(&v3, admin);
    }
    println!("Field by field: umbra diffs api --fields --admin http://{admin}");
}

/// One line per finding, and the fields it covers when more than one.
fn finding_lines(found: &[&umbra_diff::Finding], admin: std::net::SocketAddr) {
    for f in found {
        println!(
            "  {:<6} {}  ({} comparisons: http://{admin}/ui/comparisons?finding={})",
            f.severity.as_str().to_uppercase(),
            f.summary,
            f.count,
            f.id
        );
        if f.fields.len() > 1 {
            println!("         covers {}", f.fields.join(", "));
        }
    }
}
