//! The async shell around [`Session`]: one task per PutMedia request that reads the body,
//! writes each fragment to the store while it arrives, commits it (durable object, then catalog
//! row) before ACKing PERSISTED, and streams ACKs back while the body is still arriving (spec
//! §3.2). Writes run at most `WRITE_QUEUE` batches behind reading, so a slow store pushes back
//! on the socket instead of buffering. While its stream has live readers, an upload keeps the
//! fragment it is receiving (as the `Bytes` chunks the body arrived in, shared with the store's
//! writes, within the server-wide [`LiveBudget`]), which goes to the live bus with the commit,
//! so live readers need not read it back from the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use kinescope_api::ack::{Ack, AckError, AckEvent};
use kinescope_archive::{
    Archive, ArchiveError, CatalogError, Clock, NewFragment, PendingFragment, StreamRecord,
};
use kinescope_media::mkv::TrackHeader;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::live_copy::{LiveBudget, LiveCopy};
use crate::session::{Output, ReceivedFragment, Session, SessionConfig};
use crate::writers::Writers;

/// One PutMedia request, validated by the HTTP layer.
#[derive(Debug, Clone)]
pub struct Upload {
    pub archive: Arc<Archive>,
    pub clock: Arc<dyn Clock>,
    pub stream: StreamRecord,
    pub session: SessionConfig,
    /// The writers of every stream on this server (one per stream, with handover).
    pub writers: Arc<Writers>,
    /// An IDLE ACK after this long without data, and again after each such period.
    pub idle_ack_every: Duration,
    /// The request ends after this long without data (spec §3.4: 30 s).
    pub idle_limit: Duration,
    /// ERROR 4003 after this long (spec §3.4: 45 min).
    pub max_connection: Duration,
    /// What all uploads may keep in memory of the fragments they receive, for live readers.
    pub live_budget: Arc<LiveBudget>,
}

/// Runs the upload until the body ends, an error is ACKed, or the client goes away. ACK lines
/// go to `acks`; dropping it ends the response.
pub async fn upload<B, E>(u: Upload, mut body: B, acks: mpsc::Sender<Bytes>)
where
    B: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: std::fmt::Display,
{
    metrics::gauge!("kinescope_ingest_active_uploads").increment(1.0);
    let stream_name = u.stream.info.stream_name.to_string();
    let stored = match u.writers.latest(u.stream.id) {
        Some(t) => Some(t),
        None => u.archive.catalog().latest_producer_timestamp(u.stream.id).await.unwrap_or_else(|e| {
            tracing::warn!(stream = %stream_name, error = %e, "cannot read the stream's latest fragment");
            None
        }),
    };
    let mut writer = u.writers.register(u.stream.id, stored);
    let numbers = u.archive.clone();
    let mut session = Session::new(
        u.session.clone(),
        writer.previous,
        Box::new(move |now| numbers.next_fragment_number(now)),
    );
    let mut recorded = writer.previous;
    let mut superseded = false;
    let mut shell = Shell {
        u: &u,
        acks: &acks,
        headers: HashMap::new(),
        header_ids: HashMap::new(),
        pending: None,
        live: LiveCopy::new(u.live_budget.clone()),
    };
    let started = Instant::now();
    let mut last_data = Instant::now();
    let mut last_idle = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut body_done = false;
    loop {
        tokio::select! {
            chunk = body.next(), if !body_done => match chunk {
                Some(Ok(b)) => {
                    metrics::counter!("kinescope_ingest_bytes_total").increment(b.len() as u64);
                    last_data = Instant::now();
                    session.push(b, u.clock.now());
                }
                Some(Err(e)) => {
                    tracing::info!(stream = %stream_name, error = %e, "upload body broken off");
                    break;
                }
                None => {
                    body_done = true;
                    session.finish();
                }
            },
            _ = writer.superseded(), if !superseded => {
                // A newer connection took over: finish the fragment being received, then end.
                superseded = true;
                tracing::info!(stream = %stream_name, "upload superseded by a newer connection");
                if !session.in_fragment() {
                    shell.send(Ack::error(AckError::MaxConnectionDurationReached, None)).await;
                    break;
                }
            }
            _ = tick.tick() => {
                if started.elapsed() >= u.max_connection {
                    shell.send(Ack::error(AckError::MaxConnectionDurationReached, None)).await;
                    break;
                }
                if last_data.elapsed() >= u.idle_limit {
                    tracing::info!(stream = %stream_name, "upload idle too long; ending it");
                    break;
                }
                if last_data.elapsed() >= u.idle_ack_every && last_idle.elapsed() >= u.idle_ack_every {
                    last_idle = Instant::now();
                    if !shell.send(Ack::idle()).await {
                        break;
                    }
                }
            }
        }
        let mut open = true;
        while let Some(output) = session.poll() {
            open = match output {
                Output::Header(h) => {
                    shell.headers.insert(h.version, Arc::new(h));
                    true
                }
                Output::Ack(a) => shell.send(a).await,
                Output::FragmentData { number, bytes } => shell.write(number, bytes).await,
                Output::Persist(f) => {
                    let stored = shell.persist(f).await;
                    if stored && superseded {
                        shell
                            .send(Ack::error(AckError::MaxConnectionDurationReached, None))
                            .await;
                        open = false;
                        break;
                    }
                    stored
                }
            };
            if !open {
                break;
            }
        }
        // Tell later writers only when it moved (not on every body chunk).
        if session.last_producer_timestamp() != recorded {
            recorded = session.last_producer_timestamp();
            if let Some(t) = recorded {
                writer.record(t);
            }
        }
        if !open || session.failed() || body_done {
            break;
        }
    }
    metrics::gauge!("kinescope_ingest_active_uploads").decrement(1.0);
}

