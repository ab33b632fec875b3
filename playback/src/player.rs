//! What HLS, DASH and GetClip share (spec §5.3–5.5): the [`Player`] that creates sessions and
//! serves their resources, the playable tracks of a track header, a session's window of
//! fragments (ON_DEMAND, LIVE, LIVE_REPLAY), and one stored fragment remuxed to fMP4 or
//! MPEG-TS. Resources are answered as `Bytes` parts: fMP4 `mdat` payloads are the stored
//! frame bytes, sliced, never copied into a new buffer (issue 10).
//!
//! The media timeline of every output is the producer timestamp: a fragment's samples sit at
//! its producer timestamp plus the frames' offsets, so the same fragment always produces the
//! same bytes (immutable, cacheable) whichever session asks for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kinescope_api::streaming::{ContainerFormat, DiscontinuityMode, PlaybackMode};
use kinescope_api::{FragmentNumber, StreamRef, Timestamp};
use kinescope_archive::{Archive, Clock, FragmentRow, StreamId, StreamRecord, TimestampKind};
use kinescope_media::mkv::TrackType;
use kinescope_media::remux::{Codec, RemuxError, TrackConfig, TrackSamples, fragment_samples};
use kinescope_media::{mp4, ts};

use crate::PlaybackError;
use crate::cache::FragmentCache;
use crate::fragments::load_header;
use crate::session::{Protocol, Session, SessionKey, SessionRequest};

/// LIVE: a stream with no fragment received this recently has nothing live (spec §5.3).
pub const LIVE_HORIZON_MS: i64 = 30_000;
/// Version of the remuxed output, part of every ETag: bump it when the bytes a fragment
/// produces change, so that caches drop the old ones.
const FORMAT_VERSION: &str = "k1";
/// Parsed track headers kept (they are few per stream and immutable).
const TRACK_CACHE: usize = 1024;
/// Two fragments further apart than this (or overlapping by more) are a discontinuity
/// (ON_DISCONTINUITY, spec §5.3).
const DISCONTINUITY_MS: i64 = 50;
/// The longest a live playlist request waits for a fragment it asked for (`_HLS_msn`).
pub const BLOCKING_RELOAD_LIMIT: Duration = Duration::from_secs(6);

/// Serves HLS and DASH sessions and clips from the archive.
#[derive(Debug)]
pub struct Player {
    pub(crate) archive: Arc<Archive>,
    pub(crate) clock: Arc<dyn Clock>,
    key: SessionKey,
    tracks: Mutex<HashMap<(StreamId, i64), Arc<Tracks>>>,
    fragments: FragmentCache,
}

/// A resource of a session, by its KVS name (spec §5.3 table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    HlsMasterPlaylist,
    HlsMediaPlaylist,
    DashManifest,
    Mp4InitFragment,
    Mp4MediaFragment,
    TsFragment,
}

impl Resource {
    /// The resource at `/hls/v1/<name>` or `/dash/v1/<name>`.
    pub fn from_name(protocol: Protocol, name: &str) -> Option<Self> {
        Some(match (protocol, name) {
            (Protocol::Hls, "getHLSMasterPlaylist.m3u8") => Self::HlsMasterPlaylist,
            (Protocol::Hls, "getHLSMediaPlaylist.m3u8") => Self::HlsMediaPlaylist,
            (Protocol::Hls, "getTSFragment.ts") => Self::TsFragment,
            (Protocol::Dash, "getDASHManifest.mpd") => Self::DashManifest,
            (_, "getMP4InitFragment.mp4") => Self::Mp4InitFragment,
            (_, "getMP4MediaFragment.mp4") => Self::Mp4MediaFragment,
            _ => return None,
        })
    }
}

/// The query parameters of a playback request.
#[derive(Debug, Clone, Default)]
pub struct ResourceQuery {
    pub session_token: Option<String>,
    pub track_number: Option<String>,
    pub fragment_number: Option<String>,
    /// Init fragments: the track header's id.
    pub sequence_number: Option<String>,
    /// DASH media fragments: the segment's `$Time$` (producer timestamp, ms).
    pub time: Option<String>,
    /// HLS blocking reload: the media sequence number the player waits for.
    pub hls_msn: Option<String>,
}

