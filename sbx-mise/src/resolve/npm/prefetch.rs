//! Fetching a closure's packuments as early as possible.
//!
//! The layout ([`super::layout`]) is pure and learns which packuments it needs one tree level
//! at a time; fetching level by level makes every level wait for its slowest packument. Here
//! each packument, as soon as it arrives, is used to pick the version each request seen so far
//! asks of it ([`pick`], the layout's own choice), and the dependencies of those versions are
//! requested at once. Like npm's dedupe, a request that a version already followed satisfies
//! is not followed again (a peer dependency back on the tool would otherwise pull in the whole
//! closure of its newest release).
//!
//! This is only a guess of what the layout will read, usually exact. The layout runs afterwards
//! on what arrived, fetches whatever it still lacks itself, and its result depends only on the
//! packuments, never on the order they arrived in or on what was fetched besides.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::layout::{PackumentStore, edges_of};
use super::packument::{self, Manifest, Packument, Spec, installs_on, pick};
use super::{fetch_packument, packument_url};
use crate::Platform;
use crate::resolve::{ResolveContext, ResolveError, documents};

/// Fetches into `store` the packuments of the closure of `root@version` on any of `platforms`,
/// each requested as soon as a packument naming it has arrived. The root comes from its version
/// document (`GET <registry>/<name>/<version>`, a few kilobytes), kept in
/// [`PackumentStore::partial`]: the tool's whole packument (eslint's is 1.7 MB) is fetched only
/// when the registry serves no version documents, or later by the layout if a dependency asks
/// for another version of the tool. Fetch errors are left for the layout to meet (it fetches
/// what it still lacks itself and reports the error where it matters).
pub async fn prefetch(
    ctx: &ResolveContext<'_>,
    store: &mut PackumentStore,
    root: &str,
    version: &str,
    platforms: &[Platform],
) {
    let mut closure = Closure {
        platforms,
        seen: BTreeSet::new(),
        followed: BTreeMap::new(),
        waiting: BTreeMap::new(),
        work: VecDeque::new(),
    };
    let mut in_flight = FuturesUnordered::new();
    let mut requested = BTreeSet::new();
    let packument = move |name: String| -> Pending<'_> {
        Box::pin(async move {
            let doc = fetch_packument(ctx, &name).await;
            Arrived::Packument(name, doc)
        })
    };
    in_flight
        .push(Box::pin(async move { Arrived::Root(fetch_version_document(ctx, root, version).await) }) as Pending<'_>);
    loop {
        while let Some((name, spec)) = closure.work.pop_front() {
            if closure.follow(store, name.clone(), spec) && requested.insert(name.clone()) {
                in_flight.push(packument(name));
            }
        }
        match in_flight.next().await {
            None => break,
            Some(Arrived::Root(Some(doc))) => {
                if let Some(manifest) = doc.versions.get(version) {
                    closure.follow_manifest(root, manifest);
                }
                store.partial.insert(root.to_string(), doc);
            }
            Some(Arrived::Root(None)) => {
                // No version document: the layout starts from the whole packument.
                let spec = Spec::Range(version.to_string());
                closure.seen.insert((root.to_string(), spec.clone()));
                closure.waiting.entry(root.to_string()).or_default().push(spec);
                if requested.insert(root.to_string()) {
                    in_flight.push(packument(root.to_string()));
                }
            }
            Some(Arrived::Packument(name, doc)) => {
                match doc {
                    Ok(Some(doc)) => {
                        store.found.insert(name.clone(), doc);
                    }
                    Ok(None) => {
                        store.absent.insert(name.clone());
                    }
                    Err(_) => {}
                }
                for spec in closure.waiting.remove(&name).unwrap_or_default() {
                    closure.expand(store, &name, &spec);
                }
            }
        }
    }
}

/// A document on its way.
type Pending<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Arrived> + Send + 'a>>;

enum Arrived {
    Packument(String, Result<Option<Arc<Packument>>, ResolveError>),
    Root(Option<Arc<Packument>>),
}

/// The version document of `name@version` (`GET <registry>/<name>/<version>`) as a packument
/// holding only that version, with the same additions as the whole packument's; `None` when
/// the registry does not serve it. Parsed once per run and shared ([`documents::parsed`]).
pub async fn fetch_version_document(ctx: &ResolveContext<'_>, name: &str, version: &str) -> Option<Arc<Packument>> {
    let url = format!("{}/{version}", packument_url(&ctx.upstreams.npm, name));
    let body = ctx.fetch.get(&url).await.ok()?;
    let (name, version) = (name.to_string(), version.to_string());
    let doc = documents::parsed(ctx.fetch, &url, body, move |body| {
        let manifest: Manifest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if manifest.version != version {
            return Err(format!("the document is of version {}", manifest.version));
        }
        let mut doc = Packument { name, versions: BTreeMap::from([(version, manifest)]), ..Packument::default() };
        packument::add_script_installed_platform_packages(&mut doc);
        Ok::<_, String>(doc)
    });
    doc.await.ok()
}

