//! Automatic certificates over ACME (RFC 8555, through instant-acme): one account (its
//! credentials stored), one certificate per name — `acme.domains` plus every literal
//! `Host(...)` of the routes (Caddy's model), less the names certificate files cover —
//! proven with HTTP-01 on the plain listener, stored as 0600 files, renewed when two thirds
//! of its life have passed, a failure retried with exponential backoff. The manager runs on
//! its own task: a directory that is down only shows in the status.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use tokio_util::sync::CancellationToken;
use umbra_core::config::AcmeConfig;
use umbra_core::Runtime;

use crate::certs::{from_pem, Loaded, Resolver, Table};
use crate::plain::Challenges;
use crate::status::{NameState, Status};

/// How long one issuance may take (order, challenges, finalize) before it counts as failed.
const ISSUE_TIMEOUT: Duration = Duration::from_secs(120);
/// The first retry after a failure; doubled per failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How often the manager looks at what is due.
const TICK: Duration = Duration::from_secs(1);

/// Everything the manager works with.
pub struct Manager {
    pub config: AcmeConfig,
    pub storage: PathBuf,
    pub runtime: Arc<Runtime>,
    pub resolver: Arc<Resolver>,
    pub challenges: Arc<Challenges>,
    pub status: Arc<Status>,
    /// Names the certificate files cover (kept up to date by the file watcher).
    pub covered: Arc<Mutex<Vec<String>>>,
}

/// The manager's own state between ticks.
#[derive(Default)]
struct State {
    account: Option<Account>,
    /// Failures and the next attempt for the account.
    account_retry: NameState,
    certs: BTreeMap<String, Loaded>,
    names: BTreeMap<String, NameState>,
}

/// The wait after `failures` consecutive failures.
pub fn backoff(failures: u32) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(20));
    doubled.min(MAX_BACKOFF)
}

