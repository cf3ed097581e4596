//! What the edge reports: each certificate file's state and each ACME name's, for
//! `/api/status` (`tls`) and `/health/ready` (`degraded` while a needed certificate is
//! missing or failing).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::certs::Loaded;

/// The edge's state, updated by the file watcher and the ACME manager.
#[derive(Debug, Default)]
pub struct Status {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    listen: String,
    files: Vec<FileState>,
    acme: Option<AcmeState>,
}

#[derive(Debug, Clone)]
struct FileState {
    cert: String,
    names: Vec<String>,
    not_after: Option<SystemTime>,
    error: Option<String>,
}

#[derive(Debug, Default)]
struct AcmeState {
    directory: String,
    account: Option<String>,
    error: Option<String>,
    names: BTreeMap<String, NameState>,
}

/// One ACME name: its certificate and the last attempt.
#[derive(Debug, Clone, Default)]
pub struct NameState {
    pub not_after: Option<SystemTime>,
    pub renew_at: Option<SystemTime>,
    pub error: Option<String>,
    pub failures: u32,
    pub next_attempt: Option<SystemTime>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Status {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn set_listen(&self, listen: String) {
        self.with(|s| s.listen = listen);
    }

    /// The certificate files in force: each loaded, or why not.
    pub fn set_files(&self, files: Vec<(String, Result<&Loaded, String>)>) {
        let files = files
            .into_iter()
            .map(|(cert, r)| match r {
                Ok(l) => FileState {
                    cert,
                    names: l.names.clone(),
                    not_after: Some(l.not_after),
                    error: None,
                },
                Err(e) => FileState {
                    cert,
                    names: Vec::new(),
                    not_after: None,
                    error: Some(e),
                },
            })
            .collect();
        self.with(|s| s.files = files);
    }

    /// ACME is on, talking to `directory`.
    pub fn acme_start(&self, directory: &str) {
        self.with(|s| {
            s.acme.get_or_insert_with(AcmeState::default).directory = directory.to_string()
        });
    }

    /// The account's state: its URL, or why there is none yet.
    pub fn acme_account(&self, result: Result<String, String>) {
        self.with(|s| {
            let a = s.acme.get_or_insert_with(AcmeState::default);
            match result {
                Ok(id) => (a.account, a.error) = (Some(id), None),
                Err(e) => a.error = Some(e),
            }
        });
    }

    /// The names ACME manages now, each with its state.
    pub fn acme_names(&self, names: BTreeMap<String, NameState>) {
        self.with(|s| s.acme.get_or_insert_with(AcmeState::default).names = names);
    }

    /// Why the edge is degraded: a certificate file that failed, the ACME account missing, a
    /// name without a certificate or whose last attempt failed. `None`: all well.
    pub fn problem(&self) -> Option<String> {
        self.with(|s| {
            if let Some(f) = s.files.iter().find(|f| f.error.is_some()) {
                return Some(format!("{}: {}", f.cert, f.error.as_deref().unwrap_or("")));
            }
            let a = s.acme.as_ref()?;
            match (&a.account, &a.error) {
                (None, Some(e)) => return Some(format!("ACME account at {}: {e}", a.directory)),
                (None, None) => {
                    return Some(format!(
                        "ACME account at {}: not registered yet",
                        a.directory
                    ))
                }
                _ => {}
            }
            a.names
                .iter()
                .find_map(|(name, n)| match (&n.error, n.not_after) {
                    (Some(e), _) => Some(format!("certificate for {name}: {e}")),
                    (None, None) => Some(format!("certificate for {name}: not issued yet")),
                    _ => None,
                })
        })
    }

    /// The `tls` object of `/api/status`.
    pub fn json(&self) -> Value {
        let problem = self.problem();
        self.with(|s| {
            let files: Vec<Value> = s
                .files
                .iter()
                .map(|f| {
                    json!({"cert": f.cert, "names": f.names,
                           "not_after": f.not_after.map(secs), "error": f.error})
                })
                .collect();
            let acme = s.acme.as_ref().map(|a| {
                let names: BTreeMap<&String, Value> =
                    a.names.iter().map(|(k, n)| (k, name_json(n))).collect();
                json!({"directory": a.directory, "account": a.account,
                       "error": a.error, "certificates": names})
            });
            json!({
                "listen": s.listen,
                "state": if problem.is_some() { "degraded" } else { "up" },
                "problem": problem,
                "files": files,
                "acme": acme,
            })
        })
    }
}

fn name_json(n: &NameState) -> Value {
    json!({
        "state": match (&n.error, n.not_after) {
            (Some(_), _) => "failing",
            (None, Some(_)) => "valid",
            (None, None) => "pending",
        },
        "not_after": n.not_after.map(secs),
        "renew_at": n.renew_at.map(secs),
        "error": n.error,
        "failures": n.failures,
        "next_attempt": n.next_attempt.map(secs),
    })
}
