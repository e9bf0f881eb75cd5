//! Lazy mode (`tools_mode = "lazy"`): a gateway whose catalog is too big for a model's context
//! shows two tools, `search_tools` and `run_tool`. The gateway's real tools are kept here,
//! each serialised once with its routing decision, behind a [`SearchIndex`] built with the
//! catalog; `search_tools` answers from them without touching an upstream, and `run_tool`
//! is routed by the gateway step exactly as a direct `tools/call` of the named tool.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};
use sluice_auth::{Decision, Grants};

use super::ListPages;
use super::search::SearchIndex;
use crate::metrics::ToolMetrics;

/// The search tool's name.
pub const SEARCH_TOOLS: &str = "search_tools";
/// The dispatch tool's name.
pub const RUN_TOOL: &str = "run_tool";
/// Results of one search when the caller gives no `limit`.
pub const DEFAULT_LIMIT: usize = 10;
/// Most results of one search.
pub const MAX_LIMIT: usize = 50;

/// The two tools a lazy gateway lists.
pub fn builtin_tools() -> [Value; 2] {
    [
        json!({
            "name": SEARCH_TOOLS,
            "description": "Search this gateway's tools by what you want to do. Returns the best matches, each with its name, description and input schema; then call one with run_tool.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What you want to do, in a few words (e.g. \"create a GitHub issue\")."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "description": "Most results to return (default 10)."}
                },
                "required": ["query"]
            },
            "annotations": {"readOnlyHint": true, "openWorldHint": false}
        }),
        json!({
            "name": RUN_TOOL,
            "description": "Run a tool found with search_tools: give its exact name and its arguments as its input schema describes. Returns that tool's result.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The tool's exact name, as search_tools returned it."},
                    "arguments": {"type": "object", "description": "The tool's arguments."}
                },
                "required": ["name"]
            }
        }),
    ]
}

/// `tools/list` of a lazy gateway.
pub fn builtin_pages() -> ListPages {
    ListPages::build("tools", &builtin_tools(), usize::MAX)
}

/// The real tools of a lazy gateway, searchable.
#[derive(Debug)]
pub struct LazyTools {
    index: SearchIndex,
    /// Each tool's definition, serialised once.
    tools: Vec<Bytes>,
    decisions: Vec<Decision>,
    /// Metric handles of `search_tools` calls.
    pub search_metrics: Arc<ToolMetrics>,
}

impl LazyTools {
    /// Indexes the gateway's tools (already renamed with their prefix) and their decisions.
    pub fn build(
        tools: &[Value],
        decisions: Vec<Decision>,
        search_metrics: Arc<ToolMetrics>,
    ) -> Self {
        LazyTools {
            index: SearchIndex::build(tools),
            tools: tools
                .iter()
                .map(|t| Bytes::from(serde_json::to_vec(t).unwrap_or_default()))
                .collect(),
            decisions,
            search_metrics,
        }
    }

    /// Number of real tools.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// Whether the gateway has no real tools (yet).
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The `result` of a `search_tools` call: the best `limit` tools for `query` that a
    /// caller with `grants` may use (all, on a gateway without rules), as structured content
    /// and as its JSON text.
    pub fn search(&self, query: &str, limit: usize, grants: Option<Grants>) -> Bytes {
        let hits = self.index.search(query, limit.clamp(1, MAX_LIMIT), |i| {
            grants.is_none_or(|g| self.decisions.get(i).is_some_and(|d| d.allows(g)))
        });
        let mut list = BytesMut::new();
        list.put_u8(b'[');
        for (n, &i) in hits.iter().enumerate() {
            if n > 0 {
                list.put_u8(b',');
            }
            list.put_slice(&self.tools[i]);
        }
        list.put_u8(b']');
        let structured = {
            let mut s = BytesMut::with_capacity(list.len() + 12);
            s.put_slice(br#"{"tools":"#);
            s.put_slice(&list);
            s.put_u8(b'}');
            s
        };
        // The text block carries the same JSON, as MCP asks of structured results.
        let text = serde_json::to_vec(std::str::from_utf8(&structured).unwrap_or("{}"))
            .unwrap_or_default();
        let mut out = BytesMut::with_capacity(text.len() + structured.len() + 64);
        out.put_slice(br#"{"content":[{"type":"text","text":"#);
        out.put_slice(&text);
        out.put_slice(br#"}],"structuredContent":"#);
        out.put_slice(&structured);
        out.put_slice(br#","isError":false}"#);
        out.freeze()
    }

    /// Names of up to `limit` tools a caller with `grants` may use that best match `name` as
    /// a query, for the error of an unknown `run_tool` name.
    pub fn close_matches(&self, name: &str, limit: usize, grants: Option<Grants>) -> Vec<String> {
        self.index
            .search(name, limit, |i| {
                grants.is_none_or(|g| self.decisions.get(i).is_some_and(|d| d.allows(g)))
            })
            .into_iter()
            .filter_map(|i| {
                let v: Value = serde_json::from_slice(&self.tools[i]).ok()?;
                v.get("name").and_then(Value::as_str).map(str::to_owned)
            })
            .collect()
    }
}
