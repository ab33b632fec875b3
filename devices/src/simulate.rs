//! `kinescope simulate`: N synthetic cameras uploading at once, for load tests (DESIGN.md
//! convention 11). Each device makes its stream (if needed), then sends one known-size Cluster
//! per fragment duration, its frames paced in real time, and measures the time from the last
//! byte of each fragment to its PERSISTED ACK. Optionally each stream has live viewers: GetMedia
//! readers (StartSelector NOW, spec §4) opened before the upload starts, which parse what they
//! receive and measure, per fragment, the time from its PERSISTED ACK at the device to its
//! Cluster arriving at the viewer, and whether every fragment arrived exactly once. HLS viewers
//! ([`crate::hls`]) are spread over the streams and start after their stream's first PERSISTED
//! ACK; for them the simulator reports, per fragment, the time from its PERSISTED ACK at the
//! device to its first listing in a LIVE media playlist, the playlist and segment request
//! latencies, and the fragments a viewer never fetched.
//!
//! The frames are not decodable video, but they are shaped as H.264 (length-prefixed NAL units,
//! an IDR slice first in each fragment) under a real avcC, so that the server remuxes them for
//! HLS and DASH as it would a camera's.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kinescope_api::ack::AckEvent;
use kinescope_api::{FragmentNumber, StreamName, Timestamp};
use kinescope_media::mkv::{Event, Frame, Limits, MkvReader, ProducerWriter, Track, TrackType};
use tokio::sync::{Mutex, watch};

use crate::hls::{Reload, ViewerLog, view_hls};
use crate::{DeviceError, Endpoint, MediaStream, PutMedia, PutMediaOptions, ReceivedAck};

/// The avcC of a real camera (`testdata/codec/producer-c-1.6.4-avcc` without its fuzz selector
/// byte): High profile, level 3.0, 4-byte NAL lengths, one SPS, one PPS.
pub const AVCC: [u8; 45] = [
    0x01, 0x64, 0x00, 0x1e, 0xff, 0xe1, 0x00, 0x1d, 0x67, 0x64, 0x00, 0x1e, 0xac, 0xb2, 0x01, 0x40,
    0x7b, 0x60, 0x2d, 0x41, 0x80, 0x41, 0x50, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03,
    0x28, 0xf1, 0x62, 0xe4, 0x80, 0x01, 0x00, 0x05, 0x68, 0xeb, 0xcc, 0xb2, 0x2c,
];

/// How long viewers wait for the last fragments after their device's upload ends.
const VIEWER_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct Simulation {
    pub streams: usize,
    /// Stream names are `{prefix}-{index}`.
    pub prefix: String,
    pub bitrate_bps: u64,
    pub fragment: Duration,
    pub fps: u32,
    pub duration: Duration,
    /// Live GetMedia viewers per stream.
    pub viewers: usize,
    /// LIVE HLS viewers in all, spread over the streams (viewer `v` plays stream `v % streams`).
    pub hls_viewers: usize,
    pub hls_reload: Reload,
}

/// What the devices saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub fragments_persisted: usize,
    pub errors: Vec<String>,
    /// Last byte of a fragment sent → its PERSISTED ACK received, sorted.
    pub persist_latencies: Vec<Duration>,
    /// Fragments the viewers received (each viewer counts each fragment it got).
    pub fragments_viewed: usize,
    /// PERSISTED fragments a viewer did not receive (counted per viewer).
    pub fragments_missed: usize,
    /// Fragments a viewer received more than once (counted per viewer).
    pub fragments_duplicated: usize,
    /// Per viewed fragment, PERSISTED ACK at the device → its Cluster's first bytes at the
    /// viewer, in milliseconds, sorted; negative when the viewer was first (the server sends to
    /// viewers before it ACKs).
    pub view_latencies_ms: Vec<f64>,
    /// HLS viewers that got a session and ran to the end.
    pub hls_viewers: usize,
    /// Media segments HLS viewers fetched (each viewer counts each it got).
    pub hls_fragments_fetched: usize,
    /// PERSISTED fragments from a viewer's first segment on that it never fetched (per viewer).
    pub hls_fragments_missed: usize,
    /// Fragments an HLS viewer fetched more than once (per viewer).
    pub hls_fragments_duplicated: usize,
    pub hls_segment_bytes: u64,
    pub hls_init_segments: usize,
    pub hls_blocking_reloads: usize,
    pub hls_reload_timeouts: usize,
    /// HTTP errors HLS viewers got (non-200 playlists or segments) and viewers that failed.
    pub hls_errors: usize,
    /// Per fragment and viewer, PERSISTED ACK at the device → the fragment's first listing in
    /// the viewer's media playlist, in ms, sorted (negative when the playlist was first).
    pub hls_listing_ms: Vec<f64>,
    /// Media playlist requests answered at once: request → response, in ms, sorted.
    pub hls_playlist_ms: Vec<f64>,
    /// Media segment requests: request → last byte, in ms, sorted.
    pub hls_segment_ms: Vec<f64>,
}

