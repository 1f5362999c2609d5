//! `.sbx.toml`: the project's sandbox settings.
//!
//! ```toml
//! [sandbox]
//! agent = "claude"                 # claude | codex | gemini | opencode | shell
//! network_policy = "balanced"      # allow-all | balanced | deny-all (also: open, locked-down)
//! allowed_domains = ["example.com", "*.example.org", "api.example.net:443"]
//! required_secrets = ["ANTHROPIC_API_KEY"]
//! [image]
//! platforms = ["linux/amd64", "linux/arm64"]
//! [tools]                          # mise syntax; wins over the mise files, for the sandbox only
//! node = "22"
//! [secrets]
//! anthropic = { env = "ANTHROPIC_API_KEY" }
//! [mirrors]
//! node = "https://mirror.example/node"
//! ```
//! Unknown keys and wrong types are errors pointing at the key, with a "did you mean".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sbx_mise::config::ToolEntry;
use sbx_mise::config::template::TemplateContext;
use sbx_mise::config::tools::parse_tools;
use sbx_mise::toml_source::{Entry, TomlFile, boolean, entries, string, string_array, unknown_key, wrong_type};
use sbx_mise::{ConfigError, Origin, Platform, SourceFile, Spanned};

/// The file name sbx reads in the project directory.
pub const FILE_NAME: &str = ".sbx.toml";

/// A value that is either written in `.sbx.toml` or sbx's default.
#[derive(Clone, Debug)]
pub struct Setting<T> {
    /// The effective value.
    pub value: T,
    /// Where it was written; `None` for the default.
    pub origin: Option<Origin>,
}

impl<T> Setting<T> {
    fn default_value(value: T) -> Self {
        Self { value, origin: None }
    }
    fn written(value: T, origin: Origin) -> Self {
        Self { value, origin: Some(origin) }
    }
}

