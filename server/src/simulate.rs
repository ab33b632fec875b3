//! `kinescope simulate` (issue 14): runs [`kinescope_devices::simulate`] and reports what the
//! devices saw, as `key: value` lines (scripts read them) or, with `--json`, as one JSON object
//! for the benchmarks. On a terminal, a progress line every second on stderr. Exit status 0
//! only when every fragment made was PERSISTED, none dropped, no device failed and every
//! viewer saw every fragment once.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kinescope_api::sigv4::Signer;
use kinescope_devices::{Live, Report, Simulation, percentile};
use serde_json::json;

use crate::config::{HlsReload, SimulateArgs};

pub fn simulate(args: SimulateArgs) -> ExitCode {
    let sim = Simulation {
        endpoint: args.endpoint.clone(),
        ca: args.ca.clone(),
        signer: Signer {
            access_key: args.access_key.clone(),
            secret: args.secret_key.clone(),
            region: args.region.clone(),
        },
        streams: args.streams,
        prefix: args.prefix.clone(),
        bitrate_bps: args.bitrate,
        fragment: Duration::from_millis(args.fragment_ms),
        fps: args.fps,
        duration: Duration::from_secs(args.duration_secs),
        buffer: Duration::from_secs(args.buffer_secs),
        give_up_after: Duration::from_secs(args.give_up_after),
        viewers: args.viewers,
        hls_viewers: args.hls_viewers,
        hls_reload: match args.hls_reload {
            HlsReload::Poll => kinescope_devices::hls::Reload::Poll,
            HlsReload::Block => kinescope_devices::hls::Reload::Block,
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
    let live = Arc::new(Live::default());
    if std::io::stderr().is_terminal() {
        runtime.spawn(progress(live.clone(), args.streams));
    }
    let report = match runtime.block_on(kinescope_devices::simulate(sim, now, live)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kinescope simulate: {e}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        println!("{}", to_json(&report, &args));
    } else {
        print_lines(&report, args.viewers, args.hls_viewers);
    }
    let clean = report.errors.is_empty()
        && report.fragments_dropped == 0
        && report.fragments_persisted == report.fragments_made
        && report.fragments_missed == 0
        && report.fragments_duplicated == 0
        && report.hls_fragments_missed == 0
        && report.hls_fragments_duplicated == 0;
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A line a second: fragments PERSISTED (and per second), dropped, reconnections, failures.
async fn progress(live: Arc<Live>, devices: usize) {
    let started = Instant::now();
    let mut last = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let persisted = live.persisted.load(Ordering::Relaxed);
        eprintln!(
            "[{:>4} s] {devices} devices: {persisted} fragments PERSISTED ({}/s), {} dropped, {} reconnects, {} devices failed",
            started.elapsed().as_secs(),
            persisted - last,
            live.dropped.load(Ordering::Relaxed),
            live.reconnects.load(Ordering::Relaxed),
            live.failed.load(Ordering::Relaxed),
        );
        last = persisted;
    }
}

/// Milliseconds at quantiles p50, p99 and max, and the sample count.
fn quantiles(ms: &[f64]) -> serde_json::Value {
    let q = |p| percentile(ms, p);
    json!({"p50": q(0.5), "p99": q(0.99), "max": q(1.0), "n": ms.len()})
}

fn to_ms(v: &[Duration]) -> Vec<f64> {
    v.iter().map(|d| d.as_secs_f64() * 1e3).collect()
}

fn to_json(r: &Report, args: &SimulateArgs) -> serde_json::Value {
    let mut out = json!({
        "devices": args.streams,
        "bitrate": args.bitrate,
        "fragment_ms": args.fragment_ms,
        "duration_secs": args.duration_secs,
        "fragments_made": r.fragments_made,
        "fragments_persisted": r.fragments_persisted,
        "fragments_dropped": r.fragments_dropped,
        "persisted_latency_ms": quantiles(&to_ms(&r.persist_latencies)),
        "reconnects": r.reconnects,
        "resent": r.resent,
        "found_stored": r.found_stored,
        "retries_by_cause": r.retries_by_cause,
        "failures_by_cause": r.failures_by_cause,
        "errors": r.errors.iter().take(20).collect::<Vec<_>>(),
    });
    if args.viewers > 0 {
        out["getmedia_viewers"] = json!({
            "per_stream": args.viewers,
            "fragments_viewed": r.fragments_viewed,
            "missed": r.fragments_missed,
            "duplicated": r.fragments_duplicated,
            "persisted_to_viewer_ms": quantiles(&r.view_latencies_ms),
        });
    }
    if args.hls_viewers > 0 {
        out["hls_viewers"] = json!({
            "asked": args.hls_viewers,
            "ran": r.hls_viewers,
            "segments_fetched": r.hls_fragments_fetched,
            "segment_bytes": r.hls_segment_bytes,
            "init_segments": r.hls_init_segments,
            "missed": r.hls_fragments_missed,
            "duplicated": r.hls_fragments_duplicated,
            "http_errors": r.hls_errors,
            "blocking_reloads": r.hls_blocking_reloads,
            "reload_timeouts": r.hls_reload_timeouts,
            "persisted_to_listed_ms": quantiles(&r.hls_listing_ms),
            "playlist_request_ms": quantiles(&r.hls_playlist_ms),
            "segment_request_ms": quantiles(&r.hls_segment_ms),
        });
    }
    out
}

/// The report as `key: value` lines (scripts read them).
fn print_lines(report: &Report, viewers: usize, hls_viewers: usize) {
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
    println!("fragments PERSISTED: {}", report.fragments_persisted);
    println!(
        "fragments made: {}, dropped (device buffer full): {}",
        report.fragments_made, report.fragments_dropped
    );
    line(
        "PERSISTED latency from the fragment's last byte",
        &to_ms(&report.persist_latencies),
    );
    println!(
        "reconnects: {} {:?}; re-sent {}, found stored after a lost ACK {}",
        report.reconnects, report.retries_by_cause, report.resent, report.found_stored
    );
    if viewers > 0 {
        println!(
            "fragments viewed: {} ({viewers} viewers per stream); missed {}, duplicated {}",
            report.fragments_viewed, report.fragments_missed, report.fragments_duplicated
        );
        line(
            "PERSISTED ACK -> Cluster at the viewer",
            &report.view_latencies_ms,
        );
    }
    if hls_viewers > 0 {
        println!(
            "HLS viewers: {} of {hls_viewers}; segments fetched {} ({:.0} MB, {} init); missed {}, duplicated {}; HTTP errors {}",
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
    println!(
        "errors: {} {:?}",
        report.errors.len(),
        report.failures_by_cause
    );
    for e in report.errors.iter().take(5) {
        println!("  {e}");
    }
}
