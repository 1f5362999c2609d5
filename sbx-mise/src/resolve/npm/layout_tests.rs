use serde_json::{Value, json};

use super::*;

/// A store from `(name, version, manifest fields)`; `latest` is the highest listed version.
fn store(entries: &[(&str, &str, Value)]) -> PackumentStore {
    let mut docs: BTreeMap<String, Value> = BTreeMap::new();
    for (name, version, fields) in entries {
        let doc = docs.entry(name.to_string()).or_insert_with(|| json!({"name": name, "versions": {}}));
        let mut manifest = fields.clone();
        manifest["version"] = json!(version);
        manifest["dist"] = json!({
            "tarball": format!("https://r.invalid/{name}/-/{name}-{version}.tgz"),
            "integrity": "sha512-AAAA"
        });
        doc["versions"][*version] = manifest;
        doc["dist-tags"] = json!({"latest": version});
    }
    let found = docs.into_iter().map(|(k, v)| (k, std::sync::Arc::new(serde_json::from_value(v).unwrap()))).collect();
    PackumentStore { found, ..PackumentStore::default() }
}

fn locations(placed: &[Placed]) -> Vec<String> {
    placed.iter().map(|p| format!("{} {}", p.location, p.version)).collect()
}

fn triples(placed: &[Placed]) -> Vec<(String, String, String)> {
    placed.iter().map(|p| (p.location.clone(), p.name.clone(), p.version.clone())).collect()
}

#[test]
fn hoists_and_nests_only_on_conflict() {
    let s = store(&[
        ("tool", "1.0.0", json!({"dependencies": {"a": "^1.0.0", "b": "^1.0.0"}})),
        ("a", "1.0.0", json!({})),
        ("a", "2.0.0", json!({})),
        ("b", "1.0.0", json!({"dependencies": {"a": "^2.0.0", "c": "^1.0.0"}})),
        ("c", "1.0.0", json!({"dependencies": {"a": "^1.0.0"}})),
    ]);
    // `latest` of a is 2.0.0, but the tool's ^1 picks 1.0.0.
    let placed = layout(&s, "tool", "1.0.0", Platform::LINUX_AMD64).unwrap();
    assert_eq!(
        locations(&placed),
        [
            "node_modules/tool 1.0.0",
            "node_modules/tool/node_modules/a 1.0.0",
            "node_modules/tool/node_modules/b 1.0.0",
            "node_modules/tool/node_modules/b/node_modules/a 2.0.0",
            "node_modules/tool/node_modules/c 1.0.0",
        ]
    );
    assert!(check(&s, &triples(&placed)).is_empty());
}

#[test]
fn dedupes_shared_dependencies() {
    let s = store(&[
        ("tool", "1.0.0", json!({"dependencies": {"a": "1", "b": "1"}})),
        ("a", "1.0.0", json!({"dependencies": {"c": "^1.1.0"}})),
        ("b", "1.0.0", json!({"dependencies": {"c": "^1.0.0"}})),
        ("c", "1.0.0", json!({})),
        ("c", "1.2.0", json!({})),
    ]);
    let placed = layout(&s, "tool", "1.0.0", Platform::LINUX_AMD64).unwrap();
    assert_eq!(placed.iter().filter(|p| p.name == "c").count(), 1);
    assert!(locations(&placed).contains(&"node_modules/tool/node_modules/c 1.2.0".to_string()));
}

