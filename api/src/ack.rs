//! PutMedia acknowledgements (spec §3.2 with the corrections of §0.1–§0.5): one JSON object per
//! line, keys in the order the real service sends them, `FragmentTimecode` a JSON integer and
//! `FragmentNumber` a JSON string, both left out of errors not tied to a fragment.

use std::fmt::Write as _;

use crate::FragmentNumber;

/// The event an ACK reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckEvent {
    Buffering,
    Received,
    Persisted,
    Error,
    Idle,
}

impl AckEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buffering => "BUFFERING",
            Self::Received => "RECEIVED",
            Self::Persisted => "PERSISTED",
            Self::Error => "ERROR",
            Self::Idle => "IDLE",
        }
    }
}

/// PutMedia error ids and their codes (spec §3.2 table, names from §0.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    StreamReadError,
    MaxFragmentSizeReached,
    MaxFragmentDurationReached,
    MaxConnectionDurationReached,
    FragmentTimecodeLesserThanPrevious,
    InvalidMkvData,
    InvalidProducerTimestamp,
    StreamNotActive,
    FragmentMetadataLimitReached,
    TrackNumberMismatch,
    FramesMissingForTrack,
    MoreThanAllowedTracksFound,
    InternalError,
    ArchivalError,
}

const ALL_ERRORS: [AckError; 14] = [
    AckError::StreamReadError,
    AckError::MaxFragmentSizeReached,
    AckError::MaxFragmentDurationReached,
    AckError::MaxConnectionDurationReached,
    AckError::FragmentTimecodeLesserThanPrevious,
    AckError::InvalidMkvData,
    AckError::InvalidProducerTimestamp,
    AckError::StreamNotActive,
    AckError::FragmentMetadataLimitReached,
    AckError::TrackNumberMismatch,
    AckError::FramesMissingForTrack,
    AckError::MoreThanAllowedTracksFound,
    AckError::InternalError,
    AckError::ArchivalError,
];

impl AckError {
    pub fn id(self) -> u32 {
        match self {
            Self::StreamReadError => 4000,
            Self::MaxFragmentSizeReached => 4001,
            Self::MaxFragmentDurationReached => 4002,
            Self::MaxConnectionDurationReached => 4003,
            Self::FragmentTimecodeLesserThanPrevious => 4004,
            Self::InvalidMkvData => 4006,
            Self::InvalidProducerTimestamp => 4007,
            Self::StreamNotActive => 4008,
            Self::FragmentMetadataLimitReached => 4009,
            Self::TrackNumberMismatch => 4010,
            Self::FramesMissingForTrack => 4011,
            Self::MoreThanAllowedTracksFound => 4012,
            Self::InternalError => 5000,
            Self::ArchivalError => 5001,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::StreamReadError => "STREAM_READ_ERROR",
            Self::MaxFragmentSizeReached => "MAX_FRAGMENT_SIZE_REACHED",
            Self::MaxFragmentDurationReached => "MAX_FRAGMENT_DURATION_REACHED",
            Self::MaxConnectionDurationReached => "MAX_CONNECTION_DURATION_REACHED",
            Self::FragmentTimecodeLesserThanPrevious => "FRAGMENT_TIMECODE_LESSER_THAN_PREVIOUS",
            Self::InvalidMkvData => "INVALID_MKV_DATA",
            Self::InvalidProducerTimestamp => "INVALID_PRODUCER_TIMESTAMP",
            Self::StreamNotActive => "STREAM_NOT_ACTIVE",
            Self::FragmentMetadataLimitReached => "FRAGMENT_METADATA_LIMIT_REACHED",
            Self::TrackNumberMismatch => "TRACK_NUMBER_MISMATCH",
            Self::FramesMissingForTrack => "FRAMES_MISSING_FOR_TRACK",
            Self::MoreThanAllowedTracksFound => "MORE_THAN_ALLOWED_TRACKS_FOUND",
            Self::InternalError => "INTERNAL_ERROR",
            Self::ArchivalError => "ARCHIVAL_ERROR",
        }
    }
}

