//! Server-wide answer extras on the full path: DNS cookies, NSID (RFC 5001)
//! and the CH TXT identity names (`id.server`, `hostname.bind`,
//! `version.server`, `version.bind`), answered only when configured, as
//! Knot's `identity`, `version` and `nsid` are.

use std::net::IpAddr;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};

use super::answer;
use super::cookie::{self, CookieSecret, Presented};

#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub cookie_secret: CookieSecret,
    /// Answered to queries carrying an empty NSID option.
    pub nsid: Option<Vec<u8>>,
    /// CH TXT `id.server` and `hostname.bind`.
    pub identity: Option<String>,
    /// CH TXT `version.server` and `version.bind`.
    pub version: Option<String>,
}

impl Default for ServerOptions {
    /// A random cookie secret, nothing else.
    fn default() -> Self {
        ServerOptions {
            cookie_secret: CookieSecret::random(),
            nsid: None,
            identity: None,
            version: None,
        }
    }
}

/// The unix second as cookie timestamps count it.
fn cookie_time(now: u64) -> u32 {
    // RFC 9018 timestamps are serial numbers: they wrap, by design.
    now as u32
}

/// The COOKIE option of a request, if any: Err when it is malformed.
fn presented(request: &Message) -> Result<Option<Presented<'_>>, ()> {
    let Some(edns) = &request.edns else {
        return Ok(None);
    };
    match edns.option(EdnsCode::Cookie) {
        Some(EdnsOption::Unknown(_, data)) => cookie::parse(data).map(Some).ok_or(()),
        _ => Ok(None),
    }
}

impl ServerOptions {
    /// RFC 7873 §5.2.2: a COOKIE option of a bad length makes the request
    /// malformed.
    pub fn malformed(&self, request: &Message) -> bool {
        presented(request).is_err()
    }

    /// Adds our options to a response's OPT record (present when the request
    /// had one): a fresh server cookie when the request had a COOKIE option,
    /// our NSID when it asked for it and one is configured.
    pub fn decorate(&self, request: &Message, response: &mut Message, ip: IpAddr, now: u64) {
        let Some(edns) = response.edns.as_mut() else {
            return;
        };
        if let Ok(Some(p)) = presented(request) {
            let client = match p {
                Presented::Client(c) | Presented::WithServer(c, _) => c,
            };
            let server = self
                .cookie_secret
                .server_cookie(client, ip, cookie_time(now));
            let mut data = client.to_vec();
            data.extend_from_slice(&server);
            edns.options_mut()
                .insert(EdnsOption::Unknown(cookie::OPTION, data));
        }
        let asked_nsid = request
            .edns
            .as_ref()
            .is_some_and(|e| e.option(EdnsCode::NSID).is_some());
        if asked_nsid
            && let Some(nsid) = &self.nsid
            && let Ok(payload) = NSIDPayload::new(nsid.clone())
        {
            edns.options_mut().insert(EdnsOption::NSID(payload));
        }
    }

    /// Whether `request` carries a valid server cookie for `ip`.
    pub fn valid_cookie(&self, request: &Message, ip: IpAddr, now: u64) -> bool {
        match presented(request) {
            Ok(Some(Presented::WithServer(client, server))) => {
                self.cookie_secret
                    .valid(client, server, ip, cookie_time(now))
            }
            _ => false,
        }
    }

    /// The answer to a CH TXT identity question, when the name is one we
    /// know and its text is configured; None sends the request on (to
    /// REFUSED, like any class but IN).
    pub fn chaos(&self, request: &Message) -> Option<Message> {
        let [q] = request.queries.as_slice() else {
            return None;
        };
        if request.metadata.op_code != OpCode::Query
            || q.query_class() != DNSClass::CH
            || q.query_type() != RecordType::TXT
        {
            return None;
        }
        // A query `answer::respond` refuses whatever its class (records in
        // the answer or authority section, EDNS beyond version 0) gets the
        // same FORMERR or BADVERS here.
        if !request.answers.is_empty()
            || !request.authorities.is_empty()
            || request.edns.as_ref().is_some_and(|e| e.version() > 0)
        {
            return None;
        }
        let name = q.name().to_lowercase().to_ascii();
        let text = match name.trim_end_matches('.') {
            "id.server" | "hostname.bind" => self.identity.as_ref(),
            "version.server" | "version.bind" => self.version.as_ref(),
            _ => None,
        }?;
        let mut record = Record::from_rdata(
            q.name().clone(),
            0,
            RData::TXT(TXT::new(vec![text.clone()])),
        );
        record.dns_class = DNSClass::CH;
        let mut response = answer::base(request);
        response.metadata.response_code = ResponseCode::NoError;
        response.metadata.authoritative = true;
        response.answers = vec![record];
        Some(response)
    }
}
