//! Every backend resolves and locks against the loopback fixture server, for linux/amd64,
//! linux/arm64 and darwin/arm64, and every locked checksum is the sha256 of the served bytes.

use std::collections::BTreeMap;
use std::time::Duration;

use sbx_fixtures::{Fault, FixtureServer};
use sbx_mise::http::{HttpClient, HttpOptions, RetryPolicy};
use sbx_mise::lockfile::{Checksum, LockedTool};
use sbx_mise::resolve::registry::{backend_for, backends, unsupported};
use sbx_mise::resolve::{Fetch, FetchError, ResolveContext, ResolveError, Upstreams};
use sbx_mise::{BackendKind, BackendRef, Platform, VersionRequest};

struct Env {
    server: FixtureServer,
    client: HttpClient,
    upstreams: Upstreams,
    platforms: Vec<Platform>,
    runtimes: BTreeMap<String, String>,
    _cache: tempfile::TempDir,
}

fn env() -> Env {
    let server = FixtureServer::start_default().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let client = HttpClient::new(HttpOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        retry: RetryPolicy { retries: 2, base: Duration::from_millis(1) },
        ..HttpOptions::default()
    })
    .unwrap();
    let upstreams = Upstreams::all_at(server.base_url());
    let platforms = vec![Platform::LINUX_AMD64, Platform::LINUX_ARM64, "darwin/arm64".parse().unwrap()];
    Env { server, client, upstreams, platforms, runtimes: BTreeMap::new(), _cache: cache }
}

impl Env {
    fn ctx(&self) -> ResolveContext<'_> {
        ResolveContext {
            fetch: &self.client,
            upstreams: &self.upstreams,
            platforms: &self.platforms,
            runtimes: &self.runtimes,
        }
    }

    async fn resolve(&self, tool: &str, request: &str) -> Result<String, ResolveError> {
        let tool = BackendRef::parse(tool).unwrap().unwrap();
        let backend = backend_for(tool.kind).unwrap();
        backend.resolve(&self.ctx(), &tool, &VersionRequest::parse(request).unwrap()).await
    }

    async fn lock(&self, tool: &str, request: &str) -> Result<LockedTool, ResolveError> {
        let tool = BackendRef::parse(tool).unwrap().unwrap();
        let backend = backend_for(tool.kind).unwrap();
        let request = VersionRequest::parse(request).unwrap();
        let version = backend.resolve(&self.ctx(), &tool, &request).await?;
        backend.lock(&self.ctx(), &tool, &request, &version).await
    }

    /// Every platform has an artifact whose checksum is the served bytes' sha256.
    async fn verify(&self, locked: &LockedTool) {
        assert_eq!(locked.platforms.keys().copied().collect::<Vec<_>>(), {
            let mut p = self.platforms.clone();
            p.sort();
            p
        });
        // A fresh client, so the digest is computed from the bytes, not remembered.
        let fresh = HttpClient::new(HttpOptions {
            cache_dir: Some(tempfile::tempdir().unwrap().keep()),
            ..HttpOptions::default()
        })
        .unwrap();
        for (platform, artifact) in &locked.platforms {
            assert!(artifact.url.starts_with(self.server.base_url()), "{platform}: {}", artifact.url);
            let (hex, size) = fresh.sha256_of(&artifact.url).await.unwrap();
            assert_eq!(artifact.checksum, Checksum::Sha256(hex), "{platform}: {}", artifact.url);
            if let Some(s) = artifact.size {
                assert_eq!(s, size, "{platform}");
            }
        }
    }
}

fn file_name(locked: &LockedTool, platform: &str) -> String {
    let url = &locked.platforms[&platform.parse::<Platform>().unwrap()].url;
    url.rsplit('/').next().unwrap().replace("%2B", "+")
}

