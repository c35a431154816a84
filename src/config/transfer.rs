//! Replication settings: TSIG keys, who may transfer a zone or NOTIFY us,
//! whom we NOTIFY, secondary zones, serial schemes. Types and validation;
//! the wire side lives in `crate::xfr`.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::Path;

use hickory_proto::rr::Name;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use ipnet::IpNet;
use toml::Spanned;

use super::raw::{RawAccess, RawKey, RawRemote, RawZone};
use super::{Problem, Validator};
use crate::serial::SerialScheme;

/// A shared TSIG secret (RFC 8945).
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// Lower-case, fully qualified: how peers name it on the wire.
    pub name: Name,
    pub algorithm: TsigAlgorithm,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TsigKey({} {}, <secret>)", self.name, self.algorithm)
    }
}

/// The algorithms hickory's TSIG signs and verifies with full-length MACs.
const ALGORITHMS: [(&str, TsigAlgorithm); 3] = [
    ("hmac-sha256", TsigAlgorithm::HmacSha256),
    ("hmac-sha384", TsigAlgorithm::HmacSha384),
    ("hmac-sha512", TsigAlgorithm::HmacSha512),
];

/// One way to be allowed: from one of `from` (any source when empty) and,
/// when `key` is set, signed with that key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    pub from: Vec<IpNet>,
    pub key: Option<Name>,
}

impl AccessRule {
    fn allows(&self, src: IpAddr, key: Option<&Name>) -> bool {
        let src = canonical(src);
        (self.from.is_empty() || self.from.iter().any(|n| n.contains(&src)))
            && self.key.as_ref().is_none_or(|k| Some(k) == key)
    }
}

/// Is a request from `src`, validly signed with `key` (if any), allowed by
/// any of `rules`? No rules: nobody is.
pub fn allowed(rules: &[AccessRule], src: IpAddr, key: Option<&Name>) -> bool {
    rules.iter().any(|r| r.allows(src, key))
}

/// Would a rule allow `src` if only it were signed with the right key? Then
/// a refusal is an authentication failure (NOTAUTH), not a plain REFUSED.
pub fn needs_key(rules: &[AccessRule], src: IpAddr) -> bool {
    let src = canonical(src);
    rules
        .iter()
        .any(|r| r.key.is_some() && (r.from.is_empty() || r.from.iter().any(|n| n.contains(&src))))
}

/// An IPv4 peer on a dual-stack socket arrives as `::ffff:a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Another server: a secondary we NOTIFY, or a primary we transfer from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub addr: SocketAddr,
    pub key: Option<Name>,
    /// The address we send from (`[server] query_source` of this family):
    /// peers' ACLs name one address of a host that may have several.
    pub source: Option<IpAddr>,
}

/// How a zone is replicated, whatever its source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZonePolicy {
    pub serial: SerialScheme,
    pub allow_transfer: Vec<AccessRule>,
    pub notify: Vec<Remote>,
    /// Who may tell us (a secondary) that the primary has news.
    pub allow_notify: Vec<AccessRule>,
}

/// A zone whose data comes by transfer from `primaries`, tried in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondarySpec {
    pub origin: Name,
    pub primaries: Vec<Remote>,
    pub policy: ZonePolicy,
}

/// The lines of a BIND key file that matter, with where they were.
struct KeyClause {
    name: (String, usize),
    algorithm: Option<(String, usize)>,
    secret: Option<(String, usize)>,
}

impl std::fmt::Debug for KeyClause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyClause({}, <secret>)", self.name.0)
    }
}

