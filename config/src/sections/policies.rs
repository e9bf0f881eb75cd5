//! The per-gateway controls after authentication: `tools_mode`, `[[gateways.policies]]`,
//! `policy_default` and `[gateways.limits]`. Every pattern, pointer and regular expression is
//! checked here, so a typo fails `sluice check` instead of silently letting calls through.

use std::collections::HashSet;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::array_of_tables;
use crate::reader::{Reader, Text, kind};
use crate::schema::{
    ArgumentCondition, ArgumentTest, Effect, GatewayLimits, MAX_POLICIES, MAX_REGEX_SIZE,
    PolicyConfig, RateLimit, ToolsMode,
};

const POLICY_KEYS: &[&str] = &["name", "tools", "claims", "arguments", "effect"];
const ARGUMENT_KEYS: &[&str] = &["pointer", "equals", "prefix", "regex", "min", "max"];
const LIMIT_KEYS: &[&str] = &["gateway", "caller", "tool", "concurrent"];
const RATE_KEYS: &[&str] = &["rate", "burst"];

/// `tools_mode = "direct" | "lazy"`.
pub(super) fn tools_mode(r: &mut Reader<'_>, t: &DeTable<'_>) -> ToolsMode {
    match r.string(t, "tools_mode", "gateways") {
        None => ToolsMode::Direct,
        Some(m) => match m.value.as_str() {
            "direct" => ToolsMode::Direct,
            "lazy" => ToolsMode::Lazy,
            _ => {
                r.problem(
                    m.span.clone(),
                    format!(
                        "gateways.tools_mode must be \"direct\" or \"lazy\", not {}",
                        m.shown()
                    ),
                );
                ToolsMode::Direct
            }
        },
    }
}

/// `policy_default = "allow" | "deny"`.
pub(super) fn policy_default(r: &mut Reader<'_>, t: &DeTable<'_>) -> Effect {
    let Some(v) = r.string(t, "policy_default", "gateways") else {
        return Effect::Allow;
    };
    effect(r, &v, "gateways.policy_default").unwrap_or(Effect::Allow)
}

fn effect(r: &mut Reader<'_>, value: &Text, what: &str) -> Option<Effect> {
    let span = value.span.clone();
    match value.value.as_str() {
        "allow" => Some(Effect::Allow),
        "deny" => Some(Effect::Deny),
        "require_approval" | "require-approval" => {
            r.problem(
                span,
                format!(
                    "{what} \"require_approval\" is not supported yet; use \"allow\" or \"deny\""
                ),
            );
            None
        }
        _ => {
            r.problem(
                span,
                format!(
                    "{what} must be \"allow\" or \"deny\", not {}",
                    value.shown()
                ),
            );
            None
        }
    }
}

