//! Matroska (RFC 9559) as KVS producers send it and as GetMedia returns it: a streaming
//! [`MkvReader`] that turns pushed bytes into track headers, fragments (one per Cluster) and
//! tags, and the writers of GetMedia framing and of producer MKV.

pub mod ebml;
mod elements;
mod frames;
pub mod ids;
mod input;
mod reader;
#[cfg(test)]
pub(crate) mod tests;
mod writer;

use std::collections::BTreeMap;

use bytes::Bytes;

pub use frames::cluster_frames;
pub(crate) use frames::timed_cluster_frames;
pub use reader::MkvReader;
pub use writer::{
    FragmentTags, Frame, ProducerWriter, archived_fragment, getmedia_error, getmedia_fragment,
    parse_stored_header, with_metadata,
};

/// Bounds the reader enforces; each breach is its own error (PutMedia ErrorIds 4001, 4002,
/// 4012 ...). Nothing is allocated from a declared size before it is checked against these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest element read whole into memory (EBML header, Info, Tracks, Tags).
    pub max_element_size: u64,
    /// Largest Cluster, in bytes.
    pub max_fragment_size: u64,
    /// Longest Cluster, first to last frame, in nanoseconds.
    pub max_fragment_duration_ns: u64,
    pub max_tracks: usize,
}

impl Default for Limits {
    /// KVS's documented PutMedia limits (spec §3.4, §7): 50 MB and 20 s per fragment, 3 tracks.
    fn default() -> Self {
        Self {
            max_element_size: 1 << 20,
            max_fragment_size: 50_000_000,
            max_fragment_duration_ns: 20_000_000_000,
            max_tracks: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TrackType {
    Video,
    Audio,
    #[default]
    Other,
}

impl TrackType {
    fn from_code(code: u64) -> Self {
        match code {
            1 => Self::Video,
            2 => Self::Audio,
            _ => Self::Other,
        }
    }
}

/// One TrackEntry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Track {
    pub number: u64,
    pub uid: u64,
    pub track_type: TrackType,
    pub codec_id: String,
    pub codec_private: Bytes,
    pub default_duration_ns: Option<u64>,
    pub width: Option<u64>,
    pub height: Option<u64>,
    pub sampling_frequency: Option<f64>,
    pub channels: Option<u64>,
}

/// What precedes the first Cluster of an MKV document: replayed in front of every fragment by
/// GetMedia (spec §0.11).
#[derive(Debug, Clone, PartialEq)]
pub struct TrackHeader {
    /// Counts the documents (EBML headers) of the stream from 0: a producer that restarts its
    /// MKV mid-connection starts a new version.
    pub version: u32,
    pub tracks: Vec<Track>,
    /// Nanoseconds per timecode unit.
    pub timecode_scale: u64,
    /// The EBML header element, as received.
    pub ebml_header: Vec<Bytes>,
    /// Every level-1 element between the Segment header and the first Cluster (SeekHead, Void,
    /// Info, Tracks, Tags ...), as received.
    pub segment_header: Vec<Bytes>,
}

impl TrackHeader {
    pub fn track(&self, number: u64) -> Option<&Track> {
        self.tracks.iter().find(|t| t.number == number)
    }
}

/// A key frame of a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFrame {
    pub track: u64,
    /// Absolute timecode, in TimecodeScale units.
    pub timecode: i64,
    /// Offset of its block element from the start of the fragment's bytes.
    pub offset: u64,
}

/// One Cluster: a KVS fragment.
#[derive(Debug, Clone, PartialEq)]
pub struct Fragment {
    /// The header version this fragment belongs to.
    pub header_version: u32,
    /// The Cluster's Timecode, which ACKs echo.
    pub timecode: u64,
    /// Absolute timecodes of the earliest and latest frame (both `timecode` when empty).
    pub first_frame: i64,
    pub last_frame: i64,
    /// `last_frame - first_frame` plus the last frame's duration (BlockDuration, else the last
    /// interval seen on that track), in TimecodeScale units.
    pub duration: u64,
    pub timecode_scale: u64,
    pub key_frames: Vec<KeyFrame>,
    /// Frames per track number (laced frames counted one by one).
    pub frames: BTreeMap<u64, u32>,
    /// Offset of the Cluster in the stream.
    pub offset: u64,
    /// The Cluster was sent with an unknown size (as KVS producers send it), so it ended where
    /// the next level-1 element began; Tags that follow it may still belong to its fragment.
    pub unknown_size: bool,
    /// The Cluster element's bytes, as zero-copy slices of the pushed chunks.
    pub bytes: Vec<Bytes>,
}

impl Fragment {
    pub fn size(&self) -> u64 {
        self.bytes.iter().map(|b| b.len() as u64).sum()
    }

