//! The bundled example MCP server started by `sluice up`, so a newcomer has tools to call
//! before configuring any real upstream. Stateless Streamable HTTP with JSON responses
//! (protocol 2025-03-26 to 2025-11-25); it is a demo peer, not a reference implementation.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::{Value, json};
use sluice_proxy::admin::respond;

const MAX_BODY: usize = 1 << 20;
const VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// The example server app.
pub struct ExampleServer;

#[async_trait]
impl ServeHttp for ExampleServer {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        if session.req_header().uri.path() != "/mcp" {
            return respond(404, json!({ "error": "the example server lives at /mcp" }));
        }
        if session.req_header().method != http::Method::POST {
            return respond(405, json!({ "error": "only POST is served" }));
        }
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_BODY => {
                    body.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => return respond(413, json!({ "error": "body too large" })),
                Ok(None) => break,
                Err(_) => return respond(400, json!({ "error": "could not read body" })),
            }
        }
        let Ok(message) = serde_json::from_slice::<Value>(&body) else {
            return respond(400, rpc_error(Value::Null, -32700, "invalid JSON"));
        };
        match answer(&message) {
            Some(reply) => respond(200, reply),
            None => Response::builder()
                .status(202)
                .body(Vec::new())
                .unwrap_or_default(),
        }
    }
}

/// The answer to one JSON-RPC message; `None` for a notification (or a response).
fn answer(message: &Value) -> Option<Value> {
    let id = message.get("id").cloned()?;
    let method = message.get("method")?.as_str().unwrap_or_default();
    let params = message.get("params").cloned().unwrap_or(json!({}));
    let reply = match method {
        "initialize" => {
            let asked = params
                .get("protocolVersion")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let version = VERSIONS
                .iter()
                .find(|v| **v == asked)
                .copied()
                .unwrap_or(VERSIONS[0]);
            Ok(json!({
                "protocolVersion": version,
                "capabilities": { "tools": {} },
                "serverInfo": { "name": "sluice-example", "version": env!("CARGO_PKG_VERSION") },
            }))
        }
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({ "tools": tools() })),
        "tools/call" => call(&params),
        _ => Err((-32601, format!("method not found: {method}"))),
    };
    Some(match reply {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err((code, msg)) => rpc_error(id, code, &msg),
    })
}

/// `sluice example-server --stdio`: the same server over stdin/stdout, one JSON-RPC message
/// per line, as most MCP servers speak; `sluice up` runs it this way behind the bridge. A line
/// longer than 1 MiB or not JSON is answered with a parse error; end of input ends the server.
pub fn serve_stdio() -> std::process::ExitCode {
    use std::io::{BufRead, Read, Write};
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut stdin)
            .take(MAX_BODY as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let too_long = line.len() > MAX_BODY && line.last() != Some(&b'\n');
        if too_long {
            // The rest of the line is read and dropped in bounded pieces.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                match (&mut stdin).take(64 * 1024).read_until(b'\n', &mut rest) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if rest.last() == Some(&b'\n') => break,
                    Ok(_) => {}
                }
            }
        }
        if !too_long && line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let reply = if too_long {
            Some(rpc_error(Value::Null, -32700, "message too large"))
        } else {
            match serde_json::from_slice::<Value>(&line) {
                Ok(message) => answer(&message),
                Err(_) => Some(rpc_error(Value::Null, -32700, "invalid JSON")),
            }
        };
        if let Some(reply) = reply {
            let mut out = reply.to_string().into_bytes();
            out.push(b'\n');
            if stdout
                .write_all(&out)
                .and_then(|()| stdout.flush())
                .is_err()
            {
                break;
            }
        }
    }
    std::process::ExitCode::SUCCESS
}

fn tools() -> Value {
    json!([
        {
            "name": "echo",
            "description": "Returns the text it was given.",
            "inputSchema": { "type": "object", "properties": { "text": { "type": "string" } }, "required": ["text"] }
        },
        {
            "name": "add",
            "description": "Adds two numbers.",
            "inputSchema": { "type": "object", "properties": { "a": { "type": "number" }, "b": { "type": "number" } }, "required": ["a", "b"] }
        },
        {
            "name": "time",
            "description": "Seconds since the Unix epoch on the gateway host.",
            "inputSchema": { "type": "object", "properties": {} }
        }
    ])
}

fn call(params: &Value) -> Result<Value, (i64, String)> {
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let args = params.get("arguments").cloned().unwrap_or(json!({}));
    let text = match name {
        "echo" => args
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        "add" => {
            let a = args.get("a").and_then(Value::as_f64);
            let b = args.get("b").and_then(Value::as_f64);
            match (a, b) {
                (Some(a), Some(b)) => (a + b).to_string(),
                _ => return Ok(tool_error("add needs numbers a and b")),
            }
        }
        "time" => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string(),
        other => return Err((-32602, format!("unknown tool: {other}"))),
    };
    Ok(json!({ "content": [{ "type": "text", "text": text }], "isError": false }))
}

fn tool_error(text: &str) -> Value {
    json!({ "content": [{ "type": "text", "text": text }], "isError": true })
}

fn rpc_error(id: Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}
