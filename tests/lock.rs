//! End-to-end tests of `sbx lock`: the real binary against the loopback fixture server (node,
//! Go, python-build-standalone, GitHub releases) and, for npm and pipx, the live registries.
//!
//! What a user relies on: the lockfile is complete (every tool × platform has a checksum),
//! calm (a second run changes nothing, `--check` needs no network), honest about pins (kept
//! until `--upgrade`), and never damaged: a bad request, a broken upstream, a killed run or a
//! concurrent run leaves the previous lockfile byte for byte.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use sbx_fixtures::{Fault, FixtureServer};
use sbx_mise::SourceFile;
use sbx_mise::lockfile::{self, Lockfile};

/// A project in a temp dir, its own HTTP cache and home, and a fixture server.
struct Env {
    _tmp: tempfile::TempDir,
    project: PathBuf,
    home: PathBuf,
    cache: PathBuf,
    server: FixtureServer,
}

impl Env {
    fn new(mise_toml: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let project = tmp.path().join("project");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&project).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let server = FixtureServer::start_default().unwrap();
        std::fs::write(project.join("mise.toml"), mise_toml).unwrap();
        // Node comes through `[mirrors]` (the .sbx.toml route); the others through env vars.
        std::fs::write(
            project.join(".sbx.toml"),
            format!(
                "[image]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n[mirrors]\nnode = \"{}\"\n",
                server.url("/node")
            ),
        )
        .unwrap();
        let cache = tmp.path().join("cache");
        Self { project, home, cache, server, _tmp: tmp }
    }

    fn sbx(&self) -> assert_cmd::Command {
        let mut cmd = support::sbx(&self.home);
        self.configure(&mut cmd);
        cmd
    }

    fn configure<C: EnvSet>(&self, cmd: &mut C) {
        cmd.set("MISE_CEILING_PATHS", self.project.parent().unwrap().as_os_str());
        cmd.set("SBX_GO_URL", self.server.url("/go").as_ref());
        cmd.set("SBX_GITHUB_API_URL", self.server.url("/github").as_ref());
        cmd.set("SBX_CACHE_DIR", self.cache.as_os_str());
        cmd.set("MISE_HTTP_RETRIES", "1".as_ref());
        cmd.set("MISE_HTTP_TIMEOUT", "2s".as_ref());
        cmd.cwd(&self.project);
    }

    /// `sbx lock ARGS…` → (exit code, stderr).
    fn lock(&self, args: &[&str]) -> (i32, String) {
        let out = self.sbx().arg("lock").args(args).output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    fn lock_ok(&self, args: &[&str]) -> String {
        let (code, stderr) = self.lock(args);
        assert_eq!(code, 0, "sbx lock {args:?} failed:\n{stderr}\nhits: {:?}", self.server.hits());
        stderr
    }

    fn lockfile(&self) -> PathBuf {
        self.project.join("sbx.lock")
    }

    fn lock_bytes(&self) -> Vec<u8> {
        std::fs::read(self.lockfile()).unwrap()
    }

    fn parsed(&self) -> Lockfile {
        let text = std::fs::read_to_string(self.lockfile()).unwrap();
        lockfile::from_toml(SourceFile::new(self.lockfile(), text)).unwrap()
    }

    fn write_mise_toml(&self, text: &str) {
        std::fs::write(self.project.join("mise.toml"), text).unwrap();
    }

    /// Points the HTTP cache somewhere new, so faults are not hidden by cached bodies.
    fn fresh_cache(&mut self, name: &str) {
        self.cache = self.cache.with_file_name(name);
    }
}

/// Setting environment and working directory on both `assert_cmd` and std commands.
trait EnvSet {
    fn set(&mut self, key: &str, value: &std::ffi::OsStr);
    fn cwd(&mut self, dir: &Path);
}

impl EnvSet for assert_cmd::Command {
    fn set(&mut self, key: &str, value: &std::ffi::OsStr) {
        self.env(key, value);
    }
    fn cwd(&mut self, dir: &Path) {
        self.current_dir(dir);
    }
}

impl EnvSet for std::process::Command {
    fn set(&mut self, key: &str, value: &std::ffi::OsStr) {
        self.env(key, value);
    }
    fn cwd(&mut self, dir: &Path) {
        self.current_dir(dir);
    }
}

