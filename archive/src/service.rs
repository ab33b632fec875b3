//! `Archive`: the one path by which fragments become durable (DESIGN.md "Data flow" step 2).
//! The object first, then the catalog row, then the live bus; only then may ingest say
//! PERSISTED, so a reader never sees a row whose bytes are missing. The live bus is one
//! broadcast channel per stream that has readers, and carries each fragment's bytes and header
//! as received, so live readers (GetMedia's tail) send them without reading the store back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kinescope_api::{FragmentNumber, Timestamp};
use kinescope_media::mkv::{MetadataTag, TrackHeader};

use crate::catalog::{FragmentRow, StreamId};
use crate::crash::{Step, crash_point};
use crate::numbers::FragmentNumbers;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use crate::log::{FragmentLog, LogLocation, LogRecord, parse_segment_key, segment_key};
use crate::store::{BlobStore, BlobWriter};
use crate::{Catalog, CatalogError};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("storing fragment bytes: {0}")]
    Store(#[from] std::io::Error),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// A fragment whose bytes are being stored as they arrive: a record of the fragment log, or
/// (with `--persist-to-store`) an object of its own. Dropped without [`Archive::commit`], it
/// leaves nothing behind.
#[derive(Debug)]
pub struct PendingFragment(Pending);

#[derive(Debug)]
enum Pending {
    Log(Box<LogRecord>),
    Object(PendingObject),
}

/// Object writes run in a task of their own, at most [`WRITE_QUEUE`] batches behind, so the
/// upload overlaps the store instead of waiting for each write, and a slow store still pushes
/// back.
#[derive(Debug)]
struct PendingObject {
    key: String,
    size: u64,
    tx: mpsc::Sender<Write>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Batches of bytes queued per pending object before `write` waits.
pub const WRITE_QUEUE: usize = 2;

#[derive(Debug)]
enum Write {
    Data(Vec<Bytes>),
    Finish,
}

impl PendingObject {
    fn start(key: String, mut writer: Box<dyn BlobWriter>) -> Self {
        let (tx, mut rx) = mpsc::channel(WRITE_QUEUE);
        let task = tokio::spawn(async move {
            while let Some(w) = rx.recv().await {
                match w {
                    Write::Data(parts) => writer.write(parts).await?,
                    Write::Finish => return writer.finish().await,
                }
            }
            // Abandoned: dropping the writer removes what it wrote.
            Err(std::io::Error::other("fragment abandoned"))
        });
        Self {
            key,
            size: 0,
            tx,
            task,
        }
    }

    async fn write(&mut self, parts: Vec<Bytes>) -> Result<(), ArchiveError> {
        self.size += total(&parts);
        if self.tx.send(Write::Data(parts)).await.is_err() {
            // The writer failed; `finish` reports why.
            return Err(ArchiveError::Store(std::io::Error::other(
                "fragment write failed",
            )));
        }
        Ok(())
    }

    async fn finish(self) -> Result<(String, u64), ArchiveError> {
        let _ = self.tx.send(Write::Finish).await;
        self.task.await.map_err(std::io::Error::other)??;
        Ok((self.key, self.size))
    }
}

impl PendingFragment {
    /// Adds bytes of the fragment; waits only when the log or store is behind.
    pub async fn write(&mut self, parts: Vec<Bytes>) -> Result<(), ArchiveError> {
        match &mut self.0 {
            Pending::Log(record) => Ok(record.write(parts).await?),
            Pending::Object(object) => object.write(parts).await,
        }
    }
}

/// A complete fragment ready to be stored.
#[derive(Debug, Clone)]
pub struct NewFragment {
    pub stream: StreamId,
    pub number: FragmentNumber,
    pub producer_timestamp: Timestamp,
    pub server_timestamp: Timestamp,
    pub duration_ms: u64,
    /// The catalog id of `header` (ignored for a stream that keeps no data).
    pub header_id: i64,
    pub header: Arc<TrackHeader>,
    /// The producer's metadata sent with the fragment (spec §3.5).
    pub metadata: Vec<MetadataTag>,
    /// The bytes of the Cluster not yet written to its pending fragment (all of them for
    /// [`Archive::append`]): [`Archive::commit`] writes them.
    pub rest: Vec<Bytes>,
    /// The whole Cluster as received, for live readers, when the upload kept it in memory
    /// (the same `Bytes` that were written, not a copy). `None` when it did not (nobody was
    /// reading, or over the ingest's memory budget): live readers then read it from the store.
    pub live_bytes: Option<Vec<Bytes>>,
}

/// Fragments a stream's live bus holds for its slowest reader. A reader further behind gets
/// `Lagged` and reads the catalog instead; a reader that stops reading pins at most this many
/// fragments of its stream in memory.
pub const LIVE_BUS_CAPACITY: usize = 8;

/// A fragment announced on the live bus: its row, and the header and (when the upload kept
/// them) bytes it arrived with. For a stream that keeps no data (retention 0) these are the
/// only copy, and `row` names no object.
#[derive(Debug, Clone)]
pub struct LiveFragment {
    pub row: FragmentRow,
    pub header: Arc<TrackHeader>,
    /// `None`: read the fragment from the store.
    pub bytes: Option<Vec<Bytes>>,
}

impl NewFragment {
    /// Announced on the live bus, as the `size` bytes at `offset` of the object (or log
    /// segment) `object_key`.
    fn into_live(self, object_key: String, offset: u64, size: u64) -> LiveFragment {
        LiveFragment {
            row: FragmentRow {
                stream: self.stream,
                number: self.number,
                producer_timestamp: self.producer_timestamp,
                server_timestamp: self.server_timestamp,
                duration_ms: self.duration_ms,
                size,
                object_key,
                offset,
                length: size,
                header_id: self.header_id,
                metadata: self.metadata,
            },
            header: self.header,
            bytes: self.live_bytes,
        }
    }
}

fn total(parts: &[Bytes]) -> u64 {
    parts.iter().map(|b| b.len() as u64).sum()
}

/// When a fragment counts as durable, so that it may be ACKed PERSISTED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Once the local fragment log has synced it (design/0014).
    #[default]
    Log,
    /// Once it is an object of its own in the store (`--persist-to-store`, for nodes without a
    /// durable local disk).
    Store,
}

#[derive(Debug)]
pub struct Archive {
    catalog: Arc<dyn Catalog>,
    store: Arc<dyn BlobStore>,
    log: FragmentLog,
    durability: Durability,
    numbers: FragmentNumbers,
    /// The live bus of each stream that has (or recently had) readers: each fragment, once its
    /// row is committed.
    live: Mutex<LiveBuses>,
}

#[derive(Debug, Default)]
struct LiveBuses {
    buses: HashMap<StreamId, broadcast::Sender<Arc<LiveFragment>>>,
    /// Buses nobody reads any more are dropped when a publish finds them, or, for streams that
    /// stopped publishing (deleted, say), when the map has doubled since the last sweep.
    sweep_at: usize,
}

impl Archive {
    /// Fragments are read from `log` or `store`, wherever their rows say, and written as
    /// `durability` says. Fragment numbers continue above the greatest one the catalog holds.
    pub async fn open(
        catalog: Arc<dyn Catalog>,
        store: Arc<dyn BlobStore>,
        log: FragmentLog,
        durability: Durability,
    ) -> Result<Self, ArchiveError> {
        let floor = catalog.last_fragment_number().await?;
        Ok(Self {
            catalog,
            store,
            log,
            durability,
            numbers: FragmentNumbers::new(floor.as_ref()),
            live: Mutex::default(),
        })
    }

    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    pub fn log(&self) -> &FragmentLog {
        &self.log
    }

    /// Every fragment of `stream` committed from now on, in commit order. A receiver that
    /// falls more than [`LIVE_BUS_CAPACITY`] fragments behind gets `Lagged` and must catch up
    /// from the catalog.
    pub fn subscribe(&self, stream: StreamId) -> broadcast::Receiver<Arc<LiveFragment>> {
        let mut live = self.live.lock().expect("live bus lock");
        if live.buses.len() >= live.sweep_at {
            live.buses.retain(|_, bus| bus.receiver_count() > 0);
            live.sweep_at = (2 * live.buses.len()).max(64);
        }
        live.buses
            .entry(stream)
            .or_insert_with(|| broadcast::channel(LIVE_BUS_CAPACITY).0)
            .subscribe()
    }

    /// Whether anyone reads `stream`'s live bus now: an upload need not keep a fragment's bytes
    /// for readers that do not exist.
    pub fn has_live_readers(&self, stream: StreamId) -> bool {
        let live = self.live.lock().expect("live bus lock");
        live.buses
            .get(&stream)
            .is_some_and(|bus| bus.receiver_count() > 0)
    }

    /// Sends a fragment to its stream's live readers; forgets a bus nobody reads any more.
    fn publish(&self, fragment: LiveFragment) {
        let buses = &mut self.live.lock().expect("live bus lock").buses;
        if let Some(bus) = buses.get(&fragment.row.stream) {
            if bus.receiver_count() == 0 {
                buses.remove(&fragment.row.stream);
            } else {
                let _ = bus.send(Arc::new(fragment));
            }
        }
    }

    /// A new fragment number, issued at `now`.
    pub fn next_fragment_number(&self, now: Timestamp) -> FragmentNumber {
        self.numbers.next(now)
    }

    /// Records the header of an upload: its EBML header followed by the level-1 elements that
    /// preceded its first Cluster, exactly as received.
    pub async fn add_header(
        &self,
        stream: StreamId,
        header: &TrackHeader,
    ) -> Result<i64, ArchiveError> {
        let bytes: Vec<u8> = header
            .ebml_header
            .iter()
            .chain(&header.segment_header)
            .flat_map(|b| b.iter().copied())
            .collect();
        Ok(self.catalog.add_track_header(stream, &bytes).await?)
    }

    /// Starts storing a fragment's bytes while they arrive.
    pub async fn begin(
        &self,
        stream: StreamId,
        number: &FragmentNumber,
    ) -> Result<PendingFragment, ArchiveError> {
        Ok(PendingFragment(match self.durability {
            Durability::Log => Pending::Log(Box::new(self.log.record())),
            Durability::Store => {
                let key = format!("{}/{}", stream.0, number);
                let writer = self.store.create(&key).await?;
                Pending::Object(PendingObject::start(key, writer))
            }
        }))
    }

    /// Writes the bytes the pending fragment does not have yet, makes them durable, records
    /// the fragment, then announces it to live readers. Only after this returns may the
    /// fragment be ACKed PERSISTED.
    pub async fn commit(
        &self,
        mut pending: PendingFragment,
        mut f: NewFragment,
    ) -> Result<FragmentRow, ArchiveError> {
        pending.write(std::mem::take(&mut f.rest)).await?;
        // Keeps the log segment while its row is not yet committed.
        let mut lease = None;
        let (key, offset, size) = match pending.0 {
            Pending::Log(record) => {
                let number = f.number.as_str().parse().map_err(|_| {
                    std::io::Error::other(format!("fragment number {} is not a u64", f.number))
                })?;
                let appended = self.log.append(*record, f.stream.0 as u64, number).await?;
                let at = appended.at;
                lease = Some(appended);
                (segment_key(at.segment), at.offset, at.length)
            }
            Pending::Object(object) => {
                let (key, size) = object.finish().await?;
                (key, 0, size)
            }
        };
        if let Some(kept) = f.live_bytes.as_deref().map(total)
            && kept != size
        {
            return Err(ArchiveError::Store(std::io::Error::other(format!(
                "stored {size} bytes of a {kept}-byte fragment"
            ))));
        }
        let live = f.into_live(key, offset, size);
        crash_point(Step::CommitStored);
        self.catalog.add_fragment(&live.row).await?;
        crash_point(Step::CommitRecorded);
        drop(lease);
        let row = live.row.clone();
        self.publish(live);
        Ok(row)
    }

    /// Stores a whole fragment durably, then records it.
    pub async fn append(&self, f: NewFragment) -> Result<FragmentRow, ArchiveError> {
        let pending = self.begin(f.stream, &f.number).await?;
        self.commit(pending, f).await
    }

    /// Announces a fragment of a stream that keeps no data to its live readers. Without its
    /// bytes (the upload kept none) there is nothing to announce.
    pub fn announce_unstored(&self, f: NewFragment) {
        if let Some(size) = f.live_bytes.as_deref().map(total) {
            self.publish(f.into_live(String::new(), 0, size));
        }
    }

    /// The stored bytes of a fragment, from the log or the store. A fragment packed (and its
    /// log segment removed) since `row` was read is found where its row says now.
    pub async fn fragment_bytes(&self, row: &FragmentRow) -> Result<Bytes, ArchiveError> {
        let Some(segment) = parse_segment_key(&row.object_key) else {
            return self.object_bytes(row).await;
        };
        let at = LogLocation {
            segment,
            offset: row.offset,
            length: row.length,
        };
        match self.log.read(at).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let now = self
                    .catalog
                    .fragments_by_number(row.stream, std::slice::from_ref(&row.number))
                    .await?;
                match now.first() {
                    Some(moved) if parse_segment_key(&moved.object_key).is_none() => {
                        self.object_bytes(moved).await
                    }
                    _ => Err(ArchiveError::Store(e)),
                }
            }
            read => Ok(read?),
        }
    }

    async fn object_bytes(&self, row: &FragmentRow) -> Result<Bytes, ArchiveError> {
        Ok(self
            .store
            .get(&row.object_key, row.offset..row.offset + row.length)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalStore, SqliteCatalog};
    use kinescope_api::control::StorageTier;
    use kinescope_media::mkv::TrackHeader;

    #[tokio::test]
    async fn append_stores_bytes_then_the_row_and_numbers_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let catalog: Arc<dyn Catalog> =
            Arc::new(SqliteCatalog::open(&dir.path().join("c.db")).await.unwrap());
        let store = Arc::new(LocalStore::open(dir.path().join("media")).unwrap());
        let create = |name, created| {
            let catalog = catalog.clone();
            async move {
                catalog
                    .create_stream(
                        &crate::conformance::info(name, created),
                        StorageTier::Hot,
                        &Default::default(),
                    )
                    .await
                    .unwrap()
            }
        };
        let stream = create("s", 1).await;
        let other = create("other", 2).await;
        let open = |durability| {
            let (catalog, store) = (catalog.clone(), store.clone());
            let log = FragmentLog::open(dir.path().join("log")).unwrap().0;
            async move {
                Archive::open(catalog, store, log, durability)
                    .await
                    .unwrap()
            }
        };
        let archive = open(Durability::Log).await;
        let mut live = archive.subscribe(stream.id);
        assert!(archive.has_live_readers(stream.id));
        assert!(!archive.has_live_readers(other.id));
        let header_id = catalog.add_track_header(stream.id, b"hdr").await.unwrap();
        let header = Arc::new(TrackHeader {
            version: 0,
            tracks: Vec::new(),
            timecode_scale: 1_000_000,
            ebml_header: Vec::new(),
            segment_header: Vec::new(),
        });
        let now = Timestamp::from_millis(1_000_000);
        let fragment = |stream, number| NewFragment {
            stream,
            number,
            producer_timestamp: now,
            server_timestamp: now,
            duration_ms: 2000,
            header_id,
            header: header.clone(),
            metadata: Vec::new(),
            rest: vec![Bytes::from_static(b"uster")],
            live_bytes: Some(vec![
                Bytes::from_static(b"clu"),
                Bytes::from_static(b"ster"),
            ]),
        };
        // Part of the fragment is written while it arrives; commit writes only the rest.
        let number = archive.next_fragment_number(now);
        let mut pending = archive.begin(stream.id, &number).await.unwrap();
        pending
            .write(vec![Bytes::from_static(b"cl")])
            .await
            .unwrap();
        let row = archive
            .commit(pending, fragment(stream.id, number.clone()))
            .await
            .unwrap();
        assert_eq!(row.size, 7);
        assert_eq!(&archive.fragment_bytes(&row).await.unwrap()[..], b"cluster");
        let announced = live.try_recv().unwrap();
        assert_eq!(
            announced.row, row,
            "announced on the live bus after the commit"
        );
        assert_eq!(
            announced.bytes.as_ref().unwrap().concat(),
            b"cluster",
            "with the bytes as received"
        );
        assert!(Arc::ptr_eq(&announced.header, &header));
        assert!(
            archive.subscribe(stream.id).try_recv().is_err(),
            "a new subscriber sees only later fragments"
        );
        // Another stream's fragments go to its own bus, which nobody reads.
        let elsewhere = archive.next_fragment_number(now);
        let whole = NewFragment {
            rest: vec![Bytes::from_static(b"cluster")],
            ..fragment(other.id, elsewhere)
        };
        archive.append(whole).await.unwrap();
        assert!(live.try_recv().is_err(), "not to this stream's readers");
        assert!(!archive.live.lock().unwrap().buses.contains_key(&other.id));
        // Buses of streams that stop publishing go once nobody reads them.
        for id in 1000..1100 {
            drop(archive.subscribe(StreamId(id)));
        }
        assert!(archive.live.lock().unwrap().buses.len() < 100);
        assert_eq!(
            catalog
                .fragments_after(stream.id, None, u32::MAX, false)
                .await
                .unwrap(),
            vec![row.clone()]
        );
        // A restarted archive with a clock behind issues numbers above the recorded ones.
        drop(archive);
        let again = open(Durability::Store).await;
        let later = again.next_fragment_number(Timestamp::from_millis(0));
        assert!(later > number);
        // Rows written to the log stay readable after a restart, in either mode; with
        // `Durability::Store` a fragment is an object of its own.
        assert!(row.object_key.starts_with("log/"), "{row:?}");
        assert_eq!(&again.fragment_bytes(&row).await.unwrap()[..], b"cluster");
        let stored = again
            .append(NewFragment {
                rest: vec![Bytes::from_static(b"object")],
                live_bytes: None,
                ..fragment(stream.id, later.clone())
            })
            .await
            .unwrap();
        assert_eq!(stored.object_key, format!("{}/{}", stream.id.0, later));
        assert_eq!((stored.offset, stored.length), (0, 6));
        assert_eq!(&again.fragment_bytes(&stored).await.unwrap()[..], b"object");
    }
}
