//! The `umbra` binary: CLI parsing and dispatch. The work lives in the library crates; this
//! file stays thin.

mod client;
mod demo;
mod demo_app;
mod demo_rollout;
mod logging;
mod ops;
mod replicas;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc. A mirrored request allocates on a proxy worker and frees
/// on a compare or store thread; under a 100 % shadow glibc spent ~14 % of umbra's CPU in
/// malloc/free (perf), and mimalloc raised that scenario's throughput by ~18 % (bench/RESULTS.md).
/// Built with `no_thp`: with transparent huge pages each thread's heap took a 2 MiB page and idle
/// RSS doubled (14 → 28 MiB; 16 MiB without them).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "umbra",
    version,
    about = "A reverse proxy that routes, shadows and compares traffic to make deployments safe",
    long_about = "umbra sits in front of your HTTP APIs. It routes requests (Traefik v3 rules), \
mirrors a sample of live traffic to a candidate build, compares the two responses field by field \
(filtering noise), stores the comparisons, and shifts traffic with weighted canaries.\n\n\
Start with `umbra demo` for a self-contained tour, then `umbra check -c umbra.toml` and \
`umbra run -c umbra.toml`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct AdminArgs {
    /// Admin API URL.
    #[arg(
        long = "admin",
        env = "UMBRA_ADMIN_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    url: String,
    /// Admin token (sent as `Authorization: Bearer`).
    #[arg(long, env = "UMBRA_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy and the admin API.
    Run {
        /// Config file (default `umbra.toml`).
        #[arg(short, long, env = "UMBRA_CONFIG", default_value = "umbra.toml")]
        config: PathBuf,
    },
    /// Validate a config file: exit 0 if valid, 1 with `file:line:col: message` errors if not.
    Check {
        #[arg(short, long, env = "UMBRA_CONFIG", default_value = "umbra.toml")]
        config: PathBuf,
    },
    /// A self-contained tour: two API versions in-process, v1 shadowed to v2, traffic, the admin UI.
    Demo {
        /// How long to generate traffic (e.g. `60s`).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        duration: Duration,
        /// Requests per second.
        #[arg(long, default_value_t = 50)]
        rps: u32,
        /// Exit when the traffic ends. By default, on a terminal, the demo keeps serving the
        /// admin UI until Ctrl-C so the comparisons can be explored.
        #[arg(long)]
        exit: bool,
    },
    /// Serve the built-in demo API (for the compose example): v1 or v2.
    DemoApp {
        #[arg(long, default_value = "v1")]
        version: String,
        #[arg(long, default_value = "0.0.0.0:9000")]
        listen: String,
    },
    /// Exit 0 if the local admin `/health/ready` says ready (for Docker HEALTHCHECK).
    Healthcheck {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Print the version.
    Version,
    /// Show status from the admin API.
    Status {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List routes from the admin API.
    Routes {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// What changed on a route: its findings, most severe first (`--fields`: the field table).
    Diffs {
        route: String,
        /// Show the field-level table instead of the findings.
        #[arg(long)]
        fields: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Start shadowing a route to a service (its only candidate, unless --add).
    Shadow {
        route: String,
        service: String,
        #[arg(long, default_value_t = 100.0)]
        percent: f64,
        /// Add SERVICE as one more candidate (or change its percent); the others stay.
        #[arg(long, conflicts_with = "stop")]
        add: bool,
        /// Stop shadowing to SERVICE only; the route's other candidates go on.
        #[arg(long)]
        stop: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Set a route's canary weight (0-100) toward its canary service.
    Weight {
        route: String,
        percent: f64,
        /// The canary service (default: the route's current canary or shadow service).
        #[arg(long)]
        service: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Make the candidate the route's service.
    Promote {
        route: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Return all traffic to the previous service.
    Rollback {
        route: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Deploy a new server for a route: health-check it, switch new requests to it, drain the
    /// old servers. Exit 1 (and nothing changed) when it never becomes healthy.
    Deploy {
        route: String,
        /// The new server, e.g. `http://10.0.0.7:8080`.
        #[arg(long)]
        target: String,
        /// How long the target may take to become healthy.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        wait: Duration,
        /// How long requests in flight on the old servers may take to finish.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        drain: Duration,
        /// Checked when the route's service has no health check of its own.
        #[arg(long, default_value = "/up")]
        health_path: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Hold a route's new requests until `umbra resume` (503 after --max).
    Pause {
        route: String,
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        max: Duration,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Answer a route's requests with 503 and a maintenance page until `umbra resume`.
    Maintenance {
        route: String,
        #[arg(long)]
        message: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// End a pause or maintenance: requests flow again (held ones go on).
    Resume {
        route: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Automated rollouts: start one, see its evidence, steer it.
    Rollout {
        #[command(subcommand)]
        command: RolloutCommand,
    },
}

#[derive(Subcommand)]
enum RolloutCommand {
    /// Start a rollout of SERVICE on ROUTE (shadow, then canary steps, then promotion).
    Start {
        route: String,
        service: String,
        /// Comma-separated steps, e.g. `shadow 5m,10% 5m,50% 10m,100%` (the default).
        #[arg(long, value_delimiter = ',')]
        steps: Option<Vec<String>>,
        /// Candidate samples a step needs before it is judged.
        #[arg(long)]
        min_requests: Option<i64>,
        /// How often the controller judges (default 10s).
        #[arg(long)]
        interval: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// The rollout's step, weight, gate evidence and decisions.
    Status {
        route: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Hold the rollout at its step (traffic stays as it is).
    Pause {
        route: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Let a paused rollout go on.
    Resume {
        route: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Stop the rollout: all traffic back on the primary.
    Abort {
        route: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Go to the next step now, whatever the gates say.
    Advance {
        route: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

fn rollout(command: RolloutCommand) -> anyhow::Result<()> {
    let (route, action, admin, body) = match command {
        RolloutCommand::Start {
            route,
            service,
            steps,
            min_requests,
            interval,
            admin,
        } => {
            let mut body = serde_json::json!({ "service": service });
            if let Some(steps) = steps {
                let steps: Vec<String> = steps.iter().map(|s| s.trim().to_string()).collect();
                body["steps"] = steps.into();
            }
            if let Some(n) = min_requests {
                body["min_requests"] = n.into();
            }
            if let Some(i) = interval {
                body["interval"] = i.into();
            }
            (route, "start", admin, Some(body))
        }
        RolloutCommand::Status { route, admin } => (route, "status", admin, None),
        RolloutCommand::Pause { route, admin } => (route, "pause", admin, None),
        RolloutCommand::Resume { route, admin } => (route, "resume", admin, None),
        RolloutCommand::Abort { route, admin } => (route, "abort", admin, None),
        RolloutCommand::Advance { route, admin } => (route, "advance", admin, None),
    };
    client::rollout(&admin.url, admin.token.as_deref(), &route, action, body)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    umbra_core::config::units::parse_duration(s)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run::run(&config),
        Command::Check { config } => return run::check(&config),
        Command::Demo {
            duration,
            rps,
            exit,
        } => {
            use std::io::IsTerminal;
            demo::demo(duration, rps, !exit && std::io::stdout().is_terminal())
        }
        Command::DemoApp { version, listen } => demo_app::serve_blocking(&version, &listen),
        Command::Healthcheck { admin } => return client::healthcheck(&admin.url),
        Command::Version => {
            println!("umbra {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Status { admin } => client::status(&admin.url, admin.token.as_deref()),
        Command::Routes { admin } => client::routes(&admin.url, admin.token.as_deref()),
        Command::Diffs {
            route,
            fields,
            admin,
        } => client::diffs(&admin.url, admin.token.as_deref(), &route, fields),
        Command::Shadow {
            route,
            service,
            percent,
            add,
            stop,
            admin,
        } => {
            let how = match (add, stop) {
                (_, true) => client::ShadowChange::Stop,
                (true, _) => client::ShadowChange::Add(percent),
                _ => client::ShadowChange::Only(percent),
            };
            client::shadow(&admin.url, admin.token.as_deref(), &route, &service, how)
        }
        Command::Weight {
            route,
            percent,
            service,
            admin,
        } => client::weight(
            &admin.url,
            admin.token.as_deref(),
            &route,
            percent,
            service.as_deref(),
        ),
        Command::Promote { route, admin } => {
            client::post(&admin.url, admin.token.as_deref(), &route, "promote")
        }
        Command::Rollback { route, admin } => {
            client::post(&admin.url, admin.token.as_deref(), &route, "rollback")
        }
        Command::Deploy {
            route,
            target,
            wait,
            drain,
            health_path,
            admin,
        } => {
            let d = ops::Deploy {
                route: &route,
                target: &target,
                wait,
                drain,
                health_path: &health_path,
            };
            ops::deploy(&admin.url, admin.token.as_deref(), &d)
        }
        Command::Pause { route, max, admin } => {
            let body = serde_json::json!({ "max": format!("{}ms", max.as_millis()) });
            ops::hold(
                &admin.url,
                admin.token.as_deref(),
                &route,
                "pause",
                Some(body),
            )
        }
        Command::Maintenance {
            route,
            message,
            admin,
        } => {
            let body = message.map(|m| serde_json::json!({ "message": m }));
            ops::hold(
                &admin.url,
                admin.token.as_deref(),
                &route,
                "maintenance",
                body,
            )
        }
        Command::Rollout { command } => rollout(command),
        Command::Resume { route, admin } => {
            ops::hold(&admin.url, admin.token.as_deref(), &route, "resume", None)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("umbra: {e:#}");
            ExitCode::FAILURE
        }
    }
}
