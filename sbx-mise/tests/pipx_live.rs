//! Live locks against PyPI (reachable from the development machines and CI).

#[path = "npm_fetch.rs"]
mod npm_fetch;

use std::collections::BTreeMap;

use npm_fetch::{LiveFetch, PLATFORMS, context};
use sbx_mise::lockfile::{Checksum, LockedTool};
use sbx_mise::resolve::pipx::PIPX;
use sbx_mise::resolve::{Backend, ResolveContext, ResolveError, Upstreams};
use sbx_mise::{BackendRef, Platform, VersionRequest};

async fn lock(ctx: &ResolveContext<'_>, tool: &str, request: &str) -> Result<LockedTool, ResolveError> {
    let tool = BackendRef::parse(tool).unwrap().unwrap();
    let request = VersionRequest::parse(request).unwrap();
    let version = PIPX.resolve(ctx, &tool, &request).await?;
    PIPX.lock(ctx, &tool, &request, &version).await
}

fn names_for(locked: &LockedTool, p: Platform) -> Vec<&str> {
    locked
        .packages
        .iter()
        .filter(|x| x.platforms.is_empty() || x.platforms.contains(&p))
        .map(|x| x.name.as_str())
        .collect()
}

fn assert_complete(locked: &LockedTool) {
    for p in &locked.packages {
        assert!(!p.version.is_empty() && p.artifact.url.starts_with("https://"), "{p:?}");
        assert!(p.artifact.url.ends_with(".whl"), "wheels only: {p:?}");
        assert!(matches!(&p.artifact.checksum, Checksum::Sha256(h) if h.len() == 64), "{p:?}");
        assert!(p.artifact.size.is_some_and(|s| s > 0), "{p:?}");
        assert!(p.location.is_none());
    }
    for platform in PLATFORMS {
        let names = names_for(locked, platform);
        let mut unique = names.clone();
        unique.dedup();
        assert_eq!(names, unique, "one version per project on {platform}");
    }
}

#[tokio::test]
async fn black_locks_for_both_platforms_and_is_stable() {
    let (fetch, upstreams, runtimes) = (LiveFetch::default(), Upstreams::default(), BTreeMap::new());
    let ctx = context(&fetch.client, &upstreams, &runtimes);
    let first = lock(&ctx, "pipx:black", "24.8.0").await.unwrap();
    assert_eq!(first.version, "24.8.0");
    assert_eq!(first.runtime.as_deref(), Some("python@3.12"));
    assert_complete(&first);
    for platform in PLATFORMS {
        let names = names_for(&first, platform);
        for dep in ["black", "click", "mypy-extensions", "packaging", "pathspec", "platformdirs"] {
            assert!(names.contains(&dep), "{dep} missing on {platform}: {names:?}");
        }
        // python_version < "3.11" markers are false on 3.12.
        assert!(!names.contains(&"tomli") && !names.contains(&"typing-extensions"), "{names:?}");
    }
    // black 24.8.0 ships a cp312 mypyc wheel for linux x86_64 only; arm64 gets the pure wheel.
    let black: Vec<_> = first.packages.iter().filter(|p| p.name == "black").collect();
    assert_eq!(black.len(), 2, "{black:?}");
    assert!(
        black
            .iter()
            .any(|b| b.artifact.url.contains("cp312-cp312-manylinux") && b.platforms == [Platform::LINUX_AMD64])
    );
    assert!(
        black.iter().any(|b| b.artifact.url.ends_with("py3-none-any.whl") && b.platforms == [Platform::LINUX_ARM64])
    );
    assert_eq!(lock(&ctx, "pipx:black", "24.8.0").await.unwrap(), first, "a second run gives the same lock");

    // An older python pulls in the backports, and is recorded.
    let runtimes = BTreeMap::from([("python".to_string(), "3.10.15".to_string())]);
    let ctx = context(&fetch.client, &upstreams, &runtimes);
    let py310 = lock(&ctx, "pipx:black", "24.8.0").await.unwrap();
    assert_eq!(py310.runtime.as_deref(), Some("python@3.10.15"));
    assert!(names_for(&py310, Platform::LINUX_AMD64).contains(&"tomli"));
}

