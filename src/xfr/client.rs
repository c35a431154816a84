//! The asking side of replication: SOA queries, AXFR and NOTIFY sent to
//! other servers over plain sockets, TSIG-signed when a key is configured
//! (and every signed answer verified).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigVerifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};

use crate::config::{QuerySource, Remote};
use crate::xfr::tsig::Keyring;

/// A UDP exchange gives up after this long.
pub const UDP_TIMEOUT: Duration = Duration::from_secs(2);
/// A whole transfer must finish within this.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes one transfer may bring (as much as a zone file may hold): a
/// primary streaming records without end would otherwise fill memory
/// within the timeout.
pub const MAX_TRANSFER_BYTES: usize = 64 * 1024 * 1024;

/// A request ready to send, and how to check its answers.
struct Outgoing {
    id: u16,
    bytes: Vec<u8>,
    verifier: Option<TSigVerifier>,
}

fn prepare(mut message: Message, remote: &Remote, keys: &Keyring) -> anyhow::Result<Outgoing> {
    message.metadata.id = rand::random();
    let mut verifier = None;
    if let Some(key) = &remote.key {
        let signer = keys
            .get(key)
            .with_context(|| format!("TSIG key {key} is not configured"))?;
        let (sig, v) = signer.sign_message(&message, crate::state::unix_now())?;
        message.set_signature(sig);
        verifier = v;
    }
    Ok(Outgoing {
        id: message.metadata.id,
        bytes: message.to_vec()?,
        verifier,
    })
}

/// Decodes an answer to `out`, verifying its TSIG when the request had one.
fn accept(out: &mut Outgoing, bytes: &[u8], remote: &Remote) -> anyhow::Result<Option<Message>> {
    let message = match &mut out.verifier {
        Some(v) => v
            .verify(bytes)
            .map(|r| r.into_message())
            .with_context(|| format!("answer from {} fails TSIG verification", remote.addr))?,
        None => Message::from_vec(bytes)?,
    };
    if message.metadata.id != out.id || message.metadata.message_type != MessageType::Response {
        return Ok(None); // a stray datagram
    }
    Ok(Some(message))
}

/// Where to send to `remote` from: its `query_source`, else any address
/// of its family; the port is the kernel's choice.
fn local(remote: &Remote) -> SocketAddr {
    let ip = remote.source.unwrap_or(if remote.addr.is_ipv6() {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    });
    SocketAddr::new(ip, 0)
}

/// Whether every `query_source` address is one of this host's: checked
/// before a config is used, so a typo is refused at start or reload, not
/// found later on each NOTIFY.
pub fn check_sources(sources: &QuerySource) -> anyhow::Result<()> {
    for ip in sources.addresses() {
        std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).with_context(|| {
            format!("query_source {ip} cannot be bound: is it an address of this host?")
        })?;
    }
    Ok(())
}

fn bind_failed(remote: &Remote) -> String {
    match remote.source {
        Some(ip) => format!(
            "cannot send from query_source {ip} to {}: is it an address of this host?",
            remote.addr
        ),
        None => format!("cannot open a socket to {}", remote.addr),
    }
}

fn question(origin: &Name, rtype: RecordType, op: OpCode) -> Message {
    let mut m = Message::query();
    m.metadata.op_code = op;
    let mut q = Query::query(origin.clone(), rtype);
    q.set_query_class(DNSClass::IN);
    m.add_query(q);
    m
}

/// One UDP request/answer with `remote`, bounded by `UDP_TIMEOUT`.
async fn udp_exchange(
    message: Message,
    remote: &Remote,
    keys: &Keyring,
) -> anyhow::Result<Message> {
    let mut out = prepare(message, remote, keys)?;
    let socket = UdpSocket::bind(local(remote))
        .await
        .with_context(|| bind_failed(remote))?;
    socket.connect(remote.addr).await?;
    socket.send(&out.bytes).await?;
    let mut buf = vec![0u8; 65535];
    tokio::time::timeout(UDP_TIMEOUT, async {
        loop {
            let len = socket.recv(&mut buf).await?;
            if let Some(m) = accept(&mut out, &buf[..len], remote)? {
                return Ok(m);
            }
        }
    })
    .await
    .with_context(|| format!("no answer from {} within {UDP_TIMEOUT:?}", remote.addr))?
}

/// The zone's serial at `remote`.
pub async fn soa_serial(origin: &Name, remote: &Remote, keys: &Keyring) -> anyhow::Result<u32> {
    let answer = udp_exchange(
        question(origin, RecordType::SOA, OpCode::Query),
        remote,
        keys,
    )
    .await?;
    let rcode = answer.metadata.response_code;
    if rcode != ResponseCode::NoError {
        bail!("{} answers {rcode} for the SOA of {origin}", remote.addr);
    }
    answer
        .answers
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) if &r.name == origin => Some(soa.serial),
            _ => None,
        })
        .with_context(|| format!("{} has no SOA for {origin}", remote.addr))
}

