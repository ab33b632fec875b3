//! Any MKV in, KVS fragments out (issue 14; spec §3.1, §3.4): whatever cluster layout a muxer
//! chose (ffmpeg's 5 s clusters, GStreamer's unknown-size clusters, one cluster per frame), the
//! frames are regrouped so that every fragment starts at a key frame of the video track — one
//! fragment per key-frame group, or per `fragment_ms` at the next key frame — and retimed to
//! ABSOLUTE producer timestamps from `start`. Sans-IO: push bytes, poll fragments; payloads are
//! never copied (they are slices of the pushed chunks, chained by the writer).
//!
//! A new EBML document in the input (a producer that restarted its muxer, new codec data)
//! ends the current fragment; the fragments after it carry the new header.
//!
//! Optionally every fragment carries the producer's metadata tags (spec §3.5,
//! [`Refragmenter::with_metadata`]). Tags in the input itself are not carried over: its
//! fragment boundaries are not the output's.

use std::collections::VecDeque;

use bytes::Bytes;
use kinescope_api::Timestamp;
use kinescope_media::mkv::{
    Event, Frame, Limits, MetadataTag, MkvError, MkvReader, ProducerWriter, Track, TrackType,
    cluster_frames, with_metadata,
};

/// A fragment ready to upload.
#[derive(Debug, Clone, PartialEq)]
pub struct OutFragment {
    /// The MKV header (EBML header, Segment, Info, Tracks) an upload of this fragment starts
    /// with: the same `Bytes` for every fragment of one input document.
    pub header: Bytes,
    /// Its Cluster's Timecode, absolute, in the header's TimecodeScale: what ACKs echo.
    pub timecode: u64,
    /// Its producer timestamp (the Cluster's Timecode in milliseconds): what ListFragments
    /// reports as `ProducerTimestamp`.
    pub producer_ms: i64,
    /// From its first frame to the next fragment's (or its last frame's, at the end).
    pub duration_ms: u64,
    /// The Cluster, in parts to send one after another.
    pub parts: Vec<Bytes>,
    pub frames: usize,
}

