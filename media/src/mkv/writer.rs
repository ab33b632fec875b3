//! MKV writers. [`getmedia_fragment`] frames one stored fragment as the real GetMedia service
//! does (spec §4, §0.11, compared with `testdata/mkv/output_get_media.mkv`): a full document per
//! fragment whose Cluster bytes are the stored `Bytes`, never copies, followed by the producer's
//! fragment metadata as the service returns it (`testdata/mkv/test_mixed_tags.mkv`).
//! [`getmedia_error`] is the error document of spec §0.12. [`ProducerWriter`] turns frames into
//! a streamable MKV for producers (`devices`).

use bytes::Bytes;

use super::ebml::{
    Size, UNKNOWN_SIZE, read_id, read_size, write_bytes, write_id, write_master, write_size,
    write_size_len, write_uint,
};
use super::{
    END_OF_FRAGMENT, Event, Limits, MetadataTag, MkvError, MkvReader, Track, TrackHeader,
    TrackType, ids,
};

/// What GetMedia says about each fragment besides its Cluster: the KVS tags before it and the
/// producer's metadata after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentTags<'a> {
    pub fragment_number: &'a str,
    /// Milliseconds since the epoch.
    pub server_timestamp_ms: i64,
    pub producer_timestamp_ms: i64,
    /// The user tags the producer sent with the fragment (spec §3.5).
    pub metadata: &'a [MetadataTag],
}

/// One fragment as a GetMedia document: the stored header, the KVS tags, the stored Cluster,
/// the producer's metadata, then `MILLIS_BEHIND_NOW` and `CONTINUATION_TOKEN`. The returned
/// list reuses `header` and `cluster` bytes as they are; only the Segment header and the Tags
/// are new.
pub fn getmedia_fragment(
    header: &TrackHeader,
    tags: FragmentTags<'_>,
    cluster: &[Bytes],
    millis_behind_now: u64,
    continuation_token: &str,
) -> Vec<Bytes> {
    let mut out = archived_fragment(header, tags, cluster);
    out.push(Bytes::from(kvs_tags(&[
        (
            "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW",
            &millis_behind_now.to_string(),
        ),
        ("AWS_KINESISVIDEO_CONTINUATION_TOKEN", continuation_token),
    ])));
    out
}

/// One fragment as GetMediaForFragmentList returns it (spec §5.2): as [`getmedia_fragment`]
/// without the tags after the Cluster, which only a live reader needs.
pub fn archived_fragment(
    header: &TrackHeader,
    tags: FragmentTags<'_>,
    cluster: &[Bytes],
) -> Vec<Bytes> {
    let mut out = document_start(header);
    out.push(Bytes::from(kvs_tags(&[
        ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", tags.fragment_number),
        (
            "AWS_KINESISVIDEO_SERVER_TIMESTAMP",
            &seconds(tags.server_timestamp_ms),
        ),
        (
            "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP",
            &seconds(tags.producer_timestamp_ms),
        ),
    ])));
    out.extend(known_size_cluster(cluster));
    out.extend(tags.metadata.iter().map(|t| Bytes::from(metadata_tags(t))));
    out
}

/// The Cluster with its size declared. Producers (the KVS C producer among them) send
/// unknown-size Clusters; the real service's GetMedia output declares each Cluster's size in 8
/// bytes (`testdata/mkv/output_get_media.mkv`), and stricter readers need it once Tags follow.
/// The stored bytes hold exactly one Cluster (an unknown-size one ends where the next level-1
/// element begins), so its size is their length less its header. Payload bytes are sliced,
/// not copied.
fn known_size_cluster(cluster: &[Bytes]) -> Vec<Bytes> {
    let mut head = [0u8; 12];
    let mut n = 0;
    for part in cluster {
        let take = (head.len() - n).min(part.len());
        head[n..n + take].copy_from_slice(&part[..take]);
        n += take;
        if n == head.len() {
            break;
        }
    }
    let unknown = match read_id(&head[..n]) {
        Ok(Some((ids::CLUSTER, id_len))) => match read_size(&head[id_len..n]) {
            Ok(Some((Size::Unknown, size_len))) => Some(id_len + size_len),
            _ => None,
        },
        _ => None,
    };
    let Some(header_len) = unknown else {
        return cluster.to_vec();
    };
    let total: usize = cluster.iter().map(Bytes::len).sum();
    let mut header = Vec::with_capacity(12);
    write_id(&mut header, ids::CLUSTER);
    write_size_len(&mut header, (total - header_len) as u64, 8);
    let mut out = vec![Bytes::from(header)];
    let mut skip = header_len;
    for part in cluster {
        if skip >= part.len() {
            skip -= part.len();
        } else {
            out.push(part.slice(skip..));
            skip = 0;
        }
    }
    out
}

