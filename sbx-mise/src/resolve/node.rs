//! `core:node`: the Node.js distribution (`nodejs.org/dist` or a mirror).
//!
//! Versions and LTS lines come from `<mirror>/index.json` (entries like
//! `{"version": "v22.11.0", "lts": "Jod", …}`, `lts` is `false` for non-LTS releases).
//! Checksums come from `<mirror>/v<version>/SHASUMS256.txt`; the artifact for a platform is
//! `node-v<version>-<linux|darwin>-<x64|arm64>.tar.gz` next to it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Backend, ResolveContext, ResolveError, matching};
use crate::lockfile::{Artifact, Checksum, LockedTool};
use crate::platform::{Arch, Os};
use crate::{BackendRef, Platform, VersionRequest};

/// The `core:node` backend.
pub struct NodeBackend;

#[derive(Deserialize)]
struct IndexEntry {
    version: String,
    #[serde(default)]
    lts: serde_json::Value,
}

/// One release from `index.json`: version without `v`, and its LTS codename if it is one.
struct Release {
    version: String,
    lts: Option<String>,
}

async fn index(ctx: &ResolveContext<'_>) -> Result<Vec<Release>, ResolveError> {
    let url = format!("{}/index.json", ctx.upstreams.node.trim_end_matches('/'));
    let body = ctx.fetch.get(&url).await?;
    let entries: Vec<IndexEntry> = super::parse_json(&url, &body)?;
    Ok(entries
        .into_iter()
        .map(|e| Release {
            version: e.version.strip_prefix('v').unwrap_or(&e.version).to_string(),
            lts: e.lts.as_str().map(str::to_string),
        })
        .collect())
}

/// node's file name for a platform: `node-v22.11.0-linux-x64.tar.gz`.
pub fn artifact_name(version: &str, platform: Platform) -> String {
    let os = match platform.os {
        Os::Linux => "linux",
        Os::Macos => "darwin",
    };
    let arch = match platform.arch {
        Arch::Amd64 => "x64",
        Arch::Arm64 => "arm64",
    };
    format!("node-v{version}-{os}-{arch}.tar.gz")
}

#[async_trait]
impl Backend for NodeBackend {
    async fn list_versions(&self, ctx: &ResolveContext<'_>, _: &BackendRef) -> Result<Vec<String>, ResolveError> {
        let mut versions: Vec<String> = index(ctx).await?.into_iter().map(|r| r.version).collect();
        matching::sort_versions(&mut versions);
        Ok(versions)
    }

    async fn resolve(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
    ) -> Result<String, ResolveError> {
        let releases = index(ctx).await?;
        let VersionRequest::Lts(line) = request else {
            let versions: Vec<String> = releases.into_iter().map(|r| r.version).collect();
            return matching::select(&tool.to_string(), &versions, request);
        };
        let wanted = |lts: &Option<String>| match (lts, line) {
            (Some(_), None) => true,
            (Some(name), Some(want)) => name.eq_ignore_ascii_case(want),
            (None, _) => false,
        };
        let mut versions: Vec<String> = releases.iter().filter(|r| wanted(&r.lts)).map(|r| r.version.clone()).collect();
        matching::sort_versions(&mut versions);
        versions.pop().ok_or_else(|| {
            let mut lines: Vec<String> = releases.iter().filter_map(|r| r.lts.clone()).collect();
            lines.dedup();
            ResolveError::NoMatch {
                tool: tool.to_string(),
                request: request.to_string(),
                nearest: lines.into_iter().take(5).map(|l| format!("lts/{}", l.to_ascii_lowercase())).collect(),
            }
        })
    }

    async fn lock(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
        version: &str,
    ) -> Result<LockedTool, ResolveError> {
        let base = format!("{}/v{version}", ctx.upstreams.node.trim_end_matches('/'));
        let sums_url = format!("{base}/SHASUMS256.txt");
        let body = ctx.fetch.get(&sums_url).await?;
        let sums = super::parse_checksum_list(&String::from_utf8_lossy(&body));
        let mut artifacts = Vec::new();
        for &platform in ctx.platforms {
            let file = artifact_name(version, platform);
            let hash = sums
                .get(&file)
                .ok_or_else(|| ResolveError::MissingChecksum { url: sums_url.clone(), file: file.clone() })?;
            artifacts.push((platform, format!("{base}/{file}"), hash.clone()));
        }
        // SHASUMS256.txt carries no sizes; the mirror announces them (one HEAD per artifact).
        let sizes = futures::future::try_join_all(artifacts.iter().map(|(_, url, _)| ctx.fetch.size_of(url))).await?;
        let platforms: BTreeMap<_, _> = artifacts
            .into_iter()
            .zip(sizes)
            .map(|((platform, url, hash), size)| (platform, Artifact { url, checksum: Checksum::Sha256(hash), size }))
            .collect();
        Ok(super::locked_artifacts(tool, request, version, platforms))
    }
}
