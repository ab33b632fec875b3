//! A LIVE HLS viewer for load tests, behaving as hls.js does with fMP4 (spec §5.3): it makes a
//! session (`GetHLSStreamingSessionURL`, signed), fetches the master playlist once, then reloads
//! the media playlist and fetches each new `getMP4MediaFragment.mp4` once (and each init
//! segment once), starting three segments from the live edge. It reloads either as hls.js does
//! without low-latency mode (after a target duration when the playlist changed, half of one
//! when it did not) or with blocking reloads (`_HLS_msn`, RFC 8216bis §6.2.5.2), and notes when
//! each fragment number first appeared in a playlist, so that the simulator can compare it with
//! the fragment's PERSISTED ACK at its camera.
//!
//! The playlist parsing here is the small part of RFC 8216 that Kinescope's playlists use.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use kinescope_api::{FragmentNumber, StreamName, Timestamp};
use tokio::sync::watch;

use crate::{DeviceError, Endpoint, GetConnection};

/// hls.js's `liveSyncDurationCount`: playback starts this many segments from the live edge.
const LIVE_SYNC_SEGMENTS: usize = 3;

/// How a viewer reloads its media playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// After a target duration when the playlist had new segments, half of one when not
    /// (hls.js without low-latency mode).
    Poll,
    /// At once, asking for the next media sequence number (`_HLS_msn`): the server answers
    /// when that segment is listed.
    Block,
}

/// A media playlist, as far as a live viewer reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaPlaylist {
    pub target_duration: Duration,
    /// `EXT-X-MEDIA-SEQUENCE`: the sequence number of the first segment.
    pub media_sequence: u64,
    pub segments: Vec<Segment>,
    /// `EXT-X-ENDLIST`.
    pub ended: bool,
}

/// One segment of a media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub uri: String,
    /// The `EXT-X-MAP` URI in force for it.
    pub map: Option<String>,
}

impl Segment {
    /// The `FragmentNumber` query parameter of its URI.
    pub fn fragment_number(&self) -> Option<&str> {
        query_param(&self.uri, "FragmentNumber")
    }
}

/// Reads a media playlist.
pub fn parse_media_playlist(text: &str) -> Result<MediaPlaylist, String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    if lines.next() != Some("#EXTM3U") {
        return Err("not a playlist: no #EXTM3U".into());
    }
    let mut target = None;
    let mut media_sequence = 0;
    let mut segments = Vec::new();
    let mut map = None;
    let mut ended = false;
    let mut in_segment = false;
    for line in lines {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            let secs: u64 = v
                .parse()
                .map_err(|_| format!("bad target duration {v:?}"))?;
            target = Some(Duration::from_secs(secs));
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            media_sequence = v.parse().map_err(|_| format!("bad media sequence {v:?}"))?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
            map = Some(
                attribute(v, "URI")
                    .ok_or("EXT-X-MAP without URI")?
                    .to_owned(),
            );
        } else if line.starts_with("#EXTINF:") {
            in_segment = true;
        } else if line == "#EXT-X-ENDLIST" {
            ended = true;
        } else if !line.starts_with('#') {
            if !in_segment {
                return Err(format!("URI {line:?} without #EXTINF"));
            }
            segments.push(Segment {
                uri: line.to_owned(),
                map: map.clone(),
            });
            in_segment = false;
        }
    }
    Ok(MediaPlaylist {
        target_duration: target.ok_or("no #EXT-X-TARGETDURATION")?,
        media_sequence,
        segments,
        ended,
    })
}

/// The URI of the first variant stream of a master playlist.
pub fn master_variant(text: &str) -> Option<&str> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    lines.find(|l| l.starts_with("#EXT-X-STREAM-INF:"))?;
    lines.find(|l| !l.starts_with('#'))
}

/// A URI of a playlist fetched from `base` (a path and query), as a path and query.
pub fn resolve(base: &str, uri: &str) -> String {
    if let Some((_, rest)) = uri.split_once("://") {
        return rest.find('/').map_or("/".into(), |i| rest[i..].to_owned());
    }
    if uri.starts_with('/') {
        return uri.to_owned();
    }
    let path = base.split('?').next().unwrap_or(base);
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    format!("{dir}{uri}")
}

/// The value of a quoted or bare attribute in an attribute list (`URI="…"`).
fn attribute<'a>(list: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = list;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], quoted[end + 1..].trim_start_matches(','))
            }
            None => after.split_once(',').unwrap_or((after, "")),
        };
        if key.trim() == name {
            return Some(value);
        }
        rest = next;
    }
    None
}

