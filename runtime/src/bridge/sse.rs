//! Response bodies: whole JSON, and server-sent event streams fed by channels.
//!
//! A POST's stream carries the request's progress and the child's requests to this client,
//! then the answer, and ends; it holds the call's guard, so a client that hangs up cancels the
//! request at the child. A GET's stream carries the session's unsolicited messages until the
//! session ends, with a comment every few seconds so idle proxies keep it open.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as HttpBody, Frame};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Interval, Sleep};

use super::mux::CallGuard;

/// Every response body of the bridge.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

const KEEPALIVE: Duration = Duration::from_secs(15);

/// A whole body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// One SSE event carrying a JSON-RPC message (always one line: the child writes lines, and the
/// bridge's own messages have no newlines).
fn event(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(message.len() + 24);
    out.extend_from_slice(b"event: message\ndata: ");
    out.extend_from_slice(message);
    out.extend_from_slice(b"\n\n");
    out.into()
}

/// The answer of a POST request, after its interim messages.
pub(crate) struct Answer {
    pub done: oneshot::Receiver<Bytes>,
    pub deadline: Pin<Box<Sleep>>,
    /// Sent instead of the answer when the deadline passes.
    pub timeout_message: Bytes,
    /// Held for its drop: cancels the request at the child if the stream ends early.
    pub _guard: CallGuard,
}

/// An event stream.
pub(crate) struct SseBody {
    first: Option<Bytes>,
    events: mpsc::Receiver<Bytes>,
    answer: Option<Answer>,
    keepalive: Interval,
    ended: bool,
}

impl SseBody {
    /// A POST's stream: `first`, then `events`, then the answer.
    pub(crate) fn response(first: Bytes, events: mpsc::Receiver<Bytes>, answer: Answer) -> Body {
        SseBody::build(Some(first), events, Some(answer))
    }

    /// A GET's standalone stream.
    pub(crate) fn standalone(events: mpsc::Receiver<Bytes>) -> Body {
        SseBody::build(None, events, None)
    }

    fn build(first: Option<Bytes>, events: mpsc::Receiver<Bytes>, answer: Option<Answer>) -> Body {
        let start = tokio::time::Instant::now() + KEEPALIVE;
        SseBody {
            first,
            events,
            answer,
            keepalive: tokio::time::interval_at(start, KEEPALIVE),
            ended: false,
        }
        .boxed_unsync()
    }
}

impl HttpBody for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(event(&first)))));
        }
        // Interim messages first: any sent before the answer was are already queued.
        match this.events.poll_recv(cx) {
            Poll::Ready(Some(message)) => {
                return Poll::Ready(Some(Ok(Frame::data(event(&message)))));
            }
            Poll::Ready(None) if this.answer.is_none() => {
                this.ended = true;
                return Poll::Ready(None);
            }
            _ => {}
        }
        if let Some(answer) = this.answer.as_mut() {
            let last = match Pin::new(&mut answer.done).poll(cx) {
                Poll::Ready(Ok(message)) => Some(message),
                Poll::Ready(Err(_)) => None,
                Poll::Pending => match answer.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Some(answer.timeout_message.clone()),
                    Poll::Pending => return this.poll_keepalive(cx),
                },
            };
            this.ended = true;
            // Dropping the guard after the answer came is a no-op; after a timeout it cancels.
            this.answer = None;
            return Poll::Ready(last.map(|m| Ok(Frame::data(event(&m)))));
        }
        this.poll_keepalive(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

impl SseBody {
    fn poll_keepalive(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.keepalive.poll_tick(cx) {
            Poll::Ready(_) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                b": keep-alive\n\n",
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }
}
