//! `sbx proxy`: the egress policy proxy run standalone (issue #6).

use clap::Args;

use super::{Context, Exit};

/// Arguments of `sbx proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {}

/// Runs `sbx proxy`.
pub fn run(_ctx: &Context, _args: &ProxyArgs) -> miette::Result<Exit> {
    Err(super::not_yet("proxy", 6))
}