#[test]
fn shadowing_a_placed_dependency_is_avoided() {
    // a/b@1 needs e@1 (found at the top); a/c@1 needs e@2. Placing e@2 in a/node_modules would
    // shadow the top e@1 for a/b, so it must nest under a/c instead.
    let s = store(&[
        ("tool", "1.0.0", json!({"dependencies": {"a": "1", "b": "2", "c": "2", "e": "1"}})),
        ("a", "1.0.0", json!({"dependencies": {"b": "1"}})),
        ("b", "1.0.0", json!({"dependencies": {"c": "1", "e": "1"}})),
        ("b", "2.0.0", json!({})),
        ("c", "1.0.0", json!({"dependencies": {"e": "2"}})),
        ("c", "2.0.0", json!({})),
        ("e", "1.0.0", json!({})),
        ("e", "2.0.0", json!({})),
    ]);
    let placed = layout(&s, "tool", "1.0.0", Platform::LINUX_AMD64).unwrap();
    assert!(check(&s, &triples(&placed)).is_empty(), "{:?}", locations(&placed));
    let locs = locations(&placed);
    assert!(
        locs.contains(&"node_modules/tool/node_modules/a/node_modules/c/node_modules/e 2.0.0".to_string()),
        "{locs:?}"
    );
}

#[test]
fn optional_platform_packages_per_platform() {
    let s = store(&[
        (
            "tool",
            "1.0.0",
            json!({"optionalDependencies": {"tool-linux-x64": "1.0.0", "tool-linux-arm64": "1.0.0",
                "tool-linux-x64-musl": "1.0.0", "tool-darwin-arm64": "1.0.0", "tool-gone": "1.0.0"}}),
        ),
        ("tool-linux-x64", "1.0.0", json!({"os": ["linux"], "cpu": ["x64"], "libc": ["glibc"]})),
        ("tool-linux-x64-musl", "1.0.0", json!({"os": ["linux"], "cpu": ["x64"], "libc": ["musl"]})),
        ("tool-linux-arm64", "1.0.0", json!({"os": ["linux"], "cpu": ["arm64"]})),
        ("tool-darwin-arm64", "1.0.0", json!({"os": ["darwin"], "cpu": ["arm64"]})),
    ]);
    let mut s = s;
    s.absent.insert("tool-gone".into());
    let names =
        |p: Platform| -> Vec<String> { layout(&s, "tool", "1.0.0", p).unwrap().into_iter().map(|p| p.name).collect() };
    assert_eq!(names(Platform::LINUX_AMD64), ["tool", "tool-linux-x64"]);
    assert_eq!(names(Platform::LINUX_ARM64), ["tool", "tool-linux-arm64"]);
    assert_eq!(names("darwin/arm64".parse().unwrap()), ["tool", "tool-darwin-arm64"]);
}

#[test]
fn peers_go_beside_the_dependent_and_aliases_keep_the_folder() {
    let s = store(&[
        ("tool", "1.0.0", json!({"dependencies": {"plugin": "1", "old": "npm:lib@^1"}})),
        (
            "plugin",
            "1.0.0",
            json!({"peerDependencies": {"host": "^2", "opt": "1"},
            "peerDependenciesMeta": {"opt": {"optional": true}}}),
        ),
        ("host", "2.0.0", json!({})),
        ("lib", "1.5.0", json!({})),
    ]);
    let placed = layout(&s, "tool", "1.0.0", Platform::LINUX_AMD64).unwrap();
    assert_eq!(
        triples(&placed).into_iter().map(|(l, n, _)| format!("{l}={n}")).collect::<Vec<_>>(),
        [
            "node_modules/tool=tool",
            "node_modules/tool/node_modules/host=host",
            "node_modules/tool/node_modules/old=lib",
            "node_modules/tool/node_modules/plugin=plugin",
        ]
    );
    assert!(check(&s, &triples(&placed)).is_empty());
}

#[test]
fn cycles_resolve_to_the_tool_itself() {
    let s = store(&[
        ("tool", "1.0.0", json!({"dependencies": {"a": "1"}})),
        ("a", "1.0.0", json!({"dependencies": {"tool": "^1"}})),
    ]);
    let placed = layout(&s, "tool", "1.0.0", Platform::LINUX_AMD64).unwrap();
    assert_eq!(placed.len(), 2);
}

