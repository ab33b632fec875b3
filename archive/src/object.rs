//! [`BlobStore`] on the `object_store` crate: `memory://` (tests) and, with the `s3` cargo
//! feature, any S3-compatible service (`s3://BUCKET/PREFIX?endpoint=…`). [`StoreUrl`] parses the
//! `--store` URL forms and opens the store they name (design/0013).
//!
//! Writes are buffered until [`PUT_THRESHOLD`] bytes: a smaller object (every fragment of a
//! typical stream) is one atomic PUT on `finish`; a larger one switches to a multipart upload
//! of [`PART_SIZE`] parts, completed on `finish`. Either way nothing is visible under the key
//! before `finish`, and a writer dropped unfinished aborts its multipart upload.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::store::{BlobStore, BlobWriter, LocalStore, ObjectInfo, check_key, check_prefix};

/// Objects up to this size are written with one PUT; larger ones with a multipart upload. A
/// packed minute of a 2 Mbit/s stream (15 MB) is one PUT.
pub const PUT_THRESHOLD: usize = 16 << 20;
/// Multipart part size (S3's minimum for all but the last part is 5 MiB).
pub const PART_SIZE: usize = 8 << 20;
/// Parts of one object uploading at once (memory per writer ≤ (1 + this) × [`PART_SIZE`]).
const PART_CONCURRENCY: usize = 2;

/// A [`BlobStore`] over any [`ObjectStore`], under an optional key prefix.
#[derive(Clone)]
pub struct ObjectBlobStore {
    inner: Arc<dyn ObjectStore>,
    /// Empty, or `a/b/` (ends in `/`).
    prefix: String,
    name: String,
}

impl fmt::Debug for ObjectBlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBlobStore")
            .field("store", &self.name)
            .finish()
    }
}

impl ObjectBlobStore {
    /// A store over `inner`, keys under `prefix` (`""` for none).
    pub fn new(inner: Arc<dyn ObjectStore>, prefix: &str, name: &str) -> std::io::Result<Self> {
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            check_key(prefix)?;
        }
        Ok(Self {
            inner,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            name: name.to_owned(),
        })
    }

    /// An in-memory store (tests, `memory://`).
    pub fn memory() -> Self {
        Self::new(
            Arc::new(object_store::memory::InMemory::new()),
            "",
            "memory://",
        )
        .expect("no prefix")
    }

    fn path(&self, key: &str) -> std::io::Result<Path> {
        check_key(key)?;
        Path::parse(format!("{}{key}", self.prefix)).map_err(io_error)
    }
}

fn io_error(e: impl Into<object_store::Error>) -> std::io::Error {
    use std::io::ErrorKind;
    let e: object_store::Error = e.into();
    let kind = match &e {
        object_store::Error::NotFound { .. } => ErrorKind::NotFound,
        object_store::Error::InvalidPath { .. } => ErrorKind::InvalidInput,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => ErrorKind::PermissionDenied,
        _ => ErrorKind::Other,
    };
    std::io::Error::new(kind, e)
}

#[async_trait]
impl BlobStore for ObjectBlobStore {
    async fn create(&self, key: &str) -> std::io::Result<Box<dyn BlobWriter>> {
        Ok(Box::new(ObjectWriter {
            store: self.inner.clone(),
            path: self.path(key)?,
            state: Mutex::new(WriteState::Buffer(Vec::new(), 0)),
        }))
    }

    async fn get(&self, key: &str, range: Range<u64>) -> std::io::Result<Bytes> {
        let path = self.path(key)?;
        if range.start >= range.end {
            // An empty range still needs the object to exist (as a file open does).
            self.inner.head(&path).await.map_err(io_error)?;
            return Ok(Bytes::new());
        }
        let want = range.end - range.start;
        let bytes = self.inner.get_range(&path, range).await.map_err(io_error)?;
        // Stores clamp a range that runs past the end; a short read is an error here.
        if bytes.len() as u64 != want {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(bytes)
    }

    async fn delete(&self, key: &str) -> std::io::Result<()> {
        match self.inner.delete(&self.path(key)?).await {
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            r => r.map_err(io_error),
        }
    }

    async fn list(&self, prefix: &str) -> std::io::Result<Vec<ObjectInfo>> {
        use futures::TryStreamExt;
        check_prefix(prefix)?;
        let full = format!("{}{prefix}", self.prefix);
        let under = (!full.is_empty()).then(|| Path::from(full.trim_end_matches('/')));
        let metas: Vec<_> = self
            .inner
            .list(under.as_ref())
            .try_collect()
            .await
            .map_err(io_error)?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                Some(ObjectInfo {
                    key: m.location.as_ref().strip_prefix(&self.prefix)?.to_owned(),
                    size: m.size,
                    modified_ms: m.last_modified.timestamp_millis(),
                })
            })
            .collect())
    }
}