/// Parses `key "name" { algorithm hmac-sha256; secret "base64"; };` blocks
/// (any number; `#`, `//` and `/* */` comments). Errors carry a line number.
fn parse_key_file(text: &str) -> Result<Vec<KeyClause>, (usize, String)> {
    let mut tokens: Vec<(String, usize)> = Vec::new();
    let (mut line, mut chars) = (1, text.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => while chars.next_if(|&c| c != '\n').is_some() {},
            '/' if chars.peek() == Some(&'/') => while chars.next_if(|&c| c != '\n').is_some() {},
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    line += usize::from(c == '\n');
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '{' | '}' | ';' => tokens.push((c.to_string(), line)),
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err((line, "unterminated quoted string".into())),
                    }
                }
                tokens.push((s, line));
            }
            c => {
                let mut s = c.to_string();
                while let Some(c) = chars.next_if(|c| !c.is_whitespace() && !"{};\"".contains(*c)) {
                    s.push(c);
                }
                tokens.push((s, line));
            }
        }
    }
    let mut keys = Vec::new();
    let mut it = tokens.into_iter();
    let expect = |it: &mut std::vec::IntoIter<(String, usize)>, what: &str, after: usize| {
        it.next()
            .ok_or_else(|| (after, format!("file ends where {what} was expected")))
    };
    while let Some((word, at)) = it.next() {
        if word != "key" {
            return Err((at, format!("expected `key`, found {word:?}")));
        }
        let name = expect(&mut it, "the key name", at)?;
        let brace = expect(&mut it, "`{`", name.1)?;
        if brace.0 != "{" {
            return Err((brace.1, format!("expected `{{`, found {:?}", brace.0)));
        }
        let mut clause = KeyClause {
            name,
            algorithm: None,
            secret: None,
        };
        loop {
            let (word, at) = expect(&mut it, "`algorithm`, `secret` or `}`", brace.1)?;
            if word == "}" {
                break;
            }
            let value = expect(&mut it, "a value", at)?;
            let semi = expect(&mut it, "`;`", value.1)?;
            if semi.0 != ";" {
                return Err((semi.1, format!("expected `;`, found {:?}", semi.0)));
            }
            match word.as_str() {
                "algorithm" => clause.algorithm = Some(value),
                "secret" => clause.secret = Some(value),
                other => return Err((at, format!("unknown key field {other:?}"))),
            }
        }
        if let Some((t, _)) = it.as_slice().first()
            && t == ";"
        {
            it.next();
        }
        keys.push(clause);
    }
    Ok(keys)
}

