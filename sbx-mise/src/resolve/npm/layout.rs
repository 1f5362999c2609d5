//! The `node_modules` tree npm would build for one package on one platform.
//!
//! The algorithm is arborist's, reduced to what a registry-only global install needs:
//! breadth-first from the tool, each node's dependency edges in name order; an edge already
//! satisfied by the node found with Node's lookup (own `node_modules`, then each ancestor's) is
//! left alone, otherwise the version npm would pick is placed as high as possible — walking up
//! from the dependent, stopping below the first ancestor that holds another version of that name
//! or where the new node would shadow an incompatible version for a node already placed below.
//! Peer dependencies (npm 7+, non-optional only) are placed starting at the dependent's parent,
//! so they end up beside it. Optional dependencies whose `os`/`cpu`/`libc` exclude the platform,
//! or that cannot be resolved, are left out, as npm does.
//!
//! As with `npm install -g`, the tool sits at `node_modules/<tool>` and its dependencies stay in
//! its own `node_modules` (they are never hoisted next to the tool).
//!
//! The layout is pure: it reads packuments from a [`PackumentStore`]. When one is missing it
//! carries on where it can and reports every missing name, so the caller fetches them all at
//! once and runs the layout again (one round per tree depth).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use super::packument::{self, Dist, Manifest, Packument, Spec, installs_on, parse_spec, pick};
use crate::Platform;

/// Packuments fetched so far.
#[derive(Debug, Default)]
pub struct PackumentStore {
    /// Name → document.
    pub found: BTreeMap<String, Arc<Packument>>,
    /// Names the registry does not have (404).
    pub absent: BTreeSet<String>,
    /// Documents holding only the versions fetched one by one (`GET <registry>/<name>/<version>`,
    /// the tool's own version): enough to place those versions and to check ranges against
    /// them, not to pick among all versions. Where the layout must pick, it asks for the whole
    /// packument ([`LayoutError::Missing`]), which then takes precedence.
    pub partial: BTreeMap<String, Arc<Packument>>,
}

impl PackumentStore {
    /// The whole packument of `name`, or else its partial document.
    fn any(&self, name: &str) -> Option<&Arc<Packument>> {
        self.found.get(name).or_else(|| self.partial.get(name))
    }
}

/// One package in the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    /// package-lock v3 style path, e.g. `node_modules/a/node_modules/b`.
    pub location: String,
    /// The real package name (differs from the folder name for `npm:` aliases).
    pub name: String,
    /// Exact version.
    pub version: String,
    /// Tarball URL and checksums.
    pub dist: Dist,
}

/// Why no tree could be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// These packuments are needed; fetch them and run again.
    Missing(BTreeSet<String>),
    /// A required package does not exist on the registry.
    NotFound {
        /// The missing package.
        package: String,
        /// Who needs it (`name@version`).
        required_by: String,
    },
    /// No published version satisfies a required range.
    NoVersion {
        /// The package.
        package: String,
        /// The range.
        spec: String,
        /// Who needs it.
        required_by: String,
    },
    /// A required dependency is not a registry range (git, file, URL).
    Unsupported {
        /// The package.
        package: String,
        /// The spec as written.
        spec: String,
        /// Who needs it.
        required_by: String,
    },
    /// A required (non-optional) package does not install on the platform.
    Platform {
        /// `name@version`.
        package: String,
    },
}

/// One dependency edge of a manifest.
#[derive(Debug)]
pub(super) struct Edge {
    /// The folder name under `node_modules` (the alias).
    pub(super) folder: String,
    /// The real package name.
    pub(super) real: String,
    /// What it asks for.
    pub(super) spec: Spec,
    /// An optional dependency.
    pub(super) optional: bool,
    /// A (non-optional) peer dependency.
    pub(super) peer: bool,
}

#[derive(Debug)]
struct Node {
    real: String,
    version: String,
    parent: Option<usize>,
    children: BTreeMap<String, usize>,
    location: String,
    dist: Dist,
}

struct Tree<'s> {
    store: &'s PackumentStore,
    nodes: Vec<Node>,
    edges: Vec<Vec<Edge>>,
}

