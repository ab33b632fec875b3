//! Where fragment bytes live. [`LocalStore`] keeps them as files under the data directory with
//! the durability PERSISTED promises (DESIGN.md convention 7): write a temporary file (as the
//! fragment arrives), fsync it, rename it into place, fsync the directory. A crash leaves either
//! the whole object or nothing under its name; temporary files are swept on open.

use std::fmt;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

/// An object store for fragment bytes: objects written in parts, byte ranges out.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Starts an object at `key`; it exists under that name only once the writer finishes.
    async fn create(&self, key: &str) -> std::io::Result<Box<dyn BlobWriter>>;
    /// Bytes `range` of the object at `key`.
    async fn get(&self, key: &str, range: Range<u64>) -> std::io::Result<Bytes>;

    /// Removes the object at `key`; one that does not exist is not an error.
    async fn delete(&self, key: &str) -> std::io::Result<()>;

    /// Every finished object whose key starts with `prefix` (`""`, or whole key parts ending in
    /// `/`), in no particular order.
    async fn list(&self, prefix: &str) -> std::io::Result<Vec<ObjectInfo>>;

    /// Stores `parts`, concatenated, under `key`, durably, before returning.
    async fn put(&self, key: &str, parts: Vec<Bytes>) -> std::io::Result<()> {
        let mut w = self.create(key).await?;
        w.write(parts).await?;
        w.finish().await
    }
}

/// An object [`BlobStore::list`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// When it was written, in Unix milliseconds.
    pub modified_ms: i64,
}

/// Refuses a list prefix that is not empty or whole key parts followed by `/`.
pub(crate) fn check_prefix(prefix: &str) -> std::io::Result<()> {
    match prefix.strip_suffix('/') {
        None if prefix.is_empty() => Ok(()),
        Some(p) => check_key(p),
        None => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("bad list prefix {prefix:?}: must end in /"),
        )),
    }
}

/// An object being written. Dropped without [`finish`](BlobWriter::finish), it leaves nothing.
#[async_trait]
pub trait BlobWriter: Send + Sync + fmt::Debug {
    async fn write(&mut self, parts: Vec<Bytes>) -> std::io::Result<()>;
    /// Makes the object durable under its name.
    async fn finish(self: Box<Self>) -> std::io::Result<()>;
}

/// Objects as files under a directory; keys are relative paths of `[A-Za-z0-9_./-]`.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

const TMP_SUFFIX: &str = ".partial";

impl LocalStore {
    /// Opens (creating) the store and removes temporary files a crash left behind.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        sweep(&root)?;
        Ok(Self { root })
    }

    fn path(&self, key: &str) -> std::io::Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

/// Refuses keys every store could not hold the same way: a key is `/`-separated non-empty
/// parts of `[A-Za-z0-9_.-]`, none of them `.` or `..`.
pub(crate) fn check_key(key: &str) -> std::io::Result<()> {
    let ok = !key.is_empty()
        && key
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
    if !ok {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("bad object key {key:?}"),
        ));
    }
    Ok(())
}

#[async_trait]
impl BlobStore for LocalStore {
    async fn create(&self, key: &str) -> std::io::Result<Box<dyn BlobWriter>> {
        let path = self.path(key)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(TMP_SUFFIX);
        let tmp = PathBuf::from(tmp);
        let file = blocking({
            let tmp = tmp.clone();
            move || {
                std::fs::create_dir_all(tmp.parent().expect("keys have a parent"))?;
                std::fs::File::create(&tmp)
            }
        })
        .await?;
        Ok(Box::new(LocalWriter {
            file: Some(file),
            tmp,
            path,
        }))
    }

