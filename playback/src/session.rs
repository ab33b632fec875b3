//! HLS and DASH streaming sessions (spec §5.3–5.4): the parameters of
//! GetHLSStreamingSessionURL / GetDASHStreamingSessionURL checked as KVS checks them, and the
//! `SessionToken` that carries them. Players cannot sign requests, so the playback URLs carry
//! this token instead of SigV4: the session's stream (id and ARN, so a deleted and re-created
//! stream of the same name is a different stream), its parameters and its expiry, HMAC-SHA256
//! signed with a server secret. Nothing about a session is kept on the server; any node that
//! holds the secret can serve it. The token is URL-safe (base64url and one `.`).

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use kinescope_api::archived::FragmentSelectorType;
use kinescope_api::streaming::{
    ContainerFormat, DiscontinuityMode, Display, PlaybackMode, SessionFragmentSelector,
};
use kinescope_api::{StreamArn, Timestamp};
use kinescope_archive::{StreamId, StreamRecord, TimestampKind};

use crate::PlaybackError;

/// Longest range of an ON_DEMAND or LIVE_REPLAY session (spec §5.3).
pub const MAX_RANGE_MS: i64 = 24 * 3600 * 1000;
const DEFAULT_EXPIRES_S: u32 = 300;
const LIVE_DEFAULT_RESULTS: u32 = 5;
const ON_DEMAND_DEFAULT_RESULTS: u32 = 1000;
/// Format of the token's payload; a token of another format is refused.
const TOKEN_VERSION: &str = "k1";

/// The server secret that signs session tokens (kept in the data directory).
#[derive(Clone)]
pub struct SessionKey(hmac::Key);

impl SessionKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Hls,
    Dash,
}

/// A streaming session: everything a playback request needs besides the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub protocol: Protocol,
    pub stream: StreamId,
    pub stream_arn: StreamArn,
    pub mode: PlaybackMode,
    pub kind: TimestampKind,
    /// ON_DEMAND and LIVE_REPLAY: the range (LIVE_REPLAY may be open-ended).
    pub start: Option<Timestamp>,
    pub end: Option<Timestamp>,
    pub container: ContainerFormat,
    pub discontinuity: DiscontinuityMode,
    pub display_timestamp: bool,
    pub display_number: bool,
    pub max_results: u32,
    /// When the session was created (server clock): LIVE_REPLAY paces from here.
    pub created: Timestamp,
    pub expires: Timestamp,
    /// LIVE: the selected timestamp of the oldest fragment of the session's first playlist.
    /// No playlist of the session shows an older one, and media sequence numbers count from
    /// it, so they stay stable across reloads.
    pub anchor: Option<Timestamp>,
}

/// The parameters of a session request, common to HLS and DASH.
#[derive(Debug, Clone, Default)]
pub struct SessionRequest {
    pub mode: Option<PlaybackMode>,
    pub selector: Option<SessionFragmentSelector>,
    pub container: Option<ContainerFormat>,
    pub discontinuity: Option<DiscontinuityMode>,
    pub display_timestamp: Option<Display>,
    pub display_number: Option<Display>,
    pub expires: Option<u32>,
    pub max_results: Option<u32>,
}