enum WriteState {
    /// Parts not yet sent, and their total length.
    Buffer(Vec<Bytes>, usize),
    Multipart(WriteMultipart),
    Done,
}

struct ObjectWriter {
    store: Arc<dyn ObjectStore>,
    path: Path,
    /// In a mutex only to be `Sync` (a multipart upload is only `Send`); never locked: every
    /// use is through `&mut self` (`get_mut`).
    state: Mutex<WriteState>,
}

impl fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("path", &self.path.as_ref())
            .finish_non_exhaustive()
    }
}

fn state(m: &mut Mutex<WriteState>) -> &mut WriteState {
    m.get_mut().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl BlobWriter for ObjectWriter {
    async fn write(&mut self, parts: Vec<Bytes>) -> std::io::Result<()> {
        let st = state(&mut self.state);
        match st {
            WriteState::Buffer(buf, len) => {
                *len += parts.iter().map(Bytes::len).sum::<usize>();
                buf.extend(parts);
                if *len <= PUT_THRESHOLD {
                    return Ok(());
                }
                let buffered = std::mem::take(buf);
                *st = WriteState::Done;
                let upload = self
                    .store
                    .put_multipart(&self.path)
                    .await
                    .map_err(io_error)?;
                let mut w = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
                for b in buffered {
                    w.put(b);
                }
                *state(&mut self.state) = WriteState::Multipart(w);
            }
            WriteState::Multipart(w) => {
                for b in parts {
                    w.put(b);
                }
            }
            WriteState::Done => return Err(std::io::Error::other("writer failed before")),
        }
        // Waits while too many parts are in flight; on a failed part, aborts the upload.
        let WriteState::Multipart(w) = state(&mut self.state) else {
            return Ok(());
        };
        if let Err(e) = w.wait_for_capacity(PART_CONCURRENCY).await {
            if let WriteState::Multipart(w) =
                std::mem::replace(state(&mut self.state), WriteState::Done)
            {
                let _ = w.abort().await;
            }
            return Err(io_error(e));
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> std::io::Result<()> {
        match std::mem::replace(state(&mut self.state), WriteState::Done) {
            WriteState::Buffer(parts, _) => {
                self.store
                    .put(&self.path, PutPayload::from_iter(parts))
                    .await
                    .map_err(io_error)?;
            }
            // On an error `finish` aborts the upload itself.
            WriteState::Multipart(w) => {
                w.finish().await.map_err(io_error)?;
            }
            WriteState::Done => return Err(std::io::Error::other("writer failed before")),
        }
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // An unfinished multipart upload is invisible, but its parts cost storage until aborted.
        if let WriteState::Multipart(w) =
            std::mem::replace(state(&mut self.state), WriteState::Done)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = w.abort().await;
            });
        }
    }
}

/// Where fragment bytes live: the `--store` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `file:///path`: [`LocalStore`] (the default, `DATA_DIR/media`).
    File(PathBuf),
    /// `memory://`: lost on exit; for tests.
    Memory,
    /// `s3://BUCKET/PREFIX?endpoint=…&region=…&allow_http=true&path_style=false`.
    S3(S3Options),
}

/// An `s3://` URL's parts. Credentials come from the environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, …), as do unset options (`AWS_REGION`,
/// `AWS_ENDPOINT`, …).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3Options {
    pub bucket: String,
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: Option<bool>,
    /// `true`: `ENDPOINT/BUCKET/KEY` requests; `false`: virtual-hosted `BUCKET.ENDPOINT/KEY`.
    pub path_style: Option<bool>,
}

