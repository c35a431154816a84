//! UDP receive loops on plain OS threads: receive, answer from the snapshot,
//! send. Owning this loop (rather than a task and a channel per request) is
//! what brings the cost per query down to the kernel's own.

use std::io::ErrorKind;
use std::net::{IpAddr, UdpSocket};

use std::sync::Arc;

use socket2::Socket;

use crate::metrics::Metrics;

use super::cookie;
use super::options::ServerOptions;
use super::request;
use super::rrl::{self, Action, Limiter};
use crate::snapshot::SnapshotCell;
use crate::state::unix_now;

/// Runs `workers` threads receiving on the socket; they live as long as the process.
pub fn spawn_udp(
    socket: Socket,
    workers: usize,
    cell: SnapshotCell,
    metrics: Arc<Metrics>,
    opts: Arc<ServerOptions>,
    rrl: Option<Arc<Limiter>>,
) -> anyhow::Result<()> {
    // Best effort: a deeper queue absorbs bursts; the kernel caps it anyway.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let socket: UdpSocket = socket.into();
    for i in 0..workers {
        let socket = socket.try_clone()?;
        let cell = cell.clone();
        let metrics = metrics.clone();
        let opts = opts.clone();
        let rrl = rrl.clone();
        std::thread::Builder::new()
            .name(format!("udp-{i}"))
            .spawn(move || serve(socket, cell, metrics, opts, rrl))?;
    }
    Ok(())
}

fn serve(
    socket: UdpSocket,
    cell: SnapshotCell,
    metrics: Arc<Metrics>,
    opts: Arc<ServerOptions>,
    rrl: Option<Arc<Limiter>>,
) {
    let mut buf = vec![0u8; 65535];
    let mut out = Vec::with_capacity(4096);
    // Responses this thread dropped for their rate, for `slip`.
    let mut dropped = 0u32;
    loop {
        let (len, src) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            // ICMP errors from earlier sends surface here; they concern no one now.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Interrupted
                        | ErrorKind::ConnectionRefused
                        | ErrorKind::ConnectionReset
                ) =>
            {
                continue;
            }
            Err(e) => {
                crate::packet_log!(warn, error = %e, "udp receive failed");
                continue;
            }
        };
        if src.port() == 0 {
            continue; // cannot be answered; a classic reflection trick
        }
        let query = &buf[..len];
        {
            let snap = cell.load();
            if !snap.fast.answer(query, &mut out) {
                match request::respond_udp(&snap, query, src.ip(), &metrics, &opts) {
                    Some(bytes) => out = bytes,
                    None => continue,
                }
            }
        }
        if let Some(rrl) = &rrl
            && limited(
                rrl,
                &opts,
                query,
                src.ip(),
                &mut out,
                &mut dropped,
                &metrics,
            )
        {
            continue;
        }
        let Some(&flags) = out.get(3) else { continue };
        metrics.response(false, flags);
        if let Err(e) = socket.send_to(&out, src) {
            tracing::debug!(error = %e, %src, "udp send failed");
        }
    }
}

/// Response rate limiting: true when the response in `out` must not be sent;
/// on a slip, `out` becomes the truncated answer to send instead.
fn limited(
    rrl: &Limiter,
    opts: &ServerOptions,
    query: &[u8],
    ip: IpAddr,
    out: &mut Vec<u8>,
    dropped: &mut u32,
    metrics: &Metrics,
) -> bool {
    let now = rrl::coarse_seconds();
    let Some(class) = rrl.check(ip, out, now) else {
        return false;
    };
    // A valid server cookie proves the source address (RFC 7873 §5.3.2).
    if cookie::query_has_valid_cookie(&opts.cookie_secret, query, ip, unix_now() as u32) {
        return false;
    }
    if rrl.should_log(now) {
        tracing::info!(prefix = %rrl.prefix(ip), class = class.label(), "rate limiting responses (more may follow)");
    }
    match rrl.action(dropped) {
        Action::Drop => {
            metrics.rrl(class, false);
            true
        }
        Action::Slip => {
            metrics.rrl(class, true);
            rrl::truncate_to_question(out);
            out.is_empty()
        }
    }
}
