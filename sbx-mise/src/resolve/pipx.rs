//! `pipx:<package>`: a Python application and its whole dependency closure, wheels only, per
//! platform, for the Python the image runs it with.
//!
//! * Python: `ctx.runtimes["python"]` when python is locked in the same run, else
//!   [`DEFAULT_PYTHON`]; recorded as the tool's `runtime` (`python@3.12.7`).
//! * Version: mise's rules ([`matching::select`]) over the releases not entirely yanked.
//! * Closure: [`Resolver`] per platform (markers evaluated for that platform, the best wheel
//!   for its tags); the per-platform pins are merged: the same wheel on every platform is one
//!   entry with `platforms = []`, platform-specific wheels list their platforms.
//! * Metadata comes from PyPI's JSON API, fetched concurrently ([`CONCURRENCY`] at a time),
//!   round by round as the resolver asks. Meanwhile the projects that the newest release of
//!   each project already known requires on the target are requested on a guess (an older
//!   release usually requires the same), so the round that asks for them finds them fetched;
//!   the guess only warms the HTTP client, the resolver sees the same data either way.
//! * An exact version comes from its release page when the index serves one and it answers
//!   before the project document (`Root`); the lock is the same either way.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::{self, Either};
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use pep508_rs::pep440_rs::Version;
use pep508_rs::{Requirement, VerbatimUrl};

use super::pypi::project::{Project, fetch_project, fetch_release, fetch_requires, normalize, project_url};
use super::pypi::resolver::{Failure, Need, Pinned, Resolver, Store};
use super::pypi::target::{DEFAULT_PYTHON, Target};
use super::{Backend, ResolveContext, ResolveError, matching};
use crate::lockfile::{Artifact, Checksum, LockedPackage, LockedTool};
use crate::{BackendRef, Platform, VersionRequest};

/// PyPI requests in flight at once.
pub const CONCURRENCY: usize = 16;

/// The `pipx:` backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct PipxBackend;

/// The `pipx:` backend, for the backend registry.
pub static PIPX: PipxBackend = PipxBackend;

/// The Python version pipx tools are locked for in this run.
pub fn python_version(ctx: &ResolveContext<'_>) -> String {
    ctx.runtimes.get("python").cloned().unwrap_or_else(|| DEFAULT_PYTHON.to_string())
}

async fn root_project(ctx: &ResolveContext<'_>, tool: &BackendRef) -> Result<Arc<Project>, ResolveError> {
    fetch_project(ctx, &tool.name).await?.ok_or_else(|| no_project(ctx, tool))
}

fn no_project(ctx: &ResolveContext<'_>, tool: &BackendRef) -> ResolveError {
    ResolveError::NoMatch {
        tool: tool.to_string(),
        request: format!("any version ({} has no project `{}`; check the name)", ctx.upstreams.pypi, tool.name),
        nearest: Vec::new(),
    }
}

/// The document `tool==version` is resolved and locked from.
enum Root {
    /// Its release page ([`fetch_release`]), which answered first: it settles an exact version
    /// and stands for the tool's project in the lock.
    Release(Arc<Project>),
    /// The project document (`None`: the index has no such project).
    Project(Option<Arc<Project>>),
}

/// Races the release page of `tool==version` against the project document. Both are memoized
/// by the HTTP client, so the race in `lock` ends as the one in `resolve` did; a missing page
/// (many mirrors serve none) waits for the project document, already on its way.
///
/// When the project document answers first and `version` is not its newest release, the page
/// is waited for too: the lock needs that release's `Requires-Dist`, which the page settles
/// ([`fetch_requires`]), and a page dropped here would be asked for again from the start.
async fn root_document(ctx: &ResolveContext<'_>, tool: &BackendRef, version: &str) -> Result<Root, ResolveError> {
    let release = std::pin::pin!(fetch_release(ctx, &tool.name, version));
    let project = std::pin::pin!(fetch_project(ctx, &tool.name));
    match future::select(release, project).await {
        Either::Left((Some(release), _)) => Ok(Root::Release(release)),
        Either::Left((None, project)) => Ok(Root::Project(project.await?)),
        Either::Right((project, release)) => {
            let project = project?;
            let older = project.as_ref().is_some_and(|p| p.releases.contains_key(version) && !p.describes(version));
            if older && let Some(release) = release.await {
                return Ok(Root::Release(release));
            }
            Ok(Root::Project(project))
        }
    }
}

