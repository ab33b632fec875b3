//! `kinescope simulate`: N synthetic cameras uploading at once, for load tests (DESIGN.md
//! convention 11). Each device makes its stream (if needed), then sends one known-size Cluster
//! per fragment duration, its frames paced in real time, and measures the time from the last
//! byte of each fragment to its PERSISTED ACK. Optionally each stream has live viewers: GetMedia
//! readers (StartSelector NOW, spec §4) opened before the upload starts, which parse what they
//! receive and measure, per fragment, the time from its PERSISTED ACK at the device to its
//! Cluster arriving at the viewer, and whether every fragment arrived exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kinescope_api::ack::AckEvent;
use kinescope_api::{StreamName, Timestamp};
use kinescope_media::mkv::{Event, Frame, Limits, MkvReader, ProducerWriter, Track, TrackType};
use tokio::sync::{Mutex, watch};

use crate::{DeviceError, Endpoint, MediaStream, PutMedia, PutMediaOptions, ReceivedAck};

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
        ..Track::default()
    };
    let (stop, stopped) = watch::channel(false);
    let viewers = start_viewers(endpoint, &stream, sim.viewers, now, &stopped).await?;
    let writer = ProducerWriter::new(vec![track], 1_000_000);
    let frame_bytes = (sim.bitrate_bps / 8 / u64::from(sim.fps)) as usize;
    let payload = Bytes::from(vec![0x42u8; frame_bytes]);
    let frame_ms = 1000 / i64::from(sim.fps);
    let frames_per_fragment = (sim.fragment.as_millis() as i64 / frame_ms).max(1);

    let mut persisted = HashMap::new();
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
                data: payload.clone(),
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
    if !viewers.is_empty() {
        tokio::time::sleep(VIEWER_GRACE).await;
        let _ = stop.send(true);
        let mut seen = Vec::with_capacity(viewers.len());
        for viewer in viewers {
            seen.push(match viewer.await {
                Ok(result) => result,
                Err(e) => Err(DeviceError::Protocol(e.to_string())),
            });
        }
        tally_viewers(seen, index, started, &persisted, &mut *report.lock().await);
    }
    Ok(())
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
                let ms = if at >= *p {
                    (at - *p).as_secs_f64() * 1e3
                } else {
                    -(*p - at).as_secs_f64() * 1e3
                };
                r.view_latencies_ms.push(ms);
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
    persisted: &mut HashMap<u64, Instant>,
    report: &Mutex<Report>,
) -> Result<(), DeviceError> {
    while let Ok(Some(ack)) = tokio::time::timeout(Duration::ZERO, upload.next_ack()).await {
        record(ack?, sent_at, persisted, report).await;
    }
    Ok(())
}

/// Notes a PERSISTED ACK (when, and how long after the fragment's last byte) or an ERROR.
async fn record(
    (ack, at): ReceivedAck,
    sent_at: &mut Vec<(u64, Instant)>,
    persisted: &mut HashMap<u64, Instant>,
    report: &Mutex<Report>,
) {
    match (ack.event, &ack.fragment) {
        (AckEvent::Persisted, Some((tc, _))) => {
            persisted.insert(*tc, at);
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
