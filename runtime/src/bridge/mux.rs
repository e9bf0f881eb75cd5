//! The shared state of a bridge: the child's state, the requests in flight to it, the requests
//! it sent to clients, the client sessions; and the routing of every line the child writes.
//!
//! All tables sit behind one mutex held only for map operations (never across an await), so a
//! line from the child is routed with one short lock. Ids are bridge-assigned integers from one
//! counter: unique across clients and across restarts of the child, so an answer from a dead
//! child's generation can never reach a request of the next one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use super::message::{Envelope, Kind, bridge_number, error_response, result_response, splice};
use super::{BridgeConfig, BridgeError, BridgeStatus, LogRing};

/// JSON-RPC code for errors of the server process (JSON-RPC "internal error").
pub(crate) const SERVER_ERROR: i64 = -32603;
/// Interim messages queued for one request's SSE stream before more are dropped.
const INTERIM_QUEUE: usize = 64;
/// Messages queued for one session's GET stream before more are dropped.
const STREAM_QUEUE: usize = 256;

/// Where the child stands; published through a watch channel.
#[derive(Debug, Clone)]
pub(crate) enum ChildState {
    Starting,
    Ready(Arc<Running>),
    Exited(BridgeError),
}

/// One generation of the child process, as requests see it.
#[derive(Debug)]
pub(crate) struct Running {
    pub generation: u64,
    pub pid: u32,
    pub stdin: mpsc::Sender<Bytes>,
}

/// The cached handshake: replayed to a restarted child, answered to later clients.
#[derive(Debug)]
pub(crate) struct CachedInit {
    pub params: Box<[u8]>,
    pub result: Box<[u8]>,
}

/// A client session id: 32 lowercase hex digits from a CSPRNG.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SessionId(Box<str>);

impl SessionId {
    fn random() -> SessionId {
        SessionId(format!("{:032x}", rand::random::<u128>()).into())
    }

