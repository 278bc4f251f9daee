//! Connections: accept, limit, time out. One accept loop serves plain HTTP and HTTPS.
//!
//! A connection that is not in the middle of a request costs a file descriptor and nothing
//! else, so it must not be able to hold one for long, nor crowd out the clients that sign:
//! * a request head must arrive within `header_timeout` of its first byte;
//! * a connection with no request for `idle_timeout` is closed;
//! * connections are capped in total and per source address. At a cap, the connection that has
//!   been idle longest (never one with a request in flight) is closed to make room, and counts
//!   until its descriptor is released; when every connection is busy, new ones wait in the
//!   kernel's backlog (total cap) or are turned away (per-address cap).
//!
//! The total cap is kept below the process's descriptor limit, so `accept` never fails for want
//! of descriptors; if it does anyway, the loop backs off instead of spinning.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

/// Connection limits of a listener.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one source address.
    pub max_per_ip: usize,
    /// From the first byte of a request head to its end.
    pub header_timeout: Duration,
    /// Without a request.
    pub idle_timeout: Duration,
    /// For the TLS handshake.
    pub handshake_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 1024,
            max_per_ip: 512,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// Descriptors kept free for everything that is not a client connection (databases, files,
/// the metrics listener, key loading).
pub const RESERVED_DESCRIPTORS: usize = 128;

impl ConnLimits {
    /// Keep the total below what the descriptor limit `nofile` allows.
    pub fn fit_descriptor_limit(mut self, nofile: u64) -> Self {
        let room = (nofile as usize)
            .saturating_sub(RESERVED_DESCRIPTORS)
            .max(16);
        if self.max_connections > room {
            tracing::warn!(
                configured = self.max_connections,
                allowed = room,
                nofile,
                "--max-connections lowered to fit the descriptor limit (raise LimitNOFILE)"
            );
            self.max_connections = room;
        }
        self.max_per_ip = self.max_per_ip.min(self.max_connections).max(1);
        self
    }
}

fn ms_since(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64
}

/// What the server knows about one open connection.
struct Conn {
    ip: IpAddr,
    /// Told to close (to make room); still counted until its descriptor is released.
    closing: std::sync::atomic::AtomicBool,
    /// Milliseconds since the table's epoch: last byte read, and the first byte of a request
    /// head still being read (0 when none).
    last_read: AtomicU64,
    head_started: AtomicU64,
    in_flight: AtomicUsize,
    close: tokio::sync::Notify,
}

#[derive(Default)]
struct Table {
    conns: HashMap<u64, Arc<Conn>>,
    next_id: u64,
}

/// The open connections of one listener.
pub struct Connections {
    limits: ConnLimits,
    epoch: Instant,
    table: Mutex<Table>,
    released: tokio::sync::Notify,
    refused: AtomicU64,
    evicted: AtomicU64,
}

