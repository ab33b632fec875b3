//! Reader tests against real bytes: every producer upload and every GetMedia output of the real
//! service in `testdata/mkv/` parses to the clusters, frames and timecodes that an independent
//! parser (webm-iterable) reports; any chunking gives the same events; malformed input gives a
//! specific error, never a panic.

use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;
use webm_iterable::WebmIterator;
use webm_iterable::matroska_spec::{Block, Master, MatroskaSpec, SimpleBlock};

use super::*;

pub fn fixture(name: &str) -> Bytes {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/mkv")
        .join(name);
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
}

pub const FIXTURES: &[&str] = &[
    "producer-c-1.6.4_h264_putmedia.mkv",
    "producer-c-1.6.4_h264_aac_putmedia.mkv",
    "kvssink-3.6.0_h264_putmedia.mkv",
    "output_get_media.mkv",
    "output_get_media_sparse_fragments.mkv",
    "output-get-media-equal-timecode.mkv",
    "test_mixed_tags.mkv",
    "empty-mkv-with-tags.mkv",
    "test_tags_empty_cluster.mkv",
];

/// Reads `data` cut into chunks of the given sizes (cycled); returns the events and the error.
pub fn read_chunked(
    data: &Bytes,
    sizes: &[usize],
    limits: Limits,
) -> (Vec<Event>, Option<MkvError>) {
    let mut r = MkvReader::new(limits);
    let mut events = Vec::new();
    let mut error = None;
    let mut pos = 0;
    let drain = |r: &mut MkvReader, events: &mut Vec<Event>, error: &mut Option<MkvError>| {
        while let Some(e) = r.poll() {
            match e {
                Ok(ev) => events.push(ev),
                Err(e) => *error = Some(e),
            }
        }
    };
    for &n in sizes.iter().cycle() {
        if pos >= data.len() {
            break;
        }
        let end = (pos + n.max(1)).min(data.len());
        r.push(data.slice(pos..end));
        pos = end;
        drain(&mut r, &mut events, &mut error);
    }
    r.finish();
    drain(&mut r, &mut events, &mut error);
    (events, error)
}

fn read_all(data: &Bytes) -> (Vec<Event>, Option<MkvError>) {
    read_chunked(data, &[data.len().max(1)], Limits::default())
}

fn concat(parts: &[Bytes]) -> Vec<u8> {
    parts.iter().flat_map(|b| b.iter().copied()).collect()
}

/// Events with their byte slices joined, so that chunkings can be compared.
fn normalized(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::Fragment(f) => {
                let mut f = f.clone();
                let bytes = concat(&f.bytes);
                f.bytes = Vec::new();
                format!("{f:?} {}", bytes.len())
                    + &format!("{:x?}", &bytes[..bytes.len().min(64)])
                    + &format!("{}", crc(&bytes))
            }
            Event::TrackHeader(h) => {
                let mut h = h.clone();
                let (a, b) = (concat(&h.ebml_header), concat(&h.segment_header));
                h.ebml_header = Vec::new();
                h.segment_header = Vec::new();
                format!("{h:?} {a:x?} {b:x?}")
            }
            other => format!("{other:?}"),
        })
        .collect()
}

