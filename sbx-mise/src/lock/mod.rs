//! `sbx lock`: turn the wanted tools into a [`Lockfile`], keeping existing pins.
//!
//! Rules, like cargo's: a pin is kept as long as its request still matches it (no silent
//! upgrades); `--upgrade [TOOL…]` moves pins forward; a `mise.lock` pin is honoured (the host
//! already runs that version) and a disagreement is an error saying which side to change.
//! Tools are locked concurrently; npm and pipx tools after the others, so they see the node
//! and python versions locked in the same run.

pub mod check;
pub mod error;
pub mod wanted;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::future::join_all;

pub use check::{StaleReason, Staleness, check, check_with_mise_pins};
pub use error::{LockError, ToolLockError};
pub use wanted::{LockInputs, WantedTool, WantedVersion};

use crate::lockfile::model::FORMAT_VERSION;
use crate::lockfile::{LockedTool, Lockfile};
use crate::resolve::{Backend, Fetch, ResolveContext, ResolveError};
use crate::{BackendKind, BackendRef, VersionRequest};

/// The backends available to this run, by kind.
pub type Backends = BTreeMap<BackendKind, Arc<dyn Backend>>;

/// Which pins may move forward.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Upgrade {
    /// Keep every pin whose request still matches.
    #[default]
    None,
    /// Re-resolve everything.
    All,
    /// Re-resolve only these tools (lockfile names).
    Tools(BTreeSet<String>),
}

impl Upgrade {
    fn applies(&self, tool: &str) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Tools(t) => t.contains(tool),
        }
    }
}

/// Progress of a lock run, one line per tool.
pub trait LockProgress: Send + Sync {
    /// Work on `tool` started.
    fn resolving(&self, tool: &str, request: &str);
    /// `tool` is locked at `version`; `kept` when the previous pin was reused.
    fn locked(&self, tool: &str, request: &str, version: &str, kept: bool);
    /// `tool` failed.
    fn failed(&self, tool: &str, request: &str);
}

/// A progress sink that shows nothing.
pub struct NoProgress;

impl LockProgress for NoProgress {
    fn resolving(&self, _: &str, _: &str) {}
    fn locked(&self, _: &str, _: &str, _: &str, _: bool) {}
    fn failed(&self, _: &str, _: &str) {}
}

/// Options of one lock run.
pub struct LockRun<'a> {
    /// What to lock.
    pub inputs: &'a LockInputs,
    /// The current lockfile, if any.
    pub previous: Option<&'a Lockfile>,
    /// Versions pinned by the project's `mise.lock` (tool name → versions).
    pub mise_pins: &'a BTreeMap<String, Vec<String>>,
    /// What may be upgraded.
    pub upgrade: &'a Upgrade,
    /// Available backends.
    pub backends: &'a Backends,
    /// Network access.
    pub fetch: &'a dyn Fetch,
    /// Progress display.
    pub progress: &'a dyn LockProgress,
}

