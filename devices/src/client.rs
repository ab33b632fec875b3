//! HTTP/1.1 over TCP or TLS, written by hand because PutMedia is full duplex (spec §3.2): the
//! chunked request body goes out while the chunked ACK stream comes in, on one connection. JSON
//! calls use the same connection code. Requests are signed with `kinescope_api::sigv4`.

use std::io::IoSlice;
use std::path::Path;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};
use kinescope_api::ack::Ack;
use kinescope_api::sigv4::{Payload, Signer};
use kinescope_api::{FragmentNumber, StreamName, Timestamp};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("endpoint '{0}' is not http(s)://host:port")]
    BadEndpoint(String),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("malformed response: {0}")]
    Protocol(String),
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A server to talk to.
#[derive(Clone)]
pub struct Endpoint {
    host: String,
    port: u16,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
    signer: Signer,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Endpoint {
    /// `url` is `http(s)://host:port`; `ca` is the PEM file to trust for https (the server's
    /// generated `tls/ca.pem`, say).
    pub fn new(url: &str, ca: Option<&Path>, signer: Signer) -> Result<Self, DeviceError> {
        let bad = || DeviceError::BadEndpoint(url.to_owned());
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        let (host, port) = rest
            .trim_end_matches('/')
            .rsplit_once(':')
            .ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = match scheme {
            "http" => None,
            "https" => {
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                let ca = ca.ok_or_else(|| DeviceError::Tls("https needs a CA file".into()))?;
                for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)
                    .map_err(|e| DeviceError::Tls(e.to_string()))?
                {
                    roots
                        .add(cert.map_err(|e| DeviceError::Tls(e.to_string()))?)
                        .map_err(|e| DeviceError::Tls(e.to_string()))?;
                }
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| DeviceError::Tls(e.to_string()))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| DeviceError::Tls(e.to_string()))?;
                Some((Arc::new(config), name))
            }
            _ => return Err(bad()),
        };
        Ok(Self {
            host,
            port,
            tls,
            signer,
        })
    }

    async fn connect(&self) -> Result<Box<dyn Io>, DeviceError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
        tcp.set_nodelay(true)?;
        Ok(match &self.tls {
            None => Box::new(tcp),
            Some((config, name)) => {
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await?;
                Box::new(tls)
            }
        })
    }

    fn host_header(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// A signed `POST path` with a JSON body, on a connection closed after the response.
    fn signed_request(
        &self,
        path: &str,
        json: &str,
        now: Timestamp,
    ) -> Result<Vec<u8>, DeviceError> {
        let mut headers = HeaderMap::new();
        headers.insert("host", header(&self.host_header())?);
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        self.signer.sign(
            "POST",
            path,
            None,
            &mut headers,
            Payload::Body(json.as_bytes()),
            now,
        );
        let mut head = format!(
            "POST {path} HTTP/1.1\r\ncontent-length: {}\r\nconnection: close\r\n",
            json.len()
        );
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or_default()));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(json.as_bytes());
        Ok(request)
    }

    /// A signed `POST path` with a JSON body; the response body when the status is 200.
    pub async fn call(
        &self,
        path: &str,
        json: &str,
        now: Timestamp,
    ) -> Result<String, DeviceError> {
        let mut io = self.connect().await?;
        io.write_all(&self.signed_request(path, json, now)?).await?;
        let mut raw = Vec::new();
        io.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| DeviceError::Protocol("no header end".into()))?;
        let status = status_of(head)?;
        if status != 200 {
            return Err(DeviceError::Status {
                status,
                body: body.to_owned(),
            });
        }
        Ok(body.to_owned())
    }
}

/// How an upload's timestamps are to be read (spec §3.1).
#[derive(Debug, Clone)]
pub struct PutMediaOptions {
    pub stream: StreamName,
    /// `x-amzn-fragment-timecode-type: ABSOLUTE` when true, else RELATIVE.
    pub absolute: bool,
    pub start: Timestamp,
}

