//! `core:python`: python-build-standalone (astral-sh) builds, as mise installs them.
//!
//! Versions are read from release asset names, `cpython-<version>+<build date>-<target>-
//! <flavor>.tar.gz`; a version present in several releases is taken from the newest one. The
//! artifact is the `install_only_stripped` build (else `install_only`) for
//! `x86_64`/`aarch64-unknown-linux-gnu` or `-apple-darwin`. Its checksum comes from the
//! release's `SHA256SUMS` asset, else the asset's published digest, else the downloaded bytes.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use async_trait::async_trait;
use regex::Regex;

use super::github::{self, Asset, Release};
use super::{Backend, ResolveContext, ResolveError, matching};
use crate::lockfile::{Artifact, Checksum, LockedTool};
use crate::platform::Os;
use crate::{BackendRef, Platform, VersionRequest};

/// The `core:python` backend.
pub struct PythonBackend;

/// The GitHub repository of the builds.
pub const REPO: &str = "astral-sh/python-build-standalone";

/// Releases per API page: each lists ~1000 assets, so pages are kept small and read only as
/// far as needed (every release carries the newest patch of each supported minor version).
const PER_PAGE: usize = 10;

/// Flavors in order of preference.
const FLAVORS: [&str; 2] = ["install_only_stripped", "install_only"];

/// A parsed build asset name.
struct Build<'a> {
    version: String,
    date: String,
    target: String,
    flavor: String,
    asset: &'a Asset,
}

fn parse_name(asset: &Asset) -> Option<Build<'_>> {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    let re = RE
        .get_or_init(|| {
            Regex::new(r"^cpython-([0-9][^+]*)\+([0-9]+)-(.+)-(install_only_stripped|install_only)\.tar\.gz$").ok()
        })
        .as_ref()?;
    let c = re.captures(&asset.name)?;
    Some(Build {
        version: c[1].to_string(),
        date: c[2].to_string(),
        target: c[3].to_string(),
        flavor: c[4].to_string(),
        asset,
    })
}

/// The build target triple for a platform.
pub fn target(platform: Platform) -> String {
    match platform.os {
        Os::Linux => format!("{}-unknown-linux-gnu", platform.gnu_arch()),
        Os::Macos => format!("{}-apple-darwin", platform.gnu_arch()),
    }
}

fn builds(releases: &[Release]) -> Vec<(Build<'_>, &Release)> {
    releases.iter().flat_map(|r| r.assets.iter().filter_map(parse_name).map(move |b| (b, r))).collect()
}

fn versions(releases: &[Release]) -> Vec<String> {
    let mut v: Vec<String> = builds(releases).into_iter().map(|(b, _)| b.version).collect();
    v.sort();
    v.dedup();
    matching::sort_versions(&mut v);
    v
}

async fn checksum_list(
    ctx: &ResolveContext<'_>,
    release: &Release,
) -> Result<Option<(String, BTreeMap<String, String>)>, ResolveError> {
    let Some(sums) = release.assets.iter().find(|a| a.name == "SHA256SUMS") else { return Ok(None) };
    let body = ctx.fetch.get(&sums.browser_download_url).await?;
    Ok(Some((sums.browser_download_url.clone(), super::parse_checksum_list(&String::from_utf8_lossy(&body)))))
}

#[async_trait]
impl Backend for PythonBackend {
    async fn list_versions(&self, ctx: &ResolveContext<'_>, _: &BackendRef) -> Result<Vec<String>, ResolveError> {
        Ok(versions(&github::releases_until(ctx, REPO, PER_PAGE, |_| false).await?))
    }

    async fn resolve(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
    ) -> Result<String, ResolveError> {
        // Newest releases first: the first ones that satisfy the request hold its newest match.
        let found = |r: &[Release]| matching::select(&tool.to_string(), &versions(r), request).is_ok();
        let releases = github::releases_until(ctx, REPO, PER_PAGE, found).await?;
        matching::select(&tool.to_string(), &versions(&releases), request)
    }

    async fn lock(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
        version: &str,
    ) -> Result<LockedTool, ResolveError> {
        let found = |r: &[Release]| builds(r).iter().any(|(b, _)| b.version == version);
        let releases = github::releases_until(ctx, REPO, PER_PAGE, found).await?;
        let all = builds(&releases);
        let mut platforms = BTreeMap::new();
        let mut sums_cache: BTreeMap<String, Option<(String, BTreeMap<String, String>)>> = BTreeMap::new();
        for &platform in ctx.platforms {
            let want = target(platform);
            // Newest build date first, then the preferred flavor.
            let chosen = all.iter().filter(|(b, _)| b.version == version && b.target == want).max_by_key(|(b, _)| {
                (b.date.clone(), FLAVORS.len() - FLAVORS.iter().position(|f| *f == b.flavor).unwrap_or(FLAVORS.len()))
            });
            let Some((build, release)) = chosen else {
                if !all.iter().any(|(b, _)| b.version == version) {
                    return Err(ResolveError::NoMatch {
                        tool: tool.to_string(),
                        request: version.to_string(),
                        nearest: matching::nearest(&versions(&releases), version),
                    });
                }
                return Err(ResolveError::NoArtifact {
                    tool: tool.to_string(),
                    version: version.to_string(),
                    platform,
                    detail: format!(
                        "no cpython-{version}+<date>-{want}-install_only[_stripped].tar.gz in {REPO} releases"
                    ),
                });
            };
            if !sums_cache.contains_key(&release.tag_name) {
                sums_cache.insert(release.tag_name.clone(), checksum_list(ctx, release).await?);
            }
            let listed = sums_cache.get(&release.tag_name).and_then(Option::as_ref);
            let artifact = match listed {
                Some((url, sums)) => {
                    let hash = sums.get(&build.asset.name).ok_or_else(|| ResolveError::MissingChecksum {
                        url: url.clone(),
                        file: build.asset.name.clone(),
                    })?;
                    Artifact {
                        url: build.asset.browser_download_url.clone(),
                        checksum: Checksum::Sha256(hash.clone()),
                        size: build.asset.size,
                    }
                }
                None => github::artifact_of(ctx, &release.assets, build.asset).await?,
            };
            platforms.insert(platform, artifact);
        }
        Ok(super::locked_artifacts(tool, request, version, platforms))
    }
}