#[tokio::test]
async fn node_versions_lts_and_lock() {
    let e = env();
    assert_eq!(e.resolve("core:node", "22").await.unwrap(), "22.11.0");
    assert_eq!(e.resolve("core:node", "latest").await.unwrap(), "23.3.0");
    assert_eq!(e.resolve("core:node", "lts").await.unwrap(), "22.11.0");
    assert_eq!(e.resolve("core:node", "lts/iron").await.unwrap(), "20.18.0");
    assert_eq!(e.resolve("core:node", "sub-1:latest").await.unwrap(), "22.11.0");
    assert_eq!(e.resolve("core:node", "24.0.0-rc.1").await.unwrap(), "24.0.0-rc.1");
    match e.resolve("core:node", "22.99").await {
        Err(ResolveError::NoMatch { nearest, .. }) => assert_eq!(nearest[0], "22.11.0"),
        other => panic!("{other:?}"),
    }
    match e.resolve("core:node", "lts/nope").await {
        Err(ResolveError::NoMatch { nearest, .. }) => assert!(nearest.contains(&"lts/jod".to_string()), "{nearest:?}"),
        other => panic!("{other:?}"),
    }
    let locked = e.lock("core:node", "22").await.unwrap();
    assert_eq!(
        (locked.backend.as_str(), locked.request.as_str(), locked.version.as_str()),
        ("core:node", "22", "22.11.0")
    );
    assert_eq!(file_name(&locked, "linux/arm64"), "node-v22.11.0-linux-arm64.tar.gz");
    assert_eq!(file_name(&locked, "darwin/arm64"), "node-v22.11.0-darwin-arm64.tar.gz");
    e.verify(&locked).await;
}

#[tokio::test]
async fn node_faults_are_clear_errors() {
    let e = env();
    let sums = "/node/v22.11.0/SHASUMS256.txt";
    let text = std::fs::read_to_string(sbx_fixtures::default_root().join(&sums[1..])).unwrap();
    let without_darwin: String =
        text.lines().filter(|l| !l.contains("darwin-arm64")).map(|l| format!("{l}\n")).collect();
    e.server.fault(sums, Fault::Body(without_darwin.into_bytes()));
    match e.lock("core:node", "22.11.0").await {
        Err(ResolveError::MissingChecksum { url, file }) => {
            assert!(url.ends_with(sums));
            assert_eq!(file, "node-v22.11.0-darwin-arm64.tar.gz");
        }
        other => panic!("{other:?}"),
    }

    let e = env();
    e.server.fault("/node/index.json", Fault::Body(b"{\"not\": \"an array\"".to_vec()));
    let err = e.resolve("core:node", "22").await.unwrap_err();
    assert!(matches!(&err, ResolveError::Malformed { url, .. } if url.ends_with("/node/index.json")), "{err:?}");

    let e = env();
    e.server.fault("/node/index.json", Fault::Status { status: 500, times: 100 });
    let err = e.resolve("core:node", "22").await.unwrap_err();
    assert!(matches!(err, ResolveError::Fetch(FetchError::GaveUp { attempts: 3, .. })), "{err:?}");
}

#[tokio::test]
async fn go_from_the_download_index() {
    let e = env();
    assert_eq!(e.resolve("core:go", "1.22").await.unwrap(), "1.22.9");
    assert_eq!(e.resolve("core:go", "latest").await.unwrap(), "1.23.3");
    assert_eq!(e.resolve("core:go", "1.24rc1").await.unwrap(), "1.24rc1");
    assert_eq!(e.resolve("core:go", "sub-0.1:latest").await.unwrap(), "1.22.9");
    let locked = e.lock("core:go", "1.23").await.unwrap();
    assert_eq!(locked.version, "1.23.3");
    assert_eq!(file_name(&locked, "linux/amd64"), "go1.23.3.linux-amd64.tar.gz");
    assert_eq!(file_name(&locked, "darwin/arm64"), "go1.23.3.darwin-arm64.tar.gz");
    assert!(locked.platforms.values().all(|a| a.size.is_some()));
    e.verify(&locked).await;
}

