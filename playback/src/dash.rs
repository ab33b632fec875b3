//! The DASH manifest (ISO/IEC 23009-1, `isoff-live` profile; KVS shape from spec §5.4):
//! one Period, an AdaptationSet per playable track, each with a SegmentTemplate over a
//! SegmentTimeline. `S@t` is the fragment's producer timestamp in milliseconds, the same
//! instant its fMP4 `tfdt` names, and the media URL addresses the fragment by it (`$Time$`).
//! ON_DEMAND is a static MPD; LIVE and LIVE_REPLAY are dynamic, re-fetched every
//! `minimumUpdatePeriod`. LIVE's availability timeline is the wall clock (availabilityStartTime
//! is the epoch and producer timestamps are wall-clock times); LIVE_REPLAY's starts when the
//! session was created, at its StartTimestamp, so fragments become available at real-time pace.
//! `DisplayFragmentTimestamp` and `DisplayFragmentNumber` add `kvs:ts` / `kvs:fn` to each `S`.

use std::fmt::Write as _;

use bytes::Bytes;
use kinescope_api::civil::iso8601_millis;
use kinescope_api::streaming::PlaybackMode;
use kinescope_media::remux::{Codec, TrackConfig};

use crate::PlaybackError;
use crate::hls::frame_rate;
use crate::player::{Player, Reply, Window, segment_durations, selected};
use crate::session::Session;

const KVS_NAMESPACE: &str = "https://github.com/kinescope/kinescope/ns/dash";

/// `getDASHManifest.mpd`.
pub(crate) async fn manifest(
    player: &Player,
    session: &Session,
    token: &str,
) -> Result<Reply, PlaybackError> {
    let (window, tracks) = player.window_and_tracks(session).await?;
    let newest = window.newest();
    let first = &window.rows[0];
    let bandwidth = window.peak_bandwidth();
    let frame_rate = match tracks.video() {
        Some(v) => frame_rate(player, v, newest).await,
        None => None,
    };
    let now = player.clock.now();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let durations = segment_durations(&window.rows);
    let span_ms = durations.iter().sum::<u64>() as i64;
    let target_ms = durations.iter().copied().max().unwrap_or(1000);
    // The timeline's origin, in the MPD timescale (ms): where Period time 0 falls.
    let offset = match session.mode {
        PlaybackMode::OnDemand => first.producer_timestamp.as_millis(),
        PlaybackMode::LiveReplay => session.start.map_or(0, |s| s.as_millis()),
        PlaybackMode::Live => 0,
    };
    let _ = write!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" xmlns:kvs=\"{KVS_NAMESPACE}\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" minBufferTime=\"{}\"",
        duration(target_ms as i64)
    );
    if window.ended && session.mode == PlaybackMode::OnDemand {
        let _ = write!(
            out,
            " type=\"static\" mediaPresentationDuration=\"{}\"",
            duration(span_ms)
        );
    } else {
        let ast = match session.mode {
            PlaybackMode::LiveReplay => session.created,
            _ => kinescope_api::Timestamp::from_millis(0),
        };
        let (update, depth, delay) = live_timing(target_ms as i64, span_ms);
        let _ = write!(
            out,
            " type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" \
             minimumUpdatePeriod=\"{}\" timeShiftBufferDepth=\"{}\" suggestedPresentationDelay=\"{}\"",
            iso8601_millis(ast),
            iso8601_millis(now),
            duration(update),
            duration(depth),
            duration(delay),
        );
    }
    out.push_str(">\n  <Period id=\"0\" start=\"PT0S\">\n");
    for config in &tracks.configs {
        adaptation_set(
            &mut out, session, &window, &durations, token, config, bandwidth, frame_rate, offset,
        );
    }
    out.push_str("  </Period>\n");
    if !(window.ended && session.mode == PlaybackMode::OnDemand) {
        // The server's clock (after the Period, in schema order), so that players need not reach a time server of their own.
        let _ = writeln!(
            out,
            "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"{}\"/>",
            iso8601_millis(now)
        );
    }
    out.push_str("</MPD>\n");
    Ok(Reply {
        content_type: "application/dash+xml",
        body: vec![Bytes::from(out)],
        etag: None,
    })
}

