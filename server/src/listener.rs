//! The listener: accepts TCP connections, runs TLS on them when configured, and serves each with
//! hyper (HTTP/1.1, or HTTP/2 by prior knowledge or by ALPN when enabled). This is where hostile
//! connections are bounded (design/0010):
//! - a new connection must finish its TLS handshake and its first request's headers within the
//!   request timeout of its first byte (or of its accept, if it sends nothing);
//! - a request's headers must arrive within the request timeout of their first byte;
//! - a kept-alive connection waits at most the keep-alive timeout for its next request;
//! - at most `max_connections` are open: at the cap, the connection that has waited longest
//!   without a request in progress is closed to admit the new one, so idle or trickling peers
//!   can never lock out real clients.
//!
//! None of these cut a request in progress: PutMedia and GetMedia keep their own, longer limits.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::Service;

/// What the listener enforces; README "Limits" documents each.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub max_connections: usize,
    /// For the TLS handshake and a request's headers.
    pub request_timeout: Duration,
    /// For a kept-alive connection's next request.
    pub keepalive_timeout: Duration,
}

/// The default connection cap: three quarters of the file limit, leaving the rest for the
/// catalog, fragment files and the store's reads.
pub fn default_max_connections(file_limit: u64) -> usize {
    usize::try_from(file_limit / 4 * 3)
        .unwrap_or(usize::MAX)
        .max(16)
}

/// Pending connections the kernel queues for accept (clamped to `net.core.somaxconn`): the
/// default of 128 drops SYNs in a burst of connects, and each dropped one costs its client a
/// second.
const BACKLOG: u32 = 4096;

/// Binds the listening socket.
pub fn bind(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `app` on `listener` until `shutdown` turns true, then stops accepting, lets requests
/// in progress finish for up to `grace`, and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    config: ListenerConfig,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let shared = Arc::new(Shared {
        app,
        config,
        builder: builder(),
        shutdown: shutdown.clone(),
        open: AtomicUsize::new(0),
        all_closed: Notify::new(),
        waiting: Mutex::new(VecDeque::new()),
    });
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of file descriptors (or another transient error): back off instead of
                // spinning; connections closing will make room.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if shared.open.load(Ordering::Relaxed) >= shared.config.max_connections
            && !shared.evict_one()
        {
            metrics::counter!("kinescope_connections_closed_total", "reason" => "refused_at_cap")
                .increment(1);
            continue;
        }
        // TCP_NODELAY: ACK lines and small GetMedia writes go out at once, not after the
        // peer's delayed ACK (Nagle's algorithm held some PERSISTED ACKs back by 40 ms).
        let _ = tcp.set_nodelay(true);
        let conn = Arc::new(Conn::new());
        shared.track(&conn);
        let open = shared.open.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!("kinescope_connections_open").set(open as f64);
        tokio::spawn(connection(shared.clone(), conn, tcp, tls.clone()));
    }
    drop(listener);
    let drained = async {
        while shared.open.load(Ordering::Relaxed) > 0 {
            shared.all_closed.notified().await;
        }
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            open = shared.open.load(Ordering::Relaxed),
            "grace period over; closing the remaining connections"
        );
    }
}

/// What every connection task shares.
struct Shared {
    app: Router,
    config: ListenerConfig,
    builder: auto::Builder<TokioExecutor>,
    shutdown: watch::Receiver<bool>,
    open: AtomicUsize,
    all_closed: Notify,
    /// Connections in accept order, for eviction at the cap (dead entries are skipped).
    waiting: Mutex<VecDeque<Weak<Conn>>>,
}

impl Shared {
    fn track(&self, conn: &Arc<Conn>) {
        let mut waiting = self.waiting.lock().expect("not poisoned");
        if waiting.len() > 2 * self.open.load(Ordering::Relaxed) + 64 {
            waiting.retain(|w| w.strong_count() > 0);
        }
        waiting.push_back(Arc::downgrade(conn));
    }

    /// Asks the longest-waiting connection without a request in progress to close; false when
    /// every connection is busy.
    fn evict_one(&self) -> bool {
        let mut waiting = self.waiting.lock().expect("not poisoned");
        for _ in 0..waiting.len() {
            let Some(weak) = waiting.pop_front() else {
                break;
            };
            let Some(conn) = weak.upgrade() else {
                continue;
            };
            if conn.is_waiting() && !conn.evicted.swap(true, Ordering::Relaxed) {
                conn.wake.notify_one();
                return true;
            }
            waiting.push_back(weak);
        }
        false
    }
}

/// The timing state of one connection.
#[derive(Debug)]
struct Conn {
    phase: Mutex<Phase>,
    /// Woken when the deadline may have moved earlier, or on eviction.
    wake: Notify,
    evicted: AtomicBool,
}

#[derive(Debug)]
struct Phase {
    /// Requests being handled, including their response bodies.
    in_flight: usize,
    /// Requests started on this connection.
    served: u64,
    /// When the connection last became idle (accept, or the end of its last response).
    idle_since: Instant,
    /// First byte of the next request (or of the TLS handshake) while idle.
    head_started: Option<Instant>,
}

