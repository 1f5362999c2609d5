//! The command-line interface (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Run AI coding agents in a sandbox with the project's exact, locked mise toolchain.
///
/// sbx reads the project's mise configuration (mise.toml, .tool-versions, …) and .sbx.toml,
/// pins every tool for every image platform into sbx.lock, builds a reproducible OCI image
/// from it, and starts the agent in an isolation boundary whose only way out is a policy proxy.
#[derive(Debug, Parser)]
#[command(name = "sbx", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Run as if started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub directory: Option<PathBuf>,

    /// Print only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Print more detail (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// When to use colors and progress bars.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Also read the user's global and the system mise config (~/.config/mise/config.toml,
    /// /etc/mise/config.toml). Off by default: the sandbox gets the project's toolchain.
    #[arg(long, global = true)]
    pub global: bool,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// When to color output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// sbx's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented .sbx.toml for this project.
    ///
    /// Detects the mise config files and an installed agent (Claude Code, Codex, Gemini CLI,
    /// opencode) and writes a .sbx.toml with every setting explained.
    Init(InitArgs),
    /// Show the merged configuration with the origin of every value.
    ///
    /// Lists the config files read (lowest precedence first), every tool with its request,
    /// backend and the file:line it comes from (and what it overrides), and the sandbox settings.
    Config(ConfigArgs),
    /// Pin every tool for every image platform into sbx.lock.
    ///
    /// Resolves each tool's request (mise's semantics), records the exact version and, for
    /// every platform in [image] platforms, the artifact URL, its checksum and size; npm and
    /// pipx tools get their whole dependency closure. Existing pins are kept while their
    /// request still matches; --upgrade moves them. A mise.lock next to the config is honoured.
    Lock(LockArgs),
    /// Build the sandbox image from sbx.lock (no daemon needed).
    ///
    /// One layer per locked tool version and platform, reproducible: the same lockfile gives
    /// the same digest on any machine. Reads only sbx.lock and .sbx.toml ([image] base,
    /// platforms, data_dir, user, workdir, compression); never resolves versions, and refuses a
    /// lockfile that is missing or stale (run `sbx lock` first). Downloads are verified against
    /// the locked checksums and cached (SBX_CACHE_DIR, default ~/.cache/sbx); unchanged layers
    /// come from the layer cache. SOURCE_DATE_EPOCH sets every file time (default 0). Without
    /// --output the image goes to .sbx/image (the OCI layout `sbx start` and `sbx verify`
    /// read); the image index digest is printed on stdout.
    Build(crate::commands::build::BuildArgs),
    /// Start the agent in a sandbox with the locked toolchain.
    Start(crate::commands::start::StartArgs),
    /// Run a command in a running sandbox.
    Exec(crate::commands::sandboxes::ExecArgs),
    /// List this machine's sandboxes.
    Ls(crate::commands::sandboxes::LsArgs),
    /// Stop a running sandbox.
    Stop(crate::commands::sandboxes::StopArgs),
    /// Remove a sandbox and its state.
    Rm(crate::commands::sandboxes::RmArgs),
    /// Report which sandbox runtimes work on this machine and why the others don't.
    Doctor(crate::commands::doctor::DoctorArgs),
    /// Check that an image matches sbx.lock (and, with --host, the host's installs).
    Verify(crate::commands::verify::VerifyArgs),
    /// Run the egress policy proxy standalone (for debugging a policy).
    Proxy(crate::commands::proxy::ProxyArgs),
    /// Inspect the network policy and the proxy's audit log.
    Policy(crate::commands::policy::PolicyArgs),
    /// Show what changed between two lockfiles, git revisions or images, red flags first.
    ///
    /// Each side is a lockfile path, `REV:PATH` (e.g. HEAD~1:sbx.lock), a revision whose
    /// sbx.lock is meant, or an image (`oci:DIR`, an OCI layout directory, `docker://REF`).
    /// Without arguments: HEAD's sbx.lock against the working copy. Tools added, removed,
    /// upgraded or downgraded; platforms whose artifact or checksum changed while the version
    /// did not (shown first); npm/pipx dependency changes by package; base image digests.
    Diff(DiffArgs),
}

/// Arguments of `sbx init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing .sbx.toml.
    #[arg(long)]
    pub force: bool,
    /// The agent to configure instead of the detected one.
    #[arg(long, value_parser = ["claude", "codex", "gemini", "opencode", "shell"])]
    pub agent: Option<String>,
}

/// Arguments of `sbx config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `sbx lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// Check that sbx.lock is current without touching the network: exit 0 if it is, 3 with
    /// what changed if it is stale or missing (for CI).
    #[arg(long, conflicts_with_all = ["upgrade", "dry_run", "offline", "mise_lock", "platforms", "reset_platforms"])]
    pub check: bool,
    /// Move pins forward: all tools, or only the named ones.
    #[arg(long, num_args = 0.., value_name = "TOOL")]
    pub upgrade: Option<Vec<String>>,
    /// Use only the HTTP cache; fail if something is not cached.
    #[arg(long)]
    pub offline: bool,
    /// Show what would change without writing sbx.lock.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Also lock for this platform (e.g. the host's, darwin/arm64); repeatable. Recorded in
    /// sbx.lock as an extra platform and kept by later runs; `--check` does not require it.
    #[arg(long = "platform", value_name = "OS/ARCH")]
    pub platforms: Vec<String>,
    /// Forget the extra platforms added earlier with --platform.
    #[arg(long)]
    pub reset_platforms: bool,
    /// Also write or update mise.lock in mise's format, for `mise install --locked` on the host.
    #[arg(long)]
    pub mise_lock: bool,
}

/// Arguments of `sbx diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The old side (default: HEAD).
    pub old: Option<String>,
    /// The new side (default: the working copy's sbx.lock).
    pub new: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
    pub format: DiffFormat,
}

/// How `sbx diff` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// Lines for a terminal.
    Text,
    /// A table for a pull-request comment.
    Markdown,
}
