//! Cuts a master file into its entries (RFC 1035 §5.1) in one pass, keeping
//! the line each starts on. An entry is one line, or several joined by
//! parentheses or a quoted string that spans lines; blank and comment-only
//! lines are skipped.
//!
//! The rules are those of RFC 1035 as BIND, Knot and NSD read it, and of
//! hickory-proto's lexer (which parses each entry afterwards) outside
//! parentheses: a `"` opens a quoted string at the start of a word, where `\`
//! escapes the next character; `(` opens a list at the start of a word;
//! inside a list newlines are blanks and `;` starts a comment; a word ends at
//! a blank or `;` (and, in a list, at `)`). hickory does not know quoted
//! strings inside a list (it would keep the quotes and take a `;` inside one
//! for a comment), so an entry with a list is handed to it `flatten`ed onto
//! one line.

/// One entry of a master file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// 1-based line the entry starts on.
    pub line: usize,
    /// The entry from the start of its first line, without the final newline.
    pub text: &'a str,
    /// Starts with a blank: the owner is the previous entry's.
    pub blank_owner: bool,
    /// Starts with `$` in the first column: a control entry.
    pub directive: bool,
    /// Holds a parenthesised list.
    pub list: bool,
}

/// Iterator over the entries of a master file.
pub struct Entries<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
}

