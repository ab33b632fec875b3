//! The PutMedia session as a sans-IO state machine (spec §3, corrections §0.1–§0.5): request
//! body chunks in, acknowledgements and fragments to persist out, in the order the producer
//! must see them. No tokio, no clock: the shell passes the arrival time with each chunk and
//! the fragment-number source at construction.

use std::collections::VecDeque;

use bytes::Bytes;
use kinescope_api::ack::{Ack, AckError, AckEvent};
use kinescope_api::{FragmentNumber, Timestamp};
use kinescope_media::mkv::{Event, Limits, MkvError, MkvReader, TrackHeader};

/// `x-amzn-fragment-timecode-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimecodeType {
    /// Cluster timecodes are epoch time.
    Absolute,
    /// Cluster timecodes count from `x-amzn-producer-start-timestamp`.
    Relative,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub timecode_type: TimecodeType,
    /// Required for `Relative`.
    pub start_timestamp: Option<Timestamp>,
    pub limits: Limits,
    /// User metadata tags per fragment (spec §3.4: 10).
    pub max_user_tags: usize,
}

/// A complete fragment for the shell to persist.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedFragment {
    pub number: FragmentNumber,
    /// The Cluster Timecode, as ACKs echo it.
    pub timecode: u64,
    pub producer_timestamp: Timestamp,
    pub server_timestamp: Timestamp,
    pub duration_ms: u64,
    pub header_version: u32,
    /// The Cluster's bytes not already given in [`Output::FragmentData`].
    pub bytes: Vec<Bytes>,
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Record this header before any fragment of its version.
    Header(TrackHeader),
    /// Send this ACK now.
    Ack(Ack),
    /// Bytes of the fragment being received, to store while it arrives.
    FragmentData {
        number: FragmentNumber,
        bytes: Vec<Bytes>,
    },
    /// The fragment is complete (its last bytes are here): make it durable; then ACK PERSISTED
    /// (or ERROR 5001).
    Persist(ReceivedFragment),
}

#[derive(Debug)]
struct Current {
    number: FragmentNumber,
    timecode: u64,
    server_timestamp: Timestamp,
    producer_timestamp: Timestamp,
}

/// Bytes of a fragment gathered before they are handed out to be stored.
const WRITE_BATCH: u64 = 1024 * 1024;

/// Latest producer timestamp accepted: 9999-12-31T23:59:59.999Z.
const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

pub struct Session {
    config: SessionConfig,
    reader: MkvReader,
    next_number: Box<dyn FnMut(Timestamp) -> FragmentNumber + Send>,
    /// (end offset, arrival time) of pushed chunks not yet fully consumed.
    arrivals: VecDeque<(u64, Timestamp)>,
    pushed: u64,
    /// `pushed` when fragment bytes were last handed out.
    handed_out: u64,
    header: Option<TrackHeader>,
    current: Option<Current>,
    last_producer_timestamp: Option<Timestamp>,
    user_tags: usize,
    outputs: VecDeque<Output>,
    failed: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("pushed", &self.pushed)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// `previous` is the producer timestamp of the stream's latest fragment before this
    /// session, if any: a fragment before it is refused (4004) on a new connection too.
    pub fn new(
        config: SessionConfig,
        previous: Option<Timestamp>,
        next_number: Box<dyn FnMut(Timestamp) -> FragmentNumber + Send>,
    ) -> Self {
        Self {
            reader: MkvReader::new(config.limits),
            last_producer_timestamp: previous,
            config,
            next_number,
            arrivals: VecDeque::new(),
            pushed: 0,
            handed_out: 0,
            header: None,
            current: None,
            user_tags: 0,
            outputs: VecDeque::new(),
            failed: false,
        }
    }

    /// Body bytes that arrived at `now`.
    pub fn push(&mut self, chunk: Bytes, now: Timestamp) {
        if self.failed || chunk.is_empty() {
            return;
        }
        self.pushed += chunk.len() as u64;
        self.arrivals.push_back((self.pushed, now));
        self.reader.push(chunk);
    }

    /// The request body ended.
    pub fn finish(&mut self) {
        self.reader.finish();
    }