    pub fn frame_count(&self) -> u32 {
        self.frames.values().sum()
    }

    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        u64::try_from(u128::from(self.duration) * u128::from(self.timecode_scale) / 1_000_000)
            .unwrap_or(u64::MAX)
    }
}

/// One SimpleTag (nested ones are listed after their parent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimpleTag {
    pub name: String,
    pub value: String,
    pub binary: Option<Bytes>,
}

/// A producer's fragment metadata item (spec §3.5, `putKinesisVideoFragmentMetadata`): a user
/// tag KVS keeps with its fragment and returns after the fragment's Cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataTag {
    pub name: String,
    pub value: String,
}

/// The tag KVS producers send to end a fragment early (spec §3.5).
pub const END_OF_FRAGMENT: &str = "AWS_KINESISVIDEO_END_OF_FRAGMENT";

/// What the reader reports, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The tracks of a new MKV document, emitted at its first Cluster.
    TrackHeader(TrackHeader),
    /// A Cluster began and its Timecode is known (ingest ACKs BUFFERING here).
    FragmentStart { timecode: u64, offset: u64 },
    /// A Cluster is complete.
    Fragment(Fragment),
    /// A level-1 Tags element.
    Tags {
        tags: Vec<SimpleTag>,
        end_of_fragment: bool,
        /// Before the first Cluster of its document: part of the header (spec §0.11), not of
        /// a fragment.
        in_header: bool,
        offset: u64,
    },
}

impl Event {
    /// The fragment, if this is one.
    pub fn fragment(&self) -> Option<&Fragment> {
        if let Self::Fragment(f) = self {
            Some(f)
        } else {
            None
        }
    }

    pub fn into_fragment(self) -> Option<Fragment> {
        if let Self::Fragment(f) = self {
            Some(f)
        } else {
            None
        }
    }

    /// The track header, if this is one.
    pub fn track_header(&self) -> Option<&TrackHeader> {
        if let Self::TrackHeader(h) = self {
            Some(h)
        } else {
            None
        }
    }
}

/// Why the input is not acceptable MKV. Each carries the offset of the offending element.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MkvError {
    #[error("invalid element ID at byte {offset}")]
    InvalidId { offset: u64 },
    #[error("invalid size field (longer than 8 bytes) at byte {offset}")]
    InvalidSize { offset: u64 },
    #[error("the stream does not start with a Matroska EBML header (byte {offset})")]
    NotMatroska { offset: u64 },
    #[error(
        "element {id:#x} at byte {offset} has an unknown size, which only Segment and Cluster may have"
    )]
    UnknownSizeNotAllowed { id: u32, offset: u64 },
    #[error("element {id:#x} at byte {offset} extends past its parent")]
    ChildExceedsParent { id: u32, offset: u64 },
    #[error("element {id:#x} at byte {offset} is {size} bytes; the limit is {max}")]
    ElementTooLarge {
        id: u32,
        size: u64,
        max: u64,
        offset: u64,
    },
    #[error("fragment at byte {offset} exceeds {max} bytes")]
    FragmentTooLarge { max: u64, offset: u64 },
    #[error("fragment at byte {offset} spans more than {max_ns} ns")]
    FragmentTooLong { max_ns: u64, offset: u64 },
    #[error("more than {max} tracks (at byte {offset})")]
    TooManyTracks { max: usize, offset: u64 },
    #[error(
        "block at byte {offset} is for track {track}, which the Tracks element does not define"
    )]
    UnknownTrack { track: u64, offset: u64 },
    #[error("Cluster at byte {offset} has media before Tracks")]
    MissingTracks { offset: u64 },
    #[error("Cluster at byte {offset} has a block before its Timecode")]
    MissingTimecode { offset: u64 },
    #[error("element {id:#x} at byte {offset} has an invalid value")]
    InvalidValue { id: u32, offset: u64 },
    #[error("elements nest too deeply at byte {offset}")]
    TooDeep { offset: u64 },
    #[error("the stream ends inside an element (byte {offset})")]
    Truncated { offset: u64 },
    #[error("element {id:#x} at byte {offset} is not allowed here")]
    Misplaced { id: u32, offset: u64 },
}
