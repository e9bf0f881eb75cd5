//! `${VAR}` substitution in string values, so secrets and per-host values live in the
//! environment rather than in the file. `$${` is a literal `${`; any other `$` is kept as is.
//! Every problem in a string is returned, each with the text to point at, and none carries a
//! value read from the environment.

use std::borrow::Cow;

/// A string after substitution.
pub(crate) struct Expanded<'s> {
    /// The resulting text.
    pub value: Cow<'s, str>,
    /// Whether any `${VAR}` was replaced (so the value may hold environment data).
    pub substituted: bool,
}

/// Why a string could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InterpolateError {
    /// `${NAME}` names a variable the environment does not have.
    #[error("environment variable {0} is not set")]
    Missing(String),
    /// `${...}` does not hold a variable name.
    #[error("{0:?} is not an environment variable name (use letters, digits and '_')")]
    InvalidName(String),
    /// `${` without a closing `}`.
    #[error("\"${{\" is not closed by \"}}\"; write \"$${{\" for a literal \"${{\"")]
    Unterminated,
}

impl InterpolateError {
    /// The text in the source that the error is about.
    pub fn needle(&self) -> String {
        match self {
            InterpolateError::Missing(name) | InterpolateError::InvalidName(name) => {
                format!("${{{name}}}")
            }
            InterpolateError::Unterminated => "${".to_owned(),
        }
    }
}

fn is_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces every `${VAR}` in `s` using `env`. A variable missing more than once in one string
/// is reported once.
pub(crate) fn expand<'s>(
    s: &'s str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Expanded<'s>, Vec<InterpolateError>> {
    if !s.contains('$') {
        return Ok(Expanded {
            value: Cow::Borrowed(s),
            substituted: false,
        });
    }
    let mut out = String::with_capacity(s.len());
    let mut errors = Vec::new();
    let mut substituted = false;
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let at = &rest[i..];
        if let Some(tail) = at.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = at.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                errors.push(InterpolateError::Unterminated);
                break;
            };
            let name = &tail[..end];
            let problem = if !is_var_name(name) {
                Some(InterpolateError::InvalidName(name.to_owned()))
            } else if let Some(v) = env(name) {
                out.push_str(&v);
                substituted = true;
                None
            } else {
                Some(InterpolateError::Missing(name.to_owned()))
            };
            if let Some(p) = problem
                && !errors.contains(&p)
            {
                errors.push(p);
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &at[1..];
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    out.push_str(rest);
    Ok(Expanded {
        value: Cow::Owned(out),
        substituted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        (k == "HOST").then(|| "example.com".to_owned())
    }

    fn ok(s: &str) -> (String, bool) {
        let e = expand(s, &env).unwrap_or_else(|e| panic!("{s:?}: {e:?}"));
        (e.value.into_owned(), e.substituted)
    }

    #[test]
    fn variables_are_replaced_and_other_dollars_kept() {
        assert_eq!(
            ok("http://${HOST}/x"),
            ("http://example.com/x".into(), true)
        );
        assert_eq!(ok("$5 and $HOST"), ("$5 and $HOST".into(), false));
        assert_eq!(ok("no dollars"), ("no dollars".into(), false));
        assert_eq!(ok("trailing $"), ("trailing $".into(), false));
    }

    #[test]
    fn double_dollar_brace_is_a_literal_dollar_brace() {
        assert_eq!(ok("$${HOST}"), ("${HOST}".into(), false));
        assert_eq!(ok("$$${HOST}"), ("$${HOST}".into(), false));
        assert_eq!(ok("$$$${HOST}"), ("$$${HOST}".into(), false));
    }

    #[test]
    fn every_problem_in_a_string_is_reported_once() {
        let e = expand("${A}${1B}${A}${", &env).err().unwrap();
        assert_eq!(
            e,
            [
                InterpolateError::Missing("A".into()),
                InterpolateError::InvalidName("1B".into()),
                InterpolateError::Unterminated,
            ]
        );
        assert_eq!(e[0].needle(), "${A}");
    }
}
