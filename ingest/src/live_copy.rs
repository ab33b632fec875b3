//! What an upload keeps in memory of the fragment it is receiving, for live readers (the live
//! bus of design/0008 carries those bytes so that a GetMedia tail need not read the store back).
//! Fragments may be 50 MB and uploads many, so the copies are bounded by one server-wide
//! [`LiveBudget`] (issue 9): an upload keeps a fragment only while somebody reads its stream
//! live and the budget has room; otherwise it lets go of what it kept, and live readers read
//! that fragment from the store. Either way nothing is copied: the kept `Bytes` are the ones
//! written to the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

/// Bytes of fragments being received that all uploads together may keep for live readers.
#[derive(Debug)]
pub struct LiveBudget {
    limit: usize,
    held: AtomicUsize,
}

impl LiveBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            held: AtomicUsize::new(0),
        })
    }

    /// Bytes kept now, across uploads.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    fn try_take(&self, n: usize) -> bool {
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| {
                (h + n <= self.limit).then_some(h + n)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The copy of one upload's current fragment.
#[derive(Debug)]
pub(crate) struct LiveCopy {
    budget: Arc<LiveBudget>,
    state: State,
    /// Bytes of the budget this copy holds.
    len: usize,
}

#[derive(Debug)]
enum State {
    /// Before the fragment's first bytes.
    Undecided,
    Keeping(Vec<Bytes>),
    /// Nobody read the stream when the fragment began, or the budget ran out.
    NotKept,
}

impl LiveCopy {
    pub(crate) fn new(budget: Arc<LiveBudget>) -> Self {
        Self {
            budget,
            state: State::Undecided,
            len: 0,
        }
    }

    /// Keeps `bytes` of the current fragment while it is kept and the budget has room; the
    /// first bytes of a fragment decide, by `readers` (whether anybody reads the stream live).
    pub(crate) fn extend(&mut self, bytes: &[Bytes], readers: impl FnOnce() -> bool) {
        if matches!(self.state, State::Undecided) {
            self.state = if readers() {
                State::Keeping(Vec::new())
            } else {
                State::NotKept
            };
        }
        let State::Keeping(parts) = &mut self.state else {
            return;
        };
        let n: usize = bytes.iter().map(Bytes::len).sum();
        if self.budget.try_take(n) {
            parts.extend(bytes.iter().cloned());
            self.len += n;
        } else {
            metrics::counter!("kinescope_ingest_live_copies_dropped_total").increment(1);
            self.state = State::NotKept;
            self.release();
        }
    }

    /// The whole fragment, ending with `last` (its final bytes), if it was kept; starts over
    /// for the next fragment.
    pub(crate) fn take(
        &mut self,
        last: &[Bytes],
        readers: impl FnOnce() -> bool,
    ) -> Option<Vec<Bytes>> {
        if matches!(self.state, State::Undecided) && readers() {
            // The whole fragment arrived at once.
            self.state = State::Keeping(Vec::new());
        }
        let kept = match std::mem::replace(&mut self.state, State::Undecided) {
            State::Keeping(mut parts) => {
                parts.extend(last.iter().cloned());
                Some(parts)
            }
            State::Undecided | State::NotKept => None,
        };
        self.release();
        kept
    }

    fn release(&mut self) {
        self.budget.give_back(self.len);
        self.len = 0;
    }
}

impl Drop for LiveCopy {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static [u8]) -> Bytes {
        Bytes::from_static(s)
    }

    #[test]
    fn a_fragment_is_kept_only_for_readers_and_within_the_budget() {
        let budget = LiveBudget::new(10);
        let mut a = LiveCopy::new(budget.clone());
        a.extend(&[b(b"abcd")], || true);
        a.extend(&[b(b"ef")], || unreachable!("decided at the first bytes"));
        assert_eq!(budget.held(), 6);
        assert_eq!(a.take(&[b(b"g")], || true).unwrap().concat(), b"abcdefg");
        assert_eq!(budget.held(), 0, "handed over: no longer counted");

        // Nobody reads when the fragment begins: nothing kept, nothing counted, even if a
        // reader comes in the middle (it would get a fragment with a hole).
        a.extend(&[b(b"abcd")], || false);
        a.extend(&[b(b"e")], || true);
        assert_eq!(budget.held(), 0);
        assert!(a.take(&[b(b"f")], || true).is_none());
        // A fragment that arrives whole in one piece is decided at its end.
        assert_eq!(a.take(&[b(b"xy")], || true).unwrap().concat(), b"xy");

        // Over the budget: the upload lets go of the whole fragment, not just the overflow.
        let mut other = LiveCopy::new(budget.clone());
        other.extend(&[b(b"12345678")], || true);
        a.extend(&[b(b"abc")], || true);
        assert_eq!(budget.held(), 8, "a did not fit");
        a.extend(&[b(b"d")], || true);
        assert!(
            a.take(&[], || true).is_none(),
            "a fragment with a hole is not kept"
        );
        drop(other);
        assert_eq!(budget.held(), 0, "an abandoned upload gives its copy back");
    }
}