/// A PutMedia upload in progress: send body chunks, receive ACKs as they come.
pub struct PutMedia {
    body: PutMediaBody,
    acks: AckStream,
}

/// The request body of a PutMedia upload, apart from its ACKs ([`PutMedia::split`]).
pub struct PutMediaBody {
    writer: WriteHalf<Box<dyn Io>>,
}

/// The ACKs of a PutMedia upload as they arrive; `None` once the response has ended.
pub type AckStream = mpsc::UnboundedReceiver<Result<ReceivedAck, DeviceError>>;

/// An ACK and when its line arrived.
pub type ReceivedAck = (Ack, std::time::Instant);

impl std::fmt::Debug for PutMediaBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutMediaBody").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PutMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutMedia").finish_non_exhaustive()
    }
}

impl PutMedia {
    /// Opens the upload, signed as the KVS C producer signs it: `Host` without the port,
    /// `connection` and `transfer-encoding` signed, the empty payload hash.
    pub async fn start(
        endpoint: &Endpoint,
        options: &PutMediaOptions,
        now: Timestamp,
    ) -> Result<Self, DeviceError> {
        let io = endpoint.connect().await?;
        let mut headers = HeaderMap::new();
        headers.insert("host", header(&endpoint.host)?);
        headers.insert("connection", HeaderValue::from_static("keep-alive"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert(
            "user-agent",
            HeaderValue::from_static("kinescope-devices/0.1"),
        );
        headers.insert("x-amzn-stream-name", header(options.stream.as_str())?);
        headers.insert(
            "x-amzn-fragment-timecode-type",
            HeaderValue::from_static(if options.absolute {
                "ABSOLUTE"
            } else {
                "RELATIVE"
            }),
        );
        let start = options.start.as_millis();
        headers.insert(
            "x-amzn-producer-start-timestamp",
            header(&format!(
                "{}.{:03}",
                start.div_euclid(1000),
                start.rem_euclid(1000)
            ))?,
        );
        headers.insert(
            "x-amzn-fragment-acknowledgment-required",
            HeaderValue::from_static("1"),
        );
        endpoint.signer.sign(
            "POST",
            "/putMedia",
            None,
            &mut headers,
            Payload::Streaming,
            now,
        );
        let mut head = String::from("POST /putMedia HTTP/1.1\r\n");
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or_default()));
        }
        head.push_str("\r\n");
        let (reader, mut writer) = tokio::io::split(io);
        writer.write_all(head.as_bytes()).await?;
        writer.flush().await?;
        let (tx, acks) = mpsc::unbounded_channel();
        tokio::spawn(read_acks(reader, tx));
        Ok(Self {
            body: PutMediaBody { writer },
            acks,
        })
    }

    /// The body and the ACK stream apart, to send and receive at once.
    pub fn split(self) -> (PutMediaBody, AckStream) {
        (self.body, self.acks)
    }

    /// Sends one chunk of the MKV body.
    pub async fn send(&mut self, chunk: &[u8]) -> Result<(), DeviceError> {
        self.body.send_parts(&[chunk]).await
    }

    /// Sends `parts` as one HTTP chunk ([`PutMediaBody::send_parts`]).
    pub async fn send_parts(&mut self, parts: &[&[u8]]) -> Result<(), DeviceError> {
        self.body.send_parts(parts).await
    }

    /// The next ACK, or `None` when the response has ended.
    pub async fn next_ack(&mut self) -> Option<Result<ReceivedAck, DeviceError>> {
        self.acks.recv().await
    }

    /// Ends the body and returns the ACKs that follow until the response ends.
    pub async fn finish(mut self) -> Result<Vec<ReceivedAck>, DeviceError> {
        self.body.end().await?;
        let mut rest = Vec::new();
        while let Some(ack) = self.acks.recv().await {
            rest.push(ack?);
        }
        Ok(rest)
    }
}