impl<'a> Entries<'a> {
    pub fn new(text: &'a str) -> Self {
        Entries {
            text,
            pos: 0,
            line: 1,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Between words, outside parentheses.
    Top,
    /// Inside an unquoted word; `list` when inside parentheses.
    Word { list: bool },
    /// After `$`: upper-case letters belong to it.
    Dollar,
    /// Inside a quoted string; `escaped` right after a `\`, `digits` counts
    /// the rest of a `\DDD` escape.
    Quote {
        list: bool,
        escaped: bool,
        digits: u8,
    },
    /// Between words inside parentheses.
    List,
    /// In a comment; `list` when the comment is inside parentheses.
    Comment { list: bool },
}

/// The mode after `ch` in `mode`, and whether `ch` must be read again in
/// the new mode (it ended a word, or a comment outside a list). A newline in
/// `Top` ends the entry and is left to the caller.
fn step(mode: Mode, ch: char) -> (Mode, bool) {
    let quote = |list| Mode::Quote {
        list,
        escaped: false,
        digits: 0,
    };
    match mode {
        Mode::Top => (
            match ch {
                ';' => Mode::Comment { list: false },
                '(' => Mode::List,
                '"' => quote(false),
                '$' => Mode::Dollar,
                '@' => Mode::Top,
                ch if ch.is_whitespace() => Mode::Top,
                _ => Mode::Word { list: false },
            },
            false,
        ),
        Mode::Dollar if ch.is_ascii_uppercase() => (Mode::Dollar, false),
        Mode::Dollar => (Mode::Top, true),
        Mode::Word { list } => {
            if ch.is_whitespace() || ch == ';' || (list && ch == ')') {
                (if list { Mode::List } else { Mode::Top }, true)
            } else {
                (mode, false)
            }
        }
        Mode::Quote {
            list,
            escaped,
            digits,
        } => (
            if digits > 0 {
                Mode::Quote {
                    list,
                    escaped: false,
                    digits: digits - 1,
                }
            } else if escaped {
                Mode::Quote {
                    list,
                    escaped: false,
                    digits: if ch.is_ascii_digit() { 2 } else { 0 },
                }
            } else if ch == '\\' {
                Mode::Quote {
                    list,
                    escaped: true,
                    digits: 0,
                }
            } else if ch == '"' {
                if list { Mode::List } else { Mode::Top }
            } else {
                mode
            },
            false,
        ),
        Mode::List => (
            match ch {
                ';' => Mode::Comment { list: true },
                ')' => Mode::Top,
                '"' => quote(true),
                ch if ch.is_whitespace() => Mode::List,
                _ => Mode::Word { list: true },
            },
            false,
        ),
        Mode::Comment { list } if ch == '\n' => {
            if list {
                (Mode::List, false)
            } else {
                (Mode::Top, true)
            }
        }
        Mode::Comment { .. } => (mode, false),
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        loop {
            let rest = self.text.get(self.pos..)?;
            if rest.is_empty() {
                return None;
            }
            let start = self.pos;
            let first_line = self.line;
            let first = rest.chars().next();
            let blank_owner = first.is_some_and(|c| c.is_whitespace() && c != '\n' && c != '\r');
            let directive = first == Some('$');
            let (mut content, mut list) = (false, false);
            let mut mode = Mode::Top;
            // Where the entry ends (exclusive) and where the next one starts.
            let (mut end, mut next) = (self.text.len(), self.text.len());
            let mut chars = rest.char_indices().peekable();
            'entry: while let Some((i, ch)) = chars.next() {
                if ch == '\n' {
                    self.line = self.line.saturating_add(1);
                }
                let mut again = true;
                while again {
                    if mode == Mode::Top {
                        if ch == '\n' {
                            end = start + i;
                            next = start + i + 1;
                            break 'entry;
                        }
                        content |= !ch.is_whitespace() && ch != ';';
                        list |= ch == '(';
                    }
                    (mode, again) = step(mode, ch);
                }
                // Skip ahead inside comments: nothing there matters but the newline.
                if let Mode::Comment { .. } = mode {
                    while chars.peek().is_some_and(|&(_, c)| c != '\n') {
                        chars.next();
                    }
                }
            }
            self.pos = next;
            if content {
                let text = self.text.get(start..end).unwrap_or("");
                return Some(Entry {
                    line: first_line,
                    text: text.strip_suffix('\r').unwrap_or(text),
                    blank_owner,
                    directive,
                    list,
                });
            }
        }
    }
}

/// `text` (one entry) with its parentheses, the comments inside them and the
/// newlines between its words made blanks, so that it reads as one line;
/// quoted strings are kept whole, newlines and all.
pub fn flatten(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut mode = Mode::Top;
    for ch in text.chars() {
        let mut again = true;
        while again {
            let before = mode;
            (mode, again) = step(mode, ch);
            if again {
                continue;
            }
            match before {
                Mode::Top if ch == '(' => out.push(' '),
                Mode::List if ch.is_whitespace() || ch == ';' || ch == ')' => out.push(' '),
                Mode::Top if ch == ';' => {}
                Mode::Comment { .. } => {}
                _ => out.push(ch),
            }
        }
    }
    out
}

/// The words of a control entry (`$ORIGIN`, `$TTL`, `$INCLUDE`): separated by
/// blanks, a `"quoted string"` is one word (with `\X` escapes undone), and a
/// comment ends the list.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == ';' {
            break;
        } else if c == '"' {
            chars.next();
            let mut word = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => {
                        if let Some(n) = chars.next() {
                            word.push(n);
                        }
                    }
                    c => word.push(c),
                }
            }
            out.push(word);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == ';' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            out.push(word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<usize> {
        Entries::new(text).map(|e| e.line).collect()
    }

    #[test]
    fn parentheses_and_comments_span_lines() {
        let text = "a IN A 1.2.3.4\n\n@ SOA x y (1 ; serial\n 2 3 4 5 )\nb IN TXT \"a;b\"\n";
        assert_eq!(lines(text), vec![1, 3, 5]);
        let e: Vec<_> = Entries::new(text).collect();
        assert_eq!(e[1].text, "@ SOA x y (1 ; serial\n 2 3 4 5 )");
        assert_eq!(e[2].text, "b IN TXT \"a;b\"");
    }

    #[test]
    fn quoted_strings_span_lines_and_escape() {
        let text = "a TXT \"one\ntwo \\\" (\"\nb TXT x\"y ( 1\n2 )\n  TXT z\n$TTL 5 ; c\n";
        let e: Vec<_> = Entries::new(text).collect();
        assert_eq!(
            e.iter().map(|e| e.line).collect::<Vec<_>>(),
            vec![1, 3, 5, 6]
        );
        assert!(e[2].blank_owner && !e[2].directive);
        assert!(e[3].directive);
        assert_eq!(words(e[3].text), vec!["$TTL", "5"]);
    }

    #[test]
    fn blank_and_comment_lines_are_skipped() {
        let text = "\n   \n; only a comment\n  ; indented comment\r\nwww A 1.2.3.4\r\n";
        let e: Vec<_> = Entries::new(text).collect();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].line, 5);
        assert_eq!(e[0].text, "www A 1.2.3.4");
    }

    #[test]
    fn unclosed_quote_runs_to_the_end() {
        let text = "a A 1.2.3.4\nb TXT \"open\nc A 1.2.3.4\n";
        let e: Vec<_> = Entries::new(text).collect();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].line, 2);
        assert_eq!(e[1].text, "b TXT \"open\nc A 1.2.3.4\n");
    }

    #[test]
    fn quoted_strings_inside_parentheses_are_whole() {
        // As in BIND, Knot and NSD: `)` and `;` inside a quoted string are
        // characters, also inside a list.
        let text = "a TXT ( \"x ) y\" ; c\n \"p;q\" )\nb A 1.2.3.4\n";
        assert_eq!(lines(text), vec![1, 3]);
        let e = Entries::new(text).next().unwrap();
        assert!(e.list);
        assert_eq!(flatten(e.text), "a TXT   \"x ) y\"   \"p;q\"  ");
        let soa = "@ SOA ns1 h (\n 1 ; serial\n 2 3 4 5 ) ; end";
        assert_eq!(flatten(soa), "@ SOA ns1 h    1   2 3 4 5   ");
    }

    #[test]
    fn quoted_words_in_directives() {
        assert_eq!(
            words("$INCLUDE \"my \\\"zone\\\".inc\" sub ; c"),
            vec!["$INCLUDE", "my \"zone\".inc", "sub"]
        );
    }
}
