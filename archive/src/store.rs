//! Where fragment bytes live. [`LocalStore`] keeps them as files under the data directory with
//! the durability PERSISTED promises (DESIGN.md convention 7): write a temporary file, fsync
//! it, rename it into place, fsync the directory. A crash leaves either the whole object or
//! nothing under its name; temporary files are swept on open.

use std::fmt;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

/// An object store for fragment bytes: whole objects in, byte ranges out.
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Stores `parts`, concatenated, under `key`, durably, before returning.
    async fn put(&self, key: &str, parts: Vec<Bytes>) -> std::io::Result<()>;
    /// Bytes `range` of the object at `key`.
    async fn get(&self, key: &str, range: Range<u64>) -> std::io::Result<Bytes>;
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
        Ok(self.root.join(key))
    }
}

#[async_trait]
impl BlobStore for LocalStore {
    async fn put(&self, key: &str, parts: Vec<Bytes>) -> std::io::Result<()> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || write_durably(&path, &parts))
            .await
            .map_err(std::io::Error::other)?
    }

    async fn get(&self, key: &str, range: Range<u64>) -> std::io::Result<Bytes> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Seek, SeekFrom};
            let mut f = std::fs::File::open(&path)?;
            let len = usize::try_from(range.end.saturating_sub(range.start)).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "range too large")
            })?;
            f.seek(SeekFrom::Start(range.start))?;
            let mut buf = vec![0u8; len];
            f.read_exact(&mut buf)?;
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

fn write_durably(path: &Path, parts: &[Bytes]) -> std::io::Result<()> {
    let dir = path.parent().expect("keys have a parent");
    std::fs::create_dir_all(dir)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    for p in parts {
        f.write_all(p)?;
    }
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
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
}