impl Connections {
    /// A table for `limits`.
    pub fn new(limits: ConnLimits) -> Arc<Self> {
        Arc::new(Connections {
            limits,
            epoch: Instant::now(),
            table: Mutex::default(),
            released: tokio::sync::Notify::new(),
            refused: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .conns
            .len()
    }

    /// (turned away, closed to make room) since start.
    pub fn pressure(&self) -> (u64, u64) {
        (
            self.refused.load(Ordering::Relaxed),
            self.evicted.load(Ordering::Relaxed),
        )
    }

    /// Close the connection that has been idle longest (of `ip` only, when given): never one
    /// with a request in flight, nor one already closing. Returns whether one was found.
    fn evict_idle(&self, t: &Table, ip: Option<IpAddr>) -> bool {
        let victim = t
            .conns
            .values()
            .filter(|c| ip.is_none_or(|ip| c.ip == ip))
            .filter(|c| !c.closing.load(Ordering::Acquire))
            .filter(|c| c.in_flight.load(Ordering::Acquire) == 0)
            .min_by_key(|c| c.last_read.load(Ordering::Relaxed));
        match victim {
            Some(c) => {
                c.closing.store(true, Ordering::Release);
                c.close.notify_one();
                self.evicted.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Wait until there is room for one more connection. At the cap, the longest-idle
    /// connection is told to close, and room comes when its descriptor is released: a closing
    /// connection counts until then, so the descriptors in use never exceed the cap. When every
    /// connection is busy, nothing is accepted (new ones wait in the kernel's backlog).
    async fn room(&self) {
        loop {
            {
                let t = self.table.lock().unwrap_or_else(|p| p.into_inner());
                if t.conns.len() < self.limits.max_connections {
                    return;
                }
                let closing = t
                    .conns
                    .values()
                    .filter(|c| c.closing.load(Ordering::Acquire))
                    .count();
                if closing == 0 {
                    // Every connection busy: new ones wait in the backlog meanwhile.
                    self.evict_idle(&t, None);
                }
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(100), self.released.notified()).await;
        }
    }

    /// Admit a new connection from `ip` (there is room: see [`Self::room`]). At the per-address
    /// cap, that address's longest-idle connection is told to close; if all of them are busy,
    /// the newcomer is turned away.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<(u64, Arc<Conn>)> {
        let mut t = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let from_ip = t
            .conns
            .values()
            .filter(|c| c.ip == ip && !c.closing.load(Ordering::Acquire))
            .count();
        if from_ip >= self.limits.max_per_ip && !self.evict_idle(&t, Some(ip)) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let id = t.next_id;
        t.next_id += 1;
        let c = Arc::new(Conn {
            ip,
            closing: std::sync::atomic::AtomicBool::new(false),
            last_read: AtomicU64::new(ms_since(self.epoch)),
            head_started: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            close: tokio::sync::Notify::new(),
        });
        t.conns.insert(id, c.clone());
        Some((id, c))
    }

    fn release(&self, id: u64) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .conns
            .remove(&id);
        self.released.notify_waiters();
    }
}

/// The socket, noting when bytes arrive.
struct Tracked<IO> {
    io: IO,
    conn: Arc<Conn>,
    epoch: Instant,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let now = ms_since(self.epoch).max(1);
            self.conn.last_read.store(now, Ordering::Relaxed);
            if self.conn.in_flight.load(Ordering::Acquire) == 0 {
                let _ = self.conn.head_started.compare_exchange(
                    0,
                    now,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                );
            }
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Counts a request in flight for as long as it lives.
struct InFlight(Arc<Conn>);

impl InFlight {
    fn start(c: &Arc<Conn>) -> Self {
        c.in_flight.fetch_add(1, Ordering::AcqRel);
        c.head_started.store(0, Ordering::Release);
        InFlight(c.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Close the connection when its request head is late, or when it is told to make room and no
/// request is in flight (one that started meanwhile, and its response, are let through first).
async fn watchdog(conn: Arc<Conn>, epoch: Instant, limits: ConnLimits) {
    let header_ms = limits.header_timeout.as_millis() as u64;
    let mut told = false;
    loop {
        tokio::select! {
            _ = conn.close.notified(), if !told => told = true,
            _ = tokio::time::sleep(Duration::from_millis(if told { 20 } else { 250 })) => {}
        }
        if told && conn.in_flight.load(Ordering::Acquire) == 0 {
            return;
        }
        let started = conn.head_started.load(Ordering::Acquire);
        if started != 0
            && conn.in_flight.load(Ordering::Acquire) == 0
            && ms_since(epoch).saturating_sub(started) > header_ms
        {
            tracing::debug!(peer = %conn.ip, "request head not received in time; connection closed");
            return;
        }
    }
}

/// Serve `app` on `listener` (HTTPS when `tls` is set) until `shutdown` resolves; then stop
/// accepting and let requests in flight finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<crate::tls::Tls>>,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let connections = Connections::new(limits);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_pressure_log = Instant::now() - Duration::from_secs(60);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            // Reap finished connection tasks as we go.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            a = async {
                connections.room().await;
                listener.accept().await
            } => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE/ENFILE and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some((id, conn)) = connections.admit(peer.ip()) else {
            if last_pressure_log.elapsed() > Duration::from_secs(10) {
                let (refused, evicted) = connections.pressure();
                tracing::warn!(
                    open = connections.open(),
                    refused,
                    evicted,
                    "connection limit reached: connections turned away"
                );
                last_pressure_log = Instant::now();
            }
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let mut stop = stop_rx.clone();
        let connections = connections.clone();
        tasks.spawn(async move {
            serve_connection(
                tcp,
                peer,
                app,
                tls,
                conn,
                connections.epoch,
                limits,
                &mut stop,
            )
            .await;
            connections.release(id);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drain).await.is_err() {
        tracing::warn!("shutdown grace period elapsed with requests still in flight");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    tls: Option<Arc<crate::tls::Tls>>,
    conn: Arc<Conn>,
    epoch: Instant,
    limits: ConnLimits,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) {
    let tracked = Tracked {
        io: tcp,
        conn: conn.clone(),
        epoch,
    };
    match tls {
        None => run_http(tracked, peer, app, None, conn, epoch, limits, stop).await,
        Some(tls) => {
            let acceptor = tls.acceptor();
            let handshake = tokio::select! {
                r = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tracked)) => r,
                _ = conn.close.notified() => return,
            };
            let stream = match handshake {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::info!(peer = %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(peer = %peer, "TLS handshake timed out");
                    return;
                }
            };
            // The handshake's bytes are not a request head.
            conn.head_started.store(0, Ordering::Release);
            let cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| crate::tls::PeerCert(crate::tls::fingerprint(c.as_ref())));
            run_http(stream, peer, app, cert, conn, epoch, limits, stop).await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_http<IO>(
    io: IO,
    peer: SocketAddr,
    app: Router,
    cert: Option<crate::tls::PeerCert>,
    conn: Arc<Conn>,
    epoch: Instant,
    limits: ConnLimits,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc_conn = conn.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let guard = InFlight::start(&svc_conn);
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        if let Some(c) = &cert {
            req.extensions_mut().insert(c.clone());
        }
        let app = app.clone();
        async move {
            let r = tower::ServiceExt::oneshot(app, req).await?;
            // In flight until the response body has been sent (hyper drops it then), so a
            // long answer to a slow reader is never taken for an idle connection.
            Ok::<_, std::convert::Infallible>(r.map(|body| {
                use http_body_util::BodyExt;
                axum::body::Body::new(body.map_frame(move |f| {
                    let _in_flight = &guard;
                    f
                }))
            }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper's head timer runs whenever the connection waits for a request: the idle
        // timeout. The (shorter) head timeout from the first byte is the watchdog's.
        .header_read_timeout(limits.idle_timeout)
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    let http = builder.serve_connection(TokioIo::new(io), svc);
    let mut http = std::pin::pin!(http);
    let dog = watchdog(conn, epoch, limits);
    tokio::select! {
        r = http.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        }
        _ = dog => {}
        _ = stop.changed() => {
            http.as_mut().graceful_shutdown();
            let _ = http.await;
        }
    }
}
