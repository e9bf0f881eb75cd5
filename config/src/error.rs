//! Configuration errors with their position. They are collected, not thrown, so that
//! `sluice check` can print every problem of a file in one run as `file:line:col: message`,
//! the format editors and CI annotators already understand.

use std::fmt;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file name as given to the loader (or a label such as `<quickstart>`).
    pub file: String,
    /// 1-based line; 0 when the problem has no position (the file could not be read).
    pub line: usize,
    /// 1-based column, counted in characters; 0 when `line` is 0.
    pub column: usize,
    /// What is wrong and, where one exists, the nearest valid alternative. Never contains a
    /// secret or a value taken from the environment.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config file, in file order. Never empty when returned by the
/// loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// The problems.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    /// One problem per line, without a trailing newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// 1-based line and column (in characters) of a byte offset. Offsets past the end or inside a
/// character are clamped, so any offset is safe. A leading byte-order mark takes no column.
pub(crate) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_text = &before[line_start..];
    let line_text = line_text.strip_prefix('\u{feff}').unwrap_or(line_text);
    (line, line_text.chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_one_based_lines_and_character_columns() {
        let s = "a = 1\nbé = 2\n";
        assert_eq!(line_col(s, 0), (1, 1));
        assert_eq!(line_col(s, 6), (2, 1));
        assert_eq!(line_col(s, 9), (2, 3), "é is one column");
        assert_eq!(line_col(s, 8), (2, 2), "an offset inside é is clamped");
        assert_eq!(line_col(s, 1000), (3, 1));
    }

    #[test]
    fn a_byte_order_mark_takes_no_column() {
        assert_eq!(line_col("\u{feff}a = 1", 3), (1, 1));
    }

    #[test]
    fn errors_display_one_per_line_and_unpositioned_ones_without_numbers() {
        let e = |line, column| ConfigError {
            file: "f.toml".into(),
            line,
            column,
            message: "bad".into(),
        };
        let all = ConfigErrors {
            errors: vec![e(2, 5), e(0, 0)],
        };
        assert_eq!(all.to_string(), "f.toml:2:5: bad\nf.toml: bad");
    }
}
