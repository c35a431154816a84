//! The UDP fast path: ordinary queries (one IN question, optional plain
//! EDNS(0) OPT) are answered by copying a response pre-built from
//! [`answer::respond`] and patching ID, flags, the question's letter case and
//! the DO bit. No decoding into objects, no allocation beyond the reused
//! output buffer. Anything unusual returns `false` and takes the full path.

use std::collections::HashMap;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, RecordType};
use prometheus_client::metrics::counter::Counter;

use super::answer::{self, UDP_PAYLOAD, is_meta, udp_limit};
use crate::snapshot::{BuildError, ServedZone, Snapshot};

const HEADER: usize = 12;
/// An OPT RR with no options: root owner, type, class, TTL, RDLENGTH.
const OPT_LEN: usize = 11;
/// A query type no node holds: its answer is the generic NODATA.
const PROBE_TYPE: u16 = 65400;
const TXT: u16 = 16;
/// EDNS options whose presence asks for an option in the answer.
const NSID: u16 = 3;
const COOKIE: u16 = 10;
const CLIENT_SUBNET: u16 = 8;

/// A response built for one question, without and with an OPT record.
#[derive(Debug, Clone)]
struct Template {
    plain: Box<[u8]>,
    edns: Box<[u8]>,
}

#[derive(Debug, Clone)]
enum Entry {
    /// CNAMEs, zone cuts, glue below cuts: always the full path.
    Slow,
    Ready {
        by_type: Vec<(u16, Template)>,
        other: Template,
        /// For alias names: TXT answers counted here, with one atomic add.
        txt_counter: Option<Counter>,
    },
}

/// The negative answer of one zone, for names that do not exist.
#[derive(Debug, Clone)]
struct NxDomain {
    apex_wire_len: usize,
    /// The SOA RR after its owner name (type, class, TTL, RDATA).
    soa_tail: Box<[u8]>,
}

#[derive(Default)]
pub struct FastIndex {
    /// Lower-case wire-format owner → entry, for names that exist.
    names: HashMap<Box<[u8]>, Entry>,
    /// Lower-case wire-format apex → that zone's NXDOMAIN parts.
    apexes: HashMap<Box<[u8]>, NxDomain>,
}

fn wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    out
}

/// What the full path answers for a plain query, rendered once; an answer
/// that cannot be encoded is an error naming the zone, owner and type.
fn render(
    snap: &Snapshot,
    zone: &ServedZone,
    name: &Name,
    qtype: u16,
    edns: bool,
) -> Result<Box<[u8]>, BuildError> {
    let mut q = Message::new(0, MessageType::Query, OpCode::Query);
    let mut query = Query::query(name.clone(), RecordType::from(qtype));
    query.set_query_class(DNSClass::IN);
    q.add_query(query);
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(UDP_PAYLOAD);
        q.set_edns(e);
    }
    let error = |reason: String| BuildError {
        zone: zone.origin.to_string(),
        owner: name.to_string(),
        rtype: RecordType::from(qtype),
        reason,
    };
    let response =
        answer::respond(snap, &q).ok_or_else(|| error("the query got no response".into()))?;
    let bytes = response.to_vec().map_err(|e| error(e.to_string()))?;
    Ok(bytes.into_boxed_slice())
}

fn template(
    snap: &Snapshot,
    zone: &ServedZone,
    name: &Name,
    qtype: u16,
) -> Result<Template, BuildError> {
    Ok(Template {
        plain: render(snap, zone, name, qtype, false)?,
        edns: render(snap, zone, name, qtype, true)?,
    })
}

