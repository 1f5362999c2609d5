//! `sbx build`: the sandbox image from `sbx.lock` (issue #4).

use clap::Args;

use super::{Context, Exit};

/// Arguments of `sbx build`.
#[derive(Debug, Args)]
pub struct BuildArgs {}

/// Runs `sbx build`.
pub fn run(_ctx: &Context, _args: &BuildArgs) -> miette::Result<Exit> {
    Err(super::not_yet("build", 4))
}