impl Session {
    /// The session a request asks for, checked as KVS checks it (spec §5.3): a LIVE session
    /// takes no TimestampRange; ON_DEMAND needs both ends, LIVE_REPLAY a start; the end is not
    /// before the start and at most 24 hours after it. What the stream holds is checked later.
    pub fn from_request(
        protocol: Protocol,
        stream: &StreamRecord,
        req: &SessionRequest,
        now: Timestamp,
    ) -> Result<Self, PlaybackError> {
        let invalid = |m: &str| PlaybackError::InvalidArgument(m.to_owned());
        if stream.info.data_retention_in_hours == 0 {
            return Err(PlaybackError::NoDataRetention(format!(
                "stream {} keeps no data (DataRetentionInHours is 0)",
                stream.info.stream_name.as_str()
            )));
        }
        let mode = req.mode.unwrap_or_default();
        let selector = req.selector.unwrap_or_default();
        let kind = match selector
            .fragment_selector_type
            .unwrap_or(FragmentSelectorType::ServerTimestamp)
        {
            FragmentSelectorType::ServerTimestamp => TimestampKind::Server,
            FragmentSelectorType::ProducerTimestamp => TimestampKind::Producer,
        };
        let range = selector.timestamp_range;
        let (start, end) = (
            range.and_then(|r| r.start_timestamp),
            range.and_then(|r| r.end_timestamp),
        );
        match mode {
            PlaybackMode::Live if range.is_some() => {
                return Err(invalid(
                    "TimestampRange must not be set when PlaybackMode is LIVE",
                ));
            }
            PlaybackMode::OnDemand if start.is_none() || end.is_none() => {
                return Err(invalid(
                    "ON_DEMAND requires a TimestampRange with StartTimestamp and EndTimestamp",
                ));
            }
            PlaybackMode::LiveReplay if start.is_none() => {
                return Err(invalid(
                    "LIVE_REPLAY requires a TimestampRange with a StartTimestamp",
                ));
            }
            _ => {}
        }
        if let (Some(s), Some(e)) = (start, end) {
            if e < s {
                return Err(invalid("EndTimestamp must not be before StartTimestamp"));
            }
            if e.as_millis() - s.as_millis() > MAX_RANGE_MS {
                return Err(invalid(
                    "The TimestampRange must not span more than 24 hours",
                ));
            }
        }
        if protocol == Protocol::Dash && req.container == Some(ContainerFormat::MpegTs) {
            return Err(invalid("DASH sessions are FRAGMENTED_MP4 only"));
        }
        let discontinuity = req.discontinuity.unwrap_or(match kind {
            TimestampKind::Server => DiscontinuityMode::Always,
            TimestampKind::Producer => DiscontinuityMode::Never,
        });
        let max_results = req.max_results.unwrap_or(match mode {
            PlaybackMode::OnDemand => ON_DEMAND_DEFAULT_RESULTS,
            _ => LIVE_DEFAULT_RESULTS,
        });
        let expires_s = req.expires.unwrap_or(DEFAULT_EXPIRES_S);
        Ok(Self {
            protocol,
            stream: stream.id,
            stream_arn: stream.info.stream_arn.clone(),
            mode,
            kind,
            start,
            end,
            container: req.container.unwrap_or_default(),
            discontinuity,
            display_timestamp: req.display_timestamp == Some(Display::Always),
            display_number: req.display_number == Some(Display::Always),
            max_results,
            created: now,
            expires: Timestamp::from_millis(now.as_millis() + i64::from(expires_s) * 1000),
            anchor: None,
        })
    }

    /// The URL-safe token: `base64url(payload).base64url(HMAC-SHA256(payload))`.
    pub fn token(&self, key: &SessionKey) -> String {
        let opt_ts = |t: Option<Timestamp>| t.map_or(String::new(), |t| t.as_millis().to_string());
        let payload = [
            TOKEN_VERSION.to_owned(),
            match self.protocol {
                Protocol::Hls => "h",
                Protocol::Dash => "d",
            }
            .to_owned(),
            self.stream.0.to_string(),
            self.stream_arn.as_str().to_owned(),
            code(MODES, &self.mode).to_owned(),
            match self.kind {
                TimestampKind::Server => "s",
                TimestampKind::Producer => "p",
            }
            .to_owned(),
            opt_ts(self.start),
            opt_ts(self.end),
            code(CONTAINERS, &self.container).to_owned(),
            code(DISCONTINUITIES, &self.discontinuity).to_owned(),
            flag(self.display_timestamp).to_owned(),
            flag(self.display_number).to_owned(),
            self.max_results.to_string(),
            self.created.as_millis().to_string(),
            self.expires.as_millis().to_string(),
            opt_ts(self.anchor),
        ]
        .join("|");
        let tag = hmac::sign(&key.0, payload.as_bytes());
        format!("{}.{}", B64.encode(payload), B64.encode(tag.as_ref()))
    }

    /// The session of a token this server signed, if it has not expired at `now`.
    pub fn from_token(token: &str, key: &SessionKey, now: Timestamp) -> Result<Self, TokenError> {
        let (payload, tag) = token.split_once('.').ok_or(TokenError::Invalid)?;
        let payload = B64.decode(payload).map_err(|_| TokenError::Invalid)?;
        let tag = B64.decode(tag).map_err(|_| TokenError::Invalid)?;
        hmac::verify(&key.0, &payload, &tag).map_err(|_| TokenError::Invalid)?;
        let text = String::from_utf8(payload).map_err(|_| TokenError::Invalid)?;
        let session = Self::parse_payload(&text).ok_or(TokenError::Invalid)?;
        if now >= session.expires {
            return Err(TokenError::Expired);
        }
        Ok(session)
    }

