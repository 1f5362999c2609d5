//! `runtime = "docker-sbx"`: Docker Sandboxes, driven through Docker's own `sbx` CLI (a microVM
//! per sandbox, with Docker's proxy, policy and secret store).
//!
//! sbx does not run this sandbox itself; it translates the project's settings into Docker's
//! commands, so `.sbx.toml` means the same thing on this engine:
//!
//! * **CLI**: `[sandbox] docker_sbx`, else the first `sbx` on `PATH` that is not this program
//!   (compared by resolved executable). Missing: an error saying how to install it.
//! * **Template**: the built image converted to a docker-archive ([`crate::runtime::engine_image`])
//!   and loaded with `sbx template load FILE`, then used as `-t sbx-image:<digest>`; or
//!   `[sandbox] template` naming an existing template directly.
//! * **Policy**: only rules scoped to this sandbox (`--sandbox NAME`), never global ones. The
//!   preset maps onto Docker's global default: a more open preset becomes scoped allow rules
//!   (`**` for allow-all, the balanced list when Docker's default is deny-all); a stricter one
//!   becomes a scoped `deny **` (only possible without allowed domains: deny beats allow), and
//!   is refused otherwise. `allowed_domains` / `blocked_domains` become scoped allow / deny
//!   rules. Rules sbx added earlier and no longer wants are removed by id.
//! * **Secrets**: Docker keys credentials by service (`anthropic`, `github`, …); each required
//!   variable maps to its service (`[secrets]` first, then Docker's table). `sbx secret ls` is
//!   parsed; a missing one stops the start with the exact `sbx secret set` command.
//! * **Run**: `sbx create AGENT PATH [EXTRA[:ro]]… --name NAME [--branch B] [-t TEMPLATE]` when
//!   the sandbox does not exist (or was created with other settings: then `sbx rm` first), then
//!   `sbx run NAME [-- ARGS]`, whose exit code is sbx's.

pub mod parse;
pub mod plan;

use std::path::{Path, PathBuf};

pub use plan::{Plan, Preset, Request, Step, Template};

/// What can go wrong driving Docker's CLI.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DockerSbxError {
    /// Docker's CLI is not installed (or `docker_sbx` points nowhere).
    #[error("Docker Sandboxes' `sbx` CLI was not found{detail}")]
    #[diagnostic(
        code(sbx::docker_sbx::missing),
        help(
            "install Docker Sandboxes (https://docs.docker.com/ai/sandboxes/; macOS: `brew install docker/tap/sbx`) \
             and put its `sbx` on PATH, or set `docker_sbx = \"/path/to/sbx\"` in [sandbox] of .sbx.toml"
        )
    )]
    Missing {
        /// Where sbx looked.
        detail: String,
    },

    /// A command of Docker's CLI failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    #[diagnostic(code(sbx::docker_sbx::command), help("run the command by hand to see the full error"))]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },

    /// Docker's CLI printed something sbx cannot read.
    #[error("cannot read the output of `{command}`:\n{output}")]
    #[diagnostic(
        code(sbx::docker_sbx::output),
        help("this Docker Sandboxes release prints a table sbx does not know; please report it with the output")
    )]
    Output {
        /// The command line.
        command: String,
        /// What it printed.
        output: String,
    },

    /// Required credentials are not stored in Docker's secret store.
    #[error("Docker Sandboxes has no stored secret for {}", .services.join(", "))]
    #[diagnostic(code(sbx::docker_sbx::secrets), help("{commands}"))]
    MissingSecrets {
        /// The services.
        services: Vec<String>,
        /// The commands that would store them.
        commands: String,
    },

    /// A required variable maps to no Docker service.
    #[error("required secret `{variable}` ({origin}) maps to no Docker Sandboxes service")]
    #[diagnostic(
        code(sbx::docker_sbx::service),
        help(
            "Docker Sandboxes injects credentials per service; name the service in .sbx.toml: \
             `[secrets] <service> = {{ env = \"{variable}\" }}` (services: anthropic, aws, github, google, groq, \
             mistral, nebius, openai, xai, or one a kit declares)"
        )
    )]
    UnknownService {
        /// The variable.
        variable: String,
        /// Where it is required.
        origin: String,
    },

    /// The project's network policy cannot be expressed with rules scoped to one sandbox.
    #[error(
        "network_policy = \"{wanted}\" cannot be applied to one Docker sandbox: Docker's global default is {global}"
    )]
    #[diagnostic(code(sbx::docker_sbx::policy), help("{help}"))]
    Policy {
        /// The project's preset.
        wanted: String,
        /// Docker's global default as read from `sbx policy ls`.
        global: String,
        /// What to do.
        help: String,
    },

    /// Writing sbx's own files failed.
    #[error("{what}: {path}: {source}")]
    #[diagnostic(code(sbx::docker_sbx::io), help("check that the path is writable"))]
    Io {
        /// What sbx was doing.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },

    /// Converting the built image into a template failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sandbox(#[from] crate::Error),
}

/// Docker's documented service table: the variables each service's credential stands for.
pub const SERVICES: &[(&str, &[&str])] = &[
    ("anthropic", &["ANTHROPIC_API_KEY"]),
    ("aws", &["AWS_ACCESS_KEY_ID"]),
    ("github", &["GH_TOKEN", "GITHUB_TOKEN"]),
    ("google", &["GEMINI_API_KEY", "GOOGLE_API_KEY"]),
    ("groq", &["GROQ_API_KEY"]),
    ("mistral", &["MISTRAL_API_KEY"]),
    ("nebius", &["NEBIUS_API_KEY"]),
    ("openai", &["OPENAI_API_KEY"]),
    ("xai", &["XAI_API_KEY"]),
];

/// The Docker service whose credential `variable` is, from Docker's table.
pub fn service_for_variable(variable: &str) -> Option<&'static str> {
    SERVICES.iter().find(|(_, vars)| vars.contains(&variable)).map(|(s, _)| *s)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds Docker's `sbx`: `configured` if set, else the first `sbx` on `path` whose resolved
/// executable is not `this_exe` (this program is also called `sbx`).
pub fn find_cli(
    configured: Option<&Path>,
    path: Option<&std::ffi::OsStr>,
    this_exe: &Path,
) -> Result<PathBuf, DockerSbxError> {
    let me = this_exe.canonicalize().unwrap_or_else(|_| this_exe.to_path_buf());
    let is_me = |p: &Path| p.canonicalize().is_ok_and(|c| c == me);
    if let Some(p) = configured {
        if !is_executable(p) {
            return Err(DockerSbxError::Missing { detail: format!(" at {} (docker_sbx in .sbx.toml)", p.display()) });
        }
        if is_me(p) {
            return Err(DockerSbxError::Missing {
                detail: format!(": docker_sbx = {} is this program, not Docker's CLI", p.display()),
            });
        }
        return Ok(p.to_path_buf());
    }
    let dirs: Vec<PathBuf> = path.map(|p| std::env::split_paths(p).collect()).unwrap_or_default();
    dirs.iter()
        .map(|d| d.join("sbx"))
        .find(|c| is_executable(c) && !is_me(c))
        .ok_or_else(|| DockerSbxError::Missing { detail: " on PATH (only this program is called `sbx` there)".into() })
}
