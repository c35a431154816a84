//! Authoritative semantics, written once: every response this server sends
//! comes from here, either directly (TCP, and UDP queries the fast path does
//! not take) or as a pre-built template the fast path patches.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::snapshot::{ServedZone, Snapshot};

/// The UDP payload size we advertise and never exceed (DNS Flag Day 2020).
pub const UDP_PAYLOAD: u16 = 1232;
/// Longest CNAME chain followed inside our own zones.
const MAX_CHAIN: usize = 8;

/// The sections of an answer to one (name, type) question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Outcome {
    fn empty(rcode: ResponseCode, authoritative: bool) -> Self {
        Outcome {
            rcode,
            authoritative,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }

    fn negative(zone: &ServedZone, rcode: ResponseCode) -> Self {
        let mut o = Outcome::empty(rcode, true);
        o.authorities.push(zone.negative_soa());
        o
    }
}

/// Answers an IN-class question for `qname` (any letter case) and `qtype`.
pub fn resolve(snap: &Snapshot, qname: &Name, qtype: RecordType) -> Outcome {
    let qname = qname.to_lowercase();
    let Some(zone) = snap.zone_for(&qname) else {
        return Outcome::empty(ResponseCode::Refused, false);
    };
    if !zone.available {
        // A secondary zone with no copy, or an expired one: ours, but no data.
        return Outcome::empty(ResponseCode::ServFail, false);
    }
    if let Some(cut) = zone.cut_above(&qname) {
        // DS at the cut is parent-side data; everything else is referred.
        if !(qtype == RecordType::DS && cut == &qname) {
            return referral(zone, cut);
        }
    }
    let Some(node) = zone.node(&qname) else {
        return Outcome::negative(zone, ResponseCode::NXDomain);
    };
    if node.servfail && matches!(qtype, RecordType::TXT | RecordType::ANY) {
        return Outcome::empty(ResponseCode::ServFail, false);
    }
    if qtype == RecordType::ANY {
        // RFC 8482: one RRset is enough, and it never amplifies.
        return match node.rrsets.first() {
            Some((_, records)) => answer(records.clone()),
            None => Outcome::negative(zone, ResponseCode::NoError),
        };
    }
    if let Some(records) = node.rrset(qtype) {
        return answer(records.to_vec());
    }
    if let Some(cname) = node.rrset(RecordType::CNAME) {
        return chase(snap, cname.to_vec(), qtype);
    }
    Outcome::negative(zone, ResponseCode::NoError)
}

fn answer(records: Vec<Record>) -> Outcome {
    let mut o = Outcome::empty(ResponseCode::NoError, true);
    o.answers = records;
    o
}

fn referral(zone: &ServedZone, cut: &Name) -> Outcome {
    let mut o = Outcome::empty(ResponseCode::NoError, false);
    let ns = zone
        .node(cut)
        .and_then(|n| n.rrset(RecordType::NS))
        .unwrap_or_default();
    for r in ns {
        if let RData::NS(target) = &r.data {
            // Glue: addresses of in-zone name servers.
            if let Some(node) = zone.node(&target.0) {
                for t in [RecordType::A, RecordType::AAAA] {
                    o.additionals
                        .extend(node.rrset(t).unwrap_or_default().iter().cloned());
                }
            }
        }
    }
    o.authorities = ns.to_vec();
    o
}

/// Follows a CNAME chain through our own zones; stops at the first name we
/// are not authoritative for, or after MAX_CHAIN steps.
fn chase(snap: &Snapshot, mut answers: Vec<Record>, qtype: RecordType) -> Outcome {
    for _ in 0..MAX_CHAIN {
        let Some(RData::CNAME(target)) = answers.last().map(|r| &r.data) else {
            break;
        };
        let target = target.0.to_lowercase();
        let Some(zone) = snap.zone_for(&target) else {
            break;
        };
        if zone.cut_above(&target).is_some() {
            break;
        }
        let Some(node) = zone.node(&target) else {
            let mut o = Outcome::negative(zone, ResponseCode::NXDomain);
            o.answers = answers;
            return o;
        };
        if let Some(records) = node.rrset(qtype) {
            answers.extend(records.iter().cloned());
            break;
        }
        match node.rrset(RecordType::CNAME) {
            Some(next) if !answers.iter().any(|r| r.name == target) => {
                answers.extend(next.iter().cloned())
            }
            Some(_) => break, // a loop
            None => {
                let mut o = Outcome::negative(zone, ResponseCode::NoError);
                o.answers = answers;
                return o;
            }
        }
    }
    answer(answers)
}