impl PutMediaBody {
    /// Sends `parts` as one HTTP chunk, without joining them first (a block header and its
    /// payload, say): gathered writes, as many parts per system call as it takes.
    pub async fn send_parts(&mut self, parts: &[&[u8]]) -> Result<(), DeviceError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len == 0 {
            return Ok(());
        }
        let head = format!("{len:x}\r\n");
        let mut slices: Vec<IoSlice<'_>> = std::iter::once(head.as_bytes())
            .chain(parts.iter().copied())
            .chain(std::iter::once(&b"\r\n"[..]))
            .filter(|p| !p.is_empty())
            .map(IoSlice::new)
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = self.writer.write_vectored(rest).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
            }
            IoSlice::advance_slices(&mut rest, n);
        }
        self.writer.flush().await?;
        Ok(())
    }

    /// Ends the body (the last chunk); ACKs still follow.
    pub async fn end(&mut self) -> Result<(), DeviceError> {
        self.writer.write_all(b"0\r\n\r\n").await?;
        self.writer.flush().await?;
        Ok(())
    }
}

/// Reads the response: status (after any `100 Continue`), headers, then the chunked ACK lines.
async fn read_acks(
    reader: ReadHalf<Box<dyn Io>>,
    tx: mpsc::UnboundedSender<Result<ReceivedAck, DeviceError>>,
) {
    let result: Result<(), DeviceError> = async {
        let mut body = ChunkedBody::open(reader).await?;
        let mut line = Vec::new();
        while let Some(chunk) = body.next().await? {
            let at = std::time::Instant::now();
            line.extend_from_slice(&chunk);
            while let Some(end) = line.iter().position(|&b| b == b'\n') {
                let text: Vec<u8> = line.drain(..=end).collect();
                let ack =
                    Ack::parse(&String::from_utf8_lossy(&text)).map_err(DeviceError::Protocol)?;
                if tx.send(Ok((ack, at))).is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        let _ = tx.send(Err(e));
    }
}

/// A GetMedia or GetMediaForFragmentList response body (spec §4, §5.2): MKV documents, one per
/// fragment, as they arrive.
pub struct MediaStream {
    body: ChunkedBody<Box<dyn Io>>,
}

impl std::fmt::Debug for MediaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaStream").finish_non_exhaustive()
    }
}