impl StoreUrl {
    /// Parses `file:///abs/path`, `memory://` or `s3://BUCKET[/PREFIX][?OPTIONS]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("bad --store URL {url:?}: {why}");
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected file:///PATH, memory:// or s3://BUCKET/PREFIX"))?;
        match scheme {
            "file" => {
                if !rest.starts_with('/') || rest.contains('?') {
                    return Err(bad(
                        "file:// takes an absolute path, e.g. file:///var/media",
                    ));
                }
                Ok(Self::File(PathBuf::from(rest)))
            }
            "memory" => {
                if !rest.is_empty() {
                    return Err(bad("memory:// takes nothing after it"));
                }
                Ok(Self::Memory)
            }
            "s3" => {
                let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
                let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
                if bucket.is_empty() {
                    return Err(bad("no bucket"));
                }
                let prefix = prefix.trim_matches('/');
                if !prefix.is_empty() {
                    check_key(prefix).map_err(|_| bad("the prefix must be [A-Za-z0-9_./-]"))?;
                }
                let mut o = S3Options {
                    bucket: bucket.to_owned(),
                    prefix: prefix.to_owned(),
                    ..S3Options::default()
                };
                let flag = |k: &str, v: &str| match v {
                    "true" | "1" => Ok(true),
                    "false" | "0" => Ok(false),
                    _ => Err(bad(&format!("{k} must be true or false"))),
                };
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    match k {
                        "endpoint" => o.endpoint = Some(v.to_owned()),
                        "region" => o.region = Some(v.to_owned()),
                        "allow_http" => o.allow_http = Some(flag(k, v)?),
                        "path_style" => o.path_style = Some(flag(k, v)?),
                        _ => {
                            return Err(bad(&format!(
                                "unknown option {k:?} (endpoint, region, allow_http, path_style)"
                            )));
                        }
                    }
                }
                if !cfg!(feature = "s3") {
                    return Err(bad(
                        "this build has no S3 support (build with the `s3` cargo feature)",
                    ));
                }
                Ok(Self::S3(o))
            }
            _ => Err(bad("the scheme must be file, memory or s3")),
        }
    }

    /// Opens the store: creates the directory (file) or builds the client (s3; no request is
    /// made until the first read or write).
    pub fn open(&self) -> std::io::Result<Arc<dyn BlobStore>> {
        Ok(match self {
            Self::File(path) => Arc::new(LocalStore::open(path)?),
            Self::Memory => Arc::new(ObjectBlobStore::memory()),
            Self::S3(o) => Arc::new(open_s3(o)?),
        })
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => write!(f, "file://{}", p.display()),
            Self::Memory => f.write_str("memory://"),
            Self::S3(o) => {
                write!(f, "s3://{}/{}", o.bucket, o.prefix)?;
                if let Some(e) = &o.endpoint {
                    write!(f, " at {e}")?;
                }
                Ok(())
            }
        }
    }
}

/// The S3 client for `o`: the AWS environment variables first, then the URL's options.
#[cfg(feature = "s3")]
pub(crate) fn s3_builder(o: &S3Options) -> object_store::aws::AmazonS3Builder {
    use object_store::aws::AmazonS3Builder;
    use object_store::{BackoffConfig, RetryConfig};
    use std::time::Duration;

    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(&o.bucket)
        // Transient errors (5xx, 429, timeouts, connection resets) are retried with exponential
        // backoff and decorrelated jitter, for at most 10 retries or 60 s per request.
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
            max_retries: 10,
            retry_timeout: Duration::from_secs(60),
        });
    if let Some(e) = &o.endpoint {
        b = b.with_endpoint(e);
    }
    if let Some(r) = &o.region {
        b = b.with_region(r);
    }
    if let Some(h) = o.allow_http {
        b = b.with_allow_http(h);
    }
    if let Some(p) = o.path_style {
        b = b.with_virtual_hosted_style_request(!p);
    }
    b
}

#[cfg(feature = "s3")]
fn open_s3(o: &S3Options) -> std::io::Result<ObjectBlobStore> {
    let s3 = s3_builder(o).build().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("cannot open s3://{}: {e}", o.bucket),
        )
    })?;
    ObjectBlobStore::new(
        Arc::new(s3),
        &o.prefix,
        &format!("s3://{}/{}", o.bucket, o.prefix),
    )
}

#[cfg(not(feature = "s3"))]
fn open_s3(_: &S3Options) -> std::io::Result<ObjectBlobStore> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "this build has no S3 support (build with the `s3` cargo feature)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        assert_eq!(
            StoreUrl::parse("file:///var/media").unwrap(),
            StoreUrl::File("/var/media".into())
        );
        assert_eq!(StoreUrl::parse("memory://").unwrap(), StoreUrl::Memory);
        for bad in [
            "",
            "/var/media",
            "file://relative",
            "memory://x",
            "gs://b",
            "s3://",
            "s3:///prefix",
            "s3://b/../x",
            "s3://b?colour=red",
            "s3://b?allow_http=maybe",
        ] {
            assert!(StoreUrl::parse(bad).is_err(), "{bad:?}");
        }
        let s3 = StoreUrl::parse(
            "s3://bucket/a/b/?endpoint=http://127.0.0.1:9000&region=eu-west-1&allow_http=true&path_style=true",
        );
        if cfg!(feature = "s3") {
            assert_eq!(
                s3.unwrap(),
                StoreUrl::S3(S3Options {
                    bucket: "bucket".into(),
                    prefix: "a/b".into(),
                    endpoint: Some("http://127.0.0.1:9000".into()),
                    region: Some("eu-west-1".into()),
                    allow_http: Some(true),
                    path_style: Some(true),
                })
            );
        } else {
            assert!(s3.unwrap_err().contains("no S3 support"));
        }
    }
}