/// A playback response.
#[derive(Debug)]
pub struct Reply {
    pub content_type: &'static str,
    pub body: Vec<Bytes>,
    /// Immutable resources carry a strong ETag; playlists and manifests carry none and must
    /// not be cached.
    pub etag: Option<String>,
}

/// A track header's playable tracks: the video track first (H.264 or H.265), then at most one
/// AAC audio track; or one AAC track for an audio-only stream.
#[derive(Debug)]
pub struct Tracks {
    pub header_id: i64,
    pub timecode_scale: u64,
    pub configs: Vec<TrackConfig>,
}

impl Tracks {
    /// The lowest-numbered track decides (KVS: track 1 must be H.264/H.265, or AAC for audio
    /// only); other tracks that cannot be played are left out.
    pub fn new(
        header_id: i64,
        header: &kinescope_media::mkv::TrackHeader,
    ) -> Result<Self, RemuxError> {
        let mut entries: Vec<_> = header.tracks.iter().collect();
        entries.sort_by_key(|t| t.number);
        let first = entries
            .first()
            .ok_or_else(|| RemuxError::UnsupportedCodec {
                track: 1,
                codec_id: "(no tracks)".into(),
            })?;
        let first = TrackConfig::from_track(first)?;
        let mut video =
            matches!(first.codec, Codec::Avc(_) | Codec::Hevc(_)).then(|| first.clone());
        let mut audio = matches!(first.codec, Codec::Aac(_)).then(|| first.clone());
        for t in entries.iter().skip(1) {
            let Ok(config) = TrackConfig::from_track(t) else {
                continue;
            };
            match (&config.codec, t.track_type) {
                (Codec::Aac(_), _) if audio.is_none() => audio = Some(config),
                (Codec::Avc(_) | Codec::Hevc(_), TrackType::Video) if video.is_none() => {
                    video = Some(config);
                }
                _ => {}
            }
        }
        Ok(Self {
            header_id,
            timecode_scale: header.timecode_scale,
            configs: video.into_iter().chain(audio).collect(),
        })
    }

    pub fn track(&self, number: u64) -> Option<&TrackConfig> {
        self.configs.iter().find(|c| c.number == number)
    }

    pub fn video(&self) -> Option<&TrackConfig> {
        self.configs
            .iter()
            .find(|c| matches!(c.codec, Codec::Avc(_) | Codec::Hevc(_)))
    }

    pub fn audio(&self) -> Option<&TrackConfig> {
        self.configs
            .iter()
            .find(|c| matches!(c.codec, Codec::Aac(_)))
    }
}

/// The fragments a playlist or manifest shows now.
#[derive(Debug)]
pub struct Window {
    pub rows: Vec<FragmentRow>,
    /// Media sequence number of the first row.
    pub first_sequence: u64,
    /// Discontinuities before the first row (HLS `EXT-X-DISCONTINUITY-SEQUENCE`).
    pub discontinuity_sequence: u64,
    /// No fragment will be added (ON_DEMAND, or a LIVE_REPLAY past its end).
    pub ended: bool,
}

impl Window {
    /// The newest fragment (a window is never empty).
    pub fn newest(&self) -> &FragmentRow {
        self.rows.last().expect("a window is never empty")
    }

    /// The peak bit rate of the window's fragments, all tracks (HLS `BANDWIDTH`, DASH
    /// `@bandwidth`).
    pub fn peak_bandwidth(&self) -> u64 {
        self.rows
            .iter()
            .map(|r| r.size * 8 * 1000 / r.duration_ms.max(1))
            .max()
            .unwrap_or(0)
            .max(1)
    }
}

impl Player {
    /// `cache` bytes of recently read fragments are kept for other viewers (0: none).
    pub fn new(archive: Arc<Archive>, clock: Arc<dyn Clock>, key: SessionKey, cache: u64) -> Self {
        Self {
            archive,
            clock,
            key,
            tracks: Mutex::new(HashMap::new()),
            fragments: FragmentCache::new(cache),
        }
    }

