//! `sbx start`: the agent in a sandbox with the locked toolchain (issue #7).

use clap::Args;

use super::{Context, Exit};

/// Arguments of `sbx start`.
#[derive(Debug, Args)]
pub struct StartArgs {}

/// Runs `sbx start`.
pub fn run(_ctx: &Context, _args: &StartArgs) -> miette::Result<Exit> {
    Err(super::not_yet("start", 7))
}
