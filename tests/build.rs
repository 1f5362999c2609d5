//! End-to-end tests of `sbx build`: the real binary on a project locked against the loopback
//! fixture server, its images checked with the real tools a user would point at them —
//! skopeo, umoci, runc, a `docker-registry` and a `dockerd` started here — and faults a user
//! meets (stale lock, damaged cache, truncated download, hostile tarballs, broken registries,
//! a killed build).
//!
//! The fixture node tarballs hold a `bin/node` shell script printing the locked version, so a
//! base with `/bin/sh` runs it: a busybox layout built with umoci, or a Debian minbase
//! (debootstrap, once per target dir) served by a loopback registry.

#[path = "build/images.rs"]
mod images;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use images::*;
use sbx_fixtures::Fault;
use sbx_mise::SourceFile;
use sbx_mise::lockfile::{self, Lockfile};
use serde_json::Value;

const NODE_URL_PATH: &str = "/node/v22.11.0/node-v22.11.0-linux-x64.tar.gz";

/// A node project (see `support::NodeProject`) locked and built against its fixture server.
type Env = support::NodeProject;

impl Env {
    /// A project with `node = "22"` for linux/amd64 and `extra` appended to `[image]`.
    fn with_image(extra: &str) -> Self {
        support::NodeProject::new(|server| {
            format!("[image]\nplatforms = [\"linux/amd64\"]\n{extra}\n[mirrors]\nnode = \"{}\"\n", server.url("/node"))
        })
    }

    fn cmd(&self, dir: &Path) -> Command {
        self.command(env!("CARGO_BIN_EXE_sbx"), dir)
    }

    /// `program` with the test's environment (nothing from the host but PATH).
    fn command(&self, program: &str, dir: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("HOME", &self.home)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("MISE_CEILING_PATHS", self.tmp.path())
            .env("NO_COLOR", "1")
            .env("SBX_CACHE_DIR", &self.cache)
            .env("MISE_HTTP_RETRIES", "1")
            .env("MISE_HTTP_TIMEOUT", "5s")
            .current_dir(dir);
        cmd
    }

    /// `sbx ARGS…` in the project → (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cmd(&self.project).args(args).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, stdout, stderr) = self.run(args);
        assert_eq!(code, 0, "sbx {args:?} failed:\n{stderr}");
        stdout
    }

    fn fails(&self, args: &[&str]) -> String {
        let (code, _, stderr) = self.run(args);
        assert_eq!(code, 1, "sbx {args:?} should fail:\n{stderr}");
        stderr
    }

    fn lock_file(&self) -> Lockfile {
        let path = self.project.join("sbx.lock");
        lockfile::from_toml(SourceFile::new(&path, std::fs::read_to_string(&path).unwrap())).unwrap()
    }

    fn write_lock(&self, lock: &Lockfile) {
        std::fs::write(self.project.join("sbx.lock"), lockfile::to_toml(lock)).unwrap();
    }
}

#[test]
fn help_answers_what_build_does() {
    let home = tempfile::tempdir().unwrap();
    let out = support::sbx(home.path()).args(["build", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["sbx.lock", ".sbx/image", "oci:DIR", "docker-archive:FILE", "--push", "--json", "SOURCE_DATE_EPOCH"]
    {
        assert!(help.contains(needle), "--help does not mention {needle}:\n{help}");
    }
}

#[test]
fn refuses_a_missing_or_stale_lockfile() {
    let env = Env::with_image("");
    let err = env.fails(&["build"]);
    assert!(err.contains("sbx.lock does not exist") && err.contains("run `sbx lock`"), "{err}");
    env.ok(&["lock"]);
    std::fs::write(env.project.join("mise.toml"), "[tools]\nnode = \"20\"\n").unwrap();
    let err = env.fails(&["build"]);
    assert!(err.contains("out of date") && err.contains("node") && err.contains("run `sbx lock`"), "{err}");
    assert!(!env.project.join(".sbx/image/index.json").exists(), "nothing is written");
}

#[test]
fn same_lock_same_digest_in_any_dir_umask_mtime_and_cache() {
    let env = Env::with_image("");
    env.ok(&["lock"]);
    let cold = env.ok(&["build"]).trim().to_string();
    assert!(cold.starts_with("sha256:") && cold.len() == 71, "{cold}");
    let summary: Value = serde_json::from_str(&env.ok(&["build", "--json"])).unwrap();
    assert_eq!(summary["index_digest"], cold.as_str(), "warm cache, same digest");
    let layers = summary["images"][0]["layers"].as_array().unwrap();
    let node = layers.iter().find(|l| l["tool"] == "node").unwrap();
    assert_eq!((node["version"].as_str(), node["cached"].as_bool()), (Some("22.11.0"), Some(true)));
    assert!(node["tree_hash"].as_str().unwrap().starts_with("sha256:"));

    // The same files in another directory, written later under umask 077, built with an
    // empty cache.
    let other = env.tmp.path().join("elsewhere/copy");
    std::fs::create_dir_all(&other).unwrap();
    for f in ["mise.toml", ".sbx.toml", "sbx.lock"] {
        std::fs::copy(env.project.join(f), other.join(f)).unwrap();
        let file = std::fs::File::options().write(true).open(other.join(f)).unwrap();
        file.set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_234_567_890)).unwrap();
    }
    let out = env
        .command("sh", &other)
        .env("SBX_CACHE_DIR", env.tmp.path().join("other-cache"))
        .args(["-c", "umask 077 && exec \"$0\" build", env!("CARGO_BIN_EXE_sbx")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), cold, "another dir, umask, mtimes and cache");
    let index = std::fs::read(other.join(".sbx/image/index.json")).unwrap();
    assert_eq!(index, std::fs::read(env.project.join(".sbx/image/index.json")).unwrap());
}

