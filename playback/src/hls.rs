//! HLS playlists (RFC 8216; KVS resource names and shapes from spec §5.3 and §0.14): the master
//! playlist with the video stream and its audio rendition, and the media playlists of a
//! session's window, for fMP4 (`EXT-X-MAP` + `getMP4MediaFragment.mp4`) or MPEG-TS
//! (`getTSFragment.ts`, all tracks in one segment). URLs are relative to the playlist, so
//! players resolve them under `/hls/v1/`.
//!
//! A LIVE media playlist request that names a media sequence number the playlist does not
//! have yet (`_HLS_msn`, RFC 8216bis §6.2.5.2) waits on the stream's live bus for the next
//! fragment instead of answering at once: a fragment is in the playlist the moment it is
//! PERSISTED.

use std::fmt::Write as _;

use bytes::Bytes;
use kinescope_api::civil::iso8601_millis;
use kinescope_api::streaming::{ContainerFormat, DiscontinuityMode, PlaybackMode};
use kinescope_media::remux::TrackConfig;

use crate::PlaybackError;
use crate::player::{Player, Reply, Window, is_discontinuity, segment_durations, selected};
use crate::session::Session;

const PLAYLIST: &str = "application/vnd.apple.mpegurl";

/// `getHLSMasterPlaylist.m3u8`: one stream (video, or audio for an audio-only stream) and, for
/// fMP4 sessions of a stream with audio, the audio rendition (spec §0.14).
pub(crate) async fn master_playlist(
    player: &Player,
    session: &Session,
    token: &str,
) -> Result<Reply, PlaybackError> {
    let (window, tracks) = player.window_and_tracks(session).await?;
    let newest = window.newest();
    let main = tracks.configs.first().expect("tracks are never empty");
    let bandwidth = window.peak_bandwidth();
    let codecs: Vec<&str> = tracks
        .configs
        .iter()
        .map(|c| c.codec_string.as_str())
        .collect();
    let separate_audio =
        session.container == ContainerFormat::FragmentedMp4 && tracks.video().is_some();
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let audio = tracks.audio().filter(|_| separate_audio);
    if let Some(a) = audio {
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,\
             CHANNELS=\"{}\",URI=\"getHLSMediaPlaylist.m3u8?SessionToken={token}&TrackNumber={}\"",
            a.channels, a.number
        );
    }
    let _ = write!(
        out,
        "#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},CODECS=\"{}\"",
        codecs.join(",")
    );
    if let Some(v) = tracks.video() {
        let _ = write!(out, ",RESOLUTION={}x{}", v.width, v.height);
        if let Some(rate) = frame_rate(player, v, newest).await {
            let _ = write!(out, ",FRAME-RATE={rate:.3}");
        }
    }
    if audio.is_some() {
        out.push_str(",AUDIO=\"audio\"");
    }
    let _ = writeln!(
        out,
        "\ngetHLSMediaPlaylist.m3u8?SessionToken={token}&TrackNumber={}",
        main.number
    );
    Ok(playlist(out))
}

/// `getHLSMediaPlaylist.m3u8`: the session's window of fragments, one segment each.
pub(crate) async fn media_playlist(
    player: &Player,
    session: &Session,
    token: &str,
    track: u64,
    msn: Option<u64>,
) -> Result<Reply, PlaybackError> {
    let mut window = player.window(session).await?;
    if session.mode == PlaybackMode::Live
        && let Some(msn) = msn
    {
        let next = window.first_sequence + window.rows.len() as u64;
        if msn >= next {
            let last = window.newest().number.clone();
            player.wait_for_fragment_after(session, &last).await;
            window = player.window(session).await?;
        }
    }
    let newest = window.newest();
    let tracks = player.tracks(newest.stream, newest.header_id).await?;
    if tracks.track(track).is_none() {
        return Err(PlaybackError::NotFound(format!(
            "the stream has no playable track {track}"
        )));
    }
    Ok(playlist(render_media_playlist(
        session, &window, token, track,
    )))
}

/// The text of a media playlist.
fn render_media_playlist(session: &Session, window: &Window, token: &str, track: u64) -> String {
    let durations = segment_durations(&window.rows);
    let target = durations
        .iter()
        .map(|d| (d + 500) / 1000)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
        window.first_sequence
    );
    if window.discontinuity_sequence > 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            window.discontinuity_sequence
        );
    }
    out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
    if session.mode == PlaybackMode::OnDemand {
        out.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n");
    }
    let fmp4 = session.container == ContainerFormat::FragmentedMp4;
    let mut previous = None;
    for (row, duration) in window.rows.iter().zip(durations) {
        let discontinuity = match session.discontinuity {
            DiscontinuityMode::Always => true,
            DiscontinuityMode::Never => false,
            DiscontinuityMode::OnDiscontinuity => {
                previous.is_some_and(|p| is_discontinuity(p, row))
            }
        };
        if discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let new_header =
            previous.is_none_or(|p: &kinescope_archive::FragmentRow| p.header_id != row.header_id);
        if fmp4 && (discontinuity || new_header) {
            let _ = writeln!(
                out,
                "#EXT-X-MAP:URI=\"getMP4InitFragment.mp4?SessionToken={token}&TrackNumber={track}&SequenceNumber={}\"",
                row.header_id
            );
        }
        if session.display_timestamp {
            let _ = writeln!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                iso8601_millis(selected(session, row))
            );
        }
        let _ = writeln!(out, "#EXTINF:{:.3},", duration as f64 / 1000.0);
        if fmp4 {
            let _ = writeln!(
                out,
                "getMP4MediaFragment.mp4?SessionToken={token}&TrackNumber={track}&FragmentNumber={}",
                row.number.as_str()
            );
        } else {
            let _ = writeln!(
                out,
                "getTSFragment.ts?SessionToken={token}&FragmentNumber={}",
                row.number.as_str()
            );
        }
        previous = Some(row);
    }
    if window.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    out
}

/// Frames per second of the video track: its DefaultDuration, else counted in a fragment.
pub(crate) async fn frame_rate(
    player: &Player,
    video: &TrackConfig,
    row: &kinescope_archive::FragmentRow,
) -> Option<f64> {
    if let Some(d) = video.default_duration.filter(|d| *d > 0) {
        return Some(f64::from(video.timescale) / f64::from(d));
    }
    let (_, samples) = player.samples(row).await.ok()?;
    let run = samples.iter().find(|s| s.track == video.number)?;
    let ticks: u64 = run.samples.iter().map(|s| u64::from(s.duration)).sum();
    (ticks > 0).then(|| run.samples.len() as f64 * f64::from(video.timescale) / ticks as f64)
}

fn playlist(text: String) -> Reply {
    Reply {
        content_type: PLAYLIST,
        body: vec![Bytes::from(text)],
        etag: None,
    }
}
