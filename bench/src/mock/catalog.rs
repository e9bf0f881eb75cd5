//! The mock upstream's tools and its pre-serialised answers.
//!
//! Everything the mock says is built once at start-up: the `tools/list` result, the
//! `tools/call` result of the configured size, the `initialize` result. A request then costs
//! the mock one small parse and a few buffer copies, so the system under test, not the mock,
//! is what a benchmark measures.

use bytes::Bytes;
use serde_json::{Value, json};

const VERBS: [&str; 12] = [
    "create",
    "list",
    "get",
    "update",
    "delete",
    "search",
    "export",
    "import",
    "sync",
    "archive",
    "approve",
    "summarize",
];
const NOUNS: [&str; 16] = [
    "issue",
    "ticket",
    "invoice",
    "customer",
    "document",
    "repository",
    "deployment",
    "alert",
    "calendar_event",
    "message",
    "spreadsheet",
    "report",
    "order",
    "contact",
    "dashboard",
    "file",
];

/// The tool every scenario calls: it answers with a text of the configured size.
pub const ECHO: &str = "echo";

/// `n` tools: `echo` first, then realistic names, descriptions and schemas.
pub fn tools(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            if i == 0 {
                return tool(
                    ECHO,
                    "Echoes a fixed-size text back; the benchmark's standard call.",
                );
            }
            let verb = VERBS[i % VERBS.len()];
            let noun = NOUNS[(i / VERBS.len()) % NOUNS.len()];
            tool(
                &format!("{verb}_{noun}_{i}"),
                &format!(
                    "{} a {} in workspace {i}. Use this when the user asks to {verb} a {} and \
                     provides its identifier or a search query; returns the affected record.",
                    capitalise(verb),
                    noun.replace('_', " "),
                    noun.replace('_', " ")
                ),
            )
        })
        .collect()
}

fn tool(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "description": description,
        "inputSchema": {
            "type": "object",
            "properties": {
                "text": {"type": "string", "description": "Free text passed to the tool."},
                "id": {"type": "string", "description": "Identifier of the record."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 100}
            },
            "required": ["text"]
        },
        "annotations": {"readOnlyHint": false, "openWorldHint": false}
    })
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The mock's answers, serialised once.
pub struct Answers {
    pub initialize: Bytes,
    pub tools_list: Bytes,
    pub call_result: Bytes,
    pub empty: Bytes,
    /// MCP 2026-07-28 (`--modern`): the `server/discover` result.
    pub discover: Bytes,
    /// The `tools/list` result with the revision's result fields.
    pub modern_tools_list: Bytes,
    /// The `tools/call` result with `"resultType":"complete"`.
    pub modern_call_result: Bytes,
    /// Tool names, for refusing unknown ones.
    pub names: std::collections::HashSet<String>,
}

impl Answers {
    pub fn new(tools: usize, response_bytes: usize) -> Self {
        let list = self::tools(tools);
        let names = list
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_string))
            .collect();
        let call_result = json!({
            "content": [{"type": "text", "text": crate::mcp::filler(response_bytes)}],
            "isError": false
        });
        let mut modern_call_result = call_result.clone();
        modern_call_result["resultType"] = json!("complete");
        let server_info =
            json!({"name": "sluice-bench-mock", "version": env!("CARGO_PKG_VERSION")});
        Self {
            discover: ser(&json!({
                "supportedVersions": [crate::mcp::PROTOCOL_VERSION, crate::mcp::MODERN_VERSION],
                "capabilities": {"tools": {"listChanged": false}},
                "resultType": "complete",
                "ttlMs": 0,
                "cacheScope": "public",
                "_meta": {"io.modelcontextprotocol/serverInfo": server_info}
            })),
            modern_tools_list: ser(&json!({
                "tools": list,
                "resultType": "complete",
                "ttlMs": 0,
                "cacheScope": "public"
            })),
            modern_call_result: ser(&modern_call_result),
            initialize: ser(&json!({
                "protocolVersion": crate::mcp::PROTOCOL_VERSION,
                "capabilities": {"tools": {"listChanged": false}},
                "serverInfo": server_info
            })),
            tools_list: ser(&json!({ "tools": list })),
            call_result: ser(&call_result),
            empty: Bytes::from_static(b"{}"),
            names,
        }
    }
}

fn ser(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("a JSON value serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_echo_comes_first() {
        let list = tools(1_000);
        let names: std::collections::HashSet<_> =
            list.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names.len(), 1_000);
        assert_eq!(list[0]["name"], ECHO);
        assert!(list[999]["description"].as_str().unwrap().len() > 100);
    }

    #[test]
    fn the_call_result_has_the_configured_text_size() {
        let a = Answers::new(3, 5_000);
        let v: Value = serde_json::from_slice(&a.call_result).unwrap();
        assert_eq!(v["content"][0]["text"].as_str().unwrap().len(), 5_000);
    }
}