/// Locks every wanted tool. Either every tool locks, or the error lists every failure.
pub async fn lock(run: &LockRun<'_>) -> Result<Lockfile, LockError> {
    let (first, second): (Vec<&WantedTool>, Vec<&WantedTool>) =
        run.inputs.tools.iter().partition(|t| !needs_runtime(run.backends, t));
    let mut locked: BTreeMap<String, Vec<LockedTool>> = BTreeMap::new();
    let mut errors = Vec::new();
    let no_runtimes = BTreeMap::new();
    for (tool, result) in join_all(first.iter().map(|t| lock_tool(run, t, &no_runtimes))).await.into_iter().zip(&first)
    {
        match tool {
            Ok(v) => {
                locked.insert(result.name.clone(), v);
            }
            Err(e) => errors.extend(e),
        }
    }
    let runtimes: BTreeMap<String, String> =
        locked.iter().filter_map(|(name, v)| v.first().map(|t| (name.clone(), t.version.clone()))).collect();
    for (tool, result) in join_all(second.iter().map(|t| lock_tool(run, t, &runtimes))).await.into_iter().zip(&second) {
        match tool {
            Ok(v) => {
                locked.insert(result.name.clone(), v);
            }
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(LockError::from_tools(errors));
    }
    Ok(Lockfile {
        version: FORMAT_VERSION,
        inputs: run.inputs.digest(),
        platforms: run.inputs.platforms.clone(),
        extra_platforms: run.inputs.extra_platforms.clone(),
        upstreams: Some(run.inputs.upstreams_digest()),
        base: run.previous.and_then(|p| p.base.clone()),
        tools: locked,
    })
}

/// npm and pipx tools run on a node/python locked in the same run.
fn needs_runtime(backends: &Backends, tool: &WantedTool) -> bool {
    select_backend(backends, tool).is_ok_and(|(b, _)| matches!(b.kind, BackendKind::Npm | BackendKind::Pipx))
}

/// The first candidate backend this build can lock.
fn select_backend<'b>(
    backends: &'b Backends,
    tool: &WantedTool,
) -> Result<(BackendRef, &'b Arc<dyn Backend>), ResolveError> {
    if tool.id.backends.is_empty() {
        let hint = match tool.id.suggestion() {
            Some(s) => {
                format!("did you mean `{s}`? Otherwise write it with its backend, e.g. `github:owner/{}`", tool.name)
            }
            None => format!("write it with its backend, e.g. `github:owner/{}` or `npm:{}`", tool.name, tool.name),
        };
        return Err(ResolveError::Unsupported(format!(
            "unknown tool `{}`: sbx's registry has no backend for it; {hint}",
            tool.name
        )));
    }
    for candidate in &tool.id.backends {
        if let Some(b) = backends.get(&candidate.kind) {
            return Ok((candidate.clone(), b));
        }
    }
    let names: Vec<String> = tool.id.backends.iter().map(|b| b.to_string()).collect();
    let supported: Vec<&str> = backends.keys().map(|k| k.prefix()).collect();
    let via = if names == [tool.name.clone()] { String::new() } else { format!(" (through {})", names.join(", ")) };
    Err(ResolveError::Unsupported(format!(
        "`{}`{via} is not supported yet: sbx locks the backends {}",
        tool.name,
        supported.join(", ")
    )))
}

