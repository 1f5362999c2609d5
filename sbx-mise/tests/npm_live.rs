//! Live locks against the npm registry (reachable from the development machines and CI).

#[path = "npm_fetch.rs"]
mod npm_fetch;

use std::collections::BTreeMap;

use npm_fetch::{LiveFetch, PLATFORMS, context};
use sbx_mise::lockfile::{Checksum, LockedTool};
use sbx_mise::resolve::npm::{NPM, verify};
use sbx_mise::resolve::{Backend, ResolveContext, Upstreams};
use sbx_mise::{BackendRef, Platform, VersionRequest};

async fn lock(ctx: &ResolveContext<'_>, tool: &str, request: &str) -> LockedTool {
    let tool = BackendRef::parse(tool).unwrap().unwrap();
    let request = VersionRequest::parse(request).unwrap();
    let version = NPM.resolve(ctx, &tool, &request).await.unwrap();
    NPM.lock(ctx, &tool, &request, &version).await.unwrap()
}

async fn assert_complete_and_consistent(ctx: &ResolveContext<'_>, locked: &LockedTool) {
    assert!(!locked.packages.is_empty());
    for p in &locked.packages {
        assert!(!p.version.is_empty() && p.artifact.url.starts_with("https://"), "{p:?}");
        assert!(p.location.as_deref().is_some_and(|l| l.starts_with("node_modules/")), "{p:?}");
        match &p.artifact.checksum {
            Checksum::Sha512(h) => assert_eq!(h.len(), 128),
            Checksum::Sha256(h) => assert_eq!(h.len(), 64),
        }
    }
    let mut sorted = locked.packages.clone();
    sorted.sort_by(|a, b| (&a.location, &a.name).cmp(&(&b.location, &b.name)));
    assert_eq!(sorted, locked.packages, "sorted by location");
    let problems = verify(ctx, locked).await.unwrap();
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn prettier_locks_and_is_stable() {
    let (fetch, upstreams, runtimes) = (LiveFetch::default(), Upstreams::default(), BTreeMap::new());
    let ctx = context(&fetch.client, &upstreams, &runtimes);
    let first = lock(&ctx, "npm:prettier", "3.3.3").await;
    assert_eq!(first.version, "3.3.3");
    assert_eq!(first.packages[0].location.as_deref(), Some("node_modules/prettier"));
    assert_complete_and_consistent(&ctx, &first).await;
    assert_eq!(lock(&ctx, "npm:prettier", "3.3.3").await, first, "a second run gives the same lock");
    assert!(lock(&ctx, "npm:prettier", "3.3").await.version.starts_with("3.3."));
}

#[tokio::test]
async fn claude_code_locks_its_platform_packages() {
    let (fetch, upstreams, runtimes) = (LiveFetch::default(), Upstreams::default(), BTreeMap::new());
    let ctx = context(&fetch.client, &upstreams, &runtimes);
    // A 2.x version that ships per-platform optional packages.
    let locked = lock(&ctx, "npm:@anthropic-ai/claude-code", "2.1.332").await;
    assert_complete_and_consistent(&ctx, &locked).await;
    let for_platform = |p: Platform| -> Vec<&str> {
        locked
            .packages
            .iter()
            .filter(|pkg| pkg.platforms.is_empty() || pkg.platforms.contains(&p))
            .map(|pkg| pkg.name.as_str())
            .collect()
    };
    let amd64 = for_platform(Platform::LINUX_AMD64);
    let arm64 = for_platform(Platform::LINUX_ARM64);
    assert!(amd64.contains(&"@anthropic-ai/claude-code-linux-x64"), "{amd64:?}");
    assert!(arm64.contains(&"@anthropic-ai/claude-code-linux-arm64"), "{arm64:?}");
    for names in [&amd64, &arm64] {
        assert!(
            names.iter().all(|n| !n.contains("darwin") && !n.contains("musl") && !n.contains("win32")),
            "{names:?}"
        );
    }
    let x64 = locked.packages.iter().find(|p| p.name == "@anthropic-ai/claude-code-linux-x64").unwrap();
    assert_eq!(x64.platforms, [Platform::LINUX_AMD64]);
    assert_eq!(
        x64.location.as_deref(),
        Some("node_modules/@anthropic-ai/claude-code/node_modules/@anthropic-ai/claude-code-linux-x64")
    );
    assert_eq!(PLATFORMS.len(), 2);
}

#[tokio::test]
async fn eslint_tree_is_consistent() {
    // A real tree with nesting; its linux layout matched `npm install -g eslint@9.9.0` exactly
    // when this test was written (89 packages).
    let (fetch, upstreams, runtimes) = (LiveFetch::default(), Upstreams::default(), BTreeMap::new());
    let ctx = context(&fetch.client, &upstreams, &runtimes);
    let locked = lock(&ctx, "npm:eslint", "9.9.0").await;
    assert!(locked.packages.len() > 50);
    assert!(
        locked.packages.iter().any(|p| p.location.as_deref().is_some_and(|l| l.matches("node_modules").count() > 2))
    );
    assert_complete_and_consistent(&ctx, &locked).await;
    assert!(
        NPM.resolve(&ctx, &BackendRef::parse("npm:eslint").unwrap().unwrap(), &VersionRequest::parse("8.57").unwrap())
            .await
            .unwrap()
            .starts_with("8.57.")
    );
}

/// `SBX_NPM_DUMP=eslint@9.9.0 cargo test --test npm_live dump -- --ignored --nocapture` prints the
/// linux/amd64 tree, to compare with what `npm install -g` lays out.
#[tokio::test]
#[ignore = "debugging aid"]
async fn dump() {
    let Ok(spec) = std::env::var("SBX_NPM_DUMP") else { return };
    let (name, version) = spec.rsplit_once('@').unwrap();
    let (fetch, upstreams, runtimes) = (LiveFetch::default(), Upstreams::default(), BTreeMap::new());
    let ctx = context(&fetch.client, &upstreams, &runtimes);
    let locked = lock(&ctx, &format!("npm:{name}"), version).await;
    for p in locked.packages.iter().filter(|p| p.platforms.is_empty() || p.platforms.contains(&Platform::LINUX_AMD64)) {
        println!("DUMP {} {}", p.location.as_deref().unwrap_or(""), p.version);
    }
}

/// `cargo test --test npm_live figures -- --ignored --nocapture`: cold lock times (fresh cache)
/// for the closing figures; prints, asserts nothing about time.
#[tokio::test]
#[ignore = "prints figures"]
async fn figures() {
    for (tool, version) in
        [("npm:prettier", "3.3.3"), ("npm:@anthropic-ai/claude-code", "2.1.332"), ("npm:eslint", "9.9.0")]
    {
        let (fetch, upstreams, runtimes) = (LiveFetch::default(), Upstreams::default(), BTreeMap::new());
        let ctx = context(&fetch.client, &upstreams, &runtimes);
        let start = std::time::Instant::now();
        let locked = lock(&ctx, tool, version).await;
        println!("FIGURE {tool} {version}: {} packages, cold {:?}", locked.packages.len(), start.elapsed());
        let start = std::time::Instant::now();
        lock(&ctx, tool, version).await;
        println!("FIGURE {tool} {version}: warm {:?}", start.elapsed());
    }
}
