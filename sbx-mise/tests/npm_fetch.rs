//! Shared by the live npm/pipx tests (included with `#[path]`): the production HTTP client over
//! a fresh cache directory, and a context builder.
#![allow(dead_code)]

use std::collections::BTreeMap;

use sbx_mise::Platform;
use sbx_mise::http::{HttpClient, HttpOptions};
use sbx_mise::resolve::{Fetch, ResolveContext, Upstreams};

/// The production client, caching into a temporary directory that lives as long as it.
pub struct LiveFetch {
    /// The client.
    pub client: HttpClient,
    _cache: tempfile::TempDir,
}

impl Default for LiveFetch {
    /// A client with default options and an empty cache.
    fn default() -> Self {
        let cache = tempfile::tempdir().unwrap();
        let client =
            HttpClient::new(HttpOptions { cache_dir: Some(cache.path().to_path_buf()), ..HttpOptions::default() })
                .unwrap();
        Self { client, _cache: cache }
    }
}

/// The two image platforms.
pub const PLATFORMS: [Platform; 2] = [Platform::LINUX_AMD64, Platform::LINUX_ARM64];

/// A context over `fetch` with default upstreams.
pub fn context<'a>(
    fetch: &'a dyn Fetch,
    upstreams: &'a Upstreams,
    runtimes: &'a BTreeMap<String, String>,
) -> ResolveContext<'a> {
    ResolveContext { fetch, upstreams, platforms: &PLATFORMS, runtimes }
}
