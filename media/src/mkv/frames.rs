//! The frames of a stored fragment: walks a Cluster's bytes (RFC 9559 §10, SimpleBlock and
//! BlockGroup) and returns each frame's track, absolute timecode, key flag and payload. Payloads
//! are zero-copy slices of the fragment's bytes, except a frame that straddles two of its slices,
//! which is copied once. Remuxing (fMP4, TS, clips) starts here.

use bytes::Bytes;

use super::ebml::{Size, read_id, read_size, read_uint};
use super::input::Input;
use super::{Frame, MkvError, ids};

/// Every frame of the Cluster in `cluster`, in stored order. Laced blocks are refused
/// (`MkvError::InvalidValue`): KVS producers do not lace.
pub fn cluster_frames(cluster: &[Bytes]) -> Result<Vec<Frame>, MkvError> {
    timed_cluster_frames(cluster).map(|(_, frames)| frames)
}

/// [`cluster_frames`] with the Cluster's own Timecode (`None` when it has none, which is only
/// valid when it has no blocks either): remuxers place frames relative to it.
pub(crate) fn timed_cluster_frames(
    cluster: &[Bytes],
) -> Result<(Option<u64>, Vec<Frame>), MkvError> {
    let mut input = Input::default();
    for b in cluster {
        input.push(b.clone());
    }
    let (id, size) = header(&mut input)?;
    if id != ids::CLUSTER {
        return Err(MkvError::Misplaced { id, offset: 0 });
    }
    let end = match size {
        Size::Known(s) => input.offset().saturating_add(s),
        Size::Unknown => input.offset() + input.len() as u64,
    };
    let mut timecode = None;
    let mut frames = Vec::new();
    while input.offset() < end {
        let offset = input.offset();
        let (id, size) = header(&mut input)?;
        let Size::Known(size) = size else {
            return Err(MkvError::UnknownSizeNotAllowed { id, offset });
        };
        if size > input.len() as u64 {
            return Err(MkvError::Truncated { offset });
        }
        let data = input.take(size as usize);
        match id {
            ids::TIMECODE => {
                timecode = Some(read_uint(&data).ok_or(MkvError::InvalidValue { id, offset })?)
            }
            ids::SIMPLE_BLOCK => {
                let tc = timecode.ok_or(MkvError::MissingTimecode { offset })?;
                frames.push(block(&data, tc, None, offset)?);
            }
            ids::BLOCK_GROUP => {
                let tc = timecode.ok_or(MkvError::MissingTimecode { offset })?;
                let (mut block_data, mut reference) = (None, false);
                let mut group = Input::default();
                group.push(data);
                while group.len() > 0 {
                    let (id, size) = header(&mut group)?;
                    let Size::Known(size) = size else {
                        return Err(MkvError::UnknownSizeNotAllowed { id, offset });
                    };
                    if size > group.len() as u64 {
                        return Err(MkvError::Truncated { offset });
                    }
                    let child = group.take(size as usize);
                    match id {
                        ids::BLOCK => block_data = Some(child),
                        ids::REFERENCE_BLOCK => reference = true,
                        _ => {}
                    }
                }
                let data = block_data.ok_or(MkvError::InvalidValue {
                    id: ids::BLOCK_GROUP,
                    offset,
                })?;
                frames.push(block(&data, tc, Some(!reference), offset)?);
            }
            _ => {}
        }
    }
    Ok((timecode, frames))
}

fn header(input: &mut Input) -> Result<(u32, Size), MkvError> {
    let offset = input.offset();
    let buf = input
        .peek(input.len().min(12))
        .ok_or(MkvError::Truncated { offset })?;
    let (id, n) = read_id(&buf)
        .map_err(|_| MkvError::InvalidId { offset })?
        .ok_or(MkvError::Truncated { offset })?;
    let (size, m) = read_size(&buf[n..])
        .map_err(|_| MkvError::InvalidSize { offset })?
        .ok_or(MkvError::Truncated { offset })?;
    input.advance(n + m);
    Ok((id, size))
}

/// One block: `key` is the SimpleBlock flag unless a BlockGroup decided it.
fn block(
    data: &Bytes,
    cluster_timecode: u64,
    key: Option<bool>,
    offset: u64,
) -> Result<Frame, MkvError> {
    let invalid = MkvError::InvalidValue {
        id: ids::SIMPLE_BLOCK,
        offset,
    };
    let Ok(Some((Size::Known(track), n))) = read_size(data) else {
        return Err(invalid);
    };
    let head = data.get(n..n + 3).ok_or(invalid.clone())?;
    let (relative, flags) = (i16::from_be_bytes([head[0], head[1]]), head[2]);
    if flags & 0x06 != 0 {
        return Err(invalid);
    }
    // A Cluster Timecode beyond i64 (or one the block's offset overflows) is no time at all.
    let timecode = i64::try_from(cluster_timecode)
        .ok()
        .and_then(|t| t.checked_add(i64::from(relative)))
        .ok_or(invalid)?;
    Ok(Frame {
        track,
        timecode,
        key: key.unwrap_or(flags & 0x80 != 0),
        data: data.slice(n + 3..),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mkv::tests::{fixture, read_chunked};
    use crate::mkv::{Event, Limits, ProducerWriter, Track, TrackType};

    #[test]
    fn frames_of_real_fragments_match_the_reader() {
        for name in [
            "producer-c-1.6.4_h264_aac_putmedia.mkv",
            "kvssink-3.6.0_h264_putmedia.mkv",
            "output_get_media.mkv",
        ] {
            let data = fixture(name);
            let (events, _) = read_chunked(&data, &[65536], Limits::default());
            for f in events.iter().filter_map(Event::fragment) {
                let frames = cluster_frames(&f.bytes).unwrap();
                assert_eq!(frames.len() as u32, f.frame_count(), "{name}");
                let keys: Vec<(u64, i64)> = frames
                    .iter()
                    .filter(|x| x.key)
                    .map(|x| (x.track, x.timecode))
                    .collect();
                let want: Vec<(u64, i64)> =
                    f.key_frames.iter().map(|k| (k.track, k.timecode)).collect();
                assert_eq!(keys, want, "{name}");
                // Payloads are slices of the stored bytes unless they straddle two slices.
                let inside = frames
                    .iter()
                    .filter(|x| {
                        f.bytes.iter().any(|b| {
                            let r = b.as_ptr() as usize..b.as_ptr() as usize + b.len();
                            r.contains(&(x.data.as_ptr() as usize))
                        })
                    })
                    .count();
                assert!(
                    inside + f.bytes.len() >= frames.len(),
                    "{name}: {inside} of {}",
                    frames.len()
                );
            }
        }
    }

    #[test]
    fn writer_output_round_trips_through_frames() {
        let track = Track {
            number: 1,
            uid: 1,
            track_type: TrackType::Video,
            codec_id: "V_MPEG4/ISO/AVC".into(),
            ..Track::default()
        };
        let w = ProducerWriter::new(vec![track], 1_000_000);
        let input: Vec<Frame> = (0..5)
            .map(|i| Frame {
                track: 1,
                timecode: 1000 + 33 * i,
                key: i == 0,
                data: Bytes::from(vec![i as u8; 10 + i as usize]),
            })
            .collect();
        assert_eq!(cluster_frames(&w.cluster(&input)).unwrap(), input);
    }
}