fn crc(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

/// What the independent parser sees: per Cluster its timecode and its blocks
/// (track, absolute timecode, key frame).
#[derive(Debug, Default, PartialEq)]
struct OracleCluster {
    timecode: u64,
    blocks: Vec<(u64, i64, bool)>,
}

fn oracle(data: &[u8]) -> Vec<OracleCluster> {
    let mut it = WebmIterator::new(
        std::io::Cursor::new(data.to_vec()),
        &[MatroskaSpec::BlockGroup(Master::Start)],
    );
    it.emit_master_end_when_eof(false);
    let mut clusters: Vec<OracleCluster> = Vec::new();
    for tag in it {
        let Ok(tag) = tag else { break };
        match &tag {
            MatroskaSpec::Cluster(Master::Start) => clusters.push(OracleCluster::default()),
            MatroskaSpec::Timestamp(tc) => {
                clusters.last_mut().expect("in a cluster").timecode = *tc
            }
            MatroskaSpec::SimpleBlock(_) => {
                let b = SimpleBlock::try_from(&tag).unwrap();
                let c = clusters.last_mut().unwrap();
                c.blocks.push((
                    b.track,
                    c.timecode as i64 + i64::from(b.timestamp),
                    b.keyframe,
                ));
            }
            MatroskaSpec::BlockGroup(Master::Full(children)) => {
                let block = children
                    .iter()
                    .find(|t| matches!(t, MatroskaSpec::Block(_)))
                    .unwrap();
                let b = Block::try_from(block).unwrap();
                let key = !children
                    .iter()
                    .any(|t| matches!(t, MatroskaSpec::ReferenceBlock(_)));
                let c = clusters.last_mut().unwrap();
                c.blocks
                    .push((b.track, c.timecode as i64 + i64::from(b.timestamp), key));
            }
            _ => {}
        }
    }
    clusters
}

#[test]
fn every_fixture_matches_the_independent_parser() {
    for name in FIXTURES {
        let data = fixture(name);
        let (events, error) = read_all(&data);
        let fragments: Vec<&Fragment> = events.iter().filter_map(Event::fragment).collect();
        let mut expected = oracle(&data);
        if *name == "output-get-media-equal-timecode.mkv" {
            // Cut off inside the second fragment: reported, and the cut fragment not emitted.
            assert!(
                matches!(error, Some(MkvError::Truncated { .. })),
                "{name}: {error:?}"
            );
            expected.pop();
        } else {
            assert_eq!(error, None, "{name}");
        }
        assert_eq!(fragments.len(), expected.len(), "{name}: fragment count");
        let starts = events
            .iter()
            .filter(|e| matches!(e, Event::FragmentStart { .. }))
            .count();
        assert!(starts >= fragments.len(), "{name}");
        for (i, (f, o)) in fragments.iter().zip(&expected).enumerate() {
            assert_eq!(f.timecode, o.timecode, "{name} #{i}");
            let mut frames = std::collections::BTreeMap::new();
            for &(track, _, _) in &o.blocks {
                *frames.entry(track).or_insert(0u32) += 1;
            }
            assert_eq!(f.frames, frames, "{name} #{i}");
            if !o.blocks.is_empty() {
                assert_eq!(
                    f.first_frame,
                    o.blocks.iter().map(|b| b.1).min().unwrap(),
                    "{name} #{i}"
                );
                assert_eq!(
                    f.last_frame,
                    o.blocks.iter().map(|b| b.1).max().unwrap(),
                    "{name} #{i}"
                );
            }
            let keys: Vec<(u64, i64)> = o
                .blocks
                .iter()
                .filter(|b| b.2)
                .map(|b| (b.0, b.1))
                .collect();
            let got: Vec<(u64, i64)> = f.key_frames.iter().map(|k| (k.track, k.timecode)).collect();
            assert_eq!(got, keys, "{name} #{i}");
            // The fragment's bytes are exactly the Cluster element of the input.
            let bytes = concat(&f.bytes);
            assert_eq!(
                &data[f.offset as usize..f.offset as usize + bytes.len()],
                &bytes[..],
                "{name} #{i}"
            );
            assert_eq!(&bytes[..4], &[0x1F, 0x43, 0xB6, 0x75]);
        }
    }
}

#[test]
fn producer_uploads_have_the_known_shape() {
    let (events, error) = read_all(&fixture("producer-c-1.6.4_h264_aac_putmedia.mkv"));
    assert_eq!(error, None);
    let Event::TrackHeader(h) = &events[0] else {
        panic!("{:?}", events[0])
    };
    assert_eq!(h.tracks.len(), 2);
    assert_eq!(h.tracks[0].codec_id, "V_MPEG4/ISO/AVC");
    assert_eq!(h.tracks[1].codec_id, "A_AAC");
    assert_eq!(h.tracks[1].codec_private.len(), 2);
    assert_eq!(h.timecode_scale, 1_000_000);
    let timecodes: Vec<u64> = events
        .iter()
        .filter_map(|e| {
            if let Event::Fragment(f) = e {
                Some(f.timecode)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(timecodes, [0, 1800, 3600]);
    // The C producer sends its Clusters with an unknown size.
    assert!(
        events
            .iter()
            .filter_map(Event::fragment)
            .all(|f| f.unknown_size)
    );
    // The upload ends with the producer's end-of-fragment tag, after the last fragment.
    let last = events.last().unwrap();
    assert!(
        matches!(
            last,
            Event::Tags {
                end_of_fragment: true,
                ..
            }
        ),
        "{last:?}"
    );
    assert!(matches!(
        events[events.len() - 2],
        Event::Fragment(Fragment { timecode: 3600, .. })
    ));
    // The replayed header is the input's bytes up to the first Cluster.
    let data = fixture("producer-c-1.6.4_h264_aac_putmedia.mkv");
    assert_eq!(concat(&h.ebml_header), &data[..40]);
    assert_eq!(concat(&h.segment_header), &data[45..350]);
}

#[test]
fn getmedia_output_is_one_document_per_fragment() {
    let (events, error) = read_all(&fixture("output_get_media.mkv"));
    assert_eq!(error, None);
    let headers = events
        .iter()
        .filter(|e| matches!(e, Event::TrackHeader(_)))
        .count();
    let fragments = events
        .iter()
        .filter(|e| matches!(e, Event::Fragment(_)))
        .count();
    assert_eq!(headers, fragments);
    let numbers: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Tags { tags, .. } => tags
                .iter()
                .find(|t| t.name == "AWS_KINESISVIDEO_FRAGMENT_NUMBER")
                .map(|t| t.value.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(numbers.len(), fragments);
    assert!(numbers[0].starts_with("913438523331814323926"));
}

#[test]
fn fragment_bytes_are_slices_of_the_pushed_chunks() {
    let data = fixture("kvssink-3.6.0_h264_putmedia.mkv");
    let (events, _) = read_chunked(&data, &[65536], Limits::default());
    let range = data.as_ptr() as usize..data.as_ptr() as usize + data.len();
    for e in &events {
        if let Event::Fragment(f) = e {
            assert!(f.bytes.len() <= (f.size() as usize).div_ceil(65536) + 1);
            for b in &f.bytes {
                assert!(range.contains(&(b.as_ptr() as usize)), "copied, not sliced");
            }
        }
    }
}

#[test]
fn back_to_back_documents_are_header_versions() {
    let one = fixture("producer-c-1.6.4_h264_putmedia.mkv");
    let two = Bytes::from([&one[..], &one[..]].concat());
    let (events, error) = read_all(&two);
    assert_eq!(error, None);
    let versions: Vec<u32> = events
        .iter()
        .filter_map(|e| {
            if let Event::TrackHeader(h) = e {
                Some(h.version)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(versions, [0, 1]);
    let (single, _) = read_all(&one);
    let n = single
        .iter()
        .filter(|e| matches!(e, Event::Fragment(_)))
        .count();
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Fragment(_)))
            .count(),
        2 * n
    );
}

#[test]
fn one_byte_chunks_give_the_same_events() {
    for name in [
        "producer-c-1.6.4_h264_aac_putmedia.mkv",
        "output_get_media.mkv",
        "test_mixed_tags.mkv",
    ] {
        let data = fixture(name);
        let whole = read_all(&data);
        let bytewise = read_chunked(&data, &[1], Limits::default());
        assert_eq!(normalized(&whole.0), normalized(&bytewise.0), "{name}");
        assert_eq!(whole.1, bytewise.1, "{name}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_chunking_gives_the_same_events(
        fixture_index in 0..FIXTURES.len(),
        sizes in proptest::collection::vec(1usize..70_000, 1..8),
    ) {
        let data = fixture(FIXTURES[fixture_index]);
        let whole = read_all(&data);
        let chunked = read_chunked(&data, &sizes, Limits::default());
        prop_assert_eq!(normalized(&whole.0), normalized(&chunked.0));
        prop_assert_eq!(whole.1, chunked.1);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data: Vec<u8>, sizes in proptest::collection::vec(1usize..64, 1..4)) {
        let _ = read_chunked(&Bytes::from(data), &sizes, Limits::default());
    }

    #[test]
    fn mutated_fixtures_never_panic(at in 0usize..5000, byte: u8, fixture_index in 0..3usize) {
        let mut data = fixture(FIXTURES[fixture_index]).to_vec();
        let i = at % data.len();
        data[i] = byte;
        let _ = read_chunked(&Bytes::from(data), &[4096], Limits::default());
    }
}

/// A small valid document: EBML header, Segment (unknown size), Info, Tracks (one video track),
/// then `body` (clusters and more).
fn doc(body: &[u8]) -> Bytes {
    let mut out = Vec::new();
    ebml::write_master(&mut out, ids::EBML, |b| {
        ebml::write_bytes(b, ids::DOC_TYPE, b"matroska")
    });
    ebml::write_id(&mut out, ids::SEGMENT);
    out.extend_from_slice(&ebml::UNKNOWN_SIZE);
    ebml::write_master(&mut out, ids::INFO, |b| {
        ebml::write_uint(b, ids::TIMECODE_SCALE, 1_000_000)
    });
    ebml::write_master(&mut out, ids::TRACKS, |b| {
        ebml::write_master(b, ids::TRACK_ENTRY, |b| {
            ebml::write_uint(b, ids::TRACK_NUMBER, 1);
            ebml::write_bytes(b, ids::CODEC_ID, b"V_MPEG4/ISO/AVC");
        })
    });
    out.extend_from_slice(body);
    Bytes::from(out)
}

fn simple_block(track: u8, rel: i16, key: bool, payload: usize) -> Vec<u8> {
    let mut data = vec![0x80 | track];
    data.extend_from_slice(&rel.to_be_bytes());
    data.push(if key { 0x80 } else { 0 });
    data.resize(4 + payload, 0xAB);
    let mut out = Vec::new();
    ebml::write_bytes(&mut out, ids::SIMPLE_BLOCK, &data);
    out
}

fn cluster(timecode: u64, blocks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    ebml::write_id(&mut out, ids::CLUSTER);
    out.extend_from_slice(&ebml::UNKNOWN_SIZE);
    ebml::write_uint(&mut out, ids::TIMECODE, timecode);
    for b in blocks {
        out.extend_from_slice(b);
    }
    out
}

fn error_of(data: Bytes, limits: Limits) -> Option<MkvError> {
    read_chunked(&data, &[7], limits).1
}

#[test]
fn malformed_input_gets_specific_errors() {
    let ok = doc(&cluster(
        0,
        &[simple_block(1, 0, true, 10), simple_block(1, 33, false, 10)],
    ));
    assert_eq!(error_of(ok.clone(), Limits::default()), None);

    // Truncated at every offset: an error (or, exactly at an element boundary after a complete
    // cluster, a shorter valid stream), never a panic.
    for cut in 1..ok.len() {
        let (events, error) = read_chunked(&ok.slice(..cut), &[5], Limits::default());
        if error.is_none() {
            assert!(
                events
                    .iter()
                    .all(|e| !matches!(e, Event::Fragment(f) if f.frame_count() == 2))
                    || cut == ok.len()
            );
        }
    }
    assert!(matches!(
        error_of(ok.slice(..ok.len() - 3), Limits::default()),
        Some(MkvError::Truncated { .. })
    ));

    let garbage = Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n");
    assert!(matches!(
        error_of(garbage, Limits::default()),
        Some(MkvError::NotMatroska { .. } | MkvError::InvalidId { .. })
    ));

    let mut webm_doc = Vec::new();
    ebml::write_master(&mut webm_doc, ids::EBML, |b| {
        ebml::write_bytes(b, ids::DOC_TYPE, b"mp4")
    });
    assert!(matches!(
        error_of(Bytes::from(webm_doc), Limits::default()),
        Some(MkvError::NotMatroska { .. })
    ));

    // A size larger than the parent.
    let mut big_child = Vec::new();
    ebml::write_id(&mut big_child, ids::CLUSTER);
    ebml::write_size(&mut big_child, 10);
    ebml::write_bytes(&mut big_child, ids::TIMECODE, &[0; 20]);
    assert!(matches!(
        error_of(doc(&big_child), Limits::default()),
        Some(MkvError::ChildExceedsParent { .. })
    ));

    // Unknown size where it is not allowed.
    let mut unknown_block = cluster(0, &[]);
    ebml::write_id(&mut unknown_block, ids::SIMPLE_BLOCK);
    unknown_block.extend_from_slice(&ebml::UNKNOWN_SIZE);
    assert!(matches!(
        error_of(doc(&unknown_block), Limits::default()),
        Some(MkvError::UnknownSizeNotAllowed { .. })
    ));

    // Zero-length / overlong IDs and 9-byte VINTs.
    assert!(matches!(
        error_of(doc(&[0x00, 0x81, 0x00]), Limits::default()),
        Some(MkvError::InvalidId { .. })
    ));
    assert!(matches!(
        error_of(
            doc(&[0xEC, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
            Limits::default()
        ),
        Some(MkvError::InvalidSize { .. })
    ));

    // 2^56-2 declared: refused by limit at once, nothing allocated.
    let mut huge = cluster(0, &[]);
    ebml::write_id(&mut huge, ids::SIMPLE_BLOCK);
    huge.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]);
    assert!(matches!(
        error_of(doc(&huge), Limits::default()),
        Some(MkvError::FragmentTooLarge { .. })
    ));
    let mut huge_tags = Vec::new();
    ebml::write_id(&mut huge_tags, ids::TAGS);
    huge_tags.extend_from_slice(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]);
    assert!(matches!(
        error_of(doc(&huge_tags), Limits::default()),
        Some(MkvError::ElementTooLarge { .. })
    ));

    // Fragment size and duration limits.
    let small = Limits {
        max_fragment_size: 100,
        ..Limits::default()
    };
    let blocks: Vec<Vec<u8>> = (0..20).map(|i| simple_block(1, i, i == 0, 10)).collect();
    assert!(matches!(
        error_of(doc(&cluster(0, &blocks)), small),
        Some(MkvError::FragmentTooLarge { .. })
    ));
    let long = doc(&cluster(
        0,
        &[
            simple_block(1, 0, true, 1),
            simple_block(1, 30_000, false, 1),
        ],
    ));
    assert!(matches!(
        error_of(long, Limits::default()),
        Some(MkvError::FragmentTooLong { .. })
    ));

    // A block for a track the Tracks element does not define.
    let unknown_track = doc(&cluster(0, &[simple_block(2, 0, true, 1)]));
    assert!(matches!(
        error_of(unknown_track, Limits::default()),
        Some(MkvError::UnknownTrack { track: 2, .. })
    ));

    // A block before the cluster's Timecode.
    let mut no_tc = Vec::new();
    ebml::write_id(&mut no_tc, ids::CLUSTER);
    no_tc.extend_from_slice(&ebml::UNKNOWN_SIZE);
    no_tc.extend_from_slice(&simple_block(1, 0, true, 1));
    assert!(matches!(
        error_of(doc(&no_tc), Limits::default()),
        Some(MkvError::MissingTimecode { .. })
    ));

    // Too many tracks.
    let one_track = Limits {
        max_tracks: 0,
        ..Limits::default()
    };
    assert!(matches!(
        error_of(ok.clone(), one_track),
        Some(MkvError::TooManyTracks { .. })
    ));

    // Nesting depth bomb: SimpleTags nested a thousand deep.
    let mut nested = Vec::new();
    ebml::write_bytes(&mut nested, ids::TAG_NAME, b"x");
    for _ in 0..1000 {
        let mut outer = Vec::new();
        ebml::write_bytes(&mut outer, ids::SIMPLE_TAG, &nested);
        nested = outer;
    }
    let mut tags = Vec::new();
    ebml::write_master(&mut tags, ids::TAGS, |b| {
        ebml::write_bytes(b, ids::TAG, &nested)
    });
    let e = error_of(doc(&tags), Limits::default());
    assert!(matches!(e, Some(MkvError::TooDeep { .. })), "{e:?}");
}

#[test]
fn a_million_tiny_elements_are_fine_and_bounded() {
    // 10^6 Void elements inside a cluster: one fragment, no error, memory bounded by the cluster.
    let mut body = cluster(0, &[simple_block(1, 0, true, 1)]);
    body.extend(std::iter::repeat_n([ids::VOID as u8, 0x80], 1_000_000).flatten());
    let (events, error) = read_chunked(&doc(&body), &[65536], Limits::default());
    assert_eq!(error, None);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Fragment(_)))
            .count(),
        1
    );
    // And 10^6 Voids at segment level are not kept at all.
    let mut top = cluster(0, &[simple_block(1, 0, true, 1)]);
    let mut tail = Vec::new();
    ebml::write_master(&mut tail, ids::TAGS, |_| {});
    top.extend(tail);
    top.extend(std::iter::repeat_n([ids::VOID as u8, 0x80], 1_000_000).flatten());
    let mut r = MkvReader::new(Limits::default());
    let data = doc(&top);
    for chunk in data.chunks(65536) {
        r.push(Bytes::copy_from_slice(chunk));
        while let Some(e) = r.poll() {
            e.unwrap();
        }
        assert!(r.buffered() < 65536 + 16);
    }
}

#[test]
fn block_groups_and_lacing_count_frames() {
    let mut group = Vec::new();
    ebml::write_master(&mut group, ids::BLOCK_GROUP, |b| {
        ebml::write_bytes(b, ids::BLOCK, &[0x81, 0, 10, 0x00, 0xAA]);
        ebml::write_uint(b, ids::BLOCK_DURATION, 5);
        ebml::write_uint(b, ids::REFERENCE_BLOCK, 1);
    });
    // Xiph lacing (flags 0x02), 3 frames (lace count byte 2).
    let laced = {
        let mut out = Vec::new();
        ebml::write_bytes(
            &mut out,
            ids::SIMPLE_BLOCK,
            &[0x81, 0, 20, 0x82, 2, 1, 1, 0xA, 0xB, 0xC],
        );
        out
    };
    let data = doc(&cluster(100, &[simple_block(1, 0, true, 3), group, laced]));
    let (events, error) = read_all(&data);
    assert_eq!(error, None);
    let f = events.iter().find_map(Event::fragment).unwrap();
    assert_eq!(f.frames[&1], 5);
    assert_eq!((f.first_frame, f.last_frame), (100, 120));
    assert_eq!(
        f.key_frames.len(),
        2,
        "the group has a ReferenceBlock: not a key frame"
    );
    assert_eq!(f.duration, 20 + 10, "last interval on the track");
}

#[test]
fn fragment_bytes_can_be_taken_as_they_arrive() {
    let data = fixture("producer-c-1.6.4_h264_aac_putmedia.mkv");
    let (whole, _) = read_all(&data);
    let want: Vec<Vec<u8>> = whole
        .iter()
        .filter_map(|e| {
            if let Event::Fragment(f) = e {
                Some(concat(&f.bytes))
            } else {
                None
            }
        })
        .collect();
    let mut r = MkvReader::new(Limits::default());
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut taken = Vec::new();
    for chunk in data.chunks(10_000) {
        r.push(Bytes::copy_from_slice(chunk));
        while let Some(e) = r.poll() {
            if let Event::Fragment(f) = e.unwrap() {
                taken.extend(concat(&f.bytes));
                got.push(std::mem::take(&mut taken));
            }
        }
        taken.extend(concat(&r.take_fragment_bytes()));
    }
    r.finish();
    while let Some(e) = r.poll() {
        if let Event::Fragment(f) = e.unwrap() {
            taken.extend(concat(&f.bytes));
            got.push(std::mem::take(&mut taken));
        }
    }
    assert_eq!(got, want);
}

#[test]
fn a_cluster_ending_in_an_empty_element_has_no_frames() {
    // Found by the `remux` fuzz target: Cluster { Timecode 0, Void of size 0 } at the very end.
    let cluster = Bytes::from_static(&[0x1f, 0x43, 0xb6, 0x75, 0x85, 0xe7, 0x81, 0x00, 0xec, 0x80]);
    assert_eq!(cluster_frames(&[cluster]), Ok(Vec::new()));
}

#[test]
fn a_cluster_timecode_beyond_i64_is_refused() {
    // Found by the `remux` fuzz target: Timecode 2^63 and a SimpleBlock 1 ms before it.
    let mut cluster = vec![
        0x1f, 0x43, 0xb6, 0x75, 0x94, 0xe7, 0x88, 0x80, 0, 0, 0, 0, 0, 0, 0,
    ];
    cluster.extend_from_slice(&[0xa3, 0x88, 0x81, 0xff, 0xff, 0x80, 1, 2, 3, 4]);
    assert!(matches!(
        cluster_frames(&[Bytes::from(cluster)]),
        Err(MkvError::InvalidValue { .. })
    ));
}
