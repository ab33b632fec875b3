//! `kinescope`: the server binary. `kinescope serve` runs the KVS-compatible control plane,
//! ingest and playback on one listener (DESIGN.md, "What users get").

mod archived;
mod auth;
mod config;
mod control;
mod error;
mod http;
mod limits;
mod listener;
mod put;
mod putmedia;
mod secrets;
mod serve;
mod simulate;
mod state;
mod streaming;
mod tls;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::config::{Cli, Command, Config};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("KINESCOPE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let (args, fsck) = match cli.command {
        Command::Serve(args) => (*args, None),
        Command::Simulate(args) => return simulate::simulate(*args),
        Command::Put(args) => return put::put(*args),
        Command::Fsck(args) => (args.server, Some(args.repair)),
    };
    let config = match Config::resolve(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kinescope: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kinescope: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(repair) = fsck {
        return match runtime.block_on(serve::fsck(config, repair)) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("kinescope: {e}");
                ExitCode::from(2)
            }
        };
    }
    match runtime.block_on(serve::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kinescope: {e}");
            ExitCode::FAILURE
        }
    }
}
