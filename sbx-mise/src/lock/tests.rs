//! Planner tests with an in-memory backend: which pins are kept, which move, what fails.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use super::*;
use crate::config::{ConfiguredTool, MiseConfig, ToolEntry, ToolOptions, ToolVersion};
use crate::lockfile::{Artifact, Checksum};
use crate::resolve::{FetchError, Upstreams};
use crate::{Origin, Platform, SourceFile, ToolId};

/// Newest stable version matching a plain request (the real matching lives in the backends).
fn newest_match(versions: &[&str], request: &VersionRequest) -> Option<String> {
    versions
        .iter()
        .rev()
        .find(|v| {
            !v.contains('-')
                && match request {
                    VersionRequest::Version(r) => VersionRequest::fuzzy_matches(r, v),
                    _ => true,
                }
        })
        .map(|v| v.to_string())
}

struct FakeBackend {
    versions: Vec<&'static str>,
    resolves: AtomicUsize,
    locks: AtomicUsize,
}

impl FakeBackend {
    fn new(versions: &[&'static str]) -> Arc<Self> {
        Arc::new(Self { versions: versions.to_vec(), resolves: AtomicUsize::new(0), locks: AtomicUsize::new(0) })
    }
}

#[async_trait]
impl Backend for FakeBackend {
    async fn list_versions(&self, _: &ResolveContext<'_>, _: &BackendRef) -> Result<Vec<String>, ResolveError> {
        Ok(self.versions.iter().map(|v| v.to_string()).collect())
    }
    async fn resolve(
        &self,
        _: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
    ) -> Result<String, ResolveError> {
        self.resolves.fetch_add(1, Ordering::SeqCst);
        newest_match(&self.versions, request).ok_or_else(|| ResolveError::NoMatch {
            tool: tool.to_string(),
            request: request.to_string(),
            nearest: vec!["22.11.0".into()],
        })
    }
    async fn lock(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
        version: &str,
    ) -> Result<LockedTool, ResolveError> {
        self.locks.fetch_add(1, Ordering::SeqCst);
        let platforms = ctx
            .platforms
            .iter()
            .map(|p| {
                let url = format!("https://x/{}/{version}/{p}", tool.name);
                (*p, Artifact { url, checksum: Checksum::Sha256("a".repeat(64)), size: Some(1) })
            })
            .collect();
        Ok(LockedTool {
            backend: tool.to_string(),
            request: request.to_string(),
            version: version.to_string(),
            runtime: ctx.runtimes.get("node").map(|v| format!("node@{v}")),
            options: tool.options.clone(),
            platforms,
            packages: Vec::new(),
        })
    }
}

struct NoNetwork;

#[async_trait]
impl Fetch for NoNetwork {
    async fn get(&self, url: &str) -> Result<bytes::Bytes, FetchError> {
        Err(FetchError::Offline { url: url.into() })
    }
    async fn sha256_of(&self, url: &str) -> Result<(String, u64), FetchError> {
        Err(FetchError::Offline { url: url.into() })
    }
}

fn config(tools: &[(&str, &str)]) -> MiseConfig {
    let text: String = tools.iter().map(|(k, v)| format!("{k} = \"{v}\"\n")).collect();
    let file = SourceFile::new("/p/mise.toml", text);
    let mut cfg = MiseConfig::default();
    for (i, (key, request)) in tools.iter().enumerate() {
        let origin = Origin::new(&file, i..i + 1);
        let entry = ToolEntry {
            id: ToolId::parse(key).unwrap(),
            origin: origin.clone(),
            versions: request
                .split(' ')
                .map(|r| ToolVersion {
                    request: VersionRequest::parse(r).unwrap(),
                    origin: origin.clone(),
                    options: ToolOptions::default(),
                })
                .collect(),
        };
        cfg.tools.insert(entry.id.display_name().to_string(), ConfiguredTool { entry, shadowed: Vec::new() });
    }
    cfg
}

fn inputs(tools: &[(&str, &str)], platforms: &[Platform]) -> LockInputs {
    LockInputs::from_config(&config(tools), platforms, "scratch", Upstreams::default())
}

struct Env {
    node: Arc<FakeBackend>,
    npm: Arc<FakeBackend>,
    backends: Backends,
}

fn env() -> Env {
    let node = FakeBackend::new(&["20.18.0", "22.10.0", "22.11.0", "23.0.0-rc.1"]);
    let npm = FakeBackend::new(&["3.3.2", "3.3.3"]);
    let mut backends: Backends = BTreeMap::new();
    backends.insert(BackendKind::Core, node.clone());
    backends.insert(BackendKind::Npm, npm.clone());
    Env { node, npm, backends }
}

async fn run(
    env: &Env,
    inputs: &LockInputs,
    previous: Option<&Lockfile>,
    upgrade: &Upgrade,
    pins: &BTreeMap<String, Vec<String>>,
) -> Result<Lockfile, LockError> {
    lock(&LockRun {
        inputs,
        previous,
        mise_pins: pins,
        upgrade,
        backends: &env.backends,
        fetch: &NoNetwork,
        progress: &NoProgress,
    })
    .await
}

const AMD: &[Platform] = &[Platform::LINUX_AMD64];
const BOTH: &[Platform] = &[Platform::LINUX_AMD64, Platform::LINUX_ARM64];

#[tokio::test]
async fn first_lock_resolves_and_records_inputs() {
    let env = env();
    let inputs = inputs(&[("node", "22"), ("npm:prettier", "3")], BOTH);
    let lock = run(&env, &inputs, None, &Upgrade::None, &BTreeMap::new()).await.unwrap();
    assert_eq!(lock.tools["node"][0].version, "22.11.0");
    assert_eq!(lock.tools["node"][0].platforms.len(), 2);
    assert_eq!(lock.tools["npm:prettier"][0].runtime.as_deref(), Some("node@22.11.0"), "npm sees the node of this run");
    assert_eq!(lock.inputs, inputs.digest());
}

#[tokio::test]
async fn unchanged_config_keeps_everything_without_network() {
    let env = env();
    let inputs = inputs(&[("node", "22")], BOTH);
    let first = run(&env, &inputs, None, &Upgrade::None, &BTreeMap::new()).await.unwrap();
    let (r, l) = (env.node.resolves.load(Ordering::SeqCst), env.node.locks.load(Ordering::SeqCst));
    let second = run(&env, &inputs, Some(&first), &Upgrade::None, &BTreeMap::new()).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(env.node.resolves.load(Ordering::SeqCst), r, "no resolution");
    assert_eq!(env.node.locks.load(Ordering::SeqCst), l, "no re-lock");
}

#[tokio::test]
async fn a_pin_is_kept_while_its_request_matches() {
    let env = env();
    let mut first = run(&env, &inputs(&[("node", "22")], AMD), None, &Upgrade::None, &BTreeMap::new()).await.unwrap();
    // Pretend an older 22 was locked earlier: a narrower request that still matches keeps it.
    first.tools.get_mut("node").unwrap()[0].version = "22.10.0".into();
    let narrowed = inputs(&[("node", "22.10")], AMD);
    let lock = run(&env, &narrowed, Some(&first), &Upgrade::None, &BTreeMap::new()).await.unwrap();
    assert_eq!(lock.tools["node"][0].version, "22.10.0");
    // A request it no longer matches moves it.
    let moved = inputs(&[("node", "20")], AMD);
    let lock = run(&env, &moved, Some(&first), &Upgrade::None, &BTreeMap::new()).await.unwrap();
    assert_eq!(lock.tools["node"][0].version, "20.18.0");
}

#[tokio::test]
async fn upgrade_moves_pins_forward() {
    let env = env();
    let inputs = inputs(&[("node", "22"), ("npm:prettier", "3")], AMD);
    let mut first = run(&env, &inputs, None, &Upgrade::None, &BTreeMap::new()).await.unwrap();
    first.tools.get_mut("node").unwrap()[0].version = "22.10.0".into();
    first.tools.get_mut("npm:prettier").unwrap()[0].version = "3.3.2".into();
    let kept = run(&env, &inputs, Some(&first), &Upgrade::None, &BTreeMap::new()).await.unwrap();
    assert_eq!(kept.tools["node"][0].version, "22.10.0", "no silent upgrade");
    let only_node = Upgrade::Tools(["node".to_string()].into());
    let up = run(&env, &inputs, Some(&first), &only_node, &BTreeMap::new()).await.unwrap();
    assert_eq!(up.tools["node"][0].version, "22.11.0");
    assert_eq!(up.tools["npm:prettier"][0].version, "3.3.2");
    let all = run(&env, &inputs, Some(&first), &Upgrade::All, &BTreeMap::new()).await.unwrap();
    assert_eq!(all.tools["npm:prettier"][0].version, "3.3.3");
    let _ = &env.npm;
}

#[tokio::test]
async fn new_platform_relocks_the_same_version() {
    let env = env();
    let mut first = run(&env, &inputs(&[("node", "22")], AMD), None, &Upgrade::None, &BTreeMap::new()).await.unwrap();
    first.tools.get_mut("node").unwrap()[0].version = "22.10.0".into();
    let lock =
        run(&env, &inputs(&[("node", "22")], BOTH), Some(&first), &Upgrade::None, &BTreeMap::new()).await.unwrap();
    assert_eq!(lock.tools["node"][0].version, "22.10.0");
    assert_eq!(lock.tools["node"][0].platforms.len(), 2);
}

#[tokio::test]
async fn mise_lock_pins_are_honoured_and_disagreements_fail() {
    let env = env();
    let pins = BTreeMap::from([("node".to_string(), vec!["22.10.0".to_string()])]);
    let lock = run(&env, &inputs(&[("node", "22")], AMD), None, &Upgrade::None, &pins).await.unwrap();
    assert_eq!(lock.tools["node"][0].version, "22.10.0");
    let err = run(&env, &inputs(&[("node", "20")], AMD), None, &Upgrade::None, &pins).await.unwrap_err();
    assert!(err.tools[0].to_string().contains("mise.lock pins node 22.10.0"), "{}", err.tools[0]);
}

#[tokio::test]
async fn every_failure_is_reported_with_its_origin() {
    let env = env();
    let inputs = inputs(
        &[("node", "99"), ("nodee", "1"), ("pipx:black", "24"), ("go", "path:/opt/go"), ("npm:prettier", "3")],
        AMD,
    );
    let err = run(&env, &inputs, None, &Upgrade::None, &BTreeMap::new()).await.unwrap_err();
    let messages: Vec<String> = err.tools.iter().map(|e| e.to_string()).collect();
    assert_eq!(err.count, 4, "{messages:#?}");
    assert!(messages.iter().any(|m| m.contains("no version of core:node matches `99`")), "{messages:#?}");
    assert!(
        messages.iter().any(|m| m.contains("unknown tool `nodee`") && m.contains("did you mean `node`")),
        "{messages:#?}"
    );
    assert!(messages.iter().any(|m| m.contains("pipx:black") && m.contains("not supported yet")), "{messages:#?}");
    assert!(messages.iter().any(|m| m.contains("host directory")), "{messages:#?}");
    assert!(err.tools.iter().all(|e| e.location.starts_with("/p/mise.toml:")));
    let nomatch = err.tools.iter().find(|e| e.tool == "node").unwrap();
    assert_eq!(nomatch.help.as_deref(), Some("versions that exist: 22.11.0"));
}

#[test]
fn digest_changes_only_with_what_matters() {
    let a = inputs(&[("node", "22")], BOTH).digest();
    assert_eq!(a, inputs(&[("nodejs", "22")], &[Platform::LINUX_ARM64, Platform::LINUX_AMD64]).digest());
    assert_ne!(a, inputs(&[("node", "22.1")], BOTH).digest());
    assert_ne!(a, inputs(&[("node", "22")], AMD).digest());
    let mut mirrored = inputs(&[("node", "22")], BOTH);
    mirrored.upstreams.node = "https://mirror/node".into();
    assert_ne!(a, mirrored.digest());
}

#[tokio::test]
async fn check_is_current_until_something_that_matters_changes() {
    let env = env();
    let wanted = inputs(&[("node", "22"), ("npm:prettier", "3")], BOTH);
    assert_eq!(check(&wanted, None), Staleness::Missing);
    let lock = run(&env, &wanted, None, &Upgrade::None, &BTreeMap::new()).await.unwrap();
    assert_eq!(check(&wanted, Some(&lock)), Staleness::Current);

    let changed = inputs(&[("node", "20"), ("python", "3.12")], AMD);
    let Staleness::Stale(reasons) = check(&changed, Some(&lock)) else { panic!("should be stale") };
    assert!(reasons.contains(&StaleReason::PlatformsChanged {
        locked: vec!["linux/amd64".into(), "linux/arm64".into()],
        wanted: vec!["linux/amd64".into()],
    }));
    assert!(reasons.contains(&StaleReason::ToolAdded { name: "python".into(), requests: vec!["3.12".into()] }));
    assert!(
        reasons.contains(&StaleReason::ToolRemoved { name: "npm:prettier".into(), versions: vec!["3.3.3".into()] })
    );
    assert!(reasons.contains(&StaleReason::RequestChanged {
        name: "node".into(),
        locked: vec![("22".into(), "22.11.0".into())],
        wanted: vec!["20".into()],
    }));

    let mut mirrored = wanted.clone();
    mirrored.upstreams.npm = "https://mirror/npm".into();
    assert_eq!(check(&mirrored, Some(&lock)), Staleness::Stale(vec![StaleReason::OtherInputs]));
}
