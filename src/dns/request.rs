//! The full path for every request the fast path does not take, on UDP and
//! TCP alike: TSIG first, then by opcode and type: ordinary questions go to
//! [`answer`], zone transfers and NOTIFY are handled here. Everything reads
//! one snapshot, so a transfer is consistent even if a failover lands
//! while it is being sent.

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::answer;
use super::options::ServerOptions;
use crate::config::{allowed, needs_key};
use crate::metrics::Metrics;
use crate::snapshot::{ServedZone, Snapshot};
use crate::xfr::journal;
use crate::xfr::tsig::{self, Auth, Signer};

/// Room left for the TSIG record when a signed answer must fit in UDP.
const TSIG_ROOM: usize = 128;
/// Transfer messages are filled up to about this size (TCP allows 64 KiB).
const CHUNK: usize = 32 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The messages answering one request, and how to sign them.
pub struct Reply {
    pub messages: Vec<Message>,
    /// Set when the request carried a TSIG: every message gets one.
    pub signer: Option<Signer>,
}

/// Who asked, and over what.
pub struct Peer {
    pub ip: IpAddr,
    pub transport: Transport,
}

/// Answers a decoded request (`raw` is its wire form, for TSIG). None: send
/// nothing (responses are never answered).
pub fn handle(
    snap: &Snapshot,
    request: &Message,
    raw: &[u8],
    peer: &Peer,
    metrics: &Metrics,
    opts: &ServerOptions,
    now: u64,
) -> Option<Reply> {
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    let (signer, key) = match tsig::check(&snap.keys, request, raw, now) {
        Auth::Unsigned => (None, None),
        Auth::Valid(s) => {
            let key = s.key().clone();
            (Some(s), Some(key))
        }
        Auth::Rejected(s) => {
            return Some(Reply {
                messages: vec![error(request, ResponseCode::NotAuth)],
                signer: Some(s),
            });
        }
    };
    let key = key.as_ref();
    if opts.malformed(request) {
        // RFC 7873 §5.2.2: a COOKIE option of a bad length.
        return Some(Reply {
            messages: vec![error(request, ResponseCode::FormErr)],
            signer,
        });
    }
    let mut messages = match (request.metadata.op_code, request.queries.as_slice()) {
        (OpCode::Notify, _) => vec![notify(snap, request, peer, key, metrics)],
        (OpCode::Query, [q]) if matches!(q.query_type(), RecordType::AXFR | RecordType::IXFR) => {
            transfer(snap, request, q, peer, key, metrics)
        }
        _ => match opts.chaos(request) {
            Some(m) => vec![m],
            None => vec![answer::respond(snap, request)?],
        },
    };
    for m in &mut messages {
        opts.decorate(request, m, peer.ip, now);
    }
    Some(Reply { messages, signer })
}

fn error(request: &Message, rcode: ResponseCode) -> Message {
    let mut m = answer::base(request);
    m.metadata.response_code = rcode;
    m
}

/// The served zone whose apex is `name` exactly.
fn apex<'a>(snap: &'a Snapshot, name: &Name) -> Option<&'a ServedZone> {
    snap.zone(&name.to_lowercase())
}

/// RFC 1996: a NOTIFY for a secondary zone of ours, from a source allowed
/// to send it, wakes the zone's refresh; it is acknowledged with NOERROR.
fn notify(
    snap: &Snapshot,
    request: &Message,
    peer: &Peer,
    key: Option<&Name>,
    metrics: &Metrics,
) -> Message {
    let [q] = request.queries.as_slice() else {
        return error(request, ResponseCode::FormErr);
    };
    if q.query_type() != RecordType::SOA {
        return error(request, ResponseCode::FormErr);
    }
    let Some(zone) = apex(snap, q.name()) else {
        return error(request, ResponseCode::NotAuth);
    };
    let origin = zone.origin.to_string();
    let Some(refresh) = &zone.refresh else {
        // We are this zone's primary: nobody has news for us.
        metrics.notify(&origin, "received", "not_secondary");
        return error(request, ResponseCode::NotAuth);
    };
    if !allowed(&zone.policy.allow_notify, peer.ip, key) {
        crate::packet_log!(warn, zone = %origin, from = %peer.ip, key = ?key.map(|k| k.to_string()), "NOTIFY refused: source or key not in allow_notify");
        metrics.notify(&origin, "received", "refused");
        return error(request, ResponseCode::Refused);
    }
    crate::packet_log!(info, zone = %origin, from = %peer.ip, "NOTIFY received: refreshing");
    metrics.notify(&origin, "received", "accepted");
    refresh.notify_one();
    let mut m = answer::base(request);
    m.metadata.authoritative = true;
    m
}

