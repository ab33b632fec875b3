//! The streaming MKV reader: a sans-IO push/poll state machine (DESIGN.md convention 1) over
//! the element tree of RFC 9559, tolerant of what real producers send (spec §0, TESTING.md:
//! unknown-size Segment and Cluster, 8-byte sizes, CRC-32 and Void anywhere, Tags between
//! Clusters, several documents back to back).
//!
//! Contract: [`MkvReader::push`] any chunks (1 byte to megabytes; the events do not depend on
//! where chunks are cut), then call [`MkvReader::poll`] until it returns `None`; after the last
//! chunk call [`MkvReader::finish`] and poll again. After an error, `poll` returns `None`.
//! Media payloads are never copied: a fragment's bytes are slices of the pushed chunks.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use super::ebml::{Size, read_id, read_size, read_uint};
use super::elements::{check_ebml_header, parse_info, parse_tags, parse_tracks};
use super::input::Input;
use super::{
    END_OF_FRAGMENT, Event, Fragment, KeyFrame, Limits, MkvError, Track, TrackHeader, ids,
};

/// Longest element header: a 4-byte ID and an 8-byte size.
const MAX_HEADER: usize = 12;
/// Longest block header read: track number (≤ 8), timecode (2), flags (1), lace count (1).
const MAX_BLOCK_HEAD: usize = 12;

#[derive(Debug)]
pub struct MkvReader {
    limits: Limits,
    input: Input,
    events: VecDeque<Event>,
    pending_error: Option<MkvError>,
    failed: bool,
    finished: bool,
    /// Open masters (Segment, Cluster, BlockGroup), outermost first.
    stack: Vec<Open>,
    /// Payload bytes of the current element still to skip.
    skip: u64,
    doc: Option<Document>,
    next_version: u32,
    cluster: Option<ClusterState>,
    group: Option<GroupState>,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    id: u32,
    /// Absolute end offset; `None` for unknown size.
    end: Option<u64>,
}

#[derive(Debug)]
struct Header {
    id: u32,
    size: Size,
    len: usize,
    offset: u64,
}

/// The MKV document (EBML header + Segment) being read.
#[derive(Debug)]
struct Document {
    version: u32,
    ebml_header: Vec<Bytes>,
    segment_header: Vec<Bytes>,
    /// Recording the level-1 elements before the first Cluster, which start at this offset.
    recording_header: Option<u64>,
    timecode_scale: u64,
    tracks: Option<Vec<Track>>,
    header_emitted: bool,
    has_segment: bool,
}

#[derive(Debug)]
struct ClusterState {
    offset: u64,
    unknown_size: bool,
    timecode: Option<u64>,
    first: Option<i64>,
    last: Option<i64>,
    /// Duration of the latest frame when known (BlockDuration), and its track.
    last_duration: Option<u64>,
    last_track: u64,
    key_frames: Vec<KeyFrame>,
    frames: BTreeMap<u64, u32>,
    previous: BTreeMap<u64, i64>,
    interval: BTreeMap<u64, i64>,
}

