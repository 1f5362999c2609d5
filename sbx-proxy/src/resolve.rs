//! Name resolution. The proxy resolves every name itself (the sandbox has no DNS) and then
//! connects to exactly an address it checked, so a name cannot be rebound between the check
//! and the connection.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;

/// The future a [`Resolve`] implementation returns.
pub type ResolveFuture<'a> = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + 'a>>;

/// Turns a host name into addresses. Replaceable so tests (and pinned setups) never touch DNS.
pub trait Resolve: Send + Sync + 'static {
    /// Resolves `name` (already normalised, never an IP literal) for a connection to `port`.
    fn resolve<'a>(&'a self, name: &'a str, port: u16) -> ResolveFuture<'a>;
}

/// The operating system's resolver (`getaddrinfo` via tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve<'a>(&'a self, name: &'a str, port: u16) -> ResolveFuture<'a> {
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((name, port)).await?;
            let mut ips: Vec<IpAddr> = Vec::new();
            for addr in addrs {
                if !ips.contains(&addr.ip()) {
                    ips.push(addr.ip());
                }
            }
            Ok(ips)
        })
    }
}

/// A fixed name → addresses table; names not in it fail to resolve (nothing falls through to
/// DNS). Used by tests to point names like `rebind.test` at loopback.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    table: HashMap<String, Vec<IpAddr>>,
}

impl StaticResolver {
    /// An empty table.
    pub fn new() -> StaticResolver {
        StaticResolver::default()
    }

    /// Adds (or replaces) an entry; `name` is matched case-insensitively.
    pub fn with(mut self, name: &str, addrs: &[IpAddr]) -> StaticResolver {
        self.table.insert(name.trim_end_matches('.').to_ascii_lowercase(), addrs.to_vec());
        self
    }
}

impl Resolve for StaticResolver {
    fn resolve<'a>(&'a self, name: &'a str, _port: u16) -> ResolveFuture<'a> {
        let found = self.table.get(name).cloned();
        Box::pin(async move {
            found.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{name} is not in the static table")))
        })
    }
}