/// Declares a closed set of names with aliases, parsed with a "did you mean" on error.
macro_rules! choice {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal $(| $alias:literal)*),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// The canonical names, for help texts.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The canonical name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            fn from_name(s: &str) -> Option<Self> {
                match s { $($text $(| $alias)* => Some(Self::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

choice! {
    /// The agent started in the sandbox.
    Agent { Claude = "claude", Codex = "codex", Gemini = "gemini", Opencode = "opencode", Shell = "shell" }
}

/// The network policy preset: sbx-proxy's own type, so `.sbx.toml` accepts exactly the names
/// the proxy knows (`allow-all` | `balanced` | `deny-all`, aliases `open`, `locked-down`).
pub type NetworkPolicy = sbx_proxy::Preset;

choice! {
    /// The isolation runtime.
    Runtime {
        /// The strongest runtime that works on this machine.
        Auto = "auto",
        /// gVisor's runsc: a user-space kernel.
        Gvisor = "gvisor" | "runsc",
        /// bubblewrap namespaces + seccomp (weaker, fastest).
        Bwrap = "bwrap" | "bubblewrap",
        /// A docker container.
        Docker = "docker",
        /// A podman container.
        Podman = "podman",
        /// Docker's sandbox CLI (a microVM per sandbox).
        DockerSbx = "docker-sbx",
    }
}

choice! {
    /// Layer compression.
    Compression { Gzip = "gzip", Zstd = "zstd" }
}

/// An extra folder mounted into the sandbox.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ExtraWorkspace {
    /// The folder (relative paths are relative to the project).
    pub path: PathBuf,
    /// Mounted writable (`path:rw`); read-only otherwise (the default, or `path:ro`).
    pub writable: bool,
}

/// Where the real value of a secret comes from on the host.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// An environment variable of the host.
    Env(String),
    /// The output of a command run on the host at start (never inside the sandbox).
    Command(String),
}

/// `[sandbox]`.
#[derive(Clone, Debug)]
pub struct SandboxSettings {
    /// `agent`.
    pub agent: Setting<Option<Agent>>,
    /// `template` (a Docker sandbox template to use instead of the built image).
    pub template: Setting<Option<String>>,
    /// `network_policy`.
    pub network_policy: Setting<NetworkPolicy>,
    /// `branch`: `auto` or a branch name; the agent works on its own git worktree.
    pub branch: Setting<Option<String>>,
    /// `required_secrets`: env var names the sandbox must get.
    pub required_secrets: Vec<Spanned<String>>,
    /// `allowed_domains`.
    pub allowed_domains: Vec<Spanned<String>>,
    /// `blocked_domains`.
    pub blocked_domains: Vec<Spanned<String>>,
    /// `allowed_cidrs`: address ranges the proxy may connect to (private ranges are refused otherwise).
    pub allowed_cidrs: Vec<Spanned<String>>,
    /// `blocked_cidrs`.
    pub blocked_cidrs: Vec<Spanned<String>>,
    /// `extra_workspaces`.
    pub extra_workspaces: Vec<Spanned<ExtraWorkspace>>,
    /// `runtime`.
    pub runtime: Setting<Runtime>,
    /// `docker_sbx`: path of Docker's sandbox CLI.
    pub docker_sbx: Setting<Option<PathBuf>>,
}

/// `[image]`.
#[derive(Clone, Debug)]
pub struct ImageSettings {
    /// `base`: a registry reference, `oci-layout:PATH`, or `scratch`.
    pub base: Setting<String>,
    /// `platforms`.
    pub platforms: Setting<Vec<Platform>>,
    /// `data_dir`: mise's data dir inside the image (absolute).
    pub data_dir: Setting<String>,
    /// `user`: the unprivileged user the agent runs as.
    pub user: Setting<String>,
    /// `workdir`: the working directory in the image (the project is mounted at its host path).
    pub workdir: Setting<Option<String>>,
    /// `compression`.
    pub compression: Setting<Compression>,
    /// `mise`: also install the mise binary itself.
    pub mise: Setting<bool>,
}

/// The whole `.sbx.toml`.
#[derive(Clone, Debug)]
pub struct SbxToml {
    /// The file, if the project has one.
    pub path: Option<PathBuf>,
    /// `[sandbox]`.
    pub sandbox: SandboxSettings,
    /// `[image]`.
    pub image: ImageSettings,
    /// `[tools]`, in mise's syntax.
    pub tools: Vec<ToolEntry>,
    /// `[secrets]`: service → source.
    pub secrets: BTreeMap<String, Spanned<SecretSource>>,
    /// `[mirrors]`: upstream name → base URL.
    pub mirrors: BTreeMap<String, Spanned<String>>,
}

const TOP_KEYS: &[&str] = &["sandbox", "image", "tools", "secrets", "mirrors"];
const SANDBOX_KEYS: &[&str] = &[
    "agent",
    "template",
    "network_policy",
    "branch",
    "required_secrets",
    "allowed_domains",
    "blocked_domains",
    "allowed_cidrs",
    "blocked_cidrs",
    "extra_workspaces",
    "runtime",
    "docker_sbx",
];
const IMAGE_KEYS: &[&str] = &["base", "platforms", "data_dir", "user", "workdir", "compression", "mise"];
/// Upstreams that `[mirrors]` can point elsewhere.
pub const MIRROR_KEYS: &[&str] = &["node", "go", "github_api", "npm", "pypi", "crates_index", "crates_download"];

/// The default mise data dir inside images.
pub const DEFAULT_DATA_DIR: &str = "/opt/sbx/mise";

impl Default for SbxToml {
    fn default() -> Self {
        Self {
            path: None,
            sandbox: SandboxSettings {
                agent: Setting::default_value(None),
                template: Setting::default_value(None),
                network_policy: Setting::default_value(NetworkPolicy::Balanced),
                branch: Setting::default_value(None),
                required_secrets: Vec::new(),
                allowed_domains: Vec::new(),
                blocked_domains: Vec::new(),
                allowed_cidrs: Vec::new(),
                blocked_cidrs: Vec::new(),
                extra_workspaces: Vec::new(),
                runtime: Setting::default_value(Runtime::Auto),
                docker_sbx: Setting::default_value(None),
            },
            image: ImageSettings {
                base: Setting::default_value("scratch".into()),
                platforms: Setting::default_value(Platform::default_image_platforms()),
                data_dir: Setting::default_value(DEFAULT_DATA_DIR.into()),
                user: Setting::default_value("sbx".into()),
                workdir: Setting::default_value(None),
                compression: Setting::default_value(Compression::Gzip),
                mise: Setting::default_value(false),
            },
            tools: Vec::new(),
            secrets: BTreeMap::new(),
            mirrors: BTreeMap::new(),
        }
    }
}

/// Reads `.sbx.toml` in `project_dir`; a project without one gets the defaults.
pub fn load(project_dir: &Path, env: &BTreeMap<String, String>) -> Result<SbxToml, ConfigError> {
    let path = project_dir.join(FILE_NAME);
    if !path.is_file() {
        return Ok(SbxToml::default());
    }
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Io { path: path.clone(), source })?;
    parse(SourceFile::new(path, text), project_dir, env)
}

