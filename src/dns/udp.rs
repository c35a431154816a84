//! UDP receive loops on plain OS threads: receive, answer from the snapshot,
//! send. Owning this loop (rather than a task and a channel per request) is
//! what brings the cost per query down to the kernel's own.

use std::io::ErrorKind;
use std::net::UdpSocket;

use std::sync::Arc;

use socket2::Socket;

use crate::metrics::Metrics;

use super::request;
use crate::snapshot::SnapshotCell;

/// Runs `workers` threads receiving on the socket; they live as long as the process.
pub fn spawn_udp(
    socket: Socket,
    workers: usize,
    cell: SnapshotCell,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    // Best effort: a deeper queue absorbs bursts; the kernel caps it anyway.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let socket: UdpSocket = socket.into();
    for i in 0..workers {
        let socket = socket.try_clone()?;
        let cell = cell.clone();
        let metrics = metrics.clone();
        std::thread::Builder::new()
            .name(format!("udp-{i}"))
            .spawn(move || serve(socket, cell, metrics))?;
    }
    Ok(())
}

fn serve(socket: UdpSocket, cell: SnapshotCell, metrics: Arc<Metrics>) {
    let mut buf = vec![0u8; 65535];
    let mut out = Vec::with_capacity(4096);
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
                match request::respond_udp(&snap, query, src.ip(), &metrics) {
                    Some(bytes) => out = bytes,
                    None => continue,
                }
            }
        }
        metrics.response(false, out[3]);
        if let Err(e) = socket.send_to(&out, src) {
            tracing::debug!(error = %e, %src, "udp send failed");
        }
    }
}