impl FastIndex {
    /// Builds templates for every name of every zone of `snap`, rendering
    /// each with the full path (which never consults the index). An answer
    /// that cannot be encoded is an error, never a panic.
    pub fn build(snap: &Snapshot) -> Result<FastIndex, BuildError> {
        let mut index = FastIndex::default();
        for zone in &snap.zones {
            if !zone.available {
                // Everything in it goes to the full path (SERVFAIL), and the
                // NXDOMAIN walk stops here rather than reach a parent zone.
                index
                    .names
                    .insert(wire(&zone.origin).into_boxed_slice(), Entry::Slow);
                continue;
            }
            index.apexes.insert(
                wire(&zone.origin).into_boxed_slice(),
                NxDomain {
                    apex_wire_len: wire(&zone.origin).len(),
                    soa_tail: soa_tail(zone),
                },
            );
            for (name, node) in &zone.nodes {
                let name: Name = name.into();
                let key = wire(&name).into_boxed_slice();
                // A name occluded by a deeper served zone belongs to that zone.
                if index.names.contains_key(&key)
                    || snap.zone_for(&name).map(|z| &z.origin) != Some(&zone.origin)
                {
                    continue;
                }
                let slow = node.delegation
                    || zone.cut_above(&name).is_some()
                    || node.rrset(RecordType::CNAME).is_some();
                let entry = if slow {
                    Entry::Slow
                } else {
                    let mut types: Vec<u16> =
                        node.rrsets.iter().map(|(t, _)| u16::from(*t)).collect();
                    if node.servfail {
                        types.push(u16::from(RecordType::TXT));
                    }
                    let by_type = types
                        .into_iter()
                        .map(|t| Ok((t, template(snap, zone, &name, t)?)))
                        .collect::<Result<_, BuildError>>()?;
                    Entry::Ready {
                        by_type,
                        other: template(snap, zone, &name, PROBE_TYPE)?,
                        txt_counter: snap.answer_counters.get(&LowerName::new(&name)).cloned(),
                    }
                };
                index.names.insert(key, entry);
            }
        }
        Ok(index)
    }

    /// Writes the response to `query` into `out` and returns true, or returns
    /// false when the query needs the full path.
    pub fn answer(&self, query: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(q) = parse(query) else { return false };
        let name = &q.lower[..q.name_len];
        let limit = udp_limit(q.edns_payload);
        let template = match self.names.get(name) {
            Some(Entry::Ready {
                by_type,
                other,
                txt_counter,
            }) => {
                if q.qtype == TXT
                    && let Some(c) = txt_counter
                {
                    c.inc();
                }
                by_type
                    .iter()
                    .find(|(t, _)| *t == q.qtype)
                    .map_or(other, |(_, t)| t)
            }
            Some(Entry::Slow) => return false,
            None => return self.nxdomain(query, &q, limit, out),
        };
        let bytes = if q.edns_payload.is_some() {
            &template.edns
        } else {
            &template.plain
        };
        if bytes.len() > limit {
            return false;
        }
        out.clear();
        out.extend_from_slice(bytes);
        patch_header(out, query);
        let question = HEADER..HEADER + q.name_len + 4;
        out[question.clone()].copy_from_slice(&query[question]);
        if q.dnssec_ok {
            let at = out.len() - OPT_LEN + 7;
            out[at] |= 0x80;
        }
        true
    }

    /// A name that does not exist: find its zone by walking up the labels.
    fn nxdomain(&self, query: &[u8], q: &Parsed, limit: usize, out: &mut Vec<u8>) -> bool {
        let name = &q.lower[..q.name_len];
        let mut at = 0;
        let zone = loop {
            let len = name[at] as usize;
            if len == 0 {
                return false; // not ours: REFUSED on the full path
            }
            at += 1 + len;
            let suffix = &name[at..];
            if let Some(zone) = self.apexes.get(suffix) {
                break zone;
            }
            if matches!(self.names.get(suffix), Some(Entry::Slow)) {
                return false; // below a zone cut
            }
        };
        let edns = q.edns_payload.is_some();
        let total =
            HEADER + q.name_len + 4 + 2 + zone.soa_tail.len() + if edns { OPT_LEN } else { 0 };
        if total > limit {
            return false;
        }
        out.clear();
        out.extend_from_slice(&query[..HEADER]);
        out[2] = 0x80 | 0x04 | (query[2] & 0x01); // QR, AA, RD
        out[3] = (query[3] & 0x10) | 3; // CD, NXDOMAIN
        out[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 1, 0, u8::from(edns)]);
        out.extend_from_slice(&query[HEADER..HEADER + q.name_len + 4]);
        let pointer = 0xC000 | (HEADER + q.name_len - zone.apex_wire_len) as u16;
        out.extend_from_slice(&pointer.to_be_bytes());
        out.extend_from_slice(&zone.soa_tail);
        if edns {
            let [hi, lo] = UDP_PAYLOAD.to_be_bytes();
            let flags = if q.dnssec_ok { 0x80 } else { 0 };
            out.extend_from_slice(&[0, 0, 41, hi, lo, 0, 0, flags, 0, 0, 0]);
        }
        true
    }
}

