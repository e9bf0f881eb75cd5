//! Typed reads from the spanned TOML tree. Each read either returns a value or records a
//! problem at the value's byte offset and returns `None`, so one walk finds every problem of a
//! file where serde would stop at the first.
//!
//! Messages quote what the file says, never what the environment supplied: a string that had
//! `${VAR}` substituted is shown as written, with the variable unexpanded.

use std::ops::{Range, RangeInclusive};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::interpolate::{self, InterpolateError};
use crate::suggest;

/// A problem and the byte offset it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub offset: usize,
    pub message: String,
}

/// A string value after `${VAR}` substitution, with where it is.
pub(crate) struct Text {
    /// The value to use.
    pub value: String,
    /// Byte span of the string in the source, quotes included.
    pub span: Range<usize>,
    /// The value before substitution, when substitution changed it.
    written: Option<String>,
}

impl Text {
    /// The value quoted for a message: as written in the file when it came partly from the
    /// environment, so no environment value (perhaps a secret) reaches an error.
    pub fn shown(&self) -> String {
        match &self.written {
            Some(w) => format!("{w:?} (after ${{...}} substitution)"),
            None => format!("{:?}", self.value),
        }
    }

    /// Whether part of the value came from the environment.
    pub fn substituted(&self) -> bool {
        self.written.is_some()
    }

    /// A parser's reason for refusing the value, unless the value holds environment data:
    /// reasons quote pieces of the value (a regex's pattern, a duration's unit, a name's
    /// character).
    pub fn reason(&self, e: &dyn std::fmt::Display) -> String {
        match &self.written {
            Some(_) => "details not shown: the value holds environment data".to_owned(),
            None => e.to_string(),
        }
    }

    /// Shows `part` (a piece of the value) only if the value holds no environment data.
    pub fn shown_part(&self, part: &str) -> String {
        match &self.written {
            Some(_) => self.shown(),
            None => format!("{part:?}"),
        }
    }
}

/// Collects problems while values are read.
pub(crate) struct Reader<'a> {
    source: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<Problem>,
}

