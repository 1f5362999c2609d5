//! pipx tools: a venv with the locked wheels unpacked and console scripts generated.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};

use common::{Reply, Server, artifact};
use sbx_image::build::{BuildOptions, LayerKind};
use sbx_image::{Cache, NoProgress, build_image};
use sbx_mise::Platform;
use sbx_mise::lockfile::model::{LockedPackage, LockedTool, Lockfile};

fn wheel(files: &[(&str, &str)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
        zip.write_all(body.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

#[tokio::test]
async fn pipx_venv_with_console_scripts() {
    let server = Server::start();
    let body = wheel(&[
        ("hello/__init__.py", "def main():\n    print('hi')\n"),
        ("hello_tool-1.0.dist-info/METADATA", "Name: hello-tool\nVersion: 1.0\n"),
        ("hello_tool-1.0.dist-info/entry_points.txt", "[console_scripts]\nhello = hello:main\n"),
        ("hello_tool-1.0.data/scripts/legacy", "#!python\nprint('legacy')\n"),
    ]);
    let url = server.route("/hello_tool-1.0-py3-none-any.whl", Reply::Ok(body.clone()));
    let tool = LockedTool {
        backend: "pipx:hello-tool".into(),
        request: "1".into(),
        version: "1.0".into(),
        runtime: Some("python@3.12.7".into()),
        options: BTreeMap::new(),
        platforms: BTreeMap::new(),
        packages: vec![LockedPackage {
            name: "hello-tool".into(),
            version: "1.0".into(),
            location: None,
            artifact: artifact(&url, &body),
            platforms: vec![],
        }],
    };
    let lock = Lockfile {
        version: 1,
        inputs: "sha256:00".into(),
        platforms: vec![Platform::LINUX_AMD64],
        extra_platforms: Vec::new(),
        upstreams: None,
        base: None,
        tools: BTreeMap::from([("pipx:hello-tool".to_string(), vec![tool])]),
    };
    let cache = tempfile::tempdir().unwrap();
    let out = build_image(&lock, &BuildOptions::new(Cache::new(cache.path())), &NoProgress).await.unwrap();
    let layer = out.images[0].layers.iter().find(|l| matches!(l.kind, LayerKind::Tool { .. })).unwrap();
    let mut entries = BTreeMap::new();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&layer.path).unwrap()));
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8(e.path_bytes().to_vec()).unwrap();
        let link = e.link_name().unwrap().map(|l| l.display().to_string());
        let mode = e.header().mode().unwrap();
        let mut s = String::new();
        let _ = e.read_to_string(&mut s);
        entries.insert(path, (link, mode, s));
    }
    let install = "opt/sbx/mise/installs/pipx-hello-tool/1.0";
    let venv = format!("{install}/hello-tool");
    assert_eq!(entries[&format!("{install}/bin/hello")].0.as_deref(), Some("../hello-tool/bin/hello"));
    let script = &entries[&format!("{venv}/bin/hello")];
    assert_eq!(script.1, 0o755);
    assert!(
        script.2.starts_with(&format!("#!/{venv}/bin/python\n")) && script.2.contains("from hello import main"),
        "{}",
        script.2
    );
    assert!(entries[&format!("{venv}/bin/legacy")].2.starts_with(&format!("#!/{venv}/bin/python\nprint")));
    assert_eq!(
        entries[&format!("{venv}/bin/python")].0.as_deref(),
        Some("/opt/sbx/mise/installs/python/3.12.7/bin/python3.12")
    );
    assert!(entries.contains_key(&format!("{venv}/lib/python3.12/site-packages/hello/__init__.py")));
    assert!(!entries.keys().any(|k| k.contains(".data")));
    assert!(entries[&format!("{venv}/pyvenv.cfg")].2.contains("home = /opt/sbx/mise/installs/python/3.12.7/bin"));
}