impl MediaStream {
    /// Starts a signed GetMedia read of `stream`; `start_selector` is the StartSelector JSON
    /// object (`{"StartSelectorType":"NOW"}`, say).
    pub async fn open(
        endpoint: &Endpoint,
        stream: &StreamName,
        start_selector: &str,
        now: Timestamp,
    ) -> Result<Self, DeviceError> {
        let json = format!(r#"{{"StreamName":"{stream}","StartSelector":{start_selector}}}"#);
        Self::post(endpoint, "/getMedia", &json, now).await
    }

    /// Starts a signed GetMediaForFragmentList read of `fragments`, in that order.
    pub async fn fragment_list(
        endpoint: &Endpoint,
        stream: &StreamName,
        fragments: &[FragmentNumber],
        now: Timestamp,
    ) -> Result<Self, DeviceError> {
        let list: Vec<String> = fragments.iter().map(|f| format!(r#""{f}""#)).collect();
        let json = format!(
            r#"{{"StreamName":"{stream}","Fragments":[{}]}}"#,
            list.join(",")
        );
        Self::post(endpoint, "/getMediaForFragmentList", &json, now).await
    }

    async fn post(
        endpoint: &Endpoint,
        path: &str,
        json: &str,
        now: Timestamp,
    ) -> Result<Self, DeviceError> {
        let mut io = endpoint.connect().await?;
        io.write_all(&endpoint.signed_request(path, json, now)?)
            .await?;
        io.flush().await?;
        Ok(Self {
            body: ChunkedBody::open(io).await?,
        })
    }

    /// The next piece of the body as it arrived, or `None` when the response has ended.
    pub async fn next(&mut self) -> Result<Option<Bytes>, DeviceError> {
        self.body.next().await
    }
}

/// The most one read of a response body takes from its socket.
const READ_MAX: usize = 16 * 1024;

/// A 200 response's chunked body, read after its head (any `100 Continue` skipped).
struct ChunkedBody<R> {
    reader: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> ChunkedBody<R> {
    async fn open(mut reader: R) -> Result<Self, DeviceError> {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        loop {
            let head = read_until(&mut reader, &mut buf, b"\r\n\r\n").await?;
            let status = status_of(&String::from_utf8_lossy(&head))?;
            if status == 100 {
                continue;
            }
            if status != 200 {
                let mut body = Vec::new();
                reader.read_to_end(&mut body).await?;
                return Err(DeviceError::Status {
                    status,
                    body: String::from_utf8_lossy(&[&buf[..], &body].concat()).into_owned(),
                });
            }
            return Ok(Self { reader, buf });
        }
    }

    /// The next chunk's data, or `None` after the last chunk.
    async fn next(&mut self) -> Result<Option<Bytes>, DeviceError> {
        next_chunk(&mut self.reader, &mut self.buf).await
    }
}

/// The next chunk of a chunked body whose unread bytes start in `buf`, or `None` after the last
/// chunk (the trailer is not read: no Kinescope response has one).
async fn next_chunk<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
) -> Result<Option<Bytes>, DeviceError> {
    let size_line = read_until(reader, buf, b"\r\n").await?;
    let size = usize::from_str_radix(String::from_utf8_lossy(&size_line).trim(), 16)
        .map_err(|_| DeviceError::Protocol("bad chunk size".into()))?;
    if size == 0 {
        read_until(reader, buf, b"\r\n").await?;
        return Ok(None);
    }
    let data = read_exact(reader, buf, size + 2).await?.slice(..size);
    Ok(Some(data))
}

/// The next `n` bytes, from `buf` first, then from `reader`.
async fn read_exact<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    n: usize,
) -> Result<Bytes, DeviceError> {
    buf.reserve(n.saturating_sub(buf.len()));
    while buf.len() < n {
        // At most READ_MAX per read: a process following many streams reads each a little at
        // a time instead of draining one socket while the others wait.
        let mut limited = (&mut *buf).limit(READ_MAX);
        if reader.read_buf(&mut limited).await? == 0 {
            return Err(DeviceError::Protocol("response cut off".into()));
        }
    }
    Ok(buf.split_to(n).freeze())
}

/// A kept-alive HTTP/1.1 connection for unsigned `GET`s, as a browser's player makes them (HLS
/// and DASH resources carry their session token in the URL: players cannot sign). Requests go
/// one after another; a connection the server closed while idle is opened again.
pub struct GetConnection {
    endpoint: Endpoint,
    io: Option<Box<dyn Io>>,
    buf: BytesMut,
}

/// A response to a `GET`: its status and whole body.
#[derive(Debug, Clone)]
pub struct GetResponse {
    pub status: u16,
    pub body: Bytes,
}

impl std::fmt::Debug for GetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetConnection")
            .field("endpoint", &self.endpoint)
            .field("open", &self.io.is_some())
            .finish()
    }
}

impl GetConnection {
    /// Connects on the first request.
    pub fn new(endpoint: &Endpoint) -> Self {
        Self {
            endpoint: endpoint.clone(),
            io: None,
            buf: BytesMut::new(),
        }
    }

    /// `GET target` (a path and query). A kept-alive connection that turns out closed before
    /// any of the response arrived is replaced once.
    pub async fn get(&mut self, target: &str) -> Result<GetResponse, DeviceError> {
        let reused = self.io.is_some();
        match self.try_get(target).await {
            Err(Retry::Closed) if reused => {}
            Err(Retry::Closed) => {
                return Err(DeviceError::Protocol("connection closed".into()));
            }
            Err(Retry::Failed(e)) => return Err(e),
            Ok(r) => return Ok(r),
        }
        match self.try_get(target).await {
            Err(Retry::Closed) => Err(DeviceError::Protocol("connection closed".into())),
            Err(Retry::Failed(e)) => Err(e),
            Ok(r) => Ok(r),
        }
    }

