use super::*;

const SOURCE: &str = "https://pypi.example/simple/python-dateutil/";

/// The canonical version [`parse`] files `filename` under.
fn version_of(filename: &str, name: &str) -> Option<String> {
    Some(Version::from_str(raw_version(filename, name)?).ok()?.to_string())
}

fn page(files: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "meta": {"api-version": "1.1", "_last-serial": 1},
        "name": "python-dateutil",
        "versions": ["2.8.2", "2.9.0.post0"],
        "files": files,
    }))
    .unwrap()
}

#[test]
fn files_are_grouped_by_the_version_their_name_carries() {
    let body = page(serde_json::json!([
        {"filename": "python-dateutil-2.8.2.tar.gz", "url": "../../packages/a/python-dateutil-2.8.2.tar.gz",
         "hashes": {"sha256": "0123"}, "size": 10},
        {"filename": "python_dateutil-2.8.2-py2.py3-none-any.whl",
         "url": "https://files.example/b/python_dateutil-2.8.2-py2.py3-none-any.whl",
         "hashes": {"sha256": "4567", "md5": "x"}, "requires-python": ">=2.7", "size": 20,
         "core-metadata": {"sha256": "89ab"}, "data-dist-info-metadata": {"sha256": "89ab"}},
        {"filename": "python_dateutil-2.9.0.post0-py2.py3-none-any.whl", "url": "c.whl", "hashes": {},
         "yanked": "broken on Windows", "data-dist-info-metadata": true},
        {"filename": "python_dateutil-2.9.0-py2.7.egg", "url": "d.egg", "hashes": {}},
        {"filename": "python-dateutil-2.0.win32.exe", "url": "e.exe", "hashes": {}},
        {"filename": "python_dateutil-not.a.version-py3-none-any.whl", "url": "f.whl", "hashes": {}},
    ]));
    let project = parse(SOURCE, "Python_Dateutil", &body).unwrap();
    assert_eq!(project.releases.keys().collect::<Vec<_>>(), ["2.8.2", "2.9.0", "2.9.0.post0"]);
    let old = &project.releases["2.8.2"];
    assert_eq!(old[0].url, "https://pypi.example/packages/a/python-dateutil-2.8.2.tar.gz");
    assert_eq!((old[0].size, old[0].metadata.is_none()), (Some(10), true));
    let wheel = &old[1];
    assert_eq!(wheel.digests.sha256.as_deref(), Some("4567"));
    assert_eq!(wheel.requires_python.as_deref(), Some(">=2.7"));
    assert_eq!(wheel.metadata, Some(Digests { sha256: Some("89ab".into()) }));
    assert!(!wheel.yanked);
    let new = &project.releases["2.9.0.post0"][0];
    assert_eq!(new.url, "https://pypi.example/simple/python-dateutil/c.whl");
    assert!(new.yanked, "a yank reason yanks");
    assert_eq!(new.metadata, Some(Digests { sha256: None }), "PEP 658's older key without a digest");
}

#[test]
fn an_html_page_reads_as_its_json_twin_without_sizes() {
    let json = page(serde_json::json!([
        {"filename": "python-dateutil-2.8.2.tar.gz", "url": "../../packages/a/python-dateutil-2.8.2.tar.gz",
         "hashes": {"sha256": "0123"}, "requires-python": ">=2.7, !=3.0.*", "size": 10},
        {"filename": "python_dateutil-2.8.2-py2.py3-none-any.whl", "url": "https://files.example/b/x.whl?a=1&b=2",
         "hashes": {"sha256": "4567"}, "core-metadata": {"sha256": "89ab"}, "size": 20},
        {"filename": "python_dateutil-2.9.0-py3-none-any.whl", "url": "c.whl", "hashes": {},
         "yanked": "broken", "data-dist-info-metadata": true, "size": 30},
    ]));
    // As PyPI writes it: entities in attributes, the sha256 in the fragment, PEP 714 and 592
    // attributes, a file name with its own markup around it.
    let html = r#"<!DOCTYPE html><html><head><title>Links for python-dateutil</title></head><body>
<h1>Links for python-dateutil</h1>
<a href="../../packages/a/python-dateutil-2.8.2.tar.gz#sha256=0123" data-requires-python="&gt;=2.7, !=3.0.*">python-dateutil-2.8.2.tar.gz</a><br/>
<a href="https://files.example/b/x.whl?a=1&amp;b=2#sha256=4567" data-core-metadata="sha256=89ab" data-dist-info-metadata="sha256=89ab">
  python_dateutil-2.8.2-py2.py3-none-any.whl</a><br/>
<a href="c.whl" data-yanked="" data-dist-info-metadata="true">python_dateutil-2.9.0-py3-none-any.whl</a>
<a name="not-a-file">anchor without href</a>
</body></html>"#;
    let from_json = parse(SOURCE, "python-dateutil", &json).unwrap();
    let mut from_html = parse(SOURCE, "python-dateutil", html.as_bytes()).unwrap();
    assert!(from_html.releases.values().flatten().all(|f| f.size.is_none()), "HTML pages carry no sizes");
    for file in from_html.releases.values_mut().flatten() {
        file.size = from_json.releases.values().flatten().find(|f| f.filename == file.filename).unwrap().size;
    }
    assert_eq!(format!("{from_html:?}"), format!("{from_json:?}"));
    assert_eq!(from_json.releases["2.8.2"][1].url, "https://files.example/b/x.whl?a=1&b=2");
}