/// The response to a decoded request; None means send nothing (responses
/// are never answered, to avoid reflection loops).
pub fn respond(snap: &Snapshot, request: &Message) -> Option<Message> {
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    let mut response = base(request);
    if request.queries.len() != 1 && request.metadata.op_code == OpCode::Query {
        response.metadata.response_code = ResponseCode::FormErr;
        return Some(response);
    }
    // BADVERS travels in the OPT record, which a bare header has none of.
    if response.edns.is_some() && request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        response.metadata.response_code = ResponseCode::BADVERS;
        return Some(response);
    }
    let rcode = |response: &mut Message, rcode| {
        response.metadata.response_code = rcode;
    };
    if request.metadata.op_code != OpCode::Query {
        return Some(not_implemented(response));
    }
    let [query] = request.queries.as_slice() else {
        rcode(&mut response, ResponseCode::FormErr);
        return Some(response);
    };
    if !request.answers.is_empty() || !request.authorities.is_empty() {
        rcode(&mut response, ResponseCode::FormErr);
        return Some(response);
    }
    if let Some(code) = refuse_question(query) {
        if code == ResponseCode::NotImp {
            return Some(not_implemented(response));
        }
        rcode(&mut response, code);
        return Some(response);
    }
    let mut outcome = resolve(snap, query.name(), query.query_type());
    if outcome.rcode == ResponseCode::NoError && outcome.authoritative {
        add_target_addresses(snap, &mut outcome);
    }
    response.metadata.response_code = outcome.rcode;
    response.metadata.authoritative = outcome.authoritative;
    response.answers = outcome.answers;
    response.authorities = outcome.authorities;
    response.additionals = outcome.additionals;
    Some(response)
}

/// NOTIMP says nothing about the request's flags: RD and CD are not
/// copied (as Knot and NSD do).
fn not_implemented(mut response: Message) -> Message {
    response.metadata.response_code = ResponseCode::NotImp;
    response.metadata.recursion_desired = false;
    response.metadata.checking_disabled = false;
    response
}

/// RFC 1034 §4.3.2 step 6: the addresses of in-zone NS, MX and SRV targets
/// go in the additional section, so a resolver need not ask again. Only
/// from our own data, and only what the zone holds at that name.
fn add_target_addresses(snap: &Snapshot, outcome: &mut Outcome) {
    let mut targets: Vec<Name> = Vec::new();
    for r in &outcome.answers {
        let target = match &r.data {
            RData::NS(ns) => &ns.0,
            RData::MX(mx) => &mx.exchange,
            RData::SRV(srv) => &srv.target,
            _ => continue,
        };
        let target = target.to_lowercase();
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    for target in targets {
        let Some(zone) = snap.zone_for(&target) else {
            continue;
        };
        if !zone.available {
            continue;
        }
        if let Some(node) = zone.node(&target) {
            for t in [RecordType::A, RecordType::AAAA] {
                outcome
                    .additionals
                    .extend(node.rrset(t).unwrap_or_default().iter().cloned());
            }
        }
    }
}

/// An empty response to `request`: its ID, opcode, RD and CD, question,
/// and our EDNS when it used EDNS. Only for exactly one question: a request
/// with several (or none) gets a bare header, as NSD answers it, so a
/// response is never larger for having more questions.
pub fn base(request: &Message) -> Message {
    let mut response = Message::response(request.metadata.id, request.metadata.op_code);
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.checking_disabled = request.metadata.checking_disabled;
    if request.queries.len() != 1 {
        return response;
    }
    response.queries = request.queries.clone();
    if let Some(req_edns) = &request.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(UDP_PAYLOAD);
        edns.set_version(0);
        edns.set_dnssec_ok(req_edns.flags().dnssec_ok);
        response.edns = Some(edns);
    }
    response
}

/// Questions answered with an error before any lookup.
fn refuse_question(query: &Query) -> Option<ResponseCode> {
    if query.query_class() != DNSClass::IN {
        // Not our class: CH/HS lookups must not get IN data.
        return Some(ResponseCode::Refused);
    }
    match query.query_type() {
        RecordType::OPT => Some(ResponseCode::FormErr),
        // Zone transfers are not offered (yet).
        RecordType::AXFR | RecordType::IXFR => Some(ResponseCode::Refused),
        RecordType::ANY => None,
        t if is_meta(u16::from(t)) => Some(ResponseCode::NotImp),
        _ => None,
    }
}

/// Meta and question-only types (RFC 6895 §3.1), besides ANY.
pub fn is_meta(qtype: u16) -> bool {
    qtype == 0 || qtype == 41 || (128..=255).contains(&qtype)
}

/// The largest UDP response the requester can take.
pub fn udp_limit(request_payload: Option<u16>) -> usize {
    match request_payload {
        None => 512,
        Some(p) => usize::from(p.clamp(512, UDP_PAYLOAD)),
    }
}

/// Counts an alias TXT answer sent by the full path (the fast path counts
/// its own). Not in `respond`, which also renders the fast path's templates.
pub fn count_alias_answer(snap: &Snapshot, request: &Message, response: &Message) {
    if response.metadata.response_code == ResponseCode::NoError
        && let [q] = request.queries.as_slice()
    {
        snap.count_answer(q.name(), q.query_type());
    }
}

/// FORMERR for a message we cannot decode: header only, since nothing after
/// it can be trusted. Nothing at all for fragments shorter than a header or
/// for undecodable responses.
pub fn formerr(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let mut out = vec![0u8; 12];
    out[0..2].copy_from_slice(&query[0..2]);
    out[2] = 0x80 | (query[2] & 0x79); // QR, opcode, RD
    out[3] = ResponseCode::FormErr.low();
    Some(out)
}
