use serde_json::{Value, json};

use super::*;
use crate::Platform;

/// `(version, Requires-Dist, wheel tags)` of one test release.
type Release<'a> = (&'a str, &'a [&'a str], Option<&'a [&'a str]>);
/// `Requires-Dist` per `(name, version)`.
type Requires = Vec<((String, String), Vec<String>)>;

/// A project whose releases each have the given wheels (`py3-none-any` when `None`) and
/// `Requires-Dist`.
fn project(name: &str, releases: &[Release<'_>]) -> (Project, Requires) {
    let mut rel = serde_json::Map::new();
    let mut requires = Vec::new();
    for (version, deps, wheels) in releases {
        let wheels: Vec<String> = match wheels {
            Some(w) => w.iter().map(|t| format!("{name}-{version}-{t}.whl")).collect(),
            None => vec![format!("{name}-{version}-py3-none-any.whl")],
        };
        let files: Vec<Value> = wheels
            .iter()
            .map(|f| json!({"filename": f, "url": format!("https://files.invalid/{f}"), "digests": {"sha256": "ab".repeat(32)}, "size": 1}))
            .collect();
        rel.insert(version.to_string(), Value::Array(files));
        requires.push(((normalize(name), version.to_string()), deps.iter().map(|d| d.to_string()).collect()));
    }
    let doc = json!({"releases": rel});
    (serde_json::from_value(doc).unwrap(), requires)
}

/// The projects, with every release's `Requires-Dist` fetched when `with_metadata`.
fn store(projects: Vec<(&str, Vec<Release<'_>>)>, with_metadata: bool) -> Store {
    let mut s = Store::default();
    for (name, releases) in projects {
        let (p, requires) = project(name, &releases);
        if with_metadata {
            s.requires.extend(requires);
        }
        s.projects.insert(normalize(name), std::sync::Arc::new(p));
    }
    s
}

fn pins(r: Result<Vec<Pinned>, Failure>) -> Vec<String> {
    r.unwrap().into_iter().map(|p| format!("{}=={}", p.name, p.version)).collect()
}

fn amd64() -> Target {
    Target::new(Platform::LINUX_AMD64, "3.12").unwrap()
}

#[test]
fn markers_extras_and_newest_versions() {
    let s = store(
        vec![
            (
                "tool",
                vec![(
                    "1.0",
                    &["dep>=1", "tomli; python_version < '3.11'", "extra-dep[fast]", "Opt; extra == 'x'"][..],
                    None,
                )],
            ),
            ("dep", vec![("1.0", &[], None), ("2.0", &[], None), ("3.0b1", &[], None)]),
            ("tomli", vec![("2.0", &[], None)]),
            ("extra_dep", vec![("1.0", &["speedy; extra == 'fast'"], None)]),
            ("speedy", vec![("0.1", &[], None)]),
            ("opt", vec![("1.0", &[], None)]),
        ],
        true,
    );
    assert_eq!(
        pins(Resolver::default().resolve(&s, "tool", "1.0", &amd64())),
        ["dep==2.0", "extra-dep==1.0", "speedy==0.1", "tool==1.0"]
    );
    let py310 = Target::new(Platform::LINUX_AMD64, "3.10").unwrap();
    assert!(pins(Resolver::default().resolve(&s, "tool", "1.0", &py310)).contains(&"tomli==2.0".to_string()));
}

#[test]
fn backtracks_on_conflicts() {
    // a wants c<2, b (resolved after c) wants c>=1.5 — fine; then d needs c<1.5 → c restarts.
    let s = store(
        vec![
            ("tool", vec![("1.0", &["c", "d"][..], None)]),
            ("c", vec![("1.0", &[], None), ("1.4", &[], None), ("2.0", &[], None)]),
            ("d", vec![("1.0", &["c<1.5"], None)]),
        ],
        true,
    );
    assert_eq!(pins(Resolver::default().resolve(&s, "tool", "1.0", &amd64())), ["c==1.4", "d==1.0", "tool==1.0"]);
    // e@2 needs f>=2 but tool needs f<2: e is stepped back to 1.0.
    let s = store(
        vec![
            ("tool", vec![("1.0", &["f<2", "e"][..], None)]),
            ("e", vec![("1.0", &["f"], None), ("2.0", &["f>=2"], None)]),
            ("f", vec![("1.0", &[], None), ("2.0", &[], None)]),
        ],
        true,
    );
    assert_eq!(pins(Resolver::default().resolve(&s, "tool", "1.0", &amd64())), ["e==1.0", "f==1.0", "tool==1.0"]);
}

#[test]
fn platform_wheels_and_missing_wheels() {
    let s = store(
        vec![
            ("tool", vec![("1.0", &["native"][..], None)]),
            (
                "native",
                vec![(
                    "1.0",
                    &[],
                    Some(
                        &["cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64", "cp312-cp312-macosx_11_0_arm64"][..],
                    ),
                )],
            ),
        ],
        true,
    );
    let amd = Resolver::default().resolve(&s, "tool", "1.0", &amd64()).unwrap();
    assert!(amd[0].url.ends_with("manylinux2014_x86_64.whl"));
    let arm = Target::new(Platform::LINUX_ARM64, "3.12").unwrap();
    assert_eq!(
        Resolver::default().resolve(&s, "tool", "1.0", &arm),
        Err(Failure::NoWheel {
            package: "native".into(),
            version: "1.0".into(),
            requires_python: None,
            newest_usable: None
        })
    );
}

#[test]
fn a_release_whose_wheels_need_a_newer_python_says_so_and_names_one_that_fits() {
    let (mut tool, requires) = project("tool", &[("1.0", &[], None), ("2.0", &[], None), ("3.0", &[], None)]);
    for (version, files) in tool.releases.iter_mut() {
        if version != "1.0" {
            files[0].requires_python = Some(">=3.13".into());
        }
    }
    let mut s = Store::default();
    s.requires.extend(requires);
    s.projects.insert("tool".into(), std::sync::Arc::new(tool));
    assert_eq!(
        Resolver::default().resolve(&s, "tool", "3.0", &amd64()),
        Err(Failure::NoWheel {
            package: "tool".into(),
            version: "3.0".into(),
            requires_python: Some(">=3.13".into()),
            newest_usable: Some("1.0".into())
        })
    );
    let py313 = Target::new(Platform::LINUX_AMD64, "3.13").unwrap();
    assert_eq!(pins(Resolver::default().resolve(&s, "tool", "3.0", &py313)), ["tool==3.0"]);
}

#[test]
fn reports_what_to_fetch() {
    let s = store(vec![("tool", vec![("1.0", &["a", "b"][..], None), ("2.0", &[], None)])], false);
    // Its metadata must be fetched.
    match Resolver::default().resolve(&s, "tool", "1.0", &amd64()) {
        Err(Failure::Missing(m)) => {
            assert!(matches!(m.iter().next(), Some(Need::Requires { version, .. }) if version == "1.0"))
        }
        other => panic!("{other:?}"),
    }
    let s = store(vec![("tool", vec![("1.0", &["a", "b"][..], None)])], true);
    match Resolver::default().resolve(&s, "tool", "1.0", &amd64()) {
        Err(Failure::Missing(m)) => {
            assert_eq!(m, BTreeSet::from([Need::Project("a".into()), Need::Project("b".into())]))
        }
        other => panic!("{other:?}"),
    }
    let mut s = store(vec![("tool", vec![("1.0", &["gone>=1"][..], None)])], true);
    s.absent.insert("gone".into());
    assert!(matches!(Resolver::default().resolve(&s, "tool", "1.0", &amd64()), Err(Failure::NotFound { .. })));
}