fn spawn_lock(env: &Env) -> Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sbx"));
    cmd.env_clear()
        .env("HOME", &env.home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .arg("lock")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    env.configure(&mut cmd);
    cmd.spawn().unwrap()
}

/// Files in the project directory other than the ones a user put there and the lockfile.
fn strays(project: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(project)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !matches!(n.as_str(), "mise.toml" | ".sbx.toml" | "sbx.lock" | "mise.lock" | ".sbx"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_project_locks_completely_and_calmly() {
    let env = Env::new(sbx_fixtures::RECORDED_MISE_TOML);
    let stderr = env.lock_ok(&[]);
    assert!(stderr.contains("written: 6 tool version(s) for linux/amd64, linux/arm64"), "{stderr}");

    let lock = env.parsed();
    let versions: Vec<String> =
        lock.tools.iter().flat_map(|(name, v)| v.iter().map(move |t| format!("{name}@{}", t.version))).collect();
    assert_eq!(versions, sbx_fixtures::RECORDED_LOCKED_VERSIONS);
    for (name, tools) in &lock.tools {
        for tool in tools {
            let platforms: Vec<String> = tool.platforms.keys().map(|p| p.to_string()).collect();
            assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{name}@{}", tool.version);
            for (platform, artifact) in &tool.platforms {
                assert!(
                    artifact.checksum.to_string().starts_with("sha256:"),
                    "{name}@{} {platform} has no sha256",
                    tool.version
                );
                assert!(artifact.url.starts_with(env.server.base_url()), "{}", artifact.url);
                assert!(artifact.size.is_some_and(|s| s > 0), "{name}@{} {platform} has no size", tool.version);
            }
        }
    }

    // A second run writes nothing new; `--check` and `--dry-run` agree, and --check is offline.
    let first = env.lock_bytes();
    let stderr = env.lock_ok(&[]);
    assert!(stderr.contains("is up to date"), "{stderr}");
    assert_eq!(env.lock_bytes(), first);
    let hits_before = env.server.hits().len();
    let stderr = env.lock_ok(&["--check"]);
    assert!(stderr.contains("is up to date"), "{stderr}");
    assert_eq!(env.server.hits().len(), hits_before, "--check must not touch the network");
    let stderr = env.lock_ok(&["--dry-run"]);
    assert!(stderr.contains("nothing would change"), "{stderr}");
    assert!(strays(&env.project).is_empty(), "{:?}", strays(&env.project));
}

#[test]
fn check_exits_3_with_the_change_and_dry_run_writes_nothing() {
    let env = Env::new(sbx_fixtures::RECORDED_MISE_TOML);
    let (code, stderr) = env.lock(&["--check"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("is missing; run `sbx lock`"), "{stderr}");
    assert!(!env.lockfile().exists());

    env.lock_ok(&[]);
    let locked = env.lock_bytes();
    env.write_mise_toml(&sbx_fixtures::RECORDED_MISE_TOML.replace("go = \"1.23\"", "go = \"1.22\""));
    let (code, stderr) = env.lock(&["--check"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("go: 1.23 (locked 1.23.3) → 1.22"), "{stderr}");

    let stderr = env.lock_ok(&["--dry-run"]);
    assert!(stderr.contains("go 1.23.3 → 1.22.9 (downgraded)"), "{stderr}");
    assert_eq!(env.lock_bytes(), locked, "--dry-run wrote the lockfile");

    env.lock_ok(&[]);
    assert_eq!(env.parsed().tools["go"][0].version, "1.22.9");
    env.lock_ok(&["--check"]);
}

#[test]
fn pins_are_kept_until_upgrade() {
    let env = Env::new("[tools]\ngo = \"1.22.0\"\n");
    env.lock_ok(&[]);
    assert_eq!(env.parsed().tools["go"][0].version, "1.22.0");

    // The request widens; the pin still matches it, so it stays (no silent upgrade).
    env.write_mise_toml("[tools]\ngo = \"1.22\"\n");
    env.lock_ok(&[]);
    let lock = env.parsed();
    assert_eq!((lock.tools["go"][0].request.as_str(), lock.tools["go"][0].version.as_str()), ("1.22", "1.22.0"));

    let stderr = env.lock_ok(&["--upgrade", "go"]);
    assert!(stderr.contains("go 1.22.0 → 1.22.9"), "{stderr}");
    assert_eq!(env.parsed().tools["go"][0].version, "1.22.9");
}

/// Moving to another mirror keeps the pinned versions but points their URLs at the new mirror
/// (a build behind that mirror must not fetch from the old one); the next run is calm.
#[test]
fn a_new_mirror_keeps_the_pins_and_moves_their_urls() {
    let env = Env::new("[tools]\nnode = \"22\"\ngo = \"1.23\"\n");
    env.lock_ok(&[]);
    let before = env.parsed();
    let old_node = env.server.url("/node");
    let mirror = FixtureServer::start_default().unwrap();
    let sbx_toml = std::fs::read_to_string(env.project.join(".sbx.toml")).unwrap();
    std::fs::write(env.project.join(".sbx.toml"), sbx_toml.replace(&old_node, &mirror.url("/node"))).unwrap();
    let (code, _) = env.lock(&["--check"]);
    assert_eq!(code, 3, "a changed mirror makes the lock stale");
    env.lock_ok(&[]);
    let after = env.parsed();
    assert_eq!(after.tools["node"][0].version, before.tools["node"][0].version, "the pin is kept");
    for artifact in after.tools["node"][0].platforms.values() {
        assert!(artifact.url.starts_with(&mirror.url("/node")), "{} still points at the old mirror", artifact.url);
    }
    let old_checksums: Vec<_> = before.tools["node"][0].platforms.values().map(|a| a.checksum.clone()).collect();
    let new_checksums: Vec<_> = after.tools["node"][0].platforms.values().map(|a| a.checksum.clone()).collect();
    assert_eq!(old_checksums, new_checksums, "the same artifacts");
    assert_eq!(after.tools["go"], before.tools["go"], "tools of unchanged upstreams are untouched");
    let settled = env.lock_bytes();
    assert!(env.lock_ok(&[]).contains("is up to date"));
    assert_eq!(env.lock_bytes(), settled);
}

#[test]
fn credentials_in_a_mirror_url_are_never_written_or_printed() {
    let env = Env::new("[tools]\nnode = \"22\"\n");
    let node = env.server.url("/node");
    let sbx_toml = std::fs::read_to_string(env.project.join(".sbx.toml")).unwrap();
    let with_token = |token: &str| {
        let url = node.replacen("http://", &format!("http://__token__:{token}@"), 1);
        std::fs::write(env.project.join(".sbx.toml"), sbx_toml.replace(&node, &url)).unwrap();
    };
    with_token("s3cret");
    let stderr = env.lock_ok(&[]);
    let lock = String::from_utf8(env.lock_bytes()).unwrap();
    for text in [&lock, &stderr] {
        assert!(!text.contains("s3cret") && !text.contains("__token__"), "{text}");
    }
    for artifact in env.parsed().tools["node"][0].platforms.values() {
        assert!(artifact.url.starts_with(&node), "{}", artifact.url);
    }
    // A rotated token is not a change of the lock's inputs.
    with_token("r0tated");
    let (code, stderr) = env.lock(&["--check"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn extra_platforms_are_kept_and_do_not_make_the_lock_stale() {
    let env = Env::new("[tools]\nnode = \"22\"\ngo = \"1.23\"\n");
    env.lock_ok(&[]);
    let stderr = env.lock_ok(&["--platform", "darwin/arm64"]);
    assert!(stderr.contains("for linux/amd64, linux/arm64, darwin/arm64"), "{stderr}");
    assert!(!stderr.contains("check this"), "an added platform is not a red flag:\n{stderr}");
    let lock = env.parsed();
    assert_eq!(lock.extra_platforms.iter().map(|p| p.to_string()).collect::<Vec<_>>(), ["darwin/arm64"]);
    for tools in lock.tools.values() {
        assert!(tools[0].platforms.keys().any(|p| p.to_string() == "darwin/arm64"), "{tools:?}");
    }
    env.lock_ok(&["--check"]);
    let with_host = env.lock_bytes();
    let stderr = env.lock_ok(&[]);
    assert!(stderr.contains("is up to date"), "a plain run dropped the extra platform:\n{stderr}");
    assert_eq!(env.lock_bytes(), with_host);

    env.lock_ok(&["--reset-platforms"]);
    let lock = env.parsed();
    assert!(lock.extra_platforms.is_empty());
    assert_eq!(lock.platforms.iter().map(|p| p.to_string()).collect::<Vec<_>>(), ["linux/amd64", "linux/arm64"]);
    env.lock_ok(&["--check"]);

    let (code, stderr) = env.lock(&["--platform", "plan9/mips"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("linux/amd64, linux/arm64, darwin/amd64 or darwin/arm64"), "{stderr}");
}

#[test]
fn offline_answers_from_the_cache_only() {
    let mut env = Env::new(sbx_fixtures::RECORDED_MISE_TOML);
    env.lock_ok(&[]);
    let locked = env.lock_bytes();
    std::fs::remove_file(env.lockfile()).unwrap();
    let hits_before = env.server.hits().len();
    env.lock_ok(&["--offline"]);
    assert_eq!(env.lock_bytes(), locked, "an offline relock from the cache gives the same lockfile");
    assert_eq!(env.server.hits().len(), hits_before, "--offline touched the network");

    env.fresh_cache("empty-cache");
    std::fs::remove_file(env.lockfile()).unwrap();
    let (code, stderr) = env.lock(&["--offline"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("offline"), "{stderr}");
    assert!(!env.lockfile().exists(), "a failed run wrote a lockfile");
}

/// Locks once, then for each broken upstream changes the request so the network is needed, and
/// checks the run fails with `expected` in its message and leaves the lockfile as it was.
#[test]
fn broken_upstreams_are_clear_errors_and_leave_the_lockfile_alone() {
    let mut env = Env::new("[tools]\nnode = \"22\"\n");
    env.lock_ok(&[]);
    let locked = env.lock_bytes();
    env.write_mise_toml("[tools]\nnode = \"20\"\n");

    let cases: [(&str, Fault, &str); 4] = [
        ("/node/index.json", Fault::Body(b"{\"not\": \"an array\"".to_vec()), "index.json"),
        ("/node/index.json", Fault::Status { status: 500, times: 100 }, "500"),
        ("/node/index.json", Fault::Delay(Duration::from_secs(4)), "timed out"),
        ("/node/v20.18.0/SHASUMS256.txt", Fault::Body(b"0000  node-v20.18.0.tar.gz\n".to_vec()), "SHASUMS256.txt"),
    ];
    for (i, (path, fault, expected)) in cases.into_iter().enumerate() {
        env.fresh_cache(&format!("cache-{i}"));
        env.server.clear_faults();
        env.server.fault(path, fault);
        let (code, stderr) = env.lock(&[]);
        assert_eq!(code, 1, "case {i} ({path}) did not fail:\n{stderr}");
        assert!(stderr.contains(expected), "case {i}: expected `{expected}` in:\n{stderr}");
        assert!(stderr.contains("node"), "case {i}: the error does not name the tool:\n{stderr}");
        assert_eq!(env.lock_bytes(), locked, "case {i} changed sbx.lock");
        assert!(strays(&env.project).is_empty(), "case {i} left {:?}", strays(&env.project));
    }
    env.server.clear_faults();
    env.lock_ok(&[]);
    assert_eq!(env.parsed().tools["node"][0].version, "20.18.0");
}

#[test]
fn bad_requests_name_the_tool_and_its_line() {
    let env = Env::new("[tools]\nnode = \"22\"\n");
    env.lock_ok(&[]);
    let locked = env.lock_bytes();

    env.write_mise_toml("[tools]\nnode = \"22\"\n\"aqua:cli/cli\" = \"2\"\n");
    let (code, stderr) = env.lock(&[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("aqua:cli/cli"), "{stderr}");
    assert!(stderr.contains("is not supported yet"), "{stderr}");
    assert!(stderr.contains("mise.toml:3"), "the error does not point at the line:\n{stderr}");
    assert_eq!(env.lock_bytes(), locked);

    env.write_mise_toml("[tools]\nnode = \"21\"\n");
    let (code, stderr) = env.lock(&[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("21"), "{stderr}");
    assert!(stderr.contains("22.11.0") || stderr.contains("20.18.0"), "no nearest version suggested:\n{stderr}");
    assert_eq!(env.lock_bytes(), locked);
}

#[test]
fn mise_lock_pins_are_honoured_and_disagreements_explained() {
    let env = Env::new("[tools]\ngo = \"1.22\"\n");
    let mise_lock = env.project.join("mise.lock");
    std::fs::write(&mise_lock, "[[tools.go]]\nversion = \"1.22.0\"\nbackend = \"core:go\"\n").unwrap();
    env.lock_ok(&[]);
    assert_eq!(env.parsed().tools["go"][0].version, "1.22.0", "the host's mise.lock pin was not honoured");

    // The host moves to another 1.22 release: --check notices, and sbx lock follows the host.
    std::fs::write(&mise_lock, "[[tools.go]]\nversion = \"1.22.9\"\nbackend = \"core:go\"\n").unwrap();
    let (code, stderr) = env.lock(&["--check"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("go: locked 1.22.0, mise.lock pins 1.22.9"), "{stderr}");
    env.lock_ok(&[]);
    assert_eq!(env.parsed().tools["go"][0].version, "1.22.9");

    // A pin outside the request is an error that says which side to change.
    std::fs::write(&mise_lock, "[[tools.go]]\nversion = \"1.23.2\"\nbackend = \"core:go\"\n").unwrap();
    let locked = env.lock_bytes();
    let (code, stderr) = env.lock(&[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("mise.lock") && stderr.contains("1.23.2"), "{stderr}");
    assert_eq!(env.lock_bytes(), locked);
}

#[test]
fn a_killed_run_leaves_the_previous_lockfile() {
    let env = Env::new("[tools]\nnode = \"22\"\n");
    env.lock_ok(&[]);
    let locked = env.lock_bytes();
    env.write_mise_toml("[tools]\nnode = \"20\"\n");
    env.server.fault("/node/v20.18.0/SHASUMS256.txt", Fault::Delay(Duration::from_secs(30)));

    let mut child = spawn_lock(&env);
    let deadline = Instant::now() + Duration::from_secs(20);
    // The index is answered at once; the checksum list hangs, so the run is mid-flight.
    while !env.server.hits().iter().any(|h| h.path == "/node/index.json") {
        assert!(Instant::now() < deadline, "the run never fetched the index");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed");
    child.kill().unwrap();
    child.wait().unwrap();

    assert_eq!(env.lock_bytes(), locked);
    assert!(strays(&env.project).is_empty(), "{:?}", strays(&env.project));
    env.server.clear_faults();
    env.lock_ok(&[]);
    assert_eq!(env.parsed().tools["node"][0].version, "20.18.0");
}

#[test]
fn concurrent_runs_wait_for_each_other() {
    let env = Env::new(sbx_fixtures::RECORDED_MISE_TOML);
    env.server.fault("/node/index.json", Fault::Delay(Duration::from_millis(600)));
    let runs: Vec<Child> = (0..3).map(|_| spawn_lock(&env)).collect();
    let mut waited = false;
    for child in runs {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        waited |= stderr.contains("waiting for another sbx run");
    }
    assert!(waited, "no run waited for the file lock");
    let concurrent = env.lock_bytes();
    env.server.clear_faults();
    std::fs::remove_file(env.lockfile()).unwrap();
    env.lock_ok(&[]);
    assert_eq!(env.lock_bytes(), concurrent, "concurrent runs produced a different lockfile");
    assert!(strays(&env.project).is_empty(), "{:?}", strays(&env.project));
}

/// npm and PyPI are reachable from these machines: lock real closures through the CLI.
#[test]
fn npm_and_pipx_closures_lock_live() {
    let env = Env::new(
        "[tools]\npython = \"3.12\"\nnode = \"22\"\n\"npm:prettier\" = \"3.3.3\"\n\"pipx:black\" = \"24.10.0\"\n",
    );
    env.lock_ok(&[]);
    let lock = env.parsed();
    let prettier = &lock.tools["npm:prettier"][0];
    assert_eq!(prettier.version, "3.3.3");
    assert_eq!(prettier.runtime.as_deref(), Some("node@22.11.0"));
    let black = &lock.tools["pipx:black"][0];
    assert_eq!(black.runtime.as_deref(), Some("python@3.12.7"));
    let names: std::collections::BTreeSet<&str> = black.packages.iter().map(|p| p.name.as_str()).collect();
    for dep in ["black", "click", "mypy-extensions", "packaging", "pathspec", "platformdirs"] {
        assert!(names.contains(dep), "black's closure lacks {dep}: {names:?}");
    }
    for package in prettier.packages.iter().chain(&black.packages) {
        let checksum = package.artifact.checksum.to_string();
        assert!(
            checksum.starts_with("sha512:") || checksum.starts_with("sha256:"),
            "{}@{} has no checksum",
            package.name,
            package.version
        );
    }
    let first = env.lock_bytes();
    env.lock_ok(&[]);
    assert_eq!(env.lock_bytes(), first, "a second live run changed the lockfile");
}