    /// GetHLSStreamingSessionURL / GetDASHStreamingSessionURL: the session's token, once the
    /// stream has fragments for it and plays as HLS/DASH.
    pub async fn create_session(
        &self,
        protocol: Protocol,
        stream: &StreamRecord,
        req: &SessionRequest,
    ) -> Result<String, PlaybackError> {
        let now = self.clock.now();
        let mut session = Session::from_request(protocol, stream, req, now)?;
        let first = match session.mode {
            PlaybackMode::Live => {
                let rows = self.live_rows(&session, None, now).await?;
                session.anchor = rows.first().map(|r| selected(&session, r));
                rows.into_iter().next()
            }
            _ => self
                .archive
                .catalog()
                .list_fragments(
                    stream.id,
                    session.kind,
                    session.start.unwrap_or(Timestamp::from_millis(0)),
                    session.end.unwrap_or(Timestamp::from_millis(i64::MAX)),
                    None,
                    1,
                )
                .await?
                .into_iter()
                .next(),
        };
        let first = first.ok_or_else(no_fragments)?;
        self.tracks(first.stream, first.header_id).await?;
        Ok(session.token(&self.key))
    }

    /// A resource of a session.
    pub async fn serve(
        &self,
        protocol: Protocol,
        resource: Resource,
        query: &ResourceQuery,
    ) -> Result<Reply, PlaybackError> {
        let token = query
            .session_token
            .as_deref()
            .ok_or_else(|| invalid("SessionToken is required"))?;
        let session = Session::from_token(token, &self.key, self.clock.now())?;
        if session.protocol != protocol {
            return Err(crate::session::TokenError::Invalid.into());
        }
        self.check_stream(&session).await?;
        match resource {
            Resource::HlsMasterPlaylist => crate::hls::master_playlist(self, &session, token).await,
            Resource::HlsMediaPlaylist => {
                let track = parse_track(query)?;
                let msn = query
                    .hls_msn
                    .as_deref()
                    .map(|v| {
                        v.parse::<u64>()
                            .map_err(|_| invalid("_HLS_msn is not a number"))
                    })
                    .transpose()?;
                crate::hls::media_playlist(self, &session, token, track, msn).await
            }
            Resource::DashManifest => crate::dash::manifest(self, &session, token).await,
            Resource::Mp4InitFragment => {
                let track = parse_track(query)?;
                self.init_fragment(&session, track, query.sequence_number.as_deref())
                    .await
            }
            Resource::Mp4MediaFragment => {
                let track = parse_track(query)?;
                let row = match (&query.fragment_number, &query.time) {
                    (Some(n), _) => self.fragment(&session, n).await?,
                    (None, Some(t)) => self.fragment_at(&session, t).await?,
                    (None, None) => return Err(invalid("FragmentNumber is required")),
                };
                self.mp4_fragment(&row, track).await
            }
            Resource::TsFragment => {
                if session.container != ContainerFormat::MpegTs {
                    return Err(invalid("this session's ContainerFormat is FRAGMENTED_MP4"));
                }
                let n = query
                    .fragment_number
                    .as_deref()
                    .ok_or_else(|| invalid("FragmentNumber is required"))?;
                let row = self.fragment(&session, n).await?;
                self.ts_fragment(&row).await
            }
        }
    }

    /// The session's stream still exists and is the one the session was made for (a stream
    /// deleted and created again under the same name is another stream).
    async fn check_stream(&self, session: &Session) -> Result<(), PlaybackError> {
        let r = StreamRef::Arn(session.stream_arn.clone());
        let stream = self.archive.catalog().stream(&r).await?;
        if stream.id != session.stream {
            return Err(PlaybackError::NotFound(format!(
                "stream {} was deleted",
                session.stream_arn.as_str()
            )));
        }
        Ok(())
    }

