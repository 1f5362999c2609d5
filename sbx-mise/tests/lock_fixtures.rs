//! The lock planner with the real backends and HTTP client against the fixture server: a
//! whole project locks, a second run changes nothing, and a failing tool fails the run.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sbx_fixtures::{Fault, FixtureServer};
use sbx_mise::config::{self, DiscoverOptions};
use sbx_mise::http::{HttpClient, HttpOptions, RetryPolicy};
use sbx_mise::lock::{LockInputs, LockRun, NoProgress, Upgrade, lock};
use sbx_mise::lockfile::Lockfile;
use sbx_mise::resolve::Upstreams;
use sbx_mise::resolve::registry::backends;
use sbx_mise::{BackendKind, Platform};

const MISE_TOML: &str = r#"[tools]
node = ["22", "lts/iron"]
go = "1.23"
python = "3.12"
"github:cli/cli" = "latest"
"ubi:BurntSushi/ripgrep" = { version = "14", exe = "rg" }
"#;

async fn run(
    server: &FixtureServer,
    dir: &std::path::Path,
    cache: &std::path::Path,
    previous: Option<&Lockfile>,
) -> Result<Lockfile, String> {
    let mut env = BTreeMap::new();
    env.insert("HOME".to_string(), dir.join("home").display().to_string());
    env.insert("MISE_CEILING_PATHS".to_string(), dir.parent().unwrap().display().to_string());
    let cfg = config::load(&DiscoverOptions { project_dir: dir.to_path_buf(), env, include_global: false })
        .map_err(|e| e.to_string())?;
    let platforms = [Platform::LINUX_AMD64, Platform::LINUX_ARM64];
    let inputs = LockInputs::from_config(&cfg, &platforms, "scratch", Upstreams::all_at(server.base_url()));
    let client = Arc::new(
        HttpClient::new(HttpOptions {
            cache_dir: Some(cache.to_path_buf()),
            retry: RetryPolicy { retries: 1, base: Duration::from_millis(1) },
            ..HttpOptions::default()
        })
        .unwrap(),
    );
    let backends = backends();
    assert!(backends.contains_key(&BackendKind::Core));
    lock(&LockRun {
        inputs: &inputs,
        previous,
        mise_pins: &BTreeMap::new(),
        upgrade: &Upgrade::None,
        backends: &backends,
        fetch: client.as_ref(),
        progress: &NoProgress,
    })
    .await
    .map_err(|e| {
        let details: Vec<String> = e.tools.iter().map(|t| t.to_string()).collect();
        format!("{e}: {}", details.join("; "))
    })
}

#[tokio::test]
async fn a_project_locks_and_relocks_calmly() {
    let server = FixtureServer::start_default().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mise.toml"), MISE_TOML).unwrap();
    let first = run(&server, dir.path(), cache.path(), None).await.unwrap();
    let versions: Vec<String> =
        first.tools.iter().flat_map(|(n, v)| v.iter().map(move |t| format!("{n}@{}", t.version))).collect();
    assert_eq!(
        versions,
        sbx_fixtures::RECORDED_LOCKED_VERSIONS,
        "lts/iron is node 20 and the table form of ripgrep locks like the string form"
    );
    for tools in first.tools.values() {
        for t in tools {
            assert_eq!(t.platforms.len(), 2, "{}", t.backend);
        }
    }
    // Second run with the first as previous: no network needed, identical result.
    let hits = server.hits().len();
    let second = run(&server, dir.path(), cache.path(), Some(&first)).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(server.hits().len(), hits);

    // A broken upstream fails the run with the tool named; nothing is half-written.
    let cache2 = tempfile::tempdir().unwrap();
    server.fault("/node/v22.11.0/SHASUMS256.txt", Fault::Body(b"garbage\n".to_vec()));
    let err = run(&server, dir.path(), cache2.path(), None).await.unwrap_err();
    assert!(err.contains("node") && err.contains("SHASUMS256.txt"), "{err}");
}
