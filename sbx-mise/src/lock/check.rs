//! `sbx lock --check`: is the lockfile current? Answered from the files alone, no network.

use std::collections::{BTreeMap, BTreeSet};

use super::wanted::LockInputs;
use crate::lockfile::Lockfile;

/// One reason the lockfile no longer matches the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StaleReason {
    /// A configured tool has no entry.
    ToolAdded {
        /// Tool name.
        name: String,
        /// Its requests.
        requests: Vec<String>,
    },
    /// An entry whose tool is no longer configured.
    ToolRemoved {
        /// Tool name.
        name: String,
        /// The versions it had locked.
        versions: Vec<String>,
    },
    /// The requests of a tool changed.
    RequestChanged {
        /// Tool name.
        name: String,
        /// Locked `(request, version)` pairs.
        locked: Vec<(String, String)>,
        /// The requests now configured.
        wanted: Vec<String>,
    },
    /// The tool's backend changed.
    BackendChanged {
        /// Tool name.
        name: String,
        /// Locked backend.
        locked: String,
        /// Configured candidates.
        wanted: String,
    },
    /// The platform list changed.
    PlatformsChanged {
        /// Locked platforms.
        locked: Vec<String>,
        /// Configured platforms.
        wanted: Vec<String>,
    },
    /// `mise.lock` pins versions of a tool that sbx.lock does not have (the host moved on).
    MisePinDiffers {
        /// Tool name.
        name: String,
        /// Versions in sbx.lock.
        locked: Vec<String>,
        /// Versions pinned in mise.lock.
        pinned: Vec<String>,
    },
    /// Something else that decides the content changed (mirror URLs, backend options, base).
    OtherInputs,
}

/// The outcome of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Staleness {
    /// The lockfile matches the configuration.
    Current,
    /// There is no lockfile.
    Missing,
    /// The lockfile is out of date, for these reasons.
    Stale(Vec<StaleReason>),
}

/// Compares the configuration's inputs and the host's `mise.lock` pins (tool → versions) with
/// a lockfile.
pub fn check_with_mise_pins(
    inputs: &LockInputs,
    lock: Option<&Lockfile>,
    mise_pins: &BTreeMap<String, Vec<String>>,
) -> Staleness {
    let staleness = check(inputs, lock);
    let Some(lock) = lock else { return staleness };
    let mut pin_reasons = Vec::new();
    for (name, entries) in &lock.tools {
        let Some(pinned) = mise_pins.get(name) else { continue };
        let locked: Vec<String> = entries.iter().map(|e| e.version.clone()).collect();
        if !locked.iter().all(|v| pinned.contains(v)) {
            pin_reasons.push(StaleReason::MisePinDiffers { name: name.clone(), locked, pinned: pinned.clone() });
        }
    }
    match staleness {
        _ if pin_reasons.is_empty() => staleness,
        Staleness::Stale(mut reasons) => {
            reasons.extend(pin_reasons);
            Staleness::Stale(reasons)
        }
        Staleness::Current | Staleness::Missing => Staleness::Stale(pin_reasons),
    }
}

/// Compares the configuration's inputs with a lockfile.
pub fn check(inputs: &LockInputs, lock: Option<&Lockfile>) -> Staleness {
    let Some(lock) = lock else { return Staleness::Missing };
    if lock.inputs == inputs.digest() {
        return Staleness::Current;
    }
    let mut reasons = Vec::new();
    let wanted_platforms: Vec<String> = inputs.platforms.iter().map(|p| p.to_string()).collect();
    let locked_platforms: Vec<String> = lock.platforms.iter().map(|p| p.to_string()).collect();
    if wanted_platforms != locked_platforms {
        reasons.push(StaleReason::PlatformsChanged { locked: locked_platforms, wanted: wanted_platforms });
    }
    let wanted_names: BTreeSet<&str> = inputs.tools.iter().map(|t| t.name.as_str()).collect();
    for tool in &inputs.tools {
        let requests: Vec<String> = tool.versions.iter().map(|v| v.request.to_string()).collect();
        match lock.tools.get(&tool.name) {
            None => reasons.push(StaleReason::ToolAdded { name: tool.name.clone(), requests }),
            Some(entries) => {
                let locked_requests: Vec<String> = entries.iter().map(|e| e.request.clone()).collect();
                if locked_requests != requests {
                    reasons.push(StaleReason::RequestChanged {
                        name: tool.name.clone(),
                        locked: entries.iter().map(|e| (e.request.clone(), e.version.clone())).collect(),
                        wanted: requests,
                    });
                }
                let candidates: Vec<String> = tool.id.backends.iter().map(|b| strip_options(&b.to_string())).collect();
                if let Some(e) = entries.first()
                    && !candidates.contains(&strip_options(&e.backend))
                {
                    reasons.push(StaleReason::BackendChanged {
                        name: tool.name.clone(),
                        locked: e.backend.clone(),
                        wanted: candidates.join(" or "),
                    });
                }
            }
        }
    }
    for (name, entries) in &lock.tools {
        if !wanted_names.contains(name.as_str()) {
            reasons.push(StaleReason::ToolRemoved {
                name: name.clone(),
                versions: entries.iter().map(|e| e.version.clone()).collect(),
            });
        }
    }
    if reasons.is_empty() {
        reasons.push(StaleReason::OtherInputs);
    }
    Staleness::Stale(reasons)
}

fn strip_options(backend: &str) -> String {
    backend.split('[').next().unwrap_or(backend).to_string()
}