#[test]
fn reports_missing_and_errors() {
    let s = store(&[("tool", "1.0.0", json!({"dependencies": {"a": "1", "b": "1"}}))]);
    match layout(&s, "tool", "1.0.0", Platform::LINUX_AMD64) {
        Err(LayoutError::Missing(m)) => assert_eq!(m, BTreeSet::from(["a".to_string(), "b".to_string()])),
        other => panic!("{other:?}"),
    }
    let s = store(&[("tool", "1.0.0", json!({"dependencies": {"a": "^3"}})), ("a", "1.0.0", json!({}))]);
    assert!(matches!(layout(&s, "tool", "1.0.0", Platform::LINUX_AMD64), Err(LayoutError::NoVersion { .. })));
    let s = store(&[("tool", "1.0.0", json!({"dependencies": {"a": "github:x/a"}}))]);
    assert!(matches!(layout(&s, "tool", "1.0.0", Platform::LINUX_AMD64), Err(LayoutError::Unsupported { .. })));
    let s = store(&[("tool", "1.0.0", json!({"dependencies": {"a": "1"}})), ("a", "1.0.0", json!({"os": ["darwin"]}))]);
    assert!(matches!(layout(&s, "tool", "1.0.0", Platform::LINUX_AMD64), Err(LayoutError::Platform { .. })));
}

#[test]
fn a_partial_tool_document_places_the_tool_and_asks_for_the_whole_packument_only_to_pick() {
    let full = store(&[
        ("tool", "1.0.0", json!({"dependencies": {"plugin": "^1.0.0", "helper": "^1.0.0"}})),
        ("tool", "2.0.0", json!({})),
        // A peer back on the tool that the tool's own version satisfies: no pick needed.
        ("helper", "1.0.0", json!({"peerDependencies": {"tool": "^1.0.0"}})),
        // A dependency on another version of the tool: that needs the whole packument.
        ("plugin", "1.0.0", json!({"dependencies": {"tool": "^2.0.0"}})),
    ]);
    let expected = layout(&full, "tool", "1.0.0", Platform::LINUX_AMD64).unwrap();
    assert!(
        locations(&expected).contains(&"node_modules/tool/node_modules/plugin/node_modules/tool 2.0.0".to_string())
    );

    // Only the tool's version document: placed from it, until the plugin's edge must pick.
    let mut s = full_but_partial(&full, "tool", "1.0.0");
    assert_eq!(
        layout(&s, "tool", "1.0.0", Platform::LINUX_AMD64),
        Err(LayoutError::Missing(BTreeSet::from(["tool".to_string()])))
    );
    // The whole packument, once fetched, takes precedence: the same tree as with it from the start.
    s.found.insert("tool".into(), full.found["tool"].clone());
    assert_eq!(layout(&s, "tool", "1.0.0", Platform::LINUX_AMD64).unwrap(), expected);

    // Without the plugin, the version document is all the layout needs.
    let mut s = full_but_partial(&full, "tool", "1.0.0");
    let mut tool = (*s.partial["tool"]).clone();
    tool.versions.get_mut("1.0.0").unwrap().dependencies.remove("plugin");
    s.partial.insert("tool".into(), std::sync::Arc::new(tool));
    let placed = layout(&s, "tool", "1.0.0", Platform::LINUX_AMD64).unwrap();
    assert_eq!(locations(&placed), ["node_modules/tool 1.0.0", "node_modules/tool/node_modules/helper 1.0.0"]);
}

/// `full` with `name` known only by the document of `version`.
fn full_but_partial(full: &PackumentStore, name: &str, version: &str) -> PackumentStore {
    let mut found = full.found.clone();
    let whole = found.remove(name).unwrap();
    let doc = Packument {
        name: name.to_string(),
        versions: BTreeMap::from([(version.to_string(), whole.versions[version].clone())]),
        ..Packument::default()
    };
    PackumentStore {
        found,
        partial: BTreeMap::from([(name.to_string(), std::sync::Arc::new(doc))]),
        ..PackumentStore::default()
    }
}
