//! GetClip (spec §5.5): one MP4 file for a time range, streamed while it is produced. The file
//! is fragmented MP4 (an init segment with every playable track, then one `moof`/`mdat` per
//! stored fragment), so a clip can have any length: KVS's 100 MB / 200 fragment cap does not
//! apply. Fragments are read page by page from the catalog and remuxed one at a time, so a
//! clip holds one fragment in memory however long it is. A fragment whose track header plays
//! differently (another codec configuration) ends the clip there: one MP4 file has one `moov`.
//! A failure after the first byte aborts the response, so a client never takes a cut clip
//! for a whole one.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use kinescope_api::archived::FragmentSelectorType;
use kinescope_api::streaming::GetClipInput;
use kinescope_api::{FragmentNumber, Timestamp};
use kinescope_archive::{FragmentRow, StreamRecord, TimestampKind};
use kinescope_media::mp4;
use kinescope_media::remux::TrackConfig;

use crate::PlaybackError;
use crate::player::{Player, Tracks, no_fragments};
use crate::session::MAX_RANGE_MS;

/// Fragments read from the catalog per page.
const PAGE: u32 = 32;

/// The clip's body: checks the request and the stream's media before the first byte.
pub async fn get_clip(
    player: Arc<Player>,
    stream: &StreamRecord,
    input: &GetClipInput,
) -> Result<impl Stream<Item = Result<Bytes, PlaybackError>> + Send + use<>, PlaybackError> {
    if stream.info.data_retention_in_hours == 0 {
        return Err(PlaybackError::NoDataRetention(format!(
            "stream {} keeps no data (DataRetentionInHours is 0)",
            stream.info.stream_name.as_str()
        )));
    }
    let sel = &input.clip_fragment_selector;
    let (start, end) = (
        sel.timestamp_range.start_timestamp,
        sel.timestamp_range.end_timestamp,
    );
    if end < start {
        return Err(PlaybackError::InvalidArgument(
            "EndTimestamp must not be before StartTimestamp".into(),
        ));
    }
    if end.as_millis() - start.as_millis() > MAX_RANGE_MS {
        return Err(PlaybackError::InvalidArgument(
            "The TimestampRange must not span more than 24 hours".into(),
        ));
    }
    let kind = match sel.fragment_selector_type {
        FragmentSelectorType::ServerTimestamp => TimestampKind::Server,
        FragmentSelectorType::ProducerTimestamp => TimestampKind::Producer,
    };
    let mut clip = Clip {
        player,
        stream: stream.id,
        kind,
        start,
        end,
        queue: VecDeque::new(),
        after: None,
        exhausted: false,
        tracks: None,
    };
    clip.fill().await?;
    let first = clip.queue.front().ok_or_else(no_fragments)?.clone();
    let tracks = clip.player.tracks(first.stream, first.header_id).await?;
    let configs: Vec<&TrackConfig> = tracks.configs.iter().collect();
    let init = mp4::init_segment(&configs);
    clip.tracks = Some(tracks);
    let head = futures::stream::iter([Ok(init)]);
    // Each part of a media segment is its own chunk: the frame payloads go out as the stored
    // bytes, never copied into a segment buffer.
    let body = futures::stream::unfold(Some((clip, VecDeque::new())), |state| async move {
        let (mut clip, mut pending) = state?;
        loop {
            if let Some(part) = pending.pop_front() {
                return Some((Ok(part), Some((clip, pending))));
            }
            match clip.next_fragment().await {
                Ok(Some(parts)) => pending.extend(parts),
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "clip aborted");
                    return Some((Err(e), None));
                }
            }
        }
    });
    Ok(futures::StreamExt::chain(head, body))
}

struct Clip {
    player: Arc<Player>,
    stream: kinescope_archive::StreamId,
    kind: TimestampKind,
    start: Timestamp,
    end: Timestamp,
    queue: VecDeque<FragmentRow>,
    after: Option<(Timestamp, FragmentNumber)>,
    exhausted: bool,
    tracks: Option<Arc<Tracks>>,
}

impl Clip {
    async fn fill(&mut self) -> Result<(), PlaybackError> {
        if !self.queue.is_empty() || self.exhausted {
            return Ok(());
        }
        let page = self
            .player
            .archive
            .catalog()
            .list_fragments(
                self.stream,
                self.kind,
                self.start,
                self.end,
                self.after.clone(),
                PAGE,
            )
            .await?;
        self.exhausted = page.len() < PAGE as usize;
        if let Some(last) = page.last() {
            let ts = match self.kind {
                TimestampKind::Server => last.server_timestamp,
                TimestampKind::Producer => last.producer_timestamp,
            };
            self.after = Some((ts, last.number.clone()));
        }
        self.queue.extend(page);
        Ok(())
    }

    /// The next fragment's `moof`/`mdat`, or `None` at the end of the range or at a change of
    /// codec configuration.
    async fn next_fragment(&mut self) -> Result<Option<Vec<Bytes>>, PlaybackError> {
        self.fill().await?;
        let Some(row) = self.queue.pop_front() else {
            return Ok(None);
        };
        let tracks = self.tracks.clone().expect("set before the body starts");
        let (these, samples) = self.player.samples(&row).await?;
        if these.configs != tracks.configs {
            tracing::info!(
                fragment = row.number.as_str(),
                "clip ends at a change of codec configuration"
            );
            return Ok(None);
        }
        let runs: Vec<(&TrackConfig, &kinescope_media::remux::TrackSamples)> = tracks
            .configs
            .iter()
            .filter_map(|c| samples.iter().find(|s| s.track == c.number).map(|s| (c, s)))
            .collect();
        let sequence = (row.producer_timestamp.as_millis() / 100) as u32;
        Ok(Some(mp4::media_segment(sequence, &runs)))
    }
}