impl Manager {
    /// Obtains and renews certificates until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut state = State::default();
        loop {
            self.tick(&mut state).await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// One round: the names wanted now, each loaded from storage or issued when due.
    async fn tick(&self, state: &mut State) {
        let wanted = self.wanted();
        state.names.retain(|n, _| wanted.contains(n));
        state.certs.retain(|n, _| wanted.contains(n));
        for name in &wanted {
            if !state.certs.contains_key(name) {
                if let Some(l) = self.stored(name) {
                    state.certs.insert(name.clone(), l);
                }
            }
        }
        for name in &wanted {
            state.names.entry(name.clone()).or_default();
        }
        self.status.acme_names(state.names.clone());
        let now = SystemTime::now();
        let due: Vec<String> = wanted
            .iter()
            .filter(|n| state.certs.get(*n).is_none_or(|l| l.renew_at() <= now))
            .filter(|n| {
                state
                    .names
                    .get(*n)
                    .and_then(|s| s.next_attempt)
                    .is_none_or(|t| t <= now)
            })
            .cloned()
            .collect();
        if !due.is_empty() && self.ensure_account(state).await {
            for name in due {
                self.attempt(state, &name).await;
            }
        }
        for name in &wanted {
            let entry = state.names.entry(name.clone()).or_default();
            if let Some(l) = state.certs.get(name) {
                (entry.not_after, entry.renew_at) = (Some(l.not_after), Some(l.renew_at()));
            }
        }
        self.resolver
            .acme
            .store(Arc::new(Table::of(state.certs.values())));
        self.status.acme_names(state.names.clone());
    }

    /// `acme.domains` of the config in force and the routes' literal hosts, less wildcards,
    /// IP addresses and the names certificate files cover.
    fn wanted(&self) -> Vec<String> {
        let snap = self.runtime.load();
        let configured = snap
            .config
            .tls
            .as_ref()
            .and_then(|t| t.acme.as_ref())
            .map_or(&self.config.domains, |a| &a.domains);
        let covered = self
            .covered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out: Vec<String> = Vec::new();
        let hosts = snap.routes.iter().flat_map(|r| r.spec.rule.host_names());
        for name in configured.iter().cloned().chain(hosts) {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let usable = !name.is_empty()
                && !name.contains('*')
                && name.parse::<std::net::IpAddr>().is_err()
                && !covered.contains(&name);
            if usable && !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    /// Makes sure there is an account (stored credentials, else a new one); false while it
    /// cannot be had (the status says why; retried with backoff).
    async fn ensure_account(&self, state: &mut State) -> bool {
        if state.account.is_some() {
            return true;
        }
        let retry = &mut state.account_retry;
        if retry.next_attempt.is_some_and(|t| t > SystemTime::now()) {
            return false;
        }
        match tokio::time::timeout(ISSUE_TIMEOUT, self.account()).await {
            Ok(Ok(account)) => {
                self.status.acme_account(Ok(account.id().to_string()));
                state.account = Some(account);
                *retry = NameState::default();
                true
            }
            Ok(Err(e)) => self.account_failed(retry, e),
            Err(_) => self.account_failed(retry, "timed out".to_string()),
        }
    }

    fn account_failed(&self, retry: &mut NameState, e: String) -> bool {
        retry.failures += 1;
        retry.next_attempt = Some(SystemTime::now() + backoff(retry.failures));
        tracing::warn!(directory = %self.config.directory, error = %e, failures = retry.failures, "ACME account unavailable; retrying later");
        self.status.acme_account(Err(e));
        false
    }

    /// The account of the stored credentials for this directory, or a new one (stored).
    async fn account(&self) -> Result<Account, String> {
        let path = self.storage.join("account.json");
        let builder = || match &self.config.ca {
            Some(ca) => Account::builder_with_root(ca)
                .map_err(|e| format!("cannot use the ACME CA root {}: {e}", ca.display())),
            None => Account::builder().map_err(|e| e.to_string()),
        };
        if let Some(creds) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<StoredAccount>(&b).ok())
            .filter(|s| s.directory == self.config.directory)
        {
            return builder()?
                .from_credentials(creds.credentials)
                .await
                .map_err(|e| causes(&e));
        }
        let contact = self.config.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let new = NewAccount {
            contact: &contacts,
            terms_of_service_agreed: true,
            only_return_existing: false,
        };
        let (account, credentials) = builder()?
            .create(&new, self.config.directory.clone(), None)
            .await
            .map_err(|e| causes(&e))?;
        let stored = StoredAccount {
            directory: self.config.directory.clone(),
            credentials,
        };
        let json = serde_json::to_vec_pretty(&stored).map_err(|e| e.to_string())?;
        write_private(&path, &json).map_err(|e| format!("cannot store {}: {e}", path.display()))?;
        Ok(account)
    }

    /// Issues a certificate for `name`, recording success (stored, swapped in) or failure.
    async fn attempt(&self, state: &mut State, name: &str) {
        let Some(account) = &state.account else {
            return;
        };
        let result = match tokio::time::timeout(ISSUE_TIMEOUT, self.issue(account, name)).await {
            Ok(r) => r,
            Err(_) => Err("timed out".to_string()),
        };
        let entry = state.names.entry(name.to_string()).or_default();
        match result.and_then(|(chain, key)| self.keep(name, &chain, &key)) {
            Ok(loaded) => {
                tracing::info!(name, not_after = ?loaded.not_after, "certificate obtained over ACME");
                *entry = NameState::default();
                state.certs.insert(name.to_string(), loaded);
            }
            Err(e) => {
                entry.failures += 1;
                entry.error = Some(e.clone());
                entry.next_attempt = Some(SystemTime::now() + backoff(entry.failures));
                tracing::warn!(name, error = %e, failures = entry.failures, "ACME issuance failed; retrying later");
            }
        }
    }

    /// One order for `name`: HTTP-01 answered by the plain listener, then the chain and key.
    async fn issue(&self, account: &Account, name: &str) -> Result<(String, String), String> {
        let ids = [Identifier::Dns(name.to_string())];
        let mut order = account
            .new_order(&NewOrder::new(&ids))
            .await
            .map_err(|e| format!("new order: {}", causes(&e)))?;
        let mut tokens = Vec::new();
        let result = self.prove(&mut order, &mut tokens).await;
        for t in &tokens {
            self.challenges.remove(t);
        }
        result?;
        let key = order
            .finalize()
            .await
            .map_err(|e| format!("finalize: {}", causes(&e)))?;
        let policy = RetryPolicy::new().timeout(Duration::from_secs(60));
        let chain = order
            .poll_certificate(&policy)
            .await
            .map_err(|e| format!("certificate: {}", causes(&e)))?;
        Ok((chain, key))
    }

    /// Answers each pending authorization's HTTP-01 challenge and waits for the order to be
    /// ready; the tokens published are pushed to `tokens` for removal.
    async fn prove(
        &self,
        order: &mut instant_acme::Order,
        tokens: &mut Vec<String>,
    ) -> Result<(), String> {
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| format!("authorization: {}", causes(&e)))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(format!("authorization is {other:?}")),
            }
            let mut challenge = authz
                .challenge(ChallengeType::Http01)
                .ok_or("the CA offers no HTTP-01 challenge")?;
            let key_auth = challenge.key_authorization();
            self.challenges.add(&challenge.token, key_auth.as_str());
            tokens.push(challenge.token.clone());
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("challenge: {}", causes(&e)))?;
        }
        let policy = RetryPolicy::new().timeout(Duration::from_secs(60));
        match order.poll_ready(&policy).await {
            Ok(OrderStatus::Ready) => Ok(()),
            Ok(status) => Err(format!(
                "order is {status:?} (the CA could not validate the HTTP-01 challenge)"
            )),
            Err(e) => Err(format!("order: {}", causes(&e))),
        }
    }

    /// Checks and stores a new chain and key (0600), returning the certificate.
    fn keep(&self, name: &str, chain: &str, key: &str) -> Result<Loaded, String> {
        let loaded = from_pem(chain.as_bytes(), key.as_bytes())
            .map_err(|(_, e)| format!("the CA's certificate is unusable: {e}"))?;
        let (crt, keyf) = self.paths(name);
        write_private(&keyf, key.as_bytes())
            .and_then(|()| write_private(&crt, chain.as_bytes()))
            .map_err(|e| {
                format!(
                    "cannot store the certificate under {}: {e}",
                    self.storage.display()
                )
            })?;
        Ok(loaded)
    }

    /// A stored certificate for `name` that still loads and has not expired.
    fn stored(&self, name: &str) -> Option<Loaded> {
        let (crt, key) = self.paths(name);
        let l = from_pem(&std::fs::read(crt).ok()?, &std::fs::read(key).ok()?).ok()?;
        (l.not_after > SystemTime::now()).then_some(l)
    }

    fn paths(&self, name: &str) -> (PathBuf, PathBuf) {
        let dir = self.storage.join("certs");
        (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        )
    }
}

/// An error and its causes, `a: b: c` (an HTTP client's "client error (Connect)" says little
/// without the "Connection refused" under it).
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// The account as stored: which directory it belongs to, and its credentials.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// Writes `bytes` to `path` readable by umbra's user only (0600, directories 0700), through a
/// temporary file renamed into place so a reader never sees half a file.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_five_seconds_up_to_an_hour() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }

    #[test]
    fn stored_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("umbra-edge-private-{}", std::process::id()));
        let path = dir.join("sub").join("x.key");
        write_private(&path, b"secret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");
        let _ = std::fs::remove_dir_all(dir);
    }
}
