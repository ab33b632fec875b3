//! GetMedia (spec §4, §0.11–§0.13): the archive from the chosen start, then the live tail, as
//! one MKV document per fragment with the KVS tags. Catch-up reads pages from the catalog and
//! fragment bytes from the store; the tail follows the stream's live bus, subscribed before
//! catch-up begins, so the seam has no gap and no duplicate (anything at or before the last
//! fragment sent is skipped). The bus carries each fragment's bytes as they arrived, so the tail
//! sends them without touching the store, and a stream that keeps no data (retention 0) is
//! served from the bus alone; a fragment the upload did not keep in memory (over its budget,
//! design/0008) is read from the store. A reader that falls behind the bus goes back to catalog pages; the
//! response body is produced only as fast as the client reads it, so a slow reader holds one
//! fragment of its own, never a backlog (the bus holds at most `LIVE_BUS_CAPACITY` for all).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use kinescope_api::{FragmentNumber, StreamRef, Timestamp};
use kinescope_archive::{
    Archive, ArchiveError, Clock, FragmentRow, LiveFragment, StreamRecord, TimestampKind,
};
use kinescope_media::mkv::{FragmentTags, TrackHeader, getmedia_error, getmedia_fragment};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::PlaybackError;
use crate::fragments::load_header;

/// Fragments read from the catalog per page during catch-up.
const PAGE: u32 = 32;
/// How often a waiting reader checks that its stream still exists.
const DELETION_CHECK: Duration = Duration::from_secs(1);
/// A live fragment wakes all of its stream's readers at once; each hands its connection at most
/// this much of it before letting the others write (so that 200 readers all get their first
/// bytes within milliseconds, not each after the previous readers' whole fragments).
const LIVE_SLICE: usize = 16 * 1024;

/// Where a GetMedia read starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Earliest,
    /// The latest existing fragment, then the tail (spec §0.13).
    Now,
    /// After this fragment (FRAGMENT_NUMBER and CONTINUATION_TOKEN are exclusive).
    After(FragmentNumber),
    /// The first fragment whose timestamp of this kind is at or after the time.
    At(TimestampKind, Timestamp),
}

/// One GetMedia read.
#[derive(Debug, Clone)]
pub struct MediaRead {
    pub archive: Arc<Archive>,
    pub clock: Arc<dyn Clock>,
    pub stream: StreamRecord,
    pub start: Start,
    /// The response ends after this long without a new fragment.
    pub idle: Duration,
}

/// The GetMedia response body.
pub fn get_media(read: MediaRead) -> impl Stream<Item = Bytes> + Send {
    let live = read.archive.subscribe(read.stream.id);
    let idle_deadline = tokio::time::Instant::now() + read.idle;
    let state = State {
        read,
        live,
        last: None,
        queue: VecDeque::new(),
        catching_up: true,
        started: false,
        idle_deadline,
        done: false,
        header: None,
        pending: VecDeque::new(),
        interleave: false,
        unyielded: 0,
        prefetch: None,
        _active: ActiveReader::new(),
    };
    futures::stream::unfold(Some(state), |state| async move {
        let mut s = state?;
        loop {
            if let Some(b) = s.pending.pop_front() {
                if s.interleave {
                    if s.unyielded >= LIVE_SLICE {
                        // Lets the other readers woken by the same fragment write theirs.
                        tokio::task::yield_now().await;
                        s.unyielded = 0;
                    }
                    s.unyielded += b.len();
                }
                return Some((b, Some(s)));
            }
            match s.next_fragment().await {
                Ok(Some(item)) => match s.document(&item).await {
                    Ok(parts) => s.send(&item, parts),
                    Err(e) => return s.fail(&item.row().number, e),
                },
                Ok(None) => return None,
                Err(e) => {
                    let number = s
                        .last
                        .clone()
                        .unwrap_or_else(|| FragmentNumber::parse("0").expect("digits"));
                    return s.fail(&number, e);
                }
            }
        }
    })
}

/// A fragment to send: from the catalog, or from the live bus.
enum Item {
    Stored(FragmentRow),
    Live(Arc<LiveFragment>),
}

