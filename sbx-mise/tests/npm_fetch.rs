//! A minimal uncached reqwest [`Fetch`] for the live npm/pipx tests (shared with `pipx_live.rs`
//! through `#[path]`), plus a context builder.
#![allow(dead_code)]

use std::collections::BTreeMap;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use sbx_mise::Platform;
use sbx_mise::resolve::{Fetch, FetchError, ResolveContext, Upstreams};

/// GET with reqwest, no cache, no retries.
#[derive(Default)]
pub struct PlainFetch(pub reqwest::Client);

#[async_trait]
impl Fetch for PlainFetch {
    async fn get(&self, url: &str) -> Result<bytes::Bytes, FetchError> {
        let transport = |e: reqwest::Error| FetchError::Transport { url: url.to_string(), message: e.to_string() };
        let resp = self.0.get(url).send().await.map_err(transport)?;
        if !resp.status().is_success() {
            return Err(FetchError::Status { url: url.to_string(), status: resp.status().as_u16() });
        }
        resp.bytes().await.map_err(transport)
    }

    async fn sha256_of(&self, url: &str) -> Result<(String, u64), FetchError> {
        let body = self.get(url).await?;
        Ok((hex::encode(Sha256::digest(&body)), body.len() as u64))
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