#[tokio::test]
async fn ruff_locks_one_native_wheel_per_platform() {
    let (fetch, upstreams, runtimes) = (LiveFetch::default(), Upstreams::default(), BTreeMap::new());
    let ctx = context(&fetch.client, &upstreams, &runtimes);
    let locked = lock(&ctx, "pipx:ruff", "0.6.9").await.unwrap();
    assert_complete(&locked);
    assert_eq!(locked.packages.len(), 2, "{:#?}", locked.packages);
    let amd = &locked.packages.iter().find(|p| p.platforms == [Platform::LINUX_AMD64]).unwrap().artifact.url;
    let arm = &locked.packages.iter().find(|p| p.platforms == [Platform::LINUX_ARM64]).unwrap().artifact.url;
    assert!(amd.contains("manylinux") && amd.contains("x86_64"), "{amd}");
    assert!(arm.contains("manylinux") && arm.contains("aarch64"), "{arm}");
    assert!(lock(&ctx, "pipx:ruff", "0.6").await.unwrap().version.starts_with("0.6."));
}

#[tokio::test]
async fn unknown_project_and_version_are_clear_errors() {
    let (fetch, upstreams, runtimes) = (LiveFetch::default(), Upstreams::default(), BTreeMap::new());
    let ctx = context(&fetch.client, &upstreams, &runtimes);
    let err = lock(&ctx, "pipx:black", "1.2.3.4").await.unwrap_err();
    assert!(matches!(&err, ResolveError::NoMatch { nearest, .. } if !nearest.is_empty()), "{err}");
}

#[tokio::test]
async fn pypi_s_html_and_json_pages_read_the_same() {
    use sbx_mise::resolve::Fetch;
    use sbx_mise::resolve::pypi::simple::{parse, simple_url};
    let fetch = LiveFetch::default();
    let url = simple_url(&Upstreams::default().pypi, "black");
    let json = fetch.client.get_accepting(&url, "application/vnd.pypi.simple.v1+json").await.unwrap();
    let html = fetch.client.get_accepting(&url, "text/html").await.unwrap();
    assert!(json.starts_with(b"{") && !html.starts_with(b"{"), "PyPI negotiates the two forms");
    let (json, html) = (parse(&url, "black", &json).unwrap(), parse(&url, "black", &html).unwrap());
    assert!(json.releases.len() > 50 && json.releases.contains_key("24.10.0"), "{:?}", json.releases.keys());
    assert_eq!(json.releases.keys().collect::<Vec<_>>(), html.releases.keys().collect::<Vec<_>>());
    let mut files = 0;
    for (version, json_files) in &json.releases {
        let html_files = &html.releases[version];
        assert_eq!(json_files.len(), html_files.len(), "{version}");
        for j in json_files {
            let h = html_files.iter().find(|h| h.filename == j.filename).unwrap();
            assert!(j.size.is_some() && h.size.is_none(), "{}", j.filename);
            let same = (&j.filename, &j.url, &j.digests, &j.requires_python, j.yanked, &j.metadata);
            assert_eq!(same, (&h.filename, &h.url, &h.digests, &h.requires_python, h.yanked, &h.metadata));
            files += 1;
        }
    }
    assert!(files > 500, "{files} files compared");
}

/// `cargo test --test pipx_live figures -- --ignored --nocapture`: cold lock times (fresh cache)
/// for the closing figures; prints, asserts nothing about time.
#[tokio::test]
#[ignore = "prints figures"]
async fn figures() {
    for (tool, version) in [("pipx:black", "24.8.0"), ("pipx:ruff", "0.6.9"), ("pipx:httpie", "3.2.3")] {
        let (fetch, upstreams, runtimes) = (LiveFetch::default(), Upstreams::default(), BTreeMap::new());
        let ctx = context(&fetch.client, &upstreams, &runtimes);
        let start = std::time::Instant::now();
        let locked = lock(&ctx, tool, version).await.unwrap();
        println!("FIGURE {tool} {version}: {} packages, cold {:?}", locked.packages.len(), start.elapsed());
        let start = std::time::Instant::now();
        lock(&ctx, tool, version).await.unwrap();
        println!("FIGURE {tool} {version}: warm {:?}", start.elapsed());
    }
}