#[tokio::test]
async fn python_from_python_build_standalone() {
    let e = env();
    assert_eq!(e.resolve("core:python", "3.12").await.unwrap(), "3.12.7");
    assert_eq!(e.resolve("core:python", "3").await.unwrap(), "3.13.0");
    assert_eq!(e.resolve("core:python", "3.13.0rc1").await.unwrap(), "3.13.0rc1");
    let locked = e.lock("core:python", "3.12").await.unwrap();
    assert_eq!(
        file_name(&locked, "linux/amd64"),
        "cpython-3.12.7+20241016-x86_64-unknown-linux-gnu-install_only_stripped.tar.gz"
    );
    assert_eq!(
        file_name(&locked, "linux/arm64"),
        "cpython-3.12.7+20241016-aarch64-unknown-linux-gnu-install_only_stripped.tar.gz"
    );
    assert_eq!(
        file_name(&locked, "darwin/arm64"),
        "cpython-3.12.7+20241016-aarch64-apple-darwin-install_only_stripped.tar.gz"
    );
    e.verify(&locked).await;
    // An older release: only `install_only` builds, no published digests; SHA256SUMS decides.
    let old = e.lock("core:python", "3.11.9").await.unwrap();
    assert_eq!(file_name(&old, "linux/amd64"), "cpython-3.11.9+20240814-x86_64-unknown-linux-gnu-install_only.tar.gz");
    e.verify(&old).await;
}

#[tokio::test]
async fn github_release_with_published_digests() {
    let e = env();
    assert_eq!(e.resolve("github:BurntSushi/ripgrep", "latest").await.unwrap(), "14.1.1");
    assert_eq!(e.resolve("ubi:BurntSushi/ripgrep[exe=rg]", "14.1").await.unwrap(), "14.1.1");
    let locked = e.lock("ubi:BurntSushi/ripgrep[exe=rg]", "14").await.unwrap();
    assert_eq!(locked.backend, "ubi:BurntSushi/ripgrep[exe=rg]");
    assert_eq!(locked.options["exe"], "rg");
    assert_eq!(file_name(&locked, "linux/amd64"), "ripgrep-14.1.1-x86_64-unknown-linux-musl.tar.gz");
    assert_eq!(file_name(&locked, "linux/arm64"), "ripgrep-14.1.1-aarch64-unknown-linux-gnu.tar.gz");
    // Published digests: no artifact was downloaded to lock it.
    assert!(!e.server.hits().iter().any(|h| h.path.starts_with("/github.com/") && h.path.ends_with(".tar.gz")));
    e.verify(&locked).await;
}

#[tokio::test]
async fn github_release_without_digests_uses_its_checksum_file() {
    let e = env();
    // The newer release is a prerelease: skipped unless named.
    assert_eq!(e.resolve("github:cli/cli", "latest").await.unwrap(), "2.62.0");
    assert_eq!(e.resolve("github:cli/cli", "2.63.0-pre.0").await.unwrap(), "2.63.0-pre.0");
    let locked = e.lock("github:cli/cli", "2").await.unwrap();
    assert_eq!(locked.version, "2.62.0");
    assert_eq!(file_name(&locked, "linux/amd64"), "gh_2.62.0_linux_amd64.tar.gz");
    assert_eq!(file_name(&locked, "darwin/arm64"), "gh_2.62.0_macOS_arm64.zip");
    // gh_2.62.0_checksums.txt listed them: nothing was downloaded to lock.
    assert!(!e.server.hits().iter().any(|h| h.path.ends_with(".tar.gz") || h.path.ends_with(".zip")));
    e.verify(&locked).await;
    let missing = e.resolve("github:cli/nope", "latest").await.unwrap_err();
    assert!(matches!(missing, ResolveError::Fetch(FetchError::Status { status: 404, .. })), "{missing:?}");
}