/// Releases that have at least one file that is not yanked, oldest first.
fn sorted_versions(project: &Project) -> Vec<String> {
    let mut parsed: Vec<(Version, &String)> = project
        .releases
        .iter()
        .filter(|(_, files)| files.iter().any(|f| !f.yanked))
        .filter_map(|(v, _)| Some((Version::from_str(v).ok()?, v)))
        .collect();
    parsed.sort();
    parsed.into_iter().map(|(_, v)| v.clone()).collect()
}

/// The version of the tool a request means, with mise's rules ([`matching::select`]) over the
/// releases that are not entirely yanked.
pub fn select(tool: &BackendRef, project: &Project, request: &VersionRequest) -> Result<String, ResolveError> {
    matching::select(&tool.to_string(), &sorted_versions(project), request)
}

async fn fetch_needs(ctx: &ResolveContext<'_>, store: &mut Store, needs: BTreeSet<Need>) -> Result<(), ResolveError> {
    enum Got {
        Project(String, Option<Arc<Project>>),
        Requires(String, String, Vec<String>),
    }
    let got: Vec<Got> = futures::stream::iter(needs)
        .map(|need| async move {
            match need {
                Need::Project(name) => Ok(Got::Project(name.clone(), fetch_project(ctx, &name).await?)),
                Need::Requires { name, version, wheel_url } => {
                    let lines = fetch_requires(ctx, &name, &version, &wheel_url).await?;
                    Ok::<_, ResolveError>(Got::Requires(name, version, lines))
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    for g in got {
        match g {
            Got::Project(name, Some(p)) => {
                store.projects.insert(name, p);
            }
            Got::Project(name, None) => {
                store.absent.insert(name);
            }
            Got::Requires(name, version, lines) => {
                store.requires.insert((name, version), lines);
            }
        }
    }
    Ok(())
}

/// The closure of `tool==version` on one target, fetching metadata round by round.
pub async fn resolve_for(
    ctx: &ResolveContext<'_>,
    store: &mut Store,
    tool: &BackendRef,
    version: &str,
    target: &Target,
) -> Result<Vec<Pinned>, ResolveError> {
    let mut resolver = Resolver::default();
    let mut guessed = Guessed::default();
    let mut warming = FuturesUnordered::new();
    loop {
        for name in likely_needed(store, target, &mut guessed) {
            let url = project_url(&ctx.upstreams.pypi, &name);
            warming.push(async move {
                let _ = ctx.fetch.get(&url).await;
            });
        }
        let needs = match resolver.resolve(store, &tool.name, version, target) {
            Ok(pinned) => return Ok(pinned),
            Err(Failure::Missing(needs)) => needs,
            Err(f) => return Err(failure(ctx, tool, version, target, f)),
        };
        let mut round = std::pin::pin!(fetch_needs(ctx, store, needs));
        loop {
            if warming.is_empty() {
                round.await?;
                break;
            }
            if let Either::Left((result, _)) = future::select(round.as_mut(), warming.next()).await {
                result?;
                break;
            }
        }
    }
}

/// What [`likely_needed`] has looked at and named so far.
#[derive(Default)]
struct Guessed {
    /// Projects whose requirements were read.
    read: BTreeSet<String>,
    /// Projects named.
    named: BTreeSet<String>,
}

/// Projects not fetched yet that the newest release of a project in `store` requires on
/// `target` (markers evaluated, no extras), each named once over the calls sharing `guessed`.
fn likely_needed(store: &Store, target: &Target, guessed: &mut Guessed) -> Vec<String> {
    let mut names = Vec::new();
    for (project, doc) in &store.projects {
        if !guessed.read.insert(project.clone()) {
            continue;
        }
        for line in doc.info.requires_dist.iter().flatten() {
            let Ok(req) = Requirement::<VerbatimUrl>::from_str(line) else { continue };
            let name = normalize(req.name.as_ref());
            if req.evaluate_markers(&target.markers, &[])
                && !store.projects.contains_key(&name)
                && !store.absent.contains(&name)
                && guessed.named.insert(name.clone())
            {
                names.push(name);
            }
        }
    }
    names
}

fn failure(ctx: &ResolveContext<'_>, tool: &BackendRef, version: &str, target: &Target, f: Failure) -> ResolveError {
    let platform = target.platform;
    let python = &target.python;
    match f {
        Failure::Missing(needs) => ResolveError::Unsupported(format!("internal: PyPI data missing: {needs:?}")),
        Failure::NotFound { package, required_by } => ResolveError::Unsupported(format!(
            "{tool} {version}: dependency `{package}` (required by {required_by}) does not exist on {} ({}); \
             check the PyPI setting (SBX_PYPI_URL) or pick another version of {}",
            ctx.upstreams.pypi,
            project_url(&ctx.upstreams.pypi, &package),
            tool.name
        )),
        Failure::NoVersion { package, spec, required_by } => ResolveError::NoMatch {
            tool: format!(
                "{package} (required by {required_by}, in the closure of {tool} {version} on python {python})"
            ),
            request: spec,
            nearest: Vec::new(),
        },
        Failure::NoWheel { package, version: dep_version } => ResolveError::NoArtifact {
            tool: format!("{package} (in the closure of {tool} {version})"),
            version: dep_version,
            platform,
            detail: format!(
                "no {}; sbx installs wheels only — pick another version, another python, or remove {platform} \
                 from [image] platforms",
                target.describe()
            ),
        },
        Failure::Unusable { package, detail } => {
            ResolveError::Unsupported(format!("{tool} {version}: dependency `{package}`: {detail}"))
        }
        Failure::Conflict { package } => ResolveError::Unsupported(format!(
            "{tool} {version}: the requirements on `{package}` could not be reconciled on {platform} with python \
             {python} (sbx's resolver is greedy with limited backtracking); pin another version of {}",
            tool.name
        )),
    }
}

/// Merges per-platform pins: one entry per (name, version, wheel URL), listing the platforms
/// that install it (empty when all do), sorted by name, version, URL.
pub fn merge(pins: Vec<(Platform, Vec<Pinned>)>) -> Vec<LockedPackage> {
    let all: BTreeSet<Platform> = pins.iter().map(|(p, _)| *p).collect();
    let mut merged: BTreeMap<(String, String, String), (Pinned, BTreeSet<Platform>)> = BTreeMap::new();
    for (platform, list) in pins {
        for p in list {
            let key = (p.name.clone(), p.version.clone(), p.url.clone());
            merged.entry(key).or_insert_with(|| (p, BTreeSet::new())).1.insert(platform);
        }
    }
    merged
        .into_values()
        .map(|(p, platforms)| LockedPackage {
            name: p.name,
            version: p.version,
            location: None,
            artifact: Artifact { url: p.url, checksum: Checksum::Sha256(p.sha256), size: p.size },
            platforms: if platforms == all { Vec::new() } else { platforms.into_iter().collect() },
        })
        .collect()
}

#[async_trait]
impl Backend for PipxBackend {
    async fn list_versions(&self, ctx: &ResolveContext<'_>, tool: &BackendRef) -> Result<Vec<String>, ResolveError> {
        Ok(sorted_versions(&*root_project(ctx, tool).await?))
    }

    async fn resolve(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
    ) -> Result<String, ResolveError> {
        // A version that exists exactly is taken as is ([`matching::fuzzy`]): its release page
        // settles it when the index serves one.
        let project = match request {
            VersionRequest::Version(v) => match root_document(ctx, tool, v).await? {
                Root::Release(_) => return Ok(v.clone()),
                Root::Project(project) => project.ok_or_else(|| no_project(ctx, tool))?,
            },
            _ => root_project(ctx, tool).await?,
        };
        select(tool, &project, request)
    }

    async fn lock(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
        version: &str,
    ) -> Result<LockedTool, ResolveError> {
        let python = python_version(ctx);
        let mut store = Store::default();
        if let Root::Release(release) = root_document(ctx, tool, version).await? {
            store.projects.insert(normalize(&tool.name), release);
        }
        let mut pins = Vec::new();
        for &platform in ctx.platforms {
            let target =
                Target::new(platform, &python).map_err(|e| ResolveError::Unsupported(format!("{tool}: {e}")))?;
            pins.push((platform, resolve_for(ctx, &mut store, tool, version, &target).await?));
        }
        Ok(LockedTool {
            backend: tool.to_string(),
            request: request.to_string(),
            version: version.to_string(),
            runtime: Some(format!("python@{python}")),
            options: tool.options.clone(),
            platforms: BTreeMap::new(),
            packages: merge(pins),
        })
    }
}

#[cfg(test)]
#[path = "pipx_tests.rs"]
mod tests;
