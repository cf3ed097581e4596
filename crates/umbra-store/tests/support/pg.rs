//! A private, throwaway PostgreSQL cluster for tests: `initdb` in a temp dir, `pg_ctl start`
//! on a free loopback port with its socket in that dir and trust auth, stopped and removed on
//! drop. When this process dies without dropping it (a static, an abort), a small watcher
//! process stops the server and removes the dir.
//!
//! PostgreSQL refuses to run as root, so as root every server command goes through
//! `runuser -u postgres`. The binaries come from `$UMBRA_PG_BIN`, `pg_config --bindir`,
//! Debian's `/usr/lib/postgresql/<version>/bin`, or `PATH`.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

pub struct PgCluster {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// Where `initdb` and `pg_ctl` are, if PostgreSQL is installed.
pub fn bin_dir() -> Option<PathBuf> {
    let has = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(d) = std::env::var_os("UMBRA_PG_BIN").map(PathBuf::from) {
        return has(&d).then_some(d);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has(&d) {
            return Some(d);
        }
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let d = e.path().join("bin");
            has(&d).then_some((v, d))
        })
        .collect();
    debian.sort();
    if let Some((_, d)) = debian.pop() {
        return Some(d);
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| has(d))
}

/// Prints a banner saying PostgreSQL tests are skipped, or panics when `CI=true`: CI must
/// run them.
pub fn skip_or_panic(what: &str) {
    let msg = format!(
        "PostgreSQL binaries (initdb, pg_ctl) not found: {what} SKIPPED.\n\
         Install them with `apt-get install postgresql` (or run scripts/pg-test-env.sh),\n\
         set UMBRA_PG_BIN to their directory, or UMBRA_TEST_PG_URL to a server."
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and {msg}");
    }
    let bar = "!".repeat(78);
    // Straight to the process's stderr: the test harness captures eprintln! of passing tests.
    let _ = writeln!(std::io::stderr(), "\n{bar}\n{msg}\n{bar}\n");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

impl PgCluster {
    /// Creates and starts a new cluster. Panics (with the tool's output) if that fails.
    pub fn start_new(bin: PathBuf) -> PgCluster {
        let dir = tempfile::Builder::new()
            .prefix("umbra-pg-")
            .tempdir()
            .expect("temp dir for PostgreSQL");
        let as_postgres = is_root();
        let cluster = PgCluster {
            dir,
            bin,
            port: free_port(),
            as_postgres,
        };
        if as_postgres {
            run(Command::new("chown").args([
                "-R",
                "postgres:postgres",
                cluster.dir.path().to_str().expect("utf-8 temp path"),
            ]));
        }
        let data = cluster.data();
        run(cluster
            .tool("initdb")
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ])
            .arg(&data));
        let conf = format!(
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             max_connections = 50\nshared_buffers = 32MB\n",
            cluster.port,
            cluster.dir.path().display()
        );
        let mut existing =
            std::fs::read_to_string(data.join("postgresql.conf")).expect("read postgresql.conf");
        existing.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), existing).expect("write postgresql.conf");
        cluster.spawn_reaper();
        cluster.start();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        run(self
            .tool("pg_ctl")
            .args(["-w", "-t", "60", "-l"])
            .arg(self.dir.path().join("server.log"))
            .arg("-D")
            .arg(self.data())
            .arg("start"));
    }

    /// Stops the server (fast shutdown: open connections are terminated).
    pub fn stop(&self) {
        run(self
            .tool("pg_ctl")
            .args(["-w", "-t", "60", "-m", "fast", "-D"])
            .arg(self.data())
            .arg("stop"));
    }

    /// Stops the server and removes the cluster dir once this test process is gone, however
    /// it ends.
    fn spawn_reaper(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = if self.as_postgres {
            format!("runuser -u postgres -- '{}'", pg_ctl.display())
        } else {
            format!("'{}'", pg_ctl.display())
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {stop} -D '{data}' -m immediate stop; rm -rf '{dir}'",
            pid = std::process::id(),
            data = self.data().display(),
            dir = self.dir.path().display(),
        );
        let mut reaper = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn PostgreSQL reaper");
        // It outlives this process on purpose; until then a thread reaps it if it ends early.
        std::thread::spawn(move || reaper.wait());
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self
            .tool("pg_ctl")
            .args(["-w", "-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .stdin(Stdio::null())
            .output();
        // TempDir removes the directory.
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