/// Parses the text of a `.sbx.toml`.
pub fn parse(
    file: Arc<SourceFile>,
    project_dir: &Path,
    env: &BTreeMap<String, String>,
) -> Result<SbxToml, ConfigError> {
    let toml = TomlFile::parse(file)?;
    let mut out = SbxToml { path: Some(toml.file.path.clone()), ..SbxToml::default() };
    for entry in entries(&toml, toml.root()) {
        match entry.key {
            "sandbox" => parse_sandbox(&toml, &entry, &mut out.sandbox)?,
            "image" => parse_image(&toml, &entry, &mut out.image)?,
            "tools" => {
                let ctx = TemplateContext { config_root: project_dir, env };
                out.tools = parse_tools(&toml, table(&entry, "[tools]")?, &ctx)?;
            }
            "secrets" => parse_secrets(&toml, &entry, &mut out.secrets)?,
            "mirrors" => {
                for e in entries(&toml, table(&entry, "[mirrors]")?) {
                    if !MIRROR_KEYS.contains(&e.key) {
                        return Err(unknown_key(&e, "[mirrors]", MIRROR_KEYS));
                    }
                    let url = string(&e, &format!("mirror `{}`", e.key))?;
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(ConfigError::at(
                            &url.origin,
                            format!("mirror `{}` is not an http(s) URL", e.key),
                            "not a URL",
                            Some("write the base URL, e.g. \"https://mirror.example/node\"".into()),
                        ));
                    }
                    out.mirrors.insert(e.key.to_string(), url);
                }
            }
            _ => return Err(unknown_key(&entry, ".sbx.toml", TOP_KEYS)),
        }
    }
    Ok(out)
}

fn table<'a>(entry: &Entry<'a>, what: &str) -> Result<&'a dyn toml_edit::TableLike, ConfigError> {
    entry.item.as_table_like().ok_or_else(|| wrong_type(&entry.origin, what, "a table", entry.item))
}

fn choice<T>(entry: &Entry<'_>, names: &[&str], parse: fn(&str) -> Option<T>) -> Result<Setting<T>, ConfigError> {
    let s = string(entry, &format!("`{}`", entry.key))?;
    match parse(&s.value) {
        Some(v) => Ok(Setting::written(v, s.origin)),
        None => {
            let help = match sbx_mise::suggest::closest(&s.value, names.iter().copied()) {
                Some(c) => format!("did you mean \"{c}\"? (one of: {})", names.join(", ")),
                None => format!("use one of: {}", names.join(", ")),
            };
            Err(ConfigError::at(
                &s.origin,
                format!("invalid {} \"{}\"", entry.key, s.value),
                "unknown value",
                Some(help),
            ))
        }
    }
}

fn opt_string(entry: &Entry<'_>) -> Result<Setting<Option<String>>, ConfigError> {
    let s = string(entry, &format!("`{}`", entry.key))?;
    Ok(Setting::written(Some(s.value), s.origin))
}

