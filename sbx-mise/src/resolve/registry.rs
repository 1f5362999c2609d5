//! Which [`Backend`] locks which tool source.
//!
//! `core:` tools are dispatched by name (node, go, python); `github:` and `ubi:` share one
//! backend; `cargo:` locks crates. npm and pipx register themselves here with one match arm
//! each in [`backend_for`]. Every other source gets a clear "not supported yet" error.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::cargo::CargoBackend;
use super::github::GithubBackend;
use super::go::GoBackend;
use super::node::NodeBackend;
use super::python::PythonBackend;
use super::{Backend, ResolveContext, ResolveError};
use crate::lockfile::LockedTool;
use crate::{BackendKind, BackendRef, VersionRequest};

/// The `core:` tools sbx can lock.
pub const CORE_TOOLS: [&str; 3] = ["go", "node", "python"];

/// `core:<name>`, dispatched to the tool's own backend.
pub struct CoreBackend;

fn core(tool: &BackendRef) -> Result<&'static dyn Backend, ResolveError> {
    match tool.name.as_str() {
        "node" | "nodejs" => Ok(&NodeBackend),
        "go" | "golang" => Ok(&GoBackend),
        "python" => Ok(&PythonBackend),
        other => Err(ResolveError::Unsupported(format!(
            "`core:{other}` cannot be locked yet: sbx locks core:{} — pin {other} through another backend \
             (e.g. `github:owner/repo`) or leave it out of the sandbox's [tools] in .sbx.toml",
            CORE_TOOLS.join(", core:")
        ))),
    }
}

#[async_trait]
impl Backend for CoreBackend {
    async fn list_versions(&self, ctx: &ResolveContext<'_>, tool: &BackendRef) -> Result<Vec<String>, ResolveError> {
        core(tool)?.list_versions(ctx, tool).await
    }

    async fn resolve(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
    ) -> Result<String, ResolveError> {
        core(tool)?.resolve(ctx, tool, request).await
    }

    async fn lock(
        &self,
        ctx: &ResolveContext<'_>,
        tool: &BackendRef,
        request: &VersionRequest,
        version: &str,
    ) -> Result<LockedTool, ResolveError> {
        core(tool)?.lock(ctx, tool, request, version).await
    }
}

/// The backend for a tool source, or `None` when sbx cannot lock it yet (see [`unsupported`]).
pub fn backend_for(kind: BackendKind) -> Option<Arc<dyn Backend>> {
    match kind {
        BackendKind::Core => Some(Arc::new(CoreBackend)),
        BackendKind::Github | BackendKind::Ubi => Some(Arc::new(GithubBackend)),
        BackendKind::Cargo => Some(Arc::new(CargoBackend)),
        BackendKind::Npm => Some(Arc::new(super::npm::NpmBackend)),
        BackendKind::Pipx => Some(Arc::new(super::pipx::PipxBackend)),
        _ => None,
    }
}

/// Every backend this build can lock, by kind (what `sbx lock` hands the planner).
pub fn backends() -> BTreeMap<BackendKind, Arc<dyn Backend>> {
    BackendKind::ALL.iter().filter_map(|(kind, _)| backend_for(*kind).map(|b| (*kind, b))).collect()
}

/// The error for a tool whose source sbx cannot lock, naming the source and what is supported.
pub fn unsupported(tool: &BackendRef) -> ResolveError {
    let supported: Vec<&str> =
        BackendKind::ALL.iter().filter(|(k, _)| backend_for(*k).is_some()).map(|(_, p)| *p).collect();
    ResolveError::Unsupported(format!(
        "`{tool}`: the {} backend is not supported by sbx yet (supported: {}); use one of those for this tool",
        tool.kind,
        supported.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_covers_the_locked_sources() {
        let b = backends();
        for kind in [BackendKind::Core, BackendKind::Github, BackendKind::Ubi, BackendKind::Cargo] {
            assert!(b.contains_key(&kind), "{kind}");
        }
        for kind in [BackendKind::Aqua, BackendKind::Go, BackendKind::Asdf, BackendKind::Vfox] {
            assert!(backend_for(kind).is_none(), "{kind}");
        }
        let tool = BackendRef::parse("aqua:cli/cli").unwrap().unwrap();
        let msg = unsupported(&tool).to_string();
        assert!(msg.contains("aqua:cli/cli") && msg.contains("aqua backend") && msg.contains("github"), "{msg}");
        let rust = BackendRef::parse("core:rust").unwrap().unwrap();
        assert!(core(&rust).err().unwrap().to_string().contains("core:rust"));
    }
}
