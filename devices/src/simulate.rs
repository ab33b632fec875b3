//! `kinescope simulate`: N cameras uploading real, decodable H.264 at once, for load tests
//! (DESIGN.md convention 11; issue 14). Each device uploads through the resilient
//! [`Uploader`], as `kinescope put` does: it makes its stream if needed, then hands the uploader
//! one fragment per `--fragment-ms` as a camera would (when the fragment's last frame is
//! captured), and the uploader reconnects, re-sends and de-duplicates as it would for a real
//! camera. The simulator counts what it sees: fragments PERSISTED, the time from a fragment's
//! last byte sent to its PERSISTED ACK, fragments dropped because the device's buffer was full,
//! reconnections and failures by cause.
//!
//! The video is a key-frame group of real H.264 embedded in the binary (`assets/`, see its
//! README: 640×360, one IDR picture then P pictures, no B-frames). Every fragment is the GOP's
//! first frames, re-timestamped, so any fragment decodes on its own and what the devices upload
//! plays back through GetMedia, HLS, DASH and GetClip. Each frame is padded to the requested
//! bitrate with a filler-data NAL unit (H.264 §7.3.2.7, type 12), which decoders skip. The
//! padded frames are built once and shared by all devices (`Bytes`), so a device costs little
//! more than its socket.
//!
//! Optionally each stream has live viewers: GetMedia readers (StartSelector NOW, spec §4)
//! opened before the upload starts, which parse what they receive and measure, per fragment,
//! the time from its PERSISTED ACK at the device to its Cluster arriving at the viewer, and
//! whether every fragment arrived exactly once. HLS viewers ([`crate::hls`]) are spread over the
//! streams and start after their stream's first PERSISTED ACK; for them the simulator reports,
//! per fragment, the time from its PERSISTED ACK at the device to its first listing in a LIVE
//! media playlist, the playlist and segment request latencies, and the fragments a viewer never
//! fetched.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kinescope_api::sigv4::Signer;
use kinescope_api::{FragmentNumber, StreamName, Timestamp};
use kinescope_media::mkv::{Event, Frame, Limits, MkvReader, ProducerWriter, Track};
use tokio::sync::{Mutex, mpsc, watch};

use crate::hls::{Reload, ViewerLog, view_hls};
use crate::{
    AnnexB, Codec, DeviceError, Elementary, Endpoint, MediaStream, OutFragment, PersistedFragment,
    UploadConfig, UploadStats, Uploader,
};

/// The key-frame group every device sends (H.264 Annex B; `assets/README.md` says how it was
/// made).
const GOP_H264: &[u8] = include_bytes!("../assets/gop-640x360-25fps.h264");

/// How long viewers wait for the last fragments after their device's upload ends.
const VIEWER_GRACE: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct Simulation {
    /// The server's control-plane endpoint (`http(s)://host:port`).
    pub endpoint: String,
    pub ca: Option<PathBuf>,
    pub signer: Signer,
    pub streams: usize,
    /// Stream names are `{prefix}-{index}`.
    pub prefix: String,
    pub bitrate_bps: u64,
    pub fragment: Duration,
    pub fps: u32,
    pub duration: Duration,
    /// Fragments a device holds while its upload cannot keep up (reconnecting, or the server
    /// slow to ACK); beyond it new fragments are dropped and counted, as a camera must.
    pub buffer: Duration,
    /// A device gives up after this long without a fragment PERSISTED.
    pub give_up_after: Duration,
    /// Live GetMedia viewers per stream.
    pub viewers: usize,
    /// LIVE HLS viewers in all, spread over the streams (viewer `v` plays stream `v % streams`).
    pub hls_viewers: usize,
    pub hls_reload: Reload,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("endpoint", &self.endpoint)
            .field("streams", &self.streams)
            .field("bitrate_bps", &self.bitrate_bps)
            .field("fragment", &self.fragment)
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

/// What the devices saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Fragments the devices made (one per fragment duration each).
    pub fragments_made: usize,
    pub fragments_persisted: usize,
    /// Fragments a device dropped because its buffer was full.
    pub fragments_dropped: usize,
    /// Reconnections, fragments sent again after one, and fragments found stored after a lost
    /// ACK (all devices).
    pub reconnects: u64,
    pub resent: u64,
    pub found_stored: u64,
    /// Reconnections by cause (see [`UploadStats::retries_by_cause`]).
    pub retries_by_cause: BTreeMap<String, u64>,
    /// Devices that failed, by cause (`gave up`, `HTTP 403 …`, `ack 4002`, …).
    pub failures_by_cause: BTreeMap<String, u64>,
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

/// Counters that move while the simulation runs, for a progress line.
#[derive(Debug, Default)]
pub struct Live {
    pub persisted: AtomicU64,
    pub dropped: AtomicU64,
    pub reconnects: AtomicU64,
    pub failed: AtomicU64,
}

/// The value at quantile `p` of sorted `v`.
pub fn percentile<T: Copy>(v: &[T], p: f64) -> Option<T> {
    (!v.is_empty()).then(|| v[((v.len() as f64 * p) as usize).min(v.len() - 1)])
}

#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(
        "{wanted} frames per fragment asked, but the embedded key-frame group has {have}: lower --fragment-ms or --fps"
    )]
    FragmentTooLong { wanted: usize, have: usize },
}

