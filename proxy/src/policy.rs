//! Tool-invocation policies: ordered rules over tool names, caller claims and argument values
//! that allow or deny a `tools/call` (and a lazy gateway's `run_tool`) after the auth rules let
//! it through.
//!
//! Which policies can apply to a tool depends only on its name, so that list is found once per
//! tool when the catalog is built ([`Policies::candidates`]) and kept in the tool's route; a
//! call then walks only those. Arguments are parsed only when a candidate whose claims hold
//! tests them, and then strictly ([`arguments::parse_strict`]): a duplicated key anywhere is
//! refused, since servers disagree on which copy wins and a policy must see what the server
//! will act on. Escaped keys and key order do not matter (keys are compared unescaped), and
//! numbers written as strings are read as numbers by numeric tests, as lax servers do.

pub mod arguments;

use prometheus::IntCounter;
use serde_json::{Map, Value};
use sluice_config::{ArgumentTest, Effect, GatewayConfig, PolicyConfig};

use crate::metrics::Metrics;

/// A gateway's compiled policies.
#[derive(Debug)]
pub struct Policies {
    policies: Vec<Compiled>,
    default: Effect,
    /// Decision counters: one pair (allow, deny) per policy, then the default's.
    decisions: Vec<[IntCounter; 2]>,
    counting: bool,
}

#[derive(Debug)]
struct Compiled {
    name: String,
    tools: Vec<String>,
    claims: Vec<(String, Vec<Value>)>,
    /// Conditions: the pointer's reference tokens, unescaped once here, and the test.
    arguments: Vec<(Vec<String>, Test)>,
    effect: Effect,
}

#[derive(Debug)]
enum Test {
    Equals(Value),
    Prefix(String),
    /// `None` only if an expression checked at load no longer compiles: it matches nothing.
    Regex(Option<regex::Regex>),
    Range(Option<f64>, Option<f64>),
}

/// Which policy decided a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Allow or deny.
    pub effect: Effect,
    /// The deciding policy (index), or `None` for the gateway's `policy_default`.
    pub policy: Option<u16>,
}

/// Why a call's arguments could not be judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("arguments refused: {0}")]
pub struct ArgumentsError(pub String);

impl Policies {
    /// Compiles a gateway's policies; `None` when it has none and allows by default, so the
    /// common gateway carries nothing.
    pub fn compile(cfg: &GatewayConfig, metrics: &Metrics) -> Option<Self> {
        if cfg.policies.is_empty() && cfg.policy_default == Effect::Allow {
            return None;
        }
        let gateway = cfg.name.as_str();
        let mut decisions: Vec<[IntCounter; 2]> = cfg
            .policies
            .iter()
            .map(|p| metrics.policy_decisions(gateway, &p.name))
            .collect();
        decisions.push(metrics.policy_decisions(gateway, "default"));
        Some(Policies {
            policies: cfg.policies.iter().map(compile).collect(),
            default: cfg.policy_default,
            decisions,
            counting: metrics.enabled,
        })
    }

    /// Policies whose tool patterns match `tool`, in order.
    pub fn candidates(&self, tool: &str) -> Box<[u16]> {
        self.policies
            .iter()
            .enumerate()
            .filter(|(_, p)| p.tools.iter().any(|t| sluice_auth::glob_match(t, tool)))
            .map(|(i, _)| i as u16)
            .collect()
    }

    /// Decides a call. `arguments` reads the call's `params.arguments` (strictly, see
    /// [`arguments::parse_strict`]) and is called only if a candidate tests them; `claims` are
    /// the caller's (none on a gateway without auth, where a policy requiring claims never
    /// matches).
    pub fn evaluate(
        &self,
        candidates: &[u16],
        claims: Option<&Map<String, Value>>,
        arguments: impl FnOnce() -> Result<Value, String>,
    ) -> Result<Verdict, ArgumentsError> {
        let mut arguments = Some(arguments);
        let mut parsed: Option<Value> = None;
        for &i in candidates {
            let Some(p) = self.policies.get(i as usize) else {
                continue;
            };
            if !p.claims.iter().all(|(claim, values)| {
                sluice_auth::claim_holds(claims.and_then(|c| c.get(claim)), claim, values)
            }) {
                continue;
            }
            if !p.arguments.is_empty() {
                if let Some(read) = arguments.take() {
                    parsed = Some(read().map_err(ArgumentsError)?);
                }
                let args = parsed.as_ref().unwrap_or(&Value::Null);
                if !p
                    .arguments
                    .iter()
                    .all(|(pointer, test)| holds(lookup(args, pointer), test, p.effect))
                {
                    continue;
                }
            }
            return Ok(self.decided(Verdict {
                effect: p.effect,
                policy: Some(i),
            }));
        }
        Ok(self.decided(Verdict {
            effect: self.default,
            policy: None,
        }))
    }