    /// A header value in the form the bridge issues (else `None`: the caller answers 404).
    pub fn parse(value: &[u8]) -> Option<SessionId> {
        (value.len() == 32 && value.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| SessionId(String::from_utf8_lossy(value).into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

struct Pending {
    generation: u64,
    session: Option<SessionId>,
    original_id: Box<[u8]>,
    original_token: Option<Box<[u8]>>,
    interim: Option<mpsc::Sender<Bytes>>,
    done: oneshot::Sender<Bytes>,
}

struct Outbound {
    generation: u64,
    child_id: Box<[u8]>,
    session: SessionId,
}

struct Session {
    stream: Option<mpsc::Sender<Bytes>>,
    last_used: Instant,
}

#[derive(Default)]
struct Tables {
    inflight: HashMap<u64, Pending>,
    outbound: HashMap<u64, Outbound>,
    sessions: HashMap<SessionId, Session>,
}

/// Everything the endpoint, the supervisor and the stdout reader share.
pub(crate) struct Shared {
    pub config: BridgeConfig,
    pub addr: SocketAddr,
    pub state: watch::Sender<ChildState>,
    pub restarts: AtomicU64,
    pub pid: AtomicU32,
    /// Open HTTP connections (a permit each).
    pub connections: Arc<tokio::sync::Semaphore>,
    /// Turns true when the endpoint stops taking requests.
    pub draining: watch::Sender<bool>,
    next_id: AtomicU64,
    tables: Mutex<Tables>,
    init: Mutex<Option<Arc<CachedInit>>>,
    init_once: tokio::sync::Mutex<()>,
    logs: Mutex<LogRing>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.config.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-updated in a way that
    // matters more than stopping the bridge would.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A request sent to the child, awaiting its answer. Dropping it before the answer came
/// cancels the request at the child.
pub(crate) struct Call {
    pub interim: mpsc::Receiver<Bytes>,
    pub done: oneshot::Receiver<Bytes>,
    pub guard: CallGuard,
}

/// Forgets an unanswered request and tells the child (`notifications/cancelled`).
pub(crate) struct CallGuard {
    shared: Arc<Shared>,
    id: u64,
    stdin: mpsc::Sender<Bytes>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if lock(&self.shared.tables)
            .inflight
            .remove(&self.id)
            .is_some()
        {
            let cancel = format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/cancelled","params":{{"requestId":{},"reason":"the client went away"}}}}"#,
                self.id
            );
            let _ = self.stdin.try_send(Bytes::from(cancel + "\n"));
        }
    }
}

impl Shared {
    pub fn new(config: BridgeConfig, addr: SocketAddr) -> Shared {
        let logs = LogRing::new(config.log_lines);
        Shared {
            connections: Arc::new(tokio::sync::Semaphore::new(config.max_connections)),
            config,
            addr,
            state: watch::channel(ChildState::Starting).0,
            restarts: AtomicU64::new(0),
            pid: AtomicU32::new(0),
            draining: watch::channel(false).0,
            next_id: AtomicU64::new(1),
            tables: Mutex::new(Tables::default()),
            init: Mutex::new(None),
            init_once: tokio::sync::Mutex::new(()),
            logs: Mutex::new(logs),
        }
    }

    pub fn status(&self) -> BridgeStatus {
        match &*self.state.borrow() {
            ChildState::Starting => BridgeStatus::Starting,
            ChildState::Ready(r) => BridgeStatus::Running {
                pid: r.pid,
                restarts: self.restarts.load(Ordering::Relaxed),
            },
            ChildState::Exited(e) => BridgeStatus::Exited(e.to_string()),
        }
    }

    pub fn log_line(&self, line: String) {
        tracing::info!("[{}] {line}", self.config.name);
        lock(&self.logs).push(line);
    }

    pub fn logs(&self) -> Vec<String> {
        lock(&self.logs).snapshot()
    }

    fn fresh_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn cached_init(&self) -> Option<Arc<CachedInit>> {
        lock(&self.init).clone()
    }

    /// The running child, waiting (bounded) while it (re)starts.
    pub async fn running(&self) -> Result<Arc<Running>, BridgeError> {
        let mut rx = self.state.subscribe();
        let wait = async {
            loop {
                let state = rx.borrow_and_update().clone();
                match state {
                    ChildState::Ready(r) => return Ok(r),
                    ChildState::Exited(e) => return Err(e),
                    ChildState::Starting => {}
                }
                if rx.changed().await.is_err() {
                    return Err(BridgeError::ShuttingDown);
                }
            }
        };
        tokio::time::timeout(self.config.start_timeout, wait)
            .await
            .unwrap_or(Err(BridgeError::NotRunning))
    }

    /// Sends the request `text` (with `envelope`) to the child under a fresh id; its progress
    /// token, if any, is swapped for the same id.
    pub async fn start_call(
        self: &Arc<Self>,
        running: &Running,
        text: &str,
        envelope: &Envelope<'_>,
        session: Option<SessionId>,
        streaming: bool,
    ) -> Result<Call, BridgeError> {
        let Some(id_span) = envelope.id.clone() else {
            return Err(BridgeError::ShuttingDown);
        };
        let id = self.fresh_id();
        let number = id.to_string();
        let bytes = text.as_bytes();
        let mut edits = vec![(id_span.clone(), number.as_bytes())];
        if let Some(t) = envelope.progress_token.clone() {
            edits.push((t, number.as_bytes()));
        }
        let line = splice(bytes, &mut edits, true);
        let (interim_tx, interim) = mpsc::channel(INTERIM_QUEUE);
        let (done_tx, done) = oneshot::channel();
        {
            let mut tables = lock(&self.tables);
            if tables.inflight.len() >= self.config.max_in_flight {
                return Err(BridgeError::Overloaded(self.config.max_in_flight));
            }
            tables.inflight.insert(
                id,
                Pending {
                    generation: running.generation,
                    session,
                    original_id: bytes[id_span].into(),
                    original_token: envelope.progress_token.clone().map(|t| bytes[t].into()),
                    interim: streaming.then_some(interim_tx),
                    done: done_tx,
                },
            );
        }
        let guard = CallGuard {
            shared: self.clone(),
            id,
            stdin: running.stdin.clone(),
        };
        if running.stdin.send(Bytes::from(line)).await.is_err() {
            lock(&self.tables).inflight.remove(&id);
            return Err(BridgeError::NotRunning);
        }
        Ok(Call {
            interim,
            done,
            guard,
        })
    }

    /// `initialize`: passed to the child once; later ones are answered from the cache.
    pub async fn initialize(
        self: &Arc<Self>,
        text: &str,
        envelope: &Envelope<'_>,
    ) -> Result<Bytes, BridgeError> {
        let id = &text.as_bytes()[envelope.id.clone().unwrap_or(0..0)];
        if let Some(c) = self.cached_init() {
            return Ok(result_response(id, &c.result).into());
        }
        let _one_at_a_time = self.init_once.lock().await;
        if let Some(c) = self.cached_init() {
            return Ok(result_response(id, &c.result).into());
        }
        let running = self.running().await?;
        let answer = self.handshake(&running, text, envelope).await?;
        Ok(answer)
    }

    /// Sends an initialize request and, when it succeeds, `notifications/initialized`, and
    /// caches the params and result. Returns the answer with the original id.
    pub async fn handshake(
        self: &Arc<Self>,
        running: &Running,
        text: &str,
        envelope: &Envelope<'_>,
    ) -> Result<Bytes, BridgeError> {
        let call = self
            .start_call(running, text, envelope, None, false)
            .await?;
        let answer = self.finish(call, self.config.start_timeout).await?;
        let answer_text = std::str::from_utf8(&answer).unwrap_or_default();
        if let Ok(parsed) = Envelope::parse(answer_text)
            && let Some(result) = parsed.result
        {
            let params = envelope
                .params
                .clone()
                .map_or(&b"{}"[..], |p| &text.as_bytes()[p]);
            *lock(&self.init) = Some(Arc::new(CachedInit {
                params: params.into(),
                result: answer[result].into(),
            }));
            let initialized = Bytes::from_static(
                b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n",
            );
            running
                .stdin
                .send(initialized)
                .await
                .map_err(|_| BridgeError::NotRunning)?;
        }
        Ok(answer)
    }

    /// Waits for the final answer of `call` (interim messages dropped).
    pub async fn finish(&self, mut call: Call, bound: Duration) -> Result<Bytes, BridgeError> {
        let answer = tokio::time::timeout(bound, &mut call.done).await;
        match answer {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(_)) => Err(BridgeError::NotRunning),
            Err(_) => Err(BridgeError::Timeout(bound)),
        }
    }

    /// Opens a session (after a successful initialize), forgetting the least recently used one
    /// beyond the bound.
    pub fn open_session(&self) -> SessionId {
        let id = SessionId::random();
        let mut tables = lock(&self.tables);
        if tables.sessions.len() >= self.config.max_sessions
            && let Some(oldest) = tables
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
        {
            tables.sessions.remove(&oldest);
        }
        tables.sessions.insert(
            id.clone(),
            Session {
                stream: None,
                last_used: Instant::now(),
            },
        );
        id
    }

    /// Whether `id` is a live session (and marks it used).
    pub fn touch_session(&self, id: &SessionId) -> bool {
        match lock(&self.tables).sessions.get_mut(id) {
            Some(s) => {
                s.last_used = Instant::now();
                true
            }
            None => false,
        }
    }

    pub fn close_session(&self, id: &SessionId) -> bool {
        lock(&self.tables).sessions.remove(id).is_some()
    }

    /// Opens the session's standalone stream (replacing an older one, which then ends).
    pub fn open_stream(&self, id: &SessionId) -> Option<mpsc::Receiver<Bytes>> {
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let mut tables = lock(&self.tables);
        let session = tables.sessions.get_mut(id)?;
        session.stream = Some(tx);
        session.last_used = Instant::now();
        Some(rx)
    }

    /// A client's `notifications/cancelled`: its `requestId` becomes the bridge id of that
    /// client's request. `None`: it names nothing in flight for this session (dropped).
    pub fn rewrite_cancel(
        &self,
        text: &str,
        envelope: &Envelope<'_>,
        session: &SessionId,
    ) -> Option<Vec<u8>> {
        let span = envelope.request_id.clone()?;
        let wanted = &text.as_bytes()[span.clone()];
        let tables = lock(&self.tables);
        let (id, _) = tables
            .inflight
            .iter()
            .find(|(_, p)| p.session.as_ref() == Some(session) && &*p.original_id == wanted)?;
        let number = id.to_string();
        Some(splice(
            text.as_bytes(),
            &mut [(span, number.as_bytes())],
            true,
        ))
    }

    /// A client's answer to a request the child sent: routed back under the child's own id.
    /// `None`: it answers nothing this session was asked (dropped).
    pub fn rewrite_answer(
        &self,
        text: &str,
        envelope: &Envelope<'_>,
        session: &SessionId,
        generation: u64,
    ) -> Option<Vec<u8>> {
        let span = envelope.id.clone()?;
        let id = bridge_number(&text.as_bytes()[span.clone()])?;
        let mut tables = lock(&self.tables);
        let out = tables.outbound.get(&id)?;
        if out.session != *session {
            return None;
        }
        let out = tables.outbound.remove(&id)?;
        (out.generation == generation)
            .then(|| splice(text.as_bytes(), &mut [(span, &out.child_id)], true))
    }

    /// Answers every request of `generation` with the reason it will never be answered.
    pub fn fail_generation(&self, generation: u64, reason: &BridgeError) {
        let message = reason.to_string();
        let mut tables = lock(&self.tables);
        let ids: Vec<u64> = tables
            .inflight
            .iter()
            .filter(|(_, p)| p.generation == generation)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(p) = tables.inflight.remove(&id) {
                let answer = error_response(&p.original_id, SERVER_ERROR, &message);
                let _ = p.done.send(answer.into());
            }
        }
        tables.outbound.retain(|_, o| o.generation != generation);
    }

    /// Ends every standalone stream (the bridge is stopping).
    pub fn close_streams(&self) {
        for s in lock(&self.tables).sessions.values_mut() {
            s.stream = None;
        }
    }

    /// Routes one line the child wrote.
    pub fn route_from_child(&self, running: &Running, line: &[u8]) {
        let Ok(text) = std::str::from_utf8(line) else {
            tracing::warn!(
                "[{}] skipped a stdout line that is not UTF-8",
                self.config.name
            );
            return;
        };
        let envelope = match Envelope::parse(text) {
            Ok(e) => e,
            Err(e) => {
                let head: String = text.chars().take(120).collect();
                tracing::warn!("[{}] skipped a stdout line ({e}): {head}", self.config.name);
                return;
            }
        };
        match envelope.kind {
            Kind::Response => self.route_response(text, &envelope),
            Kind::Notification => self.route_notification(text, &envelope),
            Kind::Request => self.route_request(running, text, &envelope),
        }
    }

    fn route_response(&self, text: &str, envelope: &Envelope<'_>) {
        let Some(span) = envelope.id.clone() else {
            tracing::warn!("[{}] the server answered with a null id", self.config.name);
            return;
        };
        let Some(pending) = bridge_number(&text.as_bytes()[span.clone()])
            .and_then(|id| lock(&self.tables).inflight.remove(&id))
        else {
            tracing::debug!(
                "[{}] an answer to nothing in flight (cancelled?)",
                self.config.name
            );
            return;
        };
        let answer = splice(text.as_bytes(), &mut [(span, &pending.original_id)], false);
        let _ = pending.done.send(answer.into());
    }

    fn route_notification(&self, text: &str, envelope: &Envelope<'_>) {
        let bytes = text.as_bytes();
        if let Some(span) = envelope.progress_token.clone()
            && let Some(id) = bridge_number(&bytes[span.clone()])
        {
            let tables = lock(&self.tables);
            if let Some(p) = tables.inflight.get(&id) {
                if let (Some(tx), Some(token)) = (&p.interim, &p.original_token) {
                    let message = splice(bytes, &mut [(span, token)], false);
                    let _ = tx.try_send(message.into());
                }
                return;
            }
        }
        if envelope.method.as_deref() == Some("notifications/cancelled")
            && let Some(span) = envelope.request_id.clone()
        {
            // The child gave up a request it sent: name it by the id the client saw.
            let wanted = &bytes[span.clone()];
            let tables = lock(&self.tables);
            let Some((id, out)) = tables.outbound.iter().find(|(_, o)| &*o.child_id == wanted)
            else {
                return;
            };
            let number = id.to_string();
            let message = splice(bytes, &mut [(span, number.as_bytes())], false);
            if let Some(tx) = tables
                .sessions
                .get(&out.session)
                .and_then(|s| s.stream.as_ref())
            {
                let _ = tx.try_send(message.into());
            }
            return;
        }
        self.broadcast(Bytes::copy_from_slice(bytes));
    }

    /// Sends an unsolicited message to every session's standalone stream (the child is one
    /// session shared by all clients, so what it announces concerns all of them).
    fn broadcast(&self, message: Bytes) {
        let mut tables = lock(&self.tables);
        for session in tables.sessions.values_mut() {
            if let Some(tx) = &session.stream {
                match tx.try_send(message.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tracing::warn!(
                            "[{}] a client's stream is full; a notification was dropped",
                            self.config.name
                        );
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => session.stream = None,
                }
            }
        }
    }

    /// A request from the child (sampling, elicitation, roots): to the one request in flight
    /// that takes SSE if there is exactly one (the request it most likely belongs to), else to
    /// a session's standalone stream, preferring the session of the newest request in flight.
    /// `ping` is answered here.
    fn route_request(&self, running: &Running, text: &str, envelope: &Envelope<'_>) {
        let bytes = text.as_bytes();
        let Some(span) = envelope.id.clone() else {
            return;
        };
        let child_id = &bytes[span.clone()];
        if envelope.method.as_deref() == Some("ping") {
            let mut pong = result_response(child_id, b"{}");
            pong.push(b'\n');
            let _ = running.stdin.try_send(pong.into());
            return;
        }
        let id = self.fresh_id();
        let number = id.to_string();
        let message = Bytes::from(splice(bytes, &mut [(span, number.as_bytes())], false));
        let mut tables = lock(&self.tables);
        let streaming: Vec<(&u64, &Pending)> = tables
            .inflight
            .iter()
            .filter(|(_, p)| p.interim.is_some() && p.session.is_some())
            .collect();
        let mut target: Option<(SessionId, mpsc::Sender<Bytes>)> = None;
        if let [(_, p)] = streaming.as_slice()
            && let (Some(s), Some(tx)) = (&p.session, &p.interim)
        {
            target = Some((s.clone(), tx.clone()));
        }
        if target.is_none() {
            let newest = tables
                .inflight
                .iter()
                .filter_map(|(id, p)| Some((*id, p.session.clone()?)))
                .max_by_key(|(id, _)| *id)
                .map(|(_, s)| s);
            let with_stream = |s: &SessionId| {
                tables
                    .sessions
                    .get(s)
                    .and_then(|x| x.stream.clone())
                    .filter(|tx| !tx.is_closed())
                    .map(|tx| (s.clone(), tx))
            };
            target = newest.as_ref().and_then(with_stream).or_else(|| {
                tables
                    .sessions
                    .iter()
                    .filter_map(|(s, x)| Some((s, x.stream.clone()?)))
                    .find(|(_, tx)| !tx.is_closed())
                    .map(|(s, tx)| (s.clone(), tx))
            });
        }
        let delivered = target.and_then(|(session, tx)| {
            tx.try_send(message).ok()?;
            Some(session)
        });
        match delivered {
            Some(session) => {
                tables.outbound.insert(
                    id,
                    Outbound {
                        generation: running.generation,
                        child_id: child_id.into(),
                        session,
                    },
                );
            }
            None => {
                drop(tables);
                let mut refusal = error_response(
                    child_id,
                    SERVER_ERROR,
                    "no client has a stream open to take this request",
                );
                refusal.push(b'\n');
                let _ = running.stdin.try_send(refusal.into());
            }
        }
    }
}