#[test]
fn oci_layout_on_a_busybox_base_passes_skopeo_umoci_and_runs_node_in_runc() {
    let env = Env::with_image("base = \"oci-layout:base\"");
    busybox_layout(&env.project.join("base"));
    env.ok(&["lock"]);
    let lock = env.lock_file();
    let base = lock.base.clone().expect("sbx lock pins the base");
    assert_eq!(base.reference, "oci-layout:base");
    let index: Value = serde_json::from_slice(&std::fs::read(env.project.join("base/index.json")).unwrap()).unwrap();
    assert_eq!(base.digest, index["manifests"][0]["digest"].as_str().unwrap());
    assert_eq!(base.platforms.values().next(), Some(&base.digest), "a single manifest is its own platform pin");

    let digest = env.ok(&["build"]).trim().to_string();
    let layout = env.project.join(".sbx/image");
    let image = format!("oci:{}:latest", layout.display());
    let raw = tool("skopeo", &["inspect", "--raw", &image]);
    assert_eq!(format!("sha256:{}", sha256_hex(raw.as_bytes())), digest);
    let inspect: Value = serde_json::from_str(&tool("skopeo", &["inspect", &image])).unwrap();
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 3, "busybox, node, config");
    let copy = env.tmp.path().join("copy");
    tool("skopeo", &["copy", &image, &format!("oci:{}:copied", copy.display())]);

    let work = env.tmp.path();
    let out = runc_run(
        &layout,
        "latest",
        work,
        &["sh", "-c", "node --version; id -un; id -u; stat -c %a /tmp; cat /etc/mise/config.toml"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..4], ["v22.11.0", "sbx", "1000", "1777"], "{out}");
    assert!(out.contains("node = \"22.11.0\""), "{out}");

    // mise's layout: the version dir, its fuzzy links, and the install metadata.
    let rootfs = work.join("bundle-latest/rootfs");
    let installs = rootfs.join("opt/sbx/mise/installs");
    assert_eq!(std::fs::read_link(installs.join("node/22")).unwrap(), Path::new("./22.11.0"));
    assert!(std::fs::read_to_string(installs.join(".mise-installs.toml")).unwrap().contains("[node]"));
    assert!(std::fs::read_to_string(rootfs.join("etc/passwd")).unwrap().contains("sbx:x:1000:1000::/home/sbx:/bin/sh"));

    // A changed base keeps its pin until --upgrade; a changed reference makes the lock stale.
    std::fs::remove_dir_all(env.project.join("base")).unwrap();
    std::fs::remove_dir_all(env.project.join("base.rootfs")).unwrap();
    busybox_layout(&env.project.join("base"));
    std::fs::write(env.project.join("base.rootfs/extra"), "x").unwrap();
    tool(
        "umoci",
        &[
            "insert",
            "--image",
            &format!("{}:latest", env.project.join("base").display()),
            env.project.join("base.rootfs/extra").to_str().unwrap(),
            "/extra",
        ],
    );
    env.ok(&["lock"]);
    assert_eq!(env.lock_file().base, Some(base.clone()), "pin kept");
    env.ok(&["lock", "--upgrade"]);
    assert_ne!(env.lock_file().base.unwrap().digest, base.digest, "--upgrade re-pins");
    let toml = std::fs::read_to_string(env.project.join(".sbx.toml")).unwrap();
    std::fs::write(env.project.join(".sbx.toml"), toml.replace("oci-layout:base", "oci-layout:./base")).unwrap();
    let (code, _, stderr) = env.run(&["lock", "--check"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(env.fails(&["build"]).contains("out of date"));
}

/// `[image] mise = true`: the mise binary is locked like any tool (`npm:@jdxcode/mise` from the
/// live npm registry, with the linux-x64 package its install script would fetch), placed
/// without Node.js, on PATH, and sees the locked tools as installed.
#[test]
#[cfg(target_arch = "x86_64")]
fn image_mise_true_puts_the_locked_mise_on_path_and_it_sees_the_toolchain() {
    let env = Env::with_image("base = \"oci-layout:base\"\nmise = true");
    // The npm build of mise links glibc: the base gets the host's.
    glibc_busybox_layout(&env.project.join("base"));
    env.ok(&["lock"]);
    let lock = env.lock_file();
    let mise = &lock.tools["npm:@jdxcode/mise"][0];
    let names: Vec<&str> = mise.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["@jdxcode/mise", "@jdxcode/mise-linux-x64"], "the platform package is locked");
    env.ok(&["build"]);

    let out = runc_run(
        &env.project.join(".sbx/image"),
        "latest",
        env.tmp.path(),
        &["sh", "-c", "command -v mise; mise --version; mise ls --offline --no-header node"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.first().is_some_and(|l| l.ends_with(&format!("npm-jdxcode-mise/{}/bin/mise", mise.version))),
        "{out}"
    );
    assert!(lines.get(1).is_some_and(|l| l.starts_with(&format!("{} linux-x64", mise.version))), "{out}");
    let node: Vec<&str> = lines.get(2).map(|l| l.split_whitespace().collect()).unwrap_or_default();
    assert_eq!(node, ["node", "22.11.0", "/etc/mise/config.toml", "22.11.0"], "mise ls sees node installed:\n{out}");
}

/// A rebuild replaces its tag's entry in the layout and removes the blobs nothing references
/// any more; the images of other tags in the same layout keep theirs.
#[test]
fn rebuilds_remove_the_replaced_images_blobs_and_keep_other_tags() {
    let env = Env::with_image("");
    env.ok(&["lock"]);
    let blobs = |layout: &Path| -> std::collections::BTreeSet<String> {
        let names = std::fs::read_dir(layout.join("blobs/sha256")).unwrap();
        names.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
    };
    // Another SOURCE_DATE_EPOCH changes every layer, hence every blob.
    let build = |epoch: &str, args: &[&str]| {
        let out = env.cmd(&env.project).env("SOURCE_DATE_EPOCH", epoch).arg("build").args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let layout = env.project.join(".sbx/image");
    build("0", &[]);
    let first = blobs(&layout);
    build("1", &[]);
    let second = blobs(&layout);
    assert_eq!(first.len(), 5, "index, manifest, config, node and config layers: {first:?}");
    assert!(first.is_disjoint(&second), "the first build's blobs are gone: {second:?}");
    tool("skopeo", &["inspect", &format!("oci:{}:latest", layout.display())]);

    let shared = env.tmp.path().join("shared");
    let tagged = |tag: &str| format!("oci:{}:{tag}", shared.display());
    build("0", &["--output", &tagged("a")]);
    build("1", &["--output", &tagged("b")]);
    assert_eq!(blobs(&shared), first.union(&second).cloned().collect(), "tag a keeps its blobs");
    build("1", &["--output", &tagged("a")]);
    assert_eq!(blobs(&shared), second, "a now holds b's image; a's old blobs are gone");
    for tag in ["a", "b"] {
        tool("skopeo", &["inspect", &tagged(tag)]);
    }
}

/// A reader of the layout (`sbx start` unpacking it, `sbx verify` hashing it) holds a shared
/// lock: a rebuild that would remove the blobs being read waits until the reader is done.
#[test]
fn a_rebuild_waits_for_readers_of_the_layout() {
    let env = Env::with_image("");
    env.ok(&["lock"]);
    env.ok(&["build"]);
    let layout = env.project.join(".sbx/image");
    let reader = sbx_image::layout_gc::lock_layout_shared(&layout).unwrap();
    let mut rebuild = env.cmd(&env.project).env("SOURCE_DATE_EPOCH", "1").arg("build").spawn().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(rebuild.try_wait().unwrap().is_none(), "the rebuild went ahead while the layout was being read");
    drop(reader);
    assert!(rebuild.wait().unwrap().success());
}

/// A tar.gz at `path` made by GNU tar from `dir`, with `transform` applied to entry names.
fn targz(path: &Path, dir: &Path, transform: Option<&str>) {
    let mut args = vec!["-czPf".to_string(), path.display().to_string(), "-C".into(), dir.display().to_string()];
    if let Some(t) = transform {
        args.push(format!("--transform={t}"));
    }
    args.push(".".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    tool("tar", &refs);
}

/// Points the lock's linux/amd64 node artifact at `file`.
fn lock_node_artifact(env: &Env, file: &Path) {
    use sbx_mise::lockfile::model::{Artifact, Checksum};
    let bytes = std::fs::read(file).unwrap();
    let mut lock = env.lock_file();
    let node = lock.tools.get_mut("node").unwrap().first_mut().unwrap();
    node.platforms.insert(
        sbx_mise::Platform::LINUX_AMD64,
        Artifact {
            url: format!("file://{}", file.display()),
            checksum: Checksum::Sha256(sha256_hex(&bytes)),
            size: Some(bytes.len() as u64),
        },
    );
    env.write_lock(&lock);
}

#[test]
fn faults_damaged_cache_truncated_download_hostile_tarballs_and_a_killed_build() {
    let env = Env::with_image("");
    env.ok(&["lock"]);
    let good = env.ok(&["build"]).trim().to_string();

    // A tampered download in the cache is noticed when a layer needs it, and fetched again.
    let lock = env.lock_file();
    let artifact = lock.tools["node"][0].platforms[&sbx_mise::Platform::LINUX_AMD64].clone();
    let cached = env.cache.join("downloads").join(artifact.checksum.algorithm()).join(artifact.checksum.hex());
    std::fs::write(&cached, b"tampered").unwrap();
    std::fs::remove_dir_all(env.cache.join("layers")).unwrap();
    let (code, stdout, stderr) = env.run(&["build"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("damaged") && stderr.contains("downloading it again"), "{stderr}");
    assert_eq!(stdout.trim(), good);

    // A truncated download fails with the URL and both sizes; nothing enters the cache.
    let real = std::fs::read(support::repo_root().join("fixtures/upstream").join(&NODE_URL_PATH[1..])).unwrap();
    env.server.fault(NODE_URL_PATH, Fault::Body(real[..real.len() / 2].to_vec()));
    let fresh = env.tmp.path().join("fresh-cache");
    let out = env.cmd(&env.project).env("SBX_CACHE_DIR", &fresh).arg("build").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("size mismatch") && stderr.contains(NODE_URL_PATH), "{stderr}");
    assert!(stderr.contains(&real.len().to_string()), "{stderr}");
    assert!(!fresh.join("downloads/sha256").join(artifact.checksum.hex()).exists());

    // A build killed in the middle of a download, then run again, gives the same image.
    env.server.fault(NODE_URL_PATH, Fault::Delay(Duration::from_secs(60)));
    let killed_cache = env.tmp.path().join("killed-cache");
    let mut child = env
        .cmd(&env.project)
        .env("SBX_CACHE_DIR", &killed_cache)
        .arg("build")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The partial download exists: the build is inside the (stalled) download.
    let downloads = killed_cache.join("downloads/sha256");
    wait_for("the download", || {
        std::fs::read_dir(&downloads)
            .is_ok_and(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with(".part-")))
    });
    child.kill().unwrap();
    child.wait().unwrap();
    env.server.clear_faults();
    let out = env.cmd(&env.project).env("SBX_CACHE_DIR", &killed_cache).arg("build").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), good);

    // Hostile tarballs: an entry climbing out with `../`, a symlink pointing outside.
    let stage = env.tmp.path().join("stage");
    std::fs::create_dir_all(stage.join("node-v22/bin")).unwrap();
    std::fs::write(stage.join("node-v22/bin/evil"), "x").unwrap();
    let dotdot = env.tmp.path().join("dotdot.tar.gz");
    targz(&dotdot, &stage, Some("s,bin/evil,bin/../../../evil,"));
    lock_node_artifact(&env, &dotdot);
    let err = env.fails(&["build"]);
    assert!(err.contains("../../../evil") && err.contains("contains `..`"), "{err}");
    std::fs::remove_file(stage.join("node-v22/bin/evil")).unwrap();
    std::os::unix::fs::symlink("../../../../../etc/shadow", stage.join("node-v22/bin/node")).unwrap();
    let symlink = env.tmp.path().join("symlink.tar.gz");
    targz(&symlink, &stage, None);
    lock_node_artifact(&env, &symlink);
    let err = env.fails(&["build"]);
    assert!(err.contains("bin/node") && err.contains("outside"), "{err}");
}