/// Copies ID, RD and CD from the query into a template's header.
fn patch_header(out: &mut [u8], query: &[u8]) {
    out[0..2].copy_from_slice(&query[0..2]);
    out[2] = (out[2] & !0x01) | (query[2] & 0x01);
    out[3] = (out[3] & !0x10) | (query[3] & 0x10);
}

fn soa_tail(zone: &ServedZone) -> Box<[u8]> {
    let RData::SOA(soa) = &zone.soa.data else {
        unreachable!("zone SOA record holds SOA data")
    };
    let mut rdata = wire(&soa.mname);
    rdata.extend(wire(&soa.rname));
    rdata.extend(soa.serial.to_be_bytes());
    rdata.extend(soa.refresh.to_be_bytes());
    rdata.extend(soa.retry.to_be_bytes());
    rdata.extend(soa.expire.to_be_bytes());
    rdata.extend(soa.minimum.to_be_bytes());
    let mut tail = Vec::with_capacity(10 + rdata.len());
    tail.extend(6u16.to_be_bytes());
    tail.extend(1u16.to_be_bytes());
    tail.extend(zone.negative_ttl.to_be_bytes());
    tail.extend((rdata.len() as u16).to_be_bytes());
    tail.extend(rdata);
    tail.into_boxed_slice()
}

/// The parts of a plain query the fast path needs.
struct Parsed {
    lower: [u8; 255],
    name_len: usize,
    qtype: u16,
    edns_payload: Option<u16>,
    dnssec_ok: bool,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Accepts only the plain shape; None sends the query to the full path,
/// which decodes everything and applies every rule.
fn parse(q: &[u8]) -> Option<Parsed> {
    if q.len() < HEADER + 5 || q[2] & 0xFA != 0 || q[3] & 0x0F != 0 {
        return None; // QR, an opcode, TC, or an RCODE set in a query
    }
    if u16_at(q, 4) != 1 || u16_at(q, 6) != 0 || u16_at(q, 8) != 0 || u16_at(q, 10) > 1 {
        return None;
    }
    let mut lower = [0u8; 255];
    let mut at = HEADER;
    loop {
        let len = *q.get(at)? as usize;
        if len > 63 || at - HEADER + 1 + len > 255 {
            return None; // compression pointer or oversized name
        }
        let label = q.get(at..at + 1 + len)?;
        for (i, b) in label.iter().enumerate() {
            lower[at - HEADER + i] = b.to_ascii_lowercase();
        }
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    let name_len = at - HEADER;
    let fixed = q.get(at..at + 4)?;
    let (qtype, qclass) = (u16_at(fixed, 0), u16_at(fixed, 2));
    if qclass != 1 || is_meta(qtype) {
        return None;
    }
    at += 4;
    let (mut edns_payload, mut dnssec_ok) = (None, false);
    if u16_at(q, 10) == 1 {
        let opt = q.get(at..at + OPT_LEN)?;
        // Root owner, type OPT, extended RCODE 0, version 0.
        if opt[0] != 0 || u16_at(opt, 1) != 41 || opt[5] != 0 || opt[6] != 0 {
            return None;
        }
        let rdlen = u16_at(opt, 9) as usize;
        let options = q.get(at + OPT_LEN..at + OPT_LEN + rdlen)?;
        let mut o = 0;
        while o < options.len() {
            let option = options.get(o..o + 4)?;
            // Answered with options of ours (NSID, COOKIE), or with content
            // the full path checks (client subnet: a malformed one is FORMERR
            // there, as RFC 7871 asks).
            if matches!(u16_at(option, 0), NSID | COOKIE | CLIENT_SUBNET) {
                return None;
            }
            o += 4 + u16_at(option, 2) as usize;
        }
        if o != options.len() {
            return None;
        }
        edns_payload = Some(u16_at(opt, 3));
        dnssec_ok = opt[7] & 0x80 != 0;
        at += OPT_LEN + rdlen;
    }
    if at != q.len() {
        return None;
    }
    Some(Parsed {
        lower,
        name_len,
        qtype,
        edns_payload,
        dnssec_ok,
    })
}

#[cfg(test)]
mod tests;
