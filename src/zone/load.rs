//! Reads a master file and the files it includes into records, each with the
//! file and line it came from, in one pass.
//!
//! The file is cut into entries (`entries.rs`); `$ORIGIN`, `$TTL` and
//! `$INCLUDE` are handled here, and each record entry is parsed on its own by
//! hickory-proto's `Parser` (flattened onto one line if it has parentheses),
//! given the origin, the TTL in force and, for an entry that starts with a
//! blank, a stand-in owner that is then replaced by the previous owner. So a problem is found at its line without re-parsing,
//! and hickory never opens a file itself.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::txt::{Parser, parse_ttl};

use super::entries::{Entries, Entry, flatten, words};
use super::source::{MAX_INCLUDE_DEPTH, MAX_INCLUDES, MAX_ZONE_BYTES, human_bytes};
use crate::config::error::Problem;

/// Most problems reported for one zone; the rest are counted.
pub const MAX_PROBLEMS: usize = 100;

const SYNTAX_HINT: &str = "write RFC 1035 master-file syntax: `name [ttl] [class] type rdata`; \
                           quote TXT strings and close every parenthesis";

/// Where a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// Index into `Loaded::files`.
    pub file: usize,
    pub line: usize,
}

/// Problems of one zone, at most `MAX_PROBLEMS` of them kept.
#[derive(Debug, Default)]
pub struct Problems {
    pub kept: Vec<Problem>,
    pub dropped: usize,
}

impl Problems {
    pub fn push(&mut self, p: Problem) {
        if self.kept.len() < MAX_PROBLEMS {
            self.kept.push(p);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    /// The kept problems by file and line, and one more line counting the rest.
    pub fn into_vec(mut self, file: &Path) -> Vec<Problem> {
        self.kept
            .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        if self.dropped > 0 {
            self.kept.push(
                Problem::new(
                    file,
                    0,
                    0,
                    format!(
                        "{} more problem(s) in this zone are not shown",
                        self.dropped
                    ),
                )
                .hint(format!(
                    "fix the first {MAX_PROBLEMS} and run `txtfailover check` again"
                )),
            );
        }
        self.kept
    }
}

/// Everything read from one zone's files.
pub struct Loaded {
    /// The zone file first, then included files in the order met.
    pub files: Vec<PathBuf>,
    pub records: Vec<(Record, Place)>,
}

/// Reads the zone whose top file `file` holds `text`. `read` fetches
/// included files (relative names start at the including file's directory).
pub fn load(
    text: &str,
    file: &Path,
    origin: &Name,
    read: &dyn Fn(&Path) -> io::Result<String>,
    problems: &mut Problems,
) -> Loaded {
    let mut loader = Loader {
        read,
        files: vec![file.to_path_buf()],
        records: Vec::new(),
        problems,
        bytes: 0,
        includes: 0,
        default_ttl: None,
        last_ttl: None,
        last_owner: None,
    };
    if loader.count_bytes(text.len(), 0, 0) {
        loader.file(text, 0, origin.clone(), 0);
    }
    Loaded {
        files: loader.files,
        records: loader.records,
    }
}

struct Loader<'a> {
    read: &'a dyn Fn(&Path) -> io::Result<String>,
    files: Vec<PathBuf>,
    records: Vec<(Record, Place)>,
    problems: &'a mut Problems,
    /// Bytes of zone text read so far, all files together.
    bytes: u64,
    /// `$INCLUDE` entries followed so far.
    includes: usize,
    /// Set by `$TTL`.
    default_ttl: Option<u32>,
    /// The last record's TTL, used when there is no `$TTL` (RFC 1035 §5.1).
    last_ttl: Option<u32>,
    last_owner: Option<Name>,
}

impl Loader<'_> {
    fn problem(&mut self, file: usize, line: usize, message: String, hint: &str) {
        let path = self.files.get(file).cloned().unwrap_or_default();
        self.problems
            .push(Problem::new(&path, line, 1, message).hint(hint));
    }

    /// Adds `len` bytes to the zone's total; false (and a problem) past the limit.
    fn count_bytes(&mut self, len: usize, file: usize, line: usize) -> bool {
        self.bytes = self
            .bytes
            .saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
        if self.bytes > MAX_ZONE_BYTES {
            self.problem(
                file,
                line,
                format!(
                    "the zone's text is larger than {}, the most one zone may hold (its file and every included file together)",
                    human_bytes(MAX_ZONE_BYTES)
                ),
                "split the data into several zones, or remove what is not served",
            );
            return false;
        }
        true
    }

