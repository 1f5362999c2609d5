//! `sbx diff`: snapshot tests of the rendering for the changes a reviewer meets, and git
//! revisions as sides.

mod support;

use std::path::Path;

use support::sbx;

/// A lockfile with one node entry and an npm tool with a small closure.
fn lockfile(node: &str, node_sum: char, prettier_deps: &[(&str, &str, char)]) -> String {
    let mut s = format!(
        r#"version = 1
inputs = "sha256:{inputs}"
platforms = ["linux/amd64", "linux/arm64"]

[[tools.node]]
backend = "core:node"
request = "22"
version = "{node}"

[tools.node.platforms."linux/amd64"]
url = "https://nodejs.org/dist/v{node}/node-v{node}-linux-x64.tar.gz"
checksum = "sha256:{amd}"

[tools.node.platforms."linux/arm64"]
url = "https://nodejs.org/dist/v{node}/node-v{node}-linux-arm64.tar.gz"
checksum = "sha256:{arm}"

[[tools."npm:prettier"]]
backend = "npm:prettier"
request = "3"
version = "3.3.3"
"#,
        inputs = "0".repeat(64),
        amd = node_sum.to_string().repeat(64),
        arm = "e".repeat(64),
    );
    for (name, version, sum) in prettier_deps {
        s += &format!(
            "\n[[tools.\"npm:prettier\".packages]]\nname = \"{name}\"\nversion = \"{version}\"\nlocation = \"node_modules/{name}\"\nurl = \"https://registry.npmjs.org/{name}/-/{name}-{version}.tgz\"\nchecksum = \"sha512:{}\"\n",
            sum.to_string().repeat(128)
        );
    }
    s
}

fn diff(old: &str, new: &str, markdown: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old.lock"), old).unwrap();
    std::fs::write(dir.path().join("new.lock"), new).unwrap();
    let mut cmd = sbx(dir.path());
    cmd.arg("-C").arg(dir.path()).args(["diff", "old.lock", "new.lock"]);
    if markdown {
        cmd.args(["--format", "markdown"]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

const DEPS: &[(&str, &str, char)] = &[("prettier", "3.3.3", 'a')];

#[test]
fn upgrade() {
    let text = diff(&lockfile("22.11.0", 'a', DEPS), &lockfile("22.12.0", 'b', DEPS), false);
    insta::assert_snapshot!(text);
    assert!(text.contains("node 22.11.0 → 22.12.0 (upgraded)"));
}

#[test]
fn downgrade() {
    let text = diff(&lockfile("22.12.0", 'a', DEPS), &lockfile("22.11.0", 'b', DEPS), false);
    insta::assert_snapshot!(text);
    assert!(text.contains("(downgraded)"));
}

#[test]
fn checksum_only_change_is_a_red_flag_shown_first() {
    let deps_old = &[("prettier", "3.3.3", 'a'), ("left-pad", "1.3.0", 'b')];
    let deps_new = &[("prettier", "3.3.3", 'a'), ("left-pad", "1.3.0", 'c')];
    let text = diff(&lockfile("22.11.0", 'a', deps_old), &lockfile("22.11.0", 'f', deps_new), false);
    insta::assert_snapshot!(text);
    let first = text.lines().nth(1).unwrap();
    assert!(first.contains("artifact changed while the version did not"), "{text}");
    let md = diff(&lockfile("22.11.0", 'a', deps_old), &lockfile("22.11.0", 'f', deps_new), true);
    insta::assert_snapshot!("checksum_only_markdown", md);
    assert!(md.contains("**Warning:**"));
}

#[test]
fn closure_change() {
    let old = &[("prettier", "3.3.3", 'a'), ("chalk", "4.1.2", 'b'), ("left-pad", "1.3.0", 'c')];
    let new = &[("prettier", "3.3.3", 'a'), ("chalk", "5.3.0", 'd'), ("is-number", "7.0.0", 'e')];
    let text = diff(&lockfile("22.11.0", 'a', old), &lockfile("22.11.0", 'a', new), false);
    insta::assert_snapshot!(text);
    assert!(text.contains("added: is-number 7.0.0"));
    assert!(text.contains("removed: left-pad 1.3.0"));
    assert!(text.contains("upgraded: chalk 4.1.2 → 5.3.0"));
    insta::assert_snapshot!(
        "closure_change_markdown",
        diff(&lockfile("22.11.0", 'a', old), &lockfile("22.11.0", 'a', new), true)
    );
}

fn git(dir: &Path, args: &[&str]) {
    let ok = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"])
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

#[test]
fn git_revisions_as_sides() {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q"]);
    std::fs::write(dir.path().join("sbx.lock"), lockfile("22.11.0", 'a', DEPS)).unwrap();
    git(dir.path(), &["add", "sbx.lock"]);
    git(dir.path(), &["commit", "-qm", "lock"]);
    std::fs::write(dir.path().join("sbx.lock"), lockfile("22.12.0", 'b', DEPS)).unwrap();
    // No arguments: HEAD against the working copy.
    let out = sbx(dir.path()).arg("-C").arg(dir.path()).arg("diff").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("node 22.11.0 → 22.12.0 (upgraded)"));
    git(dir.path(), &["commit", "-qam", "bump"]);
    let out = sbx(dir.path()).arg("-C").arg(dir.path()).args(["diff", "HEAD~1:sbx.lock", "HEAD"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("node 22.11.0 → 22.12.0"));
    let out = sbx(dir.path()).arg("-C").arg(dir.path()).args(["diff", "nope~3", "HEAD"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither a file nor a lockfile in git"));
}

/// `lockfile` with a `[base]` pinned to `amd`'s digest for linux/amd64.
fn with_base(lock: &str, index: char, amd: char) -> String {
    let base = format!(
        "\n[base]\nreference = \"debian:bookworm-slim\"\ndigest = \"sha256:{}\"\n\n[base.platforms]\n\"linux/amd64\" = \"sha256:{}\"\n\"linux/arm64\" = \"sha256:{}\"\n",
        index.to_string().repeat(64),
        amd.to_string().repeat(64),
        "9".repeat(64)
    );
    // `[base]` goes before the tool tables.
    lock.replacen("\n[[tools.node]]", &format!("{base}\n[[tools.node]]"), 1)
}

#[test]
fn base_image_digest_change() {
    let old = with_base(&lockfile("22.11.0", 'a', DEPS), '1', '2');
    let new = with_base(&lockfile("22.11.0", 'a', DEPS), '3', '4');
    let text = diff(&old, &new, false);
    insta::assert_snapshot!(text);
    assert!(text.contains(&format!("base image: sha256:{} → sha256:{}", "1".repeat(64), "3".repeat(64))), "{text}");
    let md = diff(&old, &new, true);
    assert!(md.contains("| ~ | *base image* |"), "{md}");
    assert!(diff(&old, &old, false).starts_with("no changes"));
}