    async fn try_get(&mut self, target: &str) -> Result<GetResponse, Retry> {
        if self.io.is_none() {
            self.io = Some(self.endpoint.connect().await?);
            self.buf.clear();
        }
        let io = self.io.as_mut().expect("connected above");
        let request = format!(
            "GET {target} HTTP/1.1\r\nhost: {}\r\nuser-agent: kinescope-devices/0.1\r\n\r\n",
            self.endpoint.host_header()
        );
        let result = async {
            if io.write_all(request.as_bytes()).await.is_err() {
                return Err(Retry::Closed);
            }
            io.flush().await.map_err(|_| Retry::Closed)?;
            if self.buf.is_empty() && io.read_buf(&mut self.buf).await? == 0 {
                return Err(Retry::Closed);
            }
            let head = read_until(io, &mut self.buf, b"\r\n\r\n").await?;
            let head = String::from_utf8_lossy(&head).into_owned();
            let status = status_of(&head)?;
            let framing = framing_of(&head)?;
            let body = match framing.length {
                _ if status == 304 || status == 204 => Bytes::new(),
                Some(n) => read_exact(io, &mut self.buf, n).await?,
                None if framing.chunked => {
                    let mut body = BytesMut::new();
                    while let Some(chunk) = next_chunk(io, &mut self.buf).await? {
                        body.extend_from_slice(&chunk);
                    }
                    body.freeze()
                }
                None => {
                    let mut rest = std::mem::take(&mut self.buf).to_vec();
                    io.read_to_end(&mut rest).await?;
                    return Ok((
                        GetResponse {
                            status,
                            body: rest.into(),
                        },
                        true,
                    ));
                }
            };
            Ok((GetResponse { status, body }, framing.close))
        }
        .await;
        match result {
            Ok((response, close)) => {
                if close {
                    self.io = None;
                }
                Ok(response)
            }
            Err(e) => {
                self.io = None;
                Err(e)
            }
        }
    }
}

/// Why a `GET` did not get its response.
enum Retry {
    /// The connection ended before any of the response arrived.
    Closed,
    Failed(DeviceError),
}

impl From<DeviceError> for Retry {
    fn from(e: DeviceError) -> Self {
        Self::Failed(e)
    }
}

impl From<std::io::Error> for Retry {
    fn from(e: std::io::Error) -> Self {
        Self::Failed(e.into())
    }
}

/// How a response's body is delimited.
#[derive(Debug, Default, PartialEq, Eq)]
struct Framing {
    length: Option<usize>,
    chunked: bool,
    /// `connection: close`: the server closes after this response.
    close: bool,
}

/// Reads `content-length`, `transfer-encoding` and `connection` from a response head.
fn framing_of(head: &str) -> Result<Framing, DeviceError> {
    let mut framing = Framing::default();
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            framing.length = Some(
                value
                    .parse()
                    .map_err(|_| DeviceError::Protocol(format!("bad content-length {value:?}")))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            framing.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            framing.close = value.eq_ignore_ascii_case("close");
        }
    }
    if framing.chunked {
        framing.length = None;
    }
    Ok(framing)
}

/// Reads up to and including `delimiter`; returns what came before it.
async fn read_until<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    delimiter: &[u8],
) -> Result<Vec<u8>, DeviceError> {
    loop {
        if let Some(i) = buf.windows(delimiter.len()).position(|w| w == delimiter) {
            let out = buf[..i].to_vec();
            buf.advance(i + delimiter.len());
            return Ok(out);
        }
        if reader.read_buf(buf).await? == 0 {
            return Err(DeviceError::Protocol("connection closed".into()));
        }
    }
}

fn status_of(head: &str) -> Result<u16, DeviceError> {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| DeviceError::Protocol(format!("bad status line in {head:?}")))
}