    /// The fragments a playlist of the session shows now. LIVE: the newest `max_results` since
    /// the session's anchor, none if nothing arrived in the last 30 s; LIVE_REPLAY: from the
    /// start at real-time pace since the session was created; ON_DEMAND: the range.
    pub async fn window(&self, session: &Session) -> Result<Window, PlaybackError> {
        let now = self.clock.now();
        let catalog = self.archive.catalog();
        let (start, rows, ended) = match session.mode {
            PlaybackMode::OnDemand => {
                let start = session.start.unwrap_or(Timestamp::from_millis(0));
                let end = session.end.unwrap_or(Timestamp::from_millis(i64::MAX));
                let rows = catalog
                    .list_fragments(
                        session.stream,
                        session.kind,
                        start,
                        end,
                        None,
                        session.max_results,
                    )
                    .await?;
                (start, rows, true)
            }
            PlaybackMode::Live => {
                let rows = self.live_rows(session, session.anchor, now).await?;
                (
                    session.anchor.unwrap_or(Timestamp::from_millis(0)),
                    rows,
                    false,
                )
            }
            PlaybackMode::LiveReplay => {
                let start = session.start.unwrap_or(Timestamp::from_millis(0));
                let end = session.end.map_or(i64::MAX, Timestamp::as_millis);
                // The replay begins with the first fragment at or after the start, then
                // shows each next one once its time has come.
                let first = catalog
                    .list_fragments(
                        session.stream,
                        session.kind,
                        start,
                        Timestamp::from_millis(end),
                        None,
                        1,
                    )
                    .await?;
                let origin = first.first().map_or(start, |r| selected(session, r));
                let elapsed = now.as_millis() - session.created.as_millis();
                let paced = origin.as_millis().saturating_add(elapsed);
                let rows = catalog
                    .latest_fragments(
                        session.stream,
                        session.kind,
                        start,
                        Timestamp::from_millis(paced.min(end)),
                        session.max_results,
                    )
                    .await?;
                (start, rows, paced >= end)
            }
        };
        let rows = dedupe(session, rows);
        if rows.is_empty() {
            return Err(no_fragments());
        }
        let first_sequence = match session.mode {
            PlaybackMode::OnDemand => 0,
            _ => {
                catalog
                    .count_fragments(
                        session.stream,
                        session.kind,
                        start,
                        (selected(session, &rows[0]), &rows[0].number),
                    )
                    .await?
            }
        };
        let discontinuity_sequence = match session.discontinuity {
            DiscontinuityMode::Always => first_sequence,
            DiscontinuityMode::Never => 0,
            DiscontinuityMode::OnDiscontinuity if first_sequence == 0 => 0,
            DiscontinuityMode::OnDiscontinuity => {
                self.discontinuities_before(session, start, &rows[0])
                    .await?
            }
        };
        Ok(Window {
            rows,
            first_sequence,
            discontinuity_sequence,
            ended,
        })
    }

    /// The window and the playable tracks of its newest fragment.
    pub async fn window_and_tracks(
        &self,
        session: &Session,
    ) -> Result<(Window, Arc<Tracks>), PlaybackError> {
        let window = self.window(session).await?;
        let newest = window.newest();
        let tracks = self.tracks(newest.stream, newest.header_id).await?;
        Ok((window, tracks))
    }

