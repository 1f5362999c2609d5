//! Writes `fixtures/upstream/`: small but real artifacts laid out like the real ones, and the
//! upstream index files (node, Go, GitHub releases) in their real formats, listing exactly the
//! sha256 and size of those artifacts.
//!
//! Run `cargo run -p sbx-fixtures -- generate` after changing anything here. The output is
//! deterministic (fixed mtimes, owners and compression settings), and the committed files are
//! checked against each other by this crate's tests.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One file inside an archive: path, mode, content.
type Entry = (String, u32, String);

/// A written file's sha256 (hex) and size.
#[derive(Clone, Debug)]
struct Written {
    sha256: String,
    size: u64,
}

/// Regenerates every fixture below `root` (normally `fixtures/upstream/`).
pub fn generate(root: &Path) -> Result<()> {
    node(root)?;
    go(root)?;
    python(root)?;
    ripgrep(root)?;
    gh(root)?;
    Ok(())
}

/// A deterministic `.tar.gz`: directories implied, mtime 0, root owner, no user names.
pub fn tar_gz(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, mode, content) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(*mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, content.as_bytes())?;
    }
    let raw = tar.into_inner()?;
    let mut gz = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
    gz.write_all(&raw)?;
    Ok(gz.finish()?)
}

/// A deterministic `.zip` (1980-01-01 timestamps, deflated).
pub fn zip(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (path, mode, content) in entries {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(*mode);
        w.start_file(path.as_str(), options)?;
        w.write_all(content.as_bytes())?;
    }
    Ok(w.finish()?.into_inner())
}

fn put(root: &Path, rel: &str, bytes: &[u8]) -> Result<Written> {
    let path = root.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(Written { sha256: hex::encode(Sha256::digest(bytes)), size: bytes.len() as u64 })
}

fn put_json(root: &Path, rel: &str, value: &Value) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    put(root, rel, text.as_bytes()).map(|_| ())
}

fn script(text: &str) -> String {
    format!("#!/bin/sh\necho '{text}'\n")
}

fn sums(lines: &[(String, Written)]) -> String {
    let mut sorted: Vec<_> = lines.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted.iter().map(|(name, w)| format!("{}  {name}\n", w.sha256)).collect()
}

// ---------------------------------------------------------------- node

/// (version, date, lts, npm, modules, security, served)
type NodeRelease = (&'static str, &'static str, Option<&'static str>, &'static str, &'static str, bool, bool);

fn node(root: &Path) -> Result<()> {
    // (version, date, lts, npm, modules, security, served)
    let versions: [NodeRelease; 11] = [
        ("24.0.0-rc.1", "2024-11-25", None, "10.9.1", "134", false, false),
        ("23.3.0", "2024-11-20", None, "10.9.0", "131", false, true),
        ("23.2.0", "2024-11-11", None, "10.9.0", "131", false, false),
        ("22.11.0", "2024-10-29", Some("Jod"), "10.9.0", "127", false, true),
        ("22.10.0", "2024-10-16", None, "10.9.0", "127", false, false),
        ("22.9.0", "2024-09-17", None, "10.8.3", "127", false, false),
        ("20.18.0", "2024-10-03", Some("Iron"), "10.8.2", "115", false, true),
        ("20.17.0", "2024-08-21", Some("Iron"), "10.8.2", "115", false, false),
        ("18.20.5", "2024-11-12", Some("Hydrogen"), "10.8.2", "108", false, true),
        ("18.20.4", "2024-07-08", Some("Hydrogen"), "10.7.0", "108", true, false),
        ("16.20.2", "2023-08-08", Some("Gallium"), "8.19.4", "93", true, false),
    ];
    let files = [
        "aix-ppc64",
        "headers",
        "linux-arm64",
        "linux-armv7l",
        "linux-ppc64le",
        "linux-s390x",
        "linux-x64",
        "osx-arm64-tar",
        "osx-x64-pkg",
        "osx-x64-tar",
        "src",
        "win-arm64-zip",
        "win-x64-msi",
        "win-x64-zip",
        "win-x86-zip",
    ];
    let mut index = Vec::new();
    for (version, date, lts, npm, modules, security, served) in versions {
        index.push(json!({
            "version": format!("v{version}"),
            "date": date,
            "files": files,
            "npm": npm,
            "v8": "12.4.254.21-node.21",
            "uv": "1.49.1",
            "zlib": "1.3.0.1-motley-71660e1",
            "openssl": "3.0.15+quic",
            "modules": modules,
            "lts": lts.map_or(Value::Bool(false), |l| Value::String(l.into())),
            "security": security,
        }));
        if !served {
            continue;
        }
        let mut lines = Vec::new();
        for platform in ["linux-x64", "linux-arm64", "darwin-x64", "darwin-arm64"] {
            let dir = format!("node-v{version}-{platform}");
            let bytes = tar_gz(&[
                (format!("{dir}/bin/node"), 0o755, script(&format!("v{version}"))),
                (format!("{dir}/README.md"), 0o644, format!("sbx fixture: node v{version} for {platform}\n")),
            ])?;
            let name = format!("{dir}.tar.gz");
            lines.push((name.clone(), put(root, &format!("node/v{version}/{name}"), &bytes)?));
        }
        put(root, &format!("node/v{version}/SHASUMS256.txt"), sums(&lines).as_bytes())?;
    }
    let text = format!("[\n{}\n]\n", index.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",\n"));
    put(root, "node/index.json", text.as_bytes())?;
    Ok(())
}

