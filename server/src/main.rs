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
        Command::Simulate(args) => return simulate(args),
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

/// `kinescope simulate`: N synthetic cameras against a server; prints what they saw.
fn simulate(args: config::SimulateArgs) -> ExitCode {
    use kinescope_api::sigv4::Signer;
    use kinescope_devices::{Endpoint, Simulation};
    let signer = Signer {
        access_key: args.access_key,
        secret: args.secret_key,
        region: args.region,
    };
    let endpoint = match Endpoint::new(&args.endpoint, args.ca.as_deref(), signer) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("kinescope simulate: {e}");
            return ExitCode::from(2);
        }
    };
    let sim = Simulation {
        streams: args.streams,
        prefix: args.prefix,
        bitrate_bps: args.bitrate,
        fragment: std::time::Duration::from_millis(args.fragment_ms),
        fps: args.fps,
        duration: std::time::Duration::from_secs(args.duration_secs),
        viewers: args.viewers,
        hls_viewers: args.hls_viewers,
        hls_reload: match args.hls_reload {
            config::HlsReload::Poll => kinescope_devices::hls::Reload::Poll,
            config::HlsReload::Block => kinescope_devices::hls::Reload::Block,
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let now = || {
        use kinescope_archive::Clock;
        kinescope_archive::SystemClock.now()
    };
    let report = runtime.block_on(kinescope_devices::simulate(endpoint, sim, now));
    use kinescope_devices::percentile;
    let ms = |d: Option<std::time::Duration>| {
        d.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64() * 1e3))
    };
    let persisted = &report.persist_latencies;
    println!("fragments PERSISTED: {}", report.fragments_persisted);
    println!(
        "PERSISTED latency from the fragment's last byte: p50 {} ms, p99 {} ms, max {} ms",
        ms(percentile(persisted, 0.5)),
        ms(percentile(persisted, 0.99)),
        ms(percentile(persisted, 1.0))
    );
    if args.viewers > 0 {
        let viewed = &report.view_latencies_ms;
        let ms = |p| percentile(viewed, p).map_or("-".into(), |v| format!("{v:.1}"));
        println!(
            "fragments viewed: {} ({} viewers per stream); missed {}, duplicated {}",
            report.fragments_viewed,
            args.viewers,
            report.fragments_missed,
            report.fragments_duplicated
        );
        println!(
            "PERSISTED ACK -> Cluster at the viewer: p50 {} ms, p99 {} ms, max {} ms",
            ms(0.5),
            ms(0.99),
            ms(1.0)
        );
    }
    if args.hls_viewers > 0 {
        print_hls(&report, args.hls_viewers);
    }
    println!("errors: {}", report.errors.len());
    for e in report.errors.iter().take(5) {
        println!("  {e}");
    }
    if report.errors.is_empty()
        && report.fragments_missed == 0
        && report.fragments_duplicated == 0
        && report.hls_fragments_missed == 0
        && report.hls_fragments_duplicated == 0
    {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The HLS viewers' part of the simulate report, one `key: value` line each (scripts read them).
fn print_hls(report: &kinescope_devices::Report, asked: usize) {
    use kinescope_devices::percentile;
    let q = |v: &[f64], p| percentile(v, p).map_or("-".into(), |v| format!("{v:.1}"));
    let line = |name: &str, v: &[f64]| {
        println!(
            "{name}: p50 {} ms, p99 {} ms, max {} ms ({} samples)",
            q(v, 0.5),
            q(v, 0.99),
            q(v, 1.0),
            v.len()
        );
    };
    println!(
        "HLS viewers: {} of {asked}; segments fetched {} ({:.0} MB, {} init); missed {}, duplicated {}; HTTP errors {}",
        report.hls_viewers,
        report.hls_fragments_fetched,
        report.hls_segment_bytes as f64 / 1e6,
        report.hls_init_segments,
        report.hls_fragments_missed,
        report.hls_fragments_duplicated,
        report.hls_errors
    );
    if report.hls_blocking_reloads > 0 {
        println!(
            "HLS blocking reloads: {}, answered without the asked segment: {}",
            report.hls_blocking_reloads, report.hls_reload_timeouts
        );
    }
    line(
        "HLS PERSISTED ACK -> listed in a media playlist",
        &report.hls_listing_ms,
    );
    line("HLS media playlist request", &report.hls_playlist_ms);
    line("HLS media segment request", &report.hls_segment_ms);
}