impl Item {
    fn row(&self) -> &FragmentRow {
        match self {
            Self::Stored(r) => r,
            Self::Live(l) => &l.row,
        }
    }
}

struct State {
    read: MediaRead,
    live: tokio::sync::broadcast::Receiver<Arc<LiveFragment>>,
    /// The last fragment sent.
    last: Option<FragmentNumber>,
    queue: VecDeque<Item>,
    catching_up: bool,
    started: bool,
    /// The read ends if no new fragment arrives before this.
    idle_deadline: tokio::time::Instant,
    /// Set after an error document: nothing follows it.
    done: bool,
    /// The header of the fragment sent last, reused while it does not change.
    header: Option<(i64, Arc<TrackHeader>)>,
    pending: VecDeque<Bytes>,
    /// Whether `pending` is a live fragment, handed out [`LIVE_SLICE`] at a time.
    interleave: bool,
    /// Bytes handed out since this reader last yielded.
    unyielded: usize,
    /// The next stored fragment's bytes, being read while the current one is sent (catch-up
    /// overlaps the store with the socket; a reader holds at most these two fragments).
    prefetch: Option<(FragmentNumber, JoinHandle<Result<Bytes, ArchiveError>>)>,
    _active: ActiveReader,
}

/// Counts the read in `kinescope_getmedia_active_readers` while it lives (until its response
/// ends or the client goes away).
struct ActiveReader;

impl ActiveReader {
    fn new() -> Self {
        metrics::gauge!("kinescope_getmedia_active_readers").increment(1.0);
        Self
    }
}

impl Drop for ActiveReader {
    fn drop(&mut self) {
        metrics::gauge!("kinescope_getmedia_active_readers").decrement(1.0);
    }
}

