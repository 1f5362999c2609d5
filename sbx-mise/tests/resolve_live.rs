//! `cargo:` against the live crates.io (reachable from these machines).

use std::collections::BTreeMap;

use sbx_mise::http::{HttpClient, HttpOptions};
use sbx_mise::lockfile::Checksum;
use sbx_mise::resolve::registry::backend_for;
use sbx_mise::resolve::{Fetch, ResolveContext, ResolveError, Upstreams};
use sbx_mise::{BackendRef, Platform, VersionRequest};

#[tokio::test]
async fn cargo_ripgrep_from_crates_io() {
    let cache = tempfile::tempdir().unwrap();
    let client =
        HttpClient::new(HttpOptions { cache_dir: Some(cache.path().to_path_buf()), ..HttpOptions::default() }).unwrap();
    let upstreams = Upstreams::default();
    let platforms = [Platform::LINUX_AMD64, Platform::LINUX_ARM64];
    let runtimes = BTreeMap::new();
    let ctx = ResolveContext { fetch: &client, upstreams: &upstreams, platforms: &platforms, runtimes: &runtimes };
    let tool = BackendRef::parse("cargo:ripgrep").unwrap().unwrap();
    let backend = backend_for(tool.kind).unwrap();
    let request = VersionRequest::parse("14.1").unwrap();
    let version = backend.resolve(&ctx, &tool, &request).await.unwrap();
    assert_eq!(version, "14.1.1");
    let locked = backend.lock(&ctx, &tool, &request, &version).await.unwrap();
    let amd = &locked.platforms[&Platform::LINUX_AMD64];
    assert_eq!(amd, &locked.platforms[&Platform::LINUX_ARM64], "source crates are the same everywhere");
    assert_eq!(amd.url, "https://static.crates.io/crates/ripgrep/ripgrep-14.1.1.crate");
    // The index's cksum is the downloaded .crate's sha256.
    let (hex, _) = client.sha256_of(&amd.url).await.unwrap();
    assert_eq!(amd.checksum, Checksum::Sha256(hex));
    let latest = backend.resolve(&ctx, &tool, &VersionRequest::Latest).await.unwrap();
    assert!(latest.split('.').next().unwrap().parse::<u32>().unwrap() >= 14);
    let missing = backend.resolve(&ctx, &tool, &VersionRequest::parse("0.0.999").unwrap()).await.unwrap_err();
    assert!(matches!(missing, ResolveError::NoMatch { ref nearest, .. } if !nearest.is_empty()), "{missing:?}");
}