async fn lock_tool(
    run: &LockRun<'_>,
    tool: &WantedTool,
    runtimes: &BTreeMap<String, String>,
) -> Result<Vec<LockedTool>, Vec<ToolLockError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for wanted in &tool.versions {
        let request = wanted.request.to_string();
        run.progress.resolving(&tool.name, &request);
        match lock_version(run, tool, wanted, runtimes).await {
            Ok((locked, kept)) => {
                run.progress.locked(&tool.name, &request, &locked.version, kept);
                out.push(locked);
            }
            Err(error) => {
                run.progress.failed(&tool.name, &request);
                errors.push(ToolLockError::new(&tool.name, &wanted.origin, error));
            }
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

async fn lock_version(
    run: &LockRun<'_>,
    tool: &WantedTool,
    wanted: &WantedVersion,
    runtimes: &BTreeMap<String, String>,
) -> Result<(LockedTool, bool), ResolveError> {
    match &wanted.request {
        VersionRequest::Path(p) => {
            return Err(ResolveError::Unsupported(format!(
                "`{}` points at a host directory ({}); an image cannot contain it — pin a version for the sandbox in .sbx.toml [tools]",
                tool.name,
                p.display()
            )));
        }
        VersionRequest::System => {
            return Err(ResolveError::Unsupported(format!(
                "`{}` = \"system\" uses whatever the host has; pin a version for the sandbox in .sbx.toml [tools]",
                tool.name
            )));
        }
        VersionRequest::Ref(r) => {
            return Err(ResolveError::Unsupported(format!(
                "`{}` = \"ref:{r}\" is built from source by mise; sbx locks released versions only — pin a release in .sbx.toml [tools]",
                tool.name
            )));
        }
        _ => {}
    }
    let (backend_ref, backend) = select_backend(run.backends, tool)?;
    let mut backend_ref = backend_ref;
    for (k, v) in &wanted.options {
        backend_ref.options.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let backend_name = backend_ref.to_string();
    let request_text = wanted.request.to_string();
    let upgrading = run.upgrade.applies(&tool.name);
    let ctx = ResolveContext {
        fetch: run.fetch,
        upstreams: &run.inputs.upstreams,
        platforms: &run.inputs.platforms,
        runtimes,
    };
    let previous: Vec<&LockedTool> = run
        .previous
        .and_then(|p| p.tools.get(&tool.name))
        .map(|v| v.iter().filter(|t| t.backend == backend_name).collect())
        .unwrap_or_default();
    let mise_pins = run.mise_pins.get(&tool.name);
    // A lock made against other mirrors (known from its upstreams digest) has their URLs: its
    // pins are kept below, but described again against the current upstreams.
    let same_upstreams = run
        .previous
        .and_then(|p| p.upstreams.as_deref())
        .is_none_or(|previous| previous == run.inputs.upstreams_digest());
    if !upgrading && same_upstreams {
        // Unchanged request, options and platforms, and no mise.lock pin saying otherwise: keep
        // the entry as it is, no network.
        let platforms: BTreeSet<_> = run.inputs.platforms.iter().collect();
        if let Some(same) = previous.iter().find(|t| {
            t.request == request_text
                && t.options == backend_ref.options
                && covers(t, &platforms)
                && mise_pins.is_none_or(|pins| pins.contains(&t.version))
        }) {
            return Ok(((*same).clone(), true));
        }
    }
    // mise.lock pins win over resolution: the host already runs that version.
    if let Some(pins) = mise_pins {
        return match pins.iter().find(|v| request_matches(&wanted.request, v)) {
            Some(v) => Ok((backend.lock(&ctx, &backend_ref, &wanted.request, v).await?, false)),
            None => Err(ResolveError::Unsupported(format!(
                "mise.lock pins {} {} but the config asks for `{}`: run `mise lock` (or `mise upgrade {}`) so the host agrees, or change the request",
                tool.name,
                pins.join(", "),
                wanted.request,
                tool.name
            ))),
        };
    }
    // A previous pin that still matches the new request is kept (re-locked for new platforms).
    if !upgrading && let Some(prev) = previous.iter().find(|t| request_matches(&wanted.request, &t.version)) {
        return Ok((backend.lock(&ctx, &backend_ref, &wanted.request, &prev.version).await?, true));
    }
    let version = backend.resolve(&ctx, &backend_ref, &wanted.request).await?;
    Ok((backend.lock(&ctx, &backend_ref, &wanted.request, &version).await?, false))
}

/// Whether an entry has an artifact (or a closure) for every platform.
fn covers(t: &LockedTool, platforms: &BTreeSet<&crate::Platform>) -> bool {
    if !t.packages.is_empty() {
        return true;
    }
    t.platforms.keys().collect::<BTreeSet<_>>() == *platforms
}

/// Whether an already-pinned version satisfies a request without asking the network.
pub fn request_matches(request: &VersionRequest, version: &str) -> bool {
    match request {
        VersionRequest::Version(v) => VersionRequest::fuzzy_matches(v, version),
        VersionRequest::Prefix(p) => version.strip_prefix('v').unwrap_or(version).starts_with(p.as_str()),
        // `latest`, `lts` and `sub-N:` are kept as long as the request text is unchanged;
        // moving them forward is what `--upgrade` is for.
        VersionRequest::Latest | VersionRequest::Lts(_) | VersionRequest::Sub { .. } => true,
        VersionRequest::Ref(_) | VersionRequest::Path(_) | VersionRequest::System => false,
    }
}

#[cfg(test)]
mod tests;
