//! Fuzzes the MKV reader with arbitrary bytes cut into arbitrary chunks: no input may panic,
//! hang or grow memory past the limits. The first two bytes choose the chunk sizes.
#![no_main]

use bytes::Bytes;
use kinescope_media::mkv::{Limits, MkvReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (sizes, body) = data.split_at(data.len().min(2));
    let step = |i: usize| 1 + usize::from(*sizes.get(i % sizes.len().max(1)).unwrap_or(&255)) * 37;
    let limits = Limits { max_element_size: 1 << 16, max_fragment_size: 1 << 20, ..Limits::default() };
    let mut reader = MkvReader::new(limits);
    let body = Bytes::copy_from_slice(body);
    let (mut pos, mut i) = (0, 0);
    while pos < body.len() {
        let end = (pos + step(i)).min(body.len());
        reader.push(body.slice(pos..end));
        while let Some(event) = reader.poll() {
            if event.is_err() {
                return;
            }
        }
        assert!(reader.buffered() <= (1 << 16) + 64 + step(i));
        pos = end;
        i += 1;
    }
    reader.finish();
    while reader.poll().is_some() {}
});
