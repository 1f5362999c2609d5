//! Agent presets: what `agent = "claude" | "codex" | "gemini" | "opencode" | "shell"` means.
//!
//! Each preset names the npm package that carries the agent (locked by `sbx lock` and built into
//! the image like any tool, see [`crate::project::Project::load`]), the command `sbx start` runs,
//! the API host the agent talks to (allowed by the `balanced` network policy), the `[secrets]`
//! service and environment variable of its credential, and its configuration directory.
//!
//! Settings files may be copied from the host's configuration directory into the sandbox's own
//! (`sbx start --agent-settings`); credential files are never copied (they are not in the
//! allow-list below), and keys of a settings file that can carry a credential or run a host
//! command are removed from the copy.

use sbx_proxy::Service;

use crate::sbx_toml::Agent;

/// A file the host's agent configuration may provide, copied into the sandbox's config dir.
#[derive(Clone, Copy, Debug)]
pub struct SettingsFile {
    /// Path relative to the agent's configuration directory.
    pub path: &'static str,
    /// Top-level JSON keys removed from the copy (they can hold secrets or run host commands).
    pub strip_keys: &'static [&'static str],
}

/// One agent preset.
#[derive(Clone, Copy, Debug)]
pub struct AgentPreset {
    /// The agent.
    pub agent: Agent,
    /// The npm package carrying it (`None` for `shell`).
    pub npm_package: Option<&'static str>,
    /// The command started when `sbx start` gets no command.
    pub command: &'static [&'static str],
    /// The `[secrets]` service of its credential, one of [`sbx_proxy::SERVICES`]: its API host,
    /// credential header and environment variable are the service's (see [`Self::service`]),
    /// and the proxy injects it.
    pub secret_service: Option<&'static str>,
    /// The API host of an agent without such a service (see [`Self::api_host`]).
    pub other_api_host: Option<&'static str>,
    /// Its configuration directory, relative to the home directory (host and sandbox).
    pub config_dir: Option<&'static str>,
    /// Files of the configuration directory that may be copied in (never credentials).
    pub settings: &'static [SettingsFile],
}

impl AgentPreset {
    /// The mise tool name of the agent's package (`npm:<package>`).
    pub fn tool_name(&self) -> Option<String> {
        self.npm_package.map(|p| format!("npm:{p}"))
    }

    /// The service of the agent's credential (host, header, variable), from
    /// [`sbx_proxy::SERVICES`].
    pub fn service(&self) -> Option<&'static Service> {
        sbx_proxy::services::service(self.secret_service?)
    }

    /// The API host the agent needs (part of the `balanced` policy).
    pub fn api_host(&self) -> Option<&'static str> {
        self.service().map(|s| s.host).or(self.other_api_host)
    }

    /// The environment variable the agent reads its credential from.
    pub fn secret_env(&self) -> Option<&'static str> {
        self.service().map(|s| s.env)
    }

    /// The program `sbx init` looks for on `PATH` to detect the agent.
    pub fn program(&self) -> Option<&'static str> {
        self.command.first().copied()
    }
}

/// Keys of Claude Code's `settings.json` that can carry credentials or run commands on the host.
const CLAUDE_STRIP: &[&str] = &["env", "apiKeyHelper", "awsAuthRefresh", "awsCredentialExport", "otelHeadersHelper"];

const PRESETS: &[AgentPreset] = &[
    AgentPreset {
        agent: Agent::Claude,
        npm_package: Some("@anthropic-ai/claude-code"),
        command: &["claude"],
        secret_service: Some("anthropic"),
        other_api_host: None,
        config_dir: Some(".claude"),
        settings: &[
            SettingsFile { path: "settings.json", strip_keys: CLAUDE_STRIP },
            SettingsFile { path: "CLAUDE.md", strip_keys: &[] },
        ],
    },
    AgentPreset {
        agent: Agent::Codex,
        npm_package: Some("@openai/codex"),
        command: &["codex"],
        secret_service: Some("openai"),
        other_api_host: None,
        config_dir: Some(".codex"),
        settings: &[SettingsFile { path: "AGENTS.md", strip_keys: &[] }],
    },
    AgentPreset {
        agent: Agent::Gemini,
        npm_package: Some("@google/gemini-cli"),
        command: &["gemini"],
        secret_service: Some("gemini"),
        other_api_host: None,
        config_dir: Some(".gemini"),
        settings: &[
            SettingsFile { path: "settings.json", strip_keys: &["mcpServers"] },
            SettingsFile { path: "GEMINI.md", strip_keys: &[] },
        ],
    },
    AgentPreset {
        agent: Agent::Opencode,
        npm_package: Some("opencode-ai"),
        command: &["opencode"],
        secret_service: None,
        other_api_host: Some("opencode.ai"),
        config_dir: Some(".config/opencode"),
        settings: &[SettingsFile { path: "AGENTS.md", strip_keys: &[] }],
    },
    AgentPreset {
        agent: Agent::Shell,
        npm_package: None,
        command: &[],
        secret_service: None,
        other_api_host: None,
        config_dir: None,
        settings: &[],
    },
];