impl Validator<'_> {
    /// Every `[[key]]`, inline or read from BIND-style key files.
    pub(super) fn keys(
        &mut self,
        raw: &[Spanned<RawKey>],
        read: &dyn Fn(&Path) -> std::io::Result<String>,
    ) -> Vec<TsigKey> {
        let mut keys: Vec<TsigKey> = Vec::new();
        for k in raw {
            let span = k.span();
            let k = k.get_ref();
            let found = match (&k.file, &k.name) {
                (Some(file), None) if k.algorithm.is_none() && k.secret.is_none() => {
                    self.key_file(file, read)
                }
                (None, Some(name)) => {
                    let (Some(alg), Some(secret)) = (&k.algorithm, &k.secret) else {
                        self.err(
                            &span,
                            format!("key {:?} needs `algorithm` and `secret`", name.get_ref()),
                            "e.g. algorithm = \"hmac-sha256\", secret = \"<base64>\" (tsig-keygen makes one)",
                        );
                        continue;
                    };
                    let key = self.key_parts(
                        (name.get_ref(), name.span()),
                        (alg.get_ref(), alg.span()),
                        (secret.get_ref(), secret.span()),
                    );
                    key.into_iter().collect()
                }
                _ => {
                    self.err(
                        &span,
                        "a [[key]] has either `file`, or `name`, `algorithm` and `secret`",
                        "point `file` at a BIND key file, or write the key inline",
                    );
                    continue;
                }
            };
            for key in found {
                if keys.iter().any(|k| k.name == key.name) {
                    self.err(
                        &span,
                        format!("TSIG key {} is defined twice", key.name),
                        "keep one definition per key name",
                    );
                } else {
                    keys.push(key);
                }
            }
        }
        keys
    }

    fn key_file(
        &mut self,
        file: &Spanned<String>,
        read: &dyn Fn(&Path) -> std::io::Result<String>,
    ) -> Vec<TsigKey> {
        let Some((path, text)) = self.read_named(
            file,
            read,
            "key file",
            "check the path; relative paths start at the config file's directory",
        ) else {
            return Vec::new();
        };
        let at = |line: usize, msg: String| {
            Problem::new(&path, line, 1, msg)
                .hint("write `key \"name\" { algorithm hmac-sha256; secret \"<base64>\"; };`")
        };
        let clauses = match parse_key_file(&text) {
            Ok(c) if c.is_empty() => {
                self.problems
                    .push(at(1, "the key file holds no `key` block".into()));
                return Vec::new();
            }
            Ok(c) => c,
            Err((line, msg)) => {
                self.problems.push(at(line, msg));
                return Vec::new();
            }
        };
        let mut keys = Vec::new();
        for c in clauses {
            let (Some(alg), Some(secret)) = (&c.algorithm, &c.secret) else {
                let msg = format!("key {:?} needs `algorithm` and `secret`", c.name.0);
                self.problems.push(at(c.name.1, msg));
                continue;
            };
            let before = self.problems.len();
            if let Some(k) = self.key_parts((&c.name.0, 0..0), (&alg.0, 0..0), (&secret.0, 0..0)) {
                keys.push(k);
            }
            // Point problems at the key file's lines, not the config.
            for p in &mut self.problems[before..] {
                (p.file, p.line, p.column) = (path.clone(), c.name.1, 1);
            }
        }
        keys
    }

    fn key_parts(
        &mut self,
        name: (&str, Range<usize>),
        alg: (&str, Range<usize>),
        secret: (&str, Range<usize>),
    ) -> Option<TsigKey> {
        let key_name = match Name::from_ascii(name.0) {
            Ok(mut n) if !name.0.is_empty() => {
                n.set_fqdn(true);
                Some(n.to_lowercase())
            }
            _ => {
                self.err(
                    &name.1,
                    format!("key name {:?} is not a domain name", name.0),
                    "name keys like hosts, e.g. \"xfr.example.com\"",
                );
                None
            }
        };
        let algorithm = ALGORITHMS
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(alg.0.trim_end_matches('.')))
            .map(|(_, a)| a.clone());
        if algorithm.is_none() {
            let words: Vec<&str> = ALGORITHMS.iter().map(|(w, _)| *w).collect();
            self.err(
                &alg.1,
                format!("TSIG algorithm {:?} is not supported", alg.0),
                format!("use one of {}", words.join(", ")),
            );
        }
        let bytes = match data_encoding::BASE64.decode(secret.0.as_bytes()) {
            Ok(b) if b.len() >= 16 => Some(b),
            Ok(_) => {
                self.err(
                    &secret.1,
                    "the TSIG secret is shorter than 16 bytes",
                    "use a random secret as long as the hash, e.g. from `tsig-keygen -a hmac-sha256`",
                );
                None
            }
            Err(e) => {
                self.err(
                    &secret.1,
                    format!("the TSIG secret is not base64: {e}"),
                    "copy the `secret` from tsig-keygen's output, quotes excluded",
                );
                None
            }
        };
        Some(TsigKey {
            name: key_name?,
            algorithm: algorithm?,
            secret: bytes?,
        })
    }

    /// Replication settings of one `[[zone]]`.
    /// `primaries` are the zone's, already read (none for a primary zone).
    pub(super) fn zone_policy(
        &mut self,
        z: &RawZone,
        keys: &[TsigKey],
        primaries: &[Remote],
    ) -> ZonePolicy {
        let serial = match &z.serial {
            None => SerialScheme::default(),
            Some(s) => SerialScheme::parse(s.get_ref()).unwrap_or_else(|| {
                let words: Vec<String> = SerialScheme::WORDS
                    .iter()
                    .map(|w| format!("{w:?}"))
                    .collect();
                self.err(
                    &s.span(),
                    format!("serial scheme {:?} is not known", s.get_ref()),
                    format!("use one of {}", words.join(", ")),
                );
                SerialScheme::default()
            }),
        };
        let rules = |v: &mut Self, list: &Option<Vec<Spanned<RawAccess>>>| -> Vec<AccessRule> {
            list.iter()
                .flatten()
                .filter_map(|r| v.access(r, keys))
                .collect()
        };
        let allow_transfer = rules(self, &z.allow_transfer);
        let notify = self.remotes(z.notify.as_deref().unwrap_or(&[]), keys, "notify");
        let mut allow_notify = rules(self, &z.allow_notify);
        if let Some(span) = z
            .allow_notify
            .as_ref()
            .and_then(|l| l.first())
            .map(|r| r.span())
            && z.primaries.is_none()
        {
            self.err(
                &span,
                "`allow_notify` only applies to secondary zones",
                "remove it, or add `primaries` to make this zone a secondary",
            );
        }
        if z.allow_notify.is_none() {
            // By default the primaries may tell us about new serials.
            allow_notify = primaries
                .iter()
                .map(|p| AccessRule {
                    from: vec![IpNet::from(canonical(p.addr.ip()))],
                    key: p.key.clone(),
                })
                .collect();
        }
        ZonePolicy {
            serial,
            allow_transfer,
            notify,
            allow_notify,
        }
    }

    fn access(&mut self, raw: &Spanned<RawAccess>, keys: &[TsigKey]) -> Option<AccessRule> {
        let r = raw.get_ref();
        if r.from.as_ref().is_none_or(|f| f.is_empty()) && r.key.is_none() {
            self.err(
                &raw.span(),
                "an access rule needs `from`, `key`, or both",
                "to allow anyone, say so: from = [\"0.0.0.0/0\", \"::/0\"]",
            );
            return None;
        }
        let mut from = Vec::new();
        for net in r.from.iter().flatten() {
            let text = net.get_ref();
            match text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            {
                Ok(n) => from.push(n.trunc()),
                Err(_) => self.err(
                    &net.span(),
                    format!("{text:?} is neither an IP address nor a network"),
                    "write e.g. \"192.0.2.10\", \"10.0.0.0/8\" or \"2001:db8::/32\"",
                ),
            }
        }
        let key = r.key.as_ref().and_then(|k| self.key_ref(k, keys));
        Some(AccessRule { from, key })
    }

    pub(super) fn remotes(
        &mut self,
        raw: &[Spanned<RawRemote>],
        keys: &[TsigKey],
        field: &str,
    ) -> Vec<Remote> {
        let mut out = Vec::new();
        for r in raw {
            let r = r.get_ref();
            let key = r.key.as_ref().and_then(|k| self.key_ref(k, keys));
            match r.address.get_ref().parse::<SocketAddr>() {
                Ok(addr) => out.push(Remote {
                    addr,
                    key,
                    source: self.query_source.for_peer(addr.ip()),
                }),
                Err(_) => self.err(
                    &r.address.span(),
                    format!("{field} address {:?} is not IP:port", r.address.get_ref()),
                    "write e.g. \"192.0.2.53:53\" or \"[2001:db8::53]:53\"",
                ),
            }
        }
        out
    }

    fn key_ref(&mut self, raw: &Spanned<String>, keys: &[TsigKey]) -> Option<Name> {
        let found = Name::from_ascii(raw.get_ref()).ok().and_then(|mut n| {
            n.set_fqdn(true);
            let n = n.to_lowercase();
            keys.iter().any(|k| k.name == n).then_some(n)
        });
        if found.is_none() {
            let known: Vec<String> = keys.iter().map(|k| k.name.to_string()).collect();
            self.err(
                &raw.span(),
                format!("TSIG key {:?} is not defined", raw.get_ref()),
                if known.is_empty() {
                    "define it in a [[key]] section".to_string()
                } else {
                    format!(
                        "define it in a [[key]] section; defined: {}",
                        known.join(", ")
                    )
                },
            );
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_in_bind_syntax_parse_with_comments() {
        let text = "# made by tsig-keygen\nkey \"xfr\" {\n\talgorithm hmac-sha256; // the default\n\tsecret \"c2VjcmV0c2VjcmV0c2VjcmV0\";\n};\n/* two */ key other { algorithm hmac-sha512; secret \"eA==\"; };\n";
        let keys = parse_key_file(text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].name.0, "xfr");
        assert_eq!(keys[0].algorithm.as_ref().unwrap().0, "hmac-sha256");
        assert_eq!(
            keys[0].secret.as_ref().unwrap(),
            &("c2VjcmV0c2VjcmV0c2VjcmV0".to_string(), 4)
        );
        assert_eq!(keys[1].name, ("other".to_string(), 6));
    }

    #[test]
    fn key_file_errors_name_the_line() {
        assert_eq!(
            parse_key_file("key \"x\" {\n algorithm hmac-sha256\n secret \"a\";\n};")
                .unwrap_err()
                .0,
            3
        );
        assert!(
            parse_key_file("key \"x\" {")
                .unwrap_err()
                .1
                .contains("file ends")
        );
        assert!(
            parse_key_file("zone \"x\" {};")
                .unwrap_err()
                .1
                .contains("expected `key`")
        );
    }

    #[test]
    fn access_rules_need_every_condition_they_name() {
        let xfr = Name::from_ascii("xfr.").unwrap();
        let lan: IpNet = "10.0.0.0/8".parse().unwrap();
        let by_net = AccessRule {
            from: vec![lan],
            key: None,
        };
        let by_key = AccessRule {
            from: vec![],
            key: Some(xfr.clone()),
        };
        let both = AccessRule {
            from: vec![lan],
            key: Some(xfr.clone()),
        };
        let inside: IpAddr = "10.1.2.3".parse().unwrap();
        let outside: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(by_net.allows(inside, None));
        assert!(!by_net.allows(outside, Some(&xfr)));
        assert!(by_key.allows(outside, Some(&xfr)));
        assert!(!by_key.allows(inside, None));
        assert!(both.allows(inside, Some(&xfr)));
        assert!(!both.allows(outside, Some(&xfr)) && !both.allows(inside, None));
        assert!(!allowed(&[], inside, Some(&xfr)), "no rules: refused");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert!(
            by_net.allows(mapped, None),
            "v4-mapped sources match v4 networks"
        );
    }
}
