use super::*;

fn pin(name: &str, url: &str) -> Pinned {
    Pinned { name: name.into(), version: "1.0".into(), url: url.into(), sha256: "ab".repeat(32), size: Some(1) }
}

#[test]
fn merges_shared_and_platform_wheels() {
    let amd = vec![pin("a", "https://f/a-any.whl"), pin("b", "https://f/b-x86_64.whl")];
    let arm = vec![pin("a", "https://f/a-any.whl"), pin("b", "https://f/b-aarch64.whl")];
    let merged = merge(vec![(Platform::LINUX_AMD64, amd), (Platform::LINUX_ARM64, arm)]);
    let summary: Vec<(String, Vec<Platform>)> =
        merged.iter().map(|p| (p.artifact.url.clone(), p.platforms.clone())).collect();
    assert_eq!(
        summary,
        [
            ("https://f/a-any.whl".to_string(), vec![]),
            ("https://f/b-aarch64.whl".to_string(), vec![Platform::LINUX_ARM64]),
            ("https://f/b-x86_64.whl".to_string(), vec![Platform::LINUX_AMD64]),
        ]
    );
    assert!(merged.iter().all(|p| p.location.is_none() && p.artifact.checksum.algorithm() == "sha256"));
}

#[test]
fn selects_with_mise_rules_skipping_yanked_releases() {
    let project: Project = serde_json::from_value(serde_json::json!({
        "info": {"name": "x", "version": "2.0"},
        "releases": {
            "1.9": [{"filename": "x-1.9-py3-none-any.whl", "url": "u"}],
            "2.0": [{"filename": "x-2.0-py3-none-any.whl", "url": "u"}],
            "2.1": [{"filename": "x-2.1-py3-none-any.whl", "url": "u", "yanked": true}],
            "2.2a1": [{"filename": "x-2.2a1-py3-none-any.whl", "url": "u"}]
        }
    }))
    .unwrap();
    let tool = BackendRef::parse("pipx:x").unwrap().unwrap();
    let sel = |r: &str| select(&tool, &project, &VersionRequest::parse(r).unwrap());
    assert_eq!(sel("latest").unwrap(), "2.0");
    assert_eq!(sel("1").unwrap(), "1.9");
    assert!(sel("3").is_err());
}

/// PyPI in memory: project documents only (release documents are 404, as on the mirror
/// these machines use, so METADATA comes from the wheels); records what was asked, and what
/// was asked but no longer waited for.
#[derive(Default)]
struct Pypi {
    projects: BTreeMap<String, serde_json::Value>,
    /// `name/version` → release page (none: as on the mirror these machines use).
    pages: BTreeMap<String, serde_json::Value>,
    /// Project documents that never answer.
    hanging: BTreeSet<String>,
    wheels: BTreeMap<String, Vec<u8>>,
    asked: std::sync::Mutex<Vec<String>>,
    abandoned: std::sync::Mutex<Vec<String>>,
}

/// Records its path as abandoned unless the request answered.
struct Abandoned<'a>(&'a std::sync::Mutex<Vec<String>>, Option<String>);

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.1.take() {
            self.0.lock().unwrap().push(path);
        }
    }
}

