//! Configuration problems, each pinned to a file and line so an operator can
//! go straight to the mistake.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One thing wrong with the configuration or a zone file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no single place (e.g. a missing file).
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(file: &Path, line: usize, column: usize, message: impl Into<String>) -> Self {
        Problem {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Everything wrong with a configuration, reported together so one run of
/// `txtfailover check` shows all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<Problem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Maps byte offsets of one source text to 1-based line and column.
pub struct SourceMap<'a> {
    pub file: &'a Path,
    text: &'a str,
}

impl<'a> SourceMap<'a> {
    pub fn new(file: &'a Path, text: &'a str) -> Self {
        SourceMap { file, text }
    }

    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |s| s.chars().count()) + 1;
        (line, column)
    }

    pub fn at(&self, span: &Range<usize>, message: impl Into<String>) -> Problem {
        let (line, column) = self.line_col(span.start);
        Problem::new(self.file, line, column, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let map = SourceMap::new(Path::new("x.toml"), "ab\ncd\n");
        assert_eq!(map.line_col(0), (1, 1));
        assert_eq!(map.line_col(4), (2, 2));
    }

    #[test]
    fn display_names_file_line_and_hint() {
        let p = Problem::new(Path::new("a.toml"), 3, 7, "bad").hint("fix it");
        assert_eq!(p.to_string(), "a.toml:3:7: bad\n  hint: fix it");
    }
}
