//! Reads values out of the spanned TOML tree, collecting every problem with its byte span
//! instead of stopping at the first, the way serde deserialisation would.

use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

/// A problem and where it is.
pub type Problem = (Range<usize>, String);

/// Collects problems while values are read.
pub struct Reader<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    /// Problems found so far.
    pub problems: Vec<Problem>,
}

/// A string value read from the file, after `${VAR}` interpolation, with its span.
pub struct Text {
    pub value: String,
    pub span: Range<usize>,
}

impl<'e> Reader<'e> {
    pub fn new(env: &'e dyn Fn(&str) -> Option<String>) -> Self {
        Reader {
            env,
            problems: Vec::new(),
        }
    }

    pub fn problem(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.problems.push((span, message.into()));
    }

    /// Refuses keys not in `allowed`, suggesting the nearest one.
    pub fn check_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], place: &str) {
        for (key, _) in table.iter() {
            let k: &str = key.get_ref();
            if allowed.contains(&k) {
                continue;
            }
            let nearest = allowed
                .iter()
                .map(|a| (strsim::jaro_winkler(k, a), *a))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            let message = match nearest {
                Some((_, a)) => format!("unknown key {k:?} in {place}; did you mean {a:?}?"),
                None => format!(
                    "unknown key {k:?} in {place}; expected one of: {}",
                    allowed.join(", ")
                ),
            };
            self.problem(key.span(), message);
        }
    }

    /// A sub-table and its span, if present and a table.
    pub fn table<'t>(
        &mut self,
        table: &'t DeTable<'t>,
        key: &str,
    ) -> Option<(&'t DeTable<'t>, Range<usize>)> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Table(t) => Some((t, value.span())),
            other => {
                self.problem(
                    value.span(),
                    format!("{key} must be a table, not {}", kind(other)),
                );
                None
            }
        }
    }

    /// A string, interpolated.
    pub fn string(&mut self, table: &DeTable<'_>, key: &str, place: &str) -> Option<Text> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => {
                let s = s.to_string();
                self.interpolate(&s, value.span(), &format!("{place}.{key}"))
                    .map(|v| Text {
                        value: v,
                        span: value.span(),
                    })
            }
            other => {
                self.problem(
                    value.span(),
                    format!("{place}.{key} must be a string, not {}", kind(other)),
                );
                None
            }
        }
    }

    /// A string that must be present.
    pub fn required_string(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        place: &str,
        at: Range<usize>,
    ) -> Option<Text> {
        if table.get(key).is_none() {
            self.problem(at, format!("{place} needs {key:?}"));
            return None;
        }
        self.string(table, key, place)
    }

    /// An integer within bounds.
    pub fn integer(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        place: &str,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let value = table.get(key)?;
        let n = match value.get_ref() {
            DeValue::Integer(i) => {
                i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok()
            }
            other => {
                self.problem(
                    value.span(),
                    format!("{place}.{key} must be an integer, not {}", kind(other)),
                );
                return None;
            }
        };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.problem(
                    value.span(),
                    format!("{place}.{key} must be between {min} and {max}"),
                );
                None
            }
        }
    }

    /// A duration such as `"10s"`, `"250ms"`, `"5m"`, `"24h"`, within bounds.
    pub fn duration(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        place: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let text = self.string(table, key, place)?;
        match humantime::parse_duration(text.value.trim()) {
            Ok(d) if d >= min && d <= max => Some(d),
            Ok(_) => {
                self.problem(
                    text.span,
                    format!(
                        "{place}.{key} must be between {} and {}",
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                );
                None
            }
            Err(e) => {
                self.problem(text.span, format!("{place}.{key}: invalid duration {:?} ({e}); use e.g. \"10s\", \"250ms\", \"5m\"", text.value));
                None
            }
        }
    }

    /// An array of strings.
    pub fn strings(&mut self, table: &DeTable<'_>, key: &str, place: &str) -> Option<Vec<Text>> {
        let value = table.get(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.problem(
                value.span(),
                format!("{place}.{key} must be an array of strings"),
            );
            return None;
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => {
                    let s = s.to_string();
                    if let Some(v) = self.interpolate(&s, item.span(), &format!("{place}.{key}")) {
                        out.push(Text {
                            value: v,
                            span: item.span(),
                        });
                    }
                }
                other => self.problem(
                    item.span(),
                    format!("{place}.{key} must contain strings, not {}", kind(other)),
                ),
            }
        }
        Some(out)
    }

    /// Replaces `${VAR}` from the environment; `$${` is a literal `${`.
    pub fn interpolate(&mut self, s: &str, span: Range<usize>, place: &str) -> Option<String> {
        if !s.contains('$') {
            return Some(s.to_owned());
        }
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        let mut ok = true;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(tail) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = tail;
            } else if let Some(tail) = after.strip_prefix("${") {
                let Some(end) = tail.find('}') else {
                    self.problem(span.clone(), format!("{place}: unterminated ${{ in value"));
                    return None;
                };
                let name = &tail[..end];
                let valid = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    self.problem(
                        span.clone(),
                        format!("{place}: invalid environment variable name {name:?}"),
                    );
                    ok = false;
                } else {
                    match (self.env)(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            self.problem(
                                span.clone(),
                                format!("{place}: environment variable {name} is not set"),
                            );
                            ok = false;
                        }
                    }
                }
                rest = &tail[end + 1..];
            } else {
                out.push('$');
                rest = &after[1..];
            }
        }
        out.push_str(rest);
        ok.then_some(out)
    }
}

/// A TOML value's kind, for messages.
pub fn kind(v: &DeValue<'_>) -> &'static str {
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