#[tokio::test]
async fn github_release_without_any_checksum_is_hashed() {
    let e = env();
    let sums = "/github.com/cli/cli/releases/download/v2.62.0/gh_2.62.0_checksums.txt";
    e.server.fault(sums, Fault::Body(b"# nothing here\n".to_vec()));
    let locked = e.lock("github:cli/cli", "2.62.0").await.unwrap();
    let downloaded: Vec<String> =
        e.server.hits().into_iter().map(|h| h.path).filter(|p| p.ends_with(".tar.gz")).collect();
    assert_eq!(downloaded.len(), 2, "{downloaded:?}");
    // Sizes come from the download itself.
    assert!(locked.platforms.values().all(|a| a.size.is_some()));
    e.verify(&locked).await;
}

#[tokio::test]
async fn release_pages_are_read_only_as_far_as_needed() {
    use sbx_mise::resolve::github::releases_until;
    let e = env();
    let ctx = e.ctx();
    let first =
        releases_until(&ctx, "BurntSushi/ripgrep", 1, |r| r.iter().any(|r| r.tag_name == "14.1.1")).await.unwrap();
    assert_eq!(first.len(), 1);
    let both =
        releases_until(&ctx, "BurntSushi/ripgrep", 1, |r| r.iter().any(|r| r.tag_name == "14.1.0")).await.unwrap();
    assert_eq!(both.iter().map(|r| r.tag_name.as_str()).collect::<Vec<_>>(), ["14.1.1", "14.1.0"]);
    // Every page until an empty one when nothing satisfies the condition.
    let all = releases_until(&ctx, "BurntSushi/ripgrep", 1, |_| false).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(e.server.statuses("/github/repos/BurntSushi/ripgrep/releases"), [200, 200, 200]);
}

#[tokio::test]
async fn unsupported_sources_say_so() {
    let b = backends();
    assert!(b.contains_key(&BackendKind::Core) && b.contains_key(&BackendKind::Github));
    let aqua = BackendRef::parse("aqua:cli/cli").unwrap().unwrap();
    assert!(backend_for(aqua.kind).is_none());
    assert!(unsupported(&aqua).to_string().contains("aqua"));
    let e = env();
    let err = e.resolve("core:ruby", "3").await.unwrap_err();
    assert!(matches!(&err, ResolveError::Unsupported(m) if m.contains("core:ruby")), "{err:?}");
}

#[tokio::test]
async fn offline_lock_after_an_online_one() {
    let e = env();
    let online = e.lock("github:cli/cli", "2").await.unwrap();
    let node = e.lock("core:node", "lts").await.unwrap();
    // The online run ends: its cache entries, written meanwhile, are complete.
    e.client.finish().await;
    let offline = HttpClient::new(HttpOptions {
        cache_dir: Some(e._cache.path().to_path_buf()),
        offline: true,
        ..HttpOptions::default()
    })
    .unwrap();
    let ctx =
        ResolveContext { fetch: &offline, upstreams: &e.upstreams, platforms: &e.platforms, runtimes: &e.runtimes };
    let hits = e.server.hits().len();
    for (tool, request, expected) in [("github:cli/cli", "2", &online), ("core:node", "lts", &node)] {
        let tool = BackendRef::parse(tool).unwrap().unwrap();
        let backend = backend_for(tool.kind).unwrap();
        let request = VersionRequest::parse(request).unwrap();
        let version = backend.resolve(&ctx, &tool, &request).await.unwrap();
        assert_eq!(&backend.lock(&ctx, &tool, &request, &version).await.unwrap(), expected);
    }
    assert_eq!(e.server.hits().len(), hits);
    let err = backend_for(BackendKind::Core)
        .unwrap()
        .resolve(&ctx, &BackendRef::parse("core:go").unwrap().unwrap(), &VersionRequest::Latest)
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::Fetch(FetchError::Offline { .. })), "{err:?}");
}