    /// True once an ERROR ACK was produced: the shell stops reading and ends the response.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// True between a fragment's BUFFERING and its RECEIVED.
    pub fn in_fragment(&self) -> bool {
        self.current.is_some()
    }

    /// The producer timestamp of the latest fragment started (or the one given at start).
    pub fn last_producer_timestamp(&self) -> Option<Timestamp> {
        self.last_producer_timestamp
    }

    /// The next thing to do, or `None` until more input.
    pub fn poll(&mut self) -> Option<Output> {
        loop {
            if let Some(o) = self.outputs.pop_front() {
                return Some(o);
            }
            if self.failed {
                return None;
            }
            match self.reader.poll() {
                Some(Ok(event)) => self.on_event(event),
                Some(Err(e)) => self.fail(mkv_error(&e)),
                None => {
                    let number = self.current.as_ref()?.number.clone();
                    if self.pushed - self.handed_out < WRITE_BATCH {
                        return None;
                    }
                    self.handed_out = self.pushed;
                    let bytes = self.reader.take_fragment_bytes();
                    return (!bytes.is_empty()).then_some(Output::FragmentData { number, bytes });
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::TrackHeader(h) => {
                self.header = Some(h.clone());
                self.outputs.push_back(Output::Header(h));
            }
            Event::FragmentStart { timecode, offset } => self.start(timecode, offset),
            Event::Fragment(f) => {
                let Some(c) = self.current.take() else {
                    return self.fail(AckError::InternalError);
                };
                let header = self.header.as_ref().expect("a fragment follows its header");
                if let Some(t) = header
                    .tracks
                    .iter()
                    .find(|t| !f.frames.contains_key(&t.number))
                {
                    tracing::debug!(track = t.number, "fragment lacks a track");
                    self.current = Some(c);
                    return self.fail(AckError::FramesMissingForTrack);
                }
                let fragment = (c.timecode, c.number.clone());
                self.outputs.push_back(Output::Ack(Ack::fragment(
                    AckEvent::Received,
                    fragment.0,
                    fragment.1,
                )));
                self.outputs.push_back(Output::Persist(ReceivedFragment {
                    number: c.number,
                    timecode: c.timecode,
                    producer_timestamp: c.producer_timestamp,
                    server_timestamp: c.server_timestamp,
                    duration_ms: f.duration_ms(),
                    header_version: f.header_version,
                    bytes: f.bytes,
                }));
            }
            Event::Tags { tags, .. } => {
                self.user_tags += tags.iter().filter(|t| !t.name.starts_with("AWS_")).count();
                if self.user_tags > self.config.max_user_tags {
                    self.fail(AckError::FragmentMetadataLimitReached);
                }
            }
        }
    }

    fn start(&mut self, timecode: u64, offset: u64) {
        while self.arrivals.len() > 1 && self.arrivals[0].0 <= offset {
            self.arrivals.pop_front();
        }
        let server_timestamp = self
            .arrivals
            .front()
            .map_or(Timestamp::from_millis(0), |a| a.1);
        let scale = self.header.as_ref().map_or(1_000_000, |h| h.timecode_scale);
        let offset_ms = i64::try_from(u128::from(timecode) * u128::from(scale) / 1_000_000).ok();
        let base = match self.config.timecode_type {
            TimecodeType::Absolute => Some(0),
            TimecodeType::Relative => self.config.start_timestamp.map(Timestamp::as_millis),
        };
        let producer = base
            .zip(offset_ms)
            .and_then(|(b, o)| b.checked_add(o))
            .filter(|ms| (0..=MAX_TIMESTAMP_MS).contains(ms));
        let Some(producer) = producer.map(Timestamp::from_millis) else {
            return self.fail(AckError::InvalidProducerTimestamp);
        };
        let number = (self.next_number)(server_timestamp);
        self.current = Some(Current {
            number: number.clone(),
            timecode,
            server_timestamp,
            producer_timestamp: producer,
        });
        if self
            .last_producer_timestamp
            .is_some_and(|last| producer < last)
        {
            return self.fail(AckError::FragmentTimecodeLesserThanPrevious);
        }
        self.last_producer_timestamp = Some(producer);
        self.user_tags = 0;
        self.outputs.push_back(Output::Ack(Ack::fragment(
            AckEvent::Buffering,
            timecode,
            number,
        )));
    }

    /// Queues the ERROR ACK (about the current fragment, if any) and stops.
    fn fail(&mut self, error: AckError) {
        let fragment = self.current.take().map(|c| (c.timecode, c.number));
        self.outputs
            .push_back(Output::Ack(Ack::error(error, fragment)));
        self.failed = true;
    }
}

/// The PutMedia error of an MKV problem (spec §3.2).
fn mkv_error(e: &MkvError) -> AckError {
    match e {
        MkvError::FragmentTooLarge { .. } => AckError::MaxFragmentSizeReached,
        MkvError::FragmentTooLong { .. } => AckError::MaxFragmentDurationReached,
        MkvError::TooManyTracks { .. } => AckError::MoreThanAllowedTracksFound,
        MkvError::UnknownTrack { .. } => AckError::TrackNumberMismatch,
        _ => AckError::InvalidMkvData,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture(name: &str) -> Bytes {
        Bytes::from(
            std::fs::read(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../testdata/mkv")
                    .join(name),
            )
            .unwrap(),
        )
    }

    fn session(timecode_type: TimecodeType, start: Option<i64>) -> Session {
        let mut n = 0u64;
        Session::new(
            SessionConfig {
                timecode_type,
                start_timestamp: start.map(Timestamp::from_millis),
                limits: Limits::default(),
                max_user_tags: 10,
            },
            None,
            Box::new(move |_| {
                n += 1;
                FragmentNumber::parse(&format!("{n:020}")).unwrap()
            }),
        )
    }

    /// A RELATIVE session starting at t=1000 ms whose fragments are all numbered 7.
    fn relative_from_1000(limits: Limits, previous: Option<Timestamp>) -> Session {
        let config = SessionConfig {
            timecode_type: TimecodeType::Relative,
            start_timestamp: Some(Timestamp::from_millis(1000)),
            limits,
            max_user_tags: 10,
        };
        Session::new(
            config,
            previous,
            Box::new(|_| FragmentNumber::parse("7").unwrap()),
        )
    }

    /// Pushes `data` in chunks, one millisecond apart from t=1000; returns every output.
    /// The last ACK among `out`.
    fn last_ack(out: &[Output]) -> Ack {
        out.iter()
            .rev()
            .find_map(|o| match o {
                Output::Ack(a) => Some(a.clone()),
                _ => None,
            })
            .expect("an ACK")
    }

    fn run(s: &mut Session, data: &Bytes, chunk: usize) -> Vec<Output> {
        let mut out = Vec::new();
        for (i, start) in (0..data.len()).step_by(chunk).enumerate() {
            s.push(
                data.slice(start..(start + chunk).min(data.len())),
                Timestamp::from_millis(1000 + i as i64),
            );
            while let Some(o) = s.poll() {
                out.push(o);
            }
        }
        s.finish();
        while let Some(o) = s.poll() {
            out.push(o);
        }
        out
    }

    fn acks(out: &[Output]) -> Vec<String> {
        out.iter()
            .filter_map(|o| match o {
                Output::Ack(a) => Some(format!(
                    "{} {}",
                    a.event.as_str(),
                    a.fragment
                        .as_ref()
                        .map_or(String::new(), |f| f.0.to_string())
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn relative_upload_acks_every_cluster_in_order() {
        let mut s = session(TimecodeType::Relative, Some(1_700_000_000_000));
        let out = run(
            &mut s,
            &fixture("producer-c-1.6.4_h264_aac_putmedia.mkv"),
            65536,
        );
        assert!(matches!(out[0], Output::Header(_)));
        assert_eq!(
            acks(&out),
            [
                "BUFFERING 0",
                "RECEIVED 0",
                "BUFFERING 1800",
                "RECEIVED 1800",
                "BUFFERING 3600",
                "RECEIVED 3600"
            ]
        );
        let persisted: Vec<&ReceivedFragment> = out
            .iter()
            .filter_map(|o| {
                if let Output::Persist(f) = o {
                    Some(f)
                } else {
                    None
                }
            })
            .collect();
        let producer: Vec<i64> = persisted
            .iter()
            .map(|f| f.producer_timestamp.as_millis())
            .collect();
        assert_eq!(
            producer,
            [1_700_000_000_000, 1_700_000_001_800, 1_700_000_003_600]
        );
        assert!(persisted.windows(2).all(|w| w[0].number < w[1].number));
        assert!(
            persisted
                .windows(2)
                .all(|w| w[0].server_timestamp < w[1].server_timestamp)
        );
        // The server timestamp is when the cluster's first byte arrived (chunk 0 holds it).
        assert_eq!(persisted[0].server_timestamp.as_millis(), 1000);
        assert!(
            (1700..=1900).contains(&persisted[0].duration_ms),
            "{}",
            persisted[0].duration_ms
        );
        assert!(!s.failed());
    }

    #[test]
    fn absolute_upload_uses_cluster_timecodes_as_epoch() {
        let mut s = session(TimecodeType::Absolute, None);
        let out = run(&mut s, &fixture("producer-c-1.6.4_h264_putmedia.mkv"), 4096);
        let persisted: Vec<&ReceivedFragment> = out
            .iter()
            .filter_map(|o| {
                if let Output::Persist(f) = o {
                    Some(f)
                } else {
                    None
                }
            })
            .collect();
        assert!(!persisted.is_empty());
        for f in persisted {
            assert_eq!(f.producer_timestamp.as_millis(), f.timecode as i64);
            assert!(f.producer_timestamp.as_millis() > 1_700_000_000_000);
        }
    }

    #[test]
    fn errors_carry_their_ids_and_stop_the_session() {
        // Garbage: 4006 with no fragment.
        let mut s = session(TimecodeType::Relative, Some(0));
        let out = run(
            &mut s,
            &Bytes::from_static(b"not a matroska stream at all"),
            8,
        );
        assert_eq!(
            out,
            [Output::Ack(Ack::error(AckError::InvalidMkvData, None))]
        );
        assert!(s.failed());

        // Relative without a start timestamp: 4007.
        let mut s = session(TimecodeType::Relative, None);
        let out = run(&mut s, &fixture("kvssink-3.6.0_h264_putmedia.mkv"), 65536);
        assert!(matches!(
            out.last(),
            Some(Output::Ack(Ack {
                error: Some(AckError::InvalidProducerTimestamp),
                ..
            }))
        ));

        // A stream whose last fragment is later than this upload's first: 4004, about that fragment.
        let mut s = relative_from_1000(Limits::default(), Some(Timestamp::from_millis(5000)));
        let out = run(
            &mut s,
            &fixture("producer-c-1.6.4_h264_aac_putmedia.mkv"),
            65536,
        );
        let last = last_ack(&out);
        assert_eq!(
            last.error,
            Some(AckError::FragmentTimecodeLesserThanPrevious)
        );
        assert_eq!(last.fragment.map(|f| f.0), Some(0));
        assert!(!out.iter().any(|o| matches!(o, Output::Persist(_))));

        // An oversize fragment: 4001.
        let limits = Limits {
            max_fragment_size: 10_000,
            ..Limits::default()
        };
        let mut s = relative_from_1000(limits, None);
        let out = run(&mut s, &fixture("kvssink-3.6.0_h264_putmedia.mkv"), 65536);
        let last = last_ack(&out);
        assert_eq!(last.error.map(AckError::id), Some(4001));
        assert_eq!(last.fragment.map(|f| f.0), Some(1_795_770_758_570));
    }

    #[test]
    fn the_last_fragment_completes_at_the_end_of_fragment_tag() {
        // Everything but the final chunk of the upload: the last fragment is RECEIVED once the
        // end-of-fragment tag arrives, before the body ends (the SDK waits for it).
        let data = fixture("producer-c-1.6.4_h264_aac_putmedia.mkv");
        let mut s = session(TimecodeType::Relative, Some(0));
        s.push(data.clone(), Timestamp::from_millis(1));
        let mut out = Vec::new();
        while let Some(o) = s.poll() {
            out.push(o);
        }
        assert_eq!(acks(&out).last().map(String::as_str), Some("RECEIVED 3600"));
    }
}