    /// Reads one file's entries with `origin` as the origin; an `$ORIGIN`
    /// inside lasts until the end of this file (RFC 1035 §5.1).
    fn file(&mut self, text: &str, file: usize, mut origin: Name, depth: usize) {
        for entry in Entries::new(text) {
            if entry.directive {
                if !self.directive(&entry, file, &mut origin, depth) {
                    return;
                }
            } else {
                self.record(&entry, file, &origin);
            }
        }
    }

    /// Handles `$ORIGIN`, `$TTL` or `$INCLUDE`; false to stop reading the zone.
    fn directive(&mut self, entry: &Entry, file: usize, origin: &mut Name, depth: usize) -> bool {
        let words = words(entry.text);
        let line = entry.line;
        let keyword = words
            .first()
            .map(|w| w.to_ascii_uppercase())
            .unwrap_or_default();
        match keyword.as_str() {
            "$ORIGIN" => {
                let [_, name] = words.as_slice() else {
                    self.problem(
                        file,
                        line,
                        "$ORIGIN takes exactly one domain name".into(),
                        "write `$ORIGIN example.com.`",
                    );
                    return true;
                };
                match Name::parse(name, Some(origin)) {
                    Ok(mut n) => {
                        n.set_fqdn(true);
                        *origin = n;
                    }
                    Err(e) => self.problem(
                        file,
                        line,
                        format!("$ORIGIN {name:?} is not a domain name: {e}"),
                        "write `$ORIGIN example.com.`",
                    ),
                }
            }
            "$TTL" => {
                let parsed = match words.as_slice() {
                    [_, ttl] => parse_ttl(ttl).ok(),
                    _ => None,
                };
                match parsed {
                    Some(ttl) => self.default_ttl = Some(ttl),
                    None => self.problem(
                        file,
                        line,
                        format!("bad $TTL entry: {:?}", entry.text.trim()),
                        "write `$TTL 3600` (seconds, or units such as 1h30m)",
                    ),
                }
            }
            "$INCLUDE" => return self.include(&words, file, line, origin, depth),
            _ => self.problem(
                file,
                line,
                format!(
                    "unknown control entry {}",
                    words.first().map_or("$", String::as_str)
                ),
                "only $ORIGIN, $TTL and $INCLUDE are understood; write the records out in full",
            ),
        }
        true
    }

    fn include(
        &mut self,
        words: &[String],
        file: usize,
        line: usize,
        origin: &Name,
        depth: usize,
    ) -> bool {
        let (target, new_origin) = match words {
            [_, target] => (target, origin.clone()),
            [_, target, name] => match Name::parse(name, Some(origin)) {
                Ok(mut n) => {
                    n.set_fqdn(true);
                    (target, n)
                }
                Err(e) => {
                    self.problem(
                        file,
                        line,
                        format!("$INCLUDE origin {name:?} is not a domain name: {e}"),
                        "write `$INCLUDE file [origin]`",
                    );
                    return true;
                }
            },
            _ => {
                self.problem(
                    file,
                    line,
                    "$INCLUDE takes a file name and an optional origin".into(),
                    "write `$INCLUDE file [origin]`",
                );
                return true;
            }
        };
        if depth >= MAX_INCLUDE_DEPTH {
            self.problem(
                file,
                line,
                format!("$INCLUDE nested more than {MAX_INCLUDE_DEPTH} deep"),
                "a file may be including itself; flatten the chain of includes",
            );
            return false;
        }
        self.includes = self.includes.saturating_add(1);
        if self.includes > MAX_INCLUDES {
            self.problem(
                file,
                line,
                format!("more than {MAX_INCLUDES} $INCLUDE entries in one zone"),
                "merge the included files",
            );
            return false;
        }
        let path = {
            let t = Path::new(target);
            if t.is_absolute() {
                t.to_path_buf()
            } else {
                let here = self.files.get(file).map(PathBuf::as_path);
                here.and_then(Path::parent)
                    .unwrap_or(Path::new("."))
                    .join(t)
            }
        };
        let text = match (self.read)(&path) {
            Ok(text) => text,
            Err(e) => {
                self.problem(
                    file,
                    line,
                    format!("cannot read included file {}: {e}", path.display()),
                    "point $INCLUDE at a regular file; relative names start at the including file's directory",
                );
                return true;
            }
        };
        if !self.count_bytes(text.len(), file, line) {
            return false;
        }
        let index = self.files.len();
        self.files.push(path);
        self.file(&text, index, new_origin, depth.saturating_add(1));
        true
    }