/// A header as the archive stores it (the EBML header followed by the level-1 elements before
/// the first Cluster, see `TrackHeader`), read back into a [`TrackHeader`].
pub fn parse_stored_header(stored: &Bytes) -> Result<TrackHeader, MkvError> {
    let truncated = MkvError::Truncated { offset: 0 };
    let (_, id_len) = read_id(stored)
        .map_err(|_| MkvError::InvalidId { offset: 0 })?
        .ok_or(truncated.clone())?;
    let (size, size_len) = read_size(&stored[id_len..])
        .map_err(|_| MkvError::InvalidSize { offset: 0 })?
        .ok_or(truncated.clone())?;
    let Size::Known(size) = size else {
        return Err(MkvError::UnknownSizeNotAllowed {
            id: ids::EBML,
            offset: 0,
        });
    };
    let split = usize::try_from(size)
        .ok()
        .and_then(|s| s.checked_add(id_len + size_len))
        .filter(|&e| e <= stored.len())
        .ok_or(truncated)?;
    let mut reader = MkvReader::new(Limits::default());
    reader.push(stored.slice(..split));
    reader.push(segment_start());
    reader.push(stored.slice(split..));
    reader.finish();
    let mut header = None;
    while let Some(event) = reader.poll() {
        if let Event::TrackHeader(h) = event? {
            header = Some(h);
        }
    }
    header.ok_or(MkvError::MissingTracks { offset: 0 })
}

/// The error document: header (when known), then `FRAGMENT_NUMBER`, `AWS_KINESISVIDEO_ERROR_ID`
/// and `AWS_KINESISVIDEO_ERROR_CODE`, with no Cluster. The response ends after it.
pub fn getmedia_error(
    header: Option<&TrackHeader>,
    fragment_number: &str,
    error_id: u32,
    error_code: &str,
) -> Vec<Bytes> {
    let mut out = match header {
        Some(h) => document_start(h),
        None => vec![Bytes::from(default_ebml_header()), segment_start()],
    };
    out.push(Bytes::from(kvs_tags(&[
        ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", fragment_number),
        ("AWS_KINESISVIDEO_ERROR_ID", &error_id.to_string()),
        ("AWS_KINESISVIDEO_ERROR_CODE", error_code),
    ])));
    out
}

/// A frame to write: track, absolute timecode (TimecodeScale units), key flag, payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub track: u64,
    pub timecode: i64,
    pub key: bool,
    pub data: Bytes,
}

/// Writes a streamable MKV: one header, then clusters. Payloads are chained, not copied.
#[derive(Debug, Clone)]
pub struct ProducerWriter {
    tracks: Vec<Track>,
    timecode_scale: u64,
}

impl ProducerWriter {
    pub fn new(tracks: Vec<Track>, timecode_scale: u64) -> Self {
        Self {
            tracks,
            timecode_scale,
        }
    }

    /// EBML header, Segment of unknown size, Info and Tracks.
    pub fn header(&self) -> Bytes {
        let mut out = default_ebml_header();
        out.extend_from_slice(&segment_start());
        write_master(&mut out, ids::INFO, |b| {
            write_uint(b, ids::TIMECODE_SCALE, self.timecode_scale);
            write_bytes(b, 0x4D80, b"kinescope"); // MuxingApp
            write_bytes(b, 0x5741, b"kinescope"); // WritingApp
        });
        write_master(&mut out, ids::TRACKS, |b| {
            for t in &self.tracks {
                write_master(b, ids::TRACK_ENTRY, |b| write_track(b, t));
            }
        });
        Bytes::from(out)
    }

    /// A whole buffered recording: one known-size Cluster per key-frame group. Groups start at
    /// each key frame of the first video track (of any track when there is no video), so every
    /// Cluster — every KVS fragment — starts decodable.
    pub fn clusters(&self, frames: &[Frame]) -> Vec<Bytes> {
        let video = self
            .tracks
            .iter()
            .find(|t| t.track_type == TrackType::Video)
            .map(|t| t.number);
        let starts_group = |f: &Frame| f.key && video.is_none_or(|v| f.track == v);
        let mut out = Vec::new();
        let mut start = 0;
        for i in 1..=frames.len() {
            if i == frames.len() || starts_group(&frames[i]) {
                out.extend(self.cluster(&frames[start..i]));
                start = i;
            }
        }
        out
    }

    /// One Cluster of known size holding `frames` (which should start with a key frame), its
    /// Timecode the first frame's. Frames must lie within ±32 s of it (i16 block timecodes).
    pub fn cluster(&self, frames: &[Frame]) -> Vec<Bytes> {
        let timecode = frames.first().map_or(0, |f| f.timecode.max(0));
        let mut parts = Vec::with_capacity(2 * frames.len() + 1);
        let mut body_len = 0u64;
        let mut tc = Vec::new();
        write_uint(&mut tc, ids::TIMECODE, timecode as u64);
        body_len += tc.len() as u64;
        parts.push(Bytes::new()); // the Cluster header, once the size is known
        parts.push(Bytes::from(tc));
        for f in frames {
            let head = block_head(f, timecode);
            body_len += (head.len() + f.data.len()) as u64;
            parts.push(Bytes::from(head));
            parts.push(f.data.clone());
        }
        let mut cluster_header = Vec::new();
        write_id(&mut cluster_header, ids::CLUSTER);
        write_size(&mut cluster_header, body_len);
        parts[0] = Bytes::from(cluster_header);
        parts
    }
}

