//! The `sbx` command line: parses arguments, loads the project, runs one command and turns its
//! outcome into an exit code (0 ok, 1 error, 2 usage, 3 `--check` found the lockfile stale).
//!
//! The CLI's wiring lives in this crate's library so it can be tested; the tool logic lives in
//! the `sbx-*` library crates.

pub mod agents;
pub mod cli;
pub mod commands;
pub mod diff_render;
pub mod launch;
pub mod network;
pub mod output;
pub mod policy;
pub mod progress;
pub mod project;
pub mod sbx_toml;

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use commands::Exit;
use output::Output;

/// Runs the CLI with the process's arguments and environment.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output::from_cli(&cli);
    out.install_error_renderer();
    match run(cli, out) {
        Ok(Exit::Success) => ExitCode::SUCCESS,
        Ok(Exit::Stale) => ExitCode::from(3),
        Ok(Exit::Code(code)) => ExitCode::from(code),
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
    let ctx = commands::Context { dir, env, global: cli.global, out };
    let load = || ctx.project();
    match &cli.command {
        Command::Init(args) => commands::init::run(&ctx.dir, args, &ctx.env, out)?,
        Command::Config(args) => commands::config::run(&load()?, args, out)?,
        Command::Lock(args) => return commands::lock::run(&load()?, args, out),
        Command::Diff(args) => commands::diff::run(&load()?, args, out)?,
        Command::Build(args) => return commands::build::run(&ctx, args),
        Command::Start(args) => return commands::start::run(&ctx, args),
        Command::Exec(args) => return commands::sandboxes::exec(&ctx, args),
        Command::Ls(args) => return commands::sandboxes::ls(&ctx, args),
        Command::Stop(args) => return commands::sandboxes::stop(&ctx, args),
        Command::Rm(args) => return commands::sandboxes::rm(&ctx, args),
        Command::Doctor(args) => return commands::doctor::run(&ctx, args),
        Command::Verify(args) => return commands::verify::run(&ctx, args),
        Command::Proxy(args) => return commands::proxy::run(&ctx, args),
        Command::Policy(args) => return commands::policy::run(&ctx, args),
    }
    Ok(Exit::Success)
}