/// The value of a query parameter (Kinescope's values need no percent-decoding).
fn query_param<'a>(uri: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = uri.split_once('?')?;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// What one viewer saw.
#[derive(Debug, Default)]
pub struct ViewerLog {
    /// Each fragment number when it first appeared in a playlist; `None` for those of the
    /// first playlist (they were there before the viewer came).
    pub first_listed: HashMap<String, Option<Instant>>,
    /// The first fragment the viewer fetched; it fetches every one after it.
    pub start: Option<FragmentNumber>,
    /// Fragment numbers fetched (each once unless it is fetched again by mistake).
    pub fetched: Vec<String>,
    /// Request to response, in ms, of playlists answered at once (not blocking reloads that
    /// waited for a segment).
    pub playlist_ms: Vec<f64>,
    /// Request to the last byte, in ms, of media segments.
    pub segment_ms: Vec<f64>,
    pub segment_bytes: u64,
    pub init_segments: usize,
    /// Blocking reloads (they wait up to 6 s on the server, so they are not in `playlist_ms`).
    pub blocking_reloads: usize,
    /// Blocking reloads answered without the segment they asked for (the server's 6 s limit).
    pub reload_timeouts: usize,
    /// Responses other than 200, with their resource.
    pub errors: Vec<String>,
}

/// Plays `stream` LIVE until `stop`.
pub async fn view_hls(
    endpoint: &Endpoint,
    stream: &StreamName,
    reload: Reload,
    now: fn() -> Timestamp,
    mut stop: watch::Receiver<bool>,
) -> Result<ViewerLog, DeviceError> {
    let body = format!(r#"{{"StreamName":"{stream}","PlaybackMode":"LIVE"}}"#);
    let out = endpoint
        .call("/getHLSStreamingSessionURL", &body, now())
        .await
        .map_err(|e| context("GetHLSStreamingSessionURL", e))?;
    let url = serde_json::from_str::<serde_json::Value>(&out)
        .ok()
        .and_then(|v| v["HLSStreamingSessionURL"].as_str().map(str::to_owned))
        .ok_or_else(|| DeviceError::Protocol(format!("no session URL in {out:?}")))?;
    let master_path = resolve("/", &url);
    let mut conn = GetConnection::new(endpoint);
    let mut log = ViewerLog::default();
    let master = conn
        .get(&master_path)
        .await
        .map_err(|e| context("master playlist", e))?;
    if master.status != 200 {
        return Err(status_error("master playlist", &master));
    }
    let text = String::from_utf8_lossy(&master.body);
    let media_path = resolve(
        &master_path,
        master_variant(&text).ok_or_else(|| DeviceError::Protocol("no variant".into()))?,
    );
    let mut maps = HashSet::new();
    // The media sequence number of the next segment to fetch, once the first playlist is read.
    let mut next: Option<u64> = None;
    let mut wait = Duration::ZERO;
    loop {
        let due = tokio::time::Instant::now() + wait;
        let block = reload == Reload::Block && next.is_some();
        let target = match next {
            Some(n) if block => format!("{media_path}&_HLS_msn={n}"),
            _ => media_path.clone(),
        };
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = stop.changed() => return Ok(log),
        }
        let asked = Instant::now();
        let response = tokio::select! {
            r = conn.get(&target) => r.map_err(|e| context("media playlist", e))?,
            _ = stop.changed() => return Ok(log),
        };
        let at = Instant::now();
        if response.status != 200 {
            log.errors
                .push(format!("media playlist: HTTP {}", response.status));
            wait = Duration::from_millis(500);
            continue;
        }
        let playlist = parse_media_playlist(&String::from_utf8_lossy(&response.body))
            .map_err(DeviceError::Protocol)?;
        let first_playlist = next.is_none();
        let fresh_sequence = playlist.media_sequence + playlist.segments.len() as u64;
        if block {
            log.blocking_reloads += 1;
            if next.is_some_and(|n| n >= fresh_sequence) {
                log.reload_timeouts += 1;
            }
        } else {
            log.playlist_ms.push(ms(at - asked));
        }
        for s in &playlist.segments {
            if let Some(n) = s.fragment_number() {
                let at = (!first_playlist).then_some(at);
                log.first_listed.entry(n.to_owned()).or_insert(at);
            }
        }
        let from = next.unwrap_or_else(|| {
            playlist.media_sequence
                + playlist.segments.len().saturating_sub(LIVE_SYNC_SEGMENTS) as u64
        });
        let changed = next.is_none_or(|n| fresh_sequence > n);
        for (i, segment) in playlist.segments.iter().enumerate() {
            let sequence = playlist.media_sequence + i as u64;
            if sequence < from {
                continue;
            }
            if let Some(map) = &segment.map
                && maps.insert(map.clone())
            {
                let init = conn
                    .get(&resolve(&media_path, map))
                    .await
                    .map_err(|e| context("init segment", e))?;
                if init.status != 200 {
                    log.errors
                        .push(format!("init segment: HTTP {}", init.status));
                }
                log.init_segments += 1;
            }
            let started = Instant::now();
            let media = conn
                .get(&resolve(&media_path, &segment.uri))
                .await
                .map_err(|e| context("media segment", e))?;
            if media.status != 200 {
                log.errors
                    .push(format!("media segment: HTTP {}", media.status));
                continue;
            }
            log.segment_ms.push(ms(started.elapsed()));
            log.segment_bytes += media.body.len() as u64;
            if let Some(n) = segment.fragment_number() {
                if log.start.is_none() {
                    log.start = FragmentNumber::parse(n).ok();
                }
                log.fetched.push(n.to_owned());
            }
        }
        next = Some(fresh_sequence.max(from));
        wait = match reload {
            Reload::Block => Duration::ZERO,
            // hls.js: the reload is due a target duration after the last one began (half of
            // one when nothing changed), less the time the load took.
            Reload::Poll if changed => playlist.target_duration.saturating_sub(at - asked),
            Reload::Poll => (playlist.target_duration / 2).saturating_sub(at - asked),
        };
        if playlist.ended {
            return Ok(log);
        }
    }
}