fn parse_sandbox(toml: &TomlFile, entry: &Entry<'_>, out: &mut SandboxSettings) -> Result<(), ConfigError> {
    for e in entries(toml, table(entry, "[sandbox]")?) {
        match e.key {
            "agent" => {
                let c = choice(&e, Agent::NAMES, Agent::from_name)?;
                out.agent = Setting { value: Some(c.value), origin: c.origin };
            }
            "template" => out.template = opt_string(&e)?,
            "network_policy" => {
                out.network_policy = choice(&e, NetworkPolicy::ACCEPTED_NAMES, |s| s.parse().ok())?;
            }
            "branch" => out.branch = opt_string(&e)?,
            "required_secrets" => out.required_secrets = env_names(toml, &e)?,
            "allowed_domains" => out.allowed_domains = domains(toml, &e)?,
            "blocked_domains" => out.blocked_domains = domains(toml, &e)?,
            "allowed_cidrs" => out.allowed_cidrs = cidrs(toml, &e)?,
            "blocked_cidrs" => out.blocked_cidrs = cidrs(toml, &e)?,
            "extra_workspaces" => {
                out.extra_workspaces = string_array(toml, &e, "`extra_workspaces`")?
                    .into_iter()
                    .map(|s| {
                        let (path, writable) = match s.value.rsplit_once(':') {
                            Some((p, "ro")) => (p, false),
                            Some((p, "rw")) => (p, true),
                            _ => (s.value.as_str(), false),
                        };
                        Spanned::new(ExtraWorkspace { path: PathBuf::from(path), writable }, s.origin.clone())
                    })
                    .collect()
            }
            "runtime" => {
                let names = ["auto", "gvisor", "bwrap", "docker", "podman", "docker-sbx"];
                out.runtime = choice(&e, &names, Runtime::from_name)?;
            }
            "docker_sbx" => {
                let s = string(&e, "`docker_sbx`")?;
                out.docker_sbx = Setting::written(Some(PathBuf::from(s.value)), s.origin);
            }
            _ => return Err(unknown_key(&e, "[sandbox]", SANDBOX_KEYS)),
        }
    }
    Ok(())
}

fn env_names(toml: &TomlFile, e: &Entry<'_>) -> Result<Vec<Spanned<String>>, ConfigError> {
    let names = string_array(toml, e, &format!("`{}`", e.key))?;
    for n in &names {
        let ok = !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(ConfigError::at(
                &n.origin,
                format!("`{}` is not an environment variable name", n.value),
                "not a variable name",
                Some("use letters, digits and `_`, e.g. \"ANTHROPIC_API_KEY\"".into()),
            ));
        }
    }
    Ok(names)
}

/// `example.com`, `*.example.com`, with an optional `:port` (and `tcp://`): each checked by the
/// proxy's own parser, so `.sbx.toml` accepts exactly what the proxy enforces.
fn domains(toml: &TomlFile, e: &Entry<'_>) -> Result<Vec<Spanned<String>>, ConfigError> {
    let list = string_array(toml, e, &format!("`{}`", e.key))?;
    for d in &list {
        if let Err(err) = sbx_proxy::DomainRule::parse(&d.value, d.origin.to_string()) {
            return Err(rule_error(&d.origin, &d.value, "a domain rule", "invalid domain", &err));
        }
    }
    Ok(list)
}

/// Address blocks (`10.0.0.0/8`, `::1/128`) or single addresses, checked by the proxy's parser.
fn cidrs(toml: &TomlFile, e: &Entry<'_>) -> Result<Vec<Spanned<String>>, ConfigError> {
    let list = string_array(toml, e, &format!("`{}`", e.key))?;
    for c in &list {
        if let Err(err) = sbx_proxy::CidrRule::parse(&c.value, c.origin.to_string()) {
            return Err(rule_error(&c.origin, &c.value, "an address range", "invalid CIDR", &err));
        }
    }
    Ok(list)
}

/// The proxy's rule error as a diagnostic on the value's span, with the proxy's help.
fn rule_error(
    origin: &Origin,
    value: &str,
    what: &str,
    label: &str,
    err: &sbx_proxy::policy::RuleError,
) -> ConfigError {
    ConfigError::at(origin, format!("`{value}` is not {what}: {}", err.reason), label, Some(err.help.into()))
}

