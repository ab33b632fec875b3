//! MKV reader throughput and GetMedia framing cost (BENCHMARKS.md). The reader is fed the three
//! producer uploads in 64 KiB chunks, next to a plain copy of the same bytes in the same chunks
//! (the baseline: the reader should look at element headers only, never copy payloads).
//!   cargo bench -p kinescope-media --bench mkv

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kinescope_media::mkv::{Event, FragmentTags, Limits, MkvReader, getmedia_fragment};

const CHUNK: usize = 64 * 1024;

fn uploads() -> Bytes {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/mkv");
    let mut all = Vec::new();
    for name in [
        "producer-c-1.6.4_h264_putmedia.mkv",
        "producer-c-1.6.4_h264_aac_putmedia.mkv",
        "kvssink-3.6.0_h264_putmedia.mkv",
    ] {
        all.extend(std::fs::read(dir.join(name)).expect("testdata"));
    }
    Bytes::from(all)
}

fn read(data: &Bytes) -> usize {
    let mut reader = MkvReader::new(Limits::default());
    let mut fragments = 0;
    for start in (0..data.len()).step_by(CHUNK) {
        reader.push(data.slice(start..(start + CHUNK).min(data.len())));
        while let Some(e) = reader.poll() {
            if let Event::Fragment(f) = e.expect("valid input") {
                fragments += black_box(f).frame_count() as usize;
            }
        }
    }
    reader.finish();
    while reader.poll().is_some() {}
    fragments
}

fn bench(c: &mut Criterion) {
    let data = uploads();
    let mut g = c.benchmark_group("mkv_read_64KiB_chunks");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("memcpy_baseline", |b| {
        let mut dst = vec![0u8; data.len()];
        b.iter(|| {
            for (d, s) in dst.chunks_mut(CHUNK).zip(data.chunks(CHUNK)) {
                d.copy_from_slice(s);
            }
            black_box(&dst);
        })
    });
    g.bench_function("mkv_reader", |b| b.iter(|| read(black_box(&data))));
    g.finish();

    let mut reader = MkvReader::new(Limits::default());
    reader.push(data.clone());
    reader.finish();
    let (mut header, mut biggest) = (None, None);
    while let Some(e) = reader.poll() {
        match e.expect("valid input") {
            Event::TrackHeader(h) if header.is_none() => header = Some(h),
            Event::Fragment(f)
                if biggest
                    .as_ref()
                    .is_none_or(|b: &kinescope_media::mkv::Fragment| f.size() > b.size()) =>
            {
                biggest = Some(f)
            }
            _ => {}
        }
    }
    let (header, fragment) = (header.expect("header"), biggest.expect("fragment"));
    let mut g = c.benchmark_group("getmedia_framing");
    g.throughput(Throughput::Bytes(fragment.size()));
    g.bench_function("frame_one_fragment", |b| {
        b.iter(|| {
            let tags = FragmentTags {
                fragment_number: "91343852333181432392682062607743920146159169392",
                server_timestamp_ms: 1,
                producer_timestamp_ms: 2,
                metadata: &[],
            };
            black_box(getmedia_fragment(
                &header,
                tags,
                &fragment.bytes,
                0,
                "91343852333181432392682062607743920146159169392",
            ))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
