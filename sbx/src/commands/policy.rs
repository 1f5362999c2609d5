//! `sbx policy show` and `sbx policy log`: the effective network policy and the audit log (issue #6).

use clap::Args;

use super::{Context, Exit};

/// Arguments of `sbx policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {}

/// Runs `sbx policy`.
pub fn run(_ctx: &Context, _args: &PolicyArgs) -> miette::Result<Exit> {
    Err(super::not_yet("policy", 6))
}