    fn parse_payload(text: &str) -> Option<Self> {
        let f: Vec<&str> = text.split('|').collect();
        let [
            version,
            protocol,
            stream,
            arn,
            mode,
            kind,
            start,
            end,
            container,
            discontinuity,
            display_ts,
            display_fn,
            max,
            created,
            expires,
            anchor,
        ] = f.as_slice()
        else {
            return None;
        };
        if *version != TOKEN_VERSION {
            return None;
        }
        let ts = |s: &str| s.parse::<i64>().ok().map(Timestamp::from_millis);
        let opt_ts = |s: &str| {
            if s.is_empty() {
                Some(None)
            } else {
                ts(s).map(Some)
            }
        };
        Some(Self {
            protocol: match *protocol {
                "h" => Protocol::Hls,
                "d" => Protocol::Dash,
                _ => return None,
            },
            stream: StreamId(stream.parse().ok()?),
            stream_arn: StreamArn::parse(arn).ok()?,
            mode: decode(MODES, mode)?,
            kind: match *kind {
                "s" => TimestampKind::Server,
                "p" => TimestampKind::Producer,
                _ => return None,
            },
            start: opt_ts(start)?,
            end: opt_ts(end)?,
            container: decode(CONTAINERS, container)?,
            discontinuity: decode(DISCONTINUITIES, discontinuity)?,
            display_timestamp: *display_ts == "1",
            display_number: *display_fn == "1",
            max_results: max.parse().ok()?,
            created: ts(created)?,
            expires: ts(expires)?,
            anchor: opt_ts(anchor)?,
        })
    }
}

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("The SessionToken is not valid")]
    Invalid,
    #[error("The SessionToken has expired")]
    Expired,
}

const MODES: &[(PlaybackMode, &str)] = &[
    (PlaybackMode::Live, "L"),
    (PlaybackMode::LiveReplay, "R"),
    (PlaybackMode::OnDemand, "D"),
];
const CONTAINERS: &[(ContainerFormat, &str)] = &[
    (ContainerFormat::FragmentedMp4, "m"),
    (ContainerFormat::MpegTs, "t"),
];
const DISCONTINUITIES: &[(DiscontinuityMode, &str)] = &[
    (DiscontinuityMode::Always, "a"),
    (DiscontinuityMode::Never, "n"),
    (DiscontinuityMode::OnDiscontinuity, "o"),
];

