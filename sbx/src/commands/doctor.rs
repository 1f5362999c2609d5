//! `sbx doctor`: which sandbox runtimes work on this machine (issue #7).

use clap::Args;

use super::{Context, Exit};

/// Arguments of `sbx doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {}

/// Runs `sbx doctor`.
pub fn run(_ctx: &Context, _args: &DoctorArgs) -> miette::Result<Exit> {
    Err(super::not_yet("doctor", 7))
}
