//! The resilient uploader (issue 14): fragments in, every one PERSISTED exactly once as the
//! archive sees it, whatever happens to the connection. It speaks only the wire protocol
//! (DescribeStream/CreateStream, GetDataEndpoint, PutMedia, ListFragments; spec §2–§5), so it
//! works against Amazon KVS as against Kinescope.
//!
//! - Every fragment is kept until its PERSISTED ACK. A dropped connection, an HTTP 5xx, a
//!   retryable ERROR ACK (5000, 5001, 4000) or the connection-duration limit (4003) reconnects
//!   with exponential backoff and jitter, and re-sends every fragment not yet PERSISTED, after a
//!   fresh MKV header.
//! - A fragment whose PERSISTED ACK was lost with the connection may be stored already: before
//!   re-sending, ListFragments over the re-sent fragments' producer timestamps tells which, and
//!   those are not sent again (exactly once, as seen from the archive).
//! - Errors that retrying cannot fix (bad credentials, a deleted stream, invalid media) end the
//!   upload at once with the server's message.
//! - Memory is bounded: beyond `buffer_bytes` of fragments not yet PERSISTED, the input waits.
//!   Within it, fragments are taken from the input while the connection is down too, so that a
//!   live source is not held up by a reconnection.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kinescope_api::ack::{AckError, AckEvent};
use kinescope_api::sigv4::Signer;
use kinescope_api::{FragmentNumber, StreamName, Timestamp};
use tokio::sync::{mpsc, watch};

use crate::client::{DeviceError, Endpoint, PutMedia, PutMediaBody, PutMediaOptions};
use crate::refragment::OutFragment;

/// A fragment sent but not PERSISTED this long after is taken as a dead connection.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to upload and how.
#[derive(Clone)]
pub struct UploadConfig {
    /// The control-plane endpoint (`https://host:port`).
    pub endpoint: String,
    pub ca: Option<PathBuf>,
    pub signer: Signer,
    pub stream: StreamName,
    /// CreateStream first if it does not exist.
    pub create: bool,
    /// Fragments not yet PERSISTED kept in memory at most (the input waits beyond it).
    pub buffer_bytes: u64,
    /// Give up after this long without a fragment PERSISTED while reconnecting.
    pub give_up_after: Duration,
    pub now: Arc<dyn Fn() -> Timestamp + Send + Sync>,
    /// Called for each fragment once it is PERSISTED (or found stored): the disk buffer deletes
    /// its copy, the simulator measures.
    pub on_persisted: Option<OnPersisted>,
}

/// See [`UploadConfig::on_persisted`].
pub type OnPersisted = Arc<dyn Fn(&PersistedFragment) + Send + Sync>;

/// A fragment the archive holds, as [`UploadConfig::on_persisted`] learns of it.
#[derive(Debug, Clone)]
pub struct PersistedFragment {
    /// Its producer timestamp in milliseconds (its Cluster's Timecode).
    pub producer_ms: i64,
    /// The fragment number its PERSISTED ACK gave; `None` when it was found stored instead.
    pub number: Option<FragmentNumber>,
    /// When its PERSISTED ACK arrived (or it was found stored).
    pub at: Instant,
    /// From its last byte sent to its PERSISTED ACK; `None` when it was found stored.
    pub latency: Option<Duration>,
}

impl std::fmt::Debug for UploadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadConfig")
            .field("endpoint", &self.endpoint)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

/// How the upload is going (sent on a watch channel as it changes).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UploadStats {
    /// Fragments taken from the input.
    pub read: u64,
    /// Fragment sends, re-sends included.
    pub sent: u64,
    pub persisted: u64,
    pub bytes_persisted: u64,
    /// Fragments sent again after a reconnection.
    pub resent: u64,
    /// Fragments found stored after a reconnection, whose ACK had been lost: not sent again.
    pub found_stored: u64,
    pub reconnects: u64,
    /// From a fragment's last byte sent to its PERSISTED ACK, of the latest one.
    pub last_ack_latency: Option<Duration>,
    /// Fragments held until PERSISTED.
    pub pending: usize,
    /// The error behind the latest reconnection.
    pub last_error: Option<String>,
    /// Reconnections by what caused them: an ERROR ACK's id (`ack 5000`), an HTTP status and
    /// error type (`HTTP 503 ServiceUnavailableException`), `connection`, `tls`, `protocol`,
    /// `ack timeout` or `response ended`.
    pub retries_by_cause: BTreeMap<String, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The server refused in a way retrying cannot fix; `cause` as in
    /// [`UploadStats::retries_by_cause`].
    #[error("{message}")]
    Refused { cause: String, message: String },
    #[error("gave up: nothing PERSISTED for {0:?}; last error: {1}")]
    GaveUp(Duration, String),
    #[error(transparent)]
    Device(#[from] DeviceError),
}

