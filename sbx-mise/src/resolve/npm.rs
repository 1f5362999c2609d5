//! `npm:<package>`: the package's version from its packument, then the whole dependency
//! closure as npm would install it globally, per platform, every tarball pinned by its sha512.
//!
//! * Version: `latest` is the `latest` dist-tag; a plain version is an exact version or a
//!   fuzzy prefix (mise's rules, [`super::matching`]).
//! * Closure: [`layout`] builds the `node_modules` tree for each platform (hoisted, nested
//!   only on conflicts, optional platform packages only where their `os`/`cpu`/`libc` match;
//!   linux targets are glibc). Trees of all platforms are merged: a package found at the same
//!   location with the same version on every platform gets `platforms = []`, others list the
//!   platforms that install them.
//! * Checksums: the registry's sha512 `integrity`. A version that only publishes a sha1
//!   `shasum` is downloaded and its sha256 recorded; no package is ever left without one.
//! * Packuments are fetched in full (`GET <registry>/<name>`), once per name per lock, each
//!   as soon as a packument naming it has arrived ([`prefetch`]), not level by level.

pub mod layout;
mod lenient;
pub mod packument;
pub mod prefetch;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};

use self::layout::{LayoutError, PackumentStore, Placed};
use self::packument::Packument;
use super::{Backend, FetchError, ResolveContext, ResolveError, documents, matching};
use crate::lockfile::{Artifact, LockedPackage, LockedTool};
use crate::{BackendRef, Platform, VersionRequest};

/// Packument requests in flight at once.
pub const CONCURRENCY: usize = 16;

/// The `npm:` backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct NpmBackend;

/// The `npm:` backend, for the backend registry.
pub static NPM: NpmBackend = NpmBackend;

/// The registry URL of a package's packument (`@scope/name` → `@scope%2fname`).
pub fn packument_url(registry: &str, name: &str) -> String {
    format!("{}/{}", registry.trim_end_matches('/'), name.replace('/', "%2f"))
}

