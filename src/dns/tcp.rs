//! DNS over TCP, our own accept loop and connections: caps in total and per
//! source, an idle timeout from the start or the last answer to the next
//! whole query, a lifetime and a query cap per connection, write timeouts,
//! and an accept loop that backs off when file descriptors run out. Answers
//! come from [`request::handle`], as for UDP; a zone transfer is several
//! messages sent in order, each TSIG-signed over the previous one when the
//! request was signed.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::answer;
use super::options::ServerOptions;
use super::request::{self, Peer, Reply, Transport};
use crate::metrics::{Metrics, TcpDrop};
use crate::snapshot::SnapshotCell;
use crate::xfr::tsig;

/// The limits every connection obeys (see `[server]` in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub max_per_source: usize,
    pub idle_timeout: Duration,
    pub max_queries: u32,
    pub max_lifetime: Duration,
}

/// How long the accept loop pauses when accept() fails for want of
/// resources (EMFILE, ENFILE, ENOBUFS, ENOMEM): long enough not to spin,
/// short enough that clients barely notice once descriptors free up.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Connections told to make room but not closed yet; each holds a
/// descriptor from the reserve, so they are few.
const MAX_EVICTING: usize = 64;
/// `ConnState::idle_since` while a connection is answering.
const BUSY: u64 = u64::MAX;

/// The TCP front shared by every listener: counts, the snapshot, metrics,
/// and the shutdown signal.
pub struct TcpFront {
    limits: TcpLimits,
    cell: SnapshotCell,
    metrics: Arc<Metrics>,
    opts: Arc<ServerOptions>,
    /// Open connections in total and per source; touched only at accept
    /// and close, never while answering.
    open: Mutex<Counts>,
    stop: CancellationToken,
    tasks: TaskTracker,
    epoch: Instant,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
    /// Every open connection, for choosing one to make room.
    conns: HashMap<u64, Arc<ConnState>>,
    next_id: u64,
    /// Connections told to make room that have not closed yet.
    evicting: usize,
}

/// What the accept side sees of one connection.
struct ConnState {
    /// Milliseconds after `TcpFront::epoch` since it waits for a query
    /// (partial queries included), or `BUSY` while it answers.
    idle_since: AtomicU64,
    /// Cancelled to close it and make room for a new connection.
    evict: CancellationToken,
}

/// Holds one connection's place in the counts; gives it back when dropped.
struct Slot {
    front: Arc<TcpFront>,
    key: IpAddr,
    id: u64,
    state: Arc<ConnState>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.front.counts();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_source.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.per_source.remove(&self.key);
            }
        }
        open.conns.remove(&self.id);
        if self.state.evict.is_cancelled() {
            open.evicting = open.evicting.saturating_sub(1);
        }
        drop(open);
        self.front.metrics.tcp_open(-1);
    }
}

