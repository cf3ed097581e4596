//! Certificate files of the config in force, reloaded when they change: every [`POLL`] each
//! file's modification time and size are compared with what was loaded, and on a change the
//! pairs are loaded again and swapped into the resolver. New handshakes get the new
//! certificate; connections already open keep theirs. A pair that no longer loads keeps its
//! last good version (and the status says why).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;
use umbra_core::config::{CertPair, ConfigError};
use umbra_core::Runtime;

use crate::certs::{load_pair, Loaded, Resolver, Table};
use crate::status::Status;

/// How often the files are looked at.
pub const POLL: Duration = Duration::from_secs(2);

/// A file as last seen: modification time and size.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The pairs as loaded, with the stamps they were loaded at.
#[derive(Default)]
pub struct Files {
    pairs: Vec<CertPair>,
    stamps: Vec<(Stamp, Stamp)>,
    loaded: Vec<Option<Loaded>>,
}

impl Files {
    /// Loads every pair; all problems are returned (at start they stop umbra).
    pub fn load(pairs: &[CertPair]) -> Result<Files, Vec<ConfigError>> {
        let mut files = Files::default();
        let errors = files.refresh(pairs);
        match errors.is_empty() {
            true => Ok(files),
            false => Err(errors),
        }
    }

    /// Loads the pairs whose files changed (or all, when the list changed); a pair that fails
    /// keeps its previous certificate. Returns the failures.
    fn refresh(&mut self, pairs: &[CertPair]) -> Vec<ConfigError> {
        let same_list = self.pairs == pairs;
        let mut errors = Vec::new();
        let mut loaded = Vec::with_capacity(pairs.len());
        let mut stamps = Vec::with_capacity(pairs.len());
        for (i, pair) in pairs.iter().enumerate() {
            let now = (stamp(&pair.cert), stamp(&pair.key));
            let before = same_list.then(|| (self.stamps[i], self.loaded[i].clone()));
            let cert = match before {
                Some((seen, Some(prev))) if seen == now => Some(prev),
                _ => match load_pair(i, pair) {
                    Ok(l) => Some(l),
                    Err(e) => {
                        errors.push(e);
                        before.and_then(|(_, prev)| prev)
                    }
                },
            };
            loaded.push(cert);
            stamps.push(now);
        }
        (self.pairs, self.stamps, self.loaded) = (pairs.to_vec(), stamps, loaded);
        errors
    }

    /// Whether any file of `pairs` differs from what was loaded.
    fn changed(&self, pairs: &[CertPair]) -> bool {
        self.pairs != pairs
            || pairs
                .iter()
                .zip(&self.stamps)
                .any(|(p, s)| (stamp(&p.cert), stamp(&p.key)) != *s)
    }

    /// The certificates in force, for the resolver.
    pub fn table(&self) -> Table {
        Table::of(self.loaded.iter().flatten())
    }

    /// Each pair's certificate file and its state, for the status.
    pub fn report(&self, errors: &[ConfigError], status: &Status) {
        let states = self
            .pairs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let prefix = format!("tls.certs[{i}].");
                let err = errors.iter().find(|e| e.key.starts_with(&prefix));
                let state = match (err, &self.loaded[i]) {
                    (Some(e), _) => Err(e.message.clone()),
                    (None, Some(l)) => Ok(l),
                    (None, None) => Err("not loaded".to_string()),
                };
                (p.cert.display().to_string(), state)
            })
            .collect();
        status.set_files(states);
    }

    /// The names the files cover (ACME leaves them alone).
    pub fn names(&self) -> Vec<String> {
        self.loaded
            .iter()
            .flatten()
            .flat_map(|l| l.names.iter().cloned())
            .collect()
    }
}

/// Polls the files of the config in force until `shutdown`, swapping changes in.
pub async fn watch(
    mut files: Files,
    runtime: Arc<Runtime>,
    resolver: Arc<Resolver>,
    status: Arc<Status>,
    covered: Arc<std::sync::Mutex<Vec<String>>>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(POLL) => {}
        }
        let pairs = match &runtime.load().config.tls {
            Some(t) => t.certs.clone(),
            None => continue,
        };
        if !files.changed(&pairs) {
            continue;
        }
        let errors = files.refresh(&pairs);
        for e in &errors {
            tracing::error!(error = %e, "certificate file not reloaded; keeping the last good one");
        }
        resolver.files.store(Arc::new(files.table()));
        files.report(&errors, &status);
        *covered.lock().unwrap_or_else(|e| e.into_inner()) = files.names();
        tracing::info!(
            certificates = files.loaded.iter().flatten().count(),
            "certificate files reloaded"
        );
    }
}
