//! ListFragments (spec §5.1) and GetMediaForFragmentList (spec §5.2). ListFragments is ordered
//! by the selected timestamp and strongly consistent: a fragment ACKed PERSISTED is in the very
//! next answer (KVS: unordered, eventually consistent).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures::Stream;
use kinescope_api::archived::{
    Fragment, FragmentSelectorType, ListFragmentsInput, ListFragmentsOutput,
};
use kinescope_api::{FragmentNumber, Timestamp};
use kinescope_archive::{
    Archive, ArchiveError, CatalogError, FragmentRow, StreamId, StreamRecord, TimestampKind,
};
use kinescope_media::mkv::{FragmentTags, TrackHeader, archived_fragment, parse_stored_header};
use kinescope_media::remux::RemuxError;

use crate::session::TokenError;

const DEFAULT_MAX_RESULTS: u32 = 100;
const MAX_RESULTS: u32 = 1000;
/// Fragments per GetMediaForFragmentList request (spec §7).
pub const MAX_FRAGMENT_LIST: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum PlaybackError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NoDataRetention(String),
    /// The stream's media cannot be played as HLS, DASH or MP4.
    #[error(transparent)]
    Media(#[from] RemuxError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

/// One page of fragments.
pub async fn list_fragments(
    archive: &Archive,
    stream: &StreamRecord,
    input: ListFragmentsInput,
) -> Result<ListFragmentsOutput, PlaybackError> {
    let limit = input.max_results.unwrap_or(DEFAULT_MAX_RESULTS);
    if !(1..=MAX_RESULTS).contains(&limit) {
        return Err(PlaybackError::InvalidArgument(format!(
            "MaxResults must be 1 to {MAX_RESULTS}, got {limit}"
        )));
    }
    let (query, after) = match (&input.next_token, &input.fragment_selector) {
        (Some(token), _) => Token::decode(token)?.split(),
        (None, Some(sel)) => {
            let range = &sel.timestamp_range;
            if range.start_timestamp > range.end_timestamp {
                return Err(PlaybackError::InvalidArgument(
                    "StartTimestamp is after EndTimestamp".into(),
                ));
            }
            let kind = match sel.fragment_selector_type {
                FragmentSelectorType::ProducerTimestamp => TimestampKind::Producer,
                FragmentSelectorType::ServerTimestamp => TimestampKind::Server,
            };
            (
                Query {
                    kind,
                    start: range.start_timestamp,
                    end: range.end_timestamp,
                },
                None,
            )
        }
        // No selector: every fragment, by server timestamp.
        (None, None) => (
            Query {
                kind: TimestampKind::Server,
                start: Timestamp::from_millis(i64::MIN),
                end: Timestamp::from_millis(i64::MAX),
            },
            None,
        ),
    };
    let mut rows = archive
        .catalog()
        .list_fragments(
            stream.id,
            query.kind,
            query.start,
            query.end,
            after,
            limit + 1,
        )
        .await?;
    let next_token = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|last| {
            let ts = match query.kind {
                TimestampKind::Producer => last.producer_timestamp,
                TimestampKind::Server => last.server_timestamp,
            };
            Token {
                query,
                after_ts: ts,
                after_number: last.number.clone(),
            }
            .encode()
        })
    } else {
        None
    };
    let fragments = rows
        .into_iter()
        .map(|r| Fragment {
            fragment_number: r.number,
            fragment_size_in_bytes: r.size,
            producer_timestamp: r.producer_timestamp,
            server_timestamp: r.server_timestamp,
            fragment_length_in_milliseconds: r.duration_ms,
        })
        .collect();
    Ok(ListFragmentsOutput {
        fragments,
        next_token,
    })
}

/// The rows of `numbers` on the stream, in the requested order; an unknown number is
/// `NotFound`, before any media is sent.
pub async fn resolve_fragments(
    archive: &Archive,
    stream: &StreamRecord,
    numbers: &[FragmentNumber],
) -> Result<Vec<FragmentRow>, PlaybackError> {
    if numbers.is_empty() || numbers.len() > MAX_FRAGMENT_LIST {
        return Err(PlaybackError::InvalidArgument(format!(
            "Fragments must list 1 to {MAX_FRAGMENT_LIST} fragment numbers"
        )));
    }
    let found: HashMap<FragmentNumber, FragmentRow> = archive
        .catalog()
        .fragments_by_number(stream.id, numbers)
        .await?
        .into_iter()
        .map(|r| (r.number.clone(), r))
        .collect();
    numbers
        .iter()
        .map(|n| {
            found.get(n).cloned().ok_or_else(|| {
                PlaybackError::NotFound(format!(
                    "fragment {n} not found on stream {}",
                    stream.info.stream_name
                ))
            })
        })
        .collect()
}