/// The value at quantile `p` of sorted `v`.
pub fn percentile<T: Copy>(v: &[T], p: f64) -> Option<T> {
    (!v.is_empty()).then(|| v[((v.len() as f64 * p) as usize).min(v.len() - 1)])
}

/// Runs the simulation; `now` is the wall clock (the signing time).
pub async fn simulate(endpoint: Endpoint, sim: Simulation, now: fn() -> Timestamp) -> Report {
    let report = Arc::new(Mutex::new(Report::default()));
    let mut tasks = Vec::new();
    for i in 0..sim.streams {
        let (endpoint, sim, report) = (endpoint.clone(), sim.clone(), report.clone());
        tasks.push(tokio::spawn(async move {
            // Spread the starts over one fragment so that fragments do not all end together.
            tokio::time::sleep(sim.fragment.mul_f64(i as f64 / sim.streams.max(1) as f64)).await;
            if let Err(e) = device(&endpoint, &sim, i, now, &report).await {
                report.lock().await.errors.push(format!("device {i}: {e}"));
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut report = Arc::try_unwrap(report)
        .map(Mutex::into_inner)
        .unwrap_or_default();
    report.persist_latencies.sort();
    report.view_latencies_ms.sort_by(f64::total_cmp);
    report.hls_listing_ms.sort_by(f64::total_cmp);
    report.hls_playlist_ms.sort_by(f64::total_cmp);
    report.hls_segment_ms.sort_by(f64::total_cmp);
    report
}

async fn device(
    endpoint: &Endpoint,
    sim: &Simulation,
    index: usize,
    now: fn() -> Timestamp,
    report: &Mutex<Report>,
) -> Result<(), DeviceError> {
    let stream = StreamName::parse(&format!("{}-{index}", sim.prefix))
        .map_err(|e| DeviceError::Protocol(e.message))?;
    let body = format!(r#"{{"StreamName":"{stream}","DataRetentionInHours":1}}"#);
    match endpoint.call("/createStream", &body, now()).await {
        Ok(_) => {}
        Err(DeviceError::Status { status: 400, body }) if body.contains("already exists") => {}
        Err(e) => return Err(e),
    }
    let track = Track {
        number: 1,
        uid: 1,
        track_type: TrackType::Video,
        codec_id: "V_MPEG4/ISO/AVC".into(),
        width: Some(1280),
        height: Some(720),
        codec_private: Bytes::from_static(&AVCC),
        ..Track::default()
    };
    let (stop, stopped) = watch::channel(false);
    let viewers = start_viewers(endpoint, &stream, sim.viewers, now, &stopped).await?;
    let (first_persisted, persisted_once) = watch::channel(false);
    let hls: Vec<_> = (0..hls_viewers_of(sim, index))
        .map(|_| {
            let (endpoint, stream, reload) = (endpoint.clone(), stream.clone(), sim.hls_reload);
            let (mut started, stop) = (persisted_once.clone(), stopped.clone());
            tokio::spawn(async move {
                if started.wait_for(|p| *p).await.is_err() {
                    return Ok(ViewerLog::default());
                }
                view_hls(&endpoint, &stream, reload, now, stop).await
            })
        })
        .collect();
    let writer = ProducerWriter::new(vec![track], 1_000_000);
    let frame_bytes = (sim.bitrate_bps / 8 / u64::from(sim.fps)) as usize;
    let (key_frame, frame) = (
        h264_frame(frame_bytes, true),
        h264_frame(frame_bytes, false),
    );
    let frame_ms = 1000 / i64::from(sim.fps);
    let frames_per_fragment = (sim.fragment.as_millis() as i64 / frame_ms).max(1);

    let mut persisted = Persisted {
        first: first_persisted,
        ..Persisted::default()
    };
    let mut upload = PutMedia::start(
        endpoint,
        &PutMediaOptions {
            stream,
            absolute: false,
            start: now(),
        },
        now(),
    )
    .await?;
    upload.send(&writer.header()).await?;
    let started = Instant::now();
    let mut sent_at: Vec<(u64, Instant)> = Vec::new();
    let mut fragment = 0i64;
    while started.elapsed() < sim.duration {
        let first = fragment * frames_per_fragment * frame_ms;
        let frames: Vec<Frame> = (0..frames_per_fragment)
            .map(|k| Frame {
                track: 1,
                timecode: first + k * frame_ms,
                key: k == 0,
                data: if k == 0 { &key_frame } else { &frame }.clone(),
            })
            .collect();
        let parts = writer.cluster(&frames);
        // Cluster header, Timecode, then each block (head + payload) at its frame time.
        upload.send_parts(&[&parts[0], &parts[1]]).await?;
        let blocks = parts[2..].chunks(2);
        let last = blocks.len() - 1;
        for (k, pair) in blocks.enumerate() {
            let due = started + Duration::from_millis((first + k as i64 * frame_ms) as u64);
            tokio::time::sleep_until(due.into()).await;
            upload.send_parts(&[&pair[0], &pair[1]]).await?;
            if k == last {
                // Its last byte is out: noted before its PERSISTED ACK can be taken.
                sent_at.push((first as u64, Instant::now()));
            }
            drain(&mut upload, &mut sent_at, &mut persisted, report).await?;
        }
        fragment += 1;
    }
    for ack in upload.finish().await? {
        record(ack, &mut sent_at, &mut persisted, report).await;
    }
    if !viewers.is_empty() || !hls.is_empty() {
        tokio::time::sleep(VIEWER_GRACE).await;
    }
    let _ = stop.send(true);
    if !viewers.is_empty() {
        let mut seen = Vec::with_capacity(viewers.len());
        for viewer in viewers {
            seen.push(match viewer.await {
                Ok(result) => result,
                Err(e) => Err(DeviceError::Protocol(e.to_string())),
            });
        }
        tally_viewers(
            seen,
            index,
            started,
            &persisted.by_timecode,
            &mut *report.lock().await,
        );
    }
    if !hls.is_empty() {
        let mut logs = Vec::with_capacity(hls.len());
        for viewer in hls {
            logs.push(match viewer.await {
                Ok(result) => result,
                Err(e) => Err(DeviceError::Protocol(e.to_string())),
            });
        }
        tally_hls(logs, index, &persisted.by_number, &mut *report.lock().await);
    }
    Ok(())
}

/// How many of the HLS viewers play stream `index`.
fn hls_viewers_of(sim: &Simulation, index: usize) -> usize {
    let streams = sim.streams.max(1);
    sim.hls_viewers / streams + usize::from(index < sim.hls_viewers % streams)
}

/// A frame of `size` bytes (at least 5) shaped as one H.264 NAL unit with a 4-byte length (the
/// avcC's): an IDR slice for a key frame, else a non-IDR slice; the rest is filler.
fn h264_frame(size: usize, key: bool) -> Bytes {
    let size = size.max(5);
    let mut frame = vec![0x42u8; size];
    let nal_len = u32::try_from(size - 4).unwrap_or(u32::MAX);
    frame[..4].copy_from_slice(&nal_len.to_be_bytes());
    frame[4] = if key { 0x65 } else { 0x41 };
    Bytes::from(frame)
}

/// Adds what the HLS viewers of one device saw to the report: latency from each fragment's
/// PERSISTED ACK to its first listing, request latencies, and fragments missed or fetched twice
/// (from each viewer's first fragment on).
fn tally_hls(
    logs: Vec<Result<ViewerLog, DeviceError>>,
    device: usize,
    persisted: &HashMap<String, Instant>,
    r: &mut Report,
) {
    for log in logs {
        let log = match log {
            Ok(log) => log,
            Err(e) => {
                r.hls_errors += 1;
                r.errors.push(format!("HLS viewer of device {device}: {e}"));
                continue;
            }
        };
        r.hls_viewers += 1;
        r.hls_errors += log.errors.len();
        if let Some(e) = log.errors.first() {
            r.errors.push(format!(
                "HLS viewer of device {device}: {e} (and {} more)",
                log.errors.len() - 1
            ));
        }
        let mut fetched = HashSet::new();
        for n in &log.fetched {
            if !fetched.insert(n.as_str()) {
                r.hls_fragments_duplicated += 1;
            }
        }
        r.hls_fragments_fetched += log.fetched.len();
        r.hls_fragments_missed += match &log.start {
            Some(start) => persisted
                .keys()
                .filter(|n| {
                    FragmentNumber::parse(n).is_ok_and(|n| n >= *start)
                        && !fetched.contains(n.as_str())
                })
                .count(),
            None => persisted.len(),
        };
        for (n, listed) in &log.first_listed {
            if let (Some(listed), Some(p)) = (listed, persisted.get(n)) {
                r.hls_listing_ms.push(signed_ms(*listed, *p));
            }
        }
        r.hls_playlist_ms.extend(&log.playlist_ms);
        r.hls_segment_ms.extend(&log.segment_ms);
        r.hls_segment_bytes += log.segment_bytes;
        r.hls_init_segments += log.init_segments;
        r.hls_blocking_reloads += log.blocking_reloads;
        r.hls_reload_timeouts += log.reload_timeouts;
    }
}

/// `at − since` in milliseconds, negative when `at` came first.
fn signed_ms(at: Instant, since: Instant) -> f64 {
    if at >= since {
        (at - since).as_secs_f64() * 1e3
    } else {
        -(since - at).as_secs_f64() * 1e3
    }
}

/// Adds what each viewer of one device saw to the report: fragments received since the upload
/// started, their latency from the PERSISTED ACK, and PERSISTED fragments missed or duplicated.
fn tally_viewers(
    viewers: Vec<Result<Vec<(u64, Instant)>, DeviceError>>,
    device: usize,
    started: Instant,
    persisted: &HashMap<u64, Instant>,
    r: &mut Report,
) {
    for seen in viewers {
        let seen = match seen {
            Ok(seen) => seen,
            Err(e) => {
                r.errors.push(format!("viewer of device {device}: {e}"));
                continue;
            }
        };
        let mut count: HashMap<u64, usize> = HashMap::new();
        for (timecode, at) in seen.into_iter().filter(|(_, at)| *at >= started) {
            *count.entry(timecode).or_default() += 1;
            if let Some(p) = persisted.get(&timecode) {
                r.view_latencies_ms.push(signed_ms(at, *p));
            }
            r.fragments_viewed += 1;
        }
        r.fragments_missed += persisted.keys().filter(|t| !count.contains_key(t)).count();
        r.fragments_duplicated += count.values().filter(|&&n| n > 1).count();
    }
}

type Viewer = tokio::task::JoinHandle<Result<Vec<(u64, Instant)>, DeviceError>>;

/// Opens `n` GetMedia readers at NOW; each reports (cluster timecode, arrival of its first
/// bytes) for every fragment it receives until `stop`.
async fn start_viewers(
    endpoint: &Endpoint,
    stream: &StreamName,
    n: usize,
    now: fn() -> Timestamp,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<Viewer>, DeviceError> {
    let mut viewers = Vec::with_capacity(n);
    for _ in 0..n {
        let media =
            MediaStream::open(endpoint, stream, r#"{"StartSelectorType":"NOW"}"#, now()).await?;
        viewers.push(tokio::spawn(view(media, stop.clone())));
    }
    Ok(viewers)
}

async fn view(
    mut media: MediaStream,
    mut stop: watch::Receiver<bool>,
) -> Result<Vec<(u64, Instant)>, DeviceError> {
    let mut reader = MkvReader::new(Limits::default());
    let mut seen = Vec::new();
    loop {
        let chunk = tokio::select! {
            chunk = media.next() => chunk?,
            _ = stop.changed() => None,
        };
        let Some(chunk) = chunk else {
            return Ok(seen);
        };
        let at = Instant::now();
        reader.push(chunk);
        // One piece at a time, so that this process's other viewers are not kept waiting.
        tokio::task::yield_now().await;
        while let Some(event) = reader.poll() {
            match event.map_err(|e| DeviceError::Protocol(e.to_string()))? {
                Event::FragmentStart { timecode, .. } => seen.push((timecode, at)),
                Event::Fragment(_) => drop(reader.take_fragment_bytes()),
                _ => {}
            }
        }
    }
}

/// Takes the ACKs that have arrived, without waiting.
async fn drain(
    upload: &mut PutMedia,
    sent_at: &mut Vec<(u64, Instant)>,
    persisted: &mut Persisted,
    report: &Mutex<Report>,
) -> Result<(), DeviceError> {
    while let Ok(Some(ack)) = tokio::time::timeout(Duration::ZERO, upload.next_ack()).await {
        record(ack?, sent_at, persisted, report).await;
    }
    Ok(())
}

/// When a device's fragments were ACKed PERSISTED, by cluster timecode and by fragment number;
/// `first` turns true at the first.
#[derive(Debug, Default)]
struct Persisted {
    by_timecode: HashMap<u64, Instant>,
    by_number: HashMap<String, Instant>,
    first: watch::Sender<bool>,
}

/// Notes a PERSISTED ACK (when, and how long after the fragment's last byte) or an ERROR.
async fn record(
    (ack, at): ReceivedAck,
    sent_at: &mut Vec<(u64, Instant)>,
    persisted: &mut Persisted,
    report: &Mutex<Report>,
) {
    match (ack.event, &ack.fragment) {
        (AckEvent::Persisted, Some((tc, number))) => {
            persisted.by_timecode.insert(*tc, at);
            persisted.by_number.insert(number.as_str().to_owned(), at);
            persisted.first.send_replace(true);
            let mut r = report.lock().await;
            r.fragments_persisted += 1;
            if let Some(i) = sent_at.iter().position(|(t, _)| t == tc) {
                let (_, sent) = sent_at.swap_remove(i);
                r.persist_latencies.push(at.saturating_duration_since(sent));
            } else {
                r.errors.push(format!(
                    "PERSISTED for fragment {tc} before its last byte was sent"
                ));
            }
        }
        (AckEvent::Error, _) => report
            .lock()
            .await
            .errors
            .push(format!("ERROR ACK: {}", ack.to_line().trim())),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_avcc_is_the_cameras_and_parses() {
        let file = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/codec/producer-c-1.6.4-avcc"
        ))
        .unwrap();
        assert_eq!(
            &file[1..],
            &AVCC[..],
            "the file has a fuzz selector byte first"
        );
        let avcc = kinescope_media::codec::AvcDecoderConfig::parse(&AVCC).unwrap();
        assert!(avcc.first_sps().is_ok());
    }

    #[test]
    fn frames_are_one_length_prefixed_nal_unit() {
        let key = h264_frame(10_000, true);
        assert_eq!(key.len(), 10_000);
        assert_eq!(u32::from_be_bytes(key[..4].try_into().unwrap()), 9_996);
        assert_eq!(key[4] & 0x1f, 5, "IDR slice");
        assert_eq!(h264_frame(10_000, false)[4] & 0x1f, 1, "non-IDR slice");
        assert_eq!(h264_frame(0, false).len(), 5);
    }

    #[test]
    fn hls_viewers_are_spread_over_the_streams() {
        let sim = Simulation {
            streams: 3,
            prefix: "s".into(),
            bitrate_bps: 1,
            fragment: Duration::from_secs(1),
            fps: 1,
            duration: Duration::from_secs(1),
            viewers: 0,
            hls_viewers: 7,
            hls_reload: Reload::Poll,
        };
        let counts: Vec<usize> = (0..3).map(|i| hls_viewers_of(&sim, i)).collect();
        assert_eq!(counts, [3, 2, 2]);
    }

    #[test]
    fn hls_tally_counts_misses_from_the_first_fetched_fragment() {
        let t0 = Instant::now();
        let n = |i: u64| format!("9134385233318143239{i:022}");
        let persisted: HashMap<String, Instant> = (1..=4)
            .map(|i| (n(i), t0 + Duration::from_secs(i)))
            .collect();
        let log = ViewerLog {
            // Fragment 1 was in the first playlist; 3 was listed 5 ms after its ACK, 4 before.
            first_listed: HashMap::from([
                (n(1), None),
                (n(3), Some(t0 + Duration::from_millis(3_005))),
                (n(4), Some(t0 + Duration::from_millis(3_999))),
            ]),
            start: FragmentNumber::parse(&n(2)).ok(),
            fetched: vec![n(2), n(4), n(4)],
            ..ViewerLog::default()
        };
        let mut r = Report::default();
        tally_hls(vec![Ok(log)], 0, &persisted, &mut r);
        assert_eq!(r.hls_viewers, 1);
        assert_eq!(
            r.hls_fragments_missed, 1,
            "3 was never fetched; 1 came before the start"
        );
        assert_eq!(r.hls_fragments_duplicated, 1);
        r.hls_listing_ms.sort_by(f64::total_cmp);
        assert_eq!(r.hls_listing_ms.len(), 2);
        assert!((r.hls_listing_ms[0] + 1.0).abs() < 0.01);
        assert!((r.hls_listing_ms[1] - 5.0).abs() < 0.01);
    }
}