/// How a NOTIFY went when it was not acknowledged.
#[derive(Debug)]
pub enum NotifyError {
    /// The peer answered, with this error code (REFUSED, NOTAUTH, …):
    /// sending again will not change its mind.
    Answered(ResponseCode),
    /// No usable answer (timeout, network, a reply that failed checks).
    Unanswered(anyhow::Error),
}

/// Sends NOTIFY for `soa`'s zone; Ok once `remote` acknowledges it.
pub async fn notify(soa: &Record, remote: &Remote, keys: &Keyring) -> Result<(), NotifyError> {
    let mut m = question(&soa.name, RecordType::SOA, OpCode::Notify);
    m.metadata.authoritative = true;
    m.answers.push(soa.clone());
    let answer = udp_exchange(m, remote, keys)
        .await
        .map_err(NotifyError::Unanswered)?;
    match answer.metadata.response_code {
        ResponseCode::NoError => Ok(()),
        rcode => Err(NotifyError::Answered(rcode)),
    }
}

/// A zone transfer over TCP: AXFR, or IXFR from `ours` (our SOA record)
/// when given. Returns the answer's records in order, SOAs included: the
/// whole zone between two SOAs, a chain of differences (RFC 1995), or the
/// SOA alone when we are current.
pub async fn transfer(
    origin: &Name,
    remote: &Remote,
    keys: &Keyring,
    ours: Option<&Record>,
) -> anyhow::Result<Vec<Record>> {
    let rtype = if ours.is_some() {
        RecordType::IXFR
    } else {
        RecordType::AXFR
    };
    let mut request = question(origin, rtype, OpCode::Query);
    request.authorities.extend(ours.cloned());
    let mut out = prepare(request, remote, keys)?;
    tokio::time::timeout(TRANSFER_TIMEOUT, async {
        let socket = if remote.addr.is_ipv6() {
            TcpSocket::new_v6()?
        } else {
            TcpSocket::new_v4()?
        };
        if remote.source.is_some() {
            socket.bind(local(remote)).with_context(|| bind_failed(remote))?;
        }
        let mut stream = socket
            .connect(remote.addr)
            .await
            .with_context(|| format!("cannot connect to {}", remote.addr))?;
        let len = u16::try_from(out.bytes.len())?;
        stream.write_all(&len.to_be_bytes()).await?;
        stream.write_all(&out.bytes).await?;
        let mut end = End::default();
        let mut records: Vec<Record> = Vec::new();
        let mut received = 0usize;
        loop {
            let len = stream
                .read_u16()
                .await
                .context("the transfer ended early")?;
            received = received.saturating_add(2 + usize::from(len));
            if received > MAX_TRANSFER_BYTES {
                bail!(
                    "{} sent more than {} MiB for {origin} without ending the transfer; stopped reading",
                    remote.addr,
                    MAX_TRANSFER_BYTES >> 20
                );
            }
            let mut buf = vec![0u8; usize::from(len)];
            stream.read_exact(&mut buf).await?;
            let Some(m) = accept(&mut out, &buf, remote)? else {
                bail!("{} sent a message that is not our answer", remote.addr);
            };
            let rcode = m.metadata.response_code;
            if rcode != ResponseCode::NoError {
                bail!("{} refuses the transfer of {origin}: {rcode}", remote.addr);
            }
            let first_message = records.is_empty();
            for r in m.answers {
                if records.is_empty() && r.record_type() != RecordType::SOA {
                    bail!("{}'s transfer does not start with the SOA", remote.addr);
                }
                let done = end.saw(&r, records.len());
                records.push(r);
                if done {
                    return Ok(records);
                }
            }
            if first_message && records.len() == 1 && rtype == RecordType::IXFR {
                return Ok(records); // the SOA alone: we are current
            }
        }
    })
    .await
    .with_context(|| {
        format!(
            "transfer from {} took over {TRANSFER_TIMEOUT:?}",
            remote.addr
        )
    })?
}

/// Where a transfer ends: the final SOA (the first record's) comes back a
/// second time in the AXFR form, a third time in the IXFR form (it also
/// opens the last difference's additions).
#[derive(Default)]
struct End {
    serial: Option<u32>,
    seen: usize,
    incremental: bool,
}

impl End {
    /// Counts record number `at`; true when it ends the transfer.
    fn saw(&mut self, r: &Record, at: usize) -> bool {
        let RData::SOA(soa) = &r.data else {
            return false;
        };
        let serial = *self.serial.get_or_insert(soa.serial);
        if at == 1 && soa.serial != serial {
            self.incremental = true;
        }
        if soa.serial == serial {
            self.seen += 1;
        }
        self.seen == if self.incremental { 3 } else { 2 }
    }
}