fn header(v: &str) -> Result<HeaderValue, DeviceError> {
    HeaderValue::from_str(v).map_err(|_| DeviceError::Protocol(format!("bad header value {v:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn framing_reads_length_chunked_and_close() {
        let f =
            framing_of("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: keep-alive").unwrap();
        assert_eq!(
            f,
            Framing {
                length: Some(12),
                chunked: false,
                close: false
            }
        );
        let f = framing_of("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close")
            .unwrap();
        assert!(f.chunked && f.close && f.length.is_none());
        assert!(framing_of("HTTP/1.1 200 OK\r\ncontent-length: x").is_err());
    }

    /// A server that answers each request on a connection with `responses` in turn, then closes
    /// it; it serves `connections` connections.
    async fn serve(
        responses: Vec<&'static str>,
        connections: usize,
    ) -> (Endpoint, tokio::task::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut requests = Vec::new();
            for _ in 0..connections {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = BytesMut::new();
                for r in &responses {
                    let Ok(head) = read_until(&mut s, &mut buf, b"\r\n\r\n").await else {
                        break;
                    };
                    requests.push(String::from_utf8(head).unwrap());
                    s.write_all(r.as_bytes()).await.unwrap();
                }
            }
            requests
        });
        let signer = Signer {
            access_key: "AKIDEXAMPLE".into(),
            secret: "secret".into(),
            region: "us-west-2".into(),
        };
        let endpoint = Endpoint::new(&format!("http://127.0.0.1:{port}"), None, signer).unwrap();
        (endpoint, task)
    }

    #[tokio::test]
    async fn get_keeps_the_connection_and_reopens_it_when_closed() {
        let (endpoint, server) = serve(
            vec![
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello",
                "HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            ],
            2,
        )
        .await;
        let mut conn = GetConnection::new(&endpoint);
        let r = conn.get("/a?x=1").await.unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"hello"[..]));
        let r = conn.get("/b").await.unwrap();
        assert_eq!((r.status, &r.body[..]), (404, &b"abcde"[..]));
        // The server closed the first connection after two answers: the third request goes
        // out again on a new one.
        let r = conn.get("/c").await.unwrap();
        assert_eq!(r.status, 200);
        drop(conn);
        let requests = server.await.unwrap();
        assert!(requests[0].starts_with("GET /a?x=1 HTTP/1.1\r\nhost: 127.0.0.1:"));
        assert!(requests[2].starts_with("GET /c HTTP/1.1"));
    }

    /// The headers of a request head, lowercased names, in order.
    fn headers_of(head: &str) -> Vec<(String, String)> {
        head.split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect()
    }

    /// The PutMedia request the official C producer sent (testdata/requests, spec §3.1), and
    /// ours for the same stream, start and time: every header both send has the same value
    /// (but the user agent and the signature, which covers it), and the same headers are signed.
    #[tokio::test]
    async fn put_media_headers_match_the_c_producers_where_they_overlap() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/requests/producer-c-1.6.4/003-putMedia.txt"
        );
        let capture = std::fs::read(path).unwrap();
        let end = capture.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let theirs = headers_of(std::str::from_utf8(&capture[..end]).unwrap());
        let (endpoint, server) = serve(vec!["HTTP/1.1 200 OK\r\n\r\n"], 1).await;
        let options = PutMediaOptions {
            stream: StreamName::parse("test-stream").unwrap(),
            absolute: true,
            start: Timestamp::from_millis(1_795_770_237_603),
        };
        let upload = PutMedia::start(
            &endpoint,
            &options,
            Timestamp::from_millis(1_795_770_237_000),
        )
        .await
        .unwrap();
        drop(upload);
        let ours = headers_of(&server.await.unwrap()[0]);
        let value = |headers: &[(String, String)], name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let mut compared = 0;
        for (name, v) in &ours {
            let Some(t) = value(&theirs, name) else {
                continue;
            };
            compared += 1;
            match name.as_str() {
                "user-agent" => {}
                "authorization" => {
                    let scope = |a: &str| a.split(", Signature=").next().unwrap().to_owned();
                    assert_eq!(scope(v), scope(&t), "credential scope and signed headers");
                }
                _ => assert_eq!(v, &t, "{name}"),
            }
        }
        assert!(compared >= 9, "{ours:?}");
    }
}