    /// LIVE: the newest fragments (at most `max_results`, none older than `anchor`), or
    /// ResourceNotFound when nothing arrived in the last 30 s.
    async fn live_rows(
        &self,
        session: &Session,
        anchor: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Vec<FragmentRow>, PlaybackError> {
        let rows = self
            .archive
            .catalog()
            .latest_fragments(
                session.stream,
                session.kind,
                anchor.unwrap_or(Timestamp::from_millis(0)),
                Timestamp::from_millis(i64::MAX),
                session.max_results,
            )
            .await?;
        let fresh = rows
            .iter()
            .any(|r| now.as_millis() - r.server_timestamp.as_millis() <= LIVE_HORIZON_MS);
        if !fresh {
            return Err(no_fragments());
        }
        Ok(rows)
    }

    /// ON_DISCONTINUITY in a sliding window: the discontinuities among the session's fragments
    /// that have left the window (read once per playlist; a session spans at most 12 hours).
    async fn discontinuities_before(
        &self,
        session: &Session,
        start: Timestamp,
        first: &FragmentRow,
    ) -> Result<u64, PlaybackError> {
        let mut count = 0;
        let mut previous: Option<FragmentRow> = None;
        let mut after = None;
        loop {
            let page = self
                .archive
                .catalog()
                .list_fragments(
                    session.stream,
                    session.kind,
                    start,
                    selected(session, first),
                    after,
                    500,
                )
                .await?;
            let Some(last) = page.last() else {
                return Ok(count);
            };
            after = Some((selected(session, last), last.number.clone()));
            for row in page {
                if row.number == first.number {
                    return Ok(
                        count + u64::from(previous.is_some_and(|p| is_discontinuity(&p, &row)))
                    );
                }
                if previous.as_ref().is_some_and(|p| is_discontinuity(p, &row)) {
                    count += 1;
                }
                previous = Some(row);
            }
        }
    }

    /// Waits until the stream has a fragment after `last` or `limit` passes (LIVE blocking
    /// playlist reload); follows the live bus, never polls the catalog.
    pub async fn wait_for_fragment_after(&self, session: &Session, last: &FragmentNumber) {
        let mut live = self.archive.subscribe(session.stream);
        // A fragment may have arrived between the playlist query and the subscription.
        if let Ok(newer) = self
            .archive
            .catalog()
            .fragments_after(session.stream, Some(last), 1, false)
            .await
            && !newer.is_empty()
        {
            return;
        }
        let _ = tokio::time::timeout(BLOCKING_RELOAD_LIMIT, async {
            loop {
                match live.recv().await {
                    Ok(f) if f.row.number > *last => return,
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        })
        .await;
    }

    /// The playable tracks of a track header of a stream (parsed once, then cached).
    pub async fn tracks(
        &self,
        stream: StreamId,
        header_id: i64,
    ) -> Result<Arc<Tracks>, PlaybackError> {
        let key = (stream, header_id);
        if let Some(t) = self.tracks.lock().expect("track cache").get(&key) {
            return Ok(t.clone());
        }
        let header = load_header(&self.archive, stream, header_id).await?;
        let tracks = Arc::new(Tracks::new(header_id, &header)?);
        let mut cache = self.tracks.lock().expect("track cache");
        if cache.len() >= TRACK_CACHE {
            cache.clear();
        }
        cache.insert(key, tracks.clone());
        Ok(tracks)
    }

    /// A fragment of the session's stream, by number.
    async fn fragment(
        &self,
        session: &Session,
        number: &str,
    ) -> Result<FragmentRow, PlaybackError> {
        let unknown =
            || PlaybackError::NotFound(format!("fragment {number} was not found in the stream"));
        let n = FragmentNumber::parse(number).map_err(|_| unknown())?;
        self.archive
            .catalog()
            .fragments_by_number(session.stream, &[n])
            .await?
            .into_iter()
            .next()
            .ok_or_else(unknown)
    }

    /// DASH `$Time$`: the fragment whose producer timestamp is that many milliseconds (the
    /// newest of equals, as the manifest shows).
    async fn fragment_at(
        &self,
        session: &Session,
        time: &str,
    ) -> Result<FragmentRow, PlaybackError> {
        let unknown = || PlaybackError::NotFound(format!("no fragment at time {time}"));
        let t = Timestamp::from_millis(time.parse().map_err(|_| unknown())?);
        let rows = self
            .archive
            .catalog()
            .list_fragments(session.stream, TimestampKind::Producer, t, t, None, 16)
            .await?;
        rows.into_iter().last().ok_or_else(unknown)
    }

    /// The fMP4 init segment of one track of a track header of the session's stream.
    async fn init_fragment(
        &self,
        session: &Session,
        track: u64,
        sequence: Option<&str>,
    ) -> Result<Reply, PlaybackError> {
        let header_id = match sequence {
            Some(s) => s
                .parse::<i64>()
                .map_err(|_| PlaybackError::NotFound(format!("no init fragment {s}")))?,
            None => self.window(session).await?.rows[0].header_id,
        };
        let tracks = match self.tracks(session.stream, header_id).await {
            Err(PlaybackError::Catalog(kinescope_archive::CatalogError::Corrupt { .. })) => {
                return Err(PlaybackError::NotFound(format!(
                    "no init fragment {header_id} in this stream"
                )));
            }
            other => other?,
        };
        let config = tracks.track(track).ok_or_else(|| no_track(track))?;
        Ok(Reply {
            content_type: "video/mp4",
            body: vec![mp4::init_segment(&[config])],
            etag: Some(format!("\"{FORMAT_VERSION}-i{header_id}-{track}\"")),
        })
    }

    /// One track of a stored fragment as an fMP4 media segment.
    async fn mp4_fragment(&self, row: &FragmentRow, track: u64) -> Result<Reply, PlaybackError> {
        let (tracks, samples) = self.samples(row).await?;
        let config = tracks.track(track).ok_or_else(|| no_track(track))?;
        let run = samples
            .iter()
            .find(|s| s.track == track)
            .ok_or_else(|| no_track(track))?;
        Ok(Reply {
            content_type: "video/mp4",
            body: mp4::media_segment(sequence_of(row), &[(config, run)]),
            etag: Some(format!(
                "\"{FORMAT_VERSION}-m{}-{track}\"",
                row.number.as_str()
            )),
        })
    }

    /// A stored fragment, all tracks, as an MPEG-TS segment.
    async fn ts_fragment(&self, row: &FragmentRow) -> Result<Reply, PlaybackError> {
        let (tracks, samples) = self.samples(row).await?;
        let configs: Vec<&TrackConfig> = tracks.configs.iter().collect();
        Ok(Reply {
            content_type: "video/mp2t",
            body: ts::segment(&configs, &samples)?,
            etag: Some(format!("\"{FORMAT_VERSION}-t{}\"", row.number.as_str())),
        })
    }

    /// A stored fragment's playable tracks and their timed samples (slices of its bytes).
    pub async fn samples(
        &self,
        row: &FragmentRow,
    ) -> Result<(Arc<Tracks>, Vec<TrackSamples>), PlaybackError> {
        let tracks = self.tracks(row.stream, row.header_id).await?;
        let bytes = self
            .fragments
            .get_or_read(&row.number, row.length, || self.archive.fragment_bytes(row))
            .await?;
        let start_ms = u64::try_from(row.producer_timestamp.as_millis()).unwrap_or(0);
        let samples = fragment_samples(
            &tracks.configs,
            tracks.timecode_scale,
            &[bytes],
            start_ms * 1_000_000,
            Some((start_ms + row.duration_ms) * 1_000_000),
        )?;
        Ok((tracks, samples))
    }
}

/// The timestamp a session selects fragments by.
pub fn selected(session: &Session, row: &FragmentRow) -> Timestamp {
    match session.kind {
        TimestampKind::Server => row.server_timestamp,
        TimestampKind::Producer => row.producer_timestamp,
    }
}

/// Whether `next` does not follow `prev` on the media timeline (ON_DISCONTINUITY): it starts
/// more than 50 ms after `prev` ends, or before `prev` starts, or follows another track header.
/// A stored duration covers the longest track and B-frames' presentation times, so fragments
/// that follow each other overlap a little; that is not a discontinuity.
pub fn is_discontinuity(prev: &FragmentRow, next: &FragmentRow) -> bool {
    let start = prev.producer_timestamp.as_millis();
    let next_start = next.producer_timestamp.as_millis();
    next_start - (start + prev.duration_ms as i64) > DISCONTINUITY_MS
        || next_start < start
        || prev.header_id != next.header_id
}

/// How long each fragment of a window lasts on the media timeline, in ms: until the next one
/// starts when they are contiguous (a fragment's stored duration covers its longest track, and
/// an audio track may run past the next video key frame), else its own duration. The sum
/// equals the window's span, so playlists do not drift.
pub fn segment_durations(rows: &[FragmentRow]) -> Vec<u64> {
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let start = row.producer_timestamp.as_millis();
            let own = row.duration_ms.max(1);
            match rows.get(i + 1) {
                Some(next) if !is_discontinuity(row, next) => {
                    u64::try_from(next.producer_timestamp.as_millis() - start)
                        .ok()
                        .filter(|d| *d > 0)
                        .unwrap_or(own)
                }
                _ => own,
            }
        })
        .collect()
}

/// With PRODUCER_TIMESTAMP, fragments with the same start are one (the newest fragment number
/// wins, spec §5.3).
fn dedupe(session: &Session, rows: Vec<FragmentRow>) -> Vec<FragmentRow> {
    if session.kind != TimestampKind::Producer {
        return rows;
    }
    let mut out: Vec<FragmentRow> = Vec::with_capacity(rows.len());
    for row in rows {
        match out.last_mut() {
            Some(last) if last.producer_timestamp == row.producer_timestamp => *last = row,
            _ => out.push(row),
        }
    }
    out
}

/// The `mfhd` sequence number of a fragment: its producer time in tenths of a second, which
/// increases from fragment to fragment and is the same whichever session asks.
fn sequence_of(row: &FragmentRow) -> u32 {
    (row.producer_timestamp.as_millis() / 100) as u32
}

fn parse_track(query: &ResourceQuery) -> Result<u64, PlaybackError> {
    match query.track_number.as_deref() {
        None => Ok(1),
        Some(t) => t
            .parse()
            .map_err(|_| invalid("TrackNumber must be a number")),
    }
}

fn invalid(message: &str) -> PlaybackError {
    PlaybackError::InvalidArgument(message.to_owned())
}

fn no_track(track: u64) -> PlaybackError {
    PlaybackError::NotFound(format!("the stream has no playable track {track}"))
}

pub(crate) fn no_fragments() -> PlaybackError {
    PlaybackError::NotFound("No fragments found in the stream for the streaming request.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u64, producer_ms: i64, duration_ms: u64, header_id: i64) -> FragmentRow {
        FragmentRow {
            stream: StreamId(1),
            number: FragmentNumber::parse(&format!("{n:020}")).unwrap(),
            producer_timestamp: Timestamp::from_millis(producer_ms),
            server_timestamp: Timestamp::from_millis(producer_ms + 500),
            duration_ms,
            size: 1000,
            object_key: String::new(),
            offset: 0,
            length: 1000,
            header_id,
            metadata: Vec::new(),
        }
    }

    #[test]
    fn durations_run_to_the_next_start_and_sum_to_the_span() {
        // Stored durations overlap the next fragment (audio tail, B-frames); a gap stays a gap.
        let rows = [
            row(1, 0, 1054, 1),
            row(2, 998, 1136, 1),
            row(3, 1996, 1000, 1),
            row(4, 5000, 1000, 1),
        ];
        assert_eq!(segment_durations(&rows), [998, 998, 1000, 1000]);
        assert_eq!(segment_durations(&rows[..3]).iter().sum::<u64>(), 2996);
        assert_eq!(segment_durations(&[]), Vec::<u64>::new());
    }

    #[test]
    fn discontinuities_are_gaps_steps_back_and_new_headers() {
        let a = row(1, 0, 1000, 1);
        assert!(!is_discontinuity(&a, &row(2, 1000, 1000, 1)));
        assert!(!is_discontinuity(&a, &row(2, 1050, 1000, 1)));
        assert!(
            !is_discontinuity(&a, &row(2, 900, 1000, 1)),
            "overlap is no gap"
        );
        assert!(is_discontinuity(&a, &row(2, 1051, 1000, 1)));
        assert!(is_discontinuity(&a, &row(2, -1, 1000, 1)));
        assert!(is_discontinuity(&a, &row(2, 1000, 1000, 2)));
    }

    #[test]
    fn producer_sessions_keep_the_newest_of_equal_start_times() {
        use kinescope_api::StreamArn;
        let name = kinescope_api::StreamName::parse("s").unwrap();
        let mut session = Session {
            protocol: Protocol::Hls,
            stream: StreamId(1),
            stream_arn: StreamArn::new("us-west-2", "123456789012", &name, 1),
            mode: PlaybackMode::OnDemand,
            kind: TimestampKind::Producer,
            start: None,
            end: None,
            container: ContainerFormat::FragmentedMp4,
            discontinuity: DiscontinuityMode::Never,
            display_timestamp: false,
            display_number: false,
            max_results: 10,
            created: Timestamp::from_millis(0),
            expires: Timestamp::from_millis(1),
            anchor: None,
        };
        let rows = vec![
            row(1, 0, 1000, 1),
            row(2, 0, 1000, 1),
            row(3, 1000, 1000, 1),
        ];
        let numbers = |rows: Vec<FragmentRow>| -> Vec<String> {
            rows.iter()
                .map(|r| r.number.as_str().trim_start_matches('0').to_owned())
                .collect()
        };
        assert_eq!(numbers(dedupe(&session, rows.clone())), ["2", "3"]);
        session.kind = TimestampKind::Server;
        assert_eq!(numbers(dedupe(&session, rows)), ["1", "2", "3"]);
    }
}