impl OutFragment {
    pub fn size(&self) -> u64 {
        self.parts.iter().map(|p| p.len() as u64).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RefragmentError {
    #[error("input is not MKV as expected: {0}")]
    Mkv(#[from] MkvError),
    #[error("a Cluster before any Tracks")]
    NoTracks,
}

/// The re-fragmenter. See the module documentation.
#[derive(Debug)]
pub struct Refragmenter {
    reader: MkvReader,
    start_ms: i64,
    fragment_ms: u64,
    /// The current document: its writer, header bytes, TimecodeScale, video track.
    doc: Option<Document>,
    /// Input timecode of the first frame of all: the origin of retiming.
    origin: Option<i64>,
    /// Frames of the fragment being gathered.
    group: Vec<Frame>,
    ready: VecDeque<OutFragment>,
    failed: Option<RefragmentError>,
    /// Sent with every fragment (spec §3.5).
    metadata: Vec<MetadataTag>,
}

#[derive(Debug)]
struct Document {
    writer: ProducerWriter,
    header: Bytes,
    scale: u64,
    video: Option<u64>,
}

impl Refragmenter {
    /// Fragments whose first frame is at `start`, then as far apart as the input's timestamps
    /// say; a new fragment at each video key frame at least `fragment_ms` after the current
    /// fragment's start (0: at every key frame).
    pub fn new(start: Timestamp, fragment_ms: u64) -> Self {
        Self {
            // Any muxer's clusters: long ones (audio-only files), big ones (4K key frames).
            reader: MkvReader::new(Limits {
                max_element_size: 16 << 20,
                max_fragment_size: 200_000_000,
                max_fragment_duration_ns: u64::MAX,
                max_tracks: 8,
            }),
            start_ms: start.as_millis(),
            fragment_ms,
            doc: None,
            origin: None,
            group: Vec::new(),
            ready: VecDeque::new(),
            failed: None,
            metadata: Vec::new(),
        }
    }

    /// Every fragment carries `metadata` (user tags, spec §3.5; KVS keeps at most 10 a
    /// fragment) after its Cluster, which GetMedia returns with it.
    pub fn with_metadata(mut self, metadata: Vec<MetadataTag>) -> Self {
        self.metadata = metadata;
        self
    }

    pub fn push(&mut self, chunk: Bytes) {
        self.reader.push(chunk);
        self.drain();
    }

    /// The input has ended: the last fragment is ready too.
    pub fn finish(&mut self) {
        self.reader.finish();
        self.drain();
        self.close_group(None);
    }

    /// The next fragment, an error (after which nothing more comes), or `None` until more
    /// input is pushed.
    pub fn poll(&mut self) -> Option<Result<OutFragment, RefragmentError>> {
        if let Some(f) = self.ready.pop_front() {
            return Some(Ok(f));
        }
        self.failed.take().map(Err)
    }

    fn drain(&mut self) {
        while self.failed.is_none() {
            match self.reader.poll() {
                None => break,
                Some(Err(e)) => self.failed = Some(e.into()),
                Some(Ok(event)) => {
                    if let Err(e) = self.on_event(event) {
                        self.failed = Some(e);
                    }
                }
            }
        }
    }

    /// Frames that follow belong to a new document with these tracks (what an MKV input's
    /// header says; for other inputs, say it before the first frame).
    pub fn set_tracks(&mut self, tracks: Vec<Track>, timecode_scale: u64) {
        self.close_group(None);
        let video = tracks
            .iter()
            .find(|t| t.track_type == TrackType::Video)
            .map(|t| t.number);
        let writer = ProducerWriter::new(tracks, timecode_scale);
        self.doc = Some(Document {
            header: writer.header(),
            writer,
            scale: timecode_scale.max(1),
            video,
        });
    }

    /// One frame of the current document, in decoding order (its timecode in the document's
    /// scale, from any origin): for inputs that are not MKV.
    pub fn push_frame(&mut self, frame: Frame) -> Result<(), RefragmentError> {
        let doc = self.doc.as_ref().ok_or(RefragmentError::NoTracks)?;
        let (scale, video) = (doc.scale, doc.video);
        let t = self.retime(frame.timecode, scale);
        let starts = frame.key && video.is_none_or(|v| frame.track == v);
        let first = self.group.first().map(|f| f.timecode);
        let elapsed_ms = first.map_or(0, |f| to_ms(t - f, scale));
        // A block's timecode is an i16 offset from its Cluster's: past 30 s a fragment ends
        // at any frame.
        let cut = first.is_some()
            && ((starts && elapsed_ms >= self.fragment_ms as i64) || elapsed_ms > 30_000);
        if cut {
            self.close_group(Some(t));
        }
        self.group.push(Frame {
            timecode: t,
            ..frame
        });
        Ok(())
    }

    /// The input of frames pushed with [`Refragmenter::push_frame`] has ended.
    pub fn finish_frames(&mut self) {
        self.close_group(None);
    }

    fn on_event(&mut self, event: Event) -> Result<(), RefragmentError> {
        match event {
            Event::TrackHeader(h) => self.set_tracks(h.tracks, h.timecode_scale),
            Event::Fragment(f) => {
                for frame in cluster_frames(&f.bytes)? {
                    self.push_frame(frame)?;
                }
            }
            Event::FragmentStart { .. } | Event::Tags { .. } => {}
        }
        Ok(())
    }

    /// An input timecode as an absolute output timecode (same scale), from `start`.
    fn retime(&mut self, timecode: i64, scale: u64) -> i64 {
        let origin = *self.origin.get_or_insert(timecode);
        let start = i128::from(self.start_ms) * 1_000_000 / i128::from(scale);
        i64::try_from(start + i128::from(timecode - origin)).unwrap_or(i64::MAX)
    }

    /// Ends the fragment being gathered; `next` is the timecode of the frame after it.
    fn close_group(&mut self, next: Option<i64>) {
        let Some(doc) = &self.doc else {
            return;
        };
        if self.group.is_empty() {
            return;
        }
        let frames = std::mem::take(&mut self.group);
        let first = frames[0].timecode;
        let last = frames.iter().map(|f| f.timecode).max().unwrap_or(first);
        self.ready.push_back(OutFragment {
            header: doc.header.clone(),
            timecode: first.max(0) as u64,
            producer_ms: to_ms(first, doc.scale),
            duration_ms: to_ms(next.unwrap_or(last) - first, doc.scale).max(0) as u64,
            parts: with_metadata(doc.writer.cluster(&frames), &self.metadata),
            frames: frames.len(),
        });
    }
}

/// The span of an MKV file's clusters in milliseconds — from the first Cluster's Timecode to
/// the last one's — from its first and last bytes only (`head`: enough for its Tracks and first
/// Cluster; `tail`: enough to hold the start of its last Cluster), so that a big file need not
/// be read twice before it is uploaded. `None` if either end does not show it.
pub fn cluster_span_ms(head: &[u8], tail: &[u8]) -> Option<i64> {
    let mut reader = MkvReader::new(Limits {
        max_fragment_size: u64::MAX,
        max_fragment_duration_ns: u64::MAX,
        ..Limits::default()
    });
    reader.push(Bytes::copy_from_slice(head));
    let (mut scale, mut first) = (None, None);
    while let Some(Ok(event)) = reader.poll() {
        match event {
            Event::TrackHeader(h) => scale = Some(h.timecode_scale.max(1)),
            Event::FragmentStart { timecode, .. } => {
                first = Some(timecode);
                break;
            }
            _ => {}
        }
    }
    let (scale, first) = (scale?, first?);
    let last = (0..tail.len().saturating_sub(4))
        .rev()
        .filter(|&i| tail[i..i + 4] == [0x1F, 0x43, 0xB6, 0x75])
        .find_map(|i| cluster_timecode(&tail[i + 4..]))?;
    let span = i64::try_from(last).ok()? - i64::try_from(first).ok()?;
    Some(to_ms(span, scale))
}

/// The Timecode of a Cluster whose ID has just been read, if its first child is one.
fn cluster_timecode(after_id: &[u8]) -> Option<u64> {
    use kinescope_media::mkv::ebml::{Size, read_id, read_size, read_uint};
    let (_, size_len) = read_size(after_id).ok()??;
    let body = &after_id[size_len..];
    let (id, id_len) = read_id(body).ok()??;
    if id != 0xE7 {
        return None;
    }
    let (Size::Known(n), n_len) = read_size(&body[id_len..]).ok()?? else {
        return None;
    };
    let value = body.get(id_len + n_len..id_len + n_len + usize::try_from(n).ok()?)?;
    (n <= 8).then(|| read_uint(value)).flatten()
}

/// `units` of TimecodeScale `scale` (ns) in milliseconds.
fn to_ms(units: i64, scale: u64) -> i64 {
    i64::try_from(i128::from(units) * i128::from(scale) / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinescope_media::mkv::cluster_frames;

    fn fixture(name: &str) -> Bytes {
        let path = format!("{}/../testdata/mkv/{name}", env!("CARGO_MANIFEST_DIR"));
        Bytes::from(std::fs::read(path).unwrap())
    }

    /// Every frame of `data` in stored order: (track, key, payload), and the timecodes.
    fn frames_of(data: &[Bytes]) -> (Vec<(u64, bool, Bytes)>, Vec<i64>) {
        let mut reader = MkvReader::new(Limits::default());
        for d in data {
            reader.push(d.clone());
        }
        reader.finish();
        let (mut frames, mut times) = (Vec::new(), Vec::new());
        while let Some(event) = reader.poll() {
            if let Event::Fragment(f) = event.unwrap() {
                for fr in cluster_frames(&f.bytes).unwrap() {
                    times.push(fr.timecode);
                    frames.push((fr.track, fr.key, fr.data));
                }
            }
        }
        (frames, times)
    }

    fn refragment(input: &Bytes, chunk: usize, fragment_ms: u64) -> Vec<OutFragment> {
        let mut r = Refragmenter::new(Timestamp::from_millis(1_800_000_000_000), fragment_ms);
        let mut out = Vec::new();
        for c in input.chunks(chunk) {
            r.push(input.slice_ref(c));
            while let Some(f) = r.poll() {
                out.push(f.unwrap());
            }
        }
        r.finish();
        while let Some(f) = r.poll() {
            out.push(f.unwrap());
        }
        out
    }

    #[test]
    fn keeps_every_frame_and_starts_every_fragment_at_a_video_key_frame() {
        for name in [
            "producer-c-1.6.4_h264_aac_putmedia.mkv",
            "producer-c-1.6.4_h264_putmedia.mkv",
            "kvssink-3.6.0_h264_putmedia.mkv",
        ] {
            let input = fixture(name);
            for chunk in [1_000, 65_536] {
                let out = refragment(&input, chunk, 0);
                assert!(!out.is_empty(), "{name}");
                // Re-read as one upload (header, then the clusters): the same frames in the
                // same order, with timestamps shifted by one constant.
                let mut upload = vec![out[0].header.clone()];
                upload.extend(out.iter().flat_map(|f| f.parts.clone()));
                let (got, got_times) = frames_of(&upload);
                let (want, want_times) = frames_of(std::slice::from_ref(&input));
                assert_eq!(got, want, "{name}: frames");
                let shift = got_times[0] - want_times[0];
                assert!(
                    got_times
                        .iter()
                        .zip(&want_times)
                        .all(|(g, w)| g - w == shift),
                    "{name}"
                );
                for f in &out {
                    let frames = cluster_frames(&f.parts).unwrap();
                    assert!(frames[0].key, "{name}: starts at a key frame");
                    assert_eq!(frames[0].timecode as u64, f.timecode);
                    assert_eq!(f.frames, frames.len());
                }
                assert_eq!(out[0].producer_ms, 1_800_000_000_000);
                assert!(out.windows(2).all(|w| w[0].timecode < w[1].timecode));
            }
        }
    }

    #[test]
    fn fragment_ms_joins_key_frame_groups() {
        let input = fixture("kvssink-3.6.0_h264_putmedia.mkv");
        let every = refragment(&input, 65_536, 0);
        let joined = refragment(&input, 65_536, 4_000);
        assert!(
            joined.len() < every.len(),
            "{} {}",
            joined.len(),
            every.len()
        );
        assert!(
            joined[..joined.len() - 1]
                .iter()
                .all(|f| f.duration_ms >= 4_000)
        );
        let frames = |v: &[OutFragment]| v.iter().map(|f| f.frames).sum::<usize>();
        assert_eq!(frames(&joined), frames(&every));
    }

    #[test]
    fn the_cluster_span_is_read_from_the_two_ends() {
        for name in [
            "producer-c-1.6.4_h264_aac_putmedia.mkv",
            "kvssink-3.6.0_h264_putmedia.mkv",
        ] {
            let input = fixture(name);
            let out = refragment(&input, 65_536, 0);
            let want = out.last().unwrap().producer_ms - out[0].producer_ms;
            let tail = &input[input.len().saturating_sub(1 << 20)..];
            assert_eq!(
                cluster_span_ms(&input[..64 << 10], tail),
                Some(want),
                "{name}"
            );
        }
        assert_eq!(cluster_span_ms(b"not mkv", b"not mkv"), None);
    }

    #[test]
    fn refuses_what_is_not_mkv() {
        let mut r = Refragmenter::new(Timestamp::from_millis(0), 0);
        r.push(Bytes::from_static(b"GIF89a not a video at all"));
        r.finish();
        assert!(matches!(r.poll(), Some(Err(RefragmentError::Mkv(_)))));
    }
}