fn parse_image(toml: &TomlFile, entry: &Entry<'_>, out: &mut ImageSettings) -> Result<(), ConfigError> {
    for e in entries(toml, table(entry, "[image]")?) {
        match e.key {
            "base" => {
                let s = string(&e, "`base`")?;
                out.base = Setting::written(s.value, s.origin);
            }
            "platforms" => {
                let list = string_array(toml, &e, "`platforms`")?;
                let mut platforms = Vec::new();
                for p in &list {
                    let platform: Platform = p.value.parse().map_err(|err| {
                        ConfigError::at(
                            &p.origin,
                            format!("{err}"),
                            "unknown platform",
                            Some("use \"linux/amd64\" and/or \"linux/arm64\"".into()),
                        )
                    })?;
                    if !platforms.contains(&platform) {
                        platforms.push(platform);
                    }
                }
                if platforms.is_empty() {
                    return Err(ConfigError::at(
                        &e.origin,
                        "`platforms` is empty",
                        "no platform",
                        Some("list at least one, e.g. [\"linux/amd64\"]".into()),
                    ));
                }
                platforms.sort();
                out.platforms = Setting::written(platforms, e.origin.clone());
            }
            "data_dir" => {
                let s = string(&e, "`data_dir`")?;
                if !s.value.starts_with('/') {
                    return Err(ConfigError::at(
                        &s.origin,
                        "`data_dir` must be an absolute path",
                        "relative path",
                        Some(format!(
                            "mise installs are not relocatable; use an absolute path such as \"{DEFAULT_DATA_DIR}\""
                        )),
                    ));
                }
                out.data_dir = Setting::written(s.value, s.origin);
            }
            "user" => {
                let s = string(&e, "`user`")?;
                out.user = Setting::written(s.value, s.origin);
            }
            "workdir" => out.workdir = opt_string(&e)?,
            "compression" => out.compression = choice(&e, Compression::NAMES, Compression::from_name)?,
            "mise" => {
                let b = boolean(&e, "`mise`")?;
                out.mise = Setting::written(b.value, b.origin);
            }
            _ => return Err(unknown_key(&e, "[image]", IMAGE_KEYS)),
        }
    }
    Ok(())
}