/// Runs the simulation; `now` is the wall clock (the signing time and the producer
/// timestamps). `live` is updated as it goes.
pub async fn simulate(
    sim: Simulation,
    now: fn() -> Timestamp,
    live: Arc<Live>,
) -> Result<Report, SimulationError> {
    let endpoint = Endpoint::new(&sim.endpoint, sim.ca.as_deref(), sim.signer.clone())?;
    let gop = Gop::embedded();
    let per_fragment =
        ((sim.fragment.as_millis() as u64 * u64::from(sim.fps)) / 1000).max(1) as usize;
    if per_fragment > gop.frames.len() {
        return Err(SimulationError::FragmentTooLong {
            wanted: per_fragment,
            have: gop.frames.len(),
        });
    }
    let frame_size = (sim.bitrate_bps / 8 / u64::from(sim.fps.max(1))) as usize;
    let source = Arc::new(Source {
        track: gop.track.clone(),
        frames: gop.padded(per_fragment, frame_size),
    });
    let report = Arc::new(Mutex::new(Report::default()));
    let mut tasks = Vec::new();
    for i in 0..sim.streams {
        let (endpoint, sim, report) = (endpoint.clone(), sim.clone(), report.clone());
        let (source, live) = (source.clone(), live.clone());
        tasks.push(tokio::spawn(async move {
            // Spread the starts over one fragment so that fragments do not all end together.
            tokio::time::sleep(sim.fragment.mul_f64(i as f64 / sim.streams.max(1) as f64)).await;
            device(&endpoint, &sim, &source, i, now, &report, &live).await;
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
    Ok(report)
}

/// A key-frame group in decoding order: its track and frames (the first an IDR picture),
/// each as length-prefixed NAL units.
#[derive(Debug, Clone)]
struct Gop {
    track: Track,
    frames: Vec<Bytes>,
}

impl Gop {
    fn embedded() -> Self {
        let mut es = AnnexB::new(Codec::H264, 25.0);
        es.push(GOP_H264);
        es.finish();
        let (mut track, mut frames) = (None, Vec::new());
        while let Some(out) = es.poll() {
            match out.expect("the embedded key-frame group parses") {
                Elementary::Track(t) => track = Some(t),
                Elementary::Frame(f) => frames.push(f.data),
            }
        }
        Self {
            track: track.expect("the embedded key-frame group has parameter sets"),
            frames,
        }
    }

    /// The first `n` frames, each padded to at least `size` bytes.
    fn padded(&self, n: usize, size: usize) -> Vec<Bytes> {
        self.frames[..n].iter().map(|f| pad(f, size)).collect()
    }
}

/// `frame` (length-prefixed NAL units, 4-byte lengths) with a filler-data NAL unit after its
/// picture that brings it to `size` bytes, when that leaves room for one (6 bytes at least).
fn pad(frame: &Bytes, size: usize) -> Bytes {
    let Some(filler) = size.checked_sub(frame.len()).filter(|n| *n >= 6) else {
        return frame.clone();
    };
    let mut out = BytesMut::with_capacity(size);
    out.put_slice(frame);
    out.put_u32((filler - 4) as u32);
    out.put_u8(12); // nal_ref_idc 0, nal_unit_type 12: filler data
    out.put_bytes(0xff, filler - 6); // ff_byte …
    out.put_u8(0x80); // … rbsp_trailing_bits
    Bytes::from(out)
}

/// What every device sends: the track and one fragment's frames, padded.
#[derive(Debug)]
struct Source {
    track: Track,
    frames: Vec<Bytes>,
}

impl Source {
    /// A fragment's size as the uploader counts it, about: its frames and their block heads.
    fn fragment_bytes(&self) -> u64 {
        self.frames.iter().map(|f| f.len() as u64 + 16).sum()
    }
}

/// One device: reports what it saw into `report`.
async fn device(
    endpoint: &Endpoint,
    sim: &Simulation,
    source: &Source,
    index: usize,
    now: fn() -> Timestamp,
    report: &Mutex<Report>,
    live: &Arc<Live>,
) {
    let name = format!("{}-{index}", sim.prefix);
    let Ok(stream) = StreamName::parse(&name) else {
        let mut r = report.lock().await;
        r.errors
            .push(format!("device {index}: '{name}' is not a stream name"));
        *r.failures_by_cause.entry("stream name".into()).or_default() += 1;
        return;
    };
    let persisted = Arc::new(SyncMutex::new(Vec::<PersistedFragment>::new()));
    let (first_persisted, persisted_once) = watch::channel(false);
    let config = UploadConfig {
        endpoint: sim.endpoint.clone(),
        ca: sim.ca.clone(),
        signer: sim.signer.clone(),
        stream: stream.clone(),
        create: true,
        // The camera's memory: `buffer` of its fragments.
        buffer_bytes: source.fragment_bytes()
            * (sim.buffer.as_millis() / sim.fragment.as_millis().max(1)).max(1) as u64,
        give_up_after: sim.give_up_after,
        now: Arc::new(now),
        on_persisted: Some({
            let (persisted, live) = (persisted.clone(), live.clone());
            Arc::new(move |f: &PersistedFragment| {
                persisted.lock().expect("not poisoned").push(f.clone());
                live.persisted.fetch_add(1, Ordering::Relaxed);
                first_persisted.send_replace(true);
            })
        }),
    };
    let failed = |cause: String, message: String| async move {
        live.failed.fetch_add(1, Ordering::Relaxed);
        let mut r = report.lock().await;
        r.errors.push(format!("device {index}: {message}"));
        *r.failures_by_cause.entry(cause).or_default() += 1;
    };
    let uploader = match Uploader::open(config).await {
        Ok(u) => u,
        Err(e) => return failed(e.cause(), e.to_string()).await,
    };
    let (stop, stopped) = watch::channel(false);
    let viewers = match start_viewers(endpoint, &stream, sim.viewers, now, &stopped).await {
        Ok(v) => v,
        Err(e) => {
            let e = crate::uploader::UploadError::from(e);
            return failed(e.cause(), format!("GetMedia viewer: {e}")).await;
        }
    };
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

    // The uploader holds what it cannot send yet, up to `buffer_bytes`; a fragment that finds
    // it full (and this one-fragment hand-over taken) is dropped.
    let (input, fragments) = mpsc::channel(1);
    let (stats_tx, stats) = watch::channel(UploadStats::default());
    let started = Instant::now();
    let upload = tokio::spawn(async move { uploader.run(fragments, stats_tx).await });
    let (made, dropped) = camera(sim, source, now, input, &stats, live).await;
    let outcome = upload.await;
    let stats = stats.borrow().clone();

    if !viewers.is_empty() || !hls.is_empty() {
        tokio::time::sleep(VIEWER_GRACE).await;
    }
    let _ = stop.send(true);
    let persisted = std::mem::take(&mut *persisted.lock().expect("not poisoned"));
    {
        let mut r = report.lock().await;
        r.fragments_made += made;
        r.fragments_dropped += dropped;
        r.fragments_persisted += persisted.len();
        r.reconnects += stats.reconnects;
        r.resent += stats.resent;
        r.found_stored += stats.found_stored;
        for (cause, n) in &stats.retries_by_cause {
            *r.retries_by_cause.entry(cause.clone()).or_default() += n;
        }
        r.persist_latencies
            .extend(persisted.iter().filter_map(|p| p.latency));
    }
    match outcome {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => failed(e.cause(), e.to_string()).await,
        Err(e) => failed("panic".into(), e.to_string()).await,
    }
    if !viewers.is_empty() {
        let mut seen = Vec::with_capacity(viewers.len());
        for viewer in viewers {
            seen.push(match viewer.await {
                Ok(result) => result,
                Err(e) => Err(DeviceError::Protocol(e.to_string())),
            });
        }
        let by_timecode = persisted
            .iter()
            .map(|p| (p.producer_ms as u64, p.at))
            .collect();
        tally_viewers(
            seen,
            index,
            started,
            &by_timecode,
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
        let by_number = persisted
            .iter()
            .filter_map(|p| Some((p.number.as_ref()?.as_str().to_owned(), p.at)))
            .collect();
        tally_hls(logs, index, &by_number, &mut *report.lock().await);
    }
}

/// The camera: one fragment every fragment duration, handed to the uploader when its last
/// frame is captured, with wall-clock producer timestamps. A fragment the uploader's queue has
/// no room for is dropped, as a camera without storage must. Returns (made, dropped).
async fn camera(
    sim: &Simulation,
    source: &Source,
    now: fn() -> Timestamp,
    input: mpsc::Sender<OutFragment>,
    stats: &watch::Receiver<UploadStats>,
    live: &Live,
) -> (usize, usize) {
    let writer = ProducerWriter::new(vec![source.track.clone()], 1_000_000);
    let header = writer.header();
    let frame_ms = 1000 / i64::from(sim.fps.max(1));
    let n = source.frames.len() as i64;
    let fragment_ms = n * frame_ms;
    let (start_ms, started) = (now().as_millis(), Instant::now());
    let (mut made, mut dropped, mut reconnects) = (0, 0, 0);
    for k in 0.. {
        let offset = k * fragment_ms;
        if Duration::from_millis(offset as u64) >= sim.duration {
            break;
        }
        let last_frame = Duration::from_millis((offset + (n - 1) * frame_ms) as u64);
        tokio::time::sleep_until((started + last_frame).into()).await;
        let first = start_ms + offset;
        let frames: Vec<Frame> = (0..n)
            .map(|j| Frame {
                track: source.track.number,
                timecode: first + j * frame_ms,
                key: j == 0,
                data: source.frames[j as usize].clone(),
            })
            .collect();
        made += 1;
        let fragment = OutFragment {
            header: header.clone(),
            timecode: first as u64,
            producer_ms: first,
            duration_ms: fragment_ms as u64,
            parts: writer.cluster(&frames),
            frames: frames.len(),
        };
        match input.try_send(fragment) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                dropped += 1;
                live.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The upload failed: it says why.
            Err(mpsc::error::TrySendError::Closed(_)) => break,
        }
        let now_reconnects = stats.borrow().reconnects;
        live.reconnects
            .fetch_add(now_reconnects - reconnects, Ordering::Relaxed);
        reconnects = now_reconnects;
    }
    (made, dropped)
}

/// How many of the HLS viewers play stream `index`.
fn hls_viewers_of(sim: &Simulation, index: usize) -> usize {
    let streams = sim.streams.max(1);
    sim.hls_viewers / streams + usize::from(index < sim.hls_viewers % streams)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_gop_is_one_idr_picture_then_p_pictures() {
        let gop = Gop::embedded();
        assert_eq!(gop.track.codec_id, "V_MPEG4/ISO/AVC");
        assert_eq!((gop.track.width, gop.track.height), (Some(640), Some(360)));
        assert_eq!(gop.frames.len(), 250, "10 s at 25 fps");
        let slice_types: Vec<u8> = gop
            .frames
            .iter()
            .map(|f| {
                nal_types(f)
                    .into_iter()
                    .find(|t| *t == 1 || *t == 5)
                    .unwrap()
            })
            .collect();
        assert_eq!(slice_types[0], 5, "an IDR slice first");
        assert!(
            slice_types[1..].iter().all(|t| *t == 1),
            "then non-IDR slices"
        );
    }

    #[test]
    fn padding_appends_one_filler_nal_unit_to_the_size() {
        let gop = Gop::embedded();
        let frame = &gop.frames[1];
        let padded = pad(frame, 10_000);
        assert_eq!(padded.len(), 10_000);
        assert_eq!(&padded[..frame.len()], &frame[..]);
        assert_eq!(*nal_types(&padded).last().unwrap(), 12);
        assert_eq!(padded[padded.len() - 1], 0x80, "rbsp trailing bits");
        // No room for a filler NAL unit (6 bytes at least): unchanged.
        assert_eq!(pad(frame, frame.len() + 5), *frame);
        assert_eq!(pad(frame, frame.len() + 6).len(), frame.len() + 6);
        assert_eq!(pad(frame, 10), *frame);
    }

    /// The NAL unit types of a frame of 4-byte-length-prefixed NAL units.
    fn nal_types(frame: &[u8]) -> Vec<u8> {
        kinescope_media::codec::nal::length_prefixed_nal_units(frame, 4)
            .unwrap()
            .map(|n| n.unwrap()[0] & 0x1f)
            .collect()
    }

    #[test]
    fn hls_viewers_are_spread_over_the_streams() {
        let sim = Simulation {
            endpoint: "http://127.0.0.1:1".into(),
            ca: None,
            signer: Signer {
                access_key: "AK".into(),
                secret: "SK".into(),
                region: "us-west-2".into(),
            },
            streams: 3,
            prefix: "s".into(),
            bitrate_bps: 1,
            fragment: Duration::from_secs(1),
            fps: 1,
            duration: Duration::from_secs(1),
            buffer: Duration::from_secs(1),
            give_up_after: Duration::from_secs(1),
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