// ---------------------------------------------------------------- go

fn go(root: &Path) -> Result<()> {
    let versions =
        [("1.24rc1", false), ("1.23.3", true), ("1.23.2", true), ("1.22.9", true), ("1.22.0", true), ("1.21.13", true)];
    let mut index = Vec::new();
    for (version, stable) in versions {
        let mut files = Vec::new();
        let src = tar_gz(&[("go/VERSION".to_string(), 0o644, format!("go{version}\n"))])?;
        let w = put(root, &format!("go/go{version}.src.tar.gz"), &src)?;
        files.push(go_file(&format!("go{version}.src.tar.gz"), "", "", version, &w, "source"));
        for (os, arch) in
            [("darwin", "amd64"), ("darwin", "arm64"), ("linux", "386"), ("linux", "amd64"), ("linux", "arm64")]
        {
            let bytes = tar_gz(&[
                ("go/VERSION".into(), 0o644, format!("go{version}\n")),
                ("go/bin/go".into(), 0o755, script(&format!("go version go{version} {os}/{arch}"))),
            ])?;
            let name = format!("go{version}.{os}-{arch}.tar.gz");
            let w = put(root, &format!("go/{name}"), &bytes)?;
            files.push(go_file(&name, os, arch, version, &w, "archive"));
            if os == "darwin" {
                let pkg = format!("sbx fixture installer go{version} {os}/{arch}\n");
                let name = format!("go{version}.{os}-{arch}.pkg");
                let w = put(root, &format!("go/{name}"), pkg.as_bytes())?;
                files.push(go_file(&name, os, arch, version, &w, "installer"));
            }
        }
        index.push(json!({ "version": format!("go{version}"), "stable": stable, "files": files }));
    }
    put_json(root, "go/index.json", &Value::Array(index))
}

fn go_file(name: &str, os: &str, arch: &str, version: &str, w: &Written, kind: &str) -> Value {
    json!({
        "filename": name, "os": os, "arch": arch, "version": format!("go{version}"),
        "sha256": w.sha256, "size": w.size, "kind": kind,
    })
}

// ---------------------------------------------------------------- GitHub releases

/// One release asset before it becomes API JSON.
struct Asset {
    name: String,
    written: Written,
    content_type: &'static str,
}

struct Release<'a> {
    owner: &'a str,
    repo: &'a str,
    id: u64,
    tag: &'a str,
    prerelease: bool,
    published: &'a str,
    digests: bool,
}

fn content_type(name: &str) -> &'static str {
    if name.ends_with(".tar.gz") {
        "application/gzip"
    } else if name.ends_with(".zip") {
        "application/zip"
    } else if name.ends_with(".deb") {
        "application/vnd.debian.binary-package"
    } else if name.ends_with(".rpm") {
        "application/x-rpm"
    } else {
        "text/plain"
    }
}

/// Writes an asset under `github.com/<owner>/<repo>/releases/download/<tag>/`.
fn asset(root: &Path, r: &Release, name: &str, bytes: &[u8]) -> Result<Asset> {
    let written = put(root, &format!("github.com/{}/{}/releases/download/{}/{name}", r.owner, r.repo, r.tag), bytes)?;
    Ok(Asset { name: name.to_string(), written, content_type: content_type(name) })
}