/// A Cluster (the parts [`ProducerWriter::cluster`] returned) carrying the producer's fragment
/// metadata (spec §3.5): the Cluster's size becomes unknown, and after it come one Tags element
/// per item, in the form the KVS C producer uploads them (8-byte sizes), then
/// `AWS_KINESISVIDEO_END_OF_FRAGMENT`, which ends the fragment there rather than at the next
/// Cluster. (After a Cluster of known size, a server takes the fragment as complete and the
/// Tags as belonging to none.)
pub fn with_metadata(mut cluster: Vec<Bytes>, metadata: &[MetadataTag]) -> Vec<Bytes> {
    if metadata.is_empty() {
        return cluster;
    }
    let mut header = Vec::with_capacity(12);
    write_id(&mut header, ids::CLUSTER);
    header.extend_from_slice(&UNKNOWN_SIZE);
    cluster[0] = Bytes::from(header);
    let mut tags = Vec::new();
    for t in metadata {
        tags.extend(metadata_tags(t));
    }
    tags.extend(tags_element(&[(END_OF_FRAGMENT, "")], 8));
    cluster.push(Bytes::from(tags));
    cluster
}

/// A SimpleBlock's element header and block header, to be followed by the payload.
fn block_head(f: &Frame, cluster_timecode: i64) -> Vec<u8> {
    let relative = i16::try_from(f.timecode - cluster_timecode).unwrap_or(i16::MAX);
    let mut block = Vec::with_capacity(8);
    write_size(&mut block, f.track);
    block.extend_from_slice(&relative.to_be_bytes());
    block.push(if f.key { 0x80 } else { 0 });
    let mut out = Vec::with_capacity(16);
    write_id(&mut out, ids::SIMPLE_BLOCK);
    write_size(&mut out, (block.len() + f.data.len()) as u64);
    out.extend_from_slice(&block);
    out
}

fn write_track(b: &mut Vec<u8>, t: &Track) {
    write_uint(b, ids::TRACK_NUMBER, t.number);
    write_uint(b, ids::TRACK_UID, t.uid.max(t.number));
    let code = match t.track_type {
        TrackType::Video => 1,
        TrackType::Audio => 2,
        TrackType::Other => 0x11,
    };
    write_uint(b, ids::TRACK_TYPE, code);
    write_bytes(b, ids::CODEC_ID, t.codec_id.as_bytes());
    if let Some(d) = t.default_duration_ns {
        write_uint(b, ids::DEFAULT_DURATION, d);
    }
    if let (Some(w), Some(h)) = (t.width, t.height) {
        write_master(b, ids::VIDEO, |b| {
            write_uint(b, ids::PIXEL_WIDTH, w);
            write_uint(b, ids::PIXEL_HEIGHT, h);
        });
    }
    if t.sampling_frequency.is_some() || t.channels.is_some() {
        write_master(b, ids::AUDIO, |b| {
            if let Some(f) = t.sampling_frequency {
                write_bytes(b, ids::SAMPLING_FREQUENCY, &f.to_be_bytes());
            }
            if let Some(c) = t.channels {
                write_uint(b, ids::CHANNELS, c);
            }
        });
    }
    if !t.codec_private.is_empty() {
        write_bytes(b, ids::CODEC_PRIVATE, &t.codec_private);
    }
}

/// The stored header of a document, behind a fresh unknown-size Segment header.
fn document_start(header: &TrackHeader) -> Vec<Bytes> {
    let mut out = header.ebml_header.clone();
    out.push(segment_start());
    out.extend(header.segment_header.iter().cloned());
    out
}

fn segment_start() -> Bytes {
    let mut out = Vec::with_capacity(12);
    write_id(&mut out, ids::SEGMENT);
    out.extend_from_slice(&UNKNOWN_SIZE);
    Bytes::from(out)
}

/// An EBML header declaring a Matroska v4 document.
fn default_ebml_header() -> Vec<u8> {
    let mut out = Vec::new();
    write_master(&mut out, ids::EBML, |b| {
        write_uint(b, ids::EBML_VERSION, 1);
        write_uint(b, ids::EBML_READ_VERSION, 1);
        write_uint(b, ids::EBML_MAX_ID_LENGTH, 4);
        write_uint(b, ids::EBML_MAX_SIZE_LENGTH, 8);
        write_bytes(b, ids::DOC_TYPE, b"matroska");
        write_uint(b, ids::DOC_TYPE_VERSION, 4);
        write_uint(b, ids::DOC_TYPE_READ_VERSION, 2);
    });
    out
}

