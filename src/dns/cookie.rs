//! DNS cookies (RFC 7873) with the interoperable server cookie of RFC 9018:
//! version 1, three reserved bytes, a timestamp and SipHash-2-4 over the
//! client cookie, those eight bytes and the client's address, keyed with a
//! 16-byte secret that several servers can share. A client presenting a
//! valid server cookie has shown it receives our answers at its address, so
//! rate limiting leaves it alone.

use std::hash::Hasher;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

/// The EDNS option code of COOKIE.
pub const OPTION: u16 = 10;
pub const CLIENT_LEN: usize = 8;
/// Our server cookies: version, reserved, timestamp, hash.
pub const SERVER_LEN: usize = 16;
const VERSION: u8 = 1;
/// RFC 9018 §4.3: a cookie older than this is not valid any more...
const MAX_AGE: u32 = 3600;
/// ... nor one from further in the future than this (clock skew).
const MAX_SKEW: u32 = 300;

/// A COOKIE option's content, checked for length (RFC 7873 §5.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    /// A client cookie alone.
    Client(&'a [u8]),
    /// A client cookie and the server cookie we (or a peer) gave it.
    WithServer(&'a [u8], &'a [u8]),
}

/// Splits an option's data; None when its length is not 8 or 16 to 40:
/// the query is malformed (FORMERR).
pub fn parse(data: &[u8]) -> Option<Presented<'_>> {
    match data.len() {
        CLIENT_LEN => Some(Presented::Client(data)),
        16..=40 => Some(Presented::WithServer(
            &data[..CLIENT_LEN],
            &data[CLIENT_LEN..],
        )),
        _ => None,
    }
}

/// The secret server cookies are made with.
#[derive(Clone, PartialEq, Eq)]
pub struct CookieSecret([u8; 16]);

impl std::fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieSecret(<secret>)")
    }
}

impl CookieSecret {
    pub fn new(bytes: [u8; 16]) -> CookieSecret {
        CookieSecret(bytes)
    }

    /// A fresh random secret (when none is configured).
    pub fn random() -> CookieSecret {
        CookieSecret(rand::random())
    }

    /// The server cookie for `client` at `ip` made at unix second `now`.
    pub fn server_cookie(&self, client: &[u8], ip: IpAddr, now: u32) -> [u8; SERVER_LEN] {
        let mut cookie = [0u8; SERVER_LEN];
        cookie[0] = VERSION;
        cookie[4..8].copy_from_slice(&now.to_be_bytes());
        let hash = self.hash(client, &cookie[..8], ip);
        cookie[8..].copy_from_slice(&hash);
        cookie
    }

    fn hash(&self, client: &[u8], head: &[u8], ip: IpAddr) -> [u8; 8] {
        let mut h = SipHasher24::new_with_key(&self.0);
        h.write(client);
        h.write(head);
        match ip {
            IpAddr::V4(a) => h.write(&a.octets()),
            IpAddr::V6(a) => h.write(&a.octets()),
        }
        h.finish().to_le_bytes()
    }

    /// Whether `server` is a server cookie made for `client` at `ip` with
    /// this secret, no older than an hour and not from the future.
    pub fn valid(&self, client: &[u8], server: &[u8], ip: IpAddr, now: u32) -> bool {
        if server.len() != SERVER_LEN || server[0] != VERSION {
            return false;
        }
        let stamp = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
        // RFC 1982 arithmetic on the timestamp, as RFC 9018 asks.
        let age = now.wrapping_sub(stamp);
        let fresh = age <= MAX_AGE || stamp.wrapping_sub(now) <= MAX_SKEW;
        fresh && self.hash(client, &server[..8], ip)[..] == server[8..]
    }
}