/// Fetches and parses one packument; `None` when the registry has no such package (404).
/// Parsed once per run and shared ([`documents::parsed`]).
pub async fn fetch_packument(ctx: &ResolveContext<'_>, name: &str) -> Result<Option<Arc<Packument>>, ResolveError> {
    let url = packument_url(&ctx.upstreams.npm, name);
    let body = match ctx.fetch.get(&url).await {
        Ok(body) => body,
        Err(FetchError::Status { status: 404, .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let source = url.clone();
    let doc = documents::parsed(ctx.fetch, &url, body, move |body| {
        let mut doc: Packument = serde_json::from_slice(body)
            .map_err(|e| ResolveError::Malformed { url: source, message: format!("not a packument: {e}") })?;
        packument::add_script_installed_platform_packages(&mut doc);
        Ok::<_, ResolveError>(doc)
    });
    Ok(Some(doc.await?))
}

/// Adds the packuments of `names` to `store`, fetching concurrently.
pub async fn fill(
    ctx: &ResolveContext<'_>,
    store: &mut PackumentStore,
    names: BTreeSet<String>,
) -> Result<(), ResolveError> {
    let fetched: Vec<(String, Option<Arc<Packument>>)> = futures::stream::iter(names)
        .map(|name| async move { fetch_packument(ctx, &name).await.map(|doc| (name, doc)) })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    for (name, doc) in fetched {
        match doc {
            Some(doc) => {
                store.found.insert(name, doc);
            }
            None => {
                store.absent.insert(name);
            }
        }
    }
    Ok(())
}

async fn root_packument(ctx: &ResolveContext<'_>, tool: &BackendRef) -> Result<Arc<Packument>, ResolveError> {
    fetch_packument(ctx, &tool.name).await?.ok_or_else(|| ResolveError::NoMatch {
        tool: tool.to_string(),
        request: format!("any version ({} has no package `{}`; check the name)", ctx.upstreams.npm, tool.name),
        nearest: Vec::new(),
    })
}

fn sorted_versions(doc: &Packument) -> Vec<String> {
    let mut parsed: Vec<(nodejs_semver::Version, &String)> =
        doc.versions.keys().filter_map(|v| Some((nodejs_semver::Version::parse(v).ok()?, v))).collect();
    parsed.sort();
    parsed.into_iter().map(|(_, v)| v.clone()).collect()
}

/// The version of the tool a request means: `latest` is the `latest` dist-tag; every other form
/// follows mise's rules ([`matching::select`]: exact or fuzzy prefix, `prefix:`, `sub-N:`).
pub fn select(tool: &BackendRef, doc: &Packument, request: &VersionRequest) -> Result<String, ResolveError> {
    if *request == VersionRequest::Latest
        && let Some(latest) = doc.dist_tags.get("latest").filter(|v| doc.versions.contains_key(*v))
    {
        return Ok(latest.clone());
    }
    matching::select(&tool.to_string(), &sorted_versions(doc), request)
}

/// The tree for one platform, fetching packuments round by round until none is missing.
pub async fn layout_for(
    ctx: &ResolveContext<'_>,
    store: &mut PackumentStore,
    tool: &BackendRef,
    version: &str,
    platform: Platform,
) -> Result<Vec<Placed>, ResolveError> {
    loop {
        match layout::layout(store, &tool.name, version, platform) {
            Ok(placed) => return Ok(placed),
            Err(LayoutError::Missing(names)) => fill(ctx, store, names).await?,
            Err(e) => return Err(layout_error(ctx, store, tool, version, platform, e)),
        }
    }
}

fn layout_error(
    ctx: &ResolveContext<'_>,
    store: &PackumentStore,
    tool: &BackendRef,
    version: &str,
    platform: Platform,
    e: LayoutError,
) -> ResolveError {
    match e {
        LayoutError::Missing(names) => ResolveError::Unsupported(format!("internal: packuments missing: {names:?}")),
        LayoutError::NotFound { package, required_by } => ResolveError::Unsupported(format!(
            "{tool} {version}: dependency `{package}` (required by {required_by}) does not exist on {}; \
             check the registry setting (SBX_NPM_URL) or pick another version of {}",
            ctx.upstreams.npm, tool.name
        )),
        LayoutError::NoVersion { package, spec, required_by } => ResolveError::NoMatch {
            tool: format!("{package} (required by {required_by}, in the closure of {tool} {version})"),
            request: spec,
            nearest: store
                .found
                .get(&package)
                .map(|d| sorted_versions(d).into_iter().rev().take(5).collect())
                .unwrap_or_default(),
        },
        LayoutError::Unsupported { package, spec, required_by } => ResolveError::Unsupported(format!(
            "{tool} {version}: dependency `{package}@{spec}` (required by {required_by}) is not a registry \
             version; sbx locks registry packages only — pick a version of {} without it",
            tool.name
        )),
        LayoutError::Platform { package } => ResolveError::NoArtifact {
            tool: tool.to_string(),
            version: version.to_string(),
            platform,
            detail: format!(
                "the required package {package} does not install there (its os/cpu/libc exclude it); \
                 remove {platform} from [image] platforms or pick another version"
            ),
        },
    }
}

/// Turns a placed package into a lockfile entry, downloading it for a sha256 when the registry
/// publishes only a sha1.
async fn pin(
    ctx: &ResolveContext<'_>,
    placed: Placed,
    platforms: Vec<Platform>,
) -> Result<LockedPackage, ResolveError> {
    let url = placed.dist.tarball.clone();
    if url.is_empty() {
        return Err(ResolveError::Malformed {
            url: packument_url(&ctx.upstreams.npm, &placed.name),
            message: format!("{}@{} has no dist.tarball", placed.name, placed.version),
        });
    }
    let (checksum, size) = match placed.dist.sha512() {
        Some(sum) => (sum, None),
        None => {
            let (hex, size) = ctx.fetch.sha256_of(&url).await?;
            (crate::lockfile::Checksum::Sha256(hex), Some(size))
        }
    };
    Ok(LockedPackage {
        name: placed.name,
        version: placed.version,
        location: Some(placed.location),
        artifact: Artifact { url, checksum, size },
        platforms,
    })
}

/// Merges per-platform trees: one entry per (location, name, version), with the platforms that
/// install it (empty when all do), sorted by location then name.
pub fn merge(trees: Vec<(Platform, Vec<Placed>)>) -> Vec<(Placed, Vec<Platform>)> {
    let all: BTreeSet<Platform> = trees.iter().map(|(p, _)| *p).collect();
    let mut merged: BTreeMap<(String, String, String), (Placed, BTreeSet<Platform>)> = BTreeMap::new();
    for (platform, placed) in trees {
        for p in placed {
            let key = (p.location.clone(), p.name.clone(), p.version.clone());
            merged.entry(key).or_insert_with(|| (p, BTreeSet::new())).1.insert(platform);
        }
    }
    merged
        .into_values()
        .map(|(p, platforms)| {
            let platforms = if platforms == all { Vec::new() } else { platforms.into_iter().collect() };
            (p, platforms)
        })
        .collect()
}

#[async_trait]
impl Backend for NpmBackend {
    async fn list_versions(&self, ctx: &ResolveContext<'_>, tool: &BackendRef) -> Result<Vec<String>, ResolveError> {
        Ok(sorted_versions(&*root_packument(ctx, tool).await?))
    }

    async fn resolve(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
    ) -> Result<String, ResolveError> {
        // An exact version is settled by its version document, a few kilobytes; the whole
        // packument (eslint's is 1.7 MB) is read only for ranges, tags and `latest`.
        if let VersionRequest::Version(v) = request
            && v.split('.').count() == 3
            && nodejs_semver::Version::parse(v).is_ok()
            && prefetch::fetch_version_document(ctx, &tool.name, v).await.is_some()
        {
            return Ok(v.clone());
        }
        select(tool, &*root_packument(ctx, tool).await?, request)
    }

    async fn lock(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
        version: &str,
    ) -> Result<LockedTool, ResolveError> {
        let mut store = PackumentStore::default();
        prefetch::prefetch(ctx, &mut store, &tool.name, version, ctx.platforms).await;
        let mut trees = Vec::new();
        for &platform in ctx.platforms {
            trees.push((platform, layout_for(ctx, &mut store, tool, version, platform).await?));
        }
        let packages: Vec<LockedPackage> = futures::stream::iter(merge(trees))
            .map(|(placed, platforms)| pin(ctx, placed, platforms))
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(LockedTool {
            backend: tool.to_string(),
            request: request.to_string(),
            version: version.to_string(),
            runtime: ctx.runtimes.get("node").map(|v| format!("node@{v}")),
            options: tool.options.clone(),
            platforms: BTreeMap::new(),
            packages,
        })
    }
}

/// Checks a locked npm closure against the registry: for every platform, every dependency range
/// of every package it installs is satisfied by the package at its `node_modules` lookup path.
/// Returns one line per problem (empty when consistent).
pub async fn verify(ctx: &ResolveContext<'_>, locked: &LockedTool) -> Result<Vec<String>, ResolveError> {
    let mut store = PackumentStore::default();
    fill(ctx, &mut store, locked.packages.iter().map(|p| p.name.clone()).collect()).await?;
    let mut problems = Vec::new();
    for &platform in ctx.platforms {
        let tree: Vec<(String, String, String)> = locked
            .packages
            .iter()
            .filter(|p| p.platforms.is_empty() || p.platforms.contains(&platform))
            .map(|p| (p.location.clone().unwrap_or_default(), p.name.clone(), p.version.clone()))
            .collect();
        problems.extend(layout::check(&store, &tree).into_iter().map(|line| format!("{platform}: {line}")));
    }
    Ok(problems)
}