/// The preset of `agent`.
pub fn preset(agent: Agent) -> &'static AgentPreset {
    // Every `Agent` variant has exactly one entry (checked by a test).
    PRESETS.iter().find(|p| p.agent == agent).unwrap_or(&PRESETS[PRESETS.len() - 1])
}

/// Every preset.
pub fn all() -> &'static [AgentPreset] {
    PRESETS
}

/// Removes `strip` keys from a JSON object; text that is not a JSON object is refused (`None`)
/// rather than copied unfiltered.
pub fn filter_settings(text: &str, strip: &[&str]) -> Option<String> {
    if strip.is_empty() {
        return Some(text.to_string());
    }
    let mut value: serde_json::Value = serde_json::from_str(text).ok()?;
    let obj = value.as_object_mut()?;
    for key in strip {
        obj.remove(*key);
    }
    serde_json::to_string_pretty(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_agent_has_one_preset() {
        for name in Agent::NAMES {
            let count = PRESETS.iter().filter(|p| p.agent.as_str() == *name).count();
            assert_eq!(count, 1, "{name}");
            assert_eq!(preset(PRESETS.iter().find(|p| p.agent.as_str() == *name).unwrap().agent).agent.as_str(), *name);
        }
        assert_eq!(preset(Agent::Claude).tool_name().as_deref(), Some("npm:@anthropic-ai/claude-code"));
        assert!(preset(Agent::Shell).tool_name().is_none());
    }

    #[test]
    fn credentials_and_hosts_come_from_the_proxys_services() {
        let baseline: Vec<String> = sbx_proxy::policy::balanced_baseline()
            .unwrap()
            .into_iter()
            .flat_map(|g| g.rules)
            .map(|r| r.to_string())
            .collect();
        for p in PRESETS {
            assert_eq!(p.secret_service.is_some(), p.service().is_some(), "{:?}: unknown service", p.agent);
            if let Some(host) = p.api_host() {
                assert!(baseline.iter().any(|r| r == host), "{:?}: {host} is not in the balanced policy", p.agent);
            }
        }
        assert_eq!(preset(Agent::Gemini).secret_env(), Some("GEMINI_API_KEY"));
        assert_eq!(preset(Agent::Claude).api_host(), Some("api.anthropic.com"));
        assert_eq!(preset(Agent::Opencode).api_host(), Some("opencode.ai"));
        assert_eq!(preset(Agent::Shell).program(), None);
    }

    #[test]
    fn settings_never_include_credential_files() {
        for p in PRESETS {
            for s in p.settings {
                let lower = s.path.to_ascii_lowercase();
                assert!(!lower.contains("cred") && !lower.contains("auth") && !lower.contains("token"), "{}", s.path);
            }
        }
    }

    #[test]
    fn strips_credential_keys() {
        let text = r#"{"env": {"ANTHROPIC_API_KEY": "sk-real"}, "apiKeyHelper": "cat ~/.key", "model": "opus"}"#;
        let out = filter_settings(text, CLAUDE_STRIP).unwrap();
        assert!(!out.contains("sk-real") && !out.contains("apiKeyHelper"), "{out}");
        assert!(out.contains("opus"));
        assert!(filter_settings("not json", CLAUDE_STRIP).is_none());
        assert_eq!(filter_settings("# notes", &[]).as_deref(), Some("# notes"));
    }
}
