//! Parsing of the small level-1 elements the reader buffers whole: the EBML header (RFC 8794
//! §11.2), Info and Tracks (RFC 9559 §5.1.2, §5.1.4) and Tags (§5.1.8). Media payloads never
//! pass through here.

use bytes::Bytes;

use super::ebml::{Size, read_float, read_id, read_size, read_string, read_uint};
use super::ids;
use super::{MkvError, SimpleTag, Track, TrackType};

/// Deepest nesting accepted inside a buffered element (SimpleTags may nest).
const MAX_DEPTH: usize = 8;

/// The children of a master element's data: `(id, data, offset of the child in data)`.
pub fn children(
    data: &[u8],
    base: u64,
) -> impl Iterator<Item = Result<(u32, &[u8], u64), MkvError>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        if pos >= data.len() {
            return None;
        }
        let at = base + pos as u64;
        let rest = &data[pos..];
        let parsed = (|| {
            let (id, id_len) = read_id(rest)
                .map_err(|_| MkvError::InvalidId { offset: at })?
                .ok_or(MkvError::ChildExceedsParent { id: 0, offset: at })?;
            let (size, size_len) = read_size(&rest[id_len..])
                .map_err(|_| MkvError::InvalidSize { offset: at })?
                .ok_or(MkvError::ChildExceedsParent { id, offset: at })?;
            let Size::Known(size) = size else {
                return Err(MkvError::UnknownSizeNotAllowed { id, offset: at });
            };
            let start = id_len + size_len;
            let end = u64::try_from(start).ok().and_then(|s| s.checked_add(size));
            match end {
                Some(end) if end <= rest.len() as u64 => {
                    Ok((id, &rest[start..end as usize], start, end as usize))
                }
                _ => Err(MkvError::ChildExceedsParent { id, offset: at }),
            }
        })();
        match parsed {
            Ok((id, child, _, end)) => {
                pos += end;
                Some(Ok((id, child, at)))
            }
            Err(e) => {
                pos = data.len();
                Some(Err(e))
            }
        }
    })
}

fn uint(id: u32, data: &[u8], offset: u64) -> Result<u64, MkvError> {
    read_uint(data).ok_or(MkvError::InvalidValue { id, offset })
}

/// Checks the EBML header's DocType: Matroska or WebM.
pub fn check_ebml_header(data: &[u8], base: u64) -> Result<(), MkvError> {
    for child in children(data, base) {
        let (id, value, at) = child?;
        if id == ids::DOC_TYPE {
            let doc_type = read_string(value);
            if doc_type != "matroska" && doc_type != "webm" {
                return Err(MkvError::NotMatroska { offset: at });
            }
        }
    }
    Ok(())
}

/// The TimecodeScale of an Info element (nanoseconds per timecode unit; default 1,000,000).
pub fn parse_info(data: &[u8], base: u64) -> Result<u64, MkvError> {
    let mut scale = 1_000_000;
    for child in children(data, base) {
        let (id, value, at) = child?;
        if id == ids::TIMECODE_SCALE {
            scale = uint(id, value, at)?;
            if scale == 0 {
                return Err(MkvError::InvalidValue { id, offset: at });
            }
        }
    }
    Ok(scale)
}

/// The tracks of a Tracks element.
pub fn parse_tracks(data: &[u8], base: u64, max_tracks: usize) -> Result<Vec<Track>, MkvError> {
    let mut tracks: Vec<Track> = Vec::new();
    for child in children(data, base) {
        let (id, entry, at) = child?;
        if id != ids::TRACK_ENTRY {
            continue;
        }
        if tracks.len() == max_tracks {
            return Err(MkvError::TooManyTracks {
                max: max_tracks,
                offset: at,
            });
        }
        let track = parse_track_entry(entry, at)?;
        if tracks.iter().any(|t| t.number == track.number) {
            return Err(MkvError::InvalidValue {
                id: ids::TRACK_NUMBER,
                offset: at,
            });
        }
        tracks.push(track);
    }
    Ok(tracks)
}

fn parse_track_entry(data: &[u8], base: u64) -> Result<Track, MkvError> {
    let mut t = Track::default();
    for child in children(data, base) {
        let (id, value, at) = child?;
        match id {
            ids::TRACK_NUMBER => t.number = uint(id, value, at)?,
            ids::TRACK_UID => t.uid = uint(id, value, at)?,
            ids::TRACK_TYPE => t.track_type = TrackType::from_code(uint(id, value, at)?),
            ids::CODEC_ID => t.codec_id = read_string(value),
            ids::CODEC_PRIVATE => t.codec_private = Bytes::copy_from_slice(value),
            ids::DEFAULT_DURATION => t.default_duration_ns = Some(uint(id, value, at)?),
            ids::VIDEO => {
                for child in children(value, at) {
                    let (id, v, at) = child?;
                    match id {
                        ids::PIXEL_WIDTH => t.width = Some(uint(id, v, at)?),
                        ids::PIXEL_HEIGHT => t.height = Some(uint(id, v, at)?),
                        _ => {}
                    }
                }
            }
            ids::AUDIO => {
                for child in children(value, at) {
                    let (id, v, at) = child?;
                    match id {
                        ids::SAMPLING_FREQUENCY => {
                            t.sampling_frequency = Some(
                                read_float(v).ok_or(MkvError::InvalidValue { id, offset: at })?,
                            )
                        }
                        ids::CHANNELS => t.channels = Some(uint(id, v, at)?),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if t.number == 0 {
        return Err(MkvError::InvalidValue {
            id: ids::TRACK_NUMBER,
            offset: base,
        });
    }
    Ok(t)
}

/// The SimpleTags of a Tags element, nested ones flattened in document order.
pub fn parse_tags(data: &[u8], base: u64) -> Result<Vec<SimpleTag>, MkvError> {
    let mut out = Vec::new();
    for child in children(data, base) {
        let (id, tag, at) = child?;
        if id == ids::TAG {
            for child in children(tag, at) {
                let (id, simple, at) = child?;
                if id == ids::SIMPLE_TAG {
                    simple_tag(simple, at, 1, &mut out)?;
                }
            }
        }
    }
    Ok(out)
}

fn simple_tag(
    data: &[u8],
    base: u64,
    depth: usize,
    out: &mut Vec<SimpleTag>,
) -> Result<(), MkvError> {
    if depth > MAX_DEPTH {
        return Err(MkvError::TooDeep { offset: base });
    }
    let index = out.len();
    out.push(SimpleTag::default());
    for child in children(data, base) {
        let (id, value, at) = child?;
        match id {
            ids::TAG_NAME => out[index].name = read_string(value),
            ids::TAG_STRING => out[index].value = read_string(value),
            ids::TAG_BINARY => out[index].binary = Some(Bytes::copy_from_slice(value)),
            ids::SIMPLE_TAG => simple_tag(value, at, depth + 1, out)?,
            _ => {}
        }
    }
    Ok(())
}
