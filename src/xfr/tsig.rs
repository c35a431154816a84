//! TSIG (RFC 8945) on both sides of a transaction, on hickory-proto's
//! primitives: checking a signed request, signing each response message of
//! the transaction (the first over the request's MAC, later ones chained over
//! the previous MAC with timers only), and the unsigned or signed error
//! answers for a bad key, signature or time.

use std::collections::HashMap;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::tsig::{TSIG, TsigError, make_tsig_record};
use hickory_proto::rr::{Name, Record, TSigner};
use hickory_proto::serialize::binary::BinEncoder;

use crate::config::TsigKey;

/// Seconds of clock skew tolerated between peers (RFC 8945 recommends 300).
pub const FUDGE: u16 = 300;

/// The configured keys, by name.
#[derive(Clone, Default)]
pub struct Keyring {
    signers: HashMap<Name, TSigner>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.signers.keys()).finish()
    }
}

impl Keyring {
    pub fn new(keys: &[TsigKey]) -> Keyring {
        let signers = keys
            .iter()
            .filter_map(|k| {
                let signer =
                    TSigner::new(k.secret.clone(), k.algorithm.clone(), k.name.clone(), FUDGE);
                signer.ok().map(|s| (k.name.clone(), s))
            })
            .collect();
        Keyring { signers }
    }

    pub fn get(&self, name: &Name) -> Option<&TSigner> {
        self.signers.get(&name.to_lowercase())
    }
}

/// What a request's TSIG says about it.
pub enum Auth {
    /// No TSIG: judged by source address alone.
    Unsigned,
    /// A valid signature by this key; the responses must be signed.
    Valid(Signer),
    /// A TSIG that fails: answer NOTAUTH with this signer, nothing else.
    Rejected(Signer),
}

/// Checks the TSIG of `request` (decoded from `raw`) at `now` (unix seconds).
pub fn check(keys: &Keyring, request: &Message, raw: &[u8], now: u64) -> Auth {
    let Some(tsig) = request.signature() else {
        return Auth::Unsigned;
    };
    let id = request.metadata.id;
    let name = tsig.name.to_lowercase();
    let signer = match keys.get(&name) {
        Some(s) if s.algorithm() == &tsig.data.algorithm => s.clone(),
        _ => {
            crate::packet_log!(warn, key = %name, "TSIG with an unknown key or algorithm");
            return Auth::Rejected(Signer::error(
                id,
                tsig.data.time,
                name,
                None,
                TsigError::BadKey,
            ));
        }
    };
    if tsig.data.time < u64::from(tsig.data.fudge) {
        // Before 1970 plus fudge: hickory's window arithmetic would underflow.
        return Auth::Rejected(Signer::error(
            id,
            tsig.data.time,
            name,
            None,
            TsigError::BadTime,
        ));
    }
    let Ok((mac, time, window)) = signer.verify_message_byte(raw, None, true) else {
        crate::packet_log!(warn, key = %name, "TSIG signature does not verify");
        return Auth::Rejected(Signer::error(
            id,
            tsig.data.time,
            name,
            Some(signer),
            TsigError::BadSig,
        ));
    };
    let mut s = Signer {
        id,
        key: name,
        signer: Some(signer),
        previous_mac: mac,
        request_time: time,
        first: true,
        error: None,
    };
    if !window.contains(&now) && window.end != now {
        crate::packet_log!(warn, key = %s.key, skew = now as i64 - time as i64, "TSIG time outside the fudge window");
        s.error = Some(TsigError::BadTime);
        return Auth::Rejected(s);
    }
    Auth::Valid(s)
}

/// Signs the messages answering one request, in order.
#[derive(Clone)]
pub struct Signer {
    id: u16,
    key: Name,
    /// None when the key is unknown: the error answer goes unsigned.
    signer: Option<TSigner>,
    previous_mac: Vec<u8>,
    request_time: u64,
    first: bool,
    error: Option<TsigError>,
}

impl Signer {
    fn error(
        id: u16,
        request_time: u64,
        key: Name,
        signer: Option<TSigner>,
        error: TsigError,
    ) -> Signer {
        Signer {
            id,
            key,
            signer,
            previous_mac: Vec::new(),
            request_time,
            first: true,
            error: Some(error),
        }
    }

    /// The key that signed the request.
    pub fn key(&self) -> &Name {
        &self.key
    }

