//! End-to-end tests of the CLI surface: `init`, exit codes, help, and the commands that are
//! not built yet.

mod support;

use support::{project, sbx};

#[test]
fn init_writes_a_commented_sbx_toml_that_parses() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".claude")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mise.toml"), "[tools]\nnode = \"22\"\n").unwrap();
    let out = sbx(home.path()).arg("-C").arg(dir.path()).arg("init").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(dir.path().join(".sbx.toml")).unwrap();
    assert!(text.contains("agent = \"claude\""), "agent detected from ~/.claude:\n{text}");
    assert!(text.contains("#   mise.toml"), "lists the mise files:\n{text}");
    assert!(text.contains("anthropic = { env = \"ANTHROPIC_API_KEY\" }"));
    // The written file is read back by `sbx config`.
    let out = sbx(home.path()).arg("-C").arg(dir.path()).args(["config", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["sandbox"]["agent"]["value"], "claude");
    // A second init refuses to overwrite; --force does.
    let out = sbx(home.path()).arg("-C").arg(dir.path()).arg("init").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    let out =
        sbx(home.path()).arg("-C").arg(dir.path()).args(["init", "--force", "--agent", "codex"]).output().unwrap();
    assert!(out.status.success());
    assert!(std::fs::read_to_string(dir.path().join(".sbx.toml")).unwrap().contains("agent = \"codex\""));
}

#[test]
fn usage_errors_exit_2() {
    let home = tempfile::tempdir().unwrap();
    let out = sbx(home.path()).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = sbx(home.path()).args(["config", "--jsn"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn missing_directory_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let out = sbx(home.path()).args(["-C", "/nonexistent/sbx-test", "config"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
}

#[test]
fn help_lists_every_command() {
    let home = tempfile::tempdir().unwrap();
    let out = sbx(home.path()).arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for cmd in ["init", "config", "lock", "build", "start", "verify"] {
        assert!(text.contains(&format!("  {cmd} ")), "{cmd} missing from help:\n{text}");
    }
}

#[test]
fn commands_that_need_a_lockfile_say_so_and_write_nothing() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(project("plain").join("mise.toml"), dir.path().join("mise.toml")).unwrap();
    for cmd in ["build", "start", "verify"] {
        let out = sbx(home.path()).arg("-C").arg(dir.path()).arg(cmd).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {stderr}");
        assert!(stderr.contains("sbx.lock"), "{cmd} does not name the lockfile: {stderr}");
        assert!(stderr.contains("run `sbx lock`"), "{cmd} gives no hint: {stderr}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("mise.toml")], "{cmd} wrote files");
    }
}