/// AXFR (RFC 5936) and IXFR (RFC 1995) of one zone from this snapshot.
fn transfer(
    snap: &Snapshot,
    request: &Message,
    q: &Query,
    peer: &Peer,
    key: Option<&Name>,
    metrics: &Metrics,
) -> Vec<Message> {
    let is_axfr = q.query_type() == RecordType::AXFR;
    let Some(zone) = apex(snap, q.name()) else {
        return vec![error(request, ResponseCode::NotAuth)];
    };
    let origin = zone.origin.to_string();
    let mut kind = if is_axfr { "axfr" } else { "ixfr" };
    if !allowed(&zone.policy.allow_transfer, peer.ip, key) {
        // Missing or unaccepted key where a key would do: NOTAUTH (as the
        // TSIG RFC and Knot have it); otherwise the source is not welcome.
        let rcode = if key.is_some() || needs_key(&zone.policy.allow_transfer, peer.ip) {
            ResponseCode::NotAuth
        } else {
            ResponseCode::Refused
        };
        crate::packet_log!(warn, zone = %origin, from = %peer.ip, key = ?key.map(|k| k.to_string()), kind, %rcode, "transfer refused: source or key not in allow_transfer");
        metrics.transfer(&origin, kind, "refused", 1);
        return vec![error(request, rcode)];
    }
    if !zone.available {
        metrics.transfer(&origin, kind, "unavailable", 1);
        return vec![error(request, ResponseCode::ServFail)];
    }
    if is_axfr && peer.transport == Transport::Udp {
        // RFC 5936 §4.2: AXFR is a TCP exchange.
        metrics.transfer(&origin, kind, "refused_udp", 1);
        return vec![error(request, ResponseCode::Refused)];
    }
    let records = if is_axfr {
        journal::axfr(zone)
    } else {
        let client = request.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) if r.name.to_lowercase() == zone.origin => Some(soa.serial),
            _ => None,
        });
        let Some(client) = client else {
            // RFC 1995 §3: the client's SOA is in the authority section.
            metrics.transfer(&origin, kind, "formerr", 1);
            return vec![error(request, ResponseCode::FormErr)];
        };
        let records = journal::ixfr(zone, client);
        kind = match records.len() {
            1 => "ixfr_current",
            _ if journal::is_incremental(&records) => "ixfr",
            _ => "ixfr_full",
        };
        if peer.transport == Transport::Udp && records.len() > 1 {
            // RFC 1995 §2: over UDP, the SOA alone says "ask over TCP".
            kind = "soa_only";
            vec![zone.soa.clone()]
        } else {
            records
        }
    };
    let messages: Vec<Message> = chunks(records)
        .into_iter()
        .map(|answers| {
            let mut m = answer::base(request);
            m.metadata.authoritative = true;
            m.answers = answers;
            m
        })
        .collect();
    metrics.transfer(&origin, kind, "ok", messages.len());
    crate::packet_log!(info, zone = %origin, to = %peer.ip, kind, serial = zone.serial, messages = messages.len(), "transfer sent");
    messages
}

/// Splits a transfer into messages of about `CHUNK` bytes, by each record's
/// uncompressed size (an upper bound of what it takes on the wire).
fn chunks(records: Vec<Record>) -> Vec<Vec<Record>> {
    let mut out: Vec<Vec<Record>> = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    let mut scratch = Vec::with_capacity(512);
    for r in records {
        scratch.clear();
        let mut enc = BinEncoder::new(&mut scratch);
        let len = r.emit(&mut enc).map_or(CHUNK, |_| scratch.len());
        if size + len > CHUNK && !current.is_empty() {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        size += len;
        current.push(r);
    }
    out.push(current);
    out
}

/// Answers raw UDP bytes the fast path did not take: decode, handle, encode
/// within the requester's size limit (TC when it does not fit), sign.
pub fn respond_udp(
    snap: &Snapshot,
    query: &[u8],
    ip: IpAddr,
    metrics: &Metrics,
    opts: &ServerOptions,
) -> Option<Vec<u8>> {
    let request = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) => return answer::formerr(query),
    };
    let now = crate::state::unix_now();
    let peer = Peer {
        ip,
        transport: Transport::Udp,
    };
    let Reply {
        messages,
        mut signer,
    } = handle(snap, &request, query, &peer, metrics, opts, now)?;
    let response = messages.into_iter().next()?;
    let limit = answer::udp_limit(request.edns.as_ref().map(|e| e.max_payload()));
    let Some(signer) = signer.as_mut() else {
        let (response, bytes) = fit_udp(response, limit)?;
        if !response.metadata.truncation {
            answer::count_alias_answer(snap, &request, &response);
        }
        return Some(bytes);
    };
    // The TSIG record's size depends on its key and algorithm names (a
    // BADKEY answer repeats whatever name the request gave): when the guess
    // was short, fit the response again within what the record leaves.
    let mut room = TSIG_ROOM;
    for _ in 0..2 {
        // Encoded once; a signature covers exactly these bytes.
        let (mut fitted, bytes) = fit_udp(response.clone(), limit.saturating_sub(room))?;
        let mut attempt = signer.clone();
        let signed = tsig::append(&mut fitted, &bytes, &mut attempt, now)?;
        if signed.len() <= limit {
            if !fitted.metadata.truncation {
                answer::count_alias_answer(snap, &request, &fitted);
            }
            return Some(signed);
        }
        room = signed.len().saturating_sub(bytes.len());
    }
    // Not even a bare header and the TSIG fit: send nothing.
    None
}

/// The response as it fits in `limit` bytes: whole; else without the
/// additional section (optional data, RFC 2181 §9); else truncated to the
/// header, question and OPT with TC set; else (a question and OPT that do
/// not fit, which a query of ours cannot cause) the bare header. Never more
/// than `limit`: an answer is never larger than the requester allows.
fn fit_udp(mut response: Message, limit: usize) -> Option<(Message, Vec<u8>)> {
    let bytes = response.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some((response, bytes));
    }
    if !response.additionals.is_empty() {
        response.additionals.clear();
        let bytes = response.to_vec().ok()?;
        if bytes.len() <= limit {
            return Some((response, bytes));
        }
    }
    let mut truncated = Message::response(response.metadata.id, response.metadata.op_code);
    truncated.metadata = response.metadata;
    truncated.metadata.truncation = true;
    truncated.queries = response.queries;
    truncated.edns = response.edns;
    let bytes = truncated.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some((truncated, bytes));
    }
    truncated.queries.clear();
    truncated.edns = None;
    let bytes = truncated.to_vec().ok()?;
    (bytes.len() <= limit).then_some((truncated, bytes))
}

#[cfg(test)]
mod tests;
