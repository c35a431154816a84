//! Finds which master-file line a problem comes from, by cutting the text
//! into logical records (a record may span lines inside parentheses) and
//! re-parsing growing prefixes.

/// Each logical record's first line (1-based) and the byte offset just past it.
fn logical_records(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut line, mut depth, mut quoted, mut escaped, mut comment) =
        (1, 0u32, false, false, false);
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c == '\n' {
            comment = false;
            if depth == 0
                && !quoted
                && let Some(first) = start.take()
            {
                out.push((first, i + 1));
            }
            line += 1;
            continue;
        }
        if comment {
            continue;
        }
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                comment = true;
                continue;
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
        if !c.is_whitespace() && start.is_none() {
            start = Some(line);
        }
    }
    if let Some(first) = start {
        out.push((first, text.len()));
    }
    out
}

/// The first record whose inclusion makes `fails` report an error, with that error.
pub fn first_failing_record(
    text: &str,
    fails: impl Fn(&str) -> Option<String>,
) -> Option<(usize, String)> {
    logical_records(text)
        .into_iter()
        .find_map(|(line, end)| fails(&text[..end]).map(|e| (line, e)))
}

/// The line of the first record at which `holds` becomes true for the prefix
/// up to and including it. `holds` must be monotonic in the prefix length.
pub fn first_record_where(text: &str, holds: impl Fn(&str) -> bool) -> Option<usize> {
    let records = logical_records(text);
    let idx = records.partition_point(|&(_, end)| !holds(&text[..end]));
    records.get(idx).map(|&(line, _)| line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parentheses_and_comments_span_lines() {
        let text = "a IN A 1.2.3.4\n\n@ SOA x y (1 ; serial\n 2 3 4 5 )\nb IN TXT \"a;b\"\n";
        let lines: Vec<usize> = logical_records(text).into_iter().map(|(l, _)| l).collect();
        assert_eq!(lines, vec![1, 3, 5]);
    }
}