#[derive(Debug, Default)]
struct GroupState {
    block: Option<(BlockHead, u64)>,
    has_reference: bool,
    duration: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct BlockHead {
    track: u64,
    relative: i16,
    flags: u8,
    frames: u32,
}

impl MkvReader {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            input: Input::default(),
            events: VecDeque::new(),
            pending_error: None,
            failed: false,
            finished: false,
            stack: Vec::new(),
            skip: 0,
            doc: None,
            next_version: 0,
            cluster: None,
            group: None,
        }
    }

    /// Adds input. Chunks pushed after [`finish`](Self::finish) are ignored.
    pub fn push(&mut self, chunk: Bytes) {
        if !self.finished {
            self.input.push(chunk);
        }
    }

    /// Marks the end of input: open unknown-size elements end here; a cut element is an error.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// The bytes of the open Cluster read since it began or since the last call, so that a
    /// caller can store a fragment while it arrives. The [`Event::Fragment`] that completes the
    /// Cluster then carries only the bytes not taken here.
    pub fn take_fragment_bytes(&mut self) -> Vec<Bytes> {
        if self.cluster.is_none() {
            return Vec::new();
        }
        self.input.take_recorded()
    }

    /// Bytes pushed but not yet consumed (a partial element header or small element).
    pub fn buffered(&self) -> usize {
        self.input.len()
    }

    /// The next event, or `None` when more input is needed (or the stream is over).
    pub fn poll(&mut self) -> Option<Result<Event, MkvError>> {
        loop {
            if let Some(e) = self.events.pop_front() {
                return Some(Ok(e));
            }
            if let Some(e) = self.pending_error.take() {
                self.failed = true;
                return Some(Err(e));
            }
            if self.failed {
                return None;
            }
            match self.step() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.stack.clear();
                    self.pending_error = Some(e);
                }
            }
        }
    }

    /// One unit of progress. `Ok(false)`: nothing more can be done with the input so far.
    fn step(&mut self) -> Result<bool, MkvError> {
        if self.skip > 0 {
            let n = self.skip.min(self.input.len() as u64);
            if n == 0 {
                return self.at_end_of_input();
            }
            self.input.advance(n as usize);
            self.skip -= n;
            return Ok(true);
        }
        let offset = self.input.offset();
        if let Some(top) = self.stack.last()
            && top.end == Some(offset)
        {
            self.close_top()?;
            return Ok(true);
        }
        let Some(h) = self.peek_header()? else {
            return self.at_end_of_input();
        };
        if let Some(parent) = self.stack.last().copied() {
            if let Some(end) = parent.end {
                let child_end = match h.size {
                    Size::Known(s) => (h.offset + h.len as u64).checked_add(s),
                    Size::Unknown => None,
                };
                if child_end.is_none_or(|e| e > end) {
                    return Err(match h.size {
                        Size::Unknown => MkvError::UnknownSizeNotAllowed {
                            id: h.id,
                            offset: h.offset,
                        },
                        Size::Known(_) => MkvError::ChildExceedsParent {
                            id: h.id,
                            offset: h.offset,
                        },
                    });
                }
            } else if parent.id == ids::CLUSTER && ids::is_top_level(h.id) {
                // An unknown-size Cluster ends where the next level-1 element begins.
                self.close_top()?;
                return Ok(true);
            }
        }
        match self.stack.last().map(|o| o.id) {
            None => self.level0(h),
            Some(ids::SEGMENT) => self.in_segment(h),
            Some(ids::CLUSTER) => self.in_cluster(h),
            Some(_) => self.in_block_group(h),
        }
    }

    fn peek_header(&self) -> Result<Option<Header>, MkvError> {
        let offset = self.input.offset();
        let Some(buf) = self.input.peek(self.input.len().min(MAX_HEADER)) else {
            return Ok(None);
        };
        let Some((id, id_len)) = read_id(&buf).map_err(|_| MkvError::InvalidId { offset })? else {
            return Ok(None);
        };
        let Some((size, size_len)) =
            read_size(&buf[id_len..]).map_err(|_| MkvError::InvalidSize { offset })?
        else {
            return Ok(None);
        };
        Ok(Some(Header {
            id,
            size,
            len: id_len + size_len,
            offset,
        }))
    }

    /// No header can be read: wait for input, or end the stream.
    fn at_end_of_input(&mut self) -> Result<bool, MkvError> {
        if !self.finished {
            return Ok(false);
        }
        if self.skip > 0 || self.input.len() > 0 {
            return Err(MkvError::Truncated {
                offset: self.input.offset(),
            });
        }
        match self.stack.last() {
            None => {
                self.end_document();
                Ok(false)
            }
            Some(top) if top.end.is_some() => Err(MkvError::Truncated {
                offset: self.input.offset(),
            }),
            Some(_) => {
                self.close_top()?;
                Ok(true)
            }
        }
    }

    /// Reads a whole small element: `Ok(None)` until all of it is buffered.
    fn whole(&self, h: &Header) -> Result<Option<Vec<u8>>, MkvError> {
        let Size::Known(size) = h.size else {
            return Err(MkvError::UnknownSizeNotAllowed {
                id: h.id,
                offset: h.offset,
            });
        };
        if size > self.limits.max_element_size {
            return Err(MkvError::ElementTooLarge {
                id: h.id,
                size,
                max: self.limits.max_element_size,
                offset: h.offset,
            });
        }
        let total = h.len + size as usize;
        if self.input.len() < total {
            return if self.finished {
                Err(MkvError::Truncated { offset: h.offset })
            } else {
                Ok(None)
            };
        }
        Ok(self.input.peek(total).map(|b| b[h.len..].to_vec()))
    }

    /// Skips an element whose content is not needed.
    fn skip_element(&mut self, h: &Header) -> Result<bool, MkvError> {
        let Size::Known(size) = h.size else {
            return Err(MkvError::UnknownSizeNotAllowed {
                id: h.id,
                offset: h.offset,
            });
        };
        self.input.advance(h.len);
        self.skip = size;
        Ok(true)
    }

    fn level0(&mut self, h: Header) -> Result<bool, MkvError> {
        match h.id {
            ids::EBML => {
                let Some(data) = self.whole(&h)? else {
                    return Ok(false);
                };
                check_ebml_header(&data, h.offset + h.len as u64)?;
                self.end_document();
                self.input.start_recording();
                self.input.advance(h.len + data.len());
                let version = self.next_version;
                self.next_version += 1;
                self.doc = Some(Document {
                    version,
                    ebml_header: self.input.stop_recording(),
                    segment_header: Vec::new(),
                    recording_header: None,
                    timecode_scale: 1_000_000,
                    tracks: None,
                    header_emitted: false,
                    has_segment: false,
                });
                Ok(true)
            }
            ids::SEGMENT => {
                let doc = match &mut self.doc {
                    Some(d) if !d.has_segment => d,
                    Some(_) => {
                        return Err(MkvError::Misplaced {
                            id: h.id,
                            offset: h.offset,
                        });
                    }
                    None => return Err(MkvError::NotMatroska { offset: h.offset }),
                };
                doc.has_segment = true;
                self.input.advance(h.len);
                doc.recording_header = Some(self.input.offset());
                self.input.start_recording();
                let end = match h.size {
                    Size::Known(s) => Some(self.input.offset().saturating_add(s)),
                    Size::Unknown => None,
                };
                self.stack.push(Open {
                    id: ids::SEGMENT,
                    end,
                });
                Ok(true)
            }
            ids::VOID | ids::CRC32 if self.doc.is_some() => self.skip_element(&h),
            _ if self.doc.is_none() => Err(MkvError::NotMatroska { offset: h.offset }),
            _ => Err(MkvError::Misplaced {
                id: h.id,
                offset: h.offset,
            }),
        }
    }

    fn in_segment(&mut self, h: Header) -> Result<bool, MkvError> {
        let doc = self.doc.as_mut().expect("a Segment belongs to a document");
        // The header is replayed in front of every fragment: bound all of it, not each part.
        if let (Some(start), Size::Known(size)) = (doc.recording_header, h.size)
            && h.id != ids::CLUSTER
        {
            let total = (h.offset + h.len as u64).saturating_add(size) - start;
            if total > self.limits.max_element_size {
                return Err(MkvError::ElementTooLarge {
                    id: h.id,
                    size: total,
                    max: self.limits.max_element_size,
                    offset: h.offset,
                });
            }
        }
        match h.id {
            ids::EBML => {
                // A new document: the producer restarted its MKV (unknown-size Segment).
                self.stack.pop();
                self.end_document();
                Ok(true)
            }
            ids::CLUSTER => self.open_cluster(h),
            ids::INFO | ids::TRACKS if doc.header_emitted => Err(MkvError::Misplaced {
                id: h.id,
                offset: h.offset,
            }),
            ids::INFO => {
                let Some(data) = self.whole(&h)? else {
                    return Ok(false);
                };
                let scale = parse_info(&data, h.offset + h.len as u64)?;
                self.doc.as_mut().expect("checked").timecode_scale = scale;
                self.input.advance(h.len + data.len());
                Ok(true)
            }
            ids::TRACKS => {
                let Some(data) = self.whole(&h)? else {
                    return Ok(false);
                };
                let tracks = parse_tracks(&data, h.offset + h.len as u64, self.limits.max_tracks)?;
                self.doc.as_mut().expect("checked").tracks = Some(tracks);
                self.input.advance(h.len + data.len());
                Ok(true)
            }
            ids::TAGS => {
                let Some(data) = self.whole(&h)? else {
                    return Ok(false);
                };
                let tags = parse_tags(&data, h.offset + h.len as u64)?;
                self.input.advance(h.len + data.len());
                let end_of_fragment = tags.iter().any(|t| t.name == END_OF_FRAGMENT);
                let in_header = !self.doc.as_ref().expect("checked").header_emitted;
                self.events.push_back(Event::Tags {
                    tags,
                    end_of_fragment,
                    in_header,
                    offset: h.offset,
                });
                Ok(true)
            }
            _ => self.skip_element(&h),
        }
    }

    fn open_cluster(&mut self, h: Header) -> Result<bool, MkvError> {
        let doc = self.doc.as_mut().expect("a Segment belongs to a document");
        if doc.recording_header.take().is_some() {
            doc.segment_header = self.input.stop_recording();
        }
        let Some(tracks) = &doc.tracks else {
            return Err(MkvError::MissingTracks { offset: h.offset });
        };
        if !doc.header_emitted {
            doc.header_emitted = true;
            self.events.push_back(Event::TrackHeader(TrackHeader {
                version: doc.version,
                tracks: tracks.clone(),
                timecode_scale: doc.timecode_scale,
                ebml_header: doc.ebml_header.clone(),
                segment_header: doc.segment_header.clone(),
            }));
        }
        let end = match h.size {
            Size::Known(s) => {
                if s.saturating_add(h.len as u64) > self.limits.max_fragment_size {
                    return Err(MkvError::FragmentTooLarge {
                        max: self.limits.max_fragment_size,
                        offset: h.offset,
                    });
                }
                Some(h.offset + h.len as u64 + s)
            }
            Size::Unknown => None,
        };
        self.input.start_recording();
        self.input.advance(h.len);
        self.stack.push(Open {
            id: ids::CLUSTER,
            end,
        });
        self.cluster = Some(ClusterState {
            offset: h.offset,
            unknown_size: end.is_none(),
            timecode: None,
            first: None,
            last: None,
            last_duration: None,
            last_track: 0,
            key_frames: Vec::new(),
            frames: BTreeMap::new(),
            previous: BTreeMap::new(),
            interval: BTreeMap::new(),
        });
        Ok(true)
    }

    fn in_cluster(&mut self, h: Header) -> Result<bool, MkvError> {
        let cluster_offset = self.cluster.as_ref().expect("open Cluster").offset;
        let Size::Known(size) = h.size else {
            return Err(MkvError::UnknownSizeNotAllowed {
                id: h.id,
                offset: h.offset,
            });
        };
        let end = (h.offset + h.len as u64).saturating_add(size);
        if end - cluster_offset > self.limits.max_fragment_size {
            return Err(MkvError::FragmentTooLarge {
                max: self.limits.max_fragment_size,
                offset: cluster_offset,
            });
        }
        match h.id {
            ids::TIMECODE => {
                let Some(data) = self.whole(&h)? else {
                    return Ok(false);
                };
                let timecode = read_uint(&data).ok_or(MkvError::InvalidValue {
                    id: h.id,
                    offset: h.offset,
                })?;
                if i64::try_from(timecode).is_err() {
                    return Err(MkvError::InvalidValue {
                        id: h.id,
                        offset: h.offset,
                    });
                }
                self.input.advance(h.len + data.len());
                let cluster = self.cluster.as_mut().expect("open Cluster");
                if cluster.timecode.replace(timecode).is_some() {
                    return Err(MkvError::Misplaced {
                        id: h.id,
                        offset: h.offset,
                    });
                }
                self.events.push_back(Event::FragmentStart {
                    timecode,
                    offset: cluster.offset,
                });
                Ok(true)
            }
            ids::SIMPLE_BLOCK => {
                let Some(head) = self.block_head(&h, size)? else {
                    return Ok(false);
                };
                self.add_frame(head, head.flags & 0x80 != 0, None, h.offset)?;
                self.skip_element(&h)
            }
            ids::BLOCK_GROUP => {
                self.input.advance(h.len);
                self.stack.push(Open {
                    id: ids::BLOCK_GROUP,
                    end: Some(end),
                });
                self.group = Some(GroupState::default());
                Ok(true)
            }
            _ => self.skip_element(&h),
        }
    }

    fn in_block_group(&mut self, h: Header) -> Result<bool, MkvError> {
        let Size::Known(size) = h.size else {
            return Err(MkvError::UnknownSizeNotAllowed {
                id: h.id,
                offset: h.offset,
            });
        };
        match h.id {
            ids::BLOCK => {
                let Some(head) = self.block_head(&h, size)? else {
                    return Ok(false);
                };
                self.group.as_mut().expect("open BlockGroup").block = Some((head, h.offset));
                self.skip_element(&h)
            }
            ids::BLOCK_DURATION => {
                let Some(data) = self.whole(&h)? else {
                    return Ok(false);
                };
                let d = read_uint(&data).ok_or(MkvError::InvalidValue {
                    id: h.id,
                    offset: h.offset,
                })?;
                self.group.as_mut().expect("open BlockGroup").duration = Some(d);
                self.input.advance(h.len + data.len());
                Ok(true)
            }
            ids::REFERENCE_BLOCK => {
                self.group.as_mut().expect("open BlockGroup").has_reference = true;
                self.skip_element(&h)
            }
            _ => self.skip_element(&h),
        }
    }

    /// The head of a SimpleBlock or Block: track, relative timecode, flags, laced frames.
    fn block_head(&self, h: &Header, size: u64) -> Result<Option<BlockHead>, MkvError> {
        let want = h.len + (size as usize).min(MAX_BLOCK_HEAD);
        let Some(buf) = self.input.peek(want) else {
            return if self.finished {
                Err(MkvError::Truncated { offset: h.offset })
            } else {
                Ok(None)
            };
        };
        let invalid = MkvError::InvalidValue {
            id: h.id,
            offset: h.offset,
        };
        let data = &buf[h.len..];
        let (track, n) = match read_size(data) {
            Ok(Some((Size::Known(t), n))) if t > 0 => (t, n),
            _ => return Err(invalid),
        };
        let Some(&[hi, lo, flags]) = data
            .get(n..n + 3)
            .map(|s| <&[u8; 3]>::try_from(s).expect("3 bytes"))
        else {
            return Err(invalid);
        };
        let frames = if flags & 0x06 == 0 {
            1
        } else {
            u32::from(*data.get(n + 3).ok_or(invalid)?) + 1
        };
        Ok(Some(BlockHead {
            track,
            relative: i16::from_be_bytes([hi, lo]),
            flags,
            frames,
        }))
    }

    fn add_frame(
        &mut self,
        head: BlockHead,
        key: bool,
        duration: Option<u64>,
        offset: u64,
    ) -> Result<(), MkvError> {
        let doc = self.doc.as_ref().expect("a Cluster belongs to a document");
        if !doc
            .tracks
            .as_ref()
            .is_some_and(|ts| ts.iter().any(|t| t.number == head.track))
        {
            return Err(MkvError::UnknownTrack {
                track: head.track,
                offset,
            });
        }
        let scale = doc.timecode_scale;
        let max_ns = self.limits.max_fragment_duration_ns;
        let c = self.cluster.as_mut().expect("open Cluster");
        let Some(timecode) = c.timecode else {
            return Err(MkvError::MissingTimecode { offset });
        };
        let at = timecode as i64 + i64::from(head.relative);
        let first = c.first.map_or(at, |f| f.min(at));
        c.first = Some(first);
        if c.last.is_none_or(|l| at >= l) {
            c.last = Some(at);
            c.last_track = head.track;
            c.last_duration = duration;
        }
        let span = c.last.expect("set above") - first;
        if u128::from(span.unsigned_abs()) * u128::from(scale) > u128::from(max_ns) {
            return Err(MkvError::FragmentTooLong {
                max_ns,
                offset: c.offset,
            });
        }
        *c.frames.entry(head.track).or_default() += head.frames;
        if let Some(prev) = c.previous.insert(head.track, at) {
            c.interval.insert(head.track, at - prev);
        }
        if key {
            c.key_frames.push(KeyFrame {
                track: head.track,
                timecode: at,
                offset: offset - c.offset,
            });
        }
        Ok(())
    }

    fn close_top(&mut self) -> Result<(), MkvError> {
        let open = self.stack.pop().expect("an open element");
        match open.id {
            ids::CLUSTER => self.complete_fragment(),
            ids::BLOCK_GROUP => {
                let group = self.group.take().unwrap_or_default();
                if let Some((head, offset)) = group.block {
                    self.add_frame(head, !group.has_reference, group.duration, offset)?;
                }
                Ok(())
            }
            _ => {
                self.end_document();
                Ok(())
            }
        }
    }

    fn complete_fragment(&mut self) -> Result<(), MkvError> {
        let c = self.cluster.take().expect("open Cluster");
        let doc = self.doc.as_ref().expect("a Cluster belongs to a document");
        let Some(timecode) = c.timecode else {
            return Err(MkvError::MissingTimecode { offset: c.offset });
        };
        let first = c.first.unwrap_or(timecode as i64);
        let last = c.last.unwrap_or(first);
        let tail = c
            .last_duration
            .map(|d| i64::try_from(d).unwrap_or(i64::MAX))
            .or_else(|| c.interval.get(&c.last_track).copied())
            .unwrap_or(0)
            .max(0);
        self.events.push_back(Event::Fragment(Fragment {
            header_version: doc.version,
            timecode,
            first_frame: first,
            last_frame: last,
            duration: (last - first).saturating_add(tail).unsigned_abs(),
            timecode_scale: doc.timecode_scale,
            key_frames: c.key_frames,
            frames: c.frames,
            offset: c.offset,
            unknown_size: c.unknown_size,
            bytes: self.input.stop_recording(),
        }));
        Ok(())
    }

    /// Ends the current document; one that had tracks but no Cluster still reports them.
    fn end_document(&mut self) {
        let Some(mut doc) = self.doc.take() else {
            return;
        };
        if doc.recording_header.take().is_some() {
            doc.segment_header = self.input.stop_recording();
        }
        if let (false, Some(tracks)) = (doc.header_emitted, doc.tracks) {
            self.events.push_back(Event::TrackHeader(TrackHeader {
                version: doc.version,
                tracks,
                timecode_scale: doc.timecode_scale,
                ebml_header: doc.ebml_header,
                segment_header: doc.segment_header,
            }));
        }
    }
}