fn parse_secrets(
    toml: &TomlFile,
    entry: &Entry<'_>,
    out: &mut BTreeMap<String, Spanned<SecretSource>>,
) -> Result<(), ConfigError> {
    for e in entries(toml, table(entry, "[secrets]")?) {
        let source = match e.item.as_table_like() {
            // Shorthand: `anthropic = "ANTHROPIC_API_KEY"`.
            None => Spanned::new(SecretSource::Env(string(&e, "a secret source")?.value), e.origin.clone()),
            Some(t) => {
                let fields = entries(toml, t);
                if let Some(bad) = fields.iter().find(|f| f.key != "env" && f.key != "command") {
                    return Err(unknown_key(bad, &format!("[secrets.{}]", e.key), &["env", "command"]));
                }
                match fields.as_slice() {
                    [f] if f.key == "env" => {
                        Spanned::new(SecretSource::Env(string(f, "`env`")?.value), f.origin.clone())
                    }
                    [f] => Spanned::new(SecretSource::Command(string(f, "`command`")?.value), f.origin.clone()),
                    _ => {
                        return Err(ConfigError::at(
                            &e.origin,
                            format!("secret `{}` needs exactly one of `env` or `command`", e.key),
                            "ambiguous source",
                            Some(format!("write `{} = {{ env = \"VAR\" }}` or `{{ command = \"…\" }}`", e.key)),
                        ));
                    }
                }
            }
        };
        out.insert(e.key.to_string(), source);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<SbxToml, ConfigError> {
        parse(SourceFile::new("/p/.sbx.toml", text), Path::new("/p"), &BTreeMap::new())
    }

    #[test]
    fn reads_every_section() {
        let cfg = parse_str(
            r#"
[sandbox]
agent = "claude"
network_policy = "locked-down"
allowed_domains = ["example.com", "*.example.org:8443"]
required_secrets = ["ANTHROPIC_API_KEY"]
extra_workspaces = ["../lib", "../data:rw"]
runtime = "runsc"
[image]
platforms = ["linux/arm64", "linux-x64"]
compression = "zstd"
[tools]
node = "22"
[secrets]
anthropic = { env = "ANTHROPIC_API_KEY" }
github = { command = "gh auth token" }
openai = "OPENAI_API_KEY"
[mirrors]
node = "http://127.0.0.1:9/node"
"#,
        )
        .unwrap();
        assert_eq!(cfg.sandbox.agent.value, Some(Agent::Claude));
        assert_eq!(cfg.sandbox.network_policy.value, NetworkPolicy::DenyAll);
        assert_eq!(cfg.sandbox.runtime.value, Runtime::Gvisor);
        assert_eq!(cfg.sandbox.network_policy.origin.as_ref().unwrap().to_string(), "/p/.sbx.toml:4");
        assert!(!cfg.sandbox.extra_workspaces[0].writable && cfg.sandbox.extra_workspaces[1].writable);
        assert_eq!(cfg.image.platforms.value, vec![Platform::LINUX_AMD64, Platform::LINUX_ARM64]);
        assert_eq!(cfg.tools[0].id.display_name(), "node");
        assert!(matches!(cfg.secrets["github"].value, SecretSource::Command(_)));
        assert!(matches!(cfg.secrets["openai"].value, SecretSource::Env(_)));
    }

    #[test]
    fn unknown_keys_suggest_the_right_one() {
        let err = parse_str("[sandbox]\nnetwork_polcy = \"open\"\n").unwrap_err();
        assert_eq!(err.location(), Some("/p/.sbx.toml:2"));
        assert_eq!(err.help_text(), Some("did you mean `network_policy`?"));
        let err = parse_str("[sandbox]\nnetwork_policy = \"balanse\"\n").unwrap_err();
        assert!(err.help_text().unwrap().contains("did you mean \"balanced\""), "{err:?}");
        let err = parse_str("[imgae]\n").unwrap_err();
        assert_eq!(err.help_text(), Some("did you mean `image`?"));
    }

    #[test]
    fn wrong_types_and_values_point_at_the_value() {
        let err = parse_str("[sandbox]\nallowed_domains = \"example.com\"\n").unwrap_err();
        assert!(err.to_string().contains("must be an array of strings, found string"), "{err}");
        let err = parse_str("[image]\ndata_dir = \"relative\"\n").unwrap_err();
        assert_eq!(err.location(), Some("/p/.sbx.toml:2"));
        let err = parse_str("[sandbox]\nallowed_domains = [\"http://x.com\"]\n").unwrap_err();
        assert!(err.to_string().contains("not a domain rule"));
        let err = parse_str("[sandbox]\nallowed_cidrs = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert!(err.to_string().contains("not an address range"));
        let err = parse_str("[secrets]\nx = { env = \"A\", command = \"b\" }\n").unwrap_err();
        assert!(err.to_string().contains("exactly one"));
    }
}

#[cfg(test)]
mod never_panics {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// `.sbx.toml` parsing never panics: arbitrary text and sbx-shaped text give a value or a diagnostic.
        #[test]
        fn sbx_toml_parser(text in prop_oneof![
            "[ -~\n]{0,200}",
            prop::collection::vec(
                (prop::sample::select(vec!["[sandbox]", "[image]", "[secrets]", "[mirrors]", "[tools]", ""]),
                 prop::sample::select(vec!["agent", "network_policy", "allowed_domains", "platforms", "data_dir", "x", "extra_workspaces", "anthropic", "node", "allowed_cidrs"]),
                 prop::sample::select(vec!["\"open\"", "[\"a.com:99999\"]", "[\"*.\"]", "{ env = 1 }", "\"linux/s390x\"", "[\"10.0.0.0/99\"]", "3", "[\"../x:rw\"]", "\"http://x\""]))
                    .prop_map(|(s, k, v)| format!("{s}\n{k} = {v}")),
                0..6,
            ).prop_map(|v| v.join("\n")),
        ]) {
            if let Err(e) = parse(SourceFile::new("/p/.sbx.toml", text), Path::new("/p"), &BTreeMap::new()) {
                let _ = format!("{:?}", miette::Report::new(e));
            }
        }
    }
}
