//! `pipx:<package>`: a Python application and its whole dependency closure, wheels only, per
//! platform, for the Python the image runs it with.
//!
//! * Python: `ctx.runtimes["python"]` when python is locked in the same run, else
//!   [`DEFAULT_PYTHON`]; recorded as the tool's `runtime` (`python@3.12.7`).
//! * Version: mise's rules ([`matching::select`]) over the releases not entirely yanked.
//! * Closure: [`Resolver`] per platform, the platforms at once (markers evaluated for that
//!   platform, the best wheel for its tags); the per-platform pins are merged: the same wheel
//!   on every platform is one entry with `platforms = []`, platform-specific wheels list their
//!   platforms.
//! * Projects come from the index's simple API ([`fetch_project`]), each release's `Requires-Dist`
//!   from the METADATA of one of its wheels ([`metadata_wheel`], [`fetch_requires`]), fetched
//!   concurrently ([`CONCURRENCY`] at a time), round by round as the resolver asks. Meanwhile
//!   [`prefetch`] walks the closure the resolver will most likely ask for, each step as soon
//!   as the one before it answered, so a round finds its documents fetched or on their way;
//!   it only warms the HTTP client, the resolver sees the same data either way.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::{self, Either};
use futures::stream::FuturesUnordered;
use futures::{StreamExt, TryStreamExt};
use pep508_rs::pep440_rs::Version;
use pep508_rs::{ExtraName, Requirement, VerbatimUrl};

use super::pypi::metadata::{WHOLE_WHEEL, fetch_provided_extras, fetch_requires};
use super::pypi::project::{File, Project, normalize};
use super::pypi::resolver::{Failure, Need, Pinned, Resolver, Store, best_wheel, installable};
use super::pypi::simple::{fetch_project, simple_url};
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
    from_pypi(tool)?;
    fetch_project(ctx, &tool.name).await?.ok_or_else(|| no_project(ctx, tool))
}

/// Refuses mise's other pipx sources (`pipx:psf/black` from GitHub, `git+https://…`, URLs):
/// sbx locks PyPI releases only.
fn from_pypi(tool: &BackendRef) -> Result<(), ResolveError> {
    if tool.name.contains('/') || tool.name.contains(':') {
        return Err(ResolveError::Unsupported(format!(
            "`{tool}` installs from git or a URL, which is not supported yet: sbx locks PyPI releases only; write \
             `pipx:<project>` with the name `pip install` takes"
        )));
    }
    Ok(())
}

fn no_project(ctx: &ResolveContext<'_>, tool: &BackendRef) -> ResolveError {
    ResolveError::NoMatch {
        tool: tool.to_string(),
        request: format!("any version ({} has no project `{}`; check the name)", ctx.upstreams.pypi, tool.name),
        nearest: Vec::new(),
    }
}

/// The extras mise's `extras` option asks for (`extras = "postgres,mysql"`: `harlequin[postgres,mysql]`),
/// whose requirements join the tool's closure.
pub fn extras(tool: &BackendRef) -> Result<Vec<ExtraName>, ResolveError> {
    let Some(list) = tool.options.get("extras") else { return Ok(Vec::new()) };
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            ExtraName::from_str(e).map_err(|err| {
                ResolveError::Unsupported(format!(
                    "{tool}: `extras = \"{list}\"`: `{e}` is not an extra name ({err}); write the extras as \
                     `extras = \"one,two\"`"
                ))
            })
        })
        .collect()
}

/// Releases that have at least one file that is not yanked, oldest first.
fn sorted_versions(project: &Project) -> Vec<String> {
    let releases = project.releases_newest_first().into_iter().rev();
    releases.filter(|(_, _, files)| files.iter().any(|f| !f.yanked)).map(|(_, key, _)| key.to_string()).collect()
}

/// The version of the tool a request means, with mise's rules ([`matching::select`]) over the
/// releases that are not entirely yanked.
pub fn select(tool: &BackendRef, project: &Project, request: &VersionRequest) -> Result<String, ResolveError> {
    matching::select(&tool.to_string(), &sorted_versions(project), request)
}

