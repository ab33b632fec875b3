//! The PutMedia session as a sans-IO state machine (spec §3, corrections §0.1–§0.5): request
//! body chunks in, acknowledgements and fragments to persist out, in the order the producer
//! must see them. No tokio, no clock: the shell passes the arrival time with each chunk and
//! the fragment-number source at construction.
//!
//! A fragment is a Cluster and the producer's metadata after it (spec §3.5, design/0009): the
//! Tags elements that follow an unknown-size Cluster (as KVS producers send it) belong to its
//! fragment, which is complete at an end-of-fragment tag, at the next Cluster or document, or
//! at the end of the body. A Cluster of known size is complete at its last byte.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use kinescope_api::ack::{Ack, AckError, AckEvent};
use kinescope_api::{FragmentNumber, Timestamp};
use kinescope_media::mkv::{
    Event, Limits, MetadataTag, MkvError, MkvReader, SimpleTag, TrackHeader,
};

/// Longest metadata name, in bytes (spec §3.4).
const MAX_METADATA_NAME: usize = 128;
/// Longest metadata value, in bytes (spec §3.4).
const MAX_METADATA_VALUE: usize = 256;

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
    /// A fragment whose producer timestamp is further ahead of its server timestamp than this
    /// is refused (4007): stored, it would refuse every later fragment stamped with the real
    /// time (4004).
    pub max_clock_ahead: Duration,
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
    /// The user tags the producer sent after the Cluster, in order.
    pub metadata: Vec<MetadataTag>,
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
    /// The fragment between its BUFFERING and its RECEIVED.
    current: Option<Current>,
    /// The current fragment once its unknown-size Cluster has ended: its metadata may follow.
    closing: Option<ReceivedFragment>,
    last_producer_timestamp: Option<Timestamp>,
    outputs: VecDeque<Output>,
    finished: bool,
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
            closing: None,
            outputs: VecDeque::new(),
            finished: false,
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
        self.finished = true;
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
                    if self.finished && self.closing.is_some() {
                        self.complete_closing();
                        continue;
                    }
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
                self.complete_closing();
                self.header = Some(h.clone());
                self.outputs.push_back(Output::Header(h));
            }
            Event::FragmentStart { timecode, offset } => {
                self.complete_closing();
                self.start(timecode, offset);
            }
            Event::Fragment(f) => {
                let Some(c) = &self.current else {
                    return self.fail(AckError::InternalError);
                };
                let header = self.header.as_ref().expect("a fragment follows its header");
                if let Some(t) = header
                    .tracks
                    .iter()
                    .find(|t| !f.frames.contains_key(&t.number))
                {
                    tracing::debug!(track = t.number, "fragment lacks a track");
                    return self.fail(AckError::FramesMissingForTrack);
                }
                let fragment = ReceivedFragment {
                    number: c.number.clone(),
                    timecode: c.timecode,
                    producer_timestamp: c.producer_timestamp,
                    server_timestamp: c.server_timestamp,
                    duration_ms: f.duration_ms(),
                    header_version: f.header_version,
                    metadata: Vec::new(),
                    bytes: f.bytes,
                };
                if f.unknown_size {
                    self.closing = Some(fragment);
                } else {
                    self.complete(fragment);
                }
            }
            Event::Tags {
                tags,
                end_of_fragment,
                in_header,
                ..
            } => {
                // Tags before a document's first Cluster are part of its header (and the
                // previous document's last fragment is over); after a complete fragment, they
                // belong to none.
                if in_header {
                    return self.complete_closing();
                }
                let Some(closing) = &mut self.closing else {
                    return;
                };
                for t in tags.iter().filter(|t| !t.name.starts_with("AWS_")) {
                    if closing.metadata.len() == self.config.max_user_tags || !within_limits(t) {
                        tracing::debug!(name = %t.name, "fragment metadata over the limits");
                        return self.fail(AckError::FragmentMetadataLimitReached);
                    }
                    closing.metadata.push(MetadataTag {
                        name: t.name.clone(),
                        value: t.value.clone(),
                    });
                }
                if end_of_fragment {
                    self.complete_closing();
                }
            }
        }
    }

    /// ACKs the current fragment RECEIVED and hands it out to be persisted.
    fn complete(&mut self, fragment: ReceivedFragment) {
        self.current = None;
        self.outputs.push_back(Output::Ack(Ack::fragment(
            AckEvent::Received,
            fragment.timecode,
            fragment.number.clone(),
        )));
        self.outputs.push_back(Output::Persist(fragment));
    }

    /// Completes the fragment whose metadata was being gathered, if any.
    fn complete_closing(&mut self) {
        if let Some(fragment) = self.closing.take() {
            self.complete(fragment);
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
        let ahead = i64::try_from(self.config.max_clock_ahead.as_millis()).unwrap_or(i64::MAX);
        let latest = server_timestamp
            .as_millis()
            .saturating_add(ahead)
            .min(MAX_TIMESTAMP_MS);
        let producer = base
            .zip(offset_ms)
            .and_then(|(b, o)| b.checked_add(o))
            .filter(|ms| (0..=latest).contains(ms));
        let Some(producer) = producer.map(Timestamp::from_millis) else {
            tracing::debug!(
                timecode,
                server_timestamp = server_timestamp.as_millis(),
                "producer timestamp out of range or too far ahead of the server clock"
            );
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
        self.outputs.push_back(Output::Ack(Ack::fragment(
            AckEvent::Buffering,
            timecode,
            number,
        )));
    }

    /// Queues the ERROR ACK (about the current fragment, if any) and stops.
    fn fail(&mut self, error: AckError) {
        self.closing = None;
        let fragment = self.current.take().map(|c| (c.timecode, c.number));
        self.outputs
            .push_back(Output::Ack(Ack::error(error, fragment)));
        self.failed = true;
    }
}

/// A user tag within KVS's name and value lengths (spec §3.4).
fn within_limits(t: &SimpleTag) -> bool {
    t.name.len() <= MAX_METADATA_NAME && t.value.len() <= MAX_METADATA_VALUE
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
    use kinescope_media::mkv::ebml::{write_id, write_size_len};
    use kinescope_media::mkv::ids;
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
                // These tests' clock starts in 1970: any producer time is allowed.
                max_clock_ahead: Duration::MAX,
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
            max_clock_ahead: Duration::MAX,
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

    /// The fragments handed out to be persisted.
    fn persisted(out: &[Output]) -> Vec<&ReceivedFragment> {
        out.iter()
            .filter_map(|o| match o {
                Output::Persist(f) => Some(f),
                _ => None,
            })
            .collect()
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
        let persisted = persisted(&out);
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
        let persisted = persisted(&out);
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

    /// One metadata item as the KVS C producer uploads it: a Tags element of its own.
    fn tags_element(name: &str, value: &str) -> Vec<u8> {
        let element = |id: u32, body: &[u8]| {
            let mut out = Vec::new();
            write_id(&mut out, id);
            write_size_len(&mut out, body.len() as u64, 8);
            out.extend_from_slice(body);
            out
        };
        let simple = [
            element(ids::TAG_NAME, name.as_bytes()),
            element(ids::TAG_STRING, value.as_bytes()),
        ]
        .concat();
        element(
            ids::TAGS,
            &element(ids::TAG, &element(ids::SIMPLE_TAG, &simple)),
        )
    }

    /// The C producer's upload (nine user tags after each Cluster) with more Tags elements
    /// before the first Cluster's own.
    fn with_extra_tags(extra: &[(&str, &str)]) -> Bytes {
        let data = fixture("producer-c-1.6.4_h264_putmedia.mkv");
        let mut r = MkvReader::new(Limits::default());
        r.push(data.clone());
        r.finish();
        let at = std::iter::from_fn(|| r.poll())
            .find_map(|e| match e.unwrap() {
                Event::Tags { offset, .. } => Some(offset as usize),
                _ => None,
            })
            .unwrap();
        let mut out = data[..at].to_vec();
        for (name, value) in extra {
            out.extend(tags_element(name, value));
        }
        out.extend_from_slice(&data[at..]);
        Bytes::from(out)
    }

    #[test]
    fn fragment_metadata_is_kept_with_its_fragment() {
        let data = fixture("producer-c-1.6.4_h264_putmedia.mkv");
        for chunk in [1000, 65536, data.len()] {
            let mut s = session(TimecodeType::Absolute, None);
            let out = run(&mut s, &data, chunk);
            let fragments = persisted(&out);
            assert_eq!(fragments.len(), 3);
            // The sample's TEST_KEY_1..9 after each Cluster; its end-of-fragment tag is not
            // metadata.
            for (f, first) in fragments.iter().zip([1, 46, 91]) {
                let want: Vec<MetadataTag> = (0..9)
                    .map(|i| MetadataTag {
                        name: format!("TEST_KEY_{}", i + 1),
                        value: format!("TEST_VALUE_{}", first + i),
                    })
                    .collect();
                assert_eq!(f.metadata, want, "chunks of {chunk}");
            }
            let events: Vec<&str> = out
                .iter()
                .filter_map(|o| match o {
                    Output::Ack(a) => Some(a.event.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(events, ["BUFFERING", "RECEIVED"].repeat(3));
        }
        // The end-of-fragment tag completes the last fragment before the body ends.
        let mut s = session(TimecodeType::Absolute, None);
        s.push(data, Timestamp::from_millis(1));
        let out: Vec<Output> = std::iter::from_fn(|| s.poll()).collect();
        assert_eq!(persisted(&out).len(), 3);
    }

    #[test]
    fn a_new_documents_header_tags_are_not_the_last_fragments_metadata() {
        // The C producer's upload without its final end-of-fragment tag, then the same upload
        // again as a second MKV document whose header carries a Tags element.
        let data = fixture("producer-c-1.6.4_h264_putmedia.mkv");
        let mut r = MkvReader::new(Limits::default());
        r.push(data.clone());
        r.finish();
        let events: Vec<Event> = std::iter::from_fn(|| r.poll())
            .map(Result::unwrap)
            .collect();
        let first_cluster = events
            .iter()
            .find_map(|e| match e {
                Event::FragmentStart { offset, .. } => Some(*offset as usize),
                _ => None,
            })
            .unwrap();
        let last_end = events
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::Tags {
                    end_of_fragment: true,
                    offset,
                    ..
                } => Some(*offset as usize),
                _ => None,
            })
            .unwrap();
        let upload = [
            &data[..last_end],
            &data[..first_cluster],
            &tags_element("TITLE", "header")[..],
            &data[first_cluster..],
        ]
        .concat();
        let out = run(
            &mut session(TimecodeType::Absolute, None),
            &Bytes::from(upload),
            65536,
        );
        let fragments = persisted(&out);
        assert_eq!(fragments.len(), 3);
        assert_eq!(fragments[2].metadata.len(), 9);
        assert!(fragments[2].metadata.iter().all(|t| t.name != "TITLE"));
        // (The second document goes back in time: 4004.)
        assert_eq!(last_ack(&out).error.map(AckError::id), Some(4004));
    }

    #[test]
    fn fragment_metadata_beyond_the_kvs_limits_is_refused_with_4009() {
        let long = |n: usize| "x".repeat(n);
        // A tenth item, a 128-byte name and a 256-byte value are within the limits; `AWS_`
        // names are KVS's own, neither kept nor counted.
        let (name, value) = (long(128), long(256));
        let data = with_extra_tags(&[(&name, &value), ("AWS_KINESISVIDEO_NOTIFICATION", "motion")]);
        let out = run(&mut session(TimecodeType::Absolute, None), &data, 65536);
        let fragments = persisted(&out);
        assert_eq!(fragments.len(), 3);
        assert_eq!(fragments[0].metadata.len(), 10);
        assert_eq!(
            (
                &fragments[0].metadata[0].name,
                &fragments[0].metadata[0].value
            ),
            (&name, &value)
        );
        let first = fragments[0].timecode;

        for extra in [
            vec![("TEST_KEY_10", "a"), ("TEST_KEY_11", "b")],
            vec![(long(129).as_str(), "v")],
            vec![("k", long(257).as_str())],
        ] {
            let data = with_extra_tags(&extra);
            let mut s = session(TimecodeType::Absolute, None);
            let out = run(&mut s, &data, 65536);
            let last = last_ack(&out);
            assert_eq!(last.error.map(AckError::id), Some(4009), "{extra:?}");
            assert_eq!(
                last.fragment.map(|f| f.0),
                Some(first),
                "about the fragment"
            );
            assert!(persisted(&out).is_empty(), "{extra:?}");
            assert!(s.failed());
        }
    }

    #[test]
    fn producer_timestamps_too_far_ahead_of_the_server_clock_are_refused_with_4007() {
        let now = Timestamp::from_millis(1_700_000_000_000);
        // RELATIVE, Clusters at 0, 1.8 s and 3.6 s; every byte arrives at `now`.
        let data = fixture("producer-c-1.6.4_h264_aac_putmedia.mkv");
        let upload = |start: i64, previous: Option<Timestamp>| {
            let config = SessionConfig {
                timecode_type: TimecodeType::Relative,
                start_timestamp: Some(Timestamp::from_millis(start)),
                limits: Limits::default(),
                max_user_tags: 10,
                max_clock_ahead: Duration::from_secs(300),
            };
            let mut n = 0u64;
            let mut s = Session::new(
                config,
                previous,
                Box::new(move |_| {
                    n += 1;
                    FragmentNumber::parse(&format!("{n:020}")).unwrap()
                }),
            );
            s.push(data.clone(), now);
            s.finish();
            let out: Vec<Output> = std::iter::from_fn(|| s.poll()).collect();
            (out, s.last_producer_timestamp())
        };
        // Stamped in 2100: refused before any fragment, and nothing recorded for the stream.
        let (out, recorded) = upload(4_102_444_800_000, None);
        let error = last_ack(&out);
        assert_eq!(error.error, Some(AckError::InvalidProducerTimestamp));
        assert_eq!(error.fragment, None);
        assert!(persisted(&out).is_empty());
        assert_eq!(recorded, None);
        // The stream stays usable: the next upload, stamped with the real time, is stored.
        let (out, _) = upload(now.as_millis(), recorded);
        assert_eq!(persisted(&out).len(), 3);
        assert!(!acks(&out).iter().any(|a| a.starts_with("ERROR")));
        // The margin is inclusive: the last fragment may be exactly 300 s ahead, not 1 ms more.
        let edge = now.as_millis() + 300_000 - 3600;
        assert_eq!(persisted(&upload(edge, None).0).len(), 3);
        let (out, _) = upload(edge + 1, None);
        assert_eq!(persisted(&out).len(), 2);
        assert_eq!(
            last_ack(&out).error,
            Some(AckError::InvalidProducerTimestamp)
        );
    }
}