impl State {
    /// The next fragment to send, or `None` when the read is over.
    async fn next_fragment(&mut self) -> Result<Option<Item>, PlaybackError> {
        if self.done {
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            self.resolve_start().await?;
        }
        loop {
            if let Some(item) = self.queue.pop_front() {
                if self.last.as_ref().is_none_or(|l| item.row().number > *l) {
                    // Idle counts from the last fragment sent.
                    self.idle_deadline = tokio::time::Instant::now() + self.read.idle;
                    return Ok(Some(item));
                }
                continue;
            }
            if self.catching_up {
                let page = self
                    .read
                    .archive
                    .catalog()
                    .fragments_after(self.read.stream.id, self.last.as_ref(), PAGE, false)
                    .await?;
                self.catching_up = page.len() == PAGE as usize;
                self.queue.extend(page.into_iter().map(Item::Stored));
                continue;
            }
            // Wake at least every second to notice a deleted stream; end when idle. (A fragment
            // already on the bus is taken even when the deadline has passed while the client was
            // not reading: idle means no new fragment, not a slow reader.)
            let wake = self
                .idle_deadline
                .min(tokio::time::Instant::now() + DELETION_CHECK);
            match tokio::time::timeout_at(wake, self.live.recv()).await {
                Ok(Ok(live)) => {
                    self.idle_deadline = tokio::time::Instant::now() + self.read.idle;
                    self.queue.push_back(Item::Live(live));
                }
                Ok(Err(RecvError::Lagged(n))) => {
                    metrics::counter!("kinescope_getmedia_lagged_total").increment(1);
                    tracing::info!(stream = %self.read.stream.info.stream_name, missed = n, "GetMedia reader fell behind; reading the archive");
                    self.catching_up = true;
                }
                Ok(Err(RecvError::Closed)) => return Ok(None),
                Err(_) => {
                    if tokio::time::Instant::now() >= self.idle_deadline
                        || !self.stream_exists().await
                    {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Queues a fragment's document to be handed out.
    fn send(&mut self, item: &Item, parts: Vec<Bytes>) {
        let live = matches!(item, Item::Live(_));
        let source = if live { "live" } else { "archive" };
        metrics::counter!("kinescope_getmedia_fragments_total", "source" => source).increment(1);
        metrics::counter!("kinescope_getmedia_bytes_total")
            .increment(parts.iter().map(|b| b.len() as u64).sum());
        self.last = Some(item.row().number.clone());
        self.interleave = live;
        self.unyielded = 0;
        self.pending.extend(parts);
    }

    async fn stream_exists(&self) -> bool {
        let arn = StreamRef::Arn(self.read.stream.info.stream_arn.clone());
        self.read.archive.catalog().stream(&arn).await.is_ok()
    }

    async fn resolve_start(&mut self) -> Result<(), PlaybackError> {
        let catalog = self.read.archive.catalog();
        let id = self.read.stream.id;
        match &self.read.start {
            Start::Earliest => {}
            Start::After(n) => self.last = Some(n.clone()),
            Start::Now => {
                let latest = catalog.fragments_after(id, None, 1, true).await?;
                self.queue.extend(latest.into_iter().map(Item::Stored));
                self.catching_up = false;
            }
            Start::At(kind, t) => {
                let first = catalog
                    .list_fragments(id, *kind, *t, Timestamp::from_millis(i64::MAX), None, 1)
                    .await?;
                match first.into_iter().next() {
                    // It goes first; catch-up continues after it in fragment order.
                    Some(row) => self.queue.push_back(Item::Stored(row)),
                    None => {
                        // Nothing that late yet: only what arrives from now on.
                        self.last = catalog
                            .fragments_after(id, None, 1, true)
                            .await?
                            .pop()
                            .map(|r| r.number);
                        self.catching_up = false;
                    }
                }
            }
        }
        Ok(())
    }

    async fn document(&mut self, item: &Item) -> Result<Vec<Bytes>, PlaybackError> {
        let row = item.row();
        let (header, cluster) = match item {
            Item::Live(live) => {
                let cluster = match &live.bytes {
                    Some(bytes) => bytes
                        .iter()
                        .flat_map(|b| {
                            (0..b.len())
                                .step_by(LIVE_SLICE)
                                .map(|i| b.slice(i..(i + LIVE_SLICE).min(b.len())))
                        })
                        .collect(),
                    // The upload did not keep it (over its memory budget): from the store.
                    None => vec![self.read.archive.fragment_bytes(row).await?],
                };
                (live.header.clone(), cluster)
            }
            Item::Stored(row) => {
                let header = match &self.header {
                    Some((id, h)) if *id == row.header_id => h.clone(),
                    _ => {
                        Arc::new(load_header(&self.read.archive, row.stream, row.header_id).await?)
                    }
                };
                let bytes = match self.prefetch.take() {
                    Some((number, read)) if number == row.number => {
                        read.await.map_err(std::io::Error::other)
                    }
                    _ => Ok(self.read.archive.fragment_bytes(row).await),
                };
                let bytes = bytes.map_err(ArchiveError::from)??;
                if let Some(Item::Stored(next)) = self.queue.front() {
                    let (archive, next) = (self.read.archive.clone(), next.clone());
                    self.prefetch = Some((
                        next.number.clone(),
                        tokio::spawn(async move { archive.fragment_bytes(&next).await }),
                    ));
                }
                (header, vec![bytes])
            }
        };
        self.header = Some((row.header_id, header.clone()));
        let behind = (self.read.clock.now().as_millis() - row.server_timestamp.as_millis()).max(0);
        let tags = FragmentTags {
            fragment_number: row.number.as_str(),
            server_timestamp_ms: row.server_timestamp.as_millis(),
            producer_timestamp_ms: row.producer_timestamp.as_millis(),
            metadata: &row.metadata,
        };
        Ok(getmedia_fragment(
            &header,
            tags,
            &cluster,
            behind.unsigned_abs(),
            row.number.as_str(),
        ))
    }

    /// Ends the read with the error document (spec §0.12).
    fn fail(mut self, number: &FragmentNumber, e: PlaybackError) -> Option<(Bytes, Option<State>)> {
        tracing::error!(stream = %self.read.stream.info.stream_name, error = %e, "GetMedia failed");
        let header = self.header.as_ref().map(|(_, h)| &**h);
        let mut parts: VecDeque<Bytes> =
            getmedia_error(header, number.as_str(), 5000, "INTERNAL_ERROR").into();
        let first = parts.pop_front()?;
        self.pending = parts;
        self.done = true;
        Some((first, Some(self)))
    }
}
