//! The network side of `sbx lock`: the HTTP client and the backends it drives.

use std::sync::Arc;

use sbx_mise::credentials::Credentials;
use sbx_mise::http::{HttpClient, HttpOptions};
use sbx_mise::lock::Backends;
use sbx_mise::resolve::{Fetch, Upstreams};

/// The HTTP client and every backend this build can lock.
pub struct Network {
    /// Cached, retrying HTTP access.
    pub fetch: Arc<dyn Fetch>,
    /// Backends by kind.
    pub backends: Backends,
}

/// Opens the network for a lock run: the HTTP client (GitHub token from the environment,
/// `credentials` taken out of the upstream URLs, cache under `$SBX_CACHE_DIR` or the user's
/// cache dir) and every registered backend. `offline` answers only from the HTTP cache.
pub fn open(upstreams: &Upstreams, credentials: Credentials, offline: bool) -> miette::Result<Network> {
    let mut options = HttpOptions::from_env(upstreams);
    options.offline = offline;
    options.credentials = credentials;
    let client = HttpClient::new(options).map_err(|e| miette::miette!("{e}"))?;
    Ok(Network { fetch: Arc::new(client), backends: sbx_mise::resolve::registry::backends() })
}
