//! Reading MCP event streams in tests: a response body read as SSE one event at a time, and
//! the requests that open response and standalone streams.

use std::time::Duration;

use serde_json::Value;

/// Bound on waiting for any one event of a stream.
pub const EVENT_WAIT: Duration = Duration::from_secs(20);

/// A response body read as SSE, one event at a time.
pub struct Events {
    resp: reqwest::Response,
    buf: String,
}

/// One SSE event: its id and its data parsed as JSON (`Null` for empty data).
#[derive(Debug)]
pub struct Event {
    pub id: Option<String>,
    pub retry: Option<u64>,
    pub data: Value,
}

impl Events {
    pub fn new(resp: reqwest::Response) -> Events {
        Events {
            resp,
            buf: String::new(),
        }
    }

    /// The next event, `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            let normalised = self.buf.replace("\r\n", "\n");
            if let Some(end) = normalised.find("\n\n") {
                let block = normalised[..end].to_owned();
                self.buf = normalised[end + 2..].to_owned();
                let mut event = Event {
                    id: None,
                    retry: None,
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("retry:") {
                        event.retry = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if data.is_empty() && event.id.is_none() && event.retry.is_none() {
                    continue; // a comment (keep-alive)
                }
                if !data.is_empty() {
                    event.data = serde_json::from_str(&data).expect("event data is JSON");
                }
                return Some(event);
            }
            let chunk = tokio::time::timeout(EVENT_WAIT, self.resp.chunk())
                .await
                .expect("an event within the bound")
                .expect("the stream reads");
            self.buf.push_str(&String::from_utf8_lossy(&chunk?));
        }
    }

    /// The next event whose data satisfies `wanted`, skipping others.
    pub async fn until(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Event {
        for _ in 0..200 {
            let event = self
                .next()
                .await
                .unwrap_or_else(|| panic!("the stream ended before {what}"));
            if wanted(&event.data) {
                return event;
            }
        }
        panic!("no {what} in 200 events");
    }
}

pub async fn post_stream(url: &str, session: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .body(body.to_string())
        .send()
        .await
        .expect("request reaches sluice")
}

pub async fn get_stream(
    url: &str,
    session: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    req.send().await.expect("request reaches sluice")
}