/// Why a connection was closed by the listener.
#[derive(Debug, Clone, Copy)]
enum Expiry {
    /// Headers (or the TLS handshake) did not arrive in time.
    Request,
    /// A kept-alive connection sent no next request in time.
    KeepAlive,
}

impl Conn {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase {
                in_flight: 0,
                served: 0,
                idle_since: Instant::now(),
                head_started: None,
            }),
            wake: Notify::new(),
            evicted: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().expect("not poisoned")
    }

    fn is_waiting(&self) -> bool {
        self.lock().in_flight == 0
    }

    /// When the connection is to be closed if nothing changes, and why; `None` while a request
    /// is in progress.
    fn deadline(&self, config: &ListenerConfig) -> Option<(Instant, Expiry)> {
        let p = self.lock();
        match (p.in_flight, p.head_started, p.served) {
            (1.., _, _) => None,
            (0, Some(t), _) => Some((t + config.request_timeout, Expiry::Request)),
            (0, None, 0) => Some((p.idle_since + config.request_timeout, Expiry::Request)),
            (0, None, _) => Some((p.idle_since + config.keepalive_timeout, Expiry::KeepAlive)),
        }
    }

    fn on_read(&self) {
        let mut p = self.lock();
        if p.in_flight == 0 && p.head_started.is_none() {
            p.head_started = Some(Instant::now());
            drop(p);
            self.wake.notify_one();
        }
    }

    fn begin_request(&self) {
        let mut p = self.lock();
        p.in_flight += 1;
        p.served += 1;
        p.head_started = None;
    }

    fn end_request(&self) {
        let mut p = self.lock();
        p.in_flight -= 1;
        if p.in_flight == 0 {
            p.idle_since = Instant::now();
            drop(p);
            self.wake.notify_one();
        }
    }
}

/// Counts a request as in progress until its response body is dropped (sent or abandoned).
struct InFlight(Arc<Conn>);

impl InFlight {
    fn new(conn: Arc<Conn>) -> Self {
        conn.begin_request();
        Self(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end_request();
    }
}

fn builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The listener's own deadlines replace hyper's header timeout, which also ends idle
    // kept-alive connections after the same (short) time.
    builder.http1().header_read_timeout(None);
    builder
}

async fn connection(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
) {
    let io = Tracked {
        inner: tcp,
        conn: conn.clone(),
    };
    let reason = match tls {
        None => serve_io(&shared, &conn, io).await,
        Some(acceptor) => {
            let handshake = acceptor.accept(io);
            tokio::pin!(handshake);
            let outcome = loop {
                let deadline = conn.deadline(&shared.config).map(|(t, _)| t);
                tokio::select! {
                    r = &mut handshake => break Some(r),
                    _ = sleep_until(deadline) => break None,
                    _ = conn.wake.notified() => {
                        if conn.evicted.load(Ordering::Relaxed) {
                            break None;
                        }
                    }
                }
            };
            match outcome {
                Some(Ok(stream)) => serve_io(&shared, &conn, stream).await,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    "tls_failed"
                }
                None if conn.evicted.load(Ordering::Relaxed) => "evicted",
                None => "handshake_timeout",
            }
        }
    };
    metrics::counter!("kinescope_connections_closed_total", "reason" => reason).increment(1);
    let open = shared.open.fetch_sub(1, Ordering::Relaxed) - 1;
    metrics::gauge!("kinescope_connections_open").set(open as f64);
    if open == 0 {
        shared.all_closed.notify_waiters();
    }
}

/// Serves HTTP on one connection until it ends, expires or is evicted; returns why it closed.
async fn serve_io<I>(shared: &Shared, conn: &Arc<Conn>, io: I) -> &'static str
where
    I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let service = {
        let (app, conn) = (shared.app.clone(), conn.clone());
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let guard = InFlight::new(conn.clone());
            let mut app = app.clone();
            async move {
                let resp = app
                    .call(req.map(Body::new))
                    .await
                    .unwrap_or_else(|e: Infallible| match e {});
                Ok::<_, Infallible>(resp.map(move |b| {
                    Body::new(b.map_frame(move |f| {
                        let _ = &guard;
                        f
                    }))
                }))
            }
        })
    };
    let serving = shared
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(serving);
    let mut shutdown = shared.shutdown.clone();
    let mut draining = false;
    loop {
        let deadline = conn.deadline(&shared.config);
        tokio::select! {
            r = serving.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return "closed";
            }
            _ = sleep_until(deadline.map(|(t, _)| t)) => {
                // Still expired now (a request may have started meanwhile)?
                match conn.deadline(&shared.config) {
                    Some((t, Expiry::Request)) if t <= Instant::now() => return "request_timeout",
                    Some((t, Expiry::KeepAlive)) if t <= Instant::now() => return "keepalive_timeout",
                    _ => {}
                }
            }
            _ = conn.wake.notified() => {}
            _ = shutdown.wait_for(|s| *s), if !draining => {
                draining = true;
                serving.as_mut().graceful_shutdown();
            }
        }
        if conn.evicted.load(Ordering::Relaxed) && conn.is_waiting() {
            return "evicted";
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// A socket that tells its connection when bytes arrive while no request is in progress: the
/// start of the next request's headers (or of the TLS handshake).
struct Tracked {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.conn.on_read();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
