//! Property tests: no input makes the config parsers panic. Arbitrary bytes, and TOML-shaped
//! text built from the fragments real configs use, always give a value or a diagnostic.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use sbx_mise::config::file::parse_mise_toml;
use sbx_mise::config::template::TemplateContext;
use sbx_mise::config::tool_versions::parse_tool_versions;
use sbx_mise::{SourceFile, ToolId, VersionRequest};

fn check_all(text: &str) {
    let env = BTreeMap::from([("HOME".to_string(), "/h".to_string())]);
    let ctx = TemplateContext { config_root: Path::new("/p"), env: &env };
    if let Err(e) = parse_mise_toml(SourceFile::new("/p/mise.toml", text), &ctx) {
        // Rendering the diagnostic must not panic either (spans stay inside the text).
        let _ = format!("{:?}", miette::Report::new(e));
    }
    if let Err(e) = parse_tool_versions(SourceFile::new("/p/.tool-versions", text)) {
        let _ = format!("{:?}", miette::Report::new(e));
    }
    let _ = VersionRequest::parse(text);
    let _ = ToolId::parse(text);
}

/// Lines shaped like mise config, with random names and values.
fn toml_like() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("node".to_string()),
        Just("\"npm:@scope/x\"".to_string()),
        Just("\"ubi:a/b[exe=c\"".to_string()),
        Just("_.path".to_string()),
        "[a-z_.:\"]{1,12}",
    ];
    let value = prop_oneof![
        "\"[ -~]{0,16}\"",
        Just("\"{{ env.HOME }}\"".to_string()),
        Just("\"{{ get_env(name='X' \"".to_string()),
        Just("[\"22\", { version = \"1\", prefix = \"2\" }]".to_string()),
        Just("{ version = \"22\", os = [\"linux\"], platforms.linux-x64.url = \"u\" }".to_string()),
        Just("{ value = 3 }".to_string()),
        "[0-9]{1,4}",
        Just("true".to_string()),
        Just("false".to_string()),
        "\\[[ -~]{0,12}\\]",
    ];
    let line = prop_oneof![
        (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        prop::sample::select(vec![
            "[tools]",
            "[env]",
            "[settings]",
            "[tool_alias.node.versions]",
            "[tools.ruby]",
            "[alias]",
            "[tasks.x]"
        ])
        .prop_map(String::from),
        "[ -~]{0,20}",
    ];
    prop::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_all(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn toml_shaped_text_never_panics(text in toml_like()) {
        check_all(&text);
    }
}
