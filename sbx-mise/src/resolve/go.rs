//! `core:go`: the Go download index (`go.dev/dl/?mode=json&include=all` or a mirror).
//!
//! The index lists every release (`{"version": "go1.23.3", "stable": true, "files": [...]}`)
//! with, per file, `os`, `arch`, `kind` (`archive`, `installer`, `source`), `sha256` and `size`.
//! sbx locks the `archive` for each platform, downloaded from `<mirror>/<filename>`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Backend, ResolveContext, ResolveError, matching};
use crate::lockfile::{Artifact, Checksum, LockedTool};
use crate::{BackendRef, VersionRequest};

/// The `core:go` backend.
pub struct GoBackend;

#[derive(Deserialize)]
struct Release {
    version: String,
    #[serde(default)]
    stable: bool,
    #[serde(default)]
    files: Vec<File>,
}

#[derive(Deserialize)]
struct File {
    filename: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    arch: String,
    #[serde(default)]
    sha256: String,
    size: Option<u64>,
    #[serde(default)]
    kind: String,
}

fn bare(version: &str) -> &str {
    version.strip_prefix("go").unwrap_or(version)
}

async fn index(ctx: &ResolveContext<'_>) -> Result<(String, Vec<Release>), ResolveError> {
    let url = format!("{}/?mode=json&include=all", ctx.upstreams.go.trim_end_matches('/'));
    let body = ctx.fetch.get(&url).await?;
    let releases = super::parse_json(&url, &body)?;
    Ok((url, releases))
}

#[async_trait]
impl Backend for GoBackend {
    async fn list_versions(&self, ctx: &ResolveContext<'_>, _: &BackendRef) -> Result<Vec<String>, ResolveError> {
        let (_, releases) = index(ctx).await?;
        let mut versions: Vec<String> = releases.iter().map(|r| bare(&r.version).to_string()).collect();
        matching::sort_versions(&mut versions);
        Ok(versions)
    }

    async fn resolve(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
    ) -> Result<String, ResolveError> {
        let (_, releases) = index(ctx).await?;
        // Unstable releases stay selectable by their exact name only.
        let all: Vec<String> = releases.iter().map(|r| bare(&r.version).to_string()).collect();
        if let VersionRequest::Version(v) = request
            && all.iter().any(|a| a == bare(v))
        {
            return Ok(bare(v).to_string());
        }
        let stable: Vec<String> = releases.iter().filter(|r| r.stable).map(|r| bare(&r.version).to_string()).collect();
        matching::select(&tool.to_string(), &stable, request).map_err(|e| match e {
            ResolveError::NoMatch { tool, request, .. } => {
                let nearest = matching::nearest(&stable, &request);
                ResolveError::NoMatch { tool, request, nearest }
            }
            other => other,
        })
    }

    async fn lock(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
        version: &str,
    ) -> Result<LockedTool, ResolveError> {
        let (url, releases) = index(ctx).await?;
        let Some(release) = releases.iter().find(|r| bare(&r.version) == bare(version)) else {
            let all: Vec<String> = releases.iter().map(|r| bare(&r.version).to_string()).collect();
            return Err(ResolveError::NoMatch {
                tool: tool.to_string(),
                request: version.to_string(),
                nearest: matching::nearest(&all, version),
            });
        };
        let base = ctx.upstreams.go.trim_end_matches('/');
        let mut platforms = BTreeMap::new();
        for &platform in ctx.platforms {
            let file = release
                .files
                .iter()
                .find(|f| f.kind == "archive" && f.os == platform.oci_os() && f.arch == platform.oci_arch())
                .ok_or_else(|| ResolveError::NoArtifact {
                    tool: tool.to_string(),
                    version: version.to_string(),
                    platform,
                    detail: format!("{url} lists no archive for {}-{}", platform.oci_os(), platform.oci_arch()),
                })?;
            let sha = file.sha256.to_ascii_lowercase();
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ResolveError::MissingChecksum { url: url.clone(), file: file.filename.clone() });
            }
            let artifact =
                Artifact { url: format!("{base}/{}", file.filename), checksum: Checksum::Sha256(sha), size: file.size };
            platforms.insert(platform, artifact);
        }
        Ok(super::locked_artifacts(tool, request, bare(version), platforms))
    }
}
