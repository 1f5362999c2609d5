//! End-to-end tests of `sbx config` on the fixture projects: every configuration form mise
//! accepts is read with the right precedence and origin, and every bad file gives a diagnostic
//! naming the file, the line and the fix.

mod support;

use serde_json::Value;
use support::{project, redact, sbx};

fn config_json(dir: &std::path::Path, envs: &[(&str, &str)]) -> Value {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = sbx(home.path());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.arg("-C").arg(dir).args(["config", "--json"]).output().unwrap();
    assert!(out.status.success(), "sbx config failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `name → (requests, origin)` of the merged tools.
fn tools(json: &Value) -> Vec<(String, Vec<String>, String)> {
    json["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let versions = t["versions"].as_array().unwrap().iter().map(|v| v["request"].as_str().unwrap().to_string());
            (t["name"].as_str().unwrap().to_string(), versions.collect(), t["origin"].as_str().unwrap().to_string())
        })
        .collect()
}

fn tool<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["tools"].as_array().unwrap().iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("no tool {name}"))
}

#[test]
fn plain_project_merges_mise_and_sbx_settings() {
    let json = config_json(&project("plain"), &[]);
    assert_eq!(
        tools(&json),
        vec![
            ("node".into(), vec!["22".into()], "mise.toml:2".into()),
            // The agent's package, locked like any tool, attributed to the `agent` line.
            ("npm:@anthropic-ai/claude-code".into(), vec!["latest".into()], ".sbx.toml:2".into()),
            ("npm:prettier".into(), vec!["3.3.3".into()], "mise.toml:4".into()),
            ("pipx:black".into(), vec!["24.10.0".into()], "mise.toml:5".into()),
            ("python".into(), vec!["3.12".into()], "mise.toml:3".into()),
        ]
    );
    assert_eq!(tool(&json, "node")["backend"], "core:node");
    assert_eq!(json["sandbox"]["agent"]["value"], "claude");
    assert_eq!(json["sandbox"]["agent"]["origin"], ".sbx.toml:2");
    assert_eq!(json["sandbox"]["runtime"]["origin"], Value::Null, "defaults have no origin");
    let env = json["env"].as_array().unwrap();
    assert_eq!(env[0]["set"], "NODE_ENV");
    let path = env[1]["path"].as_str().unwrap();
    assert!(path.ends_with("fixtures/projects/plain/node_modules/.bin"), "config_root evaluated: {path}");
}

#[test]
fn arrays_keep_every_version_in_order() {
    let json = config_json(&project("arrays"), &[]);
    let t = tools(&json);
    assert_eq!(t[0], ("go".into(), vec!["1.23".into(), "1.22".into()], "mise.toml:4".into()));
    assert_eq!(t[1].1, vec!["22", "20"], "space-separated versions");
    assert_eq!(t[2].1, vec!["3.12", "3.11"]);
    assert_eq!(tool(&json, "go")["versions"][1]["os"], serde_json::json!(["linux"]));
}

#[test]
fn inline_tables_sections_and_options() {
    let json = config_json(&project("inline-tables"), &[]);
    let ruby = &tool(&json, "ruby")["versions"][0];
    assert_eq!(ruby["request"], "3.3");
    assert_eq!(ruby["install_env"]["RUBY_CONFIGURE_OPTS"], "--disable-install-doc");
    assert_eq!(ruby["postinstall"], "gem install bundler");
    assert_eq!(tool(&json, "rust")["versions"][0]["request"], "prefix:1.8");
    assert_eq!(tool(&json, "jq")["versions"][0]["request"], "path:/opt/jq");
    let rg = &tool(&json, "ubi:BurntSushi/ripgrep")["versions"][0];
    assert_eq!(rg["options"]["exe"], "rg");
    let gh = &tool(&json, "github:cli/cli")["versions"][0];
    assert_eq!(gh["options"]["platforms.linux-x64.matching"], "linux_amd64", "dotted keys flattened");
    assert_eq!(json["settings"]["node.compile"]["value"], "false");
}

#[test]
fn tool_versions_only() {
    let json = config_json(&project("tool-versions-only"), &[]);
    assert_eq!(
        tools(&json),
        vec![
            ("node".into(), vec!["22.11.0".into()], ".tool-versions:2".into()),
            ("python".into(), vec!["3.12.7".into(), "3.11.10".into()], ".tool-versions:3".into()),
            ("terraform".into(), vec!["1.9.8".into()], ".tool-versions:4".into()),
        ]
    );
    assert_eq!(tool(&json, "terraform")["backend"], "aqua:hashicorp/terraform");
}