/// The fragments as MKV documents in the given order (GetMediaForFragmentList framing), read
/// from the store one fragment at a time.
pub fn fragment_documents(
    archive: Arc<Archive>,
    rows: Vec<FragmentRow>,
) -> impl Stream<Item = Result<Bytes, PlaybackError>> + Send {
    struct State {
        archive: Arc<Archive>,
        rows: std::vec::IntoIter<FragmentRow>,
        headers: HashMap<i64, TrackHeader>,
        pending: std::vec::IntoIter<Bytes>,
    }
    let state = State {
        archive,
        rows: rows.into_iter(),
        headers: HashMap::new(),
        pending: Vec::new().into_iter(),
    };
    futures::stream::unfold(Some(state), |state| async move {
        let mut s = state?;
        loop {
            if let Some(b) = s.pending.next() {
                return Some((Ok(b), Some(s)));
            }
            let row = s.rows.next()?;
            match document(&s.archive, &mut s.headers, &row).await {
                Ok(parts) => s.pending = parts.into_iter(),
                Err(e) => {
                    tracing::error!(fragment = %row.number, error = %e, "reading a fragment failed");
                    return Some((Err(e), None));
                }
            }
        }
    })
}

async fn document(
    archive: &Archive,
    headers: &mut HashMap<i64, TrackHeader>,
    row: &FragmentRow,
) -> Result<Vec<Bytes>, PlaybackError> {
    let header = match headers.entry(row.header_id) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => e.insert(load_header(archive, row.stream, row.header_id).await?),
    };
    let cluster = archive.fragment_bytes(row).await?;
    let tags = FragmentTags {
        fragment_number: row.number.as_str(),
        server_timestamp_ms: row.server_timestamp.as_millis(),
        producer_timestamp_ms: row.producer_timestamp.as_millis(),
        metadata: &row.metadata,
    };
    Ok(archived_fragment(header, tags, &[cluster]))
}

/// The track header a stored fragment follows, read back.
pub(crate) async fn load_header(
    archive: &Archive,
    stream: StreamId,
    header_id: i64,
) -> Result<TrackHeader, PlaybackError> {
    let corrupt = |value: String| {
        PlaybackError::Catalog(CatalogError::Corrupt {
            column: "header",
            value,
        })
    };
    let stored = archive
        .catalog()
        .track_header(stream, header_id)
        .await?
        .ok_or_else(|| corrupt(format!("no header {header_id}")))?;
    parse_stored_header(&Bytes::from(stored)).map_err(|e| corrupt(e.to_string()))
}

#[derive(Debug, Clone, Copy)]
struct Query {
    kind: TimestampKind,
    start: Timestamp,
    end: Timestamp,
}

/// A ListFragments NextToken: the query and where the last page ended.
#[derive(Debug)]
struct Token {
    query: Query,
    after_ts: Timestamp,
    after_number: FragmentNumber,
}

impl Token {
    fn encode(&self) -> String {
        let kind = match self.query.kind {
            TimestampKind::Producer => "P",
            TimestampKind::Server => "S",
        };
        let q = &self.query;
        BASE64.encode(format!(
            "{kind}:{}:{}:{}:{}",
            q.start.as_millis(),
            q.end.as_millis(),
            self.after_ts.as_millis(),
            self.after_number
        ))
    }

    fn decode(token: &str) -> Result<Self, PlaybackError> {
        let bad =
            || PlaybackError::InvalidArgument("NextToken is not one this server issued".into());
        let text =
            String::from_utf8(BASE64.decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
        let parts: Vec<&str> = text.split(':').collect();
        let [kind, start, end, after_ts, after_number] = parts[..] else {
            return Err(bad());
        };
        let kind = match kind {
            "P" => TimestampKind::Producer,
            "S" => TimestampKind::Server,
            _ => return Err(bad()),
        };
        let ms = |s: &str| {
            s.parse::<i64>()
                .map(Timestamp::from_millis)
                .map_err(|_| bad())
        };
        Ok(Self {
            query: Query {
                kind,
                start: ms(start)?,
                end: ms(end)?,
            },
            after_ts: ms(after_ts)?,
            after_number: FragmentNumber::parse(after_number).map_err(|_| bad())?,
        })
    }

    fn split(self) -> (Query, Option<(Timestamp, FragmentNumber)>) {
        (self.query, Some((self.after_ts, self.after_number)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_refuse_forgeries() {
        let t = Token {
            query: Query {
                kind: TimestampKind::Producer,
                start: Timestamp::from_millis(-5),
                end: Timestamp::from_millis(i64::MAX),
            },
            after_ts: Timestamp::from_millis(1234),
            after_number: FragmentNumber::parse("00000000000000000042").unwrap(),
        };
        let encoded = t.encode();
        assert!(
            encoded
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
        );
        let back = Token::decode(&encoded).unwrap();
        assert_eq!(
            (back.query.kind, back.query.start, back.after_ts),
            (
                TimestampKind::Producer,
                Timestamp::from_millis(-5),
                Timestamp::from_millis(1234)
            )
        );
        assert_eq!(back.after_number, t.after_number);
        for bad in [
            "",
            "!!!",
            "eA==",
            &BASE64.encode("X:1:2:3:4"),
            &BASE64.encode("S:1:2:3:abc"),
        ] {
            assert!(Token::decode(bad).is_err(), "{bad}");
        }
    }
}