    fn decided(&self, v: Verdict) -> Verdict {
        if self.counting {
            let row = v.policy.map_or(self.policies.len(), usize::from);
            if let Some(pair) = self.decisions.get(row) {
                pair[usize::from(v.effect == Effect::Deny)].inc();
            }
        }
        v
    }

    /// The deciding policy's name (`default` for the gateway's `policy_default`).
    pub fn name(&self, v: Verdict) -> &str {
        v.policy
            .and_then(|i| self.policies.get(i as usize))
            .map_or("default", |p| p.name.as_str())
    }
}

fn compile(p: &PolicyConfig) -> Compiled {
    Compiled {
        name: p.name.clone(),
        tools: p.tools.clone(),
        claims: p.claims.clone(),
        arguments: p
            .arguments
            .iter()
            .map(|a| {
                let test = match &a.test {
                    ArgumentTest::Equals(v) => Test::Equals(v.clone()),
                    ArgumentTest::Prefix(s) => Test::Prefix(s.clone()),
                    // Checked at load with the same builder; an expression that no longer
                    // compiles matches nothing rather than panicking.
                    ArgumentTest::Regex(r) => Test::Regex(
                        regex::RegexBuilder::new(r)
                            .size_limit(sluice_config::MAX_REGEX_SIZE)
                            .build()
                            .ok(),
                    ),
                    ArgumentTest::Range { min, max } => Test::Range(*min, *max),
                };
                (tokens(&a.pointer), test)
            })
            .collect(),
        effect: p.effect,
    }
}

/// A JSON pointer's reference tokens, unescaped (`~1` → `/`, then `~0` → `~`).
fn tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// The value a pointer's tokens select, as RFC 6901 resolves it (array indexes are decimal
/// without leading zeros).
fn lookup<'v>(mut v: &'v Value, tokens: &[String]) -> Option<&'v Value> {
    for t in tokens {
        v = match v {
            Value::Object(map) => map.get(t)?,
            Value::Array(items) => {
                if t.len() > 1 && t.starts_with('0') {
                    return None;
                }
                items.get(t.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(v)
}

/// Whether the value at a pointer meets a test. An array meets it, for a deny policy, when
/// any element does, and for an allow policy only when every element does (and it is not
/// empty): an array never turns a denial into an allowance.
fn holds(value: Option<&Value>, test: &Test, effect: Effect) -> bool {
    match value {
        None => false,
        Some(Value::Array(items)) => match effect {
            Effect::Deny => items.iter().any(|v| passes(v, test)),
            Effect::Allow => !items.is_empty() && items.iter().all(|v| passes(v, test)),
        },
        Some(v) => passes(v, test),
    }
}

fn passes(v: &Value, test: &Test) -> bool {
    match test {
        Test::Equals(expected) => equals(v, expected),
        Test::Prefix(p) => v.as_str().is_some_and(|s| s.starts_with(p.as_str())),
        Test::Regex(None) => false,
        Test::Regex(Some(re)) => match v {
            Value::String(s) => re.is_match(s),
            Value::Number(n) => re.is_match(&n.to_string()),
            Value::Bool(b) => re.is_match(if *b { "true" } else { "false" }),
            _ => false,
        },
        Test::Range(min, max) => numeric(v).is_some_and(|x| {
            !x.is_nan() && min.is_none_or(|m| x >= m) && max.is_none_or(|m| x <= m)
        }),
    }
}

fn equals(v: &Value, expected: &Value) -> bool {
    match expected {
        Value::Number(n) => match (numeric(v), n.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
        Value::Bool(b) => match v {
            Value::Bool(x) => x == b,
            Value::String(s) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
            _ => false,
        },
        other => v == other,
    }
}

/// A number, or a string that reads as one (`"1e3"`, `" 42 "`).
fn numeric(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