    fn record(&mut self, entry: &Entry, file: usize, origin: &Name) {
        let line = entry.line;
        let flat = entry.list.then(|| flatten(entry.text));
        let text = flat.as_deref().unwrap_or(entry.text);
        // What hickory reads has newlines only inside quoted strings (see
        // entries.rs); should a control entry slip through at a line start,
        // hickory must not open a file itself.
        if text.contains("\n$") {
            self.problem(
                file,
                line,
                "a line starting with `$` inside a quoted string".into(),
                "close the quoted string before it",
            );
            return;
        }
        let ttl = self.default_ttl.or(self.last_ttl);
        let inherit = entry.blank_owner && self.last_owner.is_some();
        let chunk: Cow<'_, str> = if ttl.is_none() && !inherit {
            Cow::Borrowed(text)
        } else {
            let mut s = String::with_capacity(text.len().saturating_add(24));
            if let Some(ttl) = ttl {
                let _ = writeln!(s, "$TTL {ttl}");
            }
            if inherit {
                // A stand-in owner, replaced below: no name is printed and re-parsed.
                s.push('@');
            }
            s.push_str(text);
            Cow::Owned(s)
        };
        let parsed = Parser::new(chunk, None, Some(origin.clone())).parse();
        let sets = match parsed {
            Ok((_, sets)) => sets,
            Err(e) => {
                self.problem(
                    file,
                    line,
                    format!("zone file does not parse: {e}"),
                    SYNTAX_HINT,
                );
                return;
            }
        };
        let mut any = false;
        let mut rtype = None;
        for set in sets.into_values() {
            for mut record in set.into_iter() {
                rtype.get_or_insert(record.record_type());
                if inherit && let Some(owner) = &self.last_owner {
                    record.name = owner.clone();
                }
                if self.default_ttl.is_none() {
                    self.last_ttl = Some(record.ttl);
                }
                self.last_owner = Some(record.name.clone());
                self.records.push((record, Place { file, line }));
                any = true;
            }
        }
        if !any {
            self.problem(
                file,
                line,
                format!("no record type in {:?}", first_line(entry.text)),
                SYNTAX_HINT,
            );
        }
        if let Some((rtype, extra)) =
            rtype.and_then(|t| extra_words(text, entry.blank_owner, t).map(|n| (t, n)))
        {
            self.problem(
                file,
                line,
                format!(
                    "{rtype} record {:?} has {extra} word(s) after its data",
                    first_line(entry.text)
                ),
                "remove them, or write each value as a record of its own line; a TTL goes before the type: `name ttl IN type data`",
            );
        }
    }
}

/// How many words follow the data of a record whose type takes a fixed
/// number of them. hickory reads what the type needs and ignores the rest,
/// so `www IN A 192.0.2.1 300` was served as 192.0.2.1 without a word;
/// BIND, Knot and NSD refuse the line. None when there are none too many,
/// or the line is not plain enough to count (escapes, generic `\#` data).
fn extra_words(text: &str, blank_owner: bool, rtype: RecordType) -> Option<usize> {
    let want = match rtype {
        RecordType::A | RecordType::AAAA | RecordType::NS | RecordType::CNAME | RecordType::PTR => {
            1
        }
        RecordType::MX => 2,
        RecordType::SRV => 4,
        RecordType::SOA => 7,
        _ => return None,
    };
    let words = words(text);
    if words.iter().any(|w| w.contains('\\')) {
        return None;
    }
    let mnemonic = rtype.to_string();
    let mut rest = words.iter().skip(usize::from(!blank_owner));
    // A TTL and a class, in either order, may come before the type.
    for _ in 0..3 {
        let word = rest.next()?;
        if word.eq_ignore_ascii_case(&mnemonic) {
            let count = rest.count();
            return count.checked_sub(want).filter(|n| *n > 0);
        }
        let class = ["IN", "CH", "HS", "CS"]
            .iter()
            .any(|c| word.eq_ignore_ascii_case(c));
        if !class && !word.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
    }
    None
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}
