//! The reader's input: the pushed chunks, not yet consumed, as a queue of `Bytes`. Consuming
//! bytes can record them: the recording is a list of zero-copy slices of the pushed chunks, one
//! per chunk it spans, so a fragment's bytes reach the object store exactly as they arrived.

use std::borrow::Cow;
use std::collections::VecDeque;

use bytes::Bytes;

#[derive(Debug, Default)]
pub struct Input {
    chunks: VecDeque<Bytes>,
    /// Consumed bytes of `chunks[0]`.
    head: usize,
    /// Unconsumed bytes in all chunks.
    len: usize,
    /// Absolute offset of the first unconsumed byte in the whole stream.
    offset: u64,
    /// When recording: the slices consumed so far, and where in `chunks[0]` the recording of
    /// the current chunk began.
    recording: Option<(Vec<Bytes>, usize)>,
}

impl Input {
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Unconsumed bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Absolute offset of the next unconsumed byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The first `n` unconsumed bytes as one slice, if that many are buffered. Borrowed when
    /// they lie in one chunk (the usual case), copied when they span chunks.
    pub fn peek(&self, n: usize) -> Option<Cow<'_, [u8]>> {
        if n > self.len {
            return None;
        }
        let first = self.chunks.front().map_or(&[][..], |c| &c[self.head..]);
        if first.len() >= n {
            return Some(Cow::Borrowed(&first[..n]));
        }
        let mut out = Vec::with_capacity(n);
        for (i, c) in self.chunks.iter().enumerate() {
            let c = if i == 0 { &c[self.head..] } else { &c[..] };
            let take = (n - out.len()).min(c.len());
            out.extend_from_slice(&c[..take]);
            if out.len() == n {
                break;
            }
        }
        Some(Cow::Owned(out))
    }

    /// Consumes `n` bytes (at most `len()`), recording them if a recording is on.
    pub fn advance(&mut self, mut n: usize) {
        debug_assert!(n <= self.len);
        n = n.min(self.len);
        self.len -= n;
        self.offset += n as u64;
        while n > 0 {
            let front_len = self.chunks[0].len() - self.head;
            if n < front_len {
                self.head += n;
                return;
            }
            n -= front_len;
            let chunk = self.chunks.pop_front().expect("len counts these bytes");
            if let Some((slices, start)) = &mut self.recording {
                slices.push(chunk.slice(*start..));
                *start = 0;
            }
            self.head = 0;
        }
    }

    /// Consumes and returns `n` bytes (at most `len()`): a zero-copy slice when they lie in one
    /// chunk, a copy when they span chunks. Not recorded.
    pub fn take(&mut self, n: usize) -> Bytes {
        debug_assert!(self.recording.is_none());
        let n = n.min(self.len);
        let front = self.chunks.front().map_or(0, |c| c.len() - self.head);
        let out = if n == 0 {
            Bytes::new()
        } else if n <= front {
            self.chunks[0].slice(self.head..self.head + n)
        } else {
            Bytes::from(self.peek(n).expect("n <= len").into_owned())
        };
        self.advance(n);
        out
    }

    /// Starts recording consumed bytes. A recording already on is discarded.
    pub fn start_recording(&mut self) {
        self.recording = Some((Vec::new(), self.head));
    }

    /// The bytes recorded since the recording started or since the last call, as slices of the
    /// input chunks; the recording goes on.
    pub fn take_recorded(&mut self) -> Vec<Bytes> {
        let Some((slices, start)) = &mut self.recording else {
            return Vec::new();
        };
        if let Some(front) = self.chunks.front()
            && self.head > *start
        {
            slices.push(front.slice(*start..self.head));
            *start = self.head;
        }
        std::mem::take(slices)
    }

    /// Stops recording and returns the recorded bytes as slices of the input chunks.
    pub fn stop_recording(&mut self) -> Vec<Bytes> {
        let Some((mut slices, start)) = self.recording.take() else {
            return Vec::new();
        };
        if let Some(front) = self.chunks.front()
            && self.head > start
        {
            slices.push(front.slice(start..self.head));
        }
        slices
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(chunks: &[&'static [u8]]) -> Input {
        let mut i = Input::default();
        for c in chunks {
            i.push(Bytes::from_static(c));
        }
        i
    }

    #[test]
    fn taking_nothing_from_nothing_is_empty() {
        // Found by the `remux` fuzz target: a zero-size element at the very end of a Cluster.
        let mut empty = Input::default();
        assert!(empty.take(0).is_empty());
        let mut drained = input(&[b"ab"]);
        assert_eq!(&drained.take(2)[..], b"ab");
        assert!(drained.take(0).is_empty());
    }

    #[test]
    fn peeks_across_chunks_and_borrows_within_one() {
        let mut i = input(&[b"abc", b"", b"de", b"f"]);
        assert_eq!(i.len(), 6);
        assert!(matches!(i.peek(2), Some(Cow::Borrowed(b"ab"))));
        assert_eq!(i.peek(5).unwrap().as_ref(), b"abcde");
        assert!(i.peek(7).is_none());
        i.advance(2);
        assert_eq!(i.peek(3).unwrap().as_ref(), b"cde");
        assert_eq!(i.offset(), 2);
    }

    #[test]
    fn recording_returns_zero_copy_slices() {
        let a = Bytes::from_static(b"0123456789");
        let b = Bytes::from_static(b"abcdef");
        let mut i = Input::default();
        i.push(a.clone());
        i.push(b.clone());
        i.advance(3);
        i.start_recording();
        i.advance(4);
        i.advance(5);
        let rec = i.stop_recording();
        assert_eq!(rec.len(), 2);
        assert_eq!(&rec[0][..], b"3456789");
        assert_eq!(&rec[1][..], b"ab");
        // Same memory as the pushed chunks: nothing was copied.
        assert_eq!(rec[0].as_ptr(), a[3..].as_ptr());
        assert_eq!(rec[1].as_ptr(), b.as_ptr());
        i.advance(4);
        assert_eq!(i.len(), 0);
        assert!(i.stop_recording().is_empty());
    }

    #[test]
    fn recorded_bytes_can_be_taken_while_recording_goes_on() {
        let mut i = Input::default();
        i.push(Bytes::from_static(b"0123456789"));
        i.start_recording();
        i.advance(3);
        assert_eq!(i.take_recorded().concat(), b"012");
        assert!(i.take_recorded().is_empty());
        i.advance(4);
        i.push(Bytes::from_static(b"ab"));
        i.advance(4);
        assert_eq!(i.take_recorded().concat(), b"3456789a");
        i.advance(1);
        assert_eq!(i.stop_recording().concat(), b"b");
    }

    #[test]
    fn take_slices_within_a_chunk_and_copies_across() {
        let a = Bytes::from_static(b"0123");
        let mut i = Input::default();
        i.push(a.clone());
        i.push(Bytes::from_static(b"45"));
        let first = i.take(2);
        assert_eq!((&first[..], first.as_ptr()), (&b"01"[..], a.as_ptr()));
        assert_eq!(&i.take(3)[..], b"234");
        assert_eq!(&i.take(9)[..], b"5");
    }
}