/// `[[gateways.policies]]`, in order. Returns `None` if any entry has a problem.
pub(super) fn policies(r: &mut Reader<'_>, t: &DeTable<'_>) -> Option<Vec<PolicyConfig>> {
    let entries = array_of_tables(r, t, "policies");
    let mut ok = true;
    if entries.len() > MAX_POLICIES {
        if let Some(v) = t.get("policies") {
            r.problem(
                v.span(),
                format!(
                    "a gateway has {} policies; at most {MAX_POLICIES} are allowed",
                    entries.len()
                ),
            );
        }
        ok = false;
    }
    let mut names = HashSet::new();
    let mut out = Vec::new();
    for (pt, span) in entries {
        match policy(r, pt, span) {
            Some((p, name_span)) => {
                if !names.insert(p.name.clone()) {
                    r.problem(
                        name_span,
                        format!("policy name {:?} is used twice in this gateway", p.name),
                    );
                    ok = false;
                }
                out.push(p);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn policy(
    r: &mut Reader<'_>,
    t: &DeTable<'_>,
    span: std::ops::Range<usize>,
) -> Option<(PolicyConfig, std::ops::Range<usize>)> {
    const P: &str = "gateways.policies";
    r.check_keys(t, POLICY_KEYS, "[[gateways.policies]]");
    let name = r.required_string(t, "name", P, "[[gateways.policies]]", span.clone());
    if let Some(n) = &name
        && (n.value.is_empty()
            || n.value.len() > 64
            || !n
                .value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
    {
        r.problem(
            n.span.clone(),
            format!(
                "gateways.policies.name {} must be 1 to 64 of A-Z a-z 0-9 - _ .",
                n.shown()
            ),
        );
    }
    let tools = match r.strings(t, "tools", P) {
        Some(list) if !list.is_empty() => {
            let mut out = Vec::new();
            for p in list {
                if p.value.is_empty() || p.value.contains("**") {
                    r.problem(
                        p.span.clone(),
                        format!(
                            "gateways.policies.tools pattern {} must be a tool name where * matches any run of characters",
                            p.shown()
                        ),
                    );
                    return None;
                }
                out.push(p.value);
            }
            Some(out)
        }
        Some(_) => {
            r.problem(
                span.clone(),
                "gateways.policies.tools must name at least one tool pattern (\"*\" for all)",
            );
            None
        }
        None => {
            if t.get("tools").is_none() {
                r.problem(
                    span.clone(),
                    "[[gateways.policies]] entry is missing the required key \"tools\" (patterns such as \"github__*\")",
                );
            }
            None
        }
    };
    let effect = match r.required_string(t, "effect", P, "[[gateways.policies]]", span.clone()) {
        Some(e) => effect(r, &e, "gateways.policies.effect"),
        None => None,
    };
    let mut claims = Vec::new();
    let mut ok = true;
    if let Some((ct, _)) = r.table(t, "claims") {
        for (k, v) in ct.iter() {
            let key: &str = k.get_ref();
            let what = format!("{P}.claims.{key}");
            let values = match v.get_ref() {
                DeValue::Array(items) if !items.is_empty() => items
                    .iter()
                    .map(|i| r.claim_value(i, &what))
                    .collect::<Option<Vec<_>>>(),
                DeValue::Array(_) => {
                    r.problem(v.span(), format!("{what} must name at least one value"));
                    None
                }
                _ => r.claim_value(v, &what).map(|x| vec![x]),
            };
            match values {
                Some(values) => claims.push((key.to_owned(), values)),
                None => ok = false,
            }
        }
    }
    let mut arguments = Vec::new();
    if let Some(v) = t.get("arguments") {
        match v.get_ref() {
            DeValue::Array(items) => {
                for item in items {
                    match item.get_ref() {
                        DeValue::Table(at) => match argument(r, at, item.span()) {
                            Some(a) => arguments.push(a),
                            None => ok = false,
                        },
                        other => {
                            r.problem(
                                item.span(),
                                format!(
                                    "each entry of gateways.policies.arguments must be a table such as {{ pointer = \"/path\", prefix = \"/tmp/\" }}, not {}",
                                    kind(other)
                                ),
                            );
                            ok = false;
                        }
                    }
                }
            }
            other => {
                r.problem(
                    v.span(),
                    format!(
                        "gateways.policies.arguments must be an array of tables, not {}",
                        kind(other)
                    ),
                );
                ok = false;
            }
        }
    }
    let name = name?;
    if !ok {
        return None;
    }
    Some((
        PolicyConfig {
            name: name.value,
            tools: tools?,
            claims,
            arguments,
            effect: effect?,
        },
        name.span,
    ))
}

fn argument(
    r: &mut Reader<'_>,
    t: &DeTable<'_>,
    span: std::ops::Range<usize>,
) -> Option<ArgumentCondition> {
    const P: &str = "gateways.policies.arguments";
    r.check_keys(t, ARGUMENT_KEYS, "an entry of gateways.policies.arguments");
    let pointer =
        r.required_string(t, "pointer", P, "gateways.policies.arguments", span.clone())?;
    if !is_json_pointer(&pointer.value) {
        r.problem(
            pointer.span.clone(),
            format!(
                "{P}.pointer {} must be a JSON pointer: empty, or \"/\"-separated keys such as \"/path\" or \"/options/0/name\" (~0 for ~, ~1 for /)",
                pointer.shown()
            ),
        );
        return None;
    }
    let tests: Vec<&str> = ["equals", "prefix", "regex"]
        .into_iter()
        .filter(|k| t.get(*k).is_some())
        .collect();
    let ranged = t.get("min").is_some() || t.get("max").is_some();
    if tests.len() + usize::from(ranged) != 1 {
        r.problem(
            span,
            format!(
                "an entry of {P} needs exactly one test: equals, prefix, regex, or min and/or max{}",
                if tests.is_empty() && !ranged {
                    String::new()
                } else {
                    format!(" (found {})", {
                        let mut all: Vec<&str> = tests.clone();
                        if ranged {
                            all.push("min/max");
                        }
                        all.join(", ")
                    })
                }
            ),
        );
        return None;
    }
    let test = if ranged {
        let min = number(r, t, "min", P);
        let max = number(r, t, "max", P);
        if (t.get("min").is_some() && min.is_none()) || (t.get("max").is_some() && max.is_none()) {
            return None;
        }
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
            && let Some(v) = t.get("min")
        {
            r.problem(v.span(), format!("{P}.min {lo} is above max {hi}"));
            return None;
        }
        ArgumentTest::Range { min, max }
    } else {
        match tests[0] {
            "equals" => {
                ArgumentTest::Equals(json_scalar(r, t.get("equals")?, &format!("{P}.equals"))?)
            }
            "prefix" => ArgumentTest::Prefix(r.string(t, "prefix", P)?.value),
            _ => {
                let re = r.string(t, "regex", P)?;
                if let Err(e) = regex::RegexBuilder::new(&re.value)
                    .size_limit(MAX_REGEX_SIZE)
                    .build()
                {
                    r.problem(
                        re.span.clone(),
                        format!(
                            "{P}.regex {} is not a valid regular expression: {}",
                            re.shown(),
                            re.reason(&e)
                        ),
                    );
                    return None;
                }
                ArgumentTest::Regex(re.value)
            }
        }
    };
    Some(ArgumentCondition {
        pointer: pointer.value,
        test,
    })
}

/// RFC 6901: empty, or `/`-prefixed with `~` only as `~0` or `~1`.
fn is_json_pointer(p: &str) -> bool {
    if p.is_empty() {
        return true;
    }
    if !p.starts_with('/') {
        return false;
    }
    let b = p.as_bytes();
    b.iter()
        .enumerate()
        .all(|(i, &c)| c != b'~' || matches!(b.get(i + 1), Some(b'0' | b'1')))
}

fn number(r: &mut Reader<'_>, t: &DeTable<'_>, key: &str, place: &str) -> Option<f64> {
    let v = t.get(key)?;
    match v.get_ref() {
        DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix())
            .ok()
            .map(|n| n as f64),
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite()),
        other => {
            r.problem(
                v.span(),
                format!("{place}.{key} must be a number, not {}", kind(other)),
            );
            None
        }
    }
}

/// A scalar (string, integer, float, boolean) as JSON.
fn json_scalar(
    r: &mut Reader<'_>,
    v: &Spanned<DeValue<'_>>,
    what: &str,
) -> Option<serde_json::Value> {
    if let DeValue::Float(f) = v.get_ref() {
        let n = f.as_str().replace('_', "").parse::<f64>().ok();
        return match n.and_then(serde_json::Number::from_f64) {
            Some(n) => Some(serde_json::Value::Number(n)),
            None => {
                r.problem(
                    v.span(),
                    format!("{what}: {} is not a finite number", f.as_str()),
                );
                None
            }
        };
    }
    r.claim_value(v, what)
}

/// `[gateways.limits]`.
pub(super) fn limits(r: &mut Reader<'_>, t: &DeTable<'_>) -> GatewayLimits {
    let Some((lt, _)) = r.table(t, "limits") else {
        return GatewayLimits::default();
    };
    r.check_keys(lt, LIMIT_KEYS, "[gateways.limits]");
    let concurrent = if lt.get("concurrent").is_some() {
        r.count(lt, "concurrent", "gateways.limits", 1..=1_000_000)
            .unwrap_or(GatewayLimits::DEFAULT_CONCURRENT)
    } else {
        GatewayLimits::DEFAULT_CONCURRENT
    };
    GatewayLimits {
        gateway: rate_limit(r, lt, "gateway"),
        caller: rate_limit(r, lt, "caller"),
        tool: rate_limit(r, lt, "tool"),
        concurrent,
    }
}

/// `key = "50/s"` or `key = { rate = "50/s", burst = 100 }`.
fn rate_limit(r: &mut Reader<'_>, t: &DeTable<'_>, key: &str) -> Option<RateLimit> {
    let what = format!("gateways.limits.{key}");
    let v = t.get(key)?;
    let (rate_text, burst) = match v.get_ref() {
        DeValue::String(_) => (r.string(t, key, "gateways.limits")?, None),
        DeValue::Table(rt) => {
            r.check_keys(rt, RATE_KEYS, &format!("[{what}]"));
            let Some(rate) = r.string(rt, "rate", &what) else {
                if rt.get("rate").is_none() {
                    r.problem(
                        v.span(),
                        format!("{what} is missing the required key \"rate\" (such as \"50/s\")"),
                    );
                }
                return None;
            };
            let burst = if rt.get("burst").is_some() {
                Some(r.count(rt, "burst", &what, 1..=1_000_000_000)? as u64)
            } else {
                None
            };
            (rate, burst)
        }
        other => {
            r.problem(
                v.span(),
                format!(
                    "{what} must be a rate such as \"50/s\" or a table {{ rate = \"50/s\", burst = 100 }}, not {}",
                    kind(other)
                ),
            );
            return None;
        }
    };
    match parse_rate(&rate_text.value) {
        Some((count, period)) => Some(RateLimit {
            count,
            period,
            burst: burst.unwrap_or(count),
        }),
        None => {
            r.problem(
                rate_text.span.clone(),
                format!(
                    "{what}: {} is not a rate; write requests per period as \"50/s\", \"600/min\", \"10000/h\" or \"100000/d\" (1 to 1000000000 requests)",
                    rate_text.shown()
                ),
            );
            None
        }
    }
}

/// `"N/unit"` → (N, period).
fn parse_rate(s: &str) -> Option<(u64, Duration)> {
    let (n, unit) = s.split_once('/')?;
    let n: u64 = n
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=1_000_000_000).contains(n))?;
    let secs = match unit.trim() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3600,
        "d" | "day" => 86400,
        _ => return None,
    };
    Some((n, Duration::from_secs(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_pointers_parse_strictly() {
        assert_eq!(parse_rate("50/s"), Some((50, Duration::from_secs(1))));
        assert_eq!(
            parse_rate(" 600 / min "),
            Some((600, Duration::from_secs(60)))
        );
        assert_eq!(parse_rate("1/d"), Some((1, Duration::from_secs(86400))));
        assert_eq!(parse_rate("0/s"), None);
        assert_eq!(parse_rate("5/fortnight"), None);
        assert_eq!(parse_rate("-5/s"), None);
        assert_eq!(parse_rate("5"), None);
        assert!(is_json_pointer(""));
        assert!(is_json_pointer("/a/~0b/~1c/0"));
        assert!(!is_json_pointer("a/b"));
        assert!(!is_json_pointer("/a~"));
        assert!(!is_json_pointer("/a~2"));
    }
}