impl TcpFront {
    pub fn new(
        limits: TcpLimits,
        cell: SnapshotCell,
        metrics: Arc<Metrics>,
        opts: Arc<ServerOptions>,
    ) -> Arc<TcpFront> {
        Arc::new(TcpFront {
            opts,
            limits,
            cell,
            metrics,
            open: Mutex::new(Counts::default()),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            epoch: Instant::now(),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // A panic elsewhere while holding it leaves plain integers behind.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Milliseconds since `epoch`, for `ConnState::idle_since`.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(BUSY - 1)
    }

    /// A place for a new connection from `ip`, or which cap refuses it. At
    /// the total cap, the connection that has waited longest for its next
    /// query is told to close and the new one takes its place (RFC 7766
    /// §6.2.3: a busy server may close idle connections; Unbound shortens
    /// its idle timeout under load the same way). Connections answering are
    /// never chosen.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, TcpDrop> {
        let key = crate::peer::source_key(ip);
        let now = self.now_ms();
        let mut open = self.counts();
        let from_source = open.per_source.get(&key).copied().unwrap_or(0);
        if from_source >= self.limits.max_per_source {
            return Err(TcpDrop::SourceCap);
        }
        if open.total.saturating_sub(open.evicting) >= self.limits.max_connections {
            if open.evicting >= MAX_EVICTING {
                return Err(TcpDrop::TotalCap);
            }
            let victim = open
                .conns
                .values()
                .filter(|c| !c.evict.is_cancelled())
                .map(|c| (c.idle_since.load(Ordering::Relaxed), c))
                .filter(|(since, _)| *since != BUSY)
                .min_by_key(|(since, _)| *since)
                .map(|(_, c)| c.clone());
            let Some(victim) = victim else {
                return Err(TcpDrop::TotalCap);
            };
            victim.evict.cancel();
            open.evicting = open.evicting.saturating_add(1);
        }
        open.total = open.total.saturating_add(1);
        open.per_source.insert(key, from_source.saturating_add(1));
        let id = open.next_id;
        open.next_id = id.wrapping_add(1);
        let state = Arc::new(ConnState {
            idle_since: AtomicU64::new(now),
            evict: CancellationToken::new(),
        });
        open.conns.insert(id, state.clone());
        drop(open);
        self.metrics.tcp_open(1);
        Ok(Slot {
            front: self.clone(),
            key,
            id,
            state,
        })
    }

    /// Serves `listener` until [`TcpFront::shutdown`].
    pub fn spawn_listener(self: &Arc<Self>, listener: TcpListener) {
        let front = self.clone();
        self.tasks
            .spawn(async move { front.accept_loop(listener).await });
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                r = listener.accept() => r,
                () = self.stop.cancelled() => return,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    self.accept_failed(&e).await;
                    continue;
                }
            };
            match self.admit(peer.ip()) {
                Ok(slot) => self.serve(stream, peer, slot),
                Err(reason) => self.refuse(stream, peer, reason),
            }
        }
    }

    fn serve(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr, slot: Slot) {
        let front = self.clone();
        self.tasks.spawn(async move {
            let reason = front.connection(stream, peer, &slot.state).await;
            if let Some(reason) = reason {
                front.metrics.tcp_dropped(reason);
            }
            drop(slot);
        });
    }

    /// Closes a connection no cap has room for, at once.
    fn refuse(&self, stream: TcpStream, peer: SocketAddr, reason: TcpDrop) {
        self.metrics.tcp_dropped(reason);
        // RST rather than FIN: nothing lingers in TIME_WAIT.
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        drop(stream);
        crate::packet_log!(
            warn,
            %peer,
            cap = reason.label(),
            max_connections = self.limits.max_connections,
            max_per_source = self.limits.max_per_source,
            "TCP connection refused: at a connection cap"
        );
    }

    /// accept() failed: out of descriptors or memory means pause (the
    /// connection stays in the backlog until we can take it); a connection
    /// reset before we took it means nothing.
    async fn accept_failed(&self, e: &std::io::Error) {
        if matches!(
            e.kind(),
            ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
        ) {
            return;
        }
        self.metrics.tcp_accept_error();
        crate::packet_log!(warn, error = %e, backoff = ?ACCEPT_BACKOFF, "TCP accept failed; pausing");
        tokio::select! {
            () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
            () = self.stop.cancelled() => {}
        }
    }

    /// Stops accepting and reading new queries; answers being written are
    /// finished. Returns when every connection is closed.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Serves one connection until it ends; Some(reason) when we closed it
    /// for one of the reasons the metrics count.
    async fn connection(
        &self,
        mut stream: TcpStream,
        peer: SocketAddr,
        state: &ConnState,
    ) -> Option<TcpDrop> {
        let _ = stream.set_nodelay(true);
        let limits = self.limits;
        let end_of_life = Instant::now() + limits.max_lifetime;
        let mut idle_since = Instant::now();
        let mut buf = Vec::new();
        let mut served: u32 = 0;
        let reason = loop {
            if served >= limits.max_queries {
                break Some(TcpDrop::QueryCap);
            }
            let idle_end = idle_since + limits.idle_timeout;
            let (deadline, late) = if end_of_life < idle_end {
                (end_of_life, TcpDrop::Lifetime)
            } else {
                (idle_end, TcpDrop::IdleTimeout)
            };
            let read = tokio::select! {
                r = tokio::time::timeout_at(deadline, read_message(&mut stream, &mut buf)) => r,
                () = self.stop.cancelled() => break None,
                () = state.evict.cancelled() => break Some(TcpDrop::Pressure),
            };
            state.idle_since.store(BUSY, Ordering::Relaxed);
            match read {
                Err(_) => break Some(late),
                Ok(Err(_)) | Ok(Ok(false)) => break None,
                Ok(Ok(true)) => {}
            }
            served = served.saturating_add(1);
            let Some(out) = self.answer(&buf, peer.ip()) else {
                break Some(TcpDrop::Malformed);
            };
            let count = out.len();
            for (i, bytes) in out.iter().enumerate() {
                match write_message(&mut stream, bytes, limits.idle_timeout).await {
                    Ok(()) => {}
                    Err(timed_out) => {
                        if i > 0 {
                            tracing::warn!(peer = %peer.ip(), sent = i, of = count, "zone transfer cut short: the peer left or stopped reading");
                        }
                        return timed_out.then_some(TcpDrop::WriteTimeout);
                    }
                }
            }
            idle_since = Instant::now();
            state.idle_since.store(self.now_ms(), Ordering::Relaxed);
        };
        // Best effort: a FIN after the last answer. One making room goes at
        // once (dropping the stream closes it too).
        if reason != Some(TcpDrop::Pressure) {
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
        }
        reason
    }

    /// The messages answering one request, encoded (and signed); empty when
    /// it gets no answer; None when the connection should close: a response
    /// (QR=1) or something too short for a header is not answered, as over
    /// UDP.
    fn answer(&self, raw: &[u8], ip: IpAddr) -> Option<Vec<Vec<u8>>> {
        let flags = *raw.get(2)?;
        if raw.len() < 12 || flags & 0x80 != 0 {
            return None;
        }
        let request = match Message::from_vec(raw) {
            Ok(m) => m,
            // A query that does not parse: FORMERR, as over UDP.
            Err(_) => {
                let out = answer::formerr(raw)?;
                self.metrics.response(true, ResponseCode::FormErr.low());
                return Some(vec![out]);
            }
        };
        let peer = Peer {
            ip,
            transport: Transport::Tcp,
        };
        let now = crate::state::unix_now();
        let reply = {
            let snap = self.cell.load_full();
            let reply =
                request::handle(&snap, &request, raw, &peer, &self.metrics, &self.opts, now);
            if let Some(Reply { messages, .. }) = &reply
                && let [only] = messages.as_slice()
            {
                answer::count_alias_answer(&snap, &request, only);
            }
            reply
        };
        let Some(Reply {
            messages,
            mut signer,
        }) = reply
        else {
            return Some(Vec::new());
        };
        if let Some(first) = messages.first() {
            self.metrics
                .response(true, first.metadata.response_code.low());
        }
        let mut out = Vec::with_capacity(messages.len());
        for mut m in messages {
            let bytes = match m.to_vec() {
                Ok(b) if b.len() <= usize::from(u16::MAX) => b,
                // Cannot go out as one TCP message: SERVFAIL instead.
                _ => {
                    tracing::debug!(peer = %ip, "TCP answer does not fit in 65535 bytes; SERVFAIL");
                    m = answer::base(&request);
                    m.metadata.response_code = ResponseCode::ServFail;
                    m.to_vec().ok()?
                }
            };
            let bytes = match signer.as_mut() {
                None => bytes,
                Some(signer) => match tsig::append(&mut m, &bytes, signer, now) {
                    Some(b) if b.len() <= usize::from(u16::MAX) => b,
                    _ => break,
                },
            };
            out.push(bytes);
        }
        Some(out)
    }
}

/// Reads one length-prefixed message into `buf`. Ok(false): the peer
/// closed (or sent a zero length) before a whole message. Memory grows
/// with the bytes that actually arrive, never ahead of them.
async fn read_message(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut len = [0u8; 2];
    match stream.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let len = u16::from_be_bytes(len);
    if len == 0 {
        return Ok(false);
    }
    buf.clear();
    let got = (&mut *stream).take(u64::from(len)).read_to_end(buf).await?;
    Ok(got == usize::from(len))
}

/// Writes one message with its length prefix within `timeout`. Err(true):
/// timed out; Err(false): the peer is gone.
async fn write_message(
    stream: &mut TcpStream,
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), bool> {
    let Ok(len) = u16::try_from(bytes.len()) else {
        return Err(false);
    };
    let mut framed = Vec::with_capacity(bytes.len().saturating_add(2));
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    match tokio::time::timeout(timeout, stream.write_all(&framed)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "tcp send failed");
            Err(false)
        }
        Err(_) => Err(true),
    }
}