/// The tree `npm install -g <name>@<version>` builds on `platform`, sorted by location.
pub fn layout(
    store: &PackumentStore,
    name: &str,
    version: &str,
    platform: Platform,
) -> Result<Vec<Placed>, LayoutError> {
    let Some(root_doc) = store.any(name) else {
        return Err(LayoutError::Missing(BTreeSet::from([name.to_string()])));
    };
    let Some(root) = root_doc.versions.get(version) else {
        return Err(LayoutError::NoVersion {
            package: name.into(),
            spec: version.into(),
            required_by: "config".into(),
        });
    };
    if !installs_on(root, platform) {
        return Err(LayoutError::Platform { package: format!("{name}@{version}") });
    }
    // Node 0 is the global `lib` folder: lookups reach it (the tool itself lives there), but
    // nothing is ever placed in it besides the tool.
    let top = Node {
        real: String::new(),
        version: String::new(),
        parent: None,
        children: BTreeMap::from([(name.to_string(), 1)]),
        location: String::new(),
        dist: Dist::default(),
    };
    let mut tree = Tree { store, nodes: vec![top], edges: vec![Vec::new()] };
    let root_id = tree.add(name, name, root, 0);
    tree.edges[root_id] = edges_of(root, &format!("{name}@{version}"))?;
    let mut missing = BTreeSet::new();
    let mut queue = VecDeque::from([1usize]);
    while let Some(id) = queue.pop_front() {
        let edges = std::mem::take(&mut tree.edges[id]);
        for edge in &edges {
            if let Some(new) = tree.resolve_edge(id, edge, platform, &mut missing)? {
                queue.push_back(new);
            }
        }
        tree.edges[id] = edges;
    }
    if !missing.is_empty() {
        return Err(LayoutError::Missing(missing));
    }
    let mut placed: Vec<Placed> = tree
        .nodes
        .into_iter()
        .skip(1)
        .map(|n| Placed { location: n.location, name: n.real, version: n.version, dist: n.dist })
        .collect();
    placed.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(placed)
}

/// The dependency edges npm follows for one manifest, in name order. Unreadable specs of
/// optional dependencies are dropped; of required ones they are an error.
pub(super) fn edges_of(manifest: &Manifest, who: &str) -> Result<Vec<Edge>, LayoutError> {
    let mut raw: BTreeMap<&str, (&str, bool, bool)> = BTreeMap::new();
    for (n, s) in &manifest.peer_dependencies {
        if !manifest.peer_dependencies_meta.get(n).copied().unwrap_or(false) {
            raw.insert(n, (s, false, true));
        }
    }
    for (n, s) in &manifest.dependencies {
        if !manifest.bundle_dependencies.contains(n) {
            raw.insert(n, (s, false, false));
        }
    }
    for (n, s) in &manifest.optional_dependencies {
        if !manifest.bundle_dependencies.contains(n) {
            raw.insert(n, (s, true, false));
        }
    }
    let mut edges = Vec::new();
    for (folder, (spec, optional, peer)) in raw {
        match parse_spec(folder, spec) {
            Ok((real, spec)) => edges.push(Edge { folder: folder.to_string(), real, spec, optional, peer }),
            Err(_) if optional => {}
            Err(e) => {
                return Err(LayoutError::Unsupported {
                    package: folder.to_string(),
                    spec: e.0,
                    required_by: who.to_string(),
                });
            }
        }
    }
    Ok(edges)
}

