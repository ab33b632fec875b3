//! The on-disk buffer (issue 14, `kinescope put --buffer-dir`): every fragment is written here
//! before it is uploaded and deleted once PERSISTED, so fragments survive a restart of the
//! producer process, not only of the connection; the next process uploads them first, as fast
//! as the server takes them. Size-capped: beyond `max_bytes` the oldest files go first, and are
//! counted.
//!
//! One file per fragment, named by its producer timestamp (`<ms:020>.frag`, so name order is
//! time order), written to a temporary name, synced and renamed: a crash leaves whole files or
//! temporary ones, which `open` deletes. A file holds `KPB1`, the fragment's Cluster Timecode,
//! producer timestamp, duration and frame count, then the header's length and bytes, then the
//! Cluster's bytes.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::refragment::OutFragment;

const MAGIC: &[u8; 4] = b"KPB1";
const SUFFIX: &str = ".frag";

/// A directory of fragments waiting to be PERSISTED. Thread-safe.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// The files here, oldest first, with their sizes, and the sum of those sizes.
    files: Mutex<(VecDeque<(i64, u64)>, u64)>,
}

/// What storing a fragment did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Older fragments deleted to stay within the cap.
    pub dropped: u64,
}

impl Spool {
    /// Opens (creating) the buffer in `dir`, deleting temporary files a crash left; the
    /// producer timestamps of the fragments in it, oldest first.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> io::Result<(Self, Vec<i64>)> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        let mut files = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            match name
                .strip_suffix(SUFFIX)
                .and_then(|n| n.parse::<i64>().ok())
            {
                Some(ms) => files.push((ms, entry.metadata()?.len())),
                None if name.ends_with(".tmp") => fs::remove_file(entry.path())?,
                None => {}
            }
        }
        files.sort_unstable();
        let waiting = files.iter().map(|(ms, _)| *ms).collect();
        let bytes = files.iter().map(|(_, n)| n).sum();
        Ok((
            Self {
                dir,
                max_bytes,
                files: Mutex::new((files.into(), bytes)),
            },
            waiting,
        ))
    }

    /// Writes `f` durably, then deletes the oldest fragments while the buffer exceeds its cap
    /// (never `f` itself).
    pub fn store(&self, f: &OutFragment) -> io::Result<Stored> {
        let mut out = BytesMut::with_capacity(40 + f.header.len());
        out.put_slice(MAGIC);
        out.put_u64(f.timecode);
        out.put_i64(f.producer_ms);
        out.put_u64(f.duration_ms);
        out.put_u64(f.frames as u64);
        out.put_u32(u32::try_from(f.header.len()).map_err(io::Error::other)?);
        out.put_slice(&f.header);
        let tmp = self.dir.join(format!("{:020}.tmp", f.producer_ms));
        let mut file = fs::File::create(&tmp)?;
        file.write_all(&out)?;
        for part in &f.parts {
            file.write_all(part)?;
        }
        file.sync_data()?;
        let size = file.metadata()?.len();
        fs::rename(&tmp, self.path(f.producer_ms))?;
        fs::File::open(&self.dir)?.sync_all()?;
        let mut guard = self.files.lock().expect("spool lock");
        let (files, bytes) = &mut *guard;
        files.push_back((f.producer_ms, size));
        *bytes += size;
        let mut stored = Stored::default();
        while *bytes > self.max_bytes && files.len() > 1 {
            let (ms, n) = files.pop_front().expect("more than one");
            *bytes -= n;
            remove(&self.path(ms))?;
            stored.dropped += 1;
        }
        Ok(stored)
    }

    /// The fragment stored with producer timestamp `ms`, if it is still here.
    pub fn load(&self, ms: i64) -> io::Result<Option<OutFragment>> {
        let data = match fs::read(self.path(ms)) {
            Ok(d) => Bytes::from(d),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a buffered fragment", self.path(ms).display()),
            )
        };
        if data.len() < 40 || &data[..4] != MAGIC {
            return Err(bad());
        }
        let mut head = &data[4..40];
        let (timecode, producer_ms, duration_ms, frames) = (
            head.get_u64(),
            head.get_i64(),
            head.get_u64(),
            head.get_u64(),
        );
        let header_len = head.get_u32() as usize;
        if data.len() < 40 + header_len {
            return Err(bad());
        }
        Ok(Some(OutFragment {
            header: data.slice(40..40 + header_len),
            timecode,
            producer_ms,
            duration_ms,
            parts: vec![data.slice(40 + header_len..)],
            frames: frames as usize,
        }))
    }

    /// Deletes the fragment with producer timestamp `ms` (it was PERSISTED).
    pub fn remove(&self, ms: i64) -> io::Result<()> {
        let mut guard = self.files.lock().expect("spool lock");
        let (files, bytes) = &mut *guard;
        if let Some(i) = files.iter().position(|(m, _)| *m == ms) {
            let (_, n) = files.remove(i).expect("found");
            *bytes -= n;
        }
        drop(guard);
        remove(&self.path(ms))
    }

    fn path(&self, ms: i64) -> PathBuf {
        self.dir.join(format!("{ms:020}{SUFFIX}"))
    }
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(ms: i64, size: usize) -> OutFragment {
        OutFragment {
            header: Bytes::from_static(b"\x1a\x45\xdf\xa3 header"),
            timecode: ms as u64,
            producer_ms: ms,
            duration_ms: 1000,
            parts: vec![
                Bytes::from(vec![7u8; size / 2]),
                Bytes::from(vec![9u8; size / 2]),
            ],
            frames: 25,
        }
    }

    #[test]
    fn fragments_survive_reopening_in_order_and_go_once_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, waiting) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(waiting.is_empty());
        for ms in [3_000, 1_000, 2_000] {
            spool.store(&fragment(ms, 100)).unwrap();
        }
        spool.remove(2_000).unwrap();
        // A crash mid-write leaves a temporary file: deleted on open, never loaded.
        fs::write(dir.path().join("00000000000000004000.tmp"), b"torn").unwrap();
        drop(spool);
        let (spool, waiting) = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(waiting, [1_000, 3_000]);
        let back = spool.load(1_000).unwrap().unwrap();
        let f = fragment(1_000, 100);
        assert_eq!(
            (
                back.header,
                back.timecode,
                back.producer_ms,
                back.duration_ms,
                back.frames
            ),
            (
                f.header.clone(),
                f.timecode,
                f.producer_ms,
                f.duration_ms,
                f.frames
            )
        );
        assert_eq!(back.parts.concat(), f.parts.concat());
        assert!(spool.load(2_000).unwrap().is_none());
        assert!(!dir.path().join("00000000000000004000.tmp").exists());
    }

    #[test]
    fn the_oldest_go_first_beyond_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let size = fragment(0, 1000).parts.concat().len() as u64 + 40 + 15;
        let (spool, _) = Spool::open(dir.path(), 3 * size).unwrap();
        let dropped: u64 = (0..5)
            .map(|i| spool.store(&fragment(i * 1000, 1000)).unwrap().dropped)
            .sum();
        assert_eq!(dropped, 2);
        let (_, waiting) = Spool::open(dir.path(), 3 * size).unwrap();
        assert_eq!(waiting, [2_000, 3_000, 4_000]);
    }
}
