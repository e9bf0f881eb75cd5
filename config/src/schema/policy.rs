//! Per-gateway controls applied after authentication: how the catalog is shown (`tools_mode`),
//! ordered tool-invocation policies over tool names, caller claims and argument values, and
//! request-rate limits. Patterns and regular expressions are checked at load, so the proxy
//! compiles them without a failure path.

/// How a gateway shows its tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolsMode {
    /// `tools/list` shows every tool the caller may use.
    #[default]
    Direct,
    /// `tools/list` shows only `search_tools` and `run_tool`; the model finds tools on demand.
    Lazy,
}

/// What a matching policy does to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The call proceeds.
    Allow,
    /// The call is refused with a JSON-RPC error naming the policy.
    Deny,
}

impl Effect {
    /// `allow` / `deny`, as written in the config and shown in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// Largest compiled regular expression accepted in a policy (bytes of automaton).
pub const MAX_REGEX_SIZE: usize = 1 << 20;

/// Most policies per gateway.
pub const MAX_POLICIES: usize = 1024;

/// `[[gateways.policies]]`: one ordered rule. It matches a call when a `tools` pattern matches
/// the tool, every `claims` requirement holds and every `arguments` condition holds; the first
/// matching policy's `effect` decides.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// Unique within the gateway; named in refusals, metrics and spans.
    pub name: String,
    /// Tool name patterns (`*` = any run of characters), as the gateway shows the names.
    pub tools: Vec<String>,
    /// Caller claims that must hold (same matching as the auth rules' `require`).
    pub claims: Vec<(String, Vec<serde_json::Value>)>,
    /// Conditions on argument values.
    pub arguments: Vec<ArgumentCondition>,
    /// What a match does.
    pub effect: Effect,
}

/// One condition on the value at a JSON pointer inside a call's `arguments`. An absent value
/// never matches.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgumentCondition {
    /// RFC 6901 pointer into `arguments` (`""` = the whole object).
    pub pointer: String,
    /// The test the value must pass.
    pub test: ArgumentTest,
}

/// How an argument value is tested. Numbers written as strings (`"1e3"`) are read as numbers
/// by the numeric tests and by `equals` with a number, since many servers coerce them.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgumentTest {
    /// Equal to this JSON value (numbers compared by value).
    Equals(serde_json::Value),
    /// A string starting with this.
    Prefix(String),
    /// A string matching this regular expression (RE2 syntax, linear time; anchor it with
    /// `^...$` to match the whole value).
    Regex(String),
    /// A number (or numeric string) within these inclusive bounds.
    Range {
        /// Lower bound.
        min: Option<f64>,
        /// Upper bound.
        max: Option<f64>,
    },
}

/// A request rate: `count` requests per `period`, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests allowed per period.
    pub count: u64,
    /// The period.
    pub period: std::time::Duration,
    /// Requests allowed at once after an idle spell (defaults to `count`).
    pub burst: u64,
}

impl RateLimit {
    /// `"50/s"`-style text for messages.
    pub fn describe(&self) -> String {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "h",
            86400 => "d",
            _ => "period",
        };
        format!("{}/{unit}, burst {}", self.count, self.burst)
    }
}

/// `[gateways.limits]`: request rates and concurrency per replica.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GatewayLimits {
    /// Every request to the gateway together.
    pub gateway: Option<RateLimit>,
    /// Each caller identity (or client address on a gateway without auth).
    pub caller: Option<RateLimit>,
    /// Each tool's calls, every caller together.
    pub tool: Option<RateLimit>,
    /// Requests to the gateway in flight at once, per replica (`concurrent`); more are
    /// refused with 503.
    pub concurrent: usize,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        GatewayLimits {
            gateway: None,
            caller: None,
            tool: None,
            concurrent: Self::DEFAULT_CONCURRENT,
        }
    }
}

impl GatewayLimits {
    /// Default `concurrent`.
    pub const DEFAULT_CONCURRENT: usize = 4096;

    /// Whether any rate limit is set.
    pub fn is_empty(&self) -> bool {
        self.gateway.is_none() && self.caller.is_none() && self.tool.is_none()
    }
}