#[async_trait]
impl crate::resolve::Fetch for Pypi {
    async fn get(&self, url: &str) -> Result<bytes::Bytes, crate::resolve::FetchError> {
        let path = url.trim_start_matches("http://p/");
        self.asked.lock().unwrap().push(path.to_string());
        let mut waited_for = Abandoned(&self.abandoned, Some(path.to_string()));
        if path.starts_with("files/") {
            // A wheel takes a while, as over a network: the guesses are fetched meanwhile.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let name = path.strip_prefix("pypi/").and_then(|p| p.strip_suffix("/json"));
        if name.is_some_and(|n| self.hanging.contains(n)) {
            std::future::pending::<()>().await;
        }
        if name.is_some_and(|n| n.contains('/')) {
            // So does a release page (`name/version`), found or not.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        waited_for.1 = None;
        let body = match name.and_then(|n| self.projects.get(n).or_else(|| self.pages.get(n))) {
            Some(doc) => serde_json::to_vec(doc).ok(),
            None => self.wheels.get(path).cloned(),
        };
        body.map(bytes::Bytes::from).ok_or(crate::resolve::FetchError::Status { url: url.to_string(), status: 404 })
    }
    async fn sha256_of(&self, url: &str) -> Result<(String, u64), crate::resolve::FetchError> {
        Err(crate::resolve::FetchError::Status { url: url.to_string(), status: 404 })
    }
}

fn wheel(name: &str, version: &str, requires: &[&str]) -> Vec<u8> {
    use std::io::Write;
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut buf);
    w.start_file(format!("{name}-{version}.dist-info/METADATA"), zip::write::SimpleFileOptions::default()).unwrap();
    let lines: String = requires.iter().map(|r| format!("Requires-Dist: {r}\n")).collect();
    write!(w, "Name: {name}\nVersion: {version}\n{lines}\n").unwrap();
    w.finish().unwrap();
    buf.into_inner()
}

fn project(name: &str, latest: &str, requires: &[&str], versions: &[&str]) -> (String, serde_json::Value) {
    let releases: serde_json::Map<String, serde_json::Value> = versions
        .iter()
        .map(|v| {
            let file = serde_json::json!({
                "filename": format!("{name}-{v}-py3-none-any.whl"),
                "url": format!("http://p/files/{name}-{v}-py3-none-any.whl"),
                "digests": {"sha256": "ab".repeat(32)},
                "size": 100,
            });
            (v.to_string(), serde_json::json!([file]))
        })
        .collect();
    let info = serde_json::json!({"name": name, "version": latest, "requires_dist": requires});
    (name.to_string(), serde_json::json!({"info": info, "releases": releases}))
}

#[tokio::test]
async fn projects_the_newest_release_requires_are_fetched_on_a_guess_without_changing_the_lock() {
    let pypi = Pypi {
        projects: BTreeMap::from([
            // The newest tool requires `a`, `b` only with an extra, `c` only on Windows and
            // `z`, which the locked 1.0 does not require.
            project("tool", "2.0", &["a>=1", "b; extra == 'x'", "c; sys_platform == 'win32'", "z"], &["1.0", "2.0"]),
            project("a", "1.0", &[], &["1.0"]),
            project("z", "1.0", &[], &["1.0"]),
        ]),
        pages: BTreeMap::new(),
        hanging: BTreeSet::new(),
        wheels: BTreeMap::from([("files/tool-1.0-py3-none-any.whl".to_string(), wheel("tool", "1.0", &["a>=1"]))]),
        ..Pypi::default()
    };
    let upstreams =
        crate::resolve::Upstreams { pypi: "http://p".into(), ..crate::resolve::Upstreams::all_at("http://p") };
    let runtimes = BTreeMap::new();
    let platforms = [Platform::LINUX_AMD64];
    let ctx = ResolveContext { fetch: &pypi, upstreams: &upstreams, platforms: &platforms, runtimes: &runtimes };
    let tool = BackendRef::parse("pipx:tool").unwrap().unwrap();
    let request = VersionRequest::parse("1.0").unwrap();
    let locked = PIPX.lock(&ctx, &tool, &request, "1.0").await.unwrap();
    let pins: Vec<String> = locked.packages.iter().map(|p| format!("{}=={}", p.name, p.version)).collect();
    assert_eq!(pins, ["a==1.0", "tool==1.0"]);
    let mut asked = pypi.asked.lock().unwrap().clone();
    asked.sort();
    asked.dedup();
    assert_eq!(
        asked,
        ["files/tool-1.0-py3-none-any.whl", "pypi/a/json", "pypi/tool/1.0/json", "pypi/tool/json", "pypi/z/json"],
        "b (extra) and c (Windows) are not guessed; z is, and is not locked"
    );
}

#[tokio::test]
async fn an_exact_version_is_resolved_and_locked_from_its_release_page() {
    let registry = |pages: bool, hanging: bool| {
        let (name, tool) = project("tool", "2.0", &["a>=1", "z"], &["1.0", "2.0"]);
        let mut page = serde_json::json!({
            "info": {"name": "tool", "version": "1.0", "requires_dist": ["a>=1"]},
            "urls": tool["releases"]["1.0"].clone(),
        });
        let yanked = serde_json::json!({
            "info": {"name": "tool", "version": "1.5"},
            "urls": [{"filename": "tool-1.5-py3-none-any.whl", "url": "http://p/files/t.whl", "yanked": true}],
        });
        page["urls"][0]["url"] = "../../../files/tool-1.0-py3-none-any.whl".into();
        Pypi {
            projects: BTreeMap::from([
                (name, tool),
                project("a", "1.0", &[], &["1.0"]),
                project("z", "1.0", &[], &["1.0"]),
            ]),
            pages: if pages {
                BTreeMap::from([("tool/1.0".to_string(), page), ("tool/1.5".to_string(), yanked)])
            } else {
                BTreeMap::new()
            },
            hanging: if hanging { BTreeSet::from(["tool".to_string()]) } else { BTreeSet::new() },
            wheels: BTreeMap::from([("files/tool-1.0-py3-none-any.whl".to_string(), wheel("tool", "1.0", &["a>=1"]))]),
            ..Pypi::default()
        }
    };
    let upstreams =
        crate::resolve::Upstreams { pypi: "http://p".into(), ..crate::resolve::Upstreams::all_at("http://p") };
    let (runtimes, platforms) = (BTreeMap::new(), [Platform::LINUX_AMD64, Platform::LINUX_ARM64]);
    let tool = BackendRef::parse("pipx:tool").unwrap().unwrap();
    let run = |pypi: &'static Pypi, request: &'static str| {
        let (upstreams, runtimes, tool) = (upstreams.clone(), runtimes.clone(), tool.clone());
        async move {
            let ctx = ResolveContext { fetch: pypi, upstreams: &upstreams, platforms: &platforms, runtimes: &runtimes };
            let request = VersionRequest::parse(request).unwrap();
            let version = PIPX.resolve(&ctx, &tool, &request).await?;
            let locked = PIPX.lock(&ctx, &tool, &request, &version).await?;
            let mut asked = pypi.asked.lock().unwrap().clone();
            asked.sort();
            asked.dedup();
            Ok::<_, ResolveError>((locked, asked))
        }
    };
    // The tool's project document never answers: the release page is all the lock needs.
    let with_pages: &'static Pypi = Box::leak(Box::new(registry(true, true)));
    let without: &'static Pypi = Box::leak(Box::new(registry(false, false)));
    let (from_page, _) = tokio::time::timeout(std::time::Duration::from_secs(10), run(with_pages, "1.0"))
        .await
        .expect("locked without the project document")
        .unwrap();
    let (from_project, asked) = run(without, "1.0").await.unwrap();
    assert!(asked.contains(&"pypi/tool/json".to_string()));
    // The same lock, wheel URLs (relative to each document) included.
    assert_eq!(format!("{from_page:?}"), format!("{from_project:?}"));
    assert_eq!(from_page.packages.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["a", "tool"]);

    // A range, and a release whose every file is yanked, go through the project document.
    let with_pages: &'static Pypi = Box::leak(Box::new(registry(true, false)));
    let (ranged, asked) = run(with_pages, "1").await.unwrap();
    assert_eq!((ranged.version.as_str(), asked.contains(&"pypi/tool/json".to_string())), ("1.0", true));
    let with_pages: &'static Pypi = Box::leak(Box::new(registry(true, false)));
    assert!(matches!(run(with_pages, "1.5").await, Err(ResolveError::NoMatch { .. })));
}

#[tokio::test]
async fn an_older_release_page_is_waited_for_not_asked_again() {
    // The index serves no release pages and answers the project document first.
    let pypi = Pypi {
        projects: BTreeMap::from([project("tool", "2.0", &[], &["1.0", "2.0"])]),
        wheels: BTreeMap::from([("files/tool-1.0-py3-none-any.whl".to_string(), wheel("tool", "1.0", &[]))]),
        ..Pypi::default()
    };
    let upstreams =
        crate::resolve::Upstreams { pypi: "http://p".into(), ..crate::resolve::Upstreams::all_at("http://p") };
    let (runtimes, platforms) = (BTreeMap::new(), [Platform::LINUX_AMD64]);
    let ctx = ResolveContext { fetch: &pypi, upstreams: &upstreams, platforms: &platforms, runtimes: &runtimes };
    let tool = BackendRef::parse("pipx:tool").unwrap().unwrap();
    // 1.0 is not the newest: its page settles its Requires-Dist, so it is waited for, not dropped
    // (an HTTP client would otherwise ask for it again when the lock reads Requires-Dist).
    let request = VersionRequest::parse("1.0").unwrap();
    assert_eq!(PIPX.resolve(&ctx, &tool, &request).await.unwrap(), "1.0");
    PIPX.lock(&ctx, &tool, &request, "1.0").await.unwrap();
    let abandoned = pypi.abandoned.lock().unwrap().clone();
    assert!(!abandoned.contains(&"pypi/tool/1.0/json".to_string()), "{abandoned:?}");
    // The newest release's Requires-Dist is in the project document: its page is not waited for.
    let request = VersionRequest::parse("2.0").unwrap();
    assert_eq!(PIPX.resolve(&ctx, &tool, &request).await.unwrap(), "2.0");
    assert!(pypi.abandoned.lock().unwrap().contains(&"pypi/tool/2.0/json".to_string()));
}
