//! The network side of `sbx lock`: the HTTP client and the backends it drives.

use std::collections::BTreeMap;
use std::sync::Arc;

use sbx_mise::lock::Backends;
use sbx_mise::resolve::{Fetch, Upstreams};

/// The HTTP client and every backend this build can lock.
pub struct Network {
    /// Cached, retrying HTTP access.
    pub fetch: Arc<dyn Fetch>,
    /// Backends by kind.
    pub backends: Backends,
}

/// Upstream URLs from the defaults and the environment (mise's `MISE_NODE_MIRROR_URL`, and
/// `SBX_<NAME>_URL` for every upstream).
pub fn upstreams_from_env(env: &BTreeMap<String, String>) -> Upstreams {
    let mut u = Upstreams::default();
    let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).map(|v| v.trim_end_matches('/').to_string());
    if let Some(v) = get("MISE_NODE_MIRROR_URL") {
        u.node = v;
    }
    for (key, field) in [
        ("SBX_NODE_URL", &mut u.node),
        ("SBX_GO_URL", &mut u.go),
        ("SBX_GITHUB_API_URL", &mut u.github_api),
        ("SBX_NPM_URL", &mut u.npm),
        ("SBX_PYPI_URL", &mut u.pypi),
        ("SBX_CRATES_INDEX_URL", &mut u.crates_index),
        ("SBX_CRATES_DOWNLOAD_URL", &mut u.crates_download),
    ] {
        if let Some(v) = get(key) {
            *field = v;
        }
    }
    u
}

/// Opens the network for a lock run.
pub fn open(_upstreams: &Upstreams, _offline: bool) -> miette::Result<Network> {
    Err(miette::miette!(
        help = "`sbx lock --check` works already; resolution arrives with the backends of issue #3",
        "no backend can resolve versions yet"
    ))
}
