//! The DNS front: UDP answered by our own receive loops (fast path first),
//! TCP by our own accept loop and connections (capped, with timeouts), with
//! the same semantics from [`answer`].
//! Both only read the published snapshot: one atomic load per query, no locks,
//! no awaiting anything shared.

pub mod answer;
pub mod cookie;
pub mod fast;
#[cfg(test)]
mod fuzz;
pub mod options;
pub mod request;
pub mod rrl;
mod tcp;
mod udp;

use std::net::SocketAddr;

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::snapshot::SnapshotCell;
use options::ServerOptions;
use rrl::Limiter;
pub use tcp::{TcpFront, TcpLimits};
pub use udp::spawn_udp;

/// A socket bound the way a server wants: address reuse for quick restarts,
/// IPv6 sockets v6-only so `0.0.0.0` and `[::]` can both be listed.
fn bind(addr: SocketAddr, ty: Type) -> anyhow::Result<Socket> {
    let proto = if ty == Type::DGRAM {
        Protocol::UDP
    } else {
        Protocol::TCP
    };
    let socket = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into()).with_context(|| {
        format!("cannot bind {addr} ({}); is another server using it, or does port < 1024 need privileges?", if ty == Type::DGRAM { "udp" } else { "tcp" })
    })?;
    Ok(socket)
}

/// Starts UDP and TCP on every listen address. Returns once all are bound,
/// with the TCP front to shut down gracefully.
pub async fn listen(
    addrs: &[SocketAddr],
    udp_workers: usize,
    tcp: TcpLimits,
    cell: SnapshotCell,
    metrics: Arc<Metrics>,
    opts: Arc<ServerOptions>,
    rrl: Option<Arc<Limiter>>,
) -> anyhow::Result<Arc<TcpFront>> {
    let front = TcpFront::new(tcp, cell.clone(), metrics.clone(), opts.clone());
    for &addr in addrs {
        spawn_udp(
            bind(addr, Type::DGRAM)?,
            udp_workers,
            cell.clone(),
            metrics.clone(),
            opts.clone(),
            rrl.clone(),
        )?;
        let tcp = bind(addr, Type::STREAM)?;
        tcp.listen(1024)?;
        tcp.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std::net::TcpListener::from(tcp))?;
        front.spawn_listener(listener);
        tracing::info!(%addr, "answering DNS over UDP and TCP");
    }
    Ok(front)
}
