//! Cuts a master file into its entries (RFC 1035 §5.1) in one pass, keeping
//! the line each starts on. An entry is one line, or several joined by
//! parentheses or a quoted string that spans lines; blank and comment-only
//! lines are skipped.
//!
//! The rules follow hickory-proto's lexer, which parses each entry afterwards,
//! so both agree on where an entry ends: a `"` opens a quoted string only at
//! the start of a word and outside parentheses, where `\` escapes the next
//! character; `(` opens a list only at the start of a word; inside a list
//! newlines are blanks and `;` starts a comment; a word ends at a blank or
//! `;` (and, in a list, at `)`).

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
    Quote { escaped: bool, digits: u8 },
    /// Between words inside parentheses.
    List,
    /// In a comment; `list` when the comment is inside parentheses.
    Comment { list: bool },
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
            let mut content = false;
            let mut mode = Mode::Top;
            // Where the entry ends (exclusive) and where the next one starts.
            let mut end = self.text.len();
            let mut next = self.text.len();
            let mut done = false;
            let mut chars = rest.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                if c == '\n' {
                    self.line = self.line.saturating_add(1);
                }
                // A character can end a word and then count as the next
                // token, so words hand it back to `Top` or `List` below.
                let mut c = Some(c);
                while let Some(ch) = c.take() {
                    mode = match mode {
                        Mode::Top => match ch {
                            '\n' => {
                                end = start + i;
                                next = start + i + 1;
                                done = true;
                                break;
                            }
                            ';' => Mode::Comment { list: false },
                            '(' => {
                                content = true;
                                Mode::List
                            }
                            '"' => {
                                content = true;
                                Mode::Quote {
                                    escaped: false,
                                    digits: 0,
                                }
                            }
                            '$' => {
                                content = true;
                                Mode::Dollar
                            }
                            '@' => {
                                content = true;
                                Mode::Top
                            }
                            ch if ch.is_whitespace() => Mode::Top,
                            _ => {
                                content = true;
                                Mode::Word { list: false }
                            }
                        },
                        Mode::Dollar => {
                            if ch.is_ascii_uppercase() {
                                Mode::Dollar
                            } else {
                                c = Some(ch);
                                Mode::Top
                            }
                        }
                        Mode::Word { list } => {
                            if ch.is_whitespace() || ch == ';' || (list && ch == ')') {
                                c = Some(ch);
                                if list { Mode::List } else { Mode::Top }
                            } else {
                                Mode::Word { list }
                            }
                        }
                        Mode::Quote { escaped, digits } => {
                            if digits > 0 {
                                Mode::Quote {
                                    escaped: false,
                                    digits: digits - 1,
                                }
                            } else if escaped {
                                Mode::Quote {
                                    escaped: false,
                                    digits: if ch.is_ascii_digit() { 2 } else { 0 },
                                }
                            } else if ch == '\\' {
                                Mode::Quote {
                                    escaped: true,
                                    digits: 0,
                                }
                            } else if ch == '"' {
                                Mode::Top
                            } else {
                                Mode::Quote {
                                    escaped: false,
                                    digits: 0,
                                }
                            }
                        }
                        Mode::List => match ch {
                            ';' => Mode::Comment { list: true },
                            ')' => Mode::Top,
                            ch if ch.is_whitespace() => Mode::List,
                            _ => Mode::Word { list: true },
                        },
                        Mode::Comment { list } => {
                            if ch == '\n' {
                                if list {
                                    Mode::List
                                } else {
                                    c = Some(ch);
                                    Mode::Top
                                }
                            } else {
                                Mode::Comment { list }
                            }
                        }
                    };
                }
                if done {
                    break;
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
                });
            }
        }
    }
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
    fn quotes_inside_parentheses_are_plain_characters() {
        // hickory does not open a quoted string inside a list: `)` closes
        // the list, and a `;` starts a comment (which hides a later `)`).
        assert_eq!(lines("a TXT ( \"x ) y\"\nb A 1.2.3.4\n"), vec![1, 2]);
        assert_eq!(lines("a TXT ( \"x;y )\"\nb A 1.2.3.4\n"), vec![1]);
    }

    #[test]
    fn quoted_words_in_directives() {
        assert_eq!(
            words("$INCLUDE \"my \\\"zone\\\".inc\" sub ; c"),
            vec!["$INCLUDE", "my \"zone\".inc", "sub"]
        );
    }
}