impl<'a> Reader<'a> {
    pub fn new(source: &'a str, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Reader {
            source,
            env,
            problems: Vec::new(),
        }
    }

    /// Records a problem at the start of `span`.
    pub fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push(Problem {
            offset: span.start,
            message: message.into(),
        });
    }

    /// The problems found, in the order found.
    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }

    /// The source text of a span, if the span is valid.
    pub fn source_text(&self, span: Range<usize>) -> Option<&'a str> {
        self.source.get(span)
    }

    /// Refuses every key of `table` not in `allowed`, suggesting the nearest allowed one.
    pub fn check_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], place: &str) {
        for (key, _) in table.iter() {
            let k: &str = key.get_ref();
            if !allowed.contains(&k) {
                let hint = suggest::hint(k, allowed);
                self.problem(key.span(), format!("unknown key {k:?} in {place}{hint}"));
            }
        }
    }

    /// A sub-table (`[key]` or `key = { ... }`) and its span, if present and a table.
    pub fn table<'t>(
        &mut self,
        parent: &'t DeTable<'t>,
        key: &str,
    ) -> Option<(&'t DeTable<'t>, Range<usize>)> {
        let value = parent.get(key)?;
        match value.get_ref() {
            DeValue::Table(t) => Some((t, value.span())),
            other => {
                self.problem(
                    value.span(),
                    format!("{key} must be a table ([{key}]), not {}", kind(other)),
                );
                None
            }
        }
    }

    /// A string, `${VAR}`-expanded.
    pub fn string(&mut self, table: &DeTable<'_>, key: &str, place: &str) -> Option<Text> {
        let value = table.get(key)?;
        self.string_value(value, &format!("{place}.{key}"), "a string")
    }

    /// A string that must be present; its absence is reported at `at`, the span of the
    /// table's `header`.
    pub fn required_string(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        place: &str,
        header: &str,
        at: Range<usize>,
    ) -> Option<Text> {
        if table.get(key).is_none() {
            self.problem(
                at,
                format!("{header} entry is missing the required key {key:?}"),
            );
            return None;
        }
        self.string(table, key, place)
    }

    fn string_value(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        what: &str,
        expected: &str,
    ) -> Option<Text> {
        let DeValue::String(s) = value.get_ref() else {
            let found = kind(value.get_ref());
            self.problem(
                value.span(),
                format!("{what} must be {expected}, not {found}"),
            );
            return None;
        };
        match interpolate::expand(s, self.env) {
            Ok(e) => Some(Text {
                written: e.substituted.then(|| s.to_string()),
                value: e.value.into_owned(),
                span: value.span(),
            }),
            Err(errors) => {
                for e in errors {
                    let at = self.locate(value.span(), &e);
                    self.problem(at..at, format!("{what}: {e}"));
                }
                None
            }
        }
    }

    /// Offset in the source of the text an interpolation error is about, inside the string at
    /// `span`, so a bad `${VAR}` is pointed at exactly. `$${` escapes are skipped; an unclosed
    /// `${` is the last one. Falls back to the string's start when the text is not there
    /// verbatim (written with TOML escapes).
    fn locate(&self, span: Range<usize>, e: &InterpolateError) -> usize {
        let raw = self.source.get(span.clone()).unwrap_or("");
        let needle = e.needle();
        let mut found = raw
            .match_indices(needle.as_str())
            .map(|(i, _)| i)
            .filter(|&i| !raw[..i].ends_with('$'));
        let at = match e {
            InterpolateError::Unterminated => found.last(),
            _ => found.next(),
        };
        at.map_or(span.start, |i| span.start + i)
    }

    /// A non-negative integer within `range`.
    pub fn count(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        place: &str,
        range: RangeInclusive<usize>,
    ) -> Option<usize> {
        let value = table.get(key)?;
        let DeValue::Integer(i) = value.get_ref() else {
            let found = kind(value.get_ref());
            self.problem(
                value.span(),
                format!("{place}.{key} must be an integer, not {found}"),
            );
            return None;
        };
        let n = i128::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok();
        match n.and_then(|n| usize::try_from(n).ok()) {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                self.problem(
                    value.span(),
                    format!(
                        "{place}.{key} must be between {} and {}, not {i}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// A duration written as a string (`"10s"`, `"250ms"`, `"5m"`, `"24h"`) within `range`.
    pub fn duration(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        place: &str,
        range: RangeInclusive<Duration>,
    ) -> Option<Duration> {
        let value = table.get(key)?;
        let what = format!("{place}.{key}");
        let text = self.string_value(value, &what, "a duration string such as \"10s\"")?;
        match humantime::parse_duration(text.value.trim()) {
            Ok(d) if range.contains(&d) => Some(d),
            Ok(_) => {
                let (min, max) = (range.start(), range.end());
                self.problem(
                    text.span.clone(),
                    format!(
                        "{what} must be between {} and {}, not {}",
                        humantime::format_duration(*min),
                        humantime::format_duration(*max),
                        text.shown()
                    ),
                );
                None
            }
            Err(e) => {
                self.problem(
                    text.span.clone(),
                    format!(
                        "{what}: {} is not a duration ({}); write e.g. \"250ms\", \"10s\", \"5m\", \"24h\"",
                        text.shown(),
                        text.reason(&e)
                    ),
                );
                None
            }
        }
    }

    /// A boolean.
    pub fn boolean(&mut self, table: &DeTable<'_>, key: &str, place: &str) -> Option<bool> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                let found = kind(other);
                self.problem(
                    value.span(),
                    format!("{place}.{key} must be true or false, not {found}"),
                );
                None
            }
        }
    }

    /// A scalar claim value (string, integer or boolean) as JSON; strings are
    /// `${VAR}`-expanded.
    pub fn claim_value(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        what: &str,
    ) -> Option<serde_json::Value> {
        match value.get_ref() {
            DeValue::String(_) => self
                .string_value(value, what, "a string")
                .map(|t| serde_json::Value::String(t.value)),
            DeValue::Boolean(b) => Some(serde_json::Value::Bool(*b)),
            DeValue::Integer(i) => {
                match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
                    Ok(n) => Some(serde_json::Value::from(n)),
                    Err(_) => {
                        self.problem(value.span(), format!("{what}: integer {i} is out of range"));
                        None
                    }
                }
            }
            other => {
                let found = kind(other);
                self.problem(
                    value.span(),
                    format!("{what} must be a string, an integer or a boolean, not {found}"),
                );
                None
            }
        }
    }

    /// An array of strings, each `${VAR}`-expanded; `None` if absent or not an array.
    pub fn strings(&mut self, table: &DeTable<'_>, key: &str, place: &str) -> Option<Vec<Text>> {
        let value = table.get(key)?;
        let what = format!("{place}.{key}");
        let DeValue::Array(items) = value.get_ref() else {
            let found = kind(value.get_ref());
            self.problem(
                value.span(),
                format!("{what} must be an array of strings, not {found}"),
            );
            return None;
        };
        let items = items
            .iter()
            .filter_map(|item| {
                self.string_value(item, &format!("each entry of {what}"), "a string")
            })
            .collect();
        Some(items)
    }
}

/// A TOML value's kind, for messages.
pub(crate) fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}
