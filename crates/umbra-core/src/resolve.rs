//! Name resolution for upstream connections in pure Rust (hickory), so a static binary in a
//! `FROM scratch` image resolves compose service names without libc's NSS. Reads
//! `/etc/resolv.conf` and `/etc/hosts`; answers are cached for at most a few seconds because
//! compose gives a recreated container a new address under the same name.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hickory_resolver::config::{ResolverConfig, ResolverOpts};
use hickory_resolver::TokioAsyncResolver;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;

/// The HTTP connector every upstream client uses.
pub type Connector = HttpConnector<Resolver>;

/// A hickory resolver usable as hyper-util's DNS service. IP literals never reach it
/// (the connector parses those itself).
#[derive(Clone)]
pub struct Resolver(TokioAsyncResolver);

impl Resolver {
    /// From the system configuration; without a readable `/etc/resolv.conf`, only the hosts
    /// file answers (never a public resolver behind the user's back).
    pub fn system() -> Resolver {
        let (config, mut opts) = hickory_resolver::system_conf::read_system_conf()
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "no usable /etc/resolv.conf; resolving from /etc/hosts only");
                (ResolverConfig::new(), ResolverOpts::default())
            });
        opts.positive_max_ttl = Some(Duration::from_secs(5));
        opts.negative_max_ttl = Some(Duration::from_secs(1));
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 2;
        Resolver(TokioAsyncResolver::tokio(config, opts))
    }
}

impl Resolver {
    /// The addresses of `host`.
    pub async fn lookup(&self, host: &str) -> std::io::Result<Vec<std::net::IpAddr>> {
        let lookup = self
            .0
            .lookup_ip(host)
            .await
            .map_err(|e| std::io::Error::other(format!("resolve {host}: {e}")))?;
        Ok(lookup.iter().collect())
    }
}

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.0.clone();
        Box::pin(async move {
            let lookup = resolver
                .lookup_ip(name.as_str())
                .await
                .map_err(|e| std::io::Error::other(format!("resolve {}: {e}", name.as_str())))?;
            let addrs: Vec<SocketAddr> = lookup.iter().map(|ip| SocketAddr::new(ip, 0)).collect();
            Ok(addrs.into_iter())
        })
    }
}

/// A connector resolving through [`Resolver::system`], with TCP_NODELAY and a connect timeout.
pub fn connector(connect_timeout: Duration) -> Connector {
    let mut http = HttpConnector::new_with_resolver(Resolver::system());
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service;

    #[tokio::test]
    async fn resolves_localhost_from_the_hosts_file() {
        let mut r = Resolver::system();
        let addrs: Vec<SocketAddr> = r
            .call("localhost".parse::<Name>().unwrap())
            .await
            .expect("localhost resolves")
            .collect();
        assert!(addrs.iter().any(|a| a.ip().is_loopback()), "{addrs:?}");
    }

    #[tokio::test]
    async fn an_unknown_name_fails_with_the_name_in_the_error() {
        let mut r = Resolver::system();
        let err = r
            .call("no-such-host.invalid".parse::<Name>().unwrap())
            .await
            .expect_err("must fail");
        assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
    }
}