#[allow(clippy::too_many_arguments)]
fn adaptation_set(
    out: &mut String,
    session: &Session,
    window: &Window,
    durations: &[u64],
    token: &str,
    config: &TrackConfig,
    bandwidth: u64,
    frame_rate: Option<f64>,
    offset: i64,
) {
    let n = config.number;
    let video = matches!(config.codec, Codec::Avc(_) | Codec::Hevc(_));
    let (content, mime) = if video {
        ("video", "video/mp4")
    } else {
        ("audio", "audio/mp4")
    };
    let _ = writeln!(
        out,
        "    <AdaptationSet id=\"{n}\" contentType=\"{content}\" mimeType=\"{mime}\" \
         segmentAlignment=\"true\" startWithSAP=\"1\">"
    );
    let _ = write!(
        out,
        "      <Representation id=\"{n}\" codecs=\"{}\" bandwidth=\"{bandwidth}\"",
        config.codec_string
    );
    if video {
        let _ = write!(
            out,
            " width=\"{}\" height=\"{}\"",
            config.width, config.height
        );
        if let Some(rate) = frame_rate {
            let _ = write!(out, " frameRate=\"{}\"", (rate * 1000.0).round() / 1000.0);
        }
        out.push_str(">\n");
    } else {
        let _ = writeln!(
            out,
            " audioSamplingRate=\"{}\">\n        <AudioChannelConfiguration \
             schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"{}\"/>",
            config.sample_rate, config.channels
        );
    }
    let header = window.rows[0].header_id;
    let _ = writeln!(
        out,
        "        <SegmentTemplate timescale=\"1000\" presentationTimeOffset=\"{offset}\" \
         initialization=\"getMP4InitFragment.mp4?SessionToken={token}&amp;TrackNumber={n}&amp;SequenceNumber={header}\" \
         media=\"getMP4MediaFragment.mp4?SessionToken={token}&amp;TrackNumber={n}&amp;Time=$Time$\">\n\
         \x20         <SegmentTimeline>"
    );
    for (row, d) in window.rows.iter().zip(durations) {
        let _ = write!(
            out,
            "            <S t=\"{}\" d=\"{d}\"",
            row.producer_timestamp.as_millis(),
        );
        if session.display_number {
            let _ = write!(out, " kvs:fn=\"{}\"", row.number.as_str());
        }
        if session.display_timestamp {
            let _ = write!(
                out,
                " kvs:ts=\"{:.3}\"",
                selected(session, row).as_millis() as f64 / 1000.0
            );
        }
        out.push_str("/>\n");
    }
    out.push_str(
        "          </SegmentTimeline>\n        </SegmentTemplate>\n      </Representation>\n    </AdaptationSet>\n",
    );
}

/// A dynamic MPD's `minimumUpdatePeriod`, `timeShiftBufferDepth` and
/// `suggestedPresentationDelay` (ms), for the window's longest segment and its span: reload
/// every segment, play two segments behind now, and keep the time shift buffer longer than
/// that delay (DASH-IF timing model, "Presentation delay": no zero or negative effective time
/// shift buffer), also while a new session's window holds only one or two fragments.
fn live_timing(target_ms: i64, span_ms: i64) -> (i64, i64, i64) {
    let delay = target_ms * 2;
    (target_ms, span_ms.max(delay + target_ms), delay)
}

/// An `xs:duration` in seconds with milliseconds.
fn duration(ms: i64) -> String {
    format!("PT{}.{:03}S", ms / 1000, ms.rem_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_shift_buffer_outlasts_the_presentation_delay() {
        // One fragment in a new session's window, a full window, a long one.
        for (target, span) in [(1000, 1000), (1001, 2002), (1000, 5000), (2000, 60_000)] {
            let (update, depth, delay) = live_timing(target, span);
            assert_eq!(update, target);
            assert_eq!(delay, 2 * target);
            assert!(depth > delay, "{depth} <= {delay}");
            assert!(depth >= span);
        }
        assert_eq!(duration(3003), "PT3.003S");
    }
}