/// An error with the request it came from.
fn context(what: &str, e: DeviceError) -> DeviceError {
    DeviceError::Protocol(format!("{what}: {e}"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn status_error(what: &str, r: &crate::GetResponse) -> DeviceError {
    DeviceError::Protocol(format!(
        "{what}: HTTP {}: {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A LIVE fMP4 playlist as `playback/src/hls.rs` renders it (token shortened).
    const LIVE: &str = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n\
        #EXT-X-MEDIA-SEQUENCE:12\n#EXT-X-INDEPENDENT-SEGMENTS\n\
        #EXT-X-MAP:URI=\"getMP4InitFragment.mp4?SessionToken=T&TrackNumber=1&SequenceNumber=3\"\n\
        #EXTINF:1.000,\n\
        getMP4MediaFragment.mp4?SessionToken=T&TrackNumber=1&FragmentNumber=91343852333181432392682062607743920146264\n\
        #EXTINF:1.000,\n\
        getMP4MediaFragment.mp4?SessionToken=T&TrackNumber=1&FragmentNumber=91343852333181432397633822764885441725874\n";

    #[test]
    fn reads_a_live_media_playlist() {
        let p = parse_media_playlist(LIVE).unwrap();
        assert_eq!(p.target_duration, Duration::from_secs(1));
        assert_eq!(p.media_sequence, 12);
        assert!(!p.ended);
        assert_eq!(p.segments.len(), 2);
        let map = "getMP4InitFragment.mp4?SessionToken=T&TrackNumber=1&SequenceNumber=3";
        assert_eq!(p.segments[1].map.as_deref(), Some(map));
        assert_eq!(
            p.segments[0].fragment_number(),
            Some("91343852333181432392682062607743920146264")
        );
    }

    #[test]
    fn reads_endlist_and_changing_maps_and_refuses_garbage() {
        let text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"a\"\n#EXTINF:2,\nx?FragmentNumber=1\n\
            #EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"b\",BYTERANGE=\"1@0\"\n#EXTINF:2,\ny\n#EXT-X-ENDLIST\n";
        let p = parse_media_playlist(text).unwrap();
        assert!(p.ended);
        assert_eq!(p.media_sequence, 0);
        assert_eq!(p.segments[0].map.as_deref(), Some("a"));
        assert_eq!(p.segments[1].map.as_deref(), Some("b"));
        assert_eq!(p.segments[1].fragment_number(), None);
        assert!(parse_media_playlist("{\"message\":\"no\"}").is_err());
        assert!(parse_media_playlist("#EXTM3U\n#EXTINF:1,\na\n").is_err());
        assert!(parse_media_playlist("#EXTM3U\n#EXT-X-TARGETDURATION:1\nuri\n").is_err());
    }

    #[test]
    fn finds_the_variant_and_resolves_relative_uris() {
        let master = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
            #EXT-X-STREAM-INF:BANDWIDTH=2000000,CODECS=\"avc1.64001e\",RESOLUTION=1280x720\n\
            getHLSMediaPlaylist.m3u8?SessionToken=T&TrackNumber=1\n";
        let variant = master_variant(master).unwrap();
        let base = "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=T";
        assert_eq!(
            resolve(base, variant),
            "/hls/v1/getHLSMediaPlaylist.m3u8?SessionToken=T&TrackNumber=1"
        );
        assert_eq!(master_variant("#EXTM3U\n"), None);
        assert_eq!(
            resolve("/", "http://127.0.0.1:8080/hls/v1/m.m3u8?SessionToken=a/b"),
            "/hls/v1/m.m3u8?SessionToken=a/b"
        );
        assert_eq!(resolve("/hls/v1/x", "/abs?q"), "/abs?q");
        assert_eq!(resolve("/", "http://h:1"), "/");
    }

    #[test]
    fn attributes_quoted_and_bare() {
        assert_eq!(
            attribute("URI=\"a,b\",BYTERANGE=\"1@0\"", "URI"),
            Some("a,b")
        );
        assert_eq!(attribute("X=1,URI=\"u\"", "URI"), Some("u"));
        assert_eq!(attribute("X=1,Y=2", "Y"), Some("2"));
        assert_eq!(attribute("X=1", "URI"), None);
    }
}