    /// The TSIG record for the next message, whose encoding without TSIG is
    /// `unsigned`, sent at `now`.
    pub fn sign(&mut self, unsigned: &[u8], now: u64) -> Box<Record<TSIG>> {
        let signer = match (&self.signer, self.error) {
            // RFC 8945 §5.2.1/§5.2.2: BADKEY and BADSIG answers are unsigned.
            (None, _) | (Some(_), Some(TsigError::BadKey | TsigError::BadSig)) => {
                let algorithm = self.signer.as_ref().map_or(
                    hickory_proto::rr::rdata::tsig::TsigAlgorithm::HmacSha256,
                    |s| s.algorithm().clone(),
                );
                let tsig = TSIG::new(
                    algorithm,
                    self.request_time,
                    FUDGE,
                    Vec::new(),
                    self.id,
                    self.error,
                    Vec::new(),
                );
                return Box::new(make_tsig_record(self.key.clone(), tsig));
            }
            (Some(s), _) => s.clone(),
        };
        // §5.2.3: a BADTIME answer carries the request's time and ours in
        // Other Data, so the client can see the skew.
        let (time, other) = match self.error {
            Some(TsigError::BadTime) => (self.request_time, now.to_be_bytes()[2..].to_vec()),
            _ => (now, Vec::new()),
        };
        let stub = TSIG::new(
            signer.algorithm().clone(),
            time,
            FUDGE,
            Vec::new(),
            self.id,
            self.error,
            other,
        );
        let mut tbs = Vec::with_capacity(unsigned.len() + 128);
        {
            let mut enc = BinEncoder::new(&mut tbs);
            let prefix = enc
                .emit_u16(self.previous_mac.len() as u16)
                .and_then(|_| enc.emit_vec(&self.previous_mac))
                .and_then(|_| enc.emit_vec(unsigned));
            let vars = if self.first {
                stub.emit_tsig_for_mac(&mut enc, signer.signer_name())
            } else {
                // §5.3.1: later messages cover the timers only.
                enc.emit_u16((time >> 32) as u16)
                    .and_then(|_| enc.emit_u32(time as u32))
                    .and_then(|_| enc.emit_u16(FUDGE))
            };
            debug_assert!(prefix.and(vars).is_ok(), "encoding into a Vec cannot fail");
        }
        let mac = signer.sign(&tbs).unwrap_or_default();
        self.previous_mac = mac.clone();
        self.first = false;
        Box::new(make_tsig_record(
            signer.signer_name().clone(),
            stub.set_mac(mac),
        ))
    }
}

/// `message` encoded with its TSIG appended; `unsigned` is its encoding
/// without one, which the signature covers.
pub fn append(
    message: &mut Message,
    unsigned: &[u8],
    signer: &mut Signer,
    now: u64,
) -> Option<Vec<u8>> {
    message.set_signature(signer.sign(unsigned, now));
    message.to_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, OpCode, Query};
    use hickory_proto::rr::RecordType;
    use hickory_proto::rr::rdata::tsig::TsigAlgorithm;

    fn key(secret: &[u8]) -> TsigKey {
        TsigKey {
            name: Name::from_ascii("xfr.example.").unwrap(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: secret.to_vec(),
        }
    }

    fn signed_query(k: &TsigKey, time: u64) -> (Message, Vec<u8>, hickory_proto::rr::TSigVerifier) {
        let signer =
            TSigner::new(k.secret.clone(), k.algorithm.clone(), k.name.clone(), FUDGE).unwrap();
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.metadata.op_code = OpCode::Query;
        m.add_query(Query::query(
            Name::from_ascii("example.com.").unwrap(),
            RecordType::AXFR,
        ));
        let (sig, verifier) = signer.sign_message(&m, time).unwrap();
        m.set_signature(sig);
        let bytes = m.to_vec().unwrap();
        (Message::from_vec(&bytes).unwrap(), bytes, verifier.unwrap())
    }

    #[test]
    fn a_chain_of_signed_responses_verifies_with_hickorys_client_side() {
        let k = key(b"0123456789abcdef0123456789abcdef");
        let now = 1_795_000_000;
        let (request, raw, mut verifier) = signed_query(&k, now);
        let Auth::Valid(mut signer) = check(&Keyring::new(&[k]), &request, &raw, now + 5) else {
            panic!("a valid request must verify");
        };
        for i in 0..3 {
            let mut response = Message::response(request.metadata.id, OpCode::Query);
            response.queries = request.queries.clone();
            response.metadata.authoritative = i == 0;
            let unsigned = response.to_vec().unwrap();
            let bytes = append(&mut response, &unsigned, &mut signer, now + 5 + i).unwrap();
            verifier
                .verify(&bytes)
                .unwrap_or_else(|e| panic!("message {i}: {e}"));
        }
    }

    #[test]
    fn wrong_secret_unknown_key_and_skewed_clock_are_rejected_with_their_errors() {
        let now = 1_795_000_000;
        let good = key(b"0123456789abcdef0123456789abcdef");
        let ring = Keyring::new(std::slice::from_ref(&good));
        let error_of = |auth: Auth| match auth {
            Auth::Rejected(mut s) => {
                let rec = s.sign(b"\0\0\0\0\0\0\0\0\0\0\0\0", now);
                (rec.data.error, rec.data.mac.is_empty())
            }
            _ => panic!("expected a rejection"),
        };
        let (m, raw, _) = signed_query(&key(b"another secret, same name......."), now);
        assert_eq!(
            error_of(check(&ring, &m, &raw, now)),
            (Some(TsigError::BadSig), true)
        );
        let mut stranger = good.clone();
        stranger.name = Name::from_ascii("stranger.").unwrap();
        let (m, raw, _) = signed_query(&stranger, now);
        assert_eq!(
            error_of(check(&ring, &m, &raw, now)),
            (Some(TsigError::BadKey), true)
        );
        let (m, raw, _) = signed_query(&good, now - 1000);
        assert_eq!(
            error_of(check(&ring, &m, &raw, now)),
            (Some(TsigError::BadTime), false),
            "BADTIME answers are signed"
        );
        let (m, raw, _) = signed_query(&good, now);
        assert!(matches!(
            check(&Keyring::default(), &m, &raw, now),
            Auth::Rejected(_)
        ));
        let mut plain = m.clone();
        plain.take_signature();
        assert!(matches!(
            check(&ring, &plain, &plain.to_vec().unwrap(), now),
            Auth::Unsigned
        ));
    }
}
