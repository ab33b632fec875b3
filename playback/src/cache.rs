//! Recently read fragments, shared by every HLS/DASH/clip request (design/0011). A LIVE
//! fragment is fetched by every viewer of its stream within a second or two of being
//! PERSISTED; without this each of them would read it from the store into a buffer of its own
//! (BENCHMARKS.md: the store read is half the server's time per segment). Requests for a
//! fragment that is being read wait for that read instead of starting another, so a thousand
//! viewers cost one read. Bounded by bytes; the oldest entries go first. Fragments are
//! immutable, so an entry is never stale; a deleted stream's entries age out.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use kinescope_api::FragmentNumber;
use tokio::sync::OnceCell;

/// Fragments of at most this share of the budget are cached (one huge fragment must not
/// flush everything else).
const LARGEST_SHARE: u64 = 4;

#[derive(Debug)]
pub struct FragmentCache {
    budget: u64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<FragmentNumber, Arc<OnceCell<Bytes>>>,
    /// Insertion order and the size each entry was counted at.
    order: VecDeque<(FragmentNumber, u64)>,
    used: u64,
}

impl FragmentCache {
    /// A cache of at most `budget` bytes; 0 caches nothing.
    pub fn new(budget: u64) -> Self {
        Self {
            budget,
            inner: Mutex::default(),
        }
    }

    /// The bytes of fragment `number` (`size` bytes long): from the cache, from a read already
    /// in flight, or from `read`. A failed read is not cached, and the next request tries again.
    pub async fn get_or_read<E, F, Fut>(
        &self,
        number: &FragmentNumber,
        size: u64,
        read: F,
    ) -> Result<Bytes, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
    {
        if size > self.budget / LARGEST_SHARE {
            return read().await;
        }
        let cell = self.cell(number, size);
        let result = cell.get_or_try_init(read).await.cloned();
        if result.is_err() {
            self.forget(number, &cell);
        }
        result
    }

    /// The entry of `number`, made (and the oldest entries evicted) if there is none.
    fn cell(&self, number: &FragmentNumber, size: u64) -> Arc<OnceCell<Bytes>> {
        let mut inner = self.inner.lock().expect("fragment cache");
        if let Some(cell) = inner.entries.get(number) {
            return cell.clone();
        }
        while inner.used + size > self.budget {
            let Some((old, old_size)) = inner.order.pop_front() else {
                break;
            };
            inner.entries.remove(&old);
            inner.used -= old_size;
        }
        let cell = Arc::new(OnceCell::new());
        inner.entries.insert(number.clone(), cell.clone());
        inner.order.push_back((number.clone(), size));
        inner.used += size;
        cell
    }

    /// Drops a failed entry (if it is still the one that failed).
    fn forget(&self, number: &FragmentNumber, cell: &Arc<OnceCell<Bytes>>) {
        let mut inner = self.inner.lock().expect("fragment cache");
        if inner
            .entries
            .get(number)
            .is_some_and(|c| Arc::ptr_eq(c, cell))
        {
            inner.entries.remove(number);
            if let Some(i) = inner.order.iter().position(|(n, _)| n == number) {
                let (_, size) = inner.order.remove(i).expect("position is in range");
                inner.used -= size;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn n(i: u64) -> FragmentNumber {
        FragmentNumber::parse(&format!("{i:020}")).unwrap()
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_read_and_the_oldest_go_first() {
        let cache = Arc::new(FragmentCache::new(400));
        let reads = Arc::new(AtomicUsize::new(0));
        let fetch = |i: u64| {
            let (cache, reads) = (cache.clone(), reads.clone());
            async move {
                cache
                    .get_or_read(&n(i), 100, || async move {
                        reads.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        Ok::<_, ()>(Bytes::from(vec![i as u8; 100]))
                    })
                    .await
                    .unwrap()
            }
        };
        let all = futures::future::join_all((0..50).map(|_| fetch(1))).await;
        assert!(all.iter().all(|b| b[..] == [1u8; 100][..]));
        assert_eq!(
            reads.load(Ordering::SeqCst),
            1,
            "one read for fifty requests"
        );
        for i in 2..=5 {
            fetch(i).await;
        }
        assert_eq!(reads.load(Ordering::SeqCst), 5);
        // 1 was evicted to make room for 5; 2..=5 are still there.
        fetch(5).await;
        fetch(2).await;
        assert_eq!(reads.load(Ordering::SeqCst), 5);
        fetch(1).await;
        assert_eq!(reads.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn failures_and_large_fragments_are_not_kept() {
        let cache = FragmentCache::new(400);
        let failed: Result<Bytes, &str> =
            cache.get_or_read(&n(1), 10, || async { Err("io") }).await;
        assert_eq!(failed, Err("io"));
        let ok: Result<Bytes, &str> = cache
            .get_or_read(&n(1), 10, || async { Ok(Bytes::from_static(b"x")) })
            .await;
        assert_eq!(ok.unwrap(), Bytes::from_static(b"x"));
        assert_eq!(cache.inner.lock().unwrap().used, 10);
        let big: Result<Bytes, &str> = cache
            .get_or_read(&n(2), 101, || async { Ok(Bytes::from_static(b"big")) })
            .await;
        assert!(big.is_ok());
        assert!(!cache.inner.lock().unwrap().entries.contains_key(&n(2)));
        let none = FragmentCache::new(0);
        let r: Result<Bytes, ()> = none
            .get_or_read(&n(3), 1, || async { Ok(Bytes::new()) })
            .await;
        assert!(r.is_ok() && none.inner.lock().unwrap().entries.is_empty());
    }
}
