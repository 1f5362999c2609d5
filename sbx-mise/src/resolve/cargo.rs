//! `cargo:crate`: crates from crates.io, locked as their `.crate` source archive.
//!
//! Versions and checksums come from the sparse index (`index.crates.io/<path>/<name>`, one JSON
//! object per line with `vers`, `cksum` (sha256) and `yanked`). The artifact is the same
//! `.crate` for every platform since it is source; building it is `sbx build`'s business.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Deserialize;

use super::{Backend, ResolveContext, ResolveError, matching};
use crate::lockfile::{Artifact, Checksum, LockedTool};
use crate::{BackendRef, VersionRequest};

/// The `cargo:` backend.
pub struct CargoBackend;

#[derive(Deserialize)]
struct IndexLine {
    vers: String,
    cksum: String,
    #[serde(default)]
    yanked: bool,
}

/// The sparse-index path of a crate: `1/a`, `2/ab`, `3/a/abc`, `ri/pg/ripgrep`.
pub fn index_path(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    let chars: Vec<char> = name.chars().collect();
    let part = |r: std::ops::Range<usize>| chars[r].iter().collect::<String>();
    match chars.len() {
        0..=2 => format!("{}/{name}", chars.len()),
        3 => format!("3/{}/{name}", part(0..1)),
        _ => format!("{}/{}/{name}", part(0..2), part(2..4)),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn index(ctx: &ResolveContext<'_>, tool: &BackendRef) -> Result<(String, Vec<IndexLine>), ResolveError> {
    if !valid_name(&tool.name) {
        return Err(ResolveError::Unsupported(format!(
            "`{}` is not a crates.io crate name (git sources are not supported yet)",
            tool.name
        )));
    }
    let url = format!("{}/{}", ctx.upstreams.crates_index.trim_end_matches('/'), index_path(&tool.name));
    let body = ctx.fetch.get(&url).await?;
    let mut lines = Vec::new();
    for line in String::from_utf8_lossy(&body).lines().filter(|l| !l.trim().is_empty()) {
        lines.push(super::parse_json::<IndexLine>(&url, line.as_bytes())?);
    }
    Ok((url, lines))
}

#[async_trait]
impl Backend for CargoBackend {
    async fn list_versions(&self, ctx: &ResolveContext<'_>, tool: &BackendRef) -> Result<Vec<String>, ResolveError> {
        let (_, lines) = index(ctx, tool).await?;
        let mut v: Vec<String> = lines.into_iter().filter(|l| !l.yanked).map(|l| l.vers).collect();
        matching::sort_versions(&mut v);
        Ok(v)
    }

    async fn resolve(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
    ) -> Result<String, ResolveError> {
        let versions = self.list_versions(ctx, tool).await?;
        matching::select(&tool.to_string(), &versions, request)
    }

    async fn lock(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
        version: &str,
    ) -> Result<LockedTool, ResolveError> {
        let (url, lines) = index(ctx, tool).await?;
        // A pinned version stays lockable even if it was yanked later, as with Cargo.lock.
        let Some(line) = lines.iter().find(|l| l.vers == version) else {
            let all: Vec<String> = lines.iter().filter(|l| !l.yanked).map(|l| l.vers.clone()).collect();
            return Err(ResolveError::NoMatch {
                tool: tool.to_string(),
                request: version.to_string(),
                nearest: matching::nearest(&all, version),
            });
        };
        let sha = line.cksum.to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ResolveError::MissingChecksum { url, file: format!("{}-{version}.crate", tool.name) });
        }
        let artifact = Artifact {
            url: format!(
                "{}/{}/{}-{version}.crate",
                ctx.upstreams.crates_download.trim_end_matches('/'),
                tool.name,
                tool.name
            ),
            checksum: Checksum::Sha256(sha),
            size: None,
        };
        let platforms = ctx.platforms.iter().map(|p| (*p, artifact.clone())).collect::<BTreeMap<_, _>>();
        Ok(super::locked_artifacts(tool, request, version, platforms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_index_paths() {
        assert_eq!(index_path("a"), "1/a");
        assert_eq!(index_path("ab"), "2/ab");
        assert_eq!(index_path("abc"), "3/a/abc");
        assert_eq!(index_path("Ripgrep"), "ri/pg/ripgrep");
        assert_eq!(index_path("é-ü"), "3/é/é-ü");
        assert!(!valid_name("../x") && !valid_name("") && valid_name("serde_json"));
    }
}
