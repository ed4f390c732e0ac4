//! `e4k bridge …`: arguments and printing around `e4k_bridge` (being written).

use std::process::ExitCode;

use clap::Subcommand;

use crate::output::Output;

#[derive(Debug, Subcommand)]
pub(crate) enum BridgeCommand {}

pub(crate) fn run(command: BridgeCommand, _out: &Output) -> anyhow::Result<ExitCode> {
    match command {}
}