/// Fetches what the resolver needs; a release's `Requires-Dist` is read from the wheel
/// [`metadata_wheel`] names among the wheels `targets` install.
async fn fetch_needs(
    ctx: &ResolveContext<'_>,
    store: &mut Store,
    needs: BTreeSet<Need>,
    targets: &[Target],
) -> Result<(), ResolveError> {
    enum Got {
        Project(String, Option<Arc<Project>>),
        Requires(String, String, Vec<String>),
    }
    let projects = &store.projects;
    let got: Vec<Got> = futures::stream::iter(needs)
        .map(|need| async move {
            match need {
                Need::Project(name) => Ok(Got::Project(name.clone(), fetch_project(ctx, &name).await?)),
                Need::Requires { name, version } => {
                    let wheel =
                        projects.get(&name).and_then(|p| metadata_wheel(p.files_of(&version)?, targets)).ok_or_else(
                            || ResolveError::Unsupported(format!("internal: no wheel of {name} {version} to read")),
                        )?;
                    let lines = fetch_requires(ctx, wheel).await?;
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

/// The wheel whose METADATA gives a release's `Requires-Dist` on every platform. A release's
/// wheels declare the same dependencies (platform differences are written as markers, which
/// each target evaluates), as uv assumes too, so one read serves every platform:
///
/// * the smallest wheel one of `targets` can install when it is small enough for
///   [`fetch_requires`] to download whole ([`WHOLE_WHEEL`]: black's 207 kB `py3-none-any`
///   wheel instead of range reads of its 1.8 MB x86_64 one);
/// * else the best wheel of the first target that has one: range reads cost the same whatever
///   the wheel's size, and caching proxies in front of an index hold the first platform's
///   (x86_64) wheels far more often than the others.
fn metadata_wheel<'f>(files: &'f [File], targets: &[Target]) -> Option<&'f File> {
    let small = targets.iter().enumerate().flat_map(|(i, target)| {
        installable(files, target)
            .filter_map(move |(rank, f)| Some(((f.size.filter(|&s| s <= WHOLE_WHEEL)?, i, rank, &f.filename), f)))
    });
    small.min_by(|a, b| a.0.cmp(&b.0)).map(|(_, f)| f).or_else(|| targets.iter().find_map(|t| best_wheel(files, t)))
}

/// The closure of `tool[extras]==version` on `target`, fetching metadata round by round while
/// [`prefetch`] runs ahead; `targets` are all the lock's ([`metadata_wheel`]).
pub async fn resolve_for(
    ctx: &ResolveContext<'_>,
    tool: &BackendRef,
    version: &str,
    extras: &[ExtraName],
    target: &Target,
    targets: &[Target],
) -> Result<Vec<Pinned>, ResolveError> {
    let rounds = std::pin::pin!(async {
        let mut resolver = Resolver::default();
        resolver.root_extras = extras.to_vec();
        let mut store = Store::default();
        loop {
            match resolver.resolve(&store, &tool.name, version, target) {
                Ok(pinned) => return Ok(pinned),
                Err(Failure::Missing(needs)) => fetch_needs(ctx, &mut store, needs, targets).await?,
                Err(f) => return Err(failure(ctx, tool, version, target, f)),
            }
        }
    });
    // The rounds decide; what the prefetch has not fetched when they are done is dropped.
    let prefetch = prefetch(ctx, &tool.name, version, extras, target, targets);
    match future::select(rounds, std::pin::pin!(prefetch)).await {
        Either::Left((pinned, _)) => pinned,
        Either::Right(((), rounds)) => rounds.await,
    }
}

/// Fetches, ahead of the resolver, what it will most likely ask for: each project's
/// document, the METADATA of the release it would most likely get ([`likely_release`]), and
/// the projects that release requires on `target` (markers evaluated, the tool's extras
/// only), each step as soon as the one before it answered. Failures are left for the resolver
/// to meet.
async fn prefetch(
    ctx: &ResolveContext<'_>,
    root: &str,
    version: &str,
    extras: &[ExtraName],
    target: &Target,
    targets: &[Target],
) {
    let root = normalize(root);
    let mut seen = BTreeSet::from([root.clone()]);
    let mut steps = FuturesUnordered::new();
    steps.push(prefetch_step(ctx, root, Some((version, extras)), target, targets));
    while let Some(names) = steps.next().await {
        for name in names {
            if seen.insert(name.clone()) {
                steps.push(prefetch_step(ctx, name, None, target, targets));
            }
        }
    }
}

/// One project of [`prefetch`]: the projects its likely release requires on `target`; `root`
/// is the version and extras of the tool itself.
async fn prefetch_step(
    ctx: &ResolveContext<'_>,
    name: String,
    root: Option<(&str, &[ExtraName])>,
    target: &Target,
    targets: &[Target],
) -> Vec<String> {
    let Ok(Some(project)) = fetch_project(ctx, &name).await else { return Vec::new() };
    let (exact, extras) = root.map_or((None, &[][..]), |(version, extras)| (Some(version), extras));
    let Some(wheel) = likely_release(&project, exact, target, targets) else { return Vec::new() };
    let Ok(lines) = fetch_requires(ctx, wheel).await else { return Vec::new() };
    lines
        .iter()
        .filter_map(|line| Requirement::<VerbatimUrl>::from_str(line).ok())
        .filter(|req| req.evaluate_markers(&target.markers, extras))
        .map(|req| normalize(req.name.as_ref()))
        .collect()
}

/// The wheel whose METADATA ([`metadata_wheel`]) gives the `Requires-Dist` of the release of
/// `project` the resolver most likely picks on `target`: `exact` when given, else the newest
/// release that is not a prerelease and has a wheel for the target.
fn likely_release<'p>(
    project: &'p Project,
    exact: Option<&str>,
    target: &Target,
    targets: &[Target],
) -> Option<&'p File> {
    let exact = exact.and_then(|v| Version::from_str(v).ok());
    project
        .releases_newest_first()
        .into_iter()
        .filter(|(v, _, _)| exact.as_ref().map_or(!v.any_prerelease(), |e| e == v))
        .find(|(_, _, files)| best_wheel(files, target).is_some())
        .and_then(|(_, _, files)| metadata_wheel(files, targets))
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
            simple_url(&ctx.upstreams.pypi, &package),
            tool.name
        )),
        Failure::NoVersion { package, spec, required_by } => ResolveError::NoMatch {
            tool: format!(
                "{package} (required by {required_by}, in the closure of {tool} {version} on python {python})"
            ),
            request: spec,
            nearest: Vec::new(),
        },
        Failure::NoWheel { package, version: dep_version, requires_python, newest_usable } => {
            let is_tool = package == normalize(&tool.name);
            let in_closure =
                if is_tool { package.clone() } else { format!("{package} (in the closure of {tool} {version})") };
            let fits = match requires_python {
                Some(_) => format!("runs on python {python}"),
                None => format!("has a wheel for {platform}"),
            };
            let older = match &newest_usable {
                Some(v) if is_tool => format!("pin {tool} to {v}, the newest release that {fits}"),
                Some(v) => format!("pin a version of {tool} that takes {package} {v} or older"),
                None => format!("pick another version of {tool}"),
            };
            match requires_python {
                Some(rp) => ResolveError::PythonTooOld {
                    package: in_closure,
                    version: dep_version,
                    help: format!(
                        "set python in [tools] to a version that satisfies {rp} (sbx locks pipx tools for it), or {older}"
                    ),
                    requires_python: rp,
                    python: python.clone(),
                },
                None => ResolveError::NoArtifact {
                    tool: in_closure,
                    version: dep_version,
                    platform,
                    detail: format!(
                        "no {}; sbx installs wheels only: {older}, set another python, or remove {platform} from \
                         [image] platforms",
                        target.describe()
                    ),
                },
            }
        }
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