struct Shell<'a> {
    u: &'a Upload,
    acks: &'a mpsc::Sender<Bytes>,
    headers: HashMap<u32, Arc<TrackHeader>>,
    header_ids: HashMap<u32, i64>,
    /// The fragment being written while it arrives (dropped, it leaves nothing).
    pending: Option<PendingFragment>,
    /// The bytes of the fragment being received so far, for the live bus (and, on a stream
    /// that keeps no data, its only copy), while somebody reads live and the budget allows.
    live: LiveCopy,
}

impl Shell<'_> {
    /// Sends an ACK; false when the client is gone or the ACK ends the upload.
    async fn send(&self, ack: Ack) -> bool {
        if let Some(e) = ack.error {
            metrics::counter!("kinescope_ingest_errors_total", "error_id" => e.id().to_string())
                .increment(1);
            tracing::info!(stream = %self.u.stream.info.stream_name, error = e.code(), "upload refused");
        }
        let ends = ack.event == AckEvent::Error;
        self.acks.send(Bytes::from(ack.to_line())).await.is_ok() && !ends
    }

    /// Stores the fragment (unless the stream keeps no data) and ACKs PERSISTED or ERROR.
    async fn persist(&mut self, f: ReceivedFragment) -> bool {
        metrics::counter!("kinescope_ingest_fragments_total").increment(1);
        if self.u.stream.info.data_retention_in_hours == 0 {
            // Nothing is stored and nothing is PERSISTED; live readers still get the fragment.
            let fragment = self.new_fragment(f, -1);
            self.u.archive.announce_unstored(fragment);
            return true;
        }
        let started = Instant::now();
        let (timecode, number) = (f.timecode, f.number.clone());
        match self.store(f).await {
            Ok(()) => {
                metrics::histogram!("kinescope_ingest_persist_seconds")
                    .record(started.elapsed().as_secs_f64());
                self.send(Ack::fragment(AckEvent::Persisted, timecode, number))
                    .await
            }
            Err(e) => {
                let error = match e {
                    ArchiveError::Catalog(CatalogError::StreamNotFound(_)) => {
                        AckError::StreamNotActive
                    }
                    e => {
                        tracing::error!(stream = %self.u.stream.info.stream_name, error = %e, "persisting a fragment failed");
                        AckError::ArchivalError
                    }
                };
                self.send(Ack::error(error, Some((timecode, number)))).await
            }
        }
    }

    /// Writes bytes of the fragment being received; on failure, ACKs the error.
    async fn write(&mut self, number: kinescope_api::FragmentNumber, bytes: Vec<Bytes>) -> bool {
        let (archive, stream) = (&self.u.archive, self.u.stream.id);
        self.live
            .extend(&bytes, || archive.has_live_readers(stream));
        if self.u.stream.info.data_retention_in_hours == 0 {
            return true;
        }
        let result = async {
            if self.pending.is_none() {
                self.pending = Some(self.u.archive.begin(self.u.stream.id, &number).await?);
            }
            self.pending.as_mut().expect("just set").write(bytes).await
        }
        .await;
        match result {
            Ok(()) => true,
            Err(e) => {
                self.pending = None;
                tracing::error!(stream = %self.u.stream.info.stream_name, error = %e, "writing a fragment failed");
                self.send(Ack::error(AckError::ArchivalError, None)).await;
                false
            }
        }
    }

    async fn store(&mut self, f: ReceivedFragment) -> Result<(), ArchiveError> {
        let header_id = match self.header_ids.get(&f.header_version) {
            Some(id) => *id,
            None => {
                let header = self.header(f.header_version);
                let id = self.u.archive.add_header(self.u.stream.id, &header).await?;
                self.header_ids.insert(f.header_version, id);
                id
            }
        };
        let pending = match self.pending.take() {
            Some(p) => p,
            None => self.u.archive.begin(self.u.stream.id, &f.number).await?,
        };
        let fragment = self.new_fragment(f, header_id);
        self.u.archive.commit(pending, fragment).await.map(|_| ())
    }

    fn header(&self, version: u32) -> Arc<TrackHeader> {
        self.headers
            .get(&version)
            .expect("a fragment follows its header")
            .clone()
    }

    /// The fragment `f` completes: its last bytes to store, and the whole of it for live
    /// readers if it was kept.
    fn new_fragment(&mut self, f: ReceivedFragment, header_id: i64) -> NewFragment {
        let (archive, stream) = (&self.u.archive, self.u.stream.id);
        let live_bytes = self
            .live
            .take(&f.bytes, || archive.has_live_readers(stream));
        NewFragment {
            stream: self.u.stream.id,
            number: f.number,
            producer_timestamp: f.producer_timestamp,
            server_timestamp: f.server_timestamp,
            duration_ms: f.duration_ms,
            header_id,
            header: self.header(f.header_version),
            metadata: f.metadata,
            rest: f.bytes,
            live_bytes,
        }
    }
}
