//! One module per subcommand. Each turns parsed arguments into calls on the library crates and
//! renders the result; the logic lives in the libraries.

pub mod config;
pub mod diff;
pub mod init;
pub mod lock;

/// What a command asks the process to exit with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// 0.
    Success,
    /// 3: `--check` found the lockfile stale.
    Stale,
}

/// Errors from commands that have not been built yet.
pub fn not_yet(command: &str, issue: u32) -> miette::Report {
    miette::miette!(
        code = "sbx::not_implemented",
        help = format!("`sbx {command}` arrives with issue #{issue}; `sbx config` shows what it will use"),
        "`sbx {command}` is not implemented yet"
    )
}