impl Tree<'_> {
    fn add(&mut self, folder: &str, real: &str, manifest: &Manifest, parent: usize) -> usize {
        let id = self.nodes.len();
        let location = match self.nodes[parent].location.as_str() {
            "" => format!("node_modules/{folder}"),
            p => format!("{p}/node_modules/{folder}"),
        };
        self.nodes.push(Node {
            real: real.to_string(),
            version: manifest.version.clone(),
            parent: Some(parent),
            children: BTreeMap::new(),
            location,
            dist: manifest.dist.clone(),
        });
        self.nodes[parent].children.insert(folder.to_string(), id);
        self.edges.push(Vec::new());
        id
    }

    fn who(&self, id: usize) -> String {
        format!("{}@{}", self.nodes[id].real, self.nodes[id].version)
    }

    /// The node `folder` resolves to from `from` (Node's module lookup).
    fn lookup(&self, from: usize, folder: &str) -> Option<usize> {
        let mut cur = Some(from);
        while let Some(id) = cur {
            if let Some(&child) = self.nodes[id].children.get(folder) {
                return Some(child);
            }
            cur = self.nodes[id].parent;
        }
        None
    }

    fn edge_start(&self, id: usize, edge: &Edge) -> usize {
        match self.nodes[id].parent {
            Some(p) if edge.peer && p != 0 => p,
            _ => id,
        }
    }

    fn satisfied_by(&self, edge: &Edge, real: &str, version: &str) -> bool {
        edge.real == real && self.store.any(real).is_some_and(|doc| packument::satisfies(doc, &edge.spec, version))
    }

    /// Resolves one edge of node `id`; returns the node it placed, if any.
    fn resolve_edge(
        &mut self,
        id: usize,
        edge: &Edge,
        platform: Platform,
        missing: &mut BTreeSet<String>,
    ) -> Result<Option<usize>, LayoutError> {
        let start = self.edge_start(id, edge);
        if let Some(existing) = self.lookup(start, &edge.folder) {
            let node = &self.nodes[existing];
            if self.satisfied_by(edge, &node.real, &node.version) {
                return Ok(None);
            }
        }
        let store = self.store;
        let Some(doc) = store.found.get(&edge.real) else {
            if store.absent.contains(&edge.real) && !edge.optional {
                return Err(LayoutError::NotFound { package: edge.real.clone(), required_by: self.who(id) });
            }
            if !store.absent.contains(&edge.real) {
                missing.insert(edge.real.clone());
            }
            return Ok(None);
        };
        let Some(manifest) = pick(doc, &edge.spec) else {
            if edge.optional {
                return Ok(None);
            }
            let spec = match &edge.spec {
                Spec::Range(s) | Spec::Tag(s) => s.clone(),
            };
            return Err(LayoutError::NoVersion { package: edge.real.clone(), spec, required_by: self.who(id) });
        };
        if !installs_on(manifest, platform) {
            if edge.optional {
                return Ok(None);
            }
            return Err(LayoutError::Platform { package: format!("{}@{}", edge.real, manifest.version) });
        }
        let mut target = start;
        let mut cur = Some(start);
        while let Some(t) = cur {
            if t == 0 {
                break;
            }
            if let Some(&existing) = self.nodes[t].children.get(&edge.folder) {
                let node = &self.nodes[existing];
                if node.real == edge.real && node.version == manifest.version {
                    return Ok(None);
                }
                break;
            }
            if t != start && self.would_break(t, &edge.folder, &edge.real, &manifest.version) {
                break;
            }
            target = t;
            cur = self.nodes[t].parent;
        }
        let edges = edges_of(manifest, &format!("{}@{}", edge.real, manifest.version))?;
        let new = self.add(&edge.folder, &edge.real, manifest, target);
        self.edges[new] = edges;
        Ok(Some(new))
    }

    /// Whether placing `real@version` in `t`'s `node_modules/<folder>` would change the
    /// resolution of an edge of some node under `t` to a version that does not satisfy it.
    fn would_break(&self, t: usize, folder: &str, real: &str, version: &str) -> bool {
        let mut stack = vec![t];
        while let Some(d) = stack.pop() {
            stack.extend(self.nodes[d].children.values().copied());
            for edge in self.edges[d].iter().filter(|e| e.folder == folder) {
                let mut cur = self.edge_start(d, edge);
                let reaches_t = loop {
                    if cur == t {
                        break true;
                    }
                    if self.nodes[cur].children.contains_key(folder) {
                        break false;
                    }
                    match self.nodes[cur].parent {
                        Some(p) => cur = p,
                        None => break false,
                    }
                };
                if reaches_t && !self.satisfied_by(edge, real, version) {
                    return true;
                }
            }
        }
        false
    }
}

/// Checks a tree the way Node would load it: every required dependency of every package (and
/// every optional one that is present) resolves, by the `node_modules` lookup from its location,
/// to a package whose version satisfies the range. Returns one line per problem.
pub fn check(store: &PackumentStore, packages: &[(String, String, String)]) -> Vec<String> {
    let by_location: BTreeMap<&str, (&str, &str)> =
        packages.iter().map(|(loc, name, version)| (loc.as_str(), (name.as_str(), version.as_str()))).collect();
    let mut problems = Vec::new();
    for (location, name, version) in packages {
        let Some(manifest) = store.found.get(name).and_then(|d| d.versions.get(version)) else {
            problems.push(format!("{location}: no manifest for {name}@{version}"));
            continue;
        };
        let edges = match edges_of(manifest, name) {
            Ok(e) => e,
            Err(e) => {
                problems.push(format!("{location}: {e:?}"));
                continue;
            }
        };
        for edge in edges {
            let mut dir = match parent_dir(location) {
                Some(parent) if edge.peer && !parent.is_empty() => Some(parent),
                _ => Some(location.as_str()),
            };
            let mut found = None;
            while let Some(d) = dir {
                let candidate = if d.is_empty() {
                    format!("node_modules/{}", edge.folder)
                } else {
                    format!("{d}/node_modules/{}", edge.folder)
                };
                if let Some(hit) = by_location.get(candidate.as_str()) {
                    found = Some(*hit);
                    break;
                }
                dir = parent_dir(d);
            }
            match found {
                Some((real, v)) => {
                    let ok = real == edge.real
                        && store.found.get(real).is_some_and(|doc| packument::satisfies(doc, &edge.spec, v));
                    if !ok {
                        problems.push(format!("{location}: {} {:?} resolves to {real}@{v}", edge.folder, edge.spec));
                    }
                }
                None if !edge.optional => {
                    problems.push(format!("{location}: {} {:?} is missing", edge.folder, edge.spec))
                }
                None => {}
            }
        }
    }
    problems
}

/// The folder holding the `node_modules` that contains `location`: `a/node_modules/b` → `a`,
/// `node_modules/a` → `` (the top); `None` above the top.
fn parent_dir(location: &str) -> Option<&str> {
    if location.is_empty() {
        return None;
    }
    Some(location.rfind("/node_modules/").map_or("", |i| &location[..i]))
}

#[cfg(test)]
#[path = "layout_tests.rs"]
mod tests;