/// KVS's own tags: `Tags { Tag { SimpleTag { TagName, TagString } ... } }`, with the 4-byte size
/// fields the real service writes.
fn kvs_tags(pairs: &[(&str, &str)]) -> Vec<u8> {
    tags_element(pairs, 4)
}

/// One metadata item as the real service returns it after the Cluster: a Tags element of its
/// own with 8-byte size fields — the form the KVS C producer uploads it in, byte for byte.
fn metadata_tags(t: &MetadataTag) -> Vec<u8> {
    tags_element(&[(&t.name, &t.value)], 8)
}

/// `Tags { Tag { SimpleTag { TagName, TagString } ... } }`, every size field `size_len` bytes.
fn tags_element(pairs: &[(&str, &str)], size_len: usize) -> Vec<u8> {
    let element = |out: &mut Vec<u8>, id: u32, data: &[u8]| {
        write_id(out, id);
        write_size_len(out, data.len() as u64, size_len);
        out.extend_from_slice(data);
    };
    let mut tag = Vec::new();
    for (name, value) in pairs {
        let mut simple = Vec::new();
        element(&mut simple, ids::TAG_NAME, name.as_bytes());
        element(&mut simple, ids::TAG_STRING, value.as_bytes());
        element(&mut tag, ids::SIMPLE_TAG, &simple);
    }
    let mut tags = Vec::new();
    element(&mut tags, ids::TAG, &tag);
    let mut out = Vec::new();
    element(&mut out, ids::TAGS, &tags);
    out
}