fn release_json(r: &Release, assets: &[Asset]) -> Value {
    let api = format!("{{{{base}}}}/github/repos/{}/{}", r.owner, r.repo);
    let uploader = json!({"login": "github-actions[bot]", "id": 41898282, "type": "Bot", "site_admin": false});
    let assets: Vec<Value> = assets
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let id = r.id * 1000 + i as u64;
            let encoded = a.name.replace('+', "%2B");
            json!({
                "url": format!("{api}/releases/assets/{id}"),
                "id": id,
                "node_id": format!("RA_kwDOfixture{id}"),
                "name": a.name,
                "label": "",
                "uploader": uploader,
                "content_type": a.content_type,
                "state": "uploaded",
                "size": a.written.size,
                "digest": if r.digests { Value::String(format!("sha256:{}", a.written.sha256)) } else { Value::Null },
                "download_count": 1000 + i,
                "created_at": format!("{}T12:00:00Z", r.published),
                "updated_at": format!("{}T12:00:00Z", r.published),
                "browser_download_url": format!("{{{{base}}}}/github.com/{}/{}/releases/download/{}/{encoded}", r.owner, r.repo, r.tag),
            })
        })
        .collect();
    json!({
        "url": format!("{api}/releases/{}", r.id),
        "assets_url": format!("{api}/releases/{}/assets", r.id),
        "upload_url": format!("https://uploads.github.com/repos/{}/{}/releases/{}/assets{{?name,label}}", r.owner, r.repo, r.id),
        "html_url": format!("https://github.com/{}/{}/releases/tag/{}", r.owner, r.repo, r.tag),
        "id": r.id,
        "author": uploader,
        "node_id": format!("RE_kwDOfixture{}", r.id),
        "tag_name": r.tag,
        "target_commitish": "main",
        "name": r.tag,
        "draft": false,
        "prerelease": r.prerelease,
        "created_at": format!("{}T11:00:00Z", r.published),
        "published_at": format!("{}T12:00:00Z", r.published),
        "assets": assets,
        "tarball_url": format!("{api}/tarball/{}", r.tag),
        "zipball_url": format!("{api}/zipball/{}", r.tag),
        "body": format!("Release {}", r.tag),
    })
}

fn python(root: &Path) -> Result<()> {
    let releases = [
        // The newest release has stripped and plain builds and publishes digests.
        (
            Release {
                owner: "astral-sh",
                repo: "python-build-standalone",
                id: 180001,
                tag: "20241016",
                prerelease: false,
                published: "2024-10-16",
                digests: true,
            },
            vec!["3.13.0", "3.12.7", "3.11.10"],
            vec!["install_only_stripped", "install_only"],
        ),
        // An older one with plain builds only and no digests (as before GitHub published them).
        (
            Release {
                owner: "astral-sh",
                repo: "python-build-standalone",
                id: 170001,
                tag: "20240814",
                prerelease: false,
                published: "2024-08-14",
                digests: false,
            },
            vec!["3.13.0rc1", "3.12.5", "3.11.9", "3.10.14"],
            vec!["install_only"],
        ),
    ];
    let mut json_releases = Vec::new();
    for (release, versions, flavors) in releases {
        let mut assets = Vec::new();
        for version in versions {
            let mut targets = vec![
                "aarch64-apple-darwin",
                "aarch64-unknown-linux-gnu",
                "x86_64-apple-darwin",
                "x86_64-unknown-linux-gnu",
            ];
            if flavors.contains(&"install_only_stripped") {
                // Decoys a careless matcher would pick for linux/amd64.
                targets.extend(["x86_64-unknown-linux-musl", "x86_64_v3-unknown-linux-gnu"]);
            }
            for triple in targets {
                for flavor in &flavors {
                    if (triple.contains("musl") || triple.contains("_v3")) && *flavor != "install_only_stripped" {
                        continue;
                    }
                    let minor: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
                    let bytes = tar_gz(&[(
                        format!("python/bin/python{minor}"),
                        0o755,
                        script(&format!("Python {version} ({triple}, {flavor})")),
                    )])?;
                    let name = format!("cpython-{version}+{}-{triple}-{flavor}.tar.gz", release.tag);
                    assets.push(asset(root, &release, &name, &bytes)?);
                }
            }
        }
        let lines: Vec<(String, Written)> = assets.iter().map(|a| (a.name.clone(), a.written.clone())).collect();
        assets.push(asset(root, &release, "SHA256SUMS", sums(&lines).as_bytes())?);
        assets.sort_by(|a, b| a.name.cmp(&b.name));
        json_releases.push(release_json(&release, &assets));
    }
    put_json(root, "github/repos/astral-sh/python-build-standalone/releases.json", &Value::Array(json_releases))
}

