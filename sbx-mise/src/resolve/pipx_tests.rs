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

/// `(name, [(version, Requires-Dist)])` of the projects of an [`Index`].
type Projects<'a> = &'a [(&'a str, &'a [(&'a str, &'a [&'a str])])];

/// An index in memory: each project's releases, with their `Requires-Dist` and one wheel per
/// tag of `tags` (`py3-none-any` when none). Served as simple index pages under `simple/` and
/// as real wheels under `files/`; records every path asked for.
#[derive(Default)]
struct Index {
    projects: BTreeMap<String, Vec<(String, Vec<String>)>>,
    /// `name-version → Requires-Python` of its wheels.
    requires_python: BTreeMap<String, String>,
    /// `name → wheel tags` of projects whose wheels are not `py3-none-any`.
    tags: BTreeMap<String, Vec<&'static str>>,
    /// The simple pages are HTML (PEP 503), as an index without PEP 691 serves them.
    html_only: bool,
    /// Wheels' METADATA is advertised and served on its own (PEP 658), with these bodies
    /// (`None`: the true METADATA).
    metadata_files: Option<BTreeMap<String, Option<Vec<u8>>>>,
    /// `path → other path`: `path` answers only once `other` has been asked for.
    held: BTreeMap<String, String>,
    /// `file name → size` listed for a wheel (100 when not given).
    sizes: BTreeMap<String, u64>,
    /// `file name → sha256` listed for a wheel instead of its true one.
    listed_sha256: BTreeMap<String, String>,
    asked: std::sync::Mutex<Vec<String>>,
}

impl Index {
    fn new(projects: Projects<'_>) -> Self {
        let projects = projects
            .iter()
            .map(|(name, releases)| {
                let releases = releases
                    .iter()
                    .map(|(v, requires)| (v.to_string(), requires.iter().map(|r| r.to_string()).collect()))
                    .collect();
                (name.to_string(), releases)
            })
            .collect();
        Self { projects, ..Self::default() }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }

    fn files(&self, name: &str, version: &str) -> Vec<String> {
        let tags = self.tags.get(name).cloned().unwrap_or_else(|| vec!["py3-none-any"]);
        tags.iter().map(|tag| format!("{name}-{version}-{tag}.whl")).collect()
    }

    /// A METADATA file: `Provides-Extra` for each extra the requirements' markers name, as
    /// build backends write it, then the `Requires-Dist` lines.
    fn metadata(name: &str, version: &str, requires: &[String]) -> String {
        let mut extras: Vec<&str> =
            requires.iter().filter_map(|r| r.split("extra == '").nth(1)?.split('\'').next()).collect();
        extras.dedup();
        let extras: String = extras.iter().map(|e| format!("Provides-Extra: {e}\n")).collect();
        let lines: String = requires.iter().map(|r| format!("Requires-Dist: {r}\n")).collect();
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{extras}{lines}\n")
    }

    fn wheel(name: &str, version: &str, requires: &[String]) -> Vec<u8> {
        use std::io::Write;
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut buf);
        w.start_file(format!("{name}-{version}.dist-info/METADATA"), zip::write::SimpleFileOptions::default()).unwrap();
        w.write_all(Self::metadata(name, version, requires).as_bytes()).unwrap();
        w.finish().unwrap();
        buf.into_inner()
    }

    /// The PEP 503 form of a page's files.
    fn html_page(name: &str, files: &[serde_json::Value]) -> String {
        let anchors: String = files
            .iter()
            .map(|f| {
                let requires_python = f["requires-python"]
                    .as_str()
                    .map(|rp| format!(" data-requires-python=\"{}\"", rp.replace('>', "&gt;").replace('<', "&lt;")))
                    .unwrap_or_default();
                let metadata = f["core-metadata"]["sha256"]
                    .as_str()
                    .map(|sha| format!(" data-core-metadata=\"sha256={sha}\""))
                    .unwrap_or_default();
                let (url, sha, file) = (&f["url"].as_str().unwrap(), &f["hashes"]["sha256"], &f["filename"]);
                format!(
                    "<a href=\"{url}#sha256={}\"{requires_python}{metadata}>{}</a><br/>\n",
                    sha.as_str().unwrap(),
                    file.as_str().unwrap()
                )
            })
            .collect();
        format!("<!DOCTYPE html><html><body><h1>Links for {name}</h1>\n{anchors}</body></html>")
    }

    fn answer(&self, path: &str) -> Option<Vec<u8>> {
        if let Some(name) = path.strip_prefix("simple/").and_then(|p| p.strip_suffix('/')) {
            let releases = self.projects.get(name)?;
            let files: Vec<serde_json::Value> = releases
                .iter()
                .flat_map(|(v, requires)| {
                    let metadata = self.metadata_files.as_ref().map(|_| {
                        let sha = sha2::Sha256::digest(Self::metadata(name, v, requires).as_bytes());
                        serde_json::json!({"sha256": hex::encode(sha)})
                    });
                    self.files(name, v).into_iter().map(move |file| {
                        let sha256 = self
                            .listed_sha256
                            .get(&file)
                            .cloned()
                            .unwrap_or_else(|| hex::encode(sha2::Sha256::digest(Self::wheel(name, v, requires))));
                        serde_json::json!({
                            "filename": file,
                            "url": format!("../../files/{file}"),
                            "hashes": {"sha256": sha256},
                            "size": self.sizes.get(&file).copied().unwrap_or(100),
                            "core-metadata": metadata.clone().unwrap_or(false.into()),
                            "requires-python": self.requires_python.get(&format!("{name}-{v}")),
                        })
                    })
                })
                .collect();
            if self.html_only {
                return Some(Self::html_page(name, &files).into_bytes());
            }
            let page = serde_json::json!({"meta": {"api-version": "1.1"}, "name": name, "files": files});
            return serde_json::to_vec(&page).ok();
        }
        let file = path.strip_prefix("files/")?;
        let (file, metadata) = match file.strip_suffix(".metadata") {
            Some(wheel) => (wheel, true),
            None => (file, false),
        };
        let (name, version, requires) = self.projects.iter().find_map(|(name, releases)| {
            releases.iter().find(|(v, _)| self.files(name, v).iter().any(|f| f == file)).map(|(v, r)| (name, v, r))
        })?;
        if !metadata {
            return Some(Self::wheel(name, version, requires));
        }
        match self.metadata_files.as_ref()?.get(file) {
            Some(Some(body)) => Some(body.clone()),
            Some(None) => None,
            None => Some(Self::metadata(name, version, requires).into_bytes()),
        }
    }
}

use sha2::Digest as _;

#[async_trait]
impl crate::resolve::Fetch for Index {
    async fn get(&self, url: &str) -> Result<bytes::Bytes, crate::resolve::FetchError> {
        let path = url.trim_start_matches("http://p/");
        self.asked.lock().unwrap().push(path.to_string());
        if let Some(other) = self.held.get(path) {
            while !self.asked.lock().unwrap().contains(other) {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        // Every answer takes a moment, as over a network.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let body = self.answer(path);
        body.map(bytes::Bytes::from).ok_or(crate::resolve::FetchError::Status { url: url.to_string(), status: 404 })
    }
    async fn sha256_of(&self, url: &str) -> Result<(String, u64), crate::resolve::FetchError> {
        Err(crate::resolve::FetchError::Status { url: url.to_string(), status: 404 })
    }
    /// Recorded as `HEAD <path>`: the wheel's length, as a server announces it.
    async fn size_of(&self, url: &str) -> Result<Option<u64>, crate::resolve::FetchError> {
        let path = url.trim_start_matches("http://p/");
        self.asked.lock().unwrap().push(format!("HEAD {path}"));
        let wheel =
            self.answer(path).ok_or(crate::resolve::FetchError::Status { url: url.to_string(), status: 404 })?;
        Ok(Some(wheel.len() as u64))
    }
    /// Recorded as `range <path>`: the HTTP client reads only parts of the wheel.
    async fn wheel_metadata(&self, url: &str) -> Result<bytes::Bytes, crate::resolve::FetchError> {
        let path = url.trim_start_matches("http://p/");
        self.asked.lock().unwrap().push(format!("range {path}"));
        let wheel =
            self.answer(path).ok_or(crate::resolve::FetchError::Status { url: url.to_string(), status: 404 })?;
        let metadata = crate::http::lazy_zip::member_in(&wheel, crate::http::lazy_zip::is_wheel_metadata, "METADATA");
        Ok(metadata.unwrap().into())
    }
}

async fn lock(index: &Index, tool: &str, request: &str, platforms: &[Platform]) -> Result<LockedTool, ResolveError> {
    lock_with(index, tool, &[], request, platforms).await
}

async fn lock_with(
    index: &Index,
    tool: &str,
    options: &[(&str, &str)],
    request: &str,
    platforms: &[Platform],
) -> Result<LockedTool, ResolveError> {
    let upstreams =
        crate::resolve::Upstreams { pypi: "http://p".into(), ..crate::resolve::Upstreams::all_at("http://p") };
    let runtimes = BTreeMap::new();
    let ctx = ResolveContext { fetch: index, upstreams: &upstreams, platforms, runtimes: &runtimes };
    let mut tool = BackendRef::parse(&format!("pipx:{tool}")).unwrap().unwrap();
    tool.options.extend(options.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let request = VersionRequest::parse(request).unwrap();
    let version = PIPX.resolve(&ctx, &tool, &request).await?;
    let run = PIPX.lock(&ctx, &tool, &request, &version);
    tokio::time::timeout(std::time::Duration::from_secs(20), run).await.expect("the lock finished")
}

fn pins(locked: &LockedTool) -> Vec<String> {
    locked.packages.iter().map(|p| format!("{}=={}", p.name, p.version)).collect()
}

#[tokio::test]
async fn a_slow_document_does_not_hold_up_the_rest_of_the_closure() {
    // `slow` answers only once `c`, at the end of the chain tool → a → b → c, has been asked
    // for: a lock that waited for each round's slowest document before asking for the next
    // would never get there.
    let mut index = Index::new(&[
        ("tool", &[("1.0", &["slow", "a"]), ("2.0", &["never-locked"])]),
        ("slow", &[("1.0", &[])]),
        // The newest `a` requires `z`, which the `a` the lock takes does not.
        ("a", &[("1.0", &["b"]), ("2.0", &["b", "z"])]),
        ("b", &[("1.0", &["c"])]),
        ("c", &[("1.0", &[])]),
        ("z", &[("1.0", &[])]),
        ("never-locked", &[("1.0", &[])]),
    ]);
    index.held.insert("simple/slow/".into(), "simple/c/".into());
    // `a<2` is only known once `tool`'s METADATA is in.
    index.projects.get_mut("tool").unwrap()[0].1 = vec!["slow".into(), "a<2".into()];
    let locked = lock(&index, "tool", "1.0", &[Platform::LINUX_AMD64, Platform::LINUX_ARM64]).await.unwrap();
    assert_eq!(pins(&locked), ["a==1.0", "b==1.0", "c==1.0", "slow==1.0", "tool==1.0"]);
    assert!(locked.packages.iter().all(|p| p.platforms.is_empty() && p.artifact.url.starts_with("http://p/files/")));
    let asked = index.asked();
    assert!(!asked.iter().any(|p| p.contains("never-locked")), "only the locked release of the tool is read");
}

#[tokio::test]
async fn an_index_with_html_pages_only_locks_the_same_closure() {
    let projects: Projects<'_> =
        &[("tool", &[("1.0", &["a>=1"]), ("2.0", &["a>=1", "z"])]), ("a", &[("1.0", &[])]), ("z", &[("1.0", &[])])];
    let json = Index { metadata_files: Some(BTreeMap::new()), ..Index::new(projects) };
    let html = Index { html_only: true, metadata_files: Some(BTreeMap::new()), ..Index::new(projects) };
    let platforms = [Platform::LINUX_AMD64];
    let from_json = lock(&json, "tool", "1", &platforms).await.unwrap();
    let mut from_html = lock(&html, "tool", "1", &platforms).await.unwrap();
    // HTML pages carry no sizes: the server announces each wheel's (one HEAD each), the JSON
    // page lists them (100 in this index) and needs none.
    for p in &mut from_html.packages {
        let path = p.artifact.url.trim_start_matches("http://p/");
        assert!(html.asked().contains(&format!("HEAD {path}")), "{:?}", html.asked());
        assert_eq!(p.artifact.size, Some(html.answer(path).unwrap().len() as u64));
        p.artifact.size = Some(100);
    }
    assert!(!json.asked().iter().any(|p| p.starts_with("HEAD ")));
    assert_eq!(format!("{from_json:?}"), format!("{from_html:?}"));
    assert_eq!(pins(&from_json), ["a==1.0", "tool==1.0"]);
    assert!(html.asked().iter().any(|p| p.ends_with(".whl.metadata")), "PEP 714 read from HTML too");
    // A project the index does not know.
    let none = Index { projects: BTreeMap::new(), ..Index::new(projects) };
    let err = lock(&none, "tool", "1", &platforms).await.unwrap_err().to_string();
    assert!(err.contains("has no project `tool`"), "{err}");
}

#[tokio::test]
async fn metadata_served_on_its_own_is_read_instead_of_the_wheel_and_checked() {
    let projects: Projects<'_> = &[("tool", &[("1.0", &["a"])]), ("a", &[("1.0", &[])])];
    let index = Index { metadata_files: Some(BTreeMap::new()), ..Index::new(projects) };
    let locked = lock(&index, "tool", "1.0", &[Platform::LINUX_AMD64]).await.unwrap();
    assert_eq!(pins(&locked), ["a==1.0", "tool==1.0"]);
    let asked = index.asked();
    assert!(asked.contains(&"files/tool-1.0-py3-none-any.whl.metadata".into()), "{asked:?}");
    assert!(!asked.iter().any(|p| p.ends_with(".whl")), "no wheel is read: {asked:?}");

    // Advertised but missing: the wheel still says.
    let missing = BTreeMap::from([("tool-1.0-py3-none-any.whl".to_string(), None)]);
    let index = Index { metadata_files: Some(missing), ..Index::new(projects) };
    let locked = lock(&index, "tool", "1.0", &[Platform::LINUX_AMD64]).await.unwrap();
    assert_eq!(pins(&locked), ["a==1.0", "tool==1.0"]);
    assert!(index.asked().contains(&"files/tool-1.0-py3-none-any.whl".into()));

    // Not the file the index lists a digest for: an error naming it, nothing locked from it.
    let damaged = Some(b"Metadata-Version: 2.1\nName: tool\nRequires-Dist: evil\n\n".to_vec());
    let index = Index {
        metadata_files: Some(BTreeMap::from([("tool-1.0-py3-none-any.whl".to_string(), damaged)])),
        ..Index::new(projects)
    };
    let err = lock(&index, "tool", "1.0", &[Platform::LINUX_AMD64]).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("tool-1.0-py3-none-any.whl.metadata") && text.contains("sha256"), "{text}");
    assert!(!index.asked().iter().any(|p| p.contains("evil")));
}

#[tokio::test]
async fn a_release_s_requires_dist_is_read_once_from_the_first_platform_s_wheel() {
    let x86 = "py3-none-manylinux_2_17_x86_64";
    let arm = "py3-none-manylinux_2_17_aarch64";
    let mut index = Index::new(&[
        // `dep` only on arm64, by marker: the one METADATA read serves both platforms.
        ("tool", &[("1.0", &["dep; platform_machine == 'aarch64'", "common"])]),
        ("dep", &[("1.0", &[])]),
        ("common", &[("1.0", &[])]),
        // No x86_64 wheel at all: arm64 reads its own.
        ("armonly", &[("1.0", &["common"])]),
    ]);
    index.tags = BTreeMap::from([("tool".into(), vec![x86, arm]), ("armonly".into(), vec![arm])]);
    index.projects.get_mut("dep").unwrap()[0].1 = vec!["armonly; platform_machine == 'aarch64'".into()];
    let locked = lock(&index, "tool", "1.0", &[Platform::LINUX_AMD64, Platform::LINUX_ARM64]).await.unwrap();
    let summary: Vec<String> = locked
        .packages
        .iter()
        .map(|p| {
            let platforms: Vec<String> = p.platforms.iter().map(ToString::to_string).collect();
            format!("{} {} {platforms:?}", p.name, p.artifact.url.rsplit('/').next().unwrap())
        })
        .collect();
    assert_eq!(
        summary,
        [
            "armonly armonly-1.0-py3-none-manylinux_2_17_aarch64.whl [\"linux/arm64\"]",
            "common common-1.0-py3-none-any.whl []",
            "dep dep-1.0-py3-none-any.whl [\"linux/arm64\"]",
            "tool tool-1.0-py3-none-manylinux_2_17_aarch64.whl [\"linux/arm64\"]",
            "tool tool-1.0-py3-none-manylinux_2_17_x86_64.whl [\"linux/amd64\"]",
        ]
    );
    let asked = index.asked();
    assert!(!asked.contains(&format!("files/tool-1.0-{arm}.whl")), "{asked:?}");
    assert!(
        asked.contains(&format!("files/tool-1.0-{x86}.whl")) && asked.contains(&format!("files/armonly-1.0-{arm}.whl"))
    );
}

#[tokio::test]
async fn a_release_for_a_newer_python_is_an_error_naming_one_that_fits() {
    let mut index = Index::new(&[
        ("tool", &[("1.0", &["dep"]), ("2.0", &["dep"])]),
        ("dep", &[("1.0", &[]), ("2.0", &[])]),
        ("other", &[("1.0", &["dep==2.0"])]),
    ]);
    index.requires_python = BTreeMap::from([("tool-2.0".into(), ">=3.13".into()), ("dep-2.0".into(), ">=3.14".into())]);
    let platforms = [Platform::LINUX_AMD64];
    // The tool itself: which release would do.
    match lock(&index, "tool", "latest", &platforms).await {
        Err(ResolveError::PythonTooOld { package, version, requires_python, python, help }) => {
            assert_eq!((package.as_str(), version.as_str(), requires_python.as_str()), ("tool", "2.0", ">=3.13"));
            assert_eq!(python, DEFAULT_PYTHON);
            assert!(help.contains("pin pipx:tool to 1.0, the newest release that runs on python"), "{help}");
        }
        other => panic!("{other:?}"),
    }
    // A dependency the resolver may step back on is stepped back (dep 1.0), as pip does.
    assert_eq!(pins(&lock(&index, "tool", "1.0", &platforms).await.unwrap()), ["dep==1.0", "tool==1.0"]);
    // One pinned by a requirement: named with the closure it is in.
    match lock(&index, "other", "1.0", &platforms).await {
        Err(ResolveError::PythonTooOld { package, requires_python, help, .. }) => {
            assert_eq!(
                (package.as_str(), requires_python.as_str()),
                ("dep (in the closure of pipx:other 1.0)", ">=3.14")
            );
            assert!(help.contains("takes dep 1.0 or older"), "{help}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn mise_s_extras_option_brings_the_extras_requirements_into_the_closure() {
    let index = Index::new(&[
        ("tool", &[("1.0", &["a", "b; extra == 'fast'", "c; extra == 'db'"])]),
        ("a", &[("1.0", &[])]),
        ("b", &[("1.0", &[])]),
        ("c", &[("1.0", &[])]),
    ]);
    let platforms = [Platform::LINUX_AMD64];
    let with = |extras: &'static str| {
        let (index, platforms) = (&index, &platforms);
        async move { lock_with(index, "tool", &[("extras", extras)], "1.0", platforms).await }
    };
    assert_eq!(pins(&lock(&index, "tool", "1.0", &platforms).await.unwrap()), ["a==1.0", "tool==1.0"]);
    assert_eq!(pins(&with("fast").await.unwrap()), ["a==1.0", "b==1.0", "tool==1.0"]);
    assert_eq!(pins(&with(" fast, db ").await.unwrap()), ["a==1.0", "b==1.0", "c==1.0", "tool==1.0"]);
    let err = with("fast,no good").await.unwrap_err().to_string();
    assert!(err.contains("`no good` is not an extra name") && err.contains("extras = \"one,two\""), "{err}");
    // An extra the release does not define: pip would warn and install without it.
    let err = with("fast,Fats").await.unwrap_err().to_string();
    assert!(err.contains("has no extra `fats`; it defines: fast, db (its METADATA"), "{err}");
    assert_eq!(pins(&with("FAST").await.unwrap()), ["a==1.0", "b==1.0", "tool==1.0"], "names compare normalised");
}

#[tokio::test]
async fn git_and_url_sources_are_refused_before_any_request() {
    let index = Index::new(&[("black", &[("1.0", &[])])]);
    for tool in ["psf/black", "git+https://github.com/psf/black.git"] {
        let err = lock(&index, tool, "1.0", &[Platform::LINUX_AMD64]).await.unwrap_err().to_string();
        assert!(err.contains("not supported yet") && err.contains("PyPI releases only"), "{err}");
    }
    assert!(index.asked().is_empty(), "{:?}", index.asked());
}

fn wheel(tag: &str, size: Option<u64>) -> File {
    File {
        filename: format!("tool-1.0-{tag}.whl"),
        url: format!("http://p/files/tool-1.0-{tag}.whl"),
        digests: Default::default(),
        size,
        requires_python: None,
        yanked: false,
        metadata: None,
    }
}

#[test]
fn metadata_is_read_from_a_small_wheel_a_target_installs_else_from_the_first_target_s() {
    let targets: Vec<Target> =
        [Platform::LINUX_AMD64, Platform::LINUX_ARM64].iter().map(|&p| Target::new(p, "3.12").unwrap()).collect();
    let name = |f: Option<&File>| f.map(|f| f.filename.clone()).unwrap_or_default();
    let (x86, arm) = ("cp312-cp312-manylinux_2_17_x86_64", "cp312-cp312-manylinux_2_17_aarch64");
    // The Windows wheel is the smallest, but no target installs it.
    let files = [wheel("py3-none-win32", Some(10)), wheel(x86, Some(1000)), wheel(arm, Some(900))];
    assert_eq!(name(metadata_wheel(&files, &targets)), format!("tool-1.0-{arm}.whl"));
    assert_eq!(name(metadata_wheel(&files, &targets[..1])), format!("tool-1.0-{x86}.whl"));
    // A pure wheel every target could install, though each prefers its own.
    let mut with_pure = files.to_vec();
    with_pure.push(wheel("py3-none-any", Some(200)));
    assert_eq!(name(metadata_wheel(&with_pure, &targets[..1])), "tool-1.0-py3-none-any.whl");
    // Yanked or for another Python: not a candidate.
    with_pure[3].yanked = true;
    assert_eq!(name(metadata_wheel(&with_pure, &targets)), format!("tool-1.0-{arm}.whl"));
    with_pure[3].yanked = false;
    with_pure[3].requires_python = Some(">=3.13".into());
    assert_eq!(name(metadata_wheel(&with_pure, &targets)), format!("tool-1.0-{arm}.whl"));
    // Too large to download whole (read by range whatever the size), equal sizes, or no sizes
    // listed (an HTML index): the first target's best wheel.
    let large = WHOLE_WHEEL + 1;
    let big = [wheel(arm, Some(large)), wheel(x86, Some(large + 10)), wheel("py3-none-any", Some(large + 20))];
    assert_eq!(name(metadata_wheel(&big, &targets)), format!("tool-1.0-{x86}.whl"));
    let same = [wheel(arm, Some(5)), wheel(x86, Some(5))];
    assert_eq!(name(metadata_wheel(&same, &targets)), format!("tool-1.0-{x86}.whl"));
    let no_sizes = [wheel(arm, None), wheel(x86, None), wheel("py3-none-any", None)];
    assert_eq!(name(metadata_wheel(&no_sizes, &targets)), format!("tool-1.0-{x86}.whl"));
    // Only the second target has one.
    assert_eq!(name(metadata_wheel(&[wheel(arm, None)], &targets)), format!("tool-1.0-{arm}.whl"));
    assert!(metadata_wheel(&files[..1], &targets).is_none());
}

#[tokio::test]
async fn a_small_wheel_is_read_whole_and_checked_a_large_one_by_range() {
    let x86 = "cp312-cp312-manylinux_2_17_x86_64";
    let projects: Projects<'_> = &[("tool", &[("1.0", &["a"])]), ("a", &[("1.0", &[])])];
    let platforms = [Platform::LINUX_AMD64];
    let index = |pure_size: u64| {
        let mut index = Index::new(projects);
        index.tags = BTreeMap::from([("tool".into(), vec![x86, "py3-none-any"])]);
        index.sizes = BTreeMap::from([
            (format!("tool-1.0-{x86}.whl"), 2_000_000),
            ("tool-1.0-py3-none-any.whl".into(), pure_size),
        ]);
        index
    };
    // The pure wheel is small: downloaded whole, though the lock pins the x86_64 one.
    let small = index(WHOLE_WHEEL);
    let locked = lock(&small, "tool", "1.0", &platforms).await.unwrap();
    assert_eq!(pins(&locked), ["a==1.0", "tool==1.0"]);
    assert!(locked.packages.iter().any(|p| p.artifact.url.ends_with(&format!("{x86}.whl"))));
    let asked = small.asked();
    assert!(asked.contains(&"files/tool-1.0-py3-none-any.whl".into()), "{asked:?}");
    assert!(!asked.iter().any(|p| p.starts_with("range ") || p.contains(x86)), "{asked:?}");
    // Both large: the one the target installs is read by range requests.
    let large = index(WHOLE_WHEEL + 1);
    assert_eq!(pins(&lock(&large, "tool", "1.0", &platforms).await.unwrap()), ["a==1.0", "tool==1.0"]);
    let asked = large.asked();
    assert!(asked.contains(&format!("range files/tool-1.0-{x86}.whl")), "{asked:?}");
    assert!(
        !asked.iter().any(|p| p.contains("tool-1.0-py3-none-any.whl") || p == &format!("files/tool-1.0-{x86}.whl"))
    );
    // Not the wheel the index lists a sha256 for: an error naming it, nothing read from it.
    let mut damaged = index(1000);
    damaged.listed_sha256 = BTreeMap::from([("tool-1.0-py3-none-any.whl".into(), "cd".repeat(32))]);
    let err = lock(&damaged, "tool", "1.0", &platforms).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(text.contains("tool-1.0-py3-none-any.whl") && text.contains(&"cd".repeat(32)), "{text}");
    assert!(!damaged.asked().contains(&"simple/a/".into()), "{:?}", damaged.asked());
}