/// `seconds.mmm`, as KVS tags carry timestamps.
fn seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mkv::tests::{FIXTURES, fixture, read_chunked};
    use crate::mkv::{Event, Fragment, Limits};
    use proptest::prelude::*;

    fn parse(parts: &[Bytes]) -> Vec<Event> {
        let data = Bytes::from(
            parts
                .iter()
                .flat_map(|b| b.iter().copied())
                .collect::<Vec<u8>>(),
        );
        let (events, error) = read_chunked(&data, &[data.len()], Limits::default());
        assert_eq!(error, None);
        events
    }

    /// The level-1 element IDs of a stream, documents flattened.
    fn level1(data: &[u8]) -> Vec<u32> {
        let mut ids_seen = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let (id, n) = crate::mkv::ebml::read_id(&data[pos..]).unwrap().unwrap();
            let (size, m) = crate::mkv::ebml::read_size(&data[pos + n..])
                .unwrap()
                .unwrap();
            ids_seen.push(id);
            pos += n + m;
            match (id, size) {
                (ids::SEGMENT, _) => {}
                (ids::CLUSTER, crate::mkv::ebml::Size::Unknown) => {
                    // Walk children to the next level-1 element.
                    while pos < data.len() {
                        let (cid, n) = crate::mkv::ebml::read_id(&data[pos..]).unwrap().unwrap();
                        if ids::is_top_level(cid) {
                            break;
                        }
                        let (crate::mkv::ebml::Size::Known(s), m) =
                            crate::mkv::ebml::read_size(&data[pos + n..])
                                .unwrap()
                                .unwrap()
                        else {
                            panic!()
                        };
                        pos += n + m + s as usize;
                    }
                }
                (_, crate::mkv::ebml::Size::Known(s)) => pos += s as usize,
                (_, crate::mkv::ebml::Size::Unknown) => panic!("unexpected unknown size"),
            }
        }
        ids_seen
    }

    fn upload_fragments(name: &str) -> (TrackHeader, Vec<Fragment>) {
        let data = fixture(name);
        let (events, _) = read_chunked(&data, &[65536], Limits::default());
        let header = events
            .iter()
            .find_map(|e| e.track_header().cloned())
            .unwrap();
        let fragments = events
            .into_iter()
            .filter_map(Event::into_fragment)
            .collect();
        (header, fragments)
    }

    fn getmedia(header: &TrackHeader, fragments: &[Fragment]) -> Vec<Bytes> {
        fragments
            .iter()
            .enumerate()
            .flat_map(|(i, f)| {
                let number = format!("{:047}", 91_343_852_333_181_432u64 + i as u64);
                let tags = FragmentTags {
                    fragment_number: &number,
                    server_timestamp_ms: 1_700_000_000_123 + i as i64,
                    producer_timestamp_ms: 1_700_000_000_000,
                    metadata: &[],
                };
                getmedia_fragment(header, tags, &f.bytes, 42, &number)
            })
            .collect()
    }

    #[test]
    fn getmedia_framing_has_the_real_services_shape() {
        let (header, fragments) = upload_fragments("producer-c-1.6.4_h264_aac_putmedia.mkv");
        let ours: Vec<u8> = getmedia(&header, &fragments)
            .iter()
            .flat_map(|b| b.iter().copied())
            .collect();
        let theirs = fixture("output_get_media.mkv");
        // Per document, after the replayed header: KVS Tags, the Cluster, KVS Tags.
        let tail = |ids_seen: Vec<u32>| -> Vec<Vec<u32>> {
            ids_seen
                .split(|&id| id == ids::EBML)
                .filter(|d| !d.is_empty())
                .map(|d| d[d.len() - 3..].to_vec())
                .collect()
        };
        let ours_docs = tail(level1(&ours));
        assert_eq!(ours_docs.len(), fragments.len());
        assert!(
            ours_docs
                .iter()
                .all(|d| d == &[ids::TAGS, ids::CLUSTER, ids::TAGS])
        );
        // (The real service's last document also carries Cues, which GetMedia readers skip.)
        let theirs_ids: Vec<u32> = level1(&theirs)
            .into_iter()
            .filter(|&id| id != ids::CUES)
            .collect();
        assert!(
            tail(theirs_ids)
                .iter()
                .all(|d| d == &[ids::TAGS, ids::CLUSTER, ids::TAGS])
        );
        // The same tag names in the same order as the real service, and the same fragments.
        let names = |events: &[Event]| -> Vec<Vec<String>> {
            events
                .iter()
                .filter_map(|e| match e {
                    Event::Tags { tags, .. }
                        if tags.iter().any(|t| t.name.starts_with("AWS_KINESISVIDEO")) =>
                    {
                        Some(tags.iter().map(|t| t.name.clone()).collect())
                    }
                    _ => None,
                })
                .collect()
        };
        let our_events = parse(&[Bytes::from(ours)]);
        let their_events = parse(&[theirs]);
        assert_eq!(names(&our_events)[..2], names(&their_events)[..2]);
        let got: Vec<_> = our_events
            .iter()
            .filter_map(|e| {
                if let Event::Fragment(f) = e {
                    Some((f.timecode, f.frames.clone()))
                } else {
                    None
                }
            })
            .collect();
        let want: Vec<_> = fragments
            .iter()
            .map(|f| (f.timecode, f.frames.clone()))
            .collect();
        assert_eq!(got, want);
        let ts = our_events.iter().find_map(|e| match e {
            Event::Tags { tags, .. } => tags
                .iter()
                .find(|t| t.name == "AWS_KINESISVIDEO_SERVER_TIMESTAMP")
                .map(|t| t.value.clone()),
            _ => None,
        });
        assert_eq!(ts.as_deref(), Some("1700000000.123"));
    }

    #[test]
    fn getmedia_framing_copies_no_payload() {
        let (header, fragments) = upload_fragments("kvssink-3.6.0_h264_putmedia.mkv");
        let f = fragments.iter().max_by_key(|f| f.size()).unwrap();
        let tags = FragmentTags {
            fragment_number: "1",
            server_timestamp_ms: 0,
            producer_timestamp_ms: 0,
            metadata: &[],
        };
        let out = getmedia_fragment(&header, tags, &f.bytes, 0, "1");
        // Each stored part is sent as itself, or (the first, when the Cluster's size had to be
        // declared) as a slice of itself without the old Cluster header.
        let within = |b: &Bytes, s: &Bytes| {
            let (b0, s0) = (b.as_ptr() as usize, s.as_ptr() as usize);
            s0 <= b0 && b0 + b.len() == s0 + s.len() && s.len() - b.len() <= 12
        };
        for stored in &f.bytes {
            assert!(
                out.iter().any(|b| within(b, stored)),
                "cluster bytes copied"
            );
        }
        let new_bytes: usize = out
            .iter()
            .filter(|b| {
                !f.bytes
                    .iter()
                    .chain(&header.ebml_header)
                    .chain(&header.segment_header)
                    .any(|s| within(b, s))
            })
            .map(|b| b.len())
            .sum();
        assert!(
            new_bytes < 512,
            "only headers and tags are new: {new_bytes}"
        );
    }

    #[test]
    fn unknown_size_clusters_are_sent_with_their_size_as_the_real_service_sends_them() {
        // The KVS C producer sends unknown-size Clusters.
        let (header, fragments) = upload_fragments("producer-c-1.6.4_h264_putmedia.mkv");
        let tags = FragmentTags {
            fragment_number: "1",
            server_timestamp_ms: 0,
            producer_timestamp_ms: 0,
            metadata: &[],
        };
        for f in &fragments {
            let stored: Vec<u8> = f.bytes.concat();
            let id_len = read_id(&stored).unwrap().unwrap().1;
            let (size, size_len) = read_size(&stored[id_len..]).unwrap().unwrap();
            assert_eq!(size, Size::Unknown);
            // Split anywhere, even inside the Cluster header: the same output.
            for cut in [1, 5, 11, 13, 4096] {
                let parts = vec![
                    Bytes::copy_from_slice(&stored[..cut]),
                    Bytes::copy_from_slice(&stored[cut..]),
                ];
                let doc: Vec<u8> = getmedia_fragment(&header, tags, &parts, 0, "1").concat();
                let at = doc
                    .windows(4)
                    .position(|w| w == [0x1F, 0x43, 0xB6, 0x75])
                    .unwrap();
                // An 8-byte size, as in testdata/mkv/output_get_media.mkv (01 00 00 00 ...).
                assert_eq!(doc[at + 4], 0x01);
                assert_eq!(
                    read_size(&doc[at + 4..]).unwrap().unwrap(),
                    (Size::Known((stored.len() - id_len - size_len) as u64), 8)
                );
                // The document parses to the same frames, the Cluster ending before the Tags.
                let mut r = MkvReader::new(Limits::default());
                r.push(Bytes::from(doc));
                r.finish();
                let got: Vec<Fragment> = std::iter::from_fn(|| r.poll())
                    .map(Result::unwrap)
                    .filter_map(Event::into_fragment)
                    .collect();
                assert_eq!(got.len(), 1);
                assert_eq!(got[0].frames, f.frames);
                assert_eq!(got[0].timecode, f.timecode);
            }
        }
    }

    #[test]
    fn metadata_follows_an_unknown_size_cluster_and_ends_its_fragment() {
        let track = Track {
            number: 1,
            track_type: TrackType::Video,
            codec_id: "V_MPEG4/ISO/AVC".into(),
            ..Track::default()
        };
        let w = ProducerWriter::new(vec![track], 1_000_000);
        let frame = |timecode| Frame {
            track: 1,
            timecode,
            key: true,
            data: Bytes::from_static(b"frame"),
        };
        let metadata = [
            MetadataTag {
                name: "camera".into(),
                value: "north gate".into(),
            },
            MetadataTag {
                name: "firmware".into(),
                value: "2.1".into(),
            },
        ];
        let parts: Vec<Bytes> = std::iter::once(w.header())
            .chain(with_metadata(w.cluster(&[frame(0)]), &metadata))
            .chain(with_metadata(w.cluster(&[frame(1000)]), &[]))
            .collect();
        let events = parse(&parts);
        let fragments: Vec<&Fragment> = events.iter().filter_map(Event::fragment).collect();
        assert_eq!(fragments.len(), 2);
        assert!(fragments[0].unknown_size && !fragments[1].unknown_size);
        let tags: Vec<(Vec<(String, String)>, bool)> = events
            .iter()
            .filter_map(|e| match e {
                Event::Tags {
                    tags,
                    end_of_fragment,
                    ..
                } => Some((
                    tags.iter()
                        .map(|t| (t.name.clone(), t.value.clone()))
                        .collect(),
                    *end_of_fragment,
                )),
                _ => None,
            })
            .collect();
        let pair = |n: &str, v: &str| vec![(n.to_owned(), v.to_owned())];
        assert_eq!(
            tags,
            [
                (pair("camera", "north gate"), false),
                (pair("firmware", "2.1"), false),
                (pair(END_OF_FRAGMENT, ""), true),
            ]
        );
    }

    #[test]
    fn a_one_megabyte_fragment_is_framed_without_copying() {
        let payload = Bytes::from(vec![0x42u8; 1 << 20]);
        let track = Track {
            number: 1,
            track_type: TrackType::Video,
            codec_id: "V_MPEG4/ISO/AVC".into(),
            ..Track::default()
        };
        let w = ProducerWriter::new(vec![track.clone()], 1_000_000);
        let cluster = w.cluster(&[Frame {
            track: 1,
            timecode: 0,
            key: true,
            data: payload.clone(),
        }]);
        let header = TrackHeader {
            version: 0,
            tracks: vec![track],
            timecode_scale: 1_000_000,
            ebml_header: vec![],
            segment_header: vec![],
        };
        let out = getmedia_fragment(
            &header,
            FragmentTags {
                fragment_number: "1",
                server_timestamp_ms: 0,
                producer_timestamp_ms: 0,
                metadata: &[],
            },
            &cluster,
            0,
            "1",
        );
        assert!(
            out.iter()
                .any(|b| b.as_ptr() == payload.as_ptr() && b.len() == payload.len())
        );
    }

    #[test]
    fn error_documents_carry_the_error_tags() {
        let (header, _) = upload_fragments("producer-c-1.6.4_h264_putmedia.mkv");
        for h in [Some(&header), None] {
            let doc = getmedia_error(h, "0123", 4000, "RESOURCE_NOT_FOUND");
            let data = Bytes::from(
                doc.iter()
                    .flat_map(|b| b.iter().copied())
                    .collect::<Vec<u8>>(),
            );
            let (events, error) = read_chunked(&data, &[100], Limits::default());
            assert_eq!(error, None);
            let tags = events
                .iter()
                .find_map(|e| {
                    if let Event::Tags { tags, .. } = e {
                        Some(tags.clone())
                    } else {
                        None
                    }
                })
                .unwrap();
            let pairs: Vec<(&str, &str)> = tags
                .iter()
                .map(|t| (t.name.as_str(), t.value.as_str()))
                .collect();
            assert_eq!(
                pairs,
                [
                    ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", "0123"),
                    ("AWS_KINESISVIDEO_ERROR_ID", "4000"),
                    ("AWS_KINESISVIDEO_ERROR_CODE", "RESOURCE_NOT_FOUND")
                ]
            );
            assert!(!events.iter().any(|e| matches!(e, Event::Fragment(_))));
        }
    }

    #[test]
    fn stored_headers_read_back_and_archived_documents_have_no_trailer() {
        let (header, fragments) = upload_fragments("producer-c-1.6.4_h264_aac_putmedia.mkv");
        let stored: Bytes = header
            .ebml_header
            .iter()
            .chain(&header.segment_header)
            .flat_map(|b| b.iter().copied())
            .collect::<Vec<u8>>()
            .into();
        let back = parse_stored_header(&stored).unwrap();
        assert_eq!(
            (back.tracks.clone(), back.timecode_scale),
            (header.tracks.clone(), header.timecode_scale)
        );
        assert_eq!(concat(&back.ebml_header), concat(&header.ebml_header));
        assert_eq!(concat(&back.segment_header), concat(&header.segment_header));
        assert!(parse_stored_header(&stored.slice(..20)).is_err());
        let tags = FragmentTags {
            fragment_number: "1",
            server_timestamp_ms: 0,
            producer_timestamp_ms: 0,
            metadata: &[],
        };
        let doc = archived_fragment(&back, tags, &fragments[0].bytes);
        let events = parse(&doc);
        let names: Vec<String> = events
            .iter()
            .filter_map(|e| {
                if let Event::Tags { tags, .. } = e {
                    Some(tags[0].name.clone())
                } else {
                    None
                }
            })
            .collect();
        assert_eq!(names, ["AWS_KINESISVIDEO_FRAGMENT_NUMBER"]);
    }

    fn concat(parts: &[Bytes]) -> Vec<u8> {
        parts.iter().flat_map(|b| b.iter().copied()).collect()
    }

    #[test]
    fn metadata_follows_the_cluster_as_the_real_service_returns_it() {
        let (header, fragments) = upload_fragments("producer-c-1.6.4_h264_putmedia.mkv");
        let metadata: Vec<MetadataTag> = (0..5)
            .map(|i| MetadataTag {
                name: format!("testTag_{i}"),
                value: format!("testTag_{i}_Value"),
            })
            .collect();
        let tags = FragmentTags {
            fragment_number: "1",
            server_timestamp_ms: 0,
            producer_timestamp_ms: 0,
            metadata: &metadata,
        };
        // After the Cluster and before the KVS tags that follow it, one Tags element per item,
        // as in the real service's document (its first one also has Tags before Info).
        let doc = getmedia_fragment(&header, tags, &fragments[0].bytes, 0, "1").concat();
        let theirs = fixture("test_mixed_tags.mkv");
        let documents = |ids_seen: Vec<u32>| -> Vec<Vec<u32>> {
            ids_seen
                .split(|&id| id == ids::EBML)
                .filter(|d| !d.is_empty())
                .map(|d| d.to_vec())
                .collect()
        };
        let ours = documents(level1(&doc));
        let from_cluster =
            |d: &[u32]| d[d.iter().position(|&id| id == ids::CLUSTER).unwrap()..].to_vec();
        let expected = [vec![ids::CLUSTER], vec![ids::TAGS; 6]].concat();
        assert_eq!(from_cluster(&ours[0]), expected);
        for d in documents(level1(&theirs)) {
            assert_eq!(from_cluster(&d), expected);
        }
        // Byte for byte what the real service sent for testTag_0.
        let ours_tag = metadata_tags(&metadata[0]);
        let at = theirs
            .windows(ours_tag.len())
            .position(|w| w == ours_tag.as_slice());
        assert!(at.is_some(), "the real service's form");
        // The names and values read back, in order, after the Cluster.
        let events = parse(&[Bytes::from(doc)]);
        let after: Vec<(String, String)> = events
            .iter()
            .skip_while(|e| !matches!(e, Event::Fragment(_)))
            .filter_map(|e| match e {
                Event::Tags { tags, .. } => Some((tags[0].name.clone(), tags[0].value.clone())),
                _ => None,
            })
            .collect();
        let want: Vec<(String, String)> = metadata
            .iter()
            .map(|t| (t.name.clone(), t.value.clone()))
            .chain([("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW".into(), "0".into())])
            .collect();
        assert_eq!(after, want);
        // GetMediaForFragmentList: the same items end the document.
        let archived = archived_fragment(&header, tags, &fragments[0].bytes).concat();
        assert_eq!(
            from_cluster(&documents(level1(&archived))[0]),
            [vec![ids::CLUSTER], vec![ids::TAGS; 5]].concat()
        );
    }

    #[test]
    fn timestamps_are_seconds_with_milliseconds() {
        assert_eq!(seconds(1_511_852_109_126), "1511852109.126");
        assert_eq!(seconds(5), "0.005");
        assert_eq!(seconds(-1), "-1.999");
    }

    #[test]
    fn rewriting_every_fixture_keeps_its_frames() {
        // Frame-level rewrite is checked by the reader (an independent path from the writer).
        for name in &FIXTURES[..3] {
            let (header, fragments) = upload_fragments(name);
            let w = ProducerWriter::new(header.tracks.clone(), header.timecode_scale);
            let mut parts = vec![w.header()];
            for f in &fragments {
                let frames: Vec<Frame> = f
                    .key_frames
                    .iter()
                    .map(|k| Frame {
                        track: k.track,
                        timecode: k.timecode,
                        key: true,
                        data: Bytes::from_static(b"x"),
                    })
                    .collect();
                parts.extend(w.cluster(&frames));
            }
            let events = parse(&parts);
            let n = events
                .iter()
                .filter(|e| matches!(e, Event::Fragment(_)))
                .count();
            assert_eq!(n, fragments.len(), "{name}");
        }
    }

    #[test]
    fn buffered_recordings_get_one_cluster_per_key_frame_group() {
        let tracks = vec![
            Track {
                number: 1,
                uid: 1,
                track_type: TrackType::Video,
                codec_id: "V_MPEG4/ISO/AVC".into(),
                ..Track::default()
            },
            Track {
                number: 2,
                uid: 2,
                track_type: TrackType::Audio,
                codec_id: "A_AAC".into(),
                ..Track::default()
            },
        ];
        let w = ProducerWriter::new(tracks, 1_000_000);
        let frames: Vec<Frame> = (0..90)
            .map(|i| Frame {
                track: 1 + (i % 3 == 2) as u64,
                timecode: i * 11,
                key: i % 30 == 0 || i % 3 == 2,
                data: Bytes::from_static(b"f"),
            })
            .collect();
        let parts: Vec<Bytes> = std::iter::once(w.header())
            .chain(w.clusters(&frames))
            .collect();
        let events = parse(&parts);
        let fragments: Vec<&Fragment> = events.iter().filter_map(Event::fragment).collect();
        assert_eq!(fragments.len(), 3);
        assert!(fragments.iter().all(|f| {
            f.key_frames
                .first()
                .is_some_and(|k| k.track == 1 && k.offset < 32)
        }));
        assert_eq!(fragments.iter().map(|f| f.frame_count()).sum::<u32>(), 90);
    }

    proptest! {
        #[test]
        fn producer_writer_round_trips(
            frames in proptest::collection::vec((1u64..=2, 0i64..15_000, any::<bool>(), 0usize..300), 1..40),
            start in 0i64..1_000_000_000,
        ) {
            let tracks = vec![
                Track { number: 1, uid: 1, track_type: TrackType::Video, codec_id: "V_MPEG4/ISO/AVC".into(), width: Some(640), height: Some(480), codec_private: Bytes::from_static(&[1, 0x64, 0, 0x1f]), ..Track::default() },
                Track { number: 2, uid: 2, track_type: TrackType::Audio, codec_id: "A_AAC".into(), sampling_frequency: Some(44100.0), channels: Some(2), ..Track::default() },
            ];
            let w = ProducerWriter::new(tracks.clone(), 1_000_000);
            let mut frames: Vec<Frame> = frames.into_iter().map(|(track, dt, key, len)| Frame { track, timecode: start + dt, key, data: Bytes::from(vec![7u8; len]) }).collect();
            frames.sort_by_key(|f| f.timecode);
            frames[0].key = true;
            let parts: Vec<Bytes> = std::iter::once(w.header()).chain(w.cluster(&frames)).collect();
            let events = parse(&parts);
            let Event::TrackHeader(h) = &events[0] else { panic!() };
            prop_assert_eq!(&h.tracks, &tracks);
            let f = events.iter().find_map(Event::fragment).unwrap();
            prop_assert!(!f.unknown_size);
            prop_assert_eq!(f.timecode as i64, frames[0].timecode);
            prop_assert_eq!(f.frame_count() as usize, frames.len());
            prop_assert_eq!(f.first_frame, frames.first().unwrap().timecode);
            prop_assert_eq!(f.last_frame, frames.last().unwrap().timecode);
            let keys: Vec<i64> = frames.iter().filter(|f| f.key).map(|f| f.timecode).collect();
            prop_assert_eq!(f.key_frames.iter().map(|k| k.timecode).collect::<Vec<_>>(), keys);
        }
    }
}