#[test]
fn registry_errors_and_auth_failures_name_the_registry() {
    let env = Env::with_image("");
    env.ok(&["lock"]);
    let host = env.server.base_url().trim_start_matches("http://").trim_end_matches('/').to_string();
    env.server.fault("/v2/five/blobs/uploads/", Fault::Status { status: 503, times: 100 });
    let err = env.fails(&["build", "--push", &format!("{host}/five:v1")]);
    assert!(err.contains("HTTP 503") && err.contains(&host), "{err}");
    env.server.fault(
        "/v2/auth/blobs/uploads/",
        Fault::Response {
            status: 401,
            headers: vec![("www-authenticate".into(), "Basic realm=\"test\"".into())],
            body: Vec::new(),
        },
    );
    let err = env.fails(&["build", "--push", &format!("{host}/auth:v1")]);
    assert!(err.contains("requires credentials") && err.contains("docker login"), "{err}");
}

#[test]
fn debian_base_from_a_registry_push_pull_by_digest_docker_load_and_runc() {
    let debian = debian_base_layout();
    let registry = sbx_fixtures::registry::Registry::start().unwrap();
    let base_ref = format!("{}/debian:bookworm", registry.addr);
    tool(
        "skopeo",
        &[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}:bookworm", debian.display()),
            &format!("docker://{base_ref}"),
        ],
    );
    let env = Env::with_image(&format!("base = \"{base_ref}\""));

    // sbx lock pins the base by the digest the registry serves.
    env.ok(&["lock"]);
    let raw = tool("skopeo", &["inspect", "--raw", "--tls-verify=false", &format!("docker://{base_ref}")]);
    let base = env.lock_file().base.expect("base pinned");
    assert_eq!(base.digest, format!("sha256:{}", sha256_hex(raw.as_bytes())));
    assert_eq!(base.platforms[&sbx_mise::Platform::LINUX_AMD64], base.digest);

    // Build, write a docker archive, push; pull back by digest.
    let work = env.tmp.path().to_path_buf();
    let archive = work.join("image.tar");
    let pushed = format!("{}/sbx/project:v1", registry.addr);
    let out = env.ok(&[
        "build",
        "--json",
        "--push",
        &pushed,
        "--output",
        &format!("oci:{}", work.join("out").display()),
        "--output",
        &format!("docker-archive:{}", archive.display()),
    ]);
    let summary: Value = serde_json::from_str(&out).unwrap();
    let digest = summary["index_digest"].as_str().unwrap().to_string();
    assert_eq!(summary["images"][0]["layers"][0]["kind"], "base");
    assert_eq!(summary["outputs"].as_array().unwrap().len(), 3, "{summary}");
    let raw = tool("skopeo", &["inspect", "--raw", "--tls-verify=false", &format!("docker://{pushed}")]);
    assert_eq!(format!("sha256:{}", sha256_hex(raw.as_bytes())), digest);
    let pulled = work.join("pulled");
    let by_digest = format!("docker://{}/sbx/project@{digest}", registry.addr);
    tool("skopeo", &["copy", "--src-tls-verify=false", &by_digest, &format!("oci:{}:pulled", pulled.display())]);

    // The pulled image runs the locked node as the unprivileged user added to Debian's passwd.
    let out = runc_run(
        &pulled,
        "pulled",
        &work,
        &["sh", "-c", "node --version; id -un; id -u; stat -c %a /tmp; head -1 /etc/passwd"],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines, ["v22.11.0", "sbx", "1000", "1777", "root:x:0:0:root:/root:/bin/bash"], "{out}");

    // docker load of the archive into a private dockerd, then run it there too.
    let dockerd = start_dockerd();
    let loaded = tool("docker", &["-H", &dockerd.host, "load", "-i", archive.to_str().unwrap()]);
    assert!(loaded.contains("sbx/project:latest"), "{loaded}");
    let layers = tool(
        "docker",
        &["-H", &dockerd.host, "image", "inspect", "--format", "{{json .RootFS.Layers}}", "sbx/project:latest"],
    );
    let config: Value = serde_json::from_str(&tool(
        "skopeo",
        &["inspect", "--config", &format!("oci:{}:latest", work.join("out").display())],
    ))
    .unwrap();
    assert_eq!(serde_json::from_str::<Value>(&layers).unwrap(), config["rootfs"]["diff_ids"]);
    let version = tool(
        "docker",
        &["-H", &dockerd.host, "run", "--rm", "--network", "none", "sbx/project:latest", "node", "--version"],
    );
    assert_eq!(version.trim(), "v22.11.0");
}
