//! Per-gateway tool rules: which caller may see and call which tool.
//!
//! Rules are ordered; the first whose `tools` pattern matches a tool decides it, and a tool no
//! rule matches is hidden from everyone. Which rule decides a tool does not depend on the
//! caller, so it is found once per tool when the catalog is built ([`Rules::deciding_rule`]);
//! per request only the caller's claims are checked against each rule's `require`, giving a
//! bit mask ([`Rules::grants`]). A tool is allowed when its deciding rule's bit is set, and all
//! callers with the same mask see the same filtered `tools/list`, so a filtered list is built
//! once per distinct mask, not per request.

use serde_json::{Map, Value};
use sluice_config::{MAX_RULES, ToolRule};

/// A gateway's compiled rules.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<ToolRule>,
}

/// The rules a caller satisfies, one bit per rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grants(pub u64);

/// Which rule decides a tool, found when the catalog is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The gateway has no rules: every caller may use the tool.
    Open,
    /// Rule `n` (0-based) decides.
    Rule(u8),
    /// No rule matches: hidden from everyone.
    Hidden,
}

impl Rules {
    /// Compiles a gateway's rules (at most [`MAX_RULES`], which the config enforces).
    pub fn new(rules: &[ToolRule]) -> Self {
        Rules {
            rules: rules.iter().take(MAX_RULES).cloned().collect(),
        }
    }

    /// Whether the gateway has rules at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule deciding `tool`.
    pub fn deciding_rule(&self, tool: &str) -> Decision {
        if self.rules.is_empty() {
            return Decision::Open;
        }
        self.rules
            .iter()
            .position(|r| r.tools.iter().any(|p| glob_match(p, tool)))
            .map_or(Decision::Hidden, |i| Decision::Rule(i as u8))
    }

    /// The rules whose requirements `claims` meet.
    pub fn grants(&self, claims: &Map<String, Value>) -> Grants {
        let mut mask = 0u64;
        for (i, rule) in self.rules.iter().enumerate() {
            if rule
                .require
                .iter()
                .all(|(claim, values)| claim_holds(claims.get(claim), claim, values))
            {
                mask |= 1 << i;
            }
        }
        Grants(mask)
    }

    /// What rule `n` requires, for a refusal message (claim names and values come from the
    /// config, not from the caller).
    pub fn describe(&self, n: u8) -> String {
        let Some(rule) = self.rules.get(n as usize) else {
            return String::new();
        };
        let parts: Vec<String> = rule
            .require
            .iter()
            .map(|(claim, values)| {
                let vs: Vec<String> = values.iter().map(Value::to_string).collect();
                format!("{claim} = {}", vs.join(" or "))
            })
            .collect();
        format!("rule {} requires {}", n + 1, parts.join(" and "))
    }
}

impl Decision {
    /// Whether a caller with `grants` may use a tool so decided.
    pub fn allows(self, grants: Grants) -> bool {
        match self {
            Decision::Open => true,
            Decision::Rule(n) => grants.0 & (1 << n) != 0,
            Decision::Hidden => false,
        }
    }
}

/// A claim meets a requirement when it equals one of `values`, or, for an array claim (or a
/// space-separated `scope`/`scp` string), contains one of them. Shared with the proxy's
/// tool-invocation policies, so both read claims alike.
pub fn claim_holds(claim: Option<&Value>, name: &str, values: &[Value]) -> bool {
    match claim {
        None => false,
        Some(Value::Array(items)) => items.iter().any(|i| values.contains(i)),
        Some(Value::String(s)) if name == "scope" || name == "scp" => s
            .split(' ')
            .any(|part| values.iter().any(|v| v.as_str() == Some(part))),
        Some(v) => values.contains(v),
    }
}

/// `*` matches any run of characters (including none); everything else is literal.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = parts.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(tools: &[&str], require: &[(&str, Value)]) -> ToolRule {
        ToolRule {
            tools: tools.iter().map(|t| t.to_string()).collect(),
            require: require
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.clone()]))
                .collect(),
        }
    }

    #[test]
    fn globs_match_literally_around_stars() {
        assert!(glob_match("github__*", "github__search"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*__delete_*", "files__delete_all"));
        assert!(glob_match("a*b*c", "abc"));
        assert!(!glob_match("a*b*c", "acb"));
        assert!(!glob_match("github__*", "gitlab__search"));
        assert!(!glob_match("files__read", "files__read_all"));
        assert!(!glob_match("ab*ba", "aba"));
        assert!(glob_match("ab*ba", "abba"));
    }

    #[test]
    fn the_first_matching_rule_decides_and_claims_grant_it() {
        let rules = Rules::new(&[
            rule(&["github__*"], &[("groups", json!("eng"))]),
            rule(&["*"], &[]),
        ]);
        let eng = rules.grants(json!({"groups": ["eng", "ops"]}).as_object().unwrap());
        let sales = rules.grants(json!({"groups": "sales"}).as_object().unwrap());
        let gh = rules.deciding_rule("github__search");
        let files = rules.deciding_rule("files__read");
        assert_eq!(gh, Decision::Rule(0));
        assert_eq!(files, Decision::Rule(1));
        assert!(gh.allows(eng));
        assert!(
            !gh.allows(sales),
            "a later catch-all must not reopen a refused tool"
        );
        assert!(files.allows(sales));
        assert_eq!(
            Rules::new(&[rule(&["x__*"], &[])]).deciding_rule("y__z"),
            Decision::Hidden
        );
        assert_eq!(Rules::default().deciding_rule("y__z"), Decision::Open);
    }

    #[test]
    fn scope_claims_are_space_separated_and_types_must_match() {
        let rules = Rules::new(&[
            rule(&["*"], &[("scope", json!("tools:write"))]),
            rule(&["*"], &[("admin", json!(true))]),
        ]);
        let g = rules.grants(
            json!({"scope": "openid tools:write", "admin": "true"})
                .as_object()
                .unwrap(),
        );
        assert_eq!(g, Grants(0b01));
        assert!(rules.describe(0).contains("scope = \"tools:write\""));
    }
}