fn ripgrep(root: &Path) -> Result<()> {
    let mut json_releases = Vec::new();
    for (id, tag, published) in [(140101, "14.1.1", "2024-09-08"), (140100, "14.1.0", "2024-01-06")] {
        let r = Release { owner: "BurntSushi", repo: "ripgrep", id, tag, prerelease: false, published, digests: true };
        let mut assets = Vec::new();
        for triple in [
            "aarch64-apple-darwin",
            "aarch64-unknown-linux-gnu",
            "armv7-unknown-linux-gnueabihf",
            "i686-unknown-linux-gnu",
            "x86_64-apple-darwin",
            "x86_64-unknown-linux-musl",
        ] {
            let dir = format!("ripgrep-{tag}-{triple}");
            let bytes = tar_gz(&[
                (format!("{dir}/rg"), 0o755, script(&format!("ripgrep {tag}"))),
                (format!("{dir}/doc/rg.1"), 0o644, "fixture man page\n".into()),
            ])?;
            let name = format!("{dir}.tar.gz");
            let a = asset(root, &r, &name, &bytes)?;
            let sum = format!("{}  {name}\n", a.written.sha256);
            assets.push(a);
            assets.push(asset(root, &r, &format!("{name}.sha256"), sum.as_bytes())?);
        }
        let zip = zip(&[(format!("ripgrep-{tag}-x86_64-pc-windows-msvc/rg.exe"), 0o755, "MZ fixture\n".into())])?;
        assets.push(asset(root, &r, &format!("ripgrep-{tag}-x86_64-pc-windows-msvc.zip"), &zip)?);
        assets.push(asset(root, &r, &format!("ripgrep_{tag}-1_amd64.deb"), b"!<arch>\nfixture deb\n")?);
        assets.sort_by(|a, b| a.name.cmp(&b.name));
        json_releases.push(release_json(&r, &assets));
    }
    put_json(root, "github/repos/BurntSushi/ripgrep/releases.json", &Value::Array(json_releases))
}

fn gh(root: &Path) -> Result<()> {
    let mut json_releases = Vec::new();
    // Newest first, as the API lists them: a prerelease above the stable one.
    for (id, tag, prerelease, published) in
        [(26302, "v2.63.0-pre.0", true, "2024-11-20"), (26200, "v2.62.0", false, "2024-11-14")]
    {
        // No digests: sbx must download these and hash them itself.
        let r = Release { owner: "cli", repo: "cli", id, tag, prerelease, published, digests: false };
        let v = tag.trim_start_matches('v');
        let mut assets = Vec::new();
        for (os, arch) in [("linux", "386"), ("linux", "amd64"), ("linux", "arm64"), ("linux", "armv6")] {
            let dir = format!("gh_{v}_{os}_{arch}");
            let bytes = tar_gz(&[(format!("{dir}/bin/gh"), 0o755, script(&format!("gh version {v}")))])?;
            assets.push(asset(root, &r, &format!("{dir}.tar.gz"), &bytes)?);
        }
        for arch in ["amd64", "arm64"] {
            let dir = format!("gh_{v}_macOS_{arch}");
            let bytes = zip(&[(format!("{dir}/bin/gh"), 0o755, script(&format!("gh version {v}")))])?;
            assets.push(asset(root, &r, &format!("{dir}.zip"), &bytes)?);
        }
        let win = zip(&[("bin/gh.exe".into(), 0o755, "MZ fixture\n".into())])?;
        assets.push(asset(root, &r, &format!("gh_{v}_windows_amd64.zip"), &win)?);
        assets.push(asset(root, &r, &format!("gh_{v}_linux_amd64.deb"), b"!<arch>\nfixture deb\n")?);
        assets.push(asset(root, &r, &format!("gh_{v}_linux_amd64.rpm"), b"\xed\xab\xee\xdbfixture rpm\n")?);
        let lines: Vec<(String, Written)> = assets.iter().map(|a| (a.name.clone(), a.written.clone())).collect();
        assets.push(asset(root, &r, &format!("gh_{v}_checksums.txt"), sums(&lines).as_bytes())?);
        assets.sort_by(|a, b| a.name.cmp(&b.name));
        json_releases.push(release_json(&r, &assets));
    }
    put_json(root, "github/repos/cli/cli/releases.json", &Value::Array(json_releases))
}
