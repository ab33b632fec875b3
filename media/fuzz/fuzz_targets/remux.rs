//! Fuzzes the remuxers with arbitrary stored-fragment bytes: a Cluster as an upload could have
//! left it (the ingest checks structure, not frame contents), timed by `fragment_samples` and
//! written as fMP4 and MPEG-TS for an H.264 + AAC track pair with real codec configurations.
//! No input may panic; errors are fine. The first byte chooses the fragment's end time.
#![no_main]

use bytes::Bytes;
use kinescope_media::mkv::{Track, TrackType};
use kinescope_media::remux::{TrackConfig, fragment_samples};
use kinescope_media::{mp4, ts};
use libfuzzer_sys::fuzz_target;

/// The avcC and AudioSpecificConfig of the C producer's sample upload (testdata/codec; each
/// file starts with the `codec` target's selector byte, skipped below).
const AVCC: &[u8] = include_bytes!("../../../testdata/codec/producer-c-1.6.4-avcc");
const ASC: &[u8] = include_bytes!("../../../testdata/codec/producer-c-1.6.4-aac-asc");

fuzz_target!(|data: &[u8]| {
    let Some((&end, cluster)) = data.split_first() else {
        return;
    };
    let track = |number, track_type, codec_id: &str, private: &'static [u8]| Track {
        number,
        track_type,
        codec_id: codec_id.into(),
        codec_private: Bytes::from_static(&private[1..]),
        ..Track::default()
    };
    let configs = [
        TrackConfig::from_track(&track(1, TrackType::Video, "V_MPEG4/ISO/AVC", AVCC)).unwrap(),
        TrackConfig::from_track(&track(2, TrackType::Audio, "A_AAC", ASC)).unwrap(),
    ];
    let start = 1_700_000_000_000_000_000;
    let end = (end != 0).then(|| start + u64::from(end) * 10_000_000);
    let Ok(samples) = fragment_samples(&configs, 1_000_000, &[Bytes::copy_from_slice(cluster)], start, end)
    else {
        return;
    };
    let runs: Vec<_> = configs.iter().zip(&samples).collect();
    let _ = mp4::media_segment(1, &runs);
    let _ = mp4::init_segment(&configs.iter().collect::<Vec<_>>());
    let _ = ts::segment(&configs.iter().collect::<Vec<_>>(), &samples);
});