#[test]
fn a_page_that_is_not_a_simple_index_page_is_an_error_naming_it() {
    for body in [
        &br#"{"info": {}, "releases": {}}"#[..],
        br#"{"meta": {"api-version": "1.0"}, "files": [{"filename": 3}]}"#,
        &[0xff, 0xfe, b'<'],
        b"<html><body><form action=\"/login\"><a name=\"top\">Sign in</a></form></body></html>",
    ] {
        let err = parse(SOURCE, "x", body).unwrap_err().to_string();
        assert!(err.contains(SOURCE), "{err}");
    }
    let future = br#"{"meta": {"api-version": "2.0"}, "files": []}"#;
    let err = format!("{:?}", parse(SOURCE, "x", future).unwrap_err());
    assert!(err.contains("2.0") && err.contains("SBX_PYPI_URL"), "{err}");
}

#[test]
fn versions_come_from_wheel_egg_and_source_archive_names() {
    let cases = [
        ("black-24.10.0-cp312-cp312-manylinux_2_17_x86_64.whl", "black", Some("24.10.0")),
        ("Black-24.1-1-py3-none-any.whl", "black", Some("24.1")),
        ("zope.interface-7.1.1.tar.gz", "zope-interface", Some("7.1.1")),
        ("zope_interface-7.1.1.zip", "zope.interface", Some("7.1.1")),
        ("python-dateutil-2.8.2.tar.gz", "python-dateutil", Some("2.8.2")),
        ("requests-2.0-py2.7.egg", "requests", Some("2.0")),
        ("ruff-0.8.0rc1.tar.gz", "ruff", Some("0.8.0rc1")),
        ("ruff-0.8.0.RC1.tar.gz", "ruff", Some("0.8.0rc1")),
        ("other-1.0.tar.gz", "ruff", None),
        ("ruff-0.8.0.msi", "ruff", None),
        ("ruff.tar.gz", "ruff", None),
    ];
    for (file, name, want) in cases {
        assert_eq!(version_of(file, name).as_deref(), want, "{file}");
    }
}

proptest::proptest! {
    #[test]
    fn any_file_name_or_page_is_read_without_panicking(name in "\\PC{0,12}", file in "\\PC{0,40}", body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
        let _ = version_of(&file, &name);
        let _ = parse(SOURCE, &name, &body);
        let page = page(serde_json::json!([{"filename": file, "url": file, "hashes": {}}]));
        let _ = parse(SOURCE, &name, &page);
    }
}

#[test]
fn yanked_and_metadata_flags_read_in_every_shape() {
    let flag = |value: serde_json::Value| {
        let body = page(serde_json::json!([
            {"filename": "python_dateutil-1.0-py3-none-any.whl", "url": "a.whl", "hashes": {"sha256": "01"},
             "yanked": value.clone(), "core-metadata": value},
        ]));
        let file = parse(SOURCE, "python-dateutil", &body).unwrap().releases["1.0"][0].clone();
        (file.yanked, file.metadata.map(|d| d.sha256))
    };
    use serde_json::json;
    assert_eq!(flag(json!(false)), (false, None));
    assert_eq!(flag(json!(null)), (false, None));
    assert_eq!(flag(json!(true)), (true, Some(None)));
    assert_eq!(flag(json!("a reason")), (true, Some(None)));
    assert_eq!(flag(json!({"sha256": "89ab", "md5": "x"})), (true, Some(Some("89ab".into()))));
    assert_eq!(flag(json!({"sha256": 1})), (true, Some(None)));
    assert_eq!(flag(json!({})), (true, Some(None)));
    assert_eq!(flag(json!([1])), (true, Some(None)));
    assert_eq!(flag(json!(1.5)), (true, Some(None)));
}