/// The COOKIE option's data in a raw query, without decoding it: used on
/// the rate-limited path only. None when there is none (or the query is not
/// readable; the full path judged it already).
pub fn find_in_query(q: &[u8]) -> Option<&[u8]> {
    let u16_at =
        |at: usize| -> Option<u16> { Some(u16::from_be_bytes([*q.get(at)?, *q.get(at + 1)?])) };
    let (qd, an, ns, ar) = (u16_at(4)?, u16_at(6)?, u16_at(8)?, u16_at(10)?);
    let mut at = 12;
    let skip_name = |mut at: usize| -> Option<usize> {
        loop {
            let l = *q.get(at)?;
            if l & 0xC0 == 0xC0 {
                return Some(at + 2);
            }
            at += 1 + usize::from(l);
            if l == 0 {
                return Some(at);
            }
        }
    };
    for _ in 0..qd {
        at = skip_name(at)? + 4;
    }
    for _ in 0..(u32::from(an) + u32::from(ns)) {
        at = skip_name(at)?;
        at += 10 + usize::from(u16_at(at + 8)?);
    }
    for _ in 0..ar {
        at = skip_name(at)?;
        let (rtype, rdlength) = (u16_at(at)?, usize::from(u16_at(at + 8)?));
        let rdata = q.get(at + 10..at + 10 + rdlength)?;
        at += 10 + rdlength;
        if rtype != 41 {
            continue;
        }
        let mut o = 0;
        while o + 4 <= rdata.len() {
            let code = u16::from_be_bytes([rdata[o], rdata[o + 1]]);
            let len = usize::from(u16::from_be_bytes([rdata[o + 2], rdata[o + 3]]));
            let data = rdata.get(o + 4..o + 4 + len)?;
            if code == OPTION {
                return Some(data);
            }
            o += 4 + len;
        }
        return None;
    }
    None
}

/// Whether the raw query carries a valid server cookie for `ip`.
pub fn query_has_valid_cookie(secret: &CookieSecret, query: &[u8], ip: IpAddr, now: u32) -> bool {
    match find_in_query(query).and_then(parse) {
        Some(Presented::WithServer(client, server)) => secret.valid(client, server, ip, now),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn secret() -> CookieSecret {
        CookieSecret::new(
            unhex("e5e973e5a6b2a43f48e7dc849e37bfcf")
                .try_into()
                .unwrap(),
        )
    }

    /// RFC 9018 Appendix A.1: a client learning a new server cookie.
    #[test]
    fn rfc9018_test_vector() {
        let client = unhex("2464c4abcf10c957");
        let ip: IpAddr = "198.51.100.100".parse().unwrap();
        let cookie = secret().server_cookie(&client, ip, 1559731985);
        assert_eq!(hex::encode(cookie), "010000005cf79f111f8130c3eee29480");
    }

    /// The server cookie Knot 3.2's mod-cookies gave with the same secret
    /// (`kdig +cookie=2464c4abcf10c957` from 127.0.0.1): interoperable.
    #[test]
    fn same_cookie_as_knot() {
        let client = unhex("2464c4abcf10c957");
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let cookie = secret().server_cookie(&client, ip, 0x6B151CB9);
        assert_eq!(hex::encode(cookie), "010000006b151cb9873db9c2562bb0c3");
    }

    #[test]
    fn validity_window_and_binding() {
        let s = secret();
        let client = [7u8; 8];
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let made = 1_800_000_000;
        let c = s.server_cookie(&client, ip, made);
        assert!(s.valid(&client, &c, ip, made));
        assert!(s.valid(&client, &c, ip, made + MAX_AGE));
        assert!(!s.valid(&client, &c, ip, made + MAX_AGE + 1));
        assert!(s.valid(&client, &c, ip, made - MAX_SKEW));
        assert!(!s.valid(&client, &c, ip, made - MAX_SKEW - 1));
        assert!(!s.valid(&client, &c, "2001:db8::2".parse().unwrap(), made));
        assert!(!s.valid(&[8u8; 8], &c, ip, made));
        let other = CookieSecret::new([1; 16]);
        assert!(!other.valid(&client, &c, ip, made));
        let mut bad = c;
        bad[15] ^= 1;
        assert!(!s.valid(&client, &bad, ip, made));
    }

    #[test]
    fn option_lengths() {
        assert_eq!(parse(&[0; 8]), Some(Presented::Client(&[0; 8])));
        for len in [0, 1, 7, 9, 15, 41, 100] {
            assert_eq!(parse(&vec![0; len]), None, "length {len}");
        }
        for len in 16..=40 {
            assert!(matches!(
                parse(&vec![0; len]),
                Some(Presented::WithServer(_, _))
            ));
        }
    }
}