/// An error when the release does not define one of the `extras` asked for (its METADATA's
/// `Provides-Extra`): pip and uv would only warn and install the tool without it.
async fn check_extras(
    ctx: &ResolveContext<'_>,
    tool: &BackendRef,
    version: &str,
    extras: &[ExtraName],
    targets: &[Target],
) -> Result<(), ResolveError> {
    if extras.is_empty() {
        return Ok(());
    }
    let project = root_project(ctx, tool).await?;
    let Some(wheel) = project.files_of(version).and_then(|files| metadata_wheel(files, targets)) else { return Ok(()) };
    let provided = fetch_provided_extras(ctx, wheel).await?;
    let unknown: Vec<String> =
        extras.iter().map(ToString::to_string).filter(|e| !provided.contains(&normalize(e))).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let defined = if provided.is_empty() { "none".to_string() } else { provided.join(", ") };
    Err(ResolveError::Unsupported(format!(
        "{tool} {version} has no extra {}; it defines: {defined} (its METADATA's Provides-Extra); fix `extras` \
         in the tool's options",
        unknown.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", "),
    )))
}

/// The sizes an index's pages do not list (PEP 503 HTML pages carry none), as the server
/// announces them: one HEAD per such wheel.
async fn fill_sizes(ctx: &ResolveContext<'_>, packages: &mut [LockedPackage]) -> Result<(), ResolveError> {
    let missing: Vec<(usize, String)> = packages
        .iter()
        .enumerate()
        .filter(|(_, p)| p.artifact.size.is_none())
        .map(|(i, p)| (i, p.artifact.url.clone()))
        .collect();
    let mut sizes = futures::stream::iter(missing)
        .map(|(i, url)| async move { ctx.fetch.size_of(&url).await.map(|size| (i, size)) })
        .buffered(CONCURRENCY);
    while let Some((i, size)) = sizes.try_next().await? {
        if let Some(package) = packages.get_mut(i) {
            package.artifact.size = size;
        }
    }
    Ok(())
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
        select(tool, &*root_project(ctx, tool).await?, request)
    }

    async fn lock(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
        version: &str,
    ) -> Result<LockedTool, ResolveError> {
        from_pypi(tool)?;
        let python = python_version(ctx);
        let extras = extras(tool)?;
        let targets = ctx
            .platforms
            .iter()
            .map(|&platform| Target::new(platform, &python))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ResolveError::Unsupported(format!("{tool}: {e}")))?;
        // All platforms at once; the first platform's error is the one reported, as it would be
        // one platform after the other.
        if targets.is_empty() {
            return Err(ResolveError::Unsupported(format!("{tool}: no platform to lock for")));
        }
        let resolved =
            future::join_all(targets.iter().map(|target| resolve_for(ctx, tool, version, &extras, target, &targets)))
                .await;
        let mut pins = Vec::new();
        for (target, pinned) in targets.iter().zip(resolved) {
            pins.push((target.platform, pinned?));
        }
        check_extras(ctx, tool, version, &extras, &targets).await?;
        let mut packages = merge(pins);
        fill_sizes(ctx, &mut packages).await?;
        Ok(LockedTool {
            backend: tool.to_string(),
            request: request.to_string(),
            version: version.to_string(),
            runtime: Some(format!("python@{python}")),
            options: tool.options.clone(),
            platforms: BTreeMap::new(),
            packages,
        })
    }
}

#[cfg(test)]
#[path = "pipx_tests.rs"]
mod tests;