#[test]
fn hierarchy_closest_file_wins_and_sbx_toml_wins_over_mise() {
    let json = config_json(&project("hierarchy/app"), &[]);
    let node = tool(&json, "node");
    assert_eq!(node["versions"][0]["request"], "22");
    assert_eq!(node["origin"], "mise.toml:2");
    assert_eq!(node["overrides"], serde_json::json!(["../mise.toml:3"]));
    let go = tool(&json, "go");
    assert_eq!(go["versions"][0]["request"], "1.22");
    assert_eq!(go["origin"], ".sbx.toml:6");
    assert_eq!(json["env"][0]["set"], "FROM_PARENT");
}

#[test]
fn ceiling_paths_stop_the_walk() {
    let app = project("hierarchy/app");
    let json = config_json(&app, &[("MISE_CEILING_PATHS", project("hierarchy").to_str().unwrap())]);
    assert_eq!(tool(&json, "node")["overrides"], serde_json::json!([]), "parent file not read");
    assert!(json["env"].as_array().unwrap().is_empty());
}

#[test]
fn mise_env_adds_its_file() {
    assert_eq!(tool(&config_json(&project("mise-env"), &[]), "node")["versions"][0]["request"], "22");
    let json = config_json(&project("mise-env"), &[("MISE_ENV", "ci")]);
    assert_eq!(tool(&json, "node")["versions"][0]["request"], "20");
    assert_eq!(tool(&json, "node")["origin"], "mise.ci.toml:2");
    assert_eq!(tool(&json, "python")["origin"], "mise.toml:3");
}

#[test]
fn conf_d_is_read_in_order_below_config_toml() {
    let json = config_json(&project("conf-d"), &[]);
    assert_eq!(tool(&json, "node")["origin"], ".config/mise/config.toml:2");
    assert_eq!(tool(&json, "node")["overrides"], serde_json::json!([".config/mise/conf.d/10-node.toml:2"]));
    assert_eq!(tool(&json, "python")["origin"], ".config/mise/conf.d/20-python.toml:2");
}

#[test]
fn templates_read_the_environment() {
    let json = config_json(&project("templates"), &[]);
    assert_eq!(tool(&json, "node")["versions"][0]["request"], "22");
    let json = config_json(&project("templates"), &[("SBX_FIXTURE_NODE", "20"), ("SBX_FIXTURE_GREETING", "hi")]);
    assert_eq!(tool(&json, "node")["versions"][0]["request"], "20");
    assert_eq!(json["env"][1]["value"], "hi");
}

#[test]
fn global_config_only_with_flag() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".config/mise")).unwrap();
    std::fs::write(home.path().join(".config/mise/config.toml"), "[tools]\nzig = \"0.13\"\n").unwrap();
    let run = |global: bool| -> Value {
        let mut cmd = sbx(home.path());
        cmd.arg("-C").arg(project("plain")).args(["config", "--json"]);
        if global {
            cmd.arg("--global");
        }
        serde_json::from_slice(&cmd.output().unwrap().stdout).unwrap()
    };
    assert!(!tools(&run(false)).iter().any(|t| t.0 == "zig"));
    assert!(tools(&run(true)).iter().any(|t| t.0 == "zig"));
}

#[test]
fn text_output_shows_origins() {
    let home = tempfile::tempdir().unwrap();
    let out = sbx(home.path()).arg("-C").arg(project("hierarchy/app")).arg("config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("node"), "{text}");
    assert!(text.contains("mise.toml:2  (overrides ../mise.toml:3)"), "{text}");
    assert!(!text.contains("\u{1b}["), "no color codes when NO_COLOR is set");
}

/// Every bad fixture fails with exit 1 and a diagnostic naming file, line and a fix.
#[test]
fn bad_files_give_diagnostics() {
    let bad = project("bad");
    let mut names: Vec<String> =
        std::fs::read_dir(&bad).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert!(names.len() >= 8);
    for name in names {
        let home = tempfile::tempdir().unwrap();
        let out = sbx(home.path()).arg("-C").arg(bad.join(&name)).arg("config").output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}");
        let stderr = redact(&String::from_utf8(out.stderr).unwrap());
        assert!(stderr.contains(&format!("[ROOT]/fixtures/projects/bad/{name}/")), "{name}: no file in\n{stderr}");
        assert!(stderr.contains("help:"), "{name}: no help in\n{stderr}");
        insta::assert_snapshot!(format!("bad_{name}"), stderr);
    }
}