struct Closure<'p> {
    platforms: &'p [Platform],
    /// `(name, spec)` pairs already seen.
    seen: BTreeSet<(String, Spec)>,
    /// Name → versions whose dependencies were queued.
    followed: BTreeMap<String, Vec<String>>,
    /// Specs waiting for their package's packument.
    waiting: BTreeMap<String, Vec<Spec>>,
    /// Dependencies to follow.
    work: VecDeque<(String, Spec)>,
}

impl Closure<'_> {
    /// Follows one dependency; `true` when its packument has to be fetched.
    fn follow(&mut self, store: &PackumentStore, name: String, spec: Spec) -> bool {
        if !self.seen.insert((name.clone(), spec.clone())) || store.absent.contains(&name) {
            return false;
        }
        if store.found.contains_key(&name) {
            self.expand(store, &name, &spec);
            return false;
        }
        if self.satisfied(None, &name, &spec) {
            return false;
        }
        self.waiting.entry(name).or_default().push(spec);
        true
    }

    /// Whether a version of `name` already followed satisfies `spec` (a dist-tag needs the
    /// packument to tell).
    fn satisfied(&self, doc: Option<&Packument>, name: &str, spec: &Spec) -> bool {
        let versions = self.followed.get(name).map(Vec::as_slice).unwrap_or_default();
        versions.iter().any(|v| match (doc, spec) {
            (Some(doc), _) => packument::satisfies(doc, spec, v),
            (None, Spec::Range(_)) => packument::satisfies(&Packument::default(), spec, v),
            (None, Spec::Tag(_)) => false,
        })
    }

    /// Queues the dependencies of the version of `name` that `spec` picks, if it installs on
    /// some platform and no version followed before satisfies `spec`.
    fn expand(&mut self, store: &PackumentStore, name: &str, spec: &Spec) {
        let Some(doc) = store.found.get(name) else { return };
        if self.satisfied(Some(doc), name, spec) {
            return;
        }
        let manifest = match spec {
            // The tool itself: the exact version locked.
            Spec::Range(v) if doc.versions.contains_key(v) => doc.versions.get(v),
            _ => pick(doc, spec),
        };
        if let Some(manifest) = manifest {
            self.follow_manifest(name, manifest);
        }
    }

    /// Queues the dependencies of `manifest`, a version of `name`, if it installs on some
    /// platform and was not followed yet.
    fn follow_manifest(&mut self, name: &str, manifest: &Manifest) {
        let followed = self.followed.entry(name.to_string()).or_default();
        if followed.contains(&manifest.version) || !self.platforms.iter().any(|p| installs_on(manifest, *p)) {
            return;
        }
        followed.push(manifest.version.clone());
        let Ok(edges) = edges_of(manifest, name) else { return };
        self.work.extend(edges.into_iter().map(|e| (e.real, e.spec)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::npm::layout::layout;
    use crate::resolve::{Fetch, FetchError, Upstreams};
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// A registry in memory that records the order of requests.
    struct Registry {
        docs: BTreeMap<String, serde_json::Value>,
        /// Whether `<name>/<version>` documents are served.
        version_docs: bool,
        asked: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Fetch for Registry {
        async fn get(&self, url: &str) -> Result<bytes::Bytes, FetchError> {
            let path = url.trim_start_matches("http://r/");
            self.asked.lock().unwrap().push(path.to_string());
            let (name, version) = path.split_once('/').map_or((path, None), |(n, v)| (n, Some(v)));
            let doc = match (self.docs.get(name), version) {
                (Some(doc), None) => Some(doc),
                (Some(doc), Some(v)) if self.version_docs => doc["versions"].get(v),
                _ => None,
            };
            match doc {
                Some(doc) => Ok(serde_json::to_vec(doc).unwrap().into()),
                None => Err(FetchError::Status { url: url.into(), status: 404 }),
            }
        }
        async fn sha256_of(&self, url: &str) -> Result<(String, u64), FetchError> {
            Err(FetchError::Status { url: url.into(), status: 404 })
        }
    }

    fn doc(name: &str, versions: &[(&str, serde_json::Value)]) -> (String, serde_json::Value) {
        let mut map = serde_json::Map::new();
        for (v, extra) in versions {
            let mut m = serde_json::json!({"version": v, "dist": {"tarball": format!("http://r/{name}-{v}.tgz")}});
            if let (Some(m), Some(extra)) = (m.as_object_mut(), extra.as_object()) {
                m.extend(extra.clone());
            }
            map.insert((*v).to_string(), m);
        }
        (name.to_string(), serde_json::json!({"name": name, "versions": map}))
    }

    fn registry(version_docs: bool) -> Registry {
        Registry {
            docs: BTreeMap::from([
                doc("tool", &[("1.0.0", serde_json::json!({"dependencies": {"a": "^1", "b": "^2"}}))]),
                doc(
                    "a",
                    &[
                        ("1.0.0", serde_json::json!({"dependencies": {"c": "^1"}})),
                        ("1.1.0", serde_json::json!({"dependencies": {"d": "^1"}})),
                    ],
                ),
                doc(
                    "b",
                    &[(
                        "2.0.0",
                        serde_json::json!({"optionalDependencies": {"only-mac": "1", "gone": "1"}, "peerDependencies": {"a": "^1"}}),
                    )],
                ),
                doc("c", &[("1.0.0", serde_json::json!({}))]),
                doc("d", &[("1.0.0", serde_json::json!({"dependencies": {"e": "^1"}}))]),
                doc("e", &[("1.0.0", serde_json::json!({}))]),
                doc("only-mac", &[("1.0.0", serde_json::json!({"os": ["darwin"], "dependencies": {"never": "1"}}))]),
            ]),
            version_docs,
            asked: Mutex::new(Vec::new()),
        }
    }

    fn asked(registry: &Registry) -> Vec<String> {
        let mut asked = registry.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), BTreeSet::from_iter(asked.iter()).len(), "each document once: {asked:?}");
        asked.sort();
        asked
    }

    #[tokio::test]
    async fn fetches_what_the_layout_needs_so_it_runs_once() {
        for version_docs in [true, false] {
            let registry = registry(version_docs);
            let upstreams = Upstreams { npm: "http://r".into(), ..Upstreams::all_at("http://r") };
            let runtimes = BTreeMap::new();
            let platforms = [Platform::LINUX_AMD64];
            let ctx =
                ResolveContext { fetch: &registry, upstreams: &upstreams, platforms: &platforms, runtimes: &runtimes };
            let mut store = PackumentStore::default();
            prefetch(&ctx, &mut store, "tool", "1.0.0", &platforms).await;
            let placed = layout(&store, "tool", "1.0.0", Platform::LINUX_AMD64).unwrap();
            let names: Vec<&str> = placed.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(names, ["tool", "a", "b", "d", "e"]);
            // `c` belongs to a version the layout does not pick; `never` to a package that does
            // not install here; `gone` does not exist (optional); b's peer dependency on `a` is
            // satisfied by the `a` already followed.
            // The tool's own packument only when there is no version document to start from.
            let mut expected = vec!["a", "b", "d", "e", "gone", "only-mac", "tool/1.0.0"];
            if !version_docs {
                expected.insert(6, "tool");
            }
            assert_eq!(asked(&registry), expected);
            assert!(store.absent.contains("gone"));
            assert_eq!(store.partial.contains_key("tool"), version_docs);
        }
    }

    #[tokio::test]
    async fn an_exact_version_resolves_from_its_version_document_alone() {
        use crate::resolve::Backend;
        async fn resolve(registry: &Registry, request: &str) -> Result<String, ResolveError> {
            let upstreams = Upstreams { npm: "http://r".into(), ..Upstreams::all_at("http://r") };
            let (runtimes, platforms) = (BTreeMap::new(), [Platform::LINUX_AMD64]);
            let ctx =
                ResolveContext { fetch: registry, upstreams: &upstreams, platforms: &platforms, runtimes: &runtimes };
            let tool = crate::BackendRef::parse("npm:a").unwrap().unwrap();
            super::super::NPM.resolve(&ctx, &tool, &crate::VersionRequest::parse(request).unwrap()).await
        }
        let with_docs = registry(true);
        assert_eq!(resolve(&with_docs, "1.0.0").await.unwrap(), "1.0.0");
        assert_eq!(asked(&with_docs), ["a/1.0.0"]);
        // A range, or a registry without version documents, reads the whole packument.
        let with_docs = registry(true);
        assert_eq!(resolve(&with_docs, "1").await.unwrap(), "1.1.0");
        assert_eq!(asked(&with_docs), ["a"]);
        let without = registry(false);
        assert_eq!(resolve(&without, "1.0.0").await.unwrap(), "1.0.0");
        assert_eq!(asked(&without), ["a", "a/1.0.0"]);
        // A version that does not exist is an error naming the nearest, from the packument.
        let with_docs = registry(true);
        let err = resolve(&with_docs, "1.0.9").await.unwrap_err();
        assert!(
            matches!(&err, ResolveError::NoMatch { nearest, .. } if nearest.contains(&"1.0.0".to_string())),
            "{err:?}"
        );
    }
}