impl UploadError {
    /// What went wrong, in a word or two, for counting: as [`UploadStats::retries_by_cause`],
    /// or `gave up`.
    pub fn cause(&self) -> String {
        match self {
            Self::Refused { cause, .. } => cause.clone(),
            Self::GaveUp(..) => "gave up".to_owned(),
            Self::Device(e) => cause_of(e),
        }
    }
}

/// Why a connection ended.
enum Ended {
    /// Everything read was PERSISTED and the input is closed.
    Done,
    /// Reconnect and carry on: the cause (for counting) and the message.
    Retry(String, String),
    Fatal(UploadError),
}

struct Pending {
    fragment: OutFragment,
    /// When its last byte went out on the current connection.
    sent_at: Option<Instant>,
    /// Sent on some connection before (so it may be stored already).
    ever_sent: bool,
}

/// A stream being uploaded to: its data endpoints, resolved once.
pub struct Uploader {
    config: UploadConfig,
    put: Endpoint,
    list: Endpoint,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Uploader {
    /// Checks the stream (creating it when asked) and resolves its PutMedia and ListFragments
    /// endpoints. Retries what may be transient for `give_up_after`.
    pub async fn open(config: UploadConfig) -> Result<Self, UploadError> {
        let control = Endpoint::new(
            &config.endpoint,
            config.ca.as_deref(),
            config.signer.clone(),
        )?;
        let stream = serde_json::to_string(config.stream.as_str()).expect("a string");
        let started = Instant::now();
        let mut failures = 0;
        loop {
            let attempt = async {
                let describe = format!(r#"{{"StreamName":{stream}}}"#);
                match control
                    .call("/describeStream", &describe, (config.now)())
                    .await
                {
                    Err(DeviceError::Status { status: 404, .. }) if config.create => {
                        let create =
                            format!(r#"{{"StreamName":{stream},"DataRetentionInHours":24}}"#);
                        control
                            .call("/createStream", &create, (config.now)())
                            .await?;
                    }
                    other => {
                        other?;
                    }
                }
                let mut endpoints = Vec::new();
                for api in ["PUT_MEDIA", "LIST_FRAGMENTS"] {
                    let body = format!(r#"{{"StreamName":{stream},"APIName":"{api}"}}"#);
                    let answer = control
                        .call("/getDataEndpoint", &body, (config.now)())
                        .await?;
                    let url = serde_json::from_str::<serde_json::Value>(&answer)
                        .ok()
                        .and_then(|v| v["DataEndpoint"].as_str().map(str::to_owned))
                        .ok_or_else(|| {
                            DeviceError::Protocol(format!("GetDataEndpoint: {answer}"))
                        })?;
                    endpoints.push(Endpoint::new(
                        &url,
                        config.ca.as_deref(),
                        config.signer.clone(),
                    )?);
                }
                Ok::<_, DeviceError>(endpoints)
            };
            match attempt.await {
                Ok(mut endpoints) => {
                    let list = endpoints.pop().expect("two endpoints");
                    let put = endpoints.pop().expect("two endpoints");
                    return Ok(Self { config, put, list });
                }
                Err(e) if retryable(&e) && started.elapsed() < config.give_up_after => {
                    failures += 1;
                    tracing::warn!(error = %e, "reaching the server; retrying");
                    tokio::time::sleep(backoff(failures)).await;
                }
                Err(e) if retryable(&e) => {
                    return Err(UploadError::GaveUp(started.elapsed(), e.to_string()));
                }
                Err(e) => return Err(refused(e)),
            }
        }
    }

    /// Uploads every fragment `input` yields until it closes, each PERSISTED once; reports
    /// progress on `stats`. Returns the final stats.
    pub async fn run(
        &self,
        mut input: mpsc::Receiver<OutFragment>,
        stats: watch::Sender<UploadStats>,
    ) -> Result<UploadStats, UploadError> {
        let mut pending = VecDeque::new();
        let mut input_open = true;
        let mut failures = 0u32;
        let mut last_progress = Instant::now();
        loop {
            if failures > 0 {
                let quiet = last_progress.elapsed();
                if quiet > self.config.give_up_after {
                    let last = stats.borrow().last_error.clone().unwrap_or_default();
                    return Err(UploadError::GaveUp(quiet, last));
                }
                self.take_input_for(
                    backoff(failures),
                    &mut pending,
                    &mut input,
                    &mut input_open,
                    &stats,
                )
                .await;
                stats.send_modify(|s| s.reconnects += 1);
                self.skip_stored(&mut pending, &stats).await;
            }
            let persisted_before = stats.borrow().persisted;
            let ended = self
                .connection(&mut pending, &mut input, &mut input_open, &stats)
                .await;
            if stats.borrow().persisted > persisted_before {
                last_progress = Instant::now();
                failures = 0;
            }
            match ended {
                Ended::Done => return Ok(stats.borrow().clone()),
                Ended::Retry(cause, why) => {
                    tracing::warn!(error = %why, pending = pending.len(), "upload interrupted; reconnecting");
                    stats.send_modify(|s| {
                        s.last_error = Some(why);
                        *s.retries_by_cause.entry(cause).or_default() += 1;
                    });
                    failures += 1;
                }
                Ended::Fatal(e) => return Err(e),
            }
        }
    }

    /// One PutMedia connection: re-sends what is pending, then sends new fragments as they come
    /// while reading ACKs.
    async fn connection(
        &self,
        pending: &mut VecDeque<Pending>,
        input: &mut mpsc::Receiver<OutFragment>,
        input_open: &mut bool,
        stats: &watch::Sender<UploadStats>,
    ) -> Ended {
        if pending.is_empty() && !*input_open {
            return Ended::Done;
        }
        let start = pending.front().map_or_else(
            || (self.config.now)(),
            |p| Timestamp::from_millis(p.fragment.producer_ms),
        );
        let options = PutMediaOptions {
            stream: self.config.stream.clone(),
            absolute: true,
            start,
        };
        let upload = match PutMedia::start(&self.put, &options, (self.config.now)()).await {
            Ok(u) => u,
            Err(e) => return failed(e),
        };
        let (mut body, mut acks) = upload.split();
        let mut header: Option<Bytes> = None;
        for p in pending.iter_mut() {
            if p.ever_sent {
                stats.send_modify(|s| s.resent += 1);
            }
            if let Err(e) = send(&mut body, &mut header, p, stats).await {
                return failed(e);
            }
        }
        let mut ended_body = false;
        loop {
            if !*input_open && !ended_body {
                if let Err(e) = body.end().await {
                    return failed(e);
                }
                ended_body = true;
            }
            let room = held(pending) < self.config.buffer_bytes;
            let oldest_sent = pending.iter().find_map(|p| p.sent_at);
            let ack_deadline = oldest_sent.map(|t| t + ACK_TIMEOUT);
            tokio::select! {
                ack = acks.recv() => {
                    let (ack, at) = match ack {
                        None if pending.is_empty() && !*input_open => return Ended::Done,
                        None => return Ended::Retry("response ended".into(), format!(
                            "the server ended the response with {} fragments not PERSISTED",
                            pending.len()
                        )),
                        Some(Err(e)) => return failed(e),
                        Some(Ok(a)) => a,
                    };
                    match ack.event {
                        AckEvent::Persisted => {
                            let Some((timecode, number)) = ack.fragment else { continue };
                            if let Some(i) = pending.iter().position(|p| {
                                p.sent_at.is_some() && p.fragment.timecode == timecode
                            }) {
                                let p = pending.remove(i).expect("found");
                                let latency = p.sent_at.map(|t| at.saturating_duration_since(t));
                                if let Some(hook) = &self.config.on_persisted {
                                    hook(&PersistedFragment {
                                        producer_ms: p.fragment.producer_ms,
                                        number: Some(number),
                                        at,
                                        latency,
                                    });
                                }
                                stats.send_modify(|s| {
                                    s.persisted += 1;
                                    s.bytes_persisted += p.fragment.size();
                                    s.last_ack_latency = latency;
                                    s.pending = pending.len();
                                });
                            }
                        }
                        AckEvent::Error => {
                            let error = ack.error;
                            let cause = error.map_or_else(|| "ack error".to_owned(), |e| format!("ack {}", e.id()));
                            let what = match (error, ack.fragment) {
                                (Some(e), Some((tc, _))) => {
                                    format!("ERROR {} {} for the fragment at timecode {tc}", e.id(), e.code())
                                }
                                (Some(e), None) => format!("ERROR {} {}", e.id(), e.code()),
                                (None, _) => "ERROR without an error id".to_owned(),
                            };
                            return match error {
                                Some(
                                    AckError::InternalError
                                    | AckError::ArchivalError
                                    | AckError::StreamReadError
                                    | AckError::MaxConnectionDurationReached,
                                ) => Ended::Retry(cause, what),
                                _ => Ended::Fatal(UploadError::Refused {
                                    cause,
                                    message: format!("the server refused the upload: {what}"),
                                }),
                            };
                        }
                        AckEvent::Buffering | AckEvent::Received | AckEvent::Idle => {}
                    }
                }
                next = input.recv(), if *input_open && room && !ended_body => {
                    let Some(fragment) = next else {
                        *input_open = false;
                        continue;
                    };
                    pending.push_back(Pending { fragment, sent_at: None, ever_sent: false });
                    stats.send_modify(|s| {
                        s.read += 1;
                        s.pending = pending.len();
                    });
                    let p = pending.back_mut().expect("just pushed");
                    if let Err(e) = send(&mut body, &mut header, p, stats).await {
                        return failed(e);
                    }
                }
                () = sleep_until(ack_deadline) => {
                    return Ended::Retry(
                        "ack timeout".into(),
                        format!("no PERSISTED ACK within {ACK_TIMEOUT:?}"),
                    );
                }
            }
        }
    }

    /// Waits `wait` before reconnecting, taking fragments from the input meanwhile (within
    /// the memory bound), so that a live source is not held up while the server is away.
    async fn take_input_for(
        &self,
        wait: Duration,
        pending: &mut VecDeque<Pending>,
        input: &mut mpsc::Receiver<OutFragment>,
        input_open: &mut bool,
        stats: &watch::Sender<UploadStats>,
    ) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let room = held(pending) < self.config.buffer_bytes;
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => return,
                next = input.recv(), if *input_open && room => match next {
                    Some(fragment) => {
                        pending.push_back(Pending { fragment, sent_at: None, ever_sent: false });
                        stats.send_modify(|s| {
                            s.read += 1;
                            s.pending = pending.len();
                        });
                    }
                    None => *input_open = false,
                },
            }
        }
    }

    /// Drops from `pending` the fragments sent before that the archive lists already (their
    /// PERSISTED ACK was lost with the connection). Best effort: if ListFragments fails they
    /// are sent again.
    async fn skip_stored(
        &self,
        pending: &mut VecDeque<Pending>,
        stats: &watch::Sender<UploadStats>,
    ) {
        let sent: Vec<i64> = pending
            .iter()
            .filter(|p| p.ever_sent)
            .map(|p| p.fragment.producer_ms)
            .collect();
        let (Some(&from), Some(&to)) = (sent.iter().min(), sent.iter().max()) else {
            return;
        };
        match self.stored_producer_timestamps(from, to).await {
            Ok(stored) => {
                let before = pending.len();
                pending.retain(|p| {
                    let found = p.ever_sent && stored.contains(&p.fragment.producer_ms);
                    if found && let Some(hook) = &self.config.on_persisted {
                        hook(&PersistedFragment {
                            producer_ms: p.fragment.producer_ms,
                            number: None,
                            at: Instant::now(),
                            latency: None,
                        });
                    }
                    !found
                });
                let found = (before - pending.len()) as u64;
                stats.send_modify(|s| {
                    s.found_stored += found;
                    s.persisted += found;
                    s.pending = pending.len();
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "ListFragments failed; re-sending without checking")
            }
        }
    }

    /// The producer timestamps (ms) of the stream's fragments between `from` and `to`.
    async fn stored_producer_timestamps(
        &self,
        from: i64,
        to: i64,
    ) -> Result<HashSet<i64>, DeviceError> {
        let stream = serde_json::to_string(self.config.stream.as_str()).expect("a string");
        let mut out = HashSet::new();
        let mut token: Option<String> = None;
        loop {
            let body = match &token {
                Some(t) => format!(
                    r#"{{"StreamName":{stream},"NextToken":{}}}"#,
                    serde_json::to_string(t).expect("a string")
                ),
                None => format!(
                    r#"{{"StreamName":{stream},"MaxResults":1000,"FragmentSelector":{{"FragmentSelectorType":"PRODUCER_TIMESTAMP","TimestampRange":{{"StartTimestamp":{:.3},"EndTimestamp":{:.3}}}}}}}"#,
                    from as f64 / 1000.0,
                    to as f64 / 1000.0
                ),
            };
            let answer = self
                .list
                .call("/listFragments", &body, (self.config.now)())
                .await?;
            let v: serde_json::Value = serde_json::from_str(&answer)
                .map_err(|e| DeviceError::Protocol(format!("ListFragments: {e}")))?;
            for f in v["Fragments"].as_array().into_iter().flatten() {
                if let Some(t) = f["ProducerTimestamp"].as_f64() {
                    out.insert((t * 1000.0).round() as i64);
                }
            }
            match v["NextToken"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => return Ok(out),
            }
        }
    }
}

/// Sends a fragment, after the header of its document if the connection has not had it.
async fn send(
    body: &mut PutMediaBody,
    header: &mut Option<Bytes>,
    p: &mut Pending,
    stats: &watch::Sender<UploadStats>,
) -> Result<(), DeviceError> {
    if header.as_ref() != Some(&p.fragment.header) {
        body.send_parts(&[&p.fragment.header]).await?;
        *header = Some(p.fragment.header.clone());
    }
    let parts: Vec<&[u8]> = p.fragment.parts.iter().map(|b| b.as_ref()).collect();
    body.send_parts(&parts).await?;
    p.sent_at = Some(Instant::now());
    p.ever_sent = true;
    stats.send_modify(|s| s.sent += 1);
    Ok(())
}

/// Bytes of the fragments held until PERSISTED.
fn held(pending: &VecDeque<Pending>) -> u64 {
    pending.iter().map(|p| p.fragment.size()).sum()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// A connection-level failure: retried unless the server said something retrying cannot fix.
fn failed(e: DeviceError) -> Ended {
    if retryable(&e) {
        Ended::Retry(cause_of(&e), e.to_string())
    } else {
        Ended::Fatal(refused(e))
    }
}

/// Connection trouble and 5xx are worth retrying; 4xx answers are not (except throttling).
fn retryable(e: &DeviceError) -> bool {
    match e {
        DeviceError::Status { status, .. } => *status >= 500 || *status == 429,
        DeviceError::BadEndpoint(_) => false,
        DeviceError::Io(_) | DeviceError::Tls(_) | DeviceError::Protocol(_) => true,
    }
}

fn refused(e: DeviceError) -> UploadError {
    match e {
        DeviceError::Status { status, ref body } => UploadError::Refused {
            cause: cause_of(&e),
            message: format!("the server refused (HTTP {status}): {}", body.trim()),
        },
        e => UploadError::Device(e),
    }
}

/// A failure in a word or two, for counting: `HTTP 403 AccessDeniedException` (the KVS error
/// type from the JSON body when there is one), `connection`, `tls`, `protocol`, `endpoint`.
fn cause_of(e: &DeviceError) -> String {
    match e {
        DeviceError::Status { status, body } => {
            let kind = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["__type"].as_str().map(str::to_owned));
            match kind {
                Some(kind) => format!("HTTP {status} {kind}"),
                None => format!("HTTP {status}"),
            }
        }
        DeviceError::Io(_) => "connection".to_owned(),
        DeviceError::Tls(_) => "tls".to_owned(),
        DeviceError::Protocol(_) => "protocol".to_owned(),
        DeviceError::BadEndpoint(_) => "endpoint".to_owned(),
    }
}

/// 0.25 s doubling per failure up to 8 s, each with up to 50 % random jitter.
fn backoff(failures: u32) -> Duration {
    let base =
        Duration::from_millis(250).saturating_mul(1 << failures.clamp(1, 6).saturating_sub(1));
    let jitter = RandomState::new().hash_one(failures) % 1000;
    base + base.mul_f64(jitter as f64 / 2000.0)
}
