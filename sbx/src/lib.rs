//! The `sbx` command line: parses arguments, loads the project, runs one command and turns its
//! outcome into an exit code (0 ok, 1 error, 2 usage, 3 `--check` found the lockfile stale).
//!
//! The CLI's wiring lives in this crate's library so it can be tested; the tool logic lives in
//! the `sbx-*` library crates.

pub mod cli;
pub mod commands;
pub mod diff_render;
pub mod network;
pub mod output;
pub mod progress;
pub mod project;
pub mod sbx_toml;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use commands::Exit;
use output::Output;
use project::Project;

/// Runs the CLI with the process's arguments and environment.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output::from_cli(&cli);
    out.install_error_renderer();
    match run(cli, out) {
        Ok(Exit::Success) => ExitCode::SUCCESS,
        Ok(Exit::Stale) => ExitCode::from(3),
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, out: Output) -> miette::Result<Exit> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let dir = match &cli.directory {
        Some(d) => d.clone(),
        None => std::env::current_dir().map_err(|e| miette::miette!("cannot read the current directory: {e}"))?,
    };
    if !dir.is_dir() {
        return Err(miette::miette!(help = "pass an existing directory to -C", "{} is not a directory", dir.display()));
    }
    let load = |dir: &PathBuf| Project::load(dir, cli.global, env.clone());
    match &cli.command {
        Command::Init(args) => commands::init::run(&dir, args, &env, out)?,
        Command::Config(args) => commands::config::run(&load(&dir)?, args, out)?,
        Command::Lock(args) => return commands::lock::run(&load(&dir)?, args, out),
        Command::Build(_) => return Err(commands::not_yet("build", 4)),
        Command::Start(_) => return Err(commands::not_yet("start", 7)),
        Command::Diff(args) => commands::diff::run(&load(&dir)?, args, out)?,
        Command::Verify(_) => return Err(commands::not_yet("verify", 5)),
    }
    Ok(Exit::Success)
}
