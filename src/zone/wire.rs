//! Whether a zone's records can go on the wire: each record's RDATA is
//! encoded once at load, and each RRset must fit in one DNS message.
//!
//! hickory's text parser accepts a TXT character-string of any length and
//! an RDATA of any size; either would make the answer impossible to build.

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

/// Most bytes one DNS message (over TCP) may hold.
pub const MAX_MESSAGE: usize = 65_535;
/// Most bytes of one record's RDATA (its RDLENGTH is 16 bits).
pub const MAX_RDATA: usize = 65_535;
/// Most bytes of one character-string (its length is one octet).
pub const MAX_CHARACTER_STRING: usize = 255;
/// Room kept in a response for the header, the question's type and class,
/// and an OPT record with options such as a cookie.
const RESPONSE_OVERHEAD: usize = 12 + 4 + 64;

pub const SPLIT_HINT: &str =
    "split it into several quoted strings of at most 255 bytes: \"part1\" \"part2\"";

/// The encoded length of `record`'s RDATA, or why it cannot be served.
pub fn rdata_len(record: &Record) -> Result<usize, (String, &'static str)> {
    let name = &record.name;
    if let RData::TXT(txt) = &record.data
        && txt.txt_data.is_empty()
    {
        // RFC 1035 §3.3.14: one or more strings. Empty data is malformed on
        // the wire; NSD refuses the line, and a secondary the transfer.
        return Err((
            format!("TXT record {name} holds no character-string"),
            "give it a value in quotes, e.g. \"\" for an empty string",
        ));
    }
    if let RData::TXT(txt) = &record.data
        && let Some(long) = txt.txt_data.iter().find(|s| s.len() > MAX_CHARACTER_STRING)
    {
        return Err((
            format!(
                "TXT record {name} holds a character-string of {} bytes; one string holds at most {MAX_CHARACTER_STRING}",
                long.len()
            ),
            SPLIT_HINT,
        ));
    }
    if let RData::TXT(txt) = &record.data {
        let len = txt
            .txt_data
            .iter()
            .map(|s| s.len().saturating_add(1))
            .fold(0usize, usize::saturating_add);
        if len > MAX_RDATA {
            return Err(too_long(record, len));
        }
    }
    let mut bytes = Vec::new();
    let mut encoder = BinEncoder::new(&mut bytes);
    if let Err(e) = record.data.emit(&mut encoder) {
        return Err((
            format!(
                "{} record {name} cannot be encoded: {e}",
                record.record_type()
            ),
            "check the record's data against its type's syntax",
        ));
    }
    if bytes.len() > MAX_RDATA {
        return Err(too_long(record, bytes.len()));
    }
    Ok(bytes.len())
}

fn too_long(record: &Record, len: usize) -> (String, &'static str) {
    (
        format!(
            "{} record {} has {len} bytes of data; one record holds at most {MAX_RDATA}",
            record.record_type(),
            record.name
        ),
        "shorten the data, or spread it over several records (a response holds at most 65,535 bytes)",
    )
}

/// Bytes of `name` on the wire, uncompressed.
fn name_len(name: &Name) -> usize {
    name.iter()
        .map(|label| label.len().saturating_add(1))
        .fold(1usize, usize::saturating_add)
}

/// Why the answer for the RRset `records` (one owner, one type, RDATA
/// lengths in `rdata_lens`) cannot fit in one DNS message, if it cannot.
pub fn rrset_problem(
    owner: &Name,
    rtype: RecordType,
    records: &[&Record],
    rdata_lens: &[usize],
) -> Option<String> {
    // The owner is compressed to a pointer to the question in every record:
    // 2 bytes, then type, class, TTL and RDLENGTH.
    let estimate = rdata_lens.iter().map(|l| l.saturating_add(12)).fold(
        RESPONSE_OVERHEAD.saturating_add(name_len(owner)),
        usize::saturating_add,
    );
    if estimate <= MAX_MESSAGE {
        return None;
    }
    // Names inside the data may compress: measure the real answer.
    let mut message = Message::new(0, MessageType::Response, OpCode::Query);
    message.add_query(Query::query(owner.clone(), rtype));
    message.add_answers(records.iter().map(|r| (*r).clone()));
    // hickory truncates (and sets TC) rather than fail when a message is full.
    let size = match message.to_vec() {
        Ok(v) if v.get(2).is_some_and(|flags| flags & 0x02 == 0) => {
            v.len().saturating_add(RESPONSE_OVERHEAD - 16)
        }
        _ => usize::MAX,
    };
    (size > MAX_MESSAGE).then(|| {
        format!(
            "the {rtype} records at {owner} make an answer of about {} bytes; a DNS message holds at most {MAX_MESSAGE}",
            if size == usize::MAX { estimate } else { size }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::TXT;

    fn txt(strings: Vec<Vec<u8>>) -> Record {
        Record::from_rdata(
            Name::from_ascii("t.example.com.").unwrap(),
            60,
            RData::TXT(TXT::from_bytes(strings.iter().map(Vec::as_slice).collect())),
        )
    }

    #[test]
    fn long_character_strings_are_refused() {
        assert_eq!(rdata_len(&txt(vec![vec![b'a'; 255]])), Ok(256));
        let (message, hint) = rdata_len(&txt(vec![vec![b'a'; 256]])).unwrap_err();
        assert!(message.contains("256 bytes"), "{message}");
        assert_eq!(hint, SPLIT_HINT);
    }

    #[test]
    fn rdata_over_64k_is_refused() {
        let r = txt(vec![vec![b'a'; 255]; 257]);
        let (message, _) = rdata_len(&r).unwrap_err();
        assert!(message.contains("65792 bytes"), "{message}");
    }

    #[test]
    fn rrsets_must_fit_one_message() {
        let big = txt(vec![vec![b'a'; 255]; 200]);
        let len = rdata_len(&big).unwrap();
        let one = [&big];
        assert_eq!(
            rrset_problem(&big.name, RecordType::TXT, &one, &[len]),
            None
        );
        let mut second = txt(vec![vec![b'b'; 255]; 200]);
        second.name = big.name.clone();
        let two = [&big, &second];
        let p = rrset_problem(&big.name, RecordType::TXT, &two, &[len, len]).unwrap();
        assert!(p.contains("a DNS message holds at most 65535"), "{p}");
    }
}