/// One acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub event: AckEvent,
    /// The cluster Timecode as sent, with the fragment number, when the ACK is about a fragment.
    pub fragment: Option<(u64, FragmentNumber)>,
    pub error: Option<AckError>,
}

impl Ack {
    pub fn fragment(event: AckEvent, timecode: u64, number: FragmentNumber) -> Self {
        Self {
            event,
            fragment: Some((timecode, number)),
            error: None,
        }
    }

    pub fn idle() -> Self {
        Self {
            event: AckEvent::Idle,
            fragment: None,
            error: None,
        }
    }

    pub fn error(error: AckError, fragment: Option<(u64, FragmentNumber)>) -> Self {
        Self {
            event: AckEvent::Error,
            fragment,
            error: Some(error),
        }
    }

    /// Reads one ACK line (what [`Ack::to_line`] writes, or the real service's).
    pub fn parse(line: &str) -> Result<Self, String> {
        let v: serde_json::Value = serde_json::from_str(line.trim()).map_err(|e| e.to_string())?;
        let event = match v["EventType"].as_str() {
            Some("BUFFERING") => AckEvent::Buffering,
            Some("RECEIVED") => AckEvent::Received,
            Some("PERSISTED") => AckEvent::Persisted,
            Some("ERROR") => AckEvent::Error,
            Some("IDLE") => AckEvent::Idle,
            other => return Err(format!("unknown EventType {other:?}")),
        };
        let fragment = match (v["FragmentTimecode"].as_u64(), v["FragmentNumber"].as_str()) {
            (Some(tc), Some(n)) => Some((tc, FragmentNumber::parse(n).map_err(|e| e.message)?)),
            _ => None,
        };
        let error = v["ErrorId"].as_u64().map(|id| {
            ALL_ERRORS
                .iter()
                .copied()
                .find(|e| u64::from(e.id()) == id)
                .ok_or(format!("unknown ErrorId {id}"))
        });
        Ok(Self {
            event,
            fragment,
            error: error.transpose()?,
        })
    }

    /// The wire form: one JSON object and a newline.
    pub fn to_line(&self) -> String {
        let mut s = format!("{{\"EventType\":\"{}\"", self.event.as_str());
        if let Some((timecode, number)) = &self.fragment {
            let _ = write!(
                s,
                ",\"FragmentTimecode\":{timecode},\"FragmentNumber\":\"{number}\""
            );
        }
        if let Some(e) = self.error {
            let _ = write!(s, ",\"ErrorCode\":\"{}\",\"ErrorId\":{}", e.code(), e.id());
        }
        s.push_str("}\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_the_real_service() {
        let n = FragmentNumber::parse("91343852333181704754345985890710005834298701132").unwrap();
        assert_eq!(
            Ack::fragment(AckEvent::Buffering, 1_615_717_079_876, n.clone()).to_line(),
            "{\"EventType\":\"BUFFERING\",\"FragmentTimecode\":1615717079876,\"FragmentNumber\":\"91343852333181704754345985890710005834298701132\"}\n"
        );
        assert_eq!(Ack::idle().to_line(), "{\"EventType\":\"IDLE\"}\n");
        assert_eq!(
            Ack::error(AckError::MaxConnectionDurationReached, None).to_line(),
            "{\"EventType\":\"ERROR\",\"ErrorCode\":\"MAX_CONNECTION_DURATION_REACHED\",\"ErrorId\":4003}\n"
        );
        for ack in [
            Ack::idle(),
            Ack::fragment(AckEvent::Persisted, 7, n.clone()),
            Ack::error(AckError::ArchivalError, None),
        ] {
            assert_eq!(Ack::parse(&ack.to_line()), Ok(ack));
        }
        assert!(Ack::parse("{\"EventType\":\"NOPE\"}").is_err());
        let line = Ack::error(AckError::FragmentTimecodeLesserThanPrevious, Some((5, n))).to_line();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ErrorId"], 4004);
        assert_eq!(v["FragmentTimecode"], 5);
    }
}