    async fn delete(&self, key: &str) -> std::io::Result<()> {
        let path = self.path(key)?;
        let root = self.root.clone();
        blocking(move || {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
            // Empty directories go too (a deleted stream leaves none); a non-empty one stops it.
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| *d != root) {
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
    }

    async fn list(&self, prefix: &str) -> std::io::Result<Vec<ObjectInfo>> {
        check_prefix(prefix)?;
        let (root, prefix) = (self.root.clone(), prefix.to_owned());
        blocking(move || {
            let mut out = Vec::new();
            match walk(&root, &root.join(&prefix), &mut out) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                r => r.map(|()| out),
            }
        })
        .await
    }

    async fn get(&self, key: &str, range: Range<u64>) -> std::io::Result<Bytes> {
        let path = self.path(key)?;
        blocking(move || {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = std::fs::File::open(&path)?;
            let len = usize::try_from(range.end.saturating_sub(range.start)).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "range too large")
            })?;
            f.seek(SeekFrom::Start(range.start))?;
            // Read into spare capacity: no pass over the buffer to zero it first.
            let mut buf = Vec::with_capacity(len);
            f.take(len as u64).read_to_end(&mut buf)?;
            if buf.len() != len {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok(Bytes::from(buf))
        })
        .await
    }
}

/// A temporary file that becomes the object on `finish`, or is removed when dropped.
#[derive(Debug)]
struct LocalWriter {
    /// `None` only while a blocking task holds it.
    file: Option<std::fs::File>,
    tmp: PathBuf,
    path: PathBuf,
}

#[async_trait]
impl BlobWriter for LocalWriter {
    async fn write(&mut self, parts: Vec<Bytes>) -> std::io::Result<()> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("writer failed before"))?;
        let file = blocking(move || {
            for p in &parts {
                file.write_all(p)?;
            }
            Ok(file)
        })
        .await?;
        self.file = Some(file);
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> std::io::Result<()> {
        let file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("writer failed before"))?;
        let (tmp, path) = (self.tmp.clone(), self.path.clone());
        blocking(move || {
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(path.parent().expect("keys have a parent"))?.sync_all()
        })
        .await?;
        // Renamed: nothing left for Drop to remove.
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

/// The finished objects under `dir`, keyed relative to `root`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<ObjectInfo>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let meta = entry.metadata()?;
        if meta.is_dir() {
            walk(root, &path, out)?;
        } else if !path.to_string_lossy().ends_with(TMP_SUFFIX) {
            let key = path
                .strip_prefix(root)
                .map_err(std::io::Error::other)?
                .to_string_lossy()
                .into_owned();
            let modified = meta.modified()?;
            let modified_ms = modified
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            out.push(ObjectInfo {
                key,
                size: meta.len(),
                modified_ms,
            });
        }
    }
    Ok(())
}

fn sweep(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            sweep(&path)?;
        } else if path.to_string_lossy().ends_with(TMP_SUFFIX) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_and_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        store
            .put(
                "7/0001",
                vec![Bytes::from_static(b"hello "), Bytes::from_static(b"world")],
            )
            .await
            .unwrap();
        assert_eq!(
            &store.get("7/0001", 0..11).await.unwrap()[..],
            b"hello world"
        );
        assert_eq!(&store.get("7/0001", 6..11).await.unwrap()[..], b"world");
        assert!(store.get("7/0001", 6..12).await.is_err());
        assert!(store.get("7/missing", 0..1).await.is_err());
        for bad in ["", "../x", "a//b", "a/./b", "a b", "/abs"] {
            assert!(store.put(bad, vec![]).await.is_err(), "{bad:?}");
        }
        // A crash between write and rename leaves a temporary file, which open() removes.
        std::fs::write(dir.path().join("7/0002.partial"), b"half").unwrap();
        LocalStore::open(dir.path()).unwrap();
        assert!(!dir.path().join("7/0002.partial").exists());
        assert!(dir.path().join("7/0001").exists());
    }

    #[tokio::test]
    async fn objects_appear_only_when_finished_and_dropped_writers_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let mut w = store.create("1/a").await.unwrap();
        w.write(vec![Bytes::from_static(b"ab")]).await.unwrap();
        w.write(vec![Bytes::from_static(b"c"), Bytes::from_static(b"d")])
            .await
            .unwrap();
        assert!(
            store.get("1/a", 0..4).await.is_err(),
            "not visible before finish"
        );
        w.finish().await.unwrap();
        assert_eq!(&store.get("1/a", 0..4).await.unwrap()[..], b"abcd");
        let mut w = store.create("1/b").await.unwrap();
        w.write(vec![Bytes::from_static(b"half")]).await.unwrap();
        drop(w);
        assert!(
            std::fs::read_dir(dir.path().join("1")).unwrap().count() == 1,
            "only 1/a remains"
        );
    }
}
