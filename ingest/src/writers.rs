//! One writer per stream, with handover (spec §0.8, design/0005): a new PutMedia for a stream
//! that already has one is accepted and becomes the writer; the older one is told, finishes the
//! fragment it is receiving, and ends. The registry also carries each stream's latest producer
//! timestamp across connections, so that a fragment going back in time is refused (4004) even
//! on a new connection.

use std::collections::HashMap;
use std::sync::Mutex;

use kinescope_api::Timestamp;
use kinescope_archive::StreamId;
use tokio::sync::watch;

#[derive(Debug, Default)]
pub struct Writers {
    streams: Mutex<HashMap<StreamId, Entry>>,
}

#[derive(Debug)]
struct Entry {
    /// The current writer's ticket; watchers compare it with their own.
    current: watch::Sender<u64>,
    next_ticket: u64,
    writers: usize,
    latest: Option<Timestamp>,
}

/// A writer's place: dropping it unregisters.
#[derive(Debug)]
pub struct Writer<'a> {
    writers: &'a Writers,
    stream: StreamId,
    ticket: u64,
    current: watch::Receiver<u64>,
    /// The stream's latest producer timestamp when this writer started.
    pub previous: Option<Timestamp>,
}

impl Writers {
    /// Makes a new writer the stream's current one. `stored` is the latest producer timestamp
    /// already in the catalog (for a stream with no writer since the server started).
    pub fn register(&self, stream: StreamId, stored: Option<Timestamp>) -> Writer<'_> {
        let mut streams = self.streams.lock().expect("not poisoned");
        let entry = streams.entry(stream).or_insert_with(|| Entry {
            current: watch::channel(0).0,
            next_ticket: 0,
            writers: 0,
            latest: stored,
        });
        entry.next_ticket += 1;
        entry.writers += 1;
        let ticket = entry.next_ticket;
        entry.current.send_replace(ticket);
        Writer {
            writers: self,
            stream,
            ticket,
            current: entry.current.subscribe(),
            previous: entry.latest,
        }
    }

    /// The latest producer timestamp seen on the stream by any writer, if known.
    pub fn latest(&self, stream: StreamId) -> Option<Timestamp> {
        self.streams
            .lock()
            .expect("not poisoned")
            .get(&stream)
            .and_then(|e| e.latest)
    }

    fn record(&self, stream: StreamId, t: Timestamp) {
        if let Some(e) = self.streams.lock().expect("not poisoned").get_mut(&stream) {
            e.latest = Some(e.latest.map_or(t, |l| l.max(t)));
        }
    }
}

impl Writer<'_> {
    /// Resolves when a newer writer has taken over the stream.
    pub async fn superseded(&mut self) {
        let ticket = self.ticket;
        let _ = self.current.wait_for(|current| *current != ticket).await;
    }

    pub fn is_superseded(&self) -> bool {
        *self.current.borrow() != self.ticket
    }

    /// Notes a fragment's producer timestamp for later writers.
    pub fn record(&self, t: Timestamp) {
        self.writers.record(self.stream, t);
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        let mut streams = self.writers.streams.lock().expect("not poisoned");
        if let Some(e) = streams.get_mut(&self.stream) {
            e.writers -= 1;
            if e.writers == 0 {
                // Keep nothing for idle streams; the catalog has their latest timestamp.
                streams.remove(&self.stream);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_writer_supersedes_the_old_and_inherits_its_latest_timestamp() {
        let w = Writers::default();
        let s = StreamId(1);
        let mut first = w.register(s, Some(Timestamp::from_millis(10)));
        assert_eq!(first.previous, Some(Timestamp::from_millis(10)));
        assert!(!first.is_superseded());
        first.record(Timestamp::from_millis(50));
        let second = w.register(s, None);
        assert_eq!(second.previous, Some(Timestamp::from_millis(50)));
        first.superseded().await;
        assert!(first.is_superseded() && !second.is_superseded());
        drop(first);
        assert_eq!(w.latest(s), Some(Timestamp::from_millis(50)));
        drop(second);
        assert_eq!(w.latest(s), None);
        // Other streams are independent.
        let a = w.register(StreamId(2), None);
        let b = w.register(StreamId(3), None);
        assert!(!a.is_superseded() && !b.is_superseded());
    }
}
