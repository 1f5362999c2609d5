//! `sbx exec`, `sbx ls`, `sbx stop`, `sbx rm`: the lifecycle of started sandboxes (issue #7).

use clap::Args;

use super::{Context, Exit};

/// Arguments of `sbx exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {}

/// Arguments of `sbx ls`.
#[derive(Debug, Args)]
pub struct LsArgs {}

/// Arguments of `sbx stop`.
#[derive(Debug, Args)]
pub struct StopArgs {}

/// Arguments of `sbx rm`.
#[derive(Debug, Args)]
pub struct RmArgs {}

/// Runs `sbx exec`.
pub fn exec(_ctx: &Context, _args: &ExecArgs) -> miette::Result<Exit> {
    Err(super::not_yet("exec", 7))
}

/// Runs `sbx ls`.
pub fn ls(_ctx: &Context, _args: &LsArgs) -> miette::Result<Exit> {
    Err(super::not_yet("ls", 7))
}

/// Runs `sbx stop`.
pub fn stop(_ctx: &Context, _args: &StopArgs) -> miette::Result<Exit> {
    Err(super::not_yet("stop", 7))
}

/// Runs `sbx rm`.
pub fn rm(_ctx: &Context, _args: &RmArgs) -> miette::Result<Exit> {
    Err(super::not_yet("rm", 7))
}