fn code<T: PartialEq>(table: &[(T, &'static str)], value: &T) -> &'static str {
    table
        .iter()
        .find(|(v, _)| v == value)
        .map_or("", |(_, c)| c)
}

fn decode<T: Copy>(table: &[(T, &str)], c: &str) -> Option<T> {
    table.iter().find(|(_, k)| *k == c).map(|(v, _)| *v)
}

fn flag(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinescope_api::StreamName;
    use kinescope_api::control::{StorageTier, StreamInfo, StreamStatus};
    use kinescope_api::streaming::SessionTimestampRange;

    fn stream(retention: u32) -> StreamRecord {
        let name = StreamName::parse("cam").unwrap();
        StreamRecord {
            id: StreamId(7),
            info: StreamInfo {
                device_name: None,
                stream_arn: StreamArn::new("us-west-2", "123456789012", &name, 1_700_000_000_000),
                stream_name: name,
                media_type: None,
                kms_key_id: None,
                version: kinescope_api::Version::parse("abc").unwrap(),
                status: StreamStatus::Active,
                creation_time: Timestamp::from_millis(1_700_000_000_000),
                data_retention_in_hours: retention,
            },
            storage_tier: StorageTier::Hot,
        }
    }

    fn range(start: Option<i64>, end: Option<i64>) -> Option<SessionFragmentSelector> {
        Some(SessionFragmentSelector {
            fragment_selector_type: Some(FragmentSelectorType::ProducerTimestamp),
            timestamp_range: Some(SessionTimestampRange {
                start_timestamp: start.map(Timestamp::from_millis),
                end_timestamp: end.map(Timestamp::from_millis),
            }),
        })
    }

    const NOW: Timestamp = Timestamp::from_millis(1_800_000_000_000);

    #[test]
    fn tokens_round_trip_and_refuse_tampering_expiry_and_other_keys() {
        let key = SessionKey::new(b"0123456789abcdef0123456789abcdef");
        let req = SessionRequest {
            mode: Some(PlaybackMode::OnDemand),
            selector: range(Some(1000), Some(5000)),
            container: Some(ContainerFormat::MpegTs),
            display_timestamp: Some(Display::Always),
            ..Default::default()
        };
        let mut s = Session::from_request(Protocol::Hls, &stream(2), &req, NOW).unwrap();
        s.anchor = Some(Timestamp::from_millis(1_234));
        let token = s.token(&key);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "{token}"
        );
        assert_eq!(Session::from_token(&token, &key, NOW).unwrap(), s);
        assert_eq!(s.kind, TimestampKind::Producer);
        assert_eq!(s.discontinuity, DiscontinuityMode::Never);
        assert_eq!(s.max_results, 1000);

        let later = Timestamp::from_millis(NOW.as_millis() + 300_000);
        assert_eq!(
            Session::from_token(&token, &key, later),
            Err(TokenError::Expired)
        );
        let other = SessionKey::new(b"another secret");
        assert_eq!(
            Session::from_token(&token, &other, NOW),
            Err(TokenError::Invalid)
        );
        // Any changed character of the payload or tag is refused.
        for i in [0, token.len() / 2, token.len() - 1] {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(bytes).unwrap();
            assert_eq!(
                Session::from_token(&forged, &key, NOW),
                Err(TokenError::Invalid)
            );
        }
        for junk in ["", ".", "abc", "a.b.c"] {
            assert_eq!(
                Session::from_token(junk, &key, NOW),
                Err(TokenError::Invalid)
            );
        }
    }

    #[test]
    fn requests_are_checked_as_kvs_checks_them() {
        let check = |mode, selector, container| {
            let req = SessionRequest {
                mode: Some(mode),
                selector,
                container,
                ..Default::default()
            };
            Session::from_request(Protocol::Hls, &stream(1), &req, NOW)
        };
        let invalid =
            |r: Result<Session, PlaybackError>| matches!(r, Err(PlaybackError::InvalidArgument(_)));
        assert!(invalid(check(
            PlaybackMode::Live,
            range(Some(1), None),
            None
        )));
        assert!(invalid(check(
            PlaybackMode::OnDemand,
            range(Some(1), None),
            None
        )));
        assert!(invalid(check(PlaybackMode::OnDemand, None, None)));
        assert!(invalid(check(
            PlaybackMode::LiveReplay,
            range(None, Some(5)),
            None
        )));
        assert!(invalid(check(
            PlaybackMode::OnDemand,
            range(Some(5), Some(4)),
            None
        )));
        assert!(invalid(check(
            PlaybackMode::OnDemand,
            range(Some(0), Some(MAX_RANGE_MS + 1)),
            None
        )));
        let ok = check(
            PlaybackMode::OnDemand,
            range(Some(0), Some(MAX_RANGE_MS)),
            None,
        )
        .unwrap();
        assert_eq!(ok.max_results, 1000);
        let live = check(PlaybackMode::Live, None, None).unwrap();
        assert_eq!(
            (live.kind, live.discontinuity, live.max_results),
            (TimestampKind::Server, DiscontinuityMode::Always, 5)
        );
        assert_eq!(live.expires.as_millis() - NOW.as_millis(), 300_000);
        assert!(check(PlaybackMode::LiveReplay, range(Some(1), None), None).is_ok());
        let dash_ts = Session::from_request(
            Protocol::Dash,
            &stream(1),
            &SessionRequest {
                container: Some(ContainerFormat::MpegTs),
                ..Default::default()
            },
            NOW,
        );
        assert!(invalid(dash_ts));
        let none =
            Session::from_request(Protocol::Hls, &stream(0), &SessionRequest::default(), NOW);
        assert!(matches!(none, Err(PlaybackError::NoDataRetention(_))));
    }
}
